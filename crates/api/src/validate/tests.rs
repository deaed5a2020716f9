//! Table-driven tests: one rejecting and one accepting input for every validation rule, with Kuma's exact paths
//! and messages.
//!
//! Every case is a whole resource in Universal form, decoded the way a user's file is (unknown fields denied) and
//! checked against the exact list of `"<path>: <message>"` strings (compared sorted). The rules and messages are
//! those of Kuma's validators (`gateway_validator.go`, `gateway_route_validator.go`, `dataplane_validator.go`,
//! `validators.go`, and the MeshHTTPRoute/MeshTCPRoute `validator.go`); the `extra_*` groups cover meshgate's
//! configuration-generation-time checks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::collections::BTreeSet;

use crate::decode::UnknownFields;
use crate::resource::{Resource, decode_document};
use crate::validate::extra::{NoLookup, extra};
use crate::validate::validate;
use crate::yaml::parse_documents;

/// One case: a name, a whole resource and every violation it must give (empty: it must be accepted).
struct Case {
    name: &'static str,
    yaml: String,
    want: Vec<String>,
}

/// A case; `yaml` may be indented to sit nicely in the source (the common indentation is removed).
fn case(name: &'static str, yaml: &str, want: &[&str]) -> Case {
    Case { name, yaml: dedent(yaml), want: want.iter().map(|s| (*s).to_owned()).collect() }
}

impl Case {
    /// Replaces a placeholder in the YAML and the expected messages (for values too long to write inline).
    fn sub(mut self, placeholder: &str, value: &str) -> Self {
        self.yaml = self.yaml.replace(placeholder, value);
        for w in &mut self.want {
            *w = w.replace(placeholder, value);
        }
        self
    }

    /// Adds an expected violation built at run time.
    fn want_also(mut self, violation: &str) -> Self {
        self.want.push(violation.to_owned());
        self
    }
}

fn dedent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent =
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line.get(indent..).unwrap_or_else(|| line.trim_start()));
        out.push('\n');
    }
    out
}

fn decode(yaml: &str) -> Result<Resource, String> {
    let mut docs = parse_documents(yaml).map_err(|e| format!("YAML: {e}"))?;
    if docs.len() != 1 {
        return Err(format!("expected one document, found {}", docs.len()));
    }
    let doc = docs.remove(0);
    decode_document(&doc, UnknownFields::Deny).map(|d| d.resource).map_err(|e| {
        let issues: Vec<String> = e.issues.iter().map(ToString::to_string).collect();
        format!("decode: {}", issues.join("; "))
    })
}

/// Runs every case of a group and fails once, naming every case whose violations differ.
fn run(group: &str, cases: &[Case], check: impl Fn(&Resource) -> Vec<String>) {
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for c in cases {
        assert!(names.insert(c.name), "{group}: duplicate case name {:?}", c.name);
        let resource = match decode(&c.yaml) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: the resource does not decode: {e}\n{}", c.name, c.yaml));
                continue;
            }
        };
        let mut got = check(&resource);
        got.sort();
        let mut want = c.want.clone();
        want.sort();
        if got != want {
            failures.push(format!("{}:\n    want {want:?}\n    got  {got:?}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{group}: {} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn kuma(resource: &Resource) -> Vec<String> {
    validate(resource).iter().map(ToString::to_string).collect()
}

fn extra_no_references(resource: &Resource) -> Vec<String> {
    extra(resource, &NoLookup, false).iter().map(ToString::to_string).collect()
}

fn extra_with_references(resource: &Resource) -> Vec<String> {
    extra(resource, &NoLookup, true).iter().map(ToString::to_string).collect()
}

const SELECTOR_VALUE: &str =
    "tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be \"*\"";

// ---------------------------------------------------------------------------------------------------------------
// MeshGateway (spec §2.1)
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn mesh_gateway_selectors() {
    let cases = [
        case(
            "minimal gateway is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[],
        ),
        case(
            "empty selector list",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: []
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &["selectors: must have at least one element"],
        ),
        case(
            "selectors missing",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &["selectors: must have at least one element"],
        ),
        case(
            "selectors null",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors:
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &["selectors: must have at least one element"],
        ),
        case(
            "selector without tags",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[
                "selectors[0].match: must have at least one tag",
                r#"selectors[0].match: mandatory tag "kuma.io/service" is missing"#,
            ],
        ),
        case(
            "selector without service tag",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {app: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[r#"selectors[0].match: mandatory tag "kuma.io/service" is missing"#],
        ),
        case(
            "selector with service and other tags is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw, app: web}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[],
        ),
        case(
            "second selector without service tag",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}, {match: {app: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[r#"selectors[1].match: mandatory tag "kuma.io/service" is missing"#],
        ),
        case(
            "two selectors without crossMesh are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}, {match: {kuma.io/service: gw-2}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[],
        ),
        case(
            "one selector with crossMesh is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, crossMesh: true}]}
            "#,
            &[],
        ),
        case(
            "two selectors with crossMesh",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}, {match: {kuma.io/service: gw-2}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, crossMesh: true}]}
            "#,
            &["selectors[1]: there can be at most one selector"],
        ),
        case(
            "three selectors with crossMesh on the second listener",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: a}}, {match: {kuma.io/service: b}}, {match: {kuma.io/service: c}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}, {port: 8081, protocol: HTTP, crossMesh: true}]}
            "#,
            &["selectors[1]: there can be at most one selector", "selectors[2]: there can be at most one selector"],
        ),
        case(
            "selector value with a space",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw, version: "v 1"}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[],
        )
        .want_also(&format!("selectors[0].match[\"version\"]: {SELECTOR_VALUE}")),
        case(
            "selector value partial wildcard",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw, version: "v*"}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[],
        )
        .want_also(&format!("selectors[0].match[\"version\"]: {SELECTOR_VALUE}")),
        case(
            "selector values * and every allowed character are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: "*", version: "*", team: "a/B.c-d_e:9"}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[],
        ),
        case(
            "selector empty value",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw, version: ""}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[r#"selectors[0].match["version"]: tag value must be non-empty"#],
        ),
        case(
            "selector empty tag name",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw, "": x}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &["selectors[0].match: tag name must be non-empty"],
        ),
        case(
            "selector tag name with a space",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw, "a b": x}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[
                r#"selectors[0].match["a b"]: tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores"#,
            ],
        ),
    ];
    run("MeshGateway selectors", &cases, kuma);
}

#[test]
fn mesh_gateway_tags() {
    let mut cases = Vec::new();
    for key in ["kuma.io/service", "kuma.io/protocol", "kuma.io/zone", "kuma.io/external-service-name"] {
        let name: &'static str = match key {
            "kuma.io/service" => "gateway tag kuma.io/service",
            "kuma.io/protocol" => "gateway tag kuma.io/protocol",
            "kuma.io/zone" => "gateway tag kuma.io/zone",
            _ => "gateway tag kuma.io/external-service-name",
        };
        cases.push(
            case(
                name,
                r#"
                type: MeshGateway
                name: gw
                mesh: default
                selectors: [{match: {kuma.io/service: gw}}]
                tags: {product: edge, KEY: tcp}
                conf: {listeners: [{port: 8080, protocol: HTTP}]}
                "#,
                &[r#"tags["KEY"]: tag name must not be "KEY""#],
            )
            .sub("KEY", key),
        );
        let name: &'static str = match key {
            "kuma.io/service" => "listener tag kuma.io/service",
            "kuma.io/protocol" => "listener tag kuma.io/protocol",
            "kuma.io/zone" => "listener tag kuma.io/zone",
            _ => "listener tag kuma.io/external-service-name",
        };
        cases.push(
            case(
                name,
                r#"
                type: MeshGateway
                name: gw
                mesh: default
                selectors: [{match: {kuma.io/service: gw}}]
                conf: {listeners: [{port: 8080, protocol: HTTP}, {port: 8081, protocol: HTTP, tags: {vhost: foo, KEY: tcp}}]}
                "#,
                &[r#"conf.listeners[1].tags["KEY"]: tag name must not be "KEY""#],
            )
            .sub("KEY", key),
        );
    }
    cases.extend([
        case(
            "gateway tags with other kuma.io keys are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            tags: {product: edge, kuma.io/region: eu, kuma.io/services: x}
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[],
        ),
        case(
            "listener tags with other kuma.io keys are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, tags: {vhost: foo, kuma.io/custom: x}}]}
            "#,
            &[],
        ),
        case(
            "forbidden gateway tag with an empty value",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            tags: {kuma.io/service: ""}
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[
                r#"tags["kuma.io/service"]: tag name must not be "kuma.io/service""#,
                r#"tags["kuma.io/service"]: tag value must be non-empty"#,
            ],
        ),
        case(
            "gateway tag values * and slashes are valid (selector rules)",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            tags: {product: "*", team: a/b}
            conf: {listeners: [{port: 8080, protocol: HTTP, tags: {vhost: "*", path: x/y}}]}
            "#,
            &[],
        ),
        case(
            "gateway tag value with a space",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            tags: {product: "ed ge"}
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[],
        )
        .want_also(&format!("tags[\"product\"]: {SELECTOR_VALUE}")),
        case(
            "listener tag value with a space",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, tags: {vhost: "a b"}}]}
            "#,
            &[],
        )
        .want_also(&format!("conf.listeners[0].tags[\"vhost\"]: {SELECTOR_VALUE}")),
        case(
            "gateway tag empty value",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            tags: {product: ""}
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[r#"tags["product"]: tag value must be non-empty"#],
        ),
        case(
            "listener tag empty value",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, tags: {vhost: ""}}]}
            "#,
            &[r#"conf.listeners[0].tags["vhost"]: tag value must be non-empty"#],
        ),
        case(
            "gateway tag empty name",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            tags: {"": edge}
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &["tags: tag name must be non-empty"],
        ),
        case(
            "gateway tag empty name and value",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            tags: {"": ""}
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &["tags: tag name must be non-empty", r#"tags[""]: tag value must be non-empty"#],
        ),
        case(
            "listener tag empty name",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, tags: {"": foo}}]}
            "#,
            &["conf.listeners[0].tags: tag name must be non-empty"],
        ),
        case(
            "gateway tag name with a space",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            tags: {"pro duct": edge}
            conf: {listeners: [{port: 8080, protocol: HTTP}]}
            "#,
            &[
                r#"tags["pro duct"]: tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores"#,
            ],
        ),
        case(
            "listener tag name with a star",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, tags: {"v*": foo}}]}
            "#,
            &[
                r#"conf.listeners[0].tags["v*"]: tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores"#,
            ],
        ),
        case(
            "tag names with every allowed character are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            tags: {"a.B-c_d:e/9": edge}
            conf: {listeners: [{port: 8080, protocol: HTTP, tags: {"x.Y-z_1:2/3": foo}}]}
            "#,
            &[],
        ),
    ]);
    run("MeshGateway tags", &cases, kuma);
}

