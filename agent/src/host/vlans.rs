//! VLAN sub-interfaces.

use linkherd_proto::model::{IfName, Interface, LinkDetails, LinkKind, Owner, VlanSpec, VlanState};

use super::{Outcome, Vlans, registry::Registry};
use crate::{
    error::Error,
    net::{NetError, NewLink, NewLinkKind},
    state::agent_id::AgentId,
};

fn state_of(agent: &AgentId, link: &Interface) -> Option<VlanState> {
    let Some(LinkDetails::Vlan {
        id,
        protocol,
        reorder_header,
    }) = link.details
    else {
        return None;
    };
    let owner = agent.owner_of(link.alias.as_deref());
    Some(VlanState {
        name: link.name.clone(),
        parent: link.parent.clone().unwrap_or_default(),
        id,
        protocol,
        mtu: link.mtu,
        reorder_header,
        owned: matches!(owner, Some(Owner::Vlan | Owner::AutoVlan { .. })),
        auto_for_network: match owner {
            Some(Owner::AutoVlan { network }) => Some(network),
            _ => None,
        },
    })
}

impl Vlans<'_> {
    /// Creates a VLAN sub-interface, up; an identical existing one is
    /// `Unchanged`, a different one is `Exists` with the difference.
    pub async fn create_vlan(
        &self,
        spec: &VlanSpec,
        owner: Owner,
    ) -> Result<(VlanState, Outcome), Error> {
        self.h.require_vlan().await?;
        let mut reg = self.h.registry.lock().await;
        if owner != Owner::Vlan {
            return self.create_vlan_locked(spec, owner).await;
        }
        // Kept before it is made: a crash in between leaves a record the
        // next start makes good, never a VLAN it does not know to keep.
        let before = reg.vlans.get(spec.name.as_str()).cloned();
        reg.keep_vlan(spec).await?;
        let res = self.create_vlan_locked(spec, owner).await;
        if !matches!(&res, Ok((s, _)) if s.owned) {
            let undone = match &before {
                Some(b) => reg.keep_vlan(b).await,
                None => reg.drop_vlan(spec.name.as_str()).await,
            };
            if let Err(e) = undone {
                tracing::warn!(vlan = %spec.name, error = %e, "cannot take back the record of a VLAN not made");
            }
        }
        res
    }

    pub(super) async fn create_vlan_locked(
        &self,
        spec: &VlanSpec,
        owner: Owner,
    ) -> Result<(VlanState, Outcome), Error> {
        let parent = self.h.parent(&spec.parent, "parent").await?;
        let links = self.h.net.links().await?;
        if let Some(existing) = links.iter().find(|l| l.name == spec.name.as_str()) {
            let same = state_of(&self.h.agent, existing).filter(|v| {
                v.parent == spec.parent.as_str()
                    && v.id == spec.id.get()
                    && v.protocol == spec.protocol
                    && spec.mtu.is_none_or(|m| m == v.mtu)
            });
            return match same {
                Some(v) => Ok((v, Outcome::Unchanged)),
                None => Err(Error::Exists(format!(
                    "interface {} already exists ({}); it is not VLAN {} {} on {}",
                    spec.name,
                    describe(existing),
                    spec.protocol.as_str(),
                    spec.id,
                    spec.parent
                ))),
            };
        }
        check_new_vlan(spec, &parent, &links)?;
        let new = NewLink {
            name: spec.name.clone(),
            kind: NewLinkKind::Vlan {
                parent_index: parent.index,
                id: spec.id,
                protocol: spec.protocol,
            },
            mtu: spec.mtu,
            mac: None,
            alias: self.h.agent.mark(&owner),
            group: 0,
            target: None,
        };
        self.h.net.add_link(&new).await.map_err(|e| match e {
            NetError::Unsupported { .. } => {
                Error::Precondition(crate::net::NO_VLAN_NOTE.to_owned())
            }
            e => e.into(),
        })?;
        let link = self.h.net.link(&spec.name).await?;
        if let Err(e) = self.h.net.set_up(link.index, true).await {
            let _ = self.h.net.del_link(link.index).await;
            return Err(e.into());
        }
        let link = self.h.net.link_by_index(link.index).await?;
        let state = state_of(&self.h.agent, &link).ok_or_else(|| {
            Error::Net(NetError::Io {
                op: "add vlan",
                detail: "the new link is not a VLAN".into(),
            })
        })?;
        Ok((state, Outcome::Created))
    }

    /// Deletes a VLAN. Refuses links linkherd does not own unless `force`,
    /// and a VLAN that still carries endpoints.
    pub async fn delete_vlan(
        &self,
        name: &linkherd_proto::model::IfName,
        force: bool,
    ) -> Result<Outcome, Error> {
        let mut registry = self.h.registry.lock().await;
        let link = match self.h.net.link(name).await {
            Ok(l) => l,
            // Kept but not there now (a reboot, a hand deletion): the
            // delete is of what is desired.
            Err(NetError::NotFound { .. }) if registry.vlans.get(name.as_str()).is_some() => {
                registry.drop_vlan(name.as_str()).await?;
                return Ok(Outcome::Deleted);
            }
            Err(NetError::NotFound { .. }) => {
                return Err(Error::NotFound(format!("VLAN {name} not found")));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(state) = state_of(&self.h.agent, &link) else {
            return Err(Error::Precondition(format!(
                "{name} is {}, not a VLAN",
                describe(&link)
            )));
        };
        if !state.owned && !force {
            return Err(Error::Precondition(format!(
                "{name} was not created by linkherd; pass --force to delete it anyway"
            )));
        }
        let users: Vec<String> = registry
            .all()
            .filter(|e| e.parent == name.as_str())
            .map(|e| format!("{}/{}", e.network, e.name))
            .collect();
        if !users.is_empty() && !force {
            return Err(Error::Precondition(format!(
                "{name} carries endpoints {}; delete them first (or pass --force, which deletes them with it)",
                users.join(", ")
            )));
        }
        self.h.net.del_link(link.index).await?;
        registry.drop_vlan(name.as_str()).await?;
        Ok(Outcome::Deleted)
    }

    /// Every VLAN on the host, owned or not.
    pub async fn list_vlans(&self) -> Result<Vec<VlanState>, Error> {
        Ok(self
            .h
            .net
            .links()
            .await?
            .iter()
            .filter_map(|l| state_of(&self.h.agent, l))
            .collect())
    }

    /// Deletes the VLAN `parent` when linkherd made it for a network (for
    /// `network`, when given) and no endpoint or attachment of `reg` hangs
    /// off it any more; whether it went. Failures are logged: what needed
    /// it is gone already.
    pub(super) async fn remove_unused_auto(
        &self,
        parent: &str,
        network: Option<&str>,
        reg: &Registry,
    ) -> bool {
        if reg.all().any(|e| e.parent == parent)
            || reg.attachments.all().any(|a| a.parent == parent)
        {
            return false;
        }
        let Ok(name) = IfName::parse("parent", parent) else {
            return false;
        };
        let Ok(link) = self.h.net.link(&name).await else {
            return false;
        };
        let made_for = match self.h.agent.owner_of(link.alias.as_deref()) {
            Some(Owner::AutoVlan { network }) => network,
            _ => return false,
        };
        if network.is_some_and(|n| n != made_for) {
            return false;
        }
        match self.h.net.del_link(link.index).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(vlan = parent, error = %e, "cannot delete a VLAN linkherd created");
                false
            }
        }
    }
}

