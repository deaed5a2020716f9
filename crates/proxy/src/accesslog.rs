//! Access logs (MeshAccessLog): templates with Envoy's command operators, rendered per request straight into a
//! sink's buffer, and written off the request path — each sink has a few bounded buffers (a request thread appends to
//! its own, under a lock nobody else holds but the writer for an instant) drained in batches by the sink's writer
//! thread. A line that finds its buffer full is dropped and counted (`meshgate_access_log_dropped`), never waited for.
//! Nothing is allocated per line: the writer hands back the previous batch's buffer when it takes one.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, Method, StatusCode, Version};
use meshgate_plan::{LogFormat, LogSink};
use prometheus_client::metrics::counter::Counter;

/// Buffers per sink; a thread always appends to the same one.
const SHARDS: usize = 8;
/// Bytes a buffer may hold before new lines are dropped (a sink holds at most `SHARDS` times this).
const SHARD_LIMIT: usize = 1 << 20;
/// A buffer this full wakes the writer before its next turn.
const WAKE_AT: usize = 64 * 1024;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Literal(String),
    StartTime,
    /// `%REQ(a?b)%`: the first present of the headers (`:method`, `:path`, `:authority`, `:scheme` included).
    Req(Vec<HeaderRef>),
    Resp(Vec<HeaderRef>),
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

    /// Whether what it writes never needs a JSON escape (numbers, times, flags, protocols, methods, addresses), so
    /// that a JSON value made only of such operators is not scanned.
    fn escape_free(&self) -> bool {
        match self {
            Op::Literal(s) => !s.bytes().any(needs_escape),
            Op::Req(list) => list.iter().all(|h| *h == HeaderRef::Method),
            Op::Resp(_) | Op::UpstreamHost | Op::UpstreamCluster | Op::RouteName => false,
            Op::StartTime
            | Op::ResponseCode
            | Op::ResponseFlags
            | Op::BytesReceived
            | Op::BytesSent
            | Op::Duration
            | Op::Protocol
            | Op::DownstreamRemoteAddress
            | Op::DownstreamRemoteAddressWithoutPort
            | Op::Unknown => true,
        }
    }
}

/// A parsed template, and whether all its operators are escape-free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Op>, bool);

/// A header an operator reads, resolved when the template is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HeaderRef {
    Method,
    Path,
    /// `:authority`, or `host`.
    Authority,
    Scheme,
    Named(HeaderName),
    /// Not a valid header name: never present.
    Invalid,
}

fn header_list(arg: &str, request: bool) -> Vec<HeaderRef> {
    // `%REQ(X-Header):10%` style length limits are ignored.
    arg.split('?')
        .map(|h| match (request, h.trim().to_ascii_lowercase().as_str()) {
            (true, ":method") => HeaderRef::Method,
            (true, ":path") => HeaderRef::Path,
            (true, ":authority" | "host") => HeaderRef::Authority,
            (true, ":scheme") => HeaderRef::Scheme,
            (_, name) => HeaderName::from_bytes(name.as_bytes()).map_or(HeaderRef::Invalid, HeaderRef::Named),
        })
        .collect()
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
                "REQ" => Op::Req(header_list(arg, true)),
                "RESP" => Op::Resp(header_list(arg, false)),
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
        let escape_free = ops.iter().all(Op::escape_free);
        Template(ops, escape_free)
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

/// `2026-11-26T14:56:27.123Z`; the part down to the second is formatted once per second per thread.
fn iso8601(t: SystemTime, out: &mut String) {
    thread_local! {
        static CACHE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != secs {
            let dt = time::OffsetDateTime::from(t);
            cache.1 = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second()
            );
            cache.0 = secs;
        }
        out.push_str(&cache.1);
    });
    let ms = since.subsec_millis();
    out.push('.');
    for d in [ms / 100, ms / 10 % 10, ms % 10] {
        out.push(char::from(b'0' + u8::try_from(d).unwrap_or(0)));
    }
    out.push('Z');
}

/// Appends a number in decimal.
fn push_digits(n: u64, out: &mut String) {
    out.push_str(itoa::Buffer::new().format(n));
}

