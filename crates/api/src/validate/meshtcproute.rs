//! `MeshTCPRoute` validation (Kuma `meshtcproute/api/v1alpha1/validator.go`); paths are rooted at `spec`.

use super::Errors;
use super::meshhttproute::validate_backend_ref;
use super::targetref::{TargetRefOpts, validate_target_ref};
use crate::model::meshtcproute::MeshTcpRoute;
use crate::path::Path;

const TOP_KINDS: &[&str] = &["Mesh", "MeshSubset", "MeshGateway", "MeshService", "MeshServiceSubset", "Dataplane"];

pub(super) fn validate(route: &MeshTcpRoute) -> Errors {
    let mut errs = Errors::default();
    let spec = Path::rooted_at("spec");
    if let Some(t) = &route.target_ref {
        let opts =
            TargetRefOpts { supported_kinds: TOP_KINDS, gateway_listener_tags_allowed: true, ..Default::default() };
        errs.add_at(&spec.field("targetRef"), validate_target_ref(t, &opts));
    }
    let on_gateway = route.target_ref.as_ref().is_some_and(|t| t.kind == "MeshGateway");
    for (i, to) in route.to.iter().enumerate() {
        let tp = spec.field("to").index(i);
        let to_kinds: &'static [&'static str] =
            if on_gateway { &["Mesh"] } else { &["MeshService", "MeshExternalService", "MeshMultiZoneService"] };
        let opts = TargetRefOpts { supported_kinds: to_kinds, ..Default::default() };
        errs.add_at(&tp.field("targetRef"), validate_target_ref(&to.target_ref, &opts));
        for (j, rule) in to.rules.iter().enumerate() {
            let bp = tp.field("rules").index(j).field("default").field("backendRefs");
            if rule.default.backend_refs.is_empty() {
                errs.add(bp.clone(), "must be defined");
            }
            for (b, r) in rule.default.backend_refs.iter().enumerate() {
                errs.add_at(&bp.index(b), validate_backend_ref(r, &[]));
            }
        }
    }
    errs
}
