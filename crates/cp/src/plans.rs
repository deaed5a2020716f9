//! Plan distribution: the control plane compiles every builtin gateway's plan from the store whenever the store
//! changes, and pushes each gateway its own plan over a long-lived HTTP stream.
//!
//! | Request | Answer |
//! |---|---|
//! | `GET /meshgate/v1/plans/{mesh}/{dataplane}[?known=V]` | a stream of JSON lines `{"version", "plan"}`: the current plan (unless it is `V`), then each new one; an empty line every [`HEARTBEAT`] |
//! | `POST /meshgate/v1/plans/{mesh}/{dataplane}/ack` `{"version"}` | the gateway applied that version |
//! | `GET /meshgate/v1/gateways` | every gateway known: the version sent, the version acknowledged, open streams |
//! | `GET /meshgate/v1/meshgateways/{mesh}/{name}/plans` | the plans of the Dataplanes bound to a MeshGateway (private keys redacted), with their status |
//!
//! A plan's version is a hash of its JSON: an unchanged plan keeps its version and is not sent again, and every
//! replica of the control plane gives the same plan the same version.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use meshgate_api::UnknownFields;
use meshgate_api::load::decode_text;
use meshgate_plan::{GatewayPlan, ObjectRef};
use meshgate_store::{AnyStore, Event, ResourceStore};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

/// How often an idle stream carries an empty line, so that a gateway notices a dead control plane.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long changes are gathered before plans are rebuilt (a `meshgate apply` is a burst of writes).
const SETTLE: Duration = Duration::from_millis(50);

/// One plan as sent: its version and the JSON line.
#[derive(Debug)]
struct Versioned {
    version: String,
    line: Bytes,
    /// The plan, for `inspect` (shown redacted).
    plan: Arc<GatewayPlan>,
}

/// What one gateway's line on the stream holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlanMessage {
    /// The plan's version.
    pub version: String,
    /// The plan.
    pub plan: GatewayPlan,
}

#[derive(Debug)]
struct Gateway {
    plan: watch::Sender<Option<Arc<Versioned>>>,
    acked: Option<String>,
    acked_at: Option<String>,
    streams: usize,
}

impl Gateway {
    fn new() -> Gateway {
        Gateway { plan: watch::channel(None).0, acked: None, acked_at: None, streams: 0 }
    }
}

/// Computes plans and hands them to the gateways' streams; clones share it.
#[derive(Debug, Clone)]
pub struct Distributor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: AnyStore,
    options: meshgate_compile::Options,
    gateways: Mutex<BTreeMap<ObjectRef, Gateway>>,
    /// Contents of the files resources name (`DataSource` `file:`), when the plans are made beside them.
    files: Mutex<meshgate_compile::Files>,
    /// Every gateway's current plan, for a data plane in the same process (`meshgate run`).
    all: watch::Sender<Arc<Vec<GatewayPlan>>>,
    /// Asks for a rebuild without a store change (the files changed).
    refresh: tokio::sync::Notify,
    /// The first plans were published (even none: a process waiting for them must hear it).
    published: std::sync::atomic::AtomicBool,
    /// Resources decoded at the last rebuild, by key, with the stored version they were decoded from (a rebuild
    /// decodes only what changed).
    decoded: Mutex<std::collections::HashMap<meshgate_store::Key, (u64, Vec<meshgate_api::resource::Resource>)>>,
}

