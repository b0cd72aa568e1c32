//! `linkherdctl plan -f SPEC`: what applying the spec would change on every
//! host, without changing anything. Reads every host's state first (all
//! hosts must answer), assigns addresses with the fleet IPAM, and asks each
//! agent to plan its part. Exit status 0: nothing to do, 2: changes.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

use futures::future::join_all;
use linkherd_proto::{
    convert::Desired,
    pb::{self, host_service_client::HostServiceClient},
};
use serde::Serialize;
use tonic::transport::Channel;

use super::Ctx;
use crate::{
    client::Target,
    config::{CtlConfig, Selection},
    error::CtlError,
    fleet, output,
    spec::FleetSpec,
};

/// One host's part of the plan, as shown.
#[derive(Debug, Serialize)]
pub(super) struct HostPlan {
    host: String,
    agent: String,
    generation: u64,
    changes: Vec<Change>,
}

#[derive(Debug, Serialize)]
struct Change {
    action: &'static str,
    kind: String,
    object: String,
    detail: String,
}

/// How the agent of `name` at `url` is reached: the global flags, else the
/// config file's entry for that host name (`listed`), else the config
/// defaults.
fn target_for(sel: &Selection, listed: bool, name: &str, url: &str) -> Result<Target, CtlError> {
    let s = Selection {
        agent: Some(url.to_owned()),
        host: listed.then(|| name.to_owned()),
        ..sel.clone()
    };
    Ok(s.resolve()?.0)
}

/// The hosts that answered (with their state) and those that did not
/// (`name (address): why`).
type FleetRead = (
    BTreeMap<String, (Channel, pb::GetStateResponse)>,
    Vec<String>,
);

/// Connects to every host and reads its state; fails naming every host
/// that does not answer, before anything is planned.
pub(super) async fn read_fleet(
    ctx: &Ctx,
    spec: &FleetSpec,
) -> Result<BTreeMap<String, (Channel, pb::GetStateResponse)>, CtlError> {
    let (ok, failed) = read_hosts(ctx, spec).await?;
    if failed.is_empty() {
        Ok(ok)
    } else {
        Err(CtlError::Unreachable(failed))
    }
}

/// Reads every host's state concurrently; unreachable hosts are listed,
/// not fatal, so that `--skip-unreachable` can go on without them.
async fn read_hosts(ctx: &Ctx, spec: &FleetSpec) -> Result<FleetRead, CtlError> {
    // The config file is read once, not once per host.
    let cfg = ctx
        .selection
        .config
        .as_deref()
        .map(CtlConfig::load)
        .transpose()?;
    let listed = |name: &str| {
        cfg.as_ref()
            .is_some_and(|c| c.hosts.iter().any(|h| h.name == name))
    };
    let reads = spec.hosts.iter().map(|(name, h)| async move {
        let res = async {
            let ch = target_for(&ctx.selection, listed(name), name, &h.address)?
                .connect()
                .await?;
            let st = HostServiceClient::new(ch.clone())
                .get_state(pb::GetStateRequest {})
                .await?
                .into_inner();
            Ok::<_, CtlError>((ch, st))
        }
        .await;
        (name.clone(), h.address.clone(), res)
    });
    let mut ok = BTreeMap::new();
    let mut failed = Vec::new();
    for (name, addr, r) in join_all(reads).await {
        match r {
            Ok(v) => {
                ok.insert(name, v);
            }
            Err(e) => failed.push(format!("{name} ({addr}): {e}")),
        }
    }
    Ok((ok, failed))
}

/// Every host's desired state for the spec, given what the hosts have now.
pub(super) fn desired_states(
    spec: &FleetSpec,
    states: &BTreeMap<String, (Channel, pb::GetStateResponse)>,
) -> Result<BTreeMap<String, Desired>, CtlError> {
    let empty = pb::OwnedObjects::default();
    let seen = fleet::observed(
        spec,
        states
            .iter()
            .map(|(h, (_, s))| (h.as_str(), s.owned.as_ref().unwrap_or(&empty))),
    );
    fleet::desired(spec, &seen).map_err(|e| CtlError::Fleet(Box::new(e)))
}

fn action(a: i32) -> &'static str {
    match pb::ChangeAction::try_from(a) {
        Ok(pb::ChangeAction::Create) => "create",
        Ok(pb::ChangeAction::Update) => "update",
        Ok(pb::ChangeAction::Delete) => "delete",
        _ => "unknown",
    }
}

