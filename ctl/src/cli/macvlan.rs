//! `linkherdctl macvlan create|delete|list` and `host-access create|delete|list`.

use clap::{Subcommand, ValueEnum};
use linkherd_proto::{
    model::{EndpointState, HostAccessState},
    pb::{self, macvlan_service_client::MacvlanServiceClient},
};
use serde::Serialize;

use super::{CtlError, Ctx, Exit, NetnsArgs, iface::outcome_name};
use crate::output;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    Bridge,
    Vepa,
    Private,
    Passthru,
    Source,
}

impl From<Mode> for pb::MacvlanMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Bridge => pb::MacvlanMode::Bridge,
            Mode::Vepa => pb::MacvlanMode::Vepa,
            Mode::Private => pb::MacvlanMode::Private,
            Mode::Passthru => pb::MacvlanMode::Passthru,
            Mode::Source => pb::MacvlanMode::Source,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum MacvlanCmd {
    /// Create an endpoint: a macvlan inside a namespace, with addresses,
    /// default route and a stable MAC. A missing VLAN parent "X.<id>" is
    /// created (and removed with the network's last endpoint).
    Create(CreateArgs),
    /// Delete one endpoint (--network and --name), a whole network
    /// (--network alone), or a macvlan by place (--netns… and --ifname).
    Delete {
        /// The network of the endpoint, or the whole network to delete.
        #[arg(long)]
        network: Option<String>,
        /// The endpoint's name in the network.
        #[arg(long, requires = "network")]
        name: Option<String>,
        #[command(flatten)]
        place: NetnsArgs,
        /// The macvlan's name inside the namespace (with --netns…).
        #[arg(long)]
        ifname: Option<String>,
        /// Delete a macvlan linkherd did not create.
        #[arg(long)]
        force: bool,
    },
    /// Every endpoint on the host.
    List,
}

