//! Attachments the runtime moves itself (Docker's libnetwork): the macvlan
//! is made in the agent's own namespace under a temporary name, and the
//! runtime moves it into the container's namespace and renames it. The
//! steps follow the runtime's calls: an address reserved (IPAM
//! RequestAddress), the attachment recorded with it (CreateEndpoint), the
//! link made, down and unaddressed (Join: the runtime configures it once
//! moved, since a move drops addresses), the link deleted when the runtime
//! hands it back (Leave), the record removed (DeleteEndpoint, through
//! `detach`). Afterwards the link is found by its owner mark, wherever it
//! is: in the namespace the runtime named, or still (again) here.

use std::{net::IpAddr, path::Path, sync::Arc};

use ipnet::IpNet;
use linkherd_proto::model::{CatalogNetwork, IfName, Interface, MacAddr, NetnsRef};
use tracing::Instrument;

use super::{
    super::registry::attachments::{
        AttachKey, Attached, MAX_RESERVATIONS, MAX_UNJOINED, RESERVATION_TTL, Released,
    },
    AttachState, addr, not_in_catalog, owner_of, state_of,
};
use crate::host::{Attachments, undo::Rollback};
use crate::{error::Error, net::NetOps};

/// The name a handed-over link has in the agent's namespace: `lh` and the
/// first 12 characters of the runtime's endpoint id (within IFNAMSIZ, and
/// unique as long as the ids' first 12 are, as Docker's own names assume).
pub fn handover_ifname(endpoint_id: &str) -> String {
    let short: String = endpoint_id.chars().take(12).collect();
    format!("lh{short}")
}

/// Where a handed-over link is now.
#[derive(Debug)]
pub struct Found {
    pub ops: Arc<dyn NetOps>,
    pub link: Interface,
    /// In the runtime's namespace (else still in the agent's).
    pub moved: bool,
}

/// `net` with only the pools of the families kept: Docker asks per family,
/// and an endpoint has only the families Docker gave it.
fn families(net: &CatalogNetwork, v4: bool, v6: bool) -> CatalogNetwork {
    let mut n = net.clone();
    n.v4 = n.v4.filter(|_| v4);
    n.v6 = n.v6.filter(|_| v6);
    n
}

