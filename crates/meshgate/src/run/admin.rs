//! The admin listener: `/ready`, `/health`, `/config`, `/metrics`, `/explain`, and the dashboard (`/ui`, `/ui/data`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use meshgate_plan::GatewayPlan;
use meshgate_proxy::Proxy;
use serde::Serialize;

use super::config::Rejection;

/// What the admin endpoints show.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Snapshot {
    /// Plans in force (private keys redacted).
    pub plans: Vec<GatewayPlan>,
    /// Files and resources rejected by the last reload.
    pub rejections: Vec<Rejection>,
    /// Problems applying the plans (bind failures, routes left out).
    pub apply_errors: Vec<String>,
    /// How many resources are in force.
    pub resources: usize,
    /// How many times configuration was applied.
    pub generation: u64,
}

/// Shared admin state.
#[derive(Debug)]
pub struct AdminState {
    /// The data plane.
    pub proxy: Arc<Proxy>,
    /// What was applied last.
    pub snapshot: std::sync::RwLock<Snapshot>,
}

async fn ready(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let applied = state.snapshot.read().map(|s| s.generation > 0).unwrap_or(false);
    if applied && state.proxy.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn health() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn config(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let body = match state.snapshot.read() {
        Ok(s) => {
            let mut s = s.clone();
            s.plans = s.plans.iter().map(GatewayPlan::redacted).collect();
            serde_json::to_string_pretty(&s).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        }
        Err(_) => "{\"error\": \"state unavailable\"}".to_owned(),
    };
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.proxy.metrics().render())
}

/// `GET /explain?host=…&path=…`: why a request would go where it goes, on the listeners running now.
async fn explain(
    State(state): State<Arc<AdminState>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> axum::response::Response {
    let answer = match meshgate_proxy::explain::Probe::from_query(query.as_deref().unwrap_or_default()) {
        Ok(probe) => state.proxy.explain(&probe).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(e) => axum::Json(e).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({ "error": e }))).into_response(),
    }
}

/// The dashboard's data: what the running plans serve with live counts and endpoint states, and what was rejected.
async fn ui_data(State(state): State<Arc<AdminState>>) -> axum::response::Response {
    let (rejections, apply_errors, generation) = match state.snapshot.read() {
        Ok(s) => (s.rejections.clone(), s.apply_errors.clone(), s.generation),
        Err(_) => (Vec::new(), Vec::new(), 0),
    };
    axum::Json(serde_json::json!({
        "source": format!("gateway (configuration generation {generation})"),
        "explain": "/explain",
        "overview": state.proxy.overview(),
        "rejections": rejections,
        "apply_errors": apply_errors,
    }))
    .into_response()
}

/// Serves the admin endpoints on `listener` until the process stops.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AdminState>) {
    let app = Router::new()
        .route("/ready", get(ready))
        .route("/health", get(health))
        .route("/config", get(config))
        .route("/metrics", get(metrics))
        .route("/explain", get(explain))
        .route("/ui", get(crate::ui::page))
        .route("/ui/", get(crate::ui::page))
        .route("/ui/data", get(ui_data))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "admin listener stopped");
    }
}

/// Binds the admin address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
