//! Macvlan endpoints in network namespaces.

mod adopt;
mod create;
mod delete;
mod parent;

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    path::PathBuf,
};

use ipnet::IpNet;
use linkherd_proto::model::{
    EndpointSpec, EndpointState, IfName, Interface, LinkDetails, NetnsRef, Owner,
};

use super::{
    Endpoints,
    registry::{Entry, Netns},
    vlans::describe,
};
use crate::{
    error::Error,
    net::{NetError, NetOps},
};

/// What a delete removed, in words ("endpoint mac_net10/b1 (eth0 in netns b1)").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed(pub Vec<String>);

pub(super) fn default_route(v4: bool) -> IpNet {
    if v4 {
        IpNet::V4(ipnet::Ipv4Net::default())
    } else {
        IpNet::V6(ipnet::Ipv6Net::default())
    }
}

/// Addresses a user sets: IPv6 link-local ones are the kernel's own.
pub(super) fn configured(addrs: &[IpNet]) -> BTreeSet<IpNet> {
    addrs
        .iter()
        .filter(|a| !matches!(a, IpNet::V6(v6) if v6.addr().segments()[0] & 0xffc0 == 0xfe80))
        .copied()
        .collect()
}

pub(super) fn entry_netns(e: &Entry) -> NetnsRef {
    NetnsRef::from(&e.netns)
}

