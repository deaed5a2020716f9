//! Access logs (MeshAccessLog): templates with Envoy's command operators, rendered per request straight into a
//! sink's buffer, and written off the request path — each sink has a few bounded buffers (a request thread appends to
//! its own, under a lock nobody else holds but the writer for an instant) drained in batches by the sink's writer
//! thread. A line that finds its buffer full is dropped and counted (`meshgate_access_log_dropped`), never waited for.
//! Nothing is allocated per line: the writer hands back the previous batch's buffer when it takes one.
//!
//! A format is compiled once per plan into pieces: literal text with the JSON keys, quotes and punctuation merged in
//! (short literals are copied as one fixed-size block), and operators that know whether their value can need a JSON
//! escape. The time stamp comes from the buffer's clock (the wall clock read at most once a second, the text redone
//! once a millisecond), so a request reads no clock for its line beyond the monotonic one it already has.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

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

    /// Whether it always has a value (so that, alone in a JSON value, it is never `null`).
    fn always_present(&self) -> bool {
        match self {
            Op::Req(list) => matches!(list.first(), Some(HeaderRef::Method | HeaderRef::Path)),
            Op::Literal(_)
            | Op::StartTime
            | Op::ResponseCode
            | Op::ResponseFlags
            | Op::BytesReceived
            | Op::BytesSent
            | Op::Duration
            | Op::Protocol
            | Op::RouteName
            | Op::DownstreamRemoteAddress
            | Op::DownstreamRemoteAddressWithoutPort => true,
            Op::Resp(_) | Op::UpstreamHost | Op::UpstreamCluster | Op::Unknown => false,
        }
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

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Op>);

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
        Template(ops)
    }
}

/// What a log line can tell about one request.
#[derive(Debug)]
pub struct Entry<'a> {
    /// When the request arrived (monotonic; the buffer's clock turns it into wall-clock time).
    pub start: Instant,
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
    /// Whether the upstream host needs no JSON escape (known when its endpoint was set up).
    pub upstream_plain: bool,
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

/// A buffer of lines, and the clock its lines read: the wall-clock time of one monotonic instant, read again at most
/// once a second (so a request does not read the wall clock; a step of it shows within a second), and the last time
/// stamp written (its date and time down to the second formatted once a second, its milliseconds once a millisecond).
#[derive(Debug)]
pub struct Lines {
    text: Vec<u8>,
    /// A monotonic instant and the wall-clock milliseconds since the Unix epoch at it.
    base: Option<(Instant, u64)>,
    /// The milliseconds since the epoch `stamp` shows.
    stamp_ms: u64,
    /// The monotonic instants `stamp` stands for, from and until (within one second of `base`, which aligns them).
    span: Option<(Instant, Instant)>,
    /// `2026-11-26T14:56:27.123Z` (the first [`STAMP`] bytes).
    stamp: [u8; SHORT],
}

/// The length of a time stamp.
const STAMP: usize = 24;

impl Default for Lines {
    fn default() -> Self {
        Lines { text: Vec::new(), base: None, stamp_ms: u64::MAX, span: None, stamp: [0; SHORT] }
    }
}

/// Whole milliseconds of `d`, without the 128-bit arithmetic of `as_millis`.
pub(crate) fn millis(d: Duration) -> u64 {
    d.as_secs().saturating_mul(1000).saturating_add(u64::from(d.subsec_millis()))
}

const SECOND: Duration = Duration::from_secs(1);

impl Lines {
    /// Wall-clock milliseconds since the Unix epoch at the monotonic instant `at`.
    fn wall_ms(&mut self, at: Instant) -> u64 {
        if let Some((mono, ms)) = self.base {
            // Lines come from several threads, and a request may have started before the base was read.
            match at.checked_duration_since(mono) {
                Some(after) if after < SECOND => return ms + u64::from(after.subsec_millis()),
                None => {
                    let before = mono.duration_since(at);
                    if before < SECOND {
                        return ms.saturating_sub(u64::from(before.subsec_millis()));
                    }
                }
                _ => {}
            }
        }
        let (mono, wall) = (Instant::now(), SystemTime::now());
        let ms = millis(wall.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default());
        self.base = Some((mono, ms));
        ms.saturating_sub(millis(mono.saturating_duration_since(at)))
    }