impl Entry<'_> {
    fn header(&self, names: &[HeaderRef], response: bool) -> Option<&str> {
        let headers = if response { self.response_headers } else { self.request_headers };
        names.iter().find_map(|name| match name {
            HeaderRef::Method => Some(self.method.as_str()),
            HeaderRef::Path => Some(self.path),
            HeaderRef::Authority => Some(self.authority).filter(|a| !a.is_empty()),
            HeaderRef::Scheme | HeaderRef::Invalid => None,
            HeaderRef::Named(n) => headers.get(n).and_then(|v| v.to_str().ok()),
        })
    }

    /// Appends the value of `op` to `out`; false when it has none.
    fn write(&self, op: &Op, out: &mut String) -> bool {
        use std::fmt::Write as _;
        match op {
            Op::Literal(s) => out.push_str(s),
            Op::StartTime => iso8601(self.start, out),
            Op::Req(names) => match self.header(names, false) {
                Some(v) => out.push_str(v),
                None => return false,
            },
            Op::Resp(names) => match self.header(names, true) {
                Some(v) => out.push_str(v),
                None => return false,
            },
            Op::ResponseCode => push_digits(u64::from(self.status.as_u16()), out),
            Op::ResponseFlags => out.push_str(self.flags),
            Op::BytesReceived | Op::BytesSent => {
                let headers = if *op == Op::BytesSent { self.response_headers } else { self.request_headers };
                out.push_str(headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or("0"));
            }
            Op::Duration => push_digits(u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX), out),
            Op::Protocol => out.push_str(protocol(self.version)),
            Op::UpstreamHost => match self.upstream_host {
                Some(h) => out.push_str(h),
                None => return false,
            },
            Op::UpstreamCluster => match self.cluster {
                Some(c) => out.push_str(c),
                None => return false,
            },
            Op::RouteName => out.push_str(self.route),
            Op::DownstreamRemoteAddress => {
                let _ = write!(out, "{}", self.peer);
            }
            Op::DownstreamRemoteAddressWithoutPort => {
                let _ = write!(out, "{}", self.peer.ip());
            }
            Op::Unknown => return false,
        }
        true
    }

    fn render_into(&self, t: &Template, out: &mut String) {
        for op in &t.0 {
            if !self.write(op, out) {
                out.push('-');
            }
        }
    }

    #[cfg(test)]
    fn render(&self, t: &Template) -> String {
        let mut out = String::new();
        self.render_into(t, &mut out);
        out
    }

    /// Appends a JSON value: a lone numeric operator stays a number, a lone missing value is null; returns false
    /// when the value is empty or missing (for `omitEmptyValues`). Values are rendered in place and escaped only when
    /// they hold a character that needs it.
    fn json_into(&self, t: &Template, out: &mut String) -> bool {
        if let [op] = t.0.as_slice()
            && op.numeric()
        {
            let mark = out.len();
            if !self.write(op, out) {
                out.push_str("null");
                return false;
            }
            return out.len() > mark;
        }
        let open = out.len();
        out.push('"');
        let mark = out.len();
        let present = match t.0.as_slice() {
            [op] => self.write(op, out),
            _ => {
                self.render_into(t, out);
                true
            }
        };
        if !present {
            out.truncate(open);
            out.push_str("null");
            return false;
        }
        if !t.1 && out.as_bytes()[mark..].iter().any(|&b| needs_escape(b)) {
            let raw = out.split_off(mark);
            escape_into(&raw, out);
        }
        let empty = out.len() == mark;
        out.push('"');
        !empty
    }
}

fn needs_escape(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// Appends `s` as a JSON string.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    escape_into(s, out);
    out.push('"');
}

