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
    Action, Cluster, GatewayPlan, HeaderOps, HostRewrite, Listener, PathMatch, PathRewrite, Redirect, Route, ValueMatch,
};
use prometheus_client::metrics::counter::Counter;
use regex::Regex;

use crate::metrics::Metrics;
use crate::upstream::{EndpointPool, PoolKey, Pools, TlsSettings};

/// How long to wait for an upstream TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for an upstream response head by default (Kuma's default route timeout).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A cluster bound to endpoint pools.
#[derive(Debug)]
pub struct ClusterRuntime {
    /// The cluster name.
    pub name: String,
    /// Its endpoints (empty: 503).
    pub endpoints: Vec<Arc<EndpointPool>>,
    next: AtomicUsize,
}

impl ClusterRuntime {
    /// The next endpoint, round-robin.
    pub fn pick(&self) -> Option<&Arc<EndpointPool>> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        self.endpoints.get(i)
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

/// Forwarding ready to execute.
#[derive(Debug)]
pub struct ForwardRuntime {
    /// Clusters with cumulative weights (a `None` cluster could not be resolved: 500).
    pub backends: Vec<(Option<Arc<ClusterRuntime>>, u32)>,
    /// Sum of weights.
    pub total_weight: u32,
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

impl ForwardRuntime {
    /// Chooses a backend by weight.
    pub fn choose(&self) -> Option<&Option<Arc<ClusterRuntime>>> {
        match self.backends.len() {
            0 => None,
            1 => self.backends.first().map(|(c, _)| c),
            _ => {
                let roll = rand::random::<u32>() % self.total_weight.max(1);
                self.backends.iter().find(|(_, cumulative)| roll < *cumulative).map(|(c, _)| c)
            }
        }
    }
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
    /// Request counters by status class.
    pub counters: [Counter; 5],
}

impl RouteRuntime {
    /// Whether the request matches every condition.
    pub fn matches(&self, method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> bool {
        if !self.path.matches(path) {
            return false;
        }
        if let Some(m) = &self.method
            && m != method
        {
            return false;
        }
        for (name, cond) in &self.headers {
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
                return false;
            }
        }
        for (name, cond) in &self.query {
            let value = query.and_then(|q| query_value(q, name));
            let ok = match (cond, value) {
                (ValueMatcher::Absent, v) => v.is_none(),
                (ValueMatcher::Present, v) => v.is_some(),
                (c, Some(v)) => c.matches_value(&v),
                (_, None) => false,
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

/// The first value of a query parameter, percent-decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k) == name {
            return Some(percent_decode(v));
        }
    }
    None
}

fn percent_decode(s: &str) -> String {
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
#[derive(Debug, Default)]
pub struct VhostTable {
    exact: HashMap<String, usize>,
    wildcards: Vec<(String, usize)>,
    star: Option<usize>,
    /// The virtual hosts.
    pub hosts: Vec<VhostRuntime>,
}

impl VhostTable {
    /// The virtual host for a (lowercase, port-less) host name.
    pub fn find(&self, host: &str) -> Option<&VhostRuntime> {
        let index = self.exact.get(host).copied().or_else(|| {
            self.wildcards
                .iter()
                .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
                .map(|(_, i)| *i)
                .or(self.star)
        })?;
        self.hosts.get(index)
    }
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
    /// Virtual hosts.
    pub vhosts: VhostTable,
    /// The `server` response header.
    pub server_header: HeaderValue,
    /// Counters for requests no route took.
    pub unrouted: [Counter; 5],
    /// Request durations on this listener.
    pub duration: prometheus_client::metrics::histogram::Histogram,
    /// How long to wait for an upstream response head.
    pub request_timeout: Duration,
}

/// Settings of the data plane that do not come from the plan.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// The `server` response header.
    pub server_name: String,
    /// How long to wait for an upstream response head.
    pub request_timeout: Duration,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self { server_name: "meshgate".to_owned(), request_timeout: DEFAULT_REQUEST_TIMEOUT }
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

struct Builder<'a> {
    plan: &'a GatewayPlan,
    clusters: HashMap<String, Arc<ClusterRuntime>>,
    metrics: &'a Metrics,
    warnings: BuildWarnings,
}

impl Builder<'_> {
    fn cluster(&self, name: &str) -> Option<Arc<ClusterRuntime>> {
        self.clusters.get(name).cloned()
    }

