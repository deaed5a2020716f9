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
use meshgate_api::model::policy::{self as policy_api, LogFormat as ApiLogFormat};
use meshgate_api::model::targetref::IntOrString;
use meshgate_api::model::wkt::ProtoDuration;
use meshgate_plan::{
    AccessLog, Action, AppliedPolicy, CircuitBreaker, Cluster, Diagnostic, HeaderOps, HealthCheck, Listener, LogSink,
    Protocol, RateLimit, RetryPolicy, RoutePolicies, Severity,
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
        match serde_json::from_value::<Legacy<C>>(camel_case_keys(spec)) {
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

/// The spec with snake_case keys written in camelCase (proto JSON accepts both; Kuma's own test data uses both).
fn camel_case_keys(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let mut key = String::with_capacity(k.len());
                    let mut upper = false;
                    for c in k.chars() {
                        if c == '_' {
                            upper = true;
                        } else if upper {
                            key.extend(c.to_uppercase());
                            upper = false;
                        } else {
                            key.push(c);
                        }
                    }
                    // Tag keys (under `match`) are data, not field names.
                    let nested = if k == "match" { v.clone() } else { camel_case_keys(v) };
                    (key, nested)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(camel_case_keys).collect()),
        other => other.clone(),
    }
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
    AppliedPolicy { kind: kind.to_owned(), name: name.to_owned(), status: "applied".to_owned(), values: Vec::new() }
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
    address: &str,
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
        if let Some((name, p)) = best(&logs, &source, &any)
            && let Some(log) =
                traffic_log(index, mesh, gateway_service, address, &p.conf.backend, listener, diagnostics)
        {
            listener.policies.access_logs.push(log);
            listener.policies.applied.push(applied("TrafficLog", name));
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
                if let Action::Forward(f) = &route.action {
                    for b in f.backends.iter().map(|b| &b.cluster).chain(f.mirror.iter().map(|m| &m.cluster)) {
                        cluster_sources.entry(b.clone()).or_insert_with(|| tags.clone());
                    }
                }
            }
            for b in chain.tcp.iter().flat_map(|t| t.backends.iter()) {
                cluster_sources.entry(b.cluster.clone()).or_insert_with(|| tags.clone());
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
            let protocol = if cluster_is_http(listeners, &name) { Protocol::Http } else { Protocol::Tcp };
            cluster.health_check = health_check(&p.conf, protocol);
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
        // Kuma's gateway takes only the request timeout from a legacy Timeout onto routes.
        rp.request_timeout_ms = http.request_timeout.as_ref().map(ms);
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
            // Kuma leaves `append` false when unset: the header is set.
            if h.append == Some(true) { headers.add.push(pair) } else { headers.set.push(pair) }
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

/// A legacy Retry's `http` conf in MeshRetry's terms, so that one conversion (`policies::retry_policy`) makes both.
fn retry_policy(h: &RetryHttp) -> Option<RetryPolicy> {
    let mut on: Vec<String> = h
        .retry_on
        .iter()
        .filter_map(|c| {
            Some(match c.as_str() {
                "all_5xx" => "5xx",
                "gateway_error" => "GatewayError",
                "reset" => "Reset",
                "connect_failure" => "ConnectFailure",
                "refused_stream" => "RefusedStream",
                "http3_post_connect_failure" => "Http3PostConnectFailure",
                "retriable_4xx" => "Retriable4xx",
                _ => return None,
            })
        })
        .map(str::to_owned)
        .chain(h.retriable_status_codes.iter().map(u32::to_string))
        .collect();
    if on.is_empty() {
        // Kuma's default conditions when the policy lists none.
        on = vec!["GatewayError".to_owned(), "ConnectFailure".to_owned()];
    }
    on.extend(h.retriable_methods.iter().map(|m| format!("HttpMethod{}", m.to_ascii_uppercase())));
    let back_off = h.back_off.as_ref().map(|b| policy_api::BackOff {
        base_interval: b.base_interval.map(|d| d.0.into()),
        max_interval: b.max_interval.map(|d| d.0.into()),
    });
    let conf = policy_api::RetryHttp {
        num_retries: h.num_retries,
        per_try_timeout: h.per_try_timeout.map(|d| d.0.into()),
        back_off,
        retry_on: Some(on),
        ..policy_api::RetryHttp::default()
    };
    crate::policies::retry_policy(&conf, "", &mut Vec::new())
}

/// A legacy CircuitBreaker in MeshCircuitBreaker's terms (one conversion, `policies::circuit_breaker`, makes both).
fn circuit_breaker(c: &CircuitBreakerConf) -> CircuitBreaker {
    let consecutive =
        |x: &Option<Consecutive>| x.as_ref().map(|x| policy_api::Consecutive { consecutive: x.consecutive });
    let t = c.thresholds.as_ref();
    let conf = policy_api::CircuitBreakerConf {
        connection_limits: Some(policy_api::ConnectionLimits {
            max_connections: t.and_then(|t| t.max_connections),
            max_pending_requests: t.and_then(|t| t.max_pending_requests),
            max_retries: t.and_then(|t| t.max_retries),
            max_requests: t.and_then(|t| t.max_requests),
            max_connection_pools: None,
        }),
        outlier_detection: c.detectors.as_ref().map(|d| policy_api::OutlierDetection {
            interval: c.interval.map(|d| d.0.into()),
            base_ejection_time: c.base_ejection_time.map(|d| d.0.into()),
            max_ejection_percent: c.max_ejection_percent,
            split_external_and_local_errors: Some(c.split_external_and_local_errors),
            detectors: Some(policy_api::Detectors {
                total_failures: consecutive(&d.total_errors),
                gateway_failures: consecutive(&d.gateway_errors),
                local_origin_failures: consecutive(&d.local_errors),
                success_rate: d.standard_deviation.as_ref().map(|s| policy_api::SuccessRate {
                    minimum_hosts: s.minimum_hosts,
                    request_volume: s.request_volume,
                    standard_deviation_factor: s.factor.map(|f| IntOrString::Str(f.to_string())),
                }),
                failure_percentage: d.failure.as_ref().map(|f| policy_api::FailurePercentage {
                    minimum_hosts: f.minimum_hosts,
                    request_volume: f.request_volume,
                    threshold: f.threshold,
                }),
            }),
            ..policy_api::OutlierDetection::default()
        }),
    };
    crate::policies::circuit_breaker(&conf)
}

/// A legacy HealthCheck in MeshHealthCheck's terms (one conversion, `policies::health_check`, makes both): an HTTP
/// check on HTTP listeners when it has one, else a TCP check.
fn health_check(c: &HealthCheckConf, protocol: Protocol) -> Option<HealthCheck> {
    let conf = policy_api::HealthCheckConf {
        interval: c.interval.map(|d| d.0.into()),
        timeout: c.timeout.map(|d| d.0.into()),
        unhealthy_threshold: c.unhealthy_threshold.and_then(|v| i32::try_from(v).ok()),
        healthy_threshold: c.healthy_threshold.and_then(|v| i32::try_from(v).ok()),
        interval_jitter: c.interval_jitter.map(|d| d.0.into()),
        healthy_panic_threshold: c.healthy_panic_threshold.map(|p| IntOrString::Str(p.to_string())),
        fail_traffic_on_panic: Some(c.fail_traffic_on_panic),
        http: c.http.as_ref().map(|h| policy_api::HttpHealthCheck {
            path: h.path.clone(),
            expected_statuses: (!h.expected_statuses.is_empty())
                .then(|| h.expected_statuses.iter().filter_map(|s| i32::try_from(*s).ok()).collect()),
            ..policy_api::HttpHealthCheck::default()
        }),
        tcp: Some(policy_api::TcpHealthCheck::default()),
        ..policy_api::HealthCheckConf::default()
    };
    crate::policies::health_check(&conf, protocol)
}

/// The access log a TrafficLog names: a backend of the Mesh's `logging` (its default when the policy names none).
fn traffic_log(
    index: &Index<'_>,
    mesh: &str,
    service: &str,
    address: &str,
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
    let ctx =
        crate::policies::LogContext { mesh, service, address, protocol: listener.protocol, listener: &listener.name };
    let format = ApiLogFormat {
        kind: "Plain".to_owned(),
        plain: (!b.format.is_empty()).then(|| b.format.clone()),
        ..ApiLogFormat::default()
    };
    Some(AccessLog { sink, format: ctx.format(Some(&format), true) })
}

#[cfg(test)]
mod tests {
    //! Through the compiler: resources in, plan out (policy reference §4).

    use meshgate_plan::{
        AccessLog, Action, AppliedPolicy, CircuitBreaker, Cluster, GatewayPlan, HeaderOps, HealthCheck,
        HealthCheckKind, Listener, LogFormat, LogSink, Outlier, RateLimit, RetryPolicy, Route, Severity,
    };

    use crate::tests::compile_text;

    /// A builtin gateway `gw` (Dataplane `gw-1` at 127.0.0.1, service `gw`, mesh `default`) with `listeners`, and
    /// Dataplanes serving services `a` and `b`.
    fn gateway(listeners: &str) -> String {
        format!(
            "type: Dataplane\nname: gw-1\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    type: BUILTIN\n    tags: {{kuma.io/service: gw}}\n---\ntype: Dataplane\nname: a-1\nnetworking:\n  address: 127.0.0.2\n  inbound: [{{port: 80, tags: {{kuma.io/service: a}}}}]\n---\ntype: Dataplane\nname: b-1\nnetworking:\n  address: 127.0.0.3\n  inbound: [{{port: 80, tags: {{kuma.io/service: b}}}}]\n---\ntype: MeshGateway\nname: gw\nselectors: [{{match: {{kuma.io/service: gw}}}}]\nconf:\n  listeners: {listeners}\n"
        )
    }

    /// One HTTP listener on port 8080, with listener tags `l: one`.
    const HTTP_8080: &str = "[{port: 8080, protocol: HTTP, tags: {l: one}}]";

    /// The Mesh resource of mesh `default` without Kuma's initial (targetRef) policies.
    const NO_INITIAL_POLICIES: &str = "---\ntype: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n";

    /// A MeshGatewayRoute `r` on `gw`: prefix `/a` to service `a`, prefix `/b` to service `b`.
    const ROUTES: &str = "---\ntype: MeshGatewayRoute\nname: r\nselectors: [{match: {kuma.io/service: gw}}]\nconf:\n  http:\n    rules:\n    - matches: [{path: {match: PREFIX, value: /a}}]\n      backends: [{destination: {kuma.io/service: a}}]\n    - matches: [{path: {match: PREFIX, value: /b}}]\n      backends: [{destination: {kuma.io/service: b}}]\n";

    /// Selectors: the gateway's service, any service, service `a`.
    const GW: &str = "{kuma.io/service: gw}";
    const ANY: &str = "{kuma.io/service: '*'}";
    const A: &str = "{kuma.io/service: a}";

    /// A legacy policy of `kind` named `name` with one source and one destination selector (`match` maps) and `conf`.
    fn legacy(kind: &str, name: &str, source: &str, destination: &str, conf: &str) -> String {
        format!(
            "---\ntype: {kind}\nname: {name}\nsources: [{{match: {source}}}]\ndestinations: [{{match: {destination}}}]\nconf: {conf}\n"
        )
    }

    /// Every route entry of the plan that forwards to `cluster` (there is at least one).
    fn routes_to<'p>(plan: &'p GatewayPlan, cluster: &str) -> Vec<&'p Route> {
        let routes: Vec<&Route> = plan
            .listeners
            .iter()
            .flat_map(|l| l.virtual_hosts.iter().chain(l.tls_chains.iter().flat_map(|c| c.virtual_hosts.iter())))
            .flat_map(|v| v.routes.iter())
            .filter(|r| matches!(&r.action, Action::Forward(f) if f.backends.iter().any(|b| b.cluster == cluster)))
            .collect();
        assert!(!routes.is_empty(), "no route entry forwards to {cluster}: {:?}", plan.listeners);
        routes
    }

    fn cluster<'p>(plan: &'p GatewayPlan, name: &str) -> &'p Cluster {
        plan.clusters.get(name).unwrap_or_else(|| panic!("no cluster {name} in {:?}", plan.clusters.keys()))
    }

    fn listener_on(plan: &GatewayPlan, port: u16) -> &Listener {
        plan.listeners
            .iter()
            .find(|l| l.port == port)
            .unwrap_or_else(|| panic!("no listener on port {port} in {:?}", plan.listeners))
    }

    /// (name, status) of the `kind` policies of an `applied` list, in order.
    fn statuses<'a>(applied: &'a [AppliedPolicy], kind: &str) -> Vec<(&'a str, &'a str)> {
        applied.iter().filter(|a| a.kind == kind).map(|a| (a.name.as_str(), a.status.as_str())).collect()
    }

    #[test]
    fn a_timeout_sets_the_routes_and_the_cluster_of_its_destination() {
        let text = format!(
            "{}{NO_INITIAL_POLICIES}{ROUTES}{}",
            gateway(HTTP_8080),
            legacy("Timeout", "t", GW, A, "{connectTimeout: 2s, http: {requestTimeout: 3s}}"),
        );
        let plan = compile_text(&text);
        assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
        for r in routes_to(&plan, "a") {
            assert_eq!(r.policies.request_timeout_ms, Some(3_000), "{:?}", r.path);
            assert_eq!(r.policies.stream_idle_timeout_ms, None, "{:?}", r.path);
            assert_eq!(statuses(&r.policies.applied, "Timeout"), vec![("t", "applied")], "{:?}", r.path);
        }
        for r in routes_to(&plan, "b") {
            assert_eq!(r.policies.request_timeout_ms, None, "another destination: {:?}", r.path);
            assert!(r.policies.applied.is_empty(), "{:?}: {:?}", r.path, r.policies.applied);
        }
        let a = cluster(&plan, "a");
        assert_eq!(a.connect_timeout_ms, Some(2_000));
        assert_eq!(statuses(&a.applied, "Timeout"), vec![("t", "applied")]);
        let b = cluster(&plan, "b");
        assert_eq!(b.connect_timeout_ms, None);
        assert!(b.applied.is_empty(), "{:?}", b.applied);
    }

    #[test]
    fn targetref_policies_replace_a_legacy_retry_but_not_a_legacy_rate_limit() {
        // No Mesh resource: Kuma's initial policies (mesh-retry-all-default among them) exist.
        let mesh_rate_limit = "---\ntype: MeshRateLimit\nname: gateway-limit\nspec:\n  targetRef: {kind: MeshGateway, name: gw}\n  to: [{targetRef: {kind: Mesh}, default: {local: {http: {requestRate: {num: 100, interval: 1s}}}}}]\n";
        let text = format!(
            "{}{ROUTES}{}{}{mesh_rate_limit}",
            gateway(HTTP_8080),
            legacy("Retry", "legacy-retry", GW, ANY, "{http: {numRetries: 2}}"),
            legacy("RateLimit", "legacy-limit", GW, ANY, "{http: {requests: 5, interval: 10s}}"),
        );
        let plan = compile_text(&text);
        let initial_retry = RetryPolicy {
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
        };
        let legacy_limit = RateLimit { num: 5, interval_ms: 10_000, status: 429, headers: HeaderOps::default() };
        for service in ["a", "b"] {
            for r in routes_to(&plan, service) {
                let p = &r.policies;
                assert_eq!(p.retry.as_ref(), Some(&initial_retry), "MeshRetry wins: {service} {:?}", r.path);
                assert_eq!(p.rate_limit.as_ref(), Some(&legacy_limit), "RateLimit stays: {service} {:?}", r.path);
                let applied: Vec<(&str, &str)> = p.applied.iter().map(|a| (a.kind.as_str(), a.name.as_str())).collect();
                for want in
                    [("Retry", "legacy-retry"), ("RateLimit", "legacy-limit"), ("MeshRetry", "mesh-retry-all-default")]
                {
                    assert!(applied.contains(&want), "{want:?} in {applied:?}: {service} {:?}", r.path);
                }
            }
        }
    }

    #[test]
    fn the_best_matching_policy_applies() {
        let timeout = |name: &str, source: &str, destination: &str, secs: u32| {
            legacy("Timeout", name, source, destination, &format!("{{http: {{requestTimeout: {secs}s}}}}"))
        };
        // (case, policies, (request timeout, Timeout in force) on the routes to `a`, the same on the routes to `b`)
        type Expect<'a> = (Option<u64>, Option<&'a str>);
        let cases: [(&str, Vec<String>, Expect, Expect); 4] = [
            (
                "a named destination beats `*`, whatever the names",
                vec![timeout("a-any", GW, ANY, 1), timeout("z-named", GW, A, 2)],
                (Some(2_000), Some("z-named")),
                (Some(1_000), Some("a-any")),
            ),
            (
                "among equals the first by name wins",
                vec![timeout("b-second", GW, A, 4), timeout("a-first", GW, A, 3)],
                (Some(3_000), Some("a-first")),
                (None, None),
            ),
            (
                "more matched source tags win (listener tags are merged in)",
                vec![timeout("a-service", GW, A, 1), timeout("z-listener", "{kuma.io/service: gw, l: one}", A, 2)],
                (Some(2_000), Some("z-listener")),
                (None, None),
            ),
            (
                "sources must match the listener's merged tags",
                vec![
                    timeout("other-service", "{kuma.io/service: other}", ANY, 1),
                    timeout("other-listener", "{kuma.io/service: gw, l: two}", ANY, 2),
                ],
                (None, None),
                (None, None),
            ),
        ];
        for (case, policies, want_a, want_b) in cases {
            let text = format!("{}{NO_INITIAL_POLICIES}{ROUTES}{}", gateway(HTTP_8080), policies.concat());
            let plan = compile_text(&text);
            assert!(plan.diagnostics.is_empty(), "{case}: {:?}", plan.diagnostics);
            for (service, (timeout_ms, policy)) in [("a", want_a), ("b", want_b)] {
                for r in routes_to(&plan, service) {
                    let names: Vec<&str> =
                        statuses(&r.policies.applied, "Timeout").into_iter().map(|(n, _)| n).collect();
                    assert_eq!(
                        (r.policies.request_timeout_ms, names),
                        (timeout_ms, policy.into_iter().collect::<Vec<&str>>()),
                        "{case}: routes to {service}: {:?}",
                        r.path
                    );
                }
            }
        }
    }

    #[test]
    fn a_retry_becomes_the_route_retry_policy_and_zero_retries_none() {
        let conf = "{http: {numRetries: 2, perTryTimeout: 0.5s, retriableStatusCodes: [503], retryOn: [all_5xx], backOff: {baseInterval: 0.01s, maxInterval: 0.1s}}}";
        let text =
            format!("{}{NO_INITIAL_POLICIES}{ROUTES}{}", gateway(HTTP_8080), legacy("Retry", "retry", GW, A, conf));
        let plan = compile_text(&text);
        assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
        let want = RetryPolicy {
            num_retries: 2,
            per_try_timeout_ms: 500,
            base_interval_ms: 10,
            max_interval_ms: 100,
            on_5xx: true,
            on_gateway_error: false,
            on_reset: false,
            on_connect_failure: false,
            on_retriable_4xx: false,
            statuses: vec![503],
            methods: Vec::new(),
        };
        for r in routes_to(&plan, "a") {
            assert_eq!(r.policies.retry.as_ref(), Some(&want), "{:?}", r.path);
            assert_eq!(statuses(&r.policies.applied, "Retry"), vec![("retry", "applied")], "{:?}", r.path);
        }
        for r in routes_to(&plan, "b") {
            assert_eq!(r.policies.retry, None, "another destination: {:?}", r.path);
        }

        let text = format!(
            "{}{NO_INITIAL_POLICIES}{ROUTES}{}",
            gateway(HTTP_8080),
            legacy("Retry", "off", GW, ANY, "{http: {numRetries: 0}}")
        );
        let plan = compile_text(&text);
        for service in ["a", "b"] {
            for r in routes_to(&plan, service) {
                assert_eq!(r.policies.retry, None, "numRetries 0: {service} {:?}", r.path);
            }
        }
    }

    #[test]
    fn a_rate_limit_becomes_the_route_rate_limit() {
        let conf = "{http: {requests: 5, interval: 10s, onRateLimit: {status: 423, headers: [{key: x-a, value: '1', append: true}, {key: x-b, value: '2', append: false}]}}}";
        let text =
            format!("{}{NO_INITIAL_POLICIES}{ROUTES}{}", gateway(HTTP_8080), legacy("RateLimit", "limit", GW, A, conf));
        let plan = compile_text(&text);
        assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
        let want = RateLimit {
            num: 5,
            interval_ms: 10_000,
            status: 423,
            headers: HeaderOps {
                set: vec![("x-b".to_owned(), "2".to_owned())],
                add: vec![("x-a".to_owned(), "1".to_owned())],
                remove: Vec::new(),
            },
        };
        for r in routes_to(&plan, "a") {
            assert_eq!(r.policies.rate_limit.as_ref(), Some(&want), "{:?}", r.path);
            assert_eq!(statuses(&r.policies.applied, "RateLimit"), vec![("limit", "applied")], "{:?}", r.path);
        }
        for r in routes_to(&plan, "b") {
            assert_eq!(r.policies.rate_limit, None, "another destination: {:?}", r.path);
        }
    }

    #[test]
    fn circuit_breakers_and_health_checks_reach_the_clusters() {
        let breaker = "{interval: 5s, baseEjectionTime: 20s, maxEjectionPercent: 50, splitExternalAndLocalErrors: true, thresholds: {maxConnections: 10, maxPendingRequests: 20, maxRetries: 4, maxRequests: 30}, detectors: {totalErrors: {consecutive: 7}, gatewayErrors: {}, standardDeviation: {requestVolume: 20, minimumHosts: 3, factor: 1.5}, failure: {requestVolume: 30, minimumHosts: 2, threshold: 70}}}";
        let check = "{interval: 10s, timeout: 2s, unhealthyThreshold: 3, healthyThreshold: 2, http: {path: /health, expectedStatuses: [200, 204]}}";
        let text = format!(
            "{}{NO_INITIAL_POLICIES}{ROUTES}{}{}",
            gateway(HTTP_8080),
            legacy("CircuitBreaker", "breaker", GW, A, breaker),
            legacy("HealthCheck", "check", GW, A, check),
        );
        let plan = compile_text(&text);
        assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
        let a = cluster(&plan, "a");
        assert_eq!(
            a.circuit_breaker,
            Some(CircuitBreaker {
                max_connections: 10,
                max_pending_requests: 20,
                max_requests: 30,
                max_retries: 4,
                outlier: Some(Outlier {
                    interval_ms: 5_000,
                    base_ejection_ms: 20_000,
                    max_ejection_percent: 50,
                    split_local: true,
                    consecutive_5xx: Some(7),
                    consecutive_gateway: Some(5),
                    consecutive_local: None,
                    success_rate: Some((3, 20, 1.5)),
                    failure_percentage: Some((2, 30, 70)),
                }),
            })
        );
        let health_check = |check: HealthCheckKind| HealthCheck {
            interval_ms: 10_000,
            timeout_ms: 2_000,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            jitter_ms: 0,
            panic_threshold: 50.0,
            fail_traffic_on_panic: false,
            check,
        };
        assert_eq!(
            a.health_check,
            Some(health_check(HealthCheckKind::Http {
                path: "/health".to_owned(),
                expected_statuses: vec![200, 204],
                headers: HeaderOps::default(),
            }))
        );
        assert_eq!(
            statuses(&a.applied, "CircuitBreaker")
                .into_iter()
                .chain(statuses(&a.applied, "HealthCheck"))
                .collect::<Vec<_>>(),
            vec![("breaker", "applied"), ("check", "applied")]
        );
        let b = cluster(&plan, "b");
        assert_eq!(b.circuit_breaker, None, "another destination");
        assert_eq!(b.health_check, None, "another destination");

        // On a TCP listener the same check connects only.
        let tcp_route = "---\ntype: MeshGatewayRoute\nname: tcp\nselectors: [{match: {kuma.io/service: gw}}]\nconf: {tcp: {rules: [{backends: [{destination: {kuma.io/service: a}}]}]}}\n";
        let text = format!(
            "{}{NO_INITIAL_POLICIES}{tcp_route}{}",
            gateway("[{port: 9000, protocol: TCP}]"),
            legacy("HealthCheck", "check", GW, A, check),
        );
        let plan = compile_text(&text);
        assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
        let tcp: Option<Vec<&str>> =
            listener_on(&plan, 9000).tcp.as_ref().map(|t| t.backends.iter().map(|b| b.cluster.as_str()).collect());
        assert_eq!(tcp, Some(vec!["a"]));
        assert_eq!(
            cluster(&plan, "a").health_check,
            Some(health_check(HealthCheckKind::Tcp { send: Vec::new(), receive: Vec::new() }))
        );
    }

    #[test]
    fn a_traffic_log_adds_the_mesh_logging_backend_to_the_listener() {
        let mesh = "---\ntype: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\nlogging:\n  defaultBackend: file-log\n  backends:\n  - name: file-log\n    type: file\n    format: '%KUMA_MESH% %RESPONSE_CODE%'\n    conf: {path: /tmp/x.log}\n";
        let file_log = AccessLog {
            sink: LogSink::File("/tmp/x.log".to_owned()),
            format: LogFormat::Plain("default %RESPONSE_CODE%".to_owned()),
        };
        for (case, conf) in [("named backend", "{backend: file-log}"), ("the mesh's default backend", "{}")] {
            let text = format!("{}{mesh}{ROUTES}{}", gateway(HTTP_8080), legacy("TrafficLog", "log", GW, ANY, conf));
            let plan = compile_text(&text);
            assert!(plan.diagnostics.is_empty(), "{case}: {:?}", plan.diagnostics);
            let p = &listener_on(&plan, 8080).policies;
            assert_eq!(p.access_logs, vec![file_log.clone()], "{case}");
            assert_eq!(statuses(&p.applied, "TrafficLog"), vec![("log", "applied")], "{case}");
        }

        let text = format!(
            "{}{mesh}{ROUTES}{}",
            gateway(HTTP_8080),
            legacy("TrafficLog", "log", GW, ANY, "{backend: missing}")
        );
        let plan = compile_text(&text);
        let p = &listener_on(&plan, 8080).policies;
        assert!(p.access_logs.is_empty(), "{:?}", p.access_logs);
        assert!(statuses(&p.applied, "TrafficLog").is_empty(), "{:?}", p.applied);
        assert!(
            plan.diagnostics.iter().any(|d| d.severity == Severity::Warning
                && d.subject == "Mesh default"
                && d.message.contains("\"missing\"")),
            "{:?}",
            plan.diagnostics
        );
    }

    #[test]
    fn a_fault_injection_is_reported_and_not_applied() {
        let base = format!("{}{NO_INITIAL_POLICIES}{ROUTES}", gateway(HTTP_8080));
        let without = compile_text(&base);
        assert!(without.diagnostics.is_empty(), "{:?}", without.diagnostics);
        let fault = legacy("FaultInjection", "faults", GW, ANY, "{abort: {httpStatus: 500, percentage: 100}}");
        let with = compile_text(&format!("{base}{fault}"));
        assert_eq!(with.listeners, without.listeners);
        assert_eq!(with.clusters, without.clusters);
        assert_eq!(with.diagnostics.len(), 1, "{:?}", with.diagnostics);
        let d = &with.diagnostics[0];
        assert_eq!((d.severity, d.subject.as_str()), (Severity::Warning, "FaultInjection faults"));
        assert!(d.message.starts_with("not applied"), "{}", d.message);
    }

    #[test]
    fn a_policy_whose_conf_does_not_decode_is_reported_and_has_no_effect() {
        let base = format!("{}{NO_INITIAL_POLICIES}{ROUTES}", gateway(HTTP_8080));
        let without = compile_text(&base);
        for (kind, conf, why) in [
            ("Timeout", "{http: {requestTimeout: 400ms}}", "400ms"),
            ("RateLimit", "{http: {requests: many}}", "many"),
            ("Retry", "{http: {numRetries: -1}}", "-1"),
        ] {
            let with = compile_text(&format!("{base}{}", legacy(kind, "bad", GW, ANY, conf)));
            assert_eq!(with.listeners, without.listeners, "{kind}");
            assert_eq!(with.clusters, without.clusters, "{kind}");
            assert_eq!(with.diagnostics.len(), 1, "{kind}: {:?}", with.diagnostics);
            let d = &with.diagnostics[0];
            let subject = format!("{kind} bad");
            assert_eq!((d.severity, d.subject.as_str()), (Severity::Warning, subject.as_str()));
            assert!(d.message.starts_with("cannot be applied to the gateway: "), "{kind}: {}", d.message);
            assert!(d.message.contains(why), "{kind}: {}", d.message);
        }
    }

    #[test]
    fn targetref_policies_over_legacy_ones_are_reported_and_breakers_merge() {
        // No Mesh resource: the initial MeshRetry and MeshCircuitBreaker apply over the legacy policies.
        let text = format!(
            "{}{ROUTES}{}{}",
            gateway(HTTP_8080),
            legacy("Retry", "old-retry", GW, A, "{http: {numRetries: 2}}"),
            legacy(
                "CircuitBreaker",
                "old-cb",
                GW,
                A,
                "{thresholds: {maxConnections: 7}, detectors: {totalErrors: {consecutive: 4}}}"
            ),
        );
        let plan = crate::tests::compile_text(&text);
        for r in routes_to(&plan, "a") {
            let retry = r.policies.applied.iter().find(|a| a.kind == "Retry").expect("the legacy Retry is listed");
            assert_eq!(retry.status, "overridden", "{:?}", r.policies.applied);
            assert_eq!(r.policies.retry.as_ref().map(|p| p.num_retries), Some(5), "mesh-retry-all's 5 retries");
        }
        let cb = cluster(&plan, "a").circuit_breaker.clone().expect("a breaker");
        // The initial MeshCircuitBreaker sets every limit; the legacy outlier detection stays.
        assert_eq!((cb.max_connections, cb.max_requests, cb.max_retries), (1024, 1024, 3));
        assert_eq!(cb.outlier.and_then(|o| o.consecutive_5xx), Some(4));
    }
}
