//! Endpoint health: active health checks (MeshHealthCheck) and outlier detection (MeshCircuitBreaker), and the
//! state both leave on each endpoint of a cluster — which the balancer reads on every pick.
//!
//! The state of an endpoint is kept in a registry by cluster and endpoint, so that a configuration reload keeps
//! what was learnt (an ejected endpoint stays ejected, a dead one stays out); checkers run as one task per checked
//! endpoint and are replaced only when their check changes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use meshgate_plan::{HealthCheck, HealthCheckKind, Outlier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::policy::Outcome;
use crate::upstream::EndpointPool;

/// Milliseconds since the process started (the clock of ejections).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What is known of one endpoint of one cluster.
#[derive(Debug, Default)]
pub struct EndpointState {
    /// Active health checks passed (true until a checker says otherwise).
    unhealthy: AtomicBool,
    /// Ejected by outlier detection until this time (`now_ms`), 0: not ejected.
    ejected_until: AtomicU64,
    /// How many times it was ejected (the ejection time grows with it).
    ejections: AtomicU32,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// Requests and failures in the current detection interval.
    window_requests: AtomicU32,
    window_failures: AtomicU32,
    /// Requests in flight (least request).
    pub active: AtomicUsize,
}

impl EndpointState {
    /// `ejected` (outlier detection), `unhealthy` (active check) or `healthy`, for people.
    pub fn describe(&self, now: u64) -> &'static str {
        if self.ejected(now) {
            "ejected"
        } else if !self.healthy() {
            "unhealthy"
        } else {
            "healthy"
        }
    }

    /// Whether it may take traffic now.
    pub fn available(&self, now: u64) -> bool {
        !self.unhealthy.load(Ordering::Relaxed) && self.ejected_until.load(Ordering::Relaxed) <= now
    }

    /// Whether outlier detection has it ejected now.
    pub fn ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Whether active health checking says it is healthy.
    pub fn healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::Relaxed)
    }

    fn eject(&self, o: &Outlier, now: u64) {
        let n = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        self.ejected_until.store(now + o.base_ejection_ms.saturating_mul(u64::from(n)), Ordering::Relaxed);
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
        self.consecutive_local.store(0, Ordering::Relaxed);
    }
}

/// Outlier detection over a cluster's endpoints.
#[derive(Debug)]
pub struct OutlierDetector {
    config: Outlier,
    /// When the statistical detectors run next (`now_ms`).
    next_sweep: AtomicU64,
    /// Ejections so far (metric).
    pub ejections: prometheus_client::metrics::counter::Counter,
}

impl OutlierDetector {
    /// A detector.
    pub fn new(config: Outlier, ejections: prometheus_client::metrics::counter::Counter) -> Self {
        let next = now_ms() + config.interval_ms;
        OutlierDetector { config, next_sweep: AtomicU64::new(next), ejections }
    }

    /// Whether one more endpoint of `states` may be ejected now (at least one always may).
    fn may_eject(&self, states: &[Arc<EndpointState>], now: u64) -> bool {
        let ejected = states.iter().filter(|s| s.ejected(now)).count();
        let allowed = (states.len() * self.config.max_ejection_percent as usize / 100).max(1);
        ejected < allowed
    }

    /// Records the outcome of a request to endpoint `i` of `states`, ejecting it when a detector trips.
    pub fn record(&self, states: &[Arc<EndpointState>], i: usize, outcome: Outcome) {
        let Some(state) = states.get(i) else { return };
        let o = &self.config;
        let now = now_ms();
        let local = matches!(outcome, Outcome::ConnectFailure | Outcome::Reset | Outcome::Timeout);
        let (is_5xx, is_gateway) = match outcome {
            Outcome::Status(s) => ((500..600).contains(&s), matches!(s, 502..=504)),
            // Without the split, a local-origin failure counts as a gateway error (Envoy maps it to 503).
            _ => (!o.split_local, !o.split_local),
        };
        state.window_requests.fetch_add(1, Ordering::Relaxed);
        if is_5xx || local {
            state.window_failures.fetch_add(1, Ordering::Relaxed);
        }
        let bump = |counter: &AtomicU32, hit: bool| {
            if hit {
                counter.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                counter.store(0, Ordering::Relaxed);
                0
            }
        };
        let c5 = bump(&state.consecutive_5xx, is_5xx);
        let cg = bump(&state.consecutive_gateway, is_gateway);
        let cl = if o.split_local { bump(&state.consecutive_local, local) } else { 0 };
        let tripped = o.consecutive_5xx.is_some_and(|n| c5 >= n)
            || o.consecutive_gateway.is_some_and(|n| cg >= n)
            || o.consecutive_local.is_some_and(|n| cl >= n);
        if tripped && !state.ejected(now) && self.may_eject(states, now) {
            state.eject(o, now);
            self.ejections.inc();
        }
        self.sweep(states, now);
    }

