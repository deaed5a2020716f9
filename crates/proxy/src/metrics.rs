//! Prometheus metrics of the data plane. Counters are looked up once per plan and kept by each route, so a
//! request only increments atomics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The MeshGateway.
    pub gateway: String,
    /// Kuma's listener name, `<gateway>:<PROTOCOL>:<port>`.
    pub listener: String,
    /// The route resource that took the request (`-` when none did).
    pub route: String,
    /// `1xx` … `5xx`.
    pub code: String,
}

/// Labels of per-route metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The MeshGateway.
    pub gateway: String,
    /// Kuma's listener name.
    pub listener: String,
    /// The route resource's name.
    pub route: String,
}

/// Labels of per-listener metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// Kuma's listener name.
    pub listener: String,
}

/// Labels of upstream metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The cluster.
    pub cluster: String,
    /// What failed: `connect`, `timeout`, `protocol`.
    pub reason: String,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0].into_iter()
}

/// Every metric of the data plane.
#[derive(Debug)]
pub struct Metrics {
    /// The registry to render.
    pub registry: Registry,
    /// Requests by listener, route and status class.
    pub requests: Family<RequestLabels, Counter>,
    /// Request duration by listener.
    pub duration: Family<ListenerLabels, Histogram>,
    /// Open downstream connections by listener.
    pub connections: Family<ListenerLabels, Gauge>,
    /// Upstream failures by cluster and reason.
    pub upstream_errors: Family<UpstreamLabels, Counter>,
    /// Requests refused by a rate limit, by listener and route.
    pub rate_limited: Family<RouteLabels, Counter>,
    /// Retries, by listener and route.
    pub retries: Family<RouteLabels, Counter>,
    /// Access-log lines dropped because a sink's queue was full.
    pub access_log_dropped: Counter,
    /// Spans dropped because a collector's queue was full or a send failed.
    pub trace_spans_dropped: Counter,
    /// Outlier ejections, by cluster.
    pub ejections: Family<ClusterLabels, Counter>,
    /// Requests refused at a cluster's circuit-breaker limit, by cluster.
    pub overflow: Family<ClusterLabels, Counter>,
    /// Time to the response head, by gateway, listener and route.
    pub route_duration: Family<RouteLabels, Histogram>,
    /// Active health of endpoints (1 healthy, 0 not), by cluster and endpoint.
    pub endpoint_health: Family<EndpointLabels, Gauge>,
}

/// Labels of per-endpoint metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// The cluster.
    pub cluster: String,
    /// `host:port`.
    pub endpoint: String,
}

/// Labels of per-cluster metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// The cluster.
    pub cluster: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("meshgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<ListenerLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(latency_buckets())) as fn() -> Histogram,
        );
        let connections = Family::<ListenerLabels, Gauge>::default();
        let upstream_errors = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests handled, by listener, route and status class",
            requests.clone(),
        );
        registry.register("http_request_duration_seconds", "Time to the response head, by listener", duration.clone());
        registry.register("downstream_connections", "Open downstream connections, by listener", connections.clone());
        registry.register(
            "upstream_errors",
            "Failed upstream requests, by cluster and reason",
            upstream_errors.clone(),
        );
        let rate_limited = Family::<RouteLabels, Counter>::default();
        let retries = Family::<RouteLabels, Counter>::default();
        let access_log_dropped = Counter::default();
        let trace_spans_dropped = Counter::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by listener and route",
            rate_limited.clone(),
        );
        registry.register("retries", "Upstream request retries, by listener and route", retries.clone());
        registry.register(
            "access_log_dropped",
            "Access-log lines dropped because the sink's queue was full",
            access_log_dropped.clone(),
        );
        registry.register(
            "trace_spans_dropped",
            "Spans dropped because a collector's queue was full or it could not be reached",
            trace_spans_dropped.clone(),
        );
        let ejections = Family::<ClusterLabels, Counter>::default();
        let overflow = Family::<ClusterLabels, Counter>::default();
        registry.register("outlier_ejections", "Endpoints ejected by outlier detection, by cluster", ejections.clone());
        registry.register(
            "upstream_overflow",
            "Requests refused at a cluster's circuit-breaker limits, by cluster",
            overflow.clone(),
        );
        let route_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(latency_buckets())) as fn() -> Histogram,
        );
        let endpoint_health = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "route_request_duration_seconds",
            "Time to the response head, by gateway, listener and route",
            route_duration.clone(),
        );
        registry.register(
            "endpoint_healthy",
            "Active health check result (1 healthy, 0 unhealthy), by cluster and endpoint",
            endpoint_health.clone(),
        );
        Self {
            registry,
            route_duration,
            endpoint_health,
            requests,
            duration,
            connections,
            upstream_errors,
            rate_limited,
            retries,
            access_log_dropped,
            trace_spans_dropped,
            ejections,
            overflow,
        }
    }
}

