//! MeshHTTPRoute and MeshTCPRoute on a MeshGateway: Kuma's mode switch (they replace MeshGatewayRoutes), hostnames,
//! matches, filters and weighted backends, through the real binary.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    Backend, Gateway, backend_yaml, client, eventually, free_port, gateway_yaml, get, send, write_config,
};

fn mesh_http_route(name: &str, to: &str) -> String {
    format!(
        "type: MeshHTTPRoute\nmesh: default\nname: {name}\nspec:\n  targetRef:\n    kind: MeshGateway\n    name: gw\n  to:\n{to}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshhttproutes_replace_meshgatewayroutes_live() {
    let legacy = Backend::start("legacy").await;
    let api = Backend::start("api").await;
    let admin = Backend::start("admin").await;
    let special = Backend::start("special").await;
    let port = free_port();
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    for b in [&legacy, &api, &admin, &special] {
        config.push_str(&backend_yaml(&format!("{}-1", b.name), &b.name, b.port(), ""));
    }
    config.push_str(
        "---\ntype: MeshGatewayRoute\nmesh: default\nname: legacy\nselectors: [{match: {kuma.io/service: gw}}]\nconf:\n  http:\n    rules:\n    - matches: [{path: {match: PREFIX, value: /}}]\n      backends: [{destination: {kuma.io/service: legacy}}]\n",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;
    assert_eq!(get(port, "example.com", "/api/x").await.backend(), "legacy");

    // Attaching a MeshHTTPRoute switches the gateway's HTTP listeners to MeshHTTPRoutes alone.
    write_config(
        dir.path(),
        "routes.yaml",
        &mesh_http_route(
            "edge",
            "  - targetRef: {kind: Mesh}
    rules:
    - matches: [{path: {type: PathPrefix, value: /api}}]
      default:
        filters:
        - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-route, value: mhr}]}}
        - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-from, value: gateway}]}}
        backendRefs: [{kind: MeshService, name: api}]
    - matches: [{path: {type: PathPrefix, value: /api}, headers: [{type: Prefix, name: x-user, value: adm}]}]
      default:
        backendRefs: [{kind: MeshService, name: admin}]
    - matches: [{path: {type: Exact, value: /old}}]
      default:
        filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: new.example.com}}]
    - matches: [{path: {type: PathPrefix, value: /v1}}]
      default:
        filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]
        backendRefs: [{kind: MeshService, name: api}]
  - targetRef: {kind: Mesh}
    hostnames: [specific.example.com]
    rules:
    - matches: [{path: {type: Exact, value: /only}}]
      default:
        backendRefs: [{kind: MeshService, name: special}]
",
        ),
    );
    eventually(Duration::from_secs(5), "the MeshHTTPRoute applies", || async {
        get(port, "example.com", "/api/x").await.backend() == "api"
    })
    .await;
    let r = get(port, "example.com", "/").await;
    assert_eq!(r.status, 404, "the MeshGatewayRoute is ignored: {r:?}");
    let r = get(port, "example.com", "/api/x").await;
    assert_eq!(r.header("x-route").as_deref(), Some("mhr"));
    assert_eq!(r.upstream_header("x-from").as_deref(), Some("gateway"));
    let c = client();
    let r = send(&c, "GET", port, "example.com", "/api/x", &[("x-user", "admin-7")]).await;
    assert_eq!(r.backend(), "admin", "a header prefix match is more specific");
    let r = send(&c, "GET", port, "example.com", "/api/x", &[("x-user", "xadm")]).await;
    assert_eq!(r.backend(), "api", "a prefix matches at the start only");
    let r = get(port, "example.com", "/old?q=1").await;
    assert_eq!(r.status, 302, "MeshHTTPRoute redirects default to 302");
    assert_eq!(r.header("location").as_deref(), Some(&*format!("https://new.example.com:{port}/old")));
    assert_eq!(get(port, "example.com", "/v1/items?a=b").await.json()["path"], "/v2/items?a=b");
    assert_eq!(get(port, "specific.example.com", "/only").await.backend(), "special");
    assert_eq!(get(port, "specific.example.com", "/api/y").await.backend(), "api", "generic rules reach it too");
    assert_eq!(get(port, "example.com", "/only").await.status, 404, "a hostname rule stays on its host");

    let config = gw.config().await.to_string();
    assert!(config.contains("ignored on MeshGateway gw"), "the ignored MeshGatewayRoute is reported: {config}");
    assert!(config.contains("\"kind\":\"MeshHTTPRoute\""), "routes name their source");

    // Removing the MeshHTTPRoute brings the MeshGatewayRoute back.
    std::fs::remove_file(dir.path().join("routes.yaml")).unwrap();
    eventually(Duration::from_secs(5), "the MeshGatewayRoute routes again", || async {
        get(port, "example.com", "/api/x").await.backend() == "legacy"
    })
    .await;
}

/// A TCP server answering every connection with `banner` and closing.
async fn banner_server(banner: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(banner.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

async fn read_banner(port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut out)).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshtcproute_routes_a_tcp_listener_and_the_most_specific_wins() {
    let a = banner_server("from-a").await;
    let b = banner_server("from-b").await;
    let port = free_port();
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: TCP\n    tags: {{listener: tcp}}\n"));
    config.push_str(&backend_yaml("a-1", "a", a, ""));
    config.push_str(&backend_yaml("b-1", "b", b, ""));
    let tcp_route = |name: &str, tags: &str, service: &str| {
        format!(
            "---\ntype: MeshTCPRoute\nmesh: default\nname: {name}\nspec:\n  targetRef: {{kind: MeshGateway, name: gw{tags}}}\n  to:\n  - targetRef: {{kind: Mesh}}\n    rules:\n    - default: {{backendRefs: [{{kind: MeshService, name: {service}}}]}}\n"
        )
    };
    config.push_str(&tcp_route("whole-gateway", "", "a"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    assert_eq!(read_banner(port).await, "from-a");
    // A route for this listener's tags has a higher priority than one for the whole gateway.
    config.push_str(&tcp_route("this-listener", ", tags: {listener: tcp}", "b"));
    write_config(dir.path(), "config.yaml", &config);
    eventually(Duration::from_secs(5), "the listener-specific MeshTCPRoute applies", || async {
        read_banner(port).await == "from-b"
    })
    .await;
}
