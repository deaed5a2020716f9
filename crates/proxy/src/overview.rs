//! What a gateway serves, at a glance, for the dashboard: per gateway its listeners with their hostnames and merged
//! tags, the routes attached to each listener (entries, backends, request counts by status class), the clusters
//! with their endpoints and health, and the plan's diagnostics. Built from plans; the request counts and endpoint
//! states come from the running data plane when there is one.

use std::collections::BTreeMap;

use meshgate_plan::{Action, AppliedPolicy, GatewayPlan, Listener, Severity};
use serde::{Deserialize, Serialize};

use crate::health::Registry;
use crate::metrics::Metrics;

/// Everything the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// One entry per gateway Dataplane.
    pub gateways: Vec<GatewayView>,
}

/// One gateway Dataplane.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayView {
    /// The MeshGateway (`mesh/name`; empty when none is bound).
    pub gateway: String,
    /// The Dataplane (`mesh/name`).
    pub dataplane: String,
    /// The address listeners bind to.
    pub address: String,
    /// Listeners, by port.
    pub listeners: Vec<ListenerView>,
    /// Upstream clusters.
    pub clusters: Vec<ClusterView>,
    /// Problems found while compiling the plan (`severity: subject: message`).
    pub diagnostics: Vec<String>,
}

/// A MeshGateway listener hostname and its merged tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostnameView {
    /// The hostname.
    pub hostname: String,
    /// Merged tags.
    pub tags: BTreeMap<String, String>,
}

/// A listener (one port).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListenerView {
    /// Kuma's listener name.
    pub name: String,
    /// The port.
    pub port: u16,
    /// HTTP, HTTPS, TCP or TLS.
    pub protocol: String,
    /// Its hostnames.
    pub hostnames: Vec<HostnameView>,
    /// The route resources attached, with their entries.
    pub routes: Vec<RouteView>,
    /// Requests no route took, by status class (1xx … 5xx), when running.
    pub unrouted: Option<[u64; 5]>,
    /// Listener-wide policies.
    pub policies: Vec<AppliedPolicy>,
}

/// A route resource on a listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    /// Its name (the metrics label; `-` for generated entries).
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Its entries: `domain: conditions → action`.
    pub entries: Vec<String>,
    /// The clusters it sends to.
    pub backends: Vec<String>,
    /// Requests it took, by status class (1xx … 5xx), when running.
    pub requests: Option<[u64; 5]>,
}

/// A cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Its name.
    pub name: String,
    /// Its `kuma.io/service`.
    pub service: String,
    /// Its endpoints and their state.
    pub endpoints: Vec<crate::explain::EndpointInfo>,
}

/// The running data plane's counters and endpoint states.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    /// Metrics.
    pub metrics: &'a Metrics,
    /// Endpoint health.
    pub health: &'a Registry,
}

fn counts(counters: &[prometheus_client::metrics::counter::Counter; 5]) -> [u64; 5] {
    [0, 1, 2, 3, 4].map(|i| counters[i].get())
}

fn action_text(action: &Action) -> String {
    match action {
        Action::Forward(f) => {
            let to: Vec<String> = f.backends.iter().map(|b| format!("{} ({})", b.cluster, b.weight)).collect();
            format!("forward to {}", if to.is_empty() { "nothing".to_owned() } else { to.join(", ") })
        }
        Action::Redirect(r) => format!("redirect {}", r.status),
        Action::Respond(d) => format!("respond {}", d.status),
    }
}

fn listener_view(gateway: &str, listener: &Listener, live: Option<Live<'_>>) -> ListenerView {
    let mut routes: Vec<RouteView> = Vec::new();
    let vhosts = listener.virtual_hosts.iter().chain(listener.tls_chains.iter().flat_map(|c| c.virtual_hosts.iter()));
    for vhost in vhosts {
        for route in &vhost.routes {
            let name = route.source.label().to_owned();
            let index = match routes.iter().position(|r| r.name == name) {
                Some(i) => i,
                None => {
                    routes.push(RouteView {
                        name: name.clone(),
                        kind: route.source.kind.clone(),
                        requests: live.map(|l| counts(&l.metrics.route_counters(gateway, &listener.name, &name))),
                        ..RouteView::default()
                    });
                    routes.len() - 1
                }
            };
            let view = &mut routes[index];
            view.entries.push(format!(
                "{}: {} → {}",
                vhost.domain,
                crate::explain::conditions(route),
                action_text(&route.action)
            ));
            if let Action::Forward(f) = &route.action {
                for b in &f.backends {
                    if !view.backends.contains(&b.cluster) {
                        view.backends.push(b.cluster.clone());
                    }
                }
            }
        }
    }
    let tcp = listener.tcp.iter().chain(listener.tls_chains.iter().filter_map(|c| c.tcp.as_ref()));
    for t in tcp {
        let backends: Vec<String> = t.backends.iter().map(|b| b.cluster.clone()).collect();
        routes.push(RouteView {
            name: "tcp".to_owned(),
            kind: "TCP".to_owned(),
            entries: vec![format!("relay to {}", backends.join(", "))],
            backends,
            requests: None,
        });
    }
    ListenerView {
        name: listener.name.clone(),
        port: listener.port,
        protocol: listener.protocol.name().to_owned(),
        hostnames: listener
            .hostnames
            .iter()
            .map(|h| HostnameView { hostname: h.hostname.clone(), tags: h.tags.clone() })
            .collect(),
        routes,
        unrouted: live.map(|l| counts(&l.metrics.route_counters(gateway, &listener.name, "-"))),
        policies: listener.policies.applied.clone(),
    }
}

/// The overview of `plans` (with counts and endpoint states from `live`, when running).
pub fn overview(plans: &[GatewayPlan], live: Option<Live<'_>>) -> Overview {
    let now = crate::health::now_ms();
    let gateways = plans
        .iter()
        .map(|plan| {
            let gateway_name = plan.gateway.as_ref().map_or("", |g| g.name.as_str());
            GatewayView {
                gateway: plan.gateway.as_ref().map_or_else(String::new, |g| format!("{}/{}", g.mesh, g.name)),
                dataplane: format!("{}/{}", plan.dataplane.mesh, plan.dataplane.name),
                address: plan.address.clone(),
                listeners: plan.listeners.iter().map(|l| listener_view(gateway_name, l, live)).collect(),
                clusters: plan
                    .clusters
                    .iter()
                    .map(|(name, c)| ClusterView {
                        name: name.clone(),
                        service: c.service.clone(),
                        endpoints: c
                            .endpoints
                            .iter()
                            .map(|e| {
                                let address = format!("{}:{}", e.host, e.port);
                                let state = match live {
                                    None => "unknown",
                                    Some(l) => l.health.peek(name, &address).map_or("unknown", |s| s.describe(now)),
                                };
                                crate::explain::EndpointInfo { address, state: state.to_owned() }
                            })
                            .collect(),
                    })
                    .collect(),
                diagnostics: plan
                    .diagnostics
                    .iter()
                    .map(|d| {
                        let severity = match d.severity {
                            Severity::Error => "error",
                            Severity::Warning => "warning",
                        };
                        format!("{severity}: {}: {}", d.subject, d.message)
                    })
                    .collect(),
            }
        })
        .collect();
    Overview { gateways }
}
