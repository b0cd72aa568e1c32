//! What the agent's suites share (feature `fake`): the test PKI and the TLS
//! settings built from it, an in-process agent on a loopback mTLS port and
//! channels to it, a fake kernel with a NIC, the audit log read back, Watch
//! events, applies, and TCP between private network namespaces.

use std::{
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use super::{InProcessAgent, start};
use crate::{
    app::AgentOptions,
    net::{NetOps, netns::NetnsGuard},
    transport::tls::TlsPem,
};
use linkherd_proto::model::Role;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The test PKI (an agent certificate for 127.0.0.1, a client per role),
/// with the TLS settings the agent and its clients take from it.
#[derive(Debug)]
pub struct Pki(pub test_support::Pki);

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Self {
        Self(test_support::Pki::new())
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.path(file)
    }

    pub fn server_tls(&self) -> TlsPem {
        TlsPem {
            cert: self.0.read("agent-agent.pem"),
            key: self.0.read("agent-agent-key.pem"),
            client_ca: self.0.read("ca.pem"),
        }
    }

    /// TLS for a client named after `role`, or with no client certificate.
    pub fn client_tls(&self, role: Option<Role>) -> ClientTlsConfig {
        let mut cfg =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.0.read("ca.pem")));
        if let Some(role) = role {
            cfg = cfg.identity(Identity::from_pem(
                self.0.read(&format!("client-{role}.pem")),
                self.0.read(&format!("client-{role}-key.pem")),
            ));
        }
        cfg
    }
}

/// An agent serving mTLS on an ephemeral loopback port; stops on drop.
#[derive(Debug)]
pub struct RunningAgent(InProcessAgent);

impl std::ops::Deref for RunningAgent {
    type Target = InProcessAgent;
    fn deref(&self) -> &InProcessAgent {
        &self.0
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
    RunningAgent(
        start(net, opts, pki.server_tls())
            .await
            .expect("in-process agent"),
    )
}

/// A plaintext channel over the agent's unix socket at `path`.
pub async fn unix_channel(path: &Path) -> Channel {
    let path = path.to_owned();
    // The URI is required by the API but unused by the connector.
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect over the unix socket")
}

/// A fake kernel with one NIC, `ens192` (a veth whose peer is `peer0`).
pub fn fake_with_nic() -> Arc<crate::net::fake::FakeKernel> {
    let fake = Arc::new(crate::net::fake::FakeKernel::new());
    fake.add_veth("ens192", "peer0").expect("veth");
    fake
}

/// Endpoint `name` of network `mac_net` on `ens192` (bridge mode), in a
/// named namespace of its own name, with address `ip`.
pub fn endpoint(name: &str, ip: &str) -> linkherd_proto::pb::MacvlanEndpoint {
    use linkherd_proto::pb;
    pb::MacvlanEndpoint {
        network: "mac_net".into(),
        name: name.into(),
        parent: "ens192".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        netns: Some(pb::NetnsTarget {
            target: Some(pb::netns_target::Target::Name(name.into())),
        }),
        addresses: vec![ip.into()],
        ..Default::default()
    }
}

/// The audit records of `action` in the state directory `dir`, once there
/// are at least `n` (the audit log is written on its own thread, behind the
/// answers; after 5 s, whatever is there).
pub async fn audit_records(dir: &Path, action: &str, n: usize) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(dir.join("audit.log")).unwrap_or_default();
        lines = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["action"] == action)
            .collect();
        if lines.len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    lines
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

/// The host's generation now, for an Apply's `expected_generation`.
pub async fn generation(
    host: &mut linkherd_proto::pb::host_service_client::HostServiceClient<Channel>,
) -> u64 {
    host.get_state(linkherd_proto::pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner()
        .generation
}

/// Whether a TCP connection from namespace `from` reaches `ip:port` served
/// in namespace `to` (each side on its own thread inside its namespace).
pub fn tcp_reaches(from: &Path, to: &Path, ip: IpAddr, port: u16) -> bool {
    let addr = SocketAddr::new(ip, port);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let to = to.to_owned();
    let server = std::thread::spawn(move || {
        let _ns = NetnsGuard::enter(&to).expect("enter server netns");
        let listener = TcpListener::bind(addr).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        ready_tx.send(()).expect("ready");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if listener.accept().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    ready_rx.recv().expect("server ready");
    let from = from.to_owned();
    let ok = std::thread::spawn(move || {
        let _ns = NetnsGuard::enter(&from).expect("enter client netns");
        TcpStream::connect_timeout(&addr, Duration::from_millis(1500)).is_ok()
    })
    .join()
    .expect("client");
    let _ = server.join();
    ok
}

/// Applies `desired` against the host's current generation and confirms
/// it; the changes applied.
pub async fn apply_confirmed(
    host: &mut linkherd_proto::pb::host_service_client::HostServiceClient<Channel>,
    desired: linkherd_proto::pb::DesiredState,
) -> Vec<linkherd_proto::pb::Change> {
    use linkherd_proto::pb;
    let generation = host
        .get_state(pb::GetStateRequest {})
        .await
        .expect("state")
        .into_inner()
        .generation;
    let a = host
        .apply(pb::ApplyRequest {
            desired: Some(desired),
            expected_generation: generation,
            confirm_timeout_seconds: 60,
            ..Default::default()
        })
        .await
        .expect("apply")
        .into_inner();
    host.confirm(pb::ConfirmRequest { txn_id: a.txn_id })
        .await
        .expect("confirm");
    a.applied
}

/// One call to a Docker plugin socket at `sock`, in HTTP/1.0 (the server
/// closes when it has answered): the status and the JSON body (`Null` when
/// it is not JSON).
pub async fn plugin_call(sock: &Path, method: &str, body: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(sock)
        .await
        .expect("connect");
    let req = format!(
        "POST /{method} HTTP/1.0\r\nHost: plugin\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out);
    let status = text[9..12].parse().expect("status");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// An agent started with `--adopt` on the state directory `dir`, noting
/// the namespaces it makes in `run`.
pub async fn start_adopting(
    net: Arc<dyn NetOps>,
    pki: &Pki,
    (dir, run): (&Path, &Path),
) -> RunningAgent {
    let opts = AgentOptions {
        state_dir: Some(dir.to_owned()),
        run_dir: Some(run.to_owned()),
        adopt: true,
        ..AgentOptions::default()
    };
    start_agent_with(net, pki, opts).await
}

/// (network, name) of every endpoint `agent` lists, asked as an admin.
pub async fn listed_endpoints(agent: &RunningAgent, pki: &Pki) -> Vec<(String, String)> {
    use linkherd_proto::pb;
    let ch = agent.channel(pki, Some(Role::Admin)).await.expect("admin");
    let list = pb::macvlan_service_client::MacvlanServiceClient::new(ch)
        .list(pb::ListMacvlansRequest {})
        .await
        .expect("list")
        .into_inner();
    list.endpoints
        .into_iter()
        .map(|e| (e.network, e.name))
        .collect()
}
