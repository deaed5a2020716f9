//! `meshgate run`: routing, filters, backends, errors, HTTP/2, hot reload and draining, through real sockets.

use std::time::{Duration, Instant};

use crate::support::{
    Backend, Behaviour, Gateway, backend_yaml, client, eventually, free_port, gateway_yaml, get, h2c_client, send,
    write_config,
};

fn route(name: &str, selector_extra: &str, body: &str) -> String {
    format!(
        "---\ntype: MeshGatewayRoute\nmesh: default\nname: {name}\nselectors:\n- match:\n    kuma.io/service: gw\n{selector_extra}conf:\n  http:\n{body}"
    )
}

/// The `rules` of an HTTP route sending the PREFIX `path` to `svc`.
fn prefix_rule(svc: &str, path: &str) -> String {
    format!(
        "    rules:\n    - matches: [{{path: {{match: PREFIX, value: {path}}}}}]\n      backends: [{{destination: {{kuma.io/service: {svc}}}}}]\n"
    )
}

/// A MeshGatewayRoute `r` sending every request to `svc`.
fn route_everything_to(svc: &str) -> String {
    route("r", "", &prefix_rule(svc, "/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_path_method_headers_and_query_in_kuma_order() {
    let names = ["prefix", "exact", "regex", "method", "header", "query", "v2", "root"];
    let mut backends = Vec::new();
    for n in names {
        backends.push(Backend::start(n).await);
    }
    let port = free_port();
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    for b in &backends {
        config.push_str(&backend_yaml(&format!("{}-1", b.name), &b.name, b.port(), ""));
    }
    config.push_str(&route(
        "paths",
        "",
        "    rules:
    - matches: [{path: {match: PREFIX, value: /api}}]
      backends: [{destination: {kuma.io/service: prefix}}]
    - matches: [{path: {match: EXACT, value: /api/exact}}]
      backends: [{destination: {kuma.io/service: exact}}]
    - matches: [{path: {match: REGEX, value: '/other/[0-9]+'}}]
      backends: [{destination: {kuma.io/service: regex}}]
    - matches: [{path: {match: PREFIX, value: /api/v2}, method: POST}]
      backends: [{destination: {kuma.io/service: method}}]
    - matches: [{path: {match: PREFIX, value: /api/v2}, headers: [{name: x-env, value: canary}]}]
      backends: [{destination: {kuma.io/service: header}}]
    - matches: [{path: {match: PREFIX, value: /api/v2}, query_parameters: [{name: version, value: '2'}]}]
      backends: [{destination: {kuma.io/service: query}}]
    - matches: [{path: {match: PREFIX, value: /api/v2}}]
      backends: [{destination: {kuma.io/service: v2}}]
    - matches: [{path: {match: EXACT, value: /}}]
      backends: [{destination: {kuma.io/service: root}}]
",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    let c = client();
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        ("GET", "/api", &[], "prefix"),
        ("GET", "/api/", &[], "prefix"),
        ("GET", "/api/anything/else", &[], "prefix"),
        ("GET", "/api/exact", &[], "exact"),
        ("GET", "/api/exact/more", &[], "prefix"),
        ("GET", "/other/123", &[], "regex"),
        ("POST", "/api/v2/x", &[], "method"),
        ("POST", "/api/v2/x", &[("x-env", "canary")], "method"),
        ("GET", "/api/v2/x", &[("x-env", "canary")], "header"),
        ("GET", "/api/v2/x?version=2", &[], "query"),
        ("GET", "/api/v2/x?version=2", &[("x-env", "canary")], "header"),
        ("GET", "/api/v2/x?version=3", &[], "v2"),
        ("GET", "/api/v2", &[], "v2"),
        ("GET", "/api/v2x", &[], "prefix"),
        ("GET", "/", &[], "root"),
        ("GET", "//api//exact", &[], "exact"),
        ("GET", "/api/./x/../exact", &[], "exact"),
        ("GET", "/%61pi/exact", &[], "exact"),
    ];
    for (method, path, headers, want) in cases {
        let r = send(&c, method, port, "example.com", path, headers).await;
        assert_eq!(r.status, 200, "{method} {path} {headers:?}: {r:?}");
        assert_eq!(&r.backend(), want, "{method} {path} {headers:?}");
    }
    for path in ["/apix", "/other/abc", "/nothing"] {
        let r = get(port, "example.com", path).await;
        assert_eq!((r.status, r.body.as_str()), (404, ""), "{path}");
    }
    // The upstream sees the normalised path and the query string.
    let r = get(port, "example.com", "//api//exact?a=1&b=2").await;
    assert_eq!(r.json()["path"], "/api/exact?a=1&b=2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosts_follow_kuma() {
    let foo = Backend::start("foo").await;
    let wild = Backend::start("wild").await;
    let any = Backend::start("any").await;
    let special = Backend::start("special").await;
    let port = free_port();
    let mut config = gateway_yaml(&format!(
        "  - {{port: {port}, protocol: HTTP, hostname: foo.example.com, tags: {{vhost: foo}}}}\n  - {{port: {port}, protocol: HTTP, hostname: '*.example.com', tags: {{vhost: wild}}}}\n  - {{port: {port}, protocol: HTTP, tags: {{vhost: any}}}}\n  - {{port: {}, protocol: HTTP, hostname: empty.example.com, tags: {{vhost: empty}}}}\n",
        port + 1
    ));
    for b in [&foo, &wild, &any, &special] {
        config.push_str(&backend_yaml(&format!("{}-1", b.name), &b.name, b.port(), ""));
    }
    config.push_str(&route("foo", "    vhost: foo\n", &prefix_rule("foo", "/foo")));
    config.push_str(&route("wild", "    vhost: wild\n", &prefix_rule("wild", "/")));
    config.push_str(&route("any", "    vhost: any\n", &prefix_rule("any", "/")));
    // A route with hostnames on the `*` listener gets a virtual host of its own.
    config.push_str(&route(
        "special",
        "    vhost: any\n",
        &format!("    hostnames: [special.org]\n{}", prefix_rule("special", "/")),
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;

    assert_eq!(get(port, "foo.example.com", "/foo/x").await.backend(), "foo");
    assert_eq!(
        get(port, &format!("foo.example.com:{port}"), "/foo").await.backend(),
        "foo",
        "the port in Host is ignored"
    );
    assert_eq!(get(port, "FOO.Example.COM", "/foo").await.backend(), "foo", "host names are case-insensitive");
    // No fallthrough from a matching virtual host to `*`.
    let r = get(port, "foo.example.com", "/bar").await;
    assert_eq!((r.status, r.body.as_str()), (404, ""));
    assert_eq!(get(port, "bar.example.com", "/bar").await.backend(), "wild");
    assert_eq!(get(port, "a.b.example.com", "/").await.backend(), "wild");
    assert_eq!(get(port, "example.com", "/").await.backend(), "any", "*.example.com does not contain example.com");
    assert_eq!(get(port, "other.org", "/").await.backend(), "any");
    assert_eq!(get(port, "special.org", "/").await.backend(), "special");
    // A listener with no routes answers Kuma's 404.
    let r = get(port + 1, "empty.example.com", "/anything").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body, "This is a Kuma MeshGateway. No routes match this MeshGateway!\n");
    // And a host that no virtual host takes gets a bare 404.
    let r = get(port + 1, "other.org", "/").await;
    assert_eq!((r.status, r.body.as_str()), (404, ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_rewrite_redirect_and_mirror() {
    let api = Backend::start("api").await;
    let shadow = Backend::start("shadow").await;
    let port = free_port();
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    config.push_str(&backend_yaml("api-1", "api", api.port(), ""));
    config.push_str(&backend_yaml("shadow-1", "shadow", shadow.port(), ""));
    config.push_str(&route(
        "filters",
        "",
        "    rules:
    - matches: [{path: {match: PREFIX, value: /headers}}]
      filters:
      - request_header:
          set: [{name: x-set, value: s}]
          add: [{name: x-add, value: a2}]
          remove: [x-remove]
      - response_header:
          set: [{name: x-resp-set, value: r}]
          add: [{name: x-resp-add, value: added}]
          remove: [x-backend]
      backends: [{destination: {kuma.io/service: api}}]
    - matches: [{path: {match: PREFIX, value: /host}}]
      filters:
      - request_header:
          set: [{name: Host, value: rewritten.example.com}]
      backends: [{destination: {kuma.io/service: api}}]
    - matches: [{path: {match: PREFIX, value: /backend-host}}]
      filters:
      - rewrite: {host_to_backend_hostname: true}
      backends: [{destination: {kuma.io/service: api}}]
    - matches: [{path: {match: PREFIX, value: /prefix/middle}}]
      filters:
      - rewrite: {replacePrefixMatch: /middle}
      backends: [{destination: {kuma.io/service: api}}]
    - matches: [{path: {match: PREFIX, value: /drop-prefix}}]
      filters:
      - rewrite: {replacePrefixMatch: /}
      backends: [{destination: {kuma.io/service: api}}]
    - matches: [{path: {match: PREFIX, value: /full}}]
      filters:
      - rewrite: {replaceFull: /replaced}
      backends: [{destination: {kuma.io/service: api}}]
    - matches: [{path: {match: EXACT, value: /go}}]
      filters:
      - redirect: {scheme: https, hostname: new.example.com, status_code: 301}
    - matches: [{path: {match: PREFIX, value: /moved}}]
      filters:
      - redirect: {port: 9443, path: {replacePrefixMatch: /new}, status_code: 308}
    - matches: [{path: {match: PREFIX, value: /mirrored}}]
      filters:
      - mirror: {percentage: 100, backend: {destination: {kuma.io/service: shadow}}}
      backends: [{destination: {kuma.io/service: api}}]
    - matches: [{path: {match: PREFIX, value: /}}]
      backends: [{destination: {kuma.io/service: api}}]
",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    let c = client();

    let r =
        send(&c, "GET", port, "example.com", "/headers", &[("x-add", "a1"), ("x-remove", "gone"), ("x-set", "old")])
            .await;
    assert_eq!(r.upstream_header("x-set").as_deref(), Some("s"));
    assert_eq!(r.upstream_header("x-add").as_deref(), Some("a1, a2"));
    assert_eq!(r.upstream_header("x-remove"), None);
    assert_eq!(r.upstream_header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(r.upstream_header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(r.header("x-resp-set").as_deref(), Some("r"));
    assert_eq!(r.header("x-resp-add").as_deref(), Some("added"));
    assert_eq!(r.header("x-backend"), None);
    assert_eq!(r.header("server").as_deref(), Some("meshgate"));
    let r = send(&c, "GET", port, "example.com", "/headers", &[("x-forwarded-for", "10.0.0.1")]).await;
    assert_eq!(r.upstream_header("x-forwarded-for").as_deref(), Some("10.0.0.1, 127.0.0.1"));
    assert_eq!(get(port, "example.com", "/").await.upstream_header("host").as_deref(), Some("example.com"));

    assert_eq!(
        get(port, "example.com", "/host").await.upstream_header("host").as_deref(),
        Some("rewritten.example.com")
    );
    assert_eq!(get(port, "example.com", "/backend-host").await.upstream_header("host").as_deref(), Some("127.0.0.1"));

    for (path, want) in [
        ("/prefix/middle", "/middle"),
        ("/prefix/middle/tail?q=1", "/middle/tail?q=1"),
        ("/drop-prefix", "/"),
        ("/drop-prefix/tail", "/tail"),
        ("/full/x?keep=1", "/replaced?keep=1"),
    ] {
        assert_eq!(get(port, "example.com", path).await.json()["path"], want, "{path}");
    }
    // `/prefix/middle_andmore` is not under the prefix: it falls to `/` and keeps its path.
    assert_eq!(get(port, "example.com", "/prefix/middle_andmore").await.json()["path"], "/prefix/middle_andmore");

    let r = get(port, "example.com", "/go?drop=1").await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location").unwrap(),
        format!("https://new.example.com:{port}/go"),
        "the port defaults to the listener's"
    );
    let r = get(port, "example.com", "/moved/a/b?x=1").await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location").unwrap(), "http://example.com:9443/new/a/b");

    let before = shadow.seen().len();
    let r = send(&c, "POST", port, "example.com", "/mirrored/x", &[("content-type", "text/plain")]).await;
    assert_eq!(r.backend(), "api");
    let req = c
        .post(format!("http://127.0.0.1:{port}/mirrored/body"))
        .header("host", "example.com")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(req.status(), 200);
    eventually(Duration::from_secs(3), "the mirror receives both copies", || async {
        shadow.seen().len() >= before + 2
    })
    .await;
    let copies = shadow.seen();
    let copy = copies.iter().find(|s| s.path == "/mirrored/body").unwrap();
    assert_eq!(copy.body, "payload");
    assert_eq!(copy.headers.get("host").map(String::as_str), Some("example.com-shadow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_endpoints_and_errors() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let b2 = Backend::start("b").await;
    let never = Backend::start("never").await;
    let slow = Backend::start_with("slow", Behaviour::Slow(Duration::from_millis(1500))).await;
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbage_port = garbage.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut s, _)) = garbage.accept().await else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"this is not HTTP\r\n\r\n").await;
        }
    });
    let closed = free_port();
    let port = free_port();
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    config.push_str(&backend_yaml("a-1", "a", a.port(), ""));
    config.push_str(&backend_yaml("b-1", "b", b.port(), ""));
    config.push_str(&backend_yaml("b-2", "b", b2.port(), ""));
    config.push_str(&backend_yaml("never-1", "never", never.port(), ""));
    config.push_str(&backend_yaml("slow-1", "slow", slow.port(), ""));
    config.push_str(&backend_yaml("garbage-1", "garbage", garbage_port, ""));
    config.push_str(&backend_yaml("closed-1", "closed", closed, ""));
    config.push_str(&route(
        "weights",
        "",
        "    rules:
    - matches: [{path: {match: EXACT, value: /split}}]
      backends:
      - {weight: 3, destination: {kuma.io/service: a}}
      - {weight: 1, destination: {kuma.io/service: b}}
      - {weight: 0, destination: {kuma.io/service: never}}
    - matches: [{path: {match: EXACT, value: /lone-zero}}]
      backends: [{weight: 0, destination: {kuma.io/service: a}}]
    - matches: [{path: {match: EXACT, value: /round-robin}}]
      backends: [{destination: {kuma.io/service: b}}]
    - matches: [{path: {match: EXACT, value: /unresolved}}]
      backends: [{destination: {kuma.io/service: kuma.io/unresolved-backend}}]
    - matches: [{path: {match: EXACT, value: /no-endpoints}}]
      backends: [{destination: {kuma.io/service: nobody}}]
    - matches: [{path: {match: EXACT, value: /closed}}]
      backends: [{destination: {kuma.io/service: closed}}]
    - matches: [{path: {match: EXACT, value: /slow}}]
      backends: [{destination: {kuma.io/service: slow}}]
    - matches: [{path: {match: EXACT, value: /garbage}}]
      backends: [{destination: {kuma.io/service: garbage}}]
",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let gw = Gateway::start(dir.path(), &["--upstream-timeout", "500"]).await;

    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..400 {
        *counts.entry(get(port, "example.com", "/split").await.backend()).or_insert(0) += 1;
    }
    let share_a = f64::from(counts.get("a").copied().unwrap_or(0)) / 400.0;
    assert!((0.65..=0.85).contains(&share_a), "weight 3:1 gave {counts:?}");
    assert_eq!(counts.get("never"), None, "weight 0 beside others gets nothing: {counts:?}");
    assert_eq!(get(port, "example.com", "/lone-zero").await.backend(), "a");
    let (seen_b, seen_b2) = (b.seen().len(), b2.seen().len());
    for _ in 0..10 {
        assert_eq!(get(port, "example.com", "/round-robin").await.backend(), "b");
    }
    let spread = (b.seen().len() - seen_b, b2.seen().len() - seen_b2);
    assert!(spread.0 >= 4 && spread.1 >= 4, "round-robin across endpoints: {spread:?}");

    assert_eq!(get(port, "example.com", "/unresolved").await.status, 500);
    assert_eq!(get(port, "example.com", "/no-endpoints").await.status, 503);
    assert_eq!(get(port, "example.com", "/closed").await.status, 503);
    let started = Instant::now();
    assert_eq!(get(port, "example.com", "/slow").await.status, 504);
    assert!(started.elapsed() < Duration::from_millis(1400), "timed out at the configured 500 ms");
    assert_eq!(get(port, "example.com", "/garbage").await.status, 502);

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(&format!(
            "meshgate_http_requests_total{{gateway=\"gw\",listener=\"gw:HTTP:{port}\",route=\"weights\",code=\"5xx\"}} 5"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "meshgate_http_requests_total{{gateway=\"gw\",listener=\"gw:HTTP:{port}\",route=\"weights\",code=\"2xx\"}} 411"
        )),
        "{metrics}"
    );
    let config = gw.config().await;
    let diagnostics = config["plans"][0]["diagnostics"].to_string();
    assert!(diagnostics.contains("no endpoints for service \\\"nobody\\\""), "{diagnostics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_services_and_http2() {
    let es = Backend::start("external").await;
    let grpc = Backend::start("h2-backend").await;
    let port = free_port();
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    config.push_str(&format!(
        "---\ntype: ExternalService\nmesh: default\nname: ext\nnetworking:\n  address: localhost:{}\ntags:\n  kuma.io/service: ext\n",
        es.port()
    ));
    config.push_str(&backend_yaml("h2-1", "h2", grpc.port(), "      kuma.io/protocol: http2\n"));
    config.push_str(&route(
        "r",
        "",
        "    rules:
    - matches: [{path: {match: PREFIX, value: /ext}}]
      filters: [{rewrite: {host_to_backend_hostname: true}}]
      backends: [{destination: {kuma.io/service: ext}}]
    - matches: [{path: {match: PREFIX, value: /h2}}]
      backends: [{destination: {kuma.io/service: h2}}]
",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;

    let r = get(port, "example.com", "/ext/x").await;
    assert_eq!(r.backend(), "external");
    assert_eq!(r.upstream_header("host").as_deref(), Some("localhost"), "Host becomes the ExternalService's host");
    // h2c from the client; HTTP/2 to an upstream declared http2, with :authority from the request's Host.
    let r = send(&h2c_client(), "GET", port, "example.com", "/h2/y", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.backend(), "h2-backend");
    let seen = grpc.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.version, "HTTP/2.0");
    assert_eq!(last.headers.get(":authority").map(String::as_str), Some("example.com"));
    let r = send(&h2c_client(), "GET", port, "example.com", "/ext/z", &[]).await;
    assert_eq!(r.backend(), "external");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_service_over_tls() {
    let (secure, ca) = Backend::start_tls("secure", "secure.example").await;
    let port = free_port();
    let indented: String = ca.lines().map(|l| format!("          {l}\n")).collect();
    let es = |name: &str, server_name: &str| {
        format!(
            "---\ntype: ExternalService\nmesh: default\nname: {name}\nnetworking:\n  address: 127.0.0.1:{}\n  tls:\n    enabled: true\n    serverName: {server_name}\n    caCert:\n      inlineString: |\n{indented}tags:\n  kuma.io/service: {name}\n",
            secure.port()
        )
    };
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    config.push_str(&es("secure", "secure.example"));
    config.push_str(&es("wrong-name", "other.example"));
    config.push_str(&route(
        "r",
        "",
        "    rules:
    - matches: [{path: {match: PREFIX, value: /secure}}]
      backends: [{destination: {kuma.io/service: secure}}]
    - matches: [{path: {match: PREFIX, value: /wrong}}]
      backends: [{destination: {kuma.io/service: wrong-name}}]
",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    let r = get(port, "example.com", "/secure/x").await;
    assert_eq!((r.status, r.backend().as_str()), (200, "secure"), "{r:?}");
    // A certificate that does not name the server is refused: the upstream cannot be reached.
    assert_eq!(get(port, "example.com", "/wrong").await.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_applies_changes_and_keeps_the_last_good_version() {
    let one = Backend::start("one").await;
    let two = Backend::start("two").await;
    let port = free_port();
    let port2 = free_port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let listener = |p: u16| format!("  - port: {p}\n    protocol: HTTP\n");
    write_config(d, "gateway.yaml", &gateway_yaml(&listener(port)));
    write_config(
        d,
        "backends.yaml",
        &(backend_yaml("one-1", "one", one.port(), "") + &backend_yaml("two-1", "two", two.port(), "")),
    );
    write_config(d, "route.yaml", &route_everything_to("one"));
    let gw = Gateway::start(d, &[]).await;
    assert_eq!(get(port, "example.com", "/").await.backend(), "one");

    // A keep-alive connection opened now must survive the reloads below.
    let keep_alive = client();
    assert_eq!(send(&keep_alive, "GET", port, "example.com", "/", &[]).await.backend(), "one");

    // A route change flips within a second.
    let changed = Instant::now();
    write_config(d, "route.yaml", &route_everything_to("two"));
    eventually(Duration::from_secs(1), "the route flips to backend two", || async {
        get(port, "example.com", "/").await.backend() == "two"
    })
    .await;
    assert!(changed.elapsed() <= Duration::from_secs(1));

    // A file with a YAML error is rejected; what it held stays in force and other changes still apply.
    write_config(d, "route.yaml", "type: MeshGatewayRoute\nname: r\nconf: [\n");
    write_config(d, "gateway.yaml", &gateway_yaml(&(listener(port) + &listener(port2))));
    eventually(Duration::from_secs(2), "the new listener port binds", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port2)).await.is_ok()
    })
    .await;
    assert_eq!(get(port, "example.com", "/").await.backend(), "two", "the broken file's route stays in force");
    assert_eq!(get(port2, "example.com", "/").await.backend(), "two");
    let config = gw.config().await;
    let rejections = config["rejections"].to_string();
    assert!(rejections.contains("route.yaml") && rejections.contains("invalid YAML"), "{rejections}");
    assert!(gw.log().contains("rejected:") && gw.log().contains("route.yaml:3:"), "{}", gw.log());

    // A resource that fails validation is rejected too, and its previous version kept.
    write_config(
        d,
        "route.yaml",
        &route(
            "r",
            "",
            "    rules:\n    - matches: [{path: {match: PREFIX, value: api}}]\n      backends: [{destination: {kuma.io/service: one}}]\n",
        ),
    );
    eventually(Duration::from_secs(2), "the invalid route is reported", || async {
        gw.config().await["rejections"].to_string().contains("must be an absolute path")
    })
    .await;
    assert_eq!(get(port, "example.com", "/").await.backend(), "two");

    // The keep-alive connection still works, on the same connection pool.
    assert_eq!(send(&keep_alive, "GET", port, "example.com", "/", &[]).await.backend(), "two");

    // Removing a port stops it.
    write_config(d, "route.yaml", &route_everything_to("one"));
    write_config(d, "gateway.yaml", &gateway_yaml(&listener(port)));
    eventually(Duration::from_secs(3), "the removed port stops accepting", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port2)).await.is_err()
    })
    .await;
    assert_eq!(get(port, "example.com", "/").await.backend(), "one");
    assert_eq!(gw.config().await["rejections"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_fallback_reloads_too() {
    let one = Backend::start("one").await;
    let two = Backend::start("two").await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    config.push_str(&backend_yaml("one-1", "one", one.port(), ""));
    config.push_str(&backend_yaml("two-1", "two", two.port(), ""));
    write_config(d, "gateway.yaml", &config);
    write_config(d, "route.yaml", &route_everything_to("one"));
    let _gw = Gateway::start(d, &["--poll"]).await;
    assert_eq!(get(port, "example.com", "/").await.backend(), "one");
    write_config(d, "route.yaml", &route_everything_to("two"));
    eventually(Duration::from_secs(3), "polling picks up the change", || async {
        get(port, "example.com", "/").await.backend() == "two"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    let slow = Backend::start_with("slow", Behaviour::Slow(Duration::from_millis(800))).await;
    let port = free_port();
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    config.push_str(&backend_yaml("slow-1", "slow", slow.port(), ""));
    config.push_str(&route("r", "", "    rules:\n    - matches: [{path: {match: PREFIX, value: /}}]\n      backends: [{destination: {kuma.io/service: slow}}]\n"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let mut gw = Gateway::start(dir.path(), &[]).await;
    let in_flight = tokio::spawn(async move { get(port, "example.com", "/").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.terminate();
    let r = in_flight.await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "slow"), "the request in flight completes");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = gw.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", gw.log());
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "no longer accepting");
}

#[test]
fn invalid_configuration_at_startup_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gw.yaml"), gateway_yaml("  - port: 0\n    protocol: HTTP\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["run", "--config", dir.path().to_str().unwrap(), "--admin", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gw.yaml:19:5: MeshGateway gw: conf.listeners[0].port: port must be in the range [1, 65535]"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was started"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_example_serves() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart");
    let dir = tempfile::tempdir().unwrap();
    // The example uses fixed ports (8080, 8081, admin 9901); the test moves them to free ones.
    let (p1, p2, admin) = (free_port(), free_port(), free_port());
    let text = std::fs::read_to_string(examples.join("gateway.yaml"))
        .unwrap()
        .replace("8080", &p1.to_string())
        .replace("8081", &p2.to_string())
        .replace("9901", &admin.to_string());
    std::fs::write(dir.path().join("gateway.yaml"), text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["run", "--config", dir.path().to_str().unwrap(), "--admin", &format!("127.0.0.1:{admin}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), "the quickstart gateway is ready", || async {
        client().get(format!("http://127.0.0.1:{admin}/ready")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let r = get(p1, "example.com", "/status/ready").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    assert_eq!(r.header("x-served-by").as_deref(), Some("meshgate-quickstart"));
    let r = get(p1, "example.com", "/old").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location").unwrap(), format!("http://example.com:{p1}/status/ready"));
    let r = get(p2, "anything", "/").await;
    assert_eq!(r.body, "This is a Kuma MeshGateway. No routes match this MeshGateway!\n");
    let _ = child.kill();
    let _ = child.wait();
}
