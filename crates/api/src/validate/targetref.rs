//! Kuma's `ValidateTargetRef` for the targetRef policies.

use std::sync::LazyLock;

use regex::Regex;

use super::Errors;
use super::tags::{TagsOpts, validate_selector, validate_tags};
use crate::model::targetref::TargetRef;
use crate::path::Path;

#[allow(clippy::expect_used)]
static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9a-z.\-_]*$").expect("static regex"));

/// Options of a targetRef check.
#[derive(Default)]
pub(crate) struct TargetRefOpts {
    pub supported_kinds: &'static [&'static str],
    pub gateway_listener_tags_allowed: bool,
    pub allowed_invalid_names: &'static [&'static str],
}

fn disallowed(errs: &mut Errors, field: &str, set: bool, kind: &str) {
    if set {
        errs.add(Path::rooted_at(field), format!("must not be set with kind {kind}"));
    }
}

fn required(errs: &mut Errors, field: &str, set: bool, kind: &str) {
    if !set {
        errs.add(Path::rooted_at(field), format!("must be set when kind is {kind}"));
    }
}

fn valid_name(errs: &mut Errors, name: &str, opts: &TargetRefOpts) {
    if !opts.allowed_invalid_names.contains(&name) && !NAME.is_match(name) {
        errs.add(
            Path::rooted_at("name"),
            "invalid characters: must consist of lower case alphanumeric characters, '-', '.' and '_'.",
        );
    }
}

/// Validates a target reference; paths are relative to the reference.
pub(crate) fn validate_target_ref(r: &TargetRef, opts: &TargetRefOpts) -> Errors {
    let mut errs = Errors::default();
    let kind = r.kind.as_str();
    if kind.is_empty() {
        errs.add(Path::rooted_at("kind"), "must be defined");
        return errs;
    }
    if !opts.supported_kinds.contains(&kind) {
        errs.add(Path::rooted_at("kind"), format!("value '{kind}' is not supported"));
        return errs;
    }
    match kind {
        "Mesh" => {
            if !r.name.is_empty() {
                errs.add(Path::rooted_at("name"), "using name with kind Mesh is not yet supported");
            }
            disallowed(&mut errs, "mesh", !r.mesh.is_empty(), kind);
            disallowed(&mut errs, "tags", !r.tags.is_empty(), kind);
            disallowed(&mut errs, "labels", !r.labels.is_empty(), kind);
            disallowed(&mut errs, "namespace", !r.namespace.is_empty(), kind);
            disallowed(&mut errs, "sectionName", !r.section_name.is_empty(), kind);
        }
        "Dataplane" => {
            disallowed(&mut errs, "tags", !r.tags.is_empty(), kind);
            disallowed(&mut errs, "mesh", !r.mesh.is_empty(), kind);
            disallowed(&mut errs, "proxyTypes", !r.proxy_types.is_empty(), kind);
            if !r.labels.is_empty() && (!r.name.is_empty() || !r.namespace.is_empty()) {
                errs.add(Path::rooted_at("labels"), "either labels or name and namespace must be specified");
            }
            if !r.section_name.is_empty() {
                errs.add(Path::rooted_at("sectionName"), "can only be used with inbound policies");
            }
        }
        "MeshSubset" => {
            disallowed(&mut errs, "name", !r.name.is_empty(), kind);
            disallowed(&mut errs, "mesh", !r.mesh.is_empty(), kind);
            errs.append(validate_tags(&Path::rooted_at("tags"), &r.tags, &TagsOpts::default()));
            disallowed(&mut errs, "labels", !r.labels.is_empty(), kind);
            disallowed(&mut errs, "namespace", !r.namespace.is_empty(), kind);
            disallowed(&mut errs, "sectionName", !r.section_name.is_empty(), kind);
        }
        "MeshService" | "MeshHTTPRoute" => {
            valid_name(&mut errs, &r.name, opts);
            disallowed(&mut errs, "mesh", !r.mesh.is_empty(), kind);
            disallowed(&mut errs, "tags", !r.tags.is_empty(), kind);
            disallowed(&mut errs, "proxyTypes", !r.proxy_types.is_empty(), kind);
            if r.labels.is_empty() {
                required(&mut errs, "name", !r.name.is_empty(), kind);
            }
            if !r.labels.is_empty() && (!r.name.is_empty() || !r.namespace.is_empty()) {
                errs.add(Path::rooted_at("labels"), "either labels or name and namespace must be specified");
            }
            if !r.labels.is_empty() && !r.section_name.is_empty() {
                errs.add(Path::rooted_at("sectionName"), "sectionName should not be combined with labels");
            }
        }
        "MeshServiceSubset" | "MeshGateway" => {
            required(&mut errs, "name", !r.name.is_empty(), kind);
            valid_name(&mut errs, &r.name, opts);
            disallowed(&mut errs, "mesh", !r.mesh.is_empty(), kind);
            disallowed(&mut errs, "proxyTypes", !r.proxy_types.is_empty(), kind);
            errs.append(validate_selector(&Path::rooted_at("tags"), &r.tags, &TagsOpts::default()));
            if kind == "MeshGateway" && !r.tags.is_empty() && !opts.gateway_listener_tags_allowed {
                disallowed(&mut errs, "tags", true, kind);
            }
            disallowed(&mut errs, "labels", !r.labels.is_empty(), kind);
            disallowed(&mut errs, "namespace", !r.namespace.is_empty(), kind);
            disallowed(&mut errs, "sectionName", !r.section_name.is_empty(), kind);
        }
        "MeshExternalService" => {
            valid_name(&mut errs, &r.name, opts);
            disallowed(&mut errs, "mesh", !r.mesh.is_empty(), kind);
            disallowed(&mut errs, "tags", !r.tags.is_empty(), kind);
            disallowed(&mut errs, "proxyTypes", !r.proxy_types.is_empty(), kind);
            if r.labels.is_empty() {
                required(&mut errs, "name", !r.name.is_empty(), kind);
            }
            if !r.labels.is_empty() && (!r.name.is_empty() || !r.namespace.is_empty()) {
                errs.add(Path::rooted_at("labels"), "either labels or name must be specified");
            }
            disallowed(&mut errs, "sectionName", !r.section_name.is_empty(), kind);
        }
        _ => {}
    }
    errs
}
