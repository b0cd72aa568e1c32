//! Reading attachments: List (with those whose namespace went without a
//! Detach marked stale, never dropped silently), Check against the kernel,
//! and a network's Status on this host.

use linkherd_proto::model::{AttachKeySpec, CatalogNetwork, Interface, NetnsRef};

use super::{
    super::registry::attachments::{AttachKey, Attached},
    AttachState, key_of, not_in_catalog, state_of,
};
use crate::{error::Error, host::Attachments};

/// Whether a network can take attachments here, and how many addresses
/// its blocks have left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    pub ready: bool,
    pub reason: String,
    pub free: u64,
}

impl Attachments<'_> {
    /// Every attachment (of `network`, when given).
    pub async fn attachments(&self, network: Option<&str>) -> Vec<AttachState> {
        let records: Vec<_> = {
            let reg = self.h.registry.lock().await;
            reg.attachments
                .all()
                .filter(|a| network.is_none_or(|n| a.network == n))
                .cloned()
                .collect()
        };
        let mut out = Vec::with_capacity(records.len());
        for a in records {
            if a.handed_over {
                out.push(self.handover_state(a).await);
                continue;
            }
            let here = self
                .h
                .netns_identity(&NetnsRef::Path(a.netns.clone()))
                .await;
            let stale = a.netns_id.is_none() || here != a.netns_id;
            let net = self.h.catalog().network(&a.network).await;
            out.push(match net {
                Some(net) => state_of(a, &net, stale),
                None => AttachState::bare(a, stale),
            });
        }
        out
    }

    /// The record of `key`, as recorded (no kernel read).
    pub async fn attachment(&self, key: &AttachKey) -> Option<Attached> {
        self.h.registry.lock().await.attachments.get(key).cloned()
    }

    /// The attachment as the kernel has it: the namespace still the one
    /// attached, the link there and up with its addresses.
    pub async fn check_attachment(&self, key: &AttachKeySpec) -> Result<AttachState, Error> {
        let a = {
            let reg = self.h.registry.lock().await;
            reg.attachments.get(&key_of(key)).cloned()
        }
        .ok_or_else(|| {
            Error::NotFound(format!(
                "container {} is not attached to {} as {}",
                key.container_id, key.network, key.ifname
            ))
        })?;
        let net = self
            .h
            .catalog()
            .network(&a.network)
            .await
            .ok_or_else(|| not_in_catalog(&a.network))?;
        if a.handed_over {
            return self.check_handover(a, &net).await;
        }
        let where_ = NetnsRef::Path(a.netns.clone());
        if a.netns_id.is_none() || self.h.netns_identity(&where_).await != a.netns_id {
            return Err(Error::Precondition(format!(
                "{} is not the namespace container {} was attached in any more",
                a.netns.display(),
                a.container_id
            )));
        }
        let ops = self.h.ns_ops(&where_).await?;
        let Some(link) = self.attached_link(&a, ops.as_ref()).await? else {
            return Err(Error::Precondition(format!(
                "interface {} is missing in {}",
                a.ifname,
                a.netns.display()
            )));
        };
        configured(&a, &link, &a.netns.display().to_string())?;
        Ok(state_of(a, &net, false))
    }

    /// A hand-over as listed: stale when its link is in neither place,
    /// named as the runtime renamed it.
    async fn handover_state(&self, a: Attached) -> AttachState {
        let found = self.handed_link(&a).await.ok().flatten();
        let net = self.h.catalog().network(&a.network).await;
        let mut s = match net {
            Some(net) => state_of(a, &net, found.is_none()),
            None => AttachState::bare(a, found.is_none()),
        };
        s.inside = found.filter(|f| f.moved).map(|f| f.link.name);
        s
    }

    /// A hand-over's Check: moved into the runtime's namespace, up, with its
    /// addresses.
    async fn check_handover(
        &self,
        a: Attached,
        net: &CatalogNetwork,
    ) -> Result<AttachState, Error> {
        let where_ = if a.netns.as_os_str().is_empty() {
            "its container (it has not joined one)".to_owned()
        } else {
            a.netns.display().to_string()
        };
        let Some(f) = self.handed_link(&a).await?.filter(|f| f.moved) else {
            return Err(Error::Precondition(format!(
                "the interface of endpoint {} is missing in {where_}",
                a.container_id
            )));
        };
        configured(&a, &f.link, &where_)?;
        let mut s = state_of(a, net, false);
        s.inside = Some(f.link.name);
        Ok(s)
    }

    /// Whether `network` can take attachments on this host now.
    pub async fn network_status(&self, network: &str) -> NetworkStatus {
        let Some(net) = self.h.catalog().network(network).await else {
            return NetworkStatus {
                ready: false,
                reason: not_in_catalog(network).to_string(),
                free: 0,
            };
        };
        let parent_ok = self.h.net.link(&net.parent).await.is_ok()
            || linkherd_proto::model::split_vlan_name(&net.parent).is_some();
        let blocks: Vec<_> = [&net.v4, &net.v6]
            .into_iter()
            .flatten()
            .flat_map(|p| p.blocks.iter().copied())
            .collect();
        // Only addresses inside the blocks use them (an asked-for one may
        // lie outside).
        let used: u64 = {
            let reg = self.h.registry.lock().await;
            let inside = reg
                .attachments
                .all()
                .filter(|a| a.network == network)
                .flat_map(|a| a.addresses.iter())
                .filter(|x| blocks.iter().any(|b| b.contains(&x.addr())))
                .count();
            u64::try_from(inside).unwrap_or(u64::MAX)
        };
        let capacity: u64 = blocks
            .iter()
            .map(|b| {
                1u64.checked_shl(u32::from(b.max_prefix_len() - b.prefix_len()))
                    .unwrap_or(u64::MAX)
            })
            .fold(0u64, u64::saturating_add);
        let free = capacity.saturating_sub(used);
        let reason = if parent_ok {
            String::new()
        } else {
            format!(
                "parent interface {} of network {network} not found on this host",
                net.parent
            )
        };
        NetworkStatus {
            ready: parent_ok,
            reason,
            free,
        }
    }
}

/// Check's last word on a link found: up, with every address of `a`.
fn configured(a: &Attached, link: &Interface, where_: &str) -> Result<(), Error> {
    let name = &link.name;
    if let Some(missing) = a.addresses.iter().find(|x| !link.addresses.contains(x)) {
        return Err(Error::Precondition(format!(
            "interface {name} in {where_} has lost its address {missing}"
        )));
    }
    if !link.admin_up {
        return Err(Error::Precondition(format!(
            "interface {name} in {where_} is down"
        )));
    }
    Ok(())
}
