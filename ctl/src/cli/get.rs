//! `linkherdctl get endpoints -f SPEC`: where every endpoint of a spec is,
//! as the hosts report it — host, addresses, MAC, parent, namespace — and
//! which ones the fleet does not have (yet).

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use serde::Serialize;

use super::{Ctx, plan::read_fleet};
use crate::{error::CtlError, output, spec::FleetSpec};

#[derive(Debug, Subcommand)]
pub enum GetCmd {
    /// Every endpoint of the spec: host, addresses, MAC, parent, namespace.
    Endpoints {
        /// The fleet spec (YAML).
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
}

#[derive(Debug, Serialize)]
struct Row {
    network: String,
    endpoint: String,
    host: String,
    /// Whether the host has it.
    present: bool,
    addresses: Vec<String>,
    mac: String,
    parent: String,
    netns: String,
}

pub async fn run(ctx: &Ctx, cmd: GetCmd) -> Result<ExitCode, CtlError> {
    let GetCmd::Endpoints { file } = cmd;
    let spec = FleetSpec::load(&file).map_err(|e| CtlError::Spec(Box::new(e)))?;
    let states = read_fleet(ctx, &spec).await?;
    let mut rows = Vec::new();
    for (net_name, net) in &spec.networks {
        for (name, decl) in &net.endpoints {
            let have = states
                .get(&decl.host)
                .and_then(|(_, s)| s.owned.as_ref())
                .and_then(|o| {
                    o.endpoints
                        .iter()
                        .find(|e| e.network == net_name.as_str() && e.name == name.as_str())
                });
            rows.push(Row {
                network: net_name.to_string(),
                endpoint: name.to_string(),
                host: decl.host.clone(),
                present: have.is_some(),
                addresses: have.map(|e| e.addresses.clone()).unwrap_or_default(),
                mac: have.map(|e| e.mac.clone()).unwrap_or_default(),
                parent: have.map(|e| e.parent.clone()).unwrap_or_default(),
                netns: decl.netns.to_string(),
            });
        }
    }
    output::print(ctx.format, &rows, |rows| {
        let mut t = output::table();
        t.set_header([
            "NETWORK",
            "ENDPOINT",
            "HOST",
            "ADDRESSES",
            "MAC",
            "PARENT",
            "NETNS",
        ]);
        for r in rows {
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_owned()
                } else {
                    s.to_owned()
                }
            };
            let addrs = if r.present {
                dash(&r.addresses.join(" "))
            } else {
                "(missing)".to_owned()
            };
            t.add_row([
                r.network.clone(),
                r.endpoint.clone(),
                r.host.clone(),
                addrs,
                dash(&r.mac),
                dash(&r.parent),
                r.netns.clone(),
            ]);
        }
        t.to_string()
    })?;
    Ok(ExitCode::SUCCESS)
}
