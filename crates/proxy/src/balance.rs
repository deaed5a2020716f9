//! Choosing an endpoint of a cluster (MeshLoadBalancingStrategy): round robin, random, least request, and the two
//! consistent-hashing balancers, ring hash and Maglev, fed by a request hash built from headers, cookies, query
//! parameters or the client's address.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::HeaderMap;
use meshgate_plan::{HashKey, HashSource, LoadBalancer};

/// A stable 64-bit hash (SipHash with fixed keys: the same input hashes the same in every process of a build).
pub fn stable_hash(value: impl Hash) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// The hash of a request from `keys`, or `None` when none of its inputs is present (the pick is then random).
pub fn request_hash(keys: &[HashKey], headers: &HeaderMap, query: Option<&str>, client: IpAddr) -> Option<u64> {
    let mut acc: Option<u64> = None;
    for key in keys {
        let value: Option<String> = match &key.source {
            HashSource::Header(name) => {
                let values: Vec<&str> = headers.get_all(name.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
                (!values.is_empty()).then(|| values.join(","))
            }
            HashSource::Cookie(name) => headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_owned()),
            HashSource::QueryParameter(name) => query.and_then(|q| {
                q.split('&')
                    .filter_map(|p| p.split_once('=').or(Some((p, ""))))
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.to_owned())
            }),
            HashSource::SourceIp => Some(client.to_string()),
        };
        if let Some(v) = value {
            let h = stable_hash(&v);
            acc = Some(acc.map_or(h, |a| a.rotate_left(1) ^ h));
            if key.terminal {
                break;
            }
        }
    }
    acc
}

/// A balancer over `n` endpoints, by index.
#[derive(Debug)]
pub enum Balancer {
    /// In turn.
    RoundRobin(AtomicUsize),
    /// At random.
    Random,
    /// Fewest in flight among `choices` random ones.
    LeastRequest(usize),
    /// Sorted ring of (point, endpoint index).
    Ring(Vec<(u64, usize)>),
    /// Maglev lookup table of endpoint indexes.
    Maglev(Vec<usize>),
}

impl Balancer {
    /// A balancer for endpoints named `names` (their `host:port`, which place them on rings and tables).
    pub fn new(lb: &LoadBalancer, names: &[String]) -> Balancer {
        match lb {
            LoadBalancer::RoundRobin => Balancer::RoundRobin(AtomicUsize::new(0)),
            LoadBalancer::Random => Balancer::Random,
            LoadBalancer::LeastRequest { choice_count } => {
                Balancer::LeastRequest(usize::try_from(*choice_count).unwrap_or(2).max(2))
            }
            LoadBalancer::RingHash { min_ring_size, .. } => Balancer::Ring(ring(names, *min_ring_size)),
            LoadBalancer::Maglev { table_size, .. } => Balancer::Maglev(maglev(names, *table_size)),
        }
    }

    /// An endpoint index: among `usable` (sorted indexes of endpoints that may take traffic), using the hash for
    /// the consistent balancers and `load(i)` (requests in flight) for least request.
    pub fn pick(&self, usable: &[usize], hash: Option<u64>, load: impl Fn(usize) -> usize) -> Option<usize> {
        if usable.is_empty() {
            return None;
        }
        let random = || usable.get(rand::random::<usize>() % usable.len()).copied();
        match self {
            Balancer::RoundRobin(next) => usable.get(next.fetch_add(1, Ordering::Relaxed) % usable.len()).copied(),
            Balancer::Random => random(),
            Balancer::LeastRequest(choices) => {
                let mut best: Option<usize> = None;
                for _ in 0..*choices {
                    let candidate = random()?;
                    if best.is_none_or(|b| load(candidate) < load(b)) {
                        best = Some(candidate);
                    }
                }
                best
            }
            Balancer::Ring(points) => {
                let Some(h) = hash else { return random() };
                let start = points.partition_point(|(p, _)| *p < h);
                points
                    .iter()
                    .cycle()
                    .skip(start)
                    .take(points.len())
                    .map(|(_, i)| *i)
                    .find(|i| usable.binary_search(i).is_ok())
            }
            Balancer::Maglev(table) => {
                let Some(h) = hash else { return random() };
                let len = table.len().max(1);
                let start = usize::try_from(h % len as u64).unwrap_or(0);
                (0..len).map(|k| table[(start + k) % len]).find(|i| usable.binary_search(i).is_ok())
            }
        }
    }
}

fn ring(names: &[String], min_ring_size: u32) -> Vec<(u64, usize)> {
    if names.is_empty() {
        return Vec::new();
    }
    let per_endpoint = (usize::try_from(min_ring_size).unwrap_or(1024)).div_ceil(names.len()).max(1);
    let mut points: Vec<(u64, usize)> = names
        .iter()
        .enumerate()
        .flat_map(|(i, name)| (0..per_endpoint).map(move |r| (stable_hash((name, r)), i)))
        .collect();
    points.sort_unstable();
    points
}

