//! `linkherdctl plan -f SPEC` and `status -f SPEC`: what applying the spec
//! would change on every host, as a plan or as drift, without changing
//! anything. Exit status 0: nothing to do, 2: changes.

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;

use super::{CtlError, Ctx, Exit};
use crate::{
    fleet::{
        self, FleetPlan, Goal,
        attached::AttachedView,
        convergence::ConvergenceView,
        plan::{Action, Change},
        status::HostStatus,
    },
    output,
};

/// One host's part of the plan, as `-o json|yaml` shows it.
#[derive(Debug, Serialize)]
pub(super) struct PlanView<'a> {
    host: &'a str,
    agent: &'a str,
    generation: u64,
    changes: &'a [Change],
}

/// Every host's part of `plan`, as shown.
pub(super) fn views(plan: &FleetPlan) -> Vec<PlanView<'_>> {
    plan.hosts
        .iter()
        .map(|h| PlanView {
            host: &h.host,
            agent: &h.agent,
            generation: h.generation,
            changes: &h.changes,
        })
        .collect()
}

/// Prints the plan (text or structured) on stdout.
pub(super) fn print(ctx: &Ctx, plan: &FleetPlan) -> Result<(), CtlError> {
    Ok(output::print(ctx.format, &views(plan), |v| {
        render(v, ctx.colour)
    })?)
}

fn exit(changes: bool) -> Exit {
    if changes {
        Exit::Changes
    } else {
        Exit::Success
    }
}

/// `plan -f`: exit 2 when there are changes.
pub async fn plan(ctx: &Ctx, file: &Path, skip_unreachable: bool) -> Result<Exit, CtlError> {
    let plan = ctx.plan_fleet(file, Goal::Spec, skip_unreachable).await?;
    print(ctx, &plan)?;
    Ok(exit(plan.has_changes()))
}

/// One host's drift, as `status -o json|yaml` shows it: its plan and the
/// containers attached to the spec's networks there.
#[derive(Debug, Serialize)]
struct StatusView<'a> {
    #[serde(flatten)]
    plan: PlanView<'a>,
    containers: &'a [AttachedView],
    /// What the agent does to keep the host as set (absent from agents
    /// that predate it).
    #[serde(skip_serializing_if = "Option::is_none")]
    convergence: Option<&'a ConvergenceView>,
}

/// `status -f`: the same comparison, told as drift of the fleet from the
/// spec, with each host's containers; exit 2 when a host has drifted
/// (containers come and go with their runtimes, so they are not drift).
pub async fn status(ctx: &Ctx, file: &Path, skip_unreachable: bool) -> Result<Exit, CtlError> {
    let plan = ctx.plan_fleet(file, Goal::Spec, skip_unreachable).await?;
    let status = fleet::status::status(&plan);
    let converging =
        fleet::convergence::read(plan.hosts.iter().map(|h| h.channel.clone()).collect()).await;
    let shown: Vec<StatusView<'_>> = views(&plan)
        .into_iter()
        .zip(&status)
        .zip(&converging)
        .map(|((plan, s), c)| StatusView {
            plan,
            containers: &s.containers,
            convergence: c.as_ref(),
        })
        .collect();
    output::print(ctx.format, &shown, |_| render_drift(&status, &converging))?;
    Ok(exit(plan.has_changes()))
}

/// `  KIND        OBJECT                   DETAIL`, as plans and drift align it.
fn change_line(mark: &str, c: &Change) -> String {
    let line = format!("  {mark} {:<11} {:<24} {}", c.kind, c.object, c.detail);
    line.trim_end().to_owned()
}

/// Per host: in sync, or what is missing, differs, or is extra; then its
/// containers.
fn render_drift(hosts: &[HostStatus], converging: &[Option<ConvergenceView>]) -> String {
    let mut out = Vec::new();
    for (k, h) in hosts.iter().enumerate() {
        if h.in_sync() {
            out.push(format!("{}: in sync", h.host));
        } else {
            out.push(format!(
                "{}: {} difference(s) from the spec",
                h.host,
                h.differences.len()
            ));
            for (drift, c) in &h.differences {
                out.push(change_line(&format!("{:<8}", drift.as_str()), c));
            }
        }
        out.extend(container_lines(&h.containers));
        if let Some(Some(c)) = converging.get(k) {
            out.extend(c.lines());
        }
    }
    out.join("\n")
}

/// `  containers  3 on mac_net10, 1 on mac_net20` — a count per network,
/// not a list, which `get endpoints` gives — then each stale one named,
/// since those need a GC or DEL.
fn container_lines(containers: &[AttachedView]) -> Vec<String> {
    if containers.is_empty() {
        return Vec::new();
    }
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for c in containers {
        *per.entry(&c.network).or_default() += 1;
    }
    let counts: Vec<String> = per.iter().map(|(n, k)| format!("{k} on {n}")).collect();
    let mut out = vec![format!("  containers  {}", counts.join(", "))];
    out.extend(containers.iter().filter(|c| c.stale).map(|c| {
        format!(
            "  stale       {} on {}: namespace {} is gone; GC or DEL removes it",
            c.label(),
            c.network,
            c.netns
        )
    }));
    out
}

/// Terraform-like: `+` create, `~` update, `-` delete, per host, then a
/// summary line.
fn render(plans: &[PlanView<'_>], colour: bool) -> String {
    let paint = |code: &str, s: String| {
        if colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s
        }
    };
    let mut out = Vec::new();
    let (mut add, mut upd, mut del) = (0, 0, 0);
    for p in plans {
        if p.changes.is_empty() {
            out.push(format!("{} ({}): no changes", p.host, p.agent));
            continue;
        }
        out.push(format!("{} ({}):", p.host, p.agent));
        for c in p.changes {
            let (sign, code, count) = match c.action {
                Action::Create => ("+", "32", &mut add),
                Action::Delete => ("-", "31", &mut del),
                Action::Update | Action::Unknown => ("~", "33", &mut upd),
            };
            *count += 1;
            out.push(paint(code, change_line(sign, c)));
        }
    }
    out.push(if add + upd + del == 0 {
        "No changes: the fleet matches the spec.".to_owned()
    } else {
        format!("Plan: {add} to create, {upd} to change, {del} to delete.")
    });
    out.join("\n")
}

#[cfg(test)]
mod tests;
