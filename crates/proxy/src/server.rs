//! Listeners: bind, accept, serve HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) on the same port, swap
//! configuration in place when a plan changes, drain when a listener goes away or the process stops.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use meshgate_plan::GatewayPlan;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::guard::{GuardState, Sweeper};
use crate::handler::{ConnContext, handle};
use crate::metrics::{ListenerLabels, Metrics};
use crate::runtime::{ListenerKind, ListenerRuntime, ProxySettings, build};
use crate::sni;

/// How long removed listeners (and a stopping process) wait for in-flight requests.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// What applying a plan did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Addresses newly bound.
    pub bound: Vec<SocketAddr>,
    /// Addresses whose listener was removed (draining).
    pub stopped: Vec<SocketAddr>,
    /// Addresses whose configuration was swapped in place.
    pub updated: Vec<SocketAddr>,
    /// Listeners that could not be started.
    pub errors: Vec<String>,
    /// Routes or clusters left out of the running configuration.
    pub warnings: Vec<String>,
}

struct Running {
    name: String,
    config: Arc<ArcSwap<ListenerRuntime>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The data plane: every listener of every gateway plan it is given.
pub struct Proxy {
    settings: Arc<ProxySettings>,
    metrics: Arc<Metrics>,
    shared: crate::runtime::Shared,
    sweeper: Sweeper,
    listeners: tokio::sync::Mutex<HashMap<SocketAddr, Running>>,
    /// The plans applied last (for `explain`).
    plans: ArcSwap<Vec<GatewayPlan>>,
    ready: AtomicBool,
    draining: AtomicBool,
    drain_timeout: Duration,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("ready", &self.is_ready()).finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy with no listeners yet.
    pub fn new(settings: ProxySettings, drain_timeout: Duration) -> Self {
        Self {
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::default()),
            shared: crate::runtime::Shared::default(),
            sweeper: Sweeper::new(),
            listeners: tokio::sync::Mutex::new(HashMap::new()),
            plans: ArcSwap::default(),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            drain_timeout,
        }
    }

