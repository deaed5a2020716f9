//! Upstream connections: one pool per endpoint (address, HTTP version, TLS settings), kept across plan changes.
//!
//! HTTP/1.1 connections are reused one request at a time: a connection goes back to its pool when the response
//! body has been read to the end. HTTP/2 connections are shared by all requests to the endpoint.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use meshgate_plan::{UpstreamProtocol, UpstreamTls};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The body type sent upstream.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;
/// A boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long an idle HTTP/1.1 connection is kept when no policy says otherwise.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most idle HTTP/1.1 connections kept per endpoint.
const MAX_IDLE: usize = 256;

/// Why an upstream request failed (mapped to a status by the caller).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP or TLS connection could not be made (503).
    #[error("connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The upstream broke the protocol or the connection (502), or the client's body failed (408 or 400).
    #[error("upstream {endpoint}: {reason}")]
    Protocol {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
        /// Set when the cause was the client's request body, not the upstream.
        client: Option<crate::body::ClientFault>,
    },
}

/// TLS settings turned into a connector, with a key identifying equal settings.
#[derive(Clone)]
pub struct TlsSettings {
    key: String,
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

fn native_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            for cert in loaded.certs {
                let _ = store.add(cert);
            }
            Arc::new(store)
        })
        .clone()
}

fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.map_err(|e| format!("invalid PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in PEM".to_owned());
    }
    Ok(certs)
}

