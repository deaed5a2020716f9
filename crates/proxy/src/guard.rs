//! Per-connection time limits that hyper does not give: a request head must arrive within the header timeout of
//! its first byte (slowloris), and a connection with nothing in flight is closed after the idle timeout.
//!
//! [`GuardedIo`] wraps the socket and notes when bytes arrive; a watchdog task per connection closes it (the next
//! read fails) when a limit passes. HTTP/2 connections (recognised by their preface, or by ALPN) have no head
//! timeout: their requests are frames, not a slowly-typed head.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

const MODE_UNKNOWN: u8 = 0;
const MODE_H1: u8 = 1;
const MODE_H2: u8 = 2;
const MODE_TLS_HANDSHAKE: u8 = 3;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The state a connection's watchdog and requests share.
#[derive(Debug)]
pub struct GuardState {
    start: Instant,
    mode: AtomicU8,
    /// Milliseconds since start (+1) when the current request head began; 0 = no head pending.
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    last_activity: AtomicU64,
    expired: AtomicBool,
    reader: AtomicWaker,
    closed: Notify,
    changed: Notify,
}

impl GuardState {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request head was parsed: the head timer stops; the request is in flight.
    pub fn request_started(&self) {
        self.head_since.store(0, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// A response was sent.
    pub fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.last_activity.store(self.now(), Ordering::Release);
        self.changed.notify_one();
    }

    /// After a TLS handshake: whether the connection speaks HTTP/2.
    pub fn set_http2(&self, h2: bool) {
        self.mode.store(if h2 { MODE_H2 } else { MODE_H1 }, Ordering::Release);
        self.changed.notify_one();
    }

    fn on_read(&self, bytes: &[u8]) {
        let now = self.now();
        self.last_activity.store(now, Ordering::Release);
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
            self.changed.notify_one();
        }
    }

    fn expire(&self) {
        self.expired.store(true, Ordering::Release);
        self.reader.wake();
    }
}

/// A socket with the guard's bookkeeping.
#[derive(Debug)]
pub struct GuardedIo<T> {
    inner: T,
    state: Arc<GuardState>,
}

impl<T> GuardedIo<T> {
    /// Wraps a socket; `tls` delays the head timer until the handshake tells the protocol.
    pub fn new(inner: T, tls: bool) -> (Self, Arc<GuardState>) {
        let state = Arc::new(GuardState {
            start: Instant::now(),
            mode: AtomicU8::new(if tls { MODE_TLS_HANDSHAKE } else { MODE_UNKNOWN }),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_activity: AtomicU64::new(0),
            expired: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            closed: Notify::new(),
            changed: Notify::new(),
        });
        (Self { inner, state: Arc::clone(&state) }, state)
    }

    /// The wrapped socket.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T> Drop for GuardedIo<T> {
    fn drop(&mut self) {
        self.state.closed.notify_one();
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

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            let now = self.state.now();
            self.state.last_activity.store(now, Ordering::Release);
        }
        polled
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            let now = self.state.now();
            self.state.last_activity.store(now, Ordering::Release);
        }
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

/// Enforces the limits until the connection closes.
pub async fn watchdog(state: Arc<GuardState>, header_timeout: Duration, idle_timeout: Duration) {
    let header_ms = u64::try_from(header_timeout.as_millis()).unwrap_or(u64::MAX);
    let idle_ms = u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX);
    loop {
        let now = state.now();
        let mut deadline = u64::MAX;
        let head = state.head_since.load(Ordering::Acquire);
        if head > 0 && state.mode.load(Ordering::Acquire) == MODE_H1 {
            deadline = deadline.min((head - 1).saturating_add(header_ms));
        }
        if state.in_flight.load(Ordering::Acquire) == 0 {
            deadline = deadline.min(state.last_activity.load(Ordering::Acquire).saturating_add(idle_ms));
        }
        if deadline <= now {
            state.expire();
            return;
        }
        // Sleep until the deadline, or until something changes it (a head begins, a request ends).
        let sleep = async {
            if deadline == u64::MAX {
                std::future::pending::<()>().await;
            } else {
                tokio::time::sleep(Duration::from_millis(deadline - now)).await;
            }
        };
        tokio::select! {
            () = sleep => {}
            () = state.changed.notified() => {}
            () = state.closed.notified() => return,
        }
    }
}
