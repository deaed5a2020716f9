//! # meshgate-compile — Kuma resources → one Plan per builtin gateway
//!
//! What it is for: the pure function at the centre of meshgate. Given every valid resource (and the contents of
//! files that `file` data sources name), it produces, for each Dataplane with `networking.gateway.type: BUILTIN`,
//! the [`meshgate_plan::GatewayPlan`] its data plane executes: the MeshGateway bound to it (best selector match),
//! listeners merged per port, merged listener tags, MeshGatewayRoutes attached by selector (or, once any attach,
//! MeshHTTPRoutes/MeshTCPRoutes targeting the MeshGateway, merged by priority), virtual hosts from
//! listener and route hostnames (including the wildcard-listener redistribution), route tables in Kuma's order with
//! segment-aware prefixes, filters, and weighted backends resolved to Dataplane inbounds or ExternalServices.
//!
//! Kuma concept: `pkg/plugins/runtime/gateway` (the gateway generator), reproduced from its behaviour, with its
//! accidents noted and, where a careful user would expect otherwise, corrected (see `docs/compatibility.md`).
//!
//! What it must never do: I/O, clocks, randomness, or depend on input order — the same resources give a
//! byte-identical plan. A broken route disables only itself and is reported in the plan's diagnostics.

pub mod backends;
pub mod hostnames;
pub mod index;
pub mod legacy;
pub mod listeners;
pub mod meshroutes;
pub mod policies;
pub mod routes;
pub mod select;

use meshgate_api::resource::Resource;
use meshgate_plan::{Diagnostic, GatewayPlan, ObjectRef, Plan, Severity};

use backends::Clusters;
pub use backends::Files;
use index::Index;

/// What compilation takes besides resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The values of each mesh's initial gateway timeout policy.
    pub initial_timeouts: policies::InitialTimeouts,
}

/// Compiles the plan of every builtin gateway in `resources`, with Kuma's defaults.
pub fn compile(resources: &[Resource], files: &Files) -> Plan {
    compile_with(resources, files, &Options::default())
}

/// Compiles the plan of every builtin gateway in `resources`.
pub fn compile_with(resources: &[Resource], files: &Files, options: &Options) -> Plan {
    let index = Index::new(resources);
    let gateways = index
        .builtin_gateways()
        .into_iter()
        .map(|(mesh, dp)| compile_gateway(&index, files, options, mesh, dp.name))
        .collect();
    Plan { gateways }
}

