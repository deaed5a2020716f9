//! Route rules (MeshGatewayRoute, and MeshHTTPRoute translated by `meshroutes`) → the ordered route table of one
//! virtual host (Kuma spec §3.5–3.6).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use meshgate_api::model::gateway_route::{
    HeaderMatchType, HeaderValue, HttpFilter, HttpMatch, HttpMethod, HttpRoute, HttpRule, PathMatchType, QueryMatchType,
};
use meshgate_plan::{
    Action, DirectResponse, Forward, HeaderMatch, HeaderOps, HostRewrite, Mirror, NO_ROUTES_BODY, PathMatch,
    PathRewrite, QueryMatch, Redirect, Route, RoutePolicies, RouteSource, ValueMatch, WeightedCluster,
};

use crate::backends::{Clusters, UNRESOLVED_BACKEND, Unusable};

/// A route attached to a virtual host.
#[derive(Clone, Copy, Debug)]
pub struct Attached<'a> {
    /// The route's kind: `MeshGatewayRoute`, or `MeshHTTPRoute` (its merged rules in this model).
    pub kind: &'static str,
    /// The route's name.
    pub name: &'a str,
    /// Its HTTP conf.
    pub http: &'a HttpRoute,
    /// The index of `http`'s first rule in the resource (a merged MeshHTTPRoute rule is a one-rule route).
    pub rule_base: usize,
    /// A merged MeshHTTPRoute rule's key (empty for MeshGatewayRoutes).
    pub rule_key: &'a str,
}

impl<'a> Attached<'a> {
    /// A MeshGatewayRoute's HTTP conf.
    pub fn gateway_route(name: &'a str, http: &'a HttpRoute) -> Self {
        Attached { kind: "MeshGatewayRoute", name, http, rule_base: 0, rule_key: "" }
    }

