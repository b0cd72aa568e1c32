//! Mending a drift found by `drift.rs`. Each repair takes the registry
//! lock and is made only while the record it was found against is still
//! the record: an operator's delete or change in between wins, and nothing
//! is made that is no longer desired. Repairs go through the same creates as
//! requests do, so a restored endpoint is made exactly as a new one is (its
//! MAC, addresses, announcements, route; its namespace and VLAN parent when
//! linkherd made those).

use std::collections::BTreeMap;

use linkherd_proto::model::Owner;

use super::{
    Host,
    drift::{Drift, Fix, Seen, Tweak},
    endpoints::entry_netns,
    registry::{Entry, Registry},
};
use crate::{
    error::Error,
    net::{NetError, NetOps},
};

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repaired {
    /// Done; what, in words.
    Done(String),
    /// The record changed since the drift was found: nothing was done (the
    /// next check looks again).
    Superseded,
}

/// Already there counts as done: a repair may race the kernel's own.
fn exists_ok(r: Result<(), NetError>) -> Result<(), NetError> {
    match r {
        Err(NetError::AlreadyExists { .. }) => Ok(()),
        r => r,
    }
}

/// Makes `tweaks` to link `index` of `ops`.
pub(super) async fn apply_tweaks(
    ops: &dyn NetOps,
    index: u32,
    tweaks: &[Tweak],
) -> Result<String, Error> {
    let mut done = Vec::new();
    for t in tweaks {
        match t {
            Tweak::Up => {
                ops.set_up(index, true).await?;
                done.push("set up".to_owned());
            }
            Tweak::Mtu(m) => {
                ops.set_mtu(index, *m).await?;
                done.push(format!("mtu {m}"));
            }
            Tweak::Address(a) => {
                exists_ok(ops.add_address(index, *a).await)?;
                done.push(format!("address {a}"));
            }
            Tweak::Route(r) => {
                exists_ok(ops.add_route(r).await)?;
                done.push(format!("route {}", r.dest));
            }
            Tweak::Promisc => {
                return Err(Error::Precondition(
                    "promiscuous mode is restored by its lease keeper".into(),
                ));
            }
        }
    }
    Ok(done.join(", "))
}

/// Whether the record `seen` was found against is still the record (an
/// object to remove: still used by nothing).
fn still_desired(reg: &Registry, seen: &Seen) -> bool {
    match seen {
        Seen::Vlan(v) => reg.vlans.get(v.name.as_str()) == Some(v),
        Seen::AutoVlan { name, network } => reg
            .all()
            .any(|e| e.parent_created && &e.parent == name && &e.network == network),
        Seen::Endpoint(e) => reg.get(&e.network, &e.name) == Some(e),
        Seen::Attachment(a) => reg.attachments.get(&a.key()) == Some(a),
        Seen::HostAccess(h) => reg.host_access.get(h.network.as_str()) == Some(h),
        Seen::Promisc(_) => false,
        Seen::Leftover { name, .. } => {
            !reg.all().any(|e| &e.parent == name)
                && !reg.attachments.all().any(|a| &a.parent == name)
                && reg.vlans.get(name).is_none()
        }
    }
}

impl Host {
    /// Mends `d` (a drift whose fix is `Make`, `Remake`, `Tweak`, `Forget`
    /// or `Remove`; `Wait` and promiscuous mode are not mended here).
    pub async fn repair(&self, d: &Drift) -> Result<Repaired, Error> {
        let mut reg = self.registry.lock().await;
        if !still_desired(&reg, &d.seen) || d.fix == Fix::Wait {
            return Ok(Repaired::Superseded);
        }
        let done = match &d.seen {
            Seen::Endpoint(e) => self.repair_endpoint(e, &d.fix, &mut reg).await?,
            Seen::Attachment(a) => {
                self.attachments()
                    .repair_attachment(a, &d.fix, &mut reg)
                    .await?
            }
            Seen::Leftover { name, network } => match d.fix {
                Fix::Remove { index } => self.remove_leftover(name, network, index).await?,
                _ => None,
            },
            _ => self.repair_host_link(&d.seen, &d.fix).await?,
        };
        Ok(done.map_or(Repaired::Superseded, Repaired::Done))
    }

    async fn repair_endpoint(
        &self,
        e: &Entry,
        fix: &Fix,
        reg: &mut Registry,
    ) -> Result<Option<String>, Error> {
        if *fix == Fix::Forget {
            let gone = self.endpoints().forget_locked(e, reg).await?;
            return Ok(Some(format!("forgot {}", gone.0.join(", "))));
        }
        let Some(spec) = &e.spec else {
            return Ok(None);
        };
        let ns = self.ns_ops(&entry_netns(e)).await;
        let ns = match (fix, ns) {
            (Fix::Tweak { index, tweaks }, Ok(ops)) => {
                return Ok(Some(apply_tweaks(ops.as_ref(), *index, tweaks).await?));
            }
            (Fix::Remake { index }, Ok(ops)) => {
                ops.del_link(*index).await?;
                self.ns_ops(&entry_netns(e)).await
            }
            (_, ns) => ns,
        };
        self.endpoints()
            .create_locked(spec, ns, reg, false, &mut BTreeMap::new())
            .await?;
        Ok(Some("made".to_owned()))
    }

    /// VLANs and host access: links of the host namespace.
    async fn repair_host_link(&self, seen: &Seen, fix: &Fix) -> Result<Option<String>, Error> {
        if let Fix::Tweak { index, tweaks } = fix {
            return Ok(Some(apply_tweaks(self.net.as_ref(), *index, tweaks).await?));
        }
        if !matches!(fix, Fix::Make | Fix::Remake { .. }) {
            return Ok(None);
        }
        if let Fix::Remake { index } = fix {
            self.net.del_link(*index).await?;
        }
        match seen {
            Seen::Vlan(v) => {
                self.require_vlan().await?;
                self.vlans().create_vlan_locked(v, Owner::Vlan).await?;
            }
            Seen::HostAccess(h) => {
                self.host_access().create_host_access_locked(h).await?;
            }
            _ => return Ok(None),
        }
        Ok(Some("made".to_owned()))
    }

    /// Deletes link `index` if it is still the VLAN this agent made for
    /// `network` under `name`.
    async fn remove_leftover(
        &self,
        name: &str,
        network: &str,
        index: u32,
    ) -> Result<Option<String>, Error> {
        let link = self.net.link_by_index(index).await?;
        let mine = Owner::AutoVlan {
            network: network.to_owned(),
        };
        if link.name != name || self.agent.owner_of(link.alias.as_deref()) != Some(mine) {
            return Ok(None);
        }
        self.net.del_link(index).await?;
        Ok(Some("removed".to_owned()))
    }
}