    /// `2026-11-26T14:56:27.123Z`. Most lines fall in the millisecond of the line before: two comparisons of
    /// instants tell, and the stamp is copied as it is.
    #[inline]
    fn iso8601(&mut self, at: Instant) {
        if !self.span.is_some_and(|(from, until)| from <= at && at < until) {
            self.restamp(at);
        }
        let end = self.text.len() + STAMP;
        self.text.extend_from_slice(&self.stamp);
        self.text.truncate(end);
    }

    /// Makes `stamp` show `at`, and notes the instants it stands for.
    #[inline(never)]
    fn restamp(&mut self, at: Instant) {
        let ms = self.wall_ms(at);
        if ms != self.stamp_ms {
            if ms / 1000 != self.stamp_ms / 1000 || self.stamp_ms == u64::MAX {
                // Years stay within 0000..=9999 (`time` refuses others), so the prefix is always 20 bytes.
                let dt = i64::try_from(ms / 1000)
                    .ok()
                    .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                let prefix = format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                    dt.year(),
                    u8::from(dt.month()),
                    dt.day(),
                    dt.hour(),
                    dt.minute(),
                    dt.second()
                );
                let n = prefix.len().min(STAMP - 4);
                self.stamp[..n].copy_from_slice(&prefix.as_bytes()[..n]);
            }
            let [h, t, o] = digits(ms % 1000);
            self.stamp[STAMP - 4..STAMP].copy_from_slice(&[h, t, o, b'Z']);
            self.stamp_ms = ms;
        }
        // At `k` ms past the base's instant (and below a second), `wall_ms` reads the base's milliseconds plus `k`
        // for a whole millisecond of instants. Before the base its milliseconds align otherwise: no span is kept.
        const MS: Duration = Duration::from_millis(1);
        self.span = self.base.and_then(|(mono, base_ms)| {
            let k = ms.checked_sub(base_ms).filter(|k| *k < 1000)?;
            let from = mono.checked_add(Duration::from_millis(k))?;
            Some((from, from.checked_add(MS)?))
        });
    }
}

/// The three decimal digits of `n` (below 1,000).
#[inline]
fn digits(n: u64) -> [u8; 3] {
    // Each digit is below 10, so it fits a byte.
    [n / 100 % 10, n / 10 % 10, n % 10].map(|d| b'0' + (d as u8))
}

/// Appends `n` in decimal; numbers below 1,000 (status codes, most durations in milliseconds) without a conversion
/// buffer.
#[inline]
fn push_digits(n: u64, out: &mut Vec<u8>) {
    match n {
        // Each digit is below 10, so it fits a byte.
        0..=9 => out.push(b'0' + n as u8),
        10..=99 => out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]),
        100..=999 => out.extend_from_slice(&digits(n)),
        _ => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
    }
}

/// Bytes a short literal may have.
const SHORT: usize = 32;

/// Literal text of a line. A short one is copied as one fixed-size block and cut to its length: cheaper than a call
/// to `memcpy` for the few bytes of a key or a separator.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Text {
    Short([u8; SHORT], usize),
    Long(Box<str>),
}

impl Default for Text {
    fn default() -> Text {
        Text::Short([0; SHORT], 0)
    }
}

impl Text {
    fn new(s: &str) -> Text {
        if s.len() <= SHORT {
            let mut bytes = [0; SHORT];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Text::Short(bytes, s.len())
        } else {
            Text::Long(s.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Text::Short(bytes, len) => std::str::from_utf8(&bytes[..*len]).unwrap_or_default(),
            Text::Long(s) => s,
        }
    }

    #[inline(always)]
    fn append(&self, out: &mut Vec<u8>) {
        match self {
            Text::Short(bytes, len) => {
                let end = out.len() + len;
                out.extend_from_slice(bytes);
                out.truncate(end);
            }
            Text::Long(s) => out.extend_from_slice(s.as_bytes()),
        }
    }
}

/// How an operator's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Emit {
    /// As it is, JSON-escaped when `escape`; a missing value is `-` (plain text, and the parts of a JSON string).
    Text { escape: bool },
    /// A lone numeric operator in JSON: the number, or `null`.
    Number,
    /// A lone operator in JSON that may have no value: a quoted string, or `null`.
    Quoted { escape: bool },
}

