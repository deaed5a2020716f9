//! Access logs (MeshAccessLog): templates with Envoy's command operators, rendered per request, and written off the
//! request path — each sink has a bounded queue drained by its own writer thread; when the queue is full the line
//! is dropped and counted (`meshgate_access_log_dropped`), never waited for.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode, Version};
use meshgate_plan::{LogFormat, LogSink};
use prometheus_client::metrics::counter::Counter;
use serde_json::Value;

/// Lines a sink may hold before new ones are dropped.
const QUEUE: usize = 8192;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Literal(String),
    StartTime,
    /// `%REQ(a?b)%`: the first present of the headers (`:method`, `:path`, `:authority`, `:scheme` included).
    Req(Vec<String>),
    Resp(Vec<String>),
    ResponseCode,
    ResponseFlags,
    BytesReceived,
    BytesSent,
    Duration,
    Protocol,
    UpstreamHost,
    UpstreamCluster,
    RouteName,
    DownstreamRemoteAddress,
    DownstreamRemoteAddressWithoutPort,
    /// An operator meshgate does not know: rendered as `-`.
    Unknown,
}

impl Op {
    fn numeric(&self) -> bool {
        matches!(self, Op::ResponseCode | Op::BytesReceived | Op::BytesSent | Op::Duration)
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Op>);

fn header_list(arg: &str) -> Vec<String> {
    // `%REQ(X-Header):10%` style length limits are ignored.
    arg.split('?').map(|h| h.trim().to_ascii_lowercase()).collect()
}

impl Template {
    /// Parses `%OPERATOR%` and `%OPERATOR(arg)%` placeholders; everything else is literal.
    pub fn parse(text: &str) -> Template {
        let mut ops = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else { break };
            let name = &after[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "_():-?.".contains(c))
                && name.starts_with(|c: char| c.is_ascii_uppercase());
            if !valid {
                literal.push_str(&rest[..=start]);
                rest = after;
                continue;
            }
            literal.push_str(&rest[..start]);
            if !literal.is_empty() {
                ops.push(Op::Literal(std::mem::take(&mut literal)));
            }
            let (op, arg) = match name.split_once('(') {
                Some((op, arg)) => (op, arg.split(')').next().unwrap_or_default()),
                None => (name, ""),
            };
            ops.push(match op {
                "START_TIME" => Op::StartTime,
                "REQ" => Op::Req(header_list(arg)),
                "RESP" => Op::Resp(header_list(arg)),
                "RESPONSE_CODE" => Op::ResponseCode,
                "RESPONSE_FLAGS" => Op::ResponseFlags,
                "BYTES_RECEIVED" => Op::BytesReceived,
                "BYTES_SENT" => Op::BytesSent,
                "DURATION" => Op::Duration,
                "PROTOCOL" => Op::Protocol,
                "UPSTREAM_HOST" => Op::UpstreamHost,
                "UPSTREAM_CLUSTER" => Op::UpstreamCluster,
                "ROUTE_NAME" => Op::RouteName,
                "DOWNSTREAM_REMOTE_ADDRESS" => Op::DownstreamRemoteAddress,
                "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => Op::DownstreamRemoteAddressWithoutPort,
                _ => Op::Unknown,
            });
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            ops.push(Op::Literal(literal));
        }
        Template(ops)
    }
}

