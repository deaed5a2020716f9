//! Kuma's own YAML and expected results (`testdata/kuma-examples`, Apache-2.0, see its README): every validator
//! case must give exactly Kuma's violations, every documented example must load.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use meshgate_api::decode::{Decoder, UnknownFields};
use meshgate_api::load::{ResourceSet, decode_text, read_text};
use meshgate_api::model::{MeshGateway, MeshGatewayRoute};
use meshgate_api::resource::Spec;
use meshgate_api::validate::extra::{NoLookup, extra};
use meshgate_api::validate::{validate, validate_spec};
use meshgate_api::yaml::parse_documents;
use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kuma-examples")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(corpus().join("manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest json")
}

/// Decodes a validator case the way Kuma's tests did: the whole document into the spec, unknown fields ignored.
fn decode_case(kind: &str, text: &str) -> Spec {
    let doc = parse_documents(text).expect("yaml").remove(0);
    let dec = Decoder::new(UnknownFields::Ignore, doc.pos);
    let root = meshgate_api::Path::root();
    match kind {
        "MeshGateway" => Spec::MeshGateway(dec.decode::<MeshGateway>(&doc, &root).expect("decode")),
        "MeshGatewayRoute" => Spec::MeshGatewayRoute(dec.decode::<MeshGatewayRoute>(&doc, &root).expect("decode")),
        other => panic!("unexpected kind {other}"),
    }
}

