//! Which MeshGateway configures a gateway dataplane, and which listeners a route selects (Kuma's tag matching).

use meshgate_api::model::MeshGateway;
use meshgate_api::model::common::{Selector, Tags};

use crate::index::Named;

/// How well a selector matches: (tags matched, of which exact values). Higher is better.
pub type Rank = (usize, usize);

/// The rank of `selector` against `tags`, or `None` if it does not match: every selector key must be present
/// with an equal value, or the selector's value must be `*`.
pub fn rank(selector: &Tags, tags: &Tags) -> Option<Rank> {
    let mut exact = 0;
    for (k, v) in selector {
        let actual = tags.get(k)?;
        if v == "*" {
            continue;
        }
        if v != actual {
            return None;
        }
        exact += 1;
    }
    Some((selector.len(), exact))
}

/// Whether any selector matches `tags`.
pub fn any_matches(selectors: &[Selector], tags: &Tags) -> bool {
    selectors.iter().any(|s| rank(&s.match_, tags).is_some())
}

/// The best-ranked MeshGateway for a dataplane with `tags`. Kuma breaks rank ties by newest creation time; files
/// have none, so meshgate takes the first by name and reports the other candidates.
pub fn select_gateway<'a, 'b>(
    gateways: &'b [Named<'a, MeshGateway>],
    tags: &Tags,
) -> (Option<&'b Named<'a, MeshGateway>>, Vec<&'a str>) {
    let mut best: Option<(Rank, &Named<'a, MeshGateway>)> = None;
    let mut tied = Vec::new();
    for gw in gateways {
        let gw_rank = if gw.spec.selectors.is_empty() {
            Some((0, 0))
        } else {
            gw.spec.selectors.iter().filter_map(|s| rank(&s.match_, tags)).max()
        };
        let Some(r) = gw_rank else { continue };
        match &best {
            Some((b, _)) if r < *b => {}
            Some((b, _)) if r == *b => tied.push(gw.name),
            _ => {
                best = Some((r, gw));
                tied.clear();
            }
        }
    }
    (best.map(|(_, g)| g), tied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn ranks() {
        let dp = tags(&[("kuma.io/service", "gw"), ("zone", "a")]);
        assert_eq!(rank(&tags(&[("kuma.io/service", "gw")]), &dp), Some((1, 1)));
        assert_eq!(rank(&tags(&[("kuma.io/service", "*")]), &dp), Some((1, 0)));
        assert_eq!(rank(&tags(&[("kuma.io/service", "gw"), ("zone", "a")]), &dp), Some((2, 2)));
        assert_eq!(rank(&tags(&[("kuma.io/service", "gw"), ("zone", "b")]), &dp), None);
        assert_eq!(rank(&tags(&[("version", "*")]), &dp), None);
        assert!(
            rank(&tags(&[("kuma.io/service", "gw"), ("zone", "*")]), &dp)
                > rank(&tags(&[("kuma.io/service", "gw")]), &dp)
        );
    }
}