#[test]
fn mesh_gateway_listeners() {
    let long_label = "a".repeat(249);
    let cases = [
        case(
            "conf missing",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            "#,
            &["conf: cannot be empty"],
        ),
        case(
            "conf null",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
            "#,
            &["conf: cannot be empty"],
        ),
        case(
            "conf without listeners",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {}
            "#,
            &["conf.listeners: cannot be empty"],
        ),
        case(
            "empty listener list",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: []}
            "#,
            &["conf.listeners: cannot be empty"],
        ),
        // Hostnames.
        case(
            "hostname of 253 characters is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: LABEL.com}]}
            "#,
            &[],
        )
        .sub("LABEL", &long_label),
        case(
            "hostname of 254 characters",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: LABELa.com}]}
            "#,
            &["conf.listeners[0].hostname: must be at most 253 characters"],
        )
        .sub("LABEL", &long_label),
        case(
            "hostname of 254 characters with an uppercase letter",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: LABELA.com}]}
            "#,
            &[
                "conf.listeners[0].hostname: must be at most 253 characters",
                "conf.listeners[0].hostname: invalid hostname",
            ],
        )
        .sub("LABEL", &long_label),
        case(
            "wildcard hostname of 253 characters is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: "*.LABEL.com"}]}
            "#,
            &[],
        )
        .sub("LABEL", &"a".repeat(247)),
        case(
            "wildcard hostname of 254 characters",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: "*.LABEL.com"}]}
            "#,
            &["conf.listeners[0].hostname: must be at most 253 characters"],
        )
        .sub("LABEL", &"a".repeat(248)),
        case(
            "wildcard and exact hostnames are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {port: 8080, protocol: HTTP, hostname: "*"}
              - {port: 8080, protocol: HTTP, hostname: "*.example.com"}
              - {port: 8080, protocol: HTTP, hostname: a-1.b2.example.com}
              - {port: 8080, protocol: HTTP, hostname: localhost}
              - {port: 8081, protocol: HTTP, hostname: ""}
            "#,
            &[],
        ),
        case(
            "wildcard in the middle",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: "*.foo.*.example.com"}]}
            "#,
            &["conf.listeners[0].hostname: invalid wildcard domain"],
        ),
        case(
            "wildcard with an uppercase domain",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: "*.Example.com"}]}
            "#,
            &["conf.listeners[0].hostname: invalid wildcard domain"],
        ),
        case(
            "wildcard without a domain",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: "*."}]}
            "#,
            &["conf.listeners[0].hostname: invalid wildcard domain"],
        ),
        case(
            "wildcard that is not the first label",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: "foo.*.com"}]}
            "#,
            &["conf.listeners[0].hostname: invalid hostname"],
        ),
        case(
            "uppercase hostname",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: Foo.example.com}]}
            "#,
            &["conf.listeners[0].hostname: invalid hostname"],
        ),
        case(
            "hostname with a dollar sign",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: "foo.example$.com"}]}
            "#,
            &["conf.listeners[0].hostname: invalid hostname"],
        ),
        case(
            "hostname with a trailing dot",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: foo.example.com.}]}
            "#,
            &["conf.listeners[0].hostname: invalid hostname"],
        ),
        case(
            "hostname starting with a dash",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: -foo.com}]}
            "#,
            &["conf.listeners[0].hostname: invalid hostname"],
        ),
        // Ports.
        case(
            "port 0",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 0, protocol: HTTP}]}
            "#,
            &["conf.listeners[0].port: port must be in the range [1, 65535]"],
        ),
        case(
            "port missing",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{protocol: HTTP}]}
            "#,
            &["conf.listeners[0].port: port must be in the range [1, 65535]"],
        ),
        case(
            "port 65536",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 65536, protocol: HTTP}]}
            "#,
            &["conf.listeners[0].port: port must be in the range [1, 65535]"],
        ),
        case(
            "ports 1 and 65535 are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 1, protocol: HTTP}, {port: 65535, protocol: HTTP}]}
            "#,
            &[],
        ),
        // Protocols.
        case(
            "protocol missing",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080}]}
            "#,
            &["conf.listeners[0].protocol: cannot be empty"],
        ),
        case(
            "protocol NONE",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: NONE}]}
            "#,
            &["conf.listeners[0].protocol: cannot be empty"],
        ),
        case(
            "TCP listener is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: TCP}]}
            "#,
            &[],
        ),
        case(
            "TLS listener without tls passes Kuma's validation",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: TLS}]}
            "#,
            &[],
        ),
        // HTTPS and crossMesh.
        case(
            "HTTPS with crossMesh",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, crossMesh: true}]}
            "#,
            &["conf.listeners[0].protocol: protocol is not supported with crossMesh"],
        ),
        case(
            "HTTPS with crossMesh and TLS termination",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, crossMesh: true, tls: {mode: TERMINATE, certificates: [{secret: cert}]}}]}
            "#,
            &[
                "conf.listeners[0].protocol: protocol is not supported with crossMesh",
                "conf.listeners[0].tls: must be empty with crossMesh",
            ],
        ),
        case(
            "HTTP with crossMesh is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, crossMesh: true, hostname: foo.example.com}]}
            "#,
            &[],
        ),
        case(
            "TCP with crossMesh passes Kuma's validation (only HTTPS is rejected)",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: TCP, crossMesh: true}]}
            "#,
            &[],
        ),
        case(
            "HTTPS without tls",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS}]}
            "#,
            &["conf.listeners[0].tls: cannot be empty"],
        ),
        case(
            "HTTPS with TLS termination is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, tls: {mode: TERMINATE, certificates: [{secret: cert}]}}]}
            "#,
            &[],
        ),
        case(
            "HTTPS with TLS passthrough",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, tls: {mode: PASSTHROUGH}}]}
            "#,
            &["conf.listeners[0].tls.mode: mode is not supported on HTTPS listeners"],
        ),
        case(
            "TLS with passthrough is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: TLS, tls: {mode: PASSTHROUGH}}]}
            "#,
            &[],
        ),
        // TLS blocks.
        case(
            "HTTPS with an empty tls block",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, tls: {}}]}
            "#,
            &["conf.listeners[0].tls.mode: cannot be empty"],
        ),
        case(
            "HTTPS with tls options only",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, tls: {options: {}}}]}
            "#,
            &["conf.listeners[0].tls.mode: cannot be empty"],
        ),
        case(
            "TLS with mode NONE",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: TLS, tls: {mode: NONE}}]}
            "#,
            &["conf.listeners[0].tls.mode: cannot be empty"],
        ),
        case(
            "HTTP with a tls block without mode",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, tls: {certificates: [{secret: cert}]}}]}
            "#,
            &["conf.listeners[0].tls.mode: cannot be empty"],
        ),
        case(
            "HTTP with a complete tls block is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, tls: {mode: TERMINATE, certificates: [{secret: cert}]}}]}
            "#,
            &[],
        ),
        case(
            "TLS termination without certificates",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, tls: {mode: TERMINATE}}]}
            "#,
            &["conf.listeners[0].tls.certificates: cannot be empty in TLS termination mode"],
        ),
        case(
            "TLS termination without certificates on a TLS listener",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: TLS, tls: {mode: TERMINATE, certificates: []}}]}
            "#,
            &["conf.listeners[0].tls.certificates: cannot be empty in TLS termination mode"],
        ),
        case(
            "TLS termination with two certificates is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, tls: {mode: TERMINATE, certificates: [{secret: rsa}, {secret: ecdsa}]}}]}
            "#,
            &[],
        ),
        case(
            "TLS termination with three certificates",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, tls: {mode: TERMINATE, certificates: [{secret: a}, {secret: b}, {secret: c}]}}]}
            "#,
            &["conf.listeners[0].tls.certificates: cannot have more than 2 certificates"],
        ),
        case(
            "crossMesh with an empty tls block is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, crossMesh: true, tls: {}}]}
            "#,
            &[],
        ),
        case(
            "crossMesh with a TLS mode",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, crossMesh: true, tls: {mode: TERMINATE}}]}
            "#,
            &["conf.listeners[0].tls: must be empty with crossMesh"],
        ),
        case(
            "crossMesh with certificates",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, crossMesh: true, tls: {certificates: [{secret: cert}]}}]}
            "#,
            &["conf.listeners[0].tls: must be empty with crossMesh"],
        ),
        case(
            "crossMesh with passthrough",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, crossMesh: true, tls: {mode: PASSTHROUGH}}]}
            "#,
            &["conf.listeners[0].tls: must be empty with crossMesh"],
        ),
    ];
    run("MeshGateway listeners", &cases, kuma);
}

#[test]
fn mesh_gateway_listeners_on_one_port() {
    let cases = [
        case(
            "TCP and HTTP on one port",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 443, protocol: TCP, hostname: www-1.example.com}, {port: 443, protocol: HTTP, hostname: www-2.example.com}]}
            "#,
            &[
                "conf.listeners[0]: protocol conflicts with other listeners on this port",
                "conf.listeners[1]: protocol conflicts with other listeners on this port",
            ],
        ),
        case(
            "HTTP and HTTPS on one port",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {port: 443, protocol: HTTP, hostname: foo.example.com}
              - {port: 443, protocol: HTTPS, hostname: bar.example.com, tls: {mode: TERMINATE, certificates: [{secret: cert}]}}
            "#,
            &[
                "conf.listeners[0]: protocol conflicts with other listeners on this port",
                "conf.listeners[1]: protocol conflicts with other listeners on this port",
            ],
        ),
        case(
            "every listener of a port with two protocols is reported",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {port: 80, protocol: HTTP, hostname: a.example.com}
              - {port: 80, protocol: HTTP, hostname: b.example.com}
              - {port: 81, protocol: TCP}
              - {port: 80, protocol: TCP, hostname: c.example.com}
            "#,
            &[
                "conf.listeners[0]: protocol conflicts with other listeners on this port",
                "conf.listeners[1]: protocol conflicts with other listeners on this port",
                "conf.listeners[3]: protocol conflicts with other listeners on this port",
            ],
        ),
        case(
            "one protocol with distinct hostnames is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: foo.example.com}, {port: 8080, protocol: HTTP, hostname: bar.example.com}]}
            "#,
            &[],
        ),
        case(
            "different protocols on different ports are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}, {port: 8081, protocol: TCP}]}
            "#,
            &[],
        ),
        case(
            "two listeners without hostname on one port",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}, {port: 8080, protocol: HTTP}]}
            "#,
            &[
                "conf.listeners[0]: multiple listeners for hostname on this port",
                "conf.listeners[1]: multiple listeners for hostname on this port",
            ],
        ),
        case(
            "empty hostname and * are the same hostname",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}, {port: 8080, protocol: HTTP, hostname: "*"}]}
            "#,
            &[
                "conf.listeners[0]: multiple listeners for hostname on this port",
                "conf.listeners[1]: multiple listeners for hostname on this port",
            ],
        ),
        case(
            "* and a wildcard domain on one port are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: "*"}, {port: 8080, protocol: HTTP, hostname: "*.example.com"}]}
            "#,
            &[],
        ),
        case(
            "one hostname on two ports is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, hostname: foo.example.com}, {port: 8081, protocol: HTTP, hostname: foo.example.com}]}
            "#,
            &[],
        ),
        case(
            "one TCP hostname twice on one port",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 443, protocol: TCP, hostname: www-1.example.com}, {port: 443, protocol: TCP, hostname: www-1.example.com}]}
            "#,
            &[
                "conf.listeners[0]: multiple listeners for hostname on this port",
                "conf.listeners[1]: multiple listeners for hostname on this port",
            ],
        ),
        case(
            "only the duplicated hostname is reported",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {port: 8080, protocol: HTTP, hostname: foo.example.com}
              - {port: 8080, protocol: HTTP, hostname: foo.example.com}
              - {port: 8080, protocol: HTTP, hostname: bar.example.com}
              - {port: 8080, protocol: HTTP, hostname: foo.example.com}
            "#,
            &[
                "conf.listeners[0]: multiple listeners for hostname on this port",
                "conf.listeners[1]: multiple listeners for hostname on this port",
                "conf.listeners[3]: multiple listeners for hostname on this port",
            ],
        ),
        case(
            "two connection limits on one port",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {port: 8080, protocol: HTTP, hostname: one.com, resources: {connectionLimit: 2}}
              - {port: 8080, protocol: HTTP, hostname: two.com, resources: {connectionLimit: 1}}
            "#,
            &[
                "conf.listeners[0].resources.connectionLimit: conflicting values for this port",
                "conf.listeners[1].resources.connectionLimit: conflicting values for this port",
            ],
        ),
        case(
            "equal connection limits on one port are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {port: 8080, protocol: HTTP, hostname: one.com, resources: {connectionLimit: 2}}
              - {port: 8080, protocol: HTTP, hostname: two.com, resources: {connectionLimit: 2}}
            "#,
            &[],
        ),
        case(
            "a limited and an unlimited listener on one port are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {port: 8080, protocol: HTTP, hostname: one.com, resources: {connectionLimit: 2}}
              - {port: 8080, protocol: HTTP, hostname: two.com}
              - {port: 8080, protocol: HTTP, hostname: three.com, resources: {connectionLimit: 0}}
            "#,
            &[],
        ),
        case(
            "unlimited listeners are not reported in a limit conflict",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {port: 8080, protocol: HTTP, hostname: one.com, resources: {connectionLimit: 2}}
              - {port: 8080, protocol: HTTP, hostname: two.com}
              - {port: 8080, protocol: HTTP, hostname: three.com, resources: {connectionLimit: 3}}
            "#,
            &[
                "conf.listeners[0].resources.connectionLimit: conflicting values for this port",
                "conf.listeners[2].resources.connectionLimit: conflicting values for this port",
            ],
        ),
        case(
            "different limits on different ports are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {port: 8080, protocol: HTTP, resources: {connectionLimit: 2}}
              - {port: 8081, protocol: HTTP, resources: {connectionLimit: 1}}
            "#,
            &[],
        ),
        case(
            "hostname, protocol and resource conflict (Kuma's case)",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {hostname: www-1.example.com, port: 443, protocol: TCP, resources: {connectionLimit: 2}}
              - {hostname: www-1.example.com, port: 443, protocol: HTTPS, tls: {mode: TERMINATE}, resources: {connectionLimit: 1}}
            "#,
            &[
                "conf.listeners[0]: protocol conflicts with other listeners on this port",
                "conf.listeners[1]: protocol conflicts with other listeners on this port",
                "conf.listeners[0]: multiple listeners for hostname on this port",
                "conf.listeners[1]: multiple listeners for hostname on this port",
                "conf.listeners[1].tls.certificates: cannot be empty in TLS termination mode",
                "conf.listeners[0].resources.connectionLimit: conflicting values for this port",
                "conf.listeners[1].resources.connectionLimit: conflicting values for this port",
            ],
        ),
    ];
    run("MeshGateway listeners on one port", &cases, kuma);
}

