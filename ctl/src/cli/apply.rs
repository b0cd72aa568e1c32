//! `linkherdctl apply -f SPEC`, `destroy -f SPEC` and `verify -f SPEC`:
//! plan, ask, and hand the rollout to the fleet engine (apply on every host
//! as one commit-confirmed transaction, prove it with probes, confirm or
//! roll back everywhere); then print what it reports.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::{Path, PathBuf},
};

use super::{
    CtlError, Ctx, Exit, matrix, plan,
    progress::Progress,
    report::{self, RunOutcome},
};
use crate::fleet::{
    self, ApplyOptions, FleetPlan, Goal, Interrupt, Phases, RolloutOutcome, destroy, phases::timed,
    verify::Verification,
};

/// Options `apply` and `destroy` share.
#[derive(Debug, clap::Args)]
pub struct TxnArgs {
    /// The fleet spec (YAML).
    #[arg(short = 'f', long)]
    file: PathBuf,
    /// Do not ask before changing anything. Needed when stdin is not a
    /// terminal (a script, CI): without it nothing is changed.
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

/// `apply -f`.
pub async fn apply(ctx: &Ctx, a: ApplyArgs) -> Result<Exit, CtlError> {
    let (plan, planned) = timed_plan(ctx, &a.txn.file, Goal::Spec, a.txn.skip_unreachable).await?;
    let opts = ApplyOptions {
        confirm_timeout: a.confirm_timeout,
        address_check_ms: a.address_check_ms,
        parallel: usize::from(a.txn.parallel),
        verify: !a.no_verify,
    };
    transact(ctx, &plan, planned, &opts, a.txn.yes, "Apply").await
}

/// `destroy -f`: every endpoint, host access and VLAN of the spec goes
/// (VLANs only where linkherd made them); confirmed without probing.
pub async fn destroy(ctx: &Ctx, a: TxnArgs) -> Result<Exit, CtlError> {
    let (plan, planned) = timed_plan(ctx, &a.file, Goal::Teardown, a.skip_unreachable).await?;
    let opts = destroy::options(usize::from(a.parallel));
    transact(ctx, &plan, planned, &opts, a.yes, "Destroy").await
}

/// `verify -f`: prove the fleet as it is now — every endpoint of the spec
/// present, and the probes the spec's `verify` section asks for — changing
/// nothing. Exit 0 when everything holds.
pub async fn verify(ctx: &Ctx, file: &Path, skip_unreachable: bool) -> Result<Exit, CtlError> {
    let (plan, mut phases) = timed_plan(ctx, file, Goal::Spec, skip_unreachable).await?;
    if plan.has_changes() {
        eprintln!(
            "warning: the fleet differs from the spec (`linkherdctl status -f` says how); \
             verifying what is there"
        );
    }
    let progress = Progress::new(!ctx.text());
    let r = timed(
        &mut phases.verify,
        fleet::verify::verify(&plan, &[], &progress),
    )
    .await;
    print_matrix(ctx, &r.verification);
    print_timing(ctx, &phases);
    let outcome = match &r.failure {
        None => RunOutcome::Verified,
        Some(_) => RunOutcome::Failed,
    };
    report::print(
        ctx,
        &plan,
        outcome,
        &phases,
        Vec::new(),
        &r.verification.outcomes,
    )?;
    match r.failure {
        Some(f) => Err(CtlError::Verify(f)),
        None => {
            if ctx.text() {
                println!("Verified: the fleet does what the spec says.");
            }
            Ok(Exit::Success)
        }
    }
}

/// The fleet's plan, and how long making it took (the first phase of
/// every run).
async fn timed_plan(
    ctx: &Ctx,
    file: &Path,
    goal: Goal,
    skip_unreachable: bool,
) -> Result<(FleetPlan, Phases), CtlError> {
    let mut phases = Phases::default();
    let plan = timed(
        &mut phases.plan,
        ctx.plan_fleet(file, goal, skip_unreachable),
    )
    .await?;
    Ok((plan, phases))
}

/// Shows the plan, asks, runs the rollout and reports it; `planned` holds
/// how long the plan took.
async fn transact(
    ctx: &Ctx,
    plan: &FleetPlan,
    planned: Phases,
    opts: &ApplyOptions,
    yes: bool,
    verb: &'static str,
) -> Result<Exit, CtlError> {
    if ctx.text() {
        plan::print(ctx, plan)?;
    }
    if !plan.has_changes() {
        report::print(ctx, plan, RunOutcome::NoChanges, &planned, Vec::new(), &[])?;
        return Ok(Exit::Success);
    }
    let changed = plan.changed_hosts().count();
    if !ask(
        yes,
        verb,
        &format!("{verb} these changes on {changed} host(s)?"),
    )? {
        eprintln!("{verb} cancelled; nothing was changed.");
        report::print(ctx, plan, RunOutcome::Cancelled, &planned, Vec::new(), &[])?;
        return Ok(Exit::Failure);
    }
    let progress = Progress::new(!ctx.text());
    let interrupt = Interrupt::default();
    let watcher = on_ctrl_c(&interrupt)?;
    let r = fleet::rollout(plan, opts, &progress, &interrupt).await;
    watcher.abort();
    let phases = Phases {
        plan: planned.plan,
        ..r.phases
    };
    print_matrix(ctx, &r.verification);
    print_timing(ctx, &phases);
    if let (RolloutOutcome::Confirmed { changes, confirms }, true) = (&r.outcome, ctx.text()) {
        let names: Vec<&str> = confirms.iter().map(|(h, _)| h.as_str()).collect();
        println!(
            "{verb} complete: {changes} change(s) confirmed on {}.",
            crate::output::terminal(&names.join(", "))
        );
    }
    let hosts = report::hosts(&r.outcome);
    report::print(
        ctx,
        plan,
        (&r.outcome).into(),
        &phases,
        hosts,
        &r.verification.outcomes,
    )?;
    match report::RolloutFailed::of(verb, r.outcome) {
        Some(f) => Err(CtlError::Rollout(Box::new(f))),
        None => Ok(Exit::Success),
    }
}

/// Ctrl-C from now on asks the engine to stop (hosts not yet started are
/// not started, verification ends, everything pending is rolled back)
/// instead of killing the process with transactions pending.
fn on_ctrl_c(interrupt: &Interrupt) -> Result<tokio::task::JoinHandle<()>, CtlError> {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered here, before any host is asked, not when the task runs.
    let mut sigint = signal(SignalKind::interrupt()).map_err(|source| CtlError::Io {
        what: "watch for Ctrl-C",
        source,
    })?;
    let interrupt = interrupt.clone();
    Ok(tokio::spawn(async move {
        if sigint.recv().await.is_some() {
            interrupt.trigger();
        }
    }))
}

/// The reachability matrix, for a person, when probes ran.
fn print_matrix(ctx: &Ctx, v: &Verification) {
    if ctx.text() && !v.outcomes.is_empty() {
        println!("\nVerification (ARP + ICMP within each network; ARP only across networks):");
        println!(
            "{}",
            crate::output::terminal(&matrix::render(&v.members, &v.outcomes))
        );
    }
}

/// Where the time went, for a person (reports carry it as `timing`). On
/// stderr, with the verdict, so that stdout stays the run's own output.
fn print_timing(ctx: &Ctx, phases: &Phases) {
    if ctx.text() {
        eprintln!("Timing: {phases}");
    }
}

/// Asks on the terminal; `--yes` answers for it. Without a terminal and
/// without `--yes` the change is refused.
fn ask(yes: bool, verb: &'static str, question: &str) -> Result<bool, CtlError> {
    if yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CtlError::Unconfirmed(if verb == "Apply" {
            "apply"
        } else {
            "destroy"
        }));
    }
    let io = |source| CtlError::Io {
        what: "ask on the terminal",
        source,
    };
    eprint!("\n{question} Only 'yes' goes on: ");
    std::io::stderr().flush().map_err(io)?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line).map_err(io)?;
    Ok(line.trim() == "yes")
}
