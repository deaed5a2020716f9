//! `meshgate explain`: why a request would go where it goes — listener, TLS chain, virtual host, the route that
//! matches and the ones it beat, filters, backends and the policies in force — from files (`--config`), a running
//! gateway's admin listener (`--admin`) or a control plane. The answer comes from the data plane's own matcher
//! (`meshgate_proxy::explain`); this module only gathers the plans and prints.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use meshgate_plan::{AppliedPolicy, GatewayPlan};
use meshgate_proxy::explain::{Candidate, Explanation, Probe};

use crate::client::{Cp, Target, block_on, say};
use crate::run::config::ConfigState;

/// `meshgate explain` options.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The MeshGateway (may be left out when there is only one).
    #[arg(long)]
    pub gateway: Option<String>,
    /// Its mesh.
    #[arg(long)]
    pub mesh: Option<String>,
    /// The gateway Dataplane whose plan to use (default: the first bound to the gateway).
    #[arg(long)]
    pub dataplane: Option<String>,
    /// The request's Host (with or without a port).
    #[arg(long)]
    pub host: String,
    /// The listener port (default: the one listener that takes the host).
    #[arg(long)]
    pub port: Option<u16>,
    /// The TLS SNI (default: the host).
    #[arg(long)]
    pub sni: Option<String>,
    /// The path, optionally with `?query`.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// The method.
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// A query parameter, `name=value` (repeatable).
    #[arg(long = "query", value_name = "NAME=VALUE")]
    pub query: Vec<String>,
    /// Explain against the files under PATH (offline).
    #[arg(long, value_name = "PATH", conflicts_with = "admin")]
    pub config: Option<PathBuf>,
    /// Explain against a running gateway's admin listener (live endpoint health), e.g. http://127.0.0.1:9901.
    #[arg(long, value_name = "URL")]
    pub admin: Option<String>,
    #[command(flatten)]
    pub target: Target,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: crate::inspect::Output,
}

impl ExplainArgs {
    fn probe(&self) -> anyhow::Result<Probe> {
        let mut headers = Vec::new();
        for h in &self.headers {
            let (n, v) = h.split_once(':').with_context(|| format!("-H {h:?}: write it as `name: value`"))?;
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
        let query = self
            .query
            .iter()
            .map(|q| {
                let (n, v) = q.split_once('=').unwrap_or((q.as_str(), ""));
                (n.to_owned(), v.to_owned())
            })
            .collect();
        Ok(Probe {
            gateway: self.gateway.clone(),
            mesh: self.mesh.clone(),
            dataplane: self.dataplane.clone(),
            port: self.port,
            sni: self.sni.clone(),
            host: self.host.clone(),
            method: Some(self.method.clone()),
            path: Some(self.path.clone()),
            headers,
            query,
        })
    }
}

/// Runs `meshgate explain`.
pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let probe = args.probe()?;
    let explanation = match (&args.config, &args.admin) {
        (Some(dir), _) => offline(dir, &probe)?,
        (None, Some(admin)) => remote_admin(admin, &probe)?,
        (None, None) => remote_cp(&args.target, &probe)?,
    };
    match args.output {
        crate::inspect::Output::Json => say(&serde_json::to_string_pretty(&explanation)?),
        crate::inspect::Output::Text => say(text(&explanation).trim_end()),
    }
    Ok(ExitCode::SUCCESS)
}

fn offline(dir: &std::path::Path, probe: &Probe) -> anyhow::Result<Explanation> {
    let mut state = ConfigState::default();
    let outcome = state.reload(dir);
    for p in &outcome.problems {
        eprintln!("{p}");
    }
    if !outcome.problems.is_empty() {
        bail!("the configuration under {} has {} problem(s)", dir.display(), outcome.problems.len());
    }
    let plans: Vec<GatewayPlan> = meshgate_compile::compile(&state.resources(), &state.files).gateways;
    meshgate_proxy::explain::offline(&plans, probe).map_err(anyhow::Error::msg)
}

