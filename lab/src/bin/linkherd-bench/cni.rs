//! `linkherd-cni` next to the CNI reference macvlan plugin, run the same
//! way (one exec per endpoint through `ip netns exec`, as the reference
//! plugin must be to see its parent): ADD of N containers' interfaces in
//! the target namespace, addresses allocated by the agent from the host's
//! block, then DEL of each; with the agent's `attach.*` and `detach.*`
//! phases.

use std::{path::Path, time::Instant};

use anyhow::ensure;
use linkherd_proto::pb::{self, host_service_client::HostServiceClient};
use tonic::transport::Channel;

use crate::{Bench, macvlans, report::Report, run_cni};

/// The catalog network the plugin attaches to: a /20 block, room for
/// 4096 containers.
fn catalog() -> pb::CatalogNetwork {
    pb::CatalogNetwork {
        name: "benchc".into(),
        parent: "up0".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        v4: Some(pb::CatalogPool {
            subnet: "10.128.0.0/16".into(),
            blocks: vec!["10.128.16.0/20".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Puts `catalog` (or takes network `name` away) in one confirmed
/// transaction.
pub(crate) async fn set_catalog(
    ch: &Channel,
    name: &str,
    catalog: Vec<pb::CatalogNetwork>,
) -> anyhow::Result<()> {
    let mut host = HostServiceClient::new(ch.clone());
    let generation = host
        .get_state(pb::GetStateRequest {})
        .await?
        .into_inner()
        .generation;
    let a = host
        .apply(pb::ApplyRequest {
            desired: Some(pb::DesiredState {
                networks: vec![name.to_owned()],
                catalog,
                ..Default::default()
            }),
            expected_generation: generation,
            confirm_timeout_seconds: 600,
            address_check_ms: 0,
        })
        .await?
        .into_inner();
    host.confirm(pb::ConfirmRequest { txn_id: a.txn_id })
        .await?;
    Ok(())
}

pub(crate) async fn rows(
    ch: &Channel,
    socket: &Path,
    b: &Bench,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Ok(plugin) = linkherd_lab::bins::cni() else {
        report.note("(linkherd-cni not built: cargo build --release --bin linkherd-cni)");
        return Ok(());
    };
    set_catalog(ch, "benchc", vec![catalog()]).await?;
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"benchc","type":"linkherd-cni","agent_socket":"{}"}}"#,
        socket.display()
    );
    let n = report.count;
    exec_baseline(b, report).await?;
    for (cmd, what, want) in [
        ("ADD", "linkherd-cni: ADD (via ip netns exec)", n),
        ("DEL", "linkherd-cni: DEL (via ip netns exec)", 0),
    ] {
        // The plugin's execs block; the agent answers on the runtime meanwhile.
        let (plugin, conf) = (plugin.clone(), conf.clone());
        let (host, target) = (b.host.clone(), b.target.clone());
        b.phases.take(n);
        let took = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            for i in 0..n {
                run_cni(&plugin, (&host, &target), cmd, i, &conf)?;
            }
            anyhow::Ok(started.elapsed())
        })
        .await??;
        report.row(what, took);
        report.phases(b.phases.take(n));
        ensure!(macvlans(&b.target)? == want, "{what}: not {want} macvlans");
    }
    set_catalog(ch, "benchc", Vec::new()).await
}

/// What `ip netns exec HOST` alone costs per call (it makes a mount
/// namespace and remounts /sys): both plugins pay it here, and a runtime
/// calling the plugin in its own namespace does not.
async fn exec_baseline(b: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let (host, n) = (b.host.clone(), report.count);
    let took = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        for _ in 0..n {
            let ok = std::process::Command::new("ip")
                .args(["netns", "exec", &host, "true"])
                .status()?
                .success();
            ensure!(ok, "ip netns exec {host} true failed");
        }
        anyhow::Ok(started.elapsed())
    })
    .await??;
    report.row(
        "ip netns exec HOST true (what each plugin call above pays)",
        took,
    );
    Ok(())
}
