//! A plan made ready to execute: regular expressions compiled, header names and values parsed, virtual hosts in
//! lookup tables, clusters bound to endpoint pools, metric handles fetched. Built once per plan; a request only
//! reads it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use meshgate_plan::{
    Action, Cluster, Fault, GatewayPlan, HashKey, HeaderOps, HostRewrite, Listener, LoadBalancer, LogSink, PathMatch,
    PathRewrite, Protocol, RateLimit, Redirect, RetryPolicy, Route, TcpProxy, TlsMode, ValueMatch, VirtualHost,
};
use prometheus_client::metrics::counter::Counter;
use regex::Regex;

use crate::accesslog::{AccessLogRuntime, Formatter, Sinks};
use crate::balance::Balancer;
use crate::domain::DomainTable;
use crate::health::{CheckerSpec, EndpointState, OutlierDetector, Registry, now_ms};
use crate::metrics::Metrics;
use crate::policy::TokenBucket;
use crate::tls::{SniResolver, certified_key, server_config};
use crate::upstream::{EndpointPool, PoolKey, Pools, TlsSettings};

/// How long to wait for an upstream TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for an upstream response head by default (Kuma's default route timeout).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A cluster bound to endpoint pools, with its balancer, limits and endpoint health.
#[derive(Debug)]
pub struct ClusterRuntime {
    /// The cluster name.
    pub name: String,
    /// Its endpoints (empty: 503).
    pub endpoints: Vec<Arc<EndpointPool>>,
    /// Their health, by the same index.
    pub states: Vec<Arc<EndpointState>>,
    /// Every index, in order (the usable set when no endpoint is out).
    all: Vec<usize>,
    balancer: Balancer,
    hash: Vec<HashKey>,
    /// Whether endpoint health must be looked at on each pick.
    tracks_health: bool,
    panic_threshold: f64,
    fail_on_panic: bool,
    /// Connection and request limits (MeshCircuitBreaker).
    pub limits: Option<Limits>,
    /// Outlier detection (MeshCircuitBreaker).
    pub outlier: Option<OutlierDetector>,
    /// The longest an exchange may last, response body included (MeshTimeout `maxStreamDuration`).
    pub max_stream: Option<Duration>,
}

/// A cluster's request limits: requests in flight (Envoy's max requests, and max connections plus pending for
/// HTTP/1.1, where each request in flight holds a connection) and retries in flight.
#[derive(Debug)]
pub struct Limits {
    max_requests: usize,
    max_retries: usize,
    in_flight: Arc<AtomicUsize>,
    retries: Arc<AtomicUsize>,
    /// Requests refused (metric).
    pub overflow: Counter,
}

/// A place in a cluster's limit, given back when dropped.
#[derive(Debug)]
pub struct Permit(Option<Arc<AtomicUsize>>);

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(counter) = &self.0 {
            counter.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Permit> {
    let prior = counter.fetch_add(1, Ordering::AcqRel);
    if prior >= max {
        counter.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    Some(Permit(Some(Arc::clone(counter))))
}

impl ClusterRuntime {
    /// The next endpoint for a request without a hash.
    pub fn pick(&self) -> Option<&Arc<EndpointPool>> {
        self.pick_index(None).and_then(|i| self.endpoints.get(i))
    }

    /// The index of the endpoint for a request with `hash` (used by the consistent balancers): among those that
    /// may take traffic, or all of them when too few may (panic; Envoy's healthy panic threshold), or none when the
    /// health check says to fail traffic in panic.
    pub fn pick_index(&self, hash: Option<u64>) -> Option<usize> {
        if !self.tracks_health {
            return self.balancer.pick(&self.all, hash, |i| self.load(i));
        }
        let now = now_ms();
        // Usually every endpoint may take traffic: no list to build then.
        if self.states.iter().all(|s| s.available(now)) {
            return self.balancer.pick(&self.all, hash, |i| self.load(i));
        }
        let usable: Vec<usize> = self.all.iter().copied().filter(|i| self.states[*i].available(now)).collect();
        let healthy_share = 100.0 * usable.len() as f64 / self.all.len().max(1) as f64;
        if healthy_share < self.panic_threshold {
            if self.fail_on_panic {
                return None;
            }
            return self.balancer.pick(&self.all, hash, |i| self.load(i));
        }
        self.balancer.pick(&usable, hash, |i| self.load(i))
    }

    fn load(&self, i: usize) -> usize {
        self.states.get(i).map_or(0, |s| s.active.load(Ordering::Relaxed))
    }

    /// What the request hash is computed from (empty: no hash).
    pub fn hash_keys(&self) -> &[HashKey] {
        &self.hash
    }

    /// A place for one more request, or `None` when the cluster is at its limit (503, overflow).
    pub fn admit(&self) -> Option<Permit> {
        match &self.limits {
            None => Some(Permit(None)),
            Some(l) => {
                let permit = take(&l.in_flight, l.max_requests);
                if permit.is_none() {
                    l.overflow.inc();
                }
                permit
            }
        }
    }

    /// A place for one more retry, or `None` at the retry limit.
    pub fn admit_retry(&self) -> Option<Permit> {
        match &self.limits {
            None => Some(Permit(None)),
            Some(l) => take(&l.retries, l.max_retries),
        }
    }

    /// Notes how a request to endpoint `i` ended (outlier detection).
    pub fn record(&self, i: usize, outcome: crate::policy::Outcome) {
        if let Some(d) = &self.outlier {
            d.record(&self.states, i, outcome);
        }
    }
}

/// A value condition.
#[derive(Debug)]
pub enum ValueMatcher {
    /// Equal.
    Exact(String),
    /// Whole-value regular expression.
    Regex(Regex),
    /// Present.
    Present,
    /// Absent.
    Absent,
}

impl ValueMatcher {
    fn matches_value(&self, value: &str) -> bool {
        match self {
            ValueMatcher::Exact(v) => v == value,
            ValueMatcher::Regex(r) => r.is_match(value),
            ValueMatcher::Present => true,
            ValueMatcher::Absent => false,
        }
    }
}

/// A path condition.
#[derive(Debug)]
pub enum PathMatcher {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Whole-path regular expression.
    Regex(Regex),
}

impl PathMatcher {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatcher::Exact(p) => p == path,
            PathMatcher::Prefix(p) => path.starts_with(p.as_str()),
            PathMatcher::Regex(r) => r.is_match(path),
        }
    }
}

