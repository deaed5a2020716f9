//! # meshgate-plan — what a gateway must do, as plain data
//!
//! A [`GatewayPlan`] is everything one builtin gateway (one `Dataplane` with `networking.gateway.type: BUILTIN`)
//! needs to serve traffic: its listeners (merged per port), each HTTP listener's virtual hosts with their ordered
//! route tables, the filters and backends of every route, and the clusters (endpoints, upstream protocol, TLS).
//! It is the only thing a data plane sees — in-process for `meshgate run`, over the wire for `meshgate dp` — and
//! the contract between `compile` (which produces it) and `proxy` (which executes it).
//!
//! Kuma concept: the Envoy configuration Kuma's gateway generator produced (listeners, route configurations,
//! clusters), reduced to what meshgate's data plane needs and stated in Kuma's terms.
//!
//! What it must never do: hold behaviour. Plain serde data only (deterministic: maps are ordered), no I/O, no
//! dependency on the resource model or on the proxy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The format version of plans (bumped on incompatible changes).
pub const PLAN_FORMAT: u32 = 1;

/// The plans of every gateway a process runs, plus what could not be built.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// One plan per builtin-gateway Dataplane, sorted by mesh then name.
    pub gateways: Vec<GatewayPlan>,
}

/// A reference to a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The mesh.
    pub mesh: String,
    /// The name.
    pub name: String,
}

/// What one builtin gateway serves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayPlan {
    /// The gateway Dataplane.
    pub dataplane: ObjectRef,
    /// The MeshGateway bound to it (none: no listeners).
    pub gateway: Option<ObjectRef>,
    /// The address listeners bind to (the Dataplane's `networking.address`).
    pub address: String,
    /// Listeners, one per port, sorted by port.
    pub listeners: Vec<Listener>,
    /// Upstream clusters by name.
    pub clusters: BTreeMap<String, Cluster>,
    /// Problems found while building the plan (a broken route disables only itself).
    pub diagnostics: Vec<Diagnostic>,
}

/// A listener protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2 cleartext.
    Http,
    /// HTTP over TLS.
    Https,
    /// TCP.
    Tcp,
    /// TLS (terminated or passed through).
    Tls,
}

impl Protocol {
    /// Kuma's name (`HTTP`, `HTTPS`, `TCP`, `TLS`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
        }
    }

    /// Whether the listener speaks HTTP.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Https)
    }
}

/// The listeners of one port, merged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    /// Kuma's listener name: `<gateway>:<PROTOCOL>:<port>`.
    pub name: String,
    /// The port.
    pub port: u16,
    /// The protocol (of the first listener on the port).
    pub protocol: Protocol,
    /// The most connections at once (0 = unlimited).
    pub connection_limit: u32,
    /// The hostnames of the MeshGateway listeners merged here, in order, with their merged tags.
    pub hostnames: Vec<ListenerHostname>,
    /// HTTP virtual hosts (HTTP listeners: one route configuration for the whole port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_hosts: Vec<VirtualHost>,
    /// TLS filter chains (HTTPS and TLS listeners): one per listener hostname, chosen by SNI, most exact first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_chains: Vec<TlsChain>,
    /// The TCP proxy (TCP listeners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProxy>,
    /// What the gateway policies selecting this port set for the whole listener.
    #[serde(default)]
    pub policies: ListenerPolicies,
}

/// The listener-wide effect of gateway policies (Kuma keys these by port). Unset values fall back to the data
/// plane's defaults (Kuma's gateway defaults unless changed on the command line).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListenerPolicies {
    /// How long a connection with nothing in flight is kept (HTTP), or without traffic (TCP), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// How long a request head may take, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers_timeout_ms: Option<u64>,
    /// How long a request or response body may stall, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout_ms: Option<u64>,
    /// How long the whole request (head and body) may take to arrive, in milliseconds (Envoy's HCM
    /// `request_timeout`; 408 when it runs out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// TCP listeners: connection attempts per upstream connection (MeshRetry `tcp.maxConnectAttempt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connect_attempts: Option<u32>,
    /// New connections allowed per interval (MeshRateLimit `local.tcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_rate: Option<RateLimit>,
    /// Faults injected before routing, each independently (MeshFaultInjection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    /// Where access-log lines go (MeshAccessLog).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logs: Vec<AccessLog>,
    /// Tracing of the listener's requests (MeshTrace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    /// The policies in force here, and those that were overridden, in merge order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<AppliedPolicy>,
}

