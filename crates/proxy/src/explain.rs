//! Why a request goes where it goes: the listener, TLS chain, virtual host and route the data plane chooses for a
//! described request, every candidate it passed over and why, the filters and backends of the route, and the
//! policies in force with the values each one set.
//!
//! The choice itself is made by the data plane's own functions (`handler::refusal`, `request_host`, `vhost_for`,
//! `first_route`, `redirect`, the domain tables and `RouteRuntime::mismatch`) on a runtime built from the plan by
//! the same builder that serves traffic — there is no second matcher that could disagree with it. The plan only
//! supplies names and descriptions.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{Method, Request};
use meshgate_plan::{
    Action, AppliedPolicy, GatewayPlan, HeaderMatch, HeaderOps, HostRewrite, Listener, PathMatch, PathRewrite,
    Protocol, QueryMatch, Route, TlsMode, ValueMatch, VirtualHost,
};
use serde::{Deserialize, Serialize};

use crate::domain::{DomainTable, Hit, covers};
use crate::handler::{first_route, redirect, refusal, request_host, vhost_for};
use crate::path::normalize;
use crate::runtime::{ListenerKind, ListenerRuntime, Mismatch, ProxySettings, RouteRuntime, Shared, build};

/// A described request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The MeshGateway (none: the only one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The mesh (none: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<String>,
    /// The gateway Dataplane (none: the first one bound to the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<String>,
    /// The port (none: the one listener serving the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The TLS SNI (HTTPS and TLS listeners; none: the host, as clients send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The Host (`:authority`), with or without a port.
    pub host: String,
    /// The method (default GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The path, optionally with `?query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Query parameters, added to the path's (already encoded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<(String, String)>,
}

impl Probe {
    /// A probe from a URL query string: `gateway`, `mesh`, `dataplane`, `port`, `sni`, `host`, `method`, `path`,
    /// repeated `header=name:value` and `query=name=value`.
    pub fn from_query(q: &str) -> Result<Probe, String> {
        let mut probe = Probe::default();
        let mut host = None;
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = crate::runtime::percent_decode(v);
            match crate::runtime::percent_decode(k).as_str() {
                "gateway" => probe.gateway = Some(v),
                "mesh" => probe.mesh = Some(v),
                "dataplane" => probe.dataplane = Some(v),
                "port" => probe.port = Some(v.parse().map_err(|_| format!("port: {v:?} is not a port number"))?),
                "sni" => probe.sni = Some(v),
                "host" => host = Some(v),
                "method" => probe.method = Some(v),
                "path" => probe.path = Some(v),
                "header" => {
                    let (n, val) = v.split_once(':').ok_or_else(|| format!("header: {v:?} is not name:value"))?;
                    probe.headers.push((n.trim().to_owned(), val.trim().to_owned()));
                }
                "query" => {
                    let (n, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
                    probe.query.push((n.to_owned(), val.to_owned()));
                }
                other => return Err(format!("unknown parameter {other:?}")),
            }
        }
        probe.host = host.ok_or("host is required")?;
        Ok(probe)
    }

    /// The probe as a URL query string ([`Probe::from_query`] reads it back).
    pub fn to_query(&self) -> String {
        fn enc(s: &str) -> String {
            let mut out = String::with_capacity(s.len());
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b'*' | b':') {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        }
        let mut parts = Vec::new();
        let mut put = |k: &str, v: &str| parts.push(format!("{k}={}", enc(v)));
        for (k, v) in [
            ("gateway", &self.gateway),
            ("mesh", &self.mesh),
            ("dataplane", &self.dataplane),
            ("sni", &self.sni),
            ("method", &self.method),
            ("path", &self.path),
        ] {
            if let Some(v) = v {
                put(k, v);
            }
        }
        if let Some(port) = self.port {
            put("port", &port.to_string());
        }
        put("host", &self.host);
        for (k, v) in &self.headers {
            put("header", &format!("{k}:{v}"));
        }
        for (k, v) in &self.query {
            put("query", &format!("{k}={v}"));
        }
        parts.join("&")
    }

    /// The request the data plane would receive.
    fn request(&self) -> Result<Request<()>, String> {
        let method = self.method.as_deref().unwrap_or("GET");
        let method =
            Method::from_bytes(method.as_bytes()).map_err(|_| format!("method: {method:?} is not a method"))?;
        let mut target = self.path.clone().unwrap_or_else(|| "/".to_owned());
        if !target.starts_with('/') {
            target.insert(0, '/');
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            let sep = if i == 0 && !target.contains('?') { '?' } else { '&' };
            target.push(sep);
            target.push_str(k);
            target.push('=');
            target.push_str(v);
        }
        let mut builder = Request::builder().method(method).uri(target.as_str()).header(http::header::HOST, &self.host);
        for (k, v) in &self.headers {
            if k.eq_ignore_ascii_case("host") {
                continue;
            }
            builder = builder.header(k.as_str(), v.as_str());
        }
        builder.body(()).map_err(|e| format!("the request cannot be built: {e}"))
    }
}

