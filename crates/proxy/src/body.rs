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

/// A body that fails when it stalls for longer than its limit, or — when given one — is not over by a deadline
/// (Envoy's HCM `request_timeout` for request bodies, a cluster's `max_stream_duration` for response bodies).
///
/// The timer is armed only when the body first has nothing to give (a small body that is ready at once never
/// touches the timer wheel); after that each frame notes the time, and the timer, when it fires, moves itself to
/// the last frame plus the limit (or the deadline, if sooner) instead of being reset on every frame.
pub struct IdleTimeoutBody<B> {
    inner: B,
    limit: Duration,
    /// When the whole body must be over, if ever.
    deadline: Option<Instant>,
    /// Armed at the first stall: the timer and when the body last gave something.
    timer: Option<(Pin<Box<Sleep>>, Instant)>,
}

impl<B> std::fmt::Debug for IdleTimeoutBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleTimeoutBody").field("limit", &self.limit).finish_non_exhaustive()
    }
}

impl<B> IdleTimeoutBody<B> {
    /// Wraps a body.
    pub fn new(inner: B, limit: Duration) -> Self {
        Self { inner, limit, deadline: None, timer: None }
    }

    /// Wraps a body that must also be over `within` of `start`.
    pub fn with_deadline(inner: B, limit: Duration, start: Instant, within: Duration) -> Self {
        Self { inner, limit, deadline: Some(start + within), timer: None }
    }

    /// When the body fails if nothing more comes: the stall limit after the last progress, or the deadline.
    fn due(&self, last_progress: Instant) -> Instant {
        let stall = last_progress + self.limit;
        self.deadline.map_or(stall, |d| d.min(stall))
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
        let limit = self.limit;
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            // A body that never stalls still ends at its deadline.
            if self.deadline.is_some_and(|d| d <= Instant::now()) && frame.is_some() {
                return Poll::Ready(Some(Err(Box::new(StreamIdle(limit)))));
            }
            if let Some((_, last_progress)) = &mut self.timer {
                *last_progress = Instant::now();
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.timer.is_none() {
            let now = Instant::now();
            self.timer = Some((Box::pin(tokio::time::sleep_until(self.due(now))), now));
        }
        loop {
            let Some((timer, last_progress)) = self.timer.as_mut() else { return Poll::Pending };
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let last = *last_progress;
            let due = self.due(last);
            if due <= Instant::now() {
                return Poll::Ready(Some(Err(Box::new(StreamIdle(limit)))));
            }
            if let Some((timer, _)) = self.timer.as_mut() {
                timer.as_mut().reset(due);
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body sent no faster than a rate (MeshFaultInjection `responseBandwidth`): each data frame is split
/// into chunks of at most a tenth of a second's worth, and each chunk waits until the rate allows it.
pub struct ThrottledBody<B> {
    inner: B,
    bytes_per_second: u64,
    started: Instant,
    sent: u64,
    /// Data taken from `inner` and not yet given out.
    pending: Bytes,
    wait: Option<Pin<Box<Sleep>>>,
}

impl<B> std::fmt::Debug for ThrottledBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrottledBody").field("bytes_per_second", &self.bytes_per_second).finish_non_exhaustive()
    }
}

impl<B> ThrottledBody<B> {
    /// Wraps a body.
    pub fn new(inner: B, bytes_per_second: u64) -> Self {
        Self {
            inner,
            bytes_per_second: bytes_per_second.max(1),
            started: Instant::now(),
            sent: 0,
            pending: Bytes::new(),
            wait: None,
        }
    }
}

impl<B> Body for ThrottledBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.pending.is_empty() {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
            }
            if this.pending.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::new()))));
            }
        }
        // When the bytes sent so far are due at the configured rate.
        let due = Duration::from_secs_f64(this.sent as f64 / this.bytes_per_second as f64);
        let at = this.started + due;
        if at > Instant::now() {
            let wait = this.wait.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            wait.as_mut().reset(at);
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let chunk = usize::try_from((this.bytes_per_second / 10).max(1)).unwrap_or(usize::MAX).min(this.pending.len());
        let out = this.pending.split_to(chunk);
        this.sent += out.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(out))))
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let extra = self.pending.len() as u64;
        hint.set_lower(hint.lower() + extra);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + extra);
        }
        hint
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http_body_util::BodyExt;

    use super::*;

    /// A body giving one frame after each delay.
    struct Paced {
        delays: VecDeque<Duration>,
        sleep: Option<Pin<Box<Sleep>>>,
    }

    impl Body for Paced {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            let Some(delay) = self.delays.front().copied() else { return Poll::Ready(None) };
            let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
            self.delays.pop_front();
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    fn paced(delays_ms: &[u64]) -> Paced {
        Paced { delays: delays_ms.iter().map(|d| Duration::from_millis(*d)).collect(), sleep: None }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_moving_never_times_out() {
        let body = IdleTimeoutBody::new(paced(&[0, 400, 400, 400, 400, 400]), Duration::from_millis(500));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_longer_than_the_limit_fails_at_the_limit() {
        let started = Instant::now();
        let body = IdleTimeoutBody::new(paced(&[0, 100, 10_000]), Duration::from_millis(500));
        let err = body.collect().await.unwrap_err();
        assert!(err.is::<StreamIdle>());
        assert_eq!(started.elapsed(), Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn a_moving_body_still_ends_at_its_deadline() {
        let started = Instant::now();
        let body = IdleTimeoutBody::with_deadline(
            paced(&[0, 400, 400, 400, 400, 400]),
            Duration::from_millis(500),
            started,
            Duration::from_millis(1000),
        );
        let err = body.collect().await.unwrap_err();
        assert!(err.is::<StreamIdle>());
        assert_eq!(started.elapsed(), Duration::from_millis(1000));
    }
}
