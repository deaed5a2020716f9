//! MeshHTTPRoute and MeshTCPRoute attached to a builtin gateway (policy reference §2): which routes select which
//! listener, the merge of rules with identical matches (highest priority last), and their translation to the route
//! model the route table is built from (`routes.rs`), so that both route APIs share one matcher and one ordering.

use std::collections::BTreeMap;

use meshgate_api::model::common::{SERVICE_TAG, Tags};
use meshgate_api::model::gateway_route::{
    Backend, HeaderFilter, HeaderMatch, HeaderMatchType, HeaderValue, HttpFilter, HttpMatch, HttpMethod, HttpRoute,
    HttpRule, Mirror, PathMatch, PathMatchType, QueryMatch, QueryMatchType, Redirect, Rewrite, TcpRoute, TcpRule,
};
use meshgate_api::model::meshhttproute::{
    FilterKind, HeaderMatchKind, HeaderModifier, HttpRouteRule, PathMatchKind, PathRewrite, PathRewriteKind,
    QueryMatchKind, RouteMatch, RuleConf,
};
use meshgate_api::model::targetref::{BackendRef, TargetRef};
use meshgate_api::model::{MeshHttpRoute, MeshTcpRoute};
use meshgate_plan::{Diagnostic, Severity};

use crate::index::{Index, Named};
use crate::select::rank;

/// Kuma's default RequestRedirect status for MeshHTTPRoute (MeshGatewayRoute's is 301).
const DEFAULT_REDIRECT_STATUS: u32 = 302;

/// A route that selects some listeners of the gateway, with the listener tags it requires.
#[derive(Debug)]
pub struct Selected<'a, T> {
    /// The route's name.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a T,
    /// Listener tags the route requires (empty: every listener).
    tags: Tags,
    /// Kuma's merge priority: top-level kind, then number of listener tags; the name breaks ties.
    priority: (u8, usize),
}

/// The MeshHTTPRoutes and MeshTCPRoutes of a mesh that target one MeshGateway, lowest priority first.
#[derive(Debug, Default)]
pub struct GatewayRoutes<'a> {
    http: Vec<Selected<'a, MeshHttpRoute>>,
    tcp: Vec<Selected<'a, MeshTcpRoute>>,
}

/// What a top-level targetRef selects on gateway `gateway`: `Some(listener tags)` or `None`.
/// `Mesh` reaches gateways when `proxyTypes` is empty or names `Gateway`; `MeshGateway` when the name is this one.
fn selects(target: Option<&TargetRef>, gateway: &str) -> Option<(Tags, u8)> {
    let target = target?;
    match target.kind.as_str() {
        "Mesh" if target.proxy_types.is_empty() || target.proxy_types.iter().any(|p| p == "Gateway") => {
            Some((Tags::new(), 1))
        }
        "MeshGateway" if target.name == gateway => Some((target.tags.clone(), 4)),
        _ => None,
    }
}

/// What gateway selection needs from a MeshHTTPRoute or MeshTCPRoute.
trait RouteSpec {
    fn target_ref(&self) -> Option<&TargetRef>;
    /// Whether a `to` item is for the whole mesh (the gateway kind); MeshService items are sidecar routes.
    fn has_mesh_to(&self) -> bool;
}

impl RouteSpec for MeshHttpRoute {
    fn target_ref(&self) -> Option<&TargetRef> {
        self.target_ref.as_ref()
    }
    fn has_mesh_to(&self) -> bool {
        self.to.iter().any(|t| t.target_ref.kind == "Mesh")
    }
}

impl RouteSpec for MeshTcpRoute {
    fn target_ref(&self) -> Option<&TargetRef> {
        self.target_ref.as_ref()
    }
    fn has_mesh_to(&self) -> bool {
        self.to.iter().any(|t| t.target_ref.kind == "Mesh")
    }
}

/// The routes of `list` that select gateway `gateway`, ascending priority; among equals the lexicographically
/// smallest name comes last (it is merged last and wins).
fn select_for_gateway<'a, T: RouteSpec>(list: &[Named<'a, T>], gateway: &str) -> Vec<Selected<'a, T>> {
    let mut selected: Vec<Selected<'a, T>> = list
        .iter()
        .filter(|r| r.spec.has_mesh_to())
        .filter_map(|r| {
            let (tags, kind) = selects(r.spec.target_ref(), gateway)?;
            Some(Selected { name: r.name, spec: r.spec, priority: (kind, tags.len()), tags })
        })
        .collect();
    selected.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| b.name.cmp(a.name)));
    selected
}

