//! Validation of the targetRef policies meshgate interprets (Kuma `meshtimeout`, `meshretry`, `meshratelimit`,
//! `meshfaultinjection`, `meshaccesslog`, `meshcircuitbreaker`, `meshhealthcheck`, `meshloadbalancingstrategy`,
//! `meshtrace` `api/v1alpha1/validator.go`); paths are rooted at `spec`.

use std::sync::LazyLock;

use regex::Regex;

use super::Errors;
use super::targetref::{TargetRefOpts, validate_target_ref};
use crate::model::policy::{
    AccessLogConf, CircuitBreakerConf, Consecutive, FaultInjectionConf, HashPolicy, HealthCheckConf, LoadBalancingConf,
    LogFormat, MeshTrace, Policy, PolicySpec, Rate, RateLimitConf, RetryConf, TimeoutConf, TimeoutHttp, TraceBackend,
};
use crate::model::targetref::{IntOrString, TargetRef};
use crate::model::wkt::GoDuration;
use crate::path::Path;

const MUST_NOT_BE_DEFINED: &str = "must not be defined";
const MUST_BE_DEFINED: &str = "must be defined";
const MUST_NOT_BE_EMPTY: &str = "must not be empty";
const NOT_NEGATIVE: &str = "must not be negative when defined";
const GREATER_THAN_ZERO: &str = "must be greater than zero when defined";

/// Kuma's `IncludesGateways`: whether a top-level targetRef can select builtin gateways.
pub fn includes_gateways(t: Option<&TargetRef>) -> bool {
    let Some(t) = t else { return true };
    match t.kind.as_str() {
        "MeshGateway" | "MeshHTTPRoute" => true,
        "Mesh" | "MeshSubset" => t.proxy_types.is_empty() || t.proxy_types.iter().any(|p| p == "Gateway"),
        _ => false,
    }
}

pub(super) fn validate(policy: &PolicySpec) -> Errors {
    match policy {
        PolicySpec::MeshTimeout(p) => timeout(p),
        PolicySpec::MeshRetry(p) => retry(p),
        PolicySpec::MeshRateLimit(p) => rate_limit(p),
        PolicySpec::MeshFaultInjection(p) => fault_injection(p),
        PolicySpec::MeshAccessLog(p) => access_log(p),
        PolicySpec::MeshCircuitBreaker(p) => circuit_breaker(p),
        PolicySpec::MeshHealthCheck(p) => health_check(p),
        PolicySpec::MeshLoadBalancingStrategy(p) => load_balancing(p),
        PolicySpec::MeshTrace(p) => trace(p),
    }
}

fn top_kind<C>(p: &Policy<C>) -> &str {
    p.target_ref.as_ref().map_or("Mesh", |t| t.kind.as_str())
}

fn top(errs: &mut Errors, spec: &Path, t: Option<&TargetRef>, kinds: &'static [&'static str]) {
    if let Some(t) = t {
        let opts = TargetRefOpts { supported_kinds: kinds, gateway_listener_tags_allowed: true, ..Default::default() };
        errs.add_at(&spec.field("targetRef"), validate_target_ref(t, &opts));
    }
}

fn item_ref(errs: &mut Errors, path: &Path, t: &TargetRef, kinds: &'static [&'static str]) {
    let opts = TargetRefOpts { supported_kinds: kinds, ..Default::default() };
    errs.add_at(&path.field("targetRef"), validate_target_ref(t, &opts));
}

fn not_negative(errs: &mut Errors, path: Path, d: Option<&GoDuration>) {
    if d.is_some_and(GoDuration::is_negative) {
        errs.add(path, NOT_NEGATIVE);
    }
}

fn at_least_one_section<C>(errs: &mut Errors, spec: &Path, p: &Policy<C>) {
    if p.to.is_empty() && p.from.is_empty() && p.rules.is_empty() {
        errs.add(spec.clone(), "at least one of 'from', 'to' or 'rules' has to be defined");
    }
    if !p.rules.is_empty() && (!p.to.is_empty() || !p.from.is_empty()) {
        errs.add(spec.clone(), "fields 'to' and 'from' must be empty when 'rules' is defined");
    }
}

fn timeout(p: &Policy<TimeoutConf>) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    top(
        &mut errs,
        &spec,
        p.target_ref.as_ref(),
        &["Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "MeshHTTPRoute"],
    );
    at_least_one_section(&mut errs, &spec, p);
    let kind = top_kind(p);
    let gateway_or_route = matches!(kind, "MeshGateway" | "MeshHTTPRoute");
    if gateway_or_route && !p.from.is_empty() {
        errs.add(spec.field("from"), MUST_NOT_BE_DEFINED);
    } else {
        for (i, item) in p.from.iter().enumerate() {
            let path = spec.field("from").index(i);
            item_ref(&mut errs, &path, &item.target_ref, &["Mesh"]);
            timeout_conf(&mut errs, path.field("default"), &item.default, kind);
        }
    }
    for (i, item) in p.to.iter().enumerate() {
        let path = spec.field("to").index(i);
        item_ref(&mut errs, &path, &item.target_ref, to_kinds(gateway_or_route));
        timeout_conf(&mut errs, path.field("default"), &item.default, kind);
    }
    for (i, rule) in p.rules.iter().enumerate() {
        timeout_conf(&mut errs, spec.field("rules").index(i).field("default"), &rule.default, kind);
    }
    errs
}

