//! Kuma's REST API over a resource store.
//!
//! | Request | Answer |
//! |---|---|
//! | `GET /` | product, version, Kuma version it follows |
//! | `GET /meshes`, `GET /{collection}` | a page of every mesh's resources: `{"total", "items", "next"}` |
//! | `GET /meshes/{mesh}/{collection}` | a page of one mesh's resources (`?size=&offset=`) |
//! | `GET /meshes/{mesh}/{collection}/{name}`, `GET /meshes/{name}` | the resource (Universal form, with its times) |
//! | `PUT` the same paths | 201 created, 200 updated; 400 with every violation; 409 on a stale `If-Match` |
//! | `PUT …?dryRun=true` | validation only: `{"dryRun": true, "change": "created"|"updated"|"unchanged"}` |
//! | `DELETE` the same paths | 200; 404 when missing; 409 on a stale `If-Match` |
//! | `GET /config` | the control plane's settings |
//!
//! Versions travel as `ETag` / `If-Match` (the resource's store version): a write that names a version fails with
//! 409 when someone wrote in between. Secret values never appear in lists.

use std::path::Path;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use meshgate_api::load::{ResourceSet, decode_text};
use meshgate_api::resource::Scope;
use meshgate_api::{Kind, UnknownFields};
use meshgate_store::{AnyStore, Expect, Key, Range, ResourceStore, StoreError, Stored};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What `GET /` says about this control plane.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    /// `meshgate`.
    pub product: String,
    /// meshgate's version.
    pub version: String,
    /// The Kuma version whose API and behaviour it follows.
    pub based_on_kuma: String,
    /// A line about it.
    pub tagline: String,
    /// The host it runs on.
    pub hostname: String,
    /// This process.
    pub instance_id: String,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            product: "meshgate".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            based_on_kuma: "2.14.3".to_owned(),
            tagline: "meshgate".to_owned(),
            hostname: std::env::var("HOSTNAME").unwrap_or_default(),
            instance_id: format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_default(), std::process::id()),
        }
    }
}

#[derive(Clone)]
struct Api {
    store: AnyStore,
    info: ServerInfo,
    config: std::sync::Arc<Value>,
}

/// Pages are this long unless `size` says otherwise (Kuma's default), and never longer than [`MAX_PAGE`].
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// The largest resource body accepted.
const MAX_BODY: usize = 1 << 20;

/// A 400 naming one field.
pub(crate) fn bad_request(field: &str, message: &str) -> RestError {
    RestError::bad(field, message)
}

/// The REST API over `store`, and the plan streams of its gateways (see [`crate::plans`]); `GET /config` shows
/// `config` (the control plane's settings, without credentials). Starts computing plans: call it in a runtime.
/// With `auth`, every request but `GET /` is authenticated and checked against its role ([`crate::auth`]), and the
/// token endpoints are served; serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
///
/// With `views`, `GET /meshgate/v1/explain?…` and the dashboard (`/ui`, `/ui/data`) answer from the current plans
/// (the binary supplies the data plane's code; this crate does not depend on the data plane).
pub fn router(
    store: AnyStore,
    info: ServerInfo,
    config: Value,
    auth: Option<crate::auth::Auth>,
    views: Option<crate::plans::Views>,
) -> Router {
    let plans = crate::plans::Distributor::start(store.clone(), meshgate_compile::Options::default());
    let mut streams = Router::new()
        .route("/meshgate/v1/plans/{mesh}/{name}", get(crate::plans::stream))
        .route("/meshgate/v1/plans/{mesh}/{name}/ack", axum::routing::post(crate::plans::ack))
        .route("/meshgate/v1/gateways", get(crate::plans::status))
        .route("/meshgate/v1/meshgateways/{mesh}/{name}/plans", get(crate::plans::bound))
        .with_state(plans.clone());
    if let Some(views) = views {
        streams = streams.merge(
            Router::new()
                .route("/meshgate/v1/explain", get(crate::plans::explain))
                .route("/ui", get(crate::plans::page))
                .route("/ui/", get(crate::plans::page))
                .route("/ui/data", get(crate::plans::ui_data))
                .with_state((plans, views)),
        );
    }
    let app = Router::new()
        .route("/", get(index))
        .route("/config", get(show_config))
        .route("/meshes", get(list_meshes))
        .route("/meshes/{name}", get(get_mesh).put(put_mesh).delete(delete_mesh))
        .route("/meshes/{mesh}/{collection}", get(list_in_mesh))
        .route("/meshes/{mesh}/{collection}/{name}", get(get_one).put(put_one).delete(delete_one))
        .route("/{collection}", get(list_all_meshes))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(Api { store, info, config: std::sync::Arc::new(config) })
        .merge(streams);
    match auth {
        None => app,
        Some(auth) => {
            let tokens = Router::new()
                .route("/tokens/user", axum::routing::post(crate::auth::issue_user_token))
                .route("/tokens/dataplane", axum::routing::post(crate::auth::issue_dataplane_token))
                .route("/tokens/revoke", axum::routing::post(crate::auth::revoke_token))
                .route("/tokens/signing-keys/rotate", axum::routing::post(crate::auth::rotate_key))
                .route("/tokens/signing-keys/{serial}", axum::routing::delete(crate::auth::delete_key))
                .with_state(auth.clone());
            app.merge(tokens).layer(axum::middleware::from_fn_with_state(auth, crate::auth::guard))
        }
    }
}