// ---------------------------------------------------------------------------------------------------------------
// MeshGatewayRoute (spec §2.2)
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn mesh_gateway_route_selectors_and_conf() {
    let cases = [
        case(
            "minimal HTTP route is valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[],
        ),
        case(
            "empty selector list",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: []
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["selectors: must have at least one element"],
        ),
        case(
            "selectors missing",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["selectors: must have at least one element"],
        ),
        case(
            "selector without tags",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["selectors[0].match: must have at least one tag", r#"selectors[0].match: mandatory tag "kuma.io/service" is missing"#],
        ),
        case(
            "selector without service tag",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {vhost: foo}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[r#"selectors[0].match: mandatory tag "kuma.io/service" is missing"#],
        ),
        case(
            "several selectors with listener tags and * are valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw, vhost: "*"}}, {match: {kuma.io/service: gw-2, path: a/b}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[],
        ),
        case(
            "selector value with a space",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw, vhost: "a b"}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[],
        )
        .want_also(&format!("selectors[0].match[\"vhost\"]: {SELECTOR_VALUE}")),
        case(
            "selector with empty tag name and value",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw, "": ""}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["selectors[0].match: tag name must be non-empty", r#"selectors[0].match[""]: tag value must be non-empty"#],
        ),
        case(
            "conf missing",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            "#,
            &["conf: cannot be empty"],
        ),
        case(
            "conf without tcp or http",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {}
            "#,
            &["conf: cannot be empty"],
        ),
        case(
            "TCP route is valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {tcp: {rules: [{backends: [{destination: {kuma.io/service: db}}]}]}}
            "#,
            &[],
        ),
        case(
            "TCP routes are not validated beyond being set",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {tcp: {rules: [{backends: [{destination: {}}]}, {}]}}
            "#,
            &[],
        ),
        case(
            "empty TCP route passes validation",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {tcp: {}}
            "#,
            &[],
        ),
        case(
            "HTTP route without rules",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {hostnames: [foo.example.com]}}
            "#,
            &["conf.http.rules: cannot be empty"],
        ),
        case(
            "HTTP route with an empty rule list",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: []}}
            "#,
            &["conf.http.rules: cannot be empty"],
        ),
    ];
    run("MeshGatewayRoute selectors and conf", &cases, kuma);
}

#[test]
fn mesh_gateway_route_matches() {
    let cases = [
        case(
            "rule without matches",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches: cannot be empty"],
        ),
        case(
            "rule without matches is not checked further",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{filters: [{request_header: {}}]}]}}
            "#,
            &["conf.http.rules[0].matches: cannot be empty"],
        ),
        case(
            "second rule without matches",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - {matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}]}
                - {matches: [], backends: [{destination: {kuma.io/service: web}}]}
            "#,
            &["conf.http.rules[1].matches: cannot be empty"],
        ),
        case(
            "empty match",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0]: cannot be empty"],
        ),
        case(
            "matches on only a method, a header or a query parameter are valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches:
                  - {method: GET}
                  - {headers: [{name: x-a, value: b}]}
                  - {query_parameters: [{name: a, value: b}]}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[],
        ),
        case(
            "REGEX path without value",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: REGEX}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0].value: cannot be empty"],
        ),
        case(
            "relative REGEX path is valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: REGEX, value: "[a-z]+"}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[],
        ),
        case(
            "relative EXACT path",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: EXACT, value: some/path}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0].value: must be an absolute path"],
        ),
        case(
            "relative path with the default (EXACT) match",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {value: some/path}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0].value: must be an absolute path"],
        ),
        case(
            "relative PREFIX path",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: api}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0].value: must be an absolute path"],
        ),
        case(
            "empty path",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0].value: must be an absolute path"],
        ),
        case(
            "absolute paths are valid (a prefix may end with a slash)",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}, {path: {match: EXACT, value: /foo}}, {path: {match: PREFIX, value: /api/}}]
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[],
        ),
        case(
            "header without name",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{headers: [{value: v}]}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0].headers[0].name: cannot be empty"],
        ),
        case(
            "EXACT header without value",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{headers: [{name: x-a}]}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0].headers[0].value: cannot be empty"],
        ),
        case(
            "REGEX header without value",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{headers: [{match: REGEX, name: x-a}]}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0].headers[0].value: cannot be empty"],
        ),
        case(
            "header without name and value",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{headers: [{match: EXACT}]}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[
                "conf.http.rules[0].matches[0].headers[0].name: cannot be empty",
                "conf.http.rules[0].matches[0].headers[0].value: cannot be empty",
            ],
        ),
        case(
            "ABSENT and PRESENT headers with a value",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{headers: [{match: ABSENT, name: x-a, value: v}, {match: PRESENT, name: x-b, value: v}]}]
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[
                "conf.http.rules[0].matches[0].headers[0].value: cannot be set",
                "conf.http.rules[0].matches[0].headers[1].value: cannot be set",
            ],
        ),
        case(
            "headers of every match type are valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches:
                  - headers:
                    - {match: ABSENT, name: x-a}
                    - {match: PRESENT, name: x-b}
                    - {match: EXACT, name: x-c, value: "my great foo"}
                    - {match: REGEX, name: x-d, value: "[0-9]+"}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[],
        ),
        case(
            "query parameter without name",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{query_parameters: [{value: v}]}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0].query_parameters[0].name: cannot be empty"],
        ),
        case(
            "query parameter without value",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{query_parameters: [{match: REGEX, name: q}]}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].matches[0].query_parameters[0].value: cannot be empty"],
        ),
        case(
            "query parameters are valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{query_parameters: [{match: EXACT, name: customer, value: kong}, {match: REGEX, name: id, value: "[0-9]+"}]}]
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[],
        ),
    ];
    run("MeshGatewayRoute matches", &cases, kuma);
}

