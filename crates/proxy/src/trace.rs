//! Tracing (MeshTrace): W3C `traceparent` propagation and sampling on the request path, and span export off it.
//!
//! For each request on a listener with tracing, [`Tracer::begin`] reads the incoming `traceparent` (keeping its
//! trace id and its sampling decision), otherwise decides by the policy's percentages (`client` when the request
//! carries `x-client-trace-id`, else `random`; then `overall`), gives the gateway's span a new id, and replaces the
//! header so the upstream's spans become its children. When a sampled request is answered, [`Tracer::end`] queues
//! the span (listener, route, cluster, endpoint, status, the policy's tags); an exporter task per collector sends
//! queued spans every 200 ms (or at 256), as OTLP/HTTP JSON or Zipkin v2 JSON. The queue is bounded: when the
//! collector is slow or down, spans are dropped and counted, and requests never wait.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request};
use http_body_util::Full;
use meshgate_plan::{TraceBackend, Tracing};
use prometheus_client::metrics::counter::Counter;

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static CLIENT_TRACE_ID: HeaderName = HeaderName::from_static("x-client-trace-id");

/// Spans kept for a collector at most; more are dropped (and counted).
const QUEUE_LIMIT: usize = 8192;
/// A batch is sent when this many spans wait, or every [`FLUSH_EVERY`].
const BATCH: usize = 256;
const FLUSH_EVERY: Duration = Duration::from_millis(200);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A tag value source.
#[derive(Debug)]
enum TagValue {
    Literal(String),
    Header(HeaderName, Option<String>),
}

/// Tracing of one listener, ready to run.
#[derive(Debug)]
pub struct Tracer {
    exporter: Arc<Exporter>,
    service: Arc<str>,
    overall: f64,
    client: f64,
    random: f64,
    tags: Vec<(String, TagValue)>,
}

/// One request's trace context.
#[derive(Debug)]
pub struct Context {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    /// Whether the span is recorded.
    pub sampled: bool,
    start: SystemTime,
    method: String,
    target: String,
    host: String,
    tags: Vec<(String, String)>,
}

/// What the request path learned, for the span.
#[derive(Debug)]
pub struct Outcome<'a> {
    /// The response status.
    pub status: u16,
    /// The listener.
    pub listener: &'a str,
    /// The route resource (`-`: none).
    pub route: &'a str,
    /// The cluster, when one was chosen.
    pub cluster: Option<&'a str>,
    /// The endpoint that answered.
    pub upstream: Option<&'a str>,
}

fn hex<const N: usize>(bytes: &[u8; N]) -> String {
    let mut s = String::with_capacity(N * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A W3C `traceparent` (version 00): trace id, parent span id, sampled flag; `None` when malformed or all-zero.
pub fn parse_traceparent(value: &str) -> Option<([u8; 16], [u8; 8], bool)> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace = unhex::<16>(parts.next()?)?;
    let parent = unhex::<8>(parts.next()?)?;
    let flags = unhex::<1>(parts.next()?)?;
    // Version ff is invalid; version 00 has exactly four fields (later versions may add more).
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace, parent, flags[0] & 1 == 1))
}

fn nonzero<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = std::array::from_fn(|_| rand::random::<u8>());
        if id != [0; N] {
            return id;
        }
    }
}

fn roll(percent: f64) -> bool {
    percent >= 100.0 || (percent > 0.0 && rand::random::<f64>() * 100.0 < percent)
}

impl Tracer {
    /// Starts a request's trace: decides whether it is sampled and sets the `traceparent` the upstream gets.
    pub fn begin<B>(&self, req: &mut Request<B>) -> Context {
        let incoming = req.headers().get(&TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(parse_traceparent);
        let (trace_id, parent, decided) = match incoming {
            Some((trace, parent, sampled)) => (trace, Some(parent), sampled),
            None => {
                let chance = if req.headers().contains_key(&CLIENT_TRACE_ID) { self.client } else { self.random };
                (nonzero(), None, roll(chance))
            }
        };
        let sampled = decided && roll(self.overall);
        let span_id = nonzero();
        let header = format!("00-{}-{}-{}", hex(&trace_id), hex(&span_id), if sampled { "01" } else { "00" });
        if let Ok(v) = HeaderValue::from_str(&header) {
            req.headers_mut().insert(TRACEPARENT.clone(), v);
        }
        let mut ctx = Context {
            trace_id,
            span_id,
            parent,
            sampled,
            start: SystemTime::now(),
            method: String::new(),
            target: String::new(),
            host: String::new(),
            tags: Vec::new(),
        };
        if sampled {
            ctx.method = req.method().as_str().to_owned();
            ctx.target = req.uri().path().to_owned();
            ctx.host = req
                .uri()
                .authority()
                .map(|a| a.as_str().to_owned())
                .or_else(|| req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))
                .unwrap_or_default();
            ctx.tags = self.tag_values(req.headers());
        }
        ctx
    }

