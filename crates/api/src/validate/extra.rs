//! Checks beyond Kuma's validators: what Kuma only found when it generated Envoy configuration (and reported in
//! its logs, not to the user), what Envoy would have rejected, and references to other resources.

use std::collections::BTreeMap;

use super::{Errors, Violation};
use crate::model::gateway::{Listener, ListenerProtocol, MeshGateway, TlsMode};
use crate::model::gateway_route::{HeaderMatchType, MeshGatewayRoute, PathMatchType, QueryMatchType, Rewrite};
use crate::model::mesh::Mesh;
use crate::model::meshhttproute::{HeaderMatchKind, MeshHttpRoute, PathMatchKind, QueryMatchKind};
use crate::path::Path;
use crate::pem::{KeyType, certificate_name, parse_bundle};
use crate::resource::{Resource, Spec};

/// What the extra checks may look up: other resources and files.
pub trait Lookup {
    /// The data of Secret `name` in `mesh`, if such a Secret is known.
    fn secret(&self, mesh: &str, name: &str) -> Option<Vec<u8>>;
    /// The Mesh `name`, if it is defined (`default` exists implicitly, without mTLS).
    fn mesh(&self, name: &str) -> Option<&Mesh>;
    /// The content of a file named by a `file` data source of `resource`.
    fn read_file(&self, resource: &Resource, path: &str) -> Result<Vec<u8>, String>;
}

/// A lookup that knows nothing: reference checks are skipped, every other check runs.
#[derive(Debug, Default)]
pub struct NoLookup;

impl Lookup for NoLookup {
    fn secret(&self, _: &str, _: &str) -> Option<Vec<u8>> {
        None
    }
    fn mesh(&self, _: &str) -> Option<&Mesh> {
        None
    }
    fn read_file(&self, _: &Resource, path: &str) -> Result<Vec<u8>, String> {
        Err(format!("cannot read \"{path}\": no file access here"))
    }
}

/// The extra checks for one resource. With `check_references` false, nothing is looked up.
pub fn extra(resource: &Resource, lookup: &dyn Lookup, check_references: bool) -> Vec<Violation> {
    let errs = match &resource.spec {
        Spec::MeshGateway(gw) => gateway(resource, gw, lookup, check_references),
        Spec::MeshGatewayRoute(route) => gateway_route(route),
        Spec::MeshHttpRoute(route) => mesh_http_route(route),
        Spec::MeshTcpRoute(route) => {
            // Kuma's CRD allows one rule per `to` (MaxItems=1); its Universal validator does not check it.
            let mut errs = Errors::default();
            for (i, to) in route.to.iter().enumerate() {
                if to.rules.len() > 1 {
                    errs.add(Path::rooted_at("spec").field("to").index(i).field("rules"), "must have at most 1 item");
                }
            }
            errs
        }
        _ => Errors::default(),
    };
    errs.list
}

fn one_of(errs: &mut Errors, path: &Path, set: &[&str], all: &[&str]) {
    if set.len() > 1 {
        errs.add(path.clone(), format!("only one of {} may be set (found {})", all.join(", "), set.join(" and ")));
    }
}

fn gateway(resource: &Resource, gw: &MeshGateway, lookup: &dyn Lookup, check_references: bool) -> Errors {
    let mut errs = Errors::default();
    let listeners = Path::rooted_at("conf").field("listeners");
    for (i, l) in gw.listeners().iter().enumerate() {
        let lp = listeners.index(i);
        if l.protocol == ListenerProtocol::TLS && l.tls.is_none() {
            errs.add(lp.field("tls"), "unsupported TLS mode \"NONE\"");
        }
        if l.cross_mesh && check_references {
            let mtls = lookup.mesh(&resource.meta.mesh).is_some_and(Mesh::mtls_enabled);
            if !mtls {
                errs.add(lp.field("crossMesh"), "mTLS must be enabled for crossMesh-enabled MeshGateways");
            }
        }
        let Some(tls) = &l.tls else { continue };
        for (j, ds) in tls.certificates.iter().enumerate() {
            one_of(
                &mut errs,
                &lp.field("tls").field("certificates").index(j),
                &ds.set_fields(),
                &["secret", "file", "inline", "inlineString"],
            );
        }
        let terminates = tls.mode == TlsMode::TERMINATE
            && !l.cross_mesh
            && matches!(l.protocol, ListenerProtocol::HTTPS | ListenerProtocol::TLS);
        if terminates && check_references {
            errs.append(certificates(resource, l, &lp.field("tls").field("certificates"), lookup));
        }
    }
    errs
}

