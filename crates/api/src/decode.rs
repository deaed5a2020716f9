//! Typed decoding of a positioned YAML tree with proto-JSON field rules.
//!
//! [`Decoder`] is a serde `Deserializer` over [`Node`]s. It accepts a field under its lowerCamelCase JSON name or
//! its snake_case proto name (as Kuma's proto-JSON decoding does), treats `null` as "not set", reports unknown
//! fields with a did-you-mean instead of dropping them, and records the position of every field it visits, so that a
//! violation's [`Path`] can be turned back into `line:col`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use crate::path::Path;
use crate::suggest::{camel_to_snake, did_you_mean};
use crate::yaml::{Node, Pos, Value, scalar_text};

/// What to do with a field the schema does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnknownFields {
    /// Report it as an error (the default: a typo must never be silently dropped).
    #[default]
    Deny,
    /// Skip it (how Kuma's own validator tests decode their inputs).
    Ignore,
}

/// A problem found while decoding: the document is not of the resource's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeIssue {
    /// The field the problem is at (Kuma's notation).
    pub path: Path,
    /// Where it is in the source.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DecodeIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Where each field of a decoded document sits in its source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Positions {
    root: Pos,
    by_path: HashMap<String, Pos>,
}

impl Positions {
    /// Positions with only a root.
    pub fn at(root: Pos) -> Self {
        Self { root, by_path: HashMap::new() }
    }

    /// Records where `path` is.
    pub fn insert(&mut self, path: &Path, pos: Pos) {
        self.by_path.insert(path.canonical(), pos);
    }

    /// Merges positions recorded under `prefix` (e.g. a spec decoded separately from its envelope).
    pub fn extend(&mut self, other: Positions) {
        self.by_path.extend(other.by_path);
    }

    /// The position of `path`, or of its nearest recorded ancestor (a missing field points at its parent).
    pub fn lookup(&self, path: &Path) -> Pos {
        let mut p = path.clone();
        loop {
            if let Some(pos) = self.by_path.get(&p.canonical()) {
                return *pos;
            }
            if p.is_root() {
                return self.root;
            }
            p = p.parent();
        }
    }

    /// The position of the document itself.
    pub fn root(&self) -> Pos {
        self.root
    }
}

/// Decodes nodes into typed values, collecting positions and unknown-field issues.
#[derive(Debug)]
pub struct Decoder {
    unknown_fields: UnknownFields,
    positions: RefCell<Positions>,
    issues: RefCell<Vec<DecodeIssue>>,
}

impl Decoder {
    /// A decoder for a document starting at `root`.
    pub fn new(unknown_fields: UnknownFields, root: Pos) -> Self {
        Self { unknown_fields, positions: RefCell::new(Positions::at(root)), issues: RefCell::new(Vec::new()) }
    }

    /// Decodes `node`, whose fields are reported under `path`. On failure every unknown field found so far is
    /// returned together with the error that stopped decoding.
    pub fn decode<T: DeserializeOwned>(&self, node: &Node, path: &Path) -> Result<T, Vec<DecodeIssue>> {
        self.positions.borrow_mut().insert(path, node.pos);
        let result = T::deserialize(NodeDe { node, dec: self, path: path.clone() });
        let mut issues = self.issues.borrow_mut();
        match result {
            Ok(value) if issues.is_empty() => Ok(value),
            Ok(_) => Err(std::mem::take(&mut *issues)),
            Err(e) => {
                let mut all = std::mem::take(&mut *issues);
                all.push(DecodeIssue {
                    path: e.path.unwrap_or_else(|| path.clone()),
                    pos: if e.pos == Pos::default() { node.pos } else { e.pos },
                    message: e.message,
                });
                Err(all)
            }
        }
    }

    /// Reports a problem found outside serde (e.g. in a resource envelope).
    pub fn report(&self, path: Path, pos: Pos, message: impl Into<String>) {
        self.issues.borrow_mut().push(DecodeIssue { path, pos, message: message.into() });
    }

    /// Records a position for `path` (for envelope fields decoded by hand).
    pub fn record(&self, path: &Path, pos: Pos) {
        self.positions.borrow_mut().insert(path, pos);
    }

    /// Takes the issues reported so far.
    pub fn take_issues(&self) -> Vec<DecodeIssue> {
        std::mem::take(&mut *self.issues.borrow_mut())
    }

    /// The positions recorded so far.
    pub fn into_positions(self) -> Positions {
        self.positions.into_inner()
    }

