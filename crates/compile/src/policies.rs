//! The policy engine (policy reference §1, §3, §5): which targetRef policies select a gateway's listeners, their
//! precedence, the JSON-merge-patch of their `default` confs, and the translation of the merged confs into the
//! plan's listener and route settings.
//!
//! Resolution, as Kuma's `GatewayRules`:
//! - a top-level `Mesh` (no `proxyTypes`, or with `Gateway`), `MeshSubset`, `MeshService`, `MeshServiceSubset` or
//!   `MeshGateway` (+ listener `tags`) reference selects hostname listeners by their merged tags; `Dataplane` never
//!   selects a builtin gateway; a `MeshHTTPRoute` reference selects what that route selects, and its confs apply to
//!   the route entries built from that route's rules only (identified by their matches);
//! - confs are keyed **by port**: a policy selecting one hostname listener of a port applies to the whole port;
//! - `to` items with `targetRef.kind: Mesh` make the outbound conf, `rules` and `from` items the inbound conf;
//! - policies are ordered by top-level kind (`Mesh` < `MeshSubset` < `MeshGateway` < `MeshService` <
//!   `MeshServiceSubset` < `MeshHTTPRoute`), then fewer `MeshGateway` tags first, then name descending (the
//!   lexicographically smallest name is merged last and wins); confs are merged in that order with RFC 7386.
//!
//! Each mesh also gets Kuma's initial policies (`mesh-gateways-timeout-all-<mesh>`, `mesh-retry-all-<mesh>`,
//! `mesh-circuit-breaker-all-<mesh>`) unless its Mesh resource lists them in `skipCreatingInitialPolicies`.
//!
//! Destination policies (MeshCircuitBreaker, MeshHealthCheck, MeshLoadBalancingStrategy, MeshTimeout's
//! `connectionTimeout`) apply per cluster, from `to: Mesh` and `to: MeshService <service>` items; a cluster used by
//! several ports takes them from the first port that sends to it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use meshgate_api::model::common::{SERVICE_TAG, Tags};
use meshgate_api::model::policy::{
    AccessLogConf, BackOff, CircuitBreakerConf, ConnectionLimits, FaultInjectionConf, HashPolicy, HeaderChanges,
    HealthCheckConf, LoadBalancingConf, LogFormat as ApiLogFormat, NameValue, Policy, PolicyItem, PolicyKind,
    PolicyRule, PolicySpec, RateLimitConf, RetryConf, RetryHttp, RetryTcp, TimeoutConf, TimeoutHttp, TraceConf,
};
use meshgate_api::model::targetref::{IntOrString, TargetRef};
use meshgate_api::model::wkt::GoDuration;
use meshgate_plan::{
    AccessLog, AppliedPolicy, CircuitBreaker, Cluster, Diagnostic, Fault, HashKey, HashSource, HeaderOps, HealthCheck,
    HealthCheckKind, Listener, LoadBalancer, LogFormat, LogSink, Outlier, Protocol, RateLimit, RetryPolicy, Route,
    RoutePolicies, Severity, TraceBackend, TraceTag, Tracing,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::index::Index;
use crate::meshroutes::rule_key;
use crate::select::rank;

/// The values of the mesh's initial gateway timeout policy (Kuma's unless changed on the command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialTimeouts {
    /// Listener idle timeout (Kuma: 5m).
    pub idle: Duration,
    /// Request headers timeout (Kuma: 500ms).
    pub request_headers: Duration,
    /// Stream idle timeout, listener and routes (Kuma: 5s).
    pub stream_idle: Duration,
    /// Upstream idle timeout (Kuma: 1h).
    pub upstream_idle: Duration,
}

impl Default for InitialTimeouts {
    fn default() -> Self {
        InitialTimeouts {
            idle: Duration::from_secs(300),
            request_headers: Duration::from_millis(500),
            stream_idle: Duration::from_secs(5),
            upstream_idle: Duration::from_secs(3600),
        }
    }
}

/// One policy's conf for one section (outbound or inbound) of a port, and what it reaches.
#[derive(Debug)]
struct Contribution {
    kind: PolicyKind,
    name: String,
    conf: Value,
    /// `None`: the whole port; `Some(keys)`: the route entries whose rule key is in `keys`.
    routes: Option<BTreeSet<String>>,
    /// `None`: every destination (`to: Mesh`); `Some(service)`: that service's clusters (`to: MeshService`).
    service: Option<String>,
}

/// One selected policy, with its priority.
struct Selected<'a> {
    name: String,
    spec: std::borrow::Cow<'a, PolicySpec>,
    priority: (u8, usize),
    routes: Option<BTreeSet<String>>,
    /// Listener tag selector (empty: every listener).
    tags: Tags,
    /// The listeners' service must equal this (MeshService kinds).
    service: Option<String>,
}

/// Kuma's initial policies of a mesh (policy reference §5).
fn initial_policies(index: &Index<'_>, mesh: &str, timeouts: &InitialTimeouts) -> Vec<(String, PolicySpec)> {
    let skips = |kind: &str| index.mesh(mesh).is_some_and(|m| m.skips_initial_policy(kind));
    let mut out = Vec::new();
    let mesh_ref =
        |proxy_types: Vec<String>| Some(TargetRef { kind: "Mesh".to_owned(), proxy_types, ..TargetRef::default() });
    let to_mesh = || TargetRef { kind: "Mesh".to_owned(), ..TargetRef::default() };
    if !skips("MeshTimeout") {
        out.push((
            format!("mesh-gateways-timeout-all-{mesh}"),
            PolicySpec::MeshTimeout(Policy {
                target_ref: mesh_ref(vec!["Gateway".to_owned()]),
                from: vec![PolicyItem {
                    target_ref: to_mesh(),
                    default: TimeoutConf {
                        idle_timeout: Some(timeouts.idle.into()),
                        http: Some(TimeoutHttp {
                            stream_idle_timeout: Some(timeouts.stream_idle.into()),
                            request_headers_timeout: Some(timeouts.request_headers.into()),
                            ..TimeoutHttp::default()
                        }),
                        ..TimeoutConf::default()
                    },
                }],
                to: vec![PolicyItem {
                    target_ref: to_mesh(),
                    default: TimeoutConf {
                        idle_timeout: Some(timeouts.upstream_idle.into()),
                        http: Some(TimeoutHttp {
                            stream_idle_timeout: Some(timeouts.stream_idle.into()),
                            ..TimeoutHttp::default()
                        }),
                        ..TimeoutConf::default()
                    },
                }],
                rules: Vec::new(),
            }),
        ));
    }
    if !skips("MeshCircuitBreaker") {
        out.push((
            format!("mesh-circuit-breaker-all-{mesh}"),
            PolicySpec::MeshCircuitBreaker(Policy {
                target_ref: mesh_ref(Vec::new()),
                to: vec![PolicyItem {
                    target_ref: to_mesh(),
                    default: CircuitBreakerConf {
                        connection_limits: Some(ConnectionLimits {
                            max_connections: Some(1024),
                            max_pending_requests: Some(1024),
                            max_requests: Some(1024),
                            max_retries: Some(3),
                            max_connection_pools: None,
                        }),
                        outlier_detection: None,
                    },
                }],
                ..Policy::default()
            }),
        ));
    }
    if !skips("MeshRetry") {
        let back_off = || BackOff {
            base_interval: Some(Duration::from_millis(25).into()),
            max_interval: Some(Duration::from_millis(250).into()),
        };
        out.push((
            format!("mesh-retry-all-{mesh}"),
            PolicySpec::MeshRetry(Policy {
                target_ref: mesh_ref(Vec::new()),
                to: vec![PolicyItem {
                    target_ref: to_mesh(),
                    default: RetryConf {
                        tcp: Some(RetryTcp { max_connect_attempt: Some(5) }),
                        http: Some(RetryHttp {
                            num_retries: Some(5),
                            per_try_timeout: Some(Duration::from_secs(16).into()),
                            back_off: Some(back_off()),
                            ..RetryHttp::default()
                        }),
                        grpc: Some(meshgate_api::model::policy::RetryGrpc {
                            num_retries: Some(5),
                            per_try_timeout: Some(Duration::from_secs(16).into()),
                            back_off: Some(back_off()),
                            ..Default::default()
                        }),
                    },
                }],
                ..Policy::default()
            }),
        ));
    }
    out
}

/// Kuma's rank of a top-level kind (higher is merged later and wins).
fn kind_rank(kind: &str) -> u8 {
    match kind {
        "Mesh" => 1,
        "Dataplane" => 2,
        "MeshSubset" => 3,
        "MeshGateway" => 4,
        "MeshService" => 5,
        "MeshServiceSubset" => 8,
        "MeshHTTPRoute" => 9,
        _ => 0,
    }
}

/// What a top-level reference selects on gateway `gateway`: listener tags and service, or nothing.
fn selection(target: &TargetRef, gateway: &str) -> Option<(Tags, Option<String>)> {
    let includes_gateway = target.proxy_types.is_empty() || target.proxy_types.iter().any(|p| p == "Gateway");
    match target.kind.as_str() {
        "Mesh" if includes_gateway => Some((Tags::new(), None)),
        "MeshSubset" if includes_gateway => Some((target.tags.clone(), None)),
        "MeshGateway" if target.name == gateway => Some((target.tags.clone(), None)),
        "MeshService" => Some((Tags::new(), Some(target.name.clone()))),
        "MeshServiceSubset" => Some((target.tags.clone(), Some(target.name.clone()))),
        _ => None,
    }
}

