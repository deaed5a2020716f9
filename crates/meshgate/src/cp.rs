//! `meshgate cp`: the control plane — Kuma's REST API over a store (SQLite by default, PostgreSQL for several
//! replicas, or memory).

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use meshgate_store::{Expect, Key, ResourceStore};

/// `meshgate cp` options.
#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Where resources are kept: `sqlite:PATH` (created when missing), `postgres://USER@HOST:PORT/DB` (several
    /// control planes can share it) or `memory:` (lost on exit).
    #[arg(long, value_name = "URL", default_value = "sqlite:./meshgate.db", env = "MESHGATE_STORE")]
    pub store: String,
    /// The REST API's address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5681")]
    pub api: SocketAddr,
    /// Do not create the `default` Mesh on first start (Kuma creates it).
    #[arg(long)]
    pub no_default_mesh: bool,
    /// Requests from a loopback address without a token are admin. Convenient on a first run; switch it off
    /// (`--localhost-is-admin=false`) anywhere others can reach the machine.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub localhost_is_admin: bool,
    /// Where the first start writes the admin user token (readable by this user only).
    #[arg(long, value_name = "FILE", default_value = "meshgate-admin-token")]
    pub admin_token_file: std::path::PathBuf,
    #[command(flatten)]
    pub tls: crate::cptls::TlsArgs,
}

/// On the very first start of a store (whichever replica gets there first), issues an admin token and writes it
/// where only this user can read it. The token itself is never logged.
async fn bootstrap(
    store: &meshgate_store::AnyStore,
    auth: &meshgate_cp::Auth,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let marker = Key::new("meshgate.Bootstrap", "", "admin-token");
    match store.put(&marker, &serde_json::json!({"file": file.display().to_string()}), Expect::Absent).await {
        Ok(_) => {}
        Err(meshgate_store::StoreError::AlreadyExists(_)) => return Ok(()),
        Err(e) => return Err(e).context("recording the bootstrap"),
    }
    let token = auth
        .issue("admin", &["mesh-system:admin".to_owned()], std::time::Duration::from_secs(10 * 365 * 86_400))
        .map_err(|e| anyhow::anyhow!("issuing the admin token: {e}"))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("writing the admin token to {}", file.display()))?;
    out.write_all(token.as_bytes())?;
    tracing::info!(file = %file.display(), "admin user token written (readable by this user only)");
    Ok(())
}

/// The data plane's views of plans (explain, the dashboard), for the control plane's API.
struct Views;

impl meshgate_cp::plans::PlanViews for Views {
    fn explain(&self, plans: &[meshgate_plan::GatewayPlan], query: &str) -> Result<serde_json::Value, String> {
        let probe = meshgate_proxy::explain::Probe::from_query(query)?;
        let answer = meshgate_proxy::explain::offline(plans, &probe)?;
        serde_json::to_value(answer).map_err(|e| e.to_string())
    }

    fn overview(&self, plans: &[meshgate_plan::GatewayPlan]) -> serde_json::Value {
        serde_json::to_value(meshgate_proxy::overview::overview(plans, None)).unwrap_or_default()
    }

    fn page(&self) -> &'static str {
        crate::ui::PAGE
    }
}

/// The store URL without its password, for logs and `/config`.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Runs the control plane until SIGTERM or SIGINT.
pub fn run(args: CpArgs) -> anyhow::Result<ExitCode> {
    crate::run::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("meshgate-cp")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: CpArgs) -> anyhow::Result<ExitCode> {
    let shown = redacted(&args.store);
    let store = meshgate_store::open(&args.store).await.with_context(|| format!("opening the store {shown}"))?;
    if !args.no_default_mesh {
        let mesh = Key::new("Mesh", "", "default");
        match store.put(&mesh, &serde_json::json!({"type": "Mesh", "name": "default"}), Expect::Absent).await {
            Ok(_) => tracing::info!("created the default Mesh"),
            Err(meshgate_store::StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e).context("creating the default Mesh"),
        }
    }
    let tls = crate::cptls::server_config(&args.tls, args.api)?;
    let listener = tokio::net::TcpListener::bind(args.api)
        .await
        .with_context(|| format!("binding the API address {}", args.api))?;
    let address = listener.local_addr().unwrap_or(args.api);
    let auth =
        meshgate_cp::Auth::start(store.clone(), args.localhost_is_admin).await.context("loading signing keys")?;
    bootstrap(&store, &auth, &args.admin_token_file).await?;
    if args.localhost_is_admin {
        tracing::warn!(
            "requests from loopback addresses are admin without a token (--localhost-is-admin=false turns this off)"
        );
    }
    let config = serde_json::json!({
        "store": shown,
        "apiAddress": address.to_string(),
        "localhostIsAdmin": args.localhost_is_admin,
    });
    let views: meshgate_cp::plans::Views = std::sync::Arc::new(Views);
    let app = meshgate_cp::router(store, meshgate_cp::ServerInfo::default(), config, Some(auth), Some(views));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(store = %shown, api = %format!("{scheme}://{address}"), "control plane ready");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping");
    };
    match tls {
        Some(config) => crate::cptls::serve(listener, config, app, shutdown).await,
        None => axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving the API")?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_passwords_are_not_shown() {
        assert_eq!(super::redacted("postgres://kuma:s3cret@db:5432/kuma"), "postgres://kuma:***@db:5432/kuma");
        assert_eq!(super::redacted("postgres://kuma@db/kuma"), "postgres://kuma@db/kuma");
        assert_eq!(super::redacted("sqlite:./meshgate.db"), "sqlite:./meshgate.db");
    }
}
