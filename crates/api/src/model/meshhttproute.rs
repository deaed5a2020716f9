//! `MeshHTTPRoute` (Kuma `meshhttproute.v1alpha1`), in the shape that targets a `MeshGateway`.

use serde::{Deserialize, Serialize};

use super::common::is_default;
use super::targetref::{BackendRef, IntOrString, TargetRef};

/// Defines a string enum from the targetRef policy APIs (decoded by exact name, with a did-you-mean on error).
macro_rules! string_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The name as written.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
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
                let s = String::deserialize(d)?;
                match s.as_str() {
                    $($text => Ok($name::$variant),)+
                    other => Err(::serde::de::Error::custom($crate::model::common::unknown_enum_message(
                        other,
                        &[$($text),+],
                    ))),
                }
            }
        }
    };
}
pub(crate) use string_enum;

/// The spec of a `MeshHTTPRoute`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshHttpRoute {
    /// What the route applies to (absent = the whole mesh); for a gateway `{kind: MeshGateway, name, tags?}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Route sets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<HttpTo>,
}

/// One `to` item.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpTo {
    /// Hostnames the rules serve (gateway only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The destination (`{kind: Mesh}` on a gateway).
    pub target_ref: TargetRef,
    /// The rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
}

/// A rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Matches (OR-ed).
    pub matches: Vec<RouteMatch>,
    /// What matching requests get.
    pub default: RuleConf,
}

/// A match; every condition set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteMatch {
    /// Path condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<RoutePathMatch>,
    /// Method condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Query parameter conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<QueryParamsMatch>,
    /// Header conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<RouteHeaderMatch>,
}

string_enum! {
    /// How a path is compared.
    pub enum PathMatchKind { Exact = "Exact", PathPrefix = "PathPrefix", RegularExpression = "RegularExpression" }
}

/// A path condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutePathMatch {
    /// The comparison.
    #[serde(rename = "type")]
    pub type_: PathMatchKind,
    /// The value.
    #[serde(default)]
    pub value: String,
}

string_enum! {
    /// An HTTP method.
    pub enum Method {
        Connect = "CONNECT", Delete = "DELETE", Get = "GET", Head = "HEAD", Options = "OPTIONS",
        Patch = "PATCH", Post = "POST", Put = "PUT", Trace = "TRACE",
    }
}

string_enum! {
    /// How a query parameter is compared.
    pub enum QueryMatchKind { Exact = "Exact", RegularExpression = "RegularExpression" }
}

/// A query parameter condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryParamsMatch {
    /// The comparison.
    #[serde(rename = "type")]
    pub type_: QueryMatchKind,
    /// The parameter.
    #[serde(default)]
    pub name: String,
    /// The value or regex.
    #[serde(default)]
    pub value: String,
}

string_enum! {
    /// How a header is compared.
    pub enum HeaderMatchKind {
        Exact = "Exact", Present = "Present", RegularExpression = "RegularExpression", Absent = "Absent", Prefix = "Prefix",
    }
}

/// A header condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteHeaderMatch {
    /// The comparison (absent = Exact).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<HeaderMatchKind>,
    /// The header name.
    pub name: String,
    /// The value.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// What a rule does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RuleConf {
    /// Filters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<RouteFilter>>,
    /// Backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_refs: Option<Vec<BackendRef>>,
}

string_enum! {
    /// A filter's type.
    pub enum FilterKind {
        RequestHeaderModifier = "RequestHeaderModifier",
        ResponseHeaderModifier = "ResponseHeaderModifier",
        RequestRedirect = "RequestRedirect",
        UrlRewrite = "URLRewrite",
        RequestMirror = "RequestMirror",
    }
}

/// A filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteFilter {
    /// Which filter.
    #[serde(rename = "type")]
    pub type_: FilterKind,
    /// Request header changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// Response header changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
    /// A redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
    /// A rewrite.
    #[serde(default, rename = "urlRewrite", skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    /// A mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
}

/// Header changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderModifier {
    /// Replace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<Vec<HeaderKeyValue>>,
    /// Append.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add: Option<Vec<HeaderKeyValue>>,
    /// Remove.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove: Option<Vec<String>>,
}

/// A header name and value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderKeyValue {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

string_enum! {
    /// A redirect scheme.
    pub enum Scheme { Http = "http", Https = "https" }
}

/// A redirect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestRedirect {
    /// The new scheme.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    /// The new host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The new path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// The new port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// The status code (default 302).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u32>,
}

string_enum! {
    /// How a path is rewritten.
    pub enum PathRewriteKind { ReplaceFullPath = "ReplaceFullPath", ReplacePrefixMatch = "ReplacePrefixMatch" }
}

/// A path rewrite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathRewrite {
    /// Which rewrite.
    #[serde(rename = "type")]
    pub type_: PathRewriteKind,
    /// The new full path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// The new prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// A URL rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UrlRewrite {
    /// The new Host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The new path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// Set Host to the backend's hostname (gateway only).
    #[serde(skip_serializing_if = "is_default")]
    pub host_to_backend_hostname: bool,
}

/// A mirror.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestMirror {
    /// The share of requests mirrored (absent = 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<IntOrString>,
    /// Where copies go.
    pub backend_ref: BackendRef,
}