/// The policies of `mesh` that select gateway `gateway` (initial ones included), lowest priority first.
fn select<'a>(
    index: &Index<'a>,
    mesh: &str,
    gateway: &str,
    timeouts: &InitialTimeouts,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Selected<'a>> {
    let mut candidates: Vec<(String, std::borrow::Cow<'a, PolicySpec>)> =
        index.policies(mesh).iter().map(|p| (p.name.to_owned(), std::borrow::Cow::Borrowed(p.spec))).collect();
    for (name, spec) in initial_policies(index, mesh, timeouts) {
        if !candidates.iter().any(|(n, s)| *n == name && s.kind() == spec.kind()) {
            candidates.push((name, std::borrow::Cow::Owned(spec)));
        }
    }
    let mut out = Vec::new();
    for (name, spec) in candidates {
        let mesh_ref = TargetRef { kind: "Mesh".to_owned(), ..TargetRef::default() };
        let target = spec.target_ref().cloned().unwrap_or(mesh_ref);
        let (reach, routes) = if target.kind == "MeshHTTPRoute" {
            let Some(route) = index.mesh_http_routes(mesh).iter().find(|r| r.name == target.name) else {
                diagnostics.push(Diagnostic {
                    severity: Severity::Warning,
                    subject: format!("{} {name}", spec.kind().name()),
                    message: format!(
                        "couldn't resolve MeshHTTPRoute targetRef: no MeshHTTPRoute {:?}; the policy has no effect",
                        target.name
                    ),
                });
                continue;
            };
            let route_target = route.spec.target_ref.clone().unwrap_or_default();
            let keys = route
                .spec
                .to
                .iter()
                .filter(|t| t.target_ref.kind == "Mesh")
                .flat_map(|t| t.rules.iter().map(|r| rule_key(&r.matches)))
                .collect();
            (selection(&route_target, gateway), Some(keys))
        } else {
            (selection(&target, gateway), None)
        };
        let Some((tags, service)) = reach else { continue };
        let tag_count = if target.kind == "MeshGateway" { target.tags.len() } else { 0 };
        out.push(Selected { name, spec, priority: (kind_rank(&target.kind), tag_count), routes, tags, service });
    }
    out.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| b.name.cmp(&a.name)));
    out
}

/// A policy's outbound confs — `to: Mesh` (service `None`) and `to: MeshService` items — and its inbound
/// (`rules`, `from`) confs, as JSON.
type Sections = (Vec<(Option<String>, Value)>, Vec<Value>);

fn sections<C: Serialize>(p: &Policy<C>) -> Sections {
    let json = |c: &C| serde_json::to_value(c).unwrap_or(Value::Null);
    let to =
        p.to.iter()
            .filter_map(|t| match t.target_ref.kind.as_str() {
                "Mesh" => Some((None, json(&t.default))),
                "MeshService" => Some((Some(t.target_ref.name.clone()), json(&t.default))),
                _ => None,
            })
            .collect();
    let inbound = p
        .rules
        .iter()
        .map(|r: &PolicyRule<C>| json(&r.default))
        .chain(p.from.iter().map(|f| json(&f.default)))
        .collect();
    (to, inbound)
}

