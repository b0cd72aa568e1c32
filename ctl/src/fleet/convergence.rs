//! How each host keeps itself as set, as its agent reports it
//! (`HostService.GetConvergence`): the policy, the last pass, and every
//! object that is not in sync (drifted, repairing, fighting, waiting,
//! unrecoverable). Part of `status`: the spec comparison says what differs,
//! this says what the agent is doing about it.

use std::{collections::BTreeMap, time::SystemTime};

use futures::future::join_all;
use linkherd_proto::pb::{self, host_service_client::HostServiceClient};
use serde::Serialize;
use tonic::transport::Channel;

/// One object that is not in sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectView {
    pub kind: String,
    pub name: String,
    pub phase: String,
    pub detail: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// Seconds until the next try, when one is scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_try_seconds: Option<u64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    pub repairs: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A host's convergence, summed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConvergenceView {
    pub policy: String,
    pub passes: u64,
    /// Objects per phase ("in-sync", "repairing", ...).
    pub objects: BTreeMap<String, usize>,
    pub last_pass_ms: u32,
    pub last_trigger: String,
    /// Seconds since the last pass.
    pub last_pass_age_seconds: Option<u64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    /// Every object not in sync.
    pub not_in_sync: Vec<ObjectView>,
}

fn phase_name(p: i32) -> &'static str {
    match pb::ConvergencePhase::try_from(p).unwrap_or_default() {
        pb::ConvergencePhase::InSync => "in-sync",
        pb::ConvergencePhase::Drifted => "drifted",
        pb::ConvergencePhase::Waiting => "waiting",
        pb::ConvergencePhase::Repairing => "repairing",
        pb::ConvergencePhase::Fighting => "fighting",
        pb::ConvergencePhase::Unrecoverable => "unrecoverable",
        pb::ConvergencePhase::Pending => "pending",
        pb::ConvergencePhase::Unspecified => "unknown",
    }
}

/// Seconds from now to `t` (0 when past), or from `t` to now with `ago`.
fn seconds(t: &prost_types::Timestamp, ago: bool) -> Option<u64> {
    let at = SystemTime::try_from(*t).ok()?;
    let now = SystemTime::now();
    let d = if ago {
        now.duration_since(at)
    } else {
        at.duration_since(now)
    };
    Some(d.map_or(0, |d| d.as_secs()))
}

impl From<pb::GetConvergenceResponse> for ConvergenceView {
    fn from(r: pb::GetConvergenceResponse) -> Self {
        let mut objects = BTreeMap::new();
        let mut not_in_sync = Vec::new();
        for o in r.objects {
            let phase = phase_name(o.phase);
            *objects.entry(phase.to_owned()).or_default() += 1;
            if phase == "in-sync" {
                continue;
            }
            not_in_sync.push(ObjectView {
                kind: o.kind,
                name: o.name,
                phase: phase.to_owned(),
                detail: o.detail,
                attempts: o.attempts,
                next_try_seconds: o.next_try.as_ref().and_then(|t| seconds(t, false)),
                last_error: o.last_error,
                repairs: o.repairs,
            });
        }
        Self {
            policy: r.policy,
            passes: r.passes,
            objects,
            last_pass_ms: r.last_pass_ms,
            last_trigger: r.last_trigger,
            last_pass_age_seconds: r.last_pass.as_ref().and_then(|t| seconds(t, true)),
            last_error: r.last_error,
            not_in_sync,
        }
    }
}

impl ConvergenceView {
    /// Nothing when every object is in sync and the last pass read the
    /// kernel (the host's `in sync` line says it all; `-o json` has the
    /// figures); else `  agent       repair: 12 in-sync, 1 repairing; last
    /// pass 4s ago (event, 3 ms)` and a line per object not in sync.
    pub fn lines(&self) -> Vec<String> {
        if self.not_in_sync.is_empty() && self.last_error.is_empty() {
            return Vec::new();
        }
        let counts: Vec<String> = self
            .objects
            .iter()
            .map(|(p, n)| format!("{n} {p}"))
            .collect();
        let counts = if counts.is_empty() {
            "nothing to keep".to_owned()
        } else {
            counts.join(", ")
        };
        let last = match self.last_pass_age_seconds {
            Some(s) => format!(
                "; last pass {s}s ago ({}, {} ms)",
                self.last_trigger, self.last_pass_ms
            ),
            None => String::new(),
        };
        let mut out = vec![format!("  agent       {}: {counts}{last}", self.policy)];
        if !self.last_error.is_empty() {
            out.push(format!("  error       last pass: {}", self.last_error));
        }
        for o in &self.not_in_sync {
            let mut extra = Vec::new();
            if o.attempts > 0 {
                extra.push(format!("{} failed", o.attempts));
            }
            if let Some(s) = o.next_try_seconds {
                extra.push(format!("next try in {s}s"));
            }
            if !o.last_error.is_empty() {
                extra.push(format!("last error: {}", o.last_error));
            }
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(" ({})", extra.join("; "))
            };
            out.push(format!(
                "  {:<11} {} {}: {}{extra}",
                o.phase, o.kind, o.name, o.detail
            ));
        }
        out
    }
}

/// Each host's convergence, asked of all at once (`None` where the agent
/// predates it or did not answer: `status` still shows the spec drift).
pub async fn read(channels: Vec<Channel>) -> Vec<Option<ConvergenceView>> {
    join_all(channels.into_iter().map(|c| async move {
        HostServiceClient::new(c)
            .get_convergence(pb::GetConvergenceRequest {})
            .await
            .ok()
            .map(|r| ConvergenceView::from(r.into_inner()))
    }))
    .await
}
