//! What a fleet apply, destroy or verify tells: the `-o json|yaml` report
//! of the whole run, and the one-sentence failure that ends it.

use serde::Serialize;

use super::{CtlError, Ctx, plan::views};
use crate::{
    fleet::{
        FleetPlan, Phases, RolloutOutcome,
        rollout::{HostFailure, Rollback, Stopped},
        verify::ProbeOutcome,
    },
    output,
};

/// How the run ended, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    NoChanges,
    Cancelled,
    Confirmed,
    RolledBack,
    Partial,
    Verified,
    Failed,
}

impl From<&RolloutOutcome> for RunOutcome {
    fn from(o: &RolloutOutcome) -> Self {
        match o {
            RolloutOutcome::NoChanges => RunOutcome::NoChanges,
            RolloutOutcome::Confirmed { .. } => RunOutcome::Confirmed,
            RolloutOutcome::RolledBack { .. } => RunOutcome::RolledBack,
            RolloutOutcome::Partial { .. } => RunOutcome::Partial,
        }
    }
}

/// What happened on one host, in a sentence.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostLine {
    pub host: String,
    pub ok: bool,
    pub detail: String,
}

fn line(host: &str, ok: bool, detail: &impl ToString) -> HostLine {
    HostLine {
        host: host.to_owned(),
        ok,
        detail: detail.to_string(),
    }
}

/// The whole run as one document.
#[derive(Debug, Serialize)]
struct Report<'a> {
    outcome: RunOutcome,
    plan: Vec<super::plan::PlanView<'a>>,
    skipped: Vec<String>,
    hosts: Vec<HostLine>,
    verification: &'a [ProbeOutcome],
    timing: &'a Phases,
}

/// Prints the report when the output is structured (text output has been
/// printed as the run went).
pub fn print(
    ctx: &Ctx,
    plan: &FleetPlan,
    outcome: RunOutcome,
    timing: &Phases,
    hosts: Vec<HostLine>,
    verification: &[ProbeOutcome],
) -> Result<(), CtlError> {
    if ctx.text() {
        return Ok(());
    }
    let report = Report {
        outcome,
        plan: views(plan),
        skipped: plan.skipped.iter().map(ToString::to_string).collect(),
        hosts,
        verification,
        timing,
    };
    if let Some(s) = output::structured(ctx.format, &report)? {
        println!("{}", output::terminal(&s));
    }
    Ok(())
}

/// Every host's part of a rollout: those that failed or were not started,
/// then each confirmation or rollback.
pub fn hosts(o: &RolloutOutcome) -> Vec<HostLine> {
    match o {
        RolloutOutcome::NoChanges => Vec::new(),
        RolloutOutcome::Confirmed { confirms, .. } | RolloutOutcome::Partial { confirms } => {
            confirms.iter().map(|(h, c)| line(h, c.ok(), c)).collect()
        }
        RolloutOutcome::RolledBack { why, rollbacks } => {
            let mut out: Vec<HostLine> = failed_hosts(why)
                .iter()
                .map(|(h, f)| line(h, false, f))
                .collect();
            out.extend(
                rollbacks
                    .iter()
                    .map(|(h, r)| line(h, matches!(r, Rollback::RolledBack { .. }), r)),
            );
            out
        }
    }
}

fn failed_hosts(why: &Stopped) -> &[(String, HostFailure)] {
    match why {
        Stopped::ApplyFailed(f) | Stopped::Interrupted(f) => f,
        Stopped::Verification(_) | Stopped::InterruptedVerifying => &[],
    }
}

