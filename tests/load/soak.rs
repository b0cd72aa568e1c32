//! Issue 11's soak, on the netns lab (root only): 60 s (override with
//! `LINKHERD_SOAK_SECONDS`) of concurrent Watch streams, probes, reads and
//! commit-confirmed applies against one agent, plus a viewer over its
//! Watch cap and an operator over its probe budget. No error but the
//! deliberate refusals; the agent's RSS, descriptors and threads end
//! within `linkherd_lab::soak::BOUNDS` of where they started.

use std::{path::PathBuf, time::Duration};

use linkherd_lab::{
    self as lab, HostSpec, LabGuard,
    soak::{self, SoakOptions},
};
use test_support::have_root;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_stays_bounded_and_correct_under_a_soak() {
    let _one = crate::ONE_AT_A_TIME.lock().await;
    if !have_root("the soak") {
        return;
    }
    let seconds = std::env::var("LINKHERD_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("soak");
    let state = lab::up(&dir, &HostSpec::seed(), lab::Backend::Netns, true)
        .await
        .expect("lab up");
    let _guard = LabGuard(state.dir.clone());
    let opts = SoakOptions {
        duration: Duration::from_secs(seconds),
        ..Default::default()
    };
    let report = soak::run(&state, opts).await.expect("soak");
    println!("{}", report.text());
    assert_eq!(report.problems(), Vec::<String>::new());
    // The load was real: every kind of client got through, many times.
    for (rpc, at_least) in [
        ("HostService/Apply", seconds / 2),
        ("ProbeService/Ping", seconds),
        ("HostService/GetState", seconds * 10),
        ("InterfaceService/Watch", 8),
    ] {
        let served = report.rpcs.get(rpc).map_or(0, |r| r.served);
        assert!(
            served >= at_least,
            "{rpc}: {served} served, expected at least {at_least}"
        );
    }
    assert_eq!(
        report
            .deliberate_refusals
            .get(soak::OVER_WATCH_CAP)
            .copied(),
        Some(4),
        "exactly the 4 streams over the cap of 16 are refused"
    );
    assert!(report.watch_events > 0);
}
