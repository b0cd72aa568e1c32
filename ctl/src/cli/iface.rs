//! `linkherdctl if list|get|watch|up|down|mtu`.

use clap::Subcommand;
use futures::StreamExt;
use linkherd_proto::{
    model::Interface,
    pb::{
        self, interface_service_client::InterfaceServiceClient, watch_interfaces_response::Event,
    },
};
use serde::Serialize;

use super::{CtlError, Ctx, Exit};
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum IfCmd {
    /// All interfaces with state, promiscuous mode and addresses.
    List,
    /// One interface in detail, with counters.
    Get {
        /// The interface, e.g. ens192.
        name: String,
    },
    /// Stream changes as the kernel reports them (snapshot first).
    Watch {
        /// Exit after this many change events (after the snapshot).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Set an interface administratively up.
    Up {
        /// The interface, e.g. ens192.
        name: String,
    },
    /// Set an interface administratively down.
    Down {
        /// The interface, e.g. ens192.
        name: String,
    },
    /// Set an interface's MTU.
    Mtu {
        /// The interface, e.g. ens192.
        name: String,
        /// The new MTU in bytes.
        mtu: u32,
    },
}

/// A mutation's result, as printed.
#[derive(Debug, Serialize)]
pub struct Changed {
    pub outcome: &'static str,
    pub interface: Interface,
}

pub fn outcome_name(o: i32) -> &'static str {
    match pb::Outcome::try_from(o) {
        Ok(pb::Outcome::Created) => "created",
        Ok(pb::Outcome::Changed) => "changed",
        Ok(pb::Outcome::Unchanged) => "unchanged",
        Ok(pb::Outcome::Deleted) => "deleted",
        _ => "unknown",
    }
}

pub fn decode(i: Option<pb::Interface>) -> Result<Interface, CtlError> {
    Ok(i.ok_or(CtlError::EmptyResponse)?.try_into()?)
}

#[derive(Debug, Serialize)]
struct WatchLine {
    event: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<Interface>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

fn watch_line(ev: Event) -> Result<WatchLine, CtlError> {
    let line = |event, iface: Option<Interface>| WatchLine {
        event,
        fields: Vec::new(),
        interface: iface,
        index: None,
        name: None,
    };
    Ok(match ev {
        Event::Existing(i) => line("existing", Some(i.try_into()?)),
        Event::Synced(_) => line("synced", None),
        Event::Added(i) => line("added", Some(i.try_into()?)),
        Event::Changed(c) => WatchLine {
            fields: c.fields,
            ..line("changed", Some(decode(c.interface)?))
        },
        Event::Removed(r) => WatchLine {
            index: Some(r.index),
            name: Some(r.name),
            ..line("removed", None)
        },
    })
}

fn watch_text(l: &WatchLine) -> String {
    match &l.interface {
        Some(i) => {
            let mut s = format!(
                "{:<9} {:<15} {}/{} promisc {} mtu {}",
                l.event,
                i.name,
                if i.admin_up { "up" } else { "down" },
                i.oper_state.as_str(),
                output::promisc_cell(i),
                i.mtu
            );
            if !l.fields.is_empty() {
                s.push_str(&format!(" [{}]", l.fields.join(", ")));
            }
            s
        }
        None => match &l.name {
            Some(n) => format!("{:<9} {n}", l.event),
            None => l.event.to_owned(),
        },
    }
}

pub async fn run(ctx: &Ctx, cmd: IfCmd) -> Result<Exit, CtlError> {
    let mut client = InterfaceServiceClient::new(ctx.channel().await?);
    match cmd {
        IfCmd::List => {
            let r = client
                .list(pb::ListInterfacesRequest {})
                .await?
                .into_inner();
            let ifaces = r
                .interfaces
                .into_iter()
                .map(Interface::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            output::print(ctx.format, &ifaces, |i| output::interface_table(i))?;
        }
        IfCmd::Get { name } => {
            let r = client
                .get(pb::GetInterfaceRequest { name })
                .await?
                .into_inner();
            let iface = decode(r.interface)?;
            output::print(ctx.format, &iface, output::interface_detail)?;
        }
        IfCmd::Watch { count } => watch(ctx, &mut client, count).await?,
        IfCmd::Up { name } => set_up(ctx, &mut client, name, true).await?,
        IfCmd::Down { name } => set_up(ctx, &mut client, name, false).await?,
        IfCmd::Mtu { name, mtu } => {
            let r = client
                .set_mtu(pb::SetMtuRequest { name, mtu })
                .await?
                .into_inner();
            print_changed(ctx, r.outcome, r.interface, |c| {
                format!(
                    "{}: mtu {} ({})",
                    c.interface.name, c.interface.mtu, c.outcome
                )
            })?;
        }
    }
    Ok(Exit::Success)
}

/// Prints each event as it comes: the snapshot, the sync marker, then
/// changes; ends after `count` changes when given.
async fn watch(
    ctx: &Ctx,
    client: &mut InterfaceServiceClient<tonic::transport::Channel>,
    count: Option<u64>,
) -> Result<(), CtlError> {
    let mut stream = client
        .watch(pb::WatchInterfacesRequest {})
        .await?
        .into_inner();
    let mut synced = false;
    let mut seen = 0u64;
    while let Some(msg) = stream.next().await {
        let Some(ev) = msg?.event else { continue };
        let line = watch_line(ev)?;
        let is_sync = line.event == "synced";
        match ctx.format {
            // One JSON document per line, for `jq` and friends.
            Format::Json => println!("{}", output::json_line(&line)?),
            Format::Yaml => println!(
                "---\n{}",
                output::structured(Format::Yaml, &line)?.unwrap_or_default()
            ),
            Format::Table => println!("{}", output::terminal(&watch_text(&line))),
        }
        if synced && !is_sync {
            seen += 1;
        }
        synced |= is_sync;
        if count.is_some_and(|c| synced && seen >= c) {
            break;
        }
    }
    Ok(())
}

async fn set_up(
    ctx: &Ctx,
    client: &mut InterfaceServiceClient<tonic::transport::Channel>,
    name: String,
    up: bool,
) -> Result<(), CtlError> {
    let r = client
        .set_up(pb::SetUpRequest { name, up })
        .await?
        .into_inner();
    print_changed(ctx, r.outcome, r.interface, |c| {
        format!(
            "{}: {}/{} ({})",
            c.interface.name,
            if c.interface.admin_up { "up" } else { "down" },
            c.interface.oper_state.as_str(),
            c.outcome
        )
    })
}

pub fn print_changed(
    ctx: &Ctx,
    outcome: i32,
    iface: Option<pb::Interface>,
    text: impl FnOnce(&Changed) -> String,
) -> Result<(), CtlError> {
    let changed = Changed {
        outcome: outcome_name(outcome),
        interface: decode(iface)?,
    };
    Ok(output::print(ctx.format, &changed, text)?)
}