/// The `to` kinds of MeshTimeout and MeshRetry: under a gateway or route only the whole mesh (or a
/// MeshExternalService), else also services.
fn to_kinds(gateway_or_route: bool) -> &'static [&'static str] {
    if gateway_or_route {
        &["Mesh", "MeshExternalService"]
    } else {
        &["Mesh", "MeshService", "MeshExternalService", "MeshMultiZoneService"]
    }
}

fn timeout_conf(errs: &mut Errors, path: Path, conf: &TimeoutConf, top_kind: &str) {
    if conf.connection_timeout.is_none() && conf.idle_timeout.is_none() && conf.http.is_none() {
        errs.add(path, "at least one timeout should be configured");
        return;
    }
    if top_kind == "MeshHTTPRoute" {
        let msg = "can't be specified when top-level TargetRef is referencing MeshHTTPRoute";
        if conf.connection_timeout.is_some() {
            errs.add(path.field("connectionTimeout"), msg);
        }
        if conf.idle_timeout.is_some() {
            errs.add(path.field("idleTimeout"), msg);
        }
        if let Some(http) = &conf.http {
            if http.max_stream_duration.is_some() {
                errs.add(path.field("http").field("maxStreamDuration"), msg);
            }
            if http.max_connection_duration.is_some() {
                errs.add(path.field("http").field("maxConnectionDuration"), msg);
            }
        }
    }
    if conf.connection_timeout.as_ref().is_some_and(GoDuration::is_zero_or_negative) {
        errs.add(path.field("connectionTimeout"), GREATER_THAN_ZERO);
    }
    not_negative(errs, path.field("idleTimeout"), conf.idle_timeout.as_ref());
    if let Some(http) = &conf.http {
        timeout_http(errs, path.field("http"), http);
    }
}

fn timeout_http(errs: &mut Errors, path: Path, http: &TimeoutHttp) {
    if http.request_timeout.is_none()
        && http.stream_idle_timeout.is_none()
        && http.max_stream_duration.is_none()
        && http.max_connection_duration.is_none()
    {
        errs.add(path.clone(), "at least one timeout in this section should be configured");
    }
    not_negative(errs, path.field("requestTimeout"), http.request_timeout.as_ref());
    not_negative(errs, path.field("streamIdleTimeout"), http.stream_idle_timeout.as_ref());
    not_negative(errs, path.field("maxStreamDuration"), http.max_stream_duration.as_ref());
    not_negative(errs, path.field("maxConnectionDuration"), http.max_connection_duration.as_ref());
    not_negative(errs, path.field("requestHeadersTimeout"), http.request_headers_timeout.as_ref());
}

const HTTP_RETRY_ON: &[&str] = &[
    "5xx",
    "GatewayError",
    "Reset",
    "Retriable4xx",
    "ConnectFailure",
    "EnvoyRatelimited",
    "RefusedStream",
    "Http3PostConnectFailure",
    "HttpMethodConnect",
    "HttpMethodDelete",
    "HttpMethodGet",
    "HttpMethodHead",
    "HttpMethodOptions",
    "HttpMethodPatch",
    "HttpMethodPost",
    "HttpMethodPut",
    "HttpMethodTrace",
];
const GRPC_RETRY_ON: &[&str] = &["Canceled", "DeadlineExceeded", "Internal", "ResourceExhausted", "Unavailable"];

/// Whether `code` is a status code Go's `http.StatusText` names.
fn known_status(code: &str) -> bool {
    code.parse::<u16>().is_ok_and(|c| {
        matches!(c, 100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429 | 431
            | 451 | 500..=508 | 510 | 511)
    })
}

