//! The soak's clients and what each of them does until the deadline.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use linkherd_proto::{
    model::Role,
    pb::{
        self, host_service_client::HostServiceClient,
        interface_service_client::InterfaceServiceClient,
        macvlan_service_client::MacvlanServiceClient, netns_target::Target as Ns,
        probe_service_client::ProbeServiceClient,
    },
};
use linkherdctl::{certs, client::Target};
use tonic::{Code, Status, transport::Channel};

use super::{BOUNDS, Footprint, RpcStats, SoakOptions, SoakReport};
use crate::{HostState, LabError, LabState};

pub const OVER_WATCH_CAP: &str = "Watch streams over the per-identity cap";
pub const OVER_PROBE_BUDGET: &str = "probes over the per-caller budget";

/// Watch streams the greedy viewer asks for: 4 over its cap of 16.
const GREEDY_WATCHES: usize = 20;
const WATCH_CAP: usize = 16;
/// Pings the burst operator starts at once: 8 over its budget of 32.
const BURST_PINGS: usize = 40;

const NETWORK: &str = "soak";

/// Everything the clients saw.
#[derive(Debug, Default)]
pub struct Recorder {
    latencies: BTreeMap<String, Vec<Duration>>,
    refusals: BTreeMap<String, u64>,
    errors: u64,
    first_errors: Vec<String>,
    events: u64,
    peak: Footprint,
}

type Rec = Arc<Mutex<Recorder>>;

fn with<T>(rec: &Rec, f: impl FnOnce(&mut Recorder) -> T) -> T {
    f(&mut rec.lock().unwrap_or_else(|p| p.into_inner()))
}

fn error(rec: &Rec, what: String) {
    with(rec, |r| {
        r.errors += 1;
        if r.first_errors.len() < 20 {
            r.first_errors.push(what);
        }
    });
}

fn refused(rec: &Rec, kind: &str) {
    with(rec, |r| {
        *r.refusals.entry(kind.to_owned()).or_default() += 1
    });
}

/// Runs one call, recording its latency, or its error.
async fn timed<T>(
    rec: &Rec,
    rpc: &str,
    call: impl Future<Output = Result<T, Status>>,
) -> Option<T> {
    let started = Instant::now();
    match call.await {
        Ok(v) => {
            let took = started.elapsed();
            with(rec, |r| {
                r.latencies.entry(rpc.to_owned()).or_default().push(took)
            });
            Some(v)
        }
        Err(e) => {
            error(rec, format!("{rpc}: {:?} {}", e.code(), e.message()));
            None
        }
    }
}

