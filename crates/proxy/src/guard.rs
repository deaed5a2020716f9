//! Per-connection time limits that hyper does not give: a request head must arrive within the header timeout of
//! its first byte (slowloris), and a connection with nothing in flight is closed after the idle timeout.
//!
//! [`GuardedIo`] wraps the socket and notes, with a few atomic stores, when bytes move and when a head begins. No
//! timer is armed per request or per connection: one [`Sweeper`] thread ticks a coarse clock every [`TICK`] and
//! walks the live connections, closing (the next read fails) those past a limit. A limit is therefore enforced
//! between its value and its value plus two ticks, never early. HTTP/2 connections (recognised by their preface, or
//! by ALPN) have no head timeout: their requests are frames, not a slowly-typed head.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use slab::Slab;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How often the sweeper looks (and the coarse clock advances).
pub const TICK: Duration = Duration::from_millis(50);

const MODE_UNKNOWN: u8 = 0;
const MODE_H1: u8 = 1;
const MODE_H2: u8 = 2;
const MODE_TLS_HANDSHAKE: u8 = 3;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Milliseconds since the sweeper started, advanced every tick (never ahead of the real clock).
#[derive(Debug)]
struct CoarseClock {
    start: Instant,
    now_ms: AtomicU64,
}

impl CoarseClock {
    fn advance(&self) -> u64 {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.now_ms.store(now, Ordering::Release);
        now
    }
    fn now(&self) -> u64 {
        self.now_ms.load(Ordering::Acquire)
    }
}

/// The state a connection and the sweeper share.
#[derive(Debug)]
pub struct GuardState {
    clock: Arc<CoarseClock>,
    header_ms: u64,
    idle_ms: u64,
    mode: AtomicU8,
    /// Coarse milliseconds (+1) when the current request head began; 0 = no head pending.
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    last_activity: AtomicU64,
    expired: AtomicBool,
    reader: AtomicWaker,
    /// Request deadlines (coarse ms) of this connection's requests in flight, with their tasks' wakers.
    deadlines: Mutex<Slab<Deadline>>,
}

#[derive(Debug)]
struct Deadline {
    at_ms: u64,
    waker: Waker,
    fired: bool,
}