    fn tag_values(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        self.tags
            .iter()
            .filter_map(|(name, source)| {
                let value = match source {
                    TagValue::Literal(v) => Some(v.clone()),
                    TagValue::Header(h, default) => {
                        headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_owned).or_else(|| default.clone())
                    }
                };
                value.map(|v| (name.clone(), v))
            })
            .collect()
    }

    /// Ends a request's trace: queues its span when it is sampled.
    pub fn end(&self, ctx: Context, outcome: &Outcome<'_>) {
        if !ctx.sampled {
            return;
        }
        let mut attributes = vec![
            ("http.request.method".to_owned(), ctx.method.clone()),
            ("url.path".to_owned(), ctx.target),
            ("server.address".to_owned(), ctx.host),
            ("http.response.status_code".to_owned(), outcome.status.to_string()),
            ("meshgate.listener".to_owned(), outcome.listener.to_owned()),
            ("meshgate.route".to_owned(), outcome.route.to_owned()),
        ];
        if let Some(c) = outcome.cluster {
            attributes.push(("meshgate.cluster".to_owned(), c.to_owned()));
        }
        if let Some(u) = outcome.upstream {
            attributes.push(("meshgate.upstream".to_owned(), u.to_owned()));
        }
        attributes.extend(ctx.tags);
        self.exporter.push(Span {
            trace_id: ctx.trace_id,
            span_id: ctx.span_id,
            parent: ctx.parent,
            name: format!("{} {}", ctx.method, outcome.route),
            service: Arc::clone(&self.service),
            start: ctx.start,
            end: SystemTime::now(),
            status: outcome.status,
            attributes,
        });
    }
}

/// A finished span.
#[derive(Debug, Clone)]
struct Span {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    service: Arc<str>,
    start: SystemTime,
    end: SystemTime,
    status: u16,
    attributes: Vec<(String, String)>,
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// OTLP/HTTP JSON (`ExportTraceServiceRequest`), spans grouped by service.
fn otlp(spans: &[Span]) -> serde_json::Value {
    let mut by_service: Vec<(Arc<str>, Vec<serde_json::Value>)> = Vec::new();
    for s in spans {
        let span = serde_json::json!({
            "traceId": hex(&s.trace_id),
            "spanId": hex(&s.span_id),
            "parentSpanId": s.parent.as_ref().map(hex).unwrap_or_default(),
            "name": s.name,
            "kind": 2,
            "startTimeUnixNano": nanos(s.start).to_string(),
            "endTimeUnixNano": nanos(s.end).to_string(),
            "attributes": s.attributes.iter().map(|(k, v)| serde_json::json!({"key": k, "value": {"stringValue": v}})).collect::<Vec<_>>(),
            "status": {"code": if s.status >= 500 { 2 } else { 0 }},
        });
        match by_service.iter_mut().find(|(name, _)| *name == s.service) {
            Some((_, list)) => list.push(span),
            None => by_service.push((Arc::clone(&s.service), vec![span])),
        }
    }
    serde_json::json!({
        "resourceSpans": by_service.into_iter().map(|(service, spans)| serde_json::json!({
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": &*service}}]},
            "scopeSpans": [{"scope": {"name": "meshgate", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
        })).collect::<Vec<_>>(),
    })
}

/// Zipkin v2 JSON.
fn zipkin(spans: &[Span]) -> serde_json::Value {
    serde_json::Value::Array(
        spans
            .iter()
            .map(|s| {
                let mut tags: serde_json::Map<String, serde_json::Value> =
                    s.attributes.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
                if s.status >= 500 {
                    tags.insert("error".to_owned(), serde_json::Value::String(s.status.to_string()));
                }
                let start = nanos(s.start) / 1000;
                let mut span = serde_json::json!({
                    "traceId": hex(&s.trace_id),
                    "id": hex(&s.span_id),
                    "name": s.name,
                    "kind": "SERVER",
                    "timestamp": u64::try_from(start).unwrap_or(u64::MAX),
                    "duration": u64::try_from(nanos(s.end) / 1000 - start.min(nanos(s.end) / 1000)).unwrap_or(0).max(1),
                    "localEndpoint": {"serviceName": &*s.service},
                    "tags": tags,
                });
                if let Some(p) = &s.parent {
                    span["parentId"] = serde_json::Value::String(hex(p));
                }
                span
            })
            .collect(),
    )
}

/// Sends one collector's spans.
#[derive(Debug)]
pub struct Exporter {
    backend: TraceBackend,
    queue: Mutex<Vec<Span>>,
    wake: tokio::sync::Notify,
    dropped: Counter,
    failing: AtomicBool,
}

impl Exporter {
    fn push(&self, span: Span) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= QUEUE_LIMIT {
            drop(queue);
            self.dropped.inc();
            return;
        }
        queue.push(span);
        let full = queue.len() >= BATCH;
        drop(queue);
        if full {
            self.wake.notify_one();
        }
    }

    fn take(&self) -> Vec<Span> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner))
    }

