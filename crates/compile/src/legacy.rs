//! Kuma's legacy source/destination policies on the builtin gateway (policy reference §4): `Timeout`, `Retry`,
//! `RateLimit`, `CircuitBreaker`, `HealthCheck` and `TrafficLog`. They run before the targetRef policies, which
//! then override what they set (except MeshRateLimit, which keeps a legacy route limit, as Kuma does).
//!
//! Matching: `sources` against the merged tags of the listener hostname a virtual host comes from (for clusters:
//! of the first listener sending to them), `destinations` against the destination's tags; the policy matching the
//! most tags wins, then the one with more exact (non-`*`) values. Kuma then prefers the newest policy; files carry
//! no creation time, so meshgate takes the first by name and says so in the docs. Legacy `FaultInjection` is matched
//! by Kuma but never applied to gateways; meshgate does the same (and `validate` says so).

use std::collections::BTreeMap;

use meshgate_api::model::common::{SERVICE_TAG, Tags};
use meshgate_api::model::wkt::ProtoDuration;
use meshgate_plan::{
    AccessLog, Action, AppliedPolicy, CircuitBreaker, Cluster, Diagnostic, HeaderOps, HealthCheck, HealthCheckKind,
    Listener, LogFormat, LogSink, Outlier, RateLimit, RetryPolicy, RoutePolicies, Severity,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::index::Index;
use crate::select::{Rank, rank};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Selector {
    #[serde(rename = "match")]
    match_: Tags,
}

/// A legacy policy: selectors and a kind-specific conf.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Legacy<C> {
    sources: Vec<Selector>,
    destinations: Vec<Selector>,
    conf: C,
}

