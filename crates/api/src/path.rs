//! Field paths in Kuma's notation: `conf.listeners[0].tls.mode`, `tags["kuma.io/service"]`.
//!
//! A [`Path`] is built by validators (as Kuma's `validators.PathBuilder` is) and by the YAML decoder (which records
//! where every node of a document sits), so a violation's path can be mapped back to a line and column.

use std::fmt;

/// One step of a [`Path`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// A message field, rendered `.name` (the first one without the dot).
    Field(String),
    /// A list element, rendered `[i]`.
    Index(usize),
    /// A map entry, rendered `["key"]` with Go `%q` quoting.
    Key(String),
}

/// A field path, rendered exactly as Kuma renders it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    segments: Vec<Segment>,
}

impl Path {
    /// The empty path (the resource root).
    pub fn root() -> Self {
        Self::default()
    }

    /// A path starting at `field`, like Kuma's `validators.RootedAt(field)`.
    pub fn rooted_at(field: &str) -> Self {
        Self::root().field(field)
    }

    /// This path extended by a field.
    #[must_use]
    pub fn field(&self, name: &str) -> Self {
        self.with(Segment::Field(name.to_owned()))
    }

    /// This path extended by a list index.
    #[must_use]
    pub fn index(&self, i: usize) -> Self {
        self.with(Segment::Index(i))
    }

    /// This path extended by a map key.
    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        self.with(Segment::Key(key.to_owned()))
    }

    /// This path followed by every segment of `other`.
    #[must_use]
    pub fn join(&self, other: &Path) -> Self {
        let mut segments = self.segments.clone();
        segments.extend(other.segments.iter().cloned());
        Self { segments }
    }

    fn with(&self, segment: Segment) -> Self {
        let mut segments = Vec::with_capacity(self.segments.len() + 1);
        segments.extend(self.segments.iter().cloned());
        segments.push(segment);
        Self { segments }
    }

    /// The segments of this path.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The path without its last segment (the root stays the root).
    #[must_use]
    pub fn parent(&self) -> Self {
        let mut segments = self.segments.clone();
        segments.pop();
        Self { segments }
    }

    /// A spelling-insensitive key for this path: field names are compared without case and underscores, so
    /// `query_parameters` and `queryParameters` (both accepted on input, Kuma prints one or the other) are the
    /// same field. Map keys and indexes are kept exactly.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Field(name) => {
                    out.push('.');
                    out.extend(name.chars().filter(|c| *c != '_').map(|c| c.to_ascii_lowercase()));
                }
                Segment::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
                Segment::Key(key) => {
                    out.push('[');
                    out.push_str(&go_quote(key));
                    out.push(']');
                }
            }
        }
        out
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(idx) => write!(f, "[{idx}]")?,
                Segment::Key(key) => write!(f, "[{}]", go_quote(key))?,
            }
        }
        Ok(())
    }
}

/// Quotes a string the way Go's `%q` does for the characters that appear in tag names and values.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_kuma() {
        let p = Path::rooted_at("conf").field("listeners").index(0).field("tls").field("mode");
        assert_eq!(p.to_string(), "conf.listeners[0].tls.mode");
        let p = Path::rooted_at("tags").key("kuma.io/service");
        assert_eq!(p.to_string(), r#"tags["kuma.io/service"]"#);
        assert_eq!(Path::root().to_string(), "");
        assert_eq!(Path::root().index(1).to_string(), "[1]");
    }

    #[test]
    fn canonical_ignores_field_spelling_only() {
        let a = Path::rooted_at("conf").field("query_parameters").index(0).key("A_b");
        let b = Path::rooted_at("conf").field("queryParameters").index(0).key("A_b");
        let c = Path::rooted_at("conf").field("queryParameters").index(0).key("Ab");
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(a.canonical(), c.canonical());
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("x\u{1}"), r#""x\x01""#);
    }
}