    /// Runs the statistical detectors once per interval (by whichever request comes first after it).
    fn sweep(&self, states: &[Arc<EndpointState>], now: u64) {
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due
            || self
                .next_sweep
                .compare_exchange(due, now + self.config.interval_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let stats: Vec<(usize, u32, u32)> = states
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (i, s.window_requests.swap(0, Ordering::Relaxed), s.window_failures.swap(0, Ordering::Relaxed))
            })
            .collect();
        let rate = |(_, requests, failures): &(usize, u32, u32)| {
            100.0 * f64::from(requests.saturating_sub(*failures)) / f64::from((*requests).max(1))
        };
        if let Some((minimum_hosts, volume, factor)) = self.config.success_rate {
            let eligible: Vec<&(usize, u32, u32)> = stats.iter().filter(|s| s.1 >= volume).collect();
            if eligible.len() >= minimum_hosts as usize && !eligible.is_empty() {
                let rates: Vec<f64> = eligible.iter().map(|s| rate(s)).collect();
                let mean = rates.iter().sum::<f64>() / rates.len() as f64;
                let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rates.len() as f64;
                let floor = mean - factor * var.sqrt();
                for (s, r) in eligible.iter().zip(rates) {
                    if r < floor && self.may_eject(states, now) && !states[s.0].ejected(now) {
                        states[s.0].eject(&self.config, now);
                        self.ejections.inc();
                    }
                }
            }
        }
        if let Some((minimum_hosts, volume, threshold)) = self.config.failure_percentage {
            let eligible: Vec<&(usize, u32, u32)> = stats.iter().filter(|s| s.1 >= volume).collect();
            if eligible.len() >= minimum_hosts as usize {
                for s in eligible {
                    if 100.0 - rate(s) >= f64::from(threshold)
                        && self.may_eject(states, now)
                        && !states[s.0].ejected(now)
                    {
                        states[s.0].eject(&self.config, now);
                        self.ejections.inc();
                    }
                }
            }
        }
    }
}

/// Endpoint states by (cluster, endpoint), shared by every plan.
#[derive(Debug, Default)]
pub struct Registry {
    states: Mutex<HashMap<(String, String), Arc<EndpointState>>>,
    checkers: Mutex<HashMap<CheckerKey, tokio::task::JoinHandle<()>>>,
}

/// What identifies a running checker: the endpoint and its check.
pub type CheckerKey = (String, String, String);

/// A checker a plan wants: the cluster, the endpoint, its state and the check.
#[derive(Debug, Clone)]
pub struct CheckerSpec {
    /// Cluster name.
    pub cluster: String,
    /// The endpoint.
    pub pool: Arc<EndpointPool>,
    /// Its state.
    pub state: Arc<EndpointState>,
    /// The check.
    pub check: HealthCheck,
    /// The endpoint's health metric.
    pub gauge: prometheus_client::metrics::gauge::Gauge,
}

impl CheckerSpec {
    fn key(&self) -> CheckerKey {
        (self.cluster.clone(), self.pool.authority().to_owned(), format!("{:?}", self.check))
    }
}

impl Registry {
    /// The state of endpoint `endpoint` of `cluster`.
    pub fn state(&self, cluster: &str, endpoint: &str) -> Arc<EndpointState> {
        let Ok(mut states) = self.states.lock() else { return Arc::default() };
        Arc::clone(states.entry((cluster.to_owned(), endpoint.to_owned())).or_default())
    }

    /// The state of endpoint `endpoint` of `cluster`, if it is tracked (a read that adds nothing).
    pub fn peek(&self, cluster: &str, endpoint: &str) -> Option<Arc<EndpointState>> {
        let states = self.states.lock().ok()?;
        states.get(&(cluster.to_owned(), endpoint.to_owned())).cloned()
    }

