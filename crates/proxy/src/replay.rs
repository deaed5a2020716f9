//! What a retry sends again of a request's headers.
//!
//! The upstream client consumes the header map it sends, so a request that may be retried keeps a copy of its
//! client's headers before the first attempt. The copy is made for every such request and read only by the few that
//! are retried, so it is made cheap rather than quick to read: each name and value is copied as bytes into one buffer,
//! where a list of handles would take a reference count (two atomic operations, and a call through a vtable each way)
//! per name and per value. A retry parses the buffer back into a map.

use http::{HeaderMap, HeaderName, HeaderValue};

/// A request's headers as bytes: for each, the name's length (8 bytes, little-endian), the value's length, a
/// sensitivity byte, then the name and the value; and how many there are.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct KeptHeaders {
    bytes: Vec<u8>,
    count: usize,
}

/// The sizes only: the values may be credentials.
impl std::fmt::Debug for KeptHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptHeaders").field("count", &self.count).field("bytes", &self.bytes.len()).finish()
    }
}

/// The bytes before a header's name and value.
const HEAD: usize = 17;

impl KeptHeaders {
    /// A copy of `map`.
    pub fn of(map: &HeaderMap) -> KeptHeaders {
        if map.is_empty() {
            return KeptHeaders::default();
        }
        // Most headers are short; a longer one grows the buffer once.
        let mut out = Vec::with_capacity(map.len() * 64);
        for (name, value) in map {
            let (name, bytes) = (name.as_str().as_bytes(), value.as_bytes());
            let mut head = [0u8; HEAD];
            head[..8].copy_from_slice(&(name.len() as u64).to_le_bytes());
            head[8..16].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            head[16] = u8::from(value.is_sensitive());
            out.extend_from_slice(&head);
            out.extend_from_slice(name);
            out.extend_from_slice(bytes);
        }
        KeptHeaders { bytes: out, count: map.len() }
    }

    /// The headers as a map, in their order (repeated names keep every value), with `spare` more places.
    pub fn to_map(&self, spare: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.count + spare);
        let mut rest = self.bytes.as_slice();
        while let Some((head, tail)) = rest.split_first_chunk::<HEAD>() {
            let len = |at: usize| {
                let mut n = [0u8; 8];
                n.copy_from_slice(&head[at..at + 8]);
                usize::try_from(u64::from_le_bytes(n)).ok()
            };
            let (Some(name_len), Some(value_len)) = (len(0), len(8)) else { break };
            let Some((name, tail)) = tail.split_at_checked(name_len) else { break };
            let Some((value, tail)) = tail.split_at_checked(value_len) else { break };
            rest = tail;
            // Both came from a valid map, so both are valid again.
            if let (Ok(name), Ok(mut value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                value.set_sensitive(head[16] != 0);
                map.append(name, value);
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(map: &HeaderMap) -> Vec<(String, Vec<u8>, bool)> {
        map.iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec(), v.is_sensitive())).collect()
    }

    #[test]
    fn keeps_every_value_in_order() {
        let mut map = HeaderMap::new();
        map.append("accept", HeaderValue::from_static("text/html"));
        map.append("x-tenant", HeaderValue::from_static("a"));
        map.append("accept", HeaderValue::from_static("*/*"));
        let mut secret = HeaderValue::from_static("Bearer t");
        secret.set_sensitive(true);
        map.append("authorization", secret);
        map.append("x-empty", HeaderValue::from_static(""));
        let back = KeptHeaders::of(&map).to_map(2);
        assert_eq!(pairs(&back), pairs(&map));
        assert!(back.get("authorization").is_some_and(HeaderValue::is_sensitive));
        assert!(back.get("x-tenant").is_some_and(|v| !v.is_sensitive()));
        // Debug shows sizes, never values.
        assert!(!format!("{:?}", KeptHeaders::of(&map)).contains("Bearer"));
    }

    #[test]
    fn no_headers_take_no_buffer() {
        let kept = KeptHeaders::of(&HeaderMap::new());
        assert_eq!(kept.bytes.capacity(), 0);
        assert!(kept.to_map(0).is_empty());
    }

    #[test]
    fn a_truncated_buffer_gives_the_whole_headers_before_the_cut() {
        let mut map = HeaderMap::new();
        map.append("a", HeaderValue::from_static("1"));
        map.append("b", HeaderValue::from_static("2"));
        let kept = KeptHeaders::of(&map);
        for cut in 0..kept.bytes.len() {
            let back = KeptHeaders { bytes: kept.bytes[..cut].to_vec(), count: 2 }.to_map(0);
            let whole = if cut >= HEAD + 2 { 1 } else { 0 };
            assert_eq!(back.len(), whole, "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn round_trips_any_headers(
            headers in proptest::collection::vec(
                ("[a-z0-9-]{1,20}", proptest::collection::vec(0x20u8..0x7f, 0..80), any::<bool>()),
                0..20,
            )
        ) {
            let mut map = HeaderMap::new();
            for (name, value, sensitive) in &headers {
                let mut v = HeaderValue::from_bytes(value).unwrap();
                v.set_sensitive(*sensitive);
                map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), v);
            }
            let back = KeptHeaders::of(&map).to_map(0);
            prop_assert_eq!(pairs(&back), pairs(&map));
        }
    }
}
