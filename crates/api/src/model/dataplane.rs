//! `Dataplane` (Kuma `mesh.v1alpha1.Dataplane`): a proxy. For meshgate it is either a builtin gateway (its
//! `networking.gateway.type` is `BUILTIN`) or a backend whose inbounds receive the gateway's traffic.

use serde::{Deserialize, Serialize};

use super::common::{Empty, Tags, is_default, proto_enum};
use super::mesh::MetricsBackend;
use super::wkt::ProtoDuration;

/// The spec of a `Dataplane`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Dataplane {
    /// Addresses, inbounds, outbounds and the gateway role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking: Option<Networking>,
    /// Metrics backend overriding the mesh's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsBackend>,
    /// Deprecated probe rewriting (not allowed on builtin gateways).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<Probes>,
}

impl Dataplane {
    /// The gateway section, if any.
    pub fn gateway(&self) -> Option<&Gateway> {
        self.networking.as_ref()?.gateway.as_ref()
    }

    /// Whether this dataplane is a builtin gateway.
    pub fn is_builtin_gateway(&self) -> bool {
        self.gateway().is_some_and(|g| g.type_ == GatewayType::BUILTIN)
    }

    /// Whether this dataplane is a delegated gateway.
    pub fn is_delegated_gateway(&self) -> bool {
        self.gateway().is_some_and(|g| g.type_ == GatewayType::DELEGATED)
    }

    /// The inbounds (none without `networking`).
    pub fn inbounds(&self) -> &[Inbound] {
        self.networking.as_ref().map_or(&[], |n| n.inbound.as_slice())
    }
}

/// `networking`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Networking {
    /// The proxy's IP address or hostname (a builtin gateway's listeners bind here).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// The address other proxies use to reach this one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub advertised_address: String,
    /// The gateway role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
    /// Inbound interfaces (the services this dataplane serves).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inbound: Vec<Inbound>,
    /// Outbound interfaces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<Outbound>,
    /// Transparent proxying settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent_proxying: Option<TransparentProxying>,
    /// The proxy's admin port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<EnvoyAdmin>,
    /// Zone proxy listeners (Kuma 2.14).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ZoneListener>,
}

proto_enum! {
    /// The gateway kind of a dataplane. `DELEGATED` is the zero value, so a gateway section without `type` is
    /// a delegated gateway.
    pub enum GatewayType { DELEGATED = 0, BUILTIN = 1 }
}

/// `networking.gateway`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Gateway {
    /// The gateway's tags (`kuma.io/service` is required).
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    /// BUILTIN or DELEGATED.
    #[serde(rename = "type", skip_serializing_if = "is_default")]
    pub type_: GatewayType,
}

proto_enum! {
    /// The state of an inbound.
    pub enum InboundState { Ready = 0, NotReady = 1, Ignored = 2 }
}

/// An inbound interface: where this dataplane receives traffic for a service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Inbound {
    /// The port the proxy listens on.
    #[serde(skip_serializing_if = "is_default")]
    pub port: u32,
    /// The application's port (defaults to `port`).
    #[serde(skip_serializing_if = "is_default")]
    pub service_port: u32,
    /// The application's address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_address: String,
    /// The address the proxy listens on (defaults to `networking.address`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// The service's tags.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    /// Health (absent = healthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Active health checking of the application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_probe: Option<ServiceProbe>,
    /// The inbound's state.
    #[serde(skip_serializing_if = "is_default")]
    pub state: InboundState,
    /// The inbound's name (MeshService section name).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The application protocol (Kuma 2.14; falls back to the `kuma.io/protocol` tag).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
}

impl Inbound {
    /// The address traffic for this inbound goes to: the inbound's own, else the dataplane's.
    pub fn effective_address<'a>(&'a self, networking: &'a Networking) -> &'a str {
        if self.address.is_empty() { &networking.address } else { &self.address }
    }

    /// Whether the inbound is healthy (no `health` section means healthy).
    pub fn is_healthy(&self) -> bool {
        self.health.as_ref().is_none_or(|h| h.ready) && self.state != InboundState::NotReady
    }
}

/// `inbound.health`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Health {
    /// Whether the inbound is ready.
    pub ready: bool,
}

/// `inbound.serviceProbe`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceProbe {
    /// Time between probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<ProtoDuration>,
    /// Probe timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ProtoDuration>,
    /// Failures before unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    /// Successes before healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    /// TCP probing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Empty>,
}

/// An outbound interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Outbound {
    /// The local address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// The local port.
    #[serde(skip_serializing_if = "is_default")]
    pub port: u32,
    /// The destination's tags (legacy).
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    /// The destination by reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<OutboundBackendRef>,
}

/// `outbound.backendRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OutboundBackendRef {
    /// MeshService, MeshExternalService or MeshMultiZoneService.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The port.
    #[serde(skip_serializing_if = "is_default")]
    pub port: u32,
    /// Labels selecting the destination.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub labels: Tags,
}

proto_enum! {
    /// IP families for transparent proxying.
    pub enum IpFamilyMode { UnSpecified = 0, DualStack = 1, IPv4 = 2, IPv6 = 3 }
}

/// `networking.transparentProxying`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TransparentProxying {
    /// Inbound redirect port.
    #[serde(skip_serializing_if = "is_default")]
    pub redirect_port_inbound: u32,
    /// Outbound redirect port.
    #[serde(skip_serializing_if = "is_default")]
    pub redirect_port_outbound: u32,
    /// Services reachable directly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub direct_access_services: Vec<String>,
    /// Services this proxy may reach.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reachable_services: Vec<String>,
    /// IP families.
    #[serde(skip_serializing_if = "is_default")]
    pub ip_family_mode: IpFamilyMode,
    /// Backends this proxy may reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable_backends: Option<ReachableBackends>,
}

/// `transparentProxying.reachableBackends`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReachableBackends {
    /// The references.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<ReachableBackendRef>,
}

/// One reachable backend.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReachableBackendRef {
    /// The kind.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Labels.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub labels: Tags,
}

/// `networking.admin`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvoyAdmin {
    /// The admin port.
    #[serde(skip_serializing_if = "is_default")]
    pub port: u32,
}

proto_enum! {
    /// The type of a zone proxy listener.
    pub enum ZoneListenerType { Unspecified = 0, ZoneIngress = 1, ZoneEgress = 2 }
}

proto_enum! {
    /// The state of a zone proxy listener.
    pub enum ZoneListenerState { Ready = 0, NotReady = 1 }
}

/// `networking.listeners[]` (zone proxies, Kuma 2.14).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ZoneListener {
    /// The type.
    #[serde(rename = "type", skip_serializing_if = "is_default")]
    pub type_: ZoneListenerType,
    /// The address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// The port.
    #[serde(skip_serializing_if = "is_default")]
    pub port: u32,
    /// The name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The state.
    #[serde(skip_serializing_if = "is_default")]
    pub state: ZoneListenerState,
}

/// Deprecated `probes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Probes {
    /// The probe port.
    #[serde(skip_serializing_if = "is_default")]
    pub port: u32,
    /// Rewritten endpoints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<ProbeEndpoint>,
}

/// One probe endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProbeEndpoint {
    /// The inbound port.
    #[serde(skip_serializing_if = "is_default")]
    pub inbound_port: u32,
    /// The inbound path.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub inbound_path: String,
    /// The exposed path.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
}
