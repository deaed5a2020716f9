//! `meshgate cp` with `apply`, `get` and `delete`, as a user runs them: SQLite that survives a restart, Kuma's
//! messages for bad resources, and two control planes sharing one PostgreSQL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{client, free_port};

/// A `meshgate cp` process.
struct ControlPlane {
    child: Child,
    api: SocketAddr,
    log: PathBuf,
}

impl ControlPlane {
    async fn start(store: &str, log: &Path) -> ControlPlane {
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
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
}
