//! T1: the agent's resources have bounds (issue 11, problems 3, 7 and 8),
//! over the fake kernel and real mTLS on loopback.
//! - `Watch` streams share one kernel subscription and are capped per
//!   identity and in total (RESOURCE_EXHAUSTED naming the cap); a
//!   subscription that dies is re-created.
//! - One host's idle TCP connections cannot hold every TLS handshake slot.
//! - Request bytes in flight have a global budget.

use linkherd_agent::testing;

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use linkherd_agent::testing::{Pki, start_agent, start_agent_with};
use linkherd_agent::{
    app::{AgentOptions, Limits},
    net::{Capabilities, EventStream, NetError, NetOps, NewLink, Route, fake::FakeKernel},
    watch::WatchLimits,
};
use linkherd_proto::{
    model::{IfName, Interface, MacAddr, Role},
    pb::{
        self, host_service_client::HostServiceClient,
        interface_service_client::InterfaceServiceClient, watch_interfaces_response::Event,
    },
};
use tokio::io::AsyncReadExt;
use tonic::Code;

/// The fake kernel, counting subscriptions; `kill` ends every live one, as
/// a netlink connection that dies would.
#[derive(Debug)]
struct Counting {
    inner: Arc<FakeKernel>,
    watches: AtomicUsize,
    live: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Subscribing fails while set, as with a netlink socket that cannot
    /// be opened.
    broken: std::sync::atomic::AtomicBool,
}

impl Counting {
    fn new(inner: Arc<FakeKernel>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            watches: AtomicUsize::new(0),
            live: Mutex::default(),
            broken: Default::default(),
        })
    }

    fn watches(&self) -> usize {
        self.watches.load(Ordering::SeqCst)
    }

    fn kill(&self) {
        for h in self.live.lock().expect("lock").drain(..) {
            h.abort();
        }
    }
}

#[async_trait]
impl NetOps for Counting {
    async fn links(&self) -> Result<Vec<Interface>, NetError> {
        self.inner.links().await
    }
    async fn link(&self, name: &IfName) -> Result<Interface, NetError> {
        self.inner.link(name).await
    }
    async fn link_by_index(&self, index: u32) -> Result<Interface, NetError> {
        self.inner.link_by_index(index).await
    }
    async fn set_promisc(&self, index: u32, on: bool) -> Result<(), NetError> {
        self.inner.set_promisc(index, on).await
    }
    async fn set_up(&self, index: u32, up: bool) -> Result<(), NetError> {
        self.inner.set_up(index, up).await
    }
    async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetError> {
        self.inner.set_mtu(index, mtu).await
    }
    async fn set_alias(&self, index: u32, alias: &str) -> Result<(), NetError> {
        self.inner.set_alias(index, alias).await
    }
    async fn rename(&self, index: u32, name: &IfName) -> Result<(), NetError> {
        self.inner.rename(index, name).await
    }
    async fn capabilities(&self) -> Capabilities {
        self.inner.capabilities().await
    }
    async fn watch(&self) -> Result<EventStream, NetError> {
        self.watches.fetch_add(1, Ordering::SeqCst);
        if self.broken.load(Ordering::SeqCst) {
            return Err(NetError::Io {
                op: "open netlink socket",
                detail: "Too many open files".into(),
            });
        }
        let mut events = self.inner.watch().await?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let task = tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if tx.send(e).await.is_err() {
                    break;
                }
            }
        });
        self.live.lock().expect("lock").push(task.abort_handle());
        Ok(rx)
    }
    async fn add_link(&self, link: &NewLink) -> Result<(), NetError> {
        self.inner.add_link(link).await
    }
    async fn del_link(&self, index: u32) -> Result<(), NetError> {
        self.inner.del_link(index).await
    }
    async fn del_group(&self, group: u32) -> Result<(), NetError> {
        self.inner.del_group(group).await
    }
    async fn add_address(&self, index: u32, addr: ipnet::IpNet) -> Result<(), NetError> {
        self.inner.add_address(index, addr).await
    }
    async fn routes(&self) -> Result<Vec<Route>, NetError> {
        self.inner.routes().await
    }
    async fn add_route(&self, route: &Route) -> Result<(), NetError> {
        self.inner.add_route(route).await
    }
    async fn enable_announce(&self, name: &IfName) -> Result<(), NetError> {
        self.inner.enable_announce(name).await
    }
    async fn probe_address(
        &self,
        index: u32,
        mac: MacAddr,
        addr: std::net::Ipv4Addr,
        timeout: Duration,
    ) -> Result<Vec<MacAddr>, NetError> {
        self.inner.probe_address(index, mac, addr, timeout).await
    }
    async fn netns(&self, file: &Path) -> Result<Arc<dyn NetOps>, NetError> {
        self.inner.netns(file).await
    }
    async fn create_netns(&self, name: &str) -> Result<(), NetError> {
        self.inner.create_netns(name).await
    }
    async fn delete_netns(&self, name: &str) -> Result<(), NetError> {
        self.inner.delete_netns(name).await
    }
    async fn netns_names(&self) -> Result<Vec<String>, NetError> {
        self.inner.netns_names().await
    }
}

