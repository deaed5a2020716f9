//! Test harness: backends that echo what they receive, and a `meshgate run` process.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

/// A free TCP port on 127.0.0.1 for a gateway to bind later (bound to check, then released).
///
/// Taken below the kernel's ephemeral range (32768+), from a counter: a port the kernel hands out for `bind(0)` or
/// an outgoing connection — a test backend, a client — could otherwise take it between this check and the
/// gateway's bind, which made tests fail at random as their number grew.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ =
        NEXT.compare_exchange(0, 20_000 + (std::process::id() % 100) as u16 * 100, Ordering::SeqCst, Ordering::SeqCst);
    // Four at a time: some tests also use the next ports up (`port + 1`).
    loop {
        let port = NEXT.fetch_add(4, Ordering::SeqCst);
        if port >= 32_000 {
            return StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        }
        if (port..port + 4).all(|p| StdListener::bind(("127.0.0.1", p)).is_ok()) {
            return port;
        }
    }
}

/// What a backend saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub version: String,
}

/// How a backend answers.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Echo the request as JSON.
    Echo,
    /// Sleep this long, then echo.
    Slow(Duration),
    /// Answer `status` to the first `fail` of every `of` requests (counted per backend), echo the others.
    Flaky { fail: usize, of: usize, status: u16 },
    /// Answer `/health` with 200 while the flag is up and 503 while it is down (not recorded); echo the rest.
    Health(&'static std::sync::atomic::AtomicBool),
}

/// A backend on 127.0.0.1 answering HTTP/1.1 and h2c, echoing requests as JSON: `{"backend", "method", "path",
/// "headers", "body"}`.
#[derive(Clone, Debug)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

/// Serves one backend connection (HTTP/1.1 or h2c, or either inside TLS) with the echo service.
async fn serve_echo<S>(stream: S, name: String, seen: Arc<Mutex<Vec<Seen>>>, behaviour: Behaviour)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let name = name.clone();
        let seen = Arc::clone(&seen);
        async move { Ok::<_, Infallible>(echo(req, &name, &seen, behaviour).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        Self::start_with(name, Behaviour::Echo).await
    }

    pub async fn start_with(name: &str, behaviour: Behaviour) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let backend = Backend { name: name.to_owned(), addr, seen: Arc::clone(&seen) };
        let name = name.to_owned();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let name = name.clone();
                let seen = Arc::clone(&seen);
                tokio::spawn(serve_echo(stream, name, seen, behaviour));
            }
        });
        backend
    }

    /// A backend behind TLS with a self-signed certificate for `hostname`; returns it and the certificate PEM.
    pub async fn start_tls(name: &str, hostname: &str) -> (Backend, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec![hostname.to_owned()]).unwrap().self_signed(&key).unwrap();
        let cert_pem = cert.pem();
        let chain = vec![cert.der().clone()];
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key_der)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let backend = Backend { name: name.to_owned(), addr, seen: Arc::clone(&seen) };
        let name = name.to_owned();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                let name = name.clone();
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    serve_echo(tls, name, seen, Behaviour::Echo).await;
                });
            }
        });
        (backend, cert_pem)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

async fn echo(
    req: Request<Incoming>,
    name: &str,
    seen: &Mutex<Vec<Seen>>,
    behaviour: Behaviour,
) -> Response<Full<Bytes>> {
    if let Behaviour::Slow(d) = behaviour {
        tokio::time::sleep(d).await;
    }
    if let Behaviour::Health(up) = behaviour
        && req.uri().path() == "/health"
    {
        let status = if up.load(std::sync::atomic::Ordering::SeqCst) { 200 } else { 503 };
        return Response::builder().status(status).body(Full::new(Bytes::from_static(b"health"))).unwrap();
    }
    if let Behaviour::Flaky { fail, of, status } = behaviour {
        // Every request leaves one record (a failure here, a success in the echo below), so the count is exact.
        let mut records = seen.lock().unwrap();
        if records.len() % of < fail {
            let path = req.uri().path().to_owned();
            records.push(Seen { path, headers: BTreeMap::new(), body: String::new(), version: String::new() });
            return Response::builder().status(status).body(Full::new(Bytes::from_static(b"flaky"))).unwrap();
        }
    }
    let method = req.method().to_string();
    let path = req.uri().path_and_query().map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let version = format!("{:?}", req.version());
    let mut headers = BTreeMap::new();
    for (k, v) in req.headers() {
        let entry = headers.entry(k.as_str().to_owned()).or_insert_with(String::new);
        if !entry.is_empty() {
            entry.push_str(", ");
        }
        entry.push_str(v.to_str().unwrap_or("<binary>"));
    }
    if let Some(authority) = req.uri().authority() {
        headers.entry(":authority".to_owned()).or_insert_with(|| authority.to_string());
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let record = Seen { path: path.clone(), headers: headers.clone(), body: body.clone(), version };
    seen.lock().unwrap().push(record);
    let json = json!({"backend": name, "method": method, "path": path, "headers": headers, "body": body});
    Response::builder()
        .header("content-type", "application/json")
        .header("x-backend", name)
        .header("connection", "keep-alive")
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap()
}

/// A backend that answers an `Upgrade` request with 101 and then echoes every byte it receives.
pub async fn start_upgrade_echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                    let wants = req.headers().get("upgrade").map(|v| v.to_str().unwrap_or("").to_owned());
                    let Some(protocol) = wants else {
                        return Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"not an upgrade"))));
                    };
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(upgraded) = on.await {
                            let mut io = TokioIo::new(upgraded);
                            let (mut r, mut w) = tokio::io::split(&mut io);
                            let _ = tokio::io::copy(&mut r, &mut w).await;
                        }
                    });
                    Ok(Response::builder()
                        .status(101)
                        .header("connection", "upgrade")
                        .header("upgrade", protocol)
                        .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
                        .body(Full::new(Bytes::new()))
                        .unwrap())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// A key and self-signed certificate for `names`: (PEM bundle key+cert, certificate PEM, certificate DER).