/// One candidate the data plane considered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// What it is (a hostname, domain or SNI pattern).
    pub name: String,
    /// Whether it was chosen.
    pub chosen: bool,
    /// Why it was chosen, or why not.
    pub reason: String,
}

/// A MeshGateway listener merged into the port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    /// Kuma's listener name.
    pub name: String,
    /// The port.
    pub port: u16,
    /// HTTP, HTTPS, TCP or TLS.
    pub protocol: String,
    /// The MeshGateway listener hostname the request belongs to (by Host, or SNI after TLS).
    pub hostname: Option<String>,
    /// Its merged tags (what policies target).
    pub tags: BTreeMap<String, String>,
    /// Every hostname of the port.
    pub hostnames: Vec<Candidate>,
}

/// One entry of the route table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCandidate {
    /// Its position in the table (0: tried first).
    pub index: usize,
    /// The route resource it comes from (`MeshHTTPRoute/name rule 0 match 1`, or `generated`).
    pub source: String,
    /// Its conditions.
    pub conditions: String,
    /// `matched`, `lost` or `not-served`.
    pub outcome: String,
    /// Why.
    pub reason: String,
}

/// A backend of the chosen route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// The cluster.
    pub cluster: String,
    /// Its `kuma.io/service`.
    pub service: String,
    /// Its weight, and its share of requests in percent.
    pub weight: u32,
    /// The share of requests it gets.
    pub percent: f64,
    /// How endpoints are chosen.
    pub load_balancer: String,
    /// Its endpoints and their state.
    pub endpoints: Vec<EndpointInfo>,
    /// The policies in force on it.
    pub policies: Vec<AppliedPolicy>,
}

/// An endpoint and whether it takes traffic now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// `host:port`.
    pub address: String,
    /// `healthy`, `unhealthy` (active check) or `ejected` (outlier detection).
    pub state: String,
}

/// What the chosen route does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionInfo {
    /// `forward`, `redirect` or `respond`.
    pub kind: String,
    /// The filters that run, in order.
    pub filters: Vec<String>,
    /// Forward: the weighted backends.
    pub backends: Vec<BackendInfo>,
    /// Redirect and respond: the status.
    pub status: Option<u16>,
    /// Redirect: the `Location`.
    pub location: Option<String>,
}

/// The policies in force on the request's way, with the values each one set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// On the whole listener (Kuma keys these by port).
    pub listener: Vec<AppliedPolicy>,
    /// On the chosen route.
    pub route: Vec<AppliedPolicy>,
    /// The effective values: what the data plane enforces, and where the value comes from.
    pub effective: BTreeMap<String, String>,
}

/// Everything `explain` says about one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The MeshGateway (`mesh/name`).
    pub gateway: String,
    /// The Dataplane whose plan was used.
    pub dataplane: String,
    /// The request as the data plane sees it.
    pub request: String,
    /// The listener.
    pub listener: ListenerInfo,
    /// HTTPS/TLS: the SNI and the chains it was matched against.
    pub tls: Vec<Candidate>,
    /// The virtual hosts the Host was matched against.
    pub virtual_hosts: Vec<Candidate>,
    /// The route table, in match order.
    pub routes: Vec<RouteCandidate>,
    /// The route entry that matched.
    pub route: Option<usize>,
    /// What it does.
    pub action: Option<ActionInfo>,
    /// Policies.
    pub policies: PolicyInfo,
    /// The answer in one line (`404: no route matches`, `forward to …`).
    pub result: String,
    /// The status the gateway answers itself, when it does (none: the upstream's).
    pub status: Option<u16>,
    /// Anything else worth knowing.
    pub notes: Vec<String>,
}

/// The plan a probe is about: its gateway (and dataplane) if named, else the only gateway.
pub fn choose_plan<'p>(plans: &'p [GatewayPlan], probe: &Probe) -> Result<(&'p GatewayPlan, Vec<String>), String> {
    let bound: Vec<&GatewayPlan> = plans.iter().filter(|p| p.gateway.is_some()).collect();
    let found: Vec<&GatewayPlan> = bound
        .iter()
        .copied()
        .filter(|p| {
            let g = p.gateway.as_ref();
            probe.gateway.as_ref().is_none_or(|n| g.is_some_and(|g| &g.name == n))
                && probe.mesh.as_ref().is_none_or(|m| &p.dataplane.mesh == m)
                && probe.dataplane.as_ref().is_none_or(|d| &p.dataplane.name == d)
        })
        .collect();
    let names = || {
        let mut n: Vec<String> = bound
            .iter()
            .filter_map(|p| {
                p.gateway.as_ref().map(|g| format!("{}/{} (dataplane {})", g.mesh, g.name, p.dataplane.name))
            })
            .collect();
        n.dedup();
        if n.is_empty() { "none".to_owned() } else { n.join(", ") }
    };
    let Some(first) = found.first() else {
        return Err(format!("no gateway matches; gateways with a bound Dataplane: {}", names()));
    };
    let gateways: std::collections::BTreeSet<_> = found.iter().filter_map(|p| p.gateway.as_ref()).collect();
    if gateways.len() > 1 {
        return Err(format!("several gateways match; name one with --gateway (and --mesh): {}", names()));
    }
    let mut notes = Vec::new();
    if found.len() > 1 {
        notes.push(format!(
            "{} Dataplanes run this gateway; explained for {} (choose another with --dataplane)",
            found.len(),
            first.dataplane.name
        ));
    }
    Ok((first, notes))
}

