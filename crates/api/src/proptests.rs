//! Property tests: the loader never panics, whatever the input, and what decodes re-encodes to the same resource.

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::decode::UnknownFields;
use crate::load::{ResourceSet, decode_text};
use crate::resource::decode_document;
use crate::validate::extra::{NoLookup, extra};
use crate::validate::validate;
use crate::yaml::parse_documents;

const KEYS: &[&str] = &[
    "type",
    "name",
    "mesh",
    "selectors",
    "match",
    "conf",
    "listeners",
    "port",
    "protocol",
    "tls",
    "mode",
    "certificates",
    "secret",
    "inline",
    "inlineString",
    "hostname",
    "hostnames",
    "tags",
    "kuma.io/service",
    "crossMesh",
    "resources",
    "connectionLimit",
    "http",
    "tcp",
    "rules",
    "matches",
    "path",
    "value",
    "method",
    "headers",
    "query_parameters",
    "filters",
    "redirect",
    "status_code",
    "rewrite",
    "replacePrefixMatch",
    "request_header",
    "set",
    "add",
    "remove",
    "mirror",
    "percentage",
    "backend",
    "backends",
    "weight",
    "destination",
    "networking",
    "address",
    "gateway",
    "inbound",
    "outbound",
    "spec",
    "targetRef",
    "kind",
    "to",
    "default",
    "backendRefs",
    "data",
    "apiVersion",
    "metadata",
    "labels",
    "mtls",
    "enabledBackend",
    "zzz",
];
/// The kinds meshgate interprets.
const KINDS: &[&str] = &[
    "MeshGateway",
    "MeshGatewayRoute",
    "Dataplane",
    "Secret",
    "Mesh",
    "ExternalService",
    "MeshHTTPRoute",
    "MeshTCPRoute",
];
/// Other values the decoder gives meaning to (kinds are drawn from [`KINDS`] as well).
const STRINGS: &[&str] = &[
    "MeshTimeout",
    "kuma.io/v1alpha1",
    "v1",
    "HTTP",
    "HTTPS",
    "TLS",
    "TCP",
    "NONE",
    "TERMINATE",
    "PASSTHROUGH",
    "PREFIX",
    "EXACT",
    "REGEX",
    "BUILTIN",
    "MeshGateway",
    "PathPrefix",
    "/",
    "/api",
    "*",
    "*.example.com",
    "foo.example.com",
    "default",
    "gw",
    "",
    "aGVsbG8=",
    "[",
    "(?P<",
    "1.5s",
    "Exact",
    "Mesh",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u32..70000).prop_map(Value::from),
        (-1e3f64..1e3).prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        prop::sample::select(KINDS).prop_map(Value::from),
        "[a-z./*_-]{0,12}".prop_map(Value::from),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|entries| Value::Object(
                entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>()
            )),
        ]
    })
}

/// A document that starts like a resource, so that decoding gets past the envelope.
fn resource_like() -> impl Strategy<Value = Value> {
    (prop::sample::select(KINDS), tree()).prop_map(|(kind, body)| {
        let mut m = match body {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("conf".into(), other);
                m
            }
        };
        m.insert("type".into(), Value::from(kind));
        m.insert("name".into(), Value::from("r"));
        Value::Object(m)
    })
}

fn exercise(text: &str) {
    let outcome = decode_text(std::path::Path::new("p.yaml"), text, UnknownFields::Deny);
    for p in &outcome.problems {
        let _ = p.to_string();
    }
    for item in &outcome.loaded {
        let _ = validate(item.resource());
        let _ = extra(item.resource(), &NoLookup, false);
    }
    let _ = ResourceSet::new(&outcome.loaded).check_with(false);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        exercise(&text);
    }

    #[test]
    fn yaml_looking_text_never_panics(lines in prop::collection::vec("[ -]{0,4}[a-zA-Z_.:/*]{0,8}(: )?[\\[\\]{}a-z0-9&*!|>'\"-]{0,10}", 0..20)) {
        exercise(&lines.join("\n"));
    }

    #[test]
    fn resource_shaped_documents_never_panic_and_round_trip(doc in resource_like()) {
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        exercise(&text);
        let Ok(mut docs) = parse_documents(&text) else { return Ok(()) };
        let Some(node) = docs.pop() else { return Ok(()) };
        if let Ok(decoded) = decode_document(&node, UnknownFields::Deny) {
            let again_text = serde_json::to_string(&decoded.resource.to_universal_json()).unwrap_or_default();
            let again = parse_documents(&again_text).unwrap_or_default();
            prop_assert_eq!(again.len(), 1);
            let again = decode_document(&again[0], UnknownFields::Deny);
            prop_assert!(again.is_ok(), "re-encoded resource does not decode: {}", again_text);
            if let Ok(again) = again {
                prop_assert_eq!(again.resource.spec, decoded.resource.spec);
            }
        }
    }
}
