//! The host's objects — VLAN sub-interfaces, macvlan endpoints, host access,
//! the network catalog, container attachments — what the source document
//! does by hand with `ip link add … type vlan` and `docker network create -d
//! macvlan`, as idempotent, owned, reversible operations over the kernel
//! seam.
//!
//! [`Host`] holds what they share: the kernel, the agent's id, the records
//! and the locks. Each kind of object has its owner, a view of the host
//! named after it ([`Host::vlans`], [`Host::endpoints`],
//! [`Host::host_access`], [`Host::catalog`], [`Host::attachments`],
//! [`Host::addrcheck`], [`Host::planner`]), whose methods live in that
//! kind's own file, so a call names the room it goes to.
//!
//! Every change takes the registry lock, so two requests never race on the
//! same parent, namespace or record; see [`Host`] for the lock order.

mod addrcheck;
pub mod attachments;
mod backfill;
pub mod catalog;
pub mod drift;
mod endpoints;
mod host_access;
pub mod made_netns;
mod namespaces;
pub mod plan;
pub mod registry;
mod repair;
mod undo;
mod vlans;

use std::{path::PathBuf, sync::Arc};

use linkherd_proto::model::{IfName, Interface, LinkKind};
use tokio::sync::{Mutex, OnceCell};

pub use addrcheck::Wanted;
pub use attachments::view::NetworkStatus;
use catalog::Catalog;
pub use endpoints::Removed;
use made_netns::MadeNetns;
use registry::Registry;
pub use repair::Repaired;

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

/// One host's objects and what they share.
///
/// Lock order: `registry` (every change), then `addrcheck` (the address
/// check's one namespace; taken alone by a transaction's check, after
/// `registry` by an attach's). The check's work runs on a prober that holds
/// only the kernel, so no lock can be taken under `addrcheck`. `catalog` is
/// a leaf, held only to copy a network in or out (never across a kernel
/// call), and is only reached through [`CatalogNetworks`].
#[derive(Debug)]
pub struct Host {
    net: Arc<dyn NetOps>,
    /// Prefix of this agent's named namespaces under /run/netns (empty on a
    /// normal host; a lab host's own prefix when agents share a machine).
    netns_prefix: String,
    /// Whose marks are this agent's (several may share a kernel).
    agent: AgentId,
    /// The named namespaces it made (for `--adopt`).
    made: MadeNetns,
    caps: OnceCell<Capabilities>,
    /// See [`Host::own_netns`].
    own_netns: OnceCell<std::collections::BTreeSet<crate::net::netns::NsId>>,
    registry: Mutex<Registry>,
    catalog: Mutex<Catalog>,
    /// Held while the address check's namespace exists: a transaction and
    /// an attach may both check at once, and there is one such namespace.
    /// Taken after `registry` when both are held, never before.
    addrcheck: Mutex<()>,
}

/// VLAN sub-interfaces (`vlans.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Vlans<'a> {
    h: &'a Host,
}

/// Macvlan endpoints in namespaces (`endpoints/`).
#[derive(Debug, Clone, Copy)]
pub struct Endpoints<'a> {
    h: &'a Host,
}

/// Host access: the host's own macvlan on a network (`host_access.rs`).
#[derive(Debug, Clone, Copy)]
pub struct HostAccesses<'a> {
    h: &'a Host,
}

/// The network catalog (`catalog.rs`).
#[derive(Debug, Clone, Copy)]
pub struct CatalogNetworks<'a> {
    h: &'a Host,
}

/// Container attachments and Docker hand-overs (`attachments/`).
#[derive(Debug, Clone, Copy)]
pub struct Attachments<'a> {
    h: &'a Host,
}

/// The address check before use (`addrcheck.rs`).
#[derive(Debug, Clone, Copy)]
pub struct AddrCheck<'a> {
    h: &'a Host,
}

/// Plans: the ordered changes from this host to a desired state (`plan.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Planner<'a> {
    h: &'a Host,
}

/// Link group of a network's endpoints ("LH" in the high bits), so that a
/// whole network can be deleted from a namespace in one request.
pub fn group_of(network: &str) -> u32 {
    let h = network.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    0x4c48_0000 | (h & 0xffff)
}

impl Host {
    /// `registry` and `catalog`: loaded from the state store before
    /// ([`Registry::load`], [`Catalog::load`]).
    pub fn new(
        net: Arc<dyn NetOps>,
        (registry, catalog): (Registry, Catalog),
        netns_prefix: String,
        (agent, made): (AgentId, MadeNetns),
    ) -> Self {
        Self {
            net,
            netns_prefix,
            agent,
            made,
            caps: OnceCell::new(),
            own_netns: OnceCell::new(),
            registry: Mutex::new(registry),
            catalog: Mutex::new(catalog),
            addrcheck: Mutex::new(()),
        }
    }

    /// VLAN sub-interfaces (`vlans.rs`).
    pub fn vlans(&self) -> Vlans<'_> {
        Vlans { h: self }
    }

    /// Macvlan endpoints in namespaces (`endpoints/`).
    pub fn endpoints(&self) -> Endpoints<'_> {
        Endpoints { h: self }
    }

    /// Host access: the host's own macvlan on a network (`host_access.rs`).
    pub fn host_access(&self) -> HostAccesses<'_> {
        HostAccesses { h: self }
    }

    /// The network catalog (`catalog.rs`).
    pub fn catalog(&self) -> CatalogNetworks<'_> {
        CatalogNetworks { h: self }
    }

    /// Container attachments and Docker hand-overs (`attachments/`).
    pub fn attachments(&self) -> Attachments<'_> {
        Attachments { h: self }
    }

    /// The address check before use (`addrcheck.rs`).
    pub fn addrcheck(&self) -> AddrCheck<'_> {
        AddrCheck { h: self }
    }

    /// Plans: the ordered changes from this host to a desired state (`plan.rs`).
    pub fn planner(&self) -> Planner<'_> {
        Planner { h: self }
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
        let full = format!("{}{name}", self.netns_prefix);
        if self.netns_exists(name).await? {
            self.net.delete_netns(&full).await?;
        }
        self.made.forget(&full).await;
        Ok(())
    }

    /// A link of the host namespace by name.
    pub async fn link(&self, name: &IfName) -> Result<Interface, Error> {
        Ok(self.net.link(name).await?)
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