/// The port a probe is for: the given one, or the one listener whose hostnames take the host.
fn choose_listener<'p>(plan: &'p GatewayPlan, probe: &Probe, host: &str) -> Result<&'p Listener, String> {
    if let Some(port) = probe.port {
        return plan.listeners.iter().find(|l| l.port == port).ok_or_else(|| {
            let ports: Vec<String> = plan.listeners.iter().map(|l| l.port.to_string()).collect();
            format!("the gateway has no listener on port {port} (ports: {})", ports.join(", "))
        });
    }
    let serving: Vec<&Listener> =
        plan.listeners.iter().filter(|l| l.hostnames.iter().any(|h| covers(&h.hostname, Some(host)))).collect();
    match serving.as_slice() {
        [one] => Ok(one),
        [] if plan.listeners.len() == 1 => plan.listeners.first().ok_or_else(String::new),
        [] => Err(format!("no listener of the gateway takes host {host}; give --port")),
        many => {
            let ports: Vec<String> = many.iter().map(|l| format!("{} ({})", l.port, l.protocol.name())).collect();
            Err(format!("host {host} is served on ports {}: give --port", ports.join(", ")))
        }
    }
}

/// Explains a probe against plans, building their runtime the way the data plane does (offline: no sockets, no
/// access-log files, every endpoint healthy).
pub fn offline(plans: &[GatewayPlan], probe: &Probe) -> Result<Explanation, String> {
    let (plan, notes) = choose_plan(plans, probe)?;
    let mut quiet = plan.clone();
    for l in &mut quiet.listeners {
        l.policies.access_logs.clear();
        l.policies.tracing = None;
    }
    let shared = Shared::default();
    let metrics = crate::metrics::Metrics::default();
    let (runtime, warnings) = build(&quiet, &shared, &metrics, &Arc::new(ProxySettings::default()));
    let host = host_of(probe)?;
    let listener = choose_listener(plan, probe, &host)?;
    let live = runtime.listeners.get(&listener.port).map(Arc::as_ref);
    let mut e = explain(plan, listener, live, probe)?;
    e.notes.splice(0..0, notes);
    e.notes.extend(warnings.into_iter().filter(|w| w.starts_with(&listener.name)));
    Ok(e)
}

/// Explains a probe against a running listener (its live endpoint states included).
pub fn live(
    plans: &[GatewayPlan],
    probe: &Probe,
    running: impl Fn(&GatewayPlan, u16) -> Option<Arc<ListenerRuntime>>,
) -> Result<Explanation, String> {
    let (plan, notes) = choose_plan(plans, probe)?;
    let host = host_of(probe)?;
    let listener = choose_listener(plan, probe, &host)?;
    let runtime = running(plan, listener.port);
    let mut e = explain(plan, listener, runtime.as_deref(), probe)?;
    e.notes.splice(0..0, notes);
    Ok(e)
}

fn host_of(probe: &Probe) -> Result<String, String> {
    let req = probe.request()?;
    request_host(&req).map(|h| h.into_owned()).ok_or_else(|| "the request has no usable Host".to_owned())
}

fn gateway_name(plan: &GatewayPlan) -> String {
    plan.gateway.as_ref().map_or_else(String::new, |g| format!("{}/{}", g.mesh, g.name))
}

