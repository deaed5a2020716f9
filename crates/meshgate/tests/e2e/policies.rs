//! Gateway policies through the real binary: each policy's observable effect on real traffic, per listener and per
//! MeshHTTPRoute, and the policies in force as `/config` shows them.

use std::time::{Duration, Instant};

use crate::support::{
    Backend, Behaviour, Gateway, backend_yaml, client, eventually, free_port, gateway_yaml, get, send, send_body,
    write_config,
};

/// A gateway on `port` with MeshHTTPRoutes `limited` (`/limited`, `/slow`…) and `free` (`/`), all to `service`.
fn gateway_with_routes(port: u16, backends: &[&Backend]) -> String {
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n    tags: {{edge: public}}\n"));
    for b in backends {
        config.push_str(&backend_yaml(&format!("{}-1", b.name), &b.name, b.port(), ""));
    }
    config
}

fn route(name: &str, path: &str, service: &str) -> String {
    format!(
        "---\ntype: MeshHTTPRoute\nmesh: default\nname: {name}\nspec:\n  targetRef: {{kind: MeshGateway, name: gw}}\n  to:\n  - targetRef: {{kind: Mesh}}\n    rules:\n    - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n      default:\n        backendRefs: [{{kind: MeshService, name: {service}}}]\n"
    )
}

