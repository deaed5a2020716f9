//! kumactl's habits against a meshgate control plane: `apply`, `get`, `delete`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use meshgate_api::Kind;
use meshgate_api::resource::Scope;
use serde_json::Value;

/// Where the control plane is.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The control plane's API address [default: the one in use (`meshgate config control-planes`), else
    /// https://127.0.0.1:5681].
    #[arg(long = "cp", value_name = "URL", env = "MESHGATE_CP")]
    pub cp: Option<String>,
    /// A user token to authenticate with [default: the configured control plane's].
    #[arg(long, value_name = "TOKEN", env = "MESHGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The CA that signed an https control plane's certificate (its `ca.pem`) [default: the configured one's].
    #[arg(long, value_name = "FILE", env = "MESHGATE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// An HTTP client for a control plane: its CA only (no other roots: a certificate it did not sign fails the
/// connection), and the token on every request.
pub(crate) fn cp_client(
    base: &str,
    ca_cert: Option<&std::path::Path>,
    token: Option<&str>,
    builder: reqwest::ClientBuilder,
) -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .context("the token is not a valid header value")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let mut builder = builder.default_headers(headers).tls_built_in_root_certs(false);
    if base.starts_with("https://") {
        let Some(ca) = ca_cert else {
            bail!(
                "{base} is HTTPS: give the CA that signed its certificate (--ca-cert, e.g. the control plane's meshgate-cp-tls/ca.pem)"
            );
        };
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{}: not PEM certificates", ca.display()))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    } else if !base.starts_with("http://") {
        bail!("{base}: the control plane's address must be an http:// or https:// URL");
    }
    builder.build().context("building the HTTP client")
}

/// How `get` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Columns.
    Table,
    /// Universal-form YAML.
    Yaml,
    /// JSON.
    Json,
}

/// `meshgate apply` options.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Files or directories of resources (`-` reads standard input).
    #[arg(short = 'f', long = "file", required = true, value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Validate on the control plane and say what would change, without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub target: Target,
}

/// `meshgate get` options.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The type: `meshgateways`, `meshgateway` or `MeshGateway`, and so on for every Kuma type.
    pub kind: String,
    /// One resource; without it, all of them.
    pub name: Option<String>,
    /// The mesh.
    #[arg(long, short = 'm', default_value = "default")]
    pub mesh: String,
    /// List every mesh's resources.
    #[arg(long, conflicts_with = "name")]
    pub all_meshes: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    #[command(flatten)]
    pub target: Target,
}

/// `meshgate delete` options.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The type (as for `get`).
    pub kind: String,
    /// The resource.
    pub name: String,
    /// The mesh.
    #[arg(long, short = 'm', default_value = "default")]
    pub mesh: String,
    #[command(flatten)]
    pub target: Target,
}

/// The kind a command-line type names: the REST collection, the kind in lowercase, or the kind itself.
fn kind_named(text: &str) -> anyhow::Result<Kind> {
    let lower = text.to_ascii_lowercase();
    Kind::from_collection(&lower)
        .or_else(|| Kind::all_names().find(|n| n.to_ascii_lowercase() == lower).and_then(Kind::from_name))
        .filter(|k| k.collection().is_some())
        .with_context(|| {
            let names: Vec<&str> = Kind::all_names().filter_map(|n| Kind::from_name(n)?.collection()).collect();
            format!("unknown type {text:?}; one of: {}", names.join(", "))
        })
}

/// The path of one resource, or of its collection when `name` is `None`.
fn path_of(kind: Kind, mesh: Option<&str>, name: Option<&str>) -> String {
    let collection = kind.collection().unwrap_or_default();
    let mut path = match (kind, mesh) {
        (Kind::Mesh, _) => "/meshes".to_owned(),
        (_, Some(mesh)) if kind.scope() == Scope::Mesh => format!("/meshes/{mesh}/{collection}"),
        _ => format!("/{collection}"),
    };
    if let Some(name) = name {
        path.push('/');
        path.push_str(name);
    }
    path
}