    /// Metrics of the data plane.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether a plan is applied, every listener is bound, and the proxy is not draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    /// The addresses listening now.
    pub async fn listening(&self) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self.listeners.lock().await.keys().copied().collect();
        addrs.sort();
        addrs
    }

    /// Makes the running listeners those of `plans`: binds new ones, swaps the configuration of unchanged ones in
    /// place (their connections stay), drains removed ones.
    pub async fn apply(&self, plans: &[GatewayPlan]) -> ApplyReport {
        let mut report = ApplyReport::default();
        let mut desired: HashMap<SocketAddr, Arc<ListenerRuntime>> = HashMap::new();
        let mut pool_keys = HashSet::new();
        let mut sinks = HashSet::new();
        let mut tracers = HashSet::new();
        let mut endpoint_states = HashSet::new();
        let mut checkers = Vec::new();
        for plan in plans {
            let (runtime, warnings) = build(plan, &self.shared, &self.metrics, &self.settings);
            report.warnings.extend(warnings);
            pool_keys.extend(runtime.pool_keys);
            sinks.extend(runtime.sinks);
            tracers.extend(runtime.tracers);
            endpoint_states.extend(runtime.endpoint_states);
            checkers.extend(runtime.checkers);
            let ip: IpAddr = match plan.address.parse() {
                Ok(ip) => ip,
                Err(_) => {
                    if !runtime.listeners.is_empty() {
                        report.errors.push(format!(
                            "Dataplane {}/{}: networking.address {:?} is not an IP address to bind to",
                            plan.dataplane.mesh, plan.dataplane.name, plan.address
                        ));
                    }
                    continue;
                }
            };
            for (port, listener) in runtime.listeners {
                let addr = SocketAddr::new(ip, port);
                if let Some(existing) = desired.get(&addr) {
                    report.errors.push(format!(
                        "{addr}: listener {} conflicts with {} on the same address; {} is not served",
                        listener.name, existing.name, listener.name
                    ));
                    continue;
                }
                desired.insert(addr, listener);
            }
        }

        let mut running = self.listeners.lock().await;
        let removed: Vec<SocketAddr> = running.keys().filter(|a| !desired.contains_key(a)).copied().collect();
        for addr in removed {
            if let Some(r) = running.remove(&addr) {
                let _ = r.stop.send(true);
                tracing::info!(listener = %r.name, %addr, "listener removed; draining");
                report.stopped.push(addr);
            }
        }
        for (addr, listener) in desired {
            if let Some(r) = running.get_mut(&addr) {
                r.name = listener.name.clone();
                r.config.store(listener);
                report.updated.push(addr);
                continue;
            }
            match bind(addr) {
                Ok(tcp) => {
                    let name = listener.name.clone();
                    let config = Arc::new(ArcSwap::new(listener));
                    let (stop, stop_rx) = watch::channel(false);
                    let task = tokio::spawn(accept_loop(
                        tcp,
                        Arc::clone(&config),
                        stop_rx,
                        Arc::clone(&self.metrics),
                        self.sweeper.clone(),
                        self.drain_timeout,
                    ));
                    tracing::info!(listener = %name, %addr, "listening");
                    running.insert(addr, Running { name, config, stop, task });
                    report.bound.push(addr);
                }
                Err(e) => report.errors.push(format!("{addr}: cannot listen for {}: {e}", listener.name)),
            }
        }
        self.plans.store(Arc::new(plans.to_vec()));
        self.shared.pools.retain(&pool_keys);
        self.shared.sinks.retain(&sinks);
        self.shared.tracers.retain(&tracers);
        self.shared.health.sync(&endpoint_states, &checkers);
        self.ready.store(report.errors.is_empty(), Ordering::Release);
        report
    }

    /// Why a described request would go where it goes, on the listeners running now (their endpoint health
    /// included): the same matching functions that serve traffic.
    pub async fn explain(&self, probe: &crate::explain::Probe) -> Result<crate::explain::Explanation, String> {
        let plans = self.plans.load_full();
        let running = self.listeners.lock().await;
        crate::explain::live(&plans, probe, |plan, port| {
            let ip: IpAddr = plan.address.parse().ok()?;
            running.get(&SocketAddr::new(ip, port)).map(|r| r.config.load_full())
        })
    }

    /// What the running plans serve, with live request counts and endpoint states (the dashboard's data).
    pub fn overview(&self) -> crate::overview::Overview {
        let plans = self.plans.load_full();
        let live = crate::overview::Live { metrics: &self.metrics, health: &self.shared.health };
        crate::overview::overview(&plans, Some(live))
    }

    /// Stops accepting everywhere and waits (up to the drain timeout) for in-flight requests.
    pub async fn shutdown(&self) {
        self.draining.store(true, Ordering::Release);
        let running: Vec<Running> = self.listeners.lock().await.drain().map(|(_, r)| r).collect();
        for r in &running {
            let _ = r.stop.send(true);
        }
        for r in running {
            let _ = tokio::time::timeout(self.drain_timeout + Duration::from_secs(1), r.task).await;
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The HTTP/1.1 and HTTP/2 servers of a listener. The protocol is known before serving (ALPN, or the first bytes
/// of a cleartext connection), so no per-read sniffing layer sits under hyper.
struct Servers {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

fn servers(settings: &ProxySettings) -> Servers {
    let mut h1 = http1::Builder::new();
    // The head and idle timeouts are the connection guard's (hyper's timer would start before the first byte).
    h1.timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .max_header_size(settings.max_header_bytes);
    // hyper parses up to 100 headers into a stack array; any explicit limit moves that array to the heap (an
    // allocation per request), so the limit is set only when it is not hyper's own.
    if settings.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        h1.max_headers(settings.max_headers);
    }
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .initial_stream_window_size(65_536)
        .initial_connection_window_size(1_048_576)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024)
        .enable_connect_protocol();
    Servers { h1, h2 }
}

/// hyper's HTTP/1.1 header count limit when none is set.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Which HTTP a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Http {
    H1,
    H2,
}

/// Reads (without consuming) the start of a cleartext connection: the HTTP/2 preface means prior-knowledge h2c.
async fn sniff_http(stream: &TcpStream) -> Option<Http> {
    let mut buf = [0u8; 24];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(Http::H1);
        }
        if n == H2_PREFACE.len() {
            return Some(Http::H2);
        }
        // A prefix of the preface: wait for more (rare; a client writes the preface in one segment).
        stream.readable().await.ok()?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection task needs.
struct ConnShared {
    config: Arc<ArcSwap<ListenerRuntime>>,
    metrics: Arc<Metrics>,
    servers: Servers,
    sweeper: Sweeper,
    /// Fires when the listener stops for good (after draining): TCP relays end then.
    hard_stop: watch::Receiver<bool>,
}

/// A fatal TLS alert `unrecognized_name` (RFC 6066 §3), sent as the first record when no listener serves the SNI.
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112];