/// An error as Kuma's API (2.x) writes it: RFC 7807 fields (`type`, `status`, `title`, `detail`,
/// `invalid_parameters`) and, for older clients, the same again as `details` and `causes`.
#[derive(Debug)]
pub struct RestError {
    status: StatusCode,
    title: String,
    detail: String,
    causes: Vec<Cause>,
}

/// One violation.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cause {
    /// The field path (Kuma's, e.g. `conf.listeners[0].port`); empty for the whole resource.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl RestError {
    pub(crate) fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> RestError {
        RestError { status, title: title.to_owned(), detail: detail.into(), causes: Vec::new() }
    }

    fn invalid(causes: Vec<Cause>) -> RestError {
        RestError {
            status: StatusCode::BAD_REQUEST,
            title: "Could not process a resource".to_owned(),
            detail: "Resource is not valid".to_owned(),
            causes,
        }
    }

    fn bad(field: &str, message: impl Into<String>) -> RestError {
        RestError::invalid(vec![Cause { field: field.to_owned(), message: message.into() }])
    }

    fn not_found(title: &str) -> RestError {
        RestError::new(StatusCode::NOT_FOUND, title, "Not found")
    }

    /// The same error under another title (what the request was doing).
    fn titled(mut self, title: &str) -> RestError {
        if self.status == StatusCode::NOT_FOUND {
            title.clone_into(&mut self.title);
        }
        self
    }

    fn body(&self) -> Value {
        let mut body = json!({
            "type": "/std-errors",
            "status": self.status.as_u16(),
            "title": self.title,
            "detail": self.detail,
        });
        if !self.causes.is_empty() {
            body["invalid_parameters"] =
                self.causes.iter().map(|c| json!({"field": c.field, "reason": c.message})).collect();
        }
        body["details"] = self.detail.clone().into();
        if !self.causes.is_empty() {
            body["causes"] = self.causes.iter().map(|c| json!({"field": c.field, "message": c.message})).collect();
        }
        body
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<StoreError> for RestError {
    fn from(e: StoreError) -> RestError {
        match e {
            StoreError::NotFound(_) => RestError::not_found("Could not retrieve a resource"),
            StoreError::Conflict { .. } | StoreError::AlreadyExists(_) => {
                RestError::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "store failure");
                RestError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", "Internal Server Error")
            }
        }
    }
}

async fn index(State(api): State<Api>) -> Json<ServerInfo> {
    Json(api.info)
}

async fn show_config(State(api): State<Api>) -> Json<Value> {
    Json(Value::clone(&api.config))
}

/// The kind of a collection in the URL.
fn kind_of(collection: &str) -> Result<Kind, RestError> {
    Kind::from_collection(collection)
        .filter(|k| *k != Kind::Mesh)
        .ok_or_else(|| RestError::new(StatusCode::NOT_FOUND, "Not Found", "Page Not Found"))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    size: Option<usize>,
    offset: Option<usize>,
}

impl PageQuery {
    fn range(&self) -> Result<Range, RestError> {
        let size = self.size.unwrap_or(DEFAULT_PAGE);
        if size > MAX_PAGE {
            let reason = format!("invalid page size of {size}. Maximum page size is {MAX_PAGE}");
            return Err(RestError {
                title: "Bad Request".to_owned(),
                detail: "Invalid page size".to_owned(),
                ..RestError::bad("size", reason)
            });
        }
        let size = if size == 0 { DEFAULT_PAGE } else { size };
        Ok(Range { offset: self.offset.unwrap_or(0), size })
    }
}

