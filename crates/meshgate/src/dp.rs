//! `meshgate dp`: a gateway fed by a control plane. It registers its builtin-gateway Dataplane (or names an existing
//! one), receives its plan over the control plane's stream, runs the same data plane as `meshgate run`, and keeps
//! serving its last plan — also across its own restart, from `--state-dir` — while the control plane is away.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use meshgate_api::{Kind, Spec, UnknownFields};
use meshgate_cp::PlanMessage;
use meshgate_proxy::Proxy;

use crate::run::DataPlaneArgs;
use crate::run::admin::AdminState;

/// `meshgate dp` options.
#[derive(Debug, clap::Args)]
pub struct DpArgs {
    /// The control plane.
    #[arg(long = "cp", value_name = "URL", env = "MESHGATE_CP", default_value = "https://127.0.0.1:5681")]
    pub cp: String,
    /// A builtin-gateway Dataplane (Universal YAML) to register on the control plane, and run.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["mesh", "name"])]
    pub dataplane_file: Option<PathBuf>,
    /// The mesh of an existing Dataplane to run (with --name).
    #[arg(long, requires = "name")]
    pub mesh: Option<String>,
    /// The name of an existing Dataplane to run (with --mesh).
    #[arg(long, requires = "mesh")]
    pub name: Option<String>,
    /// The CA of an https control plane's certificate; a certificate it did not sign is refused.
    #[arg(long, value_name = "FILE", env = "MESHGATE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// The dataplane token (`meshgate generate dataplane-token`) to present to the control plane.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Where the last plan is kept, to serve it at start while the control plane is unreachable.
    #[arg(long, value_name = "DIR", default_value = "./meshgate-dp")]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub dp: DataPlaneArgs,
}

/// Which Dataplane this gateway is, and its resource when it registers it.
struct Identity {
    mesh: String,
    name: String,
    register: Option<serde_json::Value>,
}

fn identity(args: &DpArgs) -> anyhow::Result<Identity> {
    let Some(file) = &args.dataplane_file else {
        return match (&args.mesh, &args.name) {
            (Some(mesh), Some(name)) => Ok(Identity { mesh: mesh.clone(), name: name.clone(), register: None }),
            _ => bail!("give --dataplane-file, or --mesh and --name"),
        };
    };
    let outcome = meshgate_api::load::load_paths(std::slice::from_ref(file), UnknownFields::Deny);
    if let Some(p) = outcome.problems.first() {
        bail!("{p}");
    }
    let [loaded] = outcome.loaded.as_slice() else {
        bail!("{}: expected exactly one Dataplane", file.display());
    };
    let r = loaded.resource();
    let builtin = matches!(&r.spec, Spec::Dataplane(d) if d.is_builtin_gateway());
    if r.kind() != Kind::Dataplane || !builtin {
        bail!(
            "{}: {} is not a builtin-gateway Dataplane (networking.gateway.type: BUILTIN)",
            file.display(),
            r.describe()
        );
    }
    let problems = meshgate_api::load::ResourceSet::new(&outcome.loaded).check_with(false);
    if let Some(p) = problems.first() {
        bail!("{p}");
    }
    Ok(Identity { mesh: r.meta.mesh.clone(), name: r.meta.name.clone(), register: Some(r.to_universal_json()) })
}

/// Runs the gateway until SIGTERM or SIGINT.
pub fn run(args: DpArgs) -> anyhow::Result<ExitCode> {
    crate::run::init_logging();
    let me = identity(&args)?;
    args.dp.runtime()?.block_on(serve(args, me))
}

fn plan_file(dir: &Path) -> PathBuf {
    dir.join("plan.json")
}

/// Keeps the plan for the next start: written beside, then renamed, so a crash never leaves half a file.
fn save(dir: &Path, line: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("plan.json.tmp");
    std::fs::write(&tmp, line)?;
    std::fs::rename(&tmp, plan_file(dir))
}