fn retry(p: &Policy<RetryConf>) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    top(
        &mut errs,
        &spec,
        p.target_ref.as_ref(),
        &["Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "MeshHTTPRoute"],
    );
    if p.to.is_empty() {
        errs.add(spec.field("to"), "needs at least one item");
    }
    let gateway_or_route = matches!(top_kind(p), "MeshGateway" | "MeshHTTPRoute");
    for (i, item) in p.to.iter().enumerate() {
        let path = spec.field("to").index(i);
        item_ref(&mut errs, &path, &item.target_ref, to_kinds(gateway_or_route));
        // Kuma roots the conf's violations at `conf` under `default`.
        let conf_path = path.field("default").field("conf");
        let c = &item.default;
        if c.tcp.is_none() && c.http.is_none() && c.grpc.is_none() {
            errs.add(conf_path.clone(), "at least one of the 'tcp', 'http', 'grpc' must be specified");
        }
        if let Some(tcp) = &c.tcp {
            match tcp.max_connect_attempt {
                None => errs.add(conf_path.field("tcp"), MUST_NOT_BE_EMPTY),
                Some(0) => errs.add(conf_path.field("tcp").field("maxConnectAttempt"), "must be greater than zero"),
                Some(_) => {}
            }
        }
        if let Some(http) = &c.http {
            let hp = conf_path.field("http");
            if http.num_retries.is_none()
                && http.per_try_timeout.is_none()
                && http.back_off.is_none()
                && http.retry_on.is_none()
                && http.retriable_request_headers.is_none()
                && http.retriable_response_headers.is_none()
                && http.rate_limited_back_off.is_none()
                && http.host_selection.is_none()
            {
                errs.add(hp.clone(), MUST_NOT_BE_EMPTY);
            }
            back_off(&mut errs, &hp, http.back_off.as_ref(), http.rate_limited_back_off.as_ref());
            for (j, on) in http.retry_on.iter().flatten().enumerate() {
                if !HTTP_RETRY_ON.contains(&on.as_str()) && !known_status(on) {
                    errs.add(hp.field("retryOn").index(j), format!("unknown item '{on}'"));
                }
            }
            let mut priority_set = false;
            for (j, pred) in http.host_selection.iter().flatten().enumerate() {
                let pp = hp.field("hostSelection").index(j);
                match pred.predicate.as_str() {
                    "OmitHostsWithTags" if pred.tags.is_none() => errs.add(pp.field("tags"), MUST_BE_DEFINED),
                    "OmitPreviousPriorities" => {
                        if priority_set {
                            errs.add(pp.field("predicate"), "OmitPreviousPriorities must only be specified once");
                        }
                        if pred.update_frequency.unwrap_or(0) <= 0 {
                            errs.add(pp.field("updateFrequency"), "must be defined and greater than zero");
                        }
                        priority_set = true;
                    }
                    "OmitHostsWithTags" | "OmitPreviousHosts" => {}
                    other => errs.add(pp.field("predicate"), format!("unknown predicate type '{other}'")),
                }
            }
        }
        if let Some(grpc) = &c.grpc {
            let gp = conf_path.field("grpc");
            if grpc.num_retries.is_none()
                && grpc.per_try_timeout.is_none()
                && grpc.back_off.is_none()
                && grpc.retry_on.is_none()
                && grpc.rate_limited_back_off.is_none()
            {
                errs.add(gp.clone(), MUST_NOT_BE_EMPTY);
            }
            back_off(&mut errs, &gp, grpc.back_off.as_ref(), grpc.rate_limited_back_off.as_ref());
            for (j, on) in grpc.retry_on.iter().flatten().enumerate() {
                if !GRPC_RETRY_ON.contains(&on.as_str()) {
                    errs.add(gp.field("retryOn").index(j), format!("unknown item '{on}'"));
                }
            }
        }
    }
    errs
}

fn back_off(
    errs: &mut Errors,
    path: &Path,
    b: Option<&crate::model::policy::BackOff>,
    r: Option<&crate::model::policy::RateLimitedBackOff>,
) {
    if let Some(b) = b
        && b.base_interval.is_none()
        && b.max_interval.is_none()
    {
        errs.add(path.field("backOff"), MUST_NOT_BE_EMPTY);
    }
    if let Some(r) = r {
        let rp = path.field("rateLimitedBackOff");
        if r.max_interval.as_ref().is_some_and(GoDuration::is_zero_or_negative) {
            errs.add(rp.field("maxInterval"), "must be defined and greater than zero");
        }
        match &r.reset_headers {
            None => errs.add(rp.field("resetHeaders"), MUST_BE_DEFINED),
            Some(headers) => {
                for (i, h) in headers.iter().enumerate() {
                    if h.name.is_empty() {
                        errs.add(rp.field("resetHeaders").index(i).field("name"), MUST_BE_DEFINED);
                    }
                }
            }
        }
    }
}

fn rate_limit(p: &Policy<RateLimitConf>) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    let t = p.target_ref.as_ref();
    top(
        &mut errs,
        &spec,
        t,
        &["Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "MeshHTTPRoute"],
    );
    let gateways = includes_gateways(t);
    if !p.rules.is_empty() && (!p.to.is_empty() || !p.from.is_empty()) {
        errs.add(spec.clone(), "fields 'to' and 'from' must be empty when 'rules' is defined");
    }
    if top_kind(p) == "MeshHTTPRoute" && !p.from.is_empty() {
        errs.add(spec.field("from"), "must not be defined when spec.kind is MeshHTTPRoute");
    } else if gateways && !p.from.is_empty() {
        errs.add(
            spec.field("from"),
            "must not be defined when the scope includes a Gateway, select only proxyType Sidecar or select only \
             gateways and use spec.to",
        );
    } else {
        for (i, item) in p.from.iter().enumerate() {
            let path = spec.field("from").index(i);
            item_ref(&mut errs, &path, &item.target_ref, &["Mesh"]);
            rate_limit_conf(&mut errs, path.field("default"), &item.default);
        }
    }
    if !gateways && !p.to.is_empty() {
        errs.add(spec.field("to"), MUST_NOT_BE_DEFINED);
    } else {
        for (i, item) in p.to.iter().enumerate() {
            let path = spec.field("to").index(i);
            item_ref(&mut errs, &path, &item.target_ref, &["Mesh"]);
            rate_limit_conf(&mut errs, path.field("default"), &item.default);
        }
    }
    if gateways && !p.rules.is_empty() {
        errs.add(spec.field("rules"), MUST_NOT_BE_DEFINED);
    } else {
        for (i, rule) in p.rules.iter().enumerate() {
            rate_limit_conf(&mut errs, spec.field("rules").index(i).field("default"), &rule.default);
        }
    }
    errs
}