/// FNV-1a: a stable 64-bit hash of a plan's JSON, the same in every process.
fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Distributor {
    /// Starts computing plans from `store`, now and after every change.
    pub fn start(store: AnyStore, options: meshgate_compile::Options) -> Distributor {
        Distributor::start_with(store, options, meshgate_compile::Files::new())
    }

    /// Like [`Distributor::start`], with the contents of the files resources name (`meshgate run` reads them).
    pub fn start_with(
        store: AnyStore,
        options: meshgate_compile::Options,
        files: meshgate_compile::Files,
    ) -> Distributor {
        let d = Distributor {
            inner: Arc::new(Inner {
                store,
                options,
                gateways: Mutex::new(BTreeMap::new()),
                files: Mutex::new(files),
                all: watch::channel(Arc::new(Vec::new())).0,
                refresh: tokio::sync::Notify::new(),
                published: std::sync::atomic::AtomicBool::new(false),
                decoded: Mutex::default(),
            }),
        };
        let worker = d.clone();
        let feed = d.inner.store.watch();
        tokio::spawn(async move { worker.run(feed).await });
        d
    }

    fn gateways(&self) -> MutexGuard<'_, BTreeMap<ObjectRef, Gateway>> {
        self.inner.gateways.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every gateway's plan, each time one changes: the in-process plan channel of `meshgate run`.
    pub fn subscribe_all(&self) -> watch::Receiver<Arc<Vec<GatewayPlan>>> {
        self.inner.all.subscribe()
    }

    /// Replaces the file contents plans are made with, and rebuilds the plans.
    pub fn set_files(&self, files: meshgate_compile::Files) {
        *self.inner.files.lock().unwrap_or_else(PoisonError::into_inner) = files;
        self.inner.refresh.notify_one();
    }

    async fn run(self, mut feed: broadcast::Receiver<Event>) {
        loop {
            self.rebuild().await;
            // Wait for a change (a lagging feed or a resync means: rebuild from everything, which is what we do).
            tokio::select! {
                event = feed.recv() => match event {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = self.inner.refresh.notified() => {}
            }
            // Rebuild once the writes stop (a quiet SETTLE), but at least every second during a long burst.
            let burst = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(SETTLE).await;
                let mut more = false;
                while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = feed.try_recv() {
                    more = true;
                }
                if !more || burst.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
        }
    }

    /// Compiles every gateway's plan from the store and publishes the ones that changed.
    async fn rebuild(&self) {
        let started = std::time::Instant::now();
        let stored = match self.inner.store.all().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "reading the store to build plans");
                return;
            }
        };
        let mut resources = Vec::with_capacity(stored.len());
        {
            let mut cache = self.inner.decoded.lock().unwrap_or_else(PoisonError::into_inner);
            let mut next = std::collections::HashMap::with_capacity(stored.len());
            for s in stored {
                let decoded = match cache.remove(&s.key) {
                    Some((version, decoded)) if version == s.version => decoded,
                    _ => {
                        let source = std::path::PathBuf::from(format!("store:{}", s.key));
                        let outcome = decode_text(&source, &s.spec.to_string(), UnknownFields::Ignore);
                        for p in &outcome.problems {
                            tracing::warn!("stored resource left out of plans: {p}");
                        }
                        outcome.loaded.into_iter().map(|l| l.decoded.resource).collect()
                    }
                };
                resources.extend(decoded.iter().cloned());
                next.insert(s.key, (s.version, decoded));
            }
            *cache = next;
        }
        let decoded = started.elapsed();
        let files = self.inner.files.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let plan = meshgate_compile::compile_with(&resources, &files, &self.inner.options);
        let compiled = started.elapsed();
        let mut gateways = self.gateways();
        let mut changed = false;
        let everything = plan.gateways.clone();
        for gw in plan.gateways {
            let key = gw.dataplane.clone();
            let json = match serde_json::to_vec(&gw) {
                Ok(json) => json,
                Err(e) => {
                    tracing::error!(error = %e, "serializing a plan");
                    continue;
                }
            };
            let version = fingerprint(&json);
            let entry = gateways.entry(key.clone()).or_insert_with(Gateway::new);
            if entry.plan.borrow().as_ref().is_some_and(|p| p.version == version) {
                continue;
            }
            // A `PlanMessage` as JSON, without serializing the plan a second time.
            let mut line = Vec::with_capacity(json.len() + version.len() + 32);
            line.extend_from_slice(br#"{"version":""#);
            line.extend_from_slice(version.as_bytes());
            line.extend_from_slice(br#"","plan":"#);
            line.extend_from_slice(&json);
            line.extend_from_slice(b"}\n");
            tracing::info!(dataplane = %format!("{}/{}", key.mesh, key.name), %version, "plan updated");
            let plan = Arc::new(gw);
            entry.plan.send_replace(Some(Arc::new(Versioned { version, line: Bytes::from(line), plan })));
            changed = true;
        }
        // A Dataplane that is gone: remote gateways keep their last plan until it comes back (nothing new is sent);
        // the in-process data plane stops serving it.
        let before = self.inner.all.borrow().len();
        let first = !self.inner.published.swap(true, std::sync::atomic::Ordering::AcqRel);
        if first || changed || before != everything.len() {
            self.inner.all.send_replace(Arc::new(everything));
        }
        drop(gateways);
        tracing::debug!(
            resources = resources.len(),
            read_and_decode_ms = decoded.as_millis(),
            compile_ms = (compiled - decoded).as_millis(),
            total_ms = started.elapsed().as_millis(),
            "plans rebuilt"
        );
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    known: Option<String>,
}

/// Counts a stream while it is open.
struct Open {
    d: Distributor,
    key: ObjectRef,
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(gw) = self.d.gateways().get_mut(&self.key) {
            gw.streams = gw.streams.saturating_sub(1);
        }
    }
}

