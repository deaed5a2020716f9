//! `meshgate run`: the all-in-one gateway. Loads every resource under `--config`, keeps the ones in force in an
//! in-memory store, lets the control plane's own plan distributor compile every builtin-gateway Dataplane's plan from
//! it and hand the plans over in process, serves them, and applies changes to the files live — the parts of
//! `meshgate cp` + `meshgate dp`, composed in one process.

pub mod admin;
pub mod config;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use anyhow::Context;
use meshgate_api::resource::Scope;
use meshgate_cp::Distributor;
use meshgate_proxy::{Proxy, ProxySettings};
use meshgate_store::{AnyStore, Expect, Key, MemoryStore, ResourceStore};

use admin::{AdminState, Snapshot};
use config::ConfigState;

/// Arguments of `meshgate run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A file or directory of Kuma resources (Universal or Kubernetes form; *.yaml / *.yml, hidden files ignored).
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,
    /// Poll the configuration path instead of using file notifications.
    #[arg(long)]
    pub poll: bool,
    #[command(flatten)]
    pub dp: DataPlaneArgs,
}

/// The data plane's settings, shared by `meshgate run` and `meshgate dp`.
#[derive(Debug, Clone, clap::Args)]
pub struct DataPlaneArgs {
    /// Admin listener address (/ready, /health, /config, /metrics).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
    pub admin: SocketAddr,
    /// Data-plane worker threads (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// How long to wait for in-flight requests when stopping or removing a listener, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub drain_timeout: u64,
    /// How long to wait for an upstream's response head, in milliseconds (Kuma's default route timeout is 15 s).
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 15_000)]
    pub upstream_timeout: u64,
    /// How long a request head may take from its first byte, in milliseconds (Kuma: 500).
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 500)]
    pub header_timeout: u64,
    /// How long a connection with no request in flight is kept, in seconds (Kuma: 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub idle_timeout: u64,
    /// How long a request or response body may stall, in milliseconds (Kuma: 5000).
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 5_000)]
    pub stream_idle_timeout: u64,
    /// How long an upstream connection may take, in milliseconds (Kuma: 5000).
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 5_000)]
    pub connect_timeout: u64,
    /// Accept request header names containing `_` (Kuma rejects them with 400).
    #[arg(long)]
    pub allow_underscore_headers: bool,
    /// The largest request head, in bytes (larger: 431).
    #[arg(long, value_name = "BYTES", default_value_t = 60 * 1024)]
    pub max_header_bytes: usize,
    /// The most request headers (more: 431).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_headers: usize,
    /// The longest request URI, in bytes (longer: 414).
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024)]
    pub max_uri_bytes: usize,
    /// The `server` header of every response.
    #[arg(long, value_name = "NAME", default_value = "meshgate")]
    pub server_name: String,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields` with `message`), for log pipelines.
    Json,
}

/// The format chosen on the command line.
pub(crate) static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

pub(crate) fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = match LOG_FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
        LogFormat::Json => builder.json().with_current_span(false).with_span_list(false).try_init(),
    };
}

impl DataPlaneArgs {
    /// The runtime the data plane runs on: one worker thread per CPU unless `--workers` says otherwise.
    pub fn runtime(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        let workers =
            self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("meshgate-worker")
            .enable_all()
            .build()
            .context("starting the runtime")
    }

    /// The edge timeouts on the command line are the values of each mesh's initial gateway timeout policy (Kuma's
    /// `mesh-gateways-timeout-all-<mesh>`), which MeshTimeout policies override per listener and route.
    pub fn compile_options(&self) -> meshgate_compile::Options {
        meshgate_compile::Options {
            initial_timeouts: meshgate_compile::policies::InitialTimeouts {
                idle: Duration::from_secs(self.idle_timeout.max(1)),
                request_headers: Duration::from_millis(self.header_timeout.max(1)),
                stream_idle: Duration::from_millis(self.stream_idle_timeout.max(1)),
                ..meshgate_compile::policies::InitialTimeouts::default()
            },
        }
    }

    /// Starts the data plane (nothing bound yet) and its admin listener.
    pub async fn start(&self) -> anyhow::Result<(Arc<Proxy>, Arc<AdminState>)> {
        let proxy = Arc::new(Proxy::new(
            ProxySettings {
                server_name: self.server_name.clone(),
                request_timeout: Duration::from_millis(self.upstream_timeout.max(1)),
                header_timeout: Duration::from_millis(self.header_timeout.max(1)),
                idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
                stream_idle_timeout: Duration::from_millis(self.stream_idle_timeout.max(1)),
                connect_timeout: Duration::from_millis(self.connect_timeout.max(1)),
                reject_underscore_headers: !self.allow_underscore_headers,
                max_header_bytes: self.max_header_bytes.max(1024),
                max_headers: self.max_headers.max(1),
                max_uri_bytes: self.max_uri_bytes.max(16),
            },
            Duration::from_secs(self.drain_timeout),
        ));
        let admin_state =
            Arc::new(AdminState { proxy: Arc::clone(&proxy), snapshot: std::sync::RwLock::new(Snapshot::default()) });
        let admin_listener =
            admin::bind(self.admin).await.with_context(|| format!("binding the admin listener on {}", self.admin))?;
        let admin_addr = admin_listener.local_addr().unwrap_or(self.admin);
        tokio::spawn(admin::serve(admin_listener, Arc::clone(&admin_state)));
        tracing::info!(%admin_addr, "admin listening");
        Ok((proxy, admin_state))
    }
}

/// Runs the gateway until SIGTERM or SIGINT.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    args.dp.runtime()?.block_on(serve(args))
}

/// Applies plans to the data plane and records them for the admin endpoints; returns the errors.
pub(crate) async fn apply_plans(
    plans: Vec<meshgate_plan::GatewayPlan>,
    proxy: &Proxy,
    admin: &AdminState,
    rejections: Vec<config::Rejection>,
    resources: usize,
) -> Vec<String> {
    for gw in &plans {
        for d in &gw.diagnostics {
            tracing::warn!(gateway = %gw.dataplane.name, "{}: {}", d.subject, d.message);
        }
    }
    let report = proxy.apply(&plans).await;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    for e in &report.errors {
        tracing::error!("{e}");
    }
    if let Ok(mut snapshot) = admin.snapshot.write() {
        snapshot.plans = plans;
        snapshot.rejections = rejections;
        snapshot.apply_errors = report.errors.clone();
        snapshot.resources = resources;
        snapshot.generation += 1;
    }
    report.errors
}

fn log_problems(problems: &[meshgate_api::load::Problem], previous_kept: bool) {
    for p in problems {
        if previous_kept {
            tracing::warn!("rejected: {p}");
        } else {
            tracing::error!("{p}");
        }
    }
}

/// `meshgate run`'s embedded control plane: the resources in force go into an in-memory store, and the same
/// [`Distributor`] as `meshgate cp` compiles every gateway's plan from it and hands the plans over in process.
struct Embedded {
    store: MemoryStore,
    plans: Distributor,
    feed: tokio::sync::watch::Receiver<Arc<Vec<meshgate_plan::GatewayPlan>>>,
    /// What the data plane runs now.
    applied: Option<Arc<Vec<meshgate_plan::GatewayPlan>>>,
}

impl Embedded {
    /// Stores the resources in force, then starts compiling (so that the first plans are made from all of them).
    async fn start(options: meshgate_compile::Options, state: &ConfigState) -> anyhow::Result<Embedded> {
        let store = MemoryStore::new();
        write(&store, state).await?;
        let plans = Distributor::start_with(AnyStore::Memory(store.clone()), options, state.files.clone());
        let feed = plans.subscribe_all();
        Ok(Embedded { store, plans, feed, applied: None })
    }

    /// Makes the store hold exactly the resources in force, and the plans use the files read with them.
    async fn sync(&self, state: &ConfigState) -> anyhow::Result<()> {
        write(&self.store, state).await?;
        self.plans.set_files(state.files.clone());
        Ok(())
    }

    /// Waits for the next plans; `None` when they are what already runs.
    async fn next(&mut self) -> Option<Arc<Vec<meshgate_plan::GatewayPlan>>> {
        if self.feed.changed().await.is_err() {
            // The distributor is gone (only at shutdown): nothing more will come.
            std::future::pending::<()>().await;
        }
        let plans = self.feed.borrow_and_update().clone();
        if self.applied.as_ref().is_some_and(|a| **a == *plans) {
            return None;
        }
        self.applied = Some(Arc::clone(&plans));
        Some(plans)
    }
}

/// Writes the resources in force to the store and deletes the others (unchanged ones are not rewritten).
async fn write(store: &MemoryStore, state: &ConfigState) -> anyhow::Result<()> {
    let desired: BTreeMap<Key, serde_json::Value> = state
        .resources()
        .iter()
        .map(|r| {
            let mesh = if r.kind().scope() == Scope::Mesh { r.meta.mesh.clone() } else { String::new() };
            (Key::new(r.kind().name(), mesh, r.meta.name.clone()), r.to_universal_json())
        })
        .collect();
    for stored in store.all().await? {
        if !desired.contains_key(&stored.key) {
            store.delete(&stored.key, None).await?;
        }
    }
    for (key, spec) in &desired {
        if store.get(key).await?.is_none_or(|s| &s.spec != spec) {
            store.put(key, spec, Expect::Any).await?;
        }
    }
    Ok(())
}

async fn serve(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut state = ConfigState::default();
    let outcome = state.reload(&args.config);
    if !outcome.problems.is_empty() {
        for p in &outcome.problems {
            eprintln!("{p}");
        }
        eprintln!(
            "Error: the configuration under {} has {} problem(s); nothing was started",
            args.config.display(),
            outcome.problems.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    let options = args.dp.compile_options();
    let (proxy, admin_state) = args.dp.start().await?;

    let mut embedded = Embedded::start(options, &state).await.context("storing the configuration")?;
    let first = tokio::time::timeout(Duration::from_secs(30), embedded.next())
        .await
        .ok()
        .flatten()
        .context("compiling the first plans")?;
    let errors = apply_plans(first.to_vec(), &proxy, &admin_state, state.rejections.clone(), state.len()).await;
    if !errors.is_empty() {
        eprintln!("Error: {}", errors.join("; "));
        proxy.shutdown().await;
        return Ok(ExitCode::FAILURE);
    }
    tracing::info!(resources = state.len(), "configuration applied");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _watcher = watch::watch(&args.config, tx, args.poll).context("watching the configuration")?;

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            changed = rx.recv() => {
                if changed.is_none() {
                    break;
                }
                // Coalesce a burst of events (an editor's save is several).
                tokio::time::sleep(Duration::from_millis(150)).await;
                while rx.try_recv().is_ok() {}
                let outcome = state.reload(&args.config);
                log_problems(&outcome.problems, true);
                if outcome.changed
                    && let Err(e) = embedded.sync(&state).await
                {
                    tracing::error!(error = %format!("{e:#}"), "storing the configuration");
                }
                if let Ok(mut snapshot) = admin_state.snapshot.write() {
                    snapshot.rejections = state.rejections.clone();
                    snapshot.resources = state.len();
                }
            }
            plans = embedded.next() => {
                if let Some(plans) = plans {
                    let errors =
                        apply_plans(plans.to_vec(), &proxy, &admin_state, state.rejections.clone(), state.len()).await;
                    if errors.is_empty() {
                        tracing::info!(resources = state.len(), "configuration applied");
                    }
                }
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("stopping: draining in-flight requests");
    proxy.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