impl GuardState {
    /// A request head was parsed: the head timer stops; the request is in flight.
    pub fn request_started(&self) {
        self.head_since.store(0, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// A response was sent.
    pub fn request_finished(&self) {
        self.last_activity.store(self.clock.now(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// After a TLS handshake: whether the connection speaks HTTP/2.
    pub fn set_http2(&self, h2: bool) {
        self.mode.store(if h2 { MODE_H2 } else { MODE_H1 }, Ordering::Release);
    }

    fn on_read(&self, bytes: &[u8]) {
        let now = self.clock.now();
        self.last_activity.store(now, Ordering::Relaxed);
        let mut mode = self.mode.load(Ordering::Acquire);
        if mode == MODE_UNKNOWN {
            let n = bytes.len().min(H2_PREFACE.len());
            mode = if bytes[..n] == H2_PREFACE[..n] { MODE_H2 } else { MODE_H1 };
            self.mode.store(mode, Ordering::Release);
        }
        if mode == MODE_H1
            && self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == 0
        {
            self.head_since.store(now + 1, Ordering::Release);
        }
    }

    /// Whether a limit has passed at coarse time `now` (with one tick of slack: the stamps may lag the real clock
    /// by a tick, so a limit is never applied early).
    fn overdue(&self, now: u64) -> bool {
        let slack = u64::try_from(TICK.as_millis()).unwrap_or(0);
        let head = self.head_since.load(Ordering::Acquire);
        if head > 0 && self.mode.load(Ordering::Acquire) == MODE_H1 {
            return now.saturating_sub(head - 1) >= self.header_ms.saturating_add(slack);
        }
        self.in_flight.load(Ordering::Acquire) == 0
            && now.saturating_sub(self.last_activity.load(Ordering::Acquire)) >= self.idle_ms.saturating_add(slack)
    }

    fn expire(&self) {
        self.expired.store(true, Ordering::Release);
        self.reader.wake();
    }

    /// Fires the request deadlines that have passed at coarse time `now`.
    fn fire_deadlines(&self, now: u64) {
        let Ok(mut deadlines) = self.deadlines.lock() else { return };
        for (_, d) in deadlines.iter_mut() {
            if !d.fired && now >= d.at_ms {
                d.fired = true;
                d.waker.wake_by_ref();
            }
        }
    }

    /// Runs `fut` with a time limit kept by the sweeper (limits of [`COARSE_TIMEOUT_MIN`] and more; shorter ones
    /// use the runtime's timer, which is exact but costs a timer-wheel insertion per request).
    pub fn timeout<F: Future>(self: &Arc<Self>, limit: Duration, fut: F) -> Timeout<F> {
        let kind = if limit >= COARSE_TIMEOUT_MIN {
            let slack = u64::try_from(TICK.as_millis()).unwrap_or(0);
            let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
            TimeoutKind::Coarse {
                state: Arc::clone(self),
                at_ms: self.clock.now().saturating_add(limit_ms + slack),
                key: None,
            }
        } else {
            TimeoutKind::Exact(Box::pin(tokio::time::sleep(limit)))
        };
        Timeout { inner: fut, kind }
    }
}

/// Time limits at least this long are kept by the sweeper (enforced between the limit and the limit plus two ticks).
pub const COARSE_TIMEOUT_MIN: Duration = Duration::from_secs(1);

/// The error of a request that ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request timed out")]
pub struct Elapsed;

enum TimeoutKind {
    Coarse { state: Arc<GuardState>, at_ms: u64, key: Option<usize> },
    Exact(Pin<Box<tokio::time::Sleep>>),
}

pin_project_lite::pin_project! {
    /// A future with a time limit; see [`GuardState::timeout`].
    pub struct Timeout<F> {
        #[pin]
        inner: F,
        kind: TimeoutKind,
    }

    impl<F> PinnedDrop for Timeout<F> {
        fn drop(this: Pin<&mut Self>) {
            if let TimeoutKind::Coarse { state, key: Some(key), .. } = &this.kind
                && let Ok(mut deadlines) = state.deadlines.lock()
            {
                deadlines.try_remove(*key);
            }
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind {
            TimeoutKind::Exact(sleep) => {
                if let Poll::Ready(out) = this.inner.poll(cx) {
                    return Poll::Ready(Ok(out));
                }
                sleep.as_mut().poll(cx).map(|()| Err(Elapsed))
            }
            TimeoutKind::Coarse { state, at_ms, key } => {
                if let Some(k) = key
                    && let Ok(mut deadlines) = state.deadlines.lock()
                    && let Some(d) = deadlines.get_mut(*k)
                {
                    if d.fired {
                        return Poll::Ready(Err(Elapsed));
                    }
                    if !d.waker.will_wake(cx.waker()) {
                        d.waker = cx.waker().clone();
                    }
                }
                if let Poll::Ready(out) = this.inner.poll(cx) {
                    if let Some(k) = key.take()
                        && let Ok(mut deadlines) = state.deadlines.lock()
                    {
                        deadlines.try_remove(k);
                    }
                    return Poll::Ready(Ok(out));
                }
                if key.is_none()
                    && let Ok(mut deadlines) = state.deadlines.lock()
                {
                    *key = Some(deadlines.insert(Deadline { at_ms: *at_ms, waker: cx.waker().clone(), fired: false }));
                }
                Poll::Pending
            }
        }
    }
}

#[derive(Debug)]
struct Registry {
    clock: Arc<CoarseClock>,
    conns: Mutex<Slab<Arc<GuardState>>>,
}

/// Closes connections past their limits; one per data plane. Its thread stops when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Sweeper {
    registry: Arc<Registry>,
}

impl Default for Sweeper {
    fn default() -> Self {
        Self::new()
    }
}

impl Sweeper {
    /// Starts the sweeper thread.
    pub fn new() -> Self {
        let clock = Arc::new(CoarseClock { start: Instant::now(), now_ms: AtomicU64::new(0) });
        let registry = Arc::new(Registry { clock, conns: Mutex::new(Slab::new()) });
        let weak = Arc::downgrade(&registry);
        let spawned = std::thread::Builder::new().name("meshgate-sweeper".into()).spawn(move || sweep(&weak));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the connection sweeper; time limits are not enforced");
        }
        Self { registry }
    }

    /// Wraps a socket; `tls` delays the head timer until the handshake tells the protocol.
    pub fn guard<T>(&self, inner: T, tls: bool, header_timeout: Duration, idle_timeout: Duration) -> GuardedIo<T> {
        let clock = Arc::clone(&self.registry.clock);
        let state = Arc::new(GuardState {
            last_activity: AtomicU64::new(clock.now()),
            clock,
            header_ms: u64::try_from(header_timeout.as_millis()).unwrap_or(u64::MAX),
            idle_ms: u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX),
            mode: AtomicU8::new(if tls { MODE_TLS_HANDSHAKE } else { MODE_UNKNOWN }),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            expired: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            deadlines: Mutex::new(Slab::new()),
        });
        let key = match self.registry.conns.lock() {
            Ok(mut conns) => Some(conns.insert(Arc::clone(&state))),
            Err(_) => None,
        };
        GuardedIo { inner, state, registry: Arc::clone(&self.registry), key }
    }
}

fn sweep(registry: &Weak<Registry>) {
    loop {
        std::thread::sleep(TICK);
        let Some(registry) = registry.upgrade() else { return };
        let now = registry.clock.advance();
        let Ok(conns) = registry.conns.lock() else { return };
        for (_, state) in conns.iter() {
            if !state.expired.load(Ordering::Relaxed) && state.overdue(now) {
                state.expire();
            }
            state.fire_deadlines(now);
        }
    }
}

/// A socket with the guard's bookkeeping.
#[derive(Debug)]
pub struct GuardedIo<T> {
    inner: T,
    state: Arc<GuardState>,
    registry: Arc<Registry>,
    key: Option<usize>,
}

impl<T> GuardedIo<T> {
    /// The wrapped socket.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The state requests on this connection report to.
    pub fn state(&self) -> Arc<GuardState> {
        Arc::clone(&self.state)
    }
}

impl<T> Drop for GuardedIo<T> {
    fn drop(&mut self) {
        if let (Some(key), Ok(mut conns)) = (self.key, self.registry.conns.lock()) {
            conns.try_remove(key);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        self.state.reader.register(cx.waker());
        if self.state.expired.load(Ordering::Acquire) {
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out")));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let filled = &buf.filled()[before..];
            if !filled.is_empty() {
                self.state.on_read(filled);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> GuardedIo<T> {
    fn wrote(&self, polled: &Poll<std::io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = polled
            && *n > 0
        {
            self.state.last_activity.store(self.state.clock.now(), Ordering::Relaxed);
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        self.wrote(&polled);
        polled
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(header_ms: u64, idle_ms: u64) -> GuardState {
        GuardState {
            clock: Arc::new(CoarseClock { start: Instant::now(), now_ms: AtomicU64::new(1000) }),
            header_ms,
            idle_ms,
            mode: AtomicU8::new(MODE_UNKNOWN),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_activity: AtomicU64::new(1000),
            expired: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            deadlines: Mutex::new(Slab::new()),
        }
    }

    #[test]
    fn head_limit_runs_from_the_first_byte_and_never_early() {
        let s = state(500, 300_000);
        s.on_read(b"GET / HTTP/1.1\r\n");
        assert!(!s.overdue(1000 + 500));
        assert!(s.overdue(1000 + 500 + 50));
        s.request_started();
        assert!(!s.overdue(1000 + 10_000), "a request in flight has no head or idle limit");
        s.request_finished();
        assert!(!s.overdue(1000 + 10_000));
    }

    #[test]
    fn http2_has_no_head_limit_and_idle_counts_from_the_last_activity() {
        let s = state(500, 2_000);
        s.on_read(H2_PREFACE);
        assert!(!s.overdue(1000 + 1_000));
        assert!(s.overdue(1000 + 2_050));
        s.clock.now_ms.store(5_000, Ordering::Release);
        s.on_read(b"frame");
        assert!(!s.overdue(5_000 + 2_000));
        assert!(s.overdue(5_000 + 2_050));
    }

    #[tokio::test]
    async fn coarse_timeouts_fire_not_early_and_leave_nothing_behind() {
        let sweeper = Sweeper::new();
        let (io, _peer) = tokio::io::duplex(64);
        let guarded = sweeper.guard(io, false, Duration::from_millis(500), Duration::from_secs(300));
        let state = guarded.state();
        let quick = state.timeout(Duration::from_secs(5), async { 7 }).await;
        assert_eq!(quick, Ok(7));
        let started = Instant::now();
        let slow = state.timeout(Duration::from_secs(1), std::future::pending::<()>()).await;
        assert_eq!(slow, Err(Elapsed));
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(5), "{took:?}");
        assert!(state.deadlines.lock().unwrap().is_empty());
        let short = state.timeout(Duration::from_millis(20), std::future::pending::<()>()).await;
        assert_eq!(short, Err(Elapsed));
    }
}
