//! A gateway's listeners: merged per port, with merged tags, attached routes and virtual hosts (Kuma spec §3.2–3.4).

use std::collections::{BTreeMap, BTreeSet};

use meshgate_api::model::common::Tags;
use meshgate_api::model::gateway::{Listener as ListenerSpec, ListenerProtocol, TlsMode as TlsModeSpec};
use meshgate_api::pem::{KeyType, certificate_name, parse_bundle};
use meshgate_plan::{
    Diagnostic, Listener, ListenerHostname, Protocol, Severity, TcpProxy, TlsCertificate, TlsChain, TlsMode,
    VirtualHost, WeightedCluster,
};

use crate::backends::Clusters;
use crate::hostnames::{contains, exactness_order, matches};
use crate::index::Index;
use crate::meshroutes::{GatewayRoutes, HostnameRules, merge_http, merge_tcp};
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
    spec: &'a ListenerSpec,
    hostname: String,
    tags: Tags,
    routes: Vec<Attached<'a>>,
    tcp_routes: Vec<TcpAttached<'a>>,
    /// MeshHTTPRoute mode: the merged rules of the MeshHTTPRoutes selecting this listener, by route hostname.
    mesh_http: Vec<HostnameRules>,
    /// MeshTCPRoute mode: the winning MeshTCPRoute's name and rule.
    mesh_tcp: Option<(String, meshgate_api::model::gateway_route::TcpRoute)>,
}

/// A TCP route attached to a listener.
#[derive(Clone, Copy, Debug)]
struct TcpAttached<'a> {
    name: &'a str,
    tcp: &'a meshgate_api::model::gateway_route::TcpRoute,
}

/// The TCP routes whose selectors match `tags`, in the mesh's order.
fn attached_tcp<'a>(index: &Index<'a>, mesh: &str, tags: &Tags) -> Vec<TcpAttached<'a>> {
    index
        .routes(mesh)
        .iter()
        .filter(|r| any_matches(&r.spec.selectors, tags))
        .filter_map(|r| r.spec.conf.as_ref()?.tcp.as_ref().map(|tcp| TcpAttached { name: r.name, tcp }))
        .collect()
}

/// Every backend of the attached TCP routes, weighted together (Kuma: one tcp_proxy per chain).
fn tcp_proxy(routes: &[TcpAttached<'_>], clusters: &mut Clusters<'_, '_>) -> Option<TcpProxy> {
    let total: usize = routes.iter().flat_map(|r| r.tcp.rules.iter()).map(|rule| rule.backends.len()).sum();
    let mut weighted: Vec<WeightedCluster> = Vec::new();
    for route in routes {
        let subject = format!("MeshGatewayRoute {}", route.name);
        for b in route.tcp.rules.iter().flat_map(|rule| rule.backends.iter()) {
            let Ok(Some(cluster)) = clusters.resolve(&b.destination, &subject) else { continue };
            let weight = if total == 1 && b.weight == 0 { 1 } else { b.weight };
            match weighted.iter_mut().find(|w| w.cluster == cluster) {
                Some(w) => w.weight = weight,
                None => weighted.push(WeightedCluster { cluster, weight }),
            }
        }
    }
    if weighted.len() > 1 && weighted.iter().all(|w| w.weight == 0) {
        for w in &mut weighted {
            w.weight = 1;
        }
    }
    (!weighted.is_empty()).then_some(TcpProxy { backends: weighted })
}

/// The certificates of a terminating listener, checked; `None` (reported) if any cannot be used.
fn certificates(
    l: &HostListener<'_>,
    clusters: &mut Clusters<'_, '_>,
    subject: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<TlsCertificate>> {
    let tls = l.spec.tls.as_ref()?;
    let mut out: Vec<TlsCertificate> = Vec::new();
    let mut seen: Vec<KeyType> = Vec::new();
    for (j, ds) in tls.certificates.iter().enumerate() {
        let fail = |diagnostics: &mut Vec<Diagnostic>, why: String| {
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                subject: subject.to_owned(),
                message: format!(
                    "port {} hostname {}: certificate {j}: {why}; connections for this hostname are refused",
                    l.spec.port, l.hostname
                ),
            });
        };
        let bytes = match clusters.data_source(ds) {
            Ok(b) => b,
            Err(e) => {
                fail(diagnostics, e);
                return None;
            }
        };
        let bundle = match parse_bundle(&bytes) {
            Ok(b) => b,
            Err(e) => {
                fail(diagnostics, e.to_string());
                return None;
            }
        };
        let name = certificate_name(bundle.key_type, ds, &l.hostname);
        if seen.contains(&bundle.key_type) {
            fail(diagnostics, format!("duplicate TLS certificate \"{name}\""));
            return None;
        }
        seen.push(bundle.key_type);
        let Ok(pem) = String::from_utf8(bytes) else {
            fail(diagnostics, "not PEM text".to_owned());
            return None;
        };
        out.push(TlsCertificate { name, key_type: bundle.key_type.to_string(), pem });
    }
    if out.is_empty() {
        diagnostics.push(Diagnostic {
            severity: Severity::Error,
            subject: subject.to_owned(),
            message: format!(
                "port {} hostname {}: no certificate; connections for this hostname are refused",
                l.spec.port, l.hostname
            ),
        });
        return None;
    }
    Some(out)
}

