//! Spelling helpers: snake_case ↔ lowerCamelCase field names and did-you-mean suggestions.

/// `queryParameters` → `query_parameters` (proto field name from its JSON name).
pub fn camel_to_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn fold(s: &str) -> String {
    s.chars().filter(|c| *c != '_' && *c != '-').map(|c| c.to_ascii_lowercase()).collect()
}

/// The candidate closest to `input`, if one is close enough to be what the user meant: same letters ignoring case
/// and underscores, or within a small edit distance (about one edit per four characters).
pub fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let folded = fold(input);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let c = fold(candidate);
        let distance = strsim::damerau_levenshtein(&folded, &c);
        let limit = (folded.len().max(c.len()) / 4).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake() {
        assert_eq!(camel_to_snake("queryParameters"), "query_parameters");
        assert_eq!(camel_to_snake("hostToBackendHostname"), "host_to_backend_hostname");
        assert_eq!(camel_to_snake("port"), "port");
    }

    #[test]
    fn suggestions() {
        let fields = ["mode", "certificates", "options"];
        assert_eq!(did_you_mean("certificate", fields), Some("certificates"));
        assert_eq!(did_you_mean("Mode", fields), Some("mode"));
        assert_eq!(did_you_mean("mdoe", fields), Some("mode"));
        assert_eq!(did_you_mean("zzz", fields), None);
        assert_eq!(did_you_mean("status_code", ["statusCode", "scheme"]), Some("statusCode"));
        assert_eq!(did_you_mean("listener", ["listeners"]), Some("listeners"));
    }
}
