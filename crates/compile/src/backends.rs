//! Backends → clusters: a destination tag set resolves to an ExternalService (if one serves the service) or to the
//! inbounds of the mesh's Dataplanes whose tags match (Kuma spec §3.7).

use std::collections::BTreeMap;

use meshgate_api::model::common::{DataSource, PROTOCOL_TAG, SERVICE_TAG, Tags};
use meshgate_api::model::external_service::ExternalService;
use meshgate_plan::{Cluster, Diagnostic, Endpoint, Severity, UpstreamProtocol, UpstreamTls};

use crate::index::Index;
use crate::select::rank;

/// The service name Kuma uses for a backend it could not resolve: requests get a 500.
pub const UNRESOLVED_BACKEND: &str = "kuma.io/unresolved-backend";

/// Contents of files named by `file` data sources, by absolute path (read by the caller: compiling does no I/O).
pub type Files = BTreeMap<String, Vec<u8>>;

/// A backend that cannot be used (the reason is in the diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unusable;

/// Builds the clusters of one gateway plan.
#[derive(Debug)]
pub struct Clusters<'i, 'a> {
    index: &'i Index<'a>,
    files: &'i Files,
    mesh: &'i str,
    /// Clusters built so far, by name.
    pub clusters: BTreeMap<String, Cluster>,
    /// Problems found.
    pub diagnostics: Vec<Diagnostic>,
}

/// The name of the cluster for a destination: the service, plus the other tags when there are any.
pub fn cluster_name(destination: &Tags) -> String {
    let service = destination.get(SERVICE_TAG).map_or("", String::as_str);
    let extra: Vec<String> =
        destination.iter().filter(|(k, _)| k.as_str() != SERVICE_TAG).map(|(k, v)| format!("{k}={v}")).collect();
    if extra.is_empty() { service.to_owned() } else { format!("{service}{{{}}}", extra.join(",")) }
}

fn protocol_of(tags: &Tags, explicit: &str) -> UpstreamProtocol {
    let p = if explicit.is_empty() { tags.get(PROTOCOL_TAG).map_or("", String::as_str) } else { explicit };
    match p {
        "http2" | "grpc" => UpstreamProtocol::Http2,
        _ => UpstreamProtocol::Http1,
    }
}

impl<'i, 'a> Clusters<'i, 'a> {
    /// A builder for a gateway in `mesh`.
    pub fn new(index: &'i Index<'a>, files: &'i Files, mesh: &'i str) -> Self {
        Self { index, files, mesh, clusters: BTreeMap::new(), diagnostics: Vec::new() }
    }

    /// The cluster for `destination`, built on first use: `Ok(None)` for Kuma's unresolved-backend service (its
    /// requests get a 500), `Err` when the destination cannot be used (reported as a diagnostic against
    /// `subject`; the caller leaves the rule out).
    pub fn resolve(&mut self, destination: &Tags, subject: &str) -> Result<Option<String>, Unusable> {
        let Some(service) = destination.get(SERVICE_TAG) else { return Ok(None) };
        if service == UNRESOLVED_BACKEND {
            return Ok(None);
        }
        let name = cluster_name(destination);
        if self.clusters.contains_key(&name) {
            return Ok(Some(name));
        }
        let cluster = match self.external(service, destination, subject) {
            Ok(Some(cluster)) => cluster,
            Ok(None) => self.mesh_service(service, destination, subject),
            Err(message) => {
                self.diagnostics.push(Diagnostic { severity: Severity::Error, subject: subject.to_owned(), message });
                return Err(Unusable);
            }
        };
        self.clusters.insert(name.clone(), cluster);
        Ok(Some(name))
    }

    /// An ExternalService cluster, if ExternalServices of the mesh serve `service` and match the destination
    /// (they take precedence over Dataplanes of the same service).
    fn external(&self, service: &str, destination: &Tags, _subject: &str) -> Result<Option<Cluster>, String> {
        let matching: Vec<_> = self
            .index
            .external_services(self.mesh, service)
            .into_iter()
            .filter(|es| rank(destination, &es.spec.tags).is_some())
            .collect();
        let Some(first) = matching.first() else { return Ok(None) };
        let mut endpoints = Vec::new();
        for es in &matching {
            let address = es.spec.networking.as_ref().map_or("", |n| n.address.as_str());
            let (host, port) = split_address(address).ok_or_else(|| {
                format!("ExternalService {}: networking.address {address:?} is not host:port", es.name)
            })?;
            endpoints.push(Endpoint { host, port });
        }
        endpoints.sort();
        endpoints.dedup();
        let tls = self.external_tls(first.name, first.spec).map_err(|e| {
            format!("ExternalService {}: {e}; the rules routing to service {service:?} are left out", first.name)
        })?;
        Ok(Some(Cluster {
            service: service.to_owned(),
            tags: destination.clone(),
            protocol: protocol_of(&first.spec.tags, ""),
            endpoints,
            tls,
            external: true,
            connect_timeout_ms: None,
            ..Cluster::default()
        }))
    }