/// Header changes ready to apply.
#[derive(Debug, Default)]
pub struct HeaderOpsRuntime {
    /// Removed first.
    pub remove: Vec<HeaderName>,
    /// Then replaced.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Then appended.
    pub add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderOpsRuntime {
    /// Applies the changes.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// Items chosen at random in proportion to their weights.
#[derive(Debug)]
pub struct Weighted<T> {
    /// Items with cumulative weights.
    entries: Vec<(T, u32)>,
    /// Sum of weights.
    total: u32,
}

impl<T> Default for Weighted<T> {
    fn default() -> Self {
        Weighted { entries: Vec::new(), total: 0 }
    }
}

impl<T> Weighted<T> {
    /// Adds an item with its weight.
    pub fn push(&mut self, item: T, weight: u32) {
        self.total = self.total.saturating_add(weight);
        self.entries.push((item, self.total));
    }

    /// Whether there is nothing to choose from.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The items, in order.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(item, _)| item)
    }

    /// Chooses an item by weight (a lone item always; all weights 0: the first).
    pub fn choose(&self) -> Option<&T> {
        match self.entries.len() {
            0 => None,
            1 => self.entries.first().map(|(c, _)| c),
            _ => {
                let roll = rand::random::<u32>() % self.total.max(1);
                self.entries.iter().find(|(_, cumulative)| roll < *cumulative).map(|(c, _)| c)
            }
        }
    }
}

/// Forwarding ready to execute.
#[derive(Debug)]
pub struct ForwardRuntime {
    /// Clusters by weight (a `None` cluster could not be resolved: 500).
    pub backends: Weighted<Option<Arc<ClusterRuntime>>>,
    /// Request header changes.
    pub request_headers: HeaderOpsRuntime,
    /// Response header changes.
    pub response_headers: HeaderOpsRuntime,
    /// Path rewrite.
    pub path_rewrite: Option<PathRewrite>,
    /// Host rewrite to a literal.
    pub host_literal: Option<HeaderValue>,
    /// Host rewrite to the endpoint's host.
    pub host_to_backend: bool,
    /// Mirror cluster and percentage.
    pub mirror: Option<(Arc<ClusterRuntime>, f64)>,
}

/// What a route does.
#[derive(Debug)]
pub enum ActionRuntime {
    /// Proxy.
    Forward(ForwardRuntime),
    /// Redirect.
    Redirect(Redirect),
    /// Answer directly.
    Respond {
        /// Status.
        status: u16,
        /// Body.
        body: Bytes,
    },
}

/// A route entry ready to match.
#[derive(Debug)]
pub struct RouteRuntime {
    /// Path condition.
    pub path: PathMatcher,
    /// Method condition.
    pub method: Option<Method>,
    /// Header conditions.
    pub headers: Vec<(HeaderName, ValueMatcher)>,
    /// Query conditions.
    pub query: Vec<(String, ValueMatcher)>,
    /// Action.
    pub action: ActionRuntime,
    /// The route resource's name (metrics label).
    pub label: String,
    /// Its index in the plan's route table of its virtual host.
    pub index: usize,
    /// Request counters by status class.
    pub counters: [Counter; 5],
    /// How long the upstream may take to answer, all attempts together (zero: no limit).
    pub request_timeout: Duration,
    /// How long a body may stall.
    pub stream_idle_timeout: Duration,
    /// Retries.
    pub retry: Option<RetryPolicy>,
    /// The request rate limit.
    pub rate_limit: Option<RateLimitRuntime>,
    /// Retries made (metric).
    pub retries: Counter,
    /// Time to the response head (metric).
    pub duration: prometheus_client::metrics::histogram::Histogram,
}

/// A rate limit ready to enforce.
#[derive(Debug)]
pub struct RateLimitRuntime {
    /// The bucket (one per route and process).
    pub bucket: TokenBucket,
    /// The answer's status.
    pub status: http::StatusCode,
    /// The answer's headers.
    pub headers: HeaderOpsRuntime,
    /// Limited requests (metric).
    pub limited: Counter,
}

impl RateLimitRuntime {
    fn new(r: &RateLimit, limited: Counter) -> Result<Self, String> {
        Ok(RateLimitRuntime {
            bucket: TokenBucket::new(r.num, Duration::from_millis(r.interval_ms)),
            status: http::StatusCode::from_u16(r.status).unwrap_or(http::StatusCode::TOO_MANY_REQUESTS),
            headers: header_ops(&r.headers)?,
            limited,
        })
    }
}

/// The first condition of a route that a request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The path.
    Path,
    /// The method.
    Method,
    /// The header condition at this index.
    Header(usize),
    /// The query condition at this index.
    Query(usize),
}

