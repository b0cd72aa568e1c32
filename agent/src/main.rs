//! `linkherd-agent`: serves the linkherd.v1 API for this host over mTLS and a
//! local unix socket.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use linkherd_agent::{
    app::{Agent, AgentListener, AgentOptions, ServeError},
    config::{Flags, LogFormat, Settings},
    net::rtnl::Rtnl,
    transport::{grpc::Listener, unix::bind_unix},
};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tracing_subscriber::EnvFilter;

/// linkherd host agent: interfaces, promiscuous mode, VLAN and macvlan over
/// mTLS gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    flags: Flags,
    /// Once, at this start: take back the endpoints that this agent's marks
    /// name in the named namespaces it made (noted in --run-dir) and that
    /// its state directory no longer holds (after losing it). Marks are no proof — root in a
    /// namespace can write them — so use it only for that, and read what
    /// was taken in the audit log. Never a setting: no variable, no key.
    #[arg(long)]
    adopt: bool,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("LINKHERD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::resolve(cli.flags)?;
    init_logging(settings.log_format);
    // Before any thread exists: every thread and socket inherits it.
    if let Some(ns) = &settings.netns {
        linkherd_agent::net::netns::enter_for_good(ns)
            .with_context(|| format!("entering network namespace {}", ns.display()))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lh-grpc")
        .build()
        .context("starting the runtime")?;
    let res = rt.block_on(run(settings, cli.adopt));
    // The shutdown bound is kept in `run`; a thread still blocked (a
    // namespace open, a netlink call) must not hold the exit beyond it.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    res
}

async fn run(settings: Settings, adopt: bool) -> anyhow::Result<()> {
    let net = Arc::new(Rtnl::new().context("opening netlink")?);
    let agent = Agent::new(
        net,
        AgentOptions {
            state_dir: Some(settings.state_dir.clone()),
            host_name: settings.name.clone(),
            netns_prefix: settings.netns_prefix.clone(),
            adopt,
            run_dir: Some(settings.run_dir.clone()),
            limits: settings.limits,
            reconcile: settings.reconcile,
            faults: Default::default(),
        },
    )
    .await?;
    // The start pass ran in `new`: what a reboot undid is back before
    // anything is served. The rest runs beside the listeners.
    let _reconciler = agent.spawn_reconciler();

    // The Docker plugin's start-time reap finishes before anything is
    // served: an agent that answers has done it.
    if settings.docker_plugin.is_some() {
        agent.docker_plugin().await?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    spawn_listeners(&settings, &agent, stop_rx, &mut tasks).await?;
    // Under systemd (Type=notify): ready only now, after the restore and
    // with every listener bound, so that units ordered after this one
    // (container runtimes) start on a host that is as it was set.
    notify(&[sd_notify::NotifyState::Ready]);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        _ = term.recv() => tracing::info!("terminated; shutting down"),
        Some(res) = tasks.join_next() => {
            res.context("listener task")??;
            anyhow::bail!("a listener stopped unexpectedly");
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    let mut failed = Ok(());
    let listeners = async {
        while let Some(res) = tasks.join_next().await {
            if let Err(e) = res.context("listener task").and_then(|r| Ok(r?)) {
                failed = Err(e);
            }
        }
    };
    let drained = agent.drain(listeners).await;
    let grace = settings.limits.shutdown_grace;
    if !drained.listeners_done || drained.mutations_left > 0 {
        tracing::warn!(
            ?grace,
            mutations = drained.mutations_left,
            "requests still in flight after the shutdown grace; stopping anyway \
             (a pending transaction is rolled back at the next start)"
        );
    } else {
        tracing::info!("every request in flight finished; stopped");
    }
    // Gone with the agent: dockerd then fails a call at once, instead of
    // waiting on a socket nobody serves.
    for path in [&settings.socket, &settings.docker_plugin]
        .into_iter()
        .flatten()
    {
        let _ = std::fs::remove_file(path);
    }
    failed
}

/// Tells systemd (when it started the agent with a notification socket);
/// a failure is logged, never fatal: the agent serves either way.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Binds every configured listener and serves each in `tasks` until `stop`
/// turns true.
async fn spawn_listeners(
    settings: &Settings,
    agent: &Agent,
    stop: watch::Receiver<bool>,
    tasks: &mut JoinSet<Result<(), ServeError>>,
) -> anyhow::Result<()> {
    for listener in bind_listeners(settings).await? {
        let (agent, mut stop) = (agent.clone(), stop.clone());
        tasks.spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            agent.serve(listener, stopped).await
        });
    }
    Ok(())
}

/// The listeners the settings ask for, bound (and logged), in one table:
/// the API on TCP (mTLS, or plaintext on loopback) and on the local socket,
/// Docker's driver socket, the loopback `/healthz`.
async fn bind_listeners(settings: &Settings) -> anyhow::Result<Vec<AgentListener>> {
    let mut bound = Vec::new();
    if let Some(addr) = settings.listen {
        let tls = settings.tls.as_ref().map(|t| t.load()).transpose()?;
        let tcp = bind_tcp(addr).await?;
        bound.push(AgentListener::Grpc(match tls {
            Some(pem) => {
                tracing::info!(%addr, mode = "mtls", "listening");
                Listener::Mtls(tcp, pem)
            }
            None => {
                tracing::info!(%addr, mode = "INSECURE plaintext (loopback only)", "listening");
                Listener::InsecureLoopback(tcp)
            }
        }));
    }
    if let Some(path) = &settings.socket {
        tracing::info!(socket = %path.display(), "listening");
        bound.push(AgentListener::Grpc(Listener::Unix(bind_socket(path)?)));
    }
    if let Some(path) = &settings.docker_plugin {
        tracing::info!(socket = %path.display(), "serving Docker's network and IPAM driver protocol");
        bound.push(AgentListener::Docker(bind_socket(path)?));
    }
    if let Some(addr) = settings.health_listen {
        tracing::info!(%addr, "serving GET /healthz (plain HTTP, loopback)");
        bound.push(AgentListener::Health(bind_tcp(addr).await?));
    }
    Ok(bound)
}

async fn bind_tcp(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

fn bind_socket(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    bind_unix(path).with_context(|| format!("binding {}", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// docs/man/linkherd-agent.8 is generated from these flags; it must not
    /// drift from them.
    #[test]
    fn the_man_page_is_current() {
        let mut page = Vec::new();
        clap_mangen::Man::new(super::Cli::command())
            .section("8")
            .render(&mut page)
            .expect("render");
        test_support::generated::check(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man/linkherd-agent.8"),
            &page,
            "LINKHERD_BLESS=1 cargo test -p linkherd-agent --bin linkherd-agent",
        );
    }
}