    fn unknown_field(&self, path: &Path, key: &Node, name: &str, fields: &'static [&'static str]) {
        if self.unknown_fields == UnknownFields::Ignore {
            return;
        }
        let snake_style = name.contains('_');
        let spelled = |f: &str| if snake_style { camel_to_snake(f) } else { f.to_owned() };
        let message = if fields.is_empty() {
            format!("unknown field `{name}`: this object has no fields")
        } else if let Some(best) = did_you_mean(name, fields.iter().copied()) {
            format!("unknown field `{name}`, did you mean `{}`?", spelled(best))
        } else {
            let list: Vec<String> = fields.iter().map(|f| format!("`{}`", spelled(f))).collect();
            format!("unknown field `{name}`, expected one of {}", list.join(", "))
        };
        self.report(path.field(name), key.pos, message);
    }
}

/// The error type of [`NodeDe`]: a message, plus where it happened once known.
#[derive(Debug)]
pub struct DeError {
    path: Option<Path>,
    pos: Pos,
    message: String,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { path: None, pos: Pos::default(), message: msg.to_string() }
    }
}

impl DeError {
    fn locate(mut self, path: &Path, pos: Pos) -> Self {
        if self.path.is_none() {
            self.path = Some(path.clone());
            self.pos = pos;
        }
        self
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    dec: &'a Decoder,
    path: Path,
}

impl<'a> NodeDe<'a> {
    fn err(&self, message: impl Into<String>) -> DeError {
        DeError { path: Some(self.path.clone()), pos: self.node.pos, message: message.into() }
    }

    fn mismatch(&self, expected: &str) -> DeError {
        let found = &self.node.value;
        let hint = match (expected, found) {
            ("a string", Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Float(_)) => {
                format!(" `{}` (quote it to make it a string)", scalar_text(self.node))
            }
            (_, Value::Str(s)) if s.len() <= 64 => format!(" \"{s}\""),
            (_, Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Float(_)) => {
                format!(" `{}`", scalar_text(self.node))
            }
            _ => String::new(),
        };
        self.err(format!("expected {expected}, found {}{hint}", found.type_name()))
    }

    fn integer(&self) -> Result<i128, DeError> {
        match &self.node.value {
            Value::UInt(u) => Ok(i128::from(*u)),
            Value::Int(i) => Ok(i128::from(*i)),
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => Ok(*f as i128),
            // proto-JSON accepts integers written as strings.
            Value::Str(s) => s.trim().parse::<i128>().map_err(|_| self.mismatch("an integer")),
            _ => Err(self.mismatch("an integer")),
        }
    }

    fn float(&self) -> Result<f64, DeError> {
        match &self.node.value {
            Value::UInt(u) => Ok(*u as f64),
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            // proto-JSON accepts numbers written as strings (Kuma's docs even recommend quoting decimals).
            Value::Str(s) => {
                s.trim().parse::<f64>().ok().filter(|f| f.is_finite()).ok_or_else(|| self.mismatch("a number"))
            }
            _ => Err(self.mismatch("a number")),
        }
    }