fn rate_limit_conf(errs: &mut Errors, path: Path, conf: &RateLimitConf) {
    let path = path.field("local");
    let Some(local) = &conf.local else {
        errs.add(path, MUST_BE_DEFINED);
        return;
    };
    if local.tcp.is_none() && local.http.is_none() {
        errs.add(path.clone(), "must have at least one defined: tcp, http");
    }
    if let Some(http) = &local.http {
        let hp = path.field("http");
        if http.disabled.is_none() && http.request_rate.is_none() && http.on_rate_limit.is_none() {
            errs.add(hp, "must have at least one defined: disabled, requestRate, onRateLimit");
        } else {
            if let Some(rate) = &http.request_rate {
                validate_rate(errs, hp.field("requestRate"), rate);
            }
            if let Some(status) = http.on_rate_limit.as_ref().and_then(|o| o.status)
                && status == 0
            {
                errs.add(hp.field("onRateLimit").field("status"), "must be greater than 0");
            }
        }
    }
    if let Some(tcp) = &local.tcp {
        let tp = path.field("tcp");
        if tcp.disabled.is_none() && tcp.connection_rate.is_none() {
            errs.add(tp, "must have at least one defined: disabled, connectionRate");
        } else if let Some(rate) = &tcp.connection_rate {
            validate_rate(errs, tp.field("connectionRate"), rate);
        }
    }
}

fn validate_rate(errs: &mut Errors, path: Path, rate: &Rate) {
    if rate.num == 0 {
        errs.add(path.field("num"), "must be greater than 0");
    }
    // Kuma's interval is not optional: a missing one is zero.
    if rate.interval.as_ref().is_none_or(|i| i.is_negative() || i.get() <= std::time::Duration::from_millis(50)) {
        errs.add(path.field("interval"), "must be greater than: 50ms");
    }
}

#[allow(clippy::expect_used)]
static BANDWIDTH: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(\d*)\s?([GMk]+bps)$").expect("static regex"));

fn percentage(errs: &mut Errors, path: Path, p: Option<&IntOrString>) {
    match p {
        None => errs.add(path, MUST_BE_DEFINED),
        Some(p) => match p.as_f64() {
            None => errs.add(path, "string must be a valid number"),
            Some(v) if !(0.0..=100.0).contains(&v) => errs.add(path, "must be in inclusive range [0.0, 100.0]"),
            Some(_) => {}
        },
    }
}

fn fault_injection(p: &Policy<FaultInjectionConf>) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    top(
        &mut errs,
        &spec,
        p.target_ref.as_ref(),
        &["Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset"],
    );
    let on_gateway = includes_gateways(p.target_ref.as_ref());
    if on_gateway && !p.from.is_empty() {
        errs.add(spec.field("from"), MUST_NOT_BE_DEFINED);
    } else {
        for (i, item) in p.from.iter().enumerate() {
            let path = spec.field("from").index(i);
            item_ref(&mut errs, &path, &item.target_ref, &["Mesh", "MeshSubset", "MeshServiceSubset", "MeshService"]);
            fault_conf(&mut errs, path.field("default"), &item.default);
        }
    }
    if !on_gateway && !p.to.is_empty() {
        errs.add(spec.field("to"), MUST_NOT_BE_DEFINED);
    } else {
        for (i, item) in p.to.iter().enumerate() {
            let path = spec.field("to").index(i);
            item_ref(&mut errs, &path, &item.target_ref, &["Mesh"]);
            fault_conf(&mut errs, path.field("default"), &item.default);
        }
    }
    errs
}

fn fault_conf(errs: &mut Errors, path: Path, conf: &FaultInjectionConf) {
    let path = path.field("http");
    for (i, fault) in conf.http.iter().flatten().enumerate() {
        // Kuma indexes the fault type, not the list (`http.abort[0]`), and names `responseBandwidth` twice.
        if let Some(abort) = &fault.abort {
            let ap = path.field("abort").index(i);
            if !(100..600).contains(&abort.http_status) {
                errs.add(ap.field("httpStatus"), "must be in inclusive range [100, 599]");
            }
            percentage(errs, ap.field("percentage"), abort.percentage.as_ref());
        }
        if let Some(delay) = &fault.delay {
            let dp = path.field("delay").index(i);
            match &delay.value {
                None => errs.add(dp.field("value"), MUST_BE_DEFINED),
                Some(v) if v.is_negative() => errs.add(dp.field("value"), NOT_NEGATIVE),
                Some(_) => {}
            }
            percentage(errs, dp.field("percentage"), delay.percentage.as_ref());
        }
        if let Some(bw) = &fault.response_bandwidth {
            let bp = path.field("responseBandwidth").index(i);
            if bw.limit.is_empty() {
                errs.add(bp.field("responseBandwidth"), MUST_BE_DEFINED);
            } else if !BANDWIDTH.is_match(&bw.limit) {
                errs.add(bp.field("responseBandwidth"), "must be in kbps/Mbps/Gbps units");
            }
            percentage(errs, bp.field("percentage"), bw.percentage.as_ref());
        }
    }
}