fn policy(kind: &str, name: &str, target: &str, body: &str) -> String {
    format!("---\ntype: {kind}\nmesh: default\nname: {name}\nspec:\n  targetRef: {target}\n{body}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_gateway_wide_and_per_route() {
    let echo = Backend::start("echo").await;
    let port = free_port();
    let mut config = gateway_with_routes(port, &[&echo]);
    config.push_str(&route("limited", "/limited", "echo"));
    config.push_str(&route("free", "/", "echo"));
    // Per route (Kuma e2e: a MeshRateLimit targeting one MeshHTTPRoute; the other route keeps succeeding).
    config.push_str(&policy(
        "MeshRateLimit",
        "per-route",
        "{kind: MeshHTTPRoute, name: limited}",
        "  to:\n  - targetRef: {kind: Mesh}\n    default:\n      local:\n        http:\n          requestRate: {num: 2, interval: 10s}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;

    assert_eq!(get(port, "a.example.com", "/limited/x").await.status, 200);
    assert_eq!(get(port, "a.example.com", "/limited/y").await.status, 200);
    let r = get(port, "a.example.com", "/limited/z").await;
    assert_eq!(r.status, 429, "the third request in 10 s is limited: {r:?}");
    assert_eq!(r.body, "local_rate_limited");
    for _ in 0..10 {
        assert_eq!(get(port, "a.example.com", "/other").await.status, 200, "the other route is not limited");
    }
    assert!(
        gw.metrics().await.contains("meshgate_rate_limited_total{gateway=\"gw\",listener=\"gw:HTTP:"),
        "{}",
        gw.metrics().await
    );

    // Gateway-wide with a configured status and header (Kuma e2e: 428 and x-kuma-rate-limited).
    write_config(
        dir.path(),
        "gateway-limit.yaml",
        &policy(
            "MeshRateLimit",
            "gateway-wide",
            "{kind: MeshGateway, name: gw}",
            "  to:\n  - targetRef: {kind: Mesh}\n    default:\n      local:\n        http:\n          requestRate: {num: 1, interval: 10s}\n          onRateLimit: {status: 428, headers: {add: [{name: x-kuma-rate-limited, value: 'true'}]}}\n",
        ),
    );
    eventually(Duration::from_secs(5), "the gateway-wide limit applies", || async {
        get(port, "a.example.com", "/other").await.status == 428
    })
    .await;
    let r = get(port, "a.example.com", "/other").await;
    assert_eq!(r.status, 428);
    assert_eq!(r.header("x-kuma-rate-limited").as_deref(), Some("true"));
    // /config names both policies on the per-route entries (merged: gateway-wide first, the route's own last).
    let config = gw.config().await;
    let applied = &config["plans"][0]["listeners"][0]["virtual_hosts"][0]["routes"];
    let text = applied.to_string();
    assert!(text.contains("\"per-route\"") && text.contains("\"gateway-wide\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_abort_before_routing_and_delay() {
    let echo = Backend::start("echo").await;
    let port = free_port();
    let mut config = gateway_with_routes(port, &[&echo]);
    config.push_str(&route("only-api", "/api", "echo"));
    config.push_str(&policy(
        "MeshFaultInjection",
        "abort",
        "{kind: MeshGateway, name: gw}",
        "  to:\n  - targetRef: {kind: Mesh}\n    default:\n      http:\n      - abort: {httpStatus: 421, percentage: 100}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    assert_eq!(get(port, "a.example.com", "/api/x").await.status, 421);
    assert_eq!(get(port, "a.example.com", "/no-route-here").await.status, 421, "faults act before routing");
    assert!(echo.seen().is_empty(), "aborted requests never reach the backend");

    // Mesh-wide (proxyTypes: [Gateway]) delay instead.
    std::fs::write(dir.path().join("config.yaml"), {
        let mut c = gateway_with_routes(port, &[&echo]);
        c.push_str(&route("only-api", "/api", "echo"));
        c.push_str(&policy(
            "MeshFaultInjection",
            "delay",
            "{kind: Mesh, proxyTypes: [Gateway]}",
            "  to:\n  - targetRef: {kind: Mesh}\n    default:\n      http:\n      - delay: {value: 400ms, percentage: \"100.0\"}\n",
        ));
        c
    })
    .unwrap();
    eventually(Duration::from_secs(5), "the abort is gone", || async {
        get(port, "a.example.com", "/api/x").await.status == 200
    })
    .await;
    let started = Instant::now();
    let r = get(port, "a.example.com", "/api/x").await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400), "delayed {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_route_request_timeout_answers_504_at_its_time() {
    let slow = Backend::start_with("slow", Behaviour::Slow(Duration::from_millis(1500))).await;
    let port = free_port();
    let mut config = gateway_with_routes(port, &[&slow]);
    config.push_str(&route("timeout", "/timeout", "slow"));
    config.push_str(&route("no-timeout", "/", "slow"));
    config.push_str(&policy(
        "MeshTimeout",
        "route-timeout",
        "{kind: MeshHTTPRoute, name: timeout}",
        "  to:\n  - targetRef: {kind: Mesh}\n    default:\n      http: {requestTimeout: 500ms, streamIdleTimeout: 10s}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;
    let started = Instant::now();
    let r = get(port, "a.example.com", "/timeout").await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{r:?}");
    assert_eq!(r.body, "upstream request timeout\n");
    assert!(took >= Duration::from_millis(480) && took < Duration::from_millis(1400), "504 after {took:?}");
    let started = Instant::now();
    assert_eq!(get(port, "a.example.com", "/other").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(1500));
    // /config shows the policies in force on each route.
    let config = gw.config().await.to_string();
    assert!(config.contains("\"request_timeout_ms\":500"), "{config}");
    assert!(config.contains("\"route-timeout\""), "{config}");
    assert!(config.contains("\"mesh-gateways-timeout-all-default\""), "{config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_turn_a_flaky_backend_into_full_success() {
    let flaky = Backend::start_with("flaky", Behaviour::Flaky { fail: 2, of: 3, status: 503 }).await;
    let port = free_port();
    let mut config = gateway_with_routes(port, &[&flaky]);
    // Without the mesh's default retry policy, 2 of 3 requests fail.
    config.push_str("---\ntype: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n");
    // The route adds a request header: a retried attempt must carry it once, as the first did.
    config.push_str(&route("all", "/", "flaky").replace(
        "      default:\n",
        "      default:\n        filters:\n        - {type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-added, value: once}]}}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;
    let mut failures = 0;
    for _ in 0..9 {
        if get(port, "a.example.com", "/").await.status != 200 {
            failures += 1;
        }
    }
    assert_eq!(failures, 6, "no retries without a MeshRetry");

    write_config(
        dir.path(),
        "retry.yaml",
        &policy(
            "MeshRetry",
            "retry",
            "{kind: MeshGateway, name: gw}",
            "  to:\n  - targetRef: {kind: Mesh}\n    default:\n      http: {numRetries: 3, retryOn: [\"5xx\"], backOff: {baseInterval: 10ms, maxInterval: 50ms}}\n",
        ),
    );
    eventually(Duration::from_secs(5), "the retry policy applies", || async {
        gw.config().await.to_string().contains("\"num_retries\":3")
    })
    .await;
    let c = client();
    let asked = [("content-type", "text/plain"), ("x-client", "kept"), ("x-forwarded-for", "10.0.0.1")];
    for i in 0..30 {
        // A small body is replayed on each attempt (a bodiless request on every other one). Two of every three
        // attempts fail, so each request succeeds on its third attempt: the retried one carries the body, the
        // client's headers, and the forwarding and route headers derived again, as the first did.
        let body = if i % 2 == 0 { "hello" } else { "" };
        let r = send_body(&c, "POST", port, "a.example.com", "/", &asked, Some(body)).await;
        assert_eq!(r.status, 200, "request {i} failed despite retries: {r:?}");
        assert_eq!(r.json()["body"], body, "{r:?}");
        assert_eq!(r.upstream_header("x-added").as_deref(), Some("once"), "{r:?}");
        assert_eq!(r.upstream_header("x-client").as_deref(), Some("kept"), "{r:?}");
        assert_eq!(r.upstream_header("x-forwarded-for").as_deref(), Some("10.0.0.1, 127.0.0.1"), "{r:?}");
        assert_eq!(r.upstream_header("x-forwarded-proto").as_deref(), Some("http"), "{r:?}");
        assert_eq!(r.upstream_header("host").as_deref(), Some("a.example.com"), "{r:?}");
    }
    assert!(gw.metrics().await.contains("meshgate_retries_total"), "retries are counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_write_json_lines_with_the_configured_fields() {
    let echo = Backend::start("echo").await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().with_extension("access.log");
    let default_log = dir.path().with_extension("default.log");
    let mut config = gateway_with_routes(port, &[&echo]);
    config.push_str(&route("api", "/api", "echo"));
    config.push_str(&policy(
        "MeshAccessLog",
        "edge-logs",
        "{kind: MeshGateway, name: gw}",
        &format!(
            "  to:\n  - targetRef: {{kind: Mesh}}\n    default:\n      backends:\n      - type: File\n        file:\n          path: {}\n          format:\n            type: Json\n            json:\n            - {{key: status, value: '%RESPONSE_CODE%'}}\n            - {{key: path, value: '%REQ(:PATH)%'}}\n            - {{key: mesh, value: '%KUMA_MESH%'}}\n            - {{key: source, value: '%KUMA_SOURCE_SERVICE%'}}\n            - {{key: upstream, value: '%UPSTREAM_HOST%'}}\n            - {{key: route, value: '%ROUTE_NAME%'}}\n            - {{key: flags, value: '%RESPONSE_FLAGS%'}}\n      - type: File\n        file: {{path: {}, format: {{type: Json}}}}\n",
            log.display(),
            default_log.display()
        ),
    ));
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    assert_eq!(get(port, "a.example.com", "/api/one?x=1").await.status, 200);
    assert_eq!(get(port, "a.example.com", "/nothing").await.status, 404);
    let mut lines = Vec::new();
    eventually(Duration::from_secs(5), "two access-log lines", || {
        lines = std::fs::read_to_string(&log).unwrap_or_default().lines().map(str::to_owned).collect();
        let n = lines.len();
        async move { n >= 2 }
    })
    .await;
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["status"], 200);
    assert_eq!(first["path"], "/api/one?x=1");
    assert_eq!(first["mesh"], "default");
    assert_eq!(first["source"], "gw");
    assert_eq!(first["upstream"], format!("127.0.0.1:{}", echo.port()));
    assert_eq!(first["route"], "api");
    assert_eq!(first["flags"], "-");
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["status"], 404);
    assert_eq!(second["flags"], "NR");
    assert_eq!(second["upstream"], serde_json::Value::Null);

    // `type: Json` without fields: route, listener, upstream, duration and response flags by default.
    let mut lines = Vec::new();
    eventually(Duration::from_secs(5), "two default JSON lines", || {
        lines = std::fs::read_to_string(&default_log).unwrap_or_default().lines().map(str::to_owned).collect();
        let n = lines.len();
        async move { n >= 2 }
    })
    .await;
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["route"], "api", "{first}");
    assert_eq!(first["listener"], format!("gw:HTTP:{port}"), "{first}");
    assert_eq!(first["upstream_host"], format!("127.0.0.1:{}", echo.port()), "{first}");
    assert_eq!(first["upstream_cluster"], "echo", "{first}");
    assert_eq!(
        (&first["method"], &first["response_code"], &first["response_flags"]),
        (&"GET".into(), &200.into(), &"-".into())
    );
    assert!(first["duration_ms"].is_number(), "{first}");
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!((&second["route"], &second["response_flags"]), (&"-".into(), &"NR".into()), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_timeouts_come_from_meshtimeout_rules() {
    let echo = Backend::start("echo").await;
    let port = free_port();
    let mut config = gateway_with_routes(port, &[&echo]);
    config.push_str(&route("all", "/", "echo"));
    config.push_str(&policy(
        "MeshTimeout",
        "edge-timeouts",
        "{kind: MeshGateway, name: gw, tags: {edge: public}}",
        "  rules:\n  - default:\n      http: {requestHeadersTimeout: 2s, streamIdleTimeout: 30s}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    // A request head sent slowly: the default 500 ms would cut it; the policy's 2 s lets it through.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    s.write_all(b"Host: a.example.com\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // Past the policy's 2 s the head is refused (408) or the connection closed.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_millis(3500), "closed after {took:?}");
}

/// A gateway routing everything to service `svc`, served by each of `backends`, without the mesh's initial
/// policies (so that retries do not hide what the policy under test does).
fn one_service(port: u16, backends: &[&Backend]) -> String {
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    for b in backends {
        config.push_str(&backend_yaml(&format!("{}-1", b.name), "svc", b.port(), ""));
    }
    config.push_str("---\ntype: Mesh\nname: default\nskipCreatingInitialPolicies: ['*']\n");
    config.push_str(&route("all", "/", "svc"));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_failing_endpoint_and_lets_it_back() {
    let good = Backend::start("good").await;
    let bad = Backend::start_with("bad", Behaviour::Flaky { fail: 1, of: 1, status: 503 }).await;
    let port = free_port();
    let mut config = one_service(port, &[&good, &bad]);
    config.push_str(&policy(
        "MeshCircuitBreaker",
        "eject",
        "{kind: MeshGateway, name: gw}",
        "  to:\n  - targetRef: {kind: MeshService, name: svc}\n    default:\n      outlierDetection:\n        interval: 1s\n        baseEjectionTime: 1500ms\n        maxEjectionPercent: 50\n        detectors: {totalFailures: {consecutive: 2}}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(get(port, "a.example.com", "/").await.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 2, "two failures eject the endpoint: {statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == 200), "after the ejection only the healthy endpoint answers");
    assert!(gw.metrics().await.contains("meshgate_outlier_ejections_total{cluster="));
    // The ejection ends after the base ejection time: the endpoint gets traffic (and fails) again.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let mut back = false;
    for _ in 0..4 {
        back |= get(port, "a.example.com", "/").await.status == 503;
    }
    assert!(back, "an ejected endpoint comes back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_limits_overflow_with_503() {
    let slow = Backend::start_with("slow", Behaviour::Slow(Duration::from_millis(600))).await;
    let port = free_port();
    let mut config = one_service(port, &[&slow]);
    config.push_str(&policy(
        "MeshCircuitBreaker",
        "limits",
        "{kind: MeshGateway, name: gw}",
        "  to:\n  - targetRef: {kind: Mesh}\n    default:\n      connectionLimits: {maxConnections: 1, maxPendingRequests: 1, maxRequests: 1}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    let c = client();
    let (a, b) = tokio::join!(send(&c, "GET", port, "a.example.com", "/1", &[]), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        send(&c, "GET", port, "a.example.com", "/2", &[]).await
    });
    assert_eq!(a.status, 200);
    assert_eq!(b.status, 503, "{b:?}");
    assert_eq!(b.header("x-envoy-overloaded").as_deref(), Some("true"));
    assert_eq!(get(port, "a.example.com", "/3").await.status, 200, "the limit frees up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_remove_a_failing_endpoint_and_restore_it() {
    let up: &'static std::sync::atomic::AtomicBool = Box::leak(Box::new(std::sync::atomic::AtomicBool::new(true)));
    let steady = Backend::start("steady").await;
    let flapping = Backend::start_with("flapping", Behaviour::Health(up)).await;
    let port = free_port();
    let mut config = one_service(port, &[&steady, &flapping]);
    config.push_str(&policy(
        "MeshHealthCheck",
        "hc",
        "{kind: MeshGateway, name: gw}",
        "  to:\n  - targetRef: {kind: Mesh}\n    default:\n      interval: 200ms\n      timeout: 1s\n      unhealthyThreshold: 2\n      healthyThreshold: 1\n      http: {path: /health, expectedStatuses: [200]}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    let backends = |n: usize| async move {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..n {
            seen.insert(get(port, "a.example.com", "/").await.backend());
        }
        seen
    };
    assert_eq!(backends(6).await.len(), 2, "both endpoints serve while healthy");
    up.store(false, std::sync::atomic::Ordering::SeqCst);
    let failed = Instant::now();
    eventually(Duration::from_secs(3), "the failing endpoint leaves the rotation", || async {
        backends(4).await == std::collections::BTreeSet::from(["steady".to_owned()])
    })
    .await;
    assert!(failed.elapsed() < Duration::from_millis(1500), "removed after {:?}", failed.elapsed());
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    eventually(Duration::from_secs(3), "the endpoint returns", || async { backends(6).await.len() == 2 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_by_header_keeps_a_client_on_one_endpoint() {
    let one = Backend::start("one").await;
    let two = Backend::start("two").await;
    let port = free_port();
    let config = one_service(port, &[&one, &two]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;
    let c = client();
    let served = |user: String| {
        let c = c.clone();
        async move {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..6 {
                seen.insert(send(&c, "GET", port, "a.example.com", "/", &[("x-user", &user)]).await.backend());
            }
            seen
        }
    };
    assert_eq!(served("alice".into()).await.len(), 2, "round robin by default spreads one client");
    write_config(
        dir.path(),
        "lb.yaml",
        &policy(
            "MeshLoadBalancingStrategy",
            "sticky",
            "{kind: MeshGateway, name: gw}",
            "  to:\n  - targetRef: {kind: Mesh}\n    default:\n      loadBalancer:\n        type: RingHash\n        ringHash: {hashPolicies: [{type: Header, header: {name: x-user}}]}\n",
        ),
    );
    eventually(Duration::from_secs(5), "the strategy applies", || async {
        gw.config().await.to_string().contains("ring_hash")
    })
    .await;
    let mut used = std::collections::BTreeSet::new();
    for i in 0..20 {
        let seen = served(format!("user-{i}")).await;
        assert_eq!(seen.len(), 1, "user-{i} stays on one endpoint: {seen:?}");
        used.extend(seen);
    }
    assert_eq!(used.len(), 2, "different users spread over both endpoints");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_rate_limit_and_timeout_apply_to_gateway_routes() {
    let echo = Backend::start("echo").await;
    let slow = Backend::start_with("slow", Behaviour::Slow(Duration::from_millis(1200))).await;
    let port = free_port();
    let mut config = gateway_with_routes(port, &[&echo, &slow]);
    config.push_str(&route("fast", "/fast", "echo"));
    config.push_str(&route("slow", "/slow", "slow"));
    // Kuma's e2e: a RateLimit from the gateway's service to echo, 5 requests per 10 s, answers 429.
    config.push_str(
        "---\ntype: RateLimit\nmesh: default\nname: rl\nsources: [{match: {kuma.io/service: gw}}]\ndestinations: [{match: {kuma.io/service: echo}}]\nconf: {http: {requests: 5, interval: 10s}}\n",
    );
    config.push_str(
        "---\ntype: Timeout\nmesh: default\nname: t\nsources: [{match: {kuma.io/service: '*'}}]\ndestinations: [{match: {kuma.io/service: slow}}]\nconf: {connectTimeout: 2s, http: {requestTimeout: 0.4s}}\n",
    );
    config.push_str(
        "---\ntype: FaultInjection\nmesh: default\nname: fi\nsources: [{match: {kuma.io/service: '*'}}]\ndestinations: [{match: {kuma.io/service: '*'}}]\nconf: {abort: {httpStatus: 500, percentage: 100}}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;
    for i in 0..5 {
        assert_eq!(get(port, "a.example.com", "/fast").await.status, 200, "request {i}");
    }
    assert_eq!(get(port, "a.example.com", "/fast").await.status, 429);
    let started = Instant::now();
    assert_eq!(get(port, "a.example.com", "/slow").await.status, 504);
    assert!(started.elapsed() < Duration::from_millis(1100), "the legacy Timeout's 400 ms, not the 15 s default");
    // Legacy FaultInjection is not applied (as in Kuma), and /config says so.
    let config = gw.config().await.to_string();
    assert!(config.contains("legacy FaultInjection does not act on builtin gateways"), "{config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_request_timeout_cuts_a_slow_upload_with_408() {
    let echo = Backend::start("echo").await;
    let port = free_port();
    let mut config = gateway_with_routes(port, &[&echo]);
    config.push_str(&route("all", "/", "echo"));
    config.push_str(&policy(
        "MeshTimeout",
        "whole-request",
        "{kind: MeshGateway, name: gw}",
        "  rules:\n  - default:\n      http: {requestTimeout: 600ms, streamIdleTimeout: 5s}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 100\r\n\r\n0123456789").await.unwrap();
    let started = Instant::now();
    // Keep the body trickling (never stalled long enough for the 5 s stream idle timeout).
    let mut out = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(b"x").await.is_err() {
            break;
        }
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read_buf(&mut out)).await
            && n > 0
        {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_millis(1800), "cut after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_stream_duration_cuts_a_slow_exchange() {
    let slow = Backend::start_with("slow", Behaviour::Slow(Duration::from_millis(1500))).await;
    let port = free_port();
    let mut config = one_service(port, &[&slow]);
    config.push_str(&policy(
        "MeshTimeout",
        "short-streams",
        "{kind: MeshGateway, name: gw}",
        "  to:\n  - targetRef: {kind: Mesh}\n    default:\n      http: {maxStreamDuration: 500ms, maxConnectionDuration: 10s}\n",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;
    let started = Instant::now();
    let r = get(port, "a.example.com", "/").await;
    assert_eq!(r.status, 504, "{r:?}");
    assert!(started.elapsed() < Duration::from_millis(1300), "cut after {:?}", started.elapsed());
    let config = gw.config().await.to_string();
    assert!(
        config.contains("\"max_stream_duration_ms\":500") && config.contains("\"max_connection_duration_ms\":10000")
    );
}
