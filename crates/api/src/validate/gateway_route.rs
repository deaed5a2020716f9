//! `MeshGatewayRoute` validation (Kuma `gateway_route_validator.go`).

use super::Errors;
use super::tags::{TagsOpts, validate_port, validate_selector, validate_selectors};
use crate::model::gateway_route::{
    Backend, HeaderMatchType, HeaderValue, HttpFilter, HttpMatch, HttpMethod, HttpRoute, HttpRule, MeshGatewayRoute,
    PathMatchType,
};
use crate::path::Path;

pub(super) fn validate(route: &MeshGatewayRoute) -> Errors {
    let mut errs = Errors::default();
    let opts = TagsOpts { require_at_least_one_tag: true, require_service: true, ..Default::default() };
    errs.append(validate_selectors(&Path::rooted_at("selectors"), &route.selectors, true, false, &opts));
    let path = Path::rooted_at("conf");
    let conf = route.conf.as_ref();
    if conf.is_none_or(|c| c.tcp.is_none() && c.http.is_none()) {
        errs.add(path.clone(), "cannot be empty");
    }
    // TCP routes have nothing to validate beyond being set.
    if let Some(http) = conf.and_then(|c| c.http.as_ref()) {
        errs.append(validate_http(&path.field("http"), http));
    }
    errs
}

fn validate_http(path: &Path, http: &HttpRoute) -> Errors {
    let mut errs = Errors::default();
    if http.rules.is_empty() {
        errs.add(path.field("rules"), "cannot be empty");
        return errs;
    }
    for (i, rule) in http.rules.iter().enumerate() {
        errs.append(validate_rule(&path.field("rules").index(i), rule));
    }
    errs
}

fn validate_rule(path: &Path, rule: &HttpRule) -> Errors {
    let mut errs = Errors::default();
    if rule.matches.is_empty() {
        errs.add(path.field("matches"), "cannot be empty");
        return errs;
    }
    let mut has_prefix_match = false;
    for (i, m) in rule.matches.iter().enumerate() {
        errs.append(validate_match(&path.field("matches").index(i), m));
        if m.path.as_ref().is_some_and(|p| p.match_ == PathMatchType::PREFIX) {
            has_prefix_match = true;
        }
    }
    // Host-to-backend rewrites are not counted when numbering filters (as in Kuma).
    let host_to_backend = rule.filters.iter().any(|f| f.rewrite.as_ref().is_some_and(|r| r.host_to_backend_hostname));
    let filters: Vec<&HttpFilter> =
        rule.filters.iter().filter(|f| !f.rewrite.as_ref().is_some_and(|r| r.host_to_backend_hostname)).collect();
    let mut has_redirect = false;
    for (i, f) in filters.iter().enumerate() {
        if f.redirect.is_some() {
            has_redirect = true;
        }
        errs.append(validate_filter(&path.field("filters").index(i), f, has_prefix_match, host_to_backend));
    }
    if has_redirect && rule.filters.len() != 1 {
        errs.add(path.field("filters"), "redirects cannot be used with other filters");
        return errs;
    }
    if rule.backends.is_empty() {
        if !has_redirect {
            errs.add(path.field("backends"), "cannot be empty");
        }
    } else if has_redirect {
        errs.add(path.field("backends"), "must be empty when using redirect filters");
    }
    for (i, b) in rule.backends.iter().enumerate() {
        errs.append(validate_backend(&path.field("backends").index(i), Some(b)));
    }
    errs
}