fn access_log(p: &Policy<AccessLogConf>) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    top(
        &mut errs,
        &spec,
        p.target_ref.as_ref(),
        &["Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "MeshHTTPRoute"],
    );
    at_least_one_section(&mut errs, &spec, p);
    let to_kinds: &'static [&'static str] = if top_kind(p) == "MeshGateway" {
        &["Mesh"]
    } else {
        &["Mesh", "MeshService", "MeshExternalService", "MeshMultiZoneService"]
    };
    for (i, item) in p.to.iter().enumerate() {
        item_ref(&mut errs, &spec.field("to").index(i), &item.target_ref, to_kinds);
    }
    for (i, item) in p.from.iter().enumerate() {
        item_ref(&mut errs, &spec.field("from").index(i), &item.target_ref, &["Mesh"]);
    }
    for (i, item) in p.to.iter().enumerate() {
        access_log_conf(&mut errs, &spec.field("to").index(i).field("default"), &item.default);
    }
    for (i, item) in p.from.iter().enumerate() {
        access_log_conf(&mut errs, &spec.field("from").index(i).field("default"), &item.default);
    }
    for (i, rule) in p.rules.iter().enumerate() {
        access_log_conf(&mut errs, &spec.field("rules").index(i).field("default"), &rule.default);
    }
    errs
}

/// Kuma's checks of a MeshAccessLog conf: backends, their destinations and line formats.
fn access_log_conf(errs: &mut Errors, path: &Path, conf: &AccessLogConf) {
    let Some(backends) = &conf.backends else {
        return errs.add(path.field("backends"), MUST_BE_DEFINED);
    };
    for (i, b) in backends.iter().enumerate() {
        let at = path.field("backends").index(i);
        match b.kind.as_str() {
            "File" => {
                let Some(file) = &b.file else {
                    errs.add(at.field("file"), MUST_BE_DEFINED);
                    continue;
                };
                if let Some(format) = &file.format {
                    log_format(errs, &at.field("file").field("format"), format);
                }
                if file.path.is_empty() || file.path.contains('\0') {
                    errs.add(at.field("file").field("path"), "file backend requires a valid path");
                }
            }
            "Tcp" => {
                let Some(tcp) = &b.tcp else {
                    errs.add(at.field("tcp"), MUST_BE_DEFINED);
                    continue;
                };
                if let Some(format) = &tcp.format {
                    log_format(errs, &at.field("tcp").field("format"), format);
                }
                if !super::url::is_url(&tcp.address) {
                    errs.add(at.field("tcp").field("address"), "tcp backend requires valid address");
                }
            }
            _ => {}
        }
    }
}

/// Kuma's checks of a line format. A `Json` format without `json` is meshgate's default field set (an extension:
/// Kuma requires the list).
fn log_format(errs: &mut Errors, path: &Path, format: &LogFormat) {
    match format.kind.as_str() {
        "Plain" => match format.plain.as_deref() {
            None => errs.add(path.field("plain"), MUST_BE_DEFINED),
            Some("") => errs.add(path.field("plain"), MUST_NOT_BE_EMPTY),
            Some(_) => {}
        },
        "Json" => {
            let Some(fields) = &format.json else { return };
            if fields.is_empty() {
                errs.add(path.field("json"), MUST_NOT_BE_EMPTY);
            }
            for (i, field) in fields.iter().enumerate() {
                let at = path.field("json").index(i);
                if field.key.is_empty() {
                    errs.add(at.field("key"), "key cannot be empty");
                }
                if field.value.is_empty() {
                    errs.add(at.field("value"), "value cannot be empty");
                }
                // Kuma pastes key and value into `{"key": "value"}` unescaped and checks that it parses.
                let pasted = format!("{{\"{}\": \"{}\"}}", field.key, field.value);
                if serde_json::from_str::<serde_json::Value>(&pasted).is_err() {
                    errs.add(at, "is not a valid JSON object");
                }
            }
        }
        _ => {}
    }
}

fn greater_than_zero(errs: &mut Errors, path: Path, v: Option<u32>) {
    if v == Some(0) {
        errs.add(path, "must be greater than 0");
    }
}

fn uint_percentage(errs: &mut Errors, path: Path, v: Option<u32>) {
    if v.is_some_and(|v| v > 100) {
        errs.add(path, "must be in inclusive range [0, 100]");
    }
}

fn positive_duration(errs: &mut Errors, path: Path, d: Option<&GoDuration>) {
    if d.is_some_and(GoDuration::is_zero_or_negative) {
        errs.add(path, GREATER_THAN_ZERO);
    }
}

