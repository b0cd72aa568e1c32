//! What the agents report, turned into what the fleet IPAM needs: the
//! addresses the spec's endpoints have now (kept: sticky), every other
//! address in use (never handed out again), and the container blocks each
//! host holds (kept too).

use std::net::IpAddr;

use ipnet::IpNet;
use linkherd_proto::model::{Attachment, OwnedObjects};

use super::Observed;
use crate::spec::FleetSpec;

/// Merges the observed state of every host (`(host, state, the
/// containers attached there)`).
pub fn observed<'a>(
    spec: &FleetSpec,
    hosts: impl IntoIterator<Item = (&'a str, &'a OwnedObjects, &'a [Attachment])>,
) -> Observed {
    let mut out = Observed::default();
    for (host, state, attached) in hosts {
        containers(&mut out, host, attached);
        for e in &state.endpoints {
            let addrs: Vec<IpAddr> = e.addresses.iter().map(IpNet::addr).collect();
            let declared = spec.networks.iter().any(|(n, net)| {
                n.as_str() == e.network
                    && net
                        .endpoints
                        .iter()
                        .any(|(name, d)| name.as_str() == e.name && d.host == host)
            });
            if declared {
                out.endpoints
                    .insert((e.network.clone(), e.name.clone()), addrs);
            } else {
                for a in addrs {
                    out.others
                        .insert(a, format!("{host}/{}/{}", e.network, e.name));
                }
            }
        }
        for n in &state.catalog {
            let blocks: Vec<IpNet> = [&n.v4, &n.v6]
                .into_iter()
                .flatten()
                .flat_map(|p| p.blocks.iter().copied())
                .collect();
            if !blocks.is_empty() {
                out.blocks
                    .insert((n.name.to_string(), host.to_owned()), blocks);
            }
        }
        for h in &state.host_access {
            for a in &h.addresses {
                out.others
                    .insert(a.addr(), format!("{host} host access {}", h.network));
            }
        }
    }
    out
}

/// Containers' addresses: never handed out to endpoints (`others`), and
/// counted against the host's blocks (`attached`).
fn containers(out: &mut Observed, host: &str, attached: &[Attachment]) {
    for a in attached {
        for addr in &a.addresses {
            out.others.insert(
                addr.addr(),
                format!("{host} container {}/{}", a.container_id, a.ifname),
            );
            out.attached
                .entry((a.network.clone(), host.to_owned()))
                .or_default()
                .push(addr.addr());
        }
    }
}
