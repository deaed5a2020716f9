//! The request path, as named phases: check → find the virtual host → match a route → act (answer, redirect, or
//! forward: choose a backend, pick an endpoint, rewrite, send, filter the response) → count.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use meshgate_plan::Redirect;

use crate::body::{ClientBodyError, ClientFault, IdleTimeoutBody};
use crate::guard::GuardState;
use crate::metrics::{Metrics, UpstreamLabels, class_index};
use crate::path::normalize;
use crate::policy::Outcome;
use crate::runtime::{ActionRuntime, ForwardRuntime, ListenerKind, ListenerRuntime, RouteRuntime, VhostRuntime};
use crate::upstream::{BoxError, UpstreamBody, UpstreamError};

/// The body of responses sent downstream.
pub type ResponseBody = BoxBody<Bytes, BoxError>;

/// The largest request body kept for replay (retries, mirrors); a larger one is sent once and never retried.
const REPLAY_BODY_LIMIT: u64 = 64 * 1024;

/// What one downstream connection knows.
#[derive(Debug)]
pub struct ConnContext {
    /// The listener's current configuration (swapped on plan changes).
    pub listener: Arc<ArcSwap<ListenerRuntime>>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's IP address as a header value (for X-Forwarded-For), made once per connection.
    pub peer_ip: HeaderValue,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The connection's time limits.
    pub guard: Arc<GuardState>,
    /// The SNI the client sent (HTTPS), which chose the virtual hosts.
    pub sni: Option<String>,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The HSTS header of HTTPS responses (Kuma: overwrite).
const HSTS: &str = "max-age=31536000; includeSubDomains";

pub(crate) fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut resp = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed());
    *resp.status_mut() = status;
    resp
}

pub(crate) fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut resp = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *resp.status_mut() = status;
    resp
}

pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut resp = full(status, body);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// An answer to a request the gateway refuses: on HTTP/1.x the connection is closed after it (RFC 9112 §6.3: after
/// a framing error nothing more on the connection can be trusted).
pub(crate) fn reject(version: Version, status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut resp = text(status, body);
    if version < Version::HTTP_2 {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// What the request path learned for the access log.
#[derive(Debug, Default)]
struct Notes<'l> {
    /// Envoy-style response flags (`-`: none).
    flags: &'static str,
    /// The endpoint that answered (borrowed from the listener's runtime: nothing is copied per request).
    upstream: Option<&'l crate::upstream::EndpointPool>,
    /// Its cluster.
    cluster: Option<&'l str>,
}

/// What an access log needs of the request, taken before the request is consumed: reference-counted handles to
/// the received bytes (no copies), and only the headers the logs read.
struct RequestRecord {
    start: Instant,
    method: http::Method,
    path: Option<PathAndQuery>,
    /// `:authority` (HTTP/2, or an absolute-form target).
    authority: Option<http::uri::Authority>,
    version: Version,
    /// Made only when a log reads request headers (boxed: the record stays small, and it is moved with the request's
    /// future).
    headers: Option<Box<HeaderMap>>,
}

impl RequestRecord {
    fn of<B>(req: &Request<B>, wanted: &[HeaderName], started: Instant) -> Self {
        let headers = (!wanted.is_empty()).then(|| {
            let mut headers = HeaderMap::new();
            for name in wanted {
                for value in req.headers().get_all(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
            Box::new(headers)
        });
        RequestRecord {
            start: started,
            method: req.method().clone(),
            path: req.uri().path_and_query().cloned(),
            authority: req.uri().authority().cloned(),
            version: req.version(),
            headers,
        }
    }

    /// `:authority`, or the Host header.
    fn authority(&self) -> &str {
        match &self.authority {
            Some(a) => a.as_str(),
            // The Host header is kept when a log reads the authority.
            None => self
                .headers
                .as_ref()
                .and_then(|h| h.get(header::HOST))
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default(),
        }
    }
}

/// An empty header map, for a log line that reads none.
fn no_headers() -> &'static HeaderMap {
    static NONE: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);
    &NONE
}

/// Serves one request.
pub async fn handle(mut req: Request<Incoming>, conn: Arc<ConnContext>) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    conn.guard.request_started();
    let listener = conn.listener.load_full();
    // Boxed: the request future stays small (it is moved, whole, on every request) when tracing is off.
    let trace = listener.tracing.as_ref().map(|t| Box::new(t.begin(&mut req)));
    let record = (!listener.access_logs.is_empty()).then(|| RequestRecord::of(&req, &listener.log_headers, started));
    let mut notes = Notes { flags: "-", ..Notes::default() };
    let (mut response, route) = serve(req, &listener, &conn, started, &mut notes).await;
    conn.guard.request_finished();
    response.headers_mut().insert(header::SERVER, listener.server_header.clone());
    if listener.scheme == "https" {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    let class = class_index(response.status().as_u16());
    let elapsed = started.elapsed();
    match route {
        Some(r) => {
            r.counters[class].inc();
            r.duration.observe(elapsed.as_secs_f64());
        }
        None => {
            listener.unrouted[class].inc();
        }
    };
    listener.duration.observe(elapsed.as_secs_f64());
    if let (Some(tracer), Some(ctx)) = (&listener.tracing, trace) {
        let outcome = crate::trace::Outcome {
            status: response.status().as_u16(),
            listener: &listener.name,
            route: route.map_or("-", |r| r.label.as_str()),
            cluster: notes.cluster,
            upstream: notes.upstream.map(|e| e.authority()),
        };
        tracer.end(*ctx, &outcome);
    }
    if let Some(record) = record {
        let entry = crate::accesslog::Entry {
            start: record.start,
            method: &record.method,
            path: record.path.as_ref().map_or("/", |p| p.as_str()),
            authority: record.authority(),
            version: record.version,
            request_headers: record.headers.as_deref().unwrap_or_else(|| no_headers()),
            status: response.status(),
            response_headers: response.headers(),
            duration: elapsed,
            upstream_host: notes.upstream.map(|e| e.authority()),
            upstream_plain: notes.upstream.is_none_or(|e| e.authority_plain()),
            cluster: notes.cluster,
            route: route.map_or("-", |r| r.label.as_str()),
            peer: conn.peer,
            flags: notes.flags,
        };
        for log in &listener.access_logs {
            log.log(&entry);
        }
    }
    Ok(response)
}

/// The host a request is for: lowercase, without port (borrowed unless it had to be lowercased).
#[inline]
pub(crate) fn request_host<B>(req: &Request<B>) -> Option<Cow<'_, str>> {
    let raw = match req.uri().authority() {
        Some(a) => a.host(),
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        raw.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(raw, |(h, _)| h)
    };
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

/// Why a request is refused before routing, if it is: what hyper's parser lets through but an edge must not.
#[inline]
pub(crate) fn refusal<B>(
    req: &Request<B>,
    settings: &crate::runtime::ProxySettings,
) -> Option<(StatusCode, &'static str)> {
    // Kuma's gateway rejects header names with underscores (Envoy `headers_with_underscores_action`).
    if settings.reject_underscore_headers && req.headers().keys().any(|k| k.as_str().contains('_')) {
        return Some((StatusCode::BAD_REQUEST, "header names with underscores are not allowed\n"));
    }
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > settings.max_uri_bytes {
        return Some((StatusCode::URI_TOO_LONG, "URI too long\n"));
    }
    // RFC 9113 §8.5 / RFC 9112 §3.2.3: CONNECT names the authority it tunnels to.
    if req.method() == http::Method::CONNECT && req.uri().authority().is_none() {
        return Some((StatusCode::BAD_REQUEST, "CONNECT without an authority\n"));
    }
    if req.version() >= Version::HTTP_2 {
        return None;
    }
    // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host (absolute-form targets carry their own authority).
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Some((StatusCode::BAD_REQUEST, "more than one Host header\n"));
    }
    if hosts == 0 && req.version() == Version::HTTP_11 && req.uri().authority().is_none() {
        return Some((StatusCode::BAD_REQUEST, "missing Host header\n"));
    }
    // hyper accepts any transfer coding list ending in `chunked`; only `chunked` itself is implemented here
    // (RFC 9112 §6.1: an unknown coding gets 501), and it may appear once.
    let mut chunked = 0;
    for value in req.headers().get_all(header::TRANSFER_ENCODING) {
        let Ok(value) = value.to_str() else { return Some((StatusCode::BAD_REQUEST, "malformed Transfer-Encoding\n")) };
        for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if !coding.eq_ignore_ascii_case("chunked") {
                return Some((StatusCode::NOT_IMPLEMENTED, "transfer coding not implemented\n"));
            }
            chunked += 1;
        }
    }
    if chunked > 1 {
        return Some((StatusCode::BAD_REQUEST, "chunked applied more than once\n"));
    }
    None
}

