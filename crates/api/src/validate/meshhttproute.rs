//! `MeshHTTPRoute` validation (Kuma `meshhttproute/api/v1alpha1/validator.go`); paths are rooted at `spec`.

use std::collections::BTreeSet;

use super::Errors;
use super::targetref::{TargetRefOpts, validate_target_ref};
use crate::model::meshhttproute::{
    FilterKind, HeaderMatchKind, HeaderModifier, HttpRouteRule, MeshHttpRoute, PathMatchKind, RouteFilter, RouteMatch,
};
use crate::model::targetref::{BackendRef, TargetRef};
use crate::path::Path;

/// Backends a route may send to.
const BACKEND_KINDS: &[&str] = &["MeshService", "MeshServiceSubset", "MeshExternalService", "MeshMultiZoneService"];
/// Top-level kinds (Universal policies have the `system` role, which may target a gateway).
const TOP_KINDS: &[&str] = &["Mesh", "MeshGateway", "MeshSubset", "MeshService", "MeshServiceSubset", "Dataplane"];

pub(super) fn validate(route: &MeshHttpRoute) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    let mesh = TargetRef { kind: "Mesh".into(), ..Default::default() };
    let top = route.target_ref.as_ref().unwrap_or(&mesh);
    if let Some(t) = &route.target_ref {
        let opts =
            TargetRefOpts { supported_kinds: TOP_KINDS, gateway_listener_tags_allowed: true, ..Default::default() };
        errs.add_at(&spec.field("targetRef"), validate_target_ref(t, &opts));
    }
    let on_gateway = top.kind == "MeshGateway";
    for (i, to) in route.to.iter().enumerate() {
        let tp = spec.field("to").index(i);
        let to_kinds: &'static [&'static str] =
            if on_gateway { &["Mesh"] } else { &["MeshService", "MeshExternalService", "MeshMultiZoneService"] };
        let opts = TargetRefOpts { supported_kinds: to_kinds, ..Default::default() };
        errs.add_at(&tp.field("targetRef"), validate_target_ref(&to.target_ref, &opts));
        for (j, rule) in to.rules.iter().enumerate() {
            errs.append(validate_rule(&tp.field("rules").index(j), rule, on_gateway));
        }
        if !on_gateway && !to.hostnames.is_empty() {
            errs.add(tp.field("hostnames"), "must not be defined");
        }
    }
    errs
}

fn validate_rule(path: &Path, rule: &HttpRouteRule, on_gateway: bool) -> Errors {
    let mut errs = Errors::default();
    errs.append(validate_matches(&path.field("matches"), &rule.matches));
    let filters = rule.default.filters.as_deref();
    if let Some(filters) = filters {
        errs.append(validate_filters(&path.field("default").field("filters"), filters, &rule.matches, on_gateway));
    }
    let refs = rule.default.backend_refs.as_deref().unwrap_or_default();
    let has_redirect = filters.is_some_and(|f| f.iter().any(|f| f.type_ == FilterKind::RequestRedirect));
    let bp = path.field("default").field("backendRefs");
    if refs.is_empty() && on_gateway && !has_redirect {
        errs.add(bp.clone(), "must not be empty");
    }
    for (b, r) in refs.iter().enumerate() {
        errs.add_at(&bp.index(b), validate_backend_ref(r, &["kuma.io/unresolved-backend"]));
    }
    errs
}

pub(super) fn validate_backend_ref(r: &BackendRef, allowed_invalid_names: &'static [&'static str]) -> Errors {
    let mut errs = Errors::default();
    let opts = TargetRefOpts { supported_kinds: BACKEND_KINDS, allowed_invalid_names, ..Default::default() };
    errs.append(validate_target_ref(&r.target_ref(), &opts));
    if r.kind == "MeshMultiZoneService" && r.port.is_none() {
        errs.add(Path::rooted_at("port"), "must be defined with kind MeshMultiZoneService");
    }
    errs
}

