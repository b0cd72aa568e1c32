//! Planning: what would change on this host to reach a desired state.
//!
//! A desired state is authoritative for the networks it names (their
//! endpoints and host access) and for the VLANs it lists; everything else on
//! the host is left out of the plan. Steps come in the order an apply would
//! run them: VLANs, endpoint removals, replacements, creations, host access,
//! and last the removal of VLANs the state says must be absent.

use std::collections::BTreeSet;

use linkherd_proto::model::{
    CatalogNetwork, Desired, EndpointSpec, HostAccessSpec, HostAccessState, IfName, Interface,
    LinkDetails, NetnsRef, Owner, VlanSpec,
};

use super::{Planner, registry::Entry, vlans::describe};
use crate::{error::Error, net::NetError, state::agent_id::AgentId};

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    /// Replace: delete and create again with the new settings.
    Update,
    Delete,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    /// "vlan", "endpoint", "host-access".
    pub kind: &'static str,
    pub object: String,
    pub detail: String,
    /// What an apply does for this step.
    pub op: Op,
}

/// The operation behind a step, with everything needed to carry it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    CreateVlan(VlanSpec),
    /// Delete the (owned) VLAN of that name, create it anew.
    ReplaceVlan(VlanSpec),
    /// Delete an owned VLAN (its endpoints are gone by then).
    DeleteVlan {
        name: IfName,
    },
    DeleteEndpoint {
        network: String,
        name: String,
    },
    ReplaceEndpoint(EndpointSpec),
    CreateEndpoint(EndpointSpec),
    DeleteHostAccess {
        network: String,
    },
    ReplaceHostAccess(HostAccessSpec),
    CreateHostAccess(HostAccessSpec),
    /// Put a network in the catalog (new, or replacing its definition).
    PutNetwork(CatalogNetwork),
    /// Take a network out of the catalog.
    RemoveNetwork {
        name: String,
    },
}

fn change(
    action: Action,
    kind: &'static str,
    object: impl Into<String>,
    detail: impl Into<String>,
    op: Op,
) -> Change {
    Change {
        action,
        kind,
        object: object.into(),
        detail: detail.into(),
        op,
    }
}

impl Planner<'_> {
    /// The steps from this host's state to `desired`. Refuses (with the
    /// reason) when a name is taken by something linkherd does not own.
    pub async fn plan(&self, desired: &Desired) -> Result<Vec<Change>, Error> {
        let links = self.h.net.links().await?;
        let mut steps = plan_vlans(&self.h.agent, &links, desired)?;
        let scope = desired.scope();
        let current: Vec<_> = self.h.registry.lock().await.all().cloned().collect();
        steps.extend(plan_endpoint_removals(&current, desired, &scope));
        let (updates, creates) = self.plan_endpoints(&current, desired).await?;
        steps.extend(updates);
        steps.extend(creates);
        let accesses = self.h.host_access().list_host_access().await?;
        steps.extend(plan_host_access(&accesses, desired, &scope));
        // Last: the VLANs the endpoints above were taken off.
        steps.extend(plan_absent_vlans(&self.h.agent, &links, desired));
        steps.extend(plan_catalog(
            &self.h.catalog().networks().await,
            desired,
            &scope,
        ));
        Ok(steps)
    }

    /// Replacements (endpoints that differ from their spec) and creations
    /// (endpoints that do not exist), in that order of application.
    async fn plan_endpoints(
        &self,
        current: &[Entry],
        desired: &Desired,
    ) -> Result<(Vec<Change>, Vec<Change>), Error> {
        let (mut updates, mut creates) = (Vec::new(), Vec::new());
        for e in &desired.endpoints {
            let object = format!("{}/{}", e.network, e.name);
            let existing = current
                .iter()
                .find(|c| c.network == e.network.as_str() && c.name == e.name.as_str());
            let Some(c) = existing else {
                creates.push(change(
                    Action::Create,
                    "endpoint",
                    object,
                    describe_endpoint(e),
                    Op::CreateEndpoint(e.clone()),
                ));
                continue;
            };
            let diffs = self.endpoint_differences(c, e).await?;
            if !diffs.is_empty() {
                updates.push(change(
                    Action::Update,
                    "endpoint",
                    object,
                    diffs.join(", "),
                    Op::ReplaceEndpoint(e.clone()),
                ));
            }
        }
        Ok((updates, creates))
    }

    /// How the endpoint recorded as `c` differs from its spec `e`.
    async fn endpoint_differences(
        &self,
        c: &Entry,
        e: &EndpointSpec,
    ) -> Result<Vec<String>, Error> {
        let moved = NetnsRef::from(&c.netns) != e.netns || c.ifname != e.ifname.as_str();
        if moved {
            return Ok(vec![format!("moves to {} in {}", e.ifname, e.netns)]);
        }
        let ops = self.h.ns_ops(&e.netns).await?;
        match ops.link(&IfName::parse("ifname", &c.ifname)?).await {
            Ok(link) => self.h.endpoints().differences(e, &link, ops.as_ref()).await,
            Err(NetError::NotFound { .. }) => Ok(vec!["its link is gone".to_owned()]),
            Err(err) => Err(err.into()),
        }
    }
}

