//! The targetRef policies that shape a gateway (Kuma `meshtimeout`, `meshretry`, `meshratelimit`,
//! `meshfaultinjection`, `meshaccesslog` `v1alpha1`): one envelope — `targetRef`, `to`, `from`, `rules` — around a
//! per-kind `default` conf.
//!
//! Every optional field is an `Option` (lists too), so that a conf serialised to JSON holds only what its author
//! wrote: the compiler merges confs with a JSON merge patch, where an absent field keeps the earlier value and a
//! written one (even an empty list) replaces it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::targetref::{IntOrString, TargetRef};
use super::wkt::GoDuration;

/// A targetRef policy with conf type `C`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "C: DeserializeOwned + Default"))]
pub struct Policy<C> {
    /// What the policy applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Confs for outgoing traffic, by destination.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<PolicyItem<C>>,
    /// Confs for incoming traffic, by source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<PolicyItem<C>>,
    /// Confs for incoming traffic (the newer form of `from`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PolicyRule<C>>,
}

/// A `to` or `from` item.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "C: DeserializeOwned + Default"))]
pub struct PolicyItem<C> {
    /// The destination (`to`) or source (`from`).
    pub target_ref: TargetRef,
    /// The conf.
    pub default: C,
}

/// A `rules` item.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "C: DeserializeOwned + Default"))]
pub struct PolicyRule<C> {
    /// The conf.
    pub default: C,
}

/// `MeshTimeout` conf.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TimeoutConf {
    /// How long an upstream connection may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_timeout: Option<GoDuration>,
    /// How long a connection with nothing in flight is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<GoDuration>,
    /// HTTP timeouts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<TimeoutHttp>,
}

/// `MeshTimeout` `http`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TimeoutHttp {
    /// How long a whole request (to its response head) may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<GoDuration>,
    /// How long a stream may stay without data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout: Option<GoDuration>,
    /// The longest a stream may last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<GoDuration>,
    /// The longest a connection may last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<GoDuration>,
    /// How long request headers may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_headers_timeout: Option<GoDuration>,
}

/// `MeshRetry` conf.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RetryConf {
    /// TCP retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<RetryTcp>,
    /// HTTP retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<RetryHttp>,
    /// gRPC retries (never used on a gateway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<RetryGrpc>,
}

/// `MeshRetry` `tcp`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RetryTcp {
    /// Connection attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connect_attempt: Option<u32>,
}

/// `MeshRetry` `http`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RetryHttp {
    /// Retries after the first attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    /// The time limit of each attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<GoDuration>,
    /// Waiting between attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back_off: Option<BackOff>,
    /// Waiting as the upstream asks (Retry-After and the like).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limited_back_off: Option<RateLimitedBackOff>,
    /// Conditions (`5xx`, `GatewayError`, `ConnectFailure`, status codes, `HttpMethodGET`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<String>>,
    /// Response headers that make a response retriable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retriable_response_headers: Option<Vec<serde_json::Value>>,
    /// Request headers a request needs to be retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retriable_request_headers: Option<Vec<serde_json::Value>>,
    /// Host selection predicates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_selection: Option<Vec<HostSelection>>,
    /// Attempts at selecting a host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_selection_max_attempts: Option<i64>,
}

/// `MeshRetry` `grpc`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RetryGrpc {
    /// Retries after the first attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    /// The time limit of each attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<GoDuration>,
    /// Waiting between attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back_off: Option<BackOff>,
    /// Waiting as the upstream asks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limited_back_off: Option<RateLimitedBackOff>,
    /// Conditions (`Canceled`, `DeadlineExceeded`, `Internal`, `ResourceExhausted`, `Unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<String>>,
}

/// Exponential back-off.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BackOff {
    /// The first wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_interval: Option<GoDuration>,
    /// The longest wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<GoDuration>,
}

/// Back-off from response headers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RateLimitedBackOff {
    /// Headers that say how long to wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_headers: Option<Vec<ResetHeader>>,
    /// The longest wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<GoDuration>,
}

/// A reset header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResetHeader {
    /// Header name.
    pub name: String,
    /// `Seconds` or `UnixTimestamp`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub format: String,
}