/// The HTTP routes whose selectors match `tags`, in the mesh's order.
fn attached_http<'a>(index: &Index<'a>, mesh: &str, tags: &Tags) -> Vec<Attached<'a>> {
    index
        .routes(mesh)
        .iter()
        .filter(|r| any_matches(&r.spec.selectors, tags))
        .filter_map(|r| r.spec.conf.as_ref()?.http.as_ref().map(|http| Attached::gateway_route(r.name, http)))
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

/// Virtual hosts in MeshHTTPRoute mode (policy reference §2.4) for the listeners of one port, most exact first:
/// every listener hostname claims a virtual host (404 without rules), route hostnames narrower than the listener's
/// make their own, and a name an earlier (more exact) listener of the port contains is left to that listener.
/// `only`: build the virtual hosts of that listener alone (an HTTPS hostname's chain).
fn mesh_virtual_hosts(
    listeners: &[HostListener<'_>],
    only: Option<usize>,
    port: u16,
    clusters: &mut Clusters<'_, '_>,
) -> Vec<VirtualHost> {
    let mut hosts: Vec<(String, Vec<Attached<'_>>)> = Vec::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for (i, l) in listeners.iter().enumerate() {
        let mut names: Vec<String> = vec![l.hostname.clone()];
        for group in &l.mesh_http {
            if matches(&group.hostname, &l.hostname) {
                let name = if contains(&l.hostname, &group.hostname) { &group.hostname } else { &l.hostname };
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        let claimed_earlier =
            |name: &str| listeners[..i].iter().any(|e| e.hostname != l.hostname && contains(&e.hostname, name));
        for vhost in &names {
            if only.is_some_and(|o| o != i) || claimed_earlier(vhost) || !taken.insert(vhost.clone()) {
                continue;
            }
            let mut attached: Vec<Attached<'_>> = Vec::new();
            for group in &l.mesh_http {
                // Rules of a narrower route hostname belong to that hostname's own virtual host.
                let narrower = group.hostname != *vhost && names.contains(&group.hostname);
                if !matches(&group.hostname, vhost) || (narrower && contains(vhost, &group.hostname)) {
                    continue;
                }
                for rule in &group.rules {
                    let candidate = Attached {
                        kind: "MeshHTTPRoute",
                        name: &rule.name,
                        http: &rule.route,
                        rule_base: rule.rule_index,
                        rule_key: &rule.rule_key,
                    };
                    // The same rule reached through two overlapping hostnames is one entry.
                    if !attached.iter().any(|a| a.name == candidate.name && a.http == candidate.http) {
                        attached.push(candidate);
                    }
                }
            }
            hosts.push((vhost.clone(), attached));
        }
    }
    hosts.sort_by(|a, b| b.0.cmp(&a.0));
    hosts
        .into_iter()
        .map(|(domain, attached)| VirtualHost { routes: route_table(&attached, port, clusters), domain })
        .collect()
}

/// Whether any listener of the gateway is selected by a route of the given API.
fn any_selected(specs: &[ListenerSpec], layers: (&Tags, &Tags), selected: impl Fn(&Tags) -> bool) -> bool {
    specs.iter().any(|l| selected(&merge_tags(&[layers.0, layers.1, &l.tags])))
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
    // Kuma's mode switch: once any MeshHTTPRoute (MeshTCPRoute) selects a listener of the gateway, its HTTP/HTTPS
    // (TCP/TLS) listeners are built from those routes only and MeshGatewayRoutes are ignored for them.
    let route_api = GatewayRoutes::new(index, mesh, gateway_name);
    let http_mode = any_selected(specs, (dp_tags, gateway_tags), |t| !route_api.http_for(t).is_empty());
    let tcp_mode = any_selected(specs, (dp_tags, gateway_tags), |t| !route_api.tcp_for(t).is_empty());
    // MeshGatewayRoute name → why it is ignored.
    let mut ignored: BTreeMap<&str, &str> = BTreeMap::new();
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
        let mut hosts: Vec<HostListener<'_>> = Vec::new();
        for l in &group {
            let tags = merge_tags(&[dp_tags, gateway_tags, &l.tags]);
            let hostname = l.non_empty_hostname().to_owned();
            let (mut routes, mut tcp_routes, mut mesh_http, mut mesh_tcp) = (Vec::new(), Vec::new(), Vec::new(), None);
            if protocol.is_http() {
                routes = attached_http(index, mesh, &tags);
                if http_mode {
                    for r in routes.drain(..) {
                        ignored.insert(r.name, "MeshHTTPRoutes attach to it, and then they alone route its HTTP/HTTPS");
                    }
                    mesh_http = merge_http(&route_api.http_for(&tags), diagnostics);
                }
            } else {
                tcp_routes = attached_tcp(index, mesh, &tags);
                if tcp_mode {
                    for r in tcp_routes.drain(..) {
                        ignored.insert(r.name, "MeshTCPRoutes attach to it, and then they alone route its TCP/TLS");
                    }
                    let at = format!("port {port} hostname {hostname}");
                    mesh_tcp = merge_tcp(&route_api.tcp_for(&tags), &at, diagnostics);
                }
            }
            hosts.push(HostListener { spec: l, hostname, tags, routes, tcp_routes, mesh_http, mesh_tcp });
        }
        hosts.sort_by(|a, b| exactness_order(&a.hostname, &b.hostname));
        let name = format!("{gateway_name}:{}:{port}", protocol.name());
        let mut virtual_hosts_out = Vec::new();
        let mut tls_chains = Vec::new();
        let mut tcp = None;
        match protocol {
            Protocol::Http if http_mode => virtual_hosts_out = mesh_virtual_hosts(&hosts, None, port16, clusters),
            Protocol::Http => virtual_hosts_out = virtual_hosts(&hosts, port16, clusters),
            Protocol::Tcp => {
                let mut routes: Vec<TcpAttached<'_>> = Vec::new();
                for h in &hosts {
                    let mesh_tcp = h.mesh_tcp.as_ref().map(|(name, tcp)| TcpAttached { name, tcp });
                    for r in h.tcp_routes.iter().copied().chain(mesh_tcp) {
                        if !routes.iter().any(|x| x.name == r.name) {
                            routes.push(r);
                        }
                    }
                }
                tcp = tcp_proxy(&routes, clusters);
            }
            Protocol::Https | Protocol::Tls => {
                // One chain per listener hostname, chosen by SNI, most exact first (Kuma spec §3.2).
                for (i, h) in hosts.iter().enumerate() {
                    let mode = match h.spec.tls.as_ref().map(|t| t.mode) {
                        Some(TlsModeSpec::PASSTHROUGH) if protocol == Protocol::Tls => TlsMode::Passthrough,
                        Some(TlsModeSpec::TERMINATE) => TlsMode::Terminate,
                        _ => {
                            diagnostics.push(Diagnostic {
                                severity: Severity::Error,
                                subject: subject.clone(),
                                message: format!("{name} hostname {}: unsupported TLS mode; not served", h.hostname),
                            });
                            continue;
                        }
                    };
                    let certificates = if mode == TlsMode::Terminate {
                        match certificates(h, clusters, &subject, diagnostics) {
                            Some(c) => c,
                            None => continue,
                        }
                    } else {
                        Vec::new()
                    };
                    let (chain_vhosts, chain_tcp) = if protocol == Protocol::Https && http_mode {
                        (mesh_virtual_hosts(&hosts, Some(i), port16, clusters), None)
                    } else if protocol == Protocol::Https {
                        (virtual_hosts(std::slice::from_ref(h), port16, clusters), None)
                    } else if let Some((name, route)) = &h.mesh_tcp {
                        (Vec::new(), tcp_proxy(&[TcpAttached { name, tcp: route }], clusters))
                    } else {
                        (Vec::new(), tcp_proxy(&h.tcp_routes, clusters))
                    };
                    tls_chains.push(TlsChain {
                        sni: h.hostname.clone(),
                        mode,
                        certificates,
                        virtual_hosts: chain_vhosts,
                        tcp: chain_tcp,
                    });
                }
            }
        }
        out.push(Listener {
            name,
            port: port16,
            protocol,
            connection_limit: first.connection_limit(),
            hostnames: hosts
                .iter()
                .map(|h| ListenerHostname { hostname: h.hostname.clone(), tags: h.tags.clone() })
                .collect(),
            virtual_hosts: virtual_hosts_out,
            tls_chains,
            tcp,
            policies: Default::default(),
        });
    }
    for (route, why) in ignored {
        diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            subject: format!("MeshGatewayRoute {route}"),
            message: format!("ignored on MeshGateway {gateway_name}: {why} listeners (as in Kuma)"),
        });
    }
    out
}