impl RouteRuntime {
    /// Whether the request matches every condition.
    #[inline]
    pub fn matches(&self, method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> bool {
        self.mismatch(method, path, query, headers).is_none()
    }

    /// The first condition the request fails, in the order they are checked (none: it matches).
    pub fn mismatch(&self, method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> Option<Mismatch> {
        if !self.path.matches(path) {
            return Some(Mismatch::Path);
        }
        if let Some(m) = &self.method
            && m != method
        {
            return Some(Mismatch::Method);
        }
        for (i, (name, cond)) in self.headers.iter().enumerate() {
            let mut values = headers.get_all(name).iter().peekable();
            let ok = match cond {
                ValueMatcher::Absent => values.peek().is_none(),
                ValueMatcher::Present => values.peek().is_some(),
                _ => {
                    // Several fields of one name compare as their comma-joined value (as Envoy does).
                    let joined: Vec<&str> = values.filter_map(|v| v.to_str().ok()).collect();
                    !joined.is_empty() && cond.matches_value(&joined.join(","))
                }
            };
            if !ok {
                return Some(Mismatch::Header(i));
            }
        }
        for (i, (name, cond)) in self.query.iter().enumerate() {
            let value = query.and_then(|q| query_value(q, name));
            let ok = match (cond, value) {
                (ValueMatcher::Absent, v) => v.is_none(),
                (ValueMatcher::Present, v) => v.is_some(),
                (c, Some(v)) => c.matches_value(&v),
                (_, None) => false,
            };
            if !ok {
                return Some(Mismatch::Query(i));
            }
        }
        None
    }
}

/// The first value of a query parameter, percent-decoded.
pub(crate) fn query_value(query: &str, name: &str) -> Option<String> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k) == name {
            return Some(percent_decode(v));
        }
    }
    None
}