    async fn send(&self, client: &HttpClient, spans: &[Span]) -> Result<(), String> {
        let (url, body) = match &self.backend {
            TraceBackend::Otlp { url } => (url, otlp(spans)),
            TraceBackend::Zipkin { url } => (url, zipkin(spans)),
        };
        let req = Request::post(url.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(SEND_TIMEOUT, client.request(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() { Ok(()) } else { Err(format!("answered {}", resp.status())) }
    }
}

type HttpClient = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Runs while the exporter is in use: sends what is queued every [`FLUSH_EVERY`] or when a batch is full.
async fn export_loop(exporter: Weak<Exporter>) {
    let client: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    loop {
        let Some(e) = exporter.upgrade() else { return };
        let _ = tokio::time::timeout(FLUSH_EVERY, e.wake.notified()).await;
        let spans = e.take();
        if spans.is_empty() {
            continue;
        }
        for batch in spans.chunks(BATCH) {
            match e.send(&client, batch).await {
                Ok(()) => {
                    if e.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(collector = ?e.backend, "span export works again");
                    }
                }
                Err(why) => {
                    e.dropped.inc_by(batch.len() as u64);
                    if !e.failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(collector = ?e.backend, reason = %why, "span export failed; spans dropped");
                    }
                }
            }
        }
    }
}

/// Exporters by collector, shared by every plan (a collector's exporter lives as long as a plan uses it).
#[derive(Debug, Default)]
pub struct Tracers {
    exporters: Mutex<HashMap<TraceBackend, Arc<Exporter>>>,
}

impl Tracers {
    /// The tracer of a listener's tracing policy, starting its collector's exporter on first use.
    pub fn tracer(&self, tracing: &Tracing, dropped: Counter) -> Result<Tracer, String> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| "no runtime to export spans on".to_owned())?;
        let mut exporters = self.exporters.lock().unwrap_or_else(PoisonError::into_inner);
        let exporter = match exporters.get(&tracing.backend) {
            Some(e) => Arc::clone(e),
            None => {
                let e = Arc::new(Exporter {
                    backend: tracing.backend.clone(),
                    queue: Mutex::new(Vec::new()),
                    wake: tokio::sync::Notify::new(),
                    dropped,
                    failing: AtomicBool::new(false),
                });
                runtime.spawn(export_loop(Arc::downgrade(&e)));
                exporters.insert(tracing.backend.clone(), Arc::clone(&e));
                e
            }
        };
        let mut tags = Vec::new();
        for t in &tracing.tags {
            let source = match (&t.literal, &t.header) {
                (Some(v), _) => TagValue::Literal(v.clone()),
                (None, Some(h)) => TagValue::Header(
                    HeaderName::from_bytes(h.as_bytes())
                        .map_err(|_| format!("tag {}: invalid header {h:?}", t.name))?,
                    t.default.clone(),
                ),
                (None, None) => continue,
            };
            tags.push((t.name.clone(), source));
        }
        Ok(Tracer {
            exporter,
            service: Arc::from(tracing.service.as_str()),
            overall: tracing.overall,
            client: tracing.client,
            random: tracing.random,
            tags,
        })
    }

    /// Stops the exporters of collectors no plan uses any more (after their last batch).
    pub fn retain(&self, keep: &std::collections::HashSet<TraceBackend>) {
        self.exporters.lock().unwrap_or_else(PoisonError::into_inner).retain(|k, _| keep.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing_follows_w3c() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (trace, parent, sampled) = parse_traceparent(good).unwrap();
        assert_eq!(hex(&trace), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&parent), "00f067aa0ba902b7");
        assert!(sampled);
        assert!(!parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().2);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
        // A later version may carry more fields.
        assert!(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_some());
    }

    #[test]
    fn rolls_respect_the_extremes() {
        assert!((0..1000).all(|_| roll(100.0)));
        assert!((0..1000).all(|_| !roll(0.0)));
        let hits = (0..10_000).filter(|_| roll(25.0)).count();
        assert!((2000..3000).contains(&hits), "{hits}");
    }

    #[test]
    fn spans_encode_as_otlp_and_zipkin() {
        let span = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: Some([3; 8]),
            name: "GET r".into(),
            service: Arc::from("edge"),
            start: UNIX_EPOCH + Duration::from_millis(1000),
            end: UNIX_EPOCH + Duration::from_millis(1005),
            status: 502,
            attributes: vec![("meshgate.route".into(), "r".into())],
        };
        let o = otlp(std::slice::from_ref(&span));
        let s = &o["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(o["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"], "edge");
        assert_eq!(s["traceId"], "01010101010101010101010101010101");
        assert_eq!(s["parentSpanId"], "0303030303030303");
        assert_eq!(s["startTimeUnixNano"], "1000000000");
        assert_eq!(s["status"]["code"], 2);
        let z = zipkin(&[span]);
        assert_eq!(z[0]["id"], "0202020202020202");
        assert_eq!(z[0]["parentId"], "0303030303030303");
        assert_eq!((z[0]["timestamp"].as_u64(), z[0]["duration"].as_u64()), (Some(1_000_000), Some(5000)));
        assert_eq!(z[0]["tags"]["error"], "502");
    }
}