#[test]
fn mesh_gateway_route_filters() {
    let cases = [
        case(
            "empty request header filter",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{request_header: {}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].request_header: cannot be empty"],
        ),
        case(
            "request header filters with only set, add or remove are valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters:
                  - request_header: {set: [{name: x-a, value: a}, {name: x-a, value: a}]}
                  - request_header: {add: [{name: Host, value: b}]}
                  - request_header: {remove: [x-c]}
                  - response_header: {}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[],
        ),
        case(
            "set entry without name",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{request_header: {set: [{value: v}]}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].request_header.set[0].name: cannot be empty"],
        ),
        case(
            "set entry without value",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{request_header: {set: [{name: x-foo}]}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].request_header.set[0].value: cannot be empty"],
        ),
        case(
            "add entry without name and value",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{request_header: {add: [{name: x-a, value: a}, {}]}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[
                "conf.http.rules[0].filters[0].request_header.add[1].name: cannot be empty",
                "conf.http.rules[0].filters[0].request_header.add[1].value: cannot be empty",
            ],
        ),
        case(
            "empty remove entry",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{request_header: {remove: [x-a, ""]}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].request_header.remove[1]: cannot be empty"],
        ),
        case(
            "setting Host with a host-to-backend rewrite (filter indexes skip the rewrite)",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters:
                  - rewrite: {host_to_backend_hostname: true}
                  - request_header: {set: [{name: Host, value: example.com}]}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[
                "conf.http.rules[0].filters[0].request_header.set[0]: cannot modify 'Host' header, when route has set 'rewrite.host_to_backend_hostname' option",
            ],
        ),
        case(
            "adding host and setting :authority with a host-to-backend rewrite",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters:
                  - request_header: {set: [{name: x-a, value: a}, {name: ":authority", value: b}], add: [{name: host, value: c}]}
                  - rewrite: {host_to_backend_hostname: true}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[
                "conf.http.rules[0].filters[0].request_header.set[1]: cannot modify ':authority' header, when route has set 'rewrite.host_to_backend_hostname' option",
                "conf.http.rules[0].filters[0].request_header.add[0]: cannot modify 'host' header, when route has set 'rewrite.host_to_backend_hostname' option",
            ],
        ),
        case(
            "setting host to an empty value with a host-to-backend rewrite",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters:
                  - rewrite: {host_to_backend_hostname: true}
                  - request_header: {set: [{name: host}]}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[
                "conf.http.rules[0].filters[0].request_header.set[0]: cannot modify 'host' header, when route has set 'rewrite.host_to_backend_hostname' option",
                "conf.http.rules[0].filters[0].request_header.set[0].value: cannot be empty",
            ],
        ),
        case(
            "HOST in capitals with a host-to-backend rewrite is valid (only exact names are checked)",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters:
                  - rewrite: {host_to_backend_hostname: true}
                  - request_header: {set: [{name: HOST, value: example.com}]}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[],
        ),
        case(
            "setting Host without a host-to-backend rewrite is valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters:
                  - rewrite: {replace_full: /x}
                  - request_header: {set: [{name: Host, value: example.com}], add: [{name: ":authority", value: b}]}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[],
        ),
        // Redirects.
        case(
            "redirect port 65536",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {scheme: https, hostname: example.com, port: 65536, status_code: 301}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].redirect.port: port must be in the range [1, 65535]"],
        ),
        case(
            "redirect port 65535 is valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {port: 65535, status_code: 301}}]}]}}
            "#,
            &[],
        ),
        case(
            "redirect without scheme, hostname or port is valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {status_code: 302}}]}]}}
            "#,
            &[],
        ),
        case(
            "redirect status 299",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {status_code: 299}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].redirect.status_code: must be in the range [300, 308]"],
        ),
        case(
            "redirect status 309",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {statusCode: 309}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].redirect.status_code: must be in the range [300, 308]"],
        ),
        case(
            "redirect without status",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {scheme: https}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].redirect.status_code: must be in the range [300, 308]"],
        ),
        case(
            "redirect statuses 300 and 308 pass validation",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - {matches: [{path: {match: PREFIX, value: /a}}], filters: [{redirect: {status_code: 300}}]}
                - {matches: [{path: {match: PREFIX, value: /b}}], filters: [{redirect: {status_code: 308}}]}
            "#,
            &[],
        ),
        case(
            "redirect statuses 304, 305 and 306 pass validation",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - {matches: [{path: {match: PREFIX, value: /a}}], filters: [{redirect: {status_code: 304}}]}
                - {matches: [{path: {match: PREFIX, value: /b}}], filters: [{redirect: {status_code: 305}}]}
                - {matches: [{path: {match: PREFIX, value: /c}}], filters: [{redirect: {status_code: 306}}]}
            "#,
            &[],
        ),
        // Mirrors.
        case(
            "mirror without backend",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{mirror: {percentage: 0.0}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].mirror.backend: cannot be empty"],
        ),
        case(
            "mirror without percentage",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{mirror: {backend: {destination: {kuma.io/service: shadow}}}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].mirror.percentage: cannot be empty"],
        ),
        case(
            "empty mirror",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{mirror: {}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[
                "conf.http.rules[0].filters[0].mirror.percentage: cannot be empty",
                "conf.http.rules[0].filters[0].mirror.backend: cannot be empty",
            ],
        ),
        case(
            "mirror percentage -1",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{mirror: {percentage: -1.0, backend: {destination: {kuma.io/service: shadow}}}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].mirror.percentage: has to be in [0.0 - 100.0] range"],
        ),
        case(
            "mirror percentage 100.5",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{mirror: {percentage: 100.5, backend: {destination: {kuma.io/service: shadow}}}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].filters[0].mirror.percentage: has to be in [0.0 - 100.0] range"],
        ),
        case(
            "mirror percentages 0 and 100 are valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters:
                  - mirror: {percentage: 0, backend: {destination: {kuma.io/service: shadow}}}
                  - mirror: {percentage: 100, backend: {weight: 0, destination: {kuma.io/service: shadow-2}}}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[],
        ),
        case(
            "mirror backend without service tag",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{mirror: {percentage: 5, backend: {destination: {app: shadow}}}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[r#"conf.http.rules[0].filters[0].mirror.backend: mandatory tag "kuma.io/service" is missing"#],
        ),
        case(
            "mirror backend without destination",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{mirror: {percentage: 5, backend: {weight: 1}}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[
                "conf.http.rules[0].filters[0].mirror.backend: must have at least one tag",
                r#"conf.http.rules[0].filters[0].mirror.backend: mandatory tag "kuma.io/service" is missing"#,
            ],
        ),
        // Rewrites.
        case(
            "prefix rewrite without a prefix match",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: EXACT, value: /foo}}, {method: GET}], filters: [{rewrite: {replace_prefix_match: /bar}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[
                "conf.http.rules[0].filters[0].rewrite.replacePrefixMatch: cannot be used without a match on path prefix",
            ],
        ),
        case(
            "prefix rewrite with a REGEX match",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: REGEX, value: "/f.*"}}], filters: [{rewrite: {replacePrefixMatch: /bar}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[
                "conf.http.rules[0].filters[0].rewrite.replacePrefixMatch: cannot be used without a match on path prefix",
            ],
        ),
        case(
            "prefix rewrite with one prefix match among others is valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: EXACT, value: /foo}}, {path: {match: PREFIX, value: /api}}], filters: [{rewrite: {replace_prefix_match: /}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[],
        ),
        case(
            "full rewrite without a prefix match is valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: EXACT, value: /foo}}], filters: [{rewrite: {replace_full: /bar}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[],
        ),
        case(
            "prefix rewrite in a host-to-backend rewrite filter is not checked",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: EXACT, value: /foo}}], filters: [{rewrite: {replace_prefix_match: /bar, host_to_backend_hostname: true}}], backends: [{destination: {kuma.io/service: web}}]}]}}
            "#,
            &[],
        ),
        // Filter indexes skip host-to-backend rewrites.
        case(
            "filter index skips a leading host-to-backend rewrite",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters: [{rewrite: {host_to_backend_hostname: true}}, {request_header: {}}]
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &["conf.http.rules[0].filters[0].request_header: cannot be empty"],
        ),
        case(
            "filter index skips a host-to-backend rewrite in the middle",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: EXACT, value: /x}}]
                  filters:
                  - request_header: {}
                  - rewrite: {host_to_backend_hostname: true}
                  - mirror: {backend: {destination: {kuma.io/service: shadow}}}
                  - rewrite: {replace_prefix_match: /y}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[
                "conf.http.rules[0].filters[0].request_header: cannot be empty",
                "conf.http.rules[0].filters[1].mirror.percentage: cannot be empty",
                "conf.http.rules[0].filters[2].rewrite.replacePrefixMatch: cannot be used without a match on path prefix",
            ],
        ),
        case(
            "other rewrites are counted in filter indexes",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters: [{rewrite: {replace_full: /x}}, {request_header: {}}]
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &["conf.http.rules[0].filters[1].request_header: cannot be empty"],
        ),
    ];
    run("MeshGatewayRoute filters", &cases, kuma);
}

#[test]
fn mesh_gateway_route_backends() {
    let cases = [
        case(
            "redirect with another filter (backends are then not checked)",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters: [{redirect: {status_code: 301}}, {request_header: {remove: [x-a]}}]
                  backends: [{destination: {app: web}}]
            "#,
            &["conf.http.rules[0].filters: redirects cannot be used with other filters"],
        ),
        case(
            "redirect with a host-to-backend rewrite",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters: [{rewrite: {host_to_backend_hostname: true}}, {redirect: {status_code: 299}}]
            "#,
            &[
                "conf.http.rules[0].filters[0].redirect.status_code: must be in the range [300, 308]",
                "conf.http.rules[0].filters: redirects cannot be used with other filters",
            ],
        ),
        case(
            "redirect alone without backends is valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {scheme: https, hostname: foo.example.com, port: 443, status_code: 301}}]}]}}
            "#,
            &[],
        ),
        case(
            "rule without backends and without redirect",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{request_header: {remove: [x-a]}}]}]}}
            "#,
            &["conf.http.rules[0].backends: cannot be empty"],
        ),
        case(
            "redirect with backends",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {status_code: 300}}], backends: [{weight: 5, destination: {kuma.io/service: web}}]}]}}
            "#,
            &["conf.http.rules[0].backends: must be empty when using redirect filters"],
        ),
        case(
            "redirect with an invalid backend",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {status_code: 301}}], backends: [{destination: {app: web}}]}]}}
            "#,
            &[
                "conf.http.rules[0].backends: must be empty when using redirect filters",
                r#"conf.http.rules[0].backends[0]: mandatory tag "kuma.io/service" is missing"#,
            ],
        ),
        case(
            "backend without service tag",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{weight: 5, destination: {phoney: target-2}}]}]}}
            "#,
            &[r#"conf.http.rules[0].backends[0]: mandatory tag "kuma.io/service" is missing"#],
        ),
        case(
            "backend without destination",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}, {weight: 5}]}]}}
            "#,
            &[
                "conf.http.rules[0].backends[1]: must have at least one tag",
                r#"conf.http.rules[0].backends[1]: mandatory tag "kuma.io/service" is missing"#,
            ],
        ),
        case(
            "backend destination value with a space",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web, version: "v 1"}}]}]}}
            "#,
            &[],
        )
        .want_also(&format!("conf.http.rules[0].backends[0][\"version\"]: {SELECTOR_VALUE}")),
        case(
            "backend destination with an empty value",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: ""}}]}]}}
            "#,
            &[r#"conf.http.rules[0].backends[0]["kuma.io/service"]: tag value must be non-empty"#],
        ),
        case(
            "weight 0, * values and several backends are valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  backends: [{weight: 0, destination: {kuma.io/service: web, version: "*"}}, {weight: 10, destination: {kuma.io/service: web-2}}]
            "#,
            &[],
        ),
    ];
    run("MeshGatewayRoute backends", &cases, kuma);
}

// ---------------------------------------------------------------------------------------------------------------
// Dataplane of a builtin gateway (spec §1.4)
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn builtin_gateway_dataplane() {
    const TAG_VALUE: &str = "tag value must consist of alphanumeric characters, dots, dashes and underscores";
    let cases = [
        case(
            "builtin gateway dataplane is valid",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge, kuma.io/zone: zone-1, version: "v1.0-beta_2:x"}}
            "#,
            &[],
        ),
        case(
            "builtin gateway with an inbound",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge}}
              inbound: [{port: 3333, tags: {kuma.io/service: edge}}]
            "#,
            &["networking.inbound: inbound cannot be defined for builtin gateways"],
        ),
        case(
            "builtin gateway with an outbound",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge}}
              outbound: [{port: 3333, tags: {kuma.io/service: redis}}]
            "#,
            &["networking.outbound: outbound cannot be defined for builtin gateways"],
        ),
        case(
            "builtin gateway with probes (not otherwise checked)",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge}}
            probes:
              port: 0
              endpoints: [{inboundPort: 8088, inboundPath: /healthz, path: /8080/healthz}]
            "#,
            &["networking.probes: probes cannot be defined for builtin gateways"],
        ),
        case(
            "builtin gateway with inbound, outbound and probes",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge}}
              inbound: [{port: 3333, tags: {kuma.io/service: edge}}]
              outbound: [{port: 4444, tags: {kuma.io/service: redis}}]
            probes: {port: 9000}
            "#,
            &[
                "networking.inbound: inbound cannot be defined for builtin gateways",
                "networking.outbound: outbound cannot be defined for builtin gateways",
                "networking.probes: probes cannot be defined for builtin gateways",
            ],
        ),
        case(
            "gateway protocol tag http",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge, kuma.io/protocol: http}}
            "#,
            &[
                r#"networking.gateway.tags["kuma.io/protocol"]: other values than tcp are not allowed, provided value "http""#,
            ],
        ),
        case(
            "gateway protocol tag TCP in capitals",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge, kuma.io/protocol: TCP}}
            "#,
            &[
                r#"networking.gateway.tags["kuma.io/protocol"]: other values than tcp are not allowed, provided value "TCP""#,
            ],
        ),
        case(
            "gateway protocol tag empty",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge, kuma.io/protocol: ""}}
            "#,
            &[
                r#"networking.gateway.tags["kuma.io/protocol"]: other values than tcp are not allowed, provided value """#,
                r#"networking.gateway.tags["kuma.io/protocol"]: tag value must be non-empty"#,
            ],
        ),
        case(
            "gateway protocol tag tcp is valid",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge, kuma.io/protocol: tcp}}
            "#,
            &[],
        ),
        case(
            "delegated gateway protocol tag http",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {tags: {kuma.io/service: edge, kuma.io/protocol: http}}
            "#,
            &[
                r#"networking.gateway.tags["kuma.io/protocol"]: other values than tcp are not allowed, provided value "http""#,
            ],
        ),
        case(
            "gateway tag value with a slash",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge, version: v/1}}
            "#,
            &[],
        )
        .want_also(&format!("networking.gateway.tags[\"version\"]: {TAG_VALUE}")),
        case(
            "gateway tag value *",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge, version: "*"}}
            "#,
            &[],
        )
        .want_also(&format!("networking.gateway.tags[\"version\"]: {TAG_VALUE}")),
        case(
            "gateway service tag value with a space",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: "ed ge"}}
            "#,
            &[],
        )
        .want_also(&format!("networking.gateway.tags[\"kuma.io/service\"]: {TAG_VALUE}")),
        case(
            "gateway tag empty value",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge, version: ""}}
            "#,
            &[r#"networking.gateway.tags["version"]: tag value must be non-empty"#],
        ),
        case(
            "gateway tag empty name",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge, "": x}}
            "#,
            &["networking.gateway.tags: tag name must be non-empty"],
        ),
        case(
            "gateway tag name with a space",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {kuma.io/service: edge, "a b": x}}
            "#,
            &[
                r#"networking.gateway.tags["a b"]: tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores"#,
            ],
        ),
        case(
            "gateway tags without service tag",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN, tags: {foo: bar}}
            "#,
            &[r#"networking.gateway.tags: mandatory tag "kuma.io/service" is missing"#],
        ),
        case(
            "gateway without tags",
            r#"
            type: Dataplane
            name: gw-1
            mesh: default
            networking:
              address: 192.168.1.1
              gateway: {type: BUILTIN}
            "#,
            &[r#"networking.gateway.tags: mandatory tag "kuma.io/service" is missing"#],
        ),
    ];
    run("builtin gateway Dataplane", &cases, kuma);
}