/// A host selection predicate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HostSelection {
    /// `OmitPreviousHosts`, `OmitHostsWithTags` or `OmitPreviousPriorities`.
    pub predicate: String,
    /// Tags (OmitHostsWithTags).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    /// Update frequency (OmitPreviousPriorities).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_frequency: Option<i64>,
}

/// `MeshRateLimit` conf.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RateLimitConf {
    /// Limits enforced by each proxy on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalRateLimit>,
}

/// `MeshRateLimit` `local`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LocalRateLimit {
    /// Request rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<LocalHttpRateLimit>,
    /// Connection rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<LocalTcpRateLimit>,
}

/// `MeshRateLimit` `local.http`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LocalHttpRateLimit {
    /// Turns the limit off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// How many requests per interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_rate: Option<Rate>,
    /// The answer to a limited request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_rate_limit: Option<OnRateLimit>,
}

/// `MeshRateLimit` `local.tcp`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LocalTcpRateLimit {
    /// Turns the limit off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// How many connections per interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_rate: Option<Rate>,
}

/// A rate: `num` per `interval`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// How many.
    #[serde(default)]
    pub num: u32,
    /// Per how long.
    pub interval: Option<GoDuration>,
}

/// The answer to a rate-limited request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OnRateLimit {
    /// Status (default 429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    /// Headers added to the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderChanges>,
}

/// Headers to set and add.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderChanges {
    /// Replace (or create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<Vec<NameValue>>,
    /// Append.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add: Option<Vec<NameValue>>,
}

/// A header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NameValue {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `MeshFaultInjection` conf.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FaultInjectionConf {
    /// HTTP faults, each applied independently.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpFault>>,
}

/// One HTTP fault.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpFault {
    /// Answer with a status instead of proxying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
    /// Wait before proxying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Slow the response body down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_bandwidth: Option<ResponseBandwidth>,
}

/// An abort fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Abort {
    /// The status answered.
    #[serde(default)]
    pub http_status: i32,
    /// The share of requests, 0–100.
    pub percentage: Option<IntOrString>,
}

/// A delay fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delay {
    /// How long.
    pub value: Option<GoDuration>,
    /// The share of requests, 0–100.
    pub percentage: Option<IntOrString>,
}

/// A bandwidth fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseBandwidth {
    /// `10kbps`, `5 Mbps`, `1Gbps`.
    #[serde(default)]
    pub limit: String,
    /// The share of requests, 0–100.
    pub percentage: Option<IntOrString>,
}

/// `MeshAccessLog` conf.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AccessLogConf {
    /// Where log lines go (a list: replaced, not appended, when policies merge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<AccessLogBackend>>,
}

/// An access-log backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AccessLogBackend {
    /// `File`, `Tcp` or `OpenTelemetry`.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// A file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileBackend>,
    /// A TCP collector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpBackend>,
    /// An OpenTelemetry collector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_telemetry: Option<serde_json::Value>,
}

/// A file backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FileBackend {
    /// The file.
    pub path: String,
    /// The line format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

/// A TCP backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpBackend {
    /// `host:port`.
    pub address: String,
    /// The line format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

/// A log line format.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LogFormat {
    /// `Plain` or `Json`.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The plain-text template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain: Option<String>,
    /// The JSON fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<Vec<JsonField>>,
    /// Leave out empty values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub omit_empty_values: Option<bool>,
}

/// A JSON log field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JsonField {
    /// Key.
    pub key: String,
    /// Template.
    pub value: String,
}

/// `MeshCircuitBreaker` conf.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CircuitBreakerConf {
    /// Limits on connections and requests to a destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_limits: Option<ConnectionLimits>,
    /// Ejection of failing endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
}

/// `MeshCircuitBreaker` `connectionLimits`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConnectionLimits {
    /// Connections to the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Connection pools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connection_pools: Option<u32>,
    /// Requests waiting for a connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Retries in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Requests in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
}

/// `MeshCircuitBreaker` `outlierDetection`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Turns detection off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// How often the statistical detectors run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// How long an endpoint stays ejected (times the number of its ejections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<GoDuration>,
    /// The most endpoints ejected at once, in percent (at least one may always be).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    /// Count local-origin failures (connect failures, timeouts, resets) apart from answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_external_and_local_errors: Option<bool>,
    /// Below this share of healthy endpoints, all are used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_panic_threshold: Option<IntOrString>,
    /// The detectors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detectors: Option<Detectors>,
}