/// "a veth", "VLAN 20 on eth0", "a macvlan" — for messages.
pub(super) fn describe(l: &Interface) -> String {
    match (&l.details, l.kind) {
        (Some(LinkDetails::Vlan { id, protocol, .. }), _) => format!(
            "VLAN {} {id} on {}",
            protocol.as_str(),
            l.parent.as_deref().unwrap_or("?")
        ),
        (Some(LinkDetails::Macvlan { mode, .. }), _) => format!("a {} macvlan", mode.as_str()),
        (None, LinkKind::Device) => "a physical device".into(),
        (None, _) => format!(
            "a {}",
            if l.kind_name.is_empty() {
                "link"
            } else {
                &l.kind_name
            }
        ),
    }
}

/// A VLAN that does not exist yet may still be refused: the same id already
/// on the parent under another name, or an MTU above the parent's.
fn check_new_vlan(spec: &VlanSpec, parent: &Interface, links: &[Interface]) -> Result<(), Error> {
    if let Some(twin) = links.iter().find(|l| {
            l.parent_index == parent.index
                && matches!(l.details, Some(LinkDetails::Vlan { id, protocol, .. }) if id == spec.id.get() && protocol == spec.protocol)
        }) {
            return Err(Error::Exists(format!(
                "VLAN {} already exists on {} as {}; use that name or delete it first",
                spec.id, spec.parent, twin.name
            )));
        }
    if let Some(m) = spec.mtu.filter(|m| *m > parent.mtu) {
        return Err(linkherd_proto::model::ValidationError::new(
            "mtu",
            m.to_string(),
            format!(
                "is above the MTU of parent {} ({})",
                parent.name, parent.mtu
            ),
            format!(
                "use at most {}, or raise the parent's MTU first",
                parent.mtu
            ),
        )
        .into());
    }
    Ok(())
}