fn validate_matches(path: &Path, matches: &[RouteMatch]) -> Errors {
    let mut errs = Errors::default();
    for (k, m) in matches.iter().enumerate() {
        let mp = path.index(k);
        if let Some(p) = &m.path {
            let vp = mp.field("path").field("value");
            match p.type_ {
                PathMatchKind::RegularExpression => {}
                PathMatchKind::PathPrefix => {
                    if p.value != "/" {
                        if p.value.ends_with('/') {
                            errs.add(
                                vp.clone(),
                                "does not need a trailing slash because only a `/`-separated prefix or an entire path is matched",
                            );
                        }
                        if !p.value.starts_with('/') {
                            errs.add(vp, "must be an absolute path");
                        }
                    }
                }
                PathMatchKind::Exact => {
                    if !p.value.starts_with('/') {
                        errs.add(vp, "must be an absolute path");
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (q, param) in m.query_params.iter().enumerate() {
            if !seen.insert(param.name.as_str()) {
                errs.add(
                    mp.field("queryParams").index(q).field("name"),
                    format!("multiple entries for name {}", param.name),
                );
            }
        }
        for (h, header) in m.headers.iter().enumerate() {
            let kind = header.type_.unwrap_or(HeaderMatchKind::Exact);
            if matches!(kind, HeaderMatchKind::Present | HeaderMatchKind::Absent) && !header.value.is_empty() {
                errs.add(mp.field("headers").index(h).field("value"), "must not be defined");
            }
        }
    }
    errs
}

fn all_prefix(matches: &[RouteMatch]) -> bool {
    matches.iter().all(|m| m.path.as_ref().is_some_and(|p| p.type_ == PathMatchKind::PathPrefix))
}

fn validate_filters(path: &Path, filters: &[RouteFilter], matches: &[RouteMatch], on_gateway: bool) -> Errors {
    let mut errs = Errors::default();
    for (f, filter) in filters.iter().enumerate() {
        let fp = path.index(f);
        match filter.type_ {
            FilterKind::RequestHeaderModifier => match &filter.request_header_modifier {
                None => errs.add(fp.field("requestHeaderModifier"), "must be defined"),
                Some(m) => errs.append(validate_header_modifier(&fp.field("requestHeaderModifier"), m)),
            },
            FilterKind::ResponseHeaderModifier => match &filter.response_header_modifier {
                None => errs.add(fp.field("responseHeaderModifier"), "must be defined"),
                Some(m) => errs.append(validate_header_modifier(&fp.field("responseHeaderModifier"), m)),
            },
            FilterKind::RequestRedirect => {
                let rp = fp.field("requestRedirect");
                let Some(r) = &filter.request_redirect else {
                    errs.add(rp, "must be defined");
                    continue;
                };
                if r.path.as_ref().is_some_and(|p| p.replace_prefix_match.is_some()) && !all_prefix(matches) {
                    errs.add(
                        rp.field("path").field("replacePrefixMatch"),
                        "can only appear if all matches match a path prefix",
                    );
                }
                errs.append(validate_precise_hostname(&rp.field("hostname"), r.hostname.as_deref()));
            }
            FilterKind::UrlRewrite => {
                let up = fp.field("urlRewrite");
                let Some(r) = &filter.url_rewrite else {
                    errs.add(up, "must be defined");
                    continue;
                };
                if r.path.as_ref().is_some_and(|p| p.replace_prefix_match.is_some()) && !all_prefix(matches) {
                    errs.add(
                        up.field("path").field("replacePrefixMatch"),
                        "can only appear if all matches match a path prefix",
                    );
                }
                errs.append(validate_precise_hostname(&up.field("hostname"), r.hostname.as_deref()));
                if r.host_to_backend_hostname {
                    if !on_gateway {
                        errs.add(up.field("hostToBackendHostname"), "can only be set with MeshGateway");
                    }
                    if r.hostname.is_some() {
                        errs.add(up.field("hostToBackendHostname"), "cannot be set together with hostname");
                    }
                }
            }
            FilterKind::RequestMirror => {
                let mp = fp.field("requestMirror");
                let Some(m) = &filter.request_mirror else {
                    errs.add(mp, "must be defined");
                    continue;
                };
                let opts =
                    TargetRefOpts { supported_kinds: &["MeshService", "MeshServiceSubset"], ..Default::default() };
                errs.add_at(&mp.field("backendRef"), validate_target_ref(&m.backend_ref.target_ref(), &opts));
            }
        }
    }
    errs
}

fn validate_header_modifier(path: &Path, m: &HeaderModifier) -> Errors {
    let mut errs = Errors::default();
    if m.set.is_none() && m.add.is_none() && m.remove.is_none() {
        errs.add(path.clone(), "must have at least one defined: set, add, remove");
        return errs;
    }
    let mut seen = BTreeSet::new();
    for (field, names) in [
        ("set", m.set.iter().flatten().map(|h| h.name.as_str()).collect::<Vec<_>>()),
        ("add", m.add.iter().flatten().map(|h| h.name.as_str()).collect()),
        ("remove", m.remove.iter().flatten().map(String::as_str).collect()),
    ] {
        for (i, name) in names.into_iter().enumerate() {
            if !seen.insert(name) {
                errs.add(path.field(field).index(i).field("name"), "duplicate header name");
            }
        }
    }
    errs
}

fn validate_precise_hostname(path: &Path, hostname: Option<&str>) -> Errors {
    let mut errs = Errors::default();
    let Some(h) = hostname else { return errs };
    if super::tags::is_ip(h) || is_sloppy_ipv4(h) {
        errs.add(path.clone(), "cannot be an IP address");
        return errs;
    }
    if h.len() > 253 {
        errs.add(path.clone(), "must be no more than 253 characters");
    }
    if !super::tags::is_domain(h) {
        errs.add(
            path.clone(),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        );
    }
    errs
}

/// IPv4 with leading zeros (`010.0.0.1`), which Kubernetes' sloppy parser still takes as an address.
fn is_sloppy_ipv4(h: &str) -> bool {
    let parts: Vec<&str> = h.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
}
