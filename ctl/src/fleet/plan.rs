//! A plan for the whole fleet: read every host, compute each one's desired
//! state for a goal (allocating addresses around what the fleet uses), and
//! ask each agent what it would change. Nothing is changed.

use std::collections::BTreeMap;

use futures::future::join_all;
use linkherd_proto::{
    model::{Attachment, Desired, OwnedObjects},
    pb::{self, host_service_client::HostServiceClient},
};
use serde::Serialize;
use tonic::transport::Channel;

use super::{
    FleetError, desired,
    read::{self, HostRead},
};
use crate::{
    client::{RpcError, Targets},
    spec::FleetSpec,
};

pub use read::Unreachable;

/// What the fleet is converged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// What the spec says.
    Spec,
    /// None of the spec's objects (`destroy`).
    Teardown,
}

/// What a change does to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    /// An action this client does not know (a newer agent).
    Unknown,
}

impl From<i32> for Action {
    fn from(a: i32) -> Self {
        match pb::ChangeAction::try_from(a) {
            Ok(pb::ChangeAction::Create) => Action::Create,
            Ok(pb::ChangeAction::Update) => Action::Update,
            Ok(pb::ChangeAction::Delete) => Action::Delete,
            _ => Action::Unknown,
        }
    }
}

/// One change an agent would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub action: Action,
    pub kind: String,
    pub object: String,
    pub detail: String,
}

impl From<&pb::Change> for Change {
    fn from(c: &pb::Change) -> Self {
        Self {
            action: c.action.into(),
            kind: c.object_kind.clone(),
            object: c.object.clone(),
            detail: c.detail.clone(),
        }
    }
}

/// One host's part of a fleet plan, with what applying it needs.
#[derive(Debug, Clone)]
pub struct HostPlan {
    pub host: String,
    /// The agent's address, as the spec gives it.
    pub agent: String,
    pub channel: Channel,
    pub desired: Desired,
    /// The generation planned against: Apply refuses if it moved.
    pub generation: u64,
    pub changes: Vec<Change>,
    /// What linkherd owns on the host, as read before planning.
    pub observed: OwnedObjects,
    /// Containers attached on the host, as read before planning.
    pub attachments: Vec<Attachment>,
}

/// A plan for the whole fleet.
#[derive(Debug)]
pub struct FleetPlan {
    pub spec: FleetSpec,
    pub goal: Goal,
    /// Every reachable host, in name order.
    pub hosts: Vec<HostPlan>,
    /// Hosts left out because they did not answer (`skip_unreachable`).
    pub skipped: Vec<Unreachable>,
}

impl FleetPlan {
    pub fn has_changes(&self) -> bool {
        self.hosts.iter().any(|h| !h.changes.is_empty())
    }

    /// The hosts with something to change.
    pub fn changed_hosts(&self) -> impl Iterator<Item = &HostPlan> {
        self.hosts.iter().filter(|h| !h.changes.is_empty())
    }
}

/// Reads the fleet, computes each host's desired state for `goal`, and asks
/// each agent to plan its part. With `skip_unreachable`, hosts that do not
/// answer are left out (and listed) unless none answers; otherwise one
/// host not answering fails the plan, naming every such host.
pub async fn plan(
    spec: FleetSpec,
    targets: &dyn Targets,
    goal: Goal,
    skip_unreachable: bool,
) -> Result<FleetPlan, FleetError> {
    let read = read::read(&spec, targets).await;
    let (hosts, skipped) = (read.hosts, read.unreachable);
    if !skipped.is_empty() && (!skip_unreachable || hosts.is_empty()) {
        return Err(FleetError::Unreachable(read::UnreachableHosts(skipped)));
    }
    let mut wanted = match goal {
        Goal::Spec => desired_states(&spec, &hosts)?,
        Goal::Teardown => desired::teardown(&spec)?,
    };
    wanted.retain(|h, _| hosts.contains_key(h));
    let plans = wanted.into_iter().filter_map(|(host, d)| {
        let read = hosts.get(&host)?.clone();
        Some(plan_host(host, read, d))
    });
    let hosts = join_all(plans)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FleetPlan {
        spec,
        goal,
        hosts,
        skipped,
    })
}

/// Every host's desired state for the spec, given what the hosts have now.
pub fn desired_states(
    spec: &FleetSpec,
    hosts: &BTreeMap<String, HostRead>,
) -> Result<BTreeMap<String, Desired>, FleetError> {
    let seen = super::observed(
        spec,
        hosts
            .iter()
            .map(|(h, r)| (h.as_str(), &r.owned, r.attachments.as_slice())),
    );
    Ok(desired::desired(spec, &seen)?)
}

/// Asks one agent what reaching `d` would change.
async fn plan_host(host: String, read: HostRead, d: Desired) -> Result<HostPlan, FleetError> {
    let r = HostServiceClient::new(read.channel.clone())
        .plan(pb::PlanRequest {
            desired: Some(pb::DesiredState::from(&d)),
        })
        .await
        .map_err(|s| FleetError::Rpc(RpcError::on(&host, s)))?
        .into_inner();
    Ok(HostPlan {
        host,
        agent: read.address,
        channel: read.channel,
        desired: d,
        generation: r.generation,
        changes: r.changes.iter().map(Change::from).collect(),
        observed: read.owned,
        attachments: read.attachments,
    })
}
