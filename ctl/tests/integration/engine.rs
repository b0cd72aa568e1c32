//! The fleet engine through the library, over two in-process agents (real
//! mTLS on loopback, the fake kernel underneath): plan, rollout (apply,
//! confirm, roll back), the missing-endpoint verdict, teardown, an
//! interrupt — asserting the typed reports and what each fake kernel has.
//! Probes run on real sockets in namespaces, so verification by probes is
//! left to the lab suites; here it is off, or stops before probing.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use linkherd_agent::{
    app::AgentOptions,
    net::{NetOps, fake::FakeKernel},
    testing::{self, InProcessAgent},
    transport::tls::TlsPem,
};
use linkherd_proto::model::IfName;
use linkherdctl::{
    client::TlsFiles,
    fleet::{
        self, ApplyOptions, FleetPlan, Goal, Interrupt, RolloutOutcome, Silent, destroy,
        plan::Action,
        rollout::{Confirm, HostFailure, NotStarted, Pending, Rollback, Stopped},
        verify::{ProbeProgress, VerifyFailure},
    },
    spec::FleetSpec,
};
use test_support::Pki;

/// One host: its fake kernel (with `parent` as its NIC) and its agent.
struct Host {
    fake: Arc<FakeKernel>,
    agent: InProcessAgent,
}

/// Two hosts, no1 (NIC ens192) and no2 (NIC eth0), and admin credentials.
struct Fleet {
    pki: Pki,
    no1: Host,
    no2: Host,
}

async fn host(pki: &Pki, name: &str, parent: &str) -> Host {
    let fake = Arc::new(FakeKernel::new());
    fake.add_veth(parent, &format!("sw-{name}")).expect("nic");
    let tls = TlsPem {
        cert: pki.read("agent-agent.pem"),
        key: pki.read("agent-agent-key.pem"),
        client_ca: pki.read("ca.pem"),
    };
    let opts = AgentOptions {
        host_name: Some(name.into()),
        ..AgentOptions::default()
    };
    let agent = testing::start(fake.clone(), opts, tls)
        .await
        .expect("in-process agent");
    Host { fake, agent }
}

async fn fleet() -> Fleet {
    let pki = Pki::new();
    let no1 = host(&pki, "no1", "ens192").await;
    let no2 = host(&pki, "no2", "eth0").await;
    Fleet { pki, no1, no2 }
}

impl Fleet {
    fn admin(&self) -> TlsFiles {
        TlsFiles {
            ca: Some(self.pki.path("ca.pem")),
            cert: Some(self.pki.path("client-admin.pem")),
            key: Some(self.pki.path("client-admin-key.pem")),
        }
    }

    /// A spec over both hosts with `networks` (YAML, indented by 2).
    fn spec(&self, networks: &str) -> FleetSpec {
        let text = format!(
            "hosts:\n  no1: {{address: \"https://{}\", parent: ens192}}\n  \
             no2: {{address: \"https://{}\", parent: eth0}}\nnetworks:\n{networks}\
             verify: {{mesh: false}}\n",
            self.no1.agent.addr, self.no2.agent.addr
        );
        FleetSpec::parse(&text, "fleet.yaml").expect("spec")
    }

    async fn plan(&self, spec: FleetSpec, goal: Goal) -> FleetPlan {
        fleet::plan(spec, &self.admin(), goal, false)
            .await
            .expect("plan")
    }
}

/// net_a: b1 on no1, b3 on no2.
const NET_A: &str = "  net_a:\n    subnet: 10.0.100.0/24\n    endpoints:\n      \
                     b1: {host: no1, ip: 10.0.100.10}\n      b3: {host: no2}\n";

fn no_verify() -> ApplyOptions {
    ApplyOptions {
        confirm_timeout: 60,
        address_check_ms: 0,
        parallel: 4,
        verify: false,
    }
}

/// eth0 in namespace `ns` of `fake`, with its addresses; `None` when absent.
async fn endpoint(fake: &FakeKernel, ns: &str) -> Option<Vec<String>> {
    let ops = fake.netns(&Path::new("/run/netns").join(ns)).await.ok()?;
    let link = ops
        .link(&IfName::parse("n", "eth0").expect("name"))
        .await
        .ok()?;
    Some(link.addresses.iter().map(ToString::to_string).collect())
}

async fn rollout(plan: &FleetPlan, opts: &ApplyOptions) -> fleet::RolloutReport {
    fleet::rollout(plan, opts, &Silent, &Interrupt::default()).await
}