pub fn mint(names: &[&str], alg: &'static rcgen::SignatureAlgorithm) -> (String, String, Vec<u8>) {
    let key =
        if std::ptr::eq(alg, &rcgen::PKCS_RSA_SHA256) { rsa_key() } else { rcgen::KeyPair::generate_for(alg).unwrap() };
    let cert = rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (format!("{}{}", key.serialize_pem(), cert.pem()), cert.pem(), cert.der().to_vec())
}

fn rsa_key() -> rcgen::KeyPair {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    rcgen::KeyPair::try_from(key.to_pkcs8_der().unwrap().as_bytes()).unwrap()
}

/// A Secret holding a PEM bundle.
pub fn secret_yaml(name: &str, pem: &str) -> String {
    use base64::Engine as _;
    format!(
        "---\ntype: Secret\nmesh: default\nname: {name}\ndata: {}\n",
        base64::engine::general_purpose::STANDARD.encode(pem)
    )
}

/// Which signature algorithms a TLS client accepts from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepts {
    Any,
    RsaOnly,
    EcdsaOnly,
}

/// A TLS client connection to the gateway (`port`) with SNI `sni`, trusting `roots` (DER).
pub async fn tls_connect(
    port: u16,
    sni: &str,
    roots: &[&[u8]],
    accepts: Accepts,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut provider = rustls::crypto::ring::default_provider();
    if accepts != Accepts::Any {
        let keep = |s: &rustls::SignatureScheme| {
            let name = format!("{s:?}");
            match accepts {
                Accepts::RsaOnly => name.starts_with("RSA"),
                Accepts::EcdsaOnly => name.starts_with("ECDSA"),
                Accepts::Any => true,
            }
        };
        let mapping: Vec<_> =
            provider.signature_verification_algorithms.mapping.iter().filter(|(s, _)| keep(s)).copied().collect();
        provider.signature_verification_algorithms.mapping = Box::leak(mapping.into_boxed_slice());
    }
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store.add(rustls::pki_types::CertificateDer::from(der.to_vec())).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await
}

/// The server certificate (DER) of a TLS connection.
pub fn peer_cert<T>(stream: &tokio_rustls::client::TlsStream<T>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// Sends one HTTP/1.1 request over a stream and reads the response (status, headers, body). Keeps the connection.
pub async fn raw_request<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
) -> (u16, BTreeMap<String, String>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a response head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A `meshgate run` process.
pub struct Gateway {
    pub child: Child,
    pub admin: SocketAddr,
    log: PathBuf,
}

impl Gateway {
    /// Starts `meshgate run --config dir` and waits until `/ready` answers 200.
    pub async fn start(dir: &Path, extra: &[&str]) -> Gateway {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.with_extension("log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
            .args([
                "run",
                "--config",
                dir.to_str().unwrap(),
                "--admin",
                &admin.to_string(),
                "--drain-timeout",
                "3",
                "--workers",
                "2",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let gw = Gateway { child, admin, log };
        gw.wait_ready().await;
        gw
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let client = client();
        loop {
            if let Ok(r) = client.get(format!("http://{}/ready", self.admin)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "gateway not ready; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn config(&self) -> Value {
        let text = client().get(format!("http://{}/config", self.admin)).send().await.unwrap().text().await.unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub async fn metrics(&self) -> String {
        client().get(format!("http://{}/metrics", self.admin)).send().await.unwrap().text().await.unwrap()
    }

    pub fn terminate(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// An HTTP/2 prior-knowledge (h2c) client.
pub fn h2c_client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A response, simplified.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The echoing backend's JSON, if the body is one.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Which backend answered.
    pub fn backend(&self) -> String {
        self.json()["backend"].as_str().unwrap_or("").to_owned()
    }

    /// A header the backend received.
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_owned)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

/// Sends a request with a Host and extra headers.
pub async fn send(
    client: &reqwest::Client,
    method: &str,
    port: u16,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    send_body(client, method, port, host, path, headers, None).await
}

/// Like [`send`], with a request body if `body` is given.
pub async fn send_body(
    client: &reqwest::Client,
    method: &str,
    port: u16,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&'static str>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(method, format!("http://127.0.0.1:{port}{path}")).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req.body(body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    Reply { status, headers, body }
}

pub async fn get(port: u16, host: &str, path: &str) -> Reply {
    send(&client(), "GET", port, host, path, &[]).await
}

/// Writes a file into the config directory atomically (rename), as editors do.
pub fn write_config(dir: &Path, name: &str, content: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The gateway Dataplane and a MeshGateway with the given listeners (YAML list items, indented by 2).
pub fn gateway_yaml(listeners: &str) -> String {
    format!(
        "type: Dataplane\nmesh: default\nname: gw-1\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    type: BUILTIN\n    tags:\n      kuma.io/service: gw\n---\ntype: MeshGateway\nmesh: default\nname: gw\nselectors:\n- match:\n    kuma.io/service: gw\nconf:\n  listeners:\n{listeners}"
    )
}

/// A Dataplane serving `service` at a backend.
pub fn backend_yaml(name: &str, service: &str, port: u16, extra_tags: &str) -> String {
    format!(
        "---\ntype: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: {port}\n    tags:\n      kuma.io/service: {service}\n{extra_tags}"
    )
}

/// Polls until `check` holds (or panics after `within`).
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