/// How long a TLS handshake (or a passthrough ClientHello) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[allow(clippy::too_many_arguments)]
async fn serve_http<I>(
    io: I,
    http: Http,
    guard: Arc<GuardState>,
    peer: SocketAddr,
    sni: Option<String>,
    shared: &ConnShared,
    drain: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    guard.set_http2(http == Http::H2);
    let ctx = Arc::new(ConnContext {
        listener: Arc::clone(&shared.config),
        peer,
        peer_ip: HeaderValue::try_from(peer.ip().to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown")),
        metrics: Arc::clone(&shared.metrics),
        guard,
        sni,
    });
    let service = service_fn(move |req| handle(req, Arc::clone(&ctx)));
    // Each protocol's connection state is boxed on its own: the task's size is the largest state it may ever hold,
    // and an HTTP/1.1 connection should not pay for HTTP/2's codec or a TLS handshake (memory per connection).
    match http {
        Http::H1 => {
            let conn = shared.servers.h1.serve_connection(TokioIo::new(io), service).with_upgrades();
            Box::pin(until_drained(conn, drain)).await;
        }
        Http::H2 => {
            Box::pin(until_drained(shared.servers.h2.serve_connection(TokioIo::new(io), service), drain)).await;
        }
    }
}

/// Relays a TCP or TLS connection to its route's backend. Boxed, so that a connection task is only as large as
/// the protocol it serves needs.
fn relay<'a, S>(
    stream: S,
    tcp: Option<&'a crate::runtime::TcpRuntime>,
    shared: &'a ConnShared,
    name: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'a,
{
    Box::pin(async move {
        let Some(tcp) = tcp else { return };
        let mut hard_stop = shared.hard_stop.clone();
        tokio::select! {
            result = crate::tcp::proxy(stream, tcp, shared.config.load().max_connect_attempts) => {
                if let Err(e) = result {
                    tracing::debug!(listener = %name, error = %e, "TCP relay ended");
                }
            }
            _ = hard_stop.changed() => {}
        }
    })
}

async fn peek_sni(stream: &TcpStream) -> Option<Option<String>> {
    let mut buf = vec![0u8; sni::MAX_HELLO];
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        match sni::parse(&buf[..n]) {
            sni::ClientHello::Complete(name) => return Some(name),
            sni::ClientHello::NotTls => return None,
            sni::ClientHello::NeedMore(_) if n >= sni::MAX_HELLO => return None,
            sni::ClientHello::NeedMore(_) => {
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// A served connection that can be asked to finish what it has in flight and close (HTTP/1.1: `Connection: close`
/// on the next response or a close when idle; HTTP/2: GOAWAY).
trait Drainable: std::future::Future {
    fn drain(self: std::pin::Pin<&mut Self>);
}

impl<I, S, B> Drainable for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn drain(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> Drainable for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn drain(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Serves a connection; when the listener drains, lets it finish gracefully.
async fn until_drained<C: Drainable>(conn: C, mut drain: watch::Receiver<bool>) {
    let mut conn = std::pin::pin!(conn);
    if !*drain.borrow_and_update() {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = drain.changed() => {}
        }
    }
    conn.as_mut().drain();
    let _ = conn.await;
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<ConnShared>, drain: watch::Receiver<bool>) {
    let runtime = shared.config.load_full();
    let settings = Arc::clone(&runtime.settings);
    match &runtime.kind {
        ListenerKind::Http { .. } => {
            let io = shared.sweeper.guard(stream, false, settings.header_timeout, settings.idle_timeout);
            let Ok(Some(http)) = tokio::time::timeout(settings.idle_timeout, sniff_http(io.get_ref())).await else {
                return;
            };
            let guard = io.state();
            serve_http(io, http, guard, peer, None, &shared, drain).await;
        }
        ListenerKind::Https { tls, chains } => {
            let io = shared.sweeper.guard(stream, true, settings.header_timeout, settings.idle_timeout);
            let guard = io.state();
            let handshake = Box::pin(async {
                let mut start =
                    tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await.ok()?;
                let sni = start.client_hello().server_name().map(str::to_ascii_lowercase);
                if chains.find(sni.as_deref()).is_none() {
                    let _ = start.io.write_all(&UNRECOGNIZED_NAME).await;
                    return None;
                }
                start.into_stream(Arc::clone(tls)).await.ok().map(|stream| (stream, sni))
            });
            let Ok(Some((tls_stream, sni))) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await else { return };
            let http = if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") { Http::H2 } else { Http::H1 };
            Box::pin(serve_http(tls_stream, http, guard, peer, sni, &shared, drain)).await;
        }
        ListenerKind::Tcp { tcp } => relay(stream, tcp.as_ref(), &shared, &runtime.name).await,
        ListenerKind::Tls { terminate, chains } => {
            let Some(sni) = peek_sni(&stream).await else { return };
            let Some(chain) = chains.find(sni.as_deref()) else {
                let mut stream = stream;
                let _ = stream.write_all(&UNRECOGNIZED_NAME).await;
                return;
            };
            if chain.passthrough {
                relay(stream, chain.tcp.as_ref(), &shared, &runtime.name).await;
                return;
            }
            let Some(config) = terminate else { return };
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
            let accept = Box::pin(acceptor.accept(stream));
            let Ok(Ok(tls_stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await else {
                return;
            };
            relay(tls_stream, chain.tcp.as_ref(), &shared, &runtime.name).await;
        }
    }
}

async fn accept_loop(
    tcp: TcpListener,
    config: Arc<ArcSwap<ListenerRuntime>>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    sweeper: Sweeper,
    drain_timeout: Duration,
) {
    let (drain_tx, drain_rx) = watch::channel(false);
    let open = Arc::new(AtomicUsize::new(0));
    let name = config.load().name.clone();
    let gauge = metrics.connections.get_or_create(&ListenerLabels { listener: name.clone() }).clone();
    let (hard_stop_tx, hard_stop) = watch::channel(false);
    let servers = servers(&config.load().settings);
    let shared = Arc::new(ConnShared {
        config: Arc::clone(&config),
        metrics: Arc::clone(&metrics),
        servers,
        sweeper,
        hard_stop,
    });
    loop {
        tokio::select! {
            accepted = tcp.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(listener = %name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Over the port's connection limit or its connection rate (MeshRateLimit `local.tcp`): accepted,
                // then closed at once (as Envoy does).
                let current = config.load();
                let limit = current.connection_limit;
                if limit > 0 && open.load(Ordering::Acquire) >= limit as usize {
                    drop(stream);
                    continue;
                }
                if current.connection_rate.as_ref().is_some_and(|bucket| !bucket.try_take()) {
                    drop(stream);
                    continue;
                }
                drop(current);
                let _ = stream.set_nodelay(true);
                let open = Arc::clone(&open);
                let gauge = gauge.clone();
                open.fetch_add(1, Ordering::AcqRel);
                gauge.inc();
                let shared = Arc::clone(&shared);
                let drain = drain_rx.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, shared, drain).await;
                    open.fetch_sub(1, Ordering::AcqRel);
                    gauge.dec();
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(tcp);
    let _ = drain_tx.send(true);
    let drained = async {
        while open.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(drain_timeout, drained).await.is_err() {
        tracing::warn!(listener = %name, open = open.load(Ordering::Relaxed), "drain timed out; closing connections");
    }
    let _ = hard_stop_tx.send(true);
}