async fn serve<'l>(
    req: Request<Incoming>,
    listener: &'l ListenerRuntime,
    conn: &ConnContext,
    started: Instant,
    notes: &mut Notes<'l>,
) -> (Response<ResponseBody>, Option<&'l RouteRuntime>) {
    if let Some((status, why)) = refusal(&req, &listener.settings) {
        return (reject(req.version(), status, why), None);
    }
    // Faults act on the whole listener, before routing (Kuma's fault filter sits before the router).
    let mut bandwidth = None;
    if !listener.faults.is_empty() {
        let fired = crate::policy::fire(&listener.faults);
        if let Some(delay) = fired.delay {
            notes.flags = "DI";
            tokio::time::sleep(delay).await;
        }
        if let Some(status) = fired.abort {
            notes.flags = "FI";
            return (text(status, "fault filter abort"), None);
        }
        bandwidth = fired.bandwidth;
    }
    let (response, route) = route_and_act(req, listener, conn, started, notes).await;
    match bandwidth {
        Some(rate) => {
            let (parts, body) = response.into_parts();
            (Response::from_parts(parts, crate::body::ThrottledBody::new(body, rate).boxed()), route)
        }
        None => (response, route),
    }
}

async fn route_and_act<'l>(
    req: Request<Incoming>,
    listener: &'l ListenerRuntime,
    conn: &ConnContext,
    started: Instant,
    notes: &mut Notes<'l>,
) -> (Response<ResponseBody>, Option<&'l RouteRuntime>) {
    let Some(host) = request_host(&req) else {
        notes.flags = "NR";
        return (empty(StatusCode::NOT_FOUND), None);
    };
    let Some(vhost) = vhost_for(listener, conn.sni.as_deref(), &host) else {
        notes.flags = "NR";
        return (empty(StatusCode::NOT_FOUND), None);
    };
    let uri = req.uri().clone();
    let path = normalize(uri.path());
    let Some(route) = first_route(vhost, &req, &path) else {
        notes.flags = "NR";
        return (empty(StatusCode::NOT_FOUND), None);
    };
    if let Some(limit) = &route.rate_limit
        && !limit.bucket.try_take_at(started)
    {
        limit.limited.inc();
        notes.flags = "RL";
        let mut resp = text(limit.status, "local_rate_limited");
        limit.headers.apply(resp.headers_mut());
        return (resp, Some(route));
    }
    let response = match &route.action {
        ActionRuntime::Respond { status, body } => {
            let mut resp = full(StatusCode::from_u16(*status).unwrap_or(StatusCode::NOT_FOUND), body.clone());
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            resp
        }
        ActionRuntime::Redirect(r) => redirect(r, listener, &host, &path),
        ActionRuntime::Forward(f) => {
            let target = Target { uri: &uri, path: &path, normalized: matches!(path, Cow::Owned(_)) };
            forward(req, route, f, listener, conn, target, notes).await
        }
    };
    (response, Some(route))
}

/// The virtual host a request is for: in the port's table, or after TLS in the table of the chain its SNI chose
/// (SNI of one listener, Host of another: none).
pub(crate) fn vhost_for<'l>(listener: &'l ListenerRuntime, sni: Option<&str>, host: &str) -> Option<&'l VhostRuntime> {
    let vhosts = match &listener.kind {
        ListenerKind::Http { vhosts } => Some(vhosts),
        ListenerKind::Https { chains, .. } => chains.find(sni),
        ListenerKind::Tcp { .. } | ListenerKind::Tls { .. } => None,
    };
    vhosts.and_then(|v| v.find(Some(host)))
}