/// Tracing of a listener's requests: where spans go, which requests are sampled, what tags spans carry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tracing {
    /// Where spans are sent.
    pub backend: TraceBackend,
    /// The service name spans carry (the gateway's `kuma.io/service`).
    pub service: String,
    /// Percent of all requests traced, after the client and random decisions.
    pub overall: f64,
    /// Percent of requests with `x-client-trace-id` traced.
    pub client: f64,
    /// Percent of requests with no sampling decision (no `traceparent`) traced.
    pub random: f64,
    /// Tags added to every span.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TraceTag>,
}

/// A span collector.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceBackend {
    /// OTLP/HTTP with JSON encoding: spans are POSTed to this URL (`…/v1/traces`).
    Otlp {
        /// The traces endpoint.
        url: String,
    },
    /// Zipkin v2 JSON: spans are POSTed to this URL (`…/api/v2/spans`).
    Zipkin {
        /// The spans endpoint.
        url: String,
    },
}

/// A tag spans carry: a literal, or a request header's value (with a default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceTag {
    /// The tag's name.
    pub name: String,
    /// A fixed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// The request header to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The value when the header is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// The per-route effect of gateway policies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutePolicies {
    /// How long the upstream may take to answer (route timeout), in milliseconds (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// How long the request or response body may stall on this route, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout_ms: Option<u64>,
    /// Retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// The route's request rate limit (one bucket per route and gateway process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// The policies in force on this route, and those that were overridden, in merge order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<AppliedPolicy>,
}

/// One policy's part in a merged configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPolicy {
    /// Its kind.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// `applied` when at least one of its values is in force, `overridden` when later policies replaced them all.
    pub status: String,
    /// The values of its conf that are in force, as paths (`http.requestTimeout`); empty for legacy policies, which
    /// apply whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A retry policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub num_retries: u32,
    /// The time limit of each attempt, in milliseconds (0: the route timeout only).
    pub per_try_timeout_ms: u64,
    /// The first back-off, in milliseconds (doubles per retry, with jitter).
    pub base_interval_ms: u64,
    /// The longest back-off, in milliseconds.
    pub max_interval_ms: u64,
    /// Retry on any 5xx answer (and on resets and connect failures).
    pub on_5xx: bool,
    /// Retry on 502, 503 and 504.
    pub on_gateway_error: bool,
    /// Retry when the upstream resets or closes before answering.
    pub on_reset: bool,
    /// Retry when connecting fails.
    pub on_connect_failure: bool,
    /// Retry on 409.
    pub on_retriable_4xx: bool,
    /// Retry on these statuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u16>,
    /// Retry only these methods (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

/// A local rate limit: a token bucket of `num` tokens refilled every `interval_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Tokens per interval (and the bucket size).
    pub num: u32,
    /// The refill interval, in milliseconds.
    pub interval_ms: u64,
    /// The answer's status (HTTP; default 429).
    #[serde(default)]
    pub status: u16,
    /// Headers of the answer (HTTP).
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub headers: HeaderOps,
}

/// An injected fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer with `status` instead of proxying, for `percentage` % of requests.
    Abort {
        /// The status.
        status: u16,
        /// The share of requests, 0–100.
        percentage: f64,
    },
    /// Wait `delay_ms` before handling, for `percentage` % of requests.
    Delay {
        /// The delay, in milliseconds.
        delay_ms: u64,
        /// The share of requests, 0–100.
        percentage: f64,
    },
    /// Send response bodies at no more than `bytes_per_second`, for `percentage` % of requests.
    ResponseBandwidth {
        /// The limit.
        bytes_per_second: u64,
        /// The share of requests, 0–100.
        percentage: f64,
    },
}

/// An access log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLog {
    /// Where lines go.
    pub sink: LogSink,
    /// How lines look.
    pub format: LogFormat,
}

/// An access-log destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSink {
    /// Append to a file (`/dev/stdout` works).
    File(String),
    /// Send over TCP to `host:port`, one line per entry.
    Tcp(String),
}