    fn subject(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// The Redirect status codes that can be served.
const REDIRECT_CODES: [u32; 5] = [301, 302, 303, 307, 308];

fn is_host(name: &str) -> bool {
    name.eq_ignore_ascii_case("host") || name == ":authority"
}

/// The first PREFIX match value of a rule, without trailing slashes (what a prefix rewrite replaces).
fn rule_prefix(rule: &HttpRule) -> Option<String> {
    rule.matches.iter().find_map(|m| {
        m.path.as_ref().filter(|p| p.match_ == PathMatchType::PREFIX).map(|p| p.value.trim_end_matches('/').to_owned())
    })
}

fn prefix_rewrite(rule: &HttpRule, replacement: &str) -> PathRewrite {
    PathRewrite::Prefix { prefix: rule_prefix(rule).unwrap_or_default(), replacement: replacement.to_owned() }
}

fn header_ops(
    filter_ops: &[&meshgate_api::model::gateway_route::HeaderFilter],
    host: Option<&mut Option<HostRewrite>>,
    subject: &str,
    diagnostics: &mut Vec<meshgate_plan::Diagnostic>,
) -> HeaderOps {
    let mut ops = HeaderOps::default();
    let mut host = host;
    let warn = |diagnostics: &mut Vec<meshgate_plan::Diagnostic>, what: &str| {
        diagnostics.push(meshgate_plan::Diagnostic {
            severity: meshgate_plan::Severity::Warning,
            subject: subject.to_owned(),
            message: format!("{what} of the Host header is ignored (set it instead, which rewrites the host)"),
        });
    };
    let pairs = |list: &[HeaderValue]| -> Vec<(String, String)> {
        list.iter().filter(|h| !h.name.is_empty()).map(|h| (h.name.clone(), h.value.clone())).collect()
    };
    for f in filter_ops {
        for (name, value) in pairs(&f.set) {
            if is_host(&name) {
                match host.as_deref_mut() {
                    Some(h) => *h = Some(HostRewrite::Literal(value)),
                    None => ops.set.push((name, value)),
                }
            } else {
                ops.set.push((name, value));
            }
        }
        for (name, value) in pairs(&f.add) {
            if is_host(&name) && host.is_some() {
                warn(diagnostics, "an `add`");
            } else {
                ops.add.push((name, value));
            }
        }
        for name in f.remove.iter().filter(|n| !n.is_empty()) {
            if is_host(name) && host.is_some() {
                warn(diagnostics, "a `remove`");
            } else {
                ops.remove.push(name.clone());
            }
        }
    }
    ops
}

/// The action of a rule, or `None` if it cannot be served (reported).
fn action(
    route: &Attached<'_>,
    rule: &HttpRule,
    listener_port: u16,
    clusters: &mut Clusters<'_, '_>,
) -> Option<Action> {
    let subject = route.subject();
    let filters: Vec<&HttpFilter> = rule.filters.iter().collect();
    if let Some(r) = filters.iter().find_map(|f| f.redirect.as_ref()) {
        if !REDIRECT_CODES.contains(&r.status_code) {
            clusters.diagnostics.push(meshgate_plan::Diagnostic {
                severity: meshgate_plan::Severity::Error,
                subject,
                message: format!("redirect status code {} is not supported; the rule is left out", r.status_code),
            });
            return None;
        }
        let path_rewrite = r.path.as_ref().and_then(|p| {
            p.replace_full
                .as_ref()
                .map(|full| PathRewrite::Full(full.clone()))
                .or_else(|| p.replace_prefix_match.as_ref().map(|rpm| prefix_rewrite(rule, rpm)))
        });
        return Some(Action::Redirect(Redirect {
            scheme: Some(r.scheme.clone()).filter(|s| !s.is_empty()),
            host: Some(r.hostname.clone()).filter(|s| !s.is_empty()),
            // Kuma: the port is the listener's when not given.
            port: Some(u16::try_from(r.port).ok().filter(|p| *p > 0).unwrap_or(listener_port)),
            path_rewrite,
            status: u16::try_from(r.status_code).unwrap_or(301),
        }));
    }

    let mut host_rewrite = None;
    let request_filters: Vec<_> = filters.iter().filter_map(|f| f.request_header.as_ref()).collect();
    let response_filters: Vec<_> = filters.iter().filter_map(|f| f.response_header.as_ref()).collect();
    let mut path_rewrite = None;
    for f in &filters {
        if let Some(rw) = &f.rewrite {
            if rw.host_to_backend_hostname {
                host_rewrite = Some(HostRewrite::Backend);
            }
            if let Some(full) = &rw.replace_full {
                path_rewrite = Some(PathRewrite::Full(full.clone()));
            } else if let Some(rpm) = &rw.replace_prefix_match {
                path_rewrite = Some(prefix_rewrite(rule, rpm));
            }
        }
    }
    // A Host `set` is a host rewrite; it wins over host_to_backend_hostname.
    let request_headers = header_ops(&request_filters, Some(&mut host_rewrite), &subject, &mut clusters.diagnostics);
    let response_headers = header_ops(&response_filters, None, &subject, &mut clusters.diagnostics);

    let mut mirror = None;
    for f in &filters {
        if let Some(m) = &f.mirror
            && let Some(backend) = &m.backend
            && let Some(pct) = m.percentage.filter(|p| *p > 0.0)
        {
            // A mirror that cannot be resolved is dropped (reported); the rule itself still serves.
            if let Ok(Some(cluster)) = clusters.resolve(&backend.destination, &subject) {
                mirror = Some(Mirror { cluster, percentage: pct.min(100.0) });
            }
        }
    }

    // One weighted cluster per distinct destination; the last weight wins; a lone backend always gets traffic.
    let lone = rule.backends.len() == 1;
    let mut weights: BTreeMap<String, (usize, u32)> = BTreeMap::new();
    for (i, b) in rule.backends.iter().enumerate() {
        let name = match clusters.resolve(&b.destination, &subject) {
            Ok(Some(name)) => name,
            // Kuma's unresolved backend: no cluster, so requests get a 500.
            Ok(None) => UNRESOLVED_BACKEND.to_owned(),
            // The backend cannot be used: the rule is left out (the reason is in the diagnostics).
            Err(Unusable) => return None,
        };
        let weight = if lone && b.weight == 0 { 1 } else { b.weight };
        let first = weights.get(&name).map_or(i, |(pos, _)| *pos);
        weights.insert(name, (first, weight));
    }
    let mut backends: Vec<(usize, WeightedCluster)> =
        weights.into_iter().map(|(cluster, (pos, weight))| (pos, WeightedCluster { cluster, weight })).collect();
    backends.sort_by_key(|(pos, _)| *pos);
    let mut backends: Vec<WeightedCluster> = backends.into_iter().map(|(_, b)| b).collect();
    if backends.len() > 1 && backends.iter().all(|b| b.weight == 0) {
        clusters.diagnostics.push(meshgate_plan::Diagnostic {
            severity: meshgate_plan::Severity::Warning,
            subject: route.subject(),
            message: "every backend of a rule has weight 0; traffic is shared equally".to_owned(),
        });
        for b in &mut backends {
            b.weight = 1;
        }
    }
    Some(Action::Forward(Forward { backends, request_headers, response_headers, path_rewrite, host_rewrite, mirror }))
}

fn conditions(m: &HttpMatch) -> (Option<String>, Vec<HeaderMatch>, Vec<QueryMatch>) {
    let method = (m.method != HttpMethod::NONE).then(|| m.method.name().to_owned());
    let mut headers = Vec::new();
    for h in &m.headers {
        if h.name.is_empty() {
            continue;
        }
        let kind = match h.match_ {
            HeaderMatchType::EXACT if !h.value.is_empty() => ValueMatch::Exact(h.value.clone()),
            HeaderMatchType::REGEX if !h.value.is_empty() => ValueMatch::Regex(h.value.clone()),
            HeaderMatchType::ABSENT => ValueMatch::Absent,
            HeaderMatchType::PRESENT => ValueMatch::Present,
            _ => continue,
        };
        headers.push(HeaderMatch { name: h.name.to_ascii_lowercase(), kind });
    }
    let mut query = Vec::new();
    for q in &m.query_parameters {
        if q.name.is_empty() || q.value.is_empty() {
            continue;
        }
        let kind = match q.match_ {
            QueryMatchType::EXACT => ValueMatch::Exact(q.value.clone()),
            QueryMatchType::REGEX => ValueMatch::Regex(q.value.clone()),
        };
        query.push(QueryMatch { name: q.name.clone(), kind });
    }
    (method, headers, query)
}

/// Whether `a` is more specific than `b` (Kuma's route sorter; total, so that a stable sort keeps ties in order).
fn specificity(a: &Route, b: &Route) -> Ordering {
    fn rank(p: &PathMatch) -> u8 {
        match p {
            PathMatch::Exact(_) => 0,
            PathMatch::Prefix(_) => 1,
            PathMatch::Regex(_) => 2,
        }
    }
    rank(&a.path)
        .cmp(&rank(&b.path))
        .then_with(|| b.path.value().len().cmp(&a.path.value().len()))
        .then_with(|| b.method.is_some().cmp(&a.method.is_some()))
        .then_with(|| b.headers.len().cmp(&a.headers.len()))
        .then_with(|| b.query.len().cmp(&a.query.len()))
        .then_with(|| a.path.value().cmp(b.path.value()))
}

/// The route table of a virtual host from the routes attached to it, in Kuma's match order.
pub fn route_table(attached: &[Attached<'_>], listener_port: u16, clusters: &mut Clusters<'_, '_>) -> Vec<Route> {
    // Explicit EXACT paths of the whole virtual host suppress the exact entry a PREFIX would add, and so does an
    // exact entry already added for a different prefix spelling (`/api` and `/api/` share the exact path `/api`).
    // Every entry of one prefix spelling gets its own exact entry (with its own conditions), as in Kuma.
    let mut explicit_exact: BTreeSet<String> = BTreeSet::new();
    for route in attached {
        for rule in &route.http.rules {
            for m in &rule.matches {
                if let Some(p) = m.path.as_ref().filter(|p| p.match_ == PathMatchType::EXACT) {
                    explicit_exact.insert(p.value.clone());
                }
            }
        }
    }
    let mut synthesized_for: BTreeMap<String, String> = BTreeMap::new();
    let mut entries = Vec::new();
    for route in attached {
        for (rule_index, rule) in route.http.rules.iter().enumerate() {
            let Some(action) = action(route, rule, listener_port, clusters) else { continue };
            let rewrites_prefix = match &action {
                Action::Forward(f) => matches!(f.path_rewrite, Some(PathRewrite::Prefix { .. })),
                Action::Redirect(r) => matches!(r.path_rewrite, Some(PathRewrite::Prefix { .. })),
                Action::Respond(_) => false,
            };
            for (match_index, m) in rule.matches.iter().enumerate() {
                let (method, headers, query) = conditions(m);
                let source = RouteSource {
                    kind: route.kind.into(),
                    name: route.name.to_owned(),
                    rule: route.rule_base + rule_index,
                    r#match: match_index,
                    rule_key: route.rule_key.to_owned(),
                };
                let entry = |path: PathMatch| Route {
                    source: source.clone(),
                    path,
                    method: method.clone(),
                    headers: headers.clone(),
                    query: query.clone(),
                    action: action.clone(),
                    policies: RoutePolicies::default(),
                };
                match &m.path {
                    None => entries.push(entry(PathMatch::Prefix("/".into()))),
                    Some(p) => match p.match_ {
                        PathMatchType::EXACT => entries.push(entry(PathMatch::Exact(p.value.clone()))),
                        PathMatchType::REGEX => entries.push(entry(PathMatch::Regex(p.value.clone()))),
                        PathMatchType::PREFIX => {
                            let exact = p.value.trim_end_matches('/');
                            entries.push(entry(PathMatch::Prefix(format!("{exact}/"))));
                            // `/api` also matches `/api` itself, unless an explicit EXACT takes it; the root only
                            // needs an exact entry when a rewrite must see it.
                            let synthesize = if exact.is_empty() { rewrites_prefix } else { true };
                            let exact_path = if exact.is_empty() { "/".to_owned() } else { exact.to_owned() };
                            let taken = explicit_exact.contains(&exact_path)
                                || synthesized_for.get(&exact_path).is_some_and(|spelling| spelling != &p.value);
                            if synthesize && !taken {
                                synthesized_for.insert(exact_path.clone(), p.value.clone());
                                entries.push(entry(PathMatch::Exact(exact_path)));
                            }
                        }
                    },
                }
            }
        }
    }
    entries.sort_by(specificity);
    if entries.is_empty() {
        entries.push(Route {
            source: RouteSource::default(),
            path: PathMatch::Prefix("/".into()),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
            action: Action::Respond(DirectResponse { status: 404, body: NO_ROUTES_BODY.to_owned() }),
            policies: RoutePolicies::default(),
        });
    }
    entries
}