    /// Keeps the states of `keep`, and runs exactly the checkers of `wanted` (starting new ones, stopping others).
    pub fn sync(&self, keep: &HashSet<(String, String)>, wanted: &[CheckerSpec]) {
        if let Ok(mut states) = self.states.lock() {
            states.retain(|k, _| keep.contains(k));
        }
        let Ok(mut checkers) = self.checkers.lock() else { return };
        let wanted_keys: HashSet<CheckerKey> = wanted.iter().map(CheckerSpec::key).collect();
        checkers.retain(|k, task| {
            let keep = wanted_keys.contains(k);
            if !keep {
                task.abort();
            }
            keep
        });
        for spec in wanted {
            let key = spec.key();
            if checkers.contains_key(&key) {
                continue;
            }
            if !spec.state.healthy() {
                // A changed check starts from a clean slate.
                spec.state.unhealthy.store(false, Ordering::Relaxed);
            }
            checkers.insert(key, tokio::spawn(run_checker(spec.clone())));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Ok(checkers) = self.checkers.lock() {
            for task in checkers.values() {
                task.abort();
            }
        }
    }
}

async fn run_checker(spec: CheckerSpec) {
    let c = &spec.check;
    let (mut passes, mut fails) = (0u32, 0u32);
    spec.gauge.set(i64::from(spec.state.healthy()));
    loop {
        let ok = matches!(
            tokio::time::timeout(Duration::from_millis(c.timeout_ms), check_once(&spec.pool, &c.check)).await,
            Ok(true)
        );
        if ok {
            fails = 0;
            passes += 1;
            if !spec.state.healthy() && passes >= c.healthy_threshold {
                spec.state.unhealthy.store(false, Ordering::Relaxed);
                spec.gauge.set(1);
                tracing::info!(cluster = %spec.cluster, endpoint = %spec.pool.authority(), "endpoint healthy");
            }
        } else {
            passes = 0;
            fails += 1;
            if spec.state.healthy() && fails >= c.unhealthy_threshold {
                spec.state.unhealthy.store(true, Ordering::Relaxed);
                spec.gauge.set(0);
                tracing::warn!(cluster = %spec.cluster, endpoint = %spec.pool.authority(), "endpoint unhealthy");
            }
        }
        let jitter = if c.jitter_ms > 0 { rand::random::<u64>() % c.jitter_ms } else { 0 };
        tokio::time::sleep(Duration::from_millis(c.interval_ms + jitter)).await;
    }
}

/// One check: HTTP — `GET path` answered with an expected status; TCP — connected (and the expected bytes back).
async fn check_once(pool: &EndpointPool, check: &HealthCheckKind) -> bool {
    let Ok(mut stream) = pool.connect_stream().await else { return false };
    match check {
        HealthCheckKind::Http { path, expected_statuses, headers } => {
            let mut req = format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: meshgate-health-check\r\nConnection: close\r\n",
                pool.authority()
            );
            for (n, v) in headers.set.iter().chain(&headers.add) {
                req.push_str(&format!("{n}: {v}\r\n"));
            }
            req.push_str("\r\n");
            if stream.write_all(req.as_bytes()).await.is_err() {
                return false;
            }
            let mut head = Vec::with_capacity(64);
            let mut buf = [0u8; 256];
            while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&head);
            let status = line.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
            status.is_some_and(|s| expected_statuses.contains(&s))
        }
        HealthCheckKind::Tcp { send, receive } => {
            if !send.is_empty() && stream.write_all(send).await.is_err() {
                return false;
            }
            if receive.is_empty() {
                return true;
            }
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                if receive.iter().all(|r| got.windows(r.len().max(1)).any(|w| w == r.as_slice())) {
                    return true;
                }
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outlier() -> Outlier {
        Outlier {
            interval_ms: 10_000,
            base_ejection_ms: 30_000,
            max_ejection_percent: 50,
            split_local: false,
            consecutive_5xx: Some(3),
            consecutive_gateway: None,
            consecutive_local: None,
            success_rate: None,
            failure_percentage: None,
        }
    }

    #[test]
    fn consecutive_failures_eject_and_successes_reset() {
        let states: Vec<Arc<EndpointState>> = (0..2).map(|_| Arc::default()).collect();
        let d = OutlierDetector::new(outlier(), Default::default());
        d.record(&states, 0, Outcome::Status(500));
        d.record(&states, 0, Outcome::Status(500));
        d.record(&states, 0, Outcome::Status(200));
        d.record(&states, 0, Outcome::Status(500));
        assert!(states[0].available(now_ms()), "a success resets the count");
        d.record(&states, 0, Outcome::ConnectFailure);
        d.record(&states, 0, Outcome::Status(503));
        assert!(!states[0].available(now_ms()), "three in a row eject");
        // Only half may be ejected: the other endpoint stays whatever it does.
        for _ in 0..5 {
            d.record(&states, 1, Outcome::Status(500));
        }
        assert!(states[1].available(now_ms()));
    }
}
