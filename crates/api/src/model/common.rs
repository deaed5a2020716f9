//! Types shared by several resources: tag maps, selectors, data sources, proto-style enums.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Tags (`kuma.io/service: web`), kept sorted as Kuma iterates them.
pub type Tags = BTreeMap<String, String>;

/// The service tag every selector and dataplane carries.
pub const SERVICE_TAG: &str = "kuma.io/service";
/// The protocol tag.
pub const PROTOCOL_TAG: &str = "kuma.io/protocol";
/// The zone tag.
pub const ZONE_TAG: &str = "kuma.io/zone";
/// The tag naming an external service.
pub const EXTERNAL_SERVICE_TAG: &str = "kuma.io/external-service-name";

/// Whether a value equals its type's default (used to leave proto default values out of output, as protojson does).
pub fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `{match: {tag: value}}`: selects dataplanes (or listeners) whose tags contain every pair; `*` matches any value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Selector {
    /// The tags to match.
    #[serde(rename = "match")]
    pub match_: Tags,
}

/// Defines a proto enum: a Rust enum decoded from its name (or number, as proto-JSON allows) and encoded as its name.
/// The first variant is the zero value and the default.
macro_rules! proto_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $num:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(clippy::upper_case_acronyms)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, zero value first.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value's proto name.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }

            /// The value's proto number.
            pub fn number(self) -> i32 {
                match self { $($name::$variant => $num),+ }
            }

            /// The value with this proto name.
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $(stringify!($variant) => Some($name::$variant),)+ _ => None }
            }

            /// The value with this proto number.
            pub fn from_number(n: i64) -> Option<Self> {
                match n { $($num => Some($name::$variant),)+ _ => None }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::ALL[0]
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> ::serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("one of ", $(stringify!($variant), " "),+))
                    }
                    fn visit_str<E: ::serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        $name::from_name(s).ok_or_else(|| {
                            E::custom($crate::model::common::unknown_enum_message(
                                s,
                                &[$(stringify!($variant)),+],
                            ))
                        })
                    }
                    fn visit_u64<E: ::serde::de::Error>(self, n: u64) -> Result<$name, E> {
                        i64::try_from(n).ok().and_then($name::from_number).ok_or_else(|| {
                            E::custom(format!("unknown enum number {n}"))
                        })
                    }
                    fn visit_i64<E: ::serde::de::Error>(self, n: i64) -> Result<$name, E> {
                        $name::from_number(n).ok_or_else(|| E::custom(format!("unknown enum number {n}")))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}
pub(crate) use proto_enum;

/// The message for an enum name that is not one of the allowed ones.
pub fn unknown_enum_message(got: &str, allowed: &[&str]) -> String {
    let list = allowed.join(", ");
    match crate::suggest::did_you_mean(got, allowed.iter().copied()) {
        Some(best) => format!("unknown value \"{got}\", did you mean \"{best}\"? (allowed: {list})"),
        None => format!("unknown value \"{got}\" (allowed: {list})"),
    }
}

/// Bytes written in base64 (proto `bytes` / `BytesValue` in JSON). Standard or URL-safe alphabet, padded or not.
/// `Debug` shows only the length, because these bytes are usually secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Base64Bytes(pub Vec<u8>);

impl fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl Base64Bytes {
    /// Decodes base64 text.
    pub fn decode(text: &str) -> Result<Self, String> {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let engines = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        let mut first_err = None;
        for engine in engines {
            match engine.decode(&compact) {
                Ok(bytes) => return Ok(Base64Bytes(bytes)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(format!("invalid base64: {}", first_err.map_or_else(String::new, |e| e.to_string())))
    }

    /// The standard base64 encoding.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Base64Bytes::decode(&s).map_err(serde::de::Error::custom)
    }
}

/// Where bytes come from (Kuma `system.v1alpha1.DataSource`): a Secret of the same mesh, a file, or inline.
/// Exactly one should be set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DataSource {
    /// Name of a Secret in the resource's mesh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A file path (deprecated in Kuma; relative paths resolve against the directory of the YAML file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Inline bytes, base64 in YAML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline: Option<Base64Bytes>,
    /// Inline text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline_string: Option<String>,
}

impl DataSource {
    /// The names of the fields that are set (a valid data source has exactly one).
    pub fn set_fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.secret.is_some() {
            out.push("secret");
        }
        if self.file.is_some() {
            out.push("file");
        }
        if self.inline.is_some() {
            out.push("inline");
        }
        if self.inline_string.is_some() {
            out.push("inlineString");
        }
        out
    }

    /// Whether nothing usable is set (Kuma: "data source cannot be empty").
    pub fn is_empty(&self) -> bool {
        self.inline.as_ref().is_none_or(|b| b.0.is_empty())
            && self.inline_string.as_deref().unwrap_or_default().is_empty()
            && self.secret.as_deref().unwrap_or_default().is_empty()
            && self.file.as_deref().unwrap_or_default().is_empty()
    }
}

/// An empty message (`{}`), such as `tls.options`. Any field in it is an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    proto_enum! {
        enum Sample { NONE = 0, TCP = 1, TLS = 3 }
    }

    #[test]
    fn proto_enums() {
        assert_eq!(Sample::default(), Sample::NONE);
        assert_eq!(Sample::from_name("TLS"), Some(Sample::TLS));
        assert_eq!(Sample::from_number(3), Some(Sample::TLS));
        assert_eq!(Sample::from_number(2), None);
        assert_eq!(Sample::TLS.number(), 3);
        assert_eq!(serde_json::to_string(&Sample::TCP).unwrap(), "\"TCP\"");
        let v: Sample = serde_json::from_str("\"TCP\"").unwrap();
        assert_eq!(v, Sample::TCP);
        let v: Sample = serde_json::from_str("3").unwrap();
        assert_eq!(v, Sample::TLS);
        let e = serde_json::from_str::<Sample>("\"TPC\"").unwrap_err().to_string();
        assert!(e.contains("unknown value \"TPC\", did you mean \"TCP\"?"), "{e}");
    }

    #[test]
    fn base64_variants() {
        assert_eq!(Base64Bytes::decode("aGk=").unwrap().0, b"hi");
        assert_eq!(Base64Bytes::decode("aGk").unwrap().0, b"hi");
        assert_eq!(Base64Bytes::decode("aG\nk=").unwrap().0, b"hi");
        assert!(Base64Bytes::decode("!!").is_err());
        assert_eq!(format!("{:?}", Base64Bytes(vec![1, 2, 3])), "<3 bytes>");
    }

    #[test]
    fn data_source_fields() {
        let ds = DataSource { secret: Some("a".into()), file: Some("b".into()), ..Default::default() };
        assert_eq!(ds.set_fields(), vec!["secret", "file"]);
        assert!(DataSource::default().is_empty());
    }
}