fn fake_with_nic() -> Arc<FakeKernel> {
    let fake = Arc::new(FakeKernel::new());
    fake.add_veth("ens192", "peer0").expect("veth");
    fake
}

type Watch = tonic::Streaming<pb::WatchInterfacesResponse>;

/// Opens a Watch and reads it up to its sync marker.
async fn synced_watch(c: &mut InterfaceServiceClient<tonic::transport::Channel>) -> Watch {
    let mut s = c
        .watch(pb::WatchInterfacesRequest {})
        .await
        .expect("watch")
        .into_inner();
    while !matches!(testing::next_event(&mut s).await, Event::Synced(_)) {}
    s
}

/// The next event that reports `name` added, skipping changes.
async fn added(s: &mut Watch, name: &str) {
    loop {
        if let Event::Added(i) = testing::next_event(s).await
            && i.name == name
        {
            return;
        }
    }
}

/// A guard against "never", not a timing check: generous, because the
/// suites run in parallel on small machines.
const NEVER: Duration = Duration::from_secs(30);

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + NEVER;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Problem 3: 1100 Watch streams from one viewer each opened a netlink
/// socket and exhausted the agent's descriptors. Now the first 16 work and
/// share one kernel subscription, the others get RESOURCE_EXHAUSTED naming
/// the cap, another identity and a new client are still served, and a
/// stream's place comes back when it ends.
#[tokio::test]
async fn watch_streams_share_one_subscription_and_are_capped_per_identity() {
    let pki = Pki::new();
    let fake = fake_with_nic();
    let net = Counting::new(fake.clone());
    let agent = start_agent(net.clone(), &pki, None).await;
    let mut viewer = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("connect"),
    );
    let mut open = Vec::new();
    for _ in 0..16 {
        open.push(synced_watch(&mut viewer).await);
    }
    for i in 16..1100 {
        let err = viewer
            .watch(pb::WatchInterfacesRequest {})
            .await
            .expect_err("over the cap");
        assert_eq!(err.code(), Code::ResourceExhausted, "stream {i}: {err:?}");
        assert_eq!(
            err.message(),
            "viewer already holds 16 Watch streams, the per-identity cap ([limits] \
             watch_streams_per_identity); close one and retry"
        );
    }
    assert_eq!(net.watches(), 1, "one kernel subscription for all streams");
    assert_eq!(agent.agent.context().watches.streams(), 16);

    // Every open stream sees a change.
    fake.add_veth("vethA", "vethB").expect("veth");
    for s in &mut open {
        added(s, "vethA").await;
    }

    // Another identity and a new connection are still served.
    let mut operator = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Operator))
            .await
            .expect("a new client connects"),
    );
    let _other = synced_watch(&mut operator).await;
    assert_eq!(net.watches(), 1);

    // Closing the streams gives their places back.
    drop(open);
    let ctx = agent.agent.context().clone();
    until("closed streams to be released", || {
        ctx.watches.streams() == 1
    })
    .await;
    let _again = synced_watch(&mut viewer).await;
}

/// The global cap holds over all identities.
#[tokio::test]
async fn watch_streams_have_a_global_cap() {
    let pki = Pki::new();
    let opts = AgentOptions {
        limits: Limits {
            watch: WatchLimits {
                per_identity: 16,
                total: 3,
            },
            ..Limits::default()
        },
        ..AgentOptions::default()
    };
    let agent = start_agent_with(fake_with_nic(), &pki, opts).await;
    let mut viewer =
        InterfaceServiceClient::new(agent.channel(&pki, Some(Role::Viewer)).await.expect("c"));
    let mut admin =
        InterfaceServiceClient::new(agent.channel(&pki, Some(Role::Admin)).await.expect("c"));
    let _open = [
        synced_watch(&mut viewer).await,
        synced_watch(&mut viewer).await,
        synced_watch(&mut admin).await,
    ];
    let err = admin
        .watch(pb::WatchInterfacesRequest {})
        .await
        .expect_err("over the global cap");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(
        err.message(),
        "the agent already serves 3 Watch streams, its global cap ([limits] watch_streams); \
         retry later"
    );
}

/// A subscription whose connection dies is re-created: the streams stay
/// open, resync, and see the next change.
#[tokio::test]
async fn a_dead_kernel_subscription_is_re_created() {
    let pki = Pki::new();
    let fake = fake_with_nic();
    let net = Counting::new(fake.clone());
    let agent = start_agent(net.clone(), &pki, None).await;
    let mut c =
        InterfaceServiceClient::new(agent.channel(&pki, Some(Role::Viewer)).await.expect("c"));
    let mut s = synced_watch(&mut c).await;
    assert_eq!(net.watches(), 1);
    net.kill();
    let n = net.clone();
    until("the subscription to be re-created", || n.watches() == 2).await;
    fake.add_veth("vethA", "vethB").expect("veth");
    added(&mut s, "vethA").await;
}

