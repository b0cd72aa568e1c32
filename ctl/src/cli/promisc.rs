//! `linkherdctl promisc on|off NAME [--lease SECS]`.

use clap::Subcommand;
use linkherd_proto::pb::{self, interface_service_client::InterfaceServiceClient};

use super::{CtlError, Ctx, Exit, iface::print_changed};
use crate::output::promisc_cell;

#[derive(Debug, Subcommand)]
pub enum PromiscCmd {
    /// Accept frames for any MAC on this interface.
    On {
        /// The interface, e.g. ens192.
        name: String,
        /// Revert by itself after this many seconds unless renewed.
        #[arg(long, value_name = "SECS")]
        lease: Option<u32>,
    },
    /// Stop accepting frames for other MACs.
    Off {
        /// The interface, e.g. ens192.
        name: String,
        /// Revert by itself after this many seconds unless renewed.
        #[arg(long, value_name = "SECS")]
        lease: Option<u32>,
    },
}

pub async fn run(ctx: &Ctx, cmd: PromiscCmd) -> Result<Exit, CtlError> {
    let (name, enabled, lease) = match cmd {
        PromiscCmd::On { name, lease } => (name, true, lease),
        PromiscCmd::Off { name, lease } => (name, false, lease),
    };
    let mut client = InterfaceServiceClient::new(ctx.channel().await?);
    let r = client
        .set_promiscuous(pb::SetPromiscuousRequest {
            name,
            enabled,
            lease_seconds: lease.unwrap_or(0),
        })
        .await?
        .into_inner();
    print_changed(ctx, r.outcome, r.interface, |c| {
        format!(
            "{}: promiscuous {} ({})",
            c.interface.name,
            promisc_cell(&c.interface),
            c.outcome
        )
    })?;
    Ok(Exit::Success)
}
