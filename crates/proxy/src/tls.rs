//! TLS termination: one rustls server configuration per listener, choosing the certificate by SNI (exact, longest
//! wildcard, `*`) and, among a hostname's certificates, the one the client can verify (ECDSA when its signature
//! schemes allow, else RSA). No matching SNI and no `*` chain: the handshake fails.

use std::fmt;
use std::sync::Arc;

use meshgate_plan::TlsCertificate;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SignatureAlgorithm};

use crate::domain::DomainTable;

/// A certificate ready to serve.
pub fn certified_key(cert: &TlsCertificate) -> Result<Arc<CertifiedKey>, String> {
    let chain: Result<Vec<CertificateDer<'static>>, _> = CertificateDer::pem_slice_iter(cert.pem.as_bytes()).collect();
    let chain = chain.map_err(|e| format!("{}: invalid certificate PEM: {e}", cert.name))?;
    if chain.is_empty() {
        return Err(format!("{}: missing server certificate", cert.name));
    }
    let key = PrivateKeyDer::from_pem_slice(cert.pem.as_bytes())
        .map_err(|e| format!("{}: invalid private key: {e}", cert.name))?;
    let signing = any_supported_type(&key).map_err(|e| format!("{}: unsupported private key: {e}", cert.name))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// Certificates by SNI pattern.
pub struct SniResolver {
    table: DomainTable<Vec<Arc<CertifiedKey>>>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver").field("chains", &self.table.items().len()).finish()
    }
}

impl SniResolver {
    /// A resolver over `(sni, certificates)` chains, most exact first.
    pub fn new(chains: Vec<(String, Vec<Arc<CertifiedKey>>)>) -> Self {
        let mut table = DomainTable::default();
        for (sni, keys) in chains {
            table.insert(&sni, keys);
        }
        Self { table }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        let keys = self.table.find(sni.as_deref())?;
        let schemes = hello.signature_schemes();
        // Prefer ECDSA (smaller, faster) when the client can verify it, then RSA, then whatever there is.
        let usable = |alg: SignatureAlgorithm| {
            keys.iter().find(|k| k.key.algorithm() == alg && k.key.choose_scheme(schemes).is_some())
        };
        usable(SignatureAlgorithm::ECDSA).or_else(|| usable(SignatureAlgorithm::RSA)).or_else(|| keys.first()).cloned()
    }
}

/// A server configuration for terminating TLS with these chains, offering `alpn`.
pub fn server_config(resolver: SniResolver, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(Arc::new(config))
}