/// Outlier detectors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Detectors {
    /// Consecutive failures of any kind (5xx and local-origin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_failures: Option<Consecutive>,
    /// Consecutive 502/503/504 and local-origin failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_failures: Option<Consecutive>,
    /// Consecutive local-origin failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_origin_failures: Option<Consecutive>,
    /// Success rate far below the others'.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<SuccessRate>,
    /// Failure percentage above a threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_percentage: Option<FailurePercentage>,
}

/// A consecutive-failures detector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Consecutive {
    /// How many in a row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive: Option<u32>,
}

/// The success-rate detector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SuccessRate {
    /// Endpoints with enough volume needed (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_hosts: Option<u32>,
    /// Requests per interval an endpoint needs to count (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_volume: Option<u32>,
    /// Ejected below mean − factor × stdev (default 1.9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard_deviation_factor: Option<IntOrString>,
}

/// The failure-percentage detector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FailurePercentage {
    /// Endpoints with enough volume needed (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_hosts: Option<u32>,
    /// Requests per interval an endpoint needs to count (default 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_volume: Option<u32>,
    /// Ejected at or above this failure percentage (default 85).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
}

/// `MeshHealthCheck` conf.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HealthCheckConf {
    /// Between checks (default 1m).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// For one check (default 15s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Failures in a row that make an endpoint unhealthy (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<i32>,
    /// Successes in a row that make it healthy again (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<i32>,
    /// Random wait before the first check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_jitter: Option<GoDuration>,
    /// Random extra wait between checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_jitter: Option<GoDuration>,
    /// Random extra wait between checks, in percent of the interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_jitter_percent: Option<i32>,
    /// Below this share of healthy endpoints, all are used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_panic_threshold: Option<IntOrString>,
    /// In panic, fail requests instead of using all endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_traffic_on_panic: Option<bool>,
    /// Interval while no traffic flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_traffic_interval: Option<GoDuration>,
    /// Where health events are logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_log_path: Option<String>,
    /// Log every failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub always_log_health_check_failures: Option<bool>,
    /// Keep the checking connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse_connection: Option<bool>,
    /// TCP check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpHealthCheck>,
    /// HTTP check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpHealthCheck>,
    /// gRPC check (never used on a gateway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<serde_json::Value>,
}

/// A TCP health check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpHealthCheck {
    /// Turns it off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Base64 payload to send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// Base64 payloads to expect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive: Option<Vec<String>>,
}

/// An HTTP health check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpHealthCheck {
    /// Turns it off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// The path checked (default `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Headers of the check request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_headers_to_add: Option<HeaderChanges>,
    /// Healthy statuses (default 200).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_statuses: Option<Vec<i32>>,
}

/// `MeshLoadBalancingStrategy` conf.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancingConf {
    /// Zone and locality preferences (meshgate runs in one zone: accepted, not applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality_awareness: Option<serde_json::Value>,
    /// The algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Hash policies (newer Kuma writes them here too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_policies: Option<Vec<HashPolicy>>,
}

/// A load balancer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancer {
    /// `RoundRobin`, `LeastRequest`, `RingHash`, `Random` or `Maglev`.
    #[serde(rename = "type")]
    pub kind: String,
    /// LeastRequest settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub least_request: Option<LeastRequest>,
    /// RingHash settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    /// Maglev settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maglev: Option<Maglev>,
}

/// LeastRequest settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LeastRequest {
    /// Endpoints compared per pick (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice_count: Option<u32>,
    /// Weighting of active requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_request_bias: Option<IntOrString>,
}

/// RingHash settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RingHash {
    /// `XXHash` or `MurmurHash2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_function: Option<String>,
    /// Smallest ring (default 1024).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ring_size: Option<u32>,
    /// Largest ring (default 8M).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ring_size: Option<u32>,
    /// What the hash is computed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_policies: Option<Vec<HashPolicy>>,
}

/// Maglev settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Maglev {
    /// Lookup table size, a prime (default 65537).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u32>,
    /// What the hash is computed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_policies: Option<Vec<HashPolicy>>,
}