fn explain(
    plan: &GatewayPlan,
    listener: &Listener,
    runtime: Option<&ListenerRuntime>,
    probe: &Probe,
) -> Result<Explanation, String> {
    let req = probe.request()?;
    let host = request_host(&req).map(|h| h.into_owned()).unwrap_or_default();
    let is_tls = matches!(listener.protocol, Protocol::Https | Protocol::Tls);
    let sni = if is_tls { Some(probe.sni.clone().unwrap_or_else(|| host.clone()).to_ascii_lowercase()) } else { None };
    let mut notes = Vec::new();
    if is_tls && probe.sni.is_none() {
        notes.push(format!("SNI taken to be the host ({host}), as clients send it; set another with --sni"));
    }
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut e = Explanation {
        gateway: gateway_name(plan),
        dataplane: format!("{}/{}", plan.dataplane.mesh, plan.dataplane.name),
        request: format!("{} {} {path_and_query} (port {})", req.method(), host, listener.port),
        listener: listener_info(listener, sni.as_deref().unwrap_or(&host)),
        tls: Vec::new(),
        virtual_hosts: Vec::new(),
        routes: Vec::new(),
        route: None,
        action: None,
        policies: PolicyInfo { listener: listener.policies.applied.clone(), ..PolicyInfo::default() },
        result: String::new(),
        status: None,
        notes,
    };
    listener_effective(listener, &mut e.policies.effective);
    let Some(runtime) = runtime else {
        e.result = format!("not served: listener {} is not running (see the build warnings)", listener.name);
        return Ok(e);
    };
    for f in &listener.policies.faults {
        e.notes.push(format!("fault injection before routing: {}", serde_json::to_string(f).unwrap_or_default()));
    }
    // TLS chains (HTTPS, TLS), chosen by SNI with the data plane's own table.
    let chains = &listener.tls_chains;
    let chain_hit = match &runtime.kind {
        ListenerKind::Https { chains: table, .. } => table.find_hit(sni.as_deref()),
        ListenerKind::Tls { chains: table, .. } => table.find_hit(sni.as_deref()),
        _ => None,
    };
    if is_tls {
        e.tls = domain_candidates(chains.iter().map(|c| c.sni.as_str()), sni.as_deref(), chain_hit, "SNI");
    }
    match listener.protocol {
        Protocol::Tcp | Protocol::Tls => {
            let tcp = match listener.protocol {
                Protocol::Tcp => listener.tcp.as_ref(),
                _ => chain_hit.and_then(|(i, _)| chains.get(i)).and_then(|c| c.tcp.as_ref()),
            };
            if let Some(chain) = chain_hit.and_then(|(i, _)| chains.get(i)) {
                e.notes.push(match chain.mode {
                    TlsMode::Passthrough => "TLS passes through to the backend".to_owned(),
                    TlsMode::Terminate => "TLS terminates here; plain bytes go to the backend".to_owned(),
                });
            }
            e.result = match tcp {
                Some(t) if !t.backends.is_empty() => {
                    let backends = backend_infos(plan, &t.backends, None);
                    let r = format!("the connection is relayed to {}", backend_summary(&backends));
                    e.action = Some(ActionInfo {
                        kind: "forward".to_owned(),
                        filters: Vec::new(),
                        backends,
                        status: None,
                        location: None,
                    });
                    r
                }
                _ => "the connection is closed: no route for it".to_owned(),
            };
            return Ok(e);
        }
        Protocol::Http | Protocol::Https => {}
    }
    if let Some((status, why)) = refusal(&req, &runtime.settings) {
        e.status = Some(status.as_u16());
        e.result = format!("{}: refused before routing ({})", status.as_u16(), why.trim());
        return Ok(e);
    }
    if host.is_empty() {
        e.status = Some(404);
        e.result = "404: the request has no usable Host".to_owned();
        return Ok(e);
    }
    let vhosts: &[VirtualHost] = match listener.protocol {
        Protocol::Https => chain_hit.and_then(|(i, _)| chains.get(i)).map_or(&[], |c| c.virtual_hosts.as_slice()),
        _ => &listener.virtual_hosts,
    };
    if listener.protocol == Protocol::Https && chain_hit.is_none() {
        e.status = None;
        e.result = format!("the TLS handshake fails: no certificate for SNI {}", sni.as_deref().unwrap_or("-"));
        return Ok(e);
    }
    let chosen = vhost_for(runtime, sni.as_deref(), &host);
    let table = match &runtime.kind {
        ListenerKind::Http { vhosts } => Some(vhosts),
        ListenerKind::Https { chains, .. } => chains.find(sni.as_deref()),
        _ => None,
    };
    // The table holds the plan's virtual hosts in plan order, so its index is the plan's.
    let vhost_hit = table.and_then(|t| t.find_hit(Some(&host)));
    e.virtual_hosts = domain_candidates(vhosts.iter().map(|v| v.domain.as_str()), Some(&host), vhost_hit, "Host");
    let vhost_hit = vhost_hit.map(|(i, _)| i);
    let (Some(vrt), Some(vi)) = (chosen, vhost_hit) else {
        e.status = Some(404);
        e.result = format!("404: no virtual host for {host} on this listener");
        return Ok(e);
    };
    let vplan = &vhosts[vi];
    let path = normalize(req.uri().path());
    if path != req.uri().path() {
        e.notes.push(format!("the path is normalised to {path} before matching"));
    }
    let winner = first_route(vrt, &req, &path);
    let query = req.uri().query();
    for (index, route) in vplan.routes.iter().enumerate() {
        let source = source_of(route);
        let conditions = conditions(route);
        let Some(rt) = vrt.routes.iter().find(|r| r.index == index) else {
            e.routes.push(RouteCandidate {
                index,
                source,
                conditions,
                outcome: "not-served".to_owned(),
                reason: "left out of the running configuration (see the build warnings)".to_owned(),
            });
            continue;
        };
        let (outcome, reason) = match (winner, rt.mismatch(req.method(), &path, query, req.headers())) {
            (Some(w), None) if std::ptr::eq(w, rt) => ("matched", "every condition holds".to_owned()),
            (Some(w), None) => (
                "lost",
                format!(
                    "also matches, but entry {} comes first: {}",
                    w.index,
                    order_reason(&vplan.routes[w.index], route)
                ),
            ),
            (None, None) => ("lost", "matches, but was not chosen".to_owned()),
            (_, Some(m)) => ("lost", mismatch_reason(m, route, &req, &path)),
        };
        e.routes.push(RouteCandidate { index, source, conditions, outcome: outcome.to_owned(), reason });
    }
    let Some(w) = winner else {
        e.status = Some(404);
        e.result = format!("404: no route of virtual host {} matches", vplan.domain);
        return Ok(e);
    };
    e.route = Some(w.index);
    let route = &vplan.routes[w.index];
    e.policies.route = route.policies.applied.clone();
    route_effective(route, w, listener, &mut e.policies.effective);
    if let Some(r) = &route.policies.rate_limit {
        e.notes
            .push(format!("rate limit: {} requests per {} ms on this route, then {}", r.num, r.interval_ms, r.status));
    }
    let (action, result, status) = action_info(plan, route, w, runtime, &host, &path);
    e.action = Some(action);
    e.result = result;
    e.status = status;
    Ok(e)
}

