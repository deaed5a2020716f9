//! HTTPS for the control plane's API and plan streams: a certificate from files, or one generated at first start
//! with its own CA (written out for clients: `--ca-cert`). Plain HTTP only on a loopback address, and only when asked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// TLS options of `meshgate cp`.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// The API's certificate chain (PEM); with --tls-key. Without them, one is generated at first start.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The API certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where a generated CA and certificate are kept (`ca.pem` is what clients pass as --ca-cert).
    #[arg(long, value_name = "DIR", default_value = "meshgate-cp-tls")]
    pub tls_dir: PathBuf,
    /// Extra names (DNS names or IP addresses) for a generated certificate, besides localhost and 127.0.0.1.
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_sans: Vec<String>,
    /// Serve plain HTTP instead (only on a loopback address).
    #[arg(long)]
    pub plain_http: bool,
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

/// A CA and a server certificate signed by it, made once and kept in `dir`.
fn generated(dir: &Path, sans: &[String]) -> anyhow::Result<(String, String)> {
    let (cert_file, key_file, ca_file) = (dir.join("cert.pem"), dir.join("key.pem"), dir.join("ca.pem"));
    if cert_file.exists() && key_file.exists() {
        let cert = std::fs::read_to_string(&cert_file).with_context(|| format!("reading {}", cert_file.display()))?;
        let key = std::fs::read_to_string(&key_file).with_context(|| format!("reading {}", key_file.display()))?;
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "meshgate control plane CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    ca_params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating the CA key")?;
    let ca = ca_params.self_signed(&ca_key).context("signing the CA")?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    names.extend(sans.iter().cloned());
    let mut params = rcgen::CertificateParams::new(names).context("certificate names")?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "meshgate control plane");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating the key")?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).context("signing the certificate")?;
    std::fs::write(&ca_file, ca.pem()).with_context(|| format!("writing {}", ca_file.display()))?;
    std::fs::write(&cert_file, cert.pem()).with_context(|| format!("writing {}", cert_file.display()))?;
    write_private(&key_file, &key.serialize_pem())?;
    tracing::info!(ca = %ca_file.display(), "generated the API's CA and certificate; clients pass the CA as --ca-cert");
    Ok((cert.pem(), key.serialize_pem()))
}

/// The server TLS configuration, or `None` for plain HTTP (refused unless asked for on a loopback address).
pub fn server_config(args: &TlsArgs, api: SocketAddr) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    if args.plain_http {
        if !api.ip().is_loopback() {
            bail!(
                "--plain-http is only allowed on a loopback address (the API would carry tokens and Secrets in clear)"
            );
        }
        return Ok(None);
    }
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => (
            std::fs::read_to_string(c).with_context(|| format!("reading {}", c.display()))?,
            std::fs::read_to_string(k).with_context(|| format!("reading {}", k.display()))?,
        ),
        _ => generated(&args.tls_dir, &args.tls_sans)?,
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<_, _>>().context("the API certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).context("the API certificate's key")?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the API certificate and key")?;
    Ok(Some(Arc::new(config)))
}

/// Serves `app` over TLS until `shutdown` resolves; each connection knows its peer (`ConnectInfo`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an API connection");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let service = match tower::Service::call(&mut make, peer).await {
            Ok(s) => s,
            Err(never) => match never {},
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await;
            let Ok(Ok(tls)) = handshake else {
                tracing::debug!(%peer, "API TLS handshake failed");
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(service);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(e) = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "API connection ended");
            }
        });
    }
}