#[tokio::test]
async fn a_plan_applies_confirms_and_then_has_nothing_to_do() {
    let f = fleet().await;
    let plan = f.plan(f.spec(NET_A), Goal::Spec).await;
    let changes: Vec<(String, Action, String)> = plan
        .hosts
        .iter()
        .flat_map(|h| {
            h.changes
                .iter()
                .map(|c| (h.host.clone(), c.action, c.object.clone()))
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("no1".into(), Action::Create, "net_a/b1".into()),
            ("no2".into(), Action::Create, "net_a/b3".into()),
        ]
    );
    // A plan changes nothing.
    assert_eq!(endpoint(&f.no1.fake, "b1").await, None);

    let report = rollout(&plan, &no_verify()).await;
    let RolloutOutcome::Confirmed { changes, confirms } = &report.outcome else {
        panic!("not confirmed: {:?}", report.outcome);
    };
    assert_eq!(*changes, 2);
    assert_eq!(
        confirms
            .iter()
            .map(|(h, c)| (h.as_str(), c.ok()))
            .collect::<Vec<_>>(),
        [("no1", true), ("no2", true)]
    );
    assert_eq!(
        endpoint(&f.no1.fake, "b1").await,
        Some(vec!["10.0.100.10/24".into()])
    );
    // b3 got the lowest free address, on no2's own kernel.
    assert_eq!(
        endpoint(&f.no2.fake, "b3").await,
        Some(vec!["10.0.100.1/24".into()])
    );
    assert_eq!(endpoint(&f.no2.fake, "b1").await, None);

    // Confirmed: the same spec again is no change, and no host is asked.
    let again = f.plan(f.spec(NET_A), Goal::Spec).await;
    assert!(!again.has_changes());
    // What each host confirmed is the generation it now has.
    for ((host, c), h) in confirms.iter().zip(&again.hosts) {
        assert_eq!(host, &h.host);
        assert!(
            matches!(c, Confirm::Confirmed { generation } if *generation == h.generation),
            "{c:?} vs {}",
            h.generation
        );
    }
    assert!(fleet::status::status(&again).iter().all(|h| h.in_sync()));
    let report = rollout(&again, &no_verify()).await;
    assert!(matches!(report.outcome, RolloutOutcome::NoChanges));
}

#[tokio::test]
async fn endpoints_missing_from_their_host_fail_verification_before_any_probe() {
    let f = fleet().await;
    let plan = f.plan(f.spec(NET_A), Goal::Spec).await;
    let r = fleet::verify::verify(&plan, &[], &Silent).await;
    match r.failure {
        Some(VerifyFailure::Missing(eps)) => assert_eq!(eps, ["b1@no1", "b3@no2"]),
        other => panic!("expected missing endpoints, got {other:?}"),
    }
    assert!(r.verification.outcomes.is_empty());
    let drift = fleet::status::status(&plan);
    assert_eq!(
        drift
            .iter()
            .map(|h| (h.host.as_str(), h.differences.len()))
            .collect::<Vec<_>>(),
        [("no1", 1), ("no2", 1)]
    );
}

#[tokio::test]
async fn a_host_that_changed_since_the_plan_refuses_and_the_others_roll_back() {
    let f = fleet().await;
    let stale = f.plan(f.spec(NET_A), Goal::Spec).await;
    // Meanwhile no2 changes (another apply): its generation moves on.
    let other =
        f.spec("  net_z:\n    subnet: 10.0.9.0/24\n    endpoints:\n      z1: {host: no2}\n");
    let other = f.plan(other, Goal::Spec).await;
    assert!(matches!(
        rollout(&other, &no_verify()).await.outcome,
        RolloutOutcome::Confirmed { .. }
    ));

    let report = rollout(&stale, &no_verify()).await;
    let RolloutOutcome::RolledBack { why, rollbacks } = &report.outcome else {
        panic!("not rolled back: {:?}", report.outcome);
    };
    let Stopped::ApplyFailed(failed) = why else {
        panic!("{why:?}");
    };
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "no2");
    assert!(
        matches!(&failed[0].1, HostFailure::Refused(e) if e.status.message().contains("changed since it was planned")),
        "{:?}",
        failed[0].1
    );
    // no1, applied first, is rolled back: b1 is gone again.
    assert_eq!(rollbacks.len(), 1);
    assert!(matches!(&rollbacks[0], (h, Rollback::RolledBack { steps: 1 }) if h == "no1"));
    assert_eq!(endpoint(&f.no1.fake, "b1").await, None);
    assert_eq!(
        endpoint(&f.no2.fake, "z1").await,
        Some(vec!["10.0.9.1/24".into()])
    );
}

#[tokio::test]
async fn a_stale_first_host_stops_the_others_before_they_start() {
    let f = fleet().await;
    let stale = f.plan(f.spec(NET_A), Goal::Spec).await;
    let other =
        f.spec("  net_z:\n    subnet: 10.0.9.0/24\n    endpoints:\n      z1: {host: no1}\n");
    let other = f.plan(other, Goal::Spec).await;
    rollout(&other, &no_verify()).await;

    let report = rollout(&stale, &no_verify()).await;
    let RolloutOutcome::RolledBack { why, rollbacks } = &report.outcome else {
        panic!("not rolled back: {:?}", report.outcome);
    };
    let Stopped::ApplyFailed(failed) = why else {
        panic!("{why:?}");
    };
    assert!(matches!(failed[0], (ref h, HostFailure::Refused(_)) if h == "no1"));
    assert!(matches!(
        failed[1],
        (ref h, HostFailure::NotStarted(NotStarted::AnotherFailed)) if h == "no2"
    ));
    assert!(rollbacks.is_empty(), "nothing was pending");
    assert_eq!(endpoint(&f.no2.fake, "b3").await, None);
}