pub(crate) async fn stream(
    State(d): State<Distributor>,
    UrlPath((mesh, name)): UrlPath<(String, String)>,
    Query(query): Query<StreamQuery>,
) -> Response {
    let key = ObjectRef { mesh, name };
    let mut rx = {
        let mut gateways = d.gateways();
        let gw = gateways.entry(key.clone()).or_insert_with(Gateway::new);
        gw.streams += 1;
        gw.plan.subscribe()
    };
    tracing::info!(dataplane = %format!("{}/{}", key.mesh, key.name), "gateway connected");
    // The current plan is sent at once unless the gateway already runs it.
    let current = rx.borrow_and_update().clone();
    let first = current.filter(|p| query.known.as_deref() != Some(p.version.as_str())).map(|p| p.line.clone());
    let open = Open { d, key };
    let state = (rx, first, open);
    let body = futures_util::stream::unfold(state, |(mut rx, first, open)| async move {
        if let Some(line) = first {
            return Some((Ok::<Bytes, std::convert::Infallible>(line), (rx, None, open)));
        }
        match tokio::time::timeout(HEARTBEAT, rx.changed()).await {
            Err(_) => Some((Ok(Bytes::from_static(b"\n")), (rx, None, open))),
            Ok(Err(_)) => None,
            Ok(Ok(())) => {
                let line =
                    rx.borrow_and_update().as_ref().map_or_else(|| Bytes::from_static(b"\n"), |p| p.line.clone());
                Some((Ok(line), (rx, None, open)))
            }
        }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct Ack {
    version: String,
}

pub(crate) async fn ack(
    State(d): State<Distributor>,
    UrlPath((mesh, name)): UrlPath<(String, String)>,
    Json(ack): Json<Ack>,
) -> StatusCode {
    let key = ObjectRef { mesh, name };
    tracing::info!(dataplane = %format!("{}/{}", key.mesh, key.name), version = %ack.version, "plan applied by gateway");
    let mut gateways = d.gateways();
    let gw = gateways.entry(key).or_insert_with(Gateway::new);
    gw.acked = Some(ack.version);
    gw.acked_at = Some(
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    );
    StatusCode::NO_CONTENT
}

/// What `GET /meshgate/v1/gateways` says about one gateway.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// The mesh.
    pub mesh: String,
    /// The builtin-gateway Dataplane.
    pub name: String,
    /// The version of its current plan.
    pub plan_version: Option<String>,
    /// The version it last said it applied.
    pub acked_version: Option<String>,
    /// When.
    pub acked_at: Option<String>,
    /// Open plan streams (gateway processes connected).
    pub connected: usize,
}

pub(crate) async fn status(State(d): State<Distributor>) -> Json<Vec<GatewayStatus>> {
    Json(d.statuses())
}

impl Distributor {
    /// Which plan version each gateway has, which it applied, and how many streams it holds.
    pub fn statuses(&self) -> Vec<GatewayStatus> {
        self.gateways()
            .iter()
            .map(|(k, g)| GatewayStatus {
                mesh: k.mesh.clone(),
                name: k.name.clone(),
                plan_version: g.plan.borrow().as_ref().map(|p| p.version.clone()),
                acked_version: g.acked.clone(),
                acked_at: g.acked_at.clone(),
                connected: g.streams,
            })
            .collect()
    }
}

/// What `GET /meshgate/v1/meshgateways/{mesh}/{name}/plans` says about one bound Dataplane.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoundPlan {
    /// Its version and acknowledgement.
    #[serde(flatten)]
    pub status: GatewayStatus,
    /// The plan, private keys redacted.
    pub plan: GatewayPlan,
}

pub(crate) async fn bound(
    State(d): State<Distributor>,
    UrlPath((mesh, name)): UrlPath<(String, String)>,
) -> Json<Vec<BoundPlan>> {
    let gateways = d.gateways();
    Json(
        gateways
            .iter()
            .filter_map(|(k, g)| {
                let current = g.plan.borrow().clone()?;
                let bound = current.plan.gateway.as_ref().is_some_and(|r| r.mesh == mesh && r.name == name);
                bound.then(|| BoundPlan {
                    status: GatewayStatus {
                        mesh: k.mesh.clone(),
                        name: k.name.clone(),
                        plan_version: Some(current.version.clone()),
                        acked_version: g.acked.clone(),
                        acked_at: g.acked_at.clone(),
                        connected: g.streams,
                    },
                    plan: current.plan.redacted(),
                })
            })
            .collect(),
    )
}

/// Views of plans that need the data plane's code, which this crate does not depend on: the binary supplies them.
pub trait PlanViews: Send + Sync {
    /// Explains a request (the URL query string of `GET /meshgate/v1/explain`) against plans, with the data plane's
    /// matcher.
    fn explain(&self, plans: &[GatewayPlan], query: &str) -> Result<serde_json::Value, String>;
    /// What the plans serve, for the dashboard.
    fn overview(&self, plans: &[GatewayPlan]) -> serde_json::Value;
    /// The dashboard page.
    fn page(&self) -> &'static str;
}

/// Shared [`PlanViews`].
pub type Views = Arc<dyn PlanViews>;

/// `GET /meshgate/v1/explain?host=…`: why a request would go where it goes, from the plans now computed.
pub(crate) async fn explain(
    State((plans, views)): State<(Distributor, Views)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let current = plans.subscribe_all().borrow().clone();
    match views.explain(&current, query.as_deref().unwrap_or_default()) {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => crate::rest::RestError::new(StatusCode::BAD_REQUEST, "Bad Request", e).into_response(),
    }
}

/// `GET /ui`: the dashboard.
pub(crate) async fn page(State((_, views)): State<(Distributor, Views)>) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], views.page())
        .into_response()
}

/// `GET /ui/data`: the dashboard's data — every gateway's plan at a glance, and which version each one runs.
pub(crate) async fn ui_data(State((plans, views)): State<(Distributor, Views)>) -> Response {
    let current = plans.subscribe_all().borrow().clone();
    Json(serde_json::json!({
        "source": "control plane",
        "explain": "/meshgate/v1/explain",
        "overview": views.overview(&current),
        "status": plans.statuses(),
        "rejections": [],
    }))
    .into_response()
}