    fn external_tls(&self, _name: &str, es: &ExternalService) -> Result<Option<UpstreamTls>, String> {
        let Some(tls) = es.networking.as_ref().and_then(|n| n.tls.as_ref()).filter(|t| t.enabled) else {
            return Ok(None);
        };
        let text = |field: &str, ds: Option<&DataSource>| -> Result<Option<String>, String> {
            let Some(ds) = ds else { return Ok(None) };
            let bytes = self.data_source(ds).map_err(|e| format!("networking.tls.{field}: {e}"))?;
            String::from_utf8(bytes).map(Some).map_err(|_| format!("networking.tls.{field}: not PEM text"))
        };
        Ok(Some(UpstreamTls {
            server_name: tls.server_name.clone().filter(|s| !s.is_empty()),
            ca_pem: text("caCert", tls.ca_cert.as_ref())?,
            client_cert_pem: text("clientCert", tls.client_cert.as_ref())?,
            client_key_pem: text("clientKey", tls.client_key.as_ref())?,
            skip_hostname_verification: tls.skip_hostname_verification.unwrap_or(false),
        }))
    }

    /// The bytes of a data source.
    pub fn data_source(&self, ds: &DataSource) -> Result<Vec<u8>, String> {
        if let Some(name) = &ds.secret {
            return self
                .index
                .secret(self.mesh, name)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| format!("secret {name:?} not found in mesh {:?}", self.mesh));
        }
        if let Some(path) = &ds.file {
            return self.files.get(path).cloned().ok_or_else(|| format!("file {path:?} could not be read"));
        }
        if let Some(inline) = &ds.inline {
            return Ok(inline.0.clone());
        }
        if let Some(s) = &ds.inline_string {
            return Ok(s.clone().into_bytes());
        }
        Err("data source is empty".to_owned())
    }

    /// A cluster of the mesh's Dataplane inbounds matching the destination.
    fn mesh_service(&mut self, service: &str, destination: &Tags, subject: &str) -> Cluster {
        let mut endpoints = Vec::new();
        let mut protocol = None;
        for dp in self.index.dataplanes(self.mesh) {
            let Some(networking) = &dp.spec.networking else { continue };
            if dp.spec.gateway().is_some() {
                continue;
            }
            for inbound in &networking.inbound {
                if rank(destination, &inbound.tags).is_none() || !inbound.is_healthy() {
                    continue;
                }
                let Ok(port) = u16::try_from(inbound.port) else { continue };
                endpoints.push(Endpoint { host: inbound.effective_address(networking).to_owned(), port });
                protocol.get_or_insert_with(|| protocol_of(&inbound.tags, &inbound.protocol));
            }
        }
        endpoints.sort();
        endpoints.dedup();
        if endpoints.is_empty() {
            self.diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                subject: subject.to_owned(),
                message: format!(
                    "no endpoints for service {service:?}: no healthy Dataplane inbound or ExternalService matches {}; requests get 503",
                    cluster_name(destination)
                ),
            });
        }
        Cluster {
            service: service.to_owned(),
            tags: destination.clone(),
            protocol: protocol.unwrap_or_default(),
            endpoints,
            tls: None,
            external: false,
            connect_timeout_ms: None,
            ..Cluster::default()
        }
    }
}

/// `host:port` or `[v6]:port`.
fn split_address(address: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        address.rsplit_once(':')?
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let mut t = Tags::new();
        t.insert(SERVICE_TAG.into(), "api".into());
        assert_eq!(cluster_name(&t), "api");
        t.insert("version".into(), "v2".into());
        assert_eq!(cluster_name(&t), "api{version=v2}");
    }

    #[test]
    fn addresses() {
        assert_eq!(split_address("example.com:443"), Some(("example.com".into(), 443)));
        assert_eq!(split_address("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(split_address("example.com"), None);
        assert_eq!(split_address(":80"), None);
    }
}
