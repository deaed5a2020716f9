//! Request-path costs measured alone: route lookup over 10,000 routes and 1,000 hostnames (10 per virtual host,
//! mixing exact, prefix, regex, method and header conditions; the request matches a route in the middle of a
//! virtual host in the middle of the table), and header filtering (hop-by-hop removal plus a route's set, add and
//! remove) on a typical browser request.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use meshgate_plan::{
    Action, Cluster, Endpoint, Forward, GatewayPlan, HeaderMatch, Listener, PathMatch, Protocol, Route, RouteSource,
    ValueMatch, VirtualHost, WeightedCluster,
};
use meshgate_proxy::ProxySettings;
use meshgate_proxy::handler::strip_hop_by_hop;
use meshgate_proxy::metrics::Metrics;
use meshgate_proxy::path::normalize;
use meshgate_proxy::runtime::{HeaderOpsRuntime, ListenerKind, build};

fn forward(cluster: &str) -> Action {
    Action::Forward(Forward {
        backends: vec![WeightedCluster { cluster: cluster.to_owned(), weight: 1 }],
        ..Forward::default()
    })
}

fn route(path: PathMatch, method: Option<&str>, header: Option<(&str, &str)>) -> Route {
    Route {
        source: RouteSource { kind: "MeshGatewayRoute".into(), name: "bench".into(), ..RouteSource::default() },
        path,
        method: method.map(str::to_owned),
        headers: header
            .map(|(n, v)| vec![HeaderMatch { name: n.to_owned(), kind: ValueMatch::Exact(v.to_owned()) }])
            .unwrap_or_default(),
        query: Vec::new(),
        action: forward("backend"),
        policies: Default::default(),
    }
}

fn plan() -> GatewayPlan {
    let mut virtual_hosts = Vec::new();
    for h in 0..1000 {
        let routes = vec![
            route(PathMatch::Exact(format!("/svc{h}/health")), None, None),
            route(PathMatch::Exact("/login".into()), Some("POST"), None),
            route(PathMatch::Prefix(format!("/svc{h}/api/v3/")), None, Some(("x-version", "3"))),
            route(PathMatch::Prefix(format!("/svc{h}/api/v2/")), Some("PUT"), None),
            route(PathMatch::Prefix(format!("/svc{h}/api/v2/")), None, Some(("x-canary", "true"))),
            route(PathMatch::Prefix(format!("/svc{h}/api/v2/")), None, None),
            route(PathMatch::Prefix(format!("/svc{h}/api/")), None, None),
            route(PathMatch::Prefix("/static/".into()), None, None),
            route(PathMatch::Regex(format!("/svc{h}/items/[0-9]+")), None, None),
            route(PathMatch::Prefix("/".into()), None, None),
        ];
        virtual_hosts.push(VirtualHost { domain: format!("host-{h}.example.com"), routes });
    }
    let mut clusters = BTreeMap::new();
    clusters.insert(
        "backend".to_owned(),
        Cluster {
            service: "backend".into(),
            endpoints: vec![Endpoint { host: "127.0.0.1".into(), port: 9 }],
            ..Cluster::default()
        },
    );
    GatewayPlan {
        address: "127.0.0.1".into(),
        listeners: vec![Listener {
            name: "gw:HTTP:8080".into(),
            port: 8080,
            protocol: Protocol::Http,
            connection_limit: 0,
            hostnames: Vec::new(),
            virtual_hosts,
            tls_chains: Vec::new(),
            tcp: None,
            policies: Default::default(),
        }],
        clusters,
        ..GatewayPlan::default()
    }
}

fn bench(c: &mut Criterion) {
    let plan = plan();
    let shared = meshgate_proxy::runtime::Shared::default();
    let metrics = Metrics::default();
    let (runtime, warnings) = build(&plan, &shared, &metrics, &std::sync::Arc::new(ProxySettings::default()));
    assert!(warnings.is_empty(), "{warnings:?}");
    let listener = runtime.listeners.get(&8080).unwrap();
    let ListenerKind::Http { vhosts } = &listener.kind else { panic!("an HTTP listener") };
    let routes: usize = vhosts.items().iter().map(|v| v.routes.len()).sum();
    assert_eq!(routes, 10_000);
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", HeaderValue::from_static("bench"));
    headers.insert("accept", HeaderValue::from_static("*/*"));
    let method = Method::GET;
    c.bench_function("route_lookup_10k_routes_1k_hosts", |b| {
        b.iter(|| {
            let host = black_box("host-500.example.com");
            let raw = black_box("/svc500/api/v2/orders");
            let vhost = vhosts.find(Some(host)).unwrap();
            let path = normalize(raw);
            let route = vhost.routes.iter().position(|r| r.matches(&method, &path, None, &headers)).unwrap();
            black_box(route)
        });
    });
    c.bench_function("route_lookup_unknown_host_falls_to_404", |b| {
        b.iter(|| black_box(vhosts.find(Some(black_box("nope.example.org"))).is_none()));
    });
}

fn header_filters(c: &mut Criterion) {
    let ops = HeaderOpsRuntime {
        remove: vec![HeaderName::from_static("x-internal")],
        set: vec![
            (HeaderName::from_static("x-gateway"), HeaderValue::from_static("edge")),
            (http::header::HOST, HeaderValue::from_static("backend.internal")),
        ],
        add: vec![(HeaderName::from_static("x-route"), HeaderValue::from_static("orders"))],
    };
    let mut request = HeaderMap::new();
    for (n, v) in [
        ("host", "shop.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "session=0123456789abcdef; theme=dark"),
        ("connection", "keep-alive"),
        ("x-internal", "1"),
        ("upgrade-insecure-requests", "1"),
        ("sec-fetch-mode", "navigate"),
    ] {
        request.append(HeaderName::from_static(n), HeaderValue::from_static(v));
    }
    c.bench_function("header_filters_browser_request", |b| {
        b.iter_batched_ref(
            || request.clone(),
            |headers| {
                strip_hop_by_hop(headers);
                ops.apply(headers);
            },
            criterion::BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, bench, header_filters);
criterion_main!(benches);