/// What the fleet is converged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Goal {
    /// What the spec says.
    Spec,
    /// None of the spec's objects (`destroy`).
    Teardown,
}

/// One host's part of a fleet plan, with what applying it needs.
#[derive(Debug)]
pub(super) struct Planned {
    pub host: String,
    pub agent: String,
    pub channel: Channel,
    pub desired: pb::DesiredState,
    /// The generation planned against: Apply refuses if it moved.
    pub generation: u64,
    pub changes: Vec<pb::Change>,
    /// What linkherd owns on the host, as read before planning.
    pub observed: pb::OwnedObjects,
}

impl Planned {
    fn view(&self) -> HostPlan {
        HostPlan {
            host: self.host.clone(),
            agent: self.agent.clone(),
            generation: self.generation,
            changes: self
                .changes
                .iter()
                .map(|c| Change {
                    action: action(c.action),
                    kind: c.object_kind.clone(),
                    object: c.object.clone(),
                    detail: c.detail.clone(),
                })
                .collect(),
        }
    }
}

/// A plan for the whole fleet.
#[derive(Debug)]
pub(super) struct FleetPlan {
    pub spec: FleetSpec,
    /// Every reachable host, in name order.
    pub hosts: Vec<Planned>,
    /// Hosts left out by `--skip-unreachable`, with the reason.
    pub skipped: Vec<String>,
}

impl FleetPlan {
    pub fn has_changes(&self) -> bool {
        self.hosts.iter().any(|h| !h.changes.is_empty())
    }

    pub fn views(&self) -> Vec<HostPlan> {
        self.hosts.iter().map(Planned::view).collect()
    }

    /// Prints the plan (text or structured) on stdout.
    pub fn print(&self, ctx: &Ctx) -> Result<(), CtlError> {
        output::print(ctx.format, &self.views(), |p| render(p, output::colour()))
    }
}

/// Reads the fleet, computes each host's desired state for `goal`
/// (allocating addresses), and asks each agent to plan its part. With
/// `skip_unreachable`, hosts that do not answer are left out (and named)
/// instead of stopping everything.
pub(super) async fn plan_fleet(
    ctx: &Ctx,
    file: &std::path::Path,
    goal: Goal,
    skip_unreachable: bool,
) -> Result<FleetPlan, CtlError> {
    let spec = FleetSpec::load(file).map_err(|e| CtlError::Spec(Box::new(e)))?;
    let (states, skipped) = read_hosts(ctx, &spec).await?;
    if !skipped.is_empty() && (!skip_unreachable || states.is_empty()) {
        return Err(CtlError::Unreachable(skipped));
    }
    let mut desired = match goal {
        Goal::Spec => desired_states(&spec, &states)?,
        Goal::Teardown => fleet::teardown(&spec).map_err(|e| CtlError::Fleet(Box::new(e)))?,
    };
    desired.retain(|h, _| states.contains_key(h));
    let plans = desired.into_iter().map(|(host, d)| {
        let (ch, observed) = match states.get(&host) {
            Some((c, s)) => (Some(c.clone()), s.owned.clone().unwrap_or_default()),
            None => (None, pb::OwnedObjects::default()),
        };
        let agent = spec
            .hosts
            .get(&host)
            .map(|h| h.address.clone())
            .unwrap_or_default();
        async move {
            let ch = ch.ok_or_else(|| CtlError::Output(format!("no connection to {host}")))?;
            let desired = pb::DesiredState::from(&d);
            let r = HostServiceClient::new(ch.clone())
                .plan(pb::PlanRequest {
                    desired: Some(desired.clone()),
                })
                .await
                .map_err(|s| CtlError::Output(format!("{host}: {}", CtlError::Rpc(s))))?
                .into_inner();
            Ok::<_, CtlError>(Planned {
                host,
                agent,
                channel: ch,
                desired,
                generation: r.generation,
                changes: r.changes,
                observed,
            })
        }
    });
    let hosts = join_all(plans)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FleetPlan {
        spec,
        hosts,
        skipped,
    })
}

/// Each host's plan for the spec: read the fleet, allocate, ask each agent.
async fn host_plans(
    ctx: &Ctx,
    file: &std::path::Path,
    skip_unreachable: bool,
) -> Result<Vec<HostPlan>, CtlError> {
    let plan = plan_fleet(ctx, file, Goal::Spec, skip_unreachable).await?;
    for s in &plan.skipped {
        eprintln!("warning: skipping unreachable host {s}");
    }
    Ok(plan.views())
}