impl Endpoints<'_> {
    /// The endpoint as the kernel has it, if its link is there. A recorded
    /// namespace identity that no longer matches (the process exited and
    /// its pid went to another) means the endpoint is gone.
    pub(super) async fn observe(&self, e: &Entry) -> Result<Option<EndpointState>, Error> {
        if let Some(want) = e.netns_id
            && self.h.netns_identity(&entry_netns(e)).await != Some(want)
        {
            return Ok(None);
        }
        let Ok(ops) = self.h.ns_ops(&entry_netns(e)).await else {
            return Ok(None);
        };
        let name = IfName::parse("ifname", &e.ifname)?;
        let link = match ops.link(&name).await {
            Ok(l) => l,
            Err(NetError::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let gateway = ops
            .routes_via(link.index)
            .await?
            .into_iter()
            .find(|r| r.dest.prefix_len() == 0)
            .and_then(|r| r.gateway);
        Ok(self.state_of(e, link, gateway))
    }

    /// An endpoint's state from its link as read from the kernel; `None`
    /// when the link is not a macvlan.
    pub(super) fn state_of(
        &self,
        e: &Entry,
        link: Interface,
        gateway: Option<IpAddr>,
    ) -> Option<EndpointState> {
        let Some(LinkDetails::Macvlan { mode, source_macs }) = link.details.clone() else {
            return None;
        };
        let owned = self.h.agent.owner_of(link.alias.as_deref())
            == Some(Owner::Endpoint {
                network: e.network.clone(),
                name: e.name.clone(),
            });
        Some(EndpointState {
            network: e.network.clone(),
            name: e.name.clone(),
            parent: e.parent.clone(),
            mode,
            netns: entry_netns(e),
            ifname: e.ifname.clone(),
            addresses: configured(&link.addresses).into_iter().collect(),
            gateway,
            mac: link.mac,
            mtu: link.mtu,
            source_macs,
            owned,
            parent_created: e.parent_created,
            netns_created: e.netns_created,
            interface: Some(link),
        })
    }

    /// How an existing endpoint differs from a spec, in words.
    pub(super) async fn differences(
        &self,
        spec: &EndpointSpec,
        link: &Interface,
        ops: &dyn NetOps,
    ) -> Result<Vec<String>, Error> {
        let mut d = Vec::new();
        match &link.details {
            Some(LinkDetails::Macvlan { mode, source_macs }) => {
                if *mode != spec.mode {
                    d.push(format!(
                        "mode {} (asked {})",
                        mode.as_str(),
                        spec.mode.as_str()
                    ));
                }
                if *source_macs != spec.source_macs {
                    d.push("source MAC list".to_owned());
                }
            }
            _ => d.push(format!("it is {}", describe(link))),
        }
        if link.mac != Some(spec.effective_mac()) {
            d.push(format!(
                "mac {} (asked {})",
                link.mac.map(|m| m.to_string()).unwrap_or_default(),
                spec.effective_mac()
            ));
        }
        if let Some(m) = spec.mtu.filter(|m| *m != link.mtu) {
            d.push(format!("mtu {} (asked {m})", link.mtu));
        }
        let have = configured(&link.addresses);
        let want: BTreeSet<IpNet> = spec.addresses.iter().copied().collect();
        if have != want {
            let fmt = |s: &BTreeSet<IpNet>| {
                s.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            d.push(format!(
                "addresses [{}] (asked [{}])",
                fmt(&have),
                fmt(&want)
            ));
        }
        let parent_index = self.h.net.link(&spec.parent).await.map(|p| p.index).ok();
        if parent_index != Some(link.parent_index) {
            d.push(format!("parent is not {}", spec.parent));
        }
        let gw = ops
            .routes_via(link.index)
            .await?
            .into_iter()
            .find(|r| r.dest.prefix_len() == 0)
            .and_then(|r| r.gateway);
        if gw != spec.gateway {
            let show = |g: Option<IpAddr>| g.map_or("none".to_owned(), |g| g.to_string());
            d.push(format!(
                "gateway {} (asked {})",
                show(gw),
                show(spec.gateway)
            ));
        }
        Ok(d)
    }

    /// Names of the endpoints of `network` this host has, from the registry
    /// (nothing observed).
    pub async fn endpoint_names(&self, network: &str) -> Vec<String> {
        self.h
            .registry
            .lock()
            .await
            .all()
            .filter(|e| e.network == network)
            .map(|e| e.name.clone())
            .collect()
    }

    /// Endpoints of `network` as observed — those in `names`, or all of
    /// them — looking only at those (a transaction removing many endpoints
    /// must not observe the whole host once per endpoint).
    pub async fn endpoints_of(
        &self,
        network: &str,
        names: Option<&[&str]>,
    ) -> Result<Vec<EndpointState>, Error> {
        let names: Option<BTreeSet<&str>> = names.map(|n| n.iter().copied().collect());
        let entries: Vec<_> = self
            .h
            .registry
            .lock()
            .await
            .all()
            .filter(|e| {
                e.network == network && names.as_ref().is_none_or(|n| n.contains(e.name.as_str()))
            })
            .cloned()
            .collect();
        Ok(self
            .observe_many(&entries)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// [`Self::observe`] for many endpoints, in their order: those that
    /// share a namespace are read with one listing of its links and one of
    /// its routes, not a few requests each (a thousand endpoints in one
    /// namespace cost two dumps, not four thousand round trips).
    pub(super) async fn observe_many(
        &self,
        entries: &[Entry],
    ) -> Result<Vec<Option<EndpointState>>, Error> {
        let mut groups: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            groups
                .entry(self.h.ns_file(&entry_netns(e)))
                .or_default()
                .push(i);
        }
        let mut out = vec![None; entries.len()];
        for members in groups.into_values() {
            if let [one] = members[..] {
                out[one] = self.observe(&entries[one]).await?;
                continue;
            }
            let group: Vec<&Entry> = members.iter().map(|&i| &entries[i]).collect();
            for (i, state) in members.iter().zip(self.observe_in(&group).await?) {
                out[*i] = state;
            }
        }
        Ok(out)
    }

    /// Endpoints that share one namespace, from one listing of its links
    /// and one of its routes.
    async fn observe_in(&self, group: &[&Entry]) -> Result<Vec<Option<EndpointState>>, Error> {
        let Some(first) = group.first() else {
            return Ok(Vec::new());
        };
        let id = self.h.netns_identity(&entry_netns(first)).await;
        let Ok(ops) = self.h.ns_ops(&entry_netns(first)).await else {
            return Ok(vec![None; group.len()]);
        };
        let mut links: HashMap<String, Interface> = ops
            .links()
            .await?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let gateways: HashMap<u32, IpAddr> = ops
            .routes()
            .await?
            .into_iter()
            .filter(|r| r.dest.prefix_len() == 0)
            .filter_map(|r| Some((r.index, r.gateway?)))
            .collect();
        Ok(group
            .iter()
            .map(|e| {
                if e.netns_id.is_some_and(|want| id != Some(want)) {
                    return None;
                }
                let link = links.remove(&e.ifname)?;
                let gateway = gateways.get(&link.index).copied();
                self.state_of(e, link, gateway)
            })
            .collect())
    }

    /// Forgets the records of endpoints whose process's or path's namespace
    /// is gone (or its recorded identity no longer matches); at start,
    /// never on a read. Named namespaces are not forgotten: a reboot empties
    /// /run/netns, and the reconciler makes them again (or waits for one
    /// linkherd did not make). Returns what was forgotten, in words.
    pub async fn forget_gone(&self) -> Result<Vec<String>, Error> {
        let mut reg = self.h.registry.lock().await;
        let entries: Vec<Entry> = reg.all().cloned().collect();
        let mut gone = Vec::new();
        // A named namespace is made again or waited for (see `drift`).
        for e in entries
            .iter()
            .filter(|e| !matches!(e.netns, Netns::Name(_)))
        {
            let netns = entry_netns(e);
            let now = self.h.netns_identity(&netns).await;
            let moved = e.netns_id.is_some_and(|want| now != Some(want));
            if moved || self.h.ns_ops(&netns).await.is_err() {
                gone.push(e);
            }
        }
        let keys: Vec<(&str, &str)> = gone
            .iter()
            .map(|e| (e.network.as_str(), e.name.as_str()))
            .collect();
        reg.remove_many(&keys).await?;
        Ok(gone
            .iter()
            .map(|e| {
                format!(
                    "endpoint {}/{} (its {} is gone)",
                    e.network,
                    e.name,
                    entry_netns(e)
                )
            })
            .collect())
    }

    /// Every endpoint this agent's records hold, as the kernel has it;
    /// those that are gone (their process exited) are left out. A read: it
    /// writes nothing and holds the registry lock only to copy the records,
    /// not while the kernel is read. The records are the truth of what is
    /// this agent's: a mark found in a namespace adopts nothing (see
    /// `adopt.rs`), whoever wrote it.
    pub async fn list_endpoints(&self) -> Result<Vec<EndpointState>, Error> {
        let entries: Vec<Entry> = self.h.registry.lock().await.all().cloned().collect();
        let observed = self.observe_many(&entries).await?;
        Ok(observed.into_iter().flatten().collect())
    }
}
