//! Attaching a runtime's container to a network of the catalog: the
//! macvlan made directly in the runtime's namespace on the catalog's
//! parent (its VLAN made when missing, as for endpoints), an address by
//! [`super::attach_addr`], the stable MAC, announcements, up and the
//! default route. Recorded before the kernel is touched, undone when any
//! step fails; the same request again answers the same attachment.

pub mod addr;
mod detach;
pub mod handover;
mod repair;
pub mod view;

use std::{
    collections::BTreeSet,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use linkherd_proto::model::{
    AttachKeySpec, AttachSpec, CatalogNetwork, IfName, Interface, MacAddr, NetnsRef, Owner,
    VlanProtocol, VlanSpec, split_vlan_name,
};
use tracing::Instrument;

use super::registry::attachments::{AttachKey, Attached};
use super::{Attachments, registry::Registry, undo::Rollback};
use crate::{
    error::Error,
    net::{LinkSetup, NetError, NetOps, NewLink, NewLinkKind, Route, netns::NsId},
};

/// How long a re-attach waits for the kernel to let go of the old macvlan:
/// a runtime that removed the container's namespace has the kernel tear it
/// down in the background, and until then the MAC is in use on the parent.
pub const MAC_RELEASE_WAIT: Duration = Duration::from_secs(10);
/// How often it tries meanwhile.
const MAC_RETRY: Duration = Duration::from_millis(100);

/// An attachment, with what the catalog adds to its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachState {
    pub record: Attached,
    pub gateways: Vec<IpAddr>,
    pub mtu: Option<u32>,
    /// The namespace path no longer names the namespace attached.
    pub stale: bool,
    /// The link's name in the namespace now, when the runtime renamed it
    /// (a hand-over: Docker's `eth0`); `None`: `record.ifname`.
    pub inside: Option<String>,
}

impl AttachState {
    /// A record without what the catalog adds (its network is gone from
    /// the catalog, or it was just detached).
    pub fn bare(record: Attached, stale: bool) -> Self {
        Self {
            record,
            gateways: Vec::new(),
            mtu: None,
            stale,
            inside: None,
        }
    }
}

pub fn key_of(k: &AttachKeySpec) -> AttachKey {
    (
        k.network.to_string(),
        k.container_id.clone(),
        k.ifname.to_string(),
    )
}

pub fn not_in_catalog(network: &str) -> Error {
    Error::NotFound(format!(
        "network {network:?} is not in this host's catalog; add it to the fleet spec \
         (with containers: ...) and apply"
    ))
}

