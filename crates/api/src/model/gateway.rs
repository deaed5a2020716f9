//! `MeshGateway` (Kuma `mesh.v1alpha1.MeshGateway`): listeners of a builtin gateway and the dataplanes they bind to.

use serde::{Deserialize, Serialize};

use super::common::{DataSource, Empty, Selector, Tags, is_default, proto_enum};

/// The spec of a `MeshGateway`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshGateway {
    /// Selects the builtin-gateway dataplanes this gateway configures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<Selector>,
    /// Tags shared by every listener.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    /// The listeners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conf: Option<GatewayConf>,
}

impl MeshGateway {
    /// Whether any listener is cross-mesh.
    pub fn is_cross_mesh(&self) -> bool {
        self.conf.as_ref().is_some_and(|c| c.listeners.iter().any(|l| l.cross_mesh))
    }

    /// The listeners (none when `conf` is missing).
    pub fn listeners(&self) -> &[Listener] {
        self.conf.as_ref().map_or(&[], |c| c.listeners.as_slice())
    }
}

/// `MeshGateway.conf`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayConf {
    /// The listeners.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
}

proto_enum! {
    /// A listener's protocol (`UDP = 2` is reserved and not accepted, as in Kuma).
    pub enum ListenerProtocol { NONE = 0, TCP = 1, TLS = 3, HTTP = 4, HTTPS = 5 }
}

proto_enum! {
    /// How a listener handles TLS.
    pub enum TlsMode { NONE = 0, TERMINATE = 1, PASSTHROUGH = 2 }
}

/// One listener: a port, a protocol and optionally a hostname.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Listener {
    /// The hostname served (`""` and `*` mean every host).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// The port.
    #[serde(skip_serializing_if = "is_default")]
    pub port: u32,
    /// The protocol.
    #[serde(skip_serializing_if = "is_default")]
    pub protocol: ListenerProtocol,
    /// TLS settings (required for HTTPS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConf>,
    /// Tags that routes and policies select this listener by.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    /// Whether other meshes may reach this listener over mTLS.
    #[serde(skip_serializing_if = "is_default")]
    pub cross_mesh: bool,
    /// Resource limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ListenerResources>,
}

impl Listener {
    /// The hostname with `""` read as `*`.
    pub fn non_empty_hostname(&self) -> &str {
        if self.hostname.is_empty() { "*" } else { &self.hostname }
    }

    /// The connection limit (0 = unlimited).
    pub fn connection_limit(&self) -> u32 {
        self.resources.as_ref().map_or(0, |r| r.connection_limit)
    }
}

/// `tls` of a listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsConf {
    /// TERMINATE or PASSTHROUGH.
    #[serde(skip_serializing_if = "is_default")]
    pub mode: TlsMode,
    /// 1–2 PEM bundles (private key + certificate chain), of different key types.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<DataSource>,
    /// Reserved; has no fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Empty>,
}

/// `resources` of a listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerResources {
    /// The most connections accepted on the listener's port at once (0 = unlimited).
    #[serde(skip_serializing_if = "is_default")]
    pub connection_limit: u32,
}