/// Whether linkherd made this link as a VLAN (by hand or for an endpoint).
fn owned_vlan(agent: &AgentId, l: &Interface) -> bool {
    matches!(
        agent.owner_of(l.alias.as_deref()),
        Some(Owner::Vlan | Owner::AutoVlan { .. })
    )
}

/// VLANs to create, or to replace when linkherd owns a differing one; a
/// differing VLAN linkherd does not own refuses the plan.
fn plan_vlans(
    agent: &AgentId,
    links: &[Interface],
    desired: &Desired,
) -> Result<Vec<Change>, Error> {
    let mut steps = Vec::new();
    for v in &desired.vlans {
        let what = format!("VLAN {} {} on {}", v.protocol.as_str(), v.id, v.parent);
        let Some(l) = links.iter().find(|l| l.name == v.name.as_str()) else {
            steps.push(change(
                Action::Create,
                "vlan",
                v.name.as_str(),
                what,
                Op::CreateVlan(v.clone()),
            ));
            continue;
        };
        let same = matches!(l.details, Some(LinkDetails::Vlan { id, protocol, .. }) if id == v.id.get() && protocol == v.protocol)
            && l.parent.as_deref() == Some(v.parent.as_str());
        match (same, owned_vlan(agent, l)) {
            (true, _) => {}
            (false, true) => steps.push(change(
                Action::Update,
                "vlan",
                v.name.as_str(),
                format!("{} -> {what}", describe(l)),
                Op::ReplaceVlan(v.clone()),
            )),
            (false, false) => {
                return Err(Error::Exists(format!(
                    "{} exists ({}) and is not linkherd's; it cannot become {what}",
                    v.name,
                    describe(l)
                )));
            }
        }
    }
    Ok(steps)
}

/// Endpoints of the networks in scope that the desired state no longer has.
fn plan_endpoint_removals(
    current: &[Entry],
    desired: &Desired,
    scope: &BTreeSet<&str>,
) -> Vec<Change> {
    current
        .iter()
        .filter(|c| scope.contains(c.network.as_str()))
        .filter(|c| {
            !desired
                .endpoints
                .iter()
                .any(|e| e.network.as_str() == c.network && e.name.as_str() == c.name)
        })
        .map(|c| {
            change(
                Action::Delete,
                "endpoint",
                format!("{}/{}", c.network, c.name),
                format!("{} in {}", c.ifname, NetnsRef::from(&c.netns)),
                Op::DeleteEndpoint {
                    network: c.network.clone(),
                    name: c.name.clone(),
                },
            )
        })
        .collect()
}