/// Maglev's table (Eisenbud et al. 2016): each endpoint fills slots in its own permutation order, in turn.
fn maglev(names: &[String], table_size: u32) -> Vec<usize> {
    let m = usize::try_from(table_size).unwrap_or(65537).max(1);
    if names.is_empty() {
        return Vec::new();
    }
    let perms: Vec<(usize, usize)> = names
        .iter()
        .map(|n| {
            let offset = usize::try_from(stable_hash((n, 0u8)) % m as u64).unwrap_or(0);
            let skip = if m > 1 { usize::try_from(stable_hash((n, 1u8)) % (m as u64 - 1)).unwrap_or(0) + 1 } else { 1 };
            (offset, skip)
        })
        .collect();
    let mut next = vec![0usize; names.len()];
    let mut table = vec![usize::MAX; m];
    let mut filled = 0;
    'fill: loop {
        for (i, (offset, skip)) in perms.iter().enumerate() {
            // The next slot of endpoint i's permutation that is still free.
            let mut slot = (offset + next[i] * skip) % m;
            let mut tries = 0;
            while table[slot] != usize::MAX {
                next[i] += 1;
                slot = (offset + next[i] * skip) % m;
                tries += 1;
                if tries > m {
                    break 'fill;
                }
            }
            table[slot] = i;
            next[i] += 1;
            filled += 1;
            if filled == m {
                break 'fill;
            }
        }
    }
    for slot in &mut table {
        if *slot == usize::MAX {
            *slot = 0;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:80")).collect()
    }

    #[test]
    fn consistent_balancers_keep_a_key_on_one_endpoint_and_spread_keys() {
        for lb in [
            LoadBalancer::RingHash { min_ring_size: 1024, hash: Vec::new() },
            LoadBalancer::Maglev { table_size: 65537, hash: Vec::new() },
        ] {
            let b = Balancer::new(&lb, &names(3));
            let usable = [0, 1, 2];
            let mut counts = [0usize; 3];
            for key in 0..3000u64 {
                let h = stable_hash(key);
                let first = b.pick(&usable, Some(h), |_| 0).unwrap();
                assert_eq!(b.pick(&usable, Some(h), |_| 0), Some(first), "{lb:?}: same key, same endpoint");
                counts[first] += 1;
            }
            assert!(counts.iter().all(|c| *c > 600), "{lb:?}: {counts:?}");
            // Removing an endpoint moves only its keys.
            let mut moved = 0;
            for key in 0..3000u64 {
                let h = stable_hash(key);
                let before = b.pick(&usable, Some(h), |_| 0).unwrap();
                let after = b.pick(&[0, 2], Some(h), |_| 0).unwrap();
                if before != 1 && before != after {
                    moved += 1;
                }
            }
            assert_eq!(moved, 0, "{lb:?}: keys of remaining endpoints stay");
        }
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint() {
        let b = Balancer::new(&LoadBalancer::LeastRequest { choice_count: 8 }, &names(2));
        let busy = |i: usize| if i == 0 { 10 } else { 0 };
        let picks: Vec<usize> = (0..50).filter_map(|_| b.pick(&[0, 1], None, busy)).collect();
        assert!(picks.iter().filter(|p| **p == 1).count() >= 45, "{picks:?}");
    }

    #[test]
    fn request_hashes_follow_their_inputs() {
        let keys = vec![
            HashKey { source: HashSource::Header("x-user".into()), terminal: true },
            HashKey { source: HashSource::SourceIp, terminal: false },
        ];
        let mut h = HeaderMap::new();
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        let other: IpAddr = "10.1.1.2".parse().unwrap();
        assert_ne!(request_hash(&keys, &h, None, ip), request_hash(&keys, &h, None, other));
        h.insert("x-user", "alice".parse().unwrap());
        assert_eq!(request_hash(&keys, &h, None, ip), request_hash(&keys, &h, None, other), "terminal header wins");
        let cookie = vec![HashKey { source: HashSource::Cookie("sid".into()), terminal: false }];
        let mut c = HeaderMap::new();
        c.insert("cookie", "a=1; sid=xyz".parse().unwrap());
        assert_eq!(request_hash(&cookie, &c, None, ip), Some(stable_hash("xyz")));
        let q = vec![HashKey { source: HashSource::QueryParameter("u".into()), terminal: false }];
        assert_eq!(request_hash(&q, &HeaderMap::new(), Some("a=1&u=bob"), ip), Some(stable_hash("bob")));
        assert_eq!(request_hash(&q, &HeaderMap::new(), Some("a=1"), ip), None);
    }
}
