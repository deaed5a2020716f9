//! `meshgate inspect meshgateway NAME --config PATH`: what a gateway runs, read offline from files — its bound
//! Dataplanes, merged listeners with their tags, virtual hosts and routes, clusters, and on each of them the
//! policies in force and those overridden (the compiled plan's own data; nothing is recomputed here).

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use meshgate_plan::{Action, AppliedPolicy, GatewayPlan, Route};

use crate::run::config::ConfigState;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A readable tree.
    Text,
    /// The plans as JSON (secrets redacted).
    Json,
}

/// Prints the plans of the Dataplanes bound to MeshGateway `name`.
pub fn meshgateway(config: &Path, name: &str, mesh: Option<&str>, output: Output) -> anyhow::Result<ExitCode> {
    let mut state = ConfigState::default();
    let outcome = state.reload(config);
    for p in &outcome.problems {
        eprintln!("{p}");
    }
    if !outcome.problems.is_empty() {
        eprintln!("Error: the configuration under {} has {} problem(s)", config.display(), outcome.problems.len());
        return Ok(ExitCode::FAILURE);
    }
    let plan = meshgate_compile::compile(&state.resources(), &state.files);
    let plans: Vec<GatewayPlan> = plan
        .gateways
        .into_iter()
        .filter(|g| g.gateway.as_ref().is_some_and(|r| r.name == name && mesh.is_none_or(|m| r.mesh == m)))
        .map(|g| g.redacted())
        .collect();
    if plans.is_empty() {
        eprintln!("Error: no Dataplane is bound to MeshGateway {name:?}");
        return Ok(ExitCode::FAILURE);
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&plans)?),
        Output::Text => {
            for p in &plans {
                print!("{}", tree(p));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn policies(applied: &[AppliedPolicy]) -> String {
    applied
        .iter()
        .map(|a| {
            if a.status == "applied" {
                format!("{} {}", a.kind, a.name)
            } else {
                format!("{} {} ({})", a.kind, a.name, a.status)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn route_line(r: &Route) -> String {
    let kind = match &r.path {
        meshgate_plan::PathMatch::Exact(_) => "exact",
        meshgate_plan::PathMatch::Prefix(_) => "prefix",
        meshgate_plan::PathMatch::Regex(_) => "regex",
    };
    let mut line = format!("{kind} {}", r.path.value());
    if let Some(m) = &r.method {
        let _ = write!(line, " {m}");
    }
    for h in &r.headers {
        let _ = write!(line, " header {}={:?}", h.name, h.kind);
    }
    match &r.action {
        Action::Forward(f) => {
            let to: Vec<String> = f.backends.iter().map(|b| format!("{} (weight {})", b.cluster, b.weight)).collect();
            let _ = write!(line, " → {}", to.join(", "));
        }
        Action::Redirect(rd) => {
            let _ = write!(line, " → redirect {}", rd.status);
        }
        Action::Respond(d) => {
            let _ = write!(line, " → {}", d.status);
        }
    }
    if !r.source.name.is_empty() {
        let _ = write!(line, "  [{} {}]", r.source.kind, r.source.name);
    }
    line
}

pub(crate) fn tree(p: &GatewayPlan) -> String {
    let mut out = String::new();
    let gw = p.gateway.as_ref().map_or("-", |g| g.name.as_str());
    let _ =
        writeln!(out, "MeshGateway {gw} (mesh {}): Dataplane {} at {}", p.dataplane.mesh, p.dataplane.name, p.address);
    for l in &p.listeners {
        let _ = writeln!(out, "  listener {} ({})", l.name, l.protocol.name());
        for h in &l.hostnames {
            let tags: Vec<String> = h.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "    hostname {}  tags {{{}}}", h.hostname, tags.join(", "));
        }
        let lp = &l.policies;
        let mut settings = Vec::new();
        for (what, v) in [
            ("idle", lp.idle_timeout_ms),
            ("request headers", lp.request_headers_timeout_ms),
            ("stream idle", lp.stream_idle_timeout_ms),
        ] {
            if let Some(ms) = v {
                settings.push(format!("{what} {ms} ms"));
            }
        }
        if !lp.faults.is_empty() {
            settings.push(format!("faults {:?}", lp.faults));
        }
        for log in &lp.access_logs {
            settings.push(format!("access log {:?}", log.sink));
        }
        if !settings.is_empty() {
            let _ = writeln!(out, "    {}", settings.join("; "));
        }
        if !lp.applied.is_empty() {
            let _ = writeln!(out, "    policies: {}", policies(&lp.applied));
        }
        let vhosts =
            l.virtual_hosts.iter().map(|v| (None, v)).chain(
                l.tls_chains.iter().flat_map(|c| c.virtual_hosts.iter().map(move |v| (Some(c.sni.as_str()), v))),
            );
        for (sni, v) in vhosts {
            match sni {
                Some(sni) => {
                    let _ = writeln!(out, "    SNI {sni} / virtual host {}", v.domain);
                }
                None => {
                    let _ = writeln!(out, "    virtual host {}", v.domain);
                }
            }
            for r in &v.routes {
                let _ = writeln!(out, "      {}", route_line(r));
                let rp = &r.policies;
                let mut bits = Vec::new();
                if let Some(ms) = rp.request_timeout_ms {
                    bits.push(format!("timeout {ms} ms"));
                }
                if let Some(ms) = rp.stream_idle_timeout_ms {
                    bits.push(format!("stream idle {ms} ms"));
                }
                if let Some(retry) = &rp.retry {
                    bits.push(format!("{} retries", retry.num_retries));
                }
                if let Some(rl) = &rp.rate_limit {
                    bits.push(format!("rate limit {}/{} ms → {}", rl.num, rl.interval_ms, rl.status));
                }
                if !rp.applied.is_empty() {
                    bits.push(format!("policies: {}", policies(&rp.applied)));
                }
                if !bits.is_empty() {
                    let _ = writeln!(out, "        {}", bits.join("; "));
                }
            }
        }
    }
    for (name, c) in &p.clusters {
        let endpoints: Vec<String> = c.endpoints.iter().map(|e| format!("{}:{}", e.host, e.port)).collect();
        let _ = writeln!(
            out,
            "  cluster {name}: {}",
            if endpoints.is_empty() { "no endpoints".to_owned() } else { endpoints.join(", ") }
        );
        let mut bits = vec![format!("balancer {:?}", c.load_balancer)];
        if let Some(ms) = c.connect_timeout_ms {
            bits.push(format!("connect {ms} ms"));
        }
        if let Some(cb) = &c.circuit_breaker {
            bits.push(format!(
                "limits {}/{}/{}/{} (connections/pending/requests/retries){}",
                cb.max_connections,
                cb.max_pending_requests,
                cb.max_requests,
                cb.max_retries,
                if cb.outlier.is_some() { ", outlier detection" } else { "" }
            ));
        }
        if let Some(hc) = &c.health_check {
            bits.push(format!("health check every {} ms", hc.interval_ms));
        }
        let _ = writeln!(out, "    {}", bits.join("; "));
        if !c.applied.is_empty() {
            let _ = writeln!(out, "    policies: {}", policies(&c.applied));
        }
    }
    for d in &p.diagnostics {
        let _ = writeln!(out, "  {:?}: {}: {}", d.severity, d.subject, d.message);
    }
    out
}