// ---------------------------------------------------------------------------------------------------------------
// MeshHTTPRoute and MeshTCPRoute (paths rooted at `spec.`)
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn targetref_routes() {
    let cases = [
        case(
            "MeshHTTPRoute on a gateway is valid",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                hostnames: [foo.example.com]
                rules:
                - matches: [{path: {type: PathPrefix, value: /api}}, {path: {type: PathPrefix, value: /}}]
                  default:
                    backendRefs: [{kind: MeshService, name: web}]
            "#,
            &[],
        ),
        case(
            "MeshHTTPRoute on a gateway sending to a MeshService",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: MeshService, name: web}
                rules:
                - matches: [{path: {type: PathPrefix, value: /}}]
                  default: {backendRefs: [{kind: MeshService, name: web}]}
            "#,
            &["spec.to[0].targetRef.kind: value 'MeshService' is not supported"],
        ),
        case(
            "MeshHTTPRoute on the mesh sending to the mesh",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: Mesh}
              to:
              - targetRef: {kind: Mesh}
                rules:
                - matches: [{path: {type: PathPrefix, value: /}}]
                  default: {backendRefs: [{kind: MeshService, name: web}]}
            "#,
            &["spec.to[0].targetRef.kind: value 'Mesh' is not supported"],
        ),
        case(
            "MeshHTTPRoute with an unknown top-level kind",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: BlahBlah, name: x}
              to: []
            "#,
            &["spec.targetRef.kind: value 'BlahBlah' is not supported"],
        ),
        case(
            "PathPrefix with a trailing slash",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                rules:
                - matches: [{path: {type: PathPrefix, value: /api/}}]
                  default: {backendRefs: [{kind: MeshService, name: web}]}
            "#,
            &[
                "spec.to[0].rules[0].matches[0].path.value: does not need a trailing slash because only a `/`-separated prefix or an entire path is matched",
            ],
        ),
        case(
            "relative PathPrefix with a trailing slash",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                rules:
                - matches: [{path: {type: PathPrefix, value: api/}}, {path: {type: Exact, value: foo}}]
                  default: {backendRefs: [{kind: MeshService, name: web}]}
            "#,
            &[
                "spec.to[0].rules[0].matches[0].path.value: does not need a trailing slash because only a `/`-separated prefix or an entire path is matched",
                "spec.to[0].rules[0].matches[0].path.value: must be an absolute path",
                "spec.to[0].rules[0].matches[1].path.value: must be an absolute path",
            ],
        ),
        case(
            "gateway rule without backendRefs",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                rules:
                - matches: [{path: {type: PathPrefix, value: /}}]
                  default: {}
            "#,
            &["spec.to[0].rules[0].default.backendRefs: must not be empty"],
        ),
        case(
            "gateway redirect rule without backendRefs is valid",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                rules:
                - matches: [{path: {type: PathPrefix, value: /}}]
                  default:
                    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]
            "#,
            &[],
        ),
        case(
            "non-gateway rule without backendRefs is valid",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: Mesh}
              to:
              - targetRef: {kind: MeshService, name: web}
                rules:
                - matches: [{path: {type: PathPrefix, value: /}}]
                  default: {}
            "#,
            &[],
        ),
        case(
            "hostnames under a mesh-wide route",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: Mesh}
              to:
              - targetRef: {kind: MeshService, name: web}
                hostnames: [foo.example.com]
                rules:
                - matches: [{path: {type: PathPrefix, value: /}}]
                  default: {backendRefs: [{kind: MeshService, name: web}]}
            "#,
            &["spec.to[0].hostnames: must not be defined"],
        ),
        case(
            "hostnames without a top-level targetRef",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              to:
              - targetRef: {kind: MeshService, name: web}
                hostnames: [foo.example.com]
            "#,
            &["spec.to[0].hostnames: must not be defined"],
        ),
        case(
            "hostToBackendHostname outside a gateway",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: Mesh}
              to:
              - targetRef: {kind: MeshService, name: web}
                rules:
                - matches: [{path: {type: PathPrefix, value: /}}]
                  default:
                    filters: [{type: URLRewrite, urlRewrite: {hostToBackendHostname: true}}]
            "#,
            &[
                "spec.to[0].rules[0].default.filters[0].urlRewrite.hostToBackendHostname: can only be set with MeshGateway",
            ],
        ),
        case(
            "hostToBackendHostname together with hostname",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                rules:
                - matches: [{path: {type: PathPrefix, value: /}}]
                  default:
                    filters: [{type: URLRewrite, urlRewrite: {hostname: example.com, hostToBackendHostname: true}}]
                    backendRefs: [{kind: MeshService, name: web}]
            "#,
            &[
                "spec.to[0].rules[0].default.filters[0].urlRewrite.hostToBackendHostname: cannot be set together with hostname",
            ],
        ),
        case(
            "MeshTCPRoute on a gateway is valid",
            r#"
            type: MeshTCPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                rules: [{default: {backendRefs: [{kind: MeshService, name: db}, {kind: MeshMultiZoneService, name: db-global, port: 5432}]}}]
            "#,
            &[],
        ),
        case(
            "MeshTCPRoute rule without backendRefs",
            r#"
            type: MeshTCPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                rules: [{default: {}}]
            "#,
            &["spec.to[0].rules[0].default.backendRefs: must be defined"],
        ),
        case(
            "MeshTCPRoute on a gateway sending to a MeshService",
            r#"
            type: MeshTCPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: MeshService, name: db}
                rules: [{default: {backendRefs: [{kind: MeshService, name: db}]}}]
            "#,
            &["spec.to[0].targetRef.kind: value 'MeshService' is not supported"],
        ),
        case(
            "MeshTCPRoute MeshMultiZoneService backend without port",
            r#"
            type: MeshTCPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                rules: [{default: {backendRefs: [{kind: MeshMultiZoneService, name: db-global}]}}]
            "#,
            &["spec.to[0].rules[0].default.backendRefs[0].port: must be defined with kind MeshMultiZoneService"],
        ),
        case(
            "MeshTCPRoute MeshServiceSubset backend without name",
            r#"
            type: MeshTCPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                rules: [{default: {backendRefs: [{kind: MeshServiceSubset, tags: {version: v1}}]}}]
            "#,
            &["spec.to[0].rules[0].default.backendRefs[0].name: must be set when kind is MeshServiceSubset"],
        ),
    ];
    run("MeshHTTPRoute and MeshTCPRoute", &cases, kuma);
}

// ---------------------------------------------------------------------------------------------------------------
// Extra (configuration-generation-time) checks
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn extra_redirect_status_codes() {
    let mut cases = Vec::new();
    for (code, name) in [
        ("300", "redirect status 300 is not supported"),
        ("304", "redirect status 304 is not supported"),
        ("305", "redirect status 305 is not supported"),
        ("306", "redirect status 306 is not supported"),
    ] {
        cases.push(
            case(
                name,
                r#"
                type: MeshGatewayRoute
                name: r
                mesh: default
                selectors: [{match: {kuma.io/service: gw}}]
                conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {status_code: CODE}}]}]}}
                "#,
                &["conf.http.rules[0].filters[0].redirect.status_code: redirect status code CODE is not supported"],
            )
            .sub("CODE", code),
        );
    }
    for (code, name) in [
        ("301", "redirect status 301 is supported"),
        ("302", "redirect status 302 is supported"),
        ("303", "redirect status 303 is supported"),
        ("307", "redirect status 307 is supported"),
        ("308", "redirect status 308 is supported"),
    ] {
        cases.push(
            case(
                name,
                r#"
                type: MeshGatewayRoute
                name: r
                mesh: default
                selectors: [{match: {kuma.io/service: gw}}]
                conf: {http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], filters: [{redirect: {status_code: CODE}}]}]}}
                "#,
                &[],
            )
            .sub("CODE", code),
        );
    }
    run("extra: redirect status codes", &cases, extra_no_references);
}

#[test]
fn extra_checks() {
    let cases = [
        case(
            "TLS listener without tls",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP}, {port: 8443, protocol: TLS}]}
            "#,
            &[r#"conf.listeners[1].tls: unsupported TLS mode "NONE""#],
        ),
        case(
            "TLS listeners with tls are valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              listeners:
              - {port: 8443, protocol: TLS, hostname: a.example.com, tls: {mode: PASSTHROUGH}}
              - {port: 8443, protocol: TLS, hostname: b.example.com, tls: {mode: TERMINATE, certificates: [{secret: cert}]}}
              - {port: 8080, protocol: TCP}
            "#,
            &[],
        ),
        case(
            "cross-mesh listener is not looked up without references",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, crossMesh: true}]}
            "#,
            &[],
        ),
        case(
            "certificate with two data sources",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, tls: {mode: TERMINATE, certificates: [{secret: a}, {secret: b, inlineString: c}]}}]}
            "#,
            &[
                "conf.listeners[0].tls.certificates[1]: only one of secret, file, inline, inlineString may be set (found secret and inlineString)",
            ],
        ),
        case(
            "route with tcp and http",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              tcp: {rules: [{backends: [{destination: {kuma.io/service: db}}]}]}
              http: {rules: [{matches: [{path: {match: PREFIX, value: /}}], backends: [{destination: {kuma.io/service: web}}]}]}
            "#,
            &["conf: only one of tcp, http may be set (found tcp and http)"],
        ),
        case(
            "filter with two kinds",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters: [{request_header: {remove: [x-a]}, redirect: {status_code: 301}}]
            "#,
            &[
                "conf.http.rules[0].filters[0]: only one of request_header, response_header, mirror, redirect, rewrite may be set (found request_header and redirect)",
            ],
        ),
        case(
            "rewrite with both path rewrites",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters: [{rewrite: {replace_full: /a, replace_prefix_match: /b}}]
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[
                "conf.http.rules[0].filters[0].rewrite: only one of replaceFull, replacePrefixMatch may be set (found replaceFull and replacePrefixMatch)",
            ],
        ),
        case(
            "redirect path with both path rewrites",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters: [{redirect: {status_code: 301, path: {replace_full: /a, replace_prefix_match: /b}}}]
            "#,
            &[
                "conf.http.rules[0].filters[0].redirect.path: only one of replaceFull, replacePrefixMatch may be set (found replaceFull and replacePrefixMatch)",
            ],
        ),
        case(
            "single-kind filters and rewrites are valid",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches: [{path: {match: PREFIX, value: /}}]
                  filters: [{rewrite: {replace_prefix_match: /b, host_to_backend_hostname: true}}, {request_header: {remove: [x-a]}}]
                  backends: [{destination: {kuma.io/service: web}}]
                - matches: [{path: {match: PREFIX, value: /old}}]
                  filters: [{redirect: {status_code: 301, path: {replace_full: /new}}}]
            "#,
            &[],
        ),
        case(
            "invalid regular expressions in a gateway route",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches:
                  - path: {match: REGEX, value: "/api/(v1"}
                    headers: [{match: REGEX, name: x-a, value: "[a-"}]
                    query_parameters: [{match: REGEX, name: q, value: "a{2,1}"}]
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[
                r#"conf.http.rules[0].matches[0].path.value: invalid regular expression "/api/(v1": unclosed group"#,
                r#"conf.http.rules[0].matches[0].headers[0].value: invalid regular expression "[a-": unclosed character class"#,
                r#"conf.http.rules[0].matches[0].query_parameters[0].value: invalid regular expression "a{2,1}": invalid repetition count range, the start must be <= the end"#,
            ],
        ),
        case(
            "valid regular expressions and non-regex values are not compiled",
            r#"
            type: MeshGatewayRoute
            name: r
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf:
              http:
                rules:
                - matches:
                  - path: {match: REGEX, value: "/api/v[0-9]+/.*"}
                    headers: [{match: EXACT, name: x-a, value: "[a-"}, {match: REGEX, name: x-b, value: "^b$"}]
                    query_parameters: [{match: EXACT, name: q, value: "(x"}]
                  - path: {match: PREFIX, value: "/("}
                  backends: [{destination: {kuma.io/service: web}}]
            "#,
            &[],
        ),
        case(
            "invalid regular expression in a MeshHTTPRoute",
            r#"
            type: MeshHTTPRoute
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                rules:
                - matches:
                  - path: {type: RegularExpression, value: "/api/(v1"}
                    headers: [{type: RegularExpression, name: x-a, value: "^ok$"}]
                    queryParams: [{type: RegularExpression, name: q, value: "[a-"}]
                  default: {backendRefs: [{kind: MeshService, name: web}]}
            "#,
            &[
                r#"spec.to[0].rules[0].matches[0].path.value: invalid regular expression "/api/(v1": unclosed group"#,
                r#"spec.to[0].rules[0].matches[0].queryParams[0].value: invalid regular expression "[a-": unclosed character class"#,
            ],
        ),
    ];
    run("extra checks", &cases, extra_no_references);
}

