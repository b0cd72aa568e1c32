//! `linkherdctl apply -f SPEC` and `destroy -f SPEC`: plan, ask, apply on
//! every host as one commit-confirmed transaction, prove it with probes
//! (apply), then confirm everywhere — or roll back everywhere and say which
//! host, which object or which probe failed.

use std::{
    collections::BTreeMap,
    io::{BufRead, IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
};

use futures::future::join_all;
use linkherd_proto::pb::{self, host_service_client::HostServiceClient};
use serde::Serialize;

use super::{
    Ctx,
    plan::{FleetPlan, Goal, HostPlan, plan_fleet},
};
use crate::{
    error::CtlError,
    output::{self, Format},
    progress::Progress,
    rollout::{self, ApplyOptions, HostOutcome, Pending, Step},
    verify,
};

/// Options `apply` and `destroy` share.
#[derive(Debug, clap::Args)]
pub struct TxnArgs {
    /// The fleet spec (YAML).
    #[arg(short = 'f', long)]
    file: PathBuf,
    /// Do not ask before changing anything (also implied when stdin is not
    /// a terminal).
    #[arg(short = 'y', long)]
    yes: bool,
    /// Hosts changed at the same time (after the first).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel: u16,
    /// Leave out hosts that do not answer instead of stopping; their
    /// objects are neither changed nor probed, and addresses they use are
    /// unknown to the address allocation.
    #[arg(long)]
    skip_unreachable: bool,
}

/// Options of `apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    txn: TxnArgs,
    /// Seconds each agent waits for the confirmation before it rolls back
    /// by itself (covers verification).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(5..=3600))]
    confirm_timeout: u32,
    /// Confirm without probing (the spec's `verify` section is ignored).
    #[arg(long)]
    no_verify: bool,
    /// Milliseconds to wait for answers when each host probes the IPv4
    /// addresses of its new endpoints on the wire, all at once, before
    /// making any (RFC 5227); 0 skips the check.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=5000))]
    address_check_ms: u32,
}

/// What `-o json|yaml` prints: the whole run as one document.
#[derive(Debug, Serialize)]
struct Report {
    /// `no-changes`, `cancelled`, `confirmed`, `rolled-back`, `partial`;
    /// for `verify`: `verified`, `failed`.
    outcome: &'static str,
    plan: Vec<HostPlan>,
    skipped: Vec<String>,
    hosts: Vec<HostOutcome>,
    verification: Vec<verify::Outcome>,
}

/// How one run went, carried to the end for the report.
#[derive(Debug)]
struct Run<'a> {
    ctx: &'a Ctx,
    plan: FleetPlan,
    hosts: Vec<HostOutcome>,
    verification: Vec<verify::Outcome>,
}

impl Run<'_> {
    fn text(&self) -> bool {
        self.ctx.format == Format::Table
    }

    /// Prints the report (structured output) and turns the outcome into
    /// the exit status; `failure` is what went wrong, in one sentence.
    fn finish(self, outcome: &'static str, failure: Option<String>) -> Result<ExitCode, CtlError> {
        if !self.text() {
            let report = Report {
                outcome,
                plan: self.plan.views(),
                skipped: self.plan.skipped.clone(),
                hosts: self.hosts,
                verification: self.verification,
            };
            if let Some(s) = output::structured(self.ctx.format, &report)? {
                println!("{s}");
            }
        }
        match failure {
            Some(f) => Err(CtlError::Rollout(f)),
            None if outcome == "cancelled" => Ok(ExitCode::FAILURE),
            None => Ok(ExitCode::SUCCESS),
        }
    }
}

/// `apply -f`.
pub async fn apply(ctx: &Ctx, a: ApplyArgs) -> Result<ExitCode, CtlError> {
    let plan = plan_fleet(ctx, &a.txn.file, Goal::Spec, a.txn.skip_unreachable).await?;
    let opts = Opts {
        yes: a.txn.yes,
        apply: ApplyOptions {
            confirm_timeout: a.confirm_timeout,
            address_check_ms: a.address_check_ms,
            parallel: usize::from(a.txn.parallel),
        },
        verify: !a.no_verify,
        verb: "Apply",
    };
    transact(ctx, plan, &opts).await
}