fn spec_sections(spec: &PolicySpec) -> Sections {
    match spec {
        PolicySpec::MeshTimeout(p) => sections(p),
        PolicySpec::MeshRetry(p) => sections(p),
        PolicySpec::MeshRateLimit(p) => sections(p),
        PolicySpec::MeshFaultInjection(p) => sections(p),
        PolicySpec::MeshAccessLog(p) => sections(p),
        PolicySpec::MeshCircuitBreaker(p) => sections(p),
        PolicySpec::MeshHealthCheck(p) => sections(p),
        PolicySpec::MeshLoadBalancingStrategy(p) => sections(p),
        // One conf for what it selects: it acts like an inbound rule of the listeners it reaches.
        PolicySpec::MeshTrace(p) => (Vec::new(), vec![serde_json::to_value(&p.default).unwrap_or(Value::Null)]),
    }
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` deletes, anything else (lists too) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The leaf paths a conf sets (lists count as leaves, as they are replaced whole).
fn leaves(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                leaves(v, &format!("{prefix}/{k}"), out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// A merged conf and the part each policy played in it.
struct Merged {
    value: Value,
    applied: Vec<AppliedPolicy>,
}

fn merge<'c>(contributions: impl Iterator<Item = &'c Contribution>) -> Option<Merged> {
    let list: Vec<&Contribution> = contributions.collect();
    if list.is_empty() {
        return None;
    }
    let mut value = Value::Object(serde_json::Map::new());
    let mut winner: BTreeMap<String, usize> = BTreeMap::new();
    for (i, c) in list.iter().enumerate() {
        merge_patch(&mut value, &c.conf);
        let mut paths = Vec::new();
        leaves(&c.conf, "", &mut paths);
        // A path set by this conf replaces every path an earlier conf set at or under it.
        for p in &paths {
            winner.retain(|w, _| !(w == p || w.starts_with(&format!("{p}/"))));
            winner.insert(p.clone(), i);
        }
    }
    let mut seen = BTreeSet::new();
    let applied = list
        .iter()
        .enumerate()
        .filter(|(_, c)| seen.insert((c.kind, c.name.clone())))
        .map(|(_, c)| {
            let mine: BTreeSet<usize> =
                list.iter().enumerate().filter(|(_, o)| o.kind == c.kind && o.name == c.name).map(|(j, _)| j).collect();
            let values: Vec<String> = winner
                .iter()
                .filter(|(_, w)| mine.contains(w))
                .map(|(path, _)| path.trim_start_matches('/').replace('/', "."))
                .collect();
            AppliedPolicy {
                kind: c.kind.name().to_owned(),
                name: c.name.clone(),
                status: if values.is_empty() { "overridden" } else { "applied" }.to_owned(),
                values,
            }
        })
        .collect();
    Some(Merged { value, applied })
}

fn typed<C: DeserializeOwned + Default>(m: &Merged, subject: &str, diagnostics: &mut Vec<Diagnostic>) -> C {
    match serde_json::from_value(m.value.clone()) {
        Ok(c) => c,
        Err(e) => {
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                subject: subject.to_owned(),
                message: format!("the merged policy conf cannot be used ({e}); defaults apply"),
            });
            C::default()
        }
    }
}

fn ms(d: &GoDuration) -> u64 {
    u64::try_from(d.get().as_millis()).unwrap_or(u64::MAX)
}

/// The contributions of a port: outbound (`to: Mesh`) and inbound, per kind.
#[derive(Default)]
struct PortConfs {
    to: Vec<Contribution>,
    inbound: Vec<Contribution>,
}

fn port_confs(selected: &[Selected<'_>], listener: &Listener) -> PortConfs {
    let mut confs = PortConfs::default();
    for s in selected {
        let reaches = listener.hostnames.iter().any(|h| {
            rank(&s.tags, &h.tags).is_some()
                && s.service.as_ref().is_none_or(|svc| h.tags.get(SERVICE_TAG) == Some(svc))
        });
        if !reaches {
            continue;
        }
        let (to, inbound) = spec_sections(&s.spec);
        let kind = s.spec.kind();
        for (service, conf) in to {
            // Per-route policies act on routes only, never on a destination service.
            if service.is_some() && s.routes.is_some() {
                continue;
            }
            confs.to.push(Contribution { kind, name: s.name.clone(), conf, routes: s.routes.clone(), service });
        }
        if s.routes.is_none() {
            for conf in inbound {
                confs.inbound.push(Contribution { kind, name: s.name.clone(), conf, routes: None, service: None });
            }
        }
    }
    confs
}

/// Applies the policies of `mesh` to the listeners of gateway `gateway` served by a dataplane with tags `dp_tags`.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    index: &Index<'_>,
    mesh: &str,
    gateway: &str,
    dp_address: &str,
    dp_tags: &Tags,
    timeouts: &InitialTimeouts,
    listeners: &mut [Listener],
    clusters: &mut BTreeMap<String, Cluster>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let selected = select(index, mesh, gateway, timeouts, diagnostics);
    let service = dp_tags.get(SERVICE_TAG).cloned().unwrap_or_default();
    // A cluster takes its destination policies from the first listener (by port) that sends to it.
    let mut cluster_confs: BTreeMap<String, (usize, Protocol)> = BTreeMap::new();
    let mut all_confs = Vec::new();
    for listener in listeners.iter_mut() {
        let confs = port_confs(&selected, listener);
        for name in cluster_names(listener) {
            cluster_confs.entry(name).or_insert((all_confs.len(), listener.protocol));
        }
        let port_wide = |kind: PolicyKind| {
            confs.to.iter().filter(move |c| c.kind == kind && c.routes.is_none() && c.service.is_none())
        };
        let inbound = |kind: PolicyKind| confs.inbound.iter().filter(move |c| c.kind == kind);
        let subject = format!("MeshGateway {gateway} listener {}", listener.name);
        // What legacy policies put here (TrafficLog access logs) stays; targetRef policies add to it.
        let mut lp = std::mem::take(&mut listener.policies);

        // MeshTimeout: inbound → listener; outbound → clusters (connect) and routes.
        if let Some(m) = merge(inbound(PolicyKind::MeshTimeout)) {
            let c: TimeoutConf = typed(&m, &subject, diagnostics);
            lp.idle_timeout_ms = c.idle_timeout.as_ref().map(ms);
            let http = c.http.unwrap_or_default();
            lp.request_headers_timeout_ms = http.request_headers_timeout.as_ref().map(ms);
            lp.stream_idle_timeout_ms = http.stream_idle_timeout.as_ref().map(ms);
            lp.request_timeout_ms = http.request_timeout.as_ref().map(ms).filter(|t| *t > 0);
            lp.applied.extend(m.applied);
        }
        // MeshRetry (TCP part), MeshRateLimit (TCP part), MeshFaultInjection, MeshAccessLog: port-wide.
        if let Some(m) = merge(port_wide(PolicyKind::MeshRetry)) {
            let c: RetryConf = typed(&m, &subject, diagnostics);
            if !listener.protocol.is_http() {
                lp.max_connect_attempts = c.tcp.and_then(|t| t.max_connect_attempt);
                extend_applied(&mut lp.applied, m.applied);
            }
        }
        if let Some(m) = merge(port_wide(PolicyKind::MeshRateLimit)) {
            let c: RateLimitConf = typed(&m, &subject, diagnostics);
            if let Some(tcp) = c.local.and_then(|l| l.tcp)
                && tcp.disabled != Some(true)
                && let Some(rate) = tcp.connection_rate
            {
                lp.connection_rate = Some(RateLimit {
                    num: rate.num,
                    interval_ms: rate.interval.as_ref().map_or(1000, ms),
                    status: 0,
                    headers: HeaderOps::default(),
                });
                extend_applied(&mut lp.applied, m.applied);
            }
        }
        if let Some(m) = merge(port_wide(PolicyKind::MeshFaultInjection)) {
            let c: FaultInjectionConf = typed(&m, &subject, diagnostics);
            if listener.protocol.is_http() {
                lp.faults = faults(&c, &subject, diagnostics);
                extend_applied(&mut lp.applied, m.applied);
            }
        }
        let log_ctx = LogContext {
            mesh,
            service: &service,
            address: dp_address,
            protocol: listener.protocol,
            listener: &listener.name,
        };
        if let Some(m) = merge(port_wide(PolicyKind::MeshAccessLog)) {
            let c: AccessLogConf = typed(&m, &subject, diagnostics);
            lp.access_logs.extend(access_logs(&c, &log_ctx, true, &subject, diagnostics));
            extend_applied(&mut lp.applied, m.applied);
        }
        if let Some(m) = merge(inbound(PolicyKind::MeshAccessLog)) {
            let c: AccessLogConf = typed(&m, &subject, diagnostics);
            lp.access_logs.extend(access_logs(&c, &log_ctx, false, &subject, diagnostics));
            extend_applied(&mut lp.applied, m.applied);
        }
        if let Some(m) = merge(inbound(PolicyKind::MeshTrace)) {
            let c: TraceConf = typed(&m, &subject, diagnostics);
            if listener.protocol.is_http() {
                lp.tracing = tracing(&c, &service, &subject, diagnostics);
                extend_applied(&mut lp.applied, m.applied);
            }
        }
        listener.policies = lp;

        // Routes: port-wide outbound confs merged with those of policies targeting the route's MeshHTTPRoute.
        if listener.protocol.is_http() {
            let routes = listener
                .virtual_hosts
                .iter_mut()
                .chain(listener.tls_chains.iter_mut().flat_map(|c| c.virtual_hosts.iter_mut()))
                .flat_map(|v| v.routes.iter_mut());
            for route in routes {
                let legacy = std::mem::take(&mut route.policies);
                let new = route_policies(&confs.to, route, &subject, diagnostics);
                route.policies = over_legacy(legacy, new);
            }
        }
        all_confs.push(confs);
    }
    for (name, (at, protocol)) in cluster_confs {
        let (Some(cluster), Some(confs)) = (clusters.get_mut(&name), all_confs.get(at)) else { continue };
        let subject = format!("MeshGateway {gateway} cluster {name}");
        cluster_policies(cluster, &confs.to, protocol, &subject, diagnostics);
    }
}

/// The destination policies of a cluster: `to: Mesh` and `to: MeshService <its service>` confs, in order.
fn cluster_policies(
    cluster: &mut Cluster,
    to: &[Contribution],
    protocol: Protocol,
    subject: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let owned = cluster.service.clone();
    let service = owned.as_str();
    let for_cluster = |kind: PolicyKind| {
        to.iter()
            .filter(move |c| c.kind == kind && c.routes.is_none() && c.service.as_deref().is_none_or(|s| s == service))
    };
    if let Some(m) = merge(for_cluster(PolicyKind::MeshTimeout)) {
        let c: TimeoutConf = typed(&m, subject, diagnostics);
        let idle = c.idle_timeout.as_ref().map(ms);
        if let Some(connect) = c.connection_timeout.as_ref().map(ms) {
            cluster.connect_timeout_ms = Some(connect);
        }
        if idle.is_some() {
            cluster.idle_timeout_ms = idle;
        }
        let http = c.http.clone().unwrap_or_default();
        let max_stream = http.max_stream_duration.as_ref().map(ms).filter(|v| *v > 0);
        let max_connection = http.max_connection_duration.as_ref().map(ms).filter(|v| *v > 0);
        if max_stream.is_some() {
            cluster.max_stream_duration_ms = max_stream;
        }
        if max_connection.is_some() {
            cluster.max_connection_duration_ms = max_connection;
        }
        if c.connection_timeout.is_some() || idle.is_some() || max_stream.is_some() || max_connection.is_some() {
            extend_applied(&mut cluster.applied, m.applied);
        }
    }
    if let Some(m) = merge(for_cluster(PolicyKind::MeshLoadBalancingStrategy)) {
        let c: LoadBalancingConf = typed(&m, subject, diagnostics);
        cluster.load_balancer = load_balancer(&c);
        extend_applied(&mut cluster.applied, m.applied);
    }
    if let Some(m) = merge(for_cluster(PolicyKind::MeshCircuitBreaker)) {
        let c: CircuitBreakerConf = typed(&m, subject, diagnostics);
        cluster.circuit_breaker = Some(match cluster.circuit_breaker.take() {
            // As Kuma does, the fields MeshCircuitBreaker sets go over a legacy CircuitBreaker's; the rest stays.
            Some(legacy) => over_legacy_breaker(legacy, &c),
            None => circuit_breaker(&c),
        });
        extend_applied(&mut cluster.applied, m.applied);
    }
    if let Some(m) = merge(for_cluster(PolicyKind::MeshHealthCheck)) {
        let c: HealthCheckConf = typed(&m, subject, diagnostics);
        cluster.health_check = health_check(&c, protocol);
        extend_applied(&mut cluster.applied, m.applied);
    }
}

fn hash_keys(policies: &[HashPolicy]) -> Vec<HashKey> {
    policies
        .iter()
        .filter_map(|h| {
            let source = match h.kind.as_str() {
                "Header" => HashSource::Header(h.header.as_ref()?.name.to_ascii_lowercase()),
                "Cookie" => HashSource::Cookie(h.cookie.as_ref()?.name.clone()),
                "QueryParameter" => HashSource::QueryParameter(h.query_parameter.as_ref()?.name.clone()),
                "SourceIP" => HashSource::SourceIp,
                "Connection" if h.connection.as_ref()?.source_ip == Some(true) => HashSource::SourceIp,
                _ => return None,
            };
            Some(HashKey { source, terminal: h.terminal.unwrap_or(false) })
        })
        .collect()
}

fn load_balancer(c: &LoadBalancingConf) -> LoadBalancer {
    let top_hash = c.hash_policies.as_deref().unwrap_or_default();
    let Some(lb) = &c.load_balancer else { return LoadBalancer::RoundRobin };
    match lb.kind.as_str() {
        "LeastRequest" => LoadBalancer::LeastRequest {
            choice_count: lb.least_request.as_ref().and_then(|l| l.choice_count).unwrap_or(2).max(2),
        },
        "Random" => LoadBalancer::Random,
        "RingHash" => {
            let rh = lb.ring_hash.clone().unwrap_or_default();
            let policies = rh.hash_policies.as_deref().unwrap_or(top_hash);
            LoadBalancer::RingHash { min_ring_size: rh.min_ring_size.unwrap_or(1024).max(1), hash: hash_keys(policies) }
        }
        "Maglev" => {
            let m = lb.maglev.clone().unwrap_or_default();
            let policies = m.hash_policies.as_deref().unwrap_or(top_hash);
            LoadBalancer::Maglev { table_size: m.table_size.unwrap_or(65537).max(1), hash: hash_keys(policies) }
        }
        _ => LoadBalancer::RoundRobin,
    }
}

/// A legacy CircuitBreaker with a MeshCircuitBreaker's set fields written over it.
fn over_legacy_breaker(mut legacy: CircuitBreaker, c: &CircuitBreakerConf) -> CircuitBreaker {
    if let Some(l) = &c.connection_limits {
        legacy.max_connections = l.max_connections.unwrap_or(legacy.max_connections);
        legacy.max_pending_requests = l.max_pending_requests.unwrap_or(legacy.max_pending_requests);
        legacy.max_requests = l.max_requests.unwrap_or(legacy.max_requests);
        legacy.max_retries = l.max_retries.unwrap_or(legacy.max_retries);
    }
    if c.outlier_detection.is_some() {
        legacy.outlier = circuit_breaker(c).outlier;
    }
    legacy
}

pub(crate) fn circuit_breaker(c: &CircuitBreakerConf) -> CircuitBreaker {
    // Envoy's defaults for what a policy leaves unset.
    let limits = c.connection_limits.clone().unwrap_or_default();
    let outlier = c.outlier_detection.as_ref().filter(|o| o.disabled != Some(true)).map(|o| {
        let d = o.detectors.clone().unwrap_or_default();
        Outlier {
            interval_ms: o.interval.as_ref().map_or(10_000, ms),
            base_ejection_ms: o.base_ejection_time.as_ref().map_or(30_000, ms),
            max_ejection_percent: o.max_ejection_percent.unwrap_or(10).min(100),
            split_local: o.split_external_and_local_errors.unwrap_or(false),
            consecutive_5xx: d.total_failures.map(|c| c.consecutive.unwrap_or(5)),
            consecutive_gateway: d.gateway_failures.map(|c| c.consecutive.unwrap_or(5)),
            consecutive_local: d.local_origin_failures.map(|c| c.consecutive.unwrap_or(5)),
            success_rate: d.success_rate.map(|s| {
                (
                    s.minimum_hosts.unwrap_or(5),
                    s.request_volume.unwrap_or(100),
                    s.standard_deviation_factor.as_ref().and_then(|f| f.as_f64()).unwrap_or(1.9),
                )
            }),
            failure_percentage: d
                .failure_percentage
                .map(|f| (f.minimum_hosts.unwrap_or(5), f.request_volume.unwrap_or(50), f.threshold.unwrap_or(85))),
        }
    });
    CircuitBreaker {
        max_connections: limits.max_connections.unwrap_or(1024),
        max_pending_requests: limits.max_pending_requests.unwrap_or(1024),
        max_requests: limits.max_requests.unwrap_or(1024),
        max_retries: limits.max_retries.unwrap_or(3),
        outlier,
    }
}

/// The health check of a cluster; the checker type follows the gateway listener's protocol (as Kuma does).
pub(crate) fn health_check(c: &HealthCheckConf, protocol: Protocol) -> Option<HealthCheck> {
    let http = c.http.as_ref().filter(|h| h.disabled != Some(true));
    let tcp = c.tcp.as_ref().filter(|t| t.disabled != Some(true));
    let decode = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_else(|_| s.as_bytes().to_vec())
    };
    let check = match (protocol.is_http(), http, tcp) {
        (true, Some(h), _) => HealthCheckKind::Http {
            path: h.path.clone().unwrap_or_else(|| "/".to_owned()),
            expected_statuses: h
                .expected_statuses
                .as_ref()
                .map(|s| s.iter().filter_map(|v| u16::try_from(*v).ok()).collect())
                .unwrap_or_else(|| vec![200]),
            headers: h.request_headers_to_add.as_ref().map(header_ops).unwrap_or_default(),
        },
        (_, _, Some(t)) => HealthCheckKind::Tcp {
            send: t.send.as_deref().map(decode).unwrap_or_default(),
            receive: t.receive.iter().flatten().map(|r| decode(r)).collect(),
        },
        (false, _, None) if http.is_some() => HealthCheckKind::Tcp { send: Vec::new(), receive: Vec::new() },
        _ => return None,
    };
    let interval_ms = c.interval.as_ref().map_or(60_000, ms).max(1);
    let jitter_ms = c.interval_jitter.as_ref().map_or(0, ms)
        + c.interval_jitter_percent.map_or(0, |p| interval_ms * u64::try_from(p.clamp(0, 100)).unwrap_or(0) / 100);
    Some(HealthCheck {
        interval_ms,
        timeout_ms: c.timeout.as_ref().map_or(15_000, ms).max(1),
        unhealthy_threshold: c.unhealthy_threshold.and_then(|v| u32::try_from(v).ok()).unwrap_or(5).max(1),
        healthy_threshold: c.healthy_threshold.and_then(|v| u32::try_from(v).ok()).unwrap_or(1).max(1),
        jitter_ms,
        panic_threshold: c.healthy_panic_threshold.as_ref().and_then(|p| p.as_f64()).unwrap_or(50.0),
        fail_traffic_on_panic: c.fail_traffic_on_panic.unwrap_or(false),
        check,
    })
}

fn percent(v: Option<&IntOrString>) -> f64 {
    v.and_then(IntOrString::as_f64).map_or(100.0, |p| p.clamp(0.0, 100.0))
}

/// A listener's tracing from its merged MeshTrace conf (none: no backend, or one meshgate cannot send to).
fn tracing(c: &TraceConf, service: &str, subject: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<Tracing> {
    let backend = c.backends.as_deref()?.first()?;
    let mut warn = |message: String| {
        diagnostics.push(Diagnostic { severity: Severity::Warning, subject: subject.to_owned(), message });
    };
    let backend = match backend.kind().unwrap_or_default() {
        "Zipkin" => {
            let url = backend.zipkin.as_ref().map(|z| z.url.clone()).unwrap_or_default();
            if !url.starts_with("http://") {
                warn(format!(
                    "MeshTrace Zipkin url {url:?}: meshgate sends spans over plain http:// only; tracing is off"
                ));
                return None;
            }
            TraceBackend::Zipkin { url }
        }
        "OpenTelemetry" => {
            let endpoint = backend.open_telemetry.as_ref().map(|o| o.endpoint.clone()).unwrap_or_default();
            let Some(rest) = endpoint.strip_prefix("http://") else {
                warn(format!(
                    "MeshTrace OpenTelemetry endpoint {endpoint:?}: meshgate exports OTLP over HTTP (JSON) to an http:// \
                     URL, e.g. http://otel-collector:4318; tracing is off"
                ));
                return None;
            };
            let url = if rest.contains('/') { endpoint.clone() } else { format!("{endpoint}/v1/traces") };
            TraceBackend::Otlp { url }
        }
        other => {
            warn(format!(
                "MeshTrace backend {other}: not supported by meshgate (Zipkin and OpenTelemetry are); tracing is off"
            ));
            return None;
        }
    };
    let sampling = c.sampling.clone().unwrap_or_default();
    Some(Tracing {
        backend,
        service: service.to_owned(),
        overall: percent(sampling.overall.as_ref()),
        client: percent(sampling.client.as_ref()),
        random: percent(sampling.random.as_ref()),
        tags: c
            .tags
            .iter()
            .flatten()
            .map(|t| TraceTag {
                name: t.name.clone(),
                literal: t.literal.clone(),
                header: t.header.as_ref().map(|h| h.name.to_ascii_lowercase()),
                default: t.header.as_ref().and_then(|h| h.default.clone()),
            })
            .collect(),
    })
}

/// targetRef policies over legacy ones on a route (policy reference §4): MeshTimeout and MeshRetry replace what
/// they set; a legacy RateLimit keeps its route limit over MeshRateLimit.
fn over_legacy(legacy: RoutePolicies, new: RoutePolicies) -> RoutePolicies {
    let sets = |kind: PolicyKind| new.applied.iter().any(|a| a.kind == kind.name());
    let retry_replaced = sets(PolicyKind::MeshRetry);
    let timeout_replaced = new.request_timeout_ms.is_some();
    let limit_kept = legacy.rate_limit.is_some();
    let retry = if retry_replaced { new.retry } else { legacy.retry };
    // Whose values are no longer in force is reported as overridden.
    let mark = |mut a: AppliedPolicy, overridden: bool| {
        if overridden {
            a.status = "overridden".to_owned();
            a.values.clear();
        }
        a
    };
    let mut applied: Vec<AppliedPolicy> = legacy
        .applied
        .into_iter()
        .map(|a| {
            let gone = (a.kind == "Retry" && retry_replaced) || (a.kind == "Timeout" && timeout_replaced);
            mark(a, gone)
        })
        .collect();
    applied.extend(new.applied.into_iter().map(|a| {
        let gone = a.kind == PolicyKind::MeshRateLimit.name() && limit_kept;
        mark(a, gone)
    }));
    RoutePolicies {
        request_timeout_ms: new.request_timeout_ms.or(legacy.request_timeout_ms),
        stream_idle_timeout_ms: new.stream_idle_timeout_ms.or(legacy.stream_idle_timeout_ms),
        retry,
        rate_limit: legacy.rate_limit.or(new.rate_limit),
        applied,
    }
}

fn extend_applied(list: &mut Vec<AppliedPolicy>, more: Vec<AppliedPolicy>) {
    for a in more {
        if !list.iter().any(|b| b.kind == a.kind && b.name == a.name) {
            list.push(a);
        }
    }
}

/// The clusters a listener sends to.
fn cluster_names(listener: &Listener) -> Vec<String> {
    let mut names = Vec::new();
    let vhosts = listener.virtual_hosts.iter().chain(listener.tls_chains.iter().flat_map(|c| c.virtual_hosts.iter()));
    for route in vhosts.flat_map(|v| v.routes.iter()) {
        if let meshgate_plan::Action::Forward(f) = &route.action {
            names.extend(f.backends.iter().map(|b| b.cluster.clone()));
            names.extend(f.mirror.iter().map(|m| m.cluster.clone()));
        }
    }
    let tcps = listener.tcp.iter().chain(listener.tls_chains.iter().filter_map(|c| c.tcp.as_ref()));
    for tcp in tcps {
        names.extend(tcp.backends.iter().map(|b| b.cluster.clone()));
    }
    names.sort();
    names.dedup();
    names
}

fn route_policies(
    to: &[Contribution],
    route: &Route,
    subject: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> RoutePolicies {
    let key = &route.source.rule_key;
    let mut rp = RoutePolicies::default();
    let for_route = |kind: PolicyKind| {
        to.iter().filter(move |c| {
            c.kind == kind && c.service.is_none() && c.routes.as_ref().is_none_or(|keys| keys.contains(key))
        })
    };
    if let Some(m) = merge(for_route(PolicyKind::MeshTimeout)) {
        let c: TimeoutConf = typed(&m, subject, diagnostics);
        let http = c.http.unwrap_or_default();
        rp.request_timeout_ms = http.request_timeout.as_ref().map(ms);
        rp.stream_idle_timeout_ms = http.stream_idle_timeout.as_ref().map(ms);
        extend_applied(&mut rp.applied, m.applied);
    }
    if let Some(m) = merge(for_route(PolicyKind::MeshRetry)) {
        let c: RetryConf = typed(&m, subject, diagnostics);
        rp.retry = c.http.and_then(|h| retry_policy(&h, subject, diagnostics));
        extend_applied(&mut rp.applied, m.applied);
    }
    if let Some(m) = merge(for_route(PolicyKind::MeshRateLimit)) {
        let c: RateLimitConf = typed(&m, subject, diagnostics);
        rp.rate_limit = c.local.and_then(|l| l.http).and_then(|h| {
            if h.disabled == Some(true) {
                return None;
            }
            let rate = h.request_rate?;
            let on = h.on_rate_limit.unwrap_or_default();
            let headers = on.headers.as_ref().map(header_ops).unwrap_or_default();
            Some(RateLimit {
                num: rate.num,
                interval_ms: rate.interval.as_ref().map_or(1000, ms),
                status: on.status.and_then(|s| u16::try_from(s).ok()).unwrap_or(429),
                headers,
            })
        });
        extend_applied(&mut rp.applied, m.applied);
    }
    rp
}

/// A policy's `set`/`add` headers as plan header changes.
fn header_ops(changes: &HeaderChanges) -> HeaderOps {
    let pairs =
        |list: &Option<Vec<NameValue>>| list.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect();
    HeaderOps { set: pairs(&changes.set), add: pairs(&changes.add), remove: Vec::new() }
}

/// Kuma's gateway retry policy from a MeshRetry `http` conf: none when `numRetries` is 0.
pub(crate) fn retry_policy(h: &RetryHttp, subject: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<RetryPolicy> {
    let num_retries = h.num_retries.unwrap_or(1);
    if num_retries == 0 {
        return None;
    }
    let back_off = h.back_off.clone().unwrap_or_default();
    let base = back_off.base_interval.as_ref().map_or(25, ms);
    let mut p = RetryPolicy {
        num_retries,
        per_try_timeout_ms: h.per_try_timeout.as_ref().map_or(0, ms),
        base_interval_ms: base,
        max_interval_ms: back_off.max_interval.as_ref().map_or(base.saturating_mul(10), ms),
        on_5xx: false,
        on_gateway_error: false,
        on_reset: false,
        on_connect_failure: false,
        on_retriable_4xx: false,
        statuses: Vec::new(),
        methods: Vec::new(),
    };
    let default_on = ["GatewayError".to_owned(), "ConnectFailure".to_owned(), "RefusedStream".to_owned()];
    for on in h.retry_on.as_deref().unwrap_or(&default_on) {
        match on.as_str() {
            "5xx" => p.on_5xx = true,
            "GatewayError" => p.on_gateway_error = true,
            "Reset" => p.on_reset = true,
            "ConnectFailure" | "RefusedStream" | "Http3PostConnectFailure" => p.on_connect_failure = true,
            "Retriable4xx" => p.on_retriable_4xx = true,
            "EnvoyRatelimited" => {}
            other => {
                if let Some(method) = other.strip_prefix("HttpMethod") {
                    p.methods.push(method.to_ascii_uppercase());
                } else if let Ok(code) = other.parse::<u16>() {
                    p.statuses.push(code);
                } else {
                    diagnostics.push(Diagnostic {
                        severity: Severity::Warning,
                        subject: subject.to_owned(),
                        message: format!("MeshRetry retryOn {other:?} is not supported; ignored"),
                    });
                }
            }
        }
    }
    // Kuma's retryOn lists conditions; methods alone restrict when to retry without adding a condition.
    if !(p.on_5xx || p.on_gateway_error || p.on_reset || p.on_connect_failure || p.on_retriable_4xx)
        && p.statuses.is_empty()
    {
        p.on_connect_failure = true;
    }
    Some(p)
}

fn percentage(p: Option<&meshgate_api::model::targetref::IntOrString>) -> f64 {
    p.and_then(|p| p.as_f64()).unwrap_or(100.0).clamp(0.0, 100.0)
}

/// `10kbps`, `5 Mbps`, `1Gbps` → bytes per second.
fn bandwidth(limit: &str) -> Option<u64> {
    let limit = limit.trim();
    let (num, unit) = limit.split_at(limit.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let bits = match unit.trim() {
        "kbps" => 1_000,
        "Mbps" => 1_000_000,
        "Gbps" => 1_000_000_000,
        _ => return None,
    };
    Some((n * bits / 8).max(1))
}

fn faults(c: &FaultInjectionConf, subject: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<Fault> {
    let mut out = Vec::new();
    for f in c.http.iter().flatten() {
        if let Some(a) = &f.abort {
            match u16::try_from(a.http_status) {
                Ok(status) if (100..600).contains(&status) => {
                    out.push(Fault::Abort { status, percentage: percentage(a.percentage.as_ref()) });
                }
                _ => diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    subject: subject.to_owned(),
                    message: format!(
                        "MeshFaultInjection abort status {} is not an HTTP status; ignored",
                        a.http_status
                    ),
                }),
            }
        }
        if let Some(d) = &f.delay {
            out.push(Fault::Delay {
                delay_ms: d.value.as_ref().map_or(0, ms),
                percentage: percentage(d.percentage.as_ref()),
            });
        }
        if let Some(b) = &f.response_bandwidth {
            match bandwidth(&b.limit) {
                Some(bytes_per_second) => out
                    .push(Fault::ResponseBandwidth { bytes_per_second, percentage: percentage(b.percentage.as_ref()) }),
                None => diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    subject: subject.to_owned(),
                    message: format!("MeshFaultInjection responseBandwidth {:?} is not a bandwidth; ignored", b.limit),
                }),
            }
        }
    }
    out
}

/// What `%KUMA_*%` placeholders stand for on one listener.
pub(crate) struct LogContext<'a> {
    pub(crate) mesh: &'a str,
    pub(crate) service: &'a str,
    pub(crate) address: &'a str,
    pub(crate) protocol: Protocol,
    /// Kuma's listener name (a field of the default JSON lines).
    pub(crate) listener: &'a str,
}

/// Kuma's default HTTP access-log format.
const DEFAULT_HTTP_FORMAT: &str = "[%START_TIME%] %KUMA_MESH% \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-B3-TRACEID?X-DATADOG-TRACEID)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%KUMA_SOURCE_SERVICE%\" \"%KUMA_DESTINATION_SERVICE%\" \"%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%\" \"%UPSTREAM_HOST%\"";
/// The JSON fields of a `type: Json` format that lists none (key, operator, HTTP only).
const DEFAULT_JSON_FIELDS: &[(&str, &str, bool)] = &[
    ("start_time", "%START_TIME%", false),
    ("method", "%REQ(:METHOD)%", true),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", true),
    ("authority", "%REQ(:AUTHORITY)%", true),
    ("protocol", "%PROTOCOL%", true),
    ("response_code", "%RESPONSE_CODE%", true),
    ("response_flags", "%RESPONSE_FLAGS%", false),
    ("duration_ms", "%DURATION%", false),
    ("bytes_received", "%BYTES_RECEIVED%", false),
    ("bytes_sent", "%BYTES_SENT%", false),
    ("route", "%ROUTE_NAME%", true),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%", false),
    ("upstream_host", "%UPSTREAM_HOST%", false),
    ("client", "%DOWNSTREAM_REMOTE_ADDRESS%", false),
];
/// Kuma's default TCP access-log format.
const DEFAULT_TCP_FORMAT: &str = "[%START_TIME%] %RESPONSE_FLAGS% %KUMA_MESH% %KUMA_SOURCE_ADDRESS_WITHOUT_PORT%(%KUMA_SOURCE_SERVICE%)->%UPSTREAM_HOST%(%KUMA_DESTINATION_SERVICE%) took %DURATION%ms, sent %BYTES_SENT% bytes, received: %BYTES_RECEIVED% bytes";

impl LogContext<'_> {
    /// Replaces Kuma's static placeholders (`to` confs: gateway → `*`, outbound; inbound: `unknown` → gateway).
    fn substitute(&self, template: &str, outbound: bool) -> String {
        let (source, destination, direction) =
            if outbound { (self.service, "*", "OUTBOUND") } else { ("unknown", self.service, "INBOUND") };
        template
            .replace("%KUMA_MESH%", self.mesh)
            .replace("%KUMA_SOURCE_SERVICE%", source)
            .replace("%KUMA_DESTINATION_SERVICE%", destination)
            .replace("%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%", self.address)
            .replace("%KUMA_SOURCE_ADDRESS%", &format!("{}:0", self.address))
            .replace("%KUMA_TRAFFIC_DIRECTION%", direction)
            .replace("%KUMA_ZONE%", "")
            .replace("%KUMA_WORKLOAD%", "")
    }

    pub(crate) fn format(&self, f: Option<&ApiLogFormat>, outbound: bool) -> LogFormat {
        let default = if self.protocol.is_http() { DEFAULT_HTTP_FORMAT } else { DEFAULT_TCP_FORMAT };
        match f {
            Some(f) if f.kind == "Json" => {
                let mut fields: Vec<(String, String)> =
                    f.json.iter().flatten().map(|j| (j.key.clone(), self.substitute(&j.value, outbound))).collect();
                if fields.is_empty() {
                    // `type: Json` without fields: the fields an operator reads first.
                    let http = self.protocol.is_http();
                    fields = DEFAULT_JSON_FIELDS
                        .iter()
                        .filter(|(_, _, http_only)| http || !http_only)
                        .map(|(k, v, _)| ((*k).to_owned(), (*v).to_owned()))
                        .chain([("listener".to_owned(), self.listener.to_owned())])
                        .collect();
                }
                LogFormat::Json { fields, omit_empty: f.omit_empty_values.unwrap_or(false) }
            }
            Some(f) => LogFormat::Plain(self.substitute(f.plain.as_deref().unwrap_or(default), outbound)),
            None => LogFormat::Plain(self.substitute(default, outbound)),
        }
    }
}

fn access_logs(
    c: &AccessLogConf,
    ctx: &LogContext<'_>,
    outbound: bool,
    subject: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<AccessLog> {
    let mut out = Vec::new();
    for b in c.backends.iter().flatten() {
        match (b.kind.as_str(), &b.file, &b.tcp) {
            ("File", Some(file), _) => out.push(AccessLog {
                sink: LogSink::File(file.path.clone()),
                format: ctx.format(file.format.as_ref(), outbound),
            }),
            ("Tcp", _, Some(tcp)) => out.push(AccessLog {
                sink: LogSink::Tcp(tcp.address.clone()),
                format: ctx.format(tcp.format.as_ref(), outbound),
            }),
            (kind, _, _) => diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                subject: subject.to_owned(),
                message: format!("MeshAccessLog backend type {kind:?} is not supported by meshgate; ignored"),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386_and_kumas_example() {
        let mut v = json!({"conf": 1, "sub": {"array": [1, 2, 3], "other": 50, "other-array": [3, 4, 5]}});
        merge_patch(&mut v, &json!({"sub": {"array": [], "other-array": [5, 6], "extra": 2}}));
        assert_eq!(v, json!({"conf": 1, "sub": {"array": [], "other": 50, "other-array": [5, 6], "extra": 2}}));
        merge_patch(&mut v, &json!({"conf": null}));
        assert_eq!(v.get("conf"), None);
    }

    #[test]
    fn bandwidths() {
        assert_eq!(bandwidth("8kbps"), Some(1000));
        assert_eq!(bandwidth("1 Mbps"), Some(125_000));
        assert_eq!(bandwidth("1Gbps"), Some(125_000_000));
        assert_eq!(bandwidth("10kb"), None);
    }

    fn contribution(name: &str, conf: Value) -> Contribution {
        Contribution { kind: PolicyKind::MeshTimeout, name: name.to_owned(), conf, routes: None, service: None }
    }

    #[test]
    fn a_policy_whose_every_value_is_replaced_is_reported_overridden() {
        let list = [
            contribution("a", json!({"idleTimeout": "1s", "http": {"requestTimeout": "2s"}})),
            contribution("b", json!({"http": {"requestTimeout": "3s"}})),
            contribution("c", json!({"idleTimeout": "4s"})),
        ];
        let m = merge(list.iter()).unwrap();
        assert_eq!(m.value, json!({"idleTimeout": "4s", "http": {"requestTimeout": "3s"}}));
        let status: Vec<(&str, &str)> = m.applied.iter().map(|a| (a.name.as_str(), a.status.as_str())).collect();
        assert_eq!(status, vec![("a", "overridden"), ("b", "applied"), ("c", "applied")]);
    }

    // ---- Through the compiler: resources in, plan out (policy reference §1, §3, §5). ----

    use crate::tests::compile_text;
    use meshgate_plan::GatewayPlan;

    /// A builtin gateway `gw` (Dataplane `gw-1` at 127.0.0.1, service `gw`, mesh `default`) with `listeners`, and
    /// Dataplanes serving services `a` and `b`.
    fn gateway(listeners: &str) -> String {
        format!(
            "type: Dataplane\nname: gw-1\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    type: BUILTIN\n    tags: {{kuma.io/service: gw}}\n---\ntype: Dataplane\nname: a-1\nnetworking:\n  address: 127.0.0.2\n  inbound: [{{port: 80, tags: {{kuma.io/service: a}}}}]\n---\ntype: Dataplane\nname: b-1\nnetworking:\n  address: 127.0.0.3\n  inbound: [{{port: 80, tags: {{kuma.io/service: b}}}}]\n---\ntype: MeshGateway\nname: gw\nselectors: [{{match: {{kuma.io/service: gw}}}}]\nconf:\n  listeners: {listeners}\n"
        )
    }

    /// One HTTP listener on port 8080, with listener tags `l: one`.
    const HTTP_8080: &str = "[{port: 8080, protocol: HTTP, tags: {l: one}}]";

    /// The whole gateway `gw`.
    const GW: &str = "{kind: MeshGateway, name: gw}";

    /// The listeners of `gw` tagged `l: one`.
    const GW_ONE: &str = "{kind: MeshGateway, name: gw, tags: {l: one}}";

    /// The Mesh resource of mesh `default` without Kuma's initial policies.
    const NO_INITIAL_POLICIES: &str = "---\ntype: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n";

    const INITIAL_TIMEOUT: &str = "mesh-gateways-timeout-all-default";
    const INITIAL_RETRY: &str = "mesh-retry-all-default";

    /// A MeshHTTPRoute `name` (top-level `target`) with one rule: prefix `prefix` to service `service`.
    fn http_route(name: &str, target: &str, prefix: &str, service: &str) -> String {
        format!(
            "---\ntype: MeshHTTPRoute\nname: {name}\nspec:\n  targetRef: {target}\n  to: [{{targetRef: {{kind: Mesh}}, rules: [{{matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}], default: {{backendRefs: [{{kind: MeshService, name: {service}}}]}}}}]}}]\n"
        )
    }

    /// A policy of `kind` named `name` (top-level `target`) with one `to: Mesh` item whose default is `conf`.
    fn to_policy(kind: &str, name: &str, target: &str, conf: &str) -> String {
        format!(
            "---\ntype: {kind}\nname: {name}\nspec:\n  targetRef: {target}\n  to: [{{targetRef: {{kind: Mesh}}, default: {conf}}}]\n"
        )
    }

    /// A policy of `kind` named `name` (top-level `target`) with one `rules` item (inbound) whose default is `conf`.
    fn rules_policy(kind: &str, name: &str, target: &str, conf: &str) -> String {
        format!("---\ntype: {kind}\nname: {name}\nspec:\n  targetRef: {target}\n  rules: [{{default: {conf}}}]\n")
    }

    fn listener_on(plan: &GatewayPlan, port: u16) -> &Listener {
        plan.listeners
            .iter()
            .find(|l| l.port == port)
            .unwrap_or_else(|| panic!("no listener on port {port} in {:?}", plan.listeners))
    }

    /// Every route entry of a listener (there is always at least one).
    fn all_routes(listener: &Listener) -> Vec<&Route> {
        let vhosts =
            listener.virtual_hosts.iter().chain(listener.tls_chains.iter().flat_map(|c| c.virtual_hosts.iter()));
        let routes: Vec<&Route> = vhosts.flat_map(|v| v.routes.iter()).collect();
        assert!(!routes.is_empty(), "{} has no route entries", listener.name);
        routes
    }

    /// (name, status) of the `kind` policies of an `applied` list, in merge order.
    fn statuses<'a>(applied: &'a [AppliedPolicy], kind: &str) -> Vec<(&'a str, &'a str)> {
        applied.iter().filter(|a| a.kind == kind).map(|a| (a.name.as_str(), a.status.as_str())).collect()
    }

    /// The route retry of Kuma's `mesh-retry-all-<mesh>`.
    fn initial_retry() -> RetryPolicy {
        RetryPolicy {
            num_retries: 5,
            per_try_timeout_ms: 16_000,
            base_interval_ms: 25,
            max_interval_ms: 250,
            on_5xx: false,
            on_gateway_error: true,
            on_reset: false,
            on_connect_failure: true,
            on_retriable_4xx: false,
            statuses: Vec::new(),
            methods: Vec::new(),
        }
    }

    #[test]
    fn initial_policies_give_kumas_gateway_timeouts_and_retries_unless_skipped() {
        let kuma = (Some(300_000_u64), Some(500_u64), Some(5_000_u64));
        let unset = (None, None, None);
        let skip = |kinds: &str| format!("---\ntype: Mesh\nname: default\nskipCreatingInitialPolicies: {kinds}\n");
        // (case, Mesh resource, listener idle / request headers / stream idle timeouts, route retry, initial
        // policies in force)
        let cases = [
            ("no Mesh resource", String::new(), kuma, Some(initial_retry()), vec![INITIAL_TIMEOUT, INITIAL_RETRY]),
            (
                "another kind skipped",
                skip("[MeshCircuitBreaker]"),
                kuma,
                Some(initial_retry()),
                vec![INITIAL_TIMEOUT, INITIAL_RETRY],
            ),
            ("all skipped", skip("['*']"), unset, None, vec![]),
            ("MeshRetry skipped", skip("[MeshRetry]"), kuma, None, vec![INITIAL_TIMEOUT]),
            ("MeshTimeout skipped", skip("[MeshTimeout]"), unset, Some(initial_retry()), vec![INITIAL_RETRY]),
        ];
        for (case, mesh, timeouts, retry, in_force) in cases {
            let plan = compile_text(&format!("{}{}{mesh}", gateway(HTTP_8080), http_route("r1", GW, "/a", "a")));
            assert!(plan.diagnostics.is_empty(), "{case}: {:?}", plan.diagnostics);
            let l = listener_on(&plan, 8080);
            let p = &l.policies;
            assert_eq!(
                (p.idle_timeout_ms, p.request_headers_timeout_ms, p.stream_idle_timeout_ms),
                timeouts,
                "{case}: listener timeouts"
            );
            let on_listener: Vec<(&str, &str)> =
                in_force.iter().filter(|n| **n == INITIAL_TIMEOUT).map(|n| (*n, "applied")).collect();
            assert_eq!(statuses(&p.applied, "MeshTimeout"), on_listener, "{case}: listener applied");
            assert_eq!(p.max_connect_attempts, None, "{case}: an HTTP listener takes MeshRetry's http section");
            let on_routes: Vec<(&str, &str)> = in_force.iter().map(|n| (*n, "applied")).collect();
            for r in all_routes(l) {
                assert_eq!(r.policies.retry, retry, "{case}: retry on {:?}", r.path);
                assert_eq!(r.policies.request_timeout_ms, None, "{case}: request timeout on {:?}", r.path);
                assert_eq!(
                    r.policies.stream_idle_timeout_ms, timeouts.2,
                    "{case}: stream idle timeout on {:?}",
                    r.path
                );
                let applied: Vec<(&str, &str)> =
                    r.policies.applied.iter().map(|a| (a.name.as_str(), a.status.as_str())).collect();
                assert_eq!(applied, on_routes, "{case}: applied on {:?}", r.path);
            }
        }
    }

    #[test]
    fn a_policy_on_one_listener_applies_to_every_hostname_of_its_port_and_no_other_port() {
        let listeners = "[{port: 8080, protocol: HTTP, hostname: one.example.com, tags: {l: one}}, {port: 8080, protocol: HTTP, hostname: two.example.com, tags: {l: two}}, {port: 9090, protocol: HTTP, tags: {l: other}}]";
        let text = format!(
            "{}{}{}{}",
            gateway(listeners),
            http_route("r1", GW, "/a", "a"),
            rules_policy(
                "MeshTimeout",
                "listener-one",
                GW_ONE,
                "{idleTimeout: 10m, http: {requestHeadersTimeout: 2s, streamIdleTimeout: 30s}}"
            ),
            to_policy("MeshTimeout", "routes-one", GW_ONE, "{http: {requestTimeout: 3s}}"),
        );
        let plan = compile_text(&text);
        let selected = listener_on(&plan, 8080);
        let p = &selected.policies;
        assert_eq!(
            (p.idle_timeout_ms, p.request_headers_timeout_ms, p.stream_idle_timeout_ms),
            (Some(600_000), Some(2_000), Some(30_000)),
            "the port of the selected listener"
        );
        let mut domains: Vec<&str> = selected.virtual_hosts.iter().map(|v| v.domain.as_str()).collect();
        domains.sort_unstable();
        assert_eq!(domains, vec!["one.example.com", "two.example.com"]);
        for v in &selected.virtual_hosts {
            assert!(!v.routes.is_empty(), "{}", v.domain);
            for r in &v.routes {
                assert_eq!(r.policies.request_timeout_ms, Some(3_000), "{} {:?}: keyed by port", v.domain, r.path);
            }
        }
        let other = listener_on(&plan, 9090);
        let p = &other.policies;
        assert_eq!(
            (p.idle_timeout_ms, p.request_headers_timeout_ms, p.stream_idle_timeout_ms),
            (Some(300_000), Some(500), Some(5_000)),
            "another port keeps the initial timeouts"
        );
        assert!(!p.applied.iter().any(|a| a.name.ends_with("-one")), "{:?}", p.applied);
        for r in all_routes(other) {
            assert_eq!(r.policies.request_timeout_ms, None, "another port: {:?}", r.path);
            assert!(!r.policies.applied.iter().any(|a| a.name.ends_with("-one")), "{:?}", r.policies.applied);
        }
    }

    #[test]
    fn the_highest_priority_policy_wins_and_the_losers_are_reported() {
        let timeout = |name: &str, target: &str, conf: &str| to_policy("MeshTimeout", name, target, conf);
        let one_s = "{http: {requestTimeout: 1s}}";
        let two_s = "{http: {requestTimeout: 2s}}";
        // (case, policies, route request timeout, MeshTimeout (name, status) in merge order)
        let cases = [
            (
                "MeshGateway beats Mesh whatever the names",
                vec![timeout("a-mesh", "{kind: Mesh}", one_s), timeout("z-gateway", GW, two_s)],
                Some(2_000_u64),
                vec![("a-mesh", "overridden"), ("z-gateway", "applied")],
            ),
            (
                "MeshGateway beats Mesh with proxyTypes Gateway",
                vec![timeout("a-mesh", "{kind: Mesh, proxyTypes: [Gateway]}", one_s), timeout("z-gateway", GW, two_s)],
                Some(2_000),
                vec![("a-mesh", "overridden"), ("z-gateway", "applied")],
            ),
            (
                "MeshGateway beats MeshSubset",
                vec![timeout("a-subset", "{kind: MeshSubset, tags: {l: one}}", one_s), timeout("z-gateway", GW, two_s)],
                Some(2_000),
                vec![("a-subset", "overridden"), ("z-gateway", "applied")],
            ),
            (
                "MeshService beats MeshGateway",
                vec![timeout("a-gateway", GW, one_s), timeout("z-service", "{kind: MeshService, name: gw}", two_s)],
                Some(2_000),
                vec![("a-gateway", "overridden"), ("z-service", "applied")],
            ),
            (
                "listener tags beat the whole gateway",
                vec![timeout("a-whole", GW, one_s), timeout("z-tagged", GW_ONE, two_s)],
                Some(2_000),
                vec![("a-whole", "overridden"), ("z-tagged", "applied")],
            ),
            (
                "among equals the smallest name wins",
                vec![timeout("b", GW, two_s), timeout("a", GW, one_s)],
                Some(1_000),
                vec![("b", "overridden"), ("a", "applied")],
            ),
            (
                "a loser with a value that survives stays applied",
                vec![timeout("b", GW, "{http: {requestTimeout: 2s, streamIdleTimeout: 7s}}"), timeout("a", GW, one_s)],
                Some(1_000),
                vec![("b", "applied"), ("a", "applied")],
            ),
        ];
        for (case, policies, request_timeout, want) in cases {
            let text = format!(
                "{}{NO_INITIAL_POLICIES}{}{}",
                gateway(HTTP_8080),
                http_route("r1", GW, "/a", "a"),
                policies.concat()
            );
            let plan = compile_text(&text);
            for r in all_routes(listener_on(&plan, 8080)) {
                assert_eq!(r.policies.request_timeout_ms, request_timeout, "{case}: {:?}", r.path);
                assert_eq!(statuses(&r.policies.applied, "MeshTimeout"), want, "{case}: {:?}", r.path);
            }
        }
    }

    #[test]
    fn partial_confs_merge_deeply_and_connection_timeouts_reach_the_clusters_of_the_port() {
        let listeners = "[{port: 8080, protocol: HTTP, tags: {l: one}}, {port: 9090, protocol: HTTP, tags: {l: two}}]";
        let text = format!(
            "{}{}{}{}{}",
            gateway(listeners),
            http_route("r1", GW_ONE, "/a", "a"),
            http_route("r2", "{kind: MeshGateway, name: gw, tags: {l: two}}", "/b", "b"),
            to_policy("MeshTimeout", "b-low", GW_ONE, "{connectionTimeout: 2s, http: {requestTimeout: 5s}}"),
            to_policy("MeshTimeout", "a-high", GW_ONE, "{http: {streamIdleTimeout: 7s}}"),
        );
        let plan = compile_text(&text);
        for r in all_routes(listener_on(&plan, 8080)) {
            assert_eq!(r.source.name, "r1");
            assert_eq!(
                (r.policies.request_timeout_ms, r.policies.stream_idle_timeout_ms),
                (Some(5_000), Some(7_000)),
                "{:?}",
                r.path
            );
            assert_eq!(
                statuses(&r.policies.applied, "MeshTimeout"),
                vec![(INITIAL_TIMEOUT, "applied"), ("b-low", "applied"), ("a-high", "applied")],
                "{:?}",
                r.path
            );
            // Each policy is credited with the values of its conf still in force after the merge.
            let values = |name: &str| {
                r.policies.applied.iter().find(|a| a.name == name).map(|a| a.values.clone()).unwrap_or_default()
            };
            assert_eq!(values("b-low"), vec!["connectionTimeout", "http.requestTimeout"], "{:?}", r.path);
            assert_eq!(values("a-high"), vec!["http.streamIdleTimeout"], "{:?}", r.path);
            assert!(!values(INITIAL_TIMEOUT).iter().any(|v| v == "http.streamIdleTimeout"), "{:?}", r.path);
        }
        for r in all_routes(listener_on(&plan, 9090)) {
            assert_eq!(r.source.name, "r2");
            assert_eq!(
                (r.policies.request_timeout_ms, r.policies.stream_idle_timeout_ms),
                (None, Some(5_000)),
                "another port keeps the initial policy's: {:?}",
                r.path
            );
        }
        let connect = |name: &str| plan.clusters.get(name).map(|c| c.connect_timeout_ms);
        assert_eq!(connect("a"), Some(Some(2_000)), "{:?}", plan.clusters);
        assert_eq!(connect("b"), Some(None), "{:?}", plan.clusters);
    }

    #[test]
    fn policies_targeting_a_meshhttproute_apply_to_its_rules_only() {
        let r1 = "{kind: MeshHTTPRoute, name: r1}";
        let text = format!(
            "{}{}{}{}{}{}",
            gateway(HTTP_8080),
            http_route("r1", GW, "/a", "a"),
            http_route("r2", GW, "/b", "b"),
            to_policy("MeshTimeout", "a-gateway", GW, "{http: {requestTimeout: 9s}}"),
            to_policy("MeshTimeout", "r1-timeout", r1, "{http: {requestTimeout: 2s}}"),
            to_policy(
                "MeshRateLimit",
                "r1-limit",
                r1,
                "{local: {http: {requestRate: {num: 10, interval: 1s}, onRateLimit: {headers: {set: [{name: x-limited, value: 'true'}], add: [{name: x-why, value: rate}]}}}}}"
            ),
        );
        let plan = compile_text(&text);
        assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
        let l = listener_on(&plan, 8080);
        let limit = RateLimit {
            num: 10,
            interval_ms: 1_000,
            status: 429,
            headers: HeaderOps {
                set: vec![("x-limited".to_owned(), "true".to_owned())],
                add: vec![("x-why".to_owned(), "rate".to_owned())],
                remove: Vec::new(),
            },
        };
        let mut seen = BTreeSet::new();
        for r in all_routes(l) {
            seen.insert(r.source.name.as_str());
            let p = &r.policies;
            match r.source.name.as_str() {
                "r1" => {
                    assert_eq!(p.request_timeout_ms, Some(2_000), "the per-route conf wins: {:?}", r.path);
                    assert_eq!(p.stream_idle_timeout_ms, Some(5_000), "port-wide values stay: {:?}", r.path);
                    assert_eq!(p.rate_limit.as_ref(), Some(&limit), "{:?}", r.path);
                    assert_eq!(
                        statuses(&p.applied, "MeshTimeout"),
                        vec![(INITIAL_TIMEOUT, "applied"), ("a-gateway", "overridden"), ("r1-timeout", "applied")],
                        "{:?}",
                        r.path
                    );
                    assert_eq!(statuses(&p.applied, "MeshRateLimit"), vec![("r1-limit", "applied")], "{:?}", r.path);
                }
                "r2" => {
                    assert_eq!(p.request_timeout_ms, Some(9_000), "{:?}", r.path);
                    assert_eq!(p.stream_idle_timeout_ms, Some(5_000), "{:?}", r.path);
                    assert_eq!(p.rate_limit, None, "{:?}", r.path);
                    assert!(!p.applied.iter().any(|a| a.name.starts_with("r1-")), "{:?}", p.applied);
                }
                other => panic!("unexpected route entry from {other:?}: {r:?}"),
            }
        }
        assert_eq!(seen, BTreeSet::from(["r1", "r2"]));
        assert!(!l.policies.applied.iter().any(|a| a.name.starts_with("r1-")), "{:?}", l.policies.applied);
    }

    #[test]
    fn policies_that_do_not_select_the_gateway_change_nothing() {
        for target in [
            "{kind: Dataplane, name: gw-1}",
            "{kind: Mesh, proxyTypes: [Sidecar]}",
            "{kind: MeshSubset, proxyTypes: [Sidecar], tags: {l: one}}",
            "{kind: MeshSubset, tags: {l: two}}",
            "{kind: MeshGateway, name: other}",
            "{kind: MeshGateway, name: gw, tags: {l: two}}",
            "{kind: MeshService, name: other}",
        ] {
            let text = format!(
                "{}{NO_INITIAL_POLICIES}{}{}{}{}{}",
                gateway(HTTP_8080),
                http_route("r1", GW, "/a", "a"),
                to_policy("MeshTimeout", "outbound", target, "{connectionTimeout: 2s, http: {requestTimeout: 9s}}"),
                rules_policy("MeshTimeout", "inbound", target, "{idleTimeout: 1s}"),
                to_policy("MeshRetry", "retry", target, "{http: {numRetries: 2}}"),
                to_policy(
                    "MeshFaultInjection",
                    "faults",
                    target,
                    "{http: [{abort: {httpStatus: 500, percentage: 100}}]}"
                ),
            );
            let plan = compile_text(&text);
            assert!(plan.diagnostics.is_empty(), "{target}: {:?}", plan.diagnostics);
            let l = listener_on(&plan, 8080);
            assert_eq!(l.policies, meshgate_plan::ListenerPolicies::default(), "{target}");
            for r in all_routes(l) {
                assert_eq!(r.policies, RoutePolicies::default(), "{target}: {:?}", r.path);
            }
            assert!(plan.clusters.values().all(|c| c.connect_timeout_ms.is_none()), "{target}: {:?}", plan.clusters);
        }
    }

    #[test]
    fn a_policy_targeting_a_missing_meshhttproute_is_reported_and_changes_nothing() {
        let text = format!(
            "{}{NO_INITIAL_POLICIES}{}{}",
            gateway(HTTP_8080),
            http_route("r1", GW, "/a", "a"),
            to_policy("MeshTimeout", "orphan", "{kind: MeshHTTPRoute, name: missing}", "{http: {requestTimeout: 2s}}"),
        );
        let plan = compile_text(&text);
        let found: Vec<&Diagnostic> = plan
            .diagnostics
            .iter()
            .filter(|d| d.message.contains("couldn't resolve MeshHTTPRoute targetRef"))
            .collect();
        assert_eq!(found.len(), 1, "{:?}", plan.diagnostics);
        assert_eq!((found[0].severity, found[0].subject.as_str()), (Severity::Warning, "MeshTimeout orphan"));
        for r in all_routes(listener_on(&plan, 8080)) {
            assert_eq!(r.policies, RoutePolicies::default(), "{:?}", r.path);
        }
    }

    #[test]
    fn fault_injection_and_access_logs_apply_to_the_whole_listener() {
        let fault_conf = "{http: [{abort: {httpStatus: 503, percentage: '12.5'}}, {delay: {value: 2s, percentage: 50}}, {responseBandwidth: {limit: 8kbps, percentage: 100}}]}";
        let file_json = r#"{backends: [{type: File, file: {path: /tmp/gw.log, format: {type: Json, omitEmptyValues: true, json: [{key: mesh, value: "%KUMA_MESH%"}, {key: source, value: "%KUMA_SOURCE_SERVICE%"}, {key: destination, value: "%KUMA_DESTINATION_SERVICE%"}, {key: status, value: "%RESPONSE_CODE%"}]}}}, {type: OpenTelemetry, openTelemetry: {endpoint: "otel-collector:4317"}}]}"#;
        let tcp_plain = r#"{backends: [{type: Tcp, tcp: {address: "logs.example:5000", format: {type: Plain, plain: "%KUMA_SOURCE_SERVICE%->%KUMA_DESTINATION_SERVICE% %KUMA_TRAFFIC_DIRECTION% %KUMA_SOURCE_ADDRESS%"}}}]}"#;
        let text = format!(
            "{}{}{}{}{}",
            gateway(HTTP_8080),
            http_route("r1", GW, "/a", "a"),
            to_policy("MeshFaultInjection", "faults", GW, fault_conf),
            to_policy("MeshAccessLog", "outbound-log", GW, file_json),
            rules_policy("MeshAccessLog", "inbound-log", GW, tcp_plain),
        );
        let plan = compile_text(&text);
        let l = listener_on(&plan, 8080);
        assert_eq!(
            l.policies.faults,
            vec![
                Fault::Abort { status: 503, percentage: 12.5 },
                Fault::Delay { delay_ms: 2_000, percentage: 50.0 },
                Fault::ResponseBandwidth { bytes_per_second: 1_000, percentage: 100.0 },
            ]
        );
        let field = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            l.policies.access_logs,
            vec![
                AccessLog {
                    sink: LogSink::File("/tmp/gw.log".to_owned()),
                    format: LogFormat::Json {
                        fields: vec![
                            field("mesh", "default"),
                            field("source", "gw"),
                            field("destination", "*"),
                            field("status", "%RESPONSE_CODE%"),
                        ],
                        omit_empty: true,
                    },
                },
                AccessLog {
                    sink: LogSink::Tcp("logs.example:5000".to_owned()),
                    format: LogFormat::Plain("unknown->gw INBOUND 127.0.0.1:0".to_owned()),
                },
            ],
            "`to` logs first (source: the gateway), then inbound ones (destination: the gateway)"
        );
        assert_eq!(statuses(&l.policies.applied, "MeshFaultInjection"), vec![("faults", "applied")]);
        assert_eq!(
            statuses(&l.policies.applied, "MeshAccessLog"),
            vec![("outbound-log", "applied"), ("inbound-log", "applied")]
        );
        let otel: Vec<&Diagnostic> =
            plan.diagnostics.iter().filter(|d| d.message.contains("\"OpenTelemetry\"")).collect();
        assert_eq!(otel.len(), 1, "{:?}", plan.diagnostics);
        assert_eq!(
            (otel[0].severity, otel[0].subject.as_str()),
            (Severity::Warning, "MeshGateway gw listener gw:HTTP:8080")
        );
        for r in all_routes(l) {
            assert!(
                r.policies.applied.iter().all(|a| a.kind != "MeshFaultInjection" && a.kind != "MeshAccessLog"),
                "{:?}",
                r.policies.applied
            );
        }
    }

    #[test]
    fn access_log_backends_are_replaced_not_appended() {
        let file = |path: &str| format!("{{backends: [{{type: File, file: {{path: {path}}}}}]}}");
        let text = format!(
            "{}{}{}{}",
            gateway(HTTP_8080),
            http_route("r1", GW, "/a", "a"),
            to_policy("MeshAccessLog", "b-log", GW, &file("/tmp/b.log")),
            to_policy("MeshAccessLog", "a-log", GW, &file("/tmp/a.log")),
        );
        let plan = compile_text(&text);
        let l = listener_on(&plan, 8080);
        let sinks: Vec<&LogSink> = l.policies.access_logs.iter().map(|a| &a.sink).collect();
        assert_eq!(sinks, vec![&LogSink::File("/tmp/a.log".to_owned())]);
        let LogFormat::Plain(line) = &l.policies.access_logs[0].format else {
            panic!("Kuma's default format is plain: {:?}", l.policies.access_logs)
        };
        assert!(line.starts_with("[%START_TIME%] default \"%REQ(:METHOD)%"), "{line}");
        assert!(line.contains("\"gw\" \"*\" \"127.0.0.1\" \"%UPSTREAM_HOST%\""), "{line}");
        assert_eq!(statuses(&l.policies.applied, "MeshAccessLog"), vec![("b-log", "overridden"), ("a-log", "applied")]);
    }

    #[test]
    fn meshretry_confs_become_route_retries() {
        // (case, MeshRetry conf on the gateway, merged onto the initial policy's)
        let cases = [
            ("numRetries 0 turns retries off", "{http: {numRetries: 0}}", None),
            (
                "retryOn replaces the default conditions",
                r#"{http: {retryOn: ["5xx", "429", "HttpMethodPost"]}}"#,
                Some(RetryPolicy {
                    on_5xx: true,
                    on_gateway_error: false,
                    on_connect_failure: false,
                    statuses: vec![429],
                    methods: vec!["POST".to_owned()],
                    ..initial_retry()
                }),
            ),
            (
                "what a conf leaves out is the initial policy's",
                "{http: {numRetries: 2, backOff: {baseInterval: 100ms}}}",
                Some(RetryPolicy { num_retries: 2, base_interval_ms: 100, ..initial_retry() }),
            ),
        ];
        for (case, conf, want) in cases {
            let text = format!(
                "{}{}{}",
                gateway(HTTP_8080),
                http_route("r1", GW, "/a", "a"),
                to_policy("MeshRetry", "retry", GW, conf)
            );
            let plan = compile_text(&text);
            assert!(plan.diagnostics.is_empty(), "{case}: {:?}", plan.diagnostics);
            let l = listener_on(&plan, 8080);
            assert_eq!(l.policies.max_connect_attempts, None, "{case}");
            for r in all_routes(l) {
                assert_eq!(r.policies.retry, want, "{case}: {:?}", r.path);
                assert_eq!(
                    statuses(&r.policies.applied, "MeshRetry"),
                    vec![(INITIAL_RETRY, "applied"), ("retry", "applied")],
                    "{case}: {:?}",
                    r.path
                );
            }
        }
    }

    #[test]
    fn tcp_listeners_take_connect_attempts_and_connection_rates() {
        let tcp = "[{port: 9000, protocol: TCP}]";
        let cases = [
            ("the initial policy", String::new(), Some(5_u32)),
            (
                "a MeshRetry on the gateway",
                to_policy("MeshRetry", "tcp-retry", GW, "{tcp: {maxConnectAttempt: 3}}"),
                Some(3),
            ),
            ("no initial policies", NO_INITIAL_POLICIES.to_owned(), None),
        ];
        for (case, extra, want) in cases {
            let plan = compile_text(&format!("{}{extra}", gateway(tcp)));
            let l = listener_on(&plan, 9000);
            assert_eq!(l.policies.max_connect_attempts, want, "{case}");
        }
        let text = format!(
            "{}{}",
            gateway(tcp),
            to_policy("MeshRateLimit", "connections", GW, "{local: {tcp: {connectionRate: {num: 5, interval: 10s}}}}")
        );
        let plan = compile_text(&text);
        let l = listener_on(&plan, 9000);
        assert_eq!(
            l.policies.connection_rate,
            Some(RateLimit { num: 5, interval_ms: 10_000, status: 0, headers: HeaderOps::default() })
        );
        assert_eq!(statuses(&l.policies.applied, "MeshRateLimit"), vec![("connections", "applied")]);
    }

    #[test]
    fn mesh_trace_merges_mesh_under_gateway_and_names_its_collector() {
        let trace = |name: &str, target: &str, conf: &str| {
            format!("---\ntype: MeshTrace\nname: {name}\nspec:\n  targetRef: {target}\n  default: {conf}\n")
        };
        let text = format!(
            "{}{}{}{}",
            gateway(HTTP_8080),
            http_route("r1", GW, "/a", "a"),
            trace(
                "mesh-wide",
                "{kind: Mesh}",
                "{backends: [{type: Zipkin, zipkin: {url: 'http://zipkin:9411/api/v2/spans'}}], sampling: {overall: 10}, tags: [{name: team, literal: core}]}"
            ),
            trace(
                "gateway",
                GW,
                "{backends: [{type: OpenTelemetry, openTelemetry: {endpoint: 'http://otel:4318'}}], sampling: {random: '50.5'}}"
            ),
        );
        let plan = compile_text(&text);
        let l = listener_on(&plan, 8080);
        let t = l.policies.tracing.as_ref().unwrap_or_else(|| panic!("tracing on the listener: {:?}", l.policies));
        // The gateway's backend list replaces the mesh's; sampling and tags merge key by key.
        assert_eq!(t.backend, TraceBackend::Otlp { url: "http://otel:4318/v1/traces".to_owned() });
        assert_eq!((t.overall, t.client, t.random), (10.0, 100.0, 50.5));
        assert_eq!(t.tags.first().map(|t| (t.name.as_str(), t.literal.as_deref())), Some(("team", Some("core"))));
        assert_eq!(t.service, "gw");
        assert_eq!(statuses(&l.policies.applied, "MeshTrace"), vec![("mesh-wide", "applied"), ("gateway", "applied")]);

        // A gRPC endpoint (meshgate speaks OTLP/HTTP) and Datadog turn tracing off, with a diagnostic.
        for backend in [
            "{type: OpenTelemetry, openTelemetry: {endpoint: 'otel:4317'}}",
            "{type: Datadog, datadog: {url: 'http://dd:8126'}}",
        ] {
            let text = format!("{}{}", gateway(HTTP_8080), trace("t", GW, &format!("{{backends: [{backend}]}}")));
            let plan = compile_text(&text);
            assert_eq!(listener_on(&plan, 8080).policies.tracing, None, "{backend}");
            assert!(plan.diagnostics.iter().any(|d| d.message.contains("tracing is off")), "{:?}", plan.diagnostics);
        }
    }
}
