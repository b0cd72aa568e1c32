//! The command line: global options, one module per command group, and
//! printing. It parses, calls the library (the fleet engine, the client,
//! the CA) and prints what comes back; it decides nothing else.

mod apply;
mod certs;
mod diagnose;
pub mod docs;
mod error;
pub mod exit;
mod get;
mod host;
mod iface;
mod macvlan;
mod matrix;
mod plan;
mod probe;
mod progress;
mod promisc;
mod report;
mod spec;
mod vlan;

pub use error::CtlError;
pub use exit::Exit;

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser, Subcommand};
use tonic::transport::Channel;

use crate::{
    client::Target,
    config::{ConfigError, FleetTargets, Selection},
    fleet::{FleetPlan, Goal},
    output::{ColorChoice, Format},
    spec::FleetSpec,
};

/// linkherdctl: inspect and change linkherd hosts over mTLS gRPC:
/// interfaces and promiscuous mode, VLANs, macvlan endpoints, probes; plan,
/// apply, verify and destroy fleet specs.
#[derive(Debug, Parser)]
#[command(name = "linkherdctl", version, about, after_long_help = exit::table())]
pub struct Cli {
    /// Agent address: https://HOST:PORT (mTLS) or unix:///PATH.
    #[arg(
        long,
        global = true,
        env = "LINKHERD_AGENT",
        help_heading = "Connection"
    )]
    pub agent: Option<String>,
    /// CA certificate that signed the agents' certificates (PEM).
    #[arg(long, global = true, env = "LINKHERD_CA", help_heading = "Connection")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(
        long,
        global = true,
        env = "LINKHERD_CERT",
        help_heading = "Connection"
    )]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, global = true, env = "LINKHERD_KEY", help_heading = "Connection")]
    pub key: Option<PathBuf>,
    /// TOML file with default credentials and named hosts.
    #[arg(
        long,
        global = true,
        env = "LINKHERD_CTL_CONFIG",
        help_heading = "Connection"
    )]
    pub config: Option<PathBuf>,
    /// Host from --config to talk to.
    #[arg(
        long,
        global = true,
        env = "LINKHERD_HOST",
        help_heading = "Connection"
    )]
    pub host: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, help_heading = "Output")]
    pub output: Option<Format>,
    /// Colour plans: auto (a terminal, unless NO_COLOR is set), always, never.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = ColorChoice::Auto,
        value_name = "WHEN",
        help_heading = "Output"
    )]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Host information and capabilities.
    #[command(subcommand)]
    Host(host::HostCmd),
    /// Interfaces: list, get, watch, up/down, mtu.
    #[command(name = "if", subcommand)]
    If(iface::IfCmd),
    /// Promiscuous mode, optionally with a lease that reverts by itself.
    #[command(subcommand)]
    Promisc(promisc::PromiscCmd),
    /// 802.1Q / 802.1ad VLAN sub-interfaces.
    #[command(subcommand)]
    Vlan(vlan::VlanCmd),
    /// Macvlan endpoints in network namespaces.
    #[command(subcommand)]
    Macvlan(macvlan::MacvlanCmd),
    /// Host access: let a host reach its own macvlan endpoints.
    #[command(name = "host-access", subcommand)]
    HostAccess(macvlan::HostAccessCmd),
    /// Connectivity probes run by the agent inside a namespace.
    #[command(subcommand)]
    Probe(probe::ProbeCmd),
    /// Certificates: create a fleet CA, issue agent and client certificates.
    #[command(subcommand)]
    Certs(certs::CertsCmd),
    /// What applying a fleet spec would change on every host (exit 2 when
    /// there are changes, 0 when none); changes nothing.
    Plan(FleetArgs),
    /// Make the fleet what a spec says: plan, ask, apply on every host as
    /// one commit-confirmed transaction, prove it with probes, then confirm
    /// everywhere or roll back everywhere.
    Apply(apply::ApplyArgs),
    /// Remove every endpoint, host access and VLAN a spec made, on every
    /// host, as one transaction.
    Destroy(apply::TxnArgs),
    /// Prove the fleet as it is: every endpoint of the spec present, and the
    /// probes of its `verify` section (matrix printed); changes nothing.
    /// Exit 0 when all holds, 1 otherwise.
    Verify(FleetArgs),
    /// How every host differs from a fleet spec (drift); exit 2 when one
    /// does, 0 when all are in sync.
    Status(FleetArgs),
    /// Read a fleet spec's objects from the hosts.
    #[command(subcommand)]
    Get(get::GetCmd),
    /// Fleet specs: check one offline, print the JSON Schema.
    #[command(subcommand)]
    Spec(spec::SpecCmd),
    /// Print a shell completion script, e.g.
    /// `linkherdctl completion bash > /etc/bash_completion.d/linkherdctl`.
    Completion {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// A network namespace, given one of three ways (endpoints and probes).
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct NetnsArgs {
    /// A named namespace (/run/netns/NAME).
    #[arg(long)]
    netns: Option<String>,
    /// A namespace file, e.g. /proc/1234/ns/net.
    #[arg(long)]
    netns_path: Option<PathBuf>,
    /// A process (e.g. a container's) whose namespace to use.
    #[arg(long)]
    pid: Option<u32>,
}

impl NetnsArgs {
    /// The request field; `None` when no namespace was given.
    pub fn target(&self) -> Option<linkherd_proto::pb::NetnsTarget> {
        use linkherd_proto::model::NetnsRef;
        let n = match (&self.netns, &self.netns_path, self.pid) {
            (Some(n), _, _) => NetnsRef::Named(n.clone()),
            (_, Some(p), _) => NetnsRef::Path(p.clone()),
            (_, _, Some(pid)) => NetnsRef::Pid(pid),
            _ => return None,
        };
        Some(linkherd_proto::convert::netns_to_pb(&n))
    }
}

/// The spec a read-only fleet command works on.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// The fleet spec (YAML).
    #[arg(short = 'f', long)]
    file: PathBuf,
    /// Leave out hosts that do not answer instead of stopping.
    #[arg(long)]
    skip_unreachable: bool,
}

