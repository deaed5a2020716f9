//! YAML text → a tree of positioned nodes.
//!
//! serde-saphyr does the YAML work (YAML 1.2 syntax, duplicate keys rejected, alias and size budgets); this module
//! keeps the result as an untyped tree in which every node knows its line and column, so that decoding errors and
//! validation violations found later can point at the place in the file they come from.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, DuplicateKeyPolicy, Options, Spanned};

/// The largest YAML text accepted (per file); larger inputs are refused before parsing.
pub const MAX_INPUT_BYTES: usize = 8 * 1024 * 1024;

/// The deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 32;
const PARSE_STACK_BYTES: usize = 16 * 1024 * 1024;

/// A 1-based line and column in a source text. `0:0` means "unknown".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub col: u32,
}

impl Pos {
    /// A position.
    pub fn new(line: u32, col: u32) -> Self {
        Self { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One YAML node with the position of its first character.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Pos,
    /// What the node holds.
    pub value: Value,
}

/// The value of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// A string scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The string value of this node, if it is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries of this node, if it is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value stored under `key`, if this node is a mapping holding it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// Converts this node to JSON (keys as strings; used for fields that hold free-form data).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::UInt(u) => serde_json::Value::from(*u),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => serde_json::Value::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => {
                serde_json::Value::Object(entries.iter().map(|(k, v)| (scalar_text(k), v.to_json())).collect())
            }
        }
    }
}

/// The text of a scalar node as a map key would read (non-scalars render as their type).
pub fn scalar_text(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s.clone(),
        Value::Seq(_) | Value::Map(_) => node.value.type_name().to_owned(),
    }
}

/// A YAML syntax or limit error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// Where the problem is (`0:0` if unknown).
    pub pos: Pos,
    /// What is wrong, in one line.
    pub message: String,
}

/// Parses every document of a YAML stream. Empty documents (`---` with nothing after it) are dropped.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, YamlError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(YamlError {
            pos: Pos::default(),
            message: format!(
                "file is {} bytes, larger than the {} MiB limit for one configuration file",
                text.len(),
                MAX_INPUT_BYTES / (1024 * 1024)
            ),
        });
    }
    if let Some(offset) = text.find('\0') {
        return Err(YamlError {
            pos: pos_of_offset(text, offset),
            message: "not a YAML text: it contains a NUL byte (binary file?)".to_owned(),
        });
    }
    // Parsing recurses once per nesting level with large frames (tens of KiB each in unoptimised builds), so it
    // runs on a thread with a stack sized for MAX_DEPTH, whatever thread (a small async worker's) called us.
    let parse = || {
        serde_saphyr::from_multiple_with_options::<Node>(text, parse_options()).map_err(|e| {
            let pos = e.location().map_or(Pos::default(), |l| Pos::new(clamp(l.line()), clamp(l.column())));
            YamlError { pos, message: clean_message(&e.to_string()) }
        })
    };
    let docs = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("yaml-parse".into())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(scope, parse)
            .map_err(|e| YamlError { pos: Pos::default(), message: format!("cannot start the YAML parser: {e}") })?
            .join()
            .map_err(|_| YamlError { pos: Pos::default(), message: "the YAML parser failed".to_owned() })?
    })?;
    Ok(docs.into_iter().filter(|d| d.value != Value::Null).collect())
}

fn parse_options() -> Options {
    let mut options = Options::default();
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    // YAML 1.2 booleans: only true/false. (YAML 1.1 read `y`, `on`, `no` as booleans: the "Norway problem".)
    options.strict_booleans = true;
    let mut budget = Budget::default();
    // Kuma resources nest about a dozen levels deep; the limit keeps recursion (and the stack) small.
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    budget.max_documents = 10_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_nodes = 1_000_000;
    options.budget = Some(budget);
    // An alias may stand for a large subtree; cap what aliases can expand to ("billion laughs").
    options.alias_limits.max_total_replayed_events = 100_000;
    options.alias_limits.max_replay_stack_depth = 16;
    options
}

fn clamp(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn pos_of_offset(text: &str, offset: usize) -> Pos {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos::new(u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(col).unwrap_or(u32::MAX))
}

/// serde-saphyr prefixes its messages with "error: line L column C:" and sometimes suffixes advice about its own
/// options; the caller prints the position itself, and the advice is not for our users.
fn clean_message(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw).trim();
    let mut msg = first.strip_prefix("error:").unwrap_or(first).trim();
    if let Some(rest) = msg.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains("column")
    {
        msg = rest[idx + 2..].trim();
    }
    let msg = msg.split(", set DuplicateKeyPolicy").next().unwrap_or(msg);
    let msg = msg.split(" (set ").next().unwrap_or(msg);
    if msg.contains("recursion limit") || msg.contains("depth") || msg.contains("nesting") {
        return format!("nested deeper than {MAX_DEPTH} levels");
    }
    // "... at line 1, column 4": the caller prints the position.
    let msg = match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains("column") => &msg[..i],
        _ => msg,
    };
    msg.to_owned()
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned: Spanned<Value> = Spanned::deserialize(deserializer)?;
        let loc = spanned.referenced;
        Ok(Node { pos: Pos::new(clamp(loc.line()), clamp(loc.column())), value: spanned.value })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(if v >= 0 { Value::UInt(v.unsigned_abs()) } else { Value::Int(v) })
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .or_else(|_| u64::try_from(v).map(Value::UInt))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v).map(Value::UInt).map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_types() {
        let docs = parse_documents("---\na: 1\nb: \"x\"\nc: [true, -2, 2.5, ~]\n").unwrap();
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d.get("a").unwrap().value, Value::UInt(1));
        assert_eq!(d.get("a").unwrap().pos, Pos::new(2, 4));
        assert_eq!(d.get("b").unwrap().as_str(), Some("x"));
        let Value::Seq(items) = &d.get("c").unwrap().value else { panic!() };
        assert_eq!(items[0].value, Value::Bool(true));
        assert_eq!(items[1].value, Value::Int(-2));
        assert_eq!(items[2].value, Value::Float(2.5));
        assert_eq!(items[3].value, Value::Null);
    }

    #[test]
    fn multi_document_and_empty_documents() {
        let docs = parse_documents("---\n---\na: 1\n---\nb: 2\n---\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].pos.line, 5);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse_documents("a:\n  b: 1\n  b: 2\n").unwrap_err();
        assert_eq!(err.pos, Pos::new(3, 3));
        assert!(err.message.contains("duplicate mapping key"), "{}", err.message);
        assert!(!err.message.contains("DuplicateKeyPolicy"), "{}", err.message);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse_documents("a: 1\nb: [1, 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
        assert!(!err.message.starts_with("error"), "{}", err.message);
        let err = parse_documents("hostname: *.example.com\n").unwrap_err();
        assert_eq!(err.pos.line, 1);
    }

    #[test]
    fn limits() {
        let deep = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        assert!(parse_documents(&deep).is_err());
        let mut deep_block = String::new();
        for i in 0..60 {
            deep_block.push_str(&" ".repeat(i));
            deep_block.push_str("k:\n");
        }
        assert!(parse_documents(&deep_block).is_err());
        assert!(parse_documents("a: \0").is_err());
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
        assert!(parse_documents(bomb).is_err());
    }
}