pub(crate) struct Cp {
    base: String,
    http: reqwest::Client,
}

impl Cp {
    pub(crate) fn new(target: &Target) -> anyhow::Result<Cp> {
        let (base, token, ca) =
            crate::cliconfig::resolve(target.cp.as_deref(), target.token.as_deref(), target.ca_cert.as_deref())?;
        let builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        let http = cp_client(&base, ca.as_deref(), token.as_deref(), builder)?;
        Ok(Cp { base: base.trim_end_matches('/').to_owned(), http })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let resp = req.send().await.with_context(|| format!("reaching the control plane at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the control plane's answer")?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }
}

/// The message of an error answer: its details and every cause.
pub(crate) fn explain(status: reqwest::StatusCode, body: &Value) -> String {
    let mut out = match body.get("details").and_then(Value::as_str) {
        Some(d) => format!("{d} ({status})"),
        None => format!("{status}: {body}"),
    };
    for cause in body.get("causes").and_then(Value::as_array).into_iter().flatten() {
        let field = cause.get("field").and_then(Value::as_str).unwrap_or_default();
        let message = cause.get("message").and_then(Value::as_str).unwrap_or_default();
        out.push_str(&if field.is_empty() { format!("\n  {message}") } else { format!("\n  {field}: {message}") });
    }
    out
}

/// Prints a line to standard output; a closed pipe (`| head`) ends the output quietly.
pub(crate) fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").is_err() {
        std::process::exit(0);
    }
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    Ok(runtime.block_on(f))
}

