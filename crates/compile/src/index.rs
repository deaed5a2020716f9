//! The resources one compilation reads, indexed by mesh.

use std::collections::BTreeMap;

use meshgate_api::model::common::SERVICE_TAG;
use meshgate_api::model::policy::PolicySpec;
use meshgate_api::model::{
    Dataplane, ExternalService, Mesh, MeshGateway, MeshGatewayRoute, MeshHttpRoute, MeshTcpRoute,
};
use meshgate_api::resource::{Resource, Spec};

/// The legacy (source/destination) policy kinds applied to gateways.
pub const LEGACY_KINDS: &[&str] = &["Timeout", "Retry", "RateLimit", "CircuitBreaker", "HealthCheck", "TrafficLog"];

/// Legacy kinds Kuma matched for gateways but never applied (meshgate reports them).
pub const LEGACY_NOT_APPLIED: &[&str] = &["FaultInjection"];

/// A named item of a mesh.
#[derive(Debug)]
pub struct Named<'a, T> {
    /// The resource name.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a T,
}

/// Resources by mesh, each list sorted by name (so that results do not depend on input order).
#[derive(Debug, Default)]
pub struct Index<'a> {
    meshes: BTreeMap<&'a str, &'a Mesh>,
    dataplanes: BTreeMap<&'a str, Vec<Named<'a, Dataplane>>>,
    gateways: BTreeMap<&'a str, Vec<Named<'a, MeshGateway>>>,
    routes: BTreeMap<&'a str, Vec<Named<'a, MeshGatewayRoute>>>,
    http_routes: BTreeMap<&'a str, Vec<Named<'a, MeshHttpRoute>>>,
    tcp_routes: BTreeMap<&'a str, Vec<Named<'a, MeshTcpRoute>>>,
    external_services: BTreeMap<&'a str, Vec<Named<'a, ExternalService>>>,
    policies: BTreeMap<&'a str, Vec<Named<'a, PolicySpec>>>,
    legacy: BTreeMap<(&'a str, &'static str), Vec<(&'a str, &'a serde_json::Value)>>,
    secrets: BTreeMap<(&'a str, &'a str), &'a [u8]>,
}

impl<'a> Index<'a> {
    /// Indexes a resource set.
    pub fn new(resources: &'a [Resource]) -> Self {
        let mut index = Index::default();
        for r in resources {
            let mesh = r.meta.mesh.as_str();
            let name = r.meta.name.as_str();
            match &r.spec {
                Spec::Mesh(m) => {
                    index.meshes.insert(name, m);
                }
                Spec::Dataplane(d) => index.dataplanes.entry(mesh).or_default().push(Named { name, spec: d }),
                Spec::MeshGateway(g) => index.gateways.entry(mesh).or_default().push(Named { name, spec: g }),
                Spec::MeshGatewayRoute(g) => index.routes.entry(mesh).or_default().push(Named { name, spec: g }),
                Spec::MeshHttpRoute(h) => index.http_routes.entry(mesh).or_default().push(Named { name, spec: h }),
                Spec::MeshTcpRoute(t) => index.tcp_routes.entry(mesh).or_default().push(Named { name, spec: t }),
                Spec::ExternalService(e) => {
                    index.external_services.entry(mesh).or_default().push(Named { name, spec: e });
                }
                Spec::Policy(p) => index.policies.entry(mesh).or_default().push(Named { name, spec: p }),
                Spec::Opaque(kind, spec) if LEGACY_KINDS.contains(kind) || LEGACY_NOT_APPLIED.contains(kind) => {
                    index.legacy.entry((mesh, kind)).or_default().push((name, spec));
                }
                Spec::Secret(s) => {
                    index.secrets.insert((mesh, name), s.data.as_ref().map_or(&[][..], |d| d.0.as_slice()));
                }
                _ => {}
            }
        }
        for list in index.dataplanes.values_mut() {
            list.sort_by_key(|n| n.name);
        }
        for list in index.gateways.values_mut() {
            list.sort_by_key(|n| n.name);
        }
        for list in index.routes.values_mut() {
            list.sort_by_key(|n| n.name);
        }
        for list in index.http_routes.values_mut() {
            list.sort_by_key(|n| n.name);
        }
        for list in index.tcp_routes.values_mut() {
            list.sort_by_key(|n| n.name);
        }
        for list in index.external_services.values_mut() {
            list.sort_by_key(|n| n.name);
        }
        for list in index.legacy.values_mut() {
            list.sort_by_key(|(name, _)| *name);
        }
        for list in index.policies.values_mut() {
            list.sort_by_key(|n| (n.spec.kind(), n.name));
        }
        index
    }