    fn route(&mut self, listener: &Listener, route: &Route) -> Result<RouteRuntime, String> {
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
                let mut backends = Vec::new();
                let mut total = 0u32;
                for b in &f.backends {
                    total = total.saturating_add(b.weight);
                    backends.push((self.cluster(&b.cluster), total));
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
                    total_weight: total,
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
        let counters = self.metrics.route_counters(&listener.name, &label);
        Ok(RouteRuntime { path, method, headers, query, action, label, counters })
    }

    fn listener(&mut self, listener: &Listener, settings: &ProxySettings) -> ListenerRuntime {
        let mut table = VhostTable::default();
        for vhost in &listener.virtual_hosts {
            let mut routes = Vec::with_capacity(vhost.routes.len());
            for route in &vhost.routes {
                match self.route(listener, route) {
                    Ok(r) => routes.push(r),
                    Err(e) => self.warnings.push(format!(
                        "{} {}: route of {} left out: {e}",
                        listener.name,
                        vhost.domain,
                        route.source.label()
                    )),
                }
            }
            let index = table.hosts.len();
            let domain = vhost.domain.to_ascii_lowercase();
            if domain == "*" {
                table.star.get_or_insert(index);
            } else if let Some(suffix) = domain.strip_prefix('*') {
                table.wildcards.push((suffix.to_owned(), index));
            } else {
                table.exact.entry(domain.clone()).or_insert(index);
            }
            table.hosts.push(VhostRuntime { domain, routes });
        }
        // The longest wildcard suffix wins.
        table.wildcards.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let server_header =
            HeaderValue::from_str(&settings.server_name).unwrap_or(HeaderValue::from_static("meshgate"));
        ListenerRuntime {
            name: listener.name.clone(),
            port: listener.port,
            scheme: if listener.protocol == meshgate_plan::Protocol::Https { "https" } else { "http" },
            vhosts: table,
            server_header,
            unrouted: self.metrics.route_counters(&listener.name, "-"),
            duration: self
                .metrics
                .duration
                .get_or_create(&crate::metrics::ListenerLabels { listener: listener.name.clone() })
                .clone(),
            request_timeout: settings.request_timeout,
        }
    }
}

fn cluster_runtime(
    name: &str,
    cluster: &Cluster,
    pools: &Pools,
    keys: &mut HashSet<PoolKey>,
) -> Result<ClusterRuntime, String> {
    let tls = match &cluster.tls {
        Some(t) => Some(TlsSettings::new(t, cluster.protocol)?),
        None => None,
    };
    let mut endpoints = Vec::with_capacity(cluster.endpoints.len());
    for e in &cluster.endpoints {
        let key = PoolKey {
            host: e.host.clone(),
            port: e.port,
            protocol: cluster.protocol,
            tls: tls.as_ref().map_or_else(String::new, |t| t.key().to_owned()),
        };
        keys.insert(key.clone());
        endpoints.push(pools.get(key, tls.clone(), CONNECT_TIMEOUT));
    }
    Ok(ClusterRuntime { name: name.to_owned(), endpoints, next: AtomicUsize::new(0) })
}

/// Readies a gateway plan.
pub fn build(
    plan: &GatewayPlan,
    pools: &Pools,
    metrics: &Metrics,
    settings: &ProxySettings,
) -> (GatewayRuntime, BuildWarnings) {
    let mut keys = HashSet::new();
    let mut warnings = Vec::new();
    let mut clusters = HashMap::new();
    for (name, cluster) in &plan.clusters {
        match cluster_runtime(name, cluster, pools, &mut keys) {
            Ok(c) => {
                clusters.insert(name.clone(), Arc::new(c));
            }
            Err(e) => warnings.push(format!("cluster {name}: {e}; its routes answer 500")),
        }
    }
    let mut builder = Builder { plan, clusters, metrics, warnings };
    let mut listeners = HashMap::new();
    // HTTPS, TCP and TLS listeners are not served yet (the compiler reports them).
    for listener in builder.plan.listeners.iter().filter(|l| l.protocol == meshgate_plan::Protocol::Http) {
        let runtime = builder.listener(listener, settings);
        listeners.insert(listener.port, Arc::new(runtime));
    }
    (GatewayRuntime { listeners, pool_keys: keys }, builder.warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values() {
        assert_eq!(query_value("a=1&b=two%20words&c", "b"), Some("two words".into()));
        assert_eq!(query_value("a=1&b=2", "c"), None);
        assert_eq!(query_value("c", "c"), Some(String::new()));
        assert_eq!(query_value("a=%zz", "a"), Some("%zz".into()));
        assert_eq!(query_value("x=a+b", "x"), Some("a b".into()));
        assert_eq!(query_value("x=%4", "x"), Some("%4".into()));
    }

    #[test]
    fn vhost_lookup_order() {
        let mut t = VhostTable::default();
        for (i, d) in ["foo.example.com", "*.example.com", "*.a.example.com", "*"].iter().enumerate() {
            t.hosts.push(VhostRuntime { domain: (*d).to_owned(), routes: vec![] });
            if *d == "*" {
                t.star = Some(i);
            } else if let Some(s) = d.strip_prefix('*') {
                t.wildcards.push((s.to_owned(), i));
            } else {
                t.exact.insert((*d).to_owned(), i);
            }
        }
        t.wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        assert_eq!(t.find("foo.example.com").unwrap().domain, "foo.example.com");
        assert_eq!(t.find("bar.example.com").unwrap().domain, "*.example.com");
        assert_eq!(t.find("x.a.example.com").unwrap().domain, "*.a.example.com");
        assert_eq!(t.find("example.com").unwrap().domain, "*");
        assert_eq!(t.find("other.org").unwrap().domain, "*");
    }
}