/// An access-log line format. Templates use Envoy's command operators (`%RESPONSE_CODE%`, `%REQ(:PATH)%`, …);
/// Kuma's `%KUMA_*%` placeholders are already replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One template per line.
    Plain(String),
    /// A JSON object per line: keys and their templates.
    Json {
        /// Fields in order.
        fields: Vec<(String, String)>,
        /// Leave out fields whose value is empty.
        omit_empty: bool,
    },
}

/// A TLS filter chain: what connections whose SNI matches `sni` get.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TlsChain {
    /// The SNI it answers: a name, `*.domain`, or `*` for any (including no SNI).
    pub sni: String,
    /// Whether TLS ends here or passes through to the backend.
    pub mode: TlsMode,
    /// Certificates (TERMINATE): at most one RSA and one ECDSA; the client gets the one it supports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<TlsCertificate>,
    /// HTTP virtual hosts after the handshake (HTTPS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_hosts: Vec<VirtualHost>,
    /// Where the connection's bytes go (TLS listeners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProxy>,
}

/// What a TLS chain does with TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TlsMode {
    /// Terminate TLS here.
    Terminate,
    /// Pass the encrypted bytes to the backend.
    Passthrough,
}

/// A certificate for a TLS chain.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsCertificate {
    /// Kuma's name for it: `cert.<rsa|ecdsa>:<secret|file|inline>:<name>`.
    pub name: String,
    /// `rsa` or `ecdsa`.
    pub key_type: String,
    /// The PEM bundle: private key and certificate chain (server certificate first).
    pub pem: String,
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("name", &self.name)
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

/// A TCP proxy: one of the weighted backends per connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpProxy {
    /// Backends and their weights.
    pub backends: Vec<WeightedCluster>,
}

/// One MeshGateway listener merged into a port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerHostname {
    /// The hostname (`*` for all).
    pub hostname: String,
    /// Merged tags: Dataplane gateway tags, then MeshGateway tags, then listener tags.
    pub tags: BTreeMap<String, String>,
}

/// A virtual host: the routes answering for one domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VirtualHost {
    /// The domain: `foo.example.com`, `*.example.com` or `*`.
    pub domain: String,
    /// The route table, in match order (the first entry that matches wins).
    pub routes: Vec<Route>,
}

/// One route entry: conditions (all must hold) and an action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Where it comes from: `<route resource name>` and the rule/match indexes (empty for generated routes).
    pub source: RouteSource,
    /// The path condition.
    pub path: PathMatch,
    /// The method condition.
    pub method: Option<String>,
    /// Header conditions.
    pub headers: Vec<HeaderMatch>,
    /// Query parameter conditions.
    pub query: Vec<QueryMatch>,
    /// What to do.
    pub action: Action,
    /// What the gateway policies set for this route.
    #[serde(default)]
    pub policies: RoutePolicies,
}

/// The origin of a route entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSource {
    /// The kind of the route resource (`MeshGatewayRoute`, or empty for generated entries).
    pub kind: String,
    /// The route resource's name.
    pub name: String,
    /// The rule index in the resource.
    pub rule: usize,
    /// The match index in the rule.
    pub r#match: usize,
    /// MeshHTTPRoute rules: the rule's matches as compact JSON, which identify it across merged routes (Kuma names
    /// the route by their hash; policies targeting a MeshHTTPRoute select its rules by them).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule_key: String,
}

impl RouteSource {
    /// The label used in metrics and logs: the resource name, or `-` for generated entries.
    pub fn label(&self) -> &str {
        if self.name.is_empty() { "-" } else { &self.name }
    }
}

/// A path condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// The path equals this.
    Exact(String),
    /// The path starts with this (already segment-aware: `/api/`).
    Prefix(String),
    /// The whole path matches this regular expression.
    Regex(String),
}

impl PathMatch {
    /// The path, prefix or pattern.
    pub fn value(&self) -> &str {
        match self {
            PathMatch::Exact(v) | PathMatch::Prefix(v) | PathMatch::Regex(v) => v,
        }
    }
}

/// A header condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// The header name (lowercase).
    pub name: String,
    /// How it is compared.
    pub kind: ValueMatch,
}

/// A query parameter condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryMatch {
    /// The parameter name.
    pub name: String,
    /// How it is compared.
    pub kind: ValueMatch,
}