/// The certificate checks need the certificates' contents, so they run with reference checks on; inline
/// certificates need no lookup, and a `NoLookup` knows no Secret and no Mesh.
#[test]
fn extra_certificate_checks() {
    fn bundle(alg: &'static rcgen::SignatureAlgorithm) -> String {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["example.com".to_owned()]).unwrap().self_signed(&key).unwrap();
        // A JSON string is a valid double-quoted YAML scalar.
        serde_json::to_string(&format!("{}{}", key.serialize_pem(), cert.pem())).unwrap()
    }
    let p256 = bundle(&rcgen::PKCS_ECDSA_P256_SHA256);
    let p384 = bundle(&rcgen::PKCS_ECDSA_P384_SHA384);
    let cases = [
        case(
            "one inline ECDSA certificate is valid",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, tls: {mode: TERMINATE, certificates: [{inlineString: PEM1}]}}]}
            "#,
            &[],
        )
        .sub("PEM1", &p256),
        case(
            "two ECDSA certificates",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, hostname: foo.example.com, tls: {mode: TERMINATE, certificates: [{inlineString: PEM1}, {inlineString: PEM2}]}}]}
            "#,
            &[r#"conf.listeners[0].tls.certificates[1]: duplicate TLS certificate "cert.ecdsa:inline:foo.example.com""#],
        )
        .sub("PEM1", &p256)
        .sub("PEM2", &p384),
        case(
            "certificate without PEM blocks",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: TLS, tls: {mode: TERMINATE, certificates: [{inlineString: hello}]}}]}
            "#,
            &["conf.listeners[0].tls.certificates[0]: missing server certificate"],
        ),
        case(
            "passthrough certificates are not read",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: TLS, tls: {mode: PASSTHROUGH, certificates: [{inlineString: hello}]}}]}
            "#,
            &[],
        ),
        case(
            "unknown secret",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8443, protocol: HTTPS, tls: {mode: TERMINATE, certificates: [{secret: cert}]}}]}
            "#,
            &[r#"conf.listeners[0].tls.certificates[0].secret: secret "cert" not found in mesh "default""#],
        ),
        case(
            "cross-mesh listener in a mesh without mTLS",
            r#"
            type: MeshGateway
            name: gw
            mesh: default
            selectors: [{match: {kuma.io/service: gw}}]
            conf: {listeners: [{port: 8080, protocol: HTTP, crossMesh: true}]}
            "#,
            &["conf.listeners[0].crossMesh: mTLS must be enabled for crossMesh-enabled MeshGateways"],
        ),
    ];
    run("extra: certificates and references", &cases, extra_with_references);
}