/// The routes of `list` selecting a listener with merged tags `tags`, in the same order.
fn for_listener<'s, 'a, T>(list: &'s [Selected<'a, T>], tags: &Tags) -> Vec<&'s Selected<'a, T>> {
    list.iter().filter(|r| rank(&r.tags, tags).is_some()).collect()
}

impl<'a> GatewayRoutes<'a> {
    /// The routes of `mesh` that target gateway `gateway`.
    pub fn new(index: &Index<'a>, mesh: &str, gateway: &str) -> Self {
        GatewayRoutes {
            http: select_for_gateway(index.mesh_http_routes(mesh), gateway),
            tcp: select_for_gateway(index.mesh_tcp_routes(mesh), gateway),
        }
    }

    /// The MeshHTTPRoutes selecting a listener with merged tags `tags`, lowest priority first.
    pub fn http_for(&self, tags: &Tags) -> Vec<&Selected<'a, MeshHttpRoute>> {
        for_listener(&self.http, tags)
    }

    /// The MeshTCPRoutes selecting a listener with merged tags `tags`, lowest priority first.
    pub fn tcp_for(&self, tags: &Tags) -> Vec<&Selected<'a, MeshTcpRoute>> {
        for_listener(&self.tcp, tags)
    }
}

/// One rule after merging, in the route model shared with MeshGatewayRoute.
#[derive(Clone, Debug, PartialEq)]
pub struct MergedRule {
    /// The route whose conf was merged last (the winner), named in route sources and metrics.
    pub name: String,
    /// The rule's index in the winning route's `to` item.
    pub rule_index: usize,
    /// The rule's matches as compact JSON: what identifies it (see [`meshgate_plan::RouteSource::rule_key`]).
    pub rule_key: String,
    /// The rule as a one-rule route.
    pub route: HttpRoute,
}

/// The merged rules of one route hostname (`*` when a `to` item names none).
#[derive(Clone, Debug, PartialEq)]
pub struct HostnameRules {
    /// The hostname.
    pub hostname: String,
    /// Its rules, in first-seen order.
    pub rules: Vec<MergedRule>,
}

/// A rule being merged: the matches that identify it, its conf so far, and the route merged last.
struct Pending<'r> {
    matches: &'r [RouteMatch],
    conf: RuleConf,
    name: &'r str,
    rule_index: usize,
}

/// Merges rule `index` of route `name` into a hostname's rules: onto the rule with identical matches, or as a new one.
fn merge_rule<'r>(group: &mut Vec<Pending<'r>>, name: &'r str, index: usize, rule: &'r HttpRouteRule) {
    let Some(p) = group.iter_mut().find(|p| p.matches == rule.matches.as_slice()) else {
        group.push(Pending { matches: &rule.matches, conf: rule.default.clone(), name, rule_index: index });
        return;
    };
    if let Some(filters) = &rule.default.filters {
        p.conf.filters = Some(filters.clone());
    }
    if let Some(backends) = &rule.default.backend_refs {
        p.conf.backend_refs = Some(backends.clone());
    }
    p.name = name;
    p.rule_index = index;
}

/// The key of a MeshHTTPRoute rule: its matches as compact JSON.
pub fn rule_key(matches: &[RouteMatch]) -> String {
    serde_json::to_string(matches).unwrap_or_default()
}