/// `verify -f`: prove the fleet as it is now — every endpoint of the spec
/// present, and the probes the spec's `verify` section asks for — changing
/// nothing. Exit 0 when everything holds.
pub async fn verify(
    ctx: &Ctx,
    file: PathBuf,
    skip_unreachable: bool,
) -> Result<ExitCode, CtlError> {
    let plan = plan_fleet(ctx, &file, Goal::Spec, skip_unreachable).await?;
    for s in &plan.skipped {
        eprintln!("warning: skipping unreachable host {s}");
    }
    if plan.has_changes() {
        eprintln!(
            "warning: the fleet differs from the spec (`linkherdctl status -f` says how); \
             verifying what is there"
        );
    }
    let mut run = Run {
        ctx,
        plan,
        hosts: Vec::new(),
        verification: Vec::new(),
    };
    let progress = Progress::new(!run.text());
    match verify_fleet(&mut run, &progress, &[]).await {
        None => {
            if run.text() {
                println!("Verified: the fleet does what the spec says.");
            }
            run.finish("verified", None)
        }
        Some(why) => run.finish("failed", Some(why)),
    }
}

/// `destroy -f`: every endpoint, host access and VLAN of the spec goes
/// (VLANs only where linkherd made them); confirmed without probing.
pub async fn destroy(ctx: &Ctx, a: TxnArgs) -> Result<ExitCode, CtlError> {
    let plan = plan_fleet(ctx, &a.file, Goal::Teardown, a.skip_unreachable).await?;
    let opts = Opts {
        yes: a.yes,
        apply: ApplyOptions {
            confirm_timeout: 120,
            address_check_ms: 0,
            parallel: usize::from(a.parallel),
        },
        verify: false,
        verb: "Destroy",
    };
    transact(ctx, plan, &opts).await
}

#[derive(Debug)]
struct Opts {
    yes: bool,
    apply: ApplyOptions,
    verify: bool,
    verb: &'static str,
}

async fn transact(ctx: &Ctx, plan: FleetPlan, o: &Opts) -> Result<ExitCode, CtlError> {
    let text = ctx.format == Format::Table;
    for s in &plan.skipped {
        eprintln!("warning: skipping unreachable host {s}");
    }
    if text {
        plan.print(ctx)?;
    }
    let mut run = Run {
        ctx,
        plan,
        hosts: Vec::new(),
        verification: Vec::new(),
    };
    if !run.plan.has_changes() {
        return run.finish("no-changes", None);
    }
    let changed = run
        .plan
        .hosts
        .iter()
        .filter(|h| !h.changes.is_empty())
        .count();
    if !ask(
        o.yes,
        &format!("{} these changes on {changed} host(s)?", o.verb),
    )? {
        eprintln!("{} cancelled; nothing was changed.", o.verb);
        return run.finish("cancelled", None);
    }

    let progress = Progress::new(!text);
    let steps: Vec<Step> = run
        .plan
        .hosts
        .iter()
        .map(|h| Step {
            host: h.host.clone(),
            channel: h.channel.clone(),
            desired: h.desired.clone(),
            generation: h.generation,
            changes: h.changes.len(),
        })
        .collect();
    let pending = match rollout::apply(steps, o.apply, &progress).await {
        Ok(p) => p,
        Err(f) => {
            let hosts = f
                .failed
                .iter()
                .map(|h| format!("{}: {}", h.host, h.detail))
                .collect::<Vec<_>>()
                .join("; ");
            let why = if f.interrupted {
                let mut why = "interrupted (Ctrl-C) while applying".to_owned();
                if !hosts.is_empty() {
                    why.push_str(&format!(" ({hosts})"));
                }
                why
            } else {
                format!("{} failed on {hosts}", o.verb)
            };
            run.hosts = f.failed;
            return roll_back(run, &f.pending, why).await;
        }
    };

    if o.verify {
        let applied: Vec<&str> = pending.iter().map(|p| p.host.as_str()).collect();
        // Ctrl-C while probing: roll back now rather than leave the hosts
        // pending until their confirmation time ends.
        let failed = tokio::select! {
            f = verify_fleet(&mut run, &progress, &applied) => f,
            _ = tokio::signal::ctrl_c() => {
                Some("interrupted (Ctrl-C) during verification".to_owned())
            }
        };
        if let Some(why) = failed {
            return roll_back(run, &pending, why).await;
        }
    }

    let confirmed = rollout::confirm(&pending).await;
    let bad: Vec<String> = confirmed
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.host, c.detail))
        .collect();
    let names: Vec<&str> = confirmed.iter().map(|c| c.host.as_str()).collect();
    run.hosts.extend(confirmed.iter().cloned());
    if !bad.is_empty() {
        let kept: Vec<&str> = confirmed
            .iter()
            .filter(|c| c.ok)
            .map(|c| c.host.as_str())
            .collect();
        return run.finish(
            "partial",
            Some(format!(
                "confirmation failed on {}; kept on [{}]: run apply again to converge",
                bad.join("; "),
                kept.join(", ")
            )),
        );
    }
    if text {
        println!(
            "{} complete: {} change(s) confirmed on {}.",
            o.verb,
            pending.iter().map(|p| p.applied.len()).sum::<usize>(),
            names.join(", ")
        );
    }
    run.finish("confirmed", None)
}

