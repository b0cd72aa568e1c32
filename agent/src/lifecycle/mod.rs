//! VLAN sub-interfaces, macvlan endpoints and host access: what the source
//! document does by hand with `ip link add … type vlan` and
//! `docker network create -d macvlan`, as idempotent, owned, reversible
//! operations over the kernel seam.
//!
//! Every change takes the lifecycle lock, so two requests never race on the
//! same parent, namespace or registry entry.

mod addrcheck;
pub mod attach;
mod attach_addr;
mod attach_view;
pub mod attached;
pub mod catalog;
mod create;
mod detach;
mod endpoint;
pub mod handover;
mod host_access;
pub mod plan;
pub mod registry;
mod undo;
mod vlan;

use std::{path::PathBuf, sync::Arc};

use linkherd_proto::model::{IfName, Interface, LinkKind};
use tokio::sync::{Mutex, OnceCell};

pub use addrcheck::Wanted;
pub use attach_view::NetworkStatus;
use catalog::Catalog;
pub use endpoint::Removed;
use linkherd_proto::model::CatalogNetwork;
use registry::Registry;

use crate::{
    error::Error,
    net::{Capabilities, NO_VLAN_NOTE, NetError, NetOps},
    state::agent_id::AgentId,
};

/// The outcome of an idempotent create or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Unchanged,
    Deleted,
}

/// The VLAN / macvlan / host-access manager of one host.
#[derive(Debug)]
pub struct Lifecycle {
    net: Arc<dyn NetOps>,
    /// Prefix of this agent's named namespaces under /run/netns (empty on a
    /// normal host; a lab host's own prefix when agents share a machine).
    netns_prefix: String,
    /// Whose marks are this agent's (several may share a kernel).
    agent: AgentId,
    caps: OnceCell<Capabilities>,
    registry: Mutex<Registry>,
    catalog: Mutex<Catalog>,
    /// Held while the address check's namespace exists: a transaction and
    /// an attach may both check at once, and there is one such namespace.
    /// Taken after `registry` when both are held, never before.
    addrcheck: Mutex<()>,
}

/// Link group of a network's endpoints ("LH" in the high bits), so that a
/// whole network can be deleted from a namespace in one request.
pub fn group_of(network: &str) -> u32 {
    let h = network.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    0x4c48_0000 | (h & 0xffff)
}

impl Lifecycle {
    /// `registry` and `catalog`: loaded from the state store before
    /// ([`Registry::load`], [`Catalog::load`]).
    pub fn new(
        net: Arc<dyn NetOps>,
        (registry, catalog): (Registry, Catalog),
        netns_prefix: String,
        agent: AgentId,
    ) -> Self {
        Self {
            net,
            netns_prefix,
            agent,
            caps: OnceCell::new(),
            registry: Mutex::new(registry),
            catalog: Mutex::new(catalog),
            addrcheck: Mutex::new(()),
        }
    }

    /// The catalog's networks, by name.
    pub async fn networks(&self) -> Vec<CatalogNetwork> {
        self.catalog.lock().await.all().cloned().collect()
    }

    /// One network of the catalog.
    pub async fn network(&self, name: &str) -> Option<CatalogNetwork> {
        self.catalog.lock().await.get(name).cloned()
    }

    /// Puts `net` in the catalog (durably); what it replaced.
    pub async fn put_network(&self, net: CatalogNetwork) -> Result<Option<CatalogNetwork>, Error> {
        Ok(self.catalog.lock().await.put(net).await?)
    }

    /// Removes `name` from the catalog (durably); what it was.
    pub async fn remove_network(&self, name: &str) -> Result<Option<CatalogNetwork>, Error> {
        Ok(self.catalog.lock().await.remove(name).await?)
    }

    /// Whose marks are this agent's.
    pub fn agent(&self) -> &AgentId {
        &self.agent
    }

    /// Kernel capabilities, probed once: the probe can make the kernel try to
    /// load modules, which is not something to repeat on every call.
    pub async fn capabilities(&self) -> &Capabilities {
        self.caps
            .get_or_init(|| async { self.net.capabilities().await })
            .await
    }

    /// The namespace file of a target: named ones carry this agent's prefix.
    pub fn ns_file(&self, n: &linkherd_proto::model::NetnsRef) -> PathBuf {
        match n {
            linkherd_proto::model::NetnsRef::Named(name) => {
                linkherd_proto::model::NetnsRef::Named(format!("{}{name}", self.netns_prefix))
                    .file()
            }
            other => other.file(),
        }
    }

    /// Whether the named namespace (without this agent's prefix) exists.
    pub async fn netns_exists(&self, name: &str) -> Result<bool, Error> {
        let full = format!("{}{name}", self.netns_prefix);
        Ok(self.net.netns_exists(&full).await?)
    }

    /// Deletes a named namespace (without this agent's prefix) that a
    /// transaction step created, whatever is left in it: an agent killed
    /// half way through creating an endpoint may have left a link there
    /// without its ownership alias. Gone already is fine.
    pub async fn remove_step_netns(&self, name: &str) -> Result<(), Error> {
        if self.netns_exists(name).await? {
            self.net
                .delete_netns(&format!("{}{name}", self.netns_prefix))
                .await?;
        }
        Ok(())
    }

    /// The 802.1Q check every VLAN path makes first, with the fix.
    async fn require_vlan(&self) -> Result<(), Error> {
        if self.capabilities().await.vlan {
            Ok(())
        } else {
            Err(Error::Precondition(NO_VLAN_NOTE.to_owned()))
        }
    }

    /// A parent interface in the host namespace, checked for use as the
    /// lower device of a VLAN or macvlan.
    async fn parent(&self, name: &IfName, field: &str) -> Result<Interface, Error> {
        let parent = match self.net.link(name).await {
            Ok(p) => p,
            Err(NetError::NotFound { .. }) => {
                return Err(Error::NotFound(format!(
                    "{field} interface {:?} not found on this host",
                    name.as_str()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if parent.kind == LinkKind::Loopback {
            return Err(Error::Precondition(format!(
                "{field} {name} is the loopback device; give an Ethernet interface (e.g. ens192)"
            )));
        }
        Ok(parent)
    }
}