fn circuit_breaker(p: &Policy<CircuitBreakerConf>) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    top(
        &mut errs,
        &spec,
        p.target_ref.as_ref(),
        &["Mesh", "MeshSubset", "MeshService", "MeshGateway", "MeshServiceSubset"],
    );
    if p.to.is_empty() && p.from.is_empty() && p.rules.is_empty() {
        errs.add(spec.clone(), "at least one of 'from', 'to' has to be defined");
    }
    let items = p
        .from
        .iter()
        .enumerate()
        .map(|(i, f)| (spec.field("from").index(i), &f.target_ref, &f.default, &["Mesh"][..]))
        .chain(
            p.to.iter()
                .enumerate()
                .map(|(i, t)| (spec.field("to").index(i), &t.target_ref, &t.default, &["Mesh", "MeshService"][..])),
        );
    for (path, target, conf, kinds) in items {
        let opts = TargetRefOpts { supported_kinds: kinds, ..Default::default() };
        errs.add_at(&path.field("targetRef"), validate_target_ref(target, &opts));
        circuit_breaker_conf(&mut errs, path.field("default"), conf);
    }
    for (i, rule) in p.rules.iter().enumerate() {
        circuit_breaker_conf(&mut errs, spec.field("rules").index(i).field("default"), &rule.default);
    }
    errs
}

fn circuit_breaker_conf(errs: &mut Errors, path: Path, conf: &CircuitBreakerConf) {
    if conf.connection_limits.is_none() && conf.outlier_detection.is_none() {
        errs.add(path, "at least one of: 'connectionLimits' or 'outlierDetection' should be configured");
        return;
    }
    if let Some(l) = &conf.connection_limits {
        let lp = path.field("connectionLimits");
        greater_than_zero(errs, lp.field("maxConnections"), l.max_connections);
        greater_than_zero(errs, lp.field("maxConnectionPools"), l.max_connection_pools);
        greater_than_zero(errs, lp.field("maxPendingRequests"), l.max_pending_requests);
        greater_than_zero(errs, lp.field("maxRetries"), l.max_retries);
        greater_than_zero(errs, lp.field("maxRequests"), l.max_requests);
    }
    if let Some(o) = &conf.outlier_detection {
        let op = path.field("outlierDetection");
        positive_duration(errs, op.field("interval"), o.interval.as_ref());
        positive_duration(errs, op.field("baseEjectionTime"), o.base_ejection_time.as_ref());
        uint_percentage(errs, op.field("maxEjectionPercent"), o.max_ejection_percent);
        let dp = op.field("detectors");
        let Some(d) = &o.detectors else {
            errs.add(dp, MUST_BE_DEFINED);
            return;
        };
        if d.total_failures.is_none()
            && d.gateway_failures.is_none()
            && d.local_origin_failures.is_none()
            && d.success_rate.is_none()
            && d.failure_percentage.is_none()
        {
            errs.add(
                dp,
                "must have at least one defined: totalFailures, gatewayFailures, localOriginFailures, successRate, \
                 failurePercentage",
            );
            return;
        }
        let consecutive = |errs: &mut Errors, name: &str, c: Option<&Consecutive>| {
            greater_than_zero(errs, dp.field(name).field("consecutive"), c.and_then(|c| c.consecutive));
        };
        consecutive(errs, "totalFailures", d.total_failures.as_ref());
        consecutive(errs, "gatewayFailures", d.gateway_failures.as_ref());
        consecutive(errs, "localOriginFailures", d.local_origin_failures.as_ref());
        if let Some(sr) = &d.success_rate {
            let sp = dp.field("successRate");
            greater_than_zero(errs, sp.field("minimumHosts"), sr.minimum_hosts);
            greater_than_zero(errs, sp.field("requestVolume"), sr.request_volume);
            if let Some(f) = &sr.standard_deviation_factor {
                match f.as_f64() {
                    None => errs.add(sp.field("standardDeviationFactor"), "invalid number"),
                    Some(v) if v <= 0.0 => errs.add(sp.field("standardDeviationFactor"), "must be greater than 0"),
                    Some(_) => {}
                }
            }
        }
        if let Some(fp) = &d.failure_percentage {
            let fpp = dp.field("failurePercentage");
            greater_than_zero(errs, fpp.field("minimumHosts"), fp.minimum_hosts);
            greater_than_zero(errs, fpp.field("requestVolume"), fp.request_volume);
            uint_percentage(errs, fpp.field("threshold"), fp.threshold);
        }
    }
}