// ---------------------------------------------------------------------------------------------------------------
// targetRef policies: MeshTimeout, MeshRetry, MeshRateLimit, MeshFaultInjection, MeshAccessLog (paths rooted at
// `spec.`)
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn policies() {
    let cases = [
        // MeshTimeout
        case(
            "MeshTimeout rules on a gateway are valid",
            r#"
            type: MeshTimeout
            name: edge-timeouts
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: edge-gateway}
              rules:
              - default:
                  idleTimeout: 10m
                  http: {requestHeadersTimeout: 2s, streamIdleTimeout: 30s}
            "#,
            &[],
        ),
        case(
            "MeshTimeout to on a gateway is valid",
            r#"
            type: MeshTimeout
            name: edge-timeouts-to
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: edge-gateway}
              to:
              - targetRef: {kind: Mesh}
                default:
                  connectionTimeout: 2s
                  http: {requestTimeout: 10s}
            "#,
            &[],
        ),
        case(
            "MeshTimeout default for gateways is valid",
            r#"
            type: MeshTimeout
            name: mesh-gateways-timeout-all-default
            mesh: default
            spec:
              targetRef: {kind: Mesh, proxyTypes: [Gateway]}
              from:
              - targetRef: {kind: Mesh}
                default:
                  idleTimeout: 5m
                  http: {streamIdleTimeout: 5s, requestHeadersTimeout: 500ms}
              to:
              - targetRef: {kind: Mesh}
                default:
                  idleTimeout: 1h
                  http: {streamIdleTimeout: 5s}
            "#,
            &[],
        ),
        case(
            "MeshTimeout without from, to or rules",
            r#"
            type: MeshTimeout
            name: t
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
            "#,
            &["spec: at least one of 'from', 'to' or 'rules' has to be defined"],
        ),
        case(
            "MeshTimeout rules together with to",
            r#"
            type: MeshTimeout
            name: t
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              rules:
              - default: {idleTimeout: 10s}
              to:
              - targetRef: {kind: Mesh}
                default: {idleTimeout: 10s}
            "#,
            &["spec: fields 'to' and 'from' must be empty when 'rules' is defined"],
        ),
        case(
            "MeshTimeout from under a gateway",
            r#"
            type: MeshTimeout
            name: t
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              from:
              - targetRef: {kind: Mesh}
                default: {idleTimeout: 10s}
            "#,
            &["spec.from: must not be defined"],
        ),
        case(
            "MeshTimeout to a MeshService under a gateway",
            r#"
            type: MeshTimeout
            name: t
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: MeshService, name: web}
                default: {idleTimeout: 10s}
            "#,
            &["spec.to[0].targetRef.kind: value 'MeshService' is not supported"],
        ),
        case(
            "MeshTimeout empty default",
            r#"
            type: MeshTimeout
            name: t
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {}
            "#,
            &["spec.to[0].default: at least one timeout should be configured"],
        ),
        case(
            "MeshTimeout empty http section",
            r#"
            type: MeshTimeout
            name: t
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {http: {}}
            "#,
            &["spec.to[0].default.http: at least one timeout in this section should be configured"],
        ),
        case(
            "MeshTimeout negative durations",
            r#"
            type: MeshTimeout
            name: t
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default:
                  idleTimeout: -1s
                  http:
                    requestTimeout: -1s
                    streamIdleTimeout: -1s
                    maxStreamDuration: -1s
                    maxConnectionDuration: -1s
                    requestHeadersTimeout: -1s
            "#,
            &[
                "spec.to[0].default.idleTimeout: must not be negative when defined",
                "spec.to[0].default.http.requestTimeout: must not be negative when defined",
                "spec.to[0].default.http.streamIdleTimeout: must not be negative when defined",
                "spec.to[0].default.http.maxStreamDuration: must not be negative when defined",
                "spec.to[0].default.http.maxConnectionDuration: must not be negative when defined",
                "spec.to[0].default.http.requestHeadersTimeout: must not be negative when defined",
            ],
        ),
        case(
            "MeshTimeout zero connectionTimeout",
            r#"
            type: MeshTimeout
            name: t
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {connectionTimeout: 0s}
            "#,
            &["spec.to[0].default.connectionTimeout: must be greater than zero when defined"],
        ),
        case(
            "MeshTimeout on a MeshHTTPRoute with connection-level timeouts",
            r#"
            type: MeshTimeout
            name: t
            mesh: default
            spec:
              targetRef: {kind: MeshHTTPRoute, name: route-1}
              to:
              - targetRef: {kind: Mesh}
                default:
                  connectionTimeout: 1s
                  idleTimeout: 1s
                  http: {requestTimeout: 1s, maxStreamDuration: 1s, maxConnectionDuration: 1s}
            "#,
            &[
                "spec.to[0].default.connectionTimeout: can't be specified when top-level TargetRef is referencing MeshHTTPRoute",
                "spec.to[0].default.idleTimeout: can't be specified when top-level TargetRef is referencing MeshHTTPRoute",
                "spec.to[0].default.http.maxStreamDuration: can't be specified when top-level TargetRef is referencing MeshHTTPRoute",
                "spec.to[0].default.http.maxConnectionDuration: can't be specified when top-level TargetRef is referencing MeshHTTPRoute",
            ],
        ),
        case(
            "MeshTimeout on a MeshHTTPRoute with request timeouts is valid",
            r#"
            type: MeshTimeout
            name: t
            mesh: default
            spec:
              targetRef: {kind: MeshHTTPRoute, name: route-1}
              to:
              - targetRef: {kind: Mesh}
                default:
                  http: {requestTimeout: 5s, streamIdleTimeout: 1s}
            "#,
            &[],
        ),
        // MeshRetry
        case(
            "MeshRetry on a gateway is valid",
            r#"
            type: MeshRetry
            name: edge-retry
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: edge-gateway}
              to:
              - targetRef: {kind: Mesh}
                default:
                  http: {numRetries: 3, perTryTimeout: 2s, retryOn: ["5xx", "429"], backOff: {baseInterval: 50ms, maxInterval: 1s}}
            "#,
            &[],
        ),
        case(
            "MeshRetry default for the mesh is valid",
            r#"
            type: MeshRetry
            name: mesh-retry-all-default
            mesh: default
            spec:
              targetRef: {kind: Mesh}
              to:
              - targetRef: {kind: Mesh}
                default:
                  tcp: {maxConnectAttempt: 5}
                  http: {numRetries: 5, perTryTimeout: 16s, backOff: {baseInterval: 25ms, maxInterval: 250ms}}
                  grpc: {numRetries: 5, perTryTimeout: 16s, backOff: {baseInterval: 25ms, maxInterval: 250ms}}
            "#,
            &[],
        ),
        case(
            "MeshRetry without to",
            r#"
            type: MeshRetry
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
            "#,
            &["spec.to: needs at least one item"],
        ),
        case(
            "MeshRetry to a MeshService under a gateway",
            r#"
            type: MeshRetry
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: MeshService, name: web}
                default: {http: {numRetries: 1}}
            "#,
            &["spec.to[0].targetRef.kind: value 'MeshService' is not supported"],
        ),
        case(
            "MeshRetry empty default",
            r#"
            type: MeshRetry
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {}
            "#,
            &["spec.to[0].default.conf: at least one of the 'tcp', 'http', 'grpc' must be specified"],
        ),
        case(
            "MeshRetry empty tcp section",
            r#"
            type: MeshRetry
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {tcp: {}}
            "#,
            &["spec.to[0].default.conf.tcp: must not be empty"],
        ),
        case(
            "MeshRetry unknown retryOn item",
            r#"
            type: MeshRetry
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {http: {retryOn: ["503", "Foo"]}}
            "#,
            &["spec.to[0].default.conf.http.retryOn[1]: unknown item 'Foo'"],
        ),
        case(
            "MeshRetry empty backOff",
            r#"
            type: MeshRetry
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {http: {numRetries: 1, backOff: {}}}
            "#,
            &["spec.to[0].default.conf.http.backOff: must not be empty"],
        ),
        case(
            "MeshRetry rateLimitedBackOff without resetHeaders",
            r#"
            type: MeshRetry
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {http: {rateLimitedBackOff: {maxInterval: 10s}}}
            "#,
            &["spec.to[0].default.conf.http.rateLimitedBackOff.resetHeaders: must be defined"],
        ),
        case(
            "MeshRetry unknown gRPC retryOn item",
            r#"
            type: MeshRetry
            name: r
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {grpc: {retryOn: ["Unavailable", "5xx"]}}
            "#,
            &["spec.to[0].default.conf.grpc.retryOn[1]: unknown item '5xx'"],
        ),
        // MeshRateLimit
        case(
            "MeshRateLimit on a gateway is valid",
            r#"
            type: MeshRateLimit
            name: edge-rl
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: edge-gateway}
              to:
              - targetRef: {kind: Mesh}
                default:
                  local:
                    http:
                      requestRate: {num: 100, interval: 1s}
                      onRateLimit: {status: 429, headers: {add: [{name: x-kuma-rate-limited, value: "true"}]}}
            "#,
            &[],
        ),
        case(
            "MeshRateLimit without local",
            r#"
            type: MeshRateLimit
            name: rl
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {}
            "#,
            &["spec.to[0].default.local: must be defined"],
        ),
        case(
            "MeshRateLimit empty local",
            r#"
            type: MeshRateLimit
            name: rl
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {local: {}}
            "#,
            &["spec.to[0].default.local: must have at least one defined: tcp, http"],
        ),
        case(
            "MeshRateLimit empty http",
            r#"
            type: MeshRateLimit
            name: rl
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {local: {http: {}}}
            "#,
            &["spec.to[0].default.local.http: must have at least one defined: disabled, requestRate, onRateLimit"],
        ),
        case(
            "MeshRateLimit zero num",
            r#"
            type: MeshRateLimit
            name: rl
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {local: {http: {requestRate: {num: 0, interval: 1s}}}}
            "#,
            &["spec.to[0].default.local.http.requestRate.num: must be greater than 0"],
        ),
        case(
            "MeshRateLimit interval of 50ms",
            r#"
            type: MeshRateLimit
            name: rl
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {local: {http: {requestRate: {num: 10, interval: 50ms}}}}
            "#,
            &["spec.to[0].default.local.http.requestRate.interval: must be greater than: 50ms"],
        ),
        case(
            "MeshRateLimit zero status",
            r#"
            type: MeshRateLimit
            name: rl
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {local: {http: {onRateLimit: {status: 0}}}}
            "#,
            &["spec.to[0].default.local.http.onRateLimit.status: must be greater than 0"],
        ),
        case(
            "MeshRateLimit from under a gateway",
            r#"
            type: MeshRateLimit
            name: rl
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              from:
              - targetRef: {kind: Mesh}
                default: {local: {http: {requestRate: {num: 10, interval: 1s}}}}
            "#,
            &[
                "spec.from: must not be defined when the scope includes a Gateway, select only proxyType Sidecar or select only gateways and use spec.to",
            ],
        ),
        case(
            "MeshRateLimit to under a MeshService",
            r#"
            type: MeshRateLimit
            name: rl
            mesh: default
            spec:
              targetRef: {kind: MeshService, name: web}
              to:
              - targetRef: {kind: Mesh}
                default: {local: {http: {requestRate: {num: 10, interval: 1s}}}}
            "#,
            &["spec.to: must not be defined"],
        ),
        // MeshFaultInjection
        case(
            "MeshFaultInjection on a gateway is valid",
            r#"
            type: MeshFaultInjection
            name: edge-faults
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: edge-gateway}
              to:
              - targetRef: {kind: Mesh}
                default:
                  http:
                  - abort: {httpStatus: 503, percentage: "10.5"}
                  - delay: {value: 2s, percentage: 50}
                  - responseBandwidth: {limit: "5 Mbps", percentage: 100}
            "#,
            &[],
        ),
        case(
            "MeshFaultInjection abort status out of range",
            r#"
            type: MeshFaultInjection
            name: fi
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {http: [{abort: {httpStatus: 99, percentage: 100}}]}
            "#,
            &["spec.to[0].default.http.abort[0].httpStatus: must be in inclusive range [100, 599]"],
        ),
        case(
            "MeshFaultInjection percentage that is not a number",
            r#"
            type: MeshFaultInjection
            name: fi
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {http: [{abort: {httpStatus: 503, percentage: "abc"}}]}
            "#,
            &["spec.to[0].default.http.abort[0].percentage: string must be a valid number"],
        ),
        case(
            "MeshFaultInjection percentage above 100",
            r#"
            type: MeshFaultInjection
            name: fi
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {http: [{abort: {httpStatus: 503, percentage: 101}}]}
            "#,
            &["spec.to[0].default.http.abort[0].percentage: must be in inclusive range [0.0, 100.0]"],
        ),
        case(
            "MeshFaultInjection missing percentage",
            r#"
            type: MeshFaultInjection
            name: fi
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {http: [{abort: {httpStatus: 503}}]}
            "#,
            &["spec.to[0].default.http.abort[0].percentage: must be defined"],
        ),
        case(
            "MeshFaultInjection delay without value (indexed by the fault's position)",
            r#"
            type: MeshFaultInjection
            name: fi
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default:
                  http:
                  - abort: {httpStatus: 503, percentage: 10}
                  - delay: {percentage: 50}
            "#,
            &["spec.to[0].default.http.delay[1].value: must be defined"],
        ),
        case(
            "MeshFaultInjection bandwidth without a bps unit",
            r#"
            type: MeshFaultInjection
            name: fi
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {http: [{responseBandwidth: {limit: 10kb, percentage: 10}}]}
            "#,
            &["spec.to[0].default.http.responseBandwidth[0].responseBandwidth: must be in kbps/Mbps/Gbps units"],
        ),
        case(
            "MeshFaultInjection from under a gateway",
            r#"
            type: MeshFaultInjection
            name: fi
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              from:
              - targetRef: {kind: Mesh}
                default: {http: [{abort: {httpStatus: 503, percentage: 10}}]}
            "#,
            &["spec.from: must not be defined"],
        ),
        case(
            "MeshFaultInjection to under a MeshService",
            r#"
            type: MeshFaultInjection
            name: fi
            mesh: default
            spec:
              targetRef: {kind: MeshService, name: web}
              to:
              - targetRef: {kind: Mesh}
                default: {http: [{abort: {httpStatus: 503, percentage: 10}}]}
            "#,
            &["spec.to: must not be defined"],
        ),
        // MeshAccessLog
        case(
            "MeshAccessLog on a gateway is valid",
            r#"
            type: MeshAccessLog
            name: edge-logs
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: edge-gateway}
              to:
              - targetRef: {kind: Mesh}
                default:
                  backends:
                  - type: File
                    file:
                      path: /dev/stdout
                      format: {type: Json, json: [{key: status, value: "%RESPONSE_CODE%"}, {key: mesh, value: "%KUMA_MESH%"}]}
                  - type: OpenTelemetry
                    openTelemetry: {endpoint: "otel-collector:4317", attributes: [{key: zone, value: "%KUMA_ZONE%"}]}
            "#,
            &[],
        ),
        case(
            "MeshAccessLog without from, to or rules",
            r#"
            type: MeshAccessLog
            name: al
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
            "#,
            &["spec: at least one of 'from', 'to' or 'rules' has to be defined"],
        ),
        case(
            "MeshAccessLog to a MeshService under a gateway",
            r#"
            type: MeshAccessLog
            name: al
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: MeshService, name: web}
                default:
                  backends: [{type: File, file: {path: /dev/stdout}}]
            "#,
            &["spec.to[0].targetRef.kind: value 'MeshService' is not supported"],
        ),
    ];
    run("targetRef policies", &cases, kuma);
}

#[test]
fn destination_policies() {
    let cases = vec![
        case(
            "MeshCircuitBreaker on a gateway is valid",
            r#"
            type: MeshCircuitBreaker
            name: cb
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: MeshService, name: backend}
                default:
                  connectionLimits: {maxConnections: 2, maxPendingRequests: 8, maxRequests: 2}
                  outlierDetection:
                    interval: 5s
                    baseEjectionTime: 30s
                    detectors: {totalFailures: {consecutive: 10}, successRate: {standardDeviationFactor: "1.9"}}
            "#,
            &[],
        ),
        case(
            "MeshCircuitBreaker without sections",
            r#"
            type: MeshCircuitBreaker
            name: cb
            mesh: default
            spec:
              targetRef: {kind: Mesh}
            "#,
            &["spec: at least one of 'from', 'to' has to be defined"],
        ),
        case(
            "MeshCircuitBreaker empty conf",
            r#"
            type: MeshCircuitBreaker
            name: cb
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to: [{targetRef: {kind: Mesh}, default: {}}]
            "#,
            &["spec.to[0].default: at least one of: 'connectionLimits' or 'outlierDetection' should be configured"],
        ),
        case(
            "MeshCircuitBreaker zero limits, bad percentages, no detectors",
            r#"
            type: MeshCircuitBreaker
            name: cb
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default:
                  connectionLimits: {maxConnections: 0, maxRequests: 0}
                  outlierDetection: {interval: 0s, maxEjectionPercent: 101}
            "#,
            &[
                "spec.to[0].default.connectionLimits.maxConnections: must be greater than 0",
                "spec.to[0].default.connectionLimits.maxRequests: must be greater than 0",
                "spec.to[0].default.outlierDetection.interval: must be greater than zero when defined",
                "spec.to[0].default.outlierDetection.maxEjectionPercent: must be in inclusive range [0, 100]",
                "spec.to[0].default.outlierDetection.detectors: must be defined",
            ],
        ),
        case(
            "MeshCircuitBreaker empty detectors and a bad factor",
            r#"
            type: MeshCircuitBreaker
            name: cb
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {outlierDetection: {detectors: {}}}
              - targetRef: {kind: Mesh}
                default: {outlierDetection: {detectors: {successRate: {standardDeviationFactor: "-1"}, failurePercentage: {threshold: 200}}}}
            "#,
            &[
                "spec.to[0].default.outlierDetection.detectors: must have at least one defined: totalFailures, gatewayFailures, localOriginFailures, successRate, failurePercentage",
                "spec.to[1].default.outlierDetection.detectors.successRate.standardDeviationFactor: must be greater than 0",
                "spec.to[1].default.outlierDetection.detectors.failurePercentage.threshold: must be in inclusive range [0, 100]",
            ],
        ),
        case(
            "MeshHealthCheck on a gateway is valid",
            r#"
            type: MeshHealthCheck
            name: hc
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {interval: 10s, timeout: 2s, unhealthyThreshold: 3, healthyThreshold: 1, http: {path: /health, expectedStatuses: [200]}}
            "#,
            &[],
        ),
        case(
            "MeshHealthCheck without a checker and with bad values",
            r#"
            type: MeshHealthCheck
            name: hc
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default: {interval: 0s, unhealthyThreshold: 0, intervalJitterPercent: 120, healthyPanicThreshold: "abc"}
              - targetRef: {kind: Mesh}
                default: {http: {path: "", expectedStatuses: [99]}}
              - targetRef: {kind: MeshExternalService, name: es}
                default: {tcp: {}}
            "#,
            &[
                "spec.to[0].default.interval: must be greater than zero when defined",
                "spec.to[0].default.unhealthyThreshold: must be greater than zero when defined",
                "spec.to[0].default.intervalJitterPercent: must be in inclusive range [0, 100]",
                "spec.to[0].default.healthyPanicThreshold: string must be a valid number",
                "spec.to[0].default: must have at least one defined: http, tcp, grpc",
                "spec.to[1].default.http.path: must be defined",
                "spec.to[1].default.http.expectedStatuses[0]: must be in inclusive range [100, 599]",
                "spec.to[2].targetRef.kind: kind MeshExternalService is only possible with targetRef.kind: Mesh",
            ],
        ),
        case(
            "MeshLoadBalancingStrategy ring hash on a gateway is valid",
            r#"
            type: MeshLoadBalancingStrategy
            name: lb
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: Mesh}
                default:
                  loadBalancer: {type: RingHash, ringHash: {hashPolicies: [{type: Header, header: {name: x-user-id}}, {type: Cookie, cookie: {name: sid, path: /}}]}}
                  localityAwareness: {localZone: {affinityTags: [{key: k8s.io/node}]}}
            "#,
            &[],
        ),
        case(
            "MeshLoadBalancingStrategy with a service under a gateway, bad hash policies",
            r#"
            type: MeshLoadBalancingStrategy
            name: lb
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              to:
              - targetRef: {kind: MeshService, name: backend}
                default:
                  loadBalancer: {type: Maglev, maglev: {hashPolicies: [{type: Header}, {type: Cookie, cookie: {name: s, path: rel}}, {type: Bogus}]}}
            "#,
            &[
                "spec.to[0].targetRef.kind: value 'MeshService' is not supported, only Mesh is allowed if loadBalancer is set",
                "spec.to[0].default.loadBalancer.maglev.hashPolicies[0].header: must be defined",
                "spec.to[0].default.loadBalancer.maglev.hashPolicies[1].cookie.path: must be an absolute path",
                "spec.to[0].default.loadBalancer.maglev.hashPolicies[2].type: unrecognized type",
            ],
        ),
    ];
    run("destination policies", &cases, kuma);
}