/// What a command needs to reach its agent and print.
#[derive(Debug)]
pub struct Ctx {
    target: Result<Target, ConfigError>,
    pub format: Format,
    /// Whether to paint plans.
    pub colour: bool,
    /// The connection flags, to reach other hosts of the config file.
    pub selection: Selection,
}

impl Ctx {
    /// A channel to the agent the flags name.
    pub async fn channel(&self) -> Result<Channel, CtlError> {
        match &self.target {
            Ok(t) => Ok(t.connect().await?),
            Err(e) => Err(CtlError::Config(e.clone())),
        }
    }

    /// Where the fleet engine finds each host of a spec.
    pub fn fleet_targets(&self) -> Result<FleetTargets, CtlError> {
        Ok(FleetTargets::new(&self.selection)?)
    }

    /// Loads the spec and plans the fleet for `goal` — what `plan`,
    /// `status`, `apply`, `destroy` and `verify` all start from — warning
    /// about each host left out.
    pub async fn plan_fleet(
        &self,
        file: &Path,
        goal: Goal,
        skip_unreachable: bool,
    ) -> Result<FleetPlan, CtlError> {
        let spec = FleetSpec::load(file)?;
        let targets = self.fleet_targets()?;
        let plan = crate::fleet::plan(spec, &targets, goal, skip_unreachable).await?;
        for s in &plan.skipped {
            eprintln!(
                "warning: skipping unreachable host {}",
                crate::output::terminal(&s.to_string())
            );
        }
        Ok(plan)
    }

    /// Whether output is for a person (tables and sentences).
    pub fn text(&self) -> bool {
        self.format == Format::Table
    }
}

/// Runs one command; the exit code is for the shell.
pub async fn run(cli: Cli) -> Result<Exit, CtlError> {
    let sel = Selection {
        agent: cli.agent,
        ca: cli.ca,
        cert: cli.cert,
        key: cli.key,
        config: cli.config,
        host: cli.host,
    };
    // Resolution errors only matter to commands that connect (certs do not).
    let (target, file_format) = match sel.resolve() {
        Ok((t, f)) => (Ok(t), f),
        Err(e) => (Err(e), None),
    };
    let ctx = Ctx {
        target,
        format: cli.output.or(file_format).unwrap_or_default(),
        colour: cli.color.enabled(),
        selection: sel,
    };
    dispatch(&ctx, cli.command).await
}

async fn dispatch(ctx: &Ctx, command: Command) -> Result<Exit, CtlError> {
    match command {
        Command::Host(c) => host::run(ctx, c).await,
        Command::If(c) => iface::run(ctx, c).await,
        Command::Promisc(c) => promisc::run(ctx, c).await,
        Command::Vlan(c) => vlan::run(ctx, c).await,
        Command::Macvlan(c) => macvlan::run(ctx, c).await,
        Command::HostAccess(c) => macvlan::run_host_access(ctx, c).await,
        Command::Probe(c) => probe::run(ctx, c).await,
        Command::Certs(c) => certs::run(ctx, c),
        Command::Spec(c) => spec::run(ctx, c),
        Command::Plan(a) => plan::plan(ctx, &a.file, a.skip_unreachable).await,
        Command::Status(a) => plan::status(ctx, &a.file, a.skip_unreachable).await,
        Command::Apply(a) => apply::apply(ctx, a).await,
        Command::Destroy(a) => apply::destroy(ctx, a).await,
        Command::Verify(a) => apply::verify(ctx, &a.file, a.skip_unreachable).await,
        Command::Get(c) => get::run(ctx, c).await,
        Command::Completion { shell } => completion(shell),
    }
}

/// `completion SHELL`: the script on stdout.
fn completion(shell: clap_complete::Shell) -> Result<Exit, CtlError> {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "linkherdctl", &mut script);
    std::io::stdout()
        .write_all(&script)
        .map_err(|source| CtlError::Io {
            what: "write the completion script",
            source,
        })?;
    Ok(Exit::Success)
}
