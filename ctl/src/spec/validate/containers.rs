//! `networks.NAME.containers`: which family's blocks, cut how, from where,
//! and which hosts offer them.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde_saphyr::Location;

use super::{Issues, Pools, parse_net};
use crate::{
    ipam::Pool,
    spec::{
        BlockSpec, ContainersSpec,
        raw::{RawContainers, S},
    },
};

/// The checked `containers` of network `path`; `span`: the hosts the
/// network spans (those of `containers.hosts` included).
pub(super) fn containers(
    is: &mut Issues,
    path: &str,
    c: &RawContainers,
    pools: &Pools,
    span: &BTreeMap<String, Location>,
) -> Option<ContainersSpec> {
    let path = format!("{path}.containers");
    let v4 = family(
        is,
        &path,
        (c.block.as_ref(), c.range.as_ref()),
        pools.v4.as_ref(),
        false,
    );
    let v6 = family(
        is,
        &path,
        (c.block_v6.as_ref(), c.range_v6.as_ref()),
        pools.v6.as_ref(),
        true,
    );
    let hosts = match &c.hosts {
        None => span.keys().cloned().collect(),
        Some(list) => {
            let mut out = BTreeSet::new();
            for (i, h) in list.iter().enumerate() {
                if !span.contains_key(&h.value) {
                    is.push(
                        &format!("{path}.hosts[{i}]"),
                        h.referenced,
                        format!("{:?} is not a host of this network", h.value),
                        "add it to the network's hosts, or leave it out here",
                    );
                }
                out.insert(h.value.clone());
            }
            out
        }
    };
    Some(ContainersSpec {
        v4: v4?,
        v6: v6?,
        hosts,
    })
}

/// One family: `None` when it has an error (reported), `Some(None)` when
/// it is not asked for.
fn family(
    is: &mut Issues,
    path: &str,
    (block, range): (Option<&S<u8>>, Option<&S<String>>),
    pool: Option<&Pool>,
    v6: bool,
) -> Option<Option<BlockSpec>> {
    let sfx = if v6 { "_v6" } else { "" };
    let Some(block) = block else {
        if let Some(r) = range {
            is.push(
                &format!("{path}.range{sfx}"),
                r.referenced,
                format!("is set but block{sfx} is not"),
                &format!("add block{sfx}, or remove range{sfx}"),
            );
            return None;
        }
        return Some(None);
    };
    let Some(pool) = pool else {
        is.push(
            &format!("{path}.block{sfx}"),
            block.referenced,
            format!("is set but the network has no subnet{sfx}"),
            &format!("add subnet{sfx} to the network, or remove block{sfx}"),
        );
        return None;
    };
    let range = match range {
        Some(r) => {
            let net = parse_net(is, &format!("{path}.range{sfx}"), r)?;
            if !(pool.subnet.contains(&net.network()) && pool.subnet.contains(&net.broadcast())) {
                is.push(
                    &format!("{path}.range{sfx}"),
                    r.referenced,
                    format!("{net} is not inside the subnet {}", pool.subnet),
                    "carve the blocks from the network's own subnet",
                );
                return None;
            }
            net
        }
        None => pool.range.unwrap_or(pool.subnet),
    };
    let len = block.value;
    if len < range.prefix_len() || len > range.max_prefix_len() {
        is.push(
            &format!("{path}.block{sfx}"),
            block.referenced,
            format!("/{len} does not fit in {range}"),
            &format!("use /{} to /{}", range.prefix_len(), range.max_prefix_len()),
        );
        return None;
    }
    Some(Some(BlockSpec {
        range: IpNet::new(range.network(), range.prefix_len()).unwrap_or(range),
        len,
    }))
}
