//! Drift: how each host differs from a spec, told from the host's side (an
//! object the plan would create is missing, one it would delete is extra),
//! and the containers attached there, which are not drift (runtimes make
//! them) but belong to the picture of a host.

use super::{
    attached::{self, AttachedView},
    plan::{Action, Change, FleetPlan},
};

/// How an object differs from the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    /// The spec has it, the host does not.
    Missing,
    /// The host has it (as linkherd's), the spec does not.
    Extra,
    /// Both have it, not the same.
    Differs,
}

impl From<Action> for Drift {
    fn from(a: Action) -> Self {
        match a {
            Action::Create => Drift::Missing,
            Action::Delete => Drift::Extra,
            Action::Update | Action::Unknown => Drift::Differs,
        }
    }
}

impl Drift {
    pub fn as_str(self) -> &'static str {
        match self {
            Drift::Missing => "missing",
            Drift::Extra => "extra",
            Drift::Differs => "differs",
        }
    }
}

/// One host against the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    pub host: String,
    /// Empty: in sync.
    pub differences: Vec<(Drift, Change)>,
    /// Containers attached to the spec's networks on the host.
    pub containers: Vec<AttachedView>,
}

impl HostStatus {
    pub fn in_sync(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Every planned host's drift from the spec, in host order.
pub fn status(plan: &FleetPlan) -> Vec<HostStatus> {
    plan.hosts
        .iter()
        .map(|h| HostStatus {
            host: h.host.clone(),
            differences: h
                .changes
                .iter()
                .map(|c| (Drift::from(c.action), c.clone()))
                .collect(),
            containers: attached::of_spec(&plan.spec, &h.attachments)
                .map(|a| AttachedView::new(&h.host, a))
                .collect(),
        })
        .collect()
}
