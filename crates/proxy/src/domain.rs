//! Lookup by domain name as Envoy does it for virtual hosts and SNI filter chains: the exact name, then the longest
//! wildcard suffix (`*.example.com` contains `a.example.com` and `a.b.example.com`), then `*`.

use std::collections::HashMap;

/// How a name reached its item: the exact name, a wildcard suffix, or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// The pattern is the name.
    Exact,
    /// The longest `*.suffix` containing the name.
    Wildcard,
    /// `*`.
    Star,
}

/// Whether a lowercase name falls under a domain pattern (`name`, `*.suffix`, `*`): the table's own lookup, on a
/// table of that one pattern.
pub fn covers(pattern: &str, name: Option<&str>) -> bool {
    let mut table = DomainTable::default();
    table.insert(pattern, ());
    table.find(name).is_some()
}

/// Items keyed by domain pattern (`name`, `*.suffix`, `*`).
#[derive(Debug)]
pub struct DomainTable<T> {
    exact: HashMap<String, usize>,
    wildcards: Vec<(String, usize)>,
    star: Option<usize>,
    items: Vec<T>,
}

impl<T> Default for DomainTable<T> {
    fn default() -> Self {
        Self { exact: HashMap::new(), wildcards: Vec::new(), star: None, items: Vec::new() }
    }
}

impl<T> DomainTable<T> {
    /// Adds an item for a pattern (the first item of a pattern wins).
    pub fn insert(&mut self, pattern: &str, item: T) {
        let index = self.items.len();
        self.items.push(item);
        let pattern = pattern.to_ascii_lowercase();
        if pattern == "*" || pattern.is_empty() {
            self.star.get_or_insert(index);
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            if !self.wildcards.iter().any(|(s, _)| s == suffix) {
                self.wildcards.push((suffix.to_owned(), index));
                // The longest suffix wins.
                self.wildcards.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
            }
        } else {
            self.exact.entry(pattern).or_insert(index);
        }
    }

    /// The item for a lowercase name (`None` name: only `*` answers).
    pub fn find(&self, name: Option<&str>) -> Option<&T> {
        self.find_hit(name).and_then(|(index, _)| self.items.get(index))
    }

    /// The index of the item for a lowercase name, and how the name reached it.
    pub fn find_hit(&self, name: Option<&str>) -> Option<(usize, Hit)> {
        match name {
            Some(name) => self.exact.get(name).map(|i| (*i, Hit::Exact)).or_else(|| {
                self.wildcards
                    .iter()
                    .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
                    .map(|(_, i)| (*i, Hit::Wildcard))
                    .or(self.star.map(|i| (i, Hit::Star)))
            }),
            None => self.star.map(|i| (i, Hit::Star)),
        }
    }

    /// Every item, in insertion order.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order() {
        let mut t = DomainTable::default();
        for d in ["foo.example.com", "*.example.com", "*.a.example.com", "*"] {
            t.insert(d, d.to_owned());
        }
        assert_eq!(t.find(Some("foo.example.com")).unwrap(), "foo.example.com");
        assert_eq!(t.find(Some("bar.example.com")).unwrap(), "*.example.com");
        assert_eq!(t.find(Some("x.a.example.com")).unwrap(), "*.a.example.com");
        assert_eq!(t.find(Some("example.com")).unwrap(), "*");
        assert_eq!(t.find(None).unwrap(), "*");
        let mut no_star = DomainTable::default();
        no_star.insert("a.com", 1);
        assert_eq!(no_star.find(Some("b.com")), None);
        assert_eq!(no_star.find(None), None);
    }
}
