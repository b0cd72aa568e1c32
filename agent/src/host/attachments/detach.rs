//! Detaching: the container's macvlan deleted when its namespace is still
//! the one attached (a hand-over's wherever it is), the record removed, and an automatic VLAN parent that
//! nothing uses any more removed with it. Nothing to detach is success:
//! runtimes call DEL again, and after the namespace is gone.

use std::collections::BTreeSet;

use linkherd_proto::model::{AttachKeySpec, NetnsRef};

use tracing::Instrument;

use super::{
    super::registry::attachments::{AttachKey, Attached, RESERVATION_TTL},
    key_of,
};
use crate::error::Error;
use crate::host::{Attachments, registry::Registry};

impl Attachments<'_> {
    /// Detaches `key`; what was detached (`None`: nothing was attached).
    pub async fn detach(&self, key: &AttachKeySpec) -> Result<Option<Attached>, Error> {
        let mut reg = self.h.registry.lock().await;
        self.detach_locked(&key_of(key), &mut reg).await
    }

    /// Detaches every attachment of `network` whose (container id,
    /// interface) `valid` does not name; what was detached.
    pub async fn gc_attachments(
        &self,
        network: &str,
        valid: &BTreeSet<(String, String)>,
    ) -> Result<Vec<Attached>, Error> {
        let mut reg = self.h.registry.lock().await;
        let gone: Vec<AttachKey> = reg
            .attachments
            .all()
            // Hand-overs are Docker's, which never runs a GC: a CNI
            // runtime's list of valid ones cannot name them.
            .filter(|a| a.network == network && !a.handed_over)
            .filter(|a| !valid.contains(&(a.container_id.clone(), a.ifname.clone())))
            .map(Attached::key)
            .collect();
        let mut out = Vec::with_capacity(gone.len());
        for key in gone {
            out.extend(self.detach_locked(&key, &mut reg).await?);
        }
        Ok(out)
    }

    /// Detaches hand-over `key` (Docker's DeleteEndpoint); a key that is
    /// not a hand-over is left alone (`None`), as is a missing one.
    pub async fn detach_handover(&self, key: &AttachKey) -> Result<Option<Attached>, Error> {
        let mut reg = self.h.registry.lock().await;
        if !reg.attachments.get(key).is_some_and(|a| a.handed_over) {
            return Ok(None);
        }
        let gone = self.detach_locked(key, &mut reg).await?;
        if let Some(a) = &gone {
            let addrs = a.addresses.iter().map(ipnet::IpNet::addr);
            reg.attachments.owe_releases(&a.network, addrs);
        }
        Ok(gone)
    }

    /// Detaches the hand-overs the runtime is done with but could not say
    /// so (the agent was down at their Leave and DeleteEndpoint, and Docker
    /// forgot them): joined, and their namespace file no longer opens; or
    /// never joined, and recorded longer than [`RESERVATION_TTL`] ago. A
    /// link handed back is deleted with them. What went.
    pub async fn reap_handovers(&self) -> Result<Vec<Attached>, Error> {
        let mut reg = self.h.registry.lock().await;
        let handed: Vec<Attached> = reg
            .attachments
            .all()
            .filter(|a| a.handed_over)
            .cloned()
            .collect();
        let too_old = super::handover::now_secs().saturating_sub(RESERVATION_TTL.as_secs());
        let mut gone = Vec::new();
        for a in handed {
            let dead = if a.netns.as_os_str().is_empty() {
                a.recorded_at.is_some_and(|t| t < too_old)
            } else {
                let here = self
                    .h
                    .netns_identity(&NetnsRef::Path(a.netns.clone()))
                    .await;
                here.is_none()
            };
            if dead {
                gone.extend(self.detach_locked(&a.key(), &mut reg).await?);
            }
        }
        Ok(gone)
    }

    pub(super) async fn detach_locked(
        &self,
        key: &AttachKey,
        reg: &mut Registry,
    ) -> Result<Option<Attached>, Error> {
        let Some(a) = reg.attachments.get(key).cloned() else {
            return Ok(None);
        };
        if a.handed_over {
            if let Some(f) = self.handed_link(&a).await? {
                f.ops
                    .del_link(f.link.index)
                    .instrument(tracing::debug_span!("detach.link"))
                    .await?;
            }
        } else {
            self.delete_attached_link(&a).await?;
        }
        reg.attachments
            .remove(key)
            .instrument(tracing::debug_span!("detach.record"))
            .await?;
        if a.parent_created {
            self.drop_unused_auto_vlan(&a, reg).await;
        }
        Ok(Some(a))
    }

    /// The macvlan of runtime-made attachment `a`, when its namespace is
    /// still the one attached.
    async fn delete_attached_link(&self, a: &Attached) -> Result<(), Error> {
        let where_ = NetnsRef::Path(a.netns.clone());
        // Only the namespace attached: the path may name another by now.
        if a.netns_id.is_some() && self.h.netns_identity(&where_).await == a.netns_id {
            match self.h.ns_ops(&where_).await {
                Ok(ops) => {
                    if let Some(l) = self.attached_link(a, ops.as_ref()).await? {
                        ops.del_link(l.index)
                            .instrument(tracing::debug_span!("detach.link"))
                            .await?;
                    }
                }
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The automatic VLAN `a` hung off, when no endpoint or attachment uses
    /// it any more and it is still the network's.
    async fn drop_unused_auto_vlan(&self, a: &Attached, reg: &Registry) {
        self.h
            .vlans()
            .remove_unused_auto(&a.parent, Some(&a.network), reg)
            .await;
    }
}