/// What a log line can tell about one request.
#[derive(Debug)]
pub struct Entry<'a> {
    /// When the request arrived.
    pub start: SystemTime,
    /// Method.
    pub method: &'a Method,
    /// Path and query as received.
    pub path: &'a str,
    /// Host or `:authority`.
    pub authority: &'a str,
    /// HTTP version.
    pub version: Version,
    /// Request headers.
    pub request_headers: &'a HeaderMap,
    /// Response status.
    pub status: StatusCode,
    /// Response headers.
    pub response_headers: &'a HeaderMap,
    /// Time to the response head.
    pub duration: Duration,
    /// The endpoint that answered, if any.
    pub upstream_host: Option<&'a str>,
    /// The cluster, if any.
    pub cluster: Option<&'a str>,
    /// The route's name.
    pub route: &'a str,
    /// The client.
    pub peer: SocketAddr,
    /// Envoy-style response flags (`NR` no route, `UF` connect failure, `UT` timeout, `RL` rate limited, `FI`
    /// fault injected, `-` none).
    pub flags: &'a str,
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// `2026-11-26T14:56:27.123Z`.
fn iso8601(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

impl Entry<'_> {
    fn header(&self, names: &[String], response: bool) -> Option<String> {
        for name in names {
            let v = match (response, name.as_str()) {
                (false, ":method") => Some(self.method.as_str().to_owned()),
                (false, ":path") => Some(self.path.to_owned()),
                (false, ":authority") | (false, "host") if !self.authority.is_empty() => {
                    Some(self.authority.to_owned())
                }
                (false, ":scheme") => None,
                (false, n) => self.request_headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned),
                (true, n) => self.response_headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned),
            };
            if v.is_some() {
                return v;
            }
        }
        None
    }

    fn value(&self, op: &Op) -> Option<String> {
        Some(match op {
            Op::Literal(s) => s.clone(),
            Op::StartTime => iso8601(self.start),
            Op::Req(names) => self.header(names, false)?,
            Op::Resp(names) => self.header(names, true)?,
            Op::ResponseCode => self.status.as_u16().to_string(),
            Op::ResponseFlags => self.flags.to_owned(),
            Op::BytesReceived => self
                .request_headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_owned(),
            Op::BytesSent => self
                .response_headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_owned(),
            Op::Duration => self.duration.as_millis().to_string(),
            Op::Protocol => protocol(self.version).to_owned(),
            Op::UpstreamHost => self.upstream_host?.to_owned(),
            Op::UpstreamCluster => self.cluster?.to_owned(),
            Op::RouteName => self.route.to_owned(),
            Op::DownstreamRemoteAddress => self.peer.to_string(),
            Op::DownstreamRemoteAddressWithoutPort => self.peer.ip().to_string(),
            Op::Unknown => return None,
        })
    }

    fn render(&self, t: &Template) -> String {
        let mut out = String::new();
        for op in &t.0 {
            out.push_str(self.value(op).as_deref().unwrap_or("-"));
        }
        out
    }

    /// A JSON value: a lone numeric operator stays a number; a lone missing value is null.
    fn json(&self, t: &Template) -> Value {
        if let [op] = t.0.as_slice() {
            return match self.value(op) {
                None => Value::Null,
                Some(v) if op.numeric() => v.parse::<u64>().map_or(Value::String(v), Value::from),
                Some(v) => Value::String(v),
            };
        }
        Value::String(self.render(t))
    }
}

/// A line format ready to render.
#[derive(Debug, Clone)]
pub enum Formatter {
    /// One template.
    Plain(Template),
    /// JSON fields.
    Json {
        /// Keys and templates.
        fields: Vec<(String, Template)>,
        /// Leave out empty values.
        omit_empty: bool,
    },
}

impl Formatter {
    /// The formatter of a plan format.
    pub fn new(f: &LogFormat) -> Formatter {
        match f {
            LogFormat::Plain(t) => Formatter::Plain(Template::parse(t)),
            LogFormat::Json { fields, omit_empty } => Formatter::Json {
                fields: fields.iter().map(|(k, v)| (k.clone(), Template::parse(v))).collect(),
                omit_empty: *omit_empty,
            },
        }
    }

    /// The line for one request (without the newline).
    pub fn line(&self, e: &Entry<'_>) -> String {
        match self {
            Formatter::Plain(t) => e.render(t),
            Formatter::Json { fields, omit_empty } => {
                let mut map = serde_json::Map::new();
                for (k, t) in fields {
                    let v = e.json(t);
                    let empty = v.is_null() || v.as_str().is_some_and(str::is_empty);
                    if !(empty && *omit_empty) {
                        map.insert(k.clone(), v);
                    }
                }
                Value::Object(map).to_string()
            }
        }
    }
}

/// An access log ready to write to.
#[derive(Debug, Clone)]
pub struct AccessLogRuntime {
    /// How lines look.
    pub formatter: Formatter,
    /// Where they go.
    pub sink: SinkHandle,
}

impl AccessLogRuntime {
    /// Queues the line of one request.
    pub fn log(&self, e: &Entry<'_>) {
        self.sink.send(self.formatter.line(e));
    }
}

/// A queue into one sink's writer.
#[derive(Debug, Clone)]
pub struct SinkHandle {
    tx: SyncSender<String>,
    dropped: Counter,
}