impl Metrics {
    /// The five per-class counters of a route on a listener.
    pub fn route_counters(&self, gateway: &str, listener: &str, route: &str) -> [Counter; 5] {
        ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|code| {
            self.requests
                .get_or_create(&RequestLabels {
                    gateway: gateway.to_owned(),
                    listener: listener.to_owned(),
                    route: route.to_owned(),
                    code: code.to_owned(),
                })
                .clone()
        })
    }

    /// The labels of a route.
    pub fn route_labels(gateway: &str, listener: &str, route: &str) -> RouteLabels {
        RouteLabels { gateway: gateway.to_owned(), listener: listener.to_owned(), route: route.to_owned() }
    }

    /// A per-cluster counter of `family`.
    pub fn cluster_counter(&self, family: &Family<ClusterLabels, Counter>, cluster: &str) -> Counter {
        family.get_or_create(&ClusterLabels { cluster: cluster.to_owned() }).clone()
    }

    /// Renders the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Index of a status code's class in a route's counters.
pub fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

#[cfg(test)]
mod docs_tests {
    use super::*;

    /// Every family, with one sample each (empty families are not rendered).
    fn exported() -> std::collections::BTreeSet<String> {
        let m = Metrics::default();
        let route = Metrics::route_labels("g", "l", "r");
        let _ = m.route_counters("g", "l", "r");
        m.trace_spans_dropped.inc();
        let _ = m.duration.get_or_create(&ListenerLabels { listener: "l".into() });
        let _ = m.connections.get_or_create(&ListenerLabels { listener: "l".into() });
        let _ = m.upstream_errors.get_or_create(&UpstreamLabels { cluster: "c".into(), reason: "connect".into() });
        let _ = m.rate_limited.get_or_create(&route);
        let _ = m.retries.get_or_create(&route);
        let _ = m.ejections.get_or_create(&ClusterLabels { cluster: "c".into() });
        let _ = m.overflow.get_or_create(&ClusterLabels { cluster: "c".into() });
        let _ = m.route_duration.get_or_create(&route);
        let _ = m.endpoint_health.get_or_create(&EndpointLabels { cluster: "c".into(), endpoint: "e".into() });
        m.render()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
            .collect()
    }

    fn named_in(text: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        for (i, _) in text.match_indices("meshgate_") {
            let name: String =
                text[i..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect();
            // `meshgate_cp::plans` is a Rust path (a log target), not a metric.
            if !text[i + name.len()..].starts_with("::") {
                out.insert(name);
            }
        }
        out
    }

    #[test]
    fn the_docs_and_the_dashboard_name_exported_metrics_only_and_the_docs_name_them_all() {
        let exported = exported();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/");
        let doc = std::fs::read_to_string(format!("{root}observability.md")).unwrap_or_default();
        let dashboard = std::fs::read_to_string(format!("{root}grafana-dashboard.json")).unwrap_or_default();
        let families: std::collections::BTreeSet<String> = exported
            .iter()
            .map(|n| ["_bucket", "_sum", "_count"].iter().find_map(|s| n.strip_suffix(s)).unwrap_or(n).to_owned())
            .collect();
        assert!(families.len() >= 11, "{families:?}");
        for name in named_in(&doc).iter().chain(named_in(&dashboard).iter()) {
            let known = exported.contains(name) || families.contains(name);
            assert!(known || name == "meshgate_", "{name} is named in docs/ but not exported");
        }
        for family in &families {
            assert!(doc.contains(&format!("`{family}`")), "docs/observability.md does not list {family}");
        }
        let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap_or_default();
        assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8), "the dashboard is valid JSON");
    }
}
