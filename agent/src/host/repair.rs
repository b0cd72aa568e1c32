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
async fn apply_tweaks(ops: &dyn NetOps, index: u32, tweaks: &[Tweak]) -> Result<String, Error> {
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

impl Host {
    /// Mends `d` (a drift whose fix is `Make`, `Remake`, `Tweak` or
    /// `Forget`; `Wait` and promiscuous mode are not mended here).
    pub async fn repair(&self, d: &Drift) -> Result<Repaired, Error> {
        let mut reg = self.registry.lock().await;
        let current = match &d.seen {
            Seen::Vlan(v) => reg.vlans.get(v.name.as_str()) == Some(v),
            Seen::AutoVlan { name, network } => reg
                .all()
                .any(|e| e.parent_created && &e.parent == name && &e.network == network),
            Seen::Endpoint(e) => reg.get(&e.network, &e.name) == Some(e),
            Seen::HostAccess(h) => reg.host_access.get(h.network.as_str()) == Some(h),
            Seen::Promisc(_) => false,
            Seen::Leftover { name, .. } => {
                !reg.all().any(|e| &e.parent == name)
                    && !reg.attachments.all().any(|a| &a.parent == name)
                    && reg.vlans.get(name).is_none()
            }
        };
        if !current {
            return Ok(Repaired::Superseded);
        }
        let done = match (&d.seen, &d.fix) {
            (_, Fix::Wait) => return Ok(Repaired::Superseded),
            (Seen::Endpoint(e), Fix::Forget) => {
                let gone = self.endpoints().forget_locked(e, &mut reg).await?;
                format!("forgot {}", gone.0.join(", "))
            }
            (Seen::Endpoint(e), fix) => {
                let Some(spec) = &e.spec else {
                    return Ok(Repaired::Superseded);
                };
                let ns = self.ns_ops(&entry_netns(e)).await;
                match (fix, ns) {
                    (Fix::Tweak { index, tweaks }, Ok(ops)) => {
                        apply_tweaks(ops.as_ref(), *index, tweaks).await?
                    }
                    (Fix::Remake { index }, Ok(ops)) => {
                        ops.del_link(*index).await?;
                        let ns = self.ns_ops(&entry_netns(e)).await;
                        self.endpoints()
                            .create_locked(spec, ns, &mut reg, false, &mut BTreeMap::new())
                            .await?;
                        "made again".to_owned()
                    }
                    (_, ns) => {
                        self.endpoints()
                            .create_locked(spec, ns, &mut reg, false, &mut BTreeMap::new())
                            .await?;
                        "made".to_owned()
                    }
                }
            }
            (Seen::Vlan(v), fix) => {
                if let Fix::Tweak { index, tweaks } = fix {
                    apply_tweaks(self.net.as_ref(), *index, tweaks).await?
                } else {
                    if let Fix::Remake { index } = fix {
                        self.net.del_link(*index).await?;
                    }
                    self.require_vlan().await?;
                    self.vlans().create_vlan_locked(v, Owner::Vlan).await?;
                    "made".to_owned()
                }
            }
            (Seen::HostAccess(h), fix) => {
                if let Fix::Tweak { index, tweaks } = fix {
                    apply_tweaks(self.net.as_ref(), *index, tweaks).await?
                } else {
                    if let Fix::Remake { index } = fix {
                        self.net.del_link(*index).await?;
                    }
                    self.host_access().create_host_access_locked(h).await?;
                    "made".to_owned()
                }
            }
            (Seen::Leftover { name, network }, Fix::Remove { index }) => {
                let link = self.net.link_by_index(*index).await?;
                let mine = Owner::AutoVlan {
                    network: network.clone(),
                };
                if link.name != *name || self.agent.owner_of(link.alias.as_deref()) != Some(mine) {
                    return Ok(Repaired::Superseded);
                }
                self.net.del_link(*index).await?;
                "removed".to_owned()
            }
            (Seen::AutoVlan { .. }, Fix::Tweak { index, tweaks }) => {
                apply_tweaks(self.net.as_ref(), *index, tweaks).await?
            }
            _ => return Ok(Repaired::Superseded),
        };
        Ok(Repaired::Done(done))
    }
}