/// A hash policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HashPolicy {
    /// `Header`, `Cookie`, `Connection`, `SourceIP`, `QueryParameter` or `FilterState`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Stop at this policy when it gives a hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal: Option<bool>,
    /// Header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<NameOnly>,
    /// Cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<CookieHash>,
    /// Connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionHash>,
    /// Query parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_parameter: Option<NameOnly>,
    /// Filter state (Envoy internals: accepted, not applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_state: Option<serde_json::Value>,
}

/// A name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NameOnly {
    /// The name.
    pub name: String,
}

/// A cookie hash.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CookieHash {
    /// The cookie.
    pub name: String,
    /// Generated cookie lifetime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<GoDuration>,
    /// Generated cookie path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A connection hash.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConnectionHash {
    /// Hash the source IP.
    #[serde(rename = "sourceIP", skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<bool>,
}

/// `MeshTrace`: one conf for what the top-level targetRef selects (it has no `to`, `from` or `rules`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshTrace {
    /// What the policy applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// The conf.
    pub default: TraceConf,
}

/// `MeshTrace` conf.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TraceConf {
    /// Where spans go: none (tracing off) or one backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backends: Option<Vec<TraceBackend>>,
    /// Tags added to every span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TraceTag>>,
    /// Which requests are traced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<TraceSampling>,
}

/// A tracing backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TraceBackend {
    /// `Zipkin`, `Datadog` or `OpenTelemetry` (older policies leave it out and set one of the three).
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// A Zipkin collector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zipkin: Option<ZipkinBackend>,
    /// A Datadog agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datadog: Option<DatadogBackend>,
    /// An OpenTelemetry collector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_telemetry: Option<OpenTelemetryBackend>,
}

impl TraceBackend {
    /// `Zipkin`, `Datadog` or `OpenTelemetry`: the `type`, or for older policies without one the only backend set
    /// (none when none or several are).
    pub fn kind(&self) -> Option<&str> {
        if !self.kind.is_empty() {
            return Some(&self.kind);
        }
        match (self.zipkin.is_some(), self.datadog.is_some(), self.open_telemetry.is_some()) {
            (true, false, false) => Some("Zipkin"),
            (false, true, false) => Some("Datadog"),
            (false, false, true) => Some("OpenTelemetry"),
            _ => None,
        }
    }
}

/// A Zipkin collector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ZipkinBackend {
    /// The span endpoint, e.g. `http://jaeger-collector:9411/api/v2/spans`.
    pub url: String,
    /// 128-bit trace ids.
    #[serde(rename = "traceId128bit")]
    pub trace_id_128bit: bool,
    /// `httpJson` (default) or `httpProto`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Whether client and server spans share an id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_span_context: Option<bool>,
}

/// A Datadog agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DatadogBackend {
    /// `http://host:port`.
    pub url: String,
    /// Whether each upstream gets its own service name.
    pub split_service: bool,
}

/// An OpenTelemetry collector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OpenTelemetryBackend {
    /// `host:port` (OTLP/gRPC) or an `http(s)://` URL (OTLP/HTTP).
    pub endpoint: String,
}

/// A tag added to spans: a literal value, or a request header's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TraceTag {
    /// The tag's name.
    pub name: String,
    /// A fixed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// A request header's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<TraceHeaderTag>,
}

/// A tag taken from a request header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TraceHeaderTag {
    /// The header.
    pub name: String,
    /// The value when the header is absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// Sampling percentages (0–100, integers or decimal strings).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TraceSampling {
    /// Of all requests (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overall: Option<IntOrString>,
    /// Of requests whose client asked for tracing (`x-client-trace-id`; default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<IntOrString>,
    /// Of requests with no sampling decision yet (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random: Option<IntOrString>,
}

/// A policy of one of the kinds meshgate interprets.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicySpec {
    /// `MeshTimeout`.
    MeshTimeout(Policy<TimeoutConf>),
    /// `MeshRetry`.
    MeshRetry(Policy<RetryConf>),
    /// `MeshRateLimit`.
    MeshRateLimit(Policy<RateLimitConf>),
    /// `MeshFaultInjection`.
    MeshFaultInjection(Policy<FaultInjectionConf>),
    /// `MeshAccessLog`.
    MeshAccessLog(Policy<AccessLogConf>),
    /// `MeshCircuitBreaker`.
    MeshCircuitBreaker(Policy<CircuitBreakerConf>),
    /// `MeshHealthCheck`.
    MeshHealthCheck(Policy<HealthCheckConf>),
    /// `MeshLoadBalancingStrategy`.
    MeshLoadBalancingStrategy(Policy<LoadBalancingConf>),
    /// `MeshTrace`.
    MeshTrace(MeshTrace),
}

