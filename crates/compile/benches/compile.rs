//! Plan compile cost: one builtin gateway with 10,000 routes over 1,000 hostnames (1,000 MeshGatewayRoutes of ten
//! rules each, exact, prefix, regex, method and header matches, filters, weighted backends), decoded once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use meshgate_api::decode::UnknownFields;
use meshgate_api::resource::Resource;
use meshgate_compile::{Files, compile};

fn yaml() -> String {
    let mut y = String::from(
        "type: Dataplane\nmesh: default\nname: gw-1\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    type: BUILTIN\n    tags:\n      kuma.io/service: edge\n---\ntype: MeshGateway\nmesh: default\nname: edge\nselectors:\n- match:\n    kuma.io/service: edge\nconf:\n  listeners:\n  - port: 8080\n    protocol: HTTP\n",
    );
    for s in 0..10 {
        let _ = write!(
            y,
            "---\ntype: Dataplane\nmesh: default\nname: svc-{s}\nnetworking:\n  address: 10.0.0.{s}\n  inbound:\n  - port: 8080\n    tags:\n      kuma.io/service: svc-{s}\n"
        );
    }
    for h in 0..1000 {
        let svc = format!("{{kuma.io/service: svc-{}}}", h % 10);
        let other = format!("{{kuma.io/service: svc-{}}}", (h + 1) % 10);
        let rules = [
            (
                format!("{{path: {{match: EXACT, value: /svc{h}/health}}}}"),
                String::new(),
                format!("[{{destination: {svc}}}]"),
            ),
            (
                "{path: {match: EXACT, value: /login}, method: POST}".to_owned(),
                String::new(),
                format!("[{{destination: {svc}}}]"),
            ),
            (
                format!(
                    "{{path: {{match: PREFIX, value: /svc{h}/api/v3}}, headers: [{{match: EXACT, name: x-version, value: '3'}}]}}"
                ),
                String::new(),
                format!("[{{destination: {svc}}}]"),
            ),
            (
                format!("{{path: {{match: PREFIX, value: /svc{h}/api/v2}}, method: PUT}}"),
                String::new(),
                format!("[{{destination: {svc}}}]"),
            ),
            (
                format!(
                    "{{path: {{match: PREFIX, value: /svc{h}/api/v2}}, headers: [{{match: EXACT, name: x-canary, value: 'true'}}]}}"
                ),
                String::new(),
                format!("[{{weight: 90, destination: {svc}}}, {{weight: 10, destination: {other}}}]"),
            ),
            (
                format!("{{path: {{match: PREFIX, value: /svc{h}/api/v2}}}}"),
                "[{requestHeader: {set: [{name: x-api, value: v2}]}}]".to_owned(),
                format!("[{{destination: {svc}}}]"),
            ),
            (
                format!("{{path: {{match: PREFIX, value: /svc{h}/api}}}}"),
                "[{rewrite: {replacePrefixMatch: /api}}]".to_owned(),
                format!("[{{destination: {svc}}}]"),
            ),
            (
                "{path: {match: PREFIX, value: /static}}".to_owned(),
                String::new(),
                format!("[{{destination: {other}}}]"),
            ),
            (
                format!("{{path: {{match: REGEX, value: '/svc{h}/items/[0-9]+'}}}}"),
                String::new(),
                format!("[{{destination: {svc}}}]"),
            ),
            ("{path: {match: PREFIX, value: /}}".to_owned(), String::new(), format!("[{{destination: {svc}}}]")),
        ];
        let _ = write!(
            y,
            "---\ntype: MeshGatewayRoute\nmesh: default\nname: host-{h}\nselectors:\n- match:\n    kuma.io/service: edge\nconf:\n  http:\n    hostnames: [host-{h}.example.com]\n    rules:\n"
        );
        for (matches, filters, backends) in rules {
            let _ = writeln!(y, "    - matches: [{matches}]");
            if !filters.is_empty() {
                let _ = writeln!(y, "      filters: {filters}");
            }
            let _ = writeln!(y, "      backends: {backends}");
        }
    }
    y
}

fn resources() -> Vec<Resource> {
    let text = yaml();
    let outcome = meshgate_api::load::decode_text(Path::new("bench.yaml"), &text, UnknownFields::Deny);
    let problems: Vec<String> = outcome.problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    outcome.loaded.into_iter().map(|l| l.decoded.resource).collect()
}

fn bench(c: &mut Criterion) {
    let resources = resources();
    let files = Files::default();
    let plan = compile(&resources, &files);
    let routes: usize = plan.gateways[0].listeners.iter().flat_map(|l| &l.virtual_hosts).map(|v| v.routes.len()).sum();
    assert!(routes >= 10_000, "{routes} routes");
    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    group.bench_function("10k_routes_1k_hosts", |b| b.iter(|| black_box(compile(black_box(&resources), &files))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