fn validate_match(path: &Path, m: &HttpMatch) -> Errors {
    let mut errs = Errors::default();
    if m.path.is_none() && m.method == HttpMethod::NONE && m.headers.is_empty() && m.query_parameters.is_empty() {
        errs.add(path.clone(), "cannot be empty");
    }
    if let Some(p) = &m.path {
        match p.match_ {
            PathMatchType::REGEX => {
                if p.value.is_empty() {
                    errs.add(path.field("value"), "cannot be empty");
                }
            }
            PathMatchType::PREFIX if p.value == "/" => {}
            PathMatchType::PREFIX | PathMatchType::EXACT => {
                if !p.value.starts_with('/') {
                    errs.add(path.field("value"), "must be an absolute path");
                }
            }
        }
    }
    for (i, h) in m.headers.iter().enumerate() {
        let hp = path.field("headers").index(i);
        if h.name.is_empty() {
            errs.add(hp.field("name"), "cannot be empty");
        }
        match h.match_ {
            HeaderMatchType::ABSENT | HeaderMatchType::PRESENT => {
                if !h.value.is_empty() {
                    errs.add(hp.field("value"), "cannot be set");
                }
            }
            HeaderMatchType::EXACT | HeaderMatchType::REGEX => {
                if h.value.is_empty() {
                    errs.add(hp.field("value"), "cannot be empty");
                }
            }
        }
    }
    for (i, q) in m.query_parameters.iter().enumerate() {
        let qp = path.field("query_parameters").index(i);
        if q.name.is_empty() {
            errs.add(qp.field("name"), "cannot be empty");
        }
        if q.value.is_empty() {
            errs.add(qp.field("value"), "cannot be empty");
        }
    }
    errs
}

fn validate_headers(path: &Path, headers: &[HeaderValue], host_to_backend: bool) -> Errors {
    let mut errs = Errors::default();
    for (i, h) in headers.iter().enumerate() {
        match h.name.as_str() {
            ":authority" | "Host" | "host" if host_to_backend => errs.add(
                path.index(i),
                format!(
                    "cannot modify '{}' header, when route has set 'rewrite.host_to_backend_hostname' option",
                    h.name
                ),
            ),
            "" => errs.add(path.index(i).field("name"), "cannot be empty"),
            _ => {}
        }
        if h.value.is_empty() {
            errs.add(path.index(i).field("value"), "cannot be empty");
        }
    }
    errs
}

fn validate_filter(path: &Path, f: &HttpFilter, has_prefix_match: bool, host_to_backend: bool) -> Errors {
    let mut errs = Errors::default();
    if let Some(r) = &f.request_header {
        let rp = path.field("request_header");
        if r.set.is_empty() && r.add.is_empty() && r.remove.is_empty() {
            errs.add(rp.clone(), "cannot be empty");
        }
        errs.append(validate_headers(&rp.field("set"), &r.set, host_to_backend));
        errs.append(validate_headers(&rp.field("add"), &r.add, host_to_backend));
        for (i, name) in r.remove.iter().enumerate() {
            if name.is_empty() {
                errs.add(rp.field("remove").index(i), "cannot be empty");
            }
        }
    }
    if let Some(r) = &f.redirect {
        let rp = path.field("redirect");
        if r.port > 0 {
            errs.append(validate_port(&rp.field("port"), r.port));
        }
        if !(300..=308).contains(&r.status_code) {
            errs.add(rp.field("status_code"), "must be in the range [300, 308]");
        }
    }
    if let Some(m) = &f.mirror {
        let mp = path.field("mirror");
        match m.percentage {
            None => errs.add(mp.field("percentage"), "cannot be empty"),
            Some(p) if !(0.0..=100.0).contains(&p) => {
                errs.add(mp.field("percentage"), "has to be in [0.0 - 100.0] range")
            }
            Some(_) => {}
        }
        errs.append(validate_backend(&mp.field("backend"), m.backend.as_ref()));
    }
    if let Some(r) = &f.rewrite
        && r.replace_prefix_match.is_some()
        && !has_prefix_match
    {
        errs.add(path.field("rewrite").field("replacePrefixMatch"), "cannot be used without a match on path prefix");
    }
    errs
}

fn validate_backend(path: &Path, backend: Option<&Backend>) -> Errors {
    let Some(backend) = backend else {
        let mut errs = Errors::default();
        errs.add(path.clone(), "cannot be empty");
        return errs;
    };
    let opts = TagsOpts { require_at_least_one_tag: true, require_service: true, ..Default::default() };
    validate_selector(path, &backend.destination, &opts)
}