/// `meshgate apply`: every resource of the files, Meshes first, one PUT each; stops at nothing, reports everything.
pub fn apply(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let outcome = crate::validate::read_inputs(&args.files)?;
    if !outcome.problems.is_empty() {
        for p in &outcome.problems {
            eprintln!("{p}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let mut loaded: Vec<&meshgate_api::load::Loaded> = outcome.loaded.iter().collect();
    // Meshes first (a resource's mesh must exist), then the files' order.
    loaded.sort_by_key(|l| l.resource().kind() != Kind::Mesh);
    let cp = Cp::new(&args.target)?;
    block_on(async {
        let mut failed = false;
        for item in loaded {
            let r = item.resource();
            let kind = r.kind();
            let mesh = (kind.scope() == Scope::Mesh).then_some(r.meta.mesh.as_str());
            let subject = match mesh {
                Some(m) => format!("{} {m}/{}", kind.name(), r.meta.name),
                None => format!("{} {}", kind.name(), r.meta.name),
            };
            if kind.collection().is_none() {
                eprintln!("{}: {subject}: exists only on Kubernetes; not applied", item.file.display());
                failed = true;
                continue;
            }
            let mut url = format!("{}{}", cp.base, path_of(kind, mesh, Some(&r.meta.name)));
            if args.dry_run {
                url.push_str("?dryRun=true");
            }
            let body = r.to_universal_json().to_string();
            let (status, answer) =
                cp.send(cp.http.put(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body)).await?;
            if status.is_success() {
                let change = match answer.get("change").and_then(Value::as_str) {
                    Some(c) => format!("would be {c}"),
                    None if status == reqwest::StatusCode::CREATED => "created".to_owned(),
                    None => "configured".to_owned(),
                };
                say(&format!("{subject} {change}"));
            } else {
                eprintln!("{}: {subject}: {}", item.file.display(), explain(status, &answer));
                failed = true;
            }
        }
        Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    })?
}

/// `meshgate get`.
pub fn get(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let kind = kind_named(&args.kind)?;
    let mesh = (!args.all_meshes).then_some(args.mesh.as_str());
    let cp = Cp::new(&args.target)?;
    block_on(async {
        let items = match &args.name {
            Some(name) => {
                let (status, body) = cp.get(&path_of(kind, mesh, Some(name))).await?;
                if !status.is_success() {
                    bail!("{}", explain(status, &body));
                }
                vec![body]
            }
            None => {
                let mut items = Vec::new();
                let mut next = Some(format!("{}?size=1000", path_of(kind, mesh, None)));
                while let Some(path) = next.take() {
                    let (status, body) = cp.get(&path).await?;
                    if !status.is_success() {
                        bail!("{}", explain(status, &body));
                    }
                    items.extend(body.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
                    next = body.get("next").and_then(Value::as_str).map(str::to_owned);
                }
                items
            }
        };
        print_items(kind, &items, args.output, args.name.is_some())?;
        Ok(ExitCode::SUCCESS)
    })?
}

fn print_items(kind: Kind, items: &[Value], output: Output, single: bool) -> anyhow::Result<()> {
    let one = || items.first().cloned().unwrap_or(Value::Null);
    match output {
        Output::Json => {
            let value = if single { one() } else { Value::Array(items.to_vec()) };
            say(&serde_json::to_string_pretty(&value)?);
        }
        Output::Yaml => {
            if single {
                say(serde_saphyr::to_string(&one())?.trim_end());
            } else {
                for item in items {
                    say(&format!("---\n{}", serde_saphyr::to_string(item)?.trim_end()));
                }
            }
        }
        Output::Table => {
            let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
            let mut rows = vec![if kind.scope() == Scope::Mesh {
                vec!["MESH".to_owned(), "NAME".to_owned(), "CREATED".to_owned(), "MODIFIED".to_owned()]
            } else {
                vec!["NAME".to_owned(), "CREATED".to_owned(), "MODIFIED".to_owned()]
            }];
            for item in items {
                let mut row = Vec::new();
                if kind.scope() == Scope::Mesh {
                    row.push(field(item, "mesh"));
                }
                row.extend([field(item, "name"), field(item, "creationTime"), field(item, "modificationTime")]);
                rows.push(row);
            }
            let widths: Vec<usize> =
                (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
            for row in rows {
                let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
                say(line.join("   ").trim_end());
            }
        }
    }
    Ok(())
}

/// `meshgate inspect meshgateway NAME` against a control plane: the plans of the bound Dataplanes, and which
/// version each gateway runs.
pub fn inspect_meshgateway(
    target: &Target,
    mesh: &str,
    name: &str,
    output: crate::inspect::Output,
) -> anyhow::Result<ExitCode> {
    let cp = Cp::new(target)?;
    block_on(async {
        let (status, body) = cp.get(&format!("/meshgate/v1/meshgateways/{mesh}/{name}/plans")).await?;
        if !status.is_success() {
            bail!("{}", explain(status, &body));
        }
        let bound: Vec<meshgate_cp::BoundPlan> =
            serde_json::from_value(body.clone()).context("an unreadable answer from the control plane")?;
        if bound.is_empty() {
            bail!("no Dataplane is bound to MeshGateway {mesh}/{name}");
        }
        match output {
            crate::inspect::Output::Json => say(&serde_json::to_string_pretty(&body)?),
            crate::inspect::Output::Text => {
                for b in &bound {
                    let s = &b.status;
                    let running = match (&s.acked_version, &s.plan_version) {
                        (Some(a), Some(p)) if a == p => format!("runs plan {p}"),
                        (Some(a), Some(p)) => format!("runs plan {a}; plan {p} not applied yet"),
                        (None, Some(p)) => format!("has not applied plan {p}"),
                        _ => "has no plan".to_owned(),
                    };
                    say(&format!("Dataplane {}/{}: {running} ({} connected)", s.mesh, s.name, s.connected));
                    say(crate::inspect::tree(&b.plan).trim_end());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// `meshgate generate user-token` options.
#[derive(Debug, clap::Args)]
pub struct UserTokenArgs {
    /// The user's name.
    #[arg(long)]
    pub name: String,
    /// Its groups (`mesh-system:admin`, `mesh-system:editor`, `mesh-system:viewer`, or others).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// How long it is valid: `24h`, `30m`, `7d` …
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub valid_for: String,
    #[command(flatten)]
    pub target: Target,
}

/// `meshgate generate dataplane-token` options.
#[derive(Debug, clap::Args)]
pub struct DataplaneTokenArgs {
    /// The Dataplane's mesh.
    #[arg(long, default_value = "default")]
    pub mesh: String,
    /// The Dataplane's name.
    #[arg(long)]
    pub name: String,
    /// A tag the Dataplane's gateway must carry (`k=v`, repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// How long it is valid: `24h`, `30m`, `7d` …
    #[arg(long, value_name = "DURATION", default_value = "8760h")]
    pub valid_for: String,
    #[command(flatten)]
    pub target: Target,
}

/// `meshgate generate dataplane-token`: asks the control plane (as an admin) for a gateway's token.
pub fn dataplane_token(args: &DataplaneTokenArgs) -> anyhow::Result<ExitCode> {
    let mut tags = serde_json::Map::new();
    for tag in &args.tags {
        let (k, v) = tag.split_once('=').with_context(|| format!("--tag {tag:?}: expected KEY=VALUE"))?;
        tags.insert(k.to_owned(), v.into());
    }
    let body = serde_json::json!({ "mesh": args.mesh, "name": args.name, "tags": tags, "validFor": args.valid_for });
    request_token(&args.target, "/tokens/dataplane", &body)
}

/// `meshgate generate user-token`: asks the control plane (as an admin) for a token.
pub fn user_token(args: &UserTokenArgs) -> anyhow::Result<ExitCode> {
    let body = serde_json::json!({ "name": args.name, "groups": args.groups, "validFor": args.valid_for });
    request_token(&args.target, "/tokens/user", &body)
}

fn request_token(target: &Target, path: &str, body: &Value) -> anyhow::Result<ExitCode> {
    let cp = Cp::new(target)?;
    block_on(async {
        let resp = cp
            .http
            .post(format!("{}{path}", cp.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("reaching the control plane at {}", cp.base))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the token")?;
        if !status.is_success() {
            bail!("{}", explain(status, &serde_json::from_str(&text).unwrap_or(Value::String(text))));
        }
        say(&text);
        Ok(ExitCode::SUCCESS)
    })?
}

/// `meshgate delete`.
pub fn delete(args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    let kind = kind_named(&args.kind)?;
    let cp = Cp::new(&args.target)?;
    block_on(async {
        let mesh = (kind.scope() == Scope::Mesh).then_some(args.mesh.as_str());
        let url = format!("{}{}", cp.base, path_of(kind, mesh, Some(&args.name)));
        let (status, body) = cp.send(cp.http.delete(url)).await?;
        if !status.is_success() {
            bail!("{}", explain(status, &body));
        }
        say(&format!("deleted {} {}", kind.name(), args.name));
        Ok(ExitCode::SUCCESS)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_named_like_kumactl() {
        for text in ["meshgateways", "meshgateway", "MeshGateway"] {
            assert_eq!(kind_named(text).unwrap(), Kind::MeshGateway);
        }
        assert_eq!(kind_named("external-services").unwrap(), Kind::ExternalService);
        assert_eq!(kind_named("meshhttproute").unwrap(), Kind::MeshHttpRoute);
        assert!(kind_named("gateways").unwrap_err().to_string().contains("meshgateways"));
        assert_eq!(path_of(Kind::MeshGateway, Some("default"), Some("edge")), "/meshes/default/meshgateways/edge");
        assert_eq!(path_of(Kind::MeshGateway, None, None), "/meshgateways");
        assert_eq!(path_of(Kind::Mesh, None, Some("default")), "/meshes/default");
    }
}