/// Groups the rules of `routes` (lowest priority first) by hostname and merges rules with identical matches: a
/// later route's `filters` and `backendRefs` replace the earlier ones wholesale (JSON merge patch on lists).
pub fn merge_http(routes: &[&Selected<'_, MeshHttpRoute>], diagnostics: &mut Vec<Diagnostic>) -> Vec<HostnameRules> {
    let mut groups: BTreeMap<String, Vec<Pending<'_>>> = BTreeMap::new();
    for route in routes {
        for to in route.spec.to.iter().filter(|t| t.target_ref.kind == "Mesh") {
            let hostnames: Vec<String> = if to.hostnames.is_empty() {
                vec!["*".to_owned()]
            } else {
                to.hostnames.iter().map(|h| h.to_ascii_lowercase()).collect()
            };
            for hostname in hostnames {
                let group = groups.entry(hostname).or_default();
                for (i, rule) in to.rules.iter().enumerate() {
                    merge_rule(group, route.name, i, rule);
                }
            }
        }
    }
    groups
        .into_iter()
        .map(|(hostname, pending)| HostnameRules {
            hostname,
            rules: pending
                .into_iter()
                .map(|p| {
                    let rule = convert_rule(p.matches, &p.conf, p.name, diagnostics);
                    MergedRule {
                        name: p.name.to_owned(),
                        rule_index: p.rule_index,
                        rule_key: rule_key(p.matches),
                        route: HttpRoute { hostnames: Vec::new(), rules: vec![rule] },
                    }
                })
                .collect(),
        })
        .collect()
}

/// The TCP route of a listener: the highest-priority MeshTCPRoute's rule (its `rules` list replaces the others'),
/// with the overridden routes reported.
pub fn merge_tcp(
    routes: &[&Selected<'_, MeshTcpRoute>],
    listener: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(String, TcpRoute)> {
    let with_rules: Vec<_> = routes
        .iter()
        .filter_map(|r| {
            let to = r.spec.to.iter().rev().find(|t| t.target_ref.kind == "Mesh" && !t.rules.is_empty())?;
            Some((r.name, to))
        })
        .collect();
    let (winner, to) = with_rules.last()?;
    for (name, _) in &with_rules[..with_rules.len() - 1] {
        diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            subject: format!("MeshTCPRoute {name}"),
            message: format!("on {listener} it is overridden by MeshTCPRoute {winner} (higher priority)"),
        });
    }
    let subject = format!("MeshTCPRoute {winner}");
    let rules = to
        .rules
        .iter()
        .take(1)
        .map(|rule| TcpRule {
            backends: rule.default.backend_refs.iter().filter_map(|b| backend(b, &subject, diagnostics)).collect(),
        })
        .collect();
    Some(((*winner).to_owned(), TcpRoute { rules }))
}

/// A backendRef as a destination; kinds a gateway cannot resolve are reported and left out.
fn backend(b: &BackendRef, subject: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<Backend> {
    let mut destination = Tags::new();
    match b.kind.as_str() {
        "MeshService" => {
            destination.insert(SERVICE_TAG.to_owned(), b.name.clone());
        }
        "MeshServiceSubset" => {
            destination.extend(b.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            destination.insert(SERVICE_TAG.to_owned(), b.name.clone());
        }
        other => {
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                subject: subject.to_owned(),
                message: format!(
                    "backendRef kind {other} ({}) is not supported by meshgate (MeshService and MeshServiceSubset \
                     are); the backend is left out",
                    b.name
                ),
            });
            return None;
        }
    }
    Some(Backend { weight: b.weight.unwrap_or(1), destination })
}

fn path_match(m: &RouteMatch) -> Option<PathMatch> {
    m.path.as_ref().map(|p| PathMatch {
        match_: match p.type_ {
            PathMatchKind::Exact => PathMatchType::EXACT,
            PathMatchKind::PathPrefix => PathMatchType::PREFIX,
            PathMatchKind::RegularExpression => PathMatchType::REGEX,
        },
        value: p.value.clone(),
    })
}

fn http_match(m: &RouteMatch) -> HttpMatch {
    let method =
        m.method.map_or(HttpMethod::NONE, |method| HttpMethod::from_name(method.name()).unwrap_or(HttpMethod::NONE));
    let headers = m
        .headers
        .iter()
        .map(|h| {
            let (match_, value) = match h.type_.unwrap_or(HeaderMatchKind::Exact) {
                HeaderMatchKind::Exact => (HeaderMatchType::EXACT, h.value.clone()),
                HeaderMatchKind::RegularExpression => (HeaderMatchType::REGEX, h.value.clone()),
                HeaderMatchKind::Present => (HeaderMatchType::PRESENT, String::new()),
                HeaderMatchKind::Absent => (HeaderMatchType::ABSENT, String::new()),
                // A prefix is a whole-value regular expression: the escaped prefix, then anything.
                HeaderMatchKind::Prefix => (HeaderMatchType::REGEX, format!("{}.*", regex::escape(&h.value))),
            };
            HeaderMatch { match_, name: h.name.clone(), value }
        })
        .collect();
    let query_parameters = m
        .query_params
        .iter()
        .map(|q| QueryMatch {
            match_: match q.type_ {
                QueryMatchKind::Exact => QueryMatchType::EXACT,
                QueryMatchKind::RegularExpression => QueryMatchType::REGEX,
            },
            name: q.name.clone(),
            value: q.value.clone(),
        })
        .collect();
    HttpMatch { path: path_match(m), method, headers, query_parameters }
}

fn header_filter(m: &HeaderModifier) -> HeaderFilter {
    let pairs = |list: &Option<Vec<meshgate_api::model::meshhttproute::HeaderKeyValue>>| -> Vec<HeaderValue> {
        list.iter().flatten().map(|h| HeaderValue { name: h.name.clone(), value: h.value.clone() }).collect()
    };
    HeaderFilter { set: pairs(&m.set), add: pairs(&m.add), remove: m.remove.clone().unwrap_or_default() }
}

fn path_rewrite(p: &PathRewrite) -> Rewrite {
    match p.type_ {
        PathRewriteKind::ReplaceFullPath => Rewrite { replace_full: p.replace_full_path.clone(), ..Rewrite::default() },
        PathRewriteKind::ReplacePrefixMatch => {
            Rewrite { replace_prefix_match: p.replace_prefix_match.clone(), ..Rewrite::default() }
        }
    }
}

/// A MeshHTTPRoute rule in the MeshGatewayRoute model: same matches, filters in the same order.
fn convert_rule(matches: &[RouteMatch], conf: &RuleConf, name: &str, diagnostics: &mut Vec<Diagnostic>) -> HttpRule {
    let subject = format!("MeshHTTPRoute {name}");
    let mut filters = Vec::new();
    for f in conf.filters.iter().flatten() {
        let mut out = HttpFilter::default();
        match f.type_ {
            FilterKind::RequestHeaderModifier => {
                out.request_header = f.request_header_modifier.as_ref().map(header_filter)
            }
            FilterKind::ResponseHeaderModifier => {
                out.response_header = f.response_header_modifier.as_ref().map(header_filter);
            }
            FilterKind::RequestRedirect => {
                out.redirect = f.request_redirect.as_ref().map(|r| Redirect {
                    scheme: r.scheme.map(|s| s.name().to_owned()).unwrap_or_default(),
                    hostname: r.hostname.clone().unwrap_or_default(),
                    port: r.port.unwrap_or(0),
                    status_code: r.status_code.unwrap_or(DEFAULT_REDIRECT_STATUS),
                    path: r.path.as_ref().map(path_rewrite),
                });
            }
            FilterKind::UrlRewrite => {
                if let Some(rw) = &f.url_rewrite {
                    let mut rewrite = rw.path.as_ref().map(path_rewrite).unwrap_or_default();
                    rewrite.host_to_backend_hostname = rw.host_to_backend_hostname;
                    out.rewrite = Some(rewrite);
                    // A literal hostname rewrite is a Host `set` (what the route table turns into a host rewrite).
                    if let Some(host) = &rw.hostname {
                        filters.push(HttpFilter {
                            request_header: Some(HeaderFilter {
                                set: vec![HeaderValue { name: "Host".to_owned(), value: host.clone() }],
                                ..HeaderFilter::default()
                            }),
                            ..HttpFilter::default()
                        });
                    }
                }
            }
            FilterKind::RequestMirror => {
                if let Some(m) = &f.request_mirror {
                    out.mirror = backend(&m.backend_ref, &subject, diagnostics).map(|b| Mirror {
                        backend: Some(b),
                        percentage: Some(m.percentage.as_ref().and_then(|p| p.as_f64()).unwrap_or(100.0)),
                    });
                }
            }
        }
        filters.push(out);
    }
    let backends =
        conf.backend_refs.iter().flatten().filter_map(|b| backend(b, &subject, diagnostics)).collect::<Vec<_>>();
    HttpRule { matches: matches.iter().map(http_match).collect(), filters, backends }
}

#[cfg(test)]
mod tests {
    use meshgate_plan::{Action, GatewayPlan, PathMatch, ValueMatch, VirtualHost};

    use crate::tests::compile_text;

    fn gateway(listeners: &str) -> String {
        format!(
            "type: Dataplane\nname: gw-1\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    type: BUILTIN\n    tags: {{kuma.io/service: gw}}\n---\ntype: Dataplane\nname: a-1\nnetworking:\n  address: 127.0.0.2\n  inbound: [{{port: 80, tags: {{kuma.io/service: a}}}}]\n---\ntype: Dataplane\nname: b-1\nnetworking:\n  address: 127.0.0.3\n  inbound: [{{port: 80, tags: {{kuma.io/service: b}}}}]\n---\ntype: MeshGateway\nname: edge\nselectors: [{{match: {{kuma.io/service: gw}}}}]\nconf:\n  listeners: {listeners}\n"
        )
    }

    /// A MeshHTTPRoute `name` on gateway `edge` (`target` is the rest of its targetRef) with `to` items.
    fn http_route(name: &str, target: &str, to: &str) -> String {
        format!(
            "---\ntype: MeshHTTPRoute\nname: {name}\nspec:\n  targetRef: {{kind: MeshGateway, name: edge{target}}}\n  to: {to}\n"
        )
    }

    fn prefix_to(prefix: &str, service: &str) -> String {
        format!(
            "[{{targetRef: {{kind: Mesh}}, rules: [{{matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}], default: {{backendRefs: [{{kind: MeshService, name: {service}}}]}}}}]}}]"
        )
    }

    fn vhost<'p>(plan: &'p GatewayPlan, domain: &str) -> &'p VirtualHost {
        let vhosts = &plan.listeners[0].virtual_hosts;
        vhosts.iter().find(|v| v.domain == domain).unwrap_or_else(|| panic!("no vhost {domain} in {vhosts:?}"))
    }

    /// (path, first backend cluster or status) of each route, in match order.
    fn table(v: &VirtualHost) -> Vec<(String, String)> {
        v.routes
            .iter()
            .map(|r| {
                let path = match &r.path {
                    PathMatch::Exact(p) => format!("={p}"),
                    PathMatch::Prefix(p) => format!("^{p}"),
                    PathMatch::Regex(p) => format!("~{p}"),
                };
                let to = match &r.action {
                    Action::Forward(f) => f.backends.iter().map(|b| b.cluster.clone()).collect::<Vec<_>>().join("+"),
                    Action::Redirect(r) => format!("redirect {}", r.status),
                    Action::Respond(d) => d.status.to_string(),
                };
                (path, to)
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    const HTTP_8080: &str = "[{port: 8080, protocol: HTTP}]";

    #[test]
    fn a_meshhttproute_replaces_the_gateways_meshgatewayroutes_and_says_so() {
        let text = format!(
            "{}---\ntype: MeshGatewayRoute\nname: legacy\nselectors: [{{match: {{kuma.io/service: gw}}}}]\nconf: {{http: {{rules: [{{matches: [{{path: {{match: PREFIX, value: /legacy}}}}], backends: [{{destination: {{kuma.io/service: b}}}}]}}]}}}}\n{}",
            gateway(HTTP_8080),
            http_route("new", "", &prefix_to("/new", "a"))
        );
        let plan = compile_text(&text);
        let v = vhost(&plan, "*");
        assert_eq!(table(v), pairs(&[("=/new", "a"), ("^/new/", "a")]));
        assert_eq!(v.routes[0].source.kind, "MeshHTTPRoute");
        assert_eq!(v.routes[0].source.name, "new");
        let ignored = plan.diagnostics.iter().find(|d| d.subject == "MeshGatewayRoute legacy").expect("reported");
        assert!(ignored.message.contains("ignored on MeshGateway edge"), "{ignored:?}");
    }

    #[test]
    fn without_meshhttproutes_meshgatewayroutes_still_route() {
        let text = format!(
            "{}---\ntype: MeshGatewayRoute\nname: legacy\nselectors: [{{match: {{kuma.io/service: gw}}}}]\nconf: {{http: {{rules: [{{matches: [{{path: {{match: PREFIX, value: /legacy}}}}], backends: [{{destination: {{kuma.io/service: b}}}}]}}]}}}}\n---\ntype: MeshHTTPRoute\nname: other-gw\nspec:\n  targetRef: {{kind: MeshGateway, name: another}}\n  to: {}\n",
            gateway(HTTP_8080),
            prefix_to("/new", "a")
        );
        let plan = compile_text(&text);
        assert_eq!(table(vhost(&plan, "*")), pairs(&[("=/legacy", "b"), ("^/legacy/", "b")]));
        assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    }

    #[test]
    fn a_listener_hostname_claims_its_name_even_without_routes() {
        // Kuma's docs (builtin-routes.md): `foo.example.com` is answered by its own listener, which has no route,
        // not by the `*.example.com` listener the route is attached to.
        let listeners = "[{port: 8080, protocol: HTTP, hostname: foo.example.com, tags: {hostname: foo}}, {port: 8080, protocol: HTTP, hostname: '*.example.com', tags: {hostname: wild}}]";
        let text =
            format!("{}{}", gateway(listeners), http_route("r", ", tags: {hostname: wild}", &prefix_to("/", "a")));
        let plan = compile_text(&text);
        assert_eq!(table(vhost(&plan, "foo.example.com")), pairs(&[("^/", "404")]));
        assert_eq!(table(vhost(&plan, "*.example.com")), pairs(&[("^/", "a")]));
    }

    #[test]
    fn route_hostnames_make_narrower_virtual_hosts_that_keep_the_generic_rules() {
        let to = "[{targetRef: {kind: Mesh}, rules: [{matches: [{path: {type: PathPrefix, value: /}}], default: {backendRefs: [{kind: MeshService, name: a}]}}]}, {targetRef: {kind: Mesh}, hostnames: [specific.kuma.io], rules: [{matches: [{path: {type: Exact, value: /only}}], default: {backendRefs: [{kind: MeshService, name: b}]}}]}]";
        let plan = compile_text(&format!("{}{}", gateway(HTTP_8080), http_route("r", "", to)));
        assert_eq!(table(vhost(&plan, "specific.kuma.io")), pairs(&[("=/only", "b"), ("^/", "a")]));
        assert_eq!(table(vhost(&plan, "*")), pairs(&[("^/", "a")]), "the specific rule stays on its host");
    }

    #[test]
    fn a_more_exact_listener_keeps_its_hostname_from_a_wildcard_listeners_routes() {
        let listeners = "[{port: 8080, protocol: HTTP, hostname: example.kuma.io, tags: {name: exact}}, {port: 8080, protocol: HTTP, tags: {name: any}}]";
        let exact = http_route("exact", ", tags: {name: exact}", &prefix_to("/", "a"));
        let any = http_route(
            "any",
            ", tags: {name: any}",
            "[{targetRef: {kind: Mesh}, hostnames: [example.kuma.io], rules: [{matches: [{path: {type: PathPrefix, value: /x}}], default: {backendRefs: [{kind: MeshService, name: b}]}}]}]",
        );
        let plan = compile_text(&format!("{}{exact}{any}", gateway(listeners)));
        assert_eq!(table(vhost(&plan, "example.kuma.io")), pairs(&[("^/", "a")]));
        assert_eq!(table(vhost(&plan, "*")), pairs(&[("^/", "404")]), "a hostname rule never serves other hosts");
        assert_eq!(plan.listeners[0].virtual_hosts.len(), 2);
    }

    #[test]
    fn rules_with_the_same_matches_merge_by_priority() {
        // Mesh < MeshGateway < MeshGateway with listener tags; among equals the smallest name wins.
        let same = |service: &str| prefix_to("/p", service);
        let text = format!(
            "{}---\ntype: MeshHTTPRoute\nname: mesh-wide\nspec:\n  targetRef: {{kind: Mesh, proxyTypes: [Gateway]}}\n  to: {}\n{}{}{}",
            gateway("[{port: 8080, protocol: HTTP, tags: {l: one}}]"),
            same("from-mesh"),
            http_route("b-gw", "", &same("from-b")),
            http_route("a-gw", "", &same("from-a")),
            http_route("z-tagged", ", tags: {l: one}", &prefix_to("/q", "tagged")),
        );
        let plan = compile_text(&text);
        let v = vhost(&plan, "*");
        let p = v.routes.iter().find(|r| r.path == PathMatch::Prefix("/p/".into())).expect("route /p/");
        assert_eq!(p.source.name, "a-gw");
        assert!(matches!(&p.action, Action::Forward(f) if f.backends.len() == 1), "{:?}", p.action);
        assert!(v.routes.iter().any(|r| r.path == PathMatch::Prefix("/q/".into())), "other matches are kept");
        // The clusters named after the winner's backend exist; the losers' do not.
        let names: Vec<&str> = plan.clusters.keys().map(|name| name.as_str()).collect();
        assert!(!names.iter().any(|n| n.contains("from-b") || n.contains("from-mesh")), "{names:?}");
    }

    #[test]
    fn filters_translate_with_meshhttproute_defaults() {
        let to = "[{targetRef: {kind: Mesh}, rules: [{matches: [{path: {type: PathPrefix, value: /old}}], default: {filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]}}, {matches: [{headers: [{type: Prefix, name: x-user, value: 'a.b'}]}], default: {filters: [{type: URLRewrite, urlRewrite: {hostname: internal.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}], backendRefs: [{kind: MeshService, name: a, weight: 3}, {kind: MeshServiceSubset, name: b, tags: {version: v1}}]}}]}]";
        let plan = compile_text(&format!("{}{}", gateway(HTTP_8080), http_route("r", "", to)));
        let v = vhost(&plan, "*");
        let redirect = v.routes.iter().find(|r| r.path == PathMatch::Prefix("/old/".into())).expect("redirect");
        assert!(
            matches!(&redirect.action, Action::Redirect(r) if r.status == 302 && r.scheme.as_deref() == Some("https"))
        );
        let header = v.routes.iter().find(|r| !r.headers.is_empty()).expect("header route");
        assert_eq!(header.headers[0].kind, ValueMatch::Regex("a\\.b.*".into()));
        let Action::Forward(f) = &header.action else { panic!("{:?}", header.action) };
        assert_eq!(f.backends.iter().map(|b| b.weight).collect::<Vec<_>>(), vec![3, 1]);
        assert!(matches!(&f.host_rewrite, Some(meshgate_plan::HostRewrite::Literal(h)) if h == "internal.example"));
        assert!(f.path_rewrite.is_some());
    }

    #[test]
    fn unsupported_backend_kinds_are_reported() {
        let to = "[{targetRef: {kind: Mesh}, rules: [{matches: [{path: {type: PathPrefix, value: /}}], default: {backendRefs: [{kind: MeshExternalService, name: ext}]}}]}]";
        let plan = compile_text(&format!("{}{}", gateway(HTTP_8080), http_route("r", "", to)));
        assert!(
            plan.diagnostics
                .iter()
                .any(|d| d.subject == "MeshHTTPRoute r" && d.message.contains("MeshExternalService")),
            "{:?}",
            plan.diagnostics
        );
    }

    #[test]
    fn meshtcproutes_route_tcp_listeners_and_the_highest_priority_wins() {
        let tcp = |name: &str, target: &str, service: &str| {
            format!(
                "---\ntype: MeshTCPRoute\nname: {name}\nspec:\n  targetRef: {{kind: MeshGateway, name: edge{target}}}\n  to: [{{targetRef: {{kind: Mesh}}, rules: [{{default: {{backendRefs: [{{kind: MeshService, name: {service}}}]}}}}]}}]\n"
            )
        };
        let text = format!(
            "{}---\ntype: MeshGatewayRoute\nname: legacy-tcp\nselectors: [{{match: {{kuma.io/service: gw}}}}]\nconf: {{tcp: {{rules: [{{backends: [{{destination: {{kuma.io/service: b}}}}]}}]}}}}\n{}{}",
            gateway("[{port: 9000, protocol: TCP, tags: {l: t}}]"),
            tcp("wide", "", "b"),
            tcp("narrow", ", tags: {l: t}", "a"),
        );
        let plan = compile_text(&text);
        let proxy = plan.listeners[0].tcp.as_ref().expect("tcp proxy");
        assert_eq!(proxy.backends.len(), 1);
        assert!(proxy.backends[0].cluster.contains('a'), "{proxy:?}");
        let subjects: Vec<&str> = plan.diagnostics.iter().map(|d| d.subject.as_str()).collect();
        assert!(
            subjects.contains(&"MeshGatewayRoute legacy-tcp") && subjects.contains(&"MeshTCPRoute wide"),
            "{subjects:?}"
        );
    }
}
