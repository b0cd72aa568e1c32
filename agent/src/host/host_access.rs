//! Host access: a macvlan link on the host side of a parent, with its own
//! address and routes to the endpoints. The kernel never passes frames
//! between a macvlan parent and its children, so without this the host
//! cannot reach its own containers (every tool leaves it as a manual
//! workaround).

use std::collections::BTreeSet;

use ipnet::IpNet;
use linkherd_proto::model::{
    HostAccessSpec, HostAccessState, Interface, MacvlanMode, ObjName, Owner,
};

use super::{HostAccesses, Outcome, undo::Rollback, vlans::describe};
use crate::{
    error::Error,
    net::{NetError, NewLink, NewLinkKind, Route},
};

fn configured(l: &Interface) -> Vec<IpNet> {
    l.addresses
        .iter()
        .filter(|a| !matches!(a, IpNet::V6(v6) if v6.addr().segments()[0] & 0xffc0 == 0xfe80))
        .copied()
        .collect()
}

impl HostAccesses<'_> {
    async fn host_access_state(&self, link: &Interface) -> Result<Option<HostAccessState>, Error> {
        let Some(Owner::HostAccess { network }) = self.h.agent.owner_of(link.alias.as_deref())
        else {
            return Ok(None);
        };
        let routes: Vec<IpNet> = self
            .h
            .net
            .routes()
            .await?
            .into_iter()
            .filter(|r| r.index == link.index && r.gateway.is_none())
            .map(|r| r.dest)
            // Connected routes of the host-access link's own addresses are the kernel's.
            .filter(|d| !link.addresses.iter().any(|a| a.trunc() == *d))
            .collect();
        Ok(Some(HostAccessState {
            network,
            parent: link.parent.clone().unwrap_or_default(),
            name: link.name.clone(),
            addresses: configured(link),
            routes,
            mac: link.mac,
            owned: true,
        }))
    }

    /// Creates the host-access link: a bridge-mode macvlan on the parent, its address,
    /// up, and a route per destination through it.
    pub async fn create_host_access(
        &self,
        spec: &HostAccessSpec,
    ) -> Result<(HostAccessState, Outcome), Error> {
        let mut reg = self.h.registry.lock().await;
        let before = reg.host_access.get(spec.network.as_str()).cloned();
        reg.keep_host_access(spec).await?;
        let res = self.create_host_access_locked(spec).await;
        if res.is_err() {
            let undone = match &before {
                Some(b) => reg.keep_host_access(b).await,
                None => reg.drop_host_access(spec.network.as_str()).await,
            };
            if let Err(e) = undone {
                tracing::warn!(network = %spec.network, error = %e, "cannot take back the record of host access not made");
            }
        }
        res
    }

    /// [`Self::create_host_access`] with the registry lock held (its
    /// record written).
    pub(super) async fn create_host_access_locked(
        &self,
        spec: &HostAccessSpec,
    ) -> Result<(HostAccessState, Outcome), Error> {
        let parent = self.h.parent(&spec.parent, "host_access.parent").await?;
        let links = self.h.net.links().await?;
        let mine = Owner::HostAccess {
            network: spec.network.to_string(),
        };
        if let Some(existing) = links.iter().find(|l| {
            l.name == spec.name.as_str()
                || self.h.agent.owner_of(l.alias.as_deref()).as_ref() == Some(&mine)
        }) {
            return self.existing_host_access(spec, existing, &parent).await;
        }
        let mut undo = Rollback::default();
        match self.add_host_access(spec, &parent, &mine, &mut undo).await {
            Ok(s) => {
                undo.commit();
                Ok((s, Outcome::Created))
            }
            Err(e) => {
                undo.run().await;
                Err(e)
            }
        }
    }

    /// The name or the mark is taken: by this very host access with the
    /// same settings (unchanged), or by something else (refused, naming it).
    async fn existing_host_access(
        &self,
        spec: &HostAccessSpec,
        existing: &Interface,
        parent: &Interface,
    ) -> Result<(HostAccessState, Outcome), Error> {
        let state = self.host_access_state(existing).await?;
        let same = state.as_ref().is_some_and(|s| {
            s.network == spec.network.as_str()
                && existing.parent_index == parent.index
                && s.addresses.iter().collect::<BTreeSet<_>>() == spec.addresses.iter().collect()
                && s.routes.iter().collect::<BTreeSet<_>>() == spec.routes.iter().collect()
        });
        match (same, state) {
            (true, Some(s)) => Ok((s, Outcome::Unchanged)),
            _ => Err(Error::Exists(format!(
                "{} already exists ({}{}) and differs from the request; delete it first",
                existing.name,
                describe(existing),
                existing
                    .alias
                    .as_deref()
                    .map(|a| format!(", alias {a:?}"))
                    .unwrap_or_default()
            ))),
        }
    }

    /// The link (bridge mode, on the host side of the parent), its
    /// addresses, up, and a route per destination; each step's undo goes on
    /// `undo`.
    async fn add_host_access(
        &self,
        spec: &HostAccessSpec,
        parent: &Interface,
        mine: &Owner,
        undo: &mut Rollback,
    ) -> Result<HostAccessState, Error> {
        self.h
            .net
            .add_link(&NewLink {
                name: spec.name.clone(),
                kind: NewLinkKind::Macvlan {
                    parent_index: parent.index,
                    mode: MacvlanMode::Bridge,
                    source_macs: Vec::new(),
                },
                mtu: None,
                mac: Some(spec.mac()),
                alias: self.h.agent.mark(mine),
                group: 0,
                target: None,
            })
            .await?;
        let link = self.h.net.link(&spec.name).await?;
        let (net, index) = (self.h.net.clone(), link.index);
        undo.push(format!("delete {}", spec.name), async move {
            let _ = net.del_link(index).await;
        });
        for a in &spec.addresses {
            self.h.net.add_address(link.index, *a).await?;
        }
        self.h.net.set_up(link.index, true).await?;
        for dest in &spec.routes {
            self.h
                .net
                .add_route(&Route {
                    dest: *dest,
                    gateway: None,
                    index: link.index,
                })
                .await
                .map_err(|e| match e {
                    NetError::AlreadyExists { .. } => Error::Exists(format!(
                        "the host already has a route to {dest}; host access cannot take it over"
                    )),
                    e => e.into(),
                })?;
        }
        let link = self.h.net.link_by_index(link.index).await?;
        self.host_access_state(&link)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{} lost its alias", spec.name)))
    }

    pub async fn delete_host_access(&self, network: &ObjName) -> Result<Outcome, Error> {
        let mut reg = self.h.registry.lock().await;
        let mine = Some(Owner::HostAccess {
            network: network.to_string(),
        });
        let link = self
            .h
            .net
            .links()
            .await?
            .into_iter()
            .find(|l| self.h.agent.owner_of(l.alias.as_deref()) == mine);
        let kept = reg.host_access.get(network.as_str()).is_some();
        match link {
            Some(link) => self.h.net.del_link(link.index).await?,
            // Kept but not there now: the delete is of what is desired.
            None if kept => {}
            None => {
                return Err(Error::NotFound(format!(
                    "no host access for network {network} on this host"
                )));
            }
        }
        reg.drop_host_access(network.as_str()).await?;
        Ok(Outcome::Deleted)
    }

    pub async fn list_host_access(&self) -> Result<Vec<HostAccessState>, Error> {
        let mut out = Vec::new();
        for l in self.h.net.links().await? {
            if let Some(s) = self.host_access_state(&l).await? {
                out.push(s);
            }
        }
        Ok(out)
    }
}