/// The policy kinds meshgate interprets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// `MeshTimeout`.
    MeshTimeout,
    /// `MeshRetry`.
    MeshRetry,
    /// `MeshRateLimit`.
    MeshRateLimit,
    /// `MeshFaultInjection`.
    MeshFaultInjection,
    /// `MeshAccessLog`.
    MeshAccessLog,
    /// `MeshCircuitBreaker`.
    MeshCircuitBreaker,
    /// `MeshHealthCheck`.
    MeshHealthCheck,
    /// `MeshLoadBalancingStrategy`.
    MeshLoadBalancingStrategy,
    /// `MeshTrace`.
    MeshTrace,
}

impl PolicyKind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::MeshTimeout => "MeshTimeout",
            PolicyKind::MeshRetry => "MeshRetry",
            PolicyKind::MeshRateLimit => "MeshRateLimit",
            PolicyKind::MeshFaultInjection => "MeshFaultInjection",
            PolicyKind::MeshAccessLog => "MeshAccessLog",
            PolicyKind::MeshCircuitBreaker => "MeshCircuitBreaker",
            PolicyKind::MeshHealthCheck => "MeshHealthCheck",
            PolicyKind::MeshLoadBalancingStrategy => "MeshLoadBalancingStrategy",
            PolicyKind::MeshTrace => "MeshTrace",
        }
    }
}

impl PolicySpec {
    /// The kind.
    pub fn kind(&self) -> PolicyKind {
        match self {
            PolicySpec::MeshTimeout(_) => PolicyKind::MeshTimeout,
            PolicySpec::MeshRetry(_) => PolicyKind::MeshRetry,
            PolicySpec::MeshRateLimit(_) => PolicyKind::MeshRateLimit,
            PolicySpec::MeshFaultInjection(_) => PolicyKind::MeshFaultInjection,
            PolicySpec::MeshAccessLog(_) => PolicyKind::MeshAccessLog,
            PolicySpec::MeshCircuitBreaker(_) => PolicyKind::MeshCircuitBreaker,
            PolicySpec::MeshHealthCheck(_) => PolicyKind::MeshHealthCheck,
            PolicySpec::MeshLoadBalancingStrategy(_) => PolicyKind::MeshLoadBalancingStrategy,
            PolicySpec::MeshTrace(_) => PolicyKind::MeshTrace,
        }
    }

    /// The top-level target reference.
    pub fn target_ref(&self) -> Option<&TargetRef> {
        match self {
            PolicySpec::MeshTimeout(p) => p.target_ref.as_ref(),
            PolicySpec::MeshRetry(p) => p.target_ref.as_ref(),
            PolicySpec::MeshRateLimit(p) => p.target_ref.as_ref(),
            PolicySpec::MeshFaultInjection(p) => p.target_ref.as_ref(),
            PolicySpec::MeshAccessLog(p) => p.target_ref.as_ref(),
            PolicySpec::MeshCircuitBreaker(p) => p.target_ref.as_ref(),
            PolicySpec::MeshHealthCheck(p) => p.target_ref.as_ref(),
            PolicySpec::MeshLoadBalancingStrategy(p) => p.target_ref.as_ref(),
            PolicySpec::MeshTrace(p) => p.target_ref.as_ref(),
        }
    }

    /// The spec as JSON.
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        match self {
            PolicySpec::MeshTimeout(p) => serde_json::to_value(p),
            PolicySpec::MeshRetry(p) => serde_json::to_value(p),
            PolicySpec::MeshRateLimit(p) => serde_json::to_value(p),
            PolicySpec::MeshFaultInjection(p) => serde_json::to_value(p),
            PolicySpec::MeshAccessLog(p) => serde_json::to_value(p),
            PolicySpec::MeshCircuitBreaker(p) => serde_json::to_value(p),
            PolicySpec::MeshHealthCheck(p) => serde_json::to_value(p),
            PolicySpec::MeshLoadBalancingStrategy(p) => serde_json::to_value(p),
            PolicySpec::MeshTrace(p) => serde_json::to_value(p),
        }
    }
}
