//! T1: a mutation runs to its end (or its undo) whatever the client does
//! (issue 11, problem 4). Before, a client deadline dropped the handler
//! half way: a cancelled Create left an empty namespace and no audit line,
//! and a cancelled Apply made endpoints whose transaction was never
//! registered, so nothing ever rolled them back.
//!
//! The fake kernel is made slow (each link creation takes a while, as a
//! real create does under load) so that the client's deadline falls in
//! the middle of the work.

use linkherd_agent::testing;

use std::{path::Path, sync::Arc, time::Duration};

use linkherd_agent::net::{NetOps, fake::FakeKernel};
use linkherd_agent::testing::{Pki, start_agent};
use linkherd_proto::{
    model::Role,
    pb::{
        self, host_service_client::HostServiceClient,
        interface_service_client::InterfaceServiceClient,
        macvlan_service_client::MacvlanServiceClient,
    },
};
use tonic::Code;

/// An agent over a fake kernel with one NIC, keeping state in a temporary
/// directory, and an admin channel to it.
struct Lab {
    dir: tempfile::TempDir,
    fake: Arc<FakeKernel>,
    channel: tonic::transport::Channel,
    _agent: testing::RunningAgent,
}

impl Lab {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("state");
        let fake = Arc::new(FakeKernel::new());
        fake.add_veth("ens192", "sw").expect("nic");
        let pki = Pki::new();
        let agent = start_agent(fake.clone(), &pki, Some(dir.path())).await;
        let channel = agent.channel(&pki, Some(Role::Admin)).await.expect("admin");
        Self {
            dir,
            fake,
            channel,
            _agent: agent,
        }
    }
}

/// The answer to a request whose client gave up: its deadline, or cancelled.
fn gave_up<T: std::fmt::Debug>(answer: Result<T, tonic::Status>) {
    let err = answer.expect_err("the client gave up");
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
}

/// A request whose client gives up after `ms`.
fn hurried<T>(msg: T, ms: u64) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(Duration::from_millis(ms));
    req
}

#[tokio::test]
async fn a_create_the_client_gave_up_on_is_completed_recorded_and_audited() {
    let lab = Lab::start().await;
    let (dir, fake, ch) = (&lab.dir, &lab.fake, lab.channel.clone());
    let mut mv = MacvlanServiceClient::new(ch);
    fake.slow_add_link(Duration::from_millis(400));
    gave_up(
        mv.create(hurried(
            pb::CreateMacvlanRequest {
                endpoint: Some(testing::endpoint("b1", "10.0.0.11/24")),
                create_netns: true,
            },
            100,
        ))
        .await,
    );
    fake.slow_add_link(Duration::ZERO);
    let lines = testing::audit_records(dir.path(), "MacvlanService/Create", 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0]["result"], "cancelled by the caller, completed anyway: created",
        "{lines:?}"
    );
    // The endpoint is whole: its link with its address in its namespace,
    // and in the agent's records.
    let inside = fake
        .netns(&Path::new("/run/netns").join("b1"))
        .await
        .expect("namespace");
    let link = inside
        .link(&linkherd_proto::model::IfName::parse("ifname", "eth0").expect("name"))
        .await
        .expect("the endpoint's link");
    assert!(link.admin_up);
    assert_eq!(
        link.addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["10.0.0.11/24"]
    );
    let listed = mv
        .list(pb::ListMacvlansRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.endpoints.len(), 1);
    assert_eq!(listed.endpoints[0].name, "b1");
}

#[tokio::test]
async fn an_apply_the_client_gave_up_on_is_pending_and_rolls_back_by_itself() {
    let lab = Lab::start().await;
    let (dir, fake, ch) = (&lab.dir, &lab.fake, lab.channel.clone());
    let mut host = HostServiceClient::new(ch);
    let generation = testing::generation(&mut host).await;
    fake.slow_add_link(Duration::from_millis(100));
    let desired = pb::DesiredState {
        endpoints: (1..=5)
            .map(|i| testing::endpoint(&format!("b{i}"), &format!("10.0.0.{}/24", 10 + i)))
            .collect(),
        ..Default::default()
    };
    gave_up(
        host.apply(hurried(
            pb::ApplyRequest {
                desired: Some(desired.clone()),
                expected_generation: generation,
                confirm_timeout_seconds: 3,
                address_check_ms: 0,
            },
            150,
        ))
        .await,
    );
    let lines = testing::audit_records(dir.path(), "HostService/Apply", 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let result = lines[0]["result"].as_str().expect("result");
    assert!(
        result.starts_with("cancelled by the caller, completed anyway: txn-")
            && result.ends_with("pending with 5 change(s)"),
        "{result}"
    );
    fake.slow_add_link(Duration::ZERO);
    // The whole transaction is there and pending: a second Apply is
    // refused, and it does not overwrite the journal.
    let owned = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner()
        .owned
        .expect("owned");
    assert_eq!(owned.endpoints.len(), 5);
    let again = host
        .apply(pb::ApplyRequest {
            desired: Some(desired),
            expected_generation: 0,
            confirm_timeout_seconds: 3,
            address_check_ms: 0,
        })
        .await
        .expect_err("one is pending");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    // Nobody confirms: the agent rolls it back by itself.
    let mut left = usize::MAX;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = host
            .get_state(pb::GetStateRequest {})
            .await
            .expect("state")
            .into_inner()
            .owned
            .expect("owned")
            .endpoints
            .len();
        if left == 0 {
            break;
        }
    }
    assert_eq!(
        left,
        0,
        "the unconfirmed transaction was rolled back: {}",
        std::fs::read_to_string(dir.path().join("audit.log")).unwrap_or_default()
    );
    // Whole: the expiry rolled back all five steps (it once cancelled
    // itself after the first), and says so in the audit log.
    let expiry = testing::audit_records(dir.path(), "txn-expiry", 1).await;
    assert_eq!(expiry.len(), 1, "{expiry:?}");
    assert_eq!(expiry[0]["result"], "rolled back");
    assert_eq!(
        expiry[0]["detail"]
            .as_str()
            .expect("detail")
            .matches("; ")
            .count(),
        4,
        "five steps reverted: {expiry:?}"
    );
}

/// A SetMtu whose client gave up is made all the same and audited as such
/// (before, it ran in the request's task: dropped with it, the kernel
/// change could land with no audit record).
#[tokio::test]
async fn an_interface_change_the_client_gave_up_on_is_completed_and_audited() {
    let lab = Lab::start().await;
    let (dir, fake, ch) = (&lab.dir, &lab.fake, lab.channel.clone());
    let mut ifs = InterfaceServiceClient::new(ch);
    fake.slow_set_link(Duration::from_millis(400));
    gave_up(
        ifs.set_mtu(hurried(
            pb::SetMtuRequest {
                name: "ens192".into(),
                mtu: 1400,
            },
            100,
        ))
        .await,
    );
    let lines = testing::audit_records(dir.path(), "InterfaceService/SetMtu", 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0]["result"], "cancelled by the caller, completed anyway: changed",
        "{lines:?}"
    );
    let name = "ens192".parse().expect("name");
    assert_eq!(fake.link(&name).await.expect("link").mtu, 1400);
}
