//! `meshgate explain` against the real data plane: over a corpus of configurations — every HTTP route input of
//! Kuma's gateway generator tests (`testdata/kuma-examples/gateway-testdata/inline-inputs/route-http-https`) and a
//! MeshHTTPRoute gateway — probes are derived from each compiled route table (a request meant for every entry, and
//! the same request without its headers and query), sent over real sockets, and explained by the running gateway's
//! `/explain`; the explained outcome (status, Location, backend) must be what the gateway did. Offline `explain
//! --config` must agree with the live answer.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Backend, Gateway, Reply, backend_yaml, client, free_port, send};

/// The backend services Kuma's route tests generate Dataplanes for.
const SERVICES: [&str; 14] = [
    "api-service",
    "echo-exact",
    "echo-mirror",
    "echo-prefix",
    "echo-regex",
    "echo-service",
    "exact-header-match",
    "exact-query-match",
    "exact-service",
    "prefix-service",
    "regex-header-match",
    "regex-query-match",
    "present-header-match",
    "absent-header-match",
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kuma-examples/gateway-testdata")
}

#[derive(Debug, Clone)]
struct Probe {
    method: String,
    host: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Probe {
    fn query(&self, port: u16) -> String {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        let mut q = format!("host={}&port={port}&method={}&path={}", enc(&self.host), self.method, enc(&self.path));
        for (k, v) in &self.headers {
            q.push_str(&format!("&header={}", enc(&format!("{k}:{v}"))));
        }
        q
    }
}

/// A request meant for each route entry (and the same without its headers and query), per virtual host.
fn probes(plan: &Value) -> Vec<Probe> {
    let mut out = Vec::new();
    for listener in plan["listeners"].as_array().into_iter().flatten() {
        if listener["protocol"] != "HTTP" {
            continue;
        }
        for vhost in listener["virtual_hosts"].as_array().into_iter().flatten() {
            let domain = vhost["domain"].as_str().unwrap_or("*");
            let host = if domain == "*" { "anything.test".to_owned() } else { domain.replace('*', "w") };
            out.push(Probe {
                method: "GET".into(),
                host: host.clone(),
                path: "/definitely/not/here".into(),
                headers: vec![],
            });
            for route in vhost["routes"].as_array().into_iter().flatten() {
                let path = &route["path"];
                let base = if let Some(p) = path["exact"].as_str() {
                    p.to_owned()
                } else if let Some(p) = path["prefix"].as_str() {
                    if p.ends_with('/') { format!("{p}x") } else { format!("{p}/x") }
                } else {
                    "/".to_owned()
                };
                let method = route["method"].as_str().unwrap_or("GET").to_owned();
                let mut headers = Vec::new();
                for h in route["headers"].as_array().into_iter().flatten() {
                    let name = h["name"].as_str().unwrap_or_default().to_owned();
                    match &h["kind"] {
                        Value::String(s) if s == "present" => headers.push((name, "1".to_owned())),
                        Value::Object(m) if m.contains_key("exact") => {
                            headers.push((name, m["exact"].as_str().unwrap_or_default().to_owned()));
                        }
                        _ => {}
                    }
                }
                let mut query = Vec::new();
                for q in route["query"].as_array().into_iter().flatten() {
                    let name = q["name"].as_str().unwrap_or_default();
                    match &q["kind"] {
                        Value::String(s) if s == "present" => query.push(format!("{name}=1")),
                        Value::Object(m) if m.contains_key("exact") => {
                            query.push(format!("{name}={}", m["exact"].as_str().unwrap_or_default()));
                        }
                        _ => {}
                    }
                }
                let full = if query.is_empty() { base.clone() } else { format!("{base}?{}", query.join("&")) };
                out.push(Probe { method: method.clone(), host: host.clone(), path: full, headers });
                out.push(Probe { method: "GET".into(), host: host.clone(), path: base, headers: vec![] });
            }
        }
    }
    out.push(Probe { method: "GET".into(), host: "not-served.invalid".into(), path: "/".into(), headers: vec![] });
    out
}

async fn explain_live(gw: &Gateway, probe: &Probe, port: u16) -> Value {
    let url = format!("http://{}/explain?{}", gw.admin, probe.query(port));
    let resp = client().get(&url).send().await.unwrap();
    let status = resp.status();
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert!(status.is_success(), "explain {probe:?}: {status} {body}");
    body
}

/// Asserts that the explanation predicts what the gateway did.
fn agrees(case: &str, probe: &Probe, e: &Value, real: &Reply) {
    let what = || format!("{case}: {probe:?}\nexplained: {}\ngot: {} {}", e["result"], real.status, real.body);
    match e["status"].as_u64() {
        Some(s) => {
            assert_eq!(u64::from(real.status), s, "{}", what());
            if let Some(loc) = e["action"]["location"].as_str() {
                assert_eq!(real.header("location").as_deref(), Some(loc), "{}", what());
            }
        }
        None => {
            let backends = e["action"]["backends"].as_array().cloned().unwrap_or_default();
            let outside = backends.iter().all(|b| {
                b["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|ep| !ep["address"].as_str().unwrap_or("").starts_with("127."))
            });
            if real.status == 429 && e["policies"]["effective"]["route.rateLimit"].is_string() {
                // The route's rate limit, which the explanation names, was spent by earlier probes.
                return;
            }
            if outside && (502..=504).contains(&real.status) {
                // An ExternalService on the internet: explained as forwarded, unreachable from the test machine.
                return;
            }
            assert_eq!(real.status, 200, "{}", what());
            let services: Vec<&str> = e["action"]["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["service"].as_str())
                .collect();
            assert!(services.contains(&real.backend().as_str()), "backend {}: {}", real.backend(), what());
        }
    }
}

/// The top-level `type` and `name` of a YAML document.
fn identity(doc: &str) -> (String, String) {
    let field = |key: &str| {
        doc.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
    };
    (field("type:").unwrap_or_default(), field("name:").unwrap_or_default())
}

/// The resource set as Kuma's test built it: fixtures, then the input's documents (a later document replaces an
/// earlier one of the same type and name), then one Dataplane per backend service.
fn case_config(input: &Path, gw_port: u16, backends: &[Backend]) -> String {
    let fixture = |f: &str| std::fs::read_to_string(corpus().join("testdata").join(f)).unwrap();
    let mut docs = vec![
        fixture("mesh-default.yaml"),
        fixture("dataplane-default.yaml").replace("192.168.1.1", "127.0.0.1"),
        fixture("gateway-http-default.yaml"),
    ];
    let text = std::fs::read_to_string(input).unwrap();
    for doc in text.split("\n---").map(str::trim).filter(|d| !d.is_empty()) {
        let id = identity(doc);
        docs.retain(|d| identity(d) != id);
        docs.push(doc.to_owned());
    }
    for b in backends {
        docs.push(backend_yaml(&format!("{}-0", b.name), &b.name, b.port(), "      kuma.io/protocol: http\n"));
    }
    docs.join("\n---\n").replace("port: 8080", &format!("port: {gw_port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_agrees_with_the_data_plane_over_kumas_route_corpus() {
    let mut backends = Vec::new();
    for s in SERVICES {
        backends.push(Backend::start(s).await);
    }
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(corpus().join("inline-inputs/route-http-https"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 30, "the corpus is there: {}", inputs.len());
    let c = client();
    let (mut probed, mut forwarded, mut answered) = (0, 0, 0);
    let mut skipped = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let case = input.file_name().unwrap().to_string_lossy().into_owned();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(dir.path().join("config.yaml"), case_config(input, port, &backends)).unwrap();
        // meshgate refuses what Kuma let through by accident (duplicate YAML keys): such inputs are left out.
        let valid = Command::new(env!("CARGO_BIN_EXE_meshgate")).args(["validate"]).arg(dir.path()).output().unwrap();
        if !valid.status.success() {
            skipped.push(format!("{case} (invalid: {})", String::from_utf8_lossy(&valid.stdout).trim()));
            continue;
        }
        let gw = Gateway::start(dir.path(), &[]).await;
        let config = gw.config().await;
        let Some(plan) = config["plans"]
            .as_array()
            .and_then(|plans| plans.iter().find(|p| p["dataplane"]["name"] == "default"))
            .cloned()
        else {
            panic!("{case}: no plan for the gateway Dataplane: {config}");
        };
        let serves_http =
            plan["listeners"].as_array().into_iter().flatten().any(|l| l["port"] == port && l["protocol"] == "HTTP");
        if !serves_http {
            skipped.push(case);
            continue;
        }
        for probe in probes(&plan) {
            let headers: Vec<(&str, &str)> = probe.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let real = send(&c, &probe.method, port, &probe.host, &probe.path, &headers).await;
            let e = explain_live(&gw, &probe, port).await;
            agrees(&case, &probe, &e, &real);
            probed += 1;
            if e["status"].is_null() {
                forwarded += 1
            } else {
                answered += 1
            }
            // Offline, from the same files, the answer is the same (a sample: each spawn compiles the files).
            if i % 8 == 0 && probed % 5 == 0 {
                let offline = offline_explain(dir.path(), &probe, port);
                for key in ["route", "result", "status", "routes", "virtual_hosts"] {
                    assert_eq!(offline[key], e[key], "{case}: offline and live differ on {key} for {probe:?}");
                }
            }
        }
    }
    // Inputs without an HTTP listener on the gateway's port (cross-mesh, or listeners of their own) are left out.
    assert!(skipped.len() <= 5, "left out: {skipped:?}");
    eprintln!(
        "explain corpus: {probed} probes ({forwarded} forwarded, {answered} answered by the gateway); left out: {skipped:?}"
    );
    assert!(probed > 200 && forwarded > 100 && answered > 50, "{probed} probes, {forwarded} forwarded, {answered}");
}

fn offline_explain(dir: &Path, probe: &Probe, port: u16) -> Value {
    let port = port.to_string();
    let mut args = vec![
        "explain",
        "--config",
        dir.to_str().unwrap(),
        "--host",
        &probe.host,
        "--port",
        &port,
        "--path",
        &probe.path,
        "-X",
        &probe.method,
        "-o",
        "json",
    ];
    let headers: Vec<String> = probe.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    for h in &headers {
        args.push("-H");
        args.push(h);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_meshgate")).args(&args).output().unwrap();
    assert!(out.status.success(), "explain {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_winner_the_losers_and_who_set_each_value() {
    let api = Backend::start("api").await;
    let admin = Backend::start("admin").await;
    let web = Backend::start("web").await;
    let port = free_port();
    let mut config = format!(
        "type: Dataplane\nmesh: default\nname: gw-1\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    type: BUILTIN\n    tags:\n      kuma.io/service: gw\n---\ntype: MeshGateway\nmesh: default\nname: gw\nselectors:\n- match:\n    kuma.io/service: gw\nconf:\n  listeners:\n  - port: {port}\n    protocol: HTTP\n    hostname: '*.example.com'\n    tags: {{edge: public}}\n  - port: {port}\n    protocol: HTTP\n    hostname: internal.example.com\n    tags: {{edge: internal}}\n"
    );
    for b in [&api, &admin, &web] {
        config.push_str(&backend_yaml(&format!("{}-1", b.name), &b.name, b.port(), ""));
    }
    config.push_str(
        "---
type: MeshHTTPRoute
mesh: default
name: edge
spec:
  targetRef: {kind: MeshGateway, name: gw}
  to:
  - targetRef: {kind: Mesh}
    rules:
    - matches: [{path: {type: PathPrefix, value: /api}}]
      default:
        backendRefs: [{kind: MeshService, name: api}]
    - matches: [{path: {type: PathPrefix, value: /api}, headers: [{type: Exact, name: x-user, value: admin}]}]
      default:
        backendRefs: [{kind: MeshService, name: admin}]
    - matches: [{path: {type: Exact, value: /old}}]
      default:
        filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: new.example.com, statusCode: 302}}]
    - matches: [{path: {type: PathPrefix, value: /}}]
      default:
        backendRefs: [{kind: MeshService, name: web}]
---
type: MeshTimeout
mesh: default
name: internal-timeouts
spec:
  targetRef: {kind: MeshGateway, name: gw, tags: {edge: internal}}
  to:
  - targetRef: {kind: Mesh}
    default:
      http: {requestTimeout: 7s}
",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;

    // The header condition wins over the plain prefix; the plain prefix is reported as losing on order.
    let probe = Probe {
        method: "GET".into(),
        host: "www.example.com".into(),
        path: "/api/users".into(),
        headers: vec![("x-user".into(), "admin".into())],
    };
    let e = explain_live(&gw, &probe, port).await;
    let real = send(&client(), "GET", port, "www.example.com", "/api/users", &[("x-user", "admin")]).await;
    agrees("mhr", &probe, &e, &real);
    assert_eq!(real.backend(), "admin");
    let routes = e["routes"].as_array().unwrap();
    let winner = routes.iter().find(|r| r["outcome"] == "matched").unwrap();
    assert!(winner["conditions"].as_str().unwrap().contains("header x-user"), "{winner}");
    let beaten = routes
        .iter()
        .find(|r| r["conditions"] == "path prefix /api/" && r["outcome"] == "lost")
        .unwrap_or_else(|| panic!("the plain /api prefix is a loser: {routes:?}"));
    assert!(beaten["reason"].as_str().unwrap().contains("more header conditions"), "{beaten}");
    let old = routes.iter().find(|r| r["conditions"] == "path = /old").unwrap();
    assert!(old["reason"].as_str().unwrap().contains("is not /old"), "{old}");
    assert_eq!(e["listener"]["hostname"], "*.example.com");
    assert_eq!(e["listener"]["tags"]["edge"], "public");
    assert!(e["routes"][0]["source"].as_str().unwrap().starts_with("MeshHTTPRoute/edge"), "{}", e["routes"]);

    // Without the header, the plain prefix takes it, and says why the header entry lost.
    let probe = Probe { headers: vec![], ..probe };
    let e = explain_live(&gw, &probe, port).await;
    let real = send(&client(), "GET", port, "www.example.com", "/api/users", &[]).await;
    agrees("mhr", &probe, &e, &real);
    assert_eq!(real.backend(), "api");
    let lost = e["routes"].as_array().unwrap().iter().find(|r| r["reason"].as_str().unwrap().contains("x-user"));
    assert!(lost.is_some_and(|r| r["reason"].as_str().unwrap().contains("missing")), "{}", e["routes"]);

    // The internal listener: exact hostname beats the wildcard, and its MeshTimeout sets the route timeout.
    let probe = Probe { host: "internal.example.com".into(), path: "/x".into(), ..probe };
    let e = explain_live(&gw, &probe, port).await;
    let real = send(&client(), "GET", port, "internal.example.com", "/x", &[]).await;
    agrees("mhr", &probe, &e, &real);
    assert_eq!(e["listener"]["hostname"], "internal.example.com");
    let vh: Vec<&Value> = e["virtual_hosts"].as_array().unwrap().iter().collect();
    let wildcard = vh.iter().find(|v| v["name"] == "*.example.com").unwrap();
    assert!(wildcard["reason"].as_str().unwrap().contains("more specific"), "{wildcard}");
    let timeout = e["policies"]["effective"]["route.requestTimeout"].as_str().unwrap();
    assert!(timeout.starts_with("7s") && timeout.contains("MeshTimeout/internal-timeouts"), "{timeout}");

    // A redirect is explained with its Location, exactly as the gateway sends it.
    let probe = Probe { host: "www.example.com".into(), path: "/old".into(), ..probe };
    let e = explain_live(&gw, &probe, port).await;
    let real = send(&client(), "GET", port, "www.example.com", "/old", &[]).await;
    agrees("mhr", &probe, &e, &real);
    assert_eq!(e["status"], 302);

    // The text form names the same things.
    let out = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["explain", "--config", dir.path().to_str().unwrap(), "--host", "www.example.com", "--path", "/api/x"])
        .args(["-H", "x-user: admin"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Result    forward to"), "{text}");
    assert!(text.contains("* #"), "{text}");
    // A probe the gateway cannot place is an error naming the choices.
    let out = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["explain", "--config", dir.path().to_str().unwrap(), "--host", "a.example.com", "--port", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("ports: {port}")), "{out:?}");
}
