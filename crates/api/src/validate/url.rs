//! The two URL checks Kuma's MeshTrace validator relies on: Go's `net/url.ParseRequestURI` (what it accepts, and the
//! parts it finds) and govalidator's `IsURL`, reproduced for the inputs policies carry.

/// What `ParseRequestURI` finds in a URL.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestUri {
    /// The scheme (lowercase), empty when there is none.
    pub scheme: String,
    /// `host[:port]` after `//`.
    pub authority: String,
    /// The host without port.
    pub host: String,
    /// The port after the last `:` of the authority, when there is one.
    pub port: Option<String>,
    /// An opaque part (`scheme:rest` without `//`).
    pub opaque: bool,
    /// `user@` in the authority.
    pub user: bool,
    /// A path.
    pub path: bool,
    /// A query.
    pub query: bool,
    /// A fragment (`ParseRequestURI` keeps `#…` in the path: never set).
    pub fragment: bool,
}

/// The scheme of `raw` and the rest, as Go's `getScheme` splits them (no scheme: all of it is the rest).
fn scheme(raw: &str) -> Result<(&str, &str), ()> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err(()),
            ':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path; `None` where Go returns an error.
pub(crate) fn parse_request_uri(raw: &str) -> Option<RequestUri> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let (scheme, rest) = scheme(raw).ok()?;
    let mut uri = RequestUri { scheme: scheme.to_ascii_lowercase(), ..RequestUri::default() };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    uri.query = query.is_some_and(|q| !q.is_empty());
    if !rest.starts_with('/') {
        if uri.scheme.is_empty() {
            return None;
        }
        uri.opaque = !rest.is_empty();
        return Some(uri);
    }
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            let authority = &after[..end];
            let hostport = match authority.rsplit_once('@') {
                Some((_, h)) => {
                    uri.user = true;
                    h
                }
                None => authority,
            };
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let (inside, after) = v6.split_once(']')?;
                match after {
                    "" => (inside, None),
                    p => (inside, Some(p.strip_prefix(':')?)),
                }
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (hostport, None),
                }
            };
            if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
                return None;
            }
            uri.authority = hostport.to_owned();
            uri.host = host.to_owned();
            uri.port = port.filter(|p| !p.is_empty()).map(str::to_owned);
            &after[end..]
        }
        None => rest,
    };
    uri.path = !path.is_empty();
    Some(uri)
}

fn is_ipv4(host: &str) -> bool {
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// A DNS-like host as govalidator's URL pattern allows it: labels of letters, digits, `-` and `_` that start and
/// end with a letter or digit, separated by dots.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

/// govalidator's `IsURL`.
pub(crate) fn is_url(raw: &str) -> bool {
    let count = raw.chars().count();
    if raw.is_empty() || count >= 2083 || count <= 3 || raw.starts_with('.') || raw.chars().any(char::is_whitespace) {
        return false;
    }
    let with_scheme = if raw.contains(':') && !raw.contains("://") { format!("http://{raw}") } else { raw.to_owned() };
    let (scheme, rest) = match with_scheme.split_once("://") {
        Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
        None => (None, with_scheme.as_str()),
    };
    if scheme.as_deref().is_some_and(|s| !matches!(s, "http" | "https" | "ftp" | "tcp" | "udp" | "ws" | "wss")) {
        return false;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if scheme.is_none()
        && !authority.contains('.')
        && !path.contains('.')
        && !authority.eq_ignore_ascii_case("localhost")
    {
        // Go parses it as a relative path without a dot: not a URL.
        return false;
    }
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((inside, after)) => (inside, after.strip_prefix(':')),
            None => return false,
        },
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    if host.starts_with('.')
        || port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    is_ipv4(host)
        || host.parse::<std::net::Ipv6Addr>().is_ok()
        || host.eq_ignore_ascii_case("localhost")
        || is_host_name(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uris_as_go_parses_them() {
        assert!(parse_request_uri("not_valid_url").is_none());
        assert!(parse_request_uri(":foo").is_none());
        let u = parse_request_uri("http://intake.datadoghq.eu:999999").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port.as_deref()),
            ("http", "intake.datadoghq.eu", Some("999999"))
        );
        let u = parse_request_uri("http://u@h:8126/some/path?x=1").unwrap();
        assert!(u.user && u.path && u.query && !u.opaque);
        let u = parse_request_uri("otel-collector:4317").unwrap();
        assert!(u.opaque && u.host.is_empty(), "a gRPC host:port parses as an opaque URI");
        assert!(parse_request_uri("http://h:port").is_none());
        assert_eq!(parse_request_uri("/only/a/path").map(|u| u.path), Some(true));
    }

    #[test]
    fn urls_as_govalidator_sees_them() {
        for good in [
            "http://jaeger-collector.mesh-observability:9411/api/v2/spans",
            "http://zipkin:9411/api/v2/spans",
            "zipkin.example.com/api/v2/spans",
            "localhost:9411",
            "http://127.0.0.1:9411/x",
        ] {
            assert!(is_url(good), "{good}");
        }
        for bad in ["not_valid_url", "http://", ".example.com", "ftp2://x.y", "http://a b.com", "http://h:99999999/"] {
            assert!(!is_url(bad), "{bad}");
        }
    }
}
