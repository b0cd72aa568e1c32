//! `linkherdctl get networks -f SPEC`: the networks of a spec that are open
//! to containers, as each host's catalog has them — parent link, subnets,
//! gateways and the address blocks the host allocates from.

use std::collections::BTreeMap;

use linkherd_proto::model::{CatalogNetwork, CatalogPool};
use serde::Serialize;

use crate::{fleet::read::HostRead, output, spec::FleetSpec};

#[derive(Debug, Serialize)]
pub(super) struct Row {
    network: String,
    host: String,
    /// Whether the host's catalog has it.
    present: bool,
    parent: String,
    vlan: Option<u32>,
    subnets: Vec<String>,
    gateways: Vec<String>,
    blocks: Vec<String>,
}

/// One row per network open to containers and host offering it.
pub(super) fn rows(spec: &FleetSpec, hosts: &BTreeMap<String, HostRead>) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, net) in &spec.networks {
        let Some(c) = &net.containers else { continue };
        for host in &c.hosts {
            let have = hosts
                .get(host)
                .and_then(|h| h.owned.catalog.iter().find(|n| n.name == *name));
            rows.push(row(name.as_str(), host, have));
        }
    }
    rows
}

fn row(network: &str, host: &str, have: Option<&CatalogNetwork>) -> Row {
    let pools: Vec<&CatalogPool> = have
        .into_iter()
        .flat_map(|n| [&n.v4, &n.v6])
        .flatten()
        .collect();
    Row {
        network: network.to_owned(),
        host: host.to_owned(),
        present: have.is_some(),
        parent: have.map(|n| n.parent.to_string()).unwrap_or_default(),
        vlan: have.and_then(|n| n.vlan).map(|v| u32::from(v.get())),
        subnets: pools.iter().map(|p| p.subnet.to_string()).collect(),
        gateways: pools
            .iter()
            .filter_map(|p| p.gateway)
            .map(|g| g.to_string())
            .collect(),
        blocks: pools
            .iter()
            .flat_map(|p| p.blocks.iter().map(ToString::to_string))
            .collect(),
    }
}

pub(super) fn table(rows: &[Row]) -> String {
    let mut t = output::table();
    t.set_header(["NETWORK", "HOST", "PARENT", "SUBNETS", "GATEWAYS", "BLOCKS"]);
    let dash = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(" ")
        }
    };
    for r in rows {
        let parent = match (r.present, r.vlan) {
            (false, _) => "(missing)".to_owned(),
            (true, Some(v)) => format!("{} (vlan {v})", r.parent),
            (true, None) => r.parent.clone(),
        };
        t.add_row([
            r.network.clone(),
            r.host.clone(),
            parent,
            dash(&r.subnets),
            dash(&r.gateways),
            dash(&r.blocks),
        ]);
    }
    t.to_string()
}