/// How a value is compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueMatch {
    /// Equal to this.
    Exact(String),
    /// Matches this whole regular expression.
    Regex(String),
    /// Present, any value.
    Present,
    /// Not present.
    Absent,
}

/// What a matching request gets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Proxy to backends.
    Forward(Forward),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer directly.
    Respond(DirectResponse),
}

/// Proxying to backends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Forward {
    /// Backends and their weights (one is chosen per request, weight / sum).
    pub backends: Vec<WeightedCluster>,
    /// Request header changes.
    pub request_headers: HeaderOps,
    /// Response header changes.
    pub response_headers: HeaderOps,
    /// Path rewrite.
    pub path_rewrite: Option<PathRewrite>,
    /// Host rewrite.
    pub host_rewrite: Option<HostRewrite>,
    /// Request mirroring.
    pub mirror: Option<Mirror>,
}

/// A cluster and its weight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedCluster {
    /// The cluster name (a key of [`GatewayPlan::clusters`]).
    pub cluster: String,
    /// The weight.
    pub weight: u32,
}

/// Header changes, applied in order: remove, set, add.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderOps {
    /// Replace (or create) these headers.
    pub set: Vec<(String, String)>,
    /// Append these headers.
    pub add: Vec<(String, String)>,
    /// Remove these headers.
    pub remove: Vec<String>,
}

impl HeaderOps {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A path rewrite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathRewrite {
    /// Replace the whole path (the query string is kept).
    Full(String),
    /// Replace the matched prefix: `prefix` (without trailing `/`) becomes `replacement`, segment-aware.
    Prefix {
        /// The matched prefix, e.g. `/api`.
        prefix: String,
        /// Its replacement, e.g. `/` or `/v2`.
        replacement: String,
    },
}

impl PathRewrite {
    /// The rewritten form of a (normalised) request path; the definition of what a rewrite means.
    ///
    /// A prefix rewrite is segment-aware: with prefix `/api` and replacement `/v2`, `/api` becomes `/v2` and
    /// `/api/x` becomes `/v2/x`; `/apix` is not under the prefix and is left alone. A trailing `/` of the
    /// replacement is dropped (`/` alone means "remove the prefix"); the root prefix is written `""`.
    pub fn apply(&self, path: &str) -> String {
        match self {
            PathRewrite::Full(p) => p.clone(),
            PathRewrite::Prefix { prefix, replacement } => {
                let replacement = replacement.trim_end_matches('/');
                if path == prefix || (prefix.is_empty() && path == "/") {
                    if replacement.is_empty() { "/".to_owned() } else { replacement.to_owned() }
                } else if let Some(rest) = path.strip_prefix(prefix.as_str()).filter(|r| r.starts_with('/')) {
                    format!("{replacement}{rest}")
                } else {
                    path.to_owned()
                }
            }
        }
    }
}

/// A Host rewrite.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostRewrite {
    /// Set Host to this.
    Literal(String),
    /// Set Host to the chosen endpoint's hostname.
    Backend,
}

/// Mirroring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mirror {
    /// Where copies go.
    pub cluster: String,
    /// The share of requests copied, 0–100.
    pub percentage: f64,
}

/// A redirect answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    /// New scheme (none: unchanged).
    pub scheme: Option<String>,
    /// New host (none: unchanged).
    pub host: Option<String>,
    /// New port (Kuma: the listener's port when not given).
    pub port: Option<u16>,
    /// Path rewrite.
    pub path_rewrite: Option<PathRewrite>,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// A direct answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectResponse {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: String,
}

/// The body of Kuma's answer on a listener with no routes.
pub const NO_ROUTES_BODY: &str = "This is a Kuma MeshGateway. No routes match this MeshGateway!\n";