fn remote_admin(admin: &str, probe: &Probe) -> anyhow::Result<Explanation> {
    let url = format!("{}/explain?{}", admin.trim_end_matches('/'), probe.to_query());
    block_on(async {
        let resp = reqwest::Client::new().get(&url).send().await.with_context(|| format!("reaching {admin}"))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the gateway's answer")?;
        let body: serde_json::Value = serde_json::from_str(&text).context("an unreadable answer")?;
        if !status.is_success() {
            bail!("{}", body.get("error").and_then(serde_json::Value::as_str).unwrap_or("the gateway refused"));
        }
        serde_json::from_value(body).context("an unreadable explanation")
    })?
}

fn remote_cp(target: &Target, probe: &Probe) -> anyhow::Result<Explanation> {
    let cp = Cp::new(target)?;
    block_on(async {
        let (status, body) = cp.get(&format!("/meshgate/v1/explain?{}", probe.to_query())).await?;
        if !status.is_success() {
            bail!("{}", crate::client::explain(status, &body));
        }
        serde_json::from_value(body).context("an unreadable explanation from the control plane")
    })?
}

fn candidates(out: &mut String, title: &str, list: &[Candidate]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}");
    for c in list {
        let mark = if c.chosen { "*" } else { "-" };
        let _ = writeln!(out, "  {mark} {:<28} {}", c.name, c.reason);
    }
}

fn applied(list: &[AppliedPolicy]) -> String {
    let parts: Vec<String> = list
        .iter()
        .map(|a| {
            let values = if a.values.is_empty() { String::new() } else { format!(": {}", a.values.join(", ")) };
            format!("{}/{} {}{values}", a.kind, a.name, a.status)
        })
        .collect();
    parts.join("; ")
}

/// The readable tree.
pub fn text(e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Request   {}", e.request);
    let _ = writeln!(out, "Gateway   {} (Dataplane {})", e.gateway, e.dataplane);
    let l = &e.listener;
    let tags: Vec<String> = l.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "Listener  {} ({} {}), hostname {}, tags {{{}}}",
        l.name,
        l.protocol,
        l.port,
        l.hostname.as_deref().unwrap_or("-"),
        tags.join(", ")
    );
    candidates(&mut out, "Listener hostnames", &l.hostnames);
    candidates(&mut out, "TLS chains (by SNI)", &e.tls);
    candidates(&mut out, "Virtual hosts (by Host)", &e.virtual_hosts);
    if !e.routes.is_empty() {
        let _ = writeln!(out, "Routes (in match order)");
        for r in &e.routes {
            let mark = match r.outcome.as_str() {
                "matched" => "*",
                "not-served" => "!",
                _ => "-",
            };
            let _ = writeln!(out, "  {mark} #{} {} [{}]", r.index, r.source, r.conditions);
            let _ = writeln!(out, "      {}", r.reason);
        }
    }
    if let Some(a) = &e.action {
        let _ = writeln!(out, "Action    {}", a.kind);
        for f in &a.filters {
            let _ = writeln!(out, "  filter  {f}");
        }
        if let Some(loc) = &a.location {
            let _ = writeln!(out, "  Location: {loc}");
        }
        for b in &a.backends {
            let _ = writeln!(
                out,
                "  backend {} (service {}) weight {} = {:.1}%, {}",
                b.cluster, b.service, b.weight, b.percent, b.load_balancer
            );
            for ep in &b.endpoints {
                let _ = writeln!(out, "    endpoint {} {}", ep.address, ep.state);
            }
            if !b.policies.is_empty() {
                let _ = writeln!(out, "    policies: {}", applied(&b.policies));
            }
        }
    }
    let p = &e.policies;
    if !p.listener.is_empty() || !p.route.is_empty() || !p.effective.is_empty() {
        let _ = writeln!(out, "Policies");
        if !p.listener.is_empty() {
            let _ = writeln!(out, "  listener: {}", applied(&p.listener));
        }
        if !p.route.is_empty() {
            let _ = writeln!(out, "  route:    {}", applied(&p.route));
        }
        for (k, v) in &p.effective {
            let _ = writeln!(out, "  {k:<32} {v}");
        }
    }
    let _ = writeln!(out, "Result    {}", e.result);
    for n in &e.notes {
        let _ = writeln!(out, "Note      {n}");
    }
    out
}