fn health_check(p: &Policy<HealthCheckConf>) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    top(
        &mut errs,
        &spec,
        p.target_ref.as_ref(),
        &["Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset"],
    );
    for (i, item) in p.to.iter().enumerate() {
        let path = spec.field("to").index(i);
        item_ref(&mut errs, &path, &item.target_ref, &["Mesh", "MeshService", "MeshExternalService"]);
        if item.target_ref.kind == "MeshExternalService" && top_kind(p) != "Mesh" {
            errs.add(
                path.field("targetRef").field("kind"),
                "kind MeshExternalService is only possible with targetRef.kind: Mesh",
            );
        }
        let dp = path.field("default");
        let c = &item.default;
        positive_duration(&mut errs, dp.field("interval"), c.interval.as_ref());
        positive_duration(&mut errs, dp.field("timeout"), c.timeout.as_ref());
        for (name, v) in [("unhealthyThreshold", c.unhealthy_threshold), ("healthyThreshold", c.healthy_threshold)] {
            if v.is_some_and(|v| v <= 0) {
                errs.add(dp.field(name), GREATER_THAN_ZERO);
            }
        }
        positive_duration(&mut errs, dp.field("initialJitter"), c.initial_jitter.as_ref());
        positive_duration(&mut errs, dp.field("intervalJitter"), c.interval_jitter.as_ref());
        if c.interval_jitter_percent.is_some_and(|v| !(0..=100).contains(&v)) {
            errs.add(dp.field("intervalJitterPercent"), "must be in inclusive range [0, 100]");
        }
        if let Some(t) = &c.healthy_panic_threshold {
            match t.as_f64() {
                None => errs.add(dp.field("healthyPanicThreshold"), "string must be a valid number"),
                Some(v) if !(0.0..=100.0).contains(&v) => {
                    errs.add(dp.field("healthyPanicThreshold"), "must be in inclusive range [0.0, 100.0]");
                }
                Some(_) => {}
            }
        }
        positive_duration(&mut errs, dp.field("noTrafficInterval"), c.no_traffic_interval.as_ref());
        if let Some(http) = &c.http {
            let hp = dp.field("http");
            if http.path.as_deref() == Some("") {
                errs.add(hp.field("path"), MUST_BE_DEFINED);
            }
            for (j, status) in http.expected_statuses.iter().flatten().enumerate() {
                if !(100..600).contains(status) {
                    errs.add(hp.field("expectedStatuses").index(j), "must be in inclusive range [100, 599]");
                }
            }
        }
        if c.http.is_none() && c.tcp.is_none() && c.grpc.is_none() {
            errs.add(dp, "must have at least one defined: http, tcp, grpc");
        }
    }
    errs
}

fn hash_policies(errs: &mut Errors, path: Path, policies: Option<&Vec<HashPolicy>>) {
    for (i, h) in policies.into_iter().flatten().enumerate() {
        let hp = path.index(i);
        match h.kind.as_str() {
            "Header" if h.header.is_none() => errs.add(hp.field("header"), MUST_BE_DEFINED),
            "Cookie" => match &h.cookie {
                None => errs.add(hp.field("cookie"), MUST_BE_DEFINED),
                Some(c) if c.path.as_ref().is_some_and(|p| !p.starts_with('/')) => {
                    errs.add(hp.field("cookie").field("path"), "must be an absolute path");
                }
                Some(_) => {}
            },
            "QueryParameter" if h.query_parameter.is_none() => {
                errs.add(hp.field("queryParameter"), MUST_BE_DEFINED);
            }
            "FilterState" if h.filter_state.is_none() => errs.add(hp.field("filterState"), MUST_BE_DEFINED),
            "Connection" if h.connection.is_none() => errs.add(hp.field("connection"), MUST_BE_DEFINED),
            "Header" | "QueryParameter" | "FilterState" | "Connection" | "SourceIP" => {}
            _ => errs.add(hp.field("type"), "unrecognized type"),
        }
    }
}

fn load_balancing(p: &Policy<LoadBalancingConf>) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    top(
        &mut errs,
        &spec,
        p.target_ref.as_ref(),
        &["Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "Dataplane"],
    );
    for (i, item) in p.to.iter().enumerate() {
        let path = spec.field("to").index(i);
        item_ref(
            &mut errs,
            &path,
            &item.target_ref,
            &["Mesh", "MeshService", "MeshExternalService", "MeshMultiZoneService"],
        );
        let c = &item.default;
        if top_kind(p) == "MeshGateway" && c.load_balancer.is_some() && item.target_ref.kind != "Mesh" {
            errs.add(
                path.field("targetRef").field("kind"),
                format!(
                    "value '{}' is not supported, only Mesh is allowed if loadBalancer is set",
                    item.target_ref.kind
                ),
            );
        }
        let dp = path.field("default");
        if let Some(lb) = &c.load_balancer {
            let lp = dp.field("loadBalancer");
            if !matches!(lb.kind.as_str(), "RoundRobin" | "LeastRequest" | "RingHash" | "Random" | "Maglev") {
                errs.add(lp.field("type"), "unrecognized type");
            }
            if let Some(lr) = &lb.least_request
                && let Some(bias) = &lr.active_request_bias
            {
                match bias.as_f64() {
                    None => {
                        errs.add(lp.field("leastRequest").field("activeRequestBias"), "string must be a valid number")
                    }
                    Some(v) if v < 0.0 => {
                        errs.add(
                            lp.field("leastRequest").field("activeRequestBias"),
                            "must be greater or equal then: 0",
                        );
                    }
                    Some(_) => {}
                }
            }
            if let Some(rh) = &lb.ring_hash {
                hash_policies(&mut errs, lp.field("ringHash").field("hashPolicies"), rh.hash_policies.as_ref());
            }
            if let Some(m) = &lb.maglev {
                hash_policies(&mut errs, lp.field("maglev").field("hashPolicies"), m.hash_policies.as_ref());
            }
        }
        hash_policies(&mut errs, dp.field("hashPolicies"), c.hash_policies.as_ref());
    }
    errs
}