/// The first route of the table whose conditions all hold for the request (its path already normalised).
pub(crate) fn first_route<'l, B>(vhost: &'l VhostRuntime, req: &Request<B>, path: &str) -> Option<&'l RouteRuntime> {
    let query = req.uri().query();
    vhost.routes.iter().find(|r| r.matches(req.method(), path, query, req.headers()))
}

pub(crate) fn redirect(r: &Redirect, listener: &ListenerRuntime, host: &str, path: &str) -> Response<ResponseBody> {
    let scheme = r.scheme.as_deref().unwrap_or(listener.scheme);
    let host = r.host.as_deref().unwrap_or(host);
    let port = r.port.unwrap_or(listener.port);
    let default_port = matches!((scheme, port), ("http", 80) | ("https", 443));
    let path = match &r.path_rewrite {
        Some(rw) => rw.apply(path),
        None => path.to_owned(),
    };
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    let location =
        if default_port { format!("{scheme}://{host}{path}") } else { format!("{scheme}://{host}:{port}{path}") };
    let mut resp = empty(StatusCode::from_u16(r.status).unwrap_or(StatusCode::MOVED_PERMANENTLY));
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => return empty(StatusCode::INTERNAL_SERVER_ERROR),
    }
    resp
}

static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those a `Connection` header names.
///
/// One pass over the names first: most messages carry none of them, or only `connection: keep-alive`, and a map
/// lookup per hop-by-hop name cost more than the rest of the header handling (callgrind, `bench/`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut found = 0u8;
    for name in headers.keys() {
        // Indexes into HOP_BY_HOP.
        let i = match name.as_str() {
            "connection" => 0,
            "keep-alive" => 1,
            "proxy-connection" => 2,
            "proxy-authenticate" => 3,
            "te" => 4,
            "transfer-encoding" => 5,
            "upgrade" => 6,
            _ => continue,
        };
        found |= 1 << i;
    }
    if found == 0 {
        return;
    }
    if found & 1 != 0 {
        let mut named = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split(',').map(str::trim) {
                if token.is_empty() || token.eq_ignore_ascii_case("close") || token.eq_ignore_ascii_case("keep-alive") {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                    named.push(name);
                }
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if found & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Whether a request asks to switch protocols: an HTTP/1.1 `Upgrade`, or an HTTP/2 extended CONNECT (RFC 8441).
fn upgrade_protocol(req: &Request<Incoming>) -> Option<String> {
    if req.version() < Version::HTTP_2 {
        let asks = req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
        let proto = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok());
        return proto.filter(|_| asks).map(str::to_owned);
    }
    if req.method() == http::Method::CONNECT {
        return req.extensions().get::<hyper::ext::Protocol>().map(|p| p.as_str().to_owned());
    }
    None
}

/// The client's request headers an upstream receives: hop-by-hop gone, and Host and Content-Length (set per attempt).
fn passed_on(mut headers: HeaderMap) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    // The body is re-framed upstream from its actual length; a client's Content-Length is never passed on.
    headers.remove(header::CONTENT_LENGTH);
    headers
}

/// The request headers an upstream receives, from those [`passed_on`] leaves: forwarding headers set, the route's
/// changes made. The same for every attempt, so a retry keeps only the client's headers and derives these again.
fn upstream_headers(
    mut headers: HeaderMap,
    f: &ForwardRuntime,
    listener: &ListenerRuntime,
    conn: &ConnContext,
) -> HeaderMap {
    // X-Forwarded-For: the client is appended; X-Forwarded-Proto: the listener's scheme.
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => {
            HeaderValue::try_from(format!("{prior}, {}", conn.peer.ip())).unwrap_or_else(|_| conn.peer_ip.clone())
        }
        _ => conn.peer_ip.clone(),
    };
    headers.insert(&X_FORWARDED_FOR, xff);
    headers.insert(
        &X_FORWARDED_PROTO,
        HeaderValue::from_static(if listener.scheme == "https" { "https" } else { "http" }),
    );
    f.request_headers.apply(&mut headers);
    headers
}

