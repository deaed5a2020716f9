//! Request path normalisation, as Kuma configured Envoy (`normalize_path: true`, `merge_slashes: true`): routes
//! match, and upstreams receive, the normalised path.
//!
//! - percent-encoded unreserved characters are decoded (`%7E` → `~`), other escapes get uppercase hex digits
//!   (RFC 3986 §6.2.2.1–2); `%2F` stays encoded;
//! - repeated slashes collapse (`//a///b` → `/a/b`);
//! - dot segments are removed (`/a/./b/../c` → `/a/c`, RFC 3986 §5.2.4), never above the root.

use std::borrow::Cow;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether `path` may need work (cheap scan; most paths need none).
fn needs_work(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return true;
    }
    for i in 0..b.len() {
        match b[i] {
            b'%' => return true,
            b'/' => {
                let next = b.get(i + 1).copied();
                if next == Some(b'/') {
                    return true;
                }
                if next == Some(b'.') {
                    let after = b.get(i + 2).copied();
                    if after.is_none() || after == Some(b'/') {
                        return true;
                    }
                    if after == Some(b'.') && matches!(b.get(i + 3).copied(), None | Some(b'/')) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// The normalised form of a request path (without the query string).
pub fn normalize(path: &str) -> Cow<'_, str> {
    if !needs_work(path) {
        return Cow::Borrowed(path);
    }
    // 1. Percent-encoding normalisation.
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len() + 1);
    if bytes.first() != Some(&b'/') {
        decoded.push(b'/');
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            let v = h * 16 + l;
            if is_unreserved(v) {
                decoded.push(v);
            } else {
                decoded.push(b'%');
                decoded.push(bytes[i + 1].to_ascii_uppercase());
                decoded.push(bytes[i + 2].to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    // 2 and 3. Segments: drop empty ones (merged slashes) and `.`, pop on `..`.
    let trailing_slash = decoded.last() == Some(&b'/');
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut ends_in_dir = trailing_slash;
    for segment in decoded.split(|b| *b == b'/') {
        match segment {
            b"" => {}
            b"." => ends_in_dir = true,
            b".." => {
                segments.pop();
                ends_in_dir = true;
            }
            s => {
                segments.push(s);
                ends_in_dir = false;
            }
        }
    }
    if trailing_slash {
        ends_in_dir = true;
    }
    let mut out = Vec::with_capacity(decoded.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() || ends_in_dir {
        out.push(b'/');
    }
    // Only ASCII was decoded, and other bytes were copied whole, so the result is valid UTF-8.
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        for (input, want) in [
            ("/", "/"),
            ("/api/v1", "/api/v1"),
            ("/api/", "/api/"),
            ("//api///v1", "/api/v1"),
            ("/a/./b/../c", "/a/c"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/../../x", "/x"),
            ("/..", "/"),
            ("/%7euser/%41", "/~user/A"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%zz", "/a%zz"),
            ("/é", "/é"),
            ("/.hidden", "/.hidden"),
            ("/a..b/", "/a..b/"),
            ("", "/"),
        ] {
            assert_eq!(normalize(input), want, "{input}");
        }
    }

    #[test]
    fn common_paths_are_not_copied() {
        assert!(matches!(normalize("/api/v1/users"), Cow::Borrowed(_)));
        assert!(matches!(normalize("/"), Cow::Borrowed(_)));
    }
}
