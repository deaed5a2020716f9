//! PEM bundles as a gateway listener uses them: one private key (PKCS#8, PKCS#1 or SEC1) and a certificate chain,
//! server certificate first, blocks in any order. Checked the way Kuma checked them when it generated Envoy
//! configuration, with the same messages, plus a check that the key belongs to the certificate.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{Error as TlsError, InconsistentKeys, SignatureAlgorithm};

/// The key type of a certificate (a listener may have one of each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// RSA.
    Rsa,
    /// ECDSA (P-256 or P-384).
    Ecdsa,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Rsa => "rsa",
            KeyType::Ecdsa => "ecdsa",
        })
    }
}

/// Why a PEM bundle cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// No CERTIFICATE block.
    #[error("missing server certificate")]
    MissingCertificate,
    /// No private key block.
    #[error("missing private key")]
    MissingKey,
    /// More than one private key block.
    #[error("secret contains multiple private keys")]
    MultipleKeys,
    /// A block type Kuma does not read.
    #[error("unsupported PEM block \"{0}\"")]
    UnsupportedBlock(String),
    /// A key of a type the gateway cannot serve.
    #[error("unsupported private key type {0}")]
    UnsupportedKeyType(String),
    /// Broken PEM or DER.
    #[error("invalid PEM data: {0}")]
    Malformed(String),
    /// The key is not the certificate's.
    #[error("private key does not match the server certificate")]
    KeyMismatch,
    /// The server certificate cannot be parsed.
    #[error("invalid server certificate: {0}")]
    BadCertificate(String),
}

/// A usable bundle.
#[derive(Clone)]
pub struct PemBundle {
    /// The certificate chain, server certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: Arc<PrivateKeyDer<'static>>,
    /// The key's type.
    pub key_type: KeyType,
    /// The key, ready to sign.
    pub signing_key: Arc<dyn SigningKey>,
}

impl fmt::Debug for PemBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemBundle")
            .field("chain", &self.chain.len())
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

impl PemBundle {
    /// The bundle as a rustls certified key.
    pub fn certified_key(&self) -> CertifiedKey {
        CertifiedKey::new(self.chain.clone(), self.signing_key.clone())
    }
}

/// Kuma's name for a listener certificate: `cert.<rsa|ecdsa>:<secret|file|inline>:<name>` (inline data sources
/// are named after the listener hostname).
pub fn certificate_name(key_type: KeyType, ds: &crate::model::common::DataSource, listener_hostname: &str) -> String {
    let (source, name) = if let Some(s) = &ds.secret {
        ("secret", s.as_str())
    } else if let Some(f) = &ds.file {
        ("file", f.as_str())
    } else {
        ("inline", listener_hostname)
    };
    format!("cert.{key_type}:{source}:{name}")
}

/// Block labels a bundle may carry. `EC PARAMETERS` (written by `openssl ecparam -genkey`) is accepted and ignored.
const IGNORED_BLOCKS: &[&str] = &["EC PARAMETERS"];

/// The labels of every `-----BEGIN X-----` line, in order.
fn block_labels(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("-----BEGIN ").and_then(|r| r.strip_suffix("-----")).map(str::to_owned)
        })
        .collect()
}

