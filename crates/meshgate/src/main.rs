//! `meshgate`: Kuma's builtin gateway, rebuilt in Rust. This binary wires the crates together behind a
//! kumactl-like command line; it holds no gateway logic of its own.

mod cliconfig;
mod client;
mod cp;
mod cptls;
mod dp;
mod explain;
mod generate;
mod inspect;
mod run;
mod ui;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// mimalloc: the request path allocates small, short-lived buffers and header maps; glibc's allocator cost about 6 %
/// of a core at 47k requests/s (perf, `bench/`), mimalloc a third of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kuma's builtin gateway (MeshGateway, MeshGatewayRoute, MeshHTTPRoute ...) as a standalone Rust gateway.
#[derive(Debug, Parser)]
#[command(name = "meshgate", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How `run`, `cp` and `dp` write their logs (standard error): readable text, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value = "text", env = "MESHGATE_LOG_FORMAT")]
    log_format: run::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check Kuma resource files offline, with Kuma's field paths and messages.
    ///
    /// Reads every *.yaml / *.yml file under each PATH (a file, a directory, or `-` for standard input), in
    /// Universal or Kubernetes form, several documents per file. Prints one line per problem,
    /// `FILE:LINE:COL: <Kind> <name>: <field path>: <message>`, and exits 1 if there is any.
    ///
    /// Example: meshgate validate examples/universal
    Validate {
        /// Files or directories to check (`-` reads standard input).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Do not check references between resources (a listener's Secret, a cross-mesh gateway's Mesh).
        #[arg(long)]
        no_references: bool,
    },
    /// Run the gateway: serve every builtin-gateway Dataplane under --config, applying file changes live.
    ///
    /// Example: meshgate run --config examples/quickstart --admin 127.0.0.1:9901
    Run(run::RunArgs),
    /// Run the control plane: Kuma's REST API over a store, validating every write.
    ///
    /// Example: meshgate cp --store sqlite:/var/lib/meshgate/meshgate.db --api 127.0.0.1:5681
    Cp(cp::CpArgs),
    /// Run a gateway fed by a control plane: register its Dataplane, receive its plan, keep serving the last one.
    ///
    /// Example: meshgate dp --cp https://cp:5681 --ca-cert ca.pem --token-file edge-1.token --dataplane-file edge-1.yaml
    Dp(dp::DpArgs),
    /// Create or update resources on a control plane from files (Meshes first), like `kumactl apply`.
    ///
    /// Example: meshgate apply -f examples/universal --dry-run
    Apply(client::ApplyArgs),
    /// Show resources from a control plane, like `kumactl get`.
    ///
    /// Example: meshgate get meshgateways --mesh default -o yaml
    Get(client::GetArgs),
    /// Delete a resource from a control plane, like `kumactl delete`.
    ///
    /// Example: meshgate delete meshgatewayroute edge-route --mesh default
    Delete(client::DeleteArgs),
    /// Generate certificates and tokens.
    ///
    /// Example: meshgate generate tls-certificate --type=server --hostname=foo.example.com
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// The CLI's settings: named control planes.
    ///
    /// Example: meshgate config control-planes add --name prod --address https://cp:5681 --ca-cert ca.pem
    #[command(subcommand)]
    Config(cliconfig::ConfigCommand),
    /// Print a shell completion script.
    ///
    /// Example: meshgate completion bash > /etc/bash_completion.d/meshgate
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Show what a gateway runs, as compiled from files: listeners, routes, clusters and the policies on each.
    ///
    /// Example: meshgate inspect meshgateway edge-gateway --config examples/universal
    #[command(subcommand)]
    Inspect(InspectCommand),
    /// Why a request would go where it goes: the listener, virtual host and route chosen (and the candidates each
    /// beat, with the reason), the filters, the backends and the policies in force with who set each value.
    ///
    /// Offline from files with --config, from a running gateway with --admin, otherwise from the control plane.
    ///
    /// Example: meshgate explain --config examples/universal --host foo.example.com --path /api -H 'x-env: canary'
    Explain(explain::ExplainArgs),
}

#[derive(Debug, Subcommand)]
enum InspectCommand {
    /// The Dataplanes bound to a MeshGateway: merged listeners with their tags, virtual hosts, routes and clusters,
    /// with the policies applied (and overridden) on each.
    ///
    /// Offline from files with --config; otherwise from the control plane, which also says which plan version each
    /// gateway runs.
    ///
    /// Example: meshgate inspect meshgateway edge-gateway --config examples/universal
    #[command(name = "meshgateway")]
    MeshGateway {
        /// The MeshGateway's name.
        name: String,
        /// A file or directory of Kuma resources (instead of a control plane).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Only this mesh (from a control plane: the mesh, default `default`).
        #[arg(long)]
        mesh: Option<String>,
        #[command(flatten)]
        target: client::Target,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "text")]
        output: inspect::Output,
    },
}

#[derive(Debug, Subcommand)]
enum GenerateCommand {
    /// Generate a self-signed key and certificate (kumactl-compatible), e.g. for a gateway listener's Secret.
    ///
    /// Example: meshgate generate tls-certificate --type=server --hostname=foo.example.com --key-file=- --cert-file=- | base64 -w0
    #[command(name = "tls-certificate")]
    TlsCertificate(generate::TlsCertificateArgs),
    /// Ask a control plane (as an admin) for a user token.
    ///
    /// Example: meshgate generate user-token --name alice --group mesh-system:editor --valid-for 24h
    #[command(name = "user-token")]
    UserToken(client::UserTokenArgs),
    /// Ask a control plane (as an admin) for a gateway's dataplane token (for `meshgate dp --token-file`).
    ///
    /// Example: meshgate generate dataplane-token --mesh default --name edge-1 --tag kuma.io/service=edge > edge-1.token
    #[command(name = "dataplane-token")]
    DataplaneToken(client::DataplaneTokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = run::LOG_FORMAT.set(cli.log_format);
    let result = match cli.command {
        Command::Validate { paths, no_references } => validate::run(&paths, !no_references),
        Command::Generate(GenerateCommand::TlsCertificate(args)) => generate::tls_certificate(&args),
        Command::Generate(GenerateCommand::UserToken(args)) => client::user_token(&args),
        Command::Generate(GenerateCommand::DataplaneToken(args)) => client::dataplane_token(&args),
        Command::Run(args) => run::run(args),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "meshgate", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(command) => cliconfig::run(&command),
        Command::Cp(args) => cp::run(args),
        Command::Dp(args) => dp::run(args),
        Command::Apply(args) => client::apply(&args),
        Command::Get(args) => client::get(&args),
        Command::Delete(args) => client::delete(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Inspect(InspectCommand::MeshGateway { name, config, mesh, target, output }) => match config {
            Some(config) => inspect::meshgateway(&config, &name, mesh.as_deref(), output),
            None => client::inspect_meshgateway(&target, mesh.as_deref().unwrap_or("default"), &name, output),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