pub(crate) fn percent_decode(s: &str) -> String {
    if !s.contains('%') && !s.contains('+') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 3;
                continue;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A virtual host.
#[derive(Debug)]
pub struct VhostRuntime {
    /// Its domain.
    pub domain: String,
    /// Routes in match order.
    pub routes: Vec<RouteRuntime>,
}

/// Virtual hosts by domain: exact names, then the longest wildcard suffix, then `*`.
pub type VhostTable = DomainTable<VhostRuntime>;

/// A TCP proxy ready to execute.
#[derive(Debug)]
pub struct TcpRuntime {
    /// Clusters by weight.
    pub backends: Weighted<Arc<ClusterRuntime>>,
}

/// A TLS listener's chain.
#[derive(Debug)]
pub struct TlsChainRuntime {
    /// Pass TLS through (else terminate).
    pub passthrough: bool,
    /// Where bytes go (none: the connection is closed).
    pub tcp: Option<TcpRuntime>,
}

/// What a listener does with its connections.
#[derive(Debug)]
pub enum ListenerKind {
    /// HTTP: one virtual host table for the port.
    Http {
        /// Virtual hosts.
        vhosts: VhostTable,
    },
    /// HTTPS: TLS terminated, then the virtual hosts of the chain the SNI chose.
    Https {
        /// The TLS configuration (certificates chosen by SNI).
        tls: Arc<rustls::ServerConfig>,
        /// Virtual host tables by SNI.
        chains: DomainTable<VhostTable>,
    },
    /// TCP: every connection to the weighted backends.
    Tcp {
        /// The proxy (none: connections are closed).
        tcp: Option<TcpRuntime>,
    },
    /// TLS: chains by SNI, passed through or terminated, then proxied as TCP.
    Tls {
        /// The TLS configuration of the terminating chains.
        terminate: Option<Arc<rustls::ServerConfig>>,
        /// Chains by SNI.
        chains: DomainTable<TlsChainRuntime>,
    },
}

/// A listener ready to serve.
#[derive(Debug)]
pub struct ListenerRuntime {
    /// Kuma's listener name.
    pub name: String,
    /// The port (default redirect port).
    pub port: u16,
    /// `http` or `https` (X-Forwarded-Proto).
    pub scheme: &'static str,
    /// What it does.
    pub kind: ListenerKind,
    /// At most this many connections at once (0 = unlimited).
    pub connection_limit: u32,
    /// The `server` response header.
    pub server_header: HeaderValue,
    /// Counters for requests no route took.
    pub unrouted: [Counter; 5],
    /// Request durations on this listener.
    pub duration: prometheus_client::metrics::histogram::Histogram,
    /// Time limits and other edge settings (the process's, with this listener's policies applied).
    pub settings: Arc<ProxySettings>,
    /// Faults injected before routing.
    pub faults: Vec<Fault>,
    /// Access logs.
    pub access_logs: Vec<AccessLogRuntime>,
    /// The request headers the access logs read (only these are kept per request).
    pub log_headers: Vec<HeaderName>,
    /// New connections allowed per interval.
    pub connection_rate: Option<TokenBucket>,
    /// TCP: attempts at connecting upstream.
    pub max_connect_attempts: u32,
    /// How long a whole request may take to arrive (none: no limit beyond the stall limit).
    pub request_deadline: Option<Duration>,
    /// Tracing (MeshTrace).
    pub tracing: Option<crate::trace::Tracer>,
    /// Whether requests note their cluster and endpoint (access logs or spans name them).
    pub records_upstream: bool,
}

/// Settings of the data plane that do not come from the plan (Kuma's gateway defaults unless changed). This is the
/// one place that holds them; gateway policies will override them per listener and route.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// The `server` response header.
    pub server_name: String,
    /// How long to wait for an upstream response head (route timeout).
    pub request_timeout: Duration,
    /// How long a request head may take from its first byte.
    pub header_timeout: Duration,
    /// How long a connection with nothing in flight is kept.
    pub idle_timeout: Duration,
    /// How long a request or response body may stall.
    pub stream_idle_timeout: Duration,
    /// How long an upstream connection may take.
    pub connect_timeout: Duration,
    /// Reject request header names with `_` (Kuma: yes).
    pub reject_underscore_headers: bool,
    /// The largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// The most request headers.
    pub max_headers: usize,
    /// The longest request URI, in bytes.
    pub max_uri_bytes: usize,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            server_name: "meshgate".to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            header_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(300),
            stream_idle_timeout: Duration::from_secs(5),
            connect_timeout: CONNECT_TIMEOUT,
            reject_underscore_headers: true,
            max_header_bytes: 60 * 1024,
            max_headers: 100,
            max_uri_bytes: 16 * 1024,
        }
    }
}

/// Problems met while readying a plan (the affected routes are left out).
pub type BuildWarnings = Vec<String>;

/// Everything built from one gateway plan.
#[derive(Debug)]
pub struct GatewayRuntime {
    /// Listeners by port.
    pub listeners: HashMap<u16, Arc<ListenerRuntime>>,
    /// Pools in use.
    pub pool_keys: HashSet<PoolKey>,
    /// Access-log sinks in use.
    pub sinks: HashSet<LogSink>,
    /// Span collectors in use.
    pub tracers: HashSet<meshgate_plan::TraceBackend>,
    /// Endpoint states in use, by (cluster, endpoint).
    pub endpoint_states: HashSet<(String, String)>,
    /// Health checkers wanted.
    pub checkers: Vec<CheckerSpec>,
}

fn parse_header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| format!("invalid header name {name:?}"))
}

fn parse_header_value(value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| format!("invalid header value {value:?}"))
}

fn header_ops(ops: &HeaderOps) -> Result<HeaderOpsRuntime, String> {
    let mut out = HeaderOpsRuntime::default();
    for name in &ops.remove {
        out.remove.push(parse_header_name(name)?);
    }
    for (n, v) in &ops.set {
        out.set.push((parse_header_name(n)?, parse_header_value(v)?));
    }
    for (n, v) in &ops.add {
        out.add.push((parse_header_name(n)?, parse_header_value(v)?));
    }
    Ok(out)
}

