//! The agent's resident memory as a process of its own: idle, then holding
//! N endpoints made through its unix socket.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use linkherd_lab::{bins, soak::Footprint};
use linkherd_proto::pb;
use linkherdctl::client::Target;

use super::{create_endpoints, report::Memory};

/// A `linkherd-agent` process of this run, stopped (SIGTERM, by its pid)
/// and waited for when dropped.
struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.0.wait();
    }
}

/// Starts the agent binary in `host_ns`, measures it idle, has it make
/// `n` endpoints in `target` (8 in flight), measures it again, and removes
/// them.
pub async fn memory(host_ns: &str, target: &str, n: usize) -> anyhow::Result<Memory> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("agent.sock");
    let agent = start(host_ns, dir.path(), &socket)?;
    let ch = connect(&socket).await?;
    // Settled: start-up allocations done, nothing in flight.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = Footprint::of(agent.0.id())?.rss_kib;
    let client = pb::macvlan_service_client::MacvlanServiceClient::new(ch);
    create_endpoints(&client, target, n, 8).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with = Footprint::of(agent.0.id())?.rss_kib;
    let removed = client
        .clone()
        .delete(pb::DeleteMacvlanRequest {
            network: "bench".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .removed
        .len();
    ensure!(removed == n, "removed {removed} of {n}");
    Ok(Memory {
        idle_kib: idle,
        endpoints: n,
        with_endpoints_kib: with,
    })
}

fn start(host_ns: &str, dir: &Path, socket: &Path) -> anyhow::Result<AgentProcess> {
    let bin = bins::agent()?;
    let child = Command::new(&bin)
        .arg("--netns")
        .arg(PathBuf::from("/run/netns").join(host_ns))
        .arg("--socket")
        .arg(socket)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--netns-prefix")
        .arg(format!("{host_ns}-"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    Ok(AgentProcess(child))
}

/// The agent's socket, once it answers (within 10 s).
async fn connect(socket: &Path) -> anyhow::Result<tonic::transport::Channel> {
    let target = Target::Unix {
        path: socket.to_owned(),
    };
    let started = Instant::now();
    loop {
        match target.connect().await {
            Ok(ch) => return Ok(ch),
            Err(e) if started.elapsed() > Duration::from_secs(10) => {
                return Err(e).context("the agent's socket did not answer within 10 s");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
