//! The dashboard: one read-only page (plain HTML and JavaScript, embedded in the binary — no CDN, works offline)
//! served at `/ui` by the admin listener of `run`/`dp` and by the control plane. It reads `/ui/data` every two
//! seconds and asks `explain` for the "explain a request" form.

use axum::http::header;
use axum::response::IntoResponse;

/// The page.
pub const PAGE: &str = include_str!("ui/index.html");

/// `GET /ui`.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::HeaderName::from_static("content-security-policy"),
                "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        PAGE,
    )
}