    fn child(&self, node: &'a Node, path: Path) -> NodeDe<'a> {
        NodeDe { node, dec: self.dec, path }
    }
}

macro_rules! deserialize_int {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let v = self.integer()?;
            let n = <$ty>::try_from(v).map_err(|_| {
                self.err(format!("value {v} is out of range for {} ({} to {})", $what, <$ty>::MIN, <$ty>::MAX))
            })?;
            visitor.$visit(n).map_err(|e: DeError| e.locate(&self.path, self.node.pos))
        }
    )*};
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (path, pos) = (self.path.clone(), self.node.pos);
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe { items: items.iter().enumerate(), de: &self }),
            Value::Map(entries) => visitor.visit_map(MapDe { entries: entries.iter(), pending: None, de: &self }),
        };
        result.map_err(|e| e.locate(&path, pos))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Bool(b) => visitor.visit_bool(*b).map_err(|e: DeError| e.locate(&self.path, self.node.pos)),
            _ => Err(self.mismatch("true or false")),
        }
    }

    deserialize_int! {
        deserialize_i8 visit_i8 i8, "an 8-bit integer";
        deserialize_i16 visit_i16 i16, "a 16-bit integer";
        deserialize_i32 visit_i32 i32, "a 32-bit integer";
        deserialize_i64 visit_i64 i64, "a 64-bit integer";
        deserialize_u8 visit_u8 u8, "an unsigned 8-bit integer";
        deserialize_u16 visit_u16 u16, "an unsigned 16-bit integer";
        deserialize_u32 visit_u32 u32, "an unsigned 32-bit integer";
        deserialize_u64 visit_u64 u64, "an unsigned 64-bit integer";
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let f = self.float()?;
        visitor.visit_f64(f).map_err(|e: DeError| e.locate(&self.path, self.node.pos))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_str(s).map_err(|e: DeError| e.locate(&self.path, self.node.pos)),
            _ => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (path, pos) = (self.path.clone(), self.node.pos);
        match &self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.locate(&path, pos))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Null => visitor.visit_unit().map_err(|e: DeError| e.locate(&self.path, self.node.pos)),
            _ => Err(self.mismatch("null")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        let (path, pos) = (self.path.clone(), self.node.pos);
        visitor.visit_newtype_struct(self).map_err(|e| e.locate(&path, pos))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_seq(SeqDe { items: [].iter().enumerate(), de: &self }),
            Value::Seq(items) => visitor.visit_seq(SeqDe { items: items.iter().enumerate(), de: &self }),
            _ => return Err(self.mismatch("a list")),
        };
        result.map_err(|e: DeError| e.locate(&self.path, self.node.pos))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_map(MapDe { entries: [].iter(), pending: None, de: &self }),
            Value::Map(entries) => visitor.visit_map(MapDe { entries: entries.iter(), pending: None, de: &self }),
            _ => return Err(self.mismatch("a mapping")),
        };
        result.map_err(|e: DeError| e.locate(&self.path, self.node.pos))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let entries: &[(Node, Node)] = match &self.node.value {
            Value::Null => &[],
            Value::Map(entries) => entries,
            _ => return Err(self.mismatch("a mapping")),
        };
        let mut resolved = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let Some(name) = key.as_str() else {
                return Err(self.child(key, self.path.clone()).err(format!(
                    "field names must be strings, found {} `{}`",
                    key.value.type_name(),
                    scalar_text(key)
                )));
            };
            match resolve_field(name, fields) {
                // proto-JSON: `null` means "not set", whatever the field's type.
                Some(field) if value.value == Value::Null => self.dec.record(&self.path.field(field), key.pos),
                Some(field) => resolved.push((field, key, value)),
                None => self.dec.unknown_field(&self.path, key, name, fields),
            }
        }
        visitor
            .visit_map(StructDe { entries: resolved.into_iter(), pending: None, de: &self })
            .map_err(|e: DeError| e.locate(&self.path, self.node.pos))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| e.locate(&self.path, self.node.pos)),
            _ => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// Matches a document key to a schema field: the field's own (camelCase) name or its snake_case spelling.
fn resolve_field(name: &str, fields: &'static [&'static str]) -> Option<&'static str> {
    fields
        .iter()
        .copied()
        .find(|f| *f == name)
        .or_else(|| if name.contains('_') { fields.iter().copied().find(|f| camel_to_snake(f) == name) } else { None })
}

struct SeqDe<'b, 'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    de: &'b NodeDe<'a>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some((i, node)) = self.items.next() else { return Ok(None) };
        let path = self.de.path.index(i);
        self.de.dec.record(&path, node.pos);
        seed.deserialize(self.de.child(node, path)).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'b, 'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    pending: Option<(&'a Node, &'a Node)>,
    de: &'b NodeDe<'a>,
}

