//! `meshgate cp` with `apply`, `get` and `delete`, as a user runs them: SQLite that survives a restart, Kuma's
//! messages for bad resources, and two control planes sharing one PostgreSQL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Backend, client, eventually, free_port};

/// A `meshgate cp` process.
struct ControlPlane {
    child: Child,
    api: SocketAddr,
    log: PathBuf,
}

impl ControlPlane {
    async fn start(store: &str, log: &Path) -> ControlPlane {
        ControlPlane::start_on(store, free_port(), log).await
    }

    async fn start_on(store: &str, port: u16, log: &Path) -> ControlPlane {
        let api: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
            .args(["cp", "--store", store, "--api", &api.to_string()])
            .args(["--admin-token-file", log.with_extension("token").to_str().unwrap(), "--plain-http"])
            .env("RUST_LOG", "info,meshgate_cp::plans=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let cp = ControlPlane { child, api, log: log.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(15);
        while client().get(cp.url("/")).send().await.is_err() {
            assert!(Instant::now() < deadline, "control plane not up; log:\n{}", cp.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cp
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a CLI command against this control plane.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_meshgate"))
            .args(args)
            .env("MESHGATE_CP", format!("http://{}", self.api))
            .output()
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = client().get(self.url(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/universal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_delete_and_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("meshgate.db").display());
    let cp = ControlPlane::start(&store, &dir.path().join("cp.log")).await;
    let examples_dir = examples();
    let examples = examples_dir.to_str().unwrap();

    // A dry run changes nothing.
    let dry = cp.cli(&["apply", "-f", examples, "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(text(&dry.stdout).contains("MeshGateway default/edge-gateway would be created"), "{}", text(&dry.stdout));
    assert_eq!(cp.get_json("/meshes/default/meshgateways").await.1["total"], 0);

    let applied = cp.cli(&["apply", "-f", examples]);
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let gateways = cp.cli(&["get", "meshgateways", "-o", "json"]);
    let list: Value = serde_json::from_slice(&gateways.stdout).unwrap();
    assert_eq!(list[0]["name"], "edge-gateway");
    let table = text(&cp.cli(&["get", "meshgatewayroutes"]).stdout);
    assert!(table.starts_with("MESH"), "{table}");
    assert!(table.contains("default   foo"), "{table}");
    let yaml = text(&cp.cli(&["get", "meshgateway", "edge-gateway", "-o", "yaml"]).stdout);
    assert!(yaml.contains("type: MeshGateway") && yaml.contains("protocol: HTTPS"), "{yaml}");
    // Secrets are listed without their values.
    let secrets = text(&cp.cli(&["get", "secrets", "-o", "json"]).stdout);
    assert!(secrets.contains("foo-example-com") && !secrets.contains("\"data\""), "{secrets}");

    // Named control planes: the CLI finds this one in its configuration file (kept private: 0600).
    let cli_config = dir.path().join("cli").join("config.yaml");
    let with_config = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_meshgate"))
            .args(args)
            .env("MESHGATE_CONFIG", &cli_config)
            .env_remove("MESHGATE_CP")
            .output()
            .unwrap()
    };
    let address = format!("http://{}", cp.api);
    assert!(
        with_config(&["config", "control-planes", "add", "--name", "test", "--address", &address]).status.success()
    );
    assert!(
        text(&with_config(&["config", "control-planes", "list"]).stdout)
            .contains(&format!("*        test   {address}"))
    );
    assert!(text(&with_config(&["get", "meshgateways"]).stdout).contains("edge-gateway"));
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&cli_config).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // A second apply of the same files writes nothing new.
    let before = cp.get_json("/meshes/default/meshgateways/edge-gateway").await.1["modificationTime"].clone();
    assert!(cp.cli(&["apply", "-f", examples]).status.success());
    assert_eq!(cp.get_json("/meshes/default/meshgateways/edge-gateway").await.1["modificationTime"], before);

    // An invalid resource: refused with Kuma's message, exit 1, nothing stored.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "type: MeshGateway\nmesh: default\nname: broken\nselectors: []\nconf:\n  listeners:\n  - port: 8080\n    protocol: HTTP\n",
    )
    .unwrap();
    let refused = cp.cli(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("selectors: must have at least one element"), "{}", text(&refused.stderr));
    assert_eq!(cp.get_json("/meshes/default/meshgateways/broken").await.0, 404);

    // Standard input works as a file.
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["apply", "-f", "-"])
        .env("MESHGATE_CP", format!("http://{}", cp.api))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let route = "type: MeshGatewayRoute\nmesh: default\nname: piped\nselectors:\n- match:\n    kuma.io/service: edge-gateway\nconf:\n  http:\n    rules:\n    - matches: [{path: {match: PREFIX, value: /piped}}]\n      backends: [{destination: {kuma.io/service: foo}}]\n";
        child.stdin.take().unwrap().write_all(route.as_bytes()).unwrap();
    }
    let piped = child.wait_with_output().unwrap();
    assert!(text(&piped.stdout).contains("MeshGatewayRoute default/piped created"), "{}", text(&piped.stdout));
    assert!(cp.cli(&["delete", "meshgatewayroute", "piped"]).status.success());

    // Delete, then the restart keeps what was stored.
    let deleted = cp.cli(&["delete", "meshgatewayroute", "bar"]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert!(!cp.cli(&["delete", "meshgatewayroute", "bar"]).status.success());
    drop(cp);
    let cp = ControlPlane::start(&store, &dir.path().join("cp2.log")).await;
    assert_eq!(cp.get_json("/meshes/default/meshgateways/edge-gateway").await.0, 200);
    assert_eq!(cp.get_json("/meshes/default/meshgatewayroutes/bar").await.0, 404);
    assert_eq!(cp.get_json("/meshes/default/meshgatewayroutes").await.1["total"], 1);
    // The log says what was written, never a secret's value.
    let log = cp.log() + &std::fs::read_to_string(dir.path().join("cp.log")).unwrap();
    assert!(log.contains("resource written resource=MeshGateway default/edge-gateway"), "{log}");
    let secret_file = std::fs::read_to_string(examples_dir.join("secret.yaml")).unwrap();
    let data = secret_file.lines().find_map(|l| l.trim().strip_prefix("data: ")).expect("the example Secret's data");
    assert!(!log.contains(data.trim()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_share_one_postgresql() {
    let url = match std::env::var("MESHGATE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("CI").is_some() => panic!("CI runs this test: set MESHGATE_TEST_POSTGRES"),
        _ => return eprintln!("MESHGATE_TEST_POSTGRES unset: skipped"),
    };
    let dir = tempfile::tempdir().unwrap();
    let (a_log, b_log) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let (a, b) = tokio::join!(ControlPlane::start(&url, &a_log), ControlPlane::start(&url, &b_log));
    let name = format!("shared-{}", std::process::id());
    let file = dir.path().join("gw.yaml");
    std::fs::write(
        &file,
        format!(
            "type: MeshGateway\nmesh: default\nname: {name}\nselectors:\n- match:\n    kuma.io/service: {name}\nconf:\n  listeners:\n  - port: 8080\n    protocol: HTTP\n"
        ),
    )
    .unwrap();
    let applied = a.cli(&["apply", "-f", file.to_str().unwrap()]);
    assert!(applied.status.success(), "{}\n{}", text(&applied.stderr), a.log());
    let (status, gw) = b.get_json(&format!("/meshes/default/meshgateways/{name}")).await;
    assert_eq!(status, 200, "{gw}");
    assert_eq!(gw["conf"]["listeners"][0]["port"], 8080);
    assert!(b.cli(&["delete", "meshgateway", &name]).status.success());
    assert_eq!(a.get_json(&format!("/meshes/default/meshgateways/{name}")).await.0, 404);

    // A gateway connected to replica B gets, within a second, a change written through replica A.
    let (x, y) = (Backend::start("x").await, Backend::start("y").await);
    let port = free_port();
    let route = |service: &str| {
        format!(
            "type: MeshGatewayRoute\nmesh: default\nname: {name}\nselectors:\n- match:\n    kuma.io/service: {name}\nconf:\n  http:\n    rules:\n    - matches: [{{path: {{match: PREFIX, value: /}}}}]\n      backends: [{{destination: {{kuma.io/service: {name}-{service}}}}}]\n"
        )
    };
    std::fs::write(
        &file,
        format!(
            "type: MeshGateway\nmesh: default\nname: {name}\nselectors:\n- match:\n    kuma.io/service: {name}\nconf:\n  listeners:\n  - port: {port}\n    protocol: HTTP\n{}\n{}\n---\n{}",
            crate::support::backend_yaml(&format!("{name}-x-1"), &format!("{name}-x"), x.port(), ""),
            crate::support::backend_yaml(&format!("{name}-y-1"), &format!("{name}-y"), y.port(), ""),
            route("x"),
        ),
    )
    .unwrap();
    assert!(a.cli(&["apply", "-f", file.to_str().unwrap()]).status.success());
    let dp_file = dir.path().join("dp.yaml");
    std::fs::write(
        &dp_file,
        format!("type: Dataplane\nmesh: default\nname: {name}-gw\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    type: BUILTIN\n    tags:\n      kuma.io/service: {name}\n"),
    )
    .unwrap();
    let _dp = DataPlane::start(b.api, &dp_file, &dir.path().join("state"), &dir.path().join("dp.log")).await;
    eventually(Duration::from_secs(10), "traffic through the gateway", || async {
        backend_at("127.0.0.1", port).await == "x"
    })
    .await;
    let route_file = dir.path().join("route.yaml");
    std::fs::write(&route_file, route("y")).unwrap();
    assert!(a.cli(&["apply", "-f", route_file.to_str().unwrap()]).status.success());
    eventually(Duration::from_secs(1), "replica A's change on replica B's gateway", || async {
        backend_at("127.0.0.1", port).await == "y"
    })
    .await;
}

/// A `meshgate dp` process.
struct DataPlane {
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

impl DataPlane {
    async fn start(cp: SocketAddr, dataplane_file: &Path, state_dir: &Path, log: &Path) -> DataPlane {
        let dp = DataPlane::spawn(cp, dataplane_file, state_dir, log, &[]);
        dp.wait_ready().await;
        dp
    }

    fn spawn(cp: SocketAddr, dataplane_file: &Path, state_dir: &Path, log: &Path, extra: &[&str]) -> DataPlane {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
            .args(["dp", "--cp", &format!("http://{cp}"), "--dataplane-file", dataplane_file.to_str().unwrap()])
            .args(extra)
            .args(["--state-dir", state_dir.to_str().unwrap(), "--admin", &admin.to_string(), "--workers", "1"])
            .args(["--drain-timeout", "1"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap())
            .spawn()
            .unwrap();
        DataPlane { child, admin, log: log.to_path_buf() }
    }

    async fn ready(&self) -> bool {
        client().get(format!("http://{}/ready", self.admin)).send().await.is_ok_and(|r| r.status() == 200)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.ready().await {
            assert!(Instant::now() < deadline, "dp not ready; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which backend answers `/` on a gateway address (empty when none does).
async fn backend_at(ip: &str, port: u16) -> String {
    match client().get(format!("http://{ip}:{port}/")).header("host", "shop.example.com").send().await {
        Ok(r) if r.status() == 200 => {
            let v: Value = serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
            v["backend"].as_str().unwrap_or_default().to_owned()
        }
        _ => String::new(),
    }
}

/// A MeshGateway `gw` with one HTTP listener on `port`, the backend Dataplanes (service, port), and the route to `a`.
fn gateway_resources(port: u16, backends: &[(&str, u16)]) -> String {
    let mut out = format!(
        "type: MeshGateway\nmesh: default\nname: gw\nselectors:\n- match:\n    kuma.io/service: gw\nconf:\n  listeners:\n  - port: {port}\n    protocol: HTTP\n"
    );
    for (service, backend_port) in backends {
        out.push_str(&crate::support::backend_yaml(&format!("{service}-1"), service, *backend_port, ""));
        out.push('\n');
    }
    out.push_str("---\n");
    out.push_str(&route_to("a"));
    out
}

fn route_to(service: &str) -> String {
    format!(
        "type: MeshGatewayRoute\nmesh: default\nname: shop\nselectors:\n- match:\n    kuma.io/service: gw\nconf:\n  http:\n    rules:\n    - matches: [{{path: {{match: PREFIX, value: /}}}}]\n      backends: [{{destination: {{kuma.io/service: {service}}}}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_follow_the_control_plane_and_outlive_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let store = format!("sqlite:{}", path("meshgate.db").display());
    let cp_port = free_port();
    let cp = ControlPlane::start_on(&store, cp_port, &path("cp.log")).await;
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port();
    std::fs::write(path("resources.yaml"), gateway_resources(port, &[("a", a.port()), ("b", b.port())])).unwrap();
    let applied = cp.cli(&["apply", "-f", path("resources.yaml").to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    for (name, ip) in [("gw-1", "127.0.0.1"), ("gw-2", "127.0.0.2")] {
        std::fs::write(
            path(&format!("{name}.yaml")),
            format!("type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {ip}\n  gateway:\n    type: BUILTIN\n    tags:\n      kuma.io/service: gw\n"),
        )
        .unwrap();
    }
    let dp1 = DataPlane::start(cp.api, &path("gw-1.yaml"), &path("state-1"), &path("dp-1.log")).await;
    let mut dp2 = DataPlane::start(cp.api, &path("gw-2.yaml"), &path("state-2"), &path("dp-2.log")).await;
    for ip in ["127.0.0.1", "127.0.0.2"] {
        eventually(Duration::from_secs(10), "traffic through both gateways", || async move {
            backend_at(ip, port).await == "a"
        })
        .await;
    }
    // Both Dataplanes were registered, and the control plane knows which plan each runs.
    assert_eq!(cp.get_json("/meshes/default/dataplanes/gw-2").await.0, 200);
    let status = cp.get_json("/meshgate/v1/gateways").await.1;
    let gateways = status.as_array().unwrap();
    assert_eq!(gateways.len(), 2, "{status}");
    for g in gateways {
        assert_eq!(g["connected"], 1, "{status}");
        assert_eq!(g["ackedVersion"], g["planVersion"], "{status}");
    }

    // A route change reaches both gateways within a second.
    std::fs::write(path("route.yaml"), route_to("b")).unwrap();
    assert!(cp.cli(&["apply", "-f", path("route.yaml").to_str().unwrap()]).status.success());
    let changed = Instant::now();
    for ip in ["127.0.0.1", "127.0.0.2"] {
        eventually(Duration::from_secs(1), "the change on both gateways", || async move {
            backend_at(ip, port).await == "b"
        })
        .await;
    }
    assert!(changed.elapsed() < Duration::from_secs(1));
    // inspect: the bound Dataplanes, their listeners and routes, and the plan version each runs.
    eventually(Duration::from_secs(5), "both gateways acknowledge the new plan", || async {
        let out = text(&cp.cli(&["inspect", "meshgateway", "gw"]).stdout);
        out.contains("Dataplane default/gw-1: runs plan") && out.contains("Dataplane default/gw-2: runs plan")
    })
    .await;
    let inspected = text(&cp.cli(&["inspect", "meshgateway", "gw"]).stdout);
    assert!(inspected.contains(&format!(":{port}")) && inspected.contains("(1 connected)"), "{inspected}");
    // explain through the control plane: the route to b, for the Dataplane asked about.
    let explained =
        cp.cli(&["explain", "--gateway", "gw", "--dataplane", "gw-2", "--host", "x", "--path", "/p", "-o", "json"]);
    assert!(explained.status.success(), "{}", text(&explained.stderr));
    let e: Value = serde_json::from_slice(&explained.stdout).unwrap();
    assert_eq!(e["dataplane"], "default/gw-2", "{e}");
    assert_eq!(e["action"]["backends"][0]["service"], "b", "{e}");

    // The control plane goes away: traffic goes on, and a gateway restarted meanwhile serves its kept plan.
    drop(cp);
    assert_eq!(backend_at("127.0.0.1", port).await, "b");
    drop(dp2);
    dp2 = DataPlane::start(
        format!("127.0.0.1:{cp_port}").parse().unwrap(),
        &path("gw-2.yaml"),
        &path("state-2"),
        &path("dp-2.log"),
    )
    .await;
    assert_eq!(backend_at("127.0.0.2", port).await, "b", "{}", dp2.log());
    assert!(dp2.log().contains("serving the plan kept from the last run"), "{}", dp2.log());
    let config: Value = serde_json::from_str(
        &client().get(format!("http://{}/config", dp2.admin)).send().await.unwrap().text().await.unwrap(),
    )
    .unwrap();
    assert_eq!(config["plans"][0]["dataplane"]["name"], "gw-2");

    // The control plane comes back (same store, same address): the next change reaches both.
    let cp = ControlPlane::start_on(&store, cp_port, &path("cp-2.log")).await;
    assert!(cp.cli(&["apply", "-f", path("resources.yaml").to_str().unwrap()]).status.success());
    for ip in ["127.0.0.1", "127.0.0.2"] {
        eventually(Duration::from_secs(20), "the change after the control plane's return", || async move {
            backend_at(ip, port).await == "a"
        })
        .await;
    }
    assert!(dp1.log().contains("control plane unreachable"), "{}", dp1.log());
}

/// A client whose connections come from 127.0.0.2 (a source that is not the control plane's own address).
fn remote_client() -> reqwest::Client {
    client();
    reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The payload of a JWT.
fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_authenticated_with_roles() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("meshgate.db").display());
    let log = dir.path().join("cp.log");
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let token_file = dir.path().join("admin-token");
    let child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["cp", "--store", &store, "--api", &api.to_string(), "--localhost-is-admin=false"])
        .args(["--admin-token-file", token_file.to_str().unwrap(), "--plain-http"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let cp = ControlPlane { child, api, log: log.clone() };
    let http = remote_client();
    let url = |path: &str| format!("http://{api}{path}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while http.get(url("/")).send().await.is_err() {
        assert!(Instant::now() < deadline, "control plane not up; log:\n{}", cp.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The bootstrap admin token: in a file only this user can read; its path is logged, the token is not.
    let admin = std::fs::read_to_string(&token_file).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(cp.log().contains(token_file.to_str().unwrap()));

    let send = |method: &str, path: &str, token: Option<&str>, body: Option<&str>| {
        let mut req = http.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b.to_owned());
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
    };
    let gateway = "type: MeshGateway\nmesh: default\nname: edge\nselectors:\n- match:\n    kuma.io/service: edge\nconf:\n  listeners:\n  - port: 8080\n    protocol: HTTP\n";
    let secret = "type: Secret\nmesh: default\nname: key\ndata: c3VwZXJzZWNyZXQ=\n";

    // No token: the index answers, nothing else does.
    assert_eq!(send("GET", "/", None, None).await.0, 200);
    let (status, body) = send("PUT", "/meshes/default/meshgateways/edge", None, Some(gateway)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("authentication required"), "{body}");
    assert_eq!(send("GET", "/meshes/default/meshgateways", None, None).await.0, 401);

    // Tokens for each role, issued through the CLI as the admin.
    let issue = |name: &str, group: &str, valid_for: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_meshgate"))
            .args(["generate", "user-token", "--name", name, "--group", group, "--valid-for", valid_for])
            .args(["--cp", &format!("http://{api}"), "--token", admin.trim()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let viewer = issue("vera", "mesh-system:viewer", "1h");
    let editor = issue("eddie", "mesh-system:editor", "1h");
    assert_eq!(claims(&viewer)["groups"][0], "mesh-system:viewer");
    assert_eq!(claims(&viewer)["exp"].as_u64().unwrap() - claims(&viewer)["iat"].as_u64().unwrap(), 3600);

    // Roles: the viewer reads, never writes; the editor writes, never touches Secrets; the admin does everything.
    let (status, body) = send("PUT", "/meshes/default/meshgateways/edge", Some(&viewer), Some(gateway)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Access Denied") && body.contains("may not change resources"), "{body}");
    assert_eq!(send("PUT", "/meshes/default/meshgateways/edge", Some(&editor), Some(gateway)).await.0, 201);
    assert_eq!(send("GET", "/meshes/default/meshgateways/edge", Some(&viewer), None).await.0, 200);
    assert_eq!(send("PUT", "/meshes/default/secrets/key", Some(&editor), Some(secret)).await.0, 403);
    assert_eq!(send("PUT", "/meshes/default/secrets/key", Some(admin.trim()), Some(secret)).await.0, 201);
    let (status, body) = send("GET", "/meshes/default/secrets/key", Some(&editor), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("c3VwZXJzZWNyZXQ="));
    assert_eq!(send("GET", "/meshes/default/secrets", Some(&viewer), None).await.0, 403);
    let (status, body) = send("GET", "/meshes/default/secrets/key", Some(admin.trim()), None).await;
    assert_eq!((status, body.contains("c3VwZXJzZWNyZXQ=")), (200, true));
    // Only the admin issues tokens.
    assert_eq!(
        send(
            "POST",
            "/tokens/user",
            Some(&editor),
            Some(r#"{"name":"x","groups":["mesh-system:admin"],"validFor":"1h"}"#)
        )
        .await
        .0,
        403
    );

    // Refused tokens: expired, signed by a key the control plane does not know, revoked, `alg: none`, HS256.
    let short = issue("brief", "mesh-system:admin", "1s");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = send("GET", "/meshes", Some(&short), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("ExpiredSignature"), "{body}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let forged_claims = serde_json::json!({"name": "mallory", "groups": ["mesh-system:admin"], "iat": now, "nbf": now, "exp": now + 3600, "jti": "f00"});
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let foreign = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
    for kid in ["1", "77"] {
        let header = jsonwebtoken::Header {
            kid: Some(kid.to_owned()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA)
        };
        let forged = jsonwebtoken::encode(&header, &forged_claims, &foreign).unwrap();
        assert_eq!(send("GET", "/meshes", Some(&forged), None).await.0, 401, "kid {kid}");
    }
    let none =
        format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT","kid":"1"}"#), b64(forged_claims.to_string().as_bytes()));
    let (status, body) = send("GET", "/meshes", Some(&none), None).await;
    assert_eq!(status, 401, "{body}");
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("1".to_owned()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &forged_claims,
        &jsonwebtoken::EncodingKey::from_secret(b"the public key, used as an HMAC secret"),
    )
    .unwrap();
    let (status, body) = send("GET", "/meshes", Some(&hs), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not accepted"), "{body}");
    let doomed = issue("temp", "mesh-system:admin", "1h");
    assert_eq!(send("GET", "/meshes", Some(&doomed), None).await.0, 200);
    let jti = claims(&doomed)["jti"].as_str().unwrap().to_owned();
    let revoke = format!(r#"{{"jti":"{jti}"}}"#);
    assert_eq!(send("POST", "/tokens/revoke", Some(admin.trim()), Some(&revoke)).await.0, 200);
    let (status, body) = send("GET", "/meshes", Some(&doomed), None).await;
    assert_eq!((status, body.contains("revoked")), (401, true), "{body}");

    // Key rotation: tokens of the old key keep working until it is deleted.
    let (status, body) = send("POST", "/tokens/signing-keys/rotate", Some(admin.trim()), None).await;
    assert_eq!(status, 200, "{body}");
    let admin2 = issue("admin2", "mesh-system:admin", "1h");
    assert_eq!(send("GET", "/meshes", Some(&viewer), None).await.0, 200);
    assert_eq!(send("DELETE", "/tokens/signing-keys/1", Some(&admin2), None).await.0, 200);
    assert_eq!(send("GET", "/meshes", Some(&viewer), None).await.0, 401);
    assert_eq!(send("GET", "/meshes", Some(&admin2), None).await.0, 200);

    // A source that keeps failing is turned away for a while.
    let mut last = 0;
    for _ in 0..12 {
        last = send("GET", "/meshes", Some("not-a-token"), None).await.0;
        if last == 429 {
            break;
        }
    }
    assert_eq!(last, 429);

    // No log line holds a complete token or the Secret's value.
    let log = cp.log();
    for t in [&admin.trim().to_owned(), &viewer, &editor, &doomed, &admin2] {
        assert!(!log.contains(t.as_str()), "a token in the log");
    }
    assert!(!log.contains("c3VwZXJzZWNyZXQ=") && !log.contains("supersecret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_prove_which_dataplane_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let store = format!("sqlite:{}", path("meshgate.db").display());
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let token_file = path("admin-token");
    let child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["cp", "--store", &store, "--api", &api.to_string(), "--localhost-is-admin=false"])
        .args(["--admin-token-file", token_file.to_str().unwrap(), "--plain-http"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(path("cp.log")).unwrap())
        .spawn()
        .unwrap();
    let cp = ControlPlane { child, api, log: path("cp.log") };
    let deadline = Instant::now() + Duration::from_secs(15);
    while client().get(cp.url("/")).send().await.is_err() {
        assert!(Instant::now() < deadline, "control plane not up; log:\n{}", cp.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
    let as_admin = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_meshgate"))
            .args(args)
            .args(["--cp", &format!("http://{api}"), "--token", &admin])
            .output()
            .unwrap()
    };
    let backend = Backend::start("a").await;
    let port = free_port();
    std::fs::write(path("resources.yaml"), gateway_resources(port, &[("a", backend.port())])).unwrap();
    let applied = as_admin(&["apply", "-f", path("resources.yaml").to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let token = |mesh: &str, name: &str, file: &str| {
        let out =
            as_admin(&["generate", "dataplane-token", "--mesh", mesh, "--name", name, "--tag", "kuma.io/service=gw"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::write(path(file), &out.stdout).unwrap();
        text(&out.stdout).trim().to_owned()
    };
    let good = token("default", "gw-1", "gw-1.token");
    token("other", "gw-2", "wrong-mesh.token");
    for (name, ip) in [("gw-1", "127.0.0.1"), ("gw-2", "127.0.0.2")] {
        std::fs::write(
            path(&format!("{name}.yaml")),
            format!("type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {ip}\n  gateway:\n    type: BUILTIN\n    tags:\n      kuma.io/service: gw\n"),
        )
        .unwrap();
    }

    // Its own token: registered, served, acknowledged — with loopback no longer admin.
    let token_arg = path("gw-1.token");
    let dp1 = DataPlane::spawn(
        api,
        &path("gw-1.yaml"),
        &path("state-1"),
        &path("dp-1.log"),
        &["--token-file", token_arg.to_str().unwrap()],
    );
    dp1.wait_ready().await;
    eventually(Duration::from_secs(10), "traffic through the gateway", || async {
        backend_at("127.0.0.1", port).await == "a"
    })
    .await;

    // A token for a Dataplane in another mesh: the registration is refused and no plan is ever sent.
    let wrong = path("wrong-mesh.token");
    let dp2 = DataPlane::spawn(
        api,
        &path("gw-2.yaml"),
        &path("state-2"),
        &path("dp-2.log"),
        &["--token-file", wrong.to_str().unwrap()],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!dp2.ready().await, "a gateway with another mesh's token got a plan; log:\n{}", dp2.log());
    assert!(dp2.log().contains("403"), "{}", dp2.log());
    assert!(!path("state-2").join("plan.json").exists());
    assert!(cp.log().contains("gateway request refused"), "{}", cp.log());

    // The good token reaches nothing but its own Dataplane and plan.
    let with_token = |p: &str| client().get(cp.url(p)).bearer_auth(&good).send();
    assert_eq!(with_token("/meshgate/v1/plans/default/gw-1").await.unwrap().status(), 200);
    for other in [
        "/meshgate/v1/plans/default/gw-2",
        "/meshes/default/secrets",
        "/meshes/default/meshgateways",
        "/meshgate/v1/gateways",
    ] {
        assert_eq!(with_token(other).await.unwrap().status(), 403, "{other}");
    }
    // Without any token, loopback is not enough.
    assert_eq!(client().get(cp.url("/meshgate/v1/plans/default/gw-1")).send().await.unwrap().status(), 401);
    assert!(!cp.log().contains(&good) && !dp1.log().contains(&good));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_https_and_clients_check_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    // Plain HTTP is refused off loopback.
    let refused = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["cp", "--store", "memory:", "--api", "0.0.0.0:0", "--plain-http"])
        .args(["--admin-token-file", path("t0").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("only allowed on a loopback address"), "{}", text(&refused.stderr));

    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["cp", "--store", &format!("sqlite:{}", path("db").display()), "--api", &api.to_string()])
        .args(["--admin-token-file", path("admin-token").to_str().unwrap(), "--tls-dir", path("tls").to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(path("cp.log")).unwrap())
        .spawn()
        .unwrap();
    let cp = ControlPlane { child, api, log: path("cp.log") };
    let ca = path("tls").join("ca.pem");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ca.exists() || std::net::TcpStream::connect(api).is_err() {
        assert!(Instant::now() < deadline, "control plane not up; log:\n{}", cp.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path("tls").join("key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A certificate that did not come from this CA, to play the wrong CA.
    let wrong = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["generate", "tls-certificate", "--type=server", "--hostname=localhost", "--key-type=ecdsa"])
        .args([
            "--key-file",
            path("wrong-key.pem").to_str().unwrap(),
            "--cert-file",
            path("wrong-ca.pem").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(wrong.status.success());
    let https = format!("https://{api}");
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_meshgate")).args(args).env_remove("MESHGATE_CP").output().unwrap()
    };
    // The right CA: the CLI works (loopback is admin by default).
    let ok = cli(&["get", "meshes", "--cp", &https, "--ca-cert", ca.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("default"));
    // The wrong CA, or none: refused before anything is sent.
    let bad = cli(&["get", "meshes", "--cp", &https, "--ca-cert", path("wrong-ca.pem").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    let none = cli(&["get", "meshes", "--cp", &https]);
    assert!(text(&none.stderr).contains("--ca-cert"), "{}", text(&none.stderr));
    // Plain HTTP to the HTTPS port gets nothing.
    assert!(client().get(format!("http://{api}/meshes")).send().await.map_or(true, |r| !r.status().is_success()));

    // Gateways: the wrong CA never connects (and gets no plan); the right one does.
    let port = free_port();
    let backend = Backend::start("a").await;
    std::fs::write(path("resources.yaml"), gateway_resources(port, &[("a", backend.port())])).unwrap();
    let applied = cli(&[
        "apply",
        "-f",
        path("resources.yaml").to_str().unwrap(),
        "--cp",
        &https,
        "--ca-cert",
        ca.to_str().unwrap(),
    ]);
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    std::fs::write(
        path("gw-1.yaml"),
        "type: Dataplane\nmesh: default\nname: gw-1\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    type: BUILTIN\n    tags:\n      kuma.io/service: gw\n",
    )
    .unwrap();
    let spawn = |ca: &Path, state: &str, log: &str| {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
            .args([
                "dp",
                "--cp",
                &https,
                "--ca-cert",
                ca.to_str().unwrap(),
                "--dataplane-file",
                path("gw-1.yaml").to_str().unwrap(),
            ])
            .args(["--state-dir", path(state).to_str().unwrap(), "--admin", &admin.to_string(), "--workers", "1"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path(log)).unwrap())
            .spawn()
            .unwrap();
        DataPlane { child, admin, log: path(log) }
    };
    let wrong_dp = spawn(&path("wrong-ca.pem"), "state-wrong", "dp-wrong.log");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!wrong_dp.ready().await, "{}", wrong_dp.log());
    assert!(wrong_dp.log().contains("control plane unreachable"), "{}", wrong_dp.log());
    assert!(!path("state-wrong").join("plan.json").exists());
    drop(wrong_dp);
    let dp = spawn(&ca, "state", "dp.log");
    dp.wait_ready().await;
    eventually(Duration::from_secs(10), "traffic through the gateway", || async {
        backend_at("127.0.0.1", port).await == "a"
    })
    .await;
}

/// The scale test of the control plane (not in CI's default run):
/// `cargo test --release -p meshgate --test e2e scale -- --ignored --nocapture`.
/// 1,000 gateway Dataplanes each hold a plan stream; one route change must reach all of them, and the time until the
/// last one acknowledges it is reported with the control plane's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale test: run by hand with --ignored --nocapture (see bench/README.md)"]
async fn scale_one_change_reaches_1000_gateway_streams() {
    const GATEWAYS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let store = format!("sqlite:{}", path("meshgate.db").display());
    let cp = ControlPlane::start(&store, &path("cp.log")).await;
    let port = free_port();
    let mut resources = gateway_resources(port, &[("a", 10001), ("b", 10002)]);
    for i in 0..GATEWAYS {
        resources.push_str(&format!(
            "\n---\ntype: Dataplane\nmesh: default\nname: gw-{i}\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    type: BUILTIN\n    tags:\n      kuma.io/service: gw\n"
        ));
    }
    std::fs::write(path("resources.yaml"), resources).unwrap();
    let started = Instant::now();
    let applied = cp.cli(&["apply", "-f", path("resources.yaml").to_str().unwrap()]);
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    eprintln!("applied {} resources in {:?}", GATEWAYS + 4, started.elapsed());

    // One stream per gateway: the first line is the current plan; every later line is acknowledged.
    let http = reqwest::Client::builder().pool_max_idle_per_host(GATEWAYS * 2).build().unwrap();
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    for i in 0..GATEWAYS {
        let (http, base, first_tx, acked_tx) = (http.clone(), cp.url(""), first_tx.clone(), acked_tx.clone());
        tokio::spawn(async move {
            let stream = format!("{base}/meshgate/v1/plans/default/gw-{i}");
            let mut resp = http.get(&stream).send().await.unwrap();
            let mut buf = Vec::new();
            let mut first = true;
            // The stream ends when the control plane stops at the end of the test.
            while let Ok(Some(chunk)) = resp.chunk().await {
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    let Ok(message) = serde_json::from_slice::<Value>(&line) else { continue };
                    let version = message["version"].as_str().unwrap().to_owned();
                    let ack = http
                        .post(format!("{stream}/ack"))
                        .header("content-type", "application/json")
                        .body(serde_json::json!({ "version": version }).to_string())
                        .send()
                        .await;
                    if !ack.is_ok_and(|a| a.status().is_success()) {
                        return;
                    }
                    if first {
                        first = false;
                        let _ = first_tx.send(version);
                    } else {
                        let _ = acked_tx.send((version, Instant::now()));
                    }
                }
            }
        });
    }
    let connect = Instant::now();
    let mut initial = std::collections::BTreeSet::new();
    for _ in 0..GATEWAYS {
        initial.insert(first_rx.recv().await.unwrap());
    }
    eprintln!("{GATEWAYS} streams received their first plan in {:?}", connect.elapsed());

    std::fs::write(path("route.yaml"), route_to("b")).unwrap();
    let change = Instant::now();
    assert!(cp.cli(&["apply", "-f", path("route.yaml").to_str().unwrap()]).status.success());
    let mut last = change;
    for _ in 0..GATEWAYS {
        let (version, at) = tokio::time::timeout(Duration::from_secs(60), acked_rx.recv()).await.unwrap().unwrap();
        assert!(!initial.contains(&version), "a new plan");
        last = last.max(at);
    }
    let took = last - change;
    let status = std::fs::read_to_string(format!("/proc/{}/status", cp.child.id())).unwrap();
    let memory: Vec<&str> = status.lines().filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM")).collect();
    eprintln!("one change: the last of {GATEWAYS} gateways acknowledged it {took:?} after `meshgate apply` started");
    eprintln!("control plane memory: {}", memory.join(", ").split_whitespace().collect::<Vec<_>>().join(" "));
    let log = cp.log();
    let rebuilds: Vec<&str> = log.lines().filter(|l| l.contains("plans rebuilt")).collect();
    eprintln!("last rebuild: {}", rebuilds.last().unwrap_or(&""));
    assert!(took < Duration::from_secs(2), "target: the last acknowledgement within 2 s, took {took:?}");
}