/// Parses and checks a PEM bundle.
pub fn parse_bundle(data: &[u8]) -> Result<PemBundle, PemError> {
    for label in block_labels(data) {
        let known = matches!(label.as_str(), "CERTIFICATE" | "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY");
        if !known && !IGNORED_BLOCKS.contains(&label.as_str()) {
            return Err(match label.as_str() {
                "ENCRYPTED PRIVATE KEY" => {
                    PemError::UnsupportedKeyType("(encrypted private keys are not supported; decrypt it first)".into())
                }
                _ => PemError::UnsupportedBlock(label),
            });
        }
    }
    let mut chain = Vec::new();
    let mut keys: Vec<PrivateKeyDer<'static>> = Vec::new();
    for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(data) {
        let (kind, der) = section.map_err(|e| PemError::Malformed(pem_error_text(&e)))?;
        match kind {
            SectionKind::Certificate => chain.push(CertificateDer::from(der)),
            SectionKind::PrivateKey => keys.push(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))),
            SectionKind::RsaPrivateKey => keys.push(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))),
            SectionKind::EcPrivateKey => keys.push(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))),
            other => return Err(PemError::UnsupportedBlock(format!("{other:?}"))),
        }
    }
    if keys.len() > 1 {
        return Err(PemError::MultipleKeys);
    }
    if chain.is_empty() {
        return Err(PemError::MissingCertificate);
    }
    let Some(key) = keys.pop() else { return Err(PemError::MissingKey) };
    let signing_key =
        any_supported_type(&key).map_err(|e| PemError::UnsupportedKeyType(describe_key_error(&key, &e)))?;
    let key_type = match signing_key.algorithm() {
        SignatureAlgorithm::RSA => KeyType::Rsa,
        SignatureAlgorithm::ECDSA => KeyType::Ecdsa,
        other => return Err(PemError::UnsupportedKeyType(format!("{other:?}").to_lowercase())),
    };
    let certified = CertifiedKey::new(chain.clone(), signing_key.clone());
    match certified.keys_match() {
        Ok(()) => {}
        Err(TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => return Err(PemError::KeyMismatch),
        Err(TlsError::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(PemError::BadCertificate(e.to_string())),
    }
    Ok(PemBundle { chain, key: Arc::new(key), key_type, signing_key })
}

fn describe_key_error(key: &PrivateKeyDer<'_>, err: &TlsError) -> String {
    let form = match key {
        PrivateKeyDer::Pkcs1(_) => "PKCS#1",
        PrivateKeyDer::Sec1(_) => "SEC1",
        PrivateKeyDer::Pkcs8(_) => "PKCS#8",
        _ => "unknown",
    };
    format!("({form} key not usable: {err}; supported: RSA 2048-8192, ECDSA P-256 and P-384)")
}

fn pem_error_text(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => {
            format!("missing \"-----END {}-----\"", String::from_utf8_lossy(end_marker))
        }
        E::IllegalSectionStart { line } => format!("malformed line \"{}\"", String::from_utf8_lossy(line)),
        E::Base64Decode(m) => format!("bad base64 in a PEM block: {m}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["example.com".to_owned()]).unwrap().self_signed(&key).unwrap();
        (key.serialize_pem(), cert.pem())
    }

    #[test]
    fn ecdsa_bundle_in_any_order() {
        let (key, cert) = make(&rcgen::PKCS_ECDSA_P256_SHA256);
        let b = parse_bundle(format!("{key}{cert}").as_bytes()).unwrap();
        assert_eq!(b.key_type, KeyType::Ecdsa);
        assert_eq!(b.chain.len(), 1);
        let b = parse_bundle(format!("{cert}\n{key}").as_bytes()).unwrap();
        assert_eq!(b.key_type, KeyType::Ecdsa);
    }

    #[test]
    fn errors() {
        let (key, cert) = make(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (key2, cert2) = make(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(parse_bundle(key.as_bytes()).unwrap_err(), PemError::MissingCertificate);
        assert_eq!(parse_bundle(cert.as_bytes()).unwrap_err(), PemError::MissingKey);
        assert_eq!(parse_bundle(format!("{key}{key2}{cert}").as_bytes()).unwrap_err(), PemError::MultipleKeys);
        assert_eq!(parse_bundle(format!("{key2}{cert}").as_bytes()).unwrap_err(), PemError::KeyMismatch);
        assert!(parse_bundle(format!("{key2}{cert2}").as_bytes()).is_ok());
        let weird = format!("{key}{cert}-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
        assert_eq!(parse_bundle(weird.as_bytes()).unwrap_err(), PemError::UnsupportedBlock("PUBLIC KEY".into()));
        let truncated = &cert[..cert.len() - 20];
        assert!(matches!(parse_bundle(format!("{key}{truncated}").as_bytes()), Err(PemError::Malformed(_))));
        assert_eq!(parse_bundle(b"hello").unwrap_err(), PemError::MissingCertificate);
        let ed = make(&rcgen::PKCS_ED25519);
        assert!(matches!(parse_bundle(format!("{}{}", ed.0, ed.1).as_bytes()), Err(PemError::UnsupportedKeyType(_))));
    }
}