/// `plan -f`: exit 2 when there are changes.
pub async fn run(ctx: &Ctx, file: PathBuf, skip_unreachable: bool) -> Result<ExitCode, CtlError> {
    let plans = host_plans(ctx, &file, skip_unreachable).await?;
    output::print(ctx.format, &plans, |p| render(p, output::colour()))?;
    Ok(exit(&plans))
}

/// `status -f`: the same comparison, told as drift of the fleet from the
/// spec; exit 2 when a host has drifted.
pub async fn status(
    ctx: &Ctx,
    file: PathBuf,
    skip_unreachable: bool,
) -> Result<ExitCode, CtlError> {
    let plans = host_plans(ctx, &file, skip_unreachable).await?;
    output::print(ctx.format, &plans, |p| render_drift(p))?;
    Ok(exit(&plans))
}

fn exit(plans: &[HostPlan]) -> ExitCode {
    if plans.iter().any(|p| !p.changes.is_empty()) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Per host: in sync, or what is missing, differs, or is extra.
fn render_drift(plans: &[HostPlan]) -> String {
    let mut out = Vec::new();
    for p in plans {
        if p.changes.is_empty() {
            out.push(format!("{}: in sync", p.host));
            continue;
        }
        out.push(format!(
            "{}: {} difference(s) from the spec",
            p.host,
            p.changes.len()
        ));
        for c in &p.changes {
            let what = match c.action {
                "create" => "missing",
                "delete" => "extra",
                _ => "differs",
            };
            let line = format!("  {what:<8} {:<11} {:<24} {}", c.kind, c.object, c.detail);
            out.push(line.trim_end().to_owned());
        }
    }
    out.join("\n")
}

/// Terraform-like: `+` create, `~` update, `-` delete, per host, then a
/// summary line.
fn render(plans: &[HostPlan], colour: bool) -> String {
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
        for c in &p.changes {
            let (sign, code) = match c.action {
                "create" => {
                    add += 1;
                    ("+", "32")
                }
                "delete" => {
                    del += 1;
                    ("-", "31")
                }
                _ => {
                    upd += 1;
                    ("~", "33")
                }
            };
            let line = format!("  {sign} {:<11} {:<24} {}", c.kind, c.object, c.detail);
            out.push(paint(code, line.trim_end().to_owned()));
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
mod tests {
    use super::*;

    fn change(action: &'static str, kind: &str, object: &str) -> Change {
        Change {
            action,
            kind: kind.into(),
            object: object.into(),
            detail: String::new(),
        }
    }

    /// no1 with one change of each kind, no2 with none.
    fn fixture() -> [HostPlan; 2] {
        [
            HostPlan {
                host: "no1".into(),
                agent: "https://a:1".into(),
                generation: 1,
                changes: vec![
                    change("create", "endpoint", "n/b5"),
                    change("update", "endpoint", "n/b1"),
                    change("delete", "endpoint", "n/b2"),
                ],
            },
            HostPlan {
                host: "no2".into(),
                agent: "https://b:1".into(),
                generation: 1,
                changes: vec![],
            },
        ]
    }

    #[test]
    fn drift_names_missing_differing_and_extra_objects() {
        let plans = fixture();
        assert_eq!(
            render_drift(&plans),
            "no1: 3 difference(s) from the spec\n  missing  endpoint    n/b5\n  \
             differs  endpoint    n/b1\n  extra    endpoint    n/b2\nno2: in sync"
        );
        assert_eq!(exit(&plans), ExitCode::from(2));
        assert_eq!(exit(&plans[1..]), ExitCode::SUCCESS);
    }

    #[test]
    fn render_marks_each_action_and_counts_them() {
        let plans = fixture();
        let plain = render(&plans, false);
        assert_eq!(
            plain,
            "no1 (https://a:1):\n  + endpoint    n/b5\n  ~ endpoint    n/b1\n  - endpoint    n/b2\n\
             no2 (https://b:1): no changes\nPlan: 1 to create, 1 to change, 1 to delete."
        );
        let coloured = render(&plans, true);
        assert!(
            coloured.contains("\x1b[32m  + endpoint    n/b5\x1b[0m"),
            "{coloured}"
        );
        assert!(
            coloured.contains("\x1b[31m  - endpoint    n/b2\x1b[0m"),
            "{coloured}"
        );
        assert_eq!(
            render(&plans[1..], false),
            "no2 (https://b:1): no changes\nNo changes: the fleet matches the spec."
        );
    }
}