#[test]
fn validator_cases_give_exactly_kumas_violations() {
    let m = manifest();
    let cases = m["validator"].as_array().expect("validator list");
    assert!(cases.len() >= 51, "corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["case"].as_str().unwrap_or_default();
        let kind = case["resource"].as_str().unwrap_or_default();
        let files: Vec<&str> = case["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        let yaml = std::fs::read_to_string(corpus().join(files[0])).unwrap();
        let expected: Value = serde_json::from_str(&std::fs::read_to_string(corpus().join(files[1])).unwrap()).unwrap();
        let mut want: Vec<(String, String)> = expected["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["field"].as_str().unwrap().to_owned(), v["message"].as_str().unwrap().to_owned()))
            .collect();
        want.sort();
        let spec = decode_case(kind, &yaml);
        let mut got: Vec<(String, String)> =
            validate_spec(&spec).into_iter().map(|v| (v.path.to_string(), v.message)).collect();
        got.sort();
        assert_eq!(expected["valid"].as_bool().unwrap(), want.is_empty(), "{name}: corpus self-consistency");
        if got != want {
            failures.push(format!("{name}:\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Loads a file, returning every problem (decode, Kuma validation and the extra checks that need no other
/// resources).
fn problems_of(file: &Path, skip_documents: &BTreeSet<usize>) -> Vec<String> {
    let text = read_text(file).map_err(|p| p.to_string()).expect("readable");
    // Decode each document on its own so that non-Kuma documents can be skipped by index.
    let docs: Vec<&str> = split_documents(&text);
    let mut problems = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if skip_documents.contains(&i) {
            continue;
        }
        let outcome = decode_text(file, doc, UnknownFields::Deny);
        problems.extend(outcome.problems.iter().map(ToString::to_string));
        for item in &outcome.loaded {
            let r = item.resource();
            problems.extend(validate(r).into_iter().map(|v| format!("{}: {v}", r.describe())));
            problems.extend(extra(r, &NoLookup, false).into_iter().map(|v| format!("{}: {v}", r.describe())));
        }
    }
    problems
}

fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    for (offset, line) in text.match_indices('\n').map(|(i, _)| i + 1).zip(text[..].lines().skip(1)) {
        if line.trim_end() == "---" {
            docs.push(&text[start..offset]);
            start = offset;
        }
    }
    docs.push(&text[start..]);
    docs.into_iter()
        .filter(|d| d.lines().any(|l| !l.trim().is_empty() && l.trim() != "---" && !l.trim_start().starts_with('#')))
        .collect()
}

/// Documentation fragments that show only part of a MeshGateway. They decode, but Kuma's own validator rejects a
/// MeshGateway without `conf` (validator case "doesn't have a configuration spec"), and meshgate answers as Kuma.
const FRAGMENTS: &[(&str, &str)] = &[
    ("docs/04-builtin-listeners-k8s.yaml", "MeshGateway edge-gateway: conf: cannot be empty"),
    ("docs/05-builtin-listeners-universal.yaml", "MeshGateway edge-gateway: conf: cannot be empty"),
];

#[test]
fn every_documented_example_loads() {
    let m = manifest();
    let mut failures = Vec::new();
    let mut checked = 0;
    let entries = m["docs"].as_array().unwrap().iter().chain(m["counter_demo"].as_array().unwrap());
    for entry in entries {
        let file = entry["file"].as_str().unwrap();
        if file.ends_with("openapi.yaml") {
            continue;
        }
        let skip: BTreeSet<usize> = entry["non_kuma_documents"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).map(|v| v as usize).collect())
            .unwrap_or_default();
        let problems = problems_of(&corpus().join(file), &skip);
        checked += 1;
        if let Some((_, expected)) = FRAGMENTS.iter().find(|(f, _)| *f == file) {
            if problems != [expected.to_string()] {
                failures.push(format!("{file}: expected only `{expected}`, got {problems:?}"));
            }
            continue;
        }
        match entry["known_invalid"].as_str() {
            Some(reason) if problems.is_empty() => {
                failures.push(format!("{file}: known invalid ({reason}) but accepted"))
            }
            Some(_) => {}
            None if !problems.is_empty() => failures.push(format!("{file}:\n  {}", problems.join("\n  "))),
            None => {}
        }
    }
    assert!(checked >= 55, "checked {checked} files");
    assert!(failures.is_empty(), "{} files wrong:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn known_invalid_examples_fail_for_the_documented_reason() {
    let p = problems_of(&corpus().join("docs/01-builtin-k8s.yaml"), &BTreeSet::new());
    assert_eq!(p, vec!["MeshGatewayInstance edge-gateway: tags: \"kuma.io/service\" must not be defined"]);
    let p = problems_of(&corpus().join("docs/41-introduction-k8s.yaml"), &BTreeSet::new());
    assert!(p.iter().any(|l| l.contains("unknown field `conf`")), "{p:?}");
}

#[test]
fn gateway_generator_inputs_load_as_a_set() {
    let m = manifest();
    let mut files: Vec<String> = Vec::new();
    for entry in m["gateway_testdata"].as_array().unwrap() {
        if entry["role"] == "input-fixture" {
            files.push(entry["file"].as_str().unwrap().to_owned());
        }
    }
    for entry in m["gateway_inline_inputs"].as_array().unwrap() {
        files.push(entry["file"].as_str().unwrap().to_owned());
    }
    assert!(files.len() >= 60, "{} files", files.len());
    // Two of Kuma's test inputs repeat `selectors:`; Go's YAML reader kept the last one, meshgate refuses duplicate
    // keys (a repeated key is almost always a mistake that silently drops configuration).
    let duplicated = [
        ("route-http-https/25-gateway-route.input.yaml", "34:1"),
        ("route-http-https/26-gateway-route.input.yaml", "28:1"),
    ];
    let mut failures = Vec::new();
    for file in &files {
        let path = corpus().join(file);
        let text = read_text(&path).unwrap();
        let outcome = decode_text(&path, &text, UnknownFields::Deny);
        if let Some((_, pos)) = duplicated.iter().find(|(f, _)| file.ends_with(f)) {
            let got: Vec<String> = outcome.problems.iter().map(ToString::to_string).collect();
            let want = format!("{}:{pos}: invalid YAML: duplicate mapping key: selectors", path.display());
            if got != [want.clone()] {
                failures.push(format!("expected {want}, got {got:?}"));
            }
            continue;
        }
        failures.extend(outcome.problems.iter().map(ToString::to_string));
        let set = ResourceSet::new(&outcome.loaded);
        for p in set.check() {
            // Inputs reference secrets and meshes stored by other fixtures; only single-file problems count here.
            if !["not found in mesh", "mTLS must be enabled", "does not exist"].iter().any(|m| p.message.contains(m)) {
                failures.push(p.to_string());
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