fn listener_info(listener: &Listener, name: &str) -> ListenerInfo {
    let mut table = DomainTable::default();
    for (i, h) in listener.hostnames.iter().enumerate() {
        table.insert(&h.hostname, i);
    }
    let hit = table.find_hit(Some(name));
    let chosen = hit.and_then(|(i, _)| listener.hostnames.get(i));
    ListenerInfo {
        name: listener.name.clone(),
        port: listener.port,
        protocol: listener.protocol.name().to_owned(),
        hostname: chosen.map(|h| h.hostname.clone()),
        tags: chosen.map(|h| h.tags.clone()).unwrap_or_default(),
        hostnames: domain_candidates(listener.hostnames.iter().map(|h| h.hostname.as_str()), Some(name), hit, "name"),
    }
}

/// Candidates of a domain table: the chosen one (by the table's own lookup) and why each other one lost.
fn domain_candidates<'a>(
    patterns: impl Iterator<Item = &'a str>,
    name: Option<&str>,
    hit: Option<(usize, Hit)>,
    what: &str,
) -> Vec<Candidate> {
    let shown = name.unwrap_or("(none)");
    patterns
        .enumerate()
        .map(|(i, pattern)| {
            let chosen = hit.is_some_and(|(h, _)| h == i);
            let reason = if chosen {
                match hit.map(|(_, k)| k) {
                    Some(Hit::Exact) => format!("{what} {shown} is exactly this name"),
                    Some(Hit::Wildcard) => format!("{what} {shown} is under this wildcard (the longest that fits)"),
                    _ => format!("* takes any {what} no more specific pattern takes"),
                }
            } else if covers(pattern, name) {
                "also fits, but a more specific pattern wins (exact name, then the longest wildcard, then *)".to_owned()
            } else {
                format!("{what} {shown} does not fit {pattern}")
            };
            Candidate { name: pattern.to_owned(), chosen, reason }
        })
        .collect()
}