/// Where a request goes within its upstream.
struct Target<'a> {
    /// The request's target as received.
    uri: &'a Uri,
    /// Its path, normalised.
    path: &'a str,
    /// Whether normalising changed the path.
    normalized: bool,
}

impl Target<'_> {
    /// The path and query the upstream receives: the received ones unless normalising or a rewrite changed the path.
    fn upstream_path_and_query(&self, rewrite: Option<&meshgate_plan::PathRewrite>) -> Option<PathAndQuery> {
        if rewrite.is_none()
            && !self.normalized
            && let Some(pq) = self.uri.path_and_query()
        {
            return Some(pq.clone());
        }
        let path = match rewrite {
            Some(rw) => Cow::Owned(rw.apply(self.path)),
            None => Cow::Borrowed(self.path),
        };
        let pq = match self.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.into_owned(),
        };
        PathAndQuery::try_from(pq).ok()
    }
}

/// How an upstream attempt ended.
type Attempt = Result<Result<Response<crate::upstream::PooledBody>, UpstreamError>, crate::guard::Elapsed>;

fn outcome(attempt: &Attempt) -> Option<Outcome> {
    Some(match attempt {
        Err(_) => Outcome::Timeout,
        Ok(Err(UpstreamError::Connect { .. })) => Outcome::ConnectFailure,
        Ok(Err(UpstreamError::Protocol { client: Some(_), .. })) => return None,
        Ok(Err(UpstreamError::Protocol { .. })) => Outcome::Reset,
        Ok(Ok(r)) => Outcome::Status(r.status().as_u16()),
    })
}