fn joined<T: ToString>(items: &[(String, T)]) -> String {
    items
        .iter()
        .map(|(h, x)| format!("{h}: {}", x.to_string()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A rollout that was rolled back or only partly confirmed, told in the
/// sentence the command ends with: what went wrong where, and what was
/// rolled back.
#[derive(Debug, Clone)]
pub struct RolloutFailed {
    /// `Apply` or `Destroy`.
    pub verb: &'static str,
    pub outcome: RolloutOutcome,
}

impl RolloutFailed {
    /// `Some` when `outcome` is a failure.
    pub fn of(verb: &'static str, outcome: RolloutOutcome) -> Option<Self> {
        match outcome {
            RolloutOutcome::NoChanges | RolloutOutcome::Confirmed { .. } => None,
            RolloutOutcome::RolledBack { .. } | RolloutOutcome::Partial { .. } => {
                Some(Self { verb, outcome })
            }
        }
    }
}

impl std::error::Error for RolloutFailed {}

impl std::fmt::Display for RolloutFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            RolloutOutcome::NoChanges | RolloutOutcome::Confirmed { .. } => {
                write!(f, "{} succeeded", self.verb)
            }
            RolloutOutcome::Partial { confirms } => {
                let (ok, bad): (Vec<_>, Vec<_>) = confirms.iter().partition(|(_, c)| c.ok());
                let bad: Vec<String> = bad.iter().map(|(h, c)| format!("{h}: {c}")).collect();
                let kept: Vec<&str> = ok.iter().map(|(h, _)| h.as_str()).collect();
                write!(
                    f,
                    "confirmation failed on {}; kept on [{}]: run apply again to converge",
                    bad.join("; "),
                    kept.join(", ")
                )
            }
            RolloutOutcome::RolledBack { why, rollbacks } => {
                write!(f, "{}; {}", stopped(self.verb, why), undone(rollbacks))
            }
        }
    }
}

fn stopped(verb: &str, why: &Stopped) -> String {
    match why {
        Stopped::ApplyFailed(f) => format!("{verb} failed on {}", joined(f)),
        Stopped::Interrupted(f) if f.is_empty() => "interrupted (Ctrl-C) while applying".into(),
        Stopped::Interrupted(f) => format!("interrupted (Ctrl-C) while applying ({})", joined(f)),
        Stopped::Verification(v) => v.to_string(),
        Stopped::InterruptedVerifying => "interrupted (Ctrl-C) during verification".into(),
    }
}

fn undone(rollbacks: &[(String, Rollback)]) -> String {
    if rollbacks.is_empty() {
        "nothing was changed".to_owned()
    } else if rollbacks
        .iter()
        .all(|(_, r)| matches!(r, Rollback::RolledBack { .. }))
    {
        format!("rolled back everywhere ({})", joined(rollbacks))
    } else {
        format!("rolling back: {}", joined(rollbacks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::rollout::NotStarted;

    #[test]
    fn a_failed_apply_names_hosts_and_what_was_rolled_back() {
        let o = RolloutOutcome::RolledBack {
            why: Stopped::ApplyFailed(vec![
                (
                    "no1".into(),
                    HostFailure::Refused(tonic::Status::failed_precondition("busy").into()),
                ),
                (
                    "no2".into(),
                    HostFailure::NotStarted(NotStarted::AnotherFailed),
                ),
            ]),
            rollbacks: vec![],
        };
        assert_eq!(RunOutcome::from(&o), RunOutcome::RolledBack);
        assert_eq!(hosts(&o).len(), 2);
        assert!(!hosts(&o)[1].ok);
        assert_eq!(
            RolloutFailed::of("Apply", o).expect("failed").to_string(),
            "Apply failed on no1: FAILED_PRECONDITION: busy; no2: not started: another host \
             failed first; nothing was changed"
        );
        let o = RolloutOutcome::RolledBack {
            why: Stopped::Interrupted(vec![]),
            rollbacks: vec![
                ("no1".into(), Rollback::RolledBack { steps: 1 }),
                ("no2".into(), Rollback::RolledBack { steps: 24 }),
            ],
        };
        assert_eq!(
            RolloutFailed::of("Apply", o).expect("failed").to_string(),
            "interrupted (Ctrl-C) while applying; rolled back everywhere (no1: rolled back 1 \
             step(s); no2: rolled back 24 step(s))"
        );
        assert_eq!(
            serde_json::to_value(RunOutcome::NoChanges).expect("json"),
            "no-changes"
        );
    }
}