/// Probes the fleet as the spec's `verify` section says and prints the
/// matrix; `Some("verification failed …")` when an endpoint is missing, a
/// host could not be read or a probe failed, so that the caller rolls back
/// whatever happened.
/// Hosts in `changed` are read again (their state is what was just
/// applied); the others' state is the one read before planning.
async fn verify_fleet(run: &mut Run<'_>, progress: &Progress, changed: &[&str]) -> Option<String> {
    let v = run.plan.spec.verify;
    let reads = run.plan.hosts.iter().map(|h| async move {
        let st = if changed.contains(&h.host.as_str()) {
            HostServiceClient::new(h.channel.clone())
                .get_state(pb::GetStateRequest {})
                .await
                .map(|s| s.into_inner().owned.unwrap_or_default())
                .map_err(|s| CtlError::Output(format!("{}: {}", h.host, CtlError::Rpc(s))))
        } else {
            Ok(h.observed.clone())
        };
        (h.host.clone(), st)
    });
    let mut observed = BTreeMap::new();
    for (host, st) in join_all(reads).await {
        match st {
            Ok(s) => {
                observed.insert(host, s);
            }
            Err(e) => return Some(format!("verification failed: cannot read {host}: {e}")),
        }
    }
    let members = verify::members(&run.plan.spec, &observed);
    let missing = verify::missing(&run.plan.spec, &observed, &members);
    if !missing.is_empty() {
        return Some(format!(
            "verification failed: endpoint(s) missing on their host: {}",
            missing.join(", ")
        ));
    }
    let probes = verify::probes(&members, v.mesh, v.isolation);
    if probes.is_empty() {
        return None;
    }
    let channels: BTreeMap<String, _> = run
        .plan
        .hosts
        .iter()
        .map(|h| (h.host.clone(), h.channel.clone()))
        .collect();
    let task = progress.counter("verify", probes.len() as u64);
    let outcomes = verify::run(&members, &probes, &channels, v.timeout, &task).await;
    let failed: Vec<&verify::Outcome> = outcomes.iter().filter(|o| !o.ok).collect();
    task.finish(
        failed.is_empty(),
        &format!("{} probe(s), {} failed", outcomes.len(), failed.len()),
    );
    // The first few in the error; all of them are in the matrix / report.
    const NAMED: usize = 3;
    let mut why = failed
        .iter()
        .take(NAMED)
        .map(|o| format!("{} -> {} ({}): {}", o.from, o.to, o.address, o.detail))
        .collect::<Vec<_>>();
    if failed.len() > NAMED {
        why.push(format!("and {} more", failed.len() - NAMED));
    }
    let total = outcomes.len();
    if run.text() {
        println!("\nVerification (ARP + ICMP within each network; ARP only across networks):");
        println!("{}", verify::render(&members, &outcomes));
    }
    run.verification = outcomes;
    (!why.is_empty()).then(|| {
        format!(
            "verification failed ({} of {total} probe(s)): {}",
            run.verification.iter().filter(|o| !o.ok).count(),
            why.join("; ")
        )
    })
}

/// Undoes every pending transaction and reports the failure with what was
/// rolled back where.
async fn roll_back(
    mut run: Run<'_>,
    pending: &[Pending],
    why: String,
) -> Result<ExitCode, CtlError> {
    let undone = rollout::rollback(pending).await;
    let summary: Vec<String> = undone
        .iter()
        .map(|u| format!("{}: {}", u.host, u.detail))
        .collect();
    let all_ok = undone.iter().all(|u| u.ok);
    run.hosts.extend(undone);
    let tail = if pending.is_empty() {
        "nothing was changed".to_owned()
    } else if all_ok {
        format!("rolled back everywhere ({})", summary.join("; "))
    } else {
        format!("rolling back: {}", summary.join("; "))
    };
    run.finish("rolled-back", Some(format!("{why}; {tail}")))
}

/// Asks on the terminal; `--yes` or a non-terminal stdin answer for it.
fn ask(yes: bool, question: &str) -> Result<bool, CtlError> {
    if yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        eprintln!("(stdin is not a terminal: going on without asking, as with --yes)");
        return Ok(true);
    }
    eprint!("\n{question} Only 'yes' goes on: ");
    std::io::stderr()
        .flush()
        .map_err(|e| CtlError::Output(e.to_string()))?;
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| CtlError::Output(e.to_string()))?;
    Ok(line.trim() == "yes")
}
