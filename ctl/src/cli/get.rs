//! `linkherdctl get endpoints -f SPEC`: where every endpoint of a spec is,
//! as the hosts report it — host, addresses, MAC, parent, namespace — and
//! which ones the fleet does not have (yet); then every container attached
//! to the spec's networks (CNI, Docker), which the spec does not list but
//! whose addresses are the fleet's too. `get networks`: see [`networks`].

mod networks;

use std::{collections::BTreeMap, path::PathBuf};

use clap::Subcommand;
use serde::Serialize;

use super::{CtlError, Ctx, Exit};
use linkherd_proto::model::Attachment;

use crate::{
    fleet::{
        attached::{self, AttachedView},
        read::{self, HostRead},
    },
    output,
    spec::FleetSpec,
};

#[derive(Debug, Subcommand)]
pub enum GetCmd {
    /// Every endpoint of the spec and every container attached to its
    /// networks: host, addresses, MAC, parent, namespace.
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

/// What a row is: an endpoint of the spec, or a container a runtime
/// attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Endpoint,
    Container,
}

#[derive(Debug, Serialize)]
struct Row {
    kind: Kind,
    network: String,
    /// The endpoint's name, or a container's `CID/IFNAME` label.
    endpoint: String,
    host: String,
    /// Whether the host has it (a container: whether its namespace is
    /// still there).
    present: bool,
    addresses: Vec<String>,
    mac: String,
    parent: String,
    netns: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ifname: Option<String>,
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
                kind: Kind::Endpoint,
                network: net_name.to_string(),
                endpoint: name.to_string(),
                host: decl.host.clone(),
                present: have.is_some(),
                addresses: have
                    .map(|e| e.addresses.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
                mac: have
                    .and_then(|e| e.mac)
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                parent: have.map(|e| e.parent.clone()).unwrap_or_default(),
                netns: decl.netns.to_string(),
                container_id: None,
                ifname: None,
            });
        }
    }
    for (host, read) in hosts {
        rows.extend(attached::of_spec(spec, &read.attachments).map(|a| container_row(host, a)));
    }
    rows
}

fn container_row(host: &str, a: &Attachment) -> Row {
    let v = AttachedView::new(host, a);
    Row {
        kind: Kind::Container,
        network: v.network,
        endpoint: attached::label(a),
        host: v.host,
        present: !v.stale,
        addresses: v.addresses,
        mac: v.mac,
        parent: v.parent,
        netns: v.netns,
        container_id: Some(v.container_id),
        ifname: Some(v.ifname),
    }
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
        let addrs = match (r.present, r.kind) {
            (true, _) => dash(&r.addresses.join(" ")),
            (false, Kind::Endpoint) => "(missing)".to_owned(),
            (false, Kind::Container) => format!("(stale) {}", r.addresses.join(" ")),
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
