//! Bodies with a stall limit (Kuma's stream idle timeout): a body that produces nothing for the limit fails.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::upstream::BoxError;

/// The error of a stalled body.
#[derive(Debug, thiserror::Error)]
#[error("stream idle timeout: no data for {0:?}")]
pub struct StreamIdle(pub Duration);

/// A body that fails when it stalls for longer than its limit.
pub struct IdleTimeoutBody<B> {
    inner: B,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<B> std::fmt::Debug for IdleTimeoutBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleTimeoutBody").field("limit", &self.limit).finish_non_exhaustive()
    }
}

impl<B> IdleTimeoutBody<B> {
    /// Wraps a body.
    pub fn new(inner: B, limit: Duration) -> Self {
        Self { inner, limit, timer: Box::pin(tokio::time::sleep(limit)) }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = Instant::now() + self.limit;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(StreamIdle(self.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body the client sent that could not be read (bad chunked framing, a length that does not match, a
/// reset stream): the client's fault, never the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("client request body: {0}")]
pub struct ClientBodyError(#[source] pub hyper::Error);

/// Why forwarding failed on the client's side rather than the upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    /// The request body stalled for longer than the stream idle timeout (408).
    Stalled,
    /// The request body was malformed or cut short (400).
    Malformed,
}

/// The client's fault behind an error (or any error it wraps), if it was the client's.
pub fn client_fault(e: &(dyn std::error::Error + 'static)) -> Option<ClientFault> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if err.is::<StreamIdle>() {
            return Some(ClientFault::Stalled);
        }
        if err.is::<ClientBodyError>() {
            return Some(ClientFault::Malformed);
        }
        current = err.source();
    }
    None
}