fn full_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

fn value_matcher(m: &ValueMatch) -> Result<ValueMatcher, String> {
    Ok(match m {
        ValueMatch::Exact(v) => ValueMatcher::Exact(v.clone()),
        ValueMatch::Regex(r) => ValueMatcher::Regex(full_regex(r)?),
        ValueMatch::Present => ValueMatcher::Present,
        ValueMatch::Absent => ValueMatcher::Absent,
    })
}

/// A time limit from a policy, in milliseconds: 0 means none (as in Envoy), kept finite.
fn limit(ms: u64) -> Duration {
    if ms == 0 { NO_LIMIT } else { Duration::from_millis(ms) }
}

/// What "no time limit" is: a year.
pub const NO_LIMIT: Duration = Duration::from_secs(365 * 24 * 3600);

struct Builder<'a> {
    plan: &'a GatewayPlan,
    base: &'a Arc<ProxySettings>,
    clusters: HashMap<String, Arc<ClusterRuntime>>,
    metrics: &'a Metrics,
    sinks: &'a Sinks,
    sinks_used: HashSet<LogSink>,
    tracers: &'a crate::trace::Tracers,
    tracers_used: HashSet<meshgate_plan::TraceBackend>,
    warnings: BuildWarnings,
}

impl Builder<'_> {
    fn cluster(&self, name: &str) -> Option<Arc<ClusterRuntime>> {
        self.clusters.get(name).cloned()
    }

    fn route(&mut self, listener: &Listener, route: &Route, index: usize) -> Result<RouteRuntime, String> {
        let path = match &route.path {
            PathMatch::Exact(p) => PathMatcher::Exact(p.clone()),
            PathMatch::Prefix(p) => PathMatcher::Prefix(p.clone()),
            PathMatch::Regex(r) => PathMatcher::Regex(full_regex(r)?),
        };
        let method = match &route.method {
            Some(m) => Some(Method::from_bytes(m.as_bytes()).map_err(|_| format!("invalid method {m:?}"))?),
            None => None,
        };
        let mut headers = Vec::new();
        for h in &route.headers {
            headers.push((parse_header_name(&h.name)?, value_matcher(&h.kind)?));
        }
        let mut query = Vec::new();
        for q in &route.query {
            query.push((q.name.clone(), value_matcher(&q.kind)?));
        }
        let action = match &route.action {
            Action::Respond(r) => ActionRuntime::Respond { status: r.status, body: Bytes::from(r.body.clone()) },
            Action::Redirect(r) => ActionRuntime::Redirect(r.clone()),
            Action::Forward(f) => {
                let mut backends = Weighted::default();
                for b in &f.backends {
                    backends.push(self.cluster(&b.cluster), b.weight);
                }
                let (host_literal, host_to_backend) = match &f.host_rewrite {
                    Some(HostRewrite::Literal(h)) => (Some(parse_header_value(h)?), false),
                    Some(HostRewrite::Backend) => (None, true),
                    None => (None, false),
                };
                let mirror = match &f.mirror {
                    Some(m) => match self.cluster(&m.cluster) {
                        Some(c) => Some((c, m.percentage)),
                        None => {
                            self.warnings.push(format!(
                                "{}: mirror cluster {:?} is unknown; mirroring disabled",
                                listener.name, m.cluster
                            ));
                            None
                        }
                    },
                    None => None,
                };
                ActionRuntime::Forward(ForwardRuntime {
                    backends,
                    request_headers: header_ops(&f.request_headers)?,
                    response_headers: header_ops(&f.response_headers)?,
                    path_rewrite: f.path_rewrite.clone(),
                    host_literal,
                    host_to_backend,
                    mirror,
                })
            }
        };
        let label = route.source.label().to_owned();
        let gateway = self.plan.gateway.as_ref().map_or("", |g| g.name.as_str());
        let counters = self.metrics.route_counters(gateway, &listener.name, &label);
        let labels = Metrics::route_labels(gateway, &listener.name, &label);
        let p = &route.policies;
        let rate_limit = match &p.rate_limit {
            Some(r) => Some(RateLimitRuntime::new(r, self.metrics.rate_limited.get_or_create(&labels).clone())?),
            None => None,
        };
        Ok(RouteRuntime {
            path,
            method,
            headers,
            query,
            action,
            counters,
            request_timeout: p.request_timeout_ms.map_or(self.base.request_timeout, limit),
            stream_idle_timeout: p
                .stream_idle_timeout_ms
                .or(listener.policies.stream_idle_timeout_ms)
                .map_or(self.base.stream_idle_timeout, limit),
            retry: p.retry.clone(),
            rate_limit,
            retries: self.metrics.retries.get_or_create(&labels).clone(),
            duration: self.metrics.route_duration.get_or_create(&labels).clone(),
            label,
            index,
        })
    }

    /// The process's settings with a listener's policies applied.
    fn listener_settings(&self, listener: &Listener) -> Arc<ProxySettings> {
        let p = &listener.policies;
        if p.idle_timeout_ms.is_none() && p.request_headers_timeout_ms.is_none() && p.stream_idle_timeout_ms.is_none() {
            return Arc::clone(self.base);
        }
        let mut s = (**self.base).clone();
        if let Some(ms) = p.idle_timeout_ms {
            s.idle_timeout = limit(ms);
        }
        if let Some(ms) = p.request_headers_timeout_ms {
            s.header_timeout = limit(ms);
        }
        if let Some(ms) = p.stream_idle_timeout_ms {
            s.stream_idle_timeout = limit(ms);
        }
        Arc::new(s)
    }

    fn vhosts(&mut self, listener: &Listener, vhosts: &[VirtualHost]) -> VhostTable {
        let mut table = VhostTable::default();
        for vhost in vhosts {
            let mut routes = Vec::with_capacity(vhost.routes.len());
            for (index, route) in vhost.routes.iter().enumerate() {
                match self.route(listener, route, index) {
                    Ok(r) => routes.push(r),
                    Err(e) => self.warnings.push(format!(
                        "{} {}: route of {} left out: {e}",
                        listener.name,
                        vhost.domain,
                        route.source.label()
                    )),
                }
            }
            let domain = vhost.domain.to_ascii_lowercase();
            table.insert(&domain.clone(), VhostRuntime { domain, routes });
        }
        table
    }

    fn tcp(&self, tcp: Option<&TcpProxy>) -> Option<TcpRuntime> {
        let tcp = tcp?;
        let mut backends = Weighted::default();
        for b in &tcp.backends {
            if let Some(c) = self.cluster(&b.cluster) {
                backends.push(c, b.weight);
            }
        }
        (!backends.is_empty()).then_some(TcpRuntime { backends })
    }

    fn tls_config(&mut self, listener: &Listener, alpn: &[&[u8]]) -> Option<Arc<rustls::ServerConfig>> {
        let mut chains = Vec::new();
        for chain in listener.tls_chains.iter().filter(|c| c.mode == TlsMode::Terminate) {
            let mut keys = Vec::new();
            for cert in &chain.certificates {
                match certified_key(cert) {
                    Ok(k) => keys.push(k),
                    Err(e) => self.warnings.push(format!("{} {}: {e}", listener.name, chain.sni)),
                }
            }
            if !keys.is_empty() {
                chains.push((chain.sni.clone(), keys));
            }
        }
        if chains.is_empty() {
            return None;
        }
        match server_config(SniResolver::new(chains), alpn) {
            Ok(c) => Some(c),
            Err(e) => {
                self.warnings.push(format!("{}: TLS configuration: {e}", listener.name));
                None
            }
        }
    }

    fn access_logs(&mut self, listener: &Listener) -> Vec<AccessLogRuntime> {
        let mut out = Vec::new();
        for log in &listener.policies.access_logs {
            match self.sinks.get(&log.sink, self.metrics.access_log_dropped.clone()) {
                Ok(sink) => {
                    self.sinks_used.insert(log.sink.clone());
                    out.push(AccessLogRuntime { formatter: Formatter::new(&log.format), sink });
                }
                Err(e) => self.warnings.push(format!("{}: access log {:?}: {e}", listener.name, log.sink)),
            }
        }
        out
    }

    fn listener(&mut self, listener: &Listener) -> Option<ListenerRuntime> {
        let settings = &self.listener_settings(listener);
        let kind = match listener.protocol {
            Protocol::Http => ListenerKind::Http { vhosts: self.vhosts(listener, &listener.virtual_hosts) },
            Protocol::Https => {
                let Some(tls) = self.tls_config(listener, &[b"h2", b"http/1.1"]) else {
                    self.warnings.push(format!("{}: no usable certificate; not served", listener.name));
                    return None;
                };
                let mut chains = DomainTable::default();
                for chain in &listener.tls_chains {
                    let table = self.vhosts(listener, &chain.virtual_hosts);
                    chains.insert(&chain.sni, table);
                }
                ListenerKind::Https { tls, chains }
            }
            Protocol::Tcp => ListenerKind::Tcp { tcp: self.tcp(listener.tcp.as_ref()) },
            Protocol::Tls => {
                let terminate = self.tls_config(listener, &[]);
                let mut chains = DomainTable::default();
                for chain in &listener.tls_chains {
                    let passthrough = chain.mode == TlsMode::Passthrough;
                    chains.insert(&chain.sni, TlsChainRuntime { passthrough, tcp: self.tcp(chain.tcp.as_ref()) });
                }
                ListenerKind::Tls { terminate, chains }
            }
        };
        let server_header =
            HeaderValue::from_str(&settings.server_name).unwrap_or(HeaderValue::from_static("meshgate"));
        let access_logs = self.access_logs(listener);
        let access_logs_empty = access_logs.is_empty();
        let tracing = match &listener.policies.tracing {
            None => None,
            Some(t) => match self.tracers.tracer(t, self.metrics.trace_spans_dropped.clone()) {
                Ok(tracer) => {
                    self.tracers_used.insert(t.backend.clone());
                    Some(tracer)
                }
                Err(e) => {
                    self.warnings.push(format!("{}: tracing: {e}", listener.name));
                    None
                }
            },
        };
        Some(ListenerRuntime {
            name: listener.name.clone(),
            port: listener.port,
            scheme: if listener.protocol == Protocol::Https { "https" } else { "http" },
            kind,
            connection_limit: listener.connection_limit,
            server_header,
            unrouted: self.metrics.route_counters(
                self.plan.gateway.as_ref().map_or("", |g| g.name.as_str()),
                &listener.name,
                "-",
            ),
            duration: self
                .metrics
                .duration
                .get_or_create(&crate::metrics::ListenerLabels { listener: listener.name.clone() })
                .clone(),
            settings: Arc::clone(settings),
            faults: listener.policies.faults.clone(),
            log_headers: {
                let mut names: Vec<HeaderName> = access_logs
                    .iter()
                    .flat_map(|l| l.formatter.request_headers())
                    .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                    .collect();
                names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                names.dedup();
                names
            },
            access_logs,
            connection_rate: listener
                .policies
                .connection_rate
                .as_ref()
                .map(|r| TokenBucket::new(r.num, Duration::from_millis(r.interval_ms))),
            max_connect_attempts: listener.policies.max_connect_attempts.unwrap_or(1).max(1),
            request_deadline: listener.policies.request_timeout_ms.map(limit),
            records_upstream: !access_logs_empty || tracing.is_some(),
            tracing,
        })
    }
}