async fn serve(args: DpArgs, me: Identity) -> anyhow::Result<ExitCode> {
    let (proxy, admin) = args.dp.start().await?;
    let mut current: Option<String> = None;
    match std::fs::read(plan_file(&args.state_dir)) {
        Ok(bytes) => match serde_json::from_slice::<PlanMessage>(&bytes) {
            Ok(msg) if msg.plan.dataplane.mesh == me.mesh && msg.plan.dataplane.name == me.name => {
                tracing::info!(version = %msg.version, "serving the plan kept from the last run");
                crate::run::apply_plans(vec![msg.plan], &proxy, &admin, Vec::new(), 0).await;
                current = Some(msg.version);
            }
            Ok(_) => tracing::warn!("the kept plan is another Dataplane's; ignored"),
            Err(e) => tracing::warn!(error = %e, "the kept plan is unreadable; ignored"),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(error = %e, "reading the kept plan"),
    }
    let token = match &args.token_file {
        Some(file) => Some(std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?),
        None => None,
    };
    let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
    let http = crate::client::cp_client(&args.cp, args.ca_cert.as_deref(), token.as_deref(), builder)?;
    let link = Link { http, base: args.cp.trim_end_matches('/').to_owned(), me, state_dir: args.state_dir.clone() };
    let follow = tokio::spawn(follow(link, current, Arc::clone(&proxy), Arc::clone(&admin)));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    follow.abort();
    tracing::info!("stopping: draining in-flight requests");
    proxy.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

struct Link {
    http: reqwest::Client,
    base: String,
    me: Identity,
    state_dir: PathBuf,
}

/// The wait before reconnecting after `failures` failed attempts in a row: 1 s doubling up to 30 s, with jitter,
/// never less than a second.
fn backoff(failures: u32) -> Duration {
    let ceiling = Duration::from_secs(1u64 << failures.min(5)).min(Duration::from_secs(30));
    let jitter = rand::random::<f64>() * 0.5;
    ceiling.mul_f64(1.0 - jitter).max(Duration::from_secs(1))
}

/// Follows the control plane for ever: connect, apply each plan, acknowledge it; reconnect after a failure.
async fn follow(link: Link, mut current: Option<String>, proxy: Arc<Proxy>, admin: Arc<AdminState>) {
    let mut failures = 0u32;
    loop {
        match session(&link, &mut current, &proxy, &admin, &mut failures).await {
            Ok(()) => tracing::warn!("the control plane closed the plan stream"),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "control plane unreachable; serving the current plan"),
        }
        let wait = backoff(failures);
        failures = failures.saturating_add(1);
        tokio::time::sleep(wait).await;
    }
}

async fn session(
    link: &Link,
    current: &mut Option<String>,
    proxy: &Proxy,
    admin: &AdminState,
    failures: &mut u32,
) -> anyhow::Result<()> {
    let (mesh, name) = (&link.me.mesh, &link.me.name);
    if let Some(dataplane) = &link.me.register {
        let url = format!("{}/meshes/{mesh}/dataplanes/{name}", link.base);
        let resp = link
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(dataplane.to_string())
            .send()
            .await
            .context("registering the Dataplane")?;
        if !resp.status().is_success() {
            let status = resp.status();
            bail!("registering the Dataplane: {status}: {}", resp.text().await.unwrap_or_default());
        }
    }
    let mut url = format!("{}/meshgate/v1/plans/{mesh}/{name}", link.base);
    if let Some(v) = current.as_deref() {
        url.push_str(&format!("?known={v}"));
    }
    let mut resp = link.http.get(url).send().await.context("opening the plan stream")?;
    if !resp.status().is_success() {
        bail!("opening the plan stream: {}", resp.status());
    }
    tracing::info!(cp = %link.base, "connected to the control plane");
    *failures = 0;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::time::timeout(meshgate_cp::plans::HEARTBEAT * 3, resp.chunk())
            .await
            .context("the plan stream went silent")?
            .context("reading the plan stream")?;
        let Some(chunk) = chunk else { return Ok(()) };
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let msg: PlanMessage = serde_json::from_slice(&line).context("an unreadable plan")?;
            let version = msg.version.clone();
            let errors = crate::run::apply_plans(vec![msg.plan], proxy, admin, Vec::new(), 0).await;
            if !errors.is_empty() {
                tracing::error!(%version, "plan applied with errors: {}", errors.join("; "));
            }
            tracing::info!(%version, "plan applied");
            if let Err(e) = save(&link.state_dir, &line) {
                tracing::warn!(error = %e, "keeping the plan in the state directory");
            }
            *current = Some(version.clone());
            let ack = format!("{}/meshgate/v1/plans/{mesh}/{name}/ack", link.base);
            if let Err(e) = link
                .http
                .post(ack)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::json!({ "version": version }).to_string())
                .send()
                .await
            {
                tracing::warn!(error = %e, "acknowledging the plan");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reconnects_at_most_once_a_second_backing_off_to_thirty() {
        for failures in 0..20 {
            let d = super::backoff(failures);
            assert!(d >= std::time::Duration::from_secs(1) && d <= std::time::Duration::from_secs(30), "{d:?}");
        }
        assert!(super::backoff(10) >= std::time::Duration::from_secs(15));
    }
}
