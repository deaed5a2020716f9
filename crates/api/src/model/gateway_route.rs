//! `MeshGatewayRoute` (Kuma `mesh.v1alpha1.MeshGatewayRoute`): HTTP or TCP routes attached to gateway listeners.

use serde::{Deserialize, Serialize};

use super::common::{Selector, Tags, is_default, proto_enum};

/// The spec of a `MeshGatewayRoute`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshGatewayRoute {
    /// Selects listeners by their merged tags (any selector may match).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<Selector>,
    /// The route: `tcp` or `http`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf: Option<RouteConf>,
}

/// `conf`: exactly one of `tcp` or `http`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouteConf {
    /// A TCP route (TCP and TLS listeners).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpRoute>,
    /// An HTTP route (HTTP and HTTPS listeners).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRoute>,
}

/// A TCP route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpRoute {
    /// The rules; their backends are weighted together.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<TcpRule>,
}

/// A TCP rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpRule {
    /// Where connections go.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Backend>,
}

/// An HTTP route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRoute {
    /// Hostnames the route serves (none = every hostname of the listener).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRule>,
}

/// An HTTP rule: any of `matches` selects the request; `filters` run; `backends` receive it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRule {
    /// The matches (OR-ed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
    /// The filters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpFilter>,
    /// The backends (none for a redirect).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Backend>,
}

proto_enum! {
    /// An HTTP method (`NONE` = any).
    pub enum HttpMethod { NONE = 0, CONNECT = 1, DELETE = 2, GET = 3, HEAD = 4, OPTIONS = 5, PATCH = 6, POST = 7, PUT = 8, TRACE = 9 }
}

/// One match: every condition set must hold (AND).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpMatch {
    /// The path condition (absent = prefix `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// The method condition.
    #[serde(skip_serializing_if = "is_default")]
    pub method: HttpMethod,
    /// Header conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    /// Query parameter conditions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_parameters: Vec<QueryMatch>,
}

proto_enum! {
    /// How a path is compared.
    pub enum PathMatchType { EXACT = 0, PREFIX = 1, REGEX = 2 }
}

/// A path condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PathMatch {
    /// The comparison.
    #[serde(rename = "match")]
    pub match_: PathMatchType,
    /// The path, prefix or regex.
    pub value: String,
}

proto_enum! {
    /// How a header is compared.
    pub enum HeaderMatchType { EXACT = 0, REGEX = 1, ABSENT = 2, PRESENT = 3 }
}

/// A header condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderMatch {
    /// The comparison.
    #[serde(rename = "match", skip_serializing_if = "is_default")]
    pub match_: HeaderMatchType,
    /// The header name.
    pub name: String,
    /// The value or regex (none for ABSENT/PRESENT).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
}

proto_enum! {
    /// How a query parameter is compared.
    pub enum QueryMatchType { EXACT = 0, REGEX = 1 }
}

/// A query parameter condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct QueryMatch {
    /// The comparison.
    #[serde(rename = "match", skip_serializing_if = "is_default")]
    pub match_: QueryMatchType,
    /// The parameter name.
    pub name: String,
    /// The value or regex.
    pub value: String,
}

/// A filter: exactly one of its fields should be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpFilter {
    /// Modify request headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_header: Option<HeaderFilter>,
    /// Modify response headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_header: Option<HeaderFilter>,
    /// Copy requests to another backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
    /// Answer with a redirect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// Rewrite the path or host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
}

impl HttpFilter {
    /// The names (snake_case, as Kuma prints them) of the filter kinds set in this filter.
    pub fn set_kinds(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.request_header.is_some() {
            out.push("request_header");
        }
        if self.response_header.is_some() {
            out.push("response_header");
        }
        if self.mirror.is_some() {
            out.push("mirror");
        }
        if self.redirect.is_some() {
            out.push("redirect");
        }
        if self.rewrite.is_some() {
            out.push("rewrite");
        }
        out
    }
}

/// Header modifications.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderFilter {
    /// Replace these headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderValue>,
    /// Append these headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderValue>,
    /// Remove these headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderValue {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A request mirror.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Mirror {
    /// Where the copies go (its weight is ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// The share of requests copied, 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
}

/// A redirect answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Redirect {
    /// The scheme of the new location (empty = unchanged).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    /// The host of the new location (empty = unchanged).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// The port of the new location (0 = the listener's port).
    #[serde(skip_serializing_if = "is_default")]
    pub port: u32,
    /// The status code (301, 302, 303, 307 or 308).
    #[serde(skip_serializing_if = "is_default")]
    pub status_code: u32,
    /// How the path changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Rewrite>,
}

/// A rewrite: of the path (`replaceFull` or `replacePrefixMatch`) and/or of the Host header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Rewrite {
    /// Replace the whole path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_full: Option<String>,
    /// Replace the matched prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
    /// Set Host to the backend's hostname.
    #[serde(skip_serializing_if = "is_default")]
    pub host_to_backend_hostname: bool,
}

/// A backend: a weighted destination tag set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Backend {
    /// The share of traffic (relative to the rule's other backends).
    #[serde(skip_serializing_if = "is_default")]
    pub weight: u32,
    /// Tags selecting the destination; must include `kuma.io/service`.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub destination: Tags,
}