#[tokio::test]
async fn an_interrupt_before_the_rollout_starts_no_host() {
    let f = fleet().await;
    let plan = f.plan(f.spec(NET_A), Goal::Spec).await;
    let stop = Interrupt::default();
    stop.trigger();
    let report = fleet::rollout(&plan, &no_verify(), &Silent, &stop).await;
    let RolloutOutcome::RolledBack {
        why: Stopped::Interrupted(failed),
        rollbacks,
    } = &report.outcome
    else {
        panic!("not interrupted: {:?}", report.outcome);
    };
    assert_eq!(failed.len(), 2);
    assert!(rollbacks.is_empty());
    assert_eq!(endpoint(&f.no1.fake, "b1").await, None);
}

/// Records what the engine reports, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn push(&self, s: String) {
        if let Ok(mut v) = self.0.lock() {
            v.push(s);
        }
    }
}

impl ProbeProgress for Recorder {}

impl fleet::Progress for Recorder {
    fn applying(&self, host: &str, changes: usize) {
        self.push(format!("applying {host} {changes}"));
    }

    fn applied(&self, host: &str, result: Result<&Pending, &HostFailure>) {
        self.push(format!("applied {host} {}", result.is_ok()));
    }
}

#[tokio::test]
async fn verification_stops_the_rollout_and_destroy_removes_everything() {
    let f = fleet().await;
    let plan = f.plan(f.spec(NET_A), Goal::Spec).await;
    let progress = Recorder::default();
    let opts = ApplyOptions {
        verify: true,
        ..no_verify()
    };
    let report = fleet::rollout(&plan, &opts, &progress, &Interrupt::default()).await;
    // Verification reads the applied hosts again: both endpoints are
    // there, so it goes on to the address checks, which need real sockets
    // in real namespaces; over the fake they cannot run, so verification
    // fails and the rollout is rolled back everywhere.
    let RolloutOutcome::RolledBack { why, rollbacks } = &report.outcome else {
        panic!("not rolled back: {:?}", report.outcome);
    };
    let Stopped::Verification(VerifyFailure::Probes { failed, total, .. }) = why else {
        panic!("{why:?}");
    };
    assert_eq!((*failed, *total), (2, 2), "one address check per endpoint");
    assert_eq!(report.verification.members.len(), 2);
    assert_eq!(rollbacks.len(), 2);
    assert_eq!(endpoint(&f.no1.fake, "b1").await, None);
    assert_eq!(endpoint(&f.no2.fake, "b3").await, None);
    let seen = progress.0.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(seen[..2], ["applying no1 1", "applied no1 true"]);

    // Apply for real, then tear down: the endpoints and their namespaces go.
    rollout(&f.plan(f.spec(NET_A), Goal::Spec).await, &no_verify()).await;
    assert!(endpoint(&f.no1.fake, "b1").await.is_some());
    let down = f.plan(f.spec(NET_A), Goal::Teardown).await;
    assert!(
        down.hosts
            .iter()
            .all(|h| h.changes.iter().all(|c| c.action == Action::Delete))
    );
    let report = rollout(&down, &destroy::options(4)).await;
    assert!(matches!(
        report.outcome,
        RolloutOutcome::Confirmed { changes: 2, .. }
    ));
    assert_eq!(endpoint(&f.no1.fake, "b1").await, None);
    assert_eq!(endpoint(&f.no2.fake, "b3").await, None);
}

#[tokio::test]
async fn a_host_that_does_not_answer_fails_the_plan_unless_skipped() {
    let f = fleet().await;
    let text = format!(
        "hosts:\n  no1: {{address: \"https://{}\", parent: ens192}}\n  \
         no3: {{address: \"https://127.0.0.1:1\", parent: eth0}}\nnetworks:\n{NET_A}",
        f.no1.agent.addr
    )
    .replace("b3: {host: no2}", "b3: {host: no3}");
    let spec = FleetSpec::parse(&text, "fleet.yaml").expect("spec");
    let err = fleet::plan(spec.clone(), &f.admin(), Goal::Spec, false)
        .await
        .expect_err("no3 is down");
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot reach no3 (https://127.0.0.1:1): "),
        "{msg}"
    );
    assert!(msg.ends_with("; nothing was changed"), "{msg}");
    let plan = fleet::plan(spec, &f.admin(), Goal::Spec, true)
        .await
        .expect("plan without no3");
    assert_eq!(plan.skipped.len(), 1);
    assert_eq!(plan.skipped[0].host, "no3");
    assert_eq!(
        plan.hosts
            .iter()
            .map(|h| h.host.as_str())
            .collect::<Vec<_>>(),
        ["no1"]
    );
}
