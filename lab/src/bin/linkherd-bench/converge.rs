//! Convergence rows: the restore a reboot asks of an agent (its endpoints'
//! links gone, the agent started again with the same state directory: the
//! start pass makes them all again before the agent answers), next to the
//! transaction that made them in the same run; then a periodic pass with
//! nothing to repair, and the agent's CPU between passes.

use std::{path::PathBuf, sync::Arc, time::Instant};

use anyhow::ensure;
use linkherd_agent::{
    app::{Agent, AgentOptions},
    converge::Trigger,
    net::rtnl::Rtnl,
};
use linkherd_lab::sh::ip_in;
use linkherd_proto::pb;

use crate::{Bench, endpoint, macvlans, report::Report};

/// An agent on the bench's host namespace with state in `state`.
async fn agent(b: &Bench, state: &std::path::Path) -> anyhow::Result<Agent> {
    Ok(Agent::new(
        Arc::new(Rtnl::in_netns(PathBuf::from("/run/netns").join(&b.host))?),
        AgentOptions {
            state_dir: Some(state.to_owned()),
            ..AgentOptions::default()
        },
    )
    .await?)
}

/// CPU time (user + system) this process has used.
fn cpu() -> anyhow::Result<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Ok(std::time::Duration::from_millis(ticks * 10))
}

pub async fn rows(b: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let n = report.count;
    let state = tempfile::tempdir()?;
    let first = agent(b, state.path()).await?;
    let desired = pb::DesiredState {
        endpoints: (0..n).map(|i| endpoint(i, &b.target)).collect(),
        ..Default::default()
    };
    let started = Instant::now();
    let applied = first
        .context()
        .txns
        .apply(
            &linkherd_proto::model::Desired::try_from(desired)?,
            0,
            std::time::Duration::from_secs(600),
            None,
        )
        .await?;
    first.context().txns.confirm(&applied.id).await?;
    report.row(
        "convergence: the endpoints made (transaction, same run)",
        started.elapsed(),
    );
    drop(first);

    // The reboot: every endpoint's link gone.
    let group = linkherd_agent::host::group_of("bench");
    ip_in(&b.target, &["link", "del", "group", &group.to_string()])?;
    ensure!(macvlans(&b.target)? == 0, "links left before the restore");
    let started = Instant::now();
    let second = agent(b, state.path()).await?;
    report.row(
        "convergence: restore after a reboot (agent start)",
        started.elapsed(),
    );
    ensure!(
        macvlans(&b.target)? == n,
        "restored {} of {n}",
        macvlans(&b.target)?
    );

    let mut passes = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let t = second.context().converge.pass(Trigger::Periodic).await?;
        passes.push(started.elapsed());
        ensure!(t.drifted == 0, "a pass found drift on an untouched host");
    }
    passes.sort();
    report.row(
        "convergence: periodic pass, nothing to repair (median of 5)",
        passes[2],
    );

    let runner = second.spawn_reconciler();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (cpu0, t0) = (cpu()?, Instant::now());
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let used = cpu()? - cpu0;
    report.note(&format!(
        "convergence: agent CPU between passes {:.1} ms over {:.0} s ({n} endpoints kept)",
        used.as_secs_f64() * 1e3,
        t0.elapsed().as_secs_f64()
    ));
    runner.abort();
    second
        .context()
        .host
        .endpoints()
        .delete_endpoints(
            &linkherd_proto::model::EndpointSelector::Network(
                linkherd_proto::model::ObjName::parse("network", "bench")?,
            ),
            false,
        )
        .await?;
    ensure!(macvlans(&b.target)? == 0, "endpoints left behind");
    Ok(())
}
