//! Issue 11, shutdown (root only): SIGTERM stops the real `linkherd-agent`
//! within its bound. Requests in flight get their answers when they fit in
//! `[limits] shutdown_grace_seconds`; a Watch stream, which never ends by
//! itself, is ended with UNAVAILABLE rather than holding the exit; what
//! outlives the bound is cut and the agent exits anyway.
//!
//! The agent runs inside a namespace of the test's own (`--netns`), and the
//! pings go to that namespace's loopback.

use linkherd_agent::testing;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use linkherd_proto::pb::{
    self, interface_service_client::InterfaceServiceClient,
    probe_service_client::ProbeServiceClient,
};
use test_support::{TestNetns, have_root};
use tonic::{Code, transport::Channel};

/// A `linkherd-agent` process of this test, killed by PID if it is still
/// running when the test ends.
struct AgentProcess {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl AgentProcess {
    fn start(ns: &TestNetns, grace_seconds: u64) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!("[limits]\nshutdown_grace_seconds = {grace_seconds}\n"),
        )
        .expect("config");
        let socket = dir.path().join("run/agent.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_linkherd-agent"))
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--netns")
            .arg(ns.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the agent");
        Self {
            child,
            socket,
            _dir: dir,
        }
    }

    async fn channel(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.socket.exists() {
            assert!(Instant::now() < deadline, "the agent did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        testing::unix_channel(&self.socket).await
    }

    fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    }

    /// Waits for the exit; its status and how long it took.
    async fn exited_within(&mut self, bound: Duration) -> (std::process::ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, start.elapsed());
            }
            assert!(
                start.elapsed() < bound,
                "the agent was still running {bound:?} after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn ping(count: u32, interval_ms: u32) -> pb::PingRequest {
    pb::PingRequest {
        destination: "127.0.0.1".into(),
        count,
        interval_ms,
        timeout_ms: 500,
        ..Default::default()
    }
}

/// The replies a ping stream delivered, and how it ended.
async fn ping_until_end(
    mut probe: ProbeServiceClient<Channel>,
    req: pb::PingRequest,
) -> (u32, Result<pb::PingSummary, tonic::Status>) {
    let mut stream = match probe.ping(req).await {
        Ok(s) => s.into_inner(),
        Err(e) => return (0, Err(e)),
    };
    let mut replies = 0;
    loop {
        match futures::StreamExt::next(&mut stream).await {
            Some(Ok(m)) => match m.event.expect("event") {
                pb::ping_response::Event::Reply(r) if !r.timed_out => replies += 1,
                pb::ping_response::Event::Reply(_) => {}
                pb::ping_response::Event::Summary(s) => return (replies, Ok(s)),
            },
            Some(Err(e)) => return (replies, Err(e)),
            None => {
                return (
                    replies,
                    Err(tonic::Status::unknown("ended without a summary")),
                );
            }
        }
    }
}

async fn open_watch(ch: Channel) -> tonic::Streaming<pb::WatchInterfacesResponse> {
    let mut w = InterfaceServiceClient::new(ch)
        .watch(pb::WatchInterfacesRequest {})
        .await
        .expect("watch")
        .into_inner();
    // Read up to Synced, so the stream is established and idle.
    loop {
        let m = w.message().await.expect("watch event").expect("open");
        if matches!(
            m.event,
            Some(pb::watch_interfaces_response::Event::Synced(_))
        ) {
            return w;
        }
    }
}

fn socket_gone(p: &Path) -> bool {
    !p.exists()
}

/// Within the grace: the ping in flight completes with every reply, the
/// idle Watch stream is ended with UNAVAILABLE, and the agent exits 0 soon
/// after the ping — not when the stream would have ended (never).
#[tokio::test]
async fn sigterm_lets_requests_finish_and_ends_watch_streams() {
    if !have_root("shutdown-drain") {
        return;
    }
    let ns = TestNetns::new("sd-drain");
    let mut agent = AgentProcess::start(&ns, 10);
    let ch = agent.channel().await;
    let mut watch = open_watch(ch.clone()).await;
    let pinging = tokio::spawn(ping_until_end(
        ProbeServiceClient::new(ch.clone()),
        ping(5, 300),
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    agent.terminate();

    let ended = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the watch stream ended at once");
    let status = ended.expect_err("ended with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");

    let (replies, summary) = pinging.await.expect("ping task");
    let summary = summary.expect("the ping in flight got its answer");
    assert_eq!((replies, summary.sent, summary.received), (5, 5, 5));
    let (status, took) = agent.exited_within(Duration::from_secs(8)).await;
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    assert!(
        took < Duration::from_secs(4),
        "exit took {took:?} after SIGTERM"
    );
    assert!(socket_gone(&agent.socket), "the socket was left behind");
    assert!(agent.log().contains("every request in flight finished"));
}

/// Beyond the grace: a ping that would run 6 s more is cut at the bound,
/// and the agent says so and exits.
#[tokio::test]
async fn sigterm_exits_at_the_bound_when_a_request_outlives_it() {
    if !have_root("shutdown-bound") {
        return;
    }
    let ns = TestNetns::new("sd-bound");
    let mut agent = AgentProcess::start(&ns, 1);
    let ch = agent.channel().await;
    let pinging = tokio::spawn(ping_until_end(ProbeServiceClient::new(ch), ping(20, 300)));
    tokio::time::sleep(Duration::from_millis(400)).await;
    agent.terminate();
    let (status, took) = agent.exited_within(Duration::from_secs(6)).await;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "exit took {took:?}; the bound is 1 s"
    );
    assert_eq!(status.code(), Some(0));
    let (replies, summary) = pinging.await.expect("ping task");
    assert!(summary.is_err(), "a 6 s ping finished within a 1 s grace");
    assert!((1..20).contains(&replies), "{replies} replies");
    assert!(
        agent
            .log()
            .contains("still in flight after the shutdown grace"),
        "the agent did not say it cut requests"
    );
}
