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
            .env("RUST_LOG", "info")
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
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
            .args(["dp", "--cp", &format!("http://{cp}"), "--dataplane-file", dataplane_file.to_str().unwrap()])
            .args(["--state-dir", state_dir.to_str().unwrap(), "--admin", &admin.to_string(), "--workers", "1"])
            .args(["--drain-timeout", "1"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap())
            .spawn()
            .unwrap();
        let dp = DataPlane { child, admin, log: log.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = client().get(format!("http://{admin}/ready")).send().await
                && r.status() == 200
            {
                return dp;
            }
            assert!(Instant::now() < deadline, "dp not ready; log:\n{}", dp.log());
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
    std::fs::write(
        path("resources.yaml"),
        format!(
            "type: MeshGateway\nmesh: default\nname: gw\nselectors:\n- match:\n    kuma.io/service: gw\nconf:\n  listeners:\n  - port: {port}\n    protocol: HTTP\n{}\n{}\n---\n{}",
            crate::support::backend_yaml("a-1", "a", a.port(), ""),
            crate::support::backend_yaml("b-1", "b", b.port(), ""),
            route_to("a"),
        ),
    )
    .unwrap();
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
