//! `linkherd-bench`: creating and deleting many macvlan endpoints through
//! the linkherd API (gRPC over mTLS to an agent), against `ip -batch` doing
//! the same kernel work, in the same run, on the same machine. Root only;
//! everything happens in namespaces the benchmark creates and removes.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::PathBuf,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use clap::Parser;
use linkherd_agent::{
    net::rtnl::Rtnl,
    server::{Agent, AgentOptions},
    tls::TlsPem,
};
use linkherd_lab::sh::{ip, ip_in};
use linkherd_proto::{model::Role, pb};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Endpoint create/delete throughput: linkherd vs ip -batch.
#[derive(Debug, Parser)]
struct Args {
    /// Endpoints per run.
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// Requests in flight at once against the agent.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
}

/// Namespaces of this run, removed on drop.
struct Bench {
    host: String,
    target: String,
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
fn endpoint(i: usize, target: &str) -> pb::MacvlanEndpoint {
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
        addresses: vec![format!(
            "10.{}.{}.{}/8",
            100 + i / 65536,
            (i / 256) % 256,
            i % 256
        )],
        ..Default::default()
    }
}

fn row(what: &str, n: usize, took: Duration) -> String {
    format!(
        "{what:<52} {n:>6} {:>10.1} ms {:>10.2} ms/each {:>9.0}/s",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / n as f64,
        n as f64 / took.as_secs_f64()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        nix::unistd::geteuid().is_root(),
        "the benchmark needs root (network namespaces)"
    );
    let n = args.count;
    let pid = std::process::id();
    let b = Bench {
        host: format!("lh-bench-{pid}-host"),
        target: format!("lh-bench-{pid}-ep"),
    };
    for ns in [&b.host, &b.target] {
        ip(&["netns", "add", ns])?;
    }
    ip_in(
        &b.host,
        &["link", "add", "up0", "type", "veth", "peer", "name", "up1"],
    )?;
    ip_in(&b.host, &["link", "set", "up0", "up"])?;
    let mut report = String::new();
    writeln!(
        report,
        "{:<52} {:>6} {:>13} {:>16} {:>11}",
        "operation", "count", "total", "per endpoint", "rate"
    )?;

    // Baseline: ip -batch, the fastest way iproute2 has. Create each macvlan
    // directly in the target namespace, then address and bring it up there.
    let mut add = String::new();
    let mut conf = String::new();
    let mut del = String::new();
    for i in 0..n {
        writeln!(
            add,
            "link add b{i} link up0 netns {} type macvlan mode bridge",
            b.target
        )?;
        writeln!(
            conf,
            "addr add 10.{}.{}.{}/8 dev b{i}\nlink set b{i} up",
            100 + i / 65536,
            (i / 256) % 256,
            i % 256
        )?;
        writeln!(del, "link del b{i}")?;
    }
    let t_add = ip_batch(Some(&b.host), &add)?;
    let t_conf = ip_batch(Some(&b.target), &conf)?;
    writeln!(
        report,
        "{}",
        row("ip -batch: create + address + up", n, t_add + t_conf)
    )?;
    let t_del = ip_batch(Some(&b.target), &del)?;
    writeln!(report, "{}", row("ip -batch: delete one by one", n, t_del))?;

    // The CNI reference macvlan plugin, when installed (Debian's
    // containernetworking-plugins): one ADD per endpoint, as a container
    // runtime calls it, started inside the host namespace.
    let cni = std::path::Path::new("/usr/lib/cni/macvlan");
    if cni.is_file() {
        let run_cni = |cmd: &str, i: usize| -> anyhow::Result<()> {
            let conf = format!(
                r#"{{"cniVersion":"1.0.0","name":"bench","type":"macvlan","master":"up0","mode":"bridge","ipam":{{"type":"static","addresses":[{{"address":"10.{}.{}.{}/8"}}]}}}}"#,
                100 + i / 65536,
                (i / 256) % 256,
                i % 256
            );
            let mut child = Command::new("ip")
                .args(["netns", "exec", &b.host])
                .arg(cni)
                .env("CNI_COMMAND", cmd)
                .env("CNI_CONTAINERID", format!("bench{i}"))
                .env("CNI_NETNS", format!("/run/netns/{}", b.target))
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
        };
        let started = Instant::now();
        for i in 0..n {
            run_cni("ADD", i)?;
        }
        writeln!(
            report,
            "{}",
            row(
                "CNI macvlan plugin: ADD (via ip netns exec)",
                n,
                started.elapsed()
            )
        )?;
        let started = Instant::now();
        for i in 0..n {
            run_cni("DEL", i)?;
        }
        writeln!(
            report,
            "{}",
            row(
                "CNI macvlan plugin: DEL (via ip netns exec)",
                n,
                started.elapsed()
            )
        )?;
    } else {
        writeln!(
            report,
            "(CNI macvlan plugin not installed: apt-get install containernetworking-plugins)"
        )?;
    }

    // linkherd: a real agent (netlink in the host namespace), gRPC over mTLS.
    let pki = tempfile::tempdir()?;
    linkherdctl::certs::init(pki.path(), 1, false)?;
    linkherdctl::certs::issue_agent(pki.path(), "bench", &["127.0.0.1".into()], 1)?;
    linkherdctl::certs::issue_client(pki.path(), "bench", Role::Admin, 1)?;
    let read = |f: &str| std::fs::read(pki.path().join(f));
    let agent = Agent::new(
        Arc::new(Rtnl::in_netns(PathBuf::from("/run/netns").join(&b.host))?),
        AgentOptions::default(),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let tls = TlsPem {
        cert: read("agent-bench.pem")?,
        key: read("agent-bench-key.pem")?,
        client_ca: read("ca.pem")?,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = agent.clone();
    tokio::spawn(async move {
        let _ = serving
            .serve_tcp(listener, Some(tls), async {
                let _ = stopped.await;
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
    let client = pb::macvlan_service_client::MacvlanServiceClient::new(ch.clone());
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (mut c, sem, target) = (client.clone(), sem.clone(), b.target.clone());
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
    writeln!(
        report,
        "{}",
        row(
            "linkherd API: create endpoint (addr, up, MAC)",
            n,
            started.elapsed()
        )
    )?;
    let links = ip_in(&b.target, &["-o", "link", "show", "type", "macvlan"])?;
    ensure!(
        links.lines().count() == n,
        "expected {n} macvlans, found {}",
        links.lines().count()
    );
    let started = Instant::now();
    let mut c = client.clone();
    let r = c
        .delete(pb::DeleteMacvlanRequest {
            network: "bench".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    writeln!(
        report,
        "{}",
        row(
            "linkherd API: delete the network (link group)",
            n,
            started.elapsed()
        )
    )?;
    ensure!(r.removed.len() == n, "removed {} of {n}", r.removed.len());
    let left = ip_in(&b.target, &["-o", "link", "show", "type", "macvlan"])?;
    ensure!(left.lines().count() == 0, "macvlans left behind: {left}");

    // The same endpoints as one HostService transaction, which is what
    // `linkherdctl apply` asks of each host (Apply, then Confirm): without
    // and with the address check; then the transaction that removes them.
    let mut host = pb::host_service_client::HostServiceClient::new(ch);
    let count = |ns: &str| -> anyhow::Result<usize> {
        Ok(ip_in(ns, &["-o", "link", "show", "type", "macvlan"])?
            .lines()
            .count())
    };
    for check_ms in [0_u32, 100] {
        let desired = pb::DesiredState {
            endpoints: (0..n).map(|i| endpoint(i, &b.target)).collect(),
            ..Default::default()
        };
        let teardown = pb::DesiredState {
            networks: vec!["bench".into()],
            ..Default::default()
        };
        for (what, d, want) in [
            (
                format!("linkherd transaction: create (address check {check_ms} ms)"),
                desired,
                n,
            ),
            ("linkherd transaction: delete".to_owned(), teardown, 0),
        ] {
            let started = Instant::now();
            let a = host
                .apply(pb::ApplyRequest {
                    desired: Some(d),
                    expected_generation: 0,
                    confirm_timeout_seconds: 600,
                    address_check_ms: check_ms,
                })
                .await?
                .into_inner();
            host.confirm(pb::ConfirmRequest { txn_id: a.txn_id })
                .await?;
            writeln!(report, "{}", row(&what, n, started.elapsed()))?;
            ensure!(count(&b.target)? == want, "{what}: not {want} macvlans");
        }
    }
    let _ = stop.send(());
    print!("{report}");
    Ok(())
}
