//! `linkherd-bench`: creating and deleting many macvlan endpoints through
//! the linkherd API (gRPC over mTLS to an agent), against `ip -batch` and
//! the CNI macvlan plugin doing the same kernel work, in the same run, on
//! the same machine; then Watch latency and the agent's memory. Root only;
//! everything happens in namespaces the benchmark creates and removes.

mod cni;
mod converge;
mod docker;
mod footprint;
mod phases;
mod report;
mod watch;

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use clap::Parser;
use linkherd_agent::{
    app::{Agent, AgentOptions},
    net::rtnl::Rtnl,
    transport::tls::TlsPem,
};
use linkherd_lab::sh::{ip, ip_in};
use linkherd_proto::{model::Role, pb};
use phases::Phases;
use report::Report;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tracing_subscriber::layer::SubscriberExt;

/// Endpoint create/delete throughput: linkherd vs ip -batch.
#[derive(Debug, Parser)]
struct Args {
    /// Endpoints per run.
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// Requests in flight at once against the agent.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Print the results as JSON (for scripts) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Namespaces of this run, removed on drop.
pub(crate) struct Bench {
    pub(crate) host: String,
    pub(crate) target: String,
    /// The in-process agent's time per step.
    phases: Phases,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for ns in [&self.target, &self.host] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

fn ip_batch(ns: Option<&str>, lines: &str) -> anyhow::Result<Duration> {
    let mut file = tempfile::NamedTempFile::new()?;
    file.write_all(lines.as_bytes())?;
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let started = Instant::now();
    let out = cmd.args(["-batch"]).arg(file.path()).output()?;
    let took = started.elapsed();
    ensure!(
        out.status.success(),
        "ip -batch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

/// Endpoint `e<i>` of network `bench` on `up0`, in namespace `target`, with
/// its own address.
pub(crate) fn endpoint(i: usize, target: &str) -> pb::MacvlanEndpoint {
    pb::MacvlanEndpoint {
        network: "bench".into(),
        name: format!("e{i}"),
        parent: "up0".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        netns: Some(pb::NetnsTarget {
            target: Some(pb::netns_target::Target::Path(format!(
                "/run/netns/{target}"
            ))),
        }),
        ifname: format!("e{i}"),
        addresses: vec![address(i)],
        ..Default::default()
    }
}

/// The address of endpoint `i`: unique up to 2^24 endpoints.
fn address(i: usize) -> String {
    format!("10.{}.{}.{}/8", 100 + i / 65536, (i / 256) % 256, i % 256)
}

/// Macvlans in namespace `ns`.
pub(crate) fn macvlans(ns: &str) -> anyhow::Result<usize> {
    Ok(ip_in(ns, &["-o", "link", "show", "type", "macvlan"])?
        .lines()
        .count())
}

/// Baseline: ip -batch, the fastest way iproute2 has. Each macvlan is
/// created directly in the target namespace, then addressed and brought up
/// there; then deleted one by one.
fn ip_batch_rows(b: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let (mut add, mut conf, mut del) = (String::new(), String::new(), String::new());
    for i in 0..report.count {
        writeln!(
            add,
            "link add b{i} link up0 netns {} type macvlan mode bridge",
            b.target
        )?;
        writeln!(conf, "addr add {} dev b{i}\nlink set b{i} up", address(i))?;
        writeln!(del, "link del b{i}")?;
    }
    let t_add = ip_batch(Some(&b.host), &add)?;
    let t_conf = ip_batch(Some(&b.target), &conf)?;
    report.row("ip -batch: create + address + up", t_add + t_conf);
    let t_del = ip_batch(Some(&b.target), &del)?;
    report.row("ip -batch: delete one by one", t_del);
    Ok(())
}

/// One CNI plugin call for endpoint `i` with configuration `conf`, as a
/// container runtime makes it, started inside the host namespace.
pub(crate) fn run_cni(
    cni: &Path,
    (host, target): (&str, &str),
    cmd: &str,
    i: usize,
    conf: &str,
) -> anyhow::Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", host])
        .arg(cni)
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", format!("bench{i}"))
        .env("CNI_NETNS", format!("/run/netns/{target}"))
        .env("CNI_IFNAME", format!("c{i}"))
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(conf.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "CNI {cmd}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

/// The CNI reference macvlan plugin, when installed (Debian's
/// containernetworking-plugins): one ADD per endpoint, then one DEL each;
/// with host-local IPAM (allocating, as linkherd-cni does; its files in a
/// directory of this run) and with static IPAM (the address given).
fn cni_rows(b: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let cni = Path::new("/usr/lib/cni/macvlan");
    if !cni.is_file() {
        report.note(
            "(CNI macvlan plugin not installed: apt-get install containernetworking-plugins)",
        );
        return Ok(());
    }
    let data = tempfile::tempdir()?;
    let host_local = format!(
        r#"{{"type":"host-local","ranges":[[{{"subnet":"10.129.0.0/16"}}]],"dataDir":"{}"}}"#,
        data.path().display()
    );
    for (name, allocating) in [("host-local", true), ("static", false)] {
        for cmd in ["ADD", "DEL"] {
            let started = Instant::now();
            for i in 0..report.count {
                let ipam = if allocating {
                    host_local.clone()
                } else {
                    format!(
                        r#"{{"type":"static","addresses":[{{"address":"{}"}}]}}"#,
                        address(i)
                    )
                };
                let conf = format!(
                    r#"{{"cniVersion":"1.0.0","name":"bench","type":"macvlan","master":"up0","mode":"bridge","ipam":{ipam}}}"#
                );
                run_cni(cni, (&b.host, &b.target), cmd, i, &conf)?;
            }
            report.row(
                &format!("CNI macvlan plugin + {name}: {cmd} (via ip netns exec)"),
                started.elapsed(),
            );
        }
    }
    Ok(())
}

/// A real agent (netlink in the host namespace) serving gRPC over mTLS on
/// loopback, and an admin channel to it.
async fn start_agent(b: &Bench) -> anyhow::Result<(InProcess, Channel)> {
    let pki = tempfile::tempdir()?;
    linkherdctl::certs::init(pki.path(), 1, false)?;
    linkherdctl::certs::issue_agent(pki.path(), "bench", &["127.0.0.1".into()], 1)?;
    linkherdctl::certs::issue_client(pki.path(), "bench", Role::Admin, 1)?;
    let read = |f: &str| std::fs::read(pki.path().join(f));
    // A state directory as every real agent has: records, the undo
    // journal and the audit log are written (and fsynced) as they would be.
    let state = tempfile::tempdir()?;
    let agent = Agent::new(
        Arc::new(Rtnl::in_netns(PathBuf::from("/run/netns").join(&b.host))?),
        AgentOptions {
            state_dir: Some(state.path().to_owned()),
            ..AgentOptions::default()
        },
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let tls = TlsPem {
        cert: read("agent-bench.pem")?,
        key: read("agent-bench-key.pem")?,
        client_ca: read("ca.pem")?,
    };
    let agent = Arc::new(agent);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_unix, unix_stopped) = tokio::sync::oneshot::channel::<()>();
    let on_tcp = agent.clone();
    tokio::spawn(async move {
        let _ = on_tcp
            .serve_tcp(listener, Some(tls), async {
                let _ = stopped.await;
            })
            .await;
    });
    // The unix socket the CNI plugin talks to, as on a real host.
    let socket = state.path().join("agent.sock");
    let unix = tokio::net::UnixListener::bind(&socket)?;
    let on_unix = agent.clone();
    tokio::spawn(async move {
        let _ = on_unix
            .serve_unix(unix, async {
                let _ = unix_stopped.await;
            })
            .await;
    });
    // Docker's driver `linkherd`, for the engine `docker::rows` starts.
    let plugins = state.path().join("plugins");
    let docker = linkherd_agent::transport::unix::bind_unix(&plugins.join("linkherd.sock"))?;
    let (stop_docker, docker_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = agent
            .serve_docker(docker, async {
                let _ = docker_stopped.await;
            })
            .await;
    });
    let ch = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read("ca.pem")?))
                .identity(Identity::from_pem(
                    read("client-bench.pem")?,
                    read("client-bench-key.pem")?,
                )),
        )?
        .connect()
        .await
        .context("connect to the bench agent")?;
    Ok((
        InProcess {
            stop: vec![stop, stop_unix, stop_docker],
            socket,
            plugins,
            _state: state,
        },
        ch,
    ))
}

/// Stops the benchmark's agent when dropped (and removes its state).
struct InProcess {
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Its unix socket.
    socket: PathBuf,
    /// The directory of its Docker plugin socket.
    plugins: PathBuf,
    _state: tempfile::TempDir,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
    }
}

