//! `MeshGateway` validation (Kuma `gateway_validator.go`).

use std::collections::{BTreeMap, BTreeSet};

use super::Errors;
use super::tags::{
    GATEWAY_FORBIDDEN_TAGS, TagsOpts, validate_hostname, validate_port, validate_selector, validate_selectors,
};
use crate::model::gateway::{GatewayConf, Listener, ListenerProtocol, MeshGateway, TlsMode};
use crate::path::Path;

pub(super) fn validate(gw: &MeshGateway) -> Errors {
    let mut errs = Errors::default();
    let selector_opts = TagsOpts { require_at_least_one_tag: true, require_service: true, ..Default::default() };
    errs.append(validate_selectors(
        &Path::rooted_at("selectors"),
        &gw.selectors,
        true,
        gw.is_cross_mesh(),
        &selector_opts,
    ));
    let tag_opts = TagsOpts { forbidden_keys: GATEWAY_FORBIDDEN_TAGS, ..Default::default() };
    errs.append(validate_selector(&Path::rooted_at("tags"), &gw.tags, &tag_opts));
    errs.append(validate_conf(&Path::rooted_at("conf"), gw.conf.as_ref()));
    errs
}

fn validate_conf(path: &Path, conf: Option<&GatewayConf>) -> Errors {
    let mut errs = Errors::default();
    let Some(conf) = conf else {
        errs.add(path.clone(), "cannot be empty");
        return errs;
    };
    let path = path.field("listeners");
    if conf.listeners.is_empty() {
        errs.add(path.clone(), "cannot be empty");
    }
    for (i, l) in conf.listeners.iter().enumerate() {
        let lp = path.index(i);
        if !l.hostname.is_empty() {
            errs.append(validate_hostname(&lp.field("hostname"), &l.hostname));
        }
        errs.append(validate_port(&lp.field("port"), l.port));
        match l.protocol {
            ListenerProtocol::NONE => errs.add(lp.field("protocol"), "cannot be empty"),
            ListenerProtocol::HTTPS => {
                if l.cross_mesh {
                    errs.add(lp.field("protocol"), "protocol is not supported with crossMesh");
                } else if let Some(tls) = &l.tls {
                    if tls.mode == TlsMode::PASSTHROUGH {
                        errs.add(lp.field("tls").field("mode"), "mode is not supported on HTTPS listeners");
                    }
                } else {
                    errs.add(lp.field("tls"), "cannot be empty");
                }
            }
            _ => {}
        }
        if let Some(tls) = &l.tls {
            if l.cross_mesh {
                if tls.mode != TlsMode::NONE || !tls.certificates.is_empty() {
                    errs.add(lp.field("tls"), "must be empty with crossMesh");
                }
            } else {
                match tls.mode {
                    TlsMode::NONE => errs.add(lp.field("tls").field("mode"), "cannot be empty"),
                    TlsMode::TERMINATE => match tls.certificates.len() {
                        0 => errs.add(lp.field("tls").field("certificates"), "cannot be empty in TLS termination mode"),
                        1 | 2 => {}
                        _ => errs.add(lp.field("tls").field("certificates"), "cannot have more than 2 certificates"),
                    },
                    TlsMode::PASSTHROUGH => {}
                }
            }
        }
        let tag_opts = TagsOpts { forbidden_keys: GATEWAY_FORBIDDEN_TAGS, ..Default::default() };
        errs.append(validate_selector(&lp.field("tags"), &l.tags, &tag_opts));
    }
    errs.append(validate_collapsibility(&path, &conf.listeners));
    errs
}

/// Listeners sharing a port must agree on the protocol, have distinct hostnames and the same connection limit.
fn validate_collapsibility(path: &Path, listeners: &[Listener]) -> Errors {
    let mut protocols: BTreeMap<u32, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
    let mut hostnames: BTreeMap<u32, BTreeMap<&str, Vec<usize>>> = BTreeMap::new();
    let mut limits: BTreeMap<u32, (BTreeSet<u32>, Vec<usize>)> = BTreeMap::new();
    for (i, l) in listeners.iter().enumerate() {
        protocols.entry(l.port).or_default().entry(l.protocol.name()).or_default().push(i);
        hostnames.entry(l.port).or_default().entry(l.non_empty_hostname()).or_default().push(i);
        let limit = l.connection_limit();
        if limit != 0 {
            let entry = limits.entry(l.port).or_default();
            entry.0.insert(limit);
            entry.1.push(i);
        }
    }
    let mut errs = Errors::default();
    for by_protocol in protocols.values() {
        if by_protocol.len() > 1 {
            for i in by_protocol.values().flatten() {
                errs.add(path.index(*i), "protocol conflicts with other listeners on this port");
            }
        }
    }
    for by_host in hostnames.values() {
        for indexes in by_host.values().filter(|v| v.len() > 1) {
            for i in indexes {
                errs.add(path.index(*i), "multiple listeners for hostname on this port");
            }
        }
    }
    for (values, indexes) in limits.values() {
        if values.len() > 1 {
            for i in indexes {
                errs.add(
                    path.index(*i).field("resources").field("connectionLimit"),
                    "conflicting values for this port",
                );
            }
        }
    }
    errs
}
