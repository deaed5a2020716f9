//! Listeners: bind, accept, serve HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) on the same port, swap
//! configuration in place when a plan changes, drain when a listener goes away or the process stops.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use meshgate_plan::GatewayPlan;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::handler::{ConnContext, handle};
use crate::metrics::{ListenerLabels, Metrics};
use crate::runtime::{ListenerRuntime, ProxySettings, build};
use crate::upstream::Pools;

/// How long removed listeners (and a stopping process) wait for in-flight requests.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);
/// How long a client may take to send a request head (also bounds how long an idle HTTP/1.1 connection is kept).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

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
    settings: ProxySettings,
    metrics: Arc<Metrics>,
    pools: Pools,
    listeners: tokio::sync::Mutex<HashMap<SocketAddr, Running>>,
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
            settings,
            metrics: Arc::new(Metrics::default()),
            pools: Pools::default(),
            listeners: tokio::sync::Mutex::new(HashMap::new()),
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
        for plan in plans {
            let (runtime, warnings) = build(plan, &self.pools, &self.metrics, &self.settings);
            report.warnings.extend(warnings);
            pool_keys.extend(runtime.pool_keys);
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
                        self.drain_timeout,
                    ));
                    tracing::info!(listener = %name, %addr, "listening");
                    running.insert(addr, Running { name, config, stop, task });
                    report.bound.push(addr);
                }
                Err(e) => report.errors.push(format!("{addr}: cannot listen for {}: {e}", listener.name)),
            }
        }
        self.pools.retain(&pool_keys);
        self.ready.store(report.errors.is_empty(), Ordering::Release);
        report
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

fn server_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .initial_stream_window_size(65_536)
        .initial_connection_window_size(1_048_576);
    builder
}

async fn accept_loop(
    tcp: TcpListener,
    config: Arc<ArcSwap<ListenerRuntime>>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(server_builder());
    let open = Arc::new(AtomicUsize::new(0));
    let name = config.load().name.clone();
    let gauge = metrics.connections.get_or_create(&ListenerLabels { listener: name.clone() }).clone();
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
                let _ = stream.set_nodelay(true);
                let ctx = Arc::new(ConnContext { listener: Arc::clone(&config), peer, metrics: Arc::clone(&metrics) });
                let service = service_fn(move |req| handle(req, Arc::clone(&ctx)));
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let watched = graceful.watch(conn);
                let open = Arc::clone(&open);
                let gauge = gauge.clone();
                open.fetch_add(1, Ordering::Relaxed);
                gauge.inc();
                tokio::spawn(async move {
                    let _ = watched.await;
                    open.fetch_sub(1, Ordering::Relaxed);
                    gauge.dec();
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(tcp);
    if tokio::time::timeout(drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(listener = %name, open = open.load(Ordering::Relaxed), "drain timed out; closing connections");
    }
}
