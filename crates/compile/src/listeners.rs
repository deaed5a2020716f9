//! A gateway's listeners: merged per port, with merged tags, attached routes and virtual hosts (Kuma spec §3.2–3.4).

use std::collections::BTreeMap;

use meshgate_api::model::common::Tags;
use meshgate_api::model::gateway::{Listener as ListenerSpec, ListenerProtocol};
use meshgate_plan::{Diagnostic, Listener, ListenerHostname, Protocol, Severity, VirtualHost};

use crate::backends::Clusters;
use crate::hostnames::{contains, exactness_order, matches};
use crate::index::Index;
use crate::routes::{Attached, route_table};
use crate::select::any_matches;

fn protocol(p: ListenerProtocol) -> Option<Protocol> {
    match p {
        ListenerProtocol::HTTP => Some(Protocol::Http),
        ListenerProtocol::HTTPS => Some(Protocol::Https),
        ListenerProtocol::TCP => Some(Protocol::Tcp),
        ListenerProtocol::TLS => Some(Protocol::Tls),
        ListenerProtocol::NONE => None,
    }
}

/// Merged tags: later maps override earlier ones.
pub fn merge_tags(layers: &[&Tags]) -> Tags {
    let mut out = Tags::new();
    for layer in layers {
        out.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

/// One MeshGateway listener with what it needs for routing.
struct HostListener<'a> {
    hostname: String,
    tags: Tags,
    routes: Vec<Attached<'a>>,
}

/// The HTTP routes whose selectors match `tags`, in the mesh's order.
fn attached_http<'a>(index: &Index<'a>, mesh: &str, tags: &Tags) -> Vec<Attached<'a>> {
    index
        .routes(mesh)
        .iter()
        .filter(|r| any_matches(&r.spec.selectors, tags))
        .filter_map(|r| r.spec.conf.as_ref()?.http.as_ref().map(|http| Attached { name: r.name, http }))
        .collect()
}

fn keeps(vhost: &str, route: &Attached<'_>) -> bool {
    vhost == "*" || route.http.hostnames.is_empty() || route.http.hostnames.iter().any(|h| matches(vhost, h))
}

fn push_unique<'a>(list: &mut Vec<Attached<'a>>, route: Attached<'a>) {
    if !list.iter().any(|r| r.name == route.name) {
        list.push(route);
    }
}

/// Virtual hosts of one HTTP route configuration (all listeners of an HTTP port, or one HTTPS hostname).
fn virtual_hosts(listeners: &[HostListener<'_>], port: u16, clusters: &mut Clusters<'_, '_>) -> Vec<VirtualHost> {
    let mut hosts: BTreeMap<String, Vec<Attached<'_>>> = BTreeMap::new();
    for l in listeners {
        let entry = hosts.entry(l.hostname.clone()).or_default();
        if l.hostname != "*" {
            for r in &l.routes {
                push_unique(entry, *r);
            }
        }
    }
    // Routes of a `*` listener: those without hostnames stay in `*`; the others go to the virtual host of each of
    // their hostnames (made if none exists), and a wildcard hostname also reaches every virtual host it contains.
    if let Some(wild) = listeners.iter().find(|l| l.hostname == "*") {
        let mut spread: Vec<(String, Attached<'_>)> = Vec::new();
        for r in &wild.routes {
            if r.http.hostnames.is_empty() {
                push_unique(hosts.entry("*".to_owned()).or_default(), *r);
                continue;
            }
            for name in &r.http.hostnames {
                push_unique(hosts.entry(name.clone()).or_default(), *r);
                if name.starts_with("*.") {
                    spread.push((name.clone(), *r));
                }
            }
        }
        for (name, r) in spread {
            for (host, list) in hosts.iter_mut() {
                if host != &name && host != "*" && contains(&name, host) {
                    push_unique(list, r);
                }
            }
        }
    }
    // Kuma emits virtual hosts in reverse byte order of their names (cosmetic; lookups do not depend on it).
    let mut names: Vec<String> = hosts.keys().cloned().collect();
    names.sort_by(|a, b| b.cmp(a));
    names
        .into_iter()
        .map(|domain| {
            let attached: Vec<Attached<'_>> = hosts
                .get(&domain)
                .map(|l| l.iter().copied().filter(|r| keeps(&domain, r)).collect())
                .unwrap_or_default();
            let routes = route_table(&attached, port, clusters);
            VirtualHost { domain, routes }
        })
        .collect()
}

/// Builds the listeners of a gateway bound to a dataplane with tags `dp_tags`.
#[allow(clippy::too_many_arguments)]
pub fn listeners(
    index: &Index<'_>,
    mesh: &str,
    gateway_name: &str,
    gateway_tags: &Tags,
    specs: &[ListenerSpec],
    dp_tags: &Tags,
    clusters: &mut Clusters<'_, '_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Listener> {
    let mut by_port: BTreeMap<u32, Vec<&ListenerSpec>> = BTreeMap::new();
    for l in specs {
        by_port.entry(l.port).or_default().push(l);
    }
    let subject = format!("MeshGateway {gateway_name}");
    let mut out = Vec::new();
    for (port, group) in by_port {
        let Some(first) = group.first() else { continue };
        let (Some(protocol), Ok(port16)) = (protocol(first.protocol), u16::try_from(port)) else { continue };
        if group.iter().any(|l| l.cross_mesh) {
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                subject: subject.clone(),
                message: format!(
                    "port {port}: cross-mesh listeners need mesh mTLS, which meshgate does not provide; not served"
                ),
            });
            continue;
        }
        let mut hosts: Vec<HostListener<'_>> = group
            .iter()
            .map(|l| {
                let tags = merge_tags(&[dp_tags, gateway_tags, &l.tags]);
                let routes = if protocol.is_http() { attached_http(index, mesh, &tags) } else { Vec::new() };
                HostListener { hostname: l.non_empty_hostname().to_owned(), tags, routes }
            })
            .collect();
        hosts.sort_by(|a, b| exactness_order(&a.hostname, &b.hostname));
        let name = format!("{gateway_name}:{}:{port}", protocol.name());
        let virtual_hosts = match protocol {
            Protocol::Http => virtual_hosts(&hosts, port16, clusters),
            Protocol::Https | Protocol::Tcp | Protocol::Tls => {
                diagnostics.push(Diagnostic {
                    severity: Severity::Warning,
                    subject: subject.clone(),
                    message: format!(
                        "{name}: {} listeners are not served by this version of meshgate yet",
                        protocol.name()
                    ),
                });
                Vec::new()
            }
        };
        out.push(Listener {
            name,
            port: port16,
            protocol,
            connection_limit: first.connection_limit(),
            hostnames: hosts
                .iter()
                .map(|h| ListenerHostname { hostname: h.hostname.clone(), tags: h.tags.clone() })
                .collect(),
            virtual_hosts,
        });
    }
    out
}