/// `ifname in NETNS on PARENT (MODE), ADDRESSES` of a new endpoint.
fn describe_endpoint(e: &EndpointSpec) -> String {
    let addrs: Vec<String> = e.addresses.iter().map(ToString::to_string).collect();
    format!(
        "{} in {} on {} ({}), {}",
        e.ifname,
        e.netns,
        e.parent,
        e.mode.as_str(),
        addrs.join(" ")
    )
}

/// Host access to remove (networks in scope the state has none for), to
/// create, or to replace when its addresses, routes or parent differ.
/// The catalog's networks of the state's scope that it does not list go;
/// those it lists are put when new or different.
fn plan_catalog(
    current: &[CatalogNetwork],
    desired: &Desired,
    scope: &BTreeSet<&str>,
) -> Vec<Change> {
    let mut steps = Vec::new();
    for c in current
        .iter()
        .filter(|c| scope.contains(c.name.as_str()))
        .filter(|c| !desired.catalog.iter().any(|d| d.name == c.name))
    {
        steps.push(change(
            Action::Delete,
            "network",
            c.name.as_str(),
            super::catalog::describe(c),
            Op::RemoveNetwork {
                name: c.name.to_string(),
            },
        ));
    }
    for d in &desired.catalog {
        match current.iter().find(|c| c.name == d.name) {
            None => steps.push(change(
                Action::Create,
                "network",
                d.name.as_str(),
                super::catalog::describe(d),
                Op::PutNetwork(d.clone()),
            )),
            Some(c) if c != d => steps.push(change(
                Action::Update,
                "network",
                d.name.as_str(),
                super::catalog::differences(c, d),
                Op::PutNetwork(d.clone()),
            )),
            Some(_) => {}
        }
    }
    steps
}

fn plan_host_access(
    accesses: &[HostAccessState],
    desired: &Desired,
    scope: &BTreeSet<&str>,
) -> Vec<Change> {
    let mut steps = Vec::new();
    for s in accesses
        .iter()
        .filter(|s| scope.contains(s.network.as_str()))
        .filter(|s| {
            !desired
                .host_access
                .iter()
                .any(|h| h.network.as_str() == s.network)
        })
    {
        steps.push(change(
            Action::Delete,
            "host-access",
            s.network.clone(),
            s.name.clone(),
            Op::DeleteHostAccess {
                network: s.network.clone(),
            },
        ));
    }
    for h in &desired.host_access {
        let routes: Vec<String> = h.routes.iter().map(ToString::to_string).collect();
        match accesses.iter().find(|s| s.network == h.network.as_str()) {
            None => steps.push(change(
                Action::Create,
                "host-access",
                h.network.as_str(),
                format!("{} on {} -> {}", h.name, h.parent, routes.join(" ")),
                Op::CreateHostAccess(h.clone()),
            )),
            Some(s) => {
                let same = s.addresses.iter().collect::<BTreeSet<_>>()
                    == h.addresses.iter().collect()
                    && s.routes.iter().collect::<BTreeSet<_>>() == h.routes.iter().collect()
                    && s.parent == h.parent.as_str();
                if !same {
                    steps.push(change(
                        Action::Update,
                        "host-access",
                        h.network.as_str(),
                        format!("routes -> {}", routes.join(" ")),
                        Op::ReplaceHostAccess(h.clone()),
                    ));
                }
            }
        }
    }
    steps
}

/// Owned VLANs the desired state says must be absent.
fn plan_absent_vlans(agent: &AgentId, links: &[Interface], desired: &Desired) -> Vec<Change> {
    desired
        .absent_vlans
        .iter()
        .filter_map(|name| {
            let l = links.iter().find(|l| l.name == name.as_str())?;
            (owned_vlan(agent, l) && matches!(l.details, Some(LinkDetails::Vlan { .. }))).then(
                || {
                    change(
                        Action::Delete,
                        "vlan",
                        name.as_str(),
                        describe(l),
                        Op::DeleteVlan { name: name.clone() },
                    )
                },
            )
        })
        .collect()
}
