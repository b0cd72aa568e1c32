//! `linkherdctl get endpoints -f SPEC`: where every endpoint of a spec is,
//! as the hosts report it — host, addresses, MAC, parent, namespace — and
//! which ones the fleet does not have (yet). `get networks`: see
//! [`networks`].

mod networks;

use std::{collections::BTreeMap, path::PathBuf};

use clap::Subcommand;
use serde::Serialize;

use super::{CtlError, Ctx, Exit};
use crate::{
    fleet::read::{self, HostRead},
    output,
    spec::FleetSpec,
};

#[derive(Debug, Subcommand)]
pub enum GetCmd {
    /// Every endpoint of the spec: host, addresses, MAC, parent, namespace.
    Endpoints {
        /// The fleet spec (YAML).
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
    /// Every network of the spec open to containers, per host: parent,
    /// subnets, gateways and the host's address blocks.
    Networks {
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

pub async fn run(ctx: &Ctx, cmd: GetCmd) -> Result<Exit, CtlError> {
    let (GetCmd::Endpoints { file } | GetCmd::Networks { file }) = &cmd;
    let spec = FleetSpec::load(file)?;
    let hosts = read::read(&spec, &ctx.fleet_targets()?).await.all()?;
    match cmd {
        GetCmd::Endpoints { .. } => output::print(ctx.format, &rows(&spec, &hosts), |r| table(r))?,
        GetCmd::Networks { .. } => {
            output::print(ctx.format, &networks::rows(&spec, &hosts), |r| {
                networks::table(r)
            })?
        }
    }
    Ok(Exit::Success)
}

/// Every endpoint of the spec, with what its host has of it.
fn rows(spec: &FleetSpec, hosts: &BTreeMap<String, HostRead>) -> Vec<Row> {
    let mut rows = Vec::new();
    for (net_name, net) in &spec.networks {
        for (name, decl) in &net.endpoints {
            let have = hosts.get(&decl.host).and_then(|h| {
                h.owned
                    .endpoints
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
    rows
}

fn table(rows: &[Row]) -> String {
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
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    for r in rows {
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
}
