//! Hostname matching between listeners, routes and virtual hosts (Kuma's `match` package, without its bugs).

/// Whether the wildcard-or-name `outer` contains every name `inner` can be: equal names, or `*`, or `*.S`
/// containing `x.S`, `a.b.S` and `*.x.S` (at least one more label).
pub fn contains(outer: &str, inner: &str) -> bool {
    if outer == "*" || outer == inner {
        return true;
    }
    match outer.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => {
            inner.len() > suffix.len() && inner.ends_with(suffix) && inner != suffix
        }
        _ => false,
    }
}

/// Whether two names overlap: equal, or one contains the other.
pub fn matches(a: &str, b: &str) -> bool {
    contains(a, b) || contains(b, a)
}

/// Kuma's order of listener hostnames on a port, most exact first: names, then wildcards with more labels, then
/// `*`; ties by name.
pub fn exactness_order(a: &str, b: &str) -> std::cmp::Ordering {
    let wild = |h: &str| h.starts_with('*');
    let labels = |h: &str| h.split('.').count();
    wild(a).cmp(&wild(b)).then_with(|| labels(b).cmp(&labels(a))).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment() {
        assert!(contains("*", "anything.com"));
        assert!(contains("*.example.com", "a.example.com"));
        assert!(contains("*.example.com", "a.b.example.com"));
        assert!(contains("*.example.com", "*.a.example.com"));
        assert!(!contains("*.example.com", "example.com"));
        assert!(!contains("*.example.com", "badexample.com"));
        assert!(contains("*.com", "*.example.com"));
        assert!(!contains("foo.example.com", "foo.bar.example.com"), "Kuma's bug is not reproduced");
        assert!(matches("foo.example.com", "*.example.com"));
        assert!(!matches("foo.example.com", "bar.example.com"));
    }

    #[test]
    fn order() {
        let mut hosts = vec!["*", "*.example.com", "b.com", "*.a.example.com", "a.com"];
        hosts.sort_by(|a, b| exactness_order(a, b));
        assert_eq!(hosts, vec!["a.com", "b.com", "*.a.example.com", "*.example.com", "*"]);
    }
}
