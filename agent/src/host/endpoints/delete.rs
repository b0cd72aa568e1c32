//! Deleting endpoints: by name, by network or where they are; a network's
//! whole group in one request when it is all of them; what a crash half way
//! left behind (a namespace the step made, a link without its alias).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use linkherd_proto::model::{
    EndpointSelector, IfName, Interface, LinkDetails, LinkKind, NetnsRef, Owner,
};

use crate::host::{
    Endpoints, group_of,
    registry::{Entry, Netns, Registry},
    vlans::describe,
};
use crate::{error::Error, net::NetError};

use super::{Removed, entry_netns};

/// What a delete by location found.
enum Located {
    /// This agent's endpoint there, as its records.
    Records(Vec<Entry>),
    /// An unowned macvlan, deleted by `--force`.
    Forced(Removed),
}

impl Endpoints<'_> {
    /// Deletes endpoints, then what linkherd created only for them: an
    /// auto-created VLAN parent without endpoints, a namespace it created.
    pub async fn delete_endpoints(
        &self,
        sel: &EndpointSelector,
        force: bool,
    ) -> Result<Removed, Error> {
        let mut reg = self.h.registry.lock().await;
        let all: Vec<Entry> = reg.all().cloned().collect();
        let targets: Vec<Entry> = match sel {
            EndpointSelector::Named { network, name } => all
                .into_iter()
                .filter(|e| e.network == network.as_str() && e.name == name.as_str())
                .collect(),
            EndpointSelector::Network(network) => all
                .into_iter()
                .filter(|e| e.network == network.as_str())
                .collect(),
            EndpointSelector::Located { netns, ifname } => {
                match self.located(all, netns, ifname, force).await? {
                    Located::Records(t) => t,
                    Located::Forced(removed) => return Ok(removed),
                }
            }
        };
        if targets.is_empty() {
            return Err(Error::NotFound(match sel {
                EndpointSelector::Named { network, name } => {
                    format!("endpoint {network}/{name} not found on this host")
                }
                EndpointSelector::Network(n) => format!("no endpoints of network {n} on this host"),
                EndpointSelector::Located { netns, ifname } => {
                    format!("{ifname} in {netns} is linkherd's but not in its records")
                }
            }));
        }
        let mut removed = Removed::default();
        self.remove_links(&targets, &mut removed).await?;
        let keys: Vec<(&str, &str)> = targets
            .iter()
            .map(|e| (e.network.as_str(), e.name.as_str()))
            .collect();
        reg.remove_many(&keys).await?;
        self.remove_leftovers(&targets, &reg, &mut removed).await;
        Ok(removed)
    }

    /// The records of the linkherd endpoint at `ifname` in `netns` — or,
    /// with `force`, that unowned macvlan deleted there and then.
    async fn located(
        &self,
        all: Vec<Entry>,
        netns: &NetnsRef,
        ifname: &IfName,
        force: bool,
    ) -> Result<Located, Error> {
        let ops = self.h.ns_ops(netns).await?;
        let link = match ops.link(ifname).await {
            Ok(l) => l,
            Err(NetError::NotFound { .. }) => {
                return Err(Error::NotFound(format!(
                    "interface {ifname} not found in {netns}"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let mine = self.recorded_at(all, netns, ifname).await;
        if !mine.is_empty() {
            return Ok(Located::Records(mine));
        }
        match self.h.agent.owner_of(link.alias.as_deref()) {
            // A mark is no proof: root in that namespace can write one.
            Some(Owner::Endpoint { .. }) if !force => Err(Error::Precondition(format!(
                "{ifname} in {netns} ({}) carries this agent's mark but is not in its \
                 records; a mark proves nothing (root in that namespace can write one), so \
                 it is left alone: pass --force to delete it, or start the agent with \
                 --adopt to take back what a lost state directory held",
                describe(&link)
            ))),
            _ if let Some(other) = self.h.agent.other_agent(link.alias.as_deref()) => {
                Err(Error::Precondition(format!(
                    "{ifname} in {netns} ({}) belongs to another linkherd agent ({other}) \
                     on this kernel; delete it through that agent (--force does not \
                     take another agent's links)",
                    describe(&link)
                )))
            }
            _ if !force => Err(Error::Precondition(format!(
                "{ifname} in {netns} ({}) was not created by linkherd; pass --force to delete it anyway",
                describe(&link)
            ))),
            // --force deletes a macvlan nobody owns, never another
            // kind of link (a veth, a bridge, the host's NIC).
            _ if !matches!(link.details, Some(LinkDetails::Macvlan { .. })) => {
                Err(Error::Precondition(format!(
                    "{ifname} in {netns} ({}) is not a macvlan; --force deletes only \
                     macvlans, so it is left alone",
                    describe(&link)
                )))
            }
            _ => {
                ops.del_link(link.index).await?;
                Ok(Located::Forced(Removed(vec![format!(
                    "{ifname} in {netns} (forced)"
                )])))
            }
        }
    }

    /// The records of the endpoint at `ifname` in `netns`, matched by
    /// where the agent put it (the namespace's identity, whatever path
    /// names it), never by a mark on the link.
    async fn recorded_at(&self, all: Vec<Entry>, netns: &NetnsRef, ifname: &IfName) -> Vec<Entry> {
        let want = self.h.netns_identity(netns).await;
        let file = self.h.ns_file(netns);
        let mut mine = Vec::new();
        for e in all.into_iter().filter(|e| e.ifname == ifname.as_str()) {
            let there = entry_netns(&e);
            let same = match want {
                // The recorded identity; read from the kernel only for an
                // older record without one (not for every record).
                Some(id) => match e.netns_id {
                    Some(recorded) => recorded == id,
                    None => self.h.netns_identity(&there).await == Some(id),
                },
                None => self.h.ns_file(&there) == file,
            };
            if same {
                mine.push(e);
            }
        }
        mine
    }

    /// Deletes the targets' links, a whole network's links in a namespace
    /// with one group request when nothing else shares the group.
    async fn remove_links(&self, targets: &[Entry], removed: &mut Removed) -> Result<(), Error> {
        let mut by_ns: BTreeMap<&Netns, Vec<&Entry>> = BTreeMap::new();
        for e in targets {
            by_ns.entry(&e.netns).or_default().push(e);
        }
        for (ns, entries) in by_ns {
            let netns = NetnsRef::from(ns);
            let Ok(ops) = self.h.ns_ops(&netns).await else {
                // The namespace is gone, and its links with it.
                for e in entries {
                    removed.0.push(format!(
                        "endpoint {}/{} (its {netns} was already gone)",
                        e.network, e.name
                    ));
                }
                continue;
            };
            let links = ops.links().await?;
            let network = &entries[0].network;
            let group = group_of(network);
            let in_group: Vec<&Interface> = links.iter().filter(|l| l.group == group).collect();
            let whole_group = entries.len() > 1
                && entries.iter().all(|e| e.network == *network)
                && in_group.len() == entries.len()
                && in_group.iter().all(|l| {
                    matches!(self.h.agent.owner_of(l.alias.as_deref()), Some(Owner::Endpoint { network: n, .. }) if n == *network)
                });
            if whole_group {
                ops.del_group(group).await?;
            } else {
                let by_name: HashMap<&str, &Interface> =
                    links.iter().map(|l| (l.name.as_str(), l)).collect();
                for e in &entries {
                    if let Some(l) = by_name.get(e.ifname.as_str()) {
                        match ops.del_link(l.index).await {
                            Ok(()) | Err(NetError::NotFound { .. }) => {}
                            Err(err) => return Err(err.into()),
                        }
                    }
                }
            }
            for e in entries {
                removed.0.push(format!(
                    "endpoint {}/{} ({} in {netns})",
                    e.network, e.name, e.ifname
                ));
            }
        }
        Ok(())
    }

    /// Namespaces and VLAN parents linkherd created for endpoints that are
    /// now gone. Failures are logged, not returned: the endpoints are gone.
    /// Forgets the record of an endpoint that cannot come back (its
    /// process's namespace is gone), and the auto VLAN nothing else uses
    /// then; what went, in words.
    pub(in crate::host) async fn forget_locked(
        &self,
        e: &Entry,
        reg: &mut Registry,
    ) -> Result<Removed, Error> {
        reg.remove(&e.network, &e.name).await?;
        let mut removed = Removed(vec![format!("record of endpoint {}/{}", e.network, e.name)]);
        self.remove_leftovers(std::slice::from_ref(e), reg, &mut removed)
            .await;
        Ok(removed)
    }

    async fn remove_leftovers(&self, targets: &[Entry], reg: &Registry, removed: &mut Removed) {
        let mut parents = BTreeSet::new();
        let mut namespaces = BTreeSet::new();
        for e in targets {
            if e.parent_created {
                parents.insert(e.parent.clone());
            }
            if let (true, Netns::Name(n)) = (e.netns_created, &e.netns) {
                namespaces.insert(n.clone());
            }
        }
        let in_use: BTreeSet<&Netns> = reg.all().map(|e| &e.netns).collect();
        for n in namespaces {
            if !in_use.contains(&Netns::Name(n.clone())) && self.remove_created_netns(&n).await {
                removed.0.push(format!("netns {n}"));
            }
        }
        for p in parents {
            if self.h.vlans().remove_unused_auto(&p, None, reg).await {
                removed.0.push(format!("vlan {p}"));
            }
        }
    }

    /// Deletes the named namespace `n` linkherd created, unless something
    /// else lives in it; whether it went.
    async fn remove_created_netns(&self, n: &str) -> bool {
        let file = self.h.ns_file(&NetnsRef::Named(n.to_owned()));
        let ops = match self.h.net.netns(&file).await {
            Ok(ops) => ops,
            Err(e) => {
                tracing::warn!(netns = n, error = %e, "cannot inspect a namespace linkherd created");
                return false;
            }
        };
        let others: Vec<String> = match ops.links().await {
            Ok(links) => links
                .into_iter()
                .filter(|l| l.kind != LinkKind::Loopback)
                .map(|l| l.name)
                .collect(),
            Err(e) => vec![format!("(cannot list links: {e})")],
        };
        drop(ops);
        if !others.is_empty() {
            tracing::info!(netns = n, links = ?others, "keeping a namespace linkherd created: it has other links");
            return false;
        }
        let full = format!("{}{n}", self.h.netns_prefix);
        match self.h.net.delete_netns(&full).await {
            Ok(()) => {
                self.h.made.forget(&full).await;
                true
            }
            Err(e) => {
                tracing::error!(netns = n, error = %e, "cannot delete a namespace linkherd created");
                false
            }
        }
    }
}