impl<'de> de::MapAccess<'de> for MapDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.pending = Some((key, value));
        let key_path = self.de.path.key(&scalar_text(key));
        seed.deserialize(self.de.child(key, key_path)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("value requested before its key"));
        };
        let path = self.de.path.key(&scalar_text(key));
        self.de.dec.record(&path, key.pos);
        seed.deserialize(self.de.child(value, path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct StructDe<'b, 'a> {
    entries: std::vec::IntoIter<(&'static str, &'a Node, &'a Node)>,
    pending: Option<(&'static str, &'a Node, &'a Node)>,
    de: &'b NodeDe<'a>,
}

impl<'de> de::MapAccess<'de> for StructDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else { return Ok(None) };
        self.pending = Some(entry);
        let name: de::value::BorrowedStrDeserializer<'de, DeError> = de::value::BorrowedStrDeserializer::new(entry.0);
        seed.deserialize(name).map(Some).map_err(|e| e.locate(&self.de.path.field(entry.0), entry.1.pos))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((name, key, value)) = self.pending.take() else {
            return Err(de::Error::custom("value requested before its key"));
        };
        let path = self.de.path.field(name);
        self.de.dec.record(&path, key.pos);
        seed.deserialize(self.de.child(value, path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "camelCase")]
    struct Inner {
        mode: String,
        certificates: Vec<String>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "camelCase")]
    struct Outer {
        port: u32,
        cross_mesh: bool,
        tls: Option<Inner>,
        tags: std::collections::BTreeMap<String, String>,
        percentage: Option<f64>,
    }

    fn decode(text: &str, mode: UnknownFields) -> (Result<Outer, Vec<DecodeIssue>>, Positions) {
        let doc = parse_documents(text).unwrap().remove(0);
        let dec = Decoder::new(mode, doc.pos);
        let r = dec.decode::<Outer>(&doc, &Path::root());
        (r, dec.into_positions())
    }

    #[test]
    fn snake_and_camel_names() {
        let (a, _) = decode("port: 1\ncrossMesh: true\n", UnknownFields::Deny);
        let (b, _) = decode("port: 1\ncross_mesh: true\n", UnknownFields::Deny);
        assert_eq!(a.unwrap(), b.unwrap());
    }

    #[test]
    fn both_spellings_at_once_is_a_duplicate() {
        let (r, _) = decode("crossMesh: true\ncross_mesh: false\n", UnknownFields::Deny);
        let issues = r.unwrap_err();
        assert!(issues[0].message.contains("duplicate field"), "{issues:?}");
    }

    #[test]
    fn unknown_fields_did_you_mean() {
        let (r, _) = decode("port: 1\ntls:\n  mode: TERMINATE\n  certificate: []\n", UnknownFields::Deny);
        let issues = r.unwrap_err();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].path.to_string(), "tls.certificate");
        assert_eq!(issues[0].pos, Pos::new(4, 3));
        assert_eq!(issues[0].message, "unknown field `certificate`, did you mean `certificates`?");
        let (r, _) = decode("cross_mesh_x: 1\nzzz: 2\n", UnknownFields::Deny);
        let issues = r.unwrap_err();
        assert_eq!(issues.len(), 2, "every unknown field is reported");
        assert_eq!(issues[0].message, "unknown field `cross_mesh_x`, did you mean `cross_mesh`?");
        assert!(issues[1].message.starts_with("unknown field `zzz`, expected one of `port`"), "{}", issues[1].message);
        let (r, _) = decode("port: 1\nzzz: 2\n", UnknownFields::Ignore);
        assert_eq!(r.unwrap().port, 1);
    }

    #[test]
    fn null_means_unset() {
        let (r, _) = decode("port:\ntls:\ntags:\n", UnknownFields::Deny);
        assert_eq!(r.unwrap(), Outer::default());
        let (r, _) = decode("tls: {mode: }\n", UnknownFields::Deny);
        assert_eq!(r.unwrap().tls, Some(Inner::default()));
    }

    #[test]
    fn type_errors_are_located() {
        let (r, _) = decode("port: 1\ntags:\n  version: 2\n", UnknownFields::Deny);
        let issues = r.unwrap_err();
        assert_eq!(issues[0].path.to_string(), r#"tags["version"]"#);
        assert_eq!(issues[0].pos, Pos::new(3, 12));
        assert_eq!(issues[0].message, "expected a string, found an integer `2` (quote it to make it a string)");
        let (r, _) = decode("port: -1\n", UnknownFields::Deny);
        let issues = r.unwrap_err();
        assert_eq!(issues[0].path.to_string(), "port");
        assert!(issues[0].message.contains("out of range"), "{}", issues[0].message);
        let (r, _) = decode("port: [1]\n", UnknownFields::Deny);
        assert_eq!(r.unwrap_err()[0].message, "expected an integer, found a list");
    }

    #[test]
    fn numbers_as_strings() {
        let (r, _) = decode("port: \"8080\"\npercentage: \"12.5\"\n", UnknownFields::Deny);
        let o = r.unwrap();
        assert_eq!(o.port, 8080);
        assert_eq!(o.percentage, Some(12.5));
    }

    #[test]
    fn positions_are_recorded() {
        let (r, pos) = decode("port: 1\ntls:\n  mode: X\n  certificates:\n  - a\n  - b\n", UnknownFields::Deny);
        r.unwrap();
        let p = Path::rooted_at("tls").field("certificates").index(1);
        assert_eq!(pos.lookup(&p), Pos::new(6, 5));
        assert_eq!(pos.lookup(&Path::rooted_at("tls").field("mode")), Pos::new(3, 3));
        // A field that is absent points at its parent.
        assert_eq!(pos.lookup(&Path::rooted_at("tls").field("options")), Pos::new(2, 1));
        assert_eq!(pos.lookup(&Path::rooted_at("nothing")), Pos::new(1, 1));
    }
}