/// What building clusters needs besides the plan.
struct ClusterContext<'a> {
    pools: &'a Pools,
    health: &'a Registry,
    metrics: &'a Metrics,
    default_connect_timeout: Duration,
}

fn cluster_runtime(
    name: &str,
    cluster: &Cluster,
    ctx: &ClusterContext<'_>,
    keys: &mut HashSet<PoolKey>,
    states_used: &mut HashSet<(String, String)>,
    checkers: &mut Vec<CheckerSpec>,
) -> Result<ClusterRuntime, String> {
    let connect_timeout = cluster.connect_timeout_ms.map_or(ctx.default_connect_timeout, limit);
    let tls = match &cluster.tls {
        Some(t) => Some(TlsSettings::new(t, cluster.protocol)?),
        None => None,
    };
    let mut endpoints = Vec::with_capacity(cluster.endpoints.len());
    let mut states = Vec::with_capacity(cluster.endpoints.len());
    let mut names = Vec::with_capacity(cluster.endpoints.len());
    for e in &cluster.endpoints {
        let key = PoolKey {
            host: e.host.clone(),
            port: e.port,
            protocol: cluster.protocol,
            tls: tls.as_ref().map_or_else(String::new, |t| t.key().to_owned()),
            connect_timeout_ms: u64::try_from(connect_timeout.as_millis()).unwrap_or(u64::MAX),
            idle_timeout_ms: cluster.idle_timeout_ms.unwrap_or(0),
            max_connection_ms: cluster.max_connection_duration_ms.unwrap_or(0),
        };
        keys.insert(key.clone());
        let pool = ctx.pools.get(key, tls.clone(), connect_timeout);
        let endpoint = format!("{}:{}", e.host, e.port);
        let state = ctx.health.state(name, &endpoint);
        states_used.insert((name.to_owned(), endpoint.clone()));
        if let Some(check) = &cluster.health_check {
            checkers.push(CheckerSpec {
                cluster: name.to_owned(),
                pool: Arc::clone(&pool),
                state: Arc::clone(&state),
                check: check.clone(),
                gauge: ctx
                    .metrics
                    .endpoint_health
                    .get_or_create(&crate::metrics::EndpointLabels {
                        cluster: name.to_owned(),
                        endpoint: endpoint.clone(),
                    })
                    .clone(),
            });
        }
        endpoints.push(pool);
        states.push(state);
        names.push(endpoint);
    }
    let hash = match &cluster.load_balancer {
        LoadBalancer::RingHash { hash, .. } | LoadBalancer::Maglev { hash, .. } => hash.clone(),
        _ => Vec::new(),
    };
    let limits = cluster.circuit_breaker.as_ref().map(|cb| Limits {
        max_requests: (cb.max_requests as usize)
            .min((cb.max_connections as usize).saturating_add(cb.max_pending_requests as usize))
            .max(1),
        max_retries: cb.max_retries as usize,
        in_flight: Arc::default(),
        retries: Arc::default(),
        overflow: ctx.metrics.cluster_counter(&ctx.metrics.overflow, name),
    });
    let outlier = cluster
        .circuit_breaker
        .as_ref()
        .and_then(|cb| cb.outlier.clone())
        .map(|o| OutlierDetector::new(o, ctx.metrics.cluster_counter(&ctx.metrics.ejections, name)));
    let (panic_threshold, fail_on_panic) =
        cluster.health_check.as_ref().map_or((50.0, false), |h| (h.panic_threshold, h.fail_traffic_on_panic));
    Ok(ClusterRuntime {
        name: name.to_owned(),
        all: (0..endpoints.len()).collect(),
        balancer: Balancer::new(&cluster.load_balancer, &names),
        hash,
        tracks_health: outlier.is_some() || cluster.health_check.is_some(),
        panic_threshold,
        fail_on_panic,
        limits,
        outlier,
        max_stream: cluster.max_stream_duration_ms.map(Duration::from_millis),
        endpoints,
        states,
    })
}