impl Attachments<'_> {
    /// Reserves an address of `network`'s family `v6` for an endpoint to
    /// come: `asked` under the catalog's rules (free here and on the wire),
    /// else the lowest free one of this host's blocks.
    pub async fn reserve_address(
        &self,
        network: &str,
        v6: bool,
        asked: Option<IpAddr>,
    ) -> Result<IpNet, Error> {
        let net = self
            .h
            .catalog()
            .network(network)
            .await
            .ok_or_else(|| not_in_catalog(network))?;
        let net = families(&net, !v6, v6);
        let mut reg = self.h.registry.lock().await;
        if !reg.attachments.has_room_to_reserve() {
            return Err(Error::Precondition(format!(
                "{MAX_RESERVATIONS} addresses are handed out already and not yet used by an \
                 endpoint; retry once containers have started (a reservation lapses after {} s)",
                RESERVATION_TTL.as_secs()
            )));
        }
        let asked: Vec<IpAddr> = asked.into_iter().collect();
        // Reservations released lately go last (see `AttachmentRecords`).
        let rested = asked.is_empty() && reg.attachments.resting(network);
        let at_rest = rested
            .then(|| {
                addr::choose(
                    &net,
                    &asked,
                    &[],
                    &mut reg.attachments.taken(network, None, true),
                )
            })
            .and_then(Result::ok);
        let got = match at_rest {
            Some(got) => got,
            None => addr::choose(
                &net,
                &asked,
                &[],
                &mut reg.attachments.taken(network, None, false),
            )?,
        };
        let addr = got.into_iter().next().ok_or_else(|| {
            Error::Precondition(format!("network {network} has no such address family"))
        })?;
        self.check_on_wire(&net, &format!("{network}/--ip"), &asked)
            .await?;
        reg.attachments.reserve(network, addr.addr());
        Ok(addr)
    }

    /// Docker's ReleaseAddress: drops the reservation, unless the release
    /// is one a deleted endpoint owed (see [`Released`]).
    pub async fn release_address(&self, network: &str, addr: IpAddr) -> Released {
        self.h
            .registry
            .lock()
            .await
            .attachments
            .release(network, addr)
    }

    /// Records an attachment to hand over, holding `addresses` (reserved
    /// before, or checked again now); the same request again answers the
    /// same record. The bool says whether it was recorded now.
    pub async fn create_handover(
        &self,
        network: &str,
        endpoint_id: &str,
        addresses: &[IpNet],
        mac: Option<MacAddr>,
    ) -> Result<(AttachState, bool), Error> {
        let net = self
            .h
            .catalog()
            .network(network)
            .await
            .ok_or_else(|| not_in_catalog(network))?;
        let ifname = handover_ifname(endpoint_id);
        let key: AttachKey = (network.to_owned(), endpoint_id.to_owned(), ifname.clone());
        let mut reg = self.h.registry.lock().await;
        if let Some(old) = reg.attachments.get(&key) {
            return Ok((state_of(old.clone(), &net, false), false));
        }
        if reg.attachments.unjoined() >= MAX_UNJOINED {
            return Err(Error::Precondition(format!(
                "{MAX_UNJOINED} Docker endpoints are created and not joined yet; start or remove \
                 those containers first (one never joined is reaped {} s after it was created)",
                RESERVATION_TTL.as_secs()
            )));
        }
        let has = |v6: bool| addresses.iter().any(|a| a.addr().is_ipv6() == v6);
        let net_of_asked = families(&net, has(false), has(true));
        for a in addresses {
            reg.attachments.unreserve(network, a.addr());
        }
        let asked: Vec<IpAddr> = addresses.iter().map(IpNet::addr).collect();
        let mut taken = reg.attachments.taken(network, Some(&key), false);
        let chosen = addr::choose(&net_of_asked, &asked, &[], &mut taken)?;
        let record = Attached {
            network: network.to_owned(),
            container_id: endpoint_id.to_owned(),
            netns: Default::default(),
            netns_id: None,
            parent: net.parent.to_string(),
            parent_created: false,
            addresses: chosen.clone(),
            mac: mac.unwrap_or_else(|| address_mac(network, &chosen)),
            handed_over: true,
            recorded_at: Some(now_secs()),
            ifname,
        };
        reg.attachments.put(record.clone()).await?;
        Ok((state_of(record, &net, false), true))
    }

    /// Makes the link of a recorded hand-over in the agent's namespace, on
    /// the catalog's parent (its VLAN made when missing), for the runtime
    /// to move into `netns`. Made already: answered again.
    pub async fn join_handover(&self, key: &AttachKey, netns: &Path) -> Result<AttachState, Error> {
        let net = self
            .h
            .catalog()
            .network(&key.0)
            .await
            .ok_or_else(|| not_in_catalog(&key.0))?;
        let mut reg = self.h.registry.lock().await;
        let before = reg
            .attachments
            .get(key)
            .cloned()
            .ok_or_else(|| unknown_endpoint(key))?;
        self.h.check_sandbox(netns).await?;
        let mut record = before.clone();
        record.netns = netns.to_owned();
        if self.handed_link(&before).await?.is_some() {
            reg.attachments.put(record.clone()).await?;
            return Ok(state_of(record, &net, false));
        }
        reg.attachments.put(record.clone()).await?;
        let mut undo = Rollback::default();
        let made = async {
            let (parent, made) = self.attach_parent(&net, &mut undo).await?;
            if made {
                record.parent_created = true;
                reg.attachments.put(record.clone()).await?;
            }
            self.add_handover_link(&record, &net, &parent).await
        }
        .instrument(tracing::debug_span!("handover.join"))
        .await;
        match made {
            Ok(()) => {
                undo.commit();
                Ok(state_of(record, &net, false))
            }
            Err(e) => {
                undo.run().await;
                if let Err(err) = reg.attachments.put(before).await {
                    tracing::warn!(error = %err, "cannot restore the record of a hand-over not made");
                }
                Err(e)
            }
        }
    }

    /// The macvlan, down and without addresses, in the agent's namespace.
    async fn add_handover_link(
        &self,
        a: &Attached,
        net: &CatalogNetwork,
        parent: &Interface,
    ) -> Result<(), Error> {
        let name = IfName::parse("ifname", &a.ifname)?;
        let new = self.attachment_link(a, net, parent, name, None);
        self.h.net.add_link(&new).await.map_err(|e| match e {
            crate::net::NetError::Busy { .. } => Error::Precondition(format!(
                "MAC {} is still in use on {} by another macvlan; give the container another \
                 MAC, or wait for the kernel to free the old one",
                a.mac, parent.name
            )),
            e => e.into(),
        })?;
        Ok(())
    }

    /// Deletes the link the runtime handed back (or never moved); the
    /// record stays until the endpoint is deleted. Whether a link went.
    pub async fn leave_handover(&self, key: &AttachKey) -> Result<bool, Error> {
        let reg = self.h.registry.lock().await;
        let Some(a) = reg.attachments.get(key).filter(|a| a.handed_over).cloned() else {
            return Ok(false);
        };
        match self.handed_link(&a).await? {
            Some(f) => {
                f.ops.del_link(f.link.index).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The link of hand-over `a`, by its mark: in the namespace the runtime
    /// named (when it can be opened), else under its own name here.
    pub(super) async fn handed_link(&self, a: &Attached) -> Result<Option<Found>, Error> {
        let mine = |l: &Interface| self.h.agent.owner_of(l.alias.as_deref()) == Some(owner_of(a));
        if !a.netns.as_os_str().is_empty()
            && let Ok(ops) = self.h.ns_ops(&NetnsRef::Path(a.netns.clone())).await
            && let Some(link) = ops.links().await?.into_iter().find(|l| mine(l))
        {
            return Ok(Some(Found {
                ops,
                link,
                moved: true,
            }));
        }
        let name = IfName::parse("ifname", &a.ifname)?;
        match self.h.net.link(&name).await {
            Ok(link) if mine(&link) => Ok(Some(Found {
                ops: self.h.net.clone(),
                link,
                moved: false,
            })),
            Ok(_) | Err(crate::net::NetError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The MAC of a hand-over without one asked for: stable for the network
/// and its first address, as Docker's bridge derives one from the address.
/// Docker gives a restarted container a new endpoint, with its `--ip`
/// again: the same MAC then keeps its neighbours' caches right, where a
/// new one would leave them pointing at a MAC that is gone until they
/// expire.
fn address_mac(network: &str, addresses: &[IpNet]) -> MacAddr {
    let first = addresses.first().map(IpNet::addr);
    let name = first.map(|a| a.to_string()).unwrap_or_default();
    MacAddr::stable(network, &format!("docker/{name}"))
}

pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unknown_endpoint(key: &AttachKey) -> Error {
    Error::NotFound(format!(
        "endpoint {} of network {} is not known to this host's agent (it lost it, or Docker \
         did not create it through linkherd); remove the container and run it again",
        key.1, key.0
    ))
}