/// A stored resource as the API shows it: its Universal form with its creation and modification times.
fn shown(stored: &Stored, in_list: bool) -> Value {
    let mut out = stored.spec.clone();
    if let Value::Object(fields) = &mut out {
        fields.insert("creationTime".into(), stored.creation_time.clone().into());
        fields.insert("modificationTime".into(), stored.modification_time.clone().into());
        if in_list && stored.key.kind == Kind::Secret.name() {
            // Secret values are read one at a time, never in bulk.
            fields.remove("data");
        }
    }
    out
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version an `If-Match` header names, if any.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, RestError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| RestError::new(StatusCode::BAD_REQUEST, "Bad Request", "If-Match must be a resource version"))
}

async fn list(
    api: &Api,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    kind: Kind,
    mesh: Option<&str>,
    query: &PageQuery,
) -> Result<Json<Value>, RestError> {
    let range = query.range()?;
    let page = api.store.list(kind.name(), mesh, range).await?;
    // Kuma's next link: the request's own URL with the next offset.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let next = page.next.map(|offset| format!("http://{host}{}?offset={offset}&size={}", uri.path(), range.size));
    Ok(Json(json!({
        "total": page.total,
        "items": page.items.iter().map(|s| shown(s, true)).collect::<Vec<_>>(),
        "next": next,
    })))
}

