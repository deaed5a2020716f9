//! `Mesh` (Kuma `mesh.v1alpha1.Mesh`). meshgate reads mTLS (cross-mesh listeners need it), routing (zone egress)
//! and `skipCreatingInitialPolicies`; the observability sections are kept as written.

use serde::{Deserialize, Serialize};

use super::common::{Tags, is_default, proto_enum};
use super::wkt::{JsonObject, ProtoDuration};

/// The spec of a `Mesh`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Mesh {
    /// Mutual TLS between proxies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls: Option<Mtls>,
    /// Tracing backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    /// Logging backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// Metrics backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Mesh networking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking: Option<MeshNetworking>,
    /// Routing settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
    /// Constraints on dataplanes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
    /// Default policies not to create (`*` = none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_creating_initial_policies: Vec<String>,
    /// MeshService generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_services: Option<MeshServices>,
}

impl Mesh {
    /// Whether mTLS is enabled (an enabled backend is named).
    pub fn mtls_enabled(&self) -> bool {
        self.mtls.as_ref().is_some_and(|m| !m.enabled_backend.is_empty())
    }

    /// Whether the default policy `policy` (e.g. `MeshTimeout`) is skipped at mesh creation.
    pub fn skips_initial_policy(&self, policy: &str) -> bool {
        self.skip_creating_initial_policies.iter().any(|p| p == "*" || p == policy)
    }
}

/// `mtls`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Mtls {
    /// The backend in use (empty = mTLS off).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub enabled_backend: String,
    /// Certificate authorities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<CaBackend>,
    /// Skip validating the CA.
    #[serde(skip_serializing_if = "is_default")]
    pub skip_validation: bool,
}

proto_enum! {
    /// mTLS enforcement.
    pub enum MtlsMode { STRICT = 0, PERMISSIVE = 1 }
}

/// A certificate authority backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CaBackend {
    /// The name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// builtin, provided or a plugin.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Dataplane certificate settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp_cert: Option<DpCert>,
    /// Type-specific configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf: Option<JsonObject>,
    /// STRICT or PERMISSIVE.
    #[serde(skip_serializing_if = "is_default")]
    pub mode: MtlsMode,
    /// Root chain settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_chain: Option<RootChain>,
}

/// `dpCert`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DpCert {
    /// Rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// Request timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<ProtoDuration>,
}

/// `dpCert.rotation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Rotation {
    /// Certificate lifetime, e.g. `24h`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub expiration: String,
}

/// `rootChain`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RootChain {
    /// Request timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<ProtoDuration>,
}

/// `tracing`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Tracing {
    /// The default backend.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub default_backend: String,
    /// The backends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<TracingBackend>,
}

/// A tracing backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TracingBackend {
    /// The name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Sampling percentage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<f64>,
    /// zipkin or datadog.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Type-specific configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf: Option<JsonObject>,
}

/// `logging`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Logging {
    /// The default backend.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub default_backend: String,
    /// The backends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<LoggingBackend>,
}

/// A logging backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoggingBackend {
    /// The name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The log line format.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub format: String,
    /// file or tcp.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Type-specific configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf: Option<JsonObject>,
}

/// `metrics`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Metrics {
    /// The backend in use.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub enabled_backend: String,
    /// The backends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<MetricsBackend>,
}

/// A metrics backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MetricsBackend {
    /// The name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// prometheus.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Type-specific configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf: Option<JsonObject>,
}

/// Mesh `networking`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshNetworking {
    /// Outbound settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound: Option<MeshOutbound>,
}

/// Mesh `networking.outbound`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshOutbound {
    /// Whether traffic to unknown destinations passes through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<bool>,
}

/// `routing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Routing {
    /// Locality-aware load balancing.
    #[serde(skip_serializing_if = "is_default")]
    pub locality_aware_load_balancing: bool,
    /// Route external traffic through the zone egress.
    #[serde(skip_serializing_if = "is_default")]
    pub zone_egress: bool,
    /// Forbid MeshExternalService access by default.
    #[serde(skip_serializing_if = "is_default")]
    pub default_forbid_mesh_external_service_access: bool,
}

/// `constraints`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Constraints {
    /// Dataplane constraints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataplane_proxy: Option<DataplaneProxyConstraints>,
}

/// `constraints.dataplaneProxy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DataplaneProxyConstraints {
    /// A dataplane must match one of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<ConstraintRule>,
    /// A dataplane must match none of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restrictions: Vec<ConstraintRule>,
}

/// A constraint rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConstraintRule {
    /// Tags (`*` = any non-empty value).
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

proto_enum! {
    /// MeshService generation mode.
    pub enum MeshServicesMode { Disabled = 0, Everywhere = 1, ReachableBackends = 2, Exclusive = 3 }
}

/// `meshServices`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshServices {
    /// The mode.
    #[serde(skip_serializing_if = "is_default")]
    pub mode: MeshServicesMode,
}