impl Recorder {
    fn stats(mut v: Vec<Duration>) -> RpcStats {
        v.sort();
        let at = |q: f64| {
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            v.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        RpcStats {
            served: v.len() as u64,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }

    pub fn report(self, seconds: f64, start: Footprint, end: Footprint) -> SoakReport {
        let rpcs: BTreeMap<String, RpcStats> = self
            .latencies
            .into_iter()
            .map(|(k, v)| (k, Self::stats(v)))
            .collect();
        SoakReport {
            seconds,
            served: rpcs.values().map(|r| r.served).sum(),
            rpcs,
            watch_events: self.events,
            deliberate_refusals: self.refusals,
            errors: self.errors,
            first_errors: self.first_errors,
            start,
            peak: self.peak.max(start).max(end),
            end,
            bounds: BOUNDS,
        }
    }
}

/// One channel per identity, to the soaked agent (and an admin one to the
/// second host, for its endpoint).
pub struct Clients {
    viewer: Channel,
    greedy: Channel,
    operator: Channel,
    burst: Channel,
    admin: Channel,
    peer_admin: Channel,
    /// The second host's endpoint address, which the probes reach.
    peer_ip: String,
    /// The soaked host's data NIC, its endpoints' parent.
    nic: String,
}

async fn channel(state: &LabState, host: &HostState, name: &str) -> Result<Channel, LabError> {
    let pki = state.pki();
    let target = Target::parse(
        &host.agent_url,
        Some(pki.join("ca.pem")),
        Some(pki.join(format!("client-{name}.pem"))),
        Some(pki.join(format!("client-{name}-key.pem"))),
    )
    .map_err(|e| LabError::State(e.to_string()))?;
    target
        .connect()
        .await
        .map_err(|e| LabError::State(e.to_string()))
}

fn endpoint(name: &str, parent: &str, ip: &str) -> pb::MacvlanEndpoint {
    pb::MacvlanEndpoint {
        network: NETWORK.into(),
        name: name.into(),
        parent: parent.into(),
        mode: pb::MacvlanMode::Bridge.into(),
        netns: Some(pb::NetnsTarget {
            target: Some(Ns::Name(name.into())),
        }),
        ifname: "eth0".into(),
        addresses: vec![format!("{ip}/24")],
        ..Default::default()
    }
}

fn desired(endpoints: Vec<pb::MacvlanEndpoint>) -> pb::DesiredState {
    pb::DesiredState {
        networks: vec![NETWORK.into()],
        endpoints,
        ..Default::default()
    }
}

/// Plans, applies and confirms `d`, timing each step.
async fn apply(rec: &Rec, ch: &Channel, d: pb::DesiredState) -> Option<()> {
    let mut h = HostServiceClient::new(ch.clone());
    let generation = timed(
        rec,
        "HostService/GetState",
        h.get_state(pb::GetStateRequest {}),
    )
    .await?
    .into_inner()
    .generation;
    let req = pb::ApplyRequest {
        desired: Some(d),
        expected_generation: generation,
        confirm_timeout_seconds: 30,
        address_check_ms: 0,
    };
    let txn = timed(rec, "HostService/Apply", h.apply(req))
        .await?
        .into_inner()
        .txn_id;
    if !txn.is_empty() {
        let confirm = h.confirm(pb::ConfirmRequest { txn_id: txn });
        timed(rec, "HostService/Confirm", confirm).await?;
    }
    Some(())
}

impl Clients {
    pub async fn connect(state: &LabState, a: &HostState, b: &HostState) -> Result<Self, LabError> {
        let pki = state.pki();
        certs::issue_client(&pki, "soak-greedy", Role::Viewer, 1)?;
        certs::issue_client(&pki, "soak-burst", Role::Operator, 1)?;
        Ok(Self {
            viewer: channel(state, a, "viewer").await?,
            greedy: channel(state, a, "soak-greedy").await?,
            operator: channel(state, a, "operator").await?,
            burst: channel(state, a, "soak-burst").await?,
            admin: channel(state, a, "admin").await?,
            peer_admin: channel(state, b, "admin").await?,
            peer_ip: "10.91.0.12".into(),
            nic: a.nic.clone(),
        })
    }

    /// An endpoint on each host, on one network, for the probes.
    pub async fn prepare(&self, b: &HostState) -> Result<(), LabError> {
        let rec = Rec::default();
        let ours = desired(vec![endpoint("s1", &self.nic, "10.91.0.11")]);
        let theirs = desired(vec![endpoint("s2", &b.nic, &self.peer_ip)]);
        let ok = apply(&rec, &self.admin, ours).await.is_some()
            && apply(&rec, &self.peer_admin, theirs).await.is_some();
        let first = with(&rec, |r| r.first_errors.clone());
        ok.then_some(())
            .ok_or_else(|| LabError::State(format!("soak set-up: {first:?}")))
    }

    /// Every client at once until `opts.duration` has passed.
    pub async fn run(&self, opts: SoakOptions, pid: u32) -> (Recorder, f64) {
        let rec = Rec::default();
        let started = Instant::now();
        let until = started + opts.duration;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..opts.watchers {
            tasks.spawn(watch(rec.clone(), self.viewer.clone(), until));
        }
        tasks.spawn(greedy(rec.clone(), self.greedy.clone(), until));
        for _ in 0..opts.readers {
            tasks.spawn(read(rec.clone(), self.viewer.clone(), until));
        }
        for _ in 0..opts.probers {
            tasks.spawn(probe(
                rec.clone(),
                self.operator.clone(),
                self.peer_ip.clone(),
                until,
            ));
        }
        tasks.spawn(burst(
            rec.clone(),
            self.burst.clone(),
            self.peer_ip.clone(),
            until,
        ));
        tasks.spawn(churn(
            rec.clone(),
            self.admin.clone(),
            self.nic.clone(),
            until,
        ));
        tasks.spawn(sample(rec.clone(), pid, until));
        while let Some(res) = tasks.join_next().await {
            if let Err(e) = res {
                error(&rec, format!("a soak task failed: {e}"));
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let rec = Arc::try_unwrap(rec)
            .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
            .unwrap_or_default();
        (rec, seconds)
    }
}

/// Reads a Watch stream until the deadline, counting its live events (after
/// the snapshot); a stream that ends before it is an error.
async fn drain(rec: &Rec, mut s: tonic::Streaming<pb::WatchInterfacesResponse>, until: Instant) {
    let mut synced = false;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.message()).await {
            Err(_) => return,
            Ok(Ok(Some(_))) if synced => with(rec, |r| r.events += 1),
            Ok(Ok(Some(m))) => {
                synced = matches!(
                    m.event,
                    Some(pb::watch_interfaces_response::Event::Synced(_))
                );
            }
            Ok(Ok(None)) => return error(rec, "a Watch stream ended early".into()),
            Ok(Err(e)) => return error(rec, format!("a Watch stream failed: {e:?}")),
        }
    }
}

async fn watch(rec: Rec, ch: Channel, until: Instant) {
    let mut c = InterfaceServiceClient::new(ch);
    if let Some(s) = timed(
        &rec,
        "InterfaceService/Watch",
        c.watch(pb::WatchInterfacesRequest {}),
    )
    .await
    {
        drain(&rec, s.into_inner(), until).await;
    }
}

/// Asks for more Watch streams than one identity may hold: exactly the
/// ones over the cap are refused; the others are held and read.
async fn greedy(rec: Rec, ch: Channel, until: Instant) {
    let mut held = tokio::task::JoinSet::new();
    let mut refusals = 0;
    for _ in 0..GREEDY_WATCHES {
        match InterfaceServiceClient::new(ch.clone())
            .watch(pb::WatchInterfacesRequest {})
            .await
        {
            Ok(s) => {
                held.spawn({
                    let rec = rec.clone();
                    async move { drain(&rec, s.into_inner(), until).await }
                });
            }
            Err(e) if e.code() == Code::ResourceExhausted => {
                refusals += 1;
                refused(&rec, OVER_WATCH_CAP);
            }
            Err(e) => error(&rec, format!("greedy Watch: {e:?}")),
        }
    }
    if refusals != GREEDY_WATCHES - WATCH_CAP {
        error(
            &rec,
            format!(
                "{refusals} Watch streams refused, expected {}",
                GREEDY_WATCHES - WATCH_CAP
            ),
        );
    }
    while held.join_next().await.is_some() {}
}

async fn read(rec: Rec, ch: Channel, until: Instant) {
    let mut h = HostServiceClient::new(ch.clone());
    let mut i = InterfaceServiceClient::new(ch.clone());
    let mut m = MacvlanServiceClient::new(ch);
    while Instant::now() < until {
        timed(
            &rec,
            "HostService/GetState",
            h.get_state(pb::GetStateRequest {}),
        )
        .await;
        let list = i.list(pb::ListInterfacesRequest::default());
        timed(&rec, "InterfaceService/List", list).await;
        timed(
            &rec,
            "MacvlanService/List",
            m.list(pb::ListMacvlansRequest {}),
        )
        .await;
    }
}

fn from_s1() -> Option<pb::NetnsTarget> {
    Some(pb::NetnsTarget {
        target: Some(Ns::Name("s1".into())),
    })
}

/// Runs a ping to its summary: `None` when the call or the stream failed.
async fn ping_to_end(
    c: &mut ProbeServiceClient<Channel>,
    req: pb::PingRequest,
) -> Result<pb::PingSummary, Status> {
    let mut s = c.ping(req).await?.into_inner();
    while let Some(m) = s.message().await? {
        if let Some(pb::ping_response::Event::Summary(sum)) = m.event {
            return Ok(sum);
        }
    }
    Err(Status::unknown("the ping ended without its summary"))
}

/// Pings and ARPs the other host's endpoint: every packet must be answered.
async fn probe(rec: Rec, ch: Channel, to: String, until: Instant) {
    let mut c = ProbeServiceClient::new(ch);
    while Instant::now() < until {
        let req = pb::PingRequest {
            source: from_s1(),
            destination: to.clone(),
            count: 3,
            interval_ms: 20,
            timeout_ms: 1000,
            ..Default::default()
        };
        if let Some(sum) = timed(&rec, "ProbeService/Ping", ping_to_end(&mut c, req)).await
            && sum.received != sum.sent
        {
            error(
                &rec,
                format!("ping {to}: {} of {} answered", sum.received, sum.sent),
            );
        }
        let arp = pb::ArpRequest {
            source: from_s1(),
            address: to.clone(),
            timeout_ms: 1000,
            ..Default::default()
        };
        if let Some(r) = timed(&rec, "ProbeService/Arp", c.arp(arp)).await
            && r.get_ref().responders.len() != 1
        {
            error(&rec, format!("arp {to}: {:?}", r.get_ref().responders));
        }
    }
}

/// Every 5 s, more pings at once than one caller may run: the ones over
/// the budget are refused, the others run (paced) to their summary.
async fn burst(rec: Rec, ch: Channel, to: String, until: Instant) {
    while Instant::now() + Duration::from_secs(2) < until {
        let mut pings = tokio::task::JoinSet::new();
        for _ in 0..BURST_PINGS {
            let (mut c, to) = (ProbeServiceClient::new(ch.clone()), to.clone());
            pings.spawn(async move {
                let req = pb::PingRequest {
                    source: from_s1(),
                    destination: to,
                    count: 5,
                    interval_ms: 200,
                    timeout_ms: 1000,
                    ..Default::default()
                };
                ping_to_end(&mut c, req).await
            });
        }
        while let Some(res) = pings.join_next().await {
            match res {
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.code() == Code::ResourceExhausted => {
                    refused(&rec, OVER_PROBE_BUDGET)
                }
                Ok(Err(e)) => error(&rec, format!("burst ping: {e:?}")),
                Err(e) => error(&rec, format!("burst ping task: {e}")),
            }
        }
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_secs(5))).await;
    }
}

/// Adds and removes an endpoint by commit-confirmed applies, which also
/// feeds the Watch streams.
async fn churn(rec: Rec, ch: Channel, nic: String, until: Instant) {
    let s1 = || endpoint("s1", &nic, "10.91.0.11");
    // Host access lives in the host's namespace: its coming and going is
    // what the Watch streams see.
    let access = pb::HostAccess {
        network: NETWORK.into(),
        parent: nic.clone(),
        addresses: vec!["10.91.0.254/32".into()],
        routes: vec!["10.91.0.13/32".into()],
        ..Default::default()
    };
    while Instant::now() < until {
        let mut both = desired(vec![s1(), endpoint("s3", &nic, "10.91.0.13")]);
        both.host_access.push(access.clone());
        if apply(&rec, &ch, both).await.is_none()
            || apply(&rec, &ch, desired(vec![s1()])).await.is_none()
        {
            return;
        }
    }
}

/// The agent's footprint every second, for the peak.
async fn sample(rec: Rec, pid: u32, until: Instant) {
    while Instant::now() < until {
        match Footprint::of(pid) {
            Ok(f) => with(&rec, |r| r.peak = r.peak.max(f)),
            Err(e) => return error(&rec, format!("the agent's footprint: {e}")),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
