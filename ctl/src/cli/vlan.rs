//! `linkherdctl vlan create|delete|list`.

use clap::{Subcommand, ValueEnum};
use linkherd_proto::{
    model::VlanState,
    pb::{self, vlan_service_client::VlanServiceClient},
};
use serde::Serialize;

use super::{CtlError, Ctx, Exit, iface::outcome_name};
use crate::output;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Protocol {
    #[value(name = "802.1Q", alias = "802.1q")]
    Dot1q,
    #[value(name = "802.1ad", alias = "802.1AD")]
    Dot1ad,
}

#[derive(Debug, Subcommand)]
pub enum VlanCmd {
    /// Create an 802.1Q / 802.1ad sub-interface (up), e.g. ens192.10.
    Create {
        /// The parent interface, e.g. ens192.
        #[arg(long)]
        parent: String,
        /// VLAN id, 1-4094.
        #[arg(long)]
        id: u32,
        /// Interface name (default PARENT.ID).
        #[arg(long)]
        name: Option<String>,
        /// The tag protocol: 802.1Q, or 802.1ad (QinQ outer tag).
        #[arg(long, value_enum, default_value = "802.1Q")]
        protocol: Protocol,
        /// MTU (default: the parent's).
        #[arg(long)]
        mtu: Option<u32>,
    },
    /// Delete a VLAN linkherd created (--force for any VLAN).
    Delete {
        /// The VLAN interface, e.g. ens192.10.
        name: String,
        #[arg(long)]
        force: bool,
    },
    /// Every VLAN on the host, and which are linkherd's.
    List,
}

#[derive(Debug, Serialize)]
struct Created {
    outcome: &'static str,
    vlan: VlanState,
}

fn table(vlans: &[VlanState]) -> String {
    let mut t = output::table();
    t.set_header([
        "NAME",
        "PARENT",
        "ID",
        "PROTOCOL",
        "MTU",
        "REORDER_HDR",
        "OWNED",
    ]);
    for v in vlans {
        t.add_row([
            v.name.clone(),
            v.parent.clone(),
            v.id.to_string(),
            v.protocol.as_str().to_owned(),
            v.mtu.to_string(),
            if v.reorder_header { "on" } else { "off" }.to_owned(),
            match (&v.auto_for_network, v.owned) {
                (Some(n), _) => format!("yes (for {n})"),
                (None, true) => "yes".into(),
                (None, false) => "no".into(),
            },
        ]);
    }
    t.to_string()
}

pub async fn run(ctx: &Ctx, cmd: VlanCmd) -> Result<Exit, CtlError> {
    let mut client = VlanServiceClient::new(ctx.channel().await?);
    match cmd {
        VlanCmd::Create {
            parent,
            id,
            name,
            protocol,
            mtu,
        } => {
            let r = client
                .create(pb::CreateVlanRequest {
                    parent,
                    id,
                    protocol: match protocol {
                        Protocol::Dot1q => pb::VlanProtocol::VlanProtocol8021q,
                        Protocol::Dot1ad => pb::VlanProtocol::VlanProtocol8021ad,
                    }
                    .into(),
                    name: name.unwrap_or_default(),
                    mtu: mtu.unwrap_or(0),
                })
                .await?
                .into_inner();
            let c = Created {
                outcome: outcome_name(r.outcome),
                vlan: r.vlan.ok_or(CtlError::EmptyResponse)?.try_into()?,
            };
            output::print(ctx.format, &c, |c| {
                format!(
                    "{}: VLAN {} {} on {} ({})",
                    c.vlan.name,
                    c.vlan.protocol.as_str(),
                    c.vlan.id,
                    c.vlan.parent,
                    c.outcome
                )
            })?;
        }
        VlanCmd::Delete { name, force } => {
            let r = client
                .delete(pb::DeleteVlanRequest {
                    name: name.clone(),
                    force,
                })
                .await?
                .into_inner();
            let outcome = outcome_name(r.outcome);
            output::print(
                ctx.format,
                &serde_json::json!({ "name": name, "outcome": outcome }),
                |_| format!("{name}: {outcome}"),
            )?;
        }
        VlanCmd::List => {
            let r = client.list(pb::ListVlansRequest {}).await?.into_inner();
            let vlans = r
                .vlans
                .into_iter()
                .map(VlanState::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            output::print(ctx.format, &vlans, |v| table(v))?;
        }
    }
    Ok(Exit::Success)
}
