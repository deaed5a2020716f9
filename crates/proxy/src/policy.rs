//! The run-time side of gateway policies: token buckets (MeshRateLimit), retry decisions and back-off
//! (MeshRetry), and fault rolls (MeshFaultInjection). What to do is in the plan; this is how it is done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use meshgate_plan::{Fault, RetryPolicy};

/// A token bucket refilled to `num` every `interval` (Envoy's local rate limit with `max_tokens =
/// tokens_per_fill`): at most `num` requests per interval window.
#[derive(Debug)]
pub struct TokenBucket {
    num: u32,
    interval_ms: u64,
    epoch: Instant,
    /// The window's index (its low 32 bits) above the tokens left in it: one word, taken without a lock.
    state: AtomicU64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(num: u32, interval: Duration) -> Self {
        TokenBucket {
            num,
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1),
            epoch: Instant::now(),
            state: AtomicU64::new(u64::from(num)),
        }
    }

    /// Takes a token if one is left.
    pub fn try_take(&self) -> bool {
        self.try_take_at(Instant::now())
    }

    /// Takes a token if one is left at `now` (a request passes the time it arrived, already read).
    pub fn try_take_at(&self, now: Instant) -> bool {
        let elapsed = crate::accesslog::millis(now.saturating_duration_since(self.epoch));
        // Windows are told apart by their low 32 bits (a window index repeats after 2^32 intervals).
        let window = (elapsed / self.interval_ms) & 0xffff_ffff;
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let left = if current >> 32 == window { current & 0xffff_ffff } else { u64::from(self.num) };
            if left == 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                current,
                window << 32 | (left - 1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

/// Whether a roll of the dice falls within `percentage` (0–100).
pub fn roll(percentage: f64) -> bool {
    percentage >= 100.0 || (percentage > 0.0 && rand::random::<f64>() * 100.0 < percentage)
}

/// The faults that fire for one request: an abort status, a delay, a response bandwidth.
#[derive(Debug, Default)]
pub struct FiredFaults {
    /// Answer with this status.
    pub abort: Option<StatusCode>,
    /// Wait this long first.
    pub delay: Option<Duration>,
    /// Send the response body no faster than this, in bytes per second.
    pub bandwidth: Option<u64>,
}

/// Rolls each fault independently (Envoy's fault filter: one per configured fault, in order).
pub fn fire(faults: &[Fault]) -> FiredFaults {
    let mut fired = FiredFaults::default();
    for f in faults {
        match f {
            Fault::Abort { status, percentage } => {
                if fired.abort.is_none() && roll(*percentage) {
                    fired.abort = StatusCode::from_u16(*status).ok();
                }
            }
            Fault::Delay { delay_ms, percentage } => {
                if roll(*percentage) {
                    let d = Duration::from_millis(*delay_ms);
                    fired.delay = Some(fired.delay.map_or(d, |prior| prior + d));
                }
            }
            Fault::ResponseBandwidth { bytes_per_second, percentage } => {
                if fired.bandwidth.is_none() && roll(*percentage) {
                    fired.bandwidth = Some(*bytes_per_second);
                }
            }
        }
    }
    fired
}

/// How an attempt ended, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Status(u16),
    /// No connection could be made.
    ConnectFailure,
    /// The connection broke before a response head.
    Reset,
    /// The attempt's time ran out.
    Timeout,
}

/// Whether `policy` retries an attempt that ended with `outcome` (Envoy's `retry_on` semantics: `5xx` covers every
/// 5xx answer and no answer at all; `gateway-error` 502/503/504 and no answer; `reset` and `connect-failure` just
/// those; `retriable-4xx` 409; `retriable-status-codes` the listed ones).
#[inline]
pub fn retriable(policy: &RetryPolicy, method: &http::Method, outcome: Outcome) -> bool {
    if !policy.methods.is_empty() && !policy.methods.iter().any(|m| m.as_str() == method.as_str()) {
        return false;
    }
    match outcome {
        Outcome::ConnectFailure => policy.on_connect_failure || policy.on_5xx || policy.on_gateway_error,
        Outcome::Reset => policy.on_reset || policy.on_5xx || policy.on_gateway_error,
        Outcome::Timeout => policy.on_5xx || policy.on_gateway_error,
        Outcome::Status(s) => {
            (policy.on_5xx && (500..600).contains(&s))
                || (policy.on_gateway_error && matches!(s, 502..=504))
                || (policy.on_retriable_4xx && s == 409)
                || policy.statuses.contains(&s)
        }
    }
}

/// The wait before retry `n` (1-based): Envoy's fully jittered exponential back-off, `[0, min(base·2ⁿ⁻¹·2, max))`.
pub fn back_off(policy: &RetryPolicy, n: u32) -> Duration {
    let base = policy.base_interval_ms.max(1);
    let cap = policy.max_interval_ms.max(base);
    let ceiling = base.saturating_mul(1u64 << n.min(20)).min(cap);
    Duration::from_millis(rand::random::<u64>() % ceiling.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            num_retries: 3,
            per_try_timeout_ms: 0,
            base_interval_ms: 25,
            max_interval_ms: 250,
            on_5xx: false,
            on_gateway_error: true,
            on_reset: false,
            on_connect_failure: true,
            on_retriable_4xx: false,
            statuses: vec![429],
            methods: Vec::new(),
        }
    }

    #[test]
    fn buckets_hold_num_per_window() {
        let b = TokenBucket::new(2, Duration::from_secs(3600));
        assert!(b.try_take());
        assert!(b.try_take());
        assert!(!b.try_take());
        let quick = TokenBucket::new(1, Duration::from_millis(1));
        assert!(quick.try_take());
        std::thread::sleep(Duration::from_millis(3));
        assert!(quick.try_take(), "a new window refills the bucket");
    }

    #[test]
    fn buckets_give_each_token_once_across_threads() {
        let b = TokenBucket::new(1000, Duration::from_secs(3600));
        let taken = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        if b.try_take() {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(taken.load(Ordering::Relaxed), 1000);
        let big = TokenBucket::new(100_000_000, Duration::from_secs(1));
        assert!(big.try_take(), "counts above 2^24 fit the word");
    }

    #[test]
    fn retry_conditions() {
        let get = http::Method::GET;
        let p = policy();
        assert!(retriable(&p, &get, Outcome::Status(503)));
        assert!(!retriable(&p, &get, Outcome::Status(500)));
        assert!(retriable(&p, &get, Outcome::Status(429)));
        assert!(retriable(&p, &get, Outcome::ConnectFailure));
        assert!(retriable(&p, &get, Outcome::Reset), "gateway-error covers resets");
        let p5 = RetryPolicy { on_5xx: true, on_gateway_error: false, ..policy() };
        assert!(retriable(&p5, &get, Outcome::Status(500)));
        let only_post = RetryPolicy { methods: vec!["POST".into()], ..policy() };
        assert!(!retriable(&only_post, &get, Outcome::Status(503)));
        assert!(retriable(&only_post, &http::Method::POST, Outcome::Status(503)));
    }

    #[test]
    fn back_off_stays_under_its_ceiling() {
        let p = policy();
        for n in 1..10 {
            assert!(back_off(&p, n) < Duration::from_millis(250));
        }
        assert!(back_off(&p, 1) < Duration::from_millis(50));
    }

    #[test]
    fn faults_at_100_percent_always_fire_and_at_0_never() {
        let fired =
            fire(&[Fault::Abort { status: 421, percentage: 100.0 }, Fault::Delay { delay_ms: 10, percentage: 0.0 }]);
        assert_eq!(fired.abort, Some(StatusCode::MISDIRECTED_REQUEST));
        assert_eq!(fired.delay, None);
    }
}