impl Attachments<'_> {
    /// Attaches (see the module); the bool says whether anything was made.
    pub async fn attach(&self, spec: &AttachSpec) -> Result<(AttachState, bool), Error> {
        let network = spec.key.network.as_str();
        let net = self
            .h
            .catalog()
            .network(network)
            .await
            .ok_or_else(|| not_in_catalog(network))?;
        let where_ = NetnsRef::Path(spec.netns.clone());
        let (ops, ns_id) = async {
            let ops = self.h.ns_ops(&where_).await?;
            let id = self.h.netns_identity(&where_).await;
            self.h.refuse_own_netns(&spec.netns, id).await?;
            Ok::<_, Error>((ops, id))
        }
        .instrument(tracing::debug_span!("attach.netns"))
        .await?;
        let mut reg = self
            .h
            .registry
            .lock()
            .instrument(tracing::debug_span!("attach.lock"))
            .await;
        let key = key_of(&spec.key);
        let before = reg.attachments.get(&key).cloned();
        if let Some(old) = before
            .as_ref()
            .filter(|o| o.netns_id.is_some() && o.netns_id == ns_id)
            && self.attached_link(old, ops.as_ref()).await?.is_some()
        {
            let asked: BTreeSet<IpAddr> = spec.addresses.iter().copied().collect();
            let had: BTreeSet<IpAddr> = old.addresses.iter().map(|a| a.addr()).collect();
            if !asked.is_empty() && asked != had {
                return Err(Error::Exists(format!(
                    "container {} is attached to {network} as {} already, with other addresses; \
                     detach it first",
                    spec.key.container_id, spec.key.ifname
                )));
            }
            return Ok((state_of(old.clone(), &net, false), false));
        }
        let had = before
            .as_ref()
            .map(|b| b.addresses.as_slice())
            .unwrap_or_default();
        let mut taken = reg.attachments.taken(network, Some(&key), false);
        let addresses = addr::choose(&net, &spec.addresses, had, &mut taken)?;
        let record = record_of(spec, &net, ns_id, addresses);
        self.check_asked_on_wire(&record, &net, spec, before.as_ref())
            .await?;
        reg.attachments
            .put(record.clone())
            .instrument(tracing::debug_span!("attach.record"))
            .await?;
        match self.make_attachment(record, &net, &ops, &mut reg).await {
            Ok(made) => Ok((state_of(made, &net, false), true)),
            Err(e) => {
                let restored = match before {
                    Some(b) => reg.attachments.put(b).await,
                    None => reg.attachments.remove(&key).await.map(drop),
                };
                if let Err(err) = restored {
                    tracing::warn!(error = %err, "cannot restore the record of an attachment not made");
                }
                Err(e)
            }
        }
    }

    /// Asked-for IPv4 addresses this key did not hold already are probed on
    /// the wire (RFC 5227) first.
    async fn check_asked_on_wire(
        &self,
        record: &Attached,
        net: &CatalogNetwork,
        spec: &AttachSpec,
        before: Option<&Attached>,
    ) -> Result<(), Error> {
        let held: BTreeSet<IpAddr> = before
            .map(|b| b.addresses.iter().map(|a| a.addr()).collect())
            .unwrap_or_default();
        let fresh: Vec<IpAddr> = spec
            .addresses
            .iter()
            .filter(|a| !held.contains(a))
            .copied()
            .collect();
        let label = format!("{}/{}", record.network, record.mark_name());
        self.check_on_wire(net, &label, &fresh).await
    }

    /// `fresh` IPv4 addresses are probed on the wire of the network's
    /// parent (RFC 5227); one in use is refused, named with `label`'s use.
    pub(super) async fn check_on_wire(
        &self,
        net: &CatalogNetwork,
        label: &str,
        fresh: &[IpAddr],
    ) -> Result<(), Error> {
        let wanted: Vec<super::Wanted> = fresh
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v4) => Some(super::Wanted {
                    parent: net.parent.clone(),
                    addr: *v4,
                    endpoint: label.to_owned(),
                }),
                IpAddr::V6(_) => None,
            })
            .collect();
        if wanted.is_empty() || self.h.net.link(&net.parent).await.is_err() {
            return Ok(());
        }
        let used = self
            .h
            .addrcheck()
            .addresses_in_use(&wanted, &[], Duration::from_millis(200))
            .await?;
        if used.is_empty() {
            Ok(())
        } else {
            Err(Error::Exists(format!(
                "{}; ask for another",
                used.join("; ")
            )))
        }
    }

    /// The link of `a` in its namespace, when it is there and this
    /// agent's attachment of that key.
    pub(super) async fn attached_link(
        &self,
        a: &Attached,
        ops: &dyn NetOps,
    ) -> Result<Option<Interface>, Error> {
        let Ok(name) = IfName::parse("ifname", &a.ifname) else {
            return Ok(None);
        };
        match ops.link(&name).await {
            Ok(l) => {
                Ok((self.h.agent.owner_of(l.alias.as_deref()) == Some(owner_of(a))).then_some(l))
            }
            Err(NetError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The parent, link and configuration of a recorded attachment; what
    /// was made is undone when a step fails. The record is rewritten when
    /// the parent was made for it.
    pub(super) async fn make_attachment(
        &self,
        mut record: Attached,
        net: &CatalogNetwork,
        ops: &Arc<dyn NetOps>,
        reg: &mut Registry,
    ) -> Result<Attached, Error> {
        let mut undo = Rollback::default();
        let res = async {
            let (parent, made) = self.attach_parent(net, &mut undo).await?;
            if made {
                record.parent_created = true;
                reg.attachments.put(record.clone()).await?;
            }
            self.attach_link(&record, net, &parent, ops, &mut undo)
                .await
        }
        .await;
        match res {
            Ok(()) => {
                undo.commit();
                Ok(record)
            }
            Err(e) => {
                undo.run().await;
                Err(e)
            }
        }
    }

    /// The catalog's parent; a missing `NIC.ID` is made on its NIC (owned
    /// by the network, as for endpoints). The bool says whether it was made.
    pub(super) async fn attach_parent(
        &self,
        net: &CatalogNetwork,
        undo: &mut Rollback,
    ) -> Result<(Interface, bool), Error> {
        match self.h.parent(&net.parent, "parent").await {
            Ok(p) => return Ok((p, false)),
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let not_found = || {
            Error::NotFound(format!(
                "parent interface {:?} of network {} not found on this host",
                net.parent.as_str(),
                net.name
            ))
        };
        let (base, id) = split_vlan_name(&net.parent).ok_or_else(not_found)?;
        self.h.net.link(&base).await.map_err(|_| not_found())?;
        self.h.require_vlan().await?;
        let vlan = VlanSpec {
            parent: base,
            id,
            protocol: VlanProtocol::Ieee8021Q,
            name: net.parent.clone(),
            mtu: None,
        };
        let owner = Owner::AutoVlan {
            network: net.name.to_string(),
        };
        self.h.vlans().create_vlan_locked(&vlan, owner).await?;
        let (lower, name) = (self.h.net.clone(), net.parent.clone());
        undo.push(format!("delete vlan {name}"), async move {
            if let Ok(l) = lower.link(&name).await {
                let _ = lower.del_link(l.index).await;
            }
        });
        Ok((self.h.parent(&net.parent, "parent").await?, true))
    }

    /// The macvlan in the namespace, configured; while the kernel still
    /// holds the MAC for an old link of this key (its namespace is being
    /// torn down), it waits up to [`MAC_RELEASE_WAIT`].
    async fn attach_link(
        &self,
        a: &Attached,
        net: &CatalogNetwork,
        parent: &Interface,
        ops: &Arc<dyn NetOps>,
        undo: &mut Rollback,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + MAC_RELEASE_WAIT;
        loop {
            match self.try_attach_link(a, net, parent, ops).await {
                Err(NetError::Busy { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(MAC_RETRY).await;
                }
                Err(NetError::Busy { .. }) => {
                    return Err(Error::Precondition(format!(
                        "MAC {} is still in use on {} by another macvlan after {} s; \
                         give the container another MAC, or detach what holds it",
                        a.mac,
                        parent.name,
                        MAC_RELEASE_WAIT.as_secs()
                    )));
                }
                Err(e) => return Err(e.into()),
                Ok(index) => {
                    let inside = ops.clone();
                    undo.push(
                        format!("delete {} in {}", a.ifname, a.netns.display()),
                        async move {
                            let _ = inside.del_link(index).await;
                        },
                    );
                    return Ok(());
                }
            }
        }
    }

    /// One try: create, configure; the link is removed again when
    /// configuring fails. Its index on success.
    async fn try_attach_link(
        &self,
        a: &Attached,
        net: &CatalogNetwork,
        parent: &Interface,
        ops: &Arc<dyn NetOps>,
    ) -> Result<u32, NetError> {
        let ifname = IfName::parse("ifname", &a.ifname).map_err(|e| NetError::Invalid {
            op: "attach",
            detail: e.to_string(),
        })?;
        let new = self.attachment_link(a, net, parent, ifname.clone(), Some(a.netns.clone()));
        let link = async {
            self.h.net.add_link(&new).await?;
            ops.link(&ifname).await
        }
        .instrument(tracing::debug_span!("attach.link"))
        .await?;
        let configured = async {
            ops.enable_announce(&ifname).await?;
            ops.setup_link(link.index, &setup_of(a, net, link.index))
                .await
        }
        .instrument(tracing::debug_span!("attach.configure"))
        .await;
        match configured {
            Ok(_) => Ok(link.index),
            Err(e) => {
                let _ = ops.del_link(link.index).await;
                Err(e)
            }
        }
    }
}

impl Attachments<'_> {
    /// The macvlan of attachment `a` on `parent`, made in `target` (`None`:
    /// the agent's namespace, for a hand-over), with its MAC and mark.
    pub(super) fn attachment_link(
        &self,
        a: &Attached,
        net: &CatalogNetwork,
        parent: &Interface,
        name: IfName,
        target: Option<std::path::PathBuf>,
    ) -> NewLink {
        NewLink {
            name,
            kind: NewLinkKind::Macvlan {
                parent_index: parent.index,
                mode: net.mode,
                source_macs: Vec::new(),
            },
            mtu: net.mtu,
            mac: Some(a.mac),
            alias: self.h.agent.mark(&owner_of(a)),
            group: 0,
            target,
        }
    }
}

/// The record of a new attachment of `spec` to `net`: its MAC the one asked
/// for, else the stable one of network, container and interface.
fn record_of(
    spec: &AttachSpec,
    net: &CatalogNetwork,
    netns_id: Option<NsId>,
    addresses: Vec<IpNet>,
) -> Attached {
    let network = spec.key.network.as_str();
    Attached {
        network: network.to_owned(),
        container_id: spec.key.container_id.clone(),
        ifname: spec.key.ifname.to_string(),
        netns: spec.netns.clone(),
        netns_id,
        parent: net.parent.to_string(),
        parent_created: false,
        addresses,
        handed_over: false,
        recorded_at: None,
        mac: spec.mac.unwrap_or_else(|| {
            MacAddr::stable(
                network,
                &format!("{}/{}", spec.key.container_id, spec.key.ifname),
            )
        }),
    }
}

/// Addresses, up, and the default route via the first gateway of a family
/// the attachment has an address in.
fn setup_of(a: &Attached, net: &CatalogNetwork, index: u32) -> LinkSetup {
    let gateway = gateways(net, a).into_iter().next();
    LinkSetup {
        addresses: a.addresses.clone(),
        up: true,
        routes: gateway
            .map(|gw| Route {
                dest: crate::host::endpoints::default_route(gw.is_ipv4()),
                gateway: Some(gw),
                index,
            })
            .into_iter()
            .collect(),
    }
}

/// The gateways of the families `a` has addresses in.
pub(super) fn gateways(net: &CatalogNetwork, a: &Attached) -> Vec<IpAddr> {
    [&net.v4, &net.v6]
        .into_iter()
        .flatten()
        .filter(|p| a.addresses.iter().any(|x| p.subnet.contains(&x.addr())))
        .filter_map(|p| p.gateway)
        .collect()
}

pub(super) fn owner_of(a: &Attached) -> Owner {
    Owner::Attachment {
        network: a.network.clone(),
        name: a.mark_name(),
    }
}

pub(super) fn state_of(record: Attached, net: &CatalogNetwork, stale: bool) -> AttachState {
    AttachState {
        gateways: gateways(net, &record),
        mtu: net.mtu,
        record,
        stale,
        inside: None,
    }
}
