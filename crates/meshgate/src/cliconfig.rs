//! The CLI's own configuration: named control planes and the one in use, like kumactl's contexts. Kept in
//! `$MESHGATE_CONFIG`, or `~/.meshgate/config.yaml`, readable by its owner only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Where a control plane is when nothing says otherwise.
pub const DEFAULT_CP: &str = "https://127.0.0.1:5681";

/// The file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CliConfig {
    /// The control plane in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Every control plane added.
    #[serde(default)]
    pub control_planes: Vec<ControlPlane>,
}

/// A named control plane.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlane {
    /// Its name.
    pub name: String,
    /// Its API address.
    pub address: String,
    /// The user token sent to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The CA of its certificate (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// `meshgate config …`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Named control planes.
    ///
    /// Example: meshgate config control-planes list
    #[command(name = "control-planes", subcommand)]
    ControlPlanes(ControlPlanesCommand),
}

/// `meshgate config control-planes …`.
#[derive(Debug, clap::Subcommand)]
pub enum ControlPlanesCommand {
    /// Add a control plane and use it.
    ///
    /// Example: meshgate config control-planes add --name prod --address https://cp.example.com:5682
    Add {
        /// Its name.
        #[arg(long)]
        name: String,
        /// Its API address.
        #[arg(long)]
        address: String,
        /// How to authenticate: `tokens` (a user token, given with --auth-conf token=…).
        #[arg(long, value_name = "TYPE")]
        auth_type: Option<String>,
        /// Authentication settings, `token=<user token>`.
        #[arg(long, value_name = "KEY=VALUE")]
        auth_conf: Vec<String>,
        /// The CA of an https control plane's certificate.
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        /// Replace one of the same name.
        #[arg(long)]
        overwrite: bool,
    },
    /// Use another control plane.
    ///
    /// Example: meshgate config control-planes use prod
    Use {
        /// Its name.
        name: String,
    },
    /// List the control planes (`*` marks the one in use).
    ///
    /// Example: meshgate config control-planes list
    List,
    /// Remove a control plane.
    ///
    /// Example: meshgate config control-planes remove staging
    Remove {
        /// Its name.
        name: String,
    },
}

fn path() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("MESHGATE_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").context("HOME is not set (or set MESHGATE_CONFIG)")?;
    Ok(PathBuf::from(home).join(".meshgate").join("config.yaml"))
}

impl CliConfig {
    /// The configuration, or an empty one when there is no file yet.
    pub fn load() -> anyhow::Result<CliConfig> {
        let path = path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_saphyr::from_str(&text).with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CliConfig::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file, readable and writable by its owner only (it will hold credentials).
    fn save(&self) -> anyhow::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        use std::os::unix::fs::PermissionsExt as _;
        let path = path()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_saphyr::to_string(self).context("writing the configuration")?;
        let tmp = path.with_extension("yaml.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(text.as_bytes())?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// The control plane in use, if one is configured.
    pub fn current(&self) -> Option<&ControlPlane> {
        let current = self.current.as_deref()?;
        self.control_planes.iter().find(|c| c.name == current)
    }
}

/// The control plane to talk to, the token to send and the CA to trust: flags (or their environment variables)
/// first, else the control plane in use, else [`DEFAULT_CP`] without a token.
pub fn resolve(
    flag: Option<&str>,
    token: Option<&str>,
    ca_cert: Option<&std::path::Path>,
) -> anyhow::Result<(String, Option<String>, Option<PathBuf>)> {
    let config = CliConfig::load()?;
    // A configured token and CA go only to their own control plane.
    let current = config.current().filter(|c| flag.is_none_or(|f| f == c.address));
    let address = flag.map(str::to_owned).or_else(|| current.map(|c| c.address.clone()));
    let token = token.map(str::to_owned).or_else(|| current.and_then(|c| c.token.clone()));
    let ca_cert = ca_cert.map(std::path::Path::to_path_buf).or_else(|| current.and_then(|c| c.ca_cert.clone()));
    Ok((address.unwrap_or_else(|| DEFAULT_CP.to_owned()), token, ca_cert))
}

/// Runs `meshgate config …`.
pub fn run(command: &ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::ControlPlanes(command) = command;
    let mut config = CliConfig::load()?;
    match command {
        ControlPlanesCommand::Add { name, address, auth_type, auth_conf, ca_cert, overwrite } => {
            if !(address.starts_with("http://") || address.starts_with("https://")) {
                bail!("--address must be an http:// or https:// URL");
            }
            let token = match auth_type.as_deref() {
                None => None,
                Some("tokens") => {
                    let token = auth_conf.iter().find_map(|kv| kv.strip_prefix("token=")).map(str::to_owned);
                    Some(token.context("--auth-type tokens needs --auth-conf token=<user token>")?)
                }
                Some(other) => bail!("--auth-type {other:?}: only `tokens` is known"),
            };
            let ca_cert = match ca_cert {
                Some(p) => Some(std::fs::canonicalize(p).with_context(|| format!("{}", p.display()))?),
                None => None,
            };
            let entry = ControlPlane { name: name.clone(), address: address.clone(), token, ca_cert };
            match config.control_planes.iter_mut().find(|c| &c.name == name) {
                Some(_) if !*overwrite => bail!("a control plane named {name:?} exists (--overwrite replaces it)"),
                Some(existing) => *existing = entry,
                None => config.control_planes.push(entry),
            }
            config.current = Some(name.clone());
            config.save()?;
            println!("added control plane {name:?} ({address}) and switched to it");
        }
        ControlPlanesCommand::Use { name } => {
            if !config.control_planes.iter().any(|c| &c.name == name) {
                bail!("no control plane named {name:?} (see `meshgate config control-planes list`)");
            }
            config.current = Some(name.clone());
            config.save()?;
            println!("switched to control plane {name:?}");
        }
        ControlPlanesCommand::List => {
            println!("ACTIVE   NAME   ADDRESS");
            for c in &config.control_planes {
                let mark = if config.current.as_deref() == Some(c.name.as_str()) { "*" } else { " " };
                println!("{mark}        {}   {}", c.name, c.address);
            }
        }
        ControlPlanesCommand::Remove { name } => {
            let before = config.control_planes.len();
            config.control_planes.retain(|c| &c.name != name);
            if config.control_planes.len() == before {
                bail!("no control plane named {name:?}");
            }
            if config.current.as_deref() == Some(name.as_str()) {
                config.current = None;
            }
            config.save()?;
            println!("removed control plane {name:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