fn ms(d: &ProtoDuration) -> u64 {
    u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TimeoutConf {
    connect_timeout: Option<ProtoDuration>,
    http: Option<TimeoutHttp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TimeoutHttp {
    request_timeout: Option<ProtoDuration>,
    stream_idle_timeout: Option<ProtoDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RetryConf {
    http: Option<RetryHttp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RetryHttp {
    num_retries: Option<u32>,
    per_try_timeout: Option<ProtoDuration>,
    back_off: Option<BackOff>,
    retriable_status_codes: Vec<u32>,
    retriable_methods: Vec<String>,
    retry_on: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct BackOff {
    base_interval: Option<ProtoDuration>,
    max_interval: Option<ProtoDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RateLimitConf {
    http: Option<RateLimitHttp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RateLimitHttp {
    requests: u32,
    interval: Option<ProtoDuration>,
    on_rate_limit: Option<OnRateLimit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct OnRateLimit {
    status: Option<u32>,
    headers: Vec<RateLimitHeader>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RateLimitHeader {
    key: String,
    value: String,
    append: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CircuitBreakerConf {
    interval: Option<ProtoDuration>,
    base_ejection_time: Option<ProtoDuration>,
    max_ejection_percent: Option<u32>,
    split_external_and_local_errors: bool,
    detectors: Option<Detectors>,
    thresholds: Option<Thresholds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Detectors {
    total_errors: Option<Consecutive>,
    gateway_errors: Option<Consecutive>,
    local_errors: Option<Consecutive>,
    standard_deviation: Option<StandardDeviation>,
    failure: Option<Failure>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Consecutive {
    consecutive: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct StandardDeviation {
    request_volume: Option<u32>,
    minimum_hosts: Option<u32>,
    factor: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Failure {
    request_volume: Option<u32>,
    minimum_hosts: Option<u32>,
    threshold: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Thresholds {
    max_connections: Option<u32>,
    max_pending_requests: Option<u32>,
    max_retries: Option<u32>,
    max_requests: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct HealthCheckConf {
    interval: Option<ProtoDuration>,
    timeout: Option<ProtoDuration>,
    unhealthy_threshold: Option<u32>,
    healthy_threshold: Option<u32>,
    interval_jitter: Option<ProtoDuration>,
    healthy_panic_threshold: Option<f64>,
    fail_traffic_on_panic: bool,
    http: Option<HealthCheckHttp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct HealthCheckHttp {
    path: Option<String>,
    expected_statuses: Vec<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TrafficLogConf {
    backend: String,
}

/// The legacy policies of one kind in a mesh, decoded (those that do not decode are reported and skipped).
fn policies<C: DeserializeOwned + Default>(
    index: &Index<'_>,
    mesh: &str,
    kind: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(String, Legacy<C>)> {
    let mut out = Vec::new();
    for &(name, spec) in index.legacy_policies(mesh, kind) {
        match serde_json::from_value::<Legacy<C>>(spec.clone()) {
            Ok(p) => out.push((name.to_owned(), p)),
            Err(e) => diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                subject: format!("{kind} {name}"),
                message: format!("cannot be applied to the gateway: {e}"),
            }),
        }
    }
    out
}

fn best_rank(selectors: &[Selector], tags: &Tags) -> Option<Rank> {
    selectors.iter().filter_map(|s| rank(&s.match_, tags)).max()
}

/// The best policy for a source and a destination: most matched tags, then most exact, then first by name.
fn best<'p, C>(
    policies: &'p [(String, Legacy<C>)],
    source: &Tags,
    destination: &Tags,
) -> Option<&'p (String, Legacy<C>)> {
    let mut winner: Option<(Rank, &(String, Legacy<C>))> = None;
    for p in policies {
        let (Some(s), Some(d)) = (best_rank(&p.1.sources, source), best_rank(&p.1.destinations, destination)) else {
            continue;
        };
        let total = (s.0 + d.0, s.1 + d.1);
        if winner.as_ref().is_none_or(|(r, _)| total > *r) {
            winner = Some((total, p));
        }
    }
    winner.map(|(_, p)| p)
}

fn applied(kind: &str, name: &str) -> AppliedPolicy {
    AppliedPolicy { kind: kind.to_owned(), name: name.to_owned(), status: "applied".to_owned() }
}

/// The tags of the listener hostname a virtual host domain comes from (exact, then a wildcard containing it, then
/// the port's first listener).
fn vhost_tags<'l>(listener: &'l Listener, domain: &str) -> Option<&'l Tags> {
    let contains = |pattern: &str| {
        pattern == "*" || pattern == domain || pattern.strip_prefix('*').is_some_and(|suffix| domain.ends_with(suffix))
    };
    listener
        .hostnames
        .iter()
        .find(|h| h.hostname == domain)
        .or_else(|| listener.hostnames.iter().find(|h| contains(&h.hostname)))
        .or_else(|| listener.hostnames.first())
        .map(|h| &h.tags)
}

/// What the legacy policies set, applied to the plan before the targetRef policies.
pub fn apply(
    index: &Index<'_>,
    mesh: &str,
    gateway_service: &str,
    listeners: &mut [Listener],
    clusters: &mut BTreeMap<String, Cluster>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if !index.has_legacy_policies(mesh) {
        return;
    }
    for (name, _) in index.legacy_policies(mesh, "FaultInjection") {
        diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            subject: format!("FaultInjection {name}"),
            message: "not applied: as in Kuma, legacy FaultInjection does not act on builtin gateways (use \
                      MeshFaultInjection)"
                .to_owned(),
        });
    }
    let timeouts = policies::<TimeoutConf>(index, mesh, "Timeout", diagnostics);
    let retries = policies::<RetryConf>(index, mesh, "Retry", diagnostics);
    let limits = policies::<RateLimitConf>(index, mesh, "RateLimit", diagnostics);
    let breakers = policies::<CircuitBreakerConf>(index, mesh, "CircuitBreaker", diagnostics);
    let checks = policies::<HealthCheckConf>(index, mesh, "HealthCheck", diagnostics);
    let logs = policies::<TrafficLogConf>(index, mesh, "TrafficLog", diagnostics);

    let mut cluster_sources: BTreeMap<String, Tags> = BTreeMap::new();
    for listener in listeners.iter_mut() {
        // TrafficLog: the gateway's own service to any destination.
        let source = listener.hostnames.first().map(|h| h.tags.clone()).unwrap_or_default();
        let any: Tags = [(SERVICE_TAG.to_owned(), "*".to_owned())].into_iter().collect();
        if let Some((name, p)) = best(&logs, &source, &any) {
            if let Some(log) = traffic_log(index, mesh, gateway_service, &p.conf.backend, listener, diagnostics) {
                listener.policies.access_logs.push(log);
                listener.policies.applied.push(applied("TrafficLog", name));
            }
        }
        let domains: Vec<(usize, String)> =
            listener.virtual_hosts.iter().enumerate().map(|(i, v)| (i, v.domain.clone())).collect();
        for (i, domain) in domains {
            let tags = vhost_tags(listener, &domain).cloned().unwrap_or_default();
            for route in &mut listener.virtual_hosts[i].routes {
                route_policies(route, &tags, clusters, &timeouts, &retries, &limits);
                if let Action::Forward(f) = &route.action {
                    for b in &f.backends {
                        cluster_sources.entry(b.cluster.clone()).or_insert_with(|| tags.clone());
                    }
                }
            }
        }
        for chain in &mut listener.tls_chains {
            let tags = listener.hostnames.iter().find(|h| h.hostname == chain.sni).map(|h| h.tags.clone());
            let tags = tags.or_else(|| listener.hostnames.first().map(|h| h.tags.clone())).unwrap_or_default();
            for route in chain.virtual_hosts.iter_mut().flat_map(|v| v.routes.iter_mut()) {
                route_policies(route, &tags, clusters, &timeouts, &retries, &limits);
            }
        }
        for name in listener.tcp.iter().flat_map(|t| t.backends.iter().map(|b| b.cluster.clone())) {
            cluster_sources.entry(name).or_insert_with(|| source.clone());
        }
    }
    for (name, source) in cluster_sources {
        let Some(cluster) = clusters.get_mut(&name) else { continue };
        let destination = cluster.tags.clone();
        if let Some((policy, p)) = best(&timeouts, &source, &destination)
            && let Some(connect) = &p.conf.connect_timeout
        {
            cluster.connect_timeout_ms = Some(ms(connect));
            cluster.applied.push(applied("Timeout", policy));
        }
        if let Some((policy, p)) = best(&breakers, &source, &destination) {
            cluster.circuit_breaker = Some(circuit_breaker(&p.conf));
            cluster.applied.push(applied("CircuitBreaker", policy));
        }
        if let Some((policy, p)) = best(&checks, &source, &destination) {
            cluster.health_check = Some(health_check(&p.conf, cluster_is_http(listeners, &name)));
            cluster.applied.push(applied("HealthCheck", policy));
        }
    }
}

fn cluster_is_http(listeners: &[Listener], cluster: &str) -> bool {
    !listeners.iter().any(|l| {
        !l.protocol.is_http()
            && l.tcp
                .iter()
                .chain(l.tls_chains.iter().filter_map(|c| c.tcp.as_ref()))
                .any(|t| t.backends.iter().any(|b| b.cluster == cluster))
    })
}

fn route_policies(
    route: &mut meshgate_plan::Route,
    source: &Tags,
    clusters: &BTreeMap<String, Cluster>,
    timeouts: &[(String, Legacy<TimeoutConf>)],
    retries: &[(String, Legacy<RetryConf>)],
    limits: &[(String, Legacy<RateLimitConf>)],
) {
    let Action::Forward(f) = &route.action else { return };
    // Kuma picks, per route, the policy for its destinations; with several backends, the best over them.
    let destinations: Vec<&Tags> =
        f.backends.iter().filter_map(|b| clusters.get(&b.cluster)).map(|c| &c.tags).collect();
    let mut rp = RoutePolicies::default();
    if let Some((name, p)) = pick(timeouts, source, &destinations)
        && let Some(http) = &p.conf.http
    {
        rp.request_timeout_ms = http.request_timeout.as_ref().map(ms);
        rp.stream_idle_timeout_ms = http.stream_idle_timeout.as_ref().map(ms);
        rp.applied.push(applied("Timeout", name));
    }
    if let Some((name, p)) = pick(retries, source, &destinations)
        && let Some(http) = &p.conf.http
    {
        rp.retry = retry_policy(http);
        rp.applied.push(applied("Retry", name));
    }
    if let Some((name, p)) = pick(limits, source, &destinations)
        && let Some(http) = &p.conf.http
        && http.requests > 0
    {
        let on = http.on_rate_limit.as_ref();
        let mut headers = HeaderOps::default();
        for h in on.map(|o| o.headers.as_slice()).unwrap_or_default() {
            let pair = (h.key.clone(), h.value.clone());
            if h.append == Some(false) { headers.set.push(pair) } else { headers.add.push(pair) }
        }
        rp.rate_limit = Some(RateLimit {
            num: http.requests,
            interval_ms: http.interval.as_ref().map_or(1000, ms).max(1),
            status: on.and_then(|o| o.status).and_then(|s| u16::try_from(s).ok()).unwrap_or(429),
            headers,
        });
        rp.applied.push(applied("RateLimit", name));
    }
    route.policies = rp;
}

/// The best policy for a route: over its backends' destinations, in order.
fn pick<'p, C>(
    list: &'p [(String, Legacy<C>)],
    source: &Tags,
    destinations: &[&Tags],
) -> Option<&'p (String, Legacy<C>)> {
    destinations.iter().find_map(|d| best(list, source, d))
}

fn retry_policy(h: &RetryHttp) -> Option<RetryPolicy> {
    let num_retries = h.num_retries.unwrap_or(5);
    if num_retries == 0 {
        return None;
    }
    let back_off = h.back_off.as_ref();
    let base = back_off.and_then(|b| b.base_interval.as_ref()).map_or(25, ms);
    let mut p = RetryPolicy {
        num_retries,
        per_try_timeout_ms: h.per_try_timeout.as_ref().map_or(0, ms),
        base_interval_ms: base,
        max_interval_ms: back_off.and_then(|b| b.max_interval.as_ref()).map_or(base.saturating_mul(10), ms),
        on_5xx: false,
        on_gateway_error: false,
        on_reset: false,
        on_connect_failure: false,
        on_retriable_4xx: false,
        statuses: h.retriable_status_codes.iter().filter_map(|c| u16::try_from(*c).ok()).collect(),
        methods: h.retriable_methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
    };
    if h.retry_on.is_empty() {
        p.on_gateway_error = true;
        p.on_connect_failure = true;
    }
    for on in &h.retry_on {
        match on.as_str() {
            "all_5xx" => p.on_5xx = true,
            "gateway_error" => p.on_gateway_error = true,
            "reset" => p.on_reset = true,
            "connect_failure" | "refused_stream" | "http3_post_connect_failure" => p.on_connect_failure = true,
            "retriable_4xx" => p.on_retriable_4xx = true,
            _ => {}
        }
    }
    Some(p)
}

fn circuit_breaker(c: &CircuitBreakerConf) -> CircuitBreaker {
    let t = c.thresholds.as_ref();
    let d = c.detectors.as_ref();
    let outlier = d.map(|d| Outlier {
        interval_ms: c.interval.as_ref().map_or(10_000, ms),
        base_ejection_ms: c.base_ejection_time.as_ref().map_or(30_000, ms),
        max_ejection_percent: c.max_ejection_percent.unwrap_or(10).min(100),
        split_local: c.split_external_and_local_errors,
        consecutive_5xx: d.total_errors.as_ref().map(|x| x.consecutive.unwrap_or(5)),
        consecutive_gateway: d.gateway_errors.as_ref().map(|x| x.consecutive.unwrap_or(5)),
        consecutive_local: d.local_errors.as_ref().map(|x| x.consecutive.unwrap_or(5)),
        success_rate: d
            .standard_deviation
            .as_ref()
            .map(|s| (s.minimum_hosts.unwrap_or(5), s.request_volume.unwrap_or(100), s.factor.unwrap_or(1.9))),
        failure_percentage: d
            .failure
            .as_ref()
            .map(|f| (f.minimum_hosts.unwrap_or(5), f.request_volume.unwrap_or(50), f.threshold.unwrap_or(85))),
    });
    CircuitBreaker {
        max_connections: t.and_then(|t| t.max_connections).unwrap_or(1024),
        max_pending_requests: t.and_then(|t| t.max_pending_requests).unwrap_or(1024),
        max_requests: t.and_then(|t| t.max_requests).unwrap_or(1024),
        max_retries: t.and_then(|t| t.max_retries).unwrap_or(3),
        outlier,
    }
}

fn health_check(c: &HealthCheckConf, http_listener: bool) -> HealthCheck {
    let check = match (&c.http, http_listener) {
        (Some(h), true) => HealthCheckKind::Http {
            path: h.path.clone().unwrap_or_else(|| "/".to_owned()),
            expected_statuses: if h.expected_statuses.is_empty() {
                vec![200]
            } else {
                h.expected_statuses.iter().filter_map(|s| u16::try_from(*s).ok()).collect()
            },
            headers: HeaderOps::default(),
        },
        _ => HealthCheckKind::Tcp { send: Vec::new(), receive: Vec::new() },
    };
    HealthCheck {
        interval_ms: c.interval.as_ref().map_or(60_000, ms).max(1),
        timeout_ms: c.timeout.as_ref().map_or(15_000, ms).max(1),
        unhealthy_threshold: c.unhealthy_threshold.unwrap_or(5).max(1),
        healthy_threshold: c.healthy_threshold.unwrap_or(1).max(1),
        jitter_ms: c.interval_jitter.as_ref().map_or(0, ms),
        panic_threshold: c.healthy_panic_threshold.unwrap_or(50.0),
        fail_traffic_on_panic: c.fail_traffic_on_panic,
        check,
    }
}

/// The access log a TrafficLog names: a backend of the Mesh's `logging` (its default when the policy names none).
fn traffic_log(
    index: &Index<'_>,
    mesh: &str,
    service: &str,
    backend: &str,
    listener: &Listener,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<AccessLog> {
    let logging = index.mesh(mesh).and_then(|m| m.logging.as_ref())?;
    let name = if backend.is_empty() { logging.default_backend.as_str() } else { backend };
    let Some(b) = logging.backends.iter().find(|b| b.name == name) else {
        diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            subject: format!("Mesh {mesh}"),
            message: format!("TrafficLog backend {name:?} is not among logging.backends; no access log"),
        });
        return None;
    };
    let conf = b.conf.clone().unwrap_or_default();
    let field = |k: &str| conf.get(k).and_then(Value::as_str).map(str::to_owned);
    let sink = match b.type_.as_str() {
        "file" => LogSink::File(field("path")?),
        "tcp" => LogSink::Tcp(field("address")?),
        other => {
            diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                subject: format!("Mesh {mesh}"),
                message: format!("logging backend type {other:?} is not supported by meshgate; no access log"),
            });
            return None;
        }
    };
    let template = if b.format.is_empty() {
        if listener.protocol.is_http() {
            crate::policies::DEFAULT_HTTP_FORMAT
        } else {
            crate::policies::DEFAULT_TCP_FORMAT
        }
    } else {
        b.format.as_str()
    };
    let line = template
        .replace("%KUMA_MESH%", mesh)
        .replace("%KUMA_SOURCE_SERVICE%", service)
        .replace("%KUMA_DESTINATION_SERVICE%", "*")
        .replace("%KUMA_TRAFFIC_DIRECTION%", "OUTBOUND");
    Some(AccessLog { sink, format: LogFormat::Plain(line) })
}
