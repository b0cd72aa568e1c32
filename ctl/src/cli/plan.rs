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

/// One host's part of the plan.
#[derive(Debug, Serialize)]
struct HostPlan {
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

/// Connects to every host and reads its state; fails naming every host
/// that does not answer, before anything is planned.
pub(super) async fn read_fleet(
    ctx: &Ctx,
    spec: &FleetSpec,
) -> Result<BTreeMap<String, (Channel, pb::GetStateResponse)>, CtlError> {
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
    if failed.is_empty() {
        Ok(ok)
    } else {
        Err(CtlError::Unreachable(failed))
    }
}

/// Every host's desired state for the spec, given what the hosts have now.
pub(super) fn desired_states(
    spec: &FleetSpec,
    states: &BTreeMap<String, (Channel, pb::GetStateResponse)>,
) -> Result<BTreeMap<String, Desired>, CtlError> {
    let empty = pb::DesiredState::default();
    let seen = fleet::observed(
        spec,
        states
            .iter()
            .map(|(h, (_, s))| (h.as_str(), s.observed.as_ref().unwrap_or(&empty))),
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

/// Each host's plan for the spec: read the fleet, allocate, ask each agent.
async fn host_plans(ctx: &Ctx, file: &std::path::Path) -> Result<Vec<HostPlan>, CtlError> {
    let spec = FleetSpec::load(file).map_err(|e| CtlError::Spec(Box::new(e)))?;
    let states = read_fleet(ctx, &spec).await?;
    let desired = desired_states(&spec, &states)?;
    let spec = &spec;
    let plans = desired.iter().map(|(host, d)| {
        let ch = states.get(host).map(|(c, _)| c.clone());
        async move {
            let ch = ch.ok_or_else(|| CtlError::Output(format!("no connection to {host}")))?;
            let r = HostServiceClient::new(ch)
                .plan(pb::PlanRequest {
                    desired: Some(pb::DesiredState::from(d)),
                })
                .await
                .map_err(|s| CtlError::Output(format!("{host}: {}", CtlError::Rpc(s))))?
                .into_inner();
            Ok::<_, CtlError>(HostPlan {
                host: host.clone(),
                agent: spec
                    .hosts
                    .get(host)
                    .map(|h| h.address.clone())
                    .unwrap_or_default(),
                generation: r.generation,
                changes: r
                    .changes
                    .into_iter()
                    .map(|c| Change {
                        action: action(c.action),
                        kind: c.object_kind,
                        object: c.object,
                        detail: c.detail,
                    })
                    .collect(),
            })
        }
    });
    join_all(plans).await.into_iter().collect()
}

/// `plan -f`: exit 2 when there are changes.
pub async fn run(ctx: &Ctx, file: PathBuf) -> Result<ExitCode, CtlError> {
    let plans = host_plans(ctx, &file).await?;
    output::print(ctx.format, &plans, |p| render(p, output::colour()))?;
    Ok(exit(&plans))
}

/// `status -f`: the same comparison, told as drift of the fleet from the
/// spec; exit 2 when a host has drifted.
pub async fn status(ctx: &Ctx, file: PathBuf) -> Result<ExitCode, CtlError> {
    let plans = host_plans(ctx, &file).await?;
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
