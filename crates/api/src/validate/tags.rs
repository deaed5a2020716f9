//! Kuma's shared checks: tags and selectors, ports, hostnames, addresses (`pkg/core/resources/apis/mesh/validators.go`).

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;

use super::Errors;
use crate::model::common::{SERVICE_TAG, Selector, Tags};
use crate::path::Path;

#[allow(clippy::expect_used)]
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static regex")
}

static TAG_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9.\-_:/]*$"));
static TAG_VALUE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-zA-Z0-9.\-_:]*$"));
static SELECTOR_VALUE: LazyLock<Regex> = LazyLock::new(|| re(r"^([a-zA-Z0-9.\-_:/]*|\*)$"));
static DOMAIN: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"));
static DNS_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^([a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})(\.[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})*[._]?$"));

/// A check run on the whole tag map.
pub(crate) type TagsCheck = fn(&Path, &Tags) -> Errors;

/// Kuma's `ValidateTagsOpts`.
#[derive(Default)]
pub(crate) struct TagsOpts {
    pub require_at_least_one_tag: bool,
    pub require_service: bool,
    pub forbid_service: bool,
    pub extra_tags: Vec<TagsCheck>,
    /// Tag names that are not allowed (gateway and listener tags).
    pub forbidden_keys: &'static [&'static str],
}

/// The tags a gateway or listener must not set (they are properties of the dataplane).
pub(crate) const GATEWAY_FORBIDDEN_TAGS: &[&str] =
    &["kuma.io/external-service-name", "kuma.io/protocol", "kuma.io/service", "kuma.io/zone"];

#[derive(Clone, Copy)]
enum ValueRule {
    Tag,
    Selector,
}

fn validate_key_values(path: &Path, tags: &Tags, opts: &TagsOpts, rule: ValueRule) -> Errors {
    let mut errs = Errors::default();
    if opts.require_at_least_one_tag && tags.is_empty() {
        errs.add(path.clone(), "must have at least one tag");
    }
    for check in &opts.extra_tags {
        errs.append(check(path, tags));
    }
    for (key, value) in tags {
        if key.is_empty() {
            errs.add(path.clone(), "tag name must be non-empty");
        }
        if !TAG_NAME.is_match(key) {
            errs.add(
                path.key(key),
                "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores",
            );
        }
        if opts.forbidden_keys.contains(&key.as_str()) {
            errs.add(path.key(key), format!("tag name must not be \"{key}\""));
        }
        if value.is_empty() {
            errs.add(path.key(key), "tag value must be non-empty");
        }
        match rule {
            ValueRule::Selector if !SELECTOR_VALUE.is_match(value) => errs.add(
                path.key(key),
                "tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be \"*\"",
            ),
            ValueRule::Tag if !TAG_VALUE.is_match(value) => errs
                .add(path.key(key), "tag value must consist of alphanumeric characters, dots, dashes and underscores"),
            _ => {}
        }
    }
    let has_service = tags.contains_key(SERVICE_TAG);
    if opts.forbid_service && has_service {
        errs.add(path.clone(), format!("\"{SERVICE_TAG}\" must not be defined"));
    }
    if opts.require_service && !has_service {
        errs.add(path.clone(), format!("mandatory tag \"{SERVICE_TAG}\" is missing"));
    }
    errs
}

/// Kuma's `ValidateTags`: tag values are plain names.
pub(crate) fn validate_tags(path: &Path, tags: &Tags, opts: &TagsOpts) -> Errors {
    validate_key_values(path, tags, opts, ValueRule::Tag)
}

/// Kuma's `ValidateSelector`: values may also contain `/` or be `*`.
pub(crate) fn validate_selector(path: &Path, tags: &Tags, opts: &TagsOpts) -> Errors {
    validate_key_values(path, tags, opts, ValueRule::Selector)
}

/// Kuma's `ValidateSelectors`.
pub(crate) fn validate_selectors(
    path: &Path,
    selectors: &[Selector],
    require_at_least_one: bool,
    require_at_most_one: bool,
    opts: &TagsOpts,
) -> Errors {
    let mut errs = Errors::default();
    if require_at_least_one && selectors.is_empty() {
        errs.add(path.clone(), "must have at least one element");
    }
    for (i, selector) in selectors.iter().enumerate() {
        errs.append(validate_selector(&path.index(i).field("match"), &selector.match_, opts));
        if i > 0 && require_at_most_one {
            errs.add(path.index(i), "there can be at most one selector");
        }
    }
    errs
}

/// Kuma's `ValidatePort`.
pub(crate) fn validate_port(path: &Path, port: u32) -> Errors {
    let mut errs = Errors::default();
    if port == 0 || port > 65535 {
        errs.add(path.clone(), "port must be in the range [1, 65535]");
    }
    errs
}