/// A compiled line (or JSON value): each value with the literal text before it, then the text after the last. One
/// step per value, with no step of its own for a literal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Compiled {
    values: Vec<(Text, Op, Emit)>,
    tail: Text,
}

impl Compiled {
    /// Appends literal text (merged with the literal before it).
    fn lit(&mut self, s: &str) {
        if !s.is_empty() {
            self.tail = Text::new(&format!("{}{s}", self.tail.as_str()));
        }
    }

    /// Appends a value, after the literal text so far.
    fn value(&mut self, op: &Op, emit: Emit) {
        let before = std::mem::take(&mut self.tail);
        self.values.push((before, op.clone(), emit));
    }
}

/// `s` with JSON string escapes.
fn json_escaped(s: &str) -> String {
    let mut out = Vec::new();
    escape_into(s, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends the pieces of a JSON value: a lone numeric operator stays a number, a lone operator that may be missing
/// is a string or null, anything else is a string with `-` for missing parts.
fn json_value(t: &Template, out: &mut Compiled) {
    match t.0.as_slice() {
        [op] if op.numeric() => out.value(op, Emit::Number),
        [op] if !matches!(op, Op::Literal(_)) && !op.always_present() => {
            out.value(op, Emit::Quoted { escape: !op.escape_free() });
        }
        ops => {
            out.lit("\"");
            for op in ops {
                match op {
                    Op::Literal(s) => out.lit(&json_escaped(s)),
                    op => out.value(op, Emit::Text { escape: !op.escape_free() }),
                }
            }
            out.lit("\"");
        }
    }
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

    /// Appends the value of `op`; false when it has none.
    #[inline(always)]
    fn write(&self, op: &Op, out: &mut Lines) -> bool {
        let text: &str = match op {
            Op::StartTime => {
                out.iso8601(self.start);
                return true;
            }
            Op::ResponseCode => {
                // Always three digits (`StatusCode` holds 100..=999): a fixed-size copy from its table.
                let code: [u8; 3] = self.status.as_str().as_bytes().try_into().unwrap_or(*b"000");
                out.text.extend_from_slice(&code);
                return true;
            }
            Op::Duration => {
                push_digits(millis(self.duration), &mut out.text);
                return true;
            }
            Op::Req(names) => match names.first() {
                Some(HeaderRef::Method) => self.method.as_str(),
                Some(HeaderRef::Path) => self.path,
                _ => match self.header(names, false) {
                    Some(v) => v,
                    None => return false,
                },
            },
            Op::UpstreamHost => match self.upstream_host {
                Some(h) => h,
                None => return false,
            },
            Op::Literal(s) => s,
            Op::Resp(names) => match self.header(names, true) {
                Some(v) => v,
                None => return false,
            },
            Op::ResponseFlags => self.flags,
            Op::BytesReceived | Op::BytesSent => {
                let headers = if *op == Op::BytesSent { self.response_headers } else { self.request_headers };
                headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or("0")
            }
            Op::Protocol => protocol(self.version),
            Op::UpstreamCluster => match self.cluster {
                Some(c) => c,
                None => return false,
            },
            Op::RouteName => self.route,
            Op::DownstreamRemoteAddress | Op::DownstreamRemoteAddressWithoutPort => {
                self.address(*op == Op::DownstreamRemoteAddress, &mut out.text);
                return true;
            }
            Op::Unknown => return false,
        };
        out.text.extend_from_slice(text.as_bytes());
        true
    }

    #[cold]
    fn address(&self, port: bool, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let _ = if port { write!(out, "{}", self.peer) } else { write!(out, "{}", self.peer.ip()) };
    }

    fn render(&self, line: &Compiled, out: &mut Lines) {
        for (before, op, emit) in &line.values {
            before.append(&mut out.text);
            match emit {
                Emit::Text { escape } => {
                    let mark = out.text.len();
                    if !self.write(op, out) {
                        out.text.push(b'-');
                    } else if *escape {
                        escape_from(&mut out.text, mark);
                    }
                }
                Emit::Number => {
                    if !self.write(op, out) {
                        out.text.extend_from_slice(b"null");
                    }
                }
                Emit::Quoted { escape } => {
                    let open = out.text.len();
                    out.text.push(b'"');
                    if self.write(op, out) {
                        if *escape && !(self.upstream_plain && matches!(op, Op::UpstreamHost)) {
                            escape_from(&mut out.text, open + 1);
                        }
                        out.text.push(b'"');
                    } else {
                        out.text.truncate(open);
                        out.text.extend_from_slice(b"null");
                    }
                }
            }
        }
        line.tail.append(&mut out.text);
    }
}

/// Whether `s` goes into a JSON string as it is.
pub fn json_plain(s: &str) -> bool {
    !any_needs_escape(s.as_bytes())
}

fn needs_escape(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// Whether `bytes` hold a character JSON escapes (`"`, backslash or a control character), checked eight at a time
/// (the last eight overlapping the ones before when the length is not a multiple of eight).
#[inline]
fn any_needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Whether a byte of `w` is below `n` (n <= 128); with `w ^ c*ONES` and n = 1, whether a byte equals `c`.
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGHS != 0;
    let word = |chunk: &[u8]| {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        below(w, 0x20) || below(w ^ (ONES * u64::from(b'"')), 1) || below(w ^ (ONES * u64::from(b'\\')), 1)
    };
    if bytes.len() < 8 {
        return bytes.iter().any(|&b| needs_escape(b));
    }
    bytes.chunks_exact(8).any(word) || word(&bytes[bytes.len() - 8..])
}

/// JSON-escapes what `out` holds past `mark`, when it has anything to escape.
#[inline]
fn escape_from(out: &mut Vec<u8>, mark: usize) {
    if any_needs_escape(&out[mark..]) {
        escape_tail(out, mark);
    }
}

#[cold]
fn escape_tail(out: &mut Vec<u8>, mark: usize) {
    let raw = out.split_off(mark);
    escape_into(&String::from_utf8_lossy(&raw), out);
}

/// Appends `s` with JSON string escapes.
fn escape_into(s: &str, out: &mut Vec<u8>) {
    use std::io::Write as _;
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

/// A line format compiled for rendering: templates parsed, JSON keys escaped, and literals merged.
#[derive(Debug, Clone)]
pub struct Formatter {
    /// Plain text, or JSON that keeps empty values: the whole line, newline included.
    line: Compiled,
    /// JSON that leaves empty values out (`omitEmptyValues`): each field's key (`"key":`) and value.
    omit_empty: Option<Vec<(Box<str>, Compiled)>>,
    /// The request headers the templates read (kept from each request for its line).
    headers: Vec<String>,
}

impl Formatter {
    /// The formatter of a plan format.
    pub fn new(f: &LogFormat) -> Formatter {
        let templates: Vec<Template>;
        let mut line = Compiled::default();
        let mut omit_empty = None;
        match f {
            LogFormat::Plain(text) => {
                let t = Template::parse(text);
                for op in &t.0 {
                    match op {
                        Op::Literal(s) => line.lit(s),
                        op => line.value(op, Emit::Text { escape: false }),
                    }
                }
                line.lit("\n");
                templates = vec![t];
            }
            LogFormat::Json { fields, omit_empty: omit } => {
                templates = fields.iter().map(|(_, v)| Template::parse(v)).collect();
                let keys = fields.iter().map(|(k, _)| format!("\"{}\":", json_escaped(k)));
                if *omit {
                    let mut keyed = Vec::new();
                    for (key, t) in keys.zip(&templates) {
                        let mut value = Compiled::default();
                        json_value(t, &mut value);
                        keyed.push((key.into_boxed_str(), value));
                    }
                    omit_empty = Some(keyed);
                } else {
                    line.lit("{");
                    for (i, (key, t)) in keys.zip(&templates).enumerate() {
                        line.lit(if i == 0 { "" } else { "," });
                        line.lit(&key);
                        json_value(t, &mut line);
                    }
                    line.lit("}\n");
                }
            }
        }
        Formatter { line, omit_empty, headers: request_headers(&templates) }
    }

    /// The request headers (lowercase) the templates read, which the request path keeps for the log line.
    pub fn request_headers(&self) -> &[String] {
        &self.headers
    }

    /// Appends the line for one request, with its newline.
    fn write_line(&self, e: &Entry<'_>, out: &mut Lines) {
        let Some(fields) = &self.omit_empty else {
            e.render(&self.line, out);
            return;
        };
        out.text.push(b'{');
        let first = out.text.len();
        for (key, value) in fields {
            let mark = out.text.len();
            if mark > first {
                out.text.push(b',');
            }
            out.text.extend_from_slice(key.as_bytes());
            let start = out.text.len();
            e.render(value, out);
            if matches!(&out.text[start..], b"null" | b"\"\"") {
                out.text.truncate(mark);
            }
        }
        out.text.extend_from_slice(b"}\n");
    }

    /// The line for one request, without the newline, as if the wall clock read `wall_ms` when it started.
    #[cfg(test)]
    fn line(&self, e: &Entry<'_>) -> String {
        self.line_at(e, 0)
    }

    #[cfg(test)]
    fn line_at(&self, e: &Entry<'_>, wall_ms: u64) -> String {
        let mut out = Lines { base: Some((e.start, wall_ms)), ..Lines::default() };
        self.write_line(e, &mut out);
        out.text.pop();
        String::from_utf8(out.text).unwrap_or_default()
    }
}

/// The request headers the templates read: named ones, Host for the authority, Content-Length for the bytes received.
fn request_headers(templates: &[Template]) -> Vec<String> {
    let mut names = Vec::new();
    for op in templates.iter().flat_map(|t| &t.0) {
        match op {
            Op::Req(list) => names.extend(list.iter().filter_map(|n| match n {
                HeaderRef::Named(n) => Some(n.as_str().to_owned()),
                HeaderRef::Authority => Some(http::header::HOST.as_str().to_owned()),
                _ => None,
            })),
            Op::BytesReceived => names.push(http::header::CONTENT_LENGTH.as_str().to_owned()),
            _ => {}
        }
    }
    names.sort();
    names.dedup();
    names
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
        if buf.text.len() >= SHARD_LIMIT {
            drop(buf);
            self.sink.dropped.inc();
            return;
        }
        self.formatter.write_line(e, &mut buf);
        let full = buf.text.len() >= WAKE_AT;
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
struct Shard(Mutex<Lines>);

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
    let mut batch = Vec::new();
    loop {
        let open_now = queue.open.load(Ordering::Acquire);
        queue.waking.store(false, Ordering::Release);
        let mut wrote = false;
        for shard in &queue.shards {
            {
                let mut buf = shard.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if buf.text.is_empty() {
                    continue;
                }
                std::mem::swap(&mut buf.text, &mut batch);
            }
            if out.is_none() && last_attempt.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                last_attempt = Some(std::time::Instant::now());
                match open(sink) {
                    Ok(w) => out = Some(w),
                    Err(e) => tracing::warn!(?sink, error = %e, "access log unavailable"),
                }
            }
            if let Some(w) = out.as_mut()
                && w.write_all(&batch).is_err()
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
        let plain = Formatter::new(&LogFormat::Plain(
            "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %UNKNOWN_THING% 100% %REQ(X-MISSING)%".into(),
        ));
        let mut req = HeaderMap::new();
        req.insert("user-agent", "curl".parse().unwrap());
        let resp = HeaderMap::new();
        let e = Entry {
            start: Instant::now(),
            method: &Method::GET,
            path: "/a?b=1",
            authority: "example.com",
            version: Version::HTTP_11,
            request_headers: &req,
            status: StatusCode::OK,
            response_headers: &resp,
            duration: Duration::from_millis(12),
            upstream_host: Some("127.0.0.1:80"),
            upstream_plain: true,
            cluster: Some("backend"),
            route: "r",
            peer: "10.0.0.1:5555".parse().unwrap(),
            flags: "-",
        };
        assert_eq!(plain.line(&e), "[1970-01-01T00:00:00.000Z] \"GET /a?b=1 HTTP/1.1\" 200 - 100% -");
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
        // The same fields with and without omitEmptyValues: `null` and `""` are left out only by the second.
        let mut req = HeaderMap::new();
        req.insert("x-empty", "".parse().unwrap());
        let bare = Entry { upstream_host: None, request_headers: &req, ..e };
        let fields: Vec<(String, String)> = [
            ("start", "%START_TIME%"),
            ("status", "%RESPONSE_CODE%"),
            ("upstream", "%UPSTREAM_HOST%"),
            ("empty", "%REQ(X-EMPTY)%"),
            ("env", "prod \"eu\""),
            ("flags", "%RESPONSE_FLAGS%"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let keep = Formatter::new(&LogFormat::Json { fields: fields.clone(), omit_empty: false });
        assert_eq!(
            keep.line_at(&bare, 1_700_000_000_042),
            r#"{"start":"2023-11-14T22:13:20.042Z","status":200,"upstream":null,"empty":"","env":"prod \"eu\"","flags":"-"}"#
        );
        let omit = Formatter::new(&LogFormat::Json { fields, omit_empty: true });
        assert_eq!(
            omit.line_at(&bare, 1_700_000_000_042),
            r#"{"start":"2023-11-14T22:13:20.042Z","status":200,"env":"prod \"eu\"","flags":"-"}"#
        );
        let up = Entry { upstream_host: Some("10.0.0.7:8080"), ..bare };
        assert!(omit.line(&up).contains(r#","upstream":"10.0.0.7:8080","#));
        // An upstream host is escaped unless its endpoint found it plain.
        let odd = Entry { upstream_host: Some("a\"b:80"), upstream_plain: json_plain("a\"b:80"), ..bare };
        assert!(omit.line(&odd).contains(r#","upstream":"a\"b:80","#), "{}", omit.line(&odd));
        // Keys, quotes and punctuation are merged into literals; only values that may need it are escaped.
        assert_eq!(
            json.line,
            Compiled {
                values: vec![
                    (Text::new("{\"path\":\""), Op::Req(vec![HeaderRef::Path]), Emit::Text { escape: true }),
                    (Text::new("\",\"m\":\""), Op::Req(vec![HeaderRef::Method]), Emit::Text { escape: false }),
                    (Text::new(" "), Op::ResponseCode, Emit::Text { escape: false }),
                    (Text::new("\",\"host\":"), Op::Req(vec![HeaderRef::Authority]), Emit::Quoted { escape: true }),
                ],
                tail: Text::new("}\n"),
            }
        );
        // The Host header is kept for the log only when a template reads the authority.
        assert_eq!(json.request_headers(), ["host"]);
        let plain = Formatter::new(&LogFormat::Plain("%RESPONSE_CODE% %BYTES_RECEIVED%".into()));
        assert_eq!(plain.request_headers(), ["content-length"]);
    }

    proptest::proptest! {
        /// A stamp reused for the lines of one millisecond reads what a fresh buffer would, in any order of instants
        /// around the base (after it, and before it where milliseconds align otherwise).
        #[test]
        fn a_reused_stamp_reads_as_a_fresh_one(offsets in proptest::collection::vec(-900_000i64..999_999, 1..60)) {
            let t0 = Instant::now() + Duration::from_secs(1);
            let base = Some((t0, 1_700_000_000_000));
            let mut lines = Lines { base, ..Lines::default() };
            for us in offsets {
                let d = Duration::from_micros(us.unsigned_abs());
                let at = if us < 0 { t0 - d } else { t0 + d };
                let mut fresh = Lines { base, ..Lines::default() };
                fresh.iso8601(at);
                lines.text.clear();
                lines.iso8601(at);
                proptest::prop_assert_eq!(&lines.text, &fresh.text, "{} µs", us);
            }
        }
    }

    #[test]
    fn the_clock_reads_the_wall_clock_once_a_second() {
        let t0 = Instant::now();
        let mut lines = Lines { base: Some((t0, 1_000)), ..Lines::default() };
        lines.iso8601(t0 + Duration::from_millis(7));
        lines.iso8601(t0 + Duration::from_millis(999));
        lines.iso8601(t0.checked_sub(Duration::from_millis(300)).unwrap_or(t0));
        assert_eq!(lines.text, b"1970-01-01T00:00:01.007Z1970-01-01T00:00:01.999Z1970-01-01T00:00:00.700Z");
        // Within the millisecond of a stamp the stamp is reused; past it, or back before it, it is made again.
        lines.text.clear();
        for us in [7_000, 7_999, 8_000, 7_500, 998_999] {
            lines.iso8601(t0 + Duration::from_micros(us));
        }
        assert_eq!(
            String::from_utf8_lossy(&lines.text),
            "1970-01-01T00:00:01.007Z1970-01-01T00:00:01.007Z1970-01-01T00:00:01.008Z1970-01-01T00:00:01.007Z\
             1970-01-01T00:00:01.998Z"
        );
        // A second past its base, or before it, the clock reads the wall clock again.
        lines.text.clear();
        lines.iso8601(t0 + Duration::from_secs(1));
        assert!(lines.text.starts_with(b"20"), "{:?}", String::from_utf8_lossy(&lines.text));
        let now = millis(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap());
        let mut fresh = Lines::default();
        let ms = fresh.wall_ms(Instant::now());
        assert!(ms.abs_diff(now) < 50, "{ms} vs {now}");
        let earlier = fresh.wall_ms(Instant::now() - Duration::from_millis(100));
        assert!(ms.abs_diff(earlier + 100) < 50, "{earlier} vs {ms}");
        let mut out = Vec::new();
        for n in [0, 7, 42, 200, 999, 1234, 10, 100] {
            push_digits(n, &mut out);
            out.push(b' ');
        }
        assert_eq!(out, b"0 7 42 200 999 1234 10 100 ");
        assert_eq!(digits(7), *b"007");
        // A long literal is kept whole; short ones are cut to their length.
        let long = "x".repeat(SHORT + 5);
        for text in [Text::new(&long), Text::new("ab"), Text::new("")] {
            let mut out = b"<".to_vec();
            text.append(&mut out);
            assert_eq!(&out[1..], text.as_str().as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn the_escape_check_finds_what_a_byte_by_byte_check_finds(bytes in proptest::collection::vec(
            proptest::prop_oneof![
                20 => 0x20u8..0x7f,
                1 => proptest::strategy::Just(b'"'),
                1 => proptest::strategy::Just(b'\\'),
                1 => 0u8..0x20,
                2 => 0x80u8..=0xff,
            ],
            0..40,
        )) {
            proptest::prop_assert_eq!(any_needs_escape(&bytes), bytes.iter().any(|&b| needs_escape(b)));
        }
    }

    /// For profiling (`valgrind --tool=callgrind --toggle-collect='*write_line*'` on the test binary): the benchmark
    /// kit's JSON format, rendered 100,000 times.
    #[test]
    #[ignore = "a profiling loop, not a test"]
    fn format_loop() {
        let fields = [
            ("start", "%START_TIME%"),
            ("method", "%REQ(:METHOD)%"),
            ("path", "%REQ(:PATH)%"),
            ("status", "%RESPONSE_CODE%"),
            ("duration", "%DURATION%"),
            ("upstream", "%UPSTREAM_HOST%"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        let f = Formatter::new(&LogFormat::Json { fields, omit_empty: false });
        let (req, resp) = (HeaderMap::new(), HeaderMap::new());
        let start = Instant::now();
        let e = Entry {
            start,
            method: &Method::GET,
            path: "/",
            authority: "127.0.0.1:18200",
            version: Version::HTTP_11,
            request_headers: &req,
            status: StatusCode::OK,
            response_headers: &resp,
            duration: Duration::from_micros(350),
            upstream_host: Some("127.0.0.1:18081"),
            upstream_plain: true,
            cluster: Some("backend"),
            route: "r",
            peer: "10.0.0.1:5555".parse().unwrap(),
            flags: "-",
        };
        let mut out = Lines::default();
        let mut total = 0;
        for _ in 0..100_000 {
            let e = Entry { start: Instant::now(), ..e };
            f.write_line(std::hint::black_box(&e), &mut out);
            if out.text.len() > 60_000 {
                total += out.text.len();
                out.text.clear();
            }
        }
        assert!(total > 0);
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
                            start: Instant::now(),
                            method: &Method::GET,
                            path: &path,
                            authority: "",
                            version: Version::HTTP_11,
                            request_headers: req,
                            status: StatusCode::OK,
                            response_headers: resp,
                            duration: Duration::ZERO,
                            upstream_host: None,
                            upstream_plain: true,
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