/// An upstream service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// The `kuma.io/service` it serves.
    pub service: String,
    /// The destination tags that selected it.
    pub tags: BTreeMap<String, String>,
    /// HTTP/1.1 or HTTP/2 to the upstream.
    pub protocol: UpstreamProtocol,
    /// Endpoints (none: 503).
    pub endpoints: Vec<Endpoint>,
    /// TLS to the upstream (ExternalServices with `tls.enabled`).
    pub tls: Option<UpstreamTls>,
    /// Whether it is an ExternalService.
    pub external: bool,
    /// How long a connection to an endpoint may take, in milliseconds (MeshTimeout `connectionTimeout` of the first
    /// listener, by port, that sends to it; none: the data plane's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// How long an idle upstream connection is kept, in milliseconds (MeshTimeout `to` `idleTimeout`; none: the data
    /// plane's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// The longest an exchange with an endpoint may last, response body included, in milliseconds (MeshTimeout
    /// `maxStreamDuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration_ms: Option<u64>,
    /// The longest a connection to an endpoint is used, in milliseconds (MeshTimeout `maxConnectionDuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration_ms: Option<u64>,
    /// How endpoints are chosen (MeshLoadBalancingStrategy).
    #[serde(default, skip_serializing_if = "LoadBalancer::is_round_robin")]
    pub load_balancer: LoadBalancer,
    /// Limits and outlier detection (MeshCircuitBreaker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Active health checking (MeshHealthCheck).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// The policies in force on this cluster, and those that were overridden, in merge order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<AppliedPolicy>,
}

/// How a cluster's endpoints are chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancer {
    /// In turn.
    #[default]
    RoundRobin,
    /// The one with the fewest requests in flight among `choice_count` random ones.
    LeastRequest {
        /// Endpoints compared per pick.
        choice_count: u32,
    },
    /// At random.
    Random,
    /// Consistent hashing on a ring: a request's hash keeps it on one endpoint while the endpoints stay.
    RingHash {
        /// Points on the ring (at least).
        min_ring_size: u32,
        /// What the hash is computed from (none: random).
        hash: Vec<HashKey>,
    },
    /// Consistent hashing with a Maglev lookup table.
    Maglev {
        /// The table size (a prime).
        table_size: u32,
        /// What the hash is computed from (none: random).
        hash: Vec<HashKey>,
    },
}

impl LoadBalancer {
    /// Whether it is the default.
    pub fn is_round_robin(&self) -> bool {
        *self == LoadBalancer::RoundRobin
    }
}

/// One input of a request hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashKey {
    /// Where the value comes from.
    pub source: HashSource,
    /// Stop here when this input is present.
    pub terminal: bool,
}

/// Where a hash input comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashSource {
    /// A request header.
    Header(String),
    /// A cookie.
    Cookie(String),
    /// A query parameter.
    QueryParameter(String),
    /// The client's IP address.
    SourceIp,
}

/// Connection limits and outlier detection of a cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    /// Upstream connections (with `max_pending_requests`: requests in flight beyond it wait, then overflow).
    pub max_connections: u32,
    /// Requests waiting beyond `max_connections`.
    pub max_pending_requests: u32,
    /// Requests in flight.
    pub max_requests: u32,
    /// Retries in flight.
    pub max_retries: u32,
    /// Outlier detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<Outlier>,
}

/// Outlier detection: endpoints that fail are ejected for a while.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outlier {
    /// How often the statistical detectors run and ejections end, in milliseconds.
    pub interval_ms: u64,
    /// Ejection time (times the endpoint's ejection count), in milliseconds.
    pub base_ejection_ms: u64,
    /// The most endpoints ejected at once, in percent (one may always be).
    pub max_ejection_percent: u32,
    /// Local-origin failures count apart.
    pub split_local: bool,
    /// Consecutive 5xx answers and local-origin failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    /// Consecutive 502/503/504 answers and local-origin failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway: Option<u32>,
    /// Consecutive local-origin failures (with `split_local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local: Option<u32>,
    /// Success-rate detector: (minimum hosts, request volume, stdev factor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<(u32, u32, f64)>,
    /// Failure-percentage detector: (minimum hosts, request volume, threshold %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percentage: Option<(u32, u32, u32)>,
}

/// Active health checking of a cluster's endpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Between checks, in milliseconds.
    pub interval_ms: u64,
    /// Per check, in milliseconds.
    pub timeout_ms: u64,
    /// Failures in a row that make an endpoint unhealthy.
    pub unhealthy_threshold: u32,
    /// Successes in a row that make it healthy.
    pub healthy_threshold: u32,
    /// Random extra wait between checks, in milliseconds.
    pub jitter_ms: u64,
    /// Below this share (%) of healthy endpoints, all are used (panic).
    pub panic_threshold: f64,
    /// In panic, answer 503 instead.
    pub fail_traffic_on_panic: bool,
    /// What a check does.
    pub check: HealthCheckKind,
}