/// `MeshTrace` (Kuma's system-role rules: a gateway as a whole, not its listeners by tags).
fn trace(p: &MeshTrace) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    if let Some(t) = &p.target_ref {
        let opts = TargetRefOpts {
            supported_kinds: &["Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "Dataplane"],
            gateway_listener_tags_allowed: false,
            ..Default::default()
        };
        errs.add_at(&spec.field("targetRef"), validate_target_ref(t, &opts));
    }
    let default = spec.field("default");
    let backends = default.field("backends");
    match p.default.backends.as_deref() {
        None => errs.add(backends, MUST_BE_DEFINED),
        Some([]) => {}
        Some([one]) => trace_backend(&mut errs, &backends.index(0), one),
        Some(_) => errs.add(backends, "must have zero or one backend defined"),
    }
    for (i, tag) in p.default.tags.iter().flatten().enumerate() {
        let path = default.field("tags").index(i);
        if tag.name.is_empty() {
            errs.add(path.field("name"), MUST_NOT_BE_EMPTY);
        }
        if tag.header.is_some() == tag.literal.is_some() {
            errs.add(path, "tag must have only one type defined: header, literal");
        }
    }
    if let Some(sampling) = &p.default.sampling {
        for (name, value) in
            [("client", &sampling.client), ("random", &sampling.random), ("overall", &sampling.overall)]
        {
            let path = default.field("sampling").field(name);
            match value.as_ref().map(IntOrString::as_f64) {
                None => {}
                Some(None) => errs.add(path, "string is not a number"),
                Some(Some(v)) if !(0.0..=100.0).contains(&v) => errs.add(path, "must be between 0 and 100"),
                Some(Some(_)) => {}
            }
        }
    }
    errs
}

fn trace_backend(errs: &mut Errors, path: &Path, b: &TraceBackend) {
    let Some(kind) = b.kind() else {
        return errs.add(path.clone(), "backend must have only one type defined: datadog, openTelemetry, zipkin");
    };
    match kind {
        "Datadog" => {
            let at = path.field("datadog");
            let Some(d) = &b.datadog else { return errs.add(at, MUST_BE_DEFINED) };
            let url_path = at.field("url");
            let Some(url) = super::url::parse_request_uri(&d.url) else {
                return errs.add(url_path, "must be a valid url");
            };
            if url.scheme != "http" {
                errs.add(url_path.clone(), "scheme must be http");
            }
            match url.port {
                None => errs.add(url_path.clone(), "port must be defined"),
                Some(port) if !matches!(port.parse::<u32>(), Ok(1..=65535)) => {
                    errs.add(url_path.clone(), "port must be a valid (1-65535)");
                }
                Some(_) => {}
            }
            for (name, set) in [
                ("opaque", url.opaque),
                ("user", url.user),
                ("path", url.path),
                ("query", url.query),
                ("fragment", url.fragment),
            ] {
                if set {
                    errs.add(url_path.clone(), format!("{name} {MUST_NOT_BE_DEFINED}"));
                }
            }
        }
        "Zipkin" => {
            let at = path.field("zipkin");
            let Some(z) = &b.zipkin else { return errs.add(at, MUST_BE_DEFINED) };
            if z.url.is_empty() {
                errs.add(at.field("url"), MUST_NOT_BE_EMPTY);
            } else if !super::url::is_url(&z.url) {
                errs.add(at.field("url"), "must be a valid url");
            }
        }
        "OpenTelemetry" => {
            let at = path.field("openTelemetry");
            let Some(o) = &b.open_telemetry else { return errs.add(at, MUST_BE_DEFINED) };
            let endpoint = at.field("endpoint");
            if o.endpoint.is_empty() {
                return errs.add(endpoint, MUST_NOT_BE_EMPTY);
            }
            match super::url::parse_request_uri(&o.endpoint) {
                Some(url) if !url.authority.is_empty() => {
                    if url.scheme != "http" && url.scheme != "https" {
                        errs.add(endpoint.clone(), "URL scheme must be http or https");
                    }
                    if let Some(port) = url.port
                        && !matches!(port.parse::<u32>(), Ok(1..=65535))
                    {
                        errs.add(endpoint.clone(), "port must be valid (1-65535)");
                    }
                    if url.host.is_empty() {
                        errs.add(endpoint.clone(), "hostname must be defined");
                    }
                }
                _ if o.endpoint.starts_with("http://") || o.endpoint.starts_with("https://") => {
                    errs.add(endpoint, "must be a valid URL");
                }
                None if o.endpoint.contains("://") => errs.add(endpoint, "must be a valid URL"),
                // A gRPC `host:port`.
                _ => {}
            }
        }
        _ => errs.add(path.field("type"), "must be one of: Zipkin, Datadog, OpenTelemetry"),
    }
}
