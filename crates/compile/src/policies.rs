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
//! Each mesh also gets Kuma's initial policies (`mesh-gateways-timeout-all-<mesh>`, `mesh-retry-all-<mesh>`)
//! unless its Mesh resource lists them in `skipCreatingInitialPolicies`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use meshgate_api::model::common::{SERVICE_TAG, Tags};
use meshgate_api::model::policy::{
    AccessLogConf, BackOff, FaultInjectionConf, LogFormat as ApiLogFormat, Policy, PolicyItem, PolicyKind, PolicyRule,
    PolicySpec, RateLimitConf, RetryConf, RetryHttp, RetryTcp, TimeoutConf, TimeoutHttp,
};
use meshgate_api::model::targetref::TargetRef;
use meshgate_api::model::wkt::GoDuration;
use meshgate_plan::{
    AccessLog, AppliedPolicy, Cluster, Diagnostic, Fault, HeaderOps, Listener, ListenerPolicies, LogFormat, LogSink,
    Protocol, RateLimit, RetryPolicy, Route, RoutePolicies, Severity,
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

/// What a route needs from the engine to find its per-route policies.
#[derive(Debug)]
struct Contribution {
    kind: PolicyKind,
    name: String,
    conf: Value,
    /// `None`: the whole port; `Some(keys)`: the route entries whose rule key is in `keys`.
    routes: Option<BTreeSet<String>>,
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
            let keys = route.spec.to.iter().flat_map(|t| t.rules.iter().map(|r| rule_key(&r.matches))).collect();
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

/// The `to: Mesh` confs and the inbound (`rules`, `from`) confs of a policy, as JSON.
fn sections<C: Serialize>(p: &Policy<C>) -> (Vec<Value>, Vec<Value>) {
    let json = |c: &C| serde_json::to_value(c).unwrap_or(Value::Null);
    let to = p.to.iter().filter(|t| t.target_ref.kind == "Mesh").map(|t| json(&t.default)).collect();
    let inbound = p
        .rules
        .iter()
        .map(|r: &PolicyRule<C>| json(&r.default))
        .chain(p.from.iter().map(|f| json(&f.default)))
        .collect();
    (to, inbound)
}

fn spec_sections(spec: &PolicySpec) -> (Vec<Value>, Vec<Value>) {
    match spec {
        PolicySpec::MeshTimeout(p) => sections(p),
        PolicySpec::MeshRetry(p) => sections(p),
        PolicySpec::MeshRateLimit(p) => sections(p),
        PolicySpec::MeshFaultInjection(p) => sections(p),
        PolicySpec::MeshAccessLog(p) => sections(p),
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
            let wins = list
                .iter()
                .enumerate()
                .filter(|(_, o)| o.kind == c.kind && o.name == c.name)
                .any(|(j, _)| winner.values().any(|w| *w == j));
            AppliedPolicy {
                kind: c.kind.name().to_owned(),
                name: c.name.clone(),
                status: if wins { "applied" } else { "overridden" }.to_owned(),
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
        for conf in to {
            confs.to.push(Contribution { kind, name: s.name.clone(), conf, routes: s.routes.clone() });
        }
        if s.routes.is_none() {
            for conf in inbound {
                confs.inbound.push(Contribution { kind, name: s.name.clone(), conf, routes: None });
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
    for listener in listeners.iter_mut() {
        let confs = port_confs(&selected, listener);
        let port_wide = |kind: PolicyKind| confs.to.iter().filter(move |c| c.kind == kind && c.routes.is_none());
        let inbound = |kind: PolicyKind| confs.inbound.iter().filter(move |c| c.kind == kind);
        let subject = format!("MeshGateway {gateway} listener {}", listener.name);
        let mut lp = ListenerPolicies::default();

        // MeshTimeout: inbound → listener; outbound → clusters (connect) and routes.
        if let Some(m) = merge(inbound(PolicyKind::MeshTimeout)) {
            let c: TimeoutConf = typed(&m, &subject, diagnostics);
            lp.idle_timeout_ms = c.idle_timeout.as_ref().map(ms);
            let http = c.http.unwrap_or_default();
            lp.request_headers_timeout_ms = http.request_headers_timeout.as_ref().map(ms);
            lp.stream_idle_timeout_ms = http.stream_idle_timeout.as_ref().map(ms);
            lp.applied.extend(m.applied);
        }
        if let Some(m) = merge(port_wide(PolicyKind::MeshTimeout)) {
            let c: TimeoutConf = typed(&m, &subject, diagnostics);
            if let Some(connect) = c.connection_timeout.as_ref().map(ms) {
                for name in cluster_names(listener) {
                    if let Some(cluster) = clusters.get_mut(&name)
                        && cluster.connect_timeout_ms.is_none()
                    {
                        cluster.connect_timeout_ms = Some(connect);
                    }
                }
            }
            extend_applied(&mut lp.applied, m.applied);
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
        let log_ctx = LogContext { mesh, service: &service, address: dp_address, protocol: listener.protocol };
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
        listener.policies = lp;

        // Routes: port-wide outbound confs merged with those of policies targeting the route's MeshHTTPRoute.
        if listener.protocol.is_http() {
            let routes = listener
                .virtual_hosts
                .iter_mut()
                .chain(listener.tls_chains.iter_mut().flat_map(|c| c.virtual_hosts.iter_mut()))
                .flat_map(|v| v.routes.iter_mut());
            for route in routes {
                route.policies = route_policies(&confs.to, route, &subject, diagnostics);
            }
        }
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
        to.iter().filter(move |c| c.kind == kind && c.routes.as_ref().is_none_or(|keys| keys.contains(key)))
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
            let mut headers = HeaderOps::default();
            if let Some(changes) = on.headers {
                headers.set = changes.set.unwrap_or_default().into_iter().map(|h| (h.name, h.value)).collect();
                headers.add = changes.add.unwrap_or_default().into_iter().map(|h| (h.name, h.value)).collect();
            }
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

/// Kuma's gateway retry policy from a MeshRetry `http` conf: none when `numRetries` is 0.
fn retry_policy(h: &RetryHttp, subject: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<RetryPolicy> {
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
struct LogContext<'a> {
    mesh: &'a str,
    service: &'a str,
    address: &'a str,
    protocol: Protocol,
}

/// Kuma's default HTTP access-log format.
const DEFAULT_HTTP_FORMAT: &str = "[%START_TIME%] %KUMA_MESH% \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-B3-TRACEID?X-DATADOG-TRACEID)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%KUMA_SOURCE_SERVICE%\" \"%KUMA_DESTINATION_SERVICE%\" \"%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%\" \"%UPSTREAM_HOST%\"";
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

    fn format(&self, f: Option<&ApiLogFormat>, outbound: bool) -> LogFormat {
        let default = if self.protocol.is_http() { DEFAULT_HTTP_FORMAT } else { DEFAULT_TCP_FORMAT };
        match f {
            Some(f) if f.kind == "Json" => LogFormat::Json {
                fields: f.json.iter().flatten().map(|j| (j.key.clone(), self.substitute(&j.value, outbound))).collect(),
                omit_empty: f.omit_empty_values.unwrap_or(false),
            },
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
        Contribution { kind: PolicyKind::MeshTimeout, name: name.to_owned(), conf, routes: None }
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
}