/// While the subscription cannot be re-created, health says
/// InterfaceService is NOT_SERVING; once it is, SERVING again, and the
/// open stream carries on.
#[tokio::test]
async fn health_reports_a_subscription_that_cannot_be_re_created() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let pki = Pki::new();
    let fake = fake_with_nic();
    let net = Counting::new(fake.clone());
    let agent = start_agent(net.clone(), &pki, None).await;
    let ch = agent.channel(&pki, Some(Role::Viewer)).await.expect("c");
    let mut c = InterfaceServiceClient::new(ch.clone());
    let mut health = HealthClient::new(ch);
    let mut status = async move || {
        health
            .check(HealthCheckRequest {
                service: "linkherd.v1.InterfaceService".into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status()
    };
    let mut s = synced_watch(&mut c).await;
    assert_eq!(status().await, ServingStatus::Serving);
    net.broken.store(true, Ordering::SeqCst);
    net.kill();
    let deadline = Instant::now() + NEVER;
    while status().await != ServingStatus::NotServing {
        assert!(
            Instant::now() < deadline,
            "health never said NOT_SERVING ({} subscriptions tried)",
            net.watches()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    net.broken.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + NEVER;
    while status().await != ServingStatus::Serving {
        assert!(Instant::now() < deadline, "health never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.add_veth("vethA", "vethB").expect("veth");
    added(&mut s, "vethA").await;
}

/// Problem 7: 300 idle TCP connections held every TLS handshake slot and a
/// real client waited 9.5 s. Now one peer gets 8 handshakes in progress,
/// its other connections are closed at once, and a client from another
/// address is answered at once.
#[tokio::test]
async fn idle_connections_from_one_peer_do_not_stall_other_clients() {
    let pki = Pki::new();
    let agent = start_agent(fake_with_nic(), &pki, None).await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind 127.0.0.2");
        idle.push(sock.connect(agent.addr).await.expect("tcp connect"));
    }
    let started = Instant::now();
    let mut h = HostServiceClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("connect"),
    );
    h.get_info(pb::GetInfoRequest {}).await.expect("info");
    let took = started.elapsed();
    // Generous: the stall this replaces was the 10 s handshake timeout.
    assert!(took < Duration::from_secs(2), "answered after {took:?}");

    // All but 8 of the idle connections were closed by the agent.
    let mut closed = 0;
    for c in &mut idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(20), c.read(&mut b)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 292, "connections closed at once");
}

/// Problem 8: 128 concurrent 3.8 MiB Plans took the agent's memory from
/// 133 to 932 MiB. Request bytes in flight now have a budget: requests
/// over it get RESOURCE_EXHAUSTED at once, the bytes are given back when
/// requests end, and the agent keeps answering.
#[tokio::test]
async fn request_bytes_in_flight_have_a_global_budget() {
    let pki = Pki::new();
    let opts = AgentOptions {
        limits: Limits {
            request_bytes_in_flight: 8 * 1024 * 1024,
            ..Limits::default()
        },
        ..AgentOptions::default()
    };
    let agent = start_agent_with(fake_with_nic(), &pki, opts).await;
    let mut calls = Vec::new();
    for i in 0..4 {
        // Four connections, eight Plans each, all at once.
        let ch = agent.channel(&pki, Some(Role::Viewer)).await.expect("c");
        for j in 0..8 {
            let mut h = HostServiceClient::new(ch.clone());
            let name = format!("{i}{j}{}", "x".repeat(3_800_000));
            calls.push(tokio::spawn(async move {
                h.plan(pb::PlanRequest {
                    desired: Some(pb::DesiredState {
                        endpoints: vec![pb::MacvlanEndpoint {
                            name,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                })
                .await
            }));
        }
    }
    let mut exhausted = 0;
    for call in calls {
        let err = call
            .await
            .expect("task")
            .expect_err("a 3.8 MB name is invalid");
        match err.code() {
            Code::InvalidArgument => {}
            Code::ResourceExhausted => {
                assert_eq!(
                    err.message(),
                    "requests in flight hold the agent's budget of 8388608 bytes ([limits] \
                     request_bytes_in_flight); retry later"
                );
                exhausted += 1;
            }
            other => panic!("unexpected {other:?}: {}", err.message()),
        }
    }
    // 32 × 3.8 MB is 15 times the budget: most must have been refused.
    assert!(exhausted >= 16, "only {exhausted} of 32 refused");
    let a = agent.agent.clone();
    until("the budget to be given back", || {
        a.request_bytes_in_flight() == 0
    })
    .await;
    let mut h = HostServiceClient::new(agent.channel(&pki, Some(Role::Viewer)).await.expect("c"));
    h.get_info(pb::GetInfoRequest {})
        .await
        .expect("still answering");
}
