//! The command line: global connection options and one module per command
//! group.

mod apply;
mod certs;
mod get;
mod host;
mod iface;
mod macvlan;
mod plan;
mod probe;
mod promisc;
mod spec;
mod vlan;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tonic::transport::Channel;

use crate::{client::Target, config::Selection, error::CtlError, output::Format};

/// linkherdctl: inspect and change linkherd hosts over mTLS gRPC:
/// interfaces and promiscuous mode, VLANs, macvlan endpoints, probes.
#[derive(Debug, Parser)]
#[command(name = "linkherdctl", version, about)]
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
    Plan {
        /// The fleet spec (YAML).
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// Leave out hosts that do not answer instead of stopping.
        #[arg(long)]
        skip_unreachable: bool,
    },
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
    Verify {
        /// The fleet spec (YAML).
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// Leave out hosts that do not answer instead of stopping.
        #[arg(long)]
        skip_unreachable: bool,
    },
    /// How every host differs from a fleet spec (drift); exit 2 when one
    /// does, 0 when all are in sync.
    Status {
        /// The fleet spec (YAML).
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// Leave out hosts that do not answer instead of stopping.
        #[arg(long)]
        skip_unreachable: bool,
    },
    /// Read a fleet spec's objects from the hosts.
    #[command(subcommand)]
    Get(get::GetCmd),
    /// Fleet specs: check one offline, print the JSON Schema.
    #[command(subcommand)]
    Spec(spec::SpecCmd),
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

/// What a command needs to reach its agent and print.
#[derive(Debug)]
pub struct Ctx {
    target: Result<Target, CtlError>,
    pub format: Format,
    /// The connection flags, to reach other hosts of the config file.
    pub selection: Selection,
}

impl Ctx {
    pub async fn channel(&self) -> Result<Channel, CtlError> {
        match &self.target {
            Ok(t) => t.connect().await,
            Err(e) => Err(match e {
                CtlError::Config(c) => CtlError::Config(c.clone()),
                other => CtlError::Output(other.to_string()),
            }),
        }
    }
}

/// Decodes an interface from an agent's response.
pub fn decode_interface(
    i: Option<linkherd_proto::pb::Interface>,
) -> Result<linkherd_proto::model::Interface, CtlError> {
    iface::decode(i)
}

/// Runs one command; the exit code is for the shell.
pub async fn run(cli: Cli) -> Result<ExitCode, CtlError> {
    let sel = Selection {
        agent: cli.agent,
        ca: cli.ca,
        cert: cli.cert,
        key: cli.key,
        config: cli.config,
        host: cli.host,
    };
    // Resolution errors only matter to commands that connect (certs do not).
    let resolved = sel.resolve().map_err(CtlError::from);
    let selection = sel.clone();
    let (target, file_format) = match resolved {
        Ok((t, f)) => (Ok(t), f),
        Err(e) => (Err(e), None),
    };
    let ctx = Ctx {
        target,
        format: cli.output.or(file_format).unwrap_or_default(),
        selection,
    };
    match cli.command {
        Command::Host(c) => host::run(&ctx, c).await,
        Command::If(c) => iface::run(&ctx, c).await,
        Command::Promisc(c) => promisc::run(&ctx, c).await,
        Command::Vlan(c) => vlan::run(&ctx, c).await,
        Command::Macvlan(c) => macvlan::run(&ctx, c).await,
        Command::HostAccess(c) => macvlan::run_host_access(&ctx, c).await,
        Command::Probe(c) => probe::run(&ctx, c).await,
        Command::Certs(c) => certs::run(&ctx, c),
        Command::Spec(c) => spec::run(&ctx, c),
        Command::Plan {
            file,
            skip_unreachable,
        } => plan::run(&ctx, file, skip_unreachable).await,
        Command::Apply(a) => apply::apply(&ctx, a).await,
        Command::Destroy(a) => apply::destroy(&ctx, a).await,
        Command::Verify {
            file,
            skip_unreachable,
        } => apply::verify(&ctx, file, skip_unreachable).await,
        Command::Get(c) => get::run(&ctx, c).await,
        Command::Status {
            file,
            skip_unreachable,
        } => plan::status(&ctx, file, skip_unreachable).await,
    }
}