fn certificates(resource: &Resource, l: &Listener, path: &Path, lookup: &dyn Lookup) -> Errors {
    let mut errs = Errors::default();
    let Some(tls) = &l.tls else { return errs };
    let mut seen: BTreeMap<KeyType, String> = BTreeMap::new();
    for (j, ds) in tls.certificates.iter().enumerate() {
        let cp = path.index(j);
        if ds.set_fields().len() != 1 {
            if ds.set_fields().is_empty() {
                errs.add(cp, "data source cannot be empty");
            }
            continue;
        }
        let data = if let Some(name) = &ds.secret {
            match lookup.secret(&resource.meta.mesh, name) {
                Some(d) => d,
                None => {
                    errs.add(
                        cp.field("secret"),
                        format!("secret \"{name}\" not found in mesh \"{}\"", resource.meta.mesh),
                    );
                    continue;
                }
            }
        } else if let Some(file) = &ds.file {
            match lookup.read_file(resource, file) {
                Ok(d) => d,
                Err(e) => {
                    errs.add(cp.field("file"), e);
                    continue;
                }
            }
        } else if let Some(inline) = &ds.inline {
            inline.0.clone()
        } else {
            ds.inline_string.clone().unwrap_or_default().into_bytes()
        };
        match parse_bundle(&data) {
            Ok(bundle) => {
                let name = certificate_name(bundle.key_type, ds, l.non_empty_hostname());
                if seen.insert(bundle.key_type, name.clone()).is_some() {
                    errs.add(cp, format!("duplicate TLS certificate \"{name}\""));
                }
            }
            Err(e) => errs.add(cp, e.to_string()),
        }
    }
    errs
}

fn check_regex(errs: &mut Errors, path: Path, pattern: &str) {
    if pattern.is_empty() {
        return;
    }
    if let Err(e) = regex::Regex::new(pattern) {
        let detail = e.to_string();
        let last = detail.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("invalid syntax").trim().to_owned();
        errs.add(path, format!("invalid regular expression {pattern:?}: {}", last.trim_start_matches("error: ")));
    }
}

fn rewrite_one_of(errs: &mut Errors, path: Path, r: &Rewrite) {
    let mut set = Vec::new();
    if r.replace_full.is_some() {
        set.push("replaceFull");
    }
    if r.replace_prefix_match.is_some() {
        set.push("replacePrefixMatch");
    }
    one_of(errs, &path, &set, &["replaceFull", "replacePrefixMatch"]);
}

fn gateway_route(route: &MeshGatewayRoute) -> Errors {
    let mut errs = Errors::default();
    let conf = Path::rooted_at("conf");
    let Some(c) = &route.conf else { return errs };
    if c.tcp.is_some() && c.http.is_some() {
        errs.add(conf.clone(), "only one of tcp, http may be set (found tcp and http)");
    }
    let Some(http) = &c.http else { return errs };
    for (i, rule) in http.rules.iter().enumerate() {
        let rp = conf.field("http").field("rules").index(i);
        for (k, m) in rule.matches.iter().enumerate() {
            let mp = rp.field("matches").index(k);
            if let Some(p) = &m.path
                && p.match_ == PathMatchType::REGEX
            {
                check_regex(&mut errs, mp.field("path").field("value"), &p.value);
            }
            for (h, header) in m.headers.iter().enumerate() {
                if header.match_ == HeaderMatchType::REGEX {
                    check_regex(&mut errs, mp.field("headers").index(h).field("value"), &header.value);
                }
            }
            for (q, query) in m.query_parameters.iter().enumerate() {
                if query.match_ == QueryMatchType::REGEX {
                    check_regex(&mut errs, mp.field("query_parameters").index(q).field("value"), &query.value);
                }
            }
        }
        for (f, filter) in rule.filters.iter().enumerate() {
            let fp = rp.field("filters").index(f);
            one_of(
                &mut errs,
                &fp,
                &filter.set_kinds(),
                &["request_header", "response_header", "mirror", "redirect", "rewrite"],
            );
            if let Some(r) = &filter.redirect {
                if [300, 304, 305, 306].contains(&r.status_code) {
                    errs.add(
                        fp.field("redirect").field("status_code"),
                        format!("redirect status code {} is not supported", r.status_code),
                    );
                }
                if let Some(p) = &r.path {
                    rewrite_one_of(&mut errs, fp.field("redirect").field("path"), p);
                }
            }
            if let Some(r) = &filter.rewrite {
                rewrite_one_of(&mut errs, fp.field("rewrite"), r);
            }
        }
    }
    errs
}

fn mesh_http_route(route: &MeshHttpRoute) -> Errors {
    let mut errs = Errors::default();
    for (i, to) in route.to.iter().enumerate() {
        for (j, rule) in to.rules.iter().enumerate() {
            let rp = Path::rooted_at("spec").field("to").index(i).field("rules").index(j);
            for (k, m) in rule.matches.iter().enumerate() {
                let mp = rp.field("matches").index(k);
                if let Some(p) = &m.path
                    && p.type_ == PathMatchKind::RegularExpression
                {
                    check_regex(&mut errs, mp.field("path").field("value"), &p.value);
                }
                for (h, header) in m.headers.iter().enumerate() {
                    if header.type_ == Some(HeaderMatchKind::RegularExpression) {
                        check_regex(&mut errs, mp.field("headers").index(h).field("value"), &header.value);
                    }
                }
                for (q, query) in m.query_params.iter().enumerate() {
                    if query.type_ == QueryMatchKind::RegularExpression {
                        check_regex(&mut errs, mp.field("queryParams").index(q).field("value"), &query.value);
                    }
                }
            }
        }
    }
    errs
}