/// A new endpoint, as `macvlan create` takes it.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The macvlan network, e.g. mac_net10.
    #[arg(long)]
    network: String,
    /// The endpoint's name in the network, e.g. b1.
    #[arg(long)]
    name: String,
    /// Parent interface, e.g. ens192 or ens192.10.
    #[arg(long)]
    parent: String,
    /// Always explicit: the kernel's own default is vepa.
    #[arg(long, value_enum)]
    mode: Mode,
    #[command(flatten)]
    place: NetnsArgs,
    /// Create the named namespace if missing (and delete it with the endpoint).
    #[arg(long, requires = "netns")]
    create_netns: bool,
    /// Interface name inside the namespace.
    #[arg(long, default_value = "eth0")]
    ifname: String,
    /// Address with prefix length; repeat for more (IPv4 and/or IPv6).
    #[arg(long = "ip", value_name = "CIDR")]
    ips: Vec<String>,
    /// Default route via this gateway.
    #[arg(long)]
    gateway: Option<String>,
    /// MAC address (default: stable, derived from network and name).
    #[arg(long)]
    mac: Option<String>,
    /// MTU (default: the parent's).
    #[arg(long)]
    mtu: Option<u32>,
    /// Mode source only: a MAC allowed to send; repeat for more.
    #[arg(long = "source-mac", value_name = "MAC")]
    source_macs: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum HostAccessCmd {
    /// Let the host reach its own endpoints through a macvlan link of its own (host access).
    Create {
        /// The macvlan network, e.g. mac_net10.
        #[arg(long)]
        network: String,
        /// The parent interface the network's endpoints use, e.g. ens192.10.
        #[arg(long)]
        parent: String,
        /// The host's own address on the network; repeat for more.
        #[arg(long = "ip", value_name = "CIDR", required = true)]
        ips: Vec<String>,
        /// A destination routed through the host-access link (endpoint /32s or a range).
        #[arg(long = "route", value_name = "CIDR")]
        routes: Vec<String>,
        /// Interface name (default lh-NETWORK).
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a network's host-access link.
    Delete {
        /// The macvlan network, e.g. mac_net10.
        #[arg(long)]
        network: String,
    },
    /// Every host-access link on the host.
    List,
}

#[derive(Debug, Serialize)]
struct CreatedEndpoint {
    outcome: &'static str,
    endpoint: EndpointState,
}

#[derive(Debug, Serialize)]
struct CreatedHostAccess {
    outcome: &'static str,
    host_access: HostAccessState,
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn endpoint_table(eps: &[EndpointState]) -> String {
    let mut t = output::table();
    t.set_header([
        "NETWORK",
        "NAME",
        "NETNS",
        "IFNAME",
        "PARENT",
        "MODE",
        "MAC",
        "ADDRESSES",
        "GATEWAY",
    ]);
    for e in eps {
        t.add_row([
            e.network.clone(),
            e.name.clone(),
            e.netns.to_string().trim_start_matches("netns ").to_owned(),
            e.ifname.clone(),
            e.parent.clone(),
            e.mode.as_str().to_owned(),
            e.mac.map(|m| m.to_string()).unwrap_or_default(),
            join(&e.addresses),
            e.gateway
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    t.to_string()
}

fn host_access_table(list: &[HostAccessState]) -> String {
    let mut t = output::table();
    t.set_header(["NETWORK", "NAME", "PARENT", "MAC", "ADDRESSES", "ROUTES"]);
    for h in list {
        t.add_row([
            h.network.clone(),
            h.name.clone(),
            h.parent.clone(),
            h.mac.map(|m| m.to_string()).unwrap_or_default(),
            join(&h.addresses),
            join(&h.routes),
        ]);
    }
    t.to_string()
}

pub async fn run(ctx: &Ctx, cmd: MacvlanCmd) -> Result<Exit, CtlError> {
    let mut client = MacvlanServiceClient::new(ctx.channel().await?);
    match cmd {
        MacvlanCmd::Create(a) => create(ctx, &mut client, a).await?,
        MacvlanCmd::Delete {
            network,
            name,
            place,
            ifname,
            force,
        } => {
            let r = client
                .delete(pb::DeleteMacvlanRequest {
                    network: network.unwrap_or_default(),
                    name: name.unwrap_or_default(),
                    netns: place.target(),
                    ifname: ifname.unwrap_or_default(),
                    force,
                })
                .await?
                .into_inner();
            output::print(
                ctx.format,
                &serde_json::json!({ "removed": r.removed }),
                |_| {
                    r.removed
                        .iter()
                        .map(|s| format!("removed {s}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                },
            )?;
        }
        MacvlanCmd::List => {
            let r = client.list(pb::ListMacvlansRequest {}).await?.into_inner();
            let eps = r
                .endpoints
                .into_iter()
                .map(EndpointState::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            output::print(ctx.format, &eps, |e| endpoint_table(e))?;
        }
    }
    Ok(Exit::Success)
}

async fn create(
    ctx: &Ctx,
    client: &mut MacvlanServiceClient<tonic::transport::Channel>,
    a: CreateArgs,
) -> Result<(), CtlError> {
    let r = client
        .create(pb::CreateMacvlanRequest {
            endpoint: Some(pb::MacvlanEndpoint {
                network: a.network,
                name: a.name,
                parent: a.parent,
                mode: pb::MacvlanMode::from(a.mode).into(),
                netns: a.place.target(),
                ifname: a.ifname,
                addresses: a.ips,
                gateway: a.gateway.unwrap_or_default(),
                mac: a.mac.unwrap_or_default(),
                mtu: a.mtu.unwrap_or(0),
                source_macs: a.source_macs,
                ..Default::default()
            }),
            create_netns: a.create_netns,
        })
        .await?
        .into_inner();
    let c = CreatedEndpoint {
        outcome: outcome_name(r.outcome),
        endpoint: r.endpoint.ok_or(CtlError::EmptyResponse)?.try_into()?,
    };
    output::print(ctx.format, &c, |c| {
        let e = &c.endpoint;
        format!(
            "{}/{}: {} in {} on {} ({}), mac {}, {} ({})",
            e.network,
            e.name,
            e.ifname,
            e.netns,
            e.parent,
            e.mode.as_str(),
            e.mac.map(|m| m.to_string()).unwrap_or_default(),
            join(&e.addresses),
            c.outcome
        )
    })?;
    Ok(())
}

pub async fn run_host_access(ctx: &Ctx, cmd: HostAccessCmd) -> Result<Exit, CtlError> {
    let mut client = MacvlanServiceClient::new(ctx.channel().await?);
    match cmd {
        HostAccessCmd::Create {
            network,
            parent,
            ips,
            routes,
            name,
        } => {
            let r = client
                .create_host_access(pb::CreateHostAccessRequest {
                    host_access: Some(pb::HostAccess {
                        network,
                        parent,
                        name: name.unwrap_or_default(),
                        addresses: ips,
                        routes,
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner();
            let c = CreatedHostAccess {
                outcome: outcome_name(r.outcome),
                host_access: r.host_access.ok_or(CtlError::EmptyResponse)?.try_into()?,
            };
            output::print(ctx.format, &c, |c| {
                let h = &c.host_access;
                format!(
                    "{}: host access {} on {}, {} -> {} ({})",
                    h.network,
                    h.name,
                    h.parent,
                    join(&h.addresses),
                    join(&h.routes),
                    c.outcome
                )
            })?;
        }
        HostAccessCmd::Delete { network } => {
            let r = client
                .delete_host_access(pb::DeleteHostAccessRequest {
                    network: network.clone(),
                    force: false,
                })
                .await?
                .into_inner();
            let outcome = outcome_name(r.outcome);
            output::print(
                ctx.format,
                &serde_json::json!({ "network": network, "outcome": outcome }),
                |_| format!("{network}: host access {outcome}"),
            )?;
        }
        HostAccessCmd::List => {
            let r = client
                .list_host_access(pb::ListHostAccessRequest {})
                .await?
                .into_inner();
            let list = r
                .host_access
                .into_iter()
                .map(HostAccessState::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            output::print(ctx.format, &list, |l| host_access_table(l))?;
        }
    }
    Ok(Exit::Success)
}
