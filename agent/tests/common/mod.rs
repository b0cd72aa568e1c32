//! Helpers shared by the agent's integration tests: certificates, an
//! in-process agent on a loopback mTLS port, private network namespaces.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
};

use linkherd_agent::{
    net::NetOps,
    server::{Agent, AgentOptions, TlsPem},
};
use linkherd_proto::model::Role;
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// True when running as root. Without root, root tests skip loudly — unless
/// LINKHERD_REQUIRE_ROOT=1 (set by CI), where skipping would hide a failure.
pub fn have_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("LINKHERD_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test} needs root (CAP_NET_ADMIN), and LINKHERD_REQUIRE_ROOT=1 forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs root (CAP_NET_ADMIN); run as root to include it");
    false
}

/// A fleet CA with an agent certificate for 127.0.0.1 and clients per role.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        linkherdctl::certs::init(dir.path(), 30, false).expect("ca");
        linkherdctl::certs::issue_agent(dir.path(), "agent", &["127.0.0.1".into()], 30)
            .expect("agent cert");
        for role in Role::ALL {
            linkherdctl::certs::issue_client(dir.path(), role.as_str(), role, 30).expect("client");
        }
        Self { dir }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).expect("read pem")
    }

    pub fn server_tls(&self) -> TlsPem {
        TlsPem {
            cert: self.read("agent-agent.pem"),
            key: self.read("agent-agent-key.pem"),
            client_ca: self.read("ca.pem"),
        }
    }

    /// TLS for a client named after `role`, or with no client certificate.
    pub fn client_tls(&self, role: Option<Role>) -> ClientTlsConfig {
        let mut cfg =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.read("ca.pem")));
        if let Some(role) = role {
            cfg = cfg.identity(Identity::from_pem(
                self.read(&format!("client-{role}.pem")),
                self.read(&format!("client-{role}-key.pem")),
            ));
        }
        cfg
    }
}

/// An agent serving mTLS on an ephemeral loopback port; stops on drop.
pub struct RunningAgent {
    pub addr: SocketAddr,
    pub agent: Agent,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start_agent(
    net: Arc<dyn NetOps>,
    pki: &Pki,
    state_dir: Option<&Path>,
) -> RunningAgent {
    let opts = AgentOptions {
        state_dir: state_dir.map(Path::to_owned),
        host_name: Some("test-host".into()),
        ..AgentOptions::default()
    };
    start_agent_with(net, pki, opts).await
}

pub async fn start_agent_with(net: Arc<dyn NetOps>, pki: &Pki, opts: AgentOptions) -> RunningAgent {
    let agent = Agent::new(net, opts).await.expect("agent");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let serving = agent.clone();
    let tls = pki.server_tls();
    tokio::spawn(async move {
        serving
            .serve_tcp(listener, Some(tls), async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    RunningAgent {
        addr,
        agent,
        stop: Some(tx),
    }
}

impl RunningAgent {
    /// A channel authenticated as `role` (or without a client certificate).
    pub async fn channel(
        &self,
        pki: &Pki,
        role: Option<Role>,
    ) -> Result<Channel, tonic::transport::Error> {
        Endpoint::from_shared(format!("https://{}", self.addr))
            .expect("endpoint")
            .tls_config(pki.client_tls(role))?
            .connect()
            .await
    }
}

static NETNS_SEQ: AtomicU32 = AtomicU32::new(0);

/// A private network namespace with a test-unique name, deleted on drop
/// (also when the test fails).
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(tag: &str) -> Self {
        let name = format!(
            "lh-t{}-{}-{}",
            std::process::id(),
            NETNS_SEQ.fetch_add(1, Ordering::SeqCst),
            tag
        );
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip -n NS ARGS...`, panicking with its stderr on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ip -j -d link show DEV` parsed.
    pub fn link_json(&self, dev: &str) -> serde_json::Value {
        let out = self.ip(&["-j", "-d", "link", "show", "dev", dev]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
        v[0].clone()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True when `ip` can create an 802.1Q VLAN in `ns` (an independent check of
/// the kernel, used to judge the agent's capability probe).
pub fn kernel_has_vlan(ns: &TestNetns) -> bool {
    ns.ip(&[
        "link", "add", "vprobe-p", "type", "veth", "peer", "name", "vprobe-q",
    ]);
    let ok = Command::new("ip")
        .args([
            "-n", &ns.name, "link", "add", "link", "vprobe-p", "name", "vprobe.5", "type", "vlan",
            "id", "5",
        ])
        .output()
        .expect("spawn")
        .status
        .success();
    ns.ip(&["link", "del", "vprobe-p"]);
    ok
}

/// The next Watch event, failing the test if none comes within 5 s.
pub async fn next_event(
    stream: &mut tonic::Streaming<linkherd_proto::pb::WatchInterfacesResponse>,
) -> linkherd_proto::pb::watch_interfaces_response::Event {
    use futures::StreamExt;
    tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("event within 5 s")
        .expect("stream open")
        .expect("ok")
        .event
        .expect("event")
}