pub(crate) fn source_of(route: &Route) -> String {
    let s = &route.source;
    if s.name.is_empty() {
        "generated".to_owned()
    } else {
        let kind = if s.kind.is_empty() { "MeshGatewayRoute" } else { s.kind.as_str() };
        format!("{kind}/{} rule {} match {}", s.name, s.rule, s.r#match)
    }
}

fn value_text(kind: &ValueMatch) -> String {
    match kind {
        ValueMatch::Exact(v) => format!("= {v:?}"),
        ValueMatch::Regex(r) => format!("~ /{r}/"),
        ValueMatch::Present => "present".to_owned(),
        ValueMatch::Absent => "absent".to_owned(),
    }
}

pub(crate) fn conditions(route: &Route) -> String {
    let mut parts = vec![match &route.path {
        PathMatch::Exact(p) => format!("path = {p}"),
        PathMatch::Prefix(p) => format!("path prefix {p}"),
        PathMatch::Regex(r) => format!("path ~ /{r}/"),
    }];
    if let Some(m) = &route.method {
        parts.push(format!("method {m}"));
    }
    parts.extend(route.headers.iter().map(|h: &HeaderMatch| format!("header {} {}", h.name, value_text(&h.kind))));
    parts.extend(route.query.iter().map(|q: &QueryMatch| format!("query {} {}", q.name, value_text(&q.kind))));
    parts.join(", ")
}

fn mismatch_reason(m: Mismatch, route: &Route, req: &Request<()>, path: &str) -> String {
    match m {
        Mismatch::Path => match &route.path {
            PathMatch::Exact(p) => format!("path {path} is not {p}"),
            PathMatch::Prefix(p) => format!("path {path} is not under the prefix {p}"),
            PathMatch::Regex(r) => format!("path {path} does not match /{r}/"),
        },
        Mismatch::Method => {
            format!("method {} is not {}", req.method(), route.method.as_deref().unwrap_or_default())
        }
        Mismatch::Header(i) => match route.headers.get(i) {
            Some(h) => {
                let values: Vec<&str> =
                    req.headers().get_all(h.name.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
                let actual = if values.is_empty() { "missing".to_owned() } else { format!("{:?}", values.join(",")) };
                format!("header {}: {actual}, wanted {}", h.name, value_text(&h.kind))
            }
            None => "a header condition fails".to_owned(),
        },
        Mismatch::Query(i) => match route.query.get(i) {
            Some(q) => {
                let actual = req
                    .uri()
                    .query()
                    .and_then(|s| crate::runtime::query_value(s, &q.name))
                    .map_or_else(|| "missing".to_owned(), |v| format!("{v:?}"));
                format!("query {}: {actual}, wanted {}", q.name, value_text(&q.kind))
            }
            None => "a query condition fails".to_owned(),
        },
    }
}

/// Why entry `w` is tried before `c` in the table (the criteria of Kuma's route order).
fn order_reason(w: &Route, c: &Route) -> String {
    fn kind(p: &PathMatch) -> (u8, &'static str) {
        match p {
            PathMatch::Exact(_) => (0, "an exact path"),
            PathMatch::Prefix(_) => (1, "a prefix"),
            PathMatch::Regex(_) => (2, "a regex"),
        }
    }
    let (wk, wn) = kind(&w.path);
    let (ck, cn) = kind(&c.path);
    if wk != ck {
        return format!("{wn} ranks before {cn}");
    }
    let (wl, cl) = (w.path.value().len(), c.path.value().len());
    if wl != cl {
        return format!("its path {} is longer than {}", w.path.value(), c.path.value());
    }
    if w.method.is_some() != c.method.is_some() {
        return "it also matches the method".to_owned();
    }
    if w.headers.len() != c.headers.len() {
        return format!("it has more header conditions ({} vs {})", w.headers.len(), c.headers.len());
    }
    if w.query.len() != c.query.len() {
        return format!("it has more query conditions ({} vs {})", w.query.len(), c.query.len());
    }
    "equally specific; it comes earlier".to_owned()
}

fn ops_filters(prefix: &str, ops: &HeaderOps, out: &mut Vec<String>) {
    for r in &ops.remove {
        out.push(format!("{prefix} header remove {r}"));
    }
    for (k, v) in &ops.set {
        out.push(format!("{prefix} header set {k}: {v}"));
    }
    for (k, v) in &ops.add {
        out.push(format!("{prefix} header add {k}: {v}"));
    }
}

fn rewrite_text(r: &PathRewrite) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

fn backend_infos(
    plan: &GatewayPlan,
    backends: &[meshgate_plan::WeightedCluster],
    runtime: Option<&crate::runtime::ForwardRuntime>,
) -> Vec<BackendInfo> {
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    let now = crate::health::now_ms();
    backends
        .iter()
        .map(|b| {
            let cluster = plan.clusters.get(&b.cluster);
            let live = runtime
                .and_then(|f| f.backends.items().find_map(|c| c.as_ref().filter(|c| c.name == b.cluster).cloned()));
            let endpoints = cluster.map_or_else(Vec::new, |c| {
                c.endpoints
                    .iter()
                    .enumerate()
                    .map(|(i, ep)| {
                        let state = live.as_ref().and_then(|l| l.states.get(i)).map_or("healthy", |s| s.describe(now));
                        EndpointInfo { address: format!("{}:{}", ep.host, ep.port), state: state.to_owned() }
                    })
                    .collect()
            });
            BackendInfo {
                cluster: b.cluster.clone(),
                service: cluster.map_or_else(String::new, |c| c.service.clone()),
                weight: b.weight,
                percent: if total == 0 { 0.0 } else { f64::from(b.weight) * 100.0 / total as f64 },
                load_balancer: cluster
                    .and_then(|c| serde_json::to_value(&c.load_balancer).ok())
                    .map(|v| match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .unwrap_or_default(),
                endpoints,
                policies: cluster.map_or_else(Vec::new, |c| c.applied.clone()),
            }
        })
        .collect()
}

fn backend_summary(backends: &[BackendInfo]) -> String {
    let parts: Vec<String> = backends
        .iter()
        .map(|b| {
            if backends.len() == 1 {
                let n = b.endpoints.len();
                format!("{} ({n} endpoint{})", b.cluster, if n == 1 { "" } else { "s" })
            } else {
                format!("{} {:.0}%", b.cluster, b.percent)
            }
        })
        .collect();
    parts.join(", ")
}

fn action_info(
    plan: &GatewayPlan,
    route: &Route,
    rt: &RouteRuntime,
    runtime: &ListenerRuntime,
    host: &str,
    path: &str,
) -> (ActionInfo, String, Option<u16>) {
    let fwd = match &rt.action {
        crate::runtime::ActionRuntime::Forward(f) => Some(f),
        _ => None,
    };
    let mut filters = Vec::new();
    match &route.action {
        Action::Forward(f) => {
            ops_filters("request", &f.request_headers, &mut filters);
            if let Some(r) = &f.path_rewrite {
                filters.push(format!("path rewrite {} (the path becomes {})", rewrite_text(r), r.apply(path)));
            }
            match &f.host_rewrite {
                Some(HostRewrite::Literal(h)) => filters.push(format!("host rewrite to {h}")),
                Some(HostRewrite::Backend) => filters.push("host rewrite to the backend's hostname".to_owned()),
                None => {}
            }
            if let Some(m) = &f.mirror {
                filters.push(format!("mirror {}% to {}", m.percentage, m.cluster));
            }
            ops_filters("response", &f.response_headers, &mut filters);
            let backends = backend_infos(plan, &f.backends, fwd);
            // What the data plane's backend choice can end in: every choice unresolved (500), or every resolved
            // choice without an endpoint (503).
            let choices: Vec<Option<&std::sync::Arc<crate::runtime::ClusterRuntime>>> =
                fwd.map(|f| f.backends.items().map(Option::as_ref).collect()).unwrap_or_default();
            let (result, status) = if choices.iter().all(Option::is_none) {
                ("500: none of the route's backends resolves to a cluster".to_owned(), Some(500))
            } else if choices.iter().all(|c| c.is_some_and(|c| c.endpoints.is_empty())) {
                ("503: the route's backends have no endpoint".to_owned(), Some(503))
            } else {
                let mut r = format!("forward to {}", backend_summary(&backends));
                if choices.iter().any(Option::is_none) {
                    r.push_str(" (some weighted choices do not resolve: those requests get 500)");
                }
                (r, None)
            };
            (ActionInfo { kind: "forward".to_owned(), filters, backends, status: None, location: None }, result, status)
        }
        Action::Redirect(r) => {
            let resp = redirect(r, runtime, host, path);
            let location = resp.headers().get(http::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let status = resp.status().as_u16();
            let result = format!("{status}: redirect to {}", location.as_deref().unwrap_or("-"));
            (
                ActionInfo {
                    kind: "redirect".to_owned(),
                    filters,
                    backends: Vec::new(),
                    status: Some(status),
                    location,
                },
                result,
                Some(status),
            )
        }
        Action::Respond(d) => {
            let result = format!("{}: answered by the gateway", d.status);
            (
                ActionInfo {
                    kind: "respond".to_owned(),
                    filters,
                    backends: Vec::new(),
                    status: Some(d.status),
                    location: None,
                },
                result,
                Some(d.status),
            )
        }
    }
}

fn ms_text(ms: u64) -> String {
    if ms == 0 {
        "none".to_owned()
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Which policies set a value: targetRef policies of `kind` by the conf paths they set, legacy ones of `legacy`
/// (which apply whole) by kind.
fn who(applied: &[AppliedPolicy], kind: &str, value: &str, legacy: &str) -> String {
    let setters: Vec<String> = applied
        .iter()
        .filter(|a| a.status == "applied")
        .filter(|a| {
            (a.kind == kind && a.values.iter().any(|v| v == value || v.starts_with(&format!("{value}."))))
                || (a.values.is_empty() && a.kind == legacy)
        })
        .map(|a| format!("{}/{}", a.kind, a.name))
        .collect();
    if setters.is_empty() { "default".to_owned() } else { setters.join(", ") }
}

fn retry_text(r: &meshgate_plan::RetryPolicy) -> String {
    let mut on: Vec<String> = [
        (r.on_5xx, "5xx"),
        (r.on_gateway_error, "gateway-error"),
        (r.on_reset, "reset"),
        (r.on_connect_failure, "connect-failure"),
        (r.on_retriable_4xx, "retriable-4xx"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| (*name).to_owned())
    .collect();
    on.extend(r.statuses.iter().map(u16::to_string));
    format!(
        "{} retries, {} per try, back-off {}–{}, on {}",
        r.num_retries,
        ms_text(r.per_try_timeout_ms),
        ms_text(r.base_interval_ms),
        ms_text(r.max_interval_ms),
        if on.is_empty() { "nothing".to_owned() } else { on.join(", ") }
    )
}

fn listener_effective(listener: &Listener, out: &mut BTreeMap<String, String>) {
    let p = &listener.policies;
    let a = &p.applied;
    let mut put = |key: &str, value: Option<u64>, path: &str| {
        if let Some(v) = value {
            out.insert(key.to_owned(), format!("{} ({})", ms_text(v), who(a, "MeshTimeout", path, "Timeout")));
        }
    };
    put("listener.idleTimeout", p.idle_timeout_ms, "idleTimeout");
    put("listener.requestHeadersTimeout", p.request_headers_timeout_ms, "http.requestHeadersTimeout");
    put("listener.streamIdleTimeout", p.stream_idle_timeout_ms, "http.streamIdleTimeout");
    put("listener.requestTimeout", p.request_timeout_ms, "http.requestTimeout");
    if let Some(t) = &p.tracing {
        let to = match &t.backend {
            meshgate_plan::TraceBackend::Otlp { url } => format!("OTLP {url}"),
            meshgate_plan::TraceBackend::Zipkin { url } => format!("Zipkin {url}"),
        };
        out.insert(
            "listener.tracing".to_owned(),
            format!("{to}, sampling {}% ({})", t.overall, who(a, "MeshTrace", "backends", "TrafficTrace")),
        );
    }
    if !p.access_logs.is_empty() {
        out.insert(
            "listener.accessLogs".to_owned(),
            format!("{} ({})", p.access_logs.len(), who(a, "MeshAccessLog", "backends", "TrafficLog")),
        );
    }
}

fn route_effective(route: &Route, rt: &RouteRuntime, listener: &Listener, out: &mut BTreeMap<String, String>) {
    let a = &route.policies.applied;
    let source =
        |set: bool, path: &str| if set { who(a, "MeshTimeout", path, "Timeout") } else { "default".to_owned() };
    out.insert(
        "route.requestTimeout".to_owned(),
        format!(
            "{} ({})",
            ms_text(u64::try_from(rt.request_timeout.as_millis()).unwrap_or(u64::MAX)),
            source(route.policies.request_timeout_ms.is_some(), "http.requestTimeout")
        ),
    );
    let stream_set = route.policies.stream_idle_timeout_ms.is_some();
    out.insert(
        "route.streamIdleTimeout".to_owned(),
        format!(
            "{} ({})",
            ms_text(u64::try_from(rt.stream_idle_timeout.as_millis()).unwrap_or(u64::MAX)),
            if stream_set {
                who(a, "MeshTimeout", "http.streamIdleTimeout", "Timeout")
            } else if listener.policies.stream_idle_timeout_ms.is_some() {
                who(&listener.policies.applied, "MeshTimeout", "http.streamIdleTimeout", "Timeout")
            } else {
                "default".to_owned()
            }
        ),
    );
    if let Some(r) = &route.policies.retry {
        out.insert("route.retry".to_owned(), format!("{} ({})", retry_text(r), who(a, "MeshRetry", "http", "Retry")));
    }
    if let Some(r) = &route.policies.rate_limit {
        out.insert(
            "route.rateLimit".to_owned(),
            format!(
                "{} per {} ({})",
                r.num,
                ms_text(r.interval_ms),
                who(a, "MeshRateLimit", "local.http", "RateLimit")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        "[ -~]{0,12}"
    }

    proptest! {
        /// What the CLI sends is what the gateway reads back, whatever the characters.
        #[test]
        fn probes_survive_the_query_string(
            host in "[a-z0-9.*-]{1,20}",
            path in text(),
            method in "[A-Z]{1,7}",
            headers in proptest::collection::vec(("[a-z-]{1,8}", text()), 0..3),
            query in proptest::collection::vec(("[a-z]{1,6}", text()), 0..3),
            port in proptest::option::of(1u16..),
            sni in proptest::option::of("[a-z.]{1,10}"),
        ) {
            let probe = Probe {
                gateway: Some("gw".into()),
                mesh: None,
                dataplane: Some("dp 1".into()),
                port,
                sni,
                host,
                method: Some(method),
                path: Some(path),
                headers: headers.into_iter().map(|(k, v)| (k, v.trim().to_owned())).collect(),
                query,
            };
            prop_assert_eq!(Probe::from_query(&probe.to_query()).unwrap(), probe);
        }
    }

    #[test]
    fn bad_probes_say_what_is_wrong() {
        let cases = [
            ("path=/", "host is required"),
            ("host=a&port=x", "port: \"x\" is not a port number"),
            ("host=a&header=nocolon", "header: \"nocolon\" is not name:value"),
            ("host=a&colour=red", "unknown parameter \"colour\""),
        ];
        for (query, want) in cases {
            assert_eq!(Probe::from_query(query).unwrap_err(), want, "{query}");
        }
    }

    #[test]
    fn order_reasons_follow_the_table_criteria() {
        let route = |path: PathMatch, headers: usize| Route {
            source: meshgate_plan::RouteSource::default(),
            path,
            method: None,
            headers: (0..headers).map(|i| HeaderMatch { name: format!("h{i}"), kind: ValueMatch::Present }).collect(),
            query: Vec::new(),
            action: Action::Respond(meshgate_plan::DirectResponse { status: 200, body: String::new() }),
            policies: meshgate_plan::RoutePolicies::default(),
        };
        let exact = route(PathMatch::Exact("/a".into()), 0);
        let long = route(PathMatch::Prefix("/a/b/".into()), 0);
        let short = route(PathMatch::Prefix("/a/".into()), 0);
        let with_header = route(PathMatch::Prefix("/a/".into()), 1);
        assert_eq!(order_reason(&exact, &short), "an exact path ranks before a prefix");
        assert_eq!(order_reason(&long, &short), "its path /a/b/ is longer than /a/");
        assert_eq!(order_reason(&with_header, &short), "it has more header conditions (1 vs 0)");
        assert_eq!(order_reason(&short, &short), "equally specific; it comes earlier");
    }
}