/// Compiles the plan of one builtin-gateway Dataplane.
pub fn compile_gateway(
    index: &Index<'_>,
    files: &Files,
    options: &Options,
    mesh: &str,
    dataplane: &str,
) -> GatewayPlan {
    let mut plan = GatewayPlan {
        dataplane: ObjectRef { mesh: mesh.to_owned(), name: dataplane.to_owned() },
        ..GatewayPlan::default()
    };
    let Some(dp) = index.dataplanes(mesh).iter().find(|d| d.name == dataplane) else {
        plan.diagnostics.push(Diagnostic {
            severity: Severity::Error,
            subject: format!("Dataplane {dataplane}"),
            message: format!("no Dataplane {dataplane:?} in mesh {mesh:?}"),
        });
        return plan;
    };
    let Some(networking) = &dp.spec.networking else { return plan };
    plan.address = networking.address.clone();
    let dp_tags = dp.spec.gateway().map(|g| g.tags.clone()).unwrap_or_default();
    let (gateway, tied) = select::select_gateway(index.gateways(mesh), &dp_tags);
    let Some(gateway) = gateway else {
        plan.diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            subject: format!("Dataplane {dataplane}"),
            message: "no MeshGateway selects this dataplane; it has no listeners".to_owned(),
        });
        return plan;
    };
    if !tied.is_empty() {
        plan.diagnostics.push(Diagnostic {
            severity: Severity::Warning,
            subject: format!("Dataplane {dataplane}"),
            message: format!(
                "MeshGateways {} select this dataplane as well as {} does; {} is used (first by name)",
                tied.join(", "),
                gateway.name,
                gateway.name
            ),
        });
    }
    plan.gateway = Some(ObjectRef { mesh: mesh.to_owned(), name: gateway.name.to_owned() });
    let mut clusters = Clusters::new(index, files, mesh);
    let mut diagnostics = Vec::new();
    plan.listeners = listeners::listeners(
        index,
        mesh,
        gateway.name,
        &gateway.spec.tags,
        gateway.spec.listeners(),
        &dp_tags,
        &mut clusters,
        &mut diagnostics,
    );
    let mut cluster_map = clusters.clusters;
    diagnostics.extend(clusters.diagnostics);
    let gateway_service = dp_tags.get(meshgate_api::model::common::SERVICE_TAG).cloned().unwrap_or_default();
    legacy::apply(
        index,
        mesh,
        &gateway_service,
        &plan.address,
        &mut plan.listeners,
        &mut cluster_map,
        &mut diagnostics,
    );
    policies::apply(
        index,
        mesh,
        gateway.name,
        &plan.address,
        &dp_tags,
        &options.initial_timeouts,
        &mut plan.listeners,
        &mut cluster_map,
        &mut diagnostics,
    );
    plan.clusters = cluster_map;
    diagnostics.dedup();
    plan.diagnostics = diagnostics;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshgate_api::decode::UnknownFields;
    use meshgate_plan::{Action, PathMatch};

    /// The plan of the only builtin gateway in `text` (resources in Universal form).
    pub(crate) fn compile_text(text: &str) -> GatewayPlan {
        let outcome = meshgate_api::load::decode_text(std::path::Path::new("t.yaml"), text, UnknownFields::Deny);
        assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
        let resources: Vec<Resource> = outcome.loaded.into_iter().map(|l| l.decoded.resource).collect();
        let mut plan = compile(&resources, &Files::new());
        assert_eq!(plan.gateways.len(), 1);
        plan.gateways.remove(0)
    }

    const GATEWAY: &str = "type: Dataplane\nname: gw-1\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    type: BUILTIN\n    tags: {kuma.io/service: gw}\n---\ntype: MeshGateway\nname: gw\nselectors: [{match: {kuma.io/service: gw}}]\nconf:\n  listeners: [{port: 8080, protocol: HTTP}]\n";

    #[test]
    fn a_rule_whose_backend_cannot_be_used_is_left_out_and_reported() {
        let text = format!(
            "{GATEWAY}---\ntype: ExternalService\nname: es\nnetworking:\n  address: example.com:443\n  tls: {{enabled: true, caCert: {{secret: missing}}}}\ntags: {{kuma.io/service: es}}\n---\ntype: MeshGatewayRoute\nname: r\nselectors: [{{match: {{kuma.io/service: gw}}}}]\nconf:\n  http:\n    rules:\n    - matches: [{{path: {{match: PREFIX, value: /es}}}}]\n      backends: [{{destination: {{kuma.io/service: es}}}}]\n    - matches: [{{path: {{match: PREFIX, value: /ok}}}}]\n      backends: [{{destination: {{kuma.io/service: kuma.io/unresolved-backend}}}}]\n"
        );
        let plan = compile_text(&text);
        let routes = &plan.listeners[0].virtual_hosts[0].routes;
        let paths: Vec<&PathMatch> = routes.iter().map(|r| &r.path).collect();
        assert_eq!(paths, vec![&PathMatch::Exact("/ok".into()), &PathMatch::Prefix("/ok/".into())]);
        assert!(
            matches!(&routes[0].action, Action::Forward(f) if f.backends[0].cluster == "kuma.io/unresolved-backend")
        );
        let d = &plan.diagnostics;
        assert!(
            d.iter().any(
                |d| d.message.contains("caCert: secret \"missing\" not found") && d.subject == "MeshGatewayRoute r"
            ),
            "{d:?}"
        );
    }

    #[test]
    fn plans_do_not_depend_on_input_order() {
        let text = format!(
            "{GATEWAY}---\ntype: MeshGatewayRoute\nname: b\nselectors: [{{match: {{kuma.io/service: gw}}}}]\nconf: {{http: {{rules: [{{matches: [{{path: {{match: PREFIX, value: /x}}}}], backends: [{{destination: {{kuma.io/service: b}}}}]}}]}}}}\n---\ntype: MeshGatewayRoute\nname: a\nselectors: [{{match: {{kuma.io/service: gw}}}}]\nconf: {{http: {{rules: [{{matches: [{{path: {{match: PREFIX, value: /x}}}}], backends: [{{destination: {{kuma.io/service: a}}}}]}}]}}}}\n"
        );
        let outcome = meshgate_api::load::decode_text(std::path::Path::new("t.yaml"), &text, UnknownFields::Deny);
        let mut resources: Vec<Resource> = outcome.loaded.into_iter().map(|l| l.decoded.resource).collect();
        let first = serde_json::to_string(&compile(&resources, &Files::new())).unwrap();
        resources.reverse();
        let second = serde_json::to_string(&compile(&resources, &Files::new())).unwrap();
        assert_eq!(first, second);
        assert!(first.find("\"name\":\"a\"") < first.find("\"name\":\"b\""), "ties keep name order");
    }
}
