//! `ExternalService` (Kuma `mesh.v1alpha1.ExternalService`): a service outside the mesh, reachable at `host:port`.

use serde::{Deserialize, Serialize};

use super::common::{DataSource, Tags, is_default};

/// The spec of an `ExternalService`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExternalService {
    /// Where it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking: Option<ExternalNetworking>,
    /// Its tags (`kuma.io/service` required).
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

impl ExternalService {
    /// The `kuma.io/service` tag.
    pub fn service(&self) -> Option<&str> {
        self.tags.get(super::common::SERVICE_TAG).map(String::as_str)
    }
}

/// `networking`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExternalNetworking {
    /// `host:port`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// TLS to the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ExternalTls>,
    /// Do not create a DNS entry for the host.
    #[serde(rename = "disableHostDNSEntry", skip_serializing_if = "is_default")]
    pub disable_host_dns_entry: bool,
}

/// `networking.tls`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ExternalTls {
    /// Originate TLS.
    #[serde(skip_serializing_if = "is_default")]
    pub enabled: bool,
    /// CA to verify the server with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<DataSource>,
    /// Client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<DataSource>,
    /// Client key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<DataSource>,
    /// Allow TLS renegotiation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_renegotiation: Option<bool>,
    /// SNI and name to verify (default: the address's host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Do not verify the server's hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_hostname_verification: Option<bool>,
}