#[allow(clippy::too_many_arguments)]
async fn forward<'l>(
    mut req: Request<Incoming>,
    route: &RouteRuntime,
    f: &'l ForwardRuntime,
    listener: &ListenerRuntime,
    conn: &ConnContext,
    target: Target<'_>,
    notes: &mut Notes<'l>,
) -> Response<ResponseBody> {
    let conn_start = tokio::time::Instant::now();
    let Some(choice) = f.backends.choose() else { return empty(StatusCode::INTERNAL_SERVER_ERROR) };
    let Some(cluster) = choice else { return empty(StatusCode::INTERNAL_SERVER_ERROR) };
    let hash = match cluster.hash_keys() {
        [] => None,
        keys => crate::balance::request_hash(keys, req.headers(), req.uri().query(), conn.peer.ip()),
    };
    let Some(mut index) = cluster.pick_index(hash) else {
        notes.flags = "UH";
        return text(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream\n");
    };
    let Some(first_endpoint) = cluster.endpoints.get(index) else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream\n");
    };
    // The cluster's circuit-breaker limit (Envoy answers 503 with x-envoy-overloaded).
    let Some(_permit) = cluster.admit() else {
        notes.flags = "UO";
        let mut resp = text(StatusCode::SERVICE_UNAVAILABLE, "upstream overflow\n");
        resp.headers_mut().insert("x-envoy-overloaded", HeaderValue::from_static("true"));
        return resp;
    };
    let logging = listener.records_upstream;
    if logging {
        notes.cluster = Some(cluster.name.as_str());
    }
    let upgrade = upgrade_protocol(&req);
    let downstream_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));

    let (parts, body) = req.into_parts();
    let original_host = parts
        .headers
        .get(header::HOST)
        .cloned()
        .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
    let headers = passed_on(parts.headers);
    let host_for = |endpoint: &crate::upstream::EndpointPool| {
        if let Some(h) = &f.host_literal {
            Some(h.clone())
        } else if f.host_to_backend {
            HeaderValue::from_str(endpoint.host()).ok()
        } else {
            original_host.clone()
        }
    };
    let Some(path_and_query) = target.upstream_path_and_query(f.path_rewrite.as_ref()) else {
        return text(StatusCode::BAD_REQUEST, "the rewritten path is not a valid request target\n");
    };
    if let (Some(protocol), Some(on_upgrade)) = (upgrade, downstream_upgrade) {
        let extended_connect = parts.version >= Version::HTTP_2;
        if logging {
            notes.upstream = Some(first_endpoint);
        }
        return crate::upgrade::relay(
            crate::upgrade::Upgrade {
                protocol,
                extended_connect,
                method: parts.method,
                path_and_query: path_and_query.as_str().to_owned(),
                headers: upstream_headers(headers, f, listener, conn),
                host: host_for(first_endpoint),
            },
            first_endpoint,
            on_upgrade,
            route.request_timeout,
        )
        .await;
    }

    // A body is kept for replay (retries, a mirror) when it is small and its length known; a longer or streamed
    // body goes once, and is never retried.
    let body = body.map_err(ClientBodyError);
    let mirror = f.mirror.as_ref().filter(|(_, percentage)| crate::policy::roll(*percentage));
    let wants_copy = route.retry.is_some() || mirror.is_some();
    let small = body.is_end_stream() || body.size_hint().exact().is_some_and(|l| l <= REPLAY_BODY_LIMIT);
    let mut streamed: Option<UpstreamBody> = None;
    let end_stream = body.is_end_stream();
    // The body as read from the client: with its stall limit and, when a policy sets one, the whole-request deadline
    // (both apply whether it is streamed upstream or first buffered for replay).
    let guarded = |body| -> UpstreamBody {
        if let Some(deadline) = listener.request_deadline {
            IdleTimeoutBody::with_deadline(body, route.stream_idle_timeout, conn_start, deadline).boxed()
        } else {
            IdleTimeoutBody::new(body, route.stream_idle_timeout).boxed()
        }
    };
    // A request without a body sends `Empty` (below), which is boxed without an allocation.
    let replay: Option<Bytes> = if end_stream {
        wants_copy.then(Bytes::new)
    } else if wants_copy && small {
        match Box::pin(guarded(body).collect()).await {
            Ok(collected) => Some(collected.to_bytes()),
            Err(e) => {
                return match crate::body::client_fault(e.as_ref()) {
                    Some(ClientFault::Stalled) => {
                        reject(parts.version, StatusCode::REQUEST_TIMEOUT, "request body timeout\n")
                    }
                    _ => reject(parts.version, StatusCode::BAD_REQUEST, "malformed request body\n"),
                };
            }
        }
    } else {
        streamed = Some(guarded(body));
        None
    };
    if let (Some((mirror, _)), Some(bytes)) = (mirror, &replay)
        && let Some(mirror_endpoint) = mirror.pick()
    {
        let shadow_host =
            host_for(first_endpoint).as_ref().and_then(|h| h.to_str().ok()).map(|h| format!("{h}-shadow"));
        let mirror_req = upstream_request(
            &parts.method,
            path_and_query.clone(),
            upstream_headers(headers.clone(), f, listener, conn),
            shadow_host.and_then(|h| HeaderValue::from_str(&h).ok()),
            mirror_endpoint,
            Full::new(bytes.clone()).map_err(|never| match never {}).boxed(),
        );
        if let Ok(mirror_req) = mirror_req {
            let endpoint = Arc::clone(mirror_endpoint);
            let timeout = route.request_timeout;
            tokio::spawn(async move {
                if let Ok(Ok(resp)) = tokio::time::timeout(timeout, endpoint.send(mirror_req)).await {
                    let _ = resp.into_body().collect().await;
                }
            });
        }
    }

    let count_error = |reason: &str| {
        conn.metrics
            .upstream_errors
            .get_or_create(&UpstreamLabels { cluster: cluster.name.clone(), reason: reason.to_owned() })
            .inc();
    };
    let retry = route.retry.as_ref().filter(|_| replay.is_some());
    let limit = cluster.max_stream.map_or(route.request_timeout, |m| m.min(route.request_timeout));
    let deadline = tokio::time::Instant::now() + limit;
    let mut endpoint = first_endpoint;
    let mut retries = 0u32;
    let mut retry_permit = None;
    let mut headers = Some(headers);
    // What a retry sends again: the client's headers (a map is rebuilt only when a retry happens).
    let mut kept = crate::replay::KeptHeaders::default();
    let attempt: Attempt = loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let per_try = match retry {
            Some(p) if p.per_try_timeout_ms > 0 => remaining.min(Duration::from_millis(p.per_try_timeout_ms)),
            _ => remaining,
        };
        let last = retry.is_none_or(|p| retries >= p.num_retries);
        // The first attempt sends the map as parsed, with its spare room (hyper parses the response into it).
        let attempt_headers = match headers.take() {
            Some(map) => {
                if !last {
                    kept = crate::replay::KeptHeaders::of(&map);
                }
                upstream_headers(map, f, listener, conn)
            }
            // Room for the forwarding headers and Host.
            None => upstream_headers(kept.to_map(3), f, listener, conn),
        };
        // An empty body is boxed without an allocation (`Empty` has no size); `Full` would take one per attempt.
        let attempt_body = match (&replay, streamed.take()) {
            (Some(bytes), _) if !bytes.is_empty() => Full::new(bytes.clone()).map_err(|never| match never {}).boxed(),
            (None, Some(body)) => body,
            _ => Empty::new().map_err(|never| match never {}).boxed(),
        };
        let upstream_req = match upstream_request(
            &parts.method,
            path_and_query.clone(),
            attempt_headers,
            host_for(endpoint),
            endpoint,
            attempt_body,
        ) {
            Ok(r) => r,
            Err(_) => return empty(StatusCode::BAD_REQUEST),
        };
        let state = cluster.states.get(index);
        if let Some(s) = state {
            s.active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let result: Attempt = conn.guard.timeout(per_try, endpoint.send(upstream_req)).await;
        if let Some(s) = state {
            s.active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        let ended = outcome(&result);
        if let Some(o) = ended {
            cluster.record(index, o);
        }
        let Some(policy) = retry else { break result };
        let retry_now = !last
            && remaining > Duration::ZERO
            && ended.is_some_and(|o| crate::policy::retriable(policy, &parts.method, o));
        if !retry_now {
            break result;
        }
        // A retry holds a place in the cluster's retry limit until the request ends.
        let Some(permit) = cluster.admit_retry() else { break result };
        retry_permit = Some(permit);
        retries += 1;
        route.retries.inc();
        let wait = crate::policy::back_off(policy, retries)
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        tokio::time::sleep(wait).await;
        if tokio::time::Instant::now() >= deadline {
            break result;
        }
        if let Some(next) = cluster.pick_index(hash)
            && let Some(e) = cluster.endpoints.get(next)
        {
            index = next;
            endpoint = e;
        }
    };
    drop(retry_permit);
    if logging {
        notes.upstream = Some(endpoint);
    }
    let response = match attempt {
        Err(_) => {
            count_error("timeout");
            notes.flags = "UT";
            return text(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout\n");
        }
        Ok(Err(UpstreamError::Connect { endpoint: e, reason })) => {
            count_error("connect");
            notes.flags = "UF";
            tracing::debug!(endpoint = %e, %reason, "upstream connect failure");
            return text(StatusCode::SERVICE_UNAVAILABLE, "upstream connect error\n");
        }
        Ok(Err(UpstreamError::Protocol { endpoint: e, reason, client })) => {
            match client {
                Some(ClientFault::Stalled) => {
                    return reject(parts.version, StatusCode::REQUEST_TIMEOUT, "request body timeout\n");
                }
                Some(ClientFault::Malformed) => {
                    return reject(parts.version, StatusCode::BAD_REQUEST, "malformed request body\n");
                }
                None => {}
            }
            count_error("protocol");
            notes.flags = "UPE";
            tracing::debug!(endpoint = %e, %reason, "bad upstream response");
            return text(StatusCode::BAD_GATEWAY, "upstream protocol error\n");
        }
        Ok(Ok(r)) => r,
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    f.response_headers.apply(&mut parts.headers);
    let body: ResponseBody = match cluster.max_stream {
        // Past the cluster's longest exchange the response stream is cut (Envoy resets it).
        Some(limit) => IdleTimeoutBody::with_deadline(body, route.stream_idle_timeout, conn_start, limit).boxed(),
        None => IdleTimeoutBody::new(body, route.stream_idle_timeout).boxed(),
    };
    Response::from_parts(parts, body)
}

fn upstream_request(
    method: &http::Method,
    path_and_query: PathAndQuery,
    mut headers: HeaderMap,
    host: Option<HeaderValue>,
    endpoint: &crate::upstream::EndpointPool,
    body: UpstreamBody,
) -> Result<Request<UpstreamBody>, http::Error> {
    let (uri, version) = if endpoint.is_http2() {
        let scheme = if endpoint.is_tls() { "https" } else { "http" };
        let authority = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or(endpoint.authority()).to_owned();
        (Uri::builder().scheme(scheme).authority(authority).path_and_query(path_and_query).build()?, Version::HTTP_2)
    } else {
        if let Some(h) = &host {
            headers.insert(header::HOST, h.clone());
        } else if let Ok(v) = HeaderValue::from_str(endpoint.authority()) {
            headers.insert(header::HOST, v);
        }
        (Uri::from(path_and_query), Version::HTTP_11)
    };
    let mut req = Request::builder().method(method.clone()).uri(uri).version(version).body(body)?;
    *req.headers_mut() = headers;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().version(version).method(method).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn refusals_before_routing() {
        let settings = crate::runtime::ProxySettings::default();
        let h1 = Version::HTTP_11;
        type Case<'a> = (Version, &'a str, &'a str, &'a [(&'a str, &'a str)], Option<u16>);
        let cases: &[Case] = &[
            (h1, "GET", "/", &[("host", "a")], None),
            (h1, "GET", "/", &[], Some(400)),
            (Version::HTTP_10, "GET", "/", &[], None),
            (h1, "GET", "http://a/x", &[], None),
            (h1, "GET", "/", &[("host", "a"), ("host", "b")], Some(400)),
            (h1, "GET", "/", &[("host", "a"), ("x_foo", "1")], Some(400)),
            (h1, "POST", "/", &[("host", "a"), ("transfer-encoding", "chunked")], None),
            (h1, "POST", "/", &[("host", "a"), ("transfer-encoding", "gzip, chunked")], Some(501)),
            (
                h1,
                "POST",
                "/",
                &[("host", "a"), ("transfer-encoding", "identity"), ("transfer-encoding", "chunked")],
                Some(501),
            ),
            (h1, "POST", "/", &[("host", "a"), ("transfer-encoding", "chunked, chunked")], Some(400)),
            (Version::HTTP_2, "GET", "http://a/", &[("x_a", "1")], Some(400)),
            (Version::HTTP_2, "CONNECT", "/", &[], Some(400)),
            (h1, "CONNECT", "a:443", &[], None),
        ];
        for (version, method, uri, headers, want) in cases {
            let got = refusal(&request(*version, method, uri, headers), &settings).map(|(s, _)| s.as_u16());
            assert_eq!(got, *want, "{version:?} {method} {uri} {headers:?}");
        }
        let long = format!("/{}", "a".repeat(settings.max_uri_bytes));
        assert_eq!(
            refusal(&request(h1, "GET", &long, &[("host", "a")]), &settings).map(|(s, _)| s),
            Some(StatusCode::URI_TOO_LONG)
        );
        let lenient = crate::runtime::ProxySettings { reject_underscore_headers: false, ..settings };
        assert_eq!(refusal(&request(h1, "GET", "/", &[("host", "a"), ("x_foo", "1")]), &lenient), None);
    }

    #[test]
    fn rejections_close_http1_connections_only() {
        let r = reject(Version::HTTP_11, StatusCode::BAD_REQUEST, "no\n");
        assert_eq!(r.headers().get(header::CONNECTION).unwrap(), "close");
        let r = reject(Version::HTTP_2, StatusCode::BAD_REQUEST, "no\n");
        assert!(r.headers().get(header::CONNECTION).is_none());
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