/// Appends `s` with JSON string escapes.
fn escape_into(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    if !s.bytes().any(needs_escape) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// A line format ready to render.
#[derive(Debug, Clone)]
pub enum Formatter {
    /// One template.
    Plain(Template),
    /// JSON fields.
    Json {
        /// Each key already written as JSON with its colon (`"status":`), and its template.
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
                fields: fields
                    .iter()
                    .map(|(k, v)| {
                        let mut key = String::new();
                        json_string(k, &mut key);
                        key.push(':');
                        (key, Template::parse(v))
                    })
                    .collect(),
                omit_empty: *omit_empty,
            },
        }
    }

    /// The request headers its templates read (lowercase), so that only those are kept for the log.
    pub fn request_headers(&self) -> Vec<String> {
        let templates: Vec<&Template> = match self {
            Formatter::Plain(t) => vec![t],
            Formatter::Json { fields, .. } => fields.iter().map(|(_, t)| t).collect(),
        };
        let mut names = Vec::new();
        for t in templates {
            for op in &t.0 {
                match op {
                    Op::Req(list) => names.extend(list.iter().filter_map(|n| match n {
                        HeaderRef::Named(n) => Some(n.as_str().to_owned()),
                        // Without `:authority` (HTTP/1), the Host header is the authority.
                        HeaderRef::Authority => Some(http::header::HOST.as_str().to_owned()),
                        _ => None,
                    })),
                    Op::BytesReceived => names.push(http::header::CONTENT_LENGTH.as_str().to_owned()),
                    _ => {}
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Appends the line for one request, with its newline.
    pub fn write_line(&self, e: &Entry<'_>, out: &mut String) {
        match self {
            Formatter::Plain(t) => e.render_into(t, out),
            Formatter::Json { fields, omit_empty } => {
                let start = out.len();
                out.push('{');
                for (k, t) in fields {
                    let mark = out.len();
                    if out.len() > start + 1 {
                        out.push(',');
                    }
                    out.push_str(k);
                    if !e.json_into(t, out) && *omit_empty {
                        out.truncate(mark);
                    }
                }
                out.push('}');
            }
        }
        out.push('\n');
    }

    /// The line for one request, without the newline.
    #[cfg(test)]
    fn line(&self, e: &Entry<'_>) -> String {
        let mut out = String::new();
        self.write_line(e, &mut out);
        out.pop();
        out
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
    /// Appends the line of one request to the sink's buffer of this thread, or drops it when that buffer is full.
    pub fn log(&self, e: &Entry<'_>) {
        let queue = &self.sink.queue;
        let mut buf = queue.shards[shard_index()].0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buf.len() >= SHARD_LIMIT {
            drop(buf);
            self.sink.dropped.inc();
            return;
        }
        self.formatter.write_line(e, &mut buf);
        let full = buf.len() >= WAKE_AT;
        drop(buf);
        if full
            && !queue.waking.swap(true, Ordering::AcqRel)
            && let Some(t) = queue.writer.get()
        {
            t.unpark();
        }
    }
}

/// The buffer a thread appends to: threads take indices in turn, so that each worker has its own while there are no
/// more workers than buffers.
fn shard_index() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

/// One buffer of lines, on its own cache lines so that threads appending to neighbours do not contend.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<String>);

/// A sink's buffers, taken in batches by the writer thread, which wakes on its own every [`FLUSH_EVERY`] (or sooner
/// when a buffer passes [`WAKE_AT`]) — a request never wakes a thread per line.
#[derive(Debug)]
struct Queue {
    shards: [Shard; SHARDS],
    writer: OnceLock<std::thread::Thread>,
    open: AtomicBool,
    /// A request has woken the writer since it last ran.
    waking: AtomicBool,
}

/// How often a writer wakes to write what was queued.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// A queue into one sink's writer.
#[derive(Debug, Clone)]
pub struct SinkHandle {
    queue: Arc<Queue>,
    dropped: Counter,
    /// Keeps the writer alive while any plan uses the sink.
    _alive: Arc<Alive>,
}

/// Stops the writer when the last handle goes.
#[derive(Debug)]
struct Alive(Arc<Queue>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.open.store(false, Ordering::Release);
        if let Some(t) = self.0.writer.get() {
            t.unpark();
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
        let queue = Arc::new(Queue {
            shards: Default::default(),
            writer: OnceLock::new(),
            open: AtomicBool::new(true),
            waking: AtomicBool::new(false),
        });
        let target = sink.clone();
        let for_writer = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("meshgate-access-log".to_owned())
            .spawn(move || write_loop(&target, &for_writer))
            .map_err(|e| format!("access-log writer: {e}"))?;
        let _ = queue.writer.set(thread.thread().clone());
        let handle = SinkHandle { _alive: Arc::new(Alive(Arc::clone(&queue))), queue, dropped };
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

/// Writes the buffered lines in batches until the sink is closed and drained. A destination that fails is reopened
/// (at most once a second); lines meanwhile are lost.
fn write_loop(sink: &LogSink, queue: &Queue) {
    let mut out: Option<Box<dyn Write>> = None;
    let mut last_attempt: Option<std::time::Instant> = None;
    // The batch being written; its allocation goes back to a buffer at the next swap.
    let mut batch = String::new();
    loop {
        let open_now = queue.open.load(Ordering::Acquire);
        queue.waking.store(false, Ordering::Release);
        let mut wrote = false;
        for shard in &queue.shards {
            {
                let mut buf = shard.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if buf.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *buf, &mut batch);
            }
            if out.is_none() && last_attempt.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                last_attempt = Some(std::time::Instant::now());
                match open(sink) {
                    Ok(w) => out = Some(w),
                    Err(e) => tracing::warn!(?sink, error = %e, "access log unavailable"),
                }
            }
            if let Some(w) = out.as_mut()
                && w.write_all(batch.as_bytes()).is_err()
            {
                out = None;
            }
            batch.clear();
            wrote = true;
        }
        if wrote
            && let Some(w) = out.as_mut()
            && w.flush().is_err()
        {
            out = None;
        }
        if !open_now && !wrote {
            return;
        }
        if open_now {
            std::thread::park_timeout(FLUSH_EVERY);
        }
    }
}

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

        // Values are rendered in place and escaped only when they need it; escape-free operators are not scanned.
        let odd = Entry { path: "/a\"b\\c\n", method: &Method::POST, ..e };
        let json = Formatter::new(&LogFormat::Json {
            fields: vec![
                ("path".into(), "%REQ(:PATH)%".into()),
                ("m".into(), "%REQ(:METHOD)% %RESPONSE_CODE%".into()),
                ("host".into(), "%REQ(HOST)%".into()),
            ],
            omit_empty: false,
        });
        assert_eq!(json.line(&odd), r#"{"path":"/a\"b\\c\n","m":"POST 200","host":"example.com"}"#);
        assert!(Template::parse("%REQ(:METHOD)% %RESPONSE_CODE% %START_TIME%").1);
        assert!(!Template::parse("%REQ(:PATH)%").1);
        assert!(!Template::parse("say \"%RESPONSE_CODE%\"").1);
        // The Host header is kept for the log only when a template reads the authority.
        assert_eq!(json.request_headers(), ["host"]);
        let plain = Formatter::new(&LogFormat::Plain("%RESPONSE_CODE% %BYTES_RECEIVED%".into()));
        assert_eq!(plain.request_headers(), ["content-length"]);
    }

    #[test]
    fn lines_from_many_threads_all_reach_the_file_once_the_sink_closes() {
        let dir = std::env::temp_dir().join(format!("meshgate-accesslog-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let sink = LogSink::File(dir.display().to_string());
        let sinks = Sinks::default();
        let dropped = Counter::default();
        let log = AccessLogRuntime {
            formatter: Formatter::new(&LogFormat::Plain("%RESPONSE_CODE% %REQ(:PATH)%".into())),
            sink: sinks.get(&sink, dropped.clone()).unwrap(),
        };
        let (req, resp) = (HeaderMap::new(), HeaderMap::new());
        std::thread::scope(|scope| {
            for t in 0..4 {
                let log = &log;
                let (req, resp) = (&req, &resp);
                scope.spawn(move || {
                    for i in 0..500 {
                        let path = format!("/t{t}/{i}");
                        log.log(&Entry {
                            start: SystemTime::UNIX_EPOCH,
                            method: &Method::GET,
                            path: &path,
                            authority: "",
                            version: Version::HTTP_11,
                            request_headers: req,
                            status: StatusCode::OK,
                            response_headers: resp,
                            duration: Duration::ZERO,
                            upstream_host: None,
                            cluster: None,
                            route: "r",
                            peer: "10.0.0.1:5555".parse().unwrap(),
                            flags: "-",
                        });
                    }
                });
            }
        });
        // The last handle goes: the writer drains every buffer, then stops.
        drop(log);
        sinks.retain(&std::collections::HashSet::new());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut lines = Vec::new();
        while std::time::Instant::now() < deadline {
            lines = std::fs::read_to_string(&dir).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>();
            if lines.len() >= 2000 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(&dir);
        assert_eq!(lines.len(), 2000, "every line written once");
        assert!(lines.iter().all(|l| l.starts_with("200 /t")));
        assert!(lines.contains(&"200 /t3/499".to_owned()));
        assert_eq!(dropped.get(), 0);
    }
}