/// Shared state plans are built against: upstream pools, access-log sinks, endpoint health.
#[derive(Debug, Default)]
pub struct Shared {
    /// Upstream connection pools.
    pub pools: Pools,
    /// Access-log writers.
    pub sinks: Sinks,
    /// Endpoint health and checkers.
    pub health: Registry,
    /// Span exporters.
    pub tracers: crate::trace::Tracers,
}

/// Readies a gateway plan.
pub fn build(
    plan: &GatewayPlan,
    shared: &Shared,
    metrics: &Metrics,
    settings: &Arc<ProxySettings>,
) -> (GatewayRuntime, BuildWarnings) {
    let mut keys = HashSet::new();
    let mut warnings = Vec::new();
    let mut clusters = HashMap::new();
    let mut states_used = HashSet::new();
    let mut checkers = Vec::new();
    let ctx = ClusterContext {
        pools: &shared.pools,
        health: &shared.health,
        metrics,
        default_connect_timeout: settings.connect_timeout,
    };
    for (name, cluster) in &plan.clusters {
        match cluster_runtime(name, cluster, &ctx, &mut keys, &mut states_used, &mut checkers) {
            Ok(c) => {
                clusters.insert(name.clone(), Arc::new(c));
            }
            Err(e) => warnings.push(format!("cluster {name}: {e}; its routes answer 500")),
        }
    }
    let mut builder = Builder {
        plan,
        base: settings,
        clusters,
        metrics,
        sinks: &shared.sinks,
        sinks_used: HashSet::new(),
        tracers: &shared.tracers,
        tracers_used: HashSet::new(),
        warnings,
    };
    let mut listeners = HashMap::new();
    for listener in &builder.plan.listeners {
        if let Some(runtime) = builder.listener(listener) {
            listeners.insert(listener.port, Arc::new(runtime));
        }
    }
    let runtime = GatewayRuntime {
        listeners,
        pool_keys: keys,
        sinks: builder.sinks_used,
        tracers: builder.tracers_used,
        endpoint_states: states_used,
        checkers,
    };
    (runtime, builder.warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_choice_follows_weights() {
        let mut w = Weighted::default();
        assert!(w.choose().is_none());
        w.push("lone", 0);
        assert_eq!(w.choose(), Some(&"lone"), "a lone item is always chosen, whatever its weight");
        let mut w = Weighted::default();
        w.push("never", 0);
        w.push("a", 1);
        w.push("b", 3);
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..4000 {
            *counts.entry(*w.choose().unwrap()).or_insert(0) += 1;
        }
        assert_eq!(counts.get("never"), None);
        let (a, b) = (counts["a"], counts["b"]);
        assert!((800..1200).contains(&a) && (2800..3200).contains(&b), "{counts:?}");
    }

    #[test]
    fn query_values() {
        assert_eq!(query_value("a=1&b=two%20words&c", "b"), Some("two words".into()));
        assert_eq!(query_value("a=1&b=2", "c"), None);
        assert_eq!(query_value("c", "c"), Some(String::new()));
        assert_eq!(query_value("a=%zz", "a"), Some("%zz".into()));
        assert_eq!(query_value("x=a+b", "x"), Some("a b".into()));
        assert_eq!(query_value("x=%4", "x"), Some("%4".into()));
    }
}
