//! T1: every repeated field and string has a bound, checked before anything
//! is parsed or touched, and what an error echoes is cut short. Each case
//! was a way to stall or break the agent before (issue 11, problems 1, 2
//! and 14); each now gets INVALID_ARGUMENT naming the field, fast, and the
//! agent keeps serving.

use linkherd_agent::testing;

use std::time::Instant;

use linkherd_agent::net::{NetOps, fake::FakeKernel};
use linkherd_agent::testing::{Pki, start_agent};
use linkherd_proto::{
    model::Role,
    pb::{
        self, host_service_client::HostServiceClient, macvlan_service_client::MacvlanServiceClient,
    },
};
use tonic::Code;

async fn link_names(fake: &FakeKernel) -> Vec<String> {
    let mut names: Vec<String> = fake
        .links()
        .await
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    names.sort();
    names
}

/// Problem 1: 5462 source MACs made a netlink attribute over 64 KiB and
/// panicked the netlink thread; now the request is refused, and the next
/// one works.
#[tokio::test]
async fn too_many_source_macs_are_refused_and_the_agent_keeps_working() {
    let pki = Pki::new();
    let fake = testing::fake_with_nic();
    let agent = start_agent(fake.clone(), &pki, None).await;
    let mut c = MacvlanServiceClient::new(
        agent
            .channel(&pki, Some(Role::Admin))
            .await
            .expect("connect"),
    );
    let mut e = testing::endpoint("b1", "10.0.0.2/24");
    e.mode = pb::MacvlanMode::Source.into();
    e.source_macs = (0..5462u32)
        .map(|i| {
            format!(
                "02:00:00:{:02x}:{:02x}:{:02x}",
                i >> 16,
                (i >> 8) & 0xff,
                i & 0xff
            )
        })
        .collect();
    let err = c
        .create(pb::CreateMacvlanRequest {
            endpoint: Some(e),
            create_netns: true,
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "invalid endpoint.source_macs \"5462 source MACs\": is more than 1024 source MACs; \
         send at most 1024"
    );
    let made = c
        .create(pb::CreateMacvlanRequest {
            endpoint: Some(testing::endpoint("b1", "10.0.0.2/24")),
            create_netns: true,
        })
        .await
        .expect("the next request works")
        .into_inner();
    assert_eq!(made.endpoint.expect("endpoint").name, "b1");
}

/// Problem 2: a Plan with ~265k addresses ran an O(n²) duplicate check;
/// now it is refused by count before any address is parsed.
#[tokio::test]
async fn a_plan_with_a_huge_address_list_is_refused_at_once() {
    let pki = Pki::new();
    let agent = start_agent(testing::fake_with_nic(), &pki, None).await;
    let mut h = HostServiceClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("connect"),
    );
    let mut e = testing::endpoint("b1", "10.0.0.2/24");
    e.addresses = (0..265_000u32)
        .map(|i| format!("10.{}.{}.{}/8", i >> 16, (i >> 8) & 0xff, i & 0xff))
        .collect();
    let started = Instant::now();
    let err = h
        .plan(pb::PlanRequest {
            desired: Some(pb::DesiredState {
                endpoints: vec![e],
                ..Default::default()
            }),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("invalid desired.endpoints[0].addresses \"265000 addresses\""),
        "{}",
        err.message()
    );
    // Not a timing assertion on the agent's speed: only that the answer is
    // not the 45 s stall the quadratic check took.
    assert!(started.elapsed().as_secs() < 30);
}

/// Problem 14: a 3 MB name was echoed whole into the error (the client saw
/// RESOURCE_EXHAUSTED for the metadata) and a 250-byte namespace name gave
/// INTERNAL; both are INVALID_ARGUMENT now, with the value cut short.
#[tokio::test]
async fn huge_names_are_refused_with_a_short_echo() {
    let pki = Pki::new();
    let fake = testing::fake_with_nic();
    let agent = start_agent(fake.clone(), &pki, None).await;
    let before = link_names(&fake).await;
    let mut c = MacvlanServiceClient::new(
        agent
            .channel(&pki, Some(Role::Admin))
            .await
            .expect("connect"),
    );
    let mut huge = testing::endpoint("b1", "10.0.0.2/24");
    huge.name = "x".repeat(3_000_000);
    let err = c
        .create(pb::CreateMacvlanRequest {
            endpoint: Some(huge),
            create_netns: true,
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() < 300, "{} bytes", err.message().len());
    assert!(
        err.message().contains("(3000000 bytes)"),
        "{}",
        err.message()
    );

    let mut e = testing::endpoint("b1", "10.0.0.2/24");
    e.netns = Some(pb::NetnsTarget {
        target: Some(pb::netns_target::Target::Name("n".repeat(250))),
    });
    let err = c
        .create(pb::CreateMacvlanRequest {
            endpoint: Some(e),
            create_netns: true,
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(
        err.message()
            .contains("is 250 bytes long; a namespace name is at most 128 bytes"),
        "{}",
        err.message()
    );
    // Nothing was made.
    assert_eq!(link_names(&fake).await, before);
    assert_eq!(before, ["ens192", "lo", "peer0"]);
}
