//! The dashboard in a real browser: headless Chromium loads `/ui` from a running gateway and from a control plane,
//! runs its JavaScript, and the rendered page is checked — gateways, listeners, routes and endpoint health appear,
//! request counts move when traffic flows, rejected files show their reason, and the "explain a request" form
//! answers. Screenshots are written under `target/ui-screenshots/` and their paths printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{Backend, Gateway, backend_yaml, eventually, free_port, gateway_yaml, get, write_config};

/// The browser: `MESHGATE_TEST_CHROMIUM` (set by `.ci/run`, which installs Debian's chromium), else
/// `/usr/bin/chromium` when present; without one the tests are skipped outside CI and fail in it.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MESHGATE_TEST_CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(path.exists(), "MESHGATE_TEST_CHROMIUM={} does not exist", path.display());
        return Some(path);
    }
    let default = PathBuf::from("/usr/bin/chromium");
    if default.exists() {
        return Some(default);
    }
    assert!(std::env::var_os("CI").is_none(), "CI runs the browser tests: install chromium (.ci/run does)");
    eprintln!("no chromium: dashboard browser tests skipped");
    None
}

fn browser_args(profile: &Path) -> Vec<String> {
    [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--virtual-time-budget=6000",
        "--window-size=1360,1100",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// The page's DOM after its scripts ran.
fn dom(browser: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser).args(browser_args(profile.path())).args(["--dump-dom", url]).output().unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(browser: &Path, url: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args(browser_args(profile.path()))
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "a screenshot with something on it: {} bytes", size);
    eprintln!("screenshot: {}", file.display());
    file
}

/// The number in the `data-total` cell of a route's row.
fn total(dom: &str, route: &str) -> Option<u64> {
    let row = dom.split("<tr").find(|r| r.contains(&format!("data-route=\"{route}\"")))?;
    let at = row.find("data-total=\"")? + "data-total=\"".len();
    row[at..].split('"').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_dashboard_shows_routes_traffic_rejections_and_explains() {
    let Some(browser) = chromium() else { return };
    let shop = Backend::start("shop").await;
    let port = free_port();
    let mut config = gateway_yaml(&format!(
        "  - port: {port}\n    protocol: HTTP\n    hostname: shop.example.com\n    tags: {{edge: public}}\n"
    ));
    config.push_str(&backend_yaml("shop-1", "shop", shop.port(), ""));
    config.push_str(
        "---\ntype: MeshGatewayRoute\nmesh: default\nname: shop-route\nselectors: [{match: {kuma.io/service: gw}}]\nconf:\n  http:\n    rules:\n    - matches: [{path: {match: PREFIX, value: /}}]\n      backends: [{destination: {kuma.io/service: shop}}]\n",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;
    let ui = format!("http://{}/ui", gw.admin);
    let route = format!("gw:HTTP:{port}/shop-route");

    let before = dom(&browser, &ui);
    assert!(before.contains("data-loaded=\"true\""), "the page loaded its data: {before}");
    assert!(before.contains("default/gw on default/gw-1"), "{before}");
    assert!(before.contains("shop.example.com") && before.contains("edge=public"), "hostname and tags: {before}");
    assert!(before.contains("data-endpoint=\"127.0.0.1:") && before.contains(">healthy<"), "endpoints: {before}");
    let start = total(&before, &route).unwrap_or_else(|| panic!("a row for {route}: {before}"));

    // Traffic moves the numbers.
    for _ in 0..25 {
        assert_eq!(get(port, "shop.example.com", "/item").await.status, 200);
    }
    let after = dom(&browser, &ui);
    assert_eq!(total(&after, &route), Some(start + 25), "{after}");
    screenshot(&browser, &ui, "gateway-dashboard.png");

    // A rejected change is shown with its file and reason.
    write_config(dir.path(), "broken.yaml", "type: MeshGatewayRoute\nmesh: default\nname: x\nconf: [\n");
    eventually(Duration::from_secs(5), "the rejection reaches /config", || async {
        gw.config().await["rejections"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let rejected = dom(&browser, &ui);
    assert!(rejected.contains("broken.yaml:") && rejected.contains("class=\"problem\""), "{rejected}");

    // The explain form (filled from the URL, as a runbook link would).
    let explained = dom(&browser, &format!("{ui}?host=shop.example.com&path=/item&method=GET"));
    let text = explained.split("id=\"explain-text\"").nth(1).unwrap_or_else(|| panic!("an answer: {explained}"));
    assert!(text.contains("Result    forward to shop"), "{text}");
    assert!(text.contains("* #0 MeshGatewayRoute/shop-route"), "{text}");
    screenshot(&browser, &format!("{ui}?host=shop.example.com&path=/item#explain"), "gateway-explain.png");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_dashboard_shows_gateways_and_their_plans() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let log = std::fs::File::create(dir.path().join("cp.log")).unwrap();
    let mut cp = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["cp", "--store", "memory:", "--api", &format!("127.0.0.1:{api}"), "--plain-http"])
        .arg("--localhost-is-admin=false")
        .arg("--admin-token-file")
        .arg(dir.path().join("token"))
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{api}");
    eventually(Duration::from_secs(15), "the control plane answers", || {
        let base = base.clone();
        async move { crate::support::client().get(&base).send().await.is_ok() }
    })
    .await;
    let port = free_port();
    let resources = dir.path().join("resources.yaml");
    std::fs::write(
        &resources,
        format!(
            "{}\n---\ntype: MeshGatewayRoute\nmesh: default\nname: cp-route\nselectors: [{{match: {{kuma.io/service: gw}}}}]\nconf:\n  http:\n    rules:\n    - matches: [{{path: {{match: PREFIX, value: /}}}}]\n      backends: [{{destination: {{kuma.io/service: shop}}}}]\n{}",
            gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n")),
            backend_yaml("shop-1", "shop", 9, ""),
        ),
    )
    .unwrap();
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap();
    let applied = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["apply", "-f"])
        .arg(&resources)
        .env("MESHGATE_CP", &base)
        .env("MESHGATE_TOKEN", token.trim())
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    // Without a token the page loads and asks for one; the data stays behind authentication.
    let ui = format!("{base}/ui");
    let anonymous = dom(&browser, &ui);
    assert!(anonymous.contains("data-loaded=\"login\"") && anonymous.contains("Sign in"), "{anonymous}");
    assert!(!anonymous.contains("cp-route"), "{anonymous}");
    assert!(!anonymous.contains("<section id=\"login\" hidden"), "the sign-in form shows: {anonymous}");
    let signed_in = format!("{ui}#token={}", token.trim());
    let mut page = String::new();
    eventually(Duration::from_secs(10), "the dashboard shows the gateway", || {
        page = dom(&browser, &signed_in);
        let found = page.contains("default/gw on default/gw-1") && page.contains("cp-route");
        async move { found }
    })
    .await;
    assert!(page.contains("control plane"), "{page}");
    assert!(page.contains("data-endpoint=\"127.0.0.1:9\"") && page.contains(">unknown<"), "{page}");
    screenshot(&browser, &signed_in, "control-plane-dashboard.png");
    let _ = cp.kill();
    let _ = cp.wait();
}