    /// The Mesh resource, if defined.
    pub fn mesh(&self, name: &str) -> Option<&'a Mesh> {
        self.meshes.get(name).copied()
    }

    /// Dataplanes of a mesh.
    pub fn dataplanes(&self, mesh: &str) -> &[Named<'a, Dataplane>] {
        self.dataplanes.get(mesh).map_or(&[], Vec::as_slice)
    }

    /// Every builtin-gateway dataplane, by mesh then name.
    pub fn builtin_gateways(&self) -> Vec<(&'a str, &Named<'a, Dataplane>)> {
        self.dataplanes
            .iter()
            .flat_map(|(mesh, list)| list.iter().filter(|d| d.spec.is_builtin_gateway()).map(move |d| (*mesh, d)))
            .collect()
    }

    /// MeshGateways of a mesh.
    pub fn gateways(&self, mesh: &str) -> &[Named<'a, MeshGateway>] {
        self.gateways.get(mesh).map_or(&[], Vec::as_slice)
    }

    /// MeshGatewayRoutes of a mesh.
    pub fn routes(&self, mesh: &str) -> &[Named<'a, MeshGatewayRoute>] {
        self.routes.get(mesh).map_or(&[], Vec::as_slice)
    }

    /// MeshHTTPRoutes of a mesh.
    pub fn mesh_http_routes(&self, mesh: &str) -> &[Named<'a, MeshHttpRoute>] {
        self.http_routes.get(mesh).map_or(&[], Vec::as_slice)
    }

    /// MeshTCPRoutes of a mesh.
    pub fn mesh_tcp_routes(&self, mesh: &str) -> &[Named<'a, MeshTcpRoute>] {
        self.tcp_routes.get(mesh).map_or(&[], Vec::as_slice)
    }

    /// The targetRef policies of a mesh (by kind, then name).
    pub fn policies(&self, mesh: &str) -> &[Named<'a, PolicySpec>] {
        self.policies.get(mesh).map_or(&[], Vec::as_slice)
    }

    /// The legacy policies of one kind in a mesh (name and spec as written), by name.
    pub fn legacy_policies(&self, mesh: &str, kind: &str) -> &[(&'a str, &'a serde_json::Value)] {
        self.legacy.iter().find(|((m, k), _)| *m == mesh && *k == kind).map_or(&[], |(_, v)| v.as_slice())
    }

    /// Whether a mesh has any legacy policy meshgate applies to gateways.
    pub fn has_legacy_policies(&self, mesh: &str) -> bool {
        self.legacy.keys().any(|(m, _)| *m == mesh)
    }

    /// The ExternalServices of a mesh serving `service`.
    pub fn external_services(&self, mesh: &str, service: &str) -> Vec<&Named<'a, ExternalService>> {
        self.external_services
            .get(mesh)
            .map(|list| list.iter().filter(|e| e.spec.tags.get(SERVICE_TAG).is_some_and(|s| s == service)).collect())
            .unwrap_or_default()
    }

    /// A secret's data.
    pub fn secret(&self, mesh: &str, name: &str) -> Option<&'a [u8]> {
        self.secrets.get(&(mesh, name)).copied()
    }
}