async fn list_meshes(
    State(api): State<Api>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, RestError> {
    list(&api, &uri, &headers, Kind::Mesh, None, &query).await
}

async fn list_all_meshes(
    State(api): State<Api>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    UrlPath(collection): UrlPath<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, RestError> {
    let kind = kind_of(&collection)?;
    list(&api, &uri, &headers, kind, None, &query).await
}

async fn list_in_mesh(
    State(api): State<Api>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    UrlPath((mesh, collection)): UrlPath<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, RestError> {
    let kind = kind_of(&collection)?;
    list(&api, &uri, &headers, kind, Some(&mesh), &query).await
}

async fn get_key(api: &Api, key: Key) -> Result<Response, RestError> {
    let stored = api.store.get(&key).await?.ok_or_else(|| RestError::not_found("Could not retrieve a resource"))?;
    let mut resp = Json(shown(&stored, false)).into_response();
    resp.headers_mut().insert(header::ETAG, etag(stored.version));
    Ok(resp)
}

async fn get_mesh(State(api): State<Api>, UrlPath(name): UrlPath<String>) -> Result<Response, RestError> {
    get_key(&api, Key::new(Kind::Mesh.name(), "", name)).await
}

async fn get_one(
    State(api): State<Api>,
    UrlPath((mesh, collection, name)): UrlPath<(String, String, String)>,
) -> Result<Response, RestError> {
    let kind = kind_of(&collection)?;
    get_key(&api, Key::new(kind.name(), mesh, name)).await
}

/// Decodes and validates a request body (Universal or Kubernetes form, JSON or YAML) for the resource the URL
/// names; returns its Universal form.
fn decode_body(kind: Kind, mesh: Option<&str>, name: &str, body: &[u8]) -> Result<Value, RestError> {
    let text = std::str::from_utf8(body).map_err(|_| RestError::bad("", "the body is not UTF-8 text"))?;
    let source = Path::new("<request body>");
    let outcome = decode_text(source, text, UnknownFields::Deny);
    if outcome.loaded.is_empty()
        && let Some(p) = outcome.problems.iter().find(|p| p.path.is_none())
    {
        // Not a document at all (Kuma: `invalid <Type> object: "<parser error>"`).
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            format!("invalid {} object: {:?}", kind.name(), p.message),
        ));
    }
    if !outcome.problems.is_empty() {
        return Err(RestError::invalid(
            outcome
                .problems
                .iter()
                .map(|p| Cause {
                    field: p.path.as_ref().map(ToString::to_string).unwrap_or_default(),
                    message: p.message.clone(),
                })
                .collect(),
        ));
    }
    let [loaded] = outcome.loaded.as_slice() else {
        return Err(RestError::bad("", "the body must hold exactly one resource"));
    };
    let resource = loaded.resource();
    if resource.kind() != kind {
        return Err(RestError::bad("type", "type from the URL has to be the same as in body"));
    }
    if resource.meta.name != name {
        return Err(RestError::bad("name", "name from the URL has to be the same as in body"));
    }
    if let Some(mesh) = mesh
        && resource.meta.mesh != mesh
    {
        return Err(RestError::bad("mesh", "mesh from the URL has to be the same as in body"));
    }
    // Kuma validates a resource on its own when it is written; references are resolved when plans are made.
    let problems = ResourceSet::new(std::slice::from_ref(loaded)).check_with(false);
    if !problems.is_empty() {
        return Err(RestError::invalid(
            problems
                .iter()
                .map(|p| Cause {
                    field: p.path.as_ref().map(ToString::to_string).unwrap_or_default(),
                    message: p.message.clone(),
                })
                .collect(),
        ));
    }
    Ok(resource.to_universal_json())
}

trait ExpectExt {
    fn is_none_or_version(&self, version: u64) -> bool;
}

impl ExpectExt for Expect {
    /// Whether a write with this expectation may be skipped when the resource at `version` is already as written.
    fn is_none_or_version(&self, version: u64) -> bool {
        match self {
            Expect::Any => true,
            Expect::Version(v) => *v == version,
            Expect::Absent => false,
        }
    }
}

/// `?dryRun=true`: validate and say what would change, write nothing.
#[derive(Debug, Default, Deserialize)]
struct WriteQuery {
    #[serde(default, rename = "dryRun")]
    dry_run: bool,
}

async fn put_key(
    api: &Api,
    kind: Kind,
    key: Key,
    headers: &HeaderMap,
    query: &WriteQuery,
    body: &[u8],
) -> Result<Response, RestError> {
    let mesh = (kind.scope() == Scope::Mesh).then_some(key.mesh.as_str());
    let spec = decode_body(kind, mesh, &key.name, body)?;
    if let Some(mesh) = mesh
        && api.store.get(&Key::new(Kind::Mesh.name(), "", mesh)).await?.is_none()
    {
        return Err(RestError::new(
            StatusCode::NOT_FOUND,
            "Could not process a resource",
            format!("mesh of name {mesh} is not found"),
        ));
    }
    let expect = match if_match(headers)? {
        Some(v) => Expect::Version(v),
        None => Expect::Any,
    };
    let current = api.store.get(&key).await?;
    let unchanged = current.as_ref().filter(|c| c.spec == spec && expect.is_none_or_version(c.version));
    if query.dry_run {
        let change = match (&current, unchanged) {
            (None, _) => "created",
            (Some(_), Some(_)) => "unchanged",
            (Some(_), None) => "updated",
        };
        return Ok(Json(json!({ "dryRun": true, "change": change })).into_response());
    }
    // Writing the same resource again changes nothing: no new version, no new plans.
    if let Some(current) = unchanged {
        let mut resp = Json(json!({})).into_response();
        resp.headers_mut().insert(header::ETAG, etag(current.version));
        return Ok(resp);
    }
    let stored = api.store.put(&key, &spec, expect).await?;
    let status = if stored.version == 1 { StatusCode::CREATED } else { StatusCode::OK };
    tracing::info!(resource = %key, version = stored.version, "resource written");
    let mut resp = (status, Json(json!({}))).into_response();
    resp.headers_mut().insert(header::ETAG, etag(stored.version));
    Ok(resp)
}

async fn put_mesh(
    State(api): State<Api>,
    UrlPath(name): UrlPath<String>,
    Query(query): Query<WriteQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RestError> {
    put_key(&api, Kind::Mesh, Key::new(Kind::Mesh.name(), "", name), &headers, &query, &body).await
}

async fn put_one(
    State(api): State<Api>,
    UrlPath((mesh, collection, name)): UrlPath<(String, String, String)>,
    Query(query): Query<WriteQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RestError> {
    let kind = kind_of(&collection)?;
    put_key(&api, kind, Key::new(kind.name(), mesh, name), &headers, &query, &body).await
}

async fn delete_key(api: &Api, key: Key, headers: &HeaderMap) -> Result<Response, RestError> {
    api.store
        .delete(&key, if_match(headers)?)
        .await
        .map_err(|e| RestError::from(e).titled("Could not delete a resource"))?;
    tracing::info!(resource = %key, "resource deleted");
    Ok(Json(json!({})).into_response())
}

async fn delete_mesh(
    State(api): State<Api>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    delete_key(&api, Key::new(Kind::Mesh.name(), "", name), &headers).await
}

async fn delete_one(
    State(api): State<Api>,
    UrlPath((mesh, collection, name)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    let kind = kind_of(&collection)?;
    delete_key(&api, Key::new(kind.name(), mesh, name), &headers).await
}

#[cfg(test)]
mod tests;