/// What a health check does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// `GET path`; healthy when the status is expected.
    Http {
        /// The path.
        path: String,
        /// Healthy statuses.
        expected_statuses: Vec<u16>,
        /// Extra request headers.
        headers: HeaderOps,
    },
    /// Connect (and optionally send bytes and expect bytes back).
    Tcp {
        /// Bytes to send.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        send: Vec<u8>,
        /// Bytes expected back, each sequence somewhere in the reply.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        receive: Vec<Vec<u8>>,
    },
}

/// The upstream HTTP version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 (`kuma.io/protocol: http2` or `grpc`).
    Http2,
}

/// An endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    /// IP address or hostname.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// TLS settings towards an upstream.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamTls {
    /// SNI and the name verified (default: the endpoint host).
    pub server_name: Option<String>,
    /// PEM of the CAs to trust (none: the system's roots).
    pub ca_pem: Option<String>,
    /// PEM of a client certificate chain and key, for mutual TLS.
    pub client_cert_pem: Option<String>,
    /// PEM of the client key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
    /// Skip verifying the server's name (the chain is still verified).
    pub skip_hostname_verification: bool,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("client_cert_pem", &self.client_cert_pem.as_ref().map(|_| "<pem>"))
            .field("client_key_pem", &self.client_key_pem.as_ref().map(|_| "<redacted>"))
            .field("skip_hostname_verification", &self.skip_hostname_verification)
            .finish()
    }
}

/// A problem found while building a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// How bad.
    pub severity: Severity,
    /// `Kind name` of the resource concerned.
    pub subject: String,
    /// What is wrong and what was done about it.
    pub message: String,
}

/// Severity of a diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Something was left out of the plan.
    Error,
    /// The plan works, but probably not as meant.
    Warning,
}

/// The certificate blocks of a PEM bundle, with every private key block replaced by a marker.
fn public_part(pem: &str) -> String {
    let mut out = String::new();
    let mut in_key = false;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN") && line.contains("PRIVATE KEY") {
            in_key = true;
            out.push_str(REDACTED);
            out.push('\n');
            continue;
        }
        if in_key {
            if line.starts_with("-----END") {
                in_key = false;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The text that replaces secrets in shown plans.
pub const REDACTED: &str = "<redacted>";

impl GatewayPlan {
    /// A copy safe to show: private keys removed (certificates keep only their public part).
    pub fn redacted(&self) -> GatewayPlan {
        let mut plan = self.clone();
        for chain in plan.listeners.iter_mut().flat_map(|l| l.tls_chains.iter_mut()) {
            for cert in &mut chain.certificates {
                cert.pem = public_part(&cert.pem);
            }
        }
        for cluster in plan.clusters.values_mut() {
            if let Some(tls) = &mut cluster.tls
                && tls.client_key_pem.is_some()
            {
                tls.client_key_pem = Some(REDACTED.to_owned());
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rewrites_are_segment_aware() {
        let rw = |p: &str, r: &str| PathRewrite::Prefix { prefix: p.to_owned(), replacement: r.to_owned() };
        for (rewrite, path, want) in [
            (rw("/prefix", "/"), "/prefix/middle", "/middle"),
            (rw("/prefix", "/"), "/prefix", "/"),
            (rw("/prefix/middle", "/middle"), "/prefix/middle/tail", "/middle/tail"),
            (rw("/prefix/middle", "/middle"), "/prefix/middle", "/middle"),
            (rw("/drop-prefix", "/"), "/drop-prefix/tail", "/tail"),
            (rw("/api", "/v2/"), "/api/x", "/v2/x"),
            (rw("/api", "/v2/"), "/api", "/v2"),
            (rw("/api", ""), "/api", "/"),
            (rw("/api", "/v2"), "/apix", "/apix"),
            (rw("", "/a/b"), "/", "/a/b"),
            (rw("", "/a/b"), "/x/y", "/a/b/x/y"),
            (PathRewrite::Full("/new".into()), "/old/path", "/new"),
        ] {
            assert_eq!(rewrite.apply(path), want, "{rewrite:?} {path}");
        }
    }
}