impl SinkHandle {
    fn send(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

/// The writers of every sink in use, shared by all plans (a sink keeps its writer across reloads).
#[derive(Debug, Default)]
pub struct Sinks {
    sinks: Mutex<HashMap<LogSink, SinkHandle>>,
}

impl Sinks {
    /// The handle of `sink`, starting its writer on first use.
    pub fn get(&self, sink: &LogSink, dropped: Counter) -> Result<SinkHandle, String> {
        let mut sinks = self.sinks.lock().map_err(|_| "access-log sinks unavailable".to_owned())?;
        if let Some(h) = sinks.get(sink) {
            return Ok(h.clone());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let target = sink.clone();
        std::thread::Builder::new()
            .name("meshgate-access-log".to_owned())
            .spawn(move || write_loop(&target, &rx))
            .map_err(|e| format!("access-log writer: {e}"))?;
        let handle = SinkHandle { tx, dropped };
        sinks.insert(sink.clone(), handle.clone());
        Ok(handle)
    }

    /// Stops the writers of sinks no plan uses any more (they finish their queue first).
    pub fn retain(&self, keep: &std::collections::HashSet<LogSink>) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.retain(|k, _| keep.contains(k));
        }
    }
}

/// Opens the sink's destination.
fn open(sink: &LogSink) -> std::io::Result<Box<dyn Write>> {
    Ok(match sink {
        LogSink::File(path) if path == "/dev/stdout" => Box::new(std::io::stdout()),
        LogSink::File(path) if path == "/dev/stderr" => Box::new(std::io::stderr()),
        LogSink::File(path) => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        LogSink::Tcp(address) => {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(address.as_str())?
                .next()
                .ok_or_else(|| std::io::Error::other(format!("{address}: no address")))?;
            Box::new(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?)
        }
    })
}

/// Writes queued lines until every handle is gone; flushes whenever the queue runs empty. A destination that
/// fails is reopened (at most once a second); lines meanwhile are lost.
fn write_loop(sink: &LogSink, rx: &Receiver<String>) {
    let mut out: Option<std::io::BufWriter<Box<dyn Write>>> = None;
    let mut last_attempt: Option<std::time::Instant> = None;
    while let Ok(line) = rx.recv() {
        let mut pending = vec![line];
        while let Ok(more) = rx.try_recv() {
            pending.push(more);
            if pending.len() >= 256 {
                break;
            }
        }
        if out.is_none() && last_attempt.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_attempt = Some(std::time::Instant::now());
            match open(sink) {
                Ok(w) => out = Some(std::io::BufWriter::new(w)),
                Err(e) => tracing::warn!(?sink, error = %e, "access log unavailable"),
            }
        }
        let Some(w) = out.as_mut() else { continue };
        let mut failed = false;
        for line in &pending {
            if w.write_all(line.as_bytes()).and_then(|()| w.write_all(b"\n")).is_err() {
                failed = true;
                break;
            }
        }
        if failed || w.flush().is_err() {
            out = None;
        }
    }
}

/// Shared access-log state of a proxy.
pub type SharedSinks = Arc<Sinks>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_envoy_operators() {
        let t = Template::parse(
            "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %UNKNOWN_THING% 100% %REQ(X-MISSING)%",
        );
        let mut req = HeaderMap::new();
        req.insert("user-agent", "curl".parse().unwrap());
        let resp = HeaderMap::new();
        let e = Entry {
            start: SystemTime::UNIX_EPOCH,
            method: &Method::GET,
            path: "/a?b=1",
            authority: "example.com",
            version: Version::HTTP_11,
            request_headers: &req,
            status: StatusCode::OK,
            response_headers: &resp,
            duration: Duration::from_millis(12),
            upstream_host: Some("127.0.0.1:80"),
            cluster: Some("backend"),
            route: "r",
            peer: "10.0.0.1:5555".parse().unwrap(),
            flags: "-",
        };
        let line = e.render(&t);
        assert_eq!(line, "[1970-01-01T00:00:00.000Z] \"GET /a?b=1 HTTP/1.1\" 200 - 100% -");
        let json = Formatter::new(&LogFormat::Json {
            fields: vec![
                ("status".into(), "%RESPONSE_CODE%".into()),
                ("ua".into(), "%REQ(USER-AGENT)%".into()),
                ("missing".into(), "%REQ(X-NONE)%".into()),
                ("mixed".into(), "%REQ(:AUTHORITY)%%REQ(:PATH)%".into()),
            ],
            omit_empty: true,
        });
        assert_eq!(json.line(&e), r#"{"status":200,"ua":"curl","mixed":"example.com/a?b=1"}"#);
    }
}