/// Verifies the chain but accepts any name (`skipHostnameVerification`).
#[derive(Debug)]
struct SkipNameVerifier(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for SkipNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl TlsSettings {
    /// Builds TLS client settings for an upstream.
    pub fn new(tls: &UpstreamTls, protocol: UpstreamProtocol) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &tls.ca_pem {
            Some(pem) => {
                let mut store = RootCertStore::empty();
                for cert in pem_certs(pem)? {
                    store.add(cert).map_err(|e| format!("invalid CA certificate: {e}"))?;
                }
                Arc::new(store)
            }
            None => native_roots(),
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if tls.skip_hostname_verification {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("invalid CA certificates: {e}"))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(SkipNameVerifier(inner)))
        } else {
            builder.with_root_certificates(roots)
        };
        let mut config = match (&tls.client_cert_pem, &tls.client_key_pem) {
            (Some(cert), Some(key)) => {
                use rustls::pki_types::pem::PemObject;
                let key =
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| format!("invalid client key: {e}"))?;
                builder
                    .with_client_auth_cert(pem_certs(cert)?, key)
                    .map_err(|e| format!("invalid client certificate: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = match protocol {
            UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
        };
        let server_name = match &tls.server_name {
            Some(name) => {
                Some(ServerName::try_from(name.clone()).map_err(|e| format!("invalid server name {name:?}: {e}"))?)
            }
            None => None,
        };
        let key = format!(
            "{:?}|{:?}|{:?}|{:?}|{}|{protocol:?}",
            tls.server_name,
            tls.ca_pem,
            tls.client_cert_pem,
            tls.client_key_pem.as_ref().map(|k| k.len()),
            tls.skip_hostname_verification
        );
        Ok(Self { key, connector: TlsConnector::from(Arc::new(config)), server_name })
    }
}

/// A TCP or TLS stream to an upstream.
pub enum UpstreamStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl fmt::Debug for UpstreamStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpstreamStream::Plain(_) => "UpstreamStream::Plain",
            UpstreamStream::Tls(_) => "UpstreamStream::Tls",
        })
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match &mut *self {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match &mut *self {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut *self {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut *self {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut *self {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The identity of an endpoint pool.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// Host (IP or name).
    pub host: String,
    /// Port.
    pub port: u16,
    /// HTTP version.
    pub protocol: UpstreamProtocol,
    /// TLS settings key (empty: plain TCP).
    pub tls: String,
    /// How long connecting may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How long an idle HTTP/1.1 connection is kept, in milliseconds (0: the default).
    pub idle_timeout_ms: u64,
    /// How long a connection is used at most, in milliseconds (0: no limit; MeshTimeout `maxConnectionDuration`).
    pub max_connection_ms: u64,
}

/// Connections to one endpoint.
pub struct EndpointPool {
    key: PoolKey,
    authority: String,
    /// Whether `authority` goes into a JSON string as it is (checked once, not on every access-log line).
    authority_plain: bool,
    tls: Option<TlsSettings>,
    connect_timeout: Duration,
    /// Idle HTTP/1.1 connections (lock-free: taken and returned by every request).
    idle: ArrayQueue<(http1::SendRequest<UpstreamBody>, Instant, Instant)>,
    /// The shared HTTP/2 connection (read lock-free by every request).
    shared_h2: ArcSwapOption<http2::SendRequest<UpstreamBody>>,
    /// When the shared HTTP/2 connection was made.
    h2_created: std::sync::Mutex<Option<Instant>>,
    /// Held only while an HTTP/2 connection is being made, so that one is made at a time.
    h2_connecting: tokio::sync::Mutex<()>,
}

impl fmt::Debug for EndpointPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointPool").field("key", &self.key).finish_non_exhaustive()
    }
}

impl EndpointPool {
    /// A pool (no connection is made until a request needs one).
    pub fn new(key: PoolKey, tls: Option<TlsSettings>, connect_timeout: Duration) -> Self {
        let authority = if key.host.contains(':') {
            format!("[{}]:{}", key.host, key.port)
        } else {
            format!("{}:{}", key.host, key.port)
        };
        Self {
            key,
            authority_plain: crate::accesslog::json_plain(&authority),
            authority,
            tls,
            connect_timeout,
            idle: ArrayQueue::new(MAX_IDLE),
            shared_h2: ArcSwapOption::empty(),
            h2_created: std::sync::Mutex::new(None),
            h2_connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// `host:port` of the endpoint.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Whether [`Self::authority`] needs no JSON escape.
    pub fn authority_plain(&self) -> bool {
        self.authority_plain
    }

    /// The endpoint's host.
    pub fn host(&self) -> &str {
        &self.key.host
    }

    /// Whether this pool speaks HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.key.protocol == UpstreamProtocol::Http2
    }

    /// Whether requests go over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A new connection to the endpoint (TCP, or TLS when the cluster originates TLS), for TCP proxying and
    /// upgraded HTTP connections.
    pub async fn connect_stream(&self) -> Result<UpstreamStream, UpstreamError> {
        self.connect().await
    }

    async fn connect(&self) -> Result<UpstreamStream, UpstreamError> {
        let err = |reason: String| UpstreamError::Connect { endpoint: self.authority.clone(), reason };
        let tcp =
            tokio::time::timeout(self.connect_timeout, TcpStream::connect((self.key.host.as_str(), self.key.port)))
                .await
                .map_err(|_| err(format!("timed out after {:?}", self.connect_timeout)))?
                .map_err(|e| err(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else { return Ok(UpstreamStream::Plain(tcp)) };
        let name = match &tls.server_name {
            Some(n) => n.clone(),
            None => {
                ServerName::try_from(self.key.host.clone()).map_err(|e| err(format!("invalid server name: {e}")))?
            }
        };
        let stream = tokio::time::timeout(self.connect_timeout, tls.connector.connect(name, tcp))
            .await
            .map_err(|_| err("TLS handshake timed out".to_owned()))?
            .map_err(|e| err(format!("TLS handshake: {e}")))?;
        Ok(UpstreamStream::Tls(Box::new(stream)))
    }

    /// Sends a request. For HTTP/1.1 the URI must be in origin form and Host set; for HTTP/2 the URI must be
    /// absolute (its authority becomes `:authority`).
    pub async fn send(self: &Arc<Self>, req: Request<UpstreamBody>) -> Result<Response<PooledBody>, UpstreamError> {
        if self.is_http2() { self.send_h2(req).await } else { self.send_h1(req).await }
    }

    fn protocol_error(&self, e: &hyper::Error) -> UpstreamError {
        let reason = std::error::Error::source(e).map_or_else(|| e.to_string(), |s| format!("{e}: {s}"));
        let client = crate::body::client_fault(e);
        UpstreamError::Protocol { endpoint: self.authority.clone(), reason, client }
    }

    async fn send_h1(self: &Arc<Self>, req: Request<UpstreamBody>) -> Result<Response<PooledBody>, UpstreamError> {
        let reused = self.checkout().await;
        let (mut sender, created) = match reused {
            Some(s) => s,
            // Boxed: connecting is the rare path, and its state would otherwise enlarge every request's future.
            None => (Box::pin(self.open_h1()).await?, Instant::now()),
        };
        let response = sender.send_request(req).await.map_err(|e| self.protocol_error(&e))?;
        let pool = Arc::clone(self);
        Ok(response.map(|body| PooledBody { inner: body, return_to: Some((pool, sender, created)) }))
    }

    async fn open_h1(&self) -> Result<http1::SendRequest<UpstreamBody>, UpstreamError> {
        let stream = self.connect().await?;
        let (sender, conn) = http1::Builder::new()
            .handshake::<_, UpstreamBody>(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol_error(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// An idle connection, if one is usable. A connection is checked in as soon as its last response body ends,
    /// possibly a moment before hyper marks it ready again, so readiness is awaited briefly.
    async fn checkout(&self) -> Option<(http1::SendRequest<UpstreamBody>, Instant)> {
        loop {
            let (mut sender, since, created) = self.idle.pop()?;
            if self.too_old(created) {
                continue;
            }
            let limit = if self.key.idle_timeout_ms > 0 {
                Duration::from_millis(self.key.idle_timeout_ms)
            } else {
                IDLE_TIMEOUT
            };
            if sender.is_closed() || since.elapsed() >= limit {
                continue;
            }
            if sender.is_ready() {
                return Some((sender, created));
            }
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_millis(50), sender.ready()).await {
                return Some((sender, created));
            }
        }
    }

    /// Whether a connection made at `created` has been used as long as it may.
    fn too_old(&self, created: Instant) -> bool {
        self.key.max_connection_ms > 0 && created.elapsed() >= Duration::from_millis(self.key.max_connection_ms)
    }

    fn checkin(&self, sender: http1::SendRequest<UpstreamBody>, created: Instant) {
        if sender.is_closed() || self.too_old(created) {
            return;
        }
        // A full pool drops the connection.
        let _ = self.idle.push((sender, Instant::now(), created));
    }

    /// Whether the shared HTTP/2 connection has been used as long as it may (then a new one replaces it; the old
    /// one ends when its streams do).
    fn h2_expired(&self) -> bool {
        self.key.max_connection_ms > 0
            && self.h2_created.lock().ok().and_then(|c| *c).is_some_and(|created| self.too_old(created))
    }

    async fn h2_sender(&self) -> Result<http2::SendRequest<UpstreamBody>, UpstreamError> {
        if let Some(s) = self.shared_h2.load().as_ref().filter(|s| !s.is_closed())
            && !self.h2_expired()
        {
            return Ok(http2::SendRequest::clone(s));
        }
        let _connecting = self.h2_connecting.lock().await;
        // Another request may have connected while this one waited.
        if let Some(s) = self.shared_h2.load().as_ref().filter(|s| !s.is_closed())
            && !self.h2_expired()
        {
            return Ok(http2::SendRequest::clone(s));
        }
        let stream = self.connect().await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake::<_, UpstreamBody>(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol_error(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.shared_h2.store(Some(Arc::new(sender.clone())));
        if let Ok(mut created) = self.h2_created.lock() {
            *created = Some(Instant::now());
        }
        Ok(sender)
    }

    async fn send_h2(self: &Arc<Self>, req: Request<UpstreamBody>) -> Result<Response<PooledBody>, UpstreamError> {
        let mut sender = Box::pin(self.h2_sender()).await?;
        sender.ready().await.map_err(|e| self.protocol_error(&e))?;
        let response = sender.send_request(req).await.map_err(|e| self.protocol_error(&e))?;
        Ok(response.map(|body| PooledBody { inner: body, return_to: None }))
    }
}

/// A response body that returns its HTTP/1.1 connection to the pool once read to the end.
pub struct PooledBody {
    inner: Incoming,
    return_to: Option<(Arc<EndpointPool>, http1::SendRequest<UpstreamBody>, Instant)>,
}

impl fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBody").finish_non_exhaustive()
    }
}

impl PooledBody {
    fn finish(&mut self) {
        if let Some((pool, sender, created)) = self.return_to.take() {
            pool.checkin(sender, created);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Err(_))) => self.return_to = None,
            _ => {
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Endpoint pools shared by every plan: a pool survives a plan change when its endpoint does.
#[derive(Debug, Default)]
pub struct Pools {
    pools: Mutex<HashMap<PoolKey, Arc<EndpointPool>>>,
}

impl Pools {
    /// The pool for an endpoint, reusing the current one when there is one.
    pub fn get(&self, key: PoolKey, tls: Option<TlsSettings>, connect_timeout: Duration) -> Arc<EndpointPool> {
        let Ok(mut pools) = self.pools.lock() else {
            return Arc::new(EndpointPool::new(key, tls, connect_timeout));
        };
        pools.entry(key.clone()).or_insert_with(|| Arc::new(EndpointPool::new(key, tls, connect_timeout))).clone()
    }

    /// Forgets pools no plan uses any more (their connections close as requests finish).
    pub fn retain(&self, keep: &std::collections::HashSet<PoolKey>) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.retain(|k, _| keep.contains(k));
        }
    }
}

impl TlsSettings {
    /// The key identifying these settings (equal settings share pools).
    pub fn key(&self) -> &str {
        &self.key
    }
}