/// Endpoints `0..n` of network `bench` in namespace `target` through
/// `client`, one request each, `parallel` in flight.
pub(crate) async fn create_endpoints(
    client: &pb::macvlan_service_client::MacvlanServiceClient<Channel>,
    target: &str,
    n: usize,
    parallel: usize,
) -> anyhow::Result<()> {
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (mut c, sem, target) = (client.clone(), sem.clone(), target.to_owned());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            c.create(pb::CreateMacvlanRequest {
                endpoint: Some(endpoint(i, &target)),
                create_netns: false,
            })
            .await?;
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// Endpoints one request each, `parallel` in flight; then the network
/// deleted in one request (a link group per namespace).
async fn api_rows(
    ch: &Channel,
    b: &Bench,
    parallel: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = report.count;
    let client = pb::macvlan_service_client::MacvlanServiceClient::new(ch.clone());
    b.phases.take(n);
    let started = Instant::now();
    create_endpoints(&client, &b.target, n, parallel).await?;
    report.row(
        "linkherd API: create endpoint (addr, up, MAC)",
        started.elapsed(),
    );
    report.phases(b.phases.take(n));
    ensure!(macvlans(&b.target)? == n, "expected {n} macvlans");
    let started = Instant::now();
    let r = client
        .clone()
        .delete(pb::DeleteMacvlanRequest {
            network: "bench".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    report.row(
        "linkherd API: delete the network (link group)",
        started.elapsed(),
    );
    ensure!(r.removed.len() == n, "removed {} of {n}", r.removed.len());
    ensure!(macvlans(&b.target)? == 0, "macvlans left behind");
    Ok(())
}

/// The same endpoints as one HostService transaction, which is what
/// `linkherdctl apply` asks of each host (Apply, then Confirm): without and
/// with the address check; then the transaction that removes them.
async fn txn_rows(ch: &Channel, b: &Bench, report: &mut Report) -> anyhow::Result<()> {
    let n = report.count;
    let mut host = pb::host_service_client::HostServiceClient::new(ch.clone());
    for check_ms in [0_u32, 100] {
        let create = pb::DesiredState {
            endpoints: (0..n).map(|i| endpoint(i, &b.target)).collect(),
            ..Default::default()
        };
        let teardown = pb::DesiredState {
            networks: vec!["bench".into()],
            ..Default::default()
        };
        for (what, desired, want) in [
            (
                format!("linkherd transaction: create (address check {check_ms} ms)"),
                create,
                n,
            ),
            ("linkherd transaction: delete".to_owned(), teardown, 0),
        ] {
            b.phases.take(n);
            let started = Instant::now();
            let generation = host
                .get_state(pb::GetStateRequest {})
                .await?
                .into_inner()
                .generation;
            let a = host
                .apply(pb::ApplyRequest {
                    desired: Some(desired),
                    expected_generation: generation,
                    confirm_timeout_seconds: 600,
                    address_check_ms: check_ms,
                })
                .await?
                .into_inner();
            host.confirm(pb::ConfirmRequest { txn_id: a.txn_id })
                .await?;
            report.row(&what, started.elapsed());
            report.phases(b.phases.take(n));
            ensure!(macvlans(&b.target)? == want, "{what}: not {want} macvlans");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        nix::unistd::geteuid().is_root(),
        "the benchmark needs root (network namespaces)"
    );
    let phases = Phases::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(phases.layer()))?;
    let pid = std::process::id();
    let b = Bench {
        host: format!("lh-bench-{pid}-host"),
        target: format!("lh-bench-{pid}-ep"),
        phases,
    };
    for ns in [&b.host, &b.target] {
        ip(&["netns", "add", ns])?;
    }
    ip_in(
        &b.host,
        &["link", "add", "up0", "type", "veth", "peer", "name", "up1"],
    )?;
    ip_in(&b.host, &["link", "set", "up0", "up"])?;
    let mut report = Report::new(args.count);
    ip_batch_rows(&b, &mut report)?;
    cni_rows(&b, &mut report)?;
    let (agent, ch) = start_agent(&b).await?;
    api_rows(&ch, &b, args.parallel, &mut report).await?;
    txn_rows(&ch, &b, &mut report).await?;
    cni::rows(&ch, &agent.socket, &b, &mut report).await?;
    docker::rows(&ch, &agent.plugins, &b, &mut report).await?;
    converge::rows(&b, &mut report).await?;
    let parent = parent_index(&b.host)?;
    let host_ns = PathBuf::from("/run/netns").join(&b.host);
    report.watch = Some(watch::latency(&ch, &host_ns, parent, args.count).await?);
    report.memory = Some(footprint::memory(&b.host, &b.target, args.count).await?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

/// The index of the benchmark's parent `up0` in namespace `ns`.
fn parent_index(ns: &str) -> anyhow::Result<u32> {
    let out = ip_in(ns, &["-j", "link", "show", "up0"])?;
    let links: serde_json::Value = serde_json::from_str(&out)?;
    links[0]["ifindex"]
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .context("ip -j link show up0: no ifindex")
}