/// Kuma's MeshTrace validator table (`meshtrace/api/v1alpha1/validator_test.go`), in the `type:` form of Kuma 2.x,
/// and the gateway-specific rules.
#[test]
fn mesh_trace() {
    let cases = vec![
        case(
            "full zipkin example on a gateway",
            r#"
            type: MeshTrace
            name: mt
            mesh: default
            spec:
              targetRef: {kind: MeshGateway, name: gw}
              default:
                backends:
                - type: Zipkin
                  zipkin: {url: "http://jaeger-collector.mesh-observability:9411/api/v2/spans", apiVersion: httpJson, traceId128bit: true}
                tags:
                - {name: team, literal: core}
                - {name: env, header: {name: x-env, default: prod}}
                - {name: version, header: {name: x-version}}
                sampling: {overall: 80, random: "60.1", client: 40}
            "#,
            &[],
        ),
        case(
            "an older policy without type, and empty backends",
            r#"
            type: MeshTrace
            name: mt
            mesh: default
            spec:
              targetRef: {kind: Mesh}
              default:
                backends: []
            "#,
            &[],
        ),
        case(
            "OpenTelemetry as gRPC host:port and as OTLP/HTTP URL",
            r#"
            type: MeshTrace
            name: mt
            mesh: default
            spec:
              targetRef: {kind: Mesh, proxyTypes: [Gateway]}
              default:
                backends: [{type: OpenTelemetry, openTelemetry: {endpoint: "otel-collector:4317"}}]
            "#,
            &[],
        ),
        case(
            "no default",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  targetRef: {kind: MeshService, name: backend}\n",
            &["spec.default.backends: must be defined"],
        ),
        case(
            "no backend type",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n  default:\n    backends: [{}]\n",
            &["spec.default.backends[0]: backend must have only one type defined: datadog, openTelemetry, zipkin"],
        ),
        case(
            "multiple backends",
            r#"
            type: MeshTrace
            name: mt
            mesh: default
            spec:
              default:
                backends:
                - {type: Zipkin, zipkin: {url: "http://jaeger-collector1.mesh-observability:9411/api/v2/spans"}}
                - {type: Zipkin, zipkin: {url: "http://jaeger-collector2.mesh-observability:9411/api/v2/spans"}}
            "#,
            &["spec.default.backends: must have zero or one backend defined"],
        ),
        case(
            "no url for zipkin backend",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: [{type: Zipkin, zipkin: {}}]\n",
            &["spec.default.backends[0].zipkin.url: must not be empty"],
        ),
        case(
            "zipkin type without zipkin",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: [{type: Zipkin}]\n",
            &["spec.default.backends[0].zipkin: must be defined"],
        ),
        case(
            "invalid url for zipkin backend",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: [{type: Zipkin, zipkin: {url: not_valid_url}}]\n",
            &["spec.default.backends[0].zipkin.url: must be a valid url"],
        ),
        case(
            "invalid url for datadog backend",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: [{type: Datadog, datadog: {url: not_valid_url}}]\n",
            &["spec.default.backends[0].datadog.url: must be a valid url"],
        ),
        case(
            "no port for datadog backend url",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: [{type: Datadog, datadog: {url: \"http://intake.datadoghq.eu\"}}]\n",
            &["spec.default.backends[0].datadog.url: port must be defined"],
        ),
        case(
            "invalid port for datadog backend",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: [{type: Datadog, datadog: {url: \"http://intake.datadoghq.eu:999999\"}}]\n",
            &["spec.default.backends[0].datadog.url: port must be a valid (1-65535)"],
        ),
        case(
            "invalid scheme for datadog backend",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: [{type: Datadog, datadog: {url: \"sql://intake.datadoghq.eu:8126\"}}]\n",
            &["spec.default.backends[0].datadog.url: scheme must be http"],
        ),
        case(
            "path provided for datadog backend",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: [{type: Datadog, datadog: {url: \"http://intake.datadoghq.eu:8126/some/path\"}}]\n",
            &["spec.default.backends[0].datadog.url: path must not be defined"],
        ),
        case(
            "OpenTelemetry URL with a bad scheme, port and an empty endpoint",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: [{type: OpenTelemetry, openTelemetry: {endpoint: \"ftp://collector:99999\"}}]\n",
            &[
                "spec.default.backends[0].openTelemetry.endpoint: URL scheme must be http or https",
                "spec.default.backends[0].openTelemetry.endpoint: port must be valid (1-65535)",
            ],
        ),
        case(
            "OpenTelemetry http URL without a host",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: [{type: OpenTelemetry, openTelemetry: {endpoint: \"http://\"}}]\n",
            &["spec.default.backends[0].openTelemetry.endpoint: must be a valid URL"],
        ),
        case(
            "tag missing name",
            r#"
            type: MeshTrace
            name: mt
            mesh: default
            spec:
              default:
                backends: [{type: Datadog, datadog: {url: "http://intake.datadoghq.eu:443"}}]
                tags:
                - literal: example
                - header: {default: example}
            "#,
            &["spec.default.tags[0].name: must not be empty", "spec.default.tags[1].name: must not be empty"],
        ),
        case(
            "tag missing type",
            r#"
            type: MeshTrace
            name: mt
            mesh: default
            spec:
              default:
                backends: [{type: Datadog, datadog: {url: "http://intake.datadoghq.eu:443"}}]
                tags: [{name: example}]
            "#,
            &["spec.default.tags[0]: tag must have only one type defined: header, literal"],
        ),
        case(
            "sampling out of range",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: []\n    sampling: {overall: 101}\n",
            &["spec.default.sampling.overall: must be between 0 and 100"],
        ),
        case(
            "sampling invalid string",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  default:\n    backends: []\n    sampling: {overall: xyz, client: xyz, random: xyz}\n",
            &[
                "spec.default.sampling.client: string is not a number",
                "spec.default.sampling.random: string is not a number",
                "spec.default.sampling.overall: string is not a number",
            ],
        ),
        case(
            "listener tags are not allowed on a MeshGateway target",
            "type: MeshTrace\nname: mt\nmesh: default\nspec:\n  targetRef: {kind: MeshGateway, name: gw, tags: {port: http}}\n  default:\n    backends: []\n",
            &["spec.targetRef.tags: must not be set with kind MeshGateway"],
        ),
    ];
    run("MeshTrace", &cases, kuma);
}

/// Kuma's MeshAccessLog backend and format checks (`meshaccesslog/api/v1alpha1/validator.go`), and meshgate's one
/// extension: a `Json` format without `json` is the default field set.
#[test]
fn mesh_access_log_formats() {
    let wrap = |default: &str| {
        format!(
            "type: MeshAccessLog\nname: l\nmesh: default\nspec:\n  targetRef: {{kind: MeshGateway, name: gw}}\n  to:\n  - targetRef: {{kind: Mesh}}\n    default: {default}\n"
        )
    };
    let cases = vec![
        case(
            "Json without fields is meshgate's default set",
            &wrap("{backends: [{type: File, file: {path: /tmp/a.log, format: {type: Json}}}]}"),
            &[],
        ),
        case("no backends", &wrap("{}"), &["spec.to[0].default.backends: must be defined"]),
        case(
            "File without file, Tcp without tcp",
            &wrap("{backends: [{type: File}, {type: Tcp}]}"),
            &[
                "spec.to[0].default.backends[0].file: must be defined",
                "spec.to[0].default.backends[1].tcp: must be defined",
            ],
        ),
        case(
            "plain format without a template, empty json list",
            &wrap(
                "{backends: [{type: File, file: {path: /tmp/a.log, format: {type: Plain}}}, {type: Tcp, tcp: {address: 'logs.example.com:5000', format: {type: Json, json: []}}}]}",
            ),
            &[
                "spec.to[0].default.backends[0].file.format.plain: must be defined",
                "spec.to[0].default.backends[1].tcp.format.json: must not be empty",
            ],
        ),
        case(
            "empty plain template, empty key and value, a value that breaks the JSON",
            &wrap(
                r#"{backends: [{type: File, file: {path: /tmp/a.log, format: {type: Plain, plain: ""}}}, {type: File, file: {path: /tmp/b.log, format: {type: Json, json: [{key: "", value: "%START_TIME%"}, {key: k, value: ""}, {key: q, value: 'say "hi"'}]}}}]}"#,
            ),
            &[
                "spec.to[0].default.backends[0].file.format.plain: must not be empty",
                "spec.to[0].default.backends[1].file.format.json[0].key: key cannot be empty",
                "spec.to[0].default.backends[1].file.format.json[1].value: value cannot be empty",
                "spec.to[0].default.backends[1].file.format.json[2]: is not a valid JSON object",
            ],
        ),
        case(
            "no file path, a tcp address that is not one",
            &wrap("{backends: [{type: File, file: {path: ''}}, {type: Tcp, tcp: {address: not_an_address}}]}"),
            &[
                "spec.to[0].default.backends[0].file.path: file backend requires a valid path",
                "spec.to[0].default.backends[1].tcp.address: tcp backend requires valid address",
            ],
        ),
    ];
    run("MeshAccessLog formats", &cases, kuma);
}