/// Whether `name` is a lowercase DNS name (RFC 1123 labels).
pub(crate) fn is_domain(name: &str) -> bool {
    DOMAIN.is_match(name)
}

/// Kuma's `ValidateHostname` for gateway hostnames: `*`, `*.domain` or `domain`.
pub(crate) fn validate_hostname(path: &Path, hostname: &str) -> Errors {
    let mut errs = Errors::default();
    if hostname == "*" {
        return errs;
    }
    if hostname.len() > 253 {
        errs.add(path.clone(), "must be at most 253 characters");
    }
    if let Some(domain) = hostname.strip_prefix("*.") {
        if !is_domain(domain) {
            errs.add(path.clone(), "invalid wildcard domain");
        }
        return errs;
    }
    if !is_domain(hostname) {
        errs.add(path.clone(), "invalid hostname");
    }
    errs
}

/// govalidator's `IsIP`.
pub(crate) fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// govalidator's `IsDNSName`.
pub(crate) fn is_dns_name(s: &str) -> bool {
    if s.is_empty() || s.replace('.', "").len() > 255 {
        return false;
    }
    !is_ip(s) && DNS_NAME.is_match(s)
}

/// Go's `net.SplitHostPort` for the forms Kuma accepts: `host:port` and `[v6]:port`.
pub(crate) fn split_host_port(address: &str) -> Result<(&str, &str), &'static str> {
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("missing ']' in address")?;
        let port = after.strip_prefix(':').ok_or("missing port in address")?;
        if port.contains(':') {
            return Err("too many colons in address");
        }
        return Ok((host, port));
    }
    let (host, port) = address.rsplit_once(':').ok_or("missing port in address")?;
    if host.contains(':') {
        return Err("too many colons in address");
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(e: Errors) -> Vec<String> {
        e.list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn selector_rules() {
        let mut tags = Tags::new();
        tags.insert("kuma.io/service".into(), "web".into());
        tags.insert("version".into(), "*".into());
        let opts = TagsOpts { require_at_least_one_tag: true, require_service: true, ..Default::default() };
        assert!(msgs(validate_selector(&Path::rooted_at("match"), &tags, &opts)).is_empty());
        // `*` is a selector value, not a tag value.
        assert_eq!(
            msgs(validate_tags(&Path::rooted_at("tags"), &tags, &opts)),
            vec![r#"tags["version"]: tag value must consist of alphanumeric characters, dots, dashes and underscores"#]
        );
        let empty = Tags::new();
        assert_eq!(
            msgs(validate_selector(&Path::rooted_at("match"), &empty, &opts)),
            vec!["match: must have at least one tag", r#"match: mandatory tag "kuma.io/service" is missing"#]
        );
        let mut bad = Tags::new();
        bad.insert(String::new(), String::new());
        bad.insert("a b".into(), "x y".into());
        assert_eq!(
            msgs(validate_selector(&Path::rooted_at("m"), &bad, &TagsOpts::default())),
            vec![
                "m: tag name must be non-empty",
                r#"m[""]: tag value must be non-empty"#,
                r#"m["a b"]: tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores"#,
                r#"m["a b"]: tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be "*""#,
            ]
        );
    }

    #[test]
    fn hostnames() {
        let p = Path::rooted_at("h");
        assert!(msgs(validate_hostname(&p, "*")).is_empty());
        assert!(msgs(validate_hostname(&p, "*.example.com")).is_empty());
        assert!(msgs(validate_hostname(&p, "foo.example.com")).is_empty());
        assert_eq!(msgs(validate_hostname(&p, "*.foo.*.example.com")), vec!["h: invalid wildcard domain"]);
        assert_eq!(msgs(validate_hostname(&p, "Foo.com")), vec!["h: invalid hostname"]);
        assert_eq!(msgs(validate_hostname(&p, "foo.example$.com")), vec!["h: invalid hostname"]);
        let long = format!("{}.com", "f".repeat(250));
        assert_eq!(msgs(validate_hostname(&p, &long)), vec!["h: must be at most 253 characters"]);
    }

    #[test]
    fn addresses() {
        assert!(is_dns_name("example.com"));
        assert!(is_dns_name("my_host"));
        assert!(!is_dns_name("1.2.3.4"));
        assert!(!is_dns_name("-bad"));
        assert_eq!(split_host_port("a.b:80"), Ok(("a.b", "80")));
        assert_eq!(split_host_port("[::1]:80"), Ok(("::1", "80")));
        assert!(split_host_port("a.b").is_err());
        assert!(split_host_port("::1:80").is_err());
    }
}
