//! `linkherd-lab`: bring a local fleet of linkherd hosts up and down, or run
//! the end-to-end demo on one.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use linkherd_lab::{self as lab, HostSpec, LabState};

/// A local fleet of linkherd hosts, each running a real agent.
mod demo;

#[derive(Debug, Parser)]
#[command(name = "linkherd-lab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// Hosts are network namespaces on this kernel.
    Netns,
    /// Hosts are QEMU guests with a kernel that has 802.1Q.
    Vm,
    /// netns when this kernel has 802.1Q, else vm.
    Auto,
}

impl BackendArg {
    fn resolve(self) -> lab::Backend {
        match self {
            BackendArg::Netns => lab::Backend::Netns,
            BackendArg::Vm => lab::Backend::Vm,
            BackendArg::Auto => lab::Backend::auto(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create the hosts, start their agents, write DIR/ctl.toml.
    Up {
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendArg,
        /// Comma-separated host names.
        #[arg(long, value_delimiter = ',', default_value = "no1,no2")]
        hosts: Vec<String>,
        #[arg(long, default_value_os_t = lab::netns_default_dir())]
        dir: PathBuf,
        /// Tear down a lab already in DIR first.
        #[arg(long)]
        replace: bool,
    },
    /// Stop the agents and remove everything the lab created.
    Down {
        #[arg(long, default_value_os_t = lab::netns_default_dir())]
        dir: PathBuf,
    },
    /// Show the lab's hosts and how to reach them.
    Status {
        #[arg(long, default_value_os_t = lab::netns_default_dir())]
        dir: PathBuf,
    },
    /// Print a fleet spec (e.g. deploy/examples/seed-vlan.yaml) with its
    /// placeholder agent addresses (`https://HOST.lab:7443`) replaced by
    /// this lab's; on a netns lab, also write a CNI network list for each
    /// of its networks open to containers, per host, into DIR/cni/HOST.
    Spec {
        #[arg(long, default_value_os_t = lab::netns_default_dir())]
        dir: PathBuf,
        /// The spec to adapt.
        file: PathBuf,
    },
    /// Run a shell script inside a lab host and exit with its status: in a
    /// vm guest through its console (busybox sh), in a netns host with `ip
    /// netns exec`. For a look inside, e.g. `sh no1 'ip -d link'`.
    Sh {
        #[arg(long, default_value_os_t = lab::netns_default_dir())]
        dir: PathBuf,
        /// How long the script may run.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// The host.
        host: String,
        /// The script.
        script: String,
    },
    /// The vm backend's wire (run by `up`; not for direct use).
    #[command(hide = true)]
    Hub {
        #[arg(long)]
        port_file: PathBuf,
        #[arg(long)]
        pcap: PathBuf,
    },
    /// Soak one agent: a netns lab of two hosts, then for SECONDS concurrent
    /// Watch streams, probes, reads and applies within the caps plus
    /// clients over them on purpose; prints requests served, p50/p99
    /// latency, errors and the agent's RSS, fds and threads before and
    /// after. Exit 1 on any unexpected error or growth over the bounds.
    Soak {
        #[arg(long, default_value_os_t = lab::netns_default_dir().join("soak"))]
        dir: PathBuf,
        /// How long the load runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Leave the lab running afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Power-cycle a host: its agent killed (SIGKILL), every link and
    /// namespace of the host gone as after a reboot (its NIC stays), the
    /// agent started again with its state directory. Returns when the agent
    /// answers — it has restored the host by itself by then. netns backend.
    Reboot {
        #[arg(long, default_value_os_t = lab::netns_default_dir())]
        dir: PathBuf,
        /// The host.
        host: String,
    },
    /// Stop a host's agent (SIGTERM), leaving what it made.
    Stop {
        #[arg(long, default_value_os_t = lab::netns_default_dir())]
        dir: PathBuf,
        host: String,
    },
    /// Start a host's agent again, with the same state directory; returns
    /// when it answers.
    Start {
        #[arg(long, default_value_os_t = lab::netns_default_dir())]
        dir: PathBuf,
        host: String,
    },
    /// Bring up a lab, drive it with linkherdctl, check the results, tear down.
    Demo {
        #[arg(long, default_value_os_t = lab::netns_default_dir())]
        dir: PathBuf,
        /// Leave the lab running afterwards.
        #[arg(long)]
        keep: bool,
    },
}

pub(crate) fn print_status(state: &LabState) {
    println!(
        "lab {} ({}) in {}",
        state.id,
        state.backend,
        state.dir.display()
    );
    for h in &state.hosts {
        println!(
            "  {:<6} nic {:<7} netns {:<14} agent {} (pid {})",
            h.name,
            h.nic,
            h.netns,
            h.agent_url,
            h.pid.map_or("-".into(), |p| p.to_string())
        );
    }
    println!(
        "try:  linkherdctl --config {} --host {} if list",
        state.ctl_config().display(),
        state.hosts.first().map_or("no1", |h| h.name.as_str())
    );
    if state.backend == "netns" {
        println!("{}", lab::containers::usage(state));
    }
}

/// `soak`: a lab of its own, the load, the report; the lab goes unless
/// `keep`.
async fn run_soak(dir: &Path, seconds: u64, json: bool, keep: bool) -> anyhow::Result<ExitCode> {
    let state = lab::up(dir, &HostSpec::seed(), lab::Backend::Netns, true).await?;
    let opts = lab::soak::SoakOptions {
        duration: std::time::Duration::from_secs(seconds),
        ..Default::default()
    };
    let report = lab::soak::run(&state, opts).await;
    if !keep {
        lab::down(&state.dir)?;
    }
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    let problems = report.problems();
    for p in &problems {
        eprintln!("soak failed: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What `reboot`, `stop` and `start` do to a host.
enum Power {
    Reboot,
    Stop,
    Start,
}

async fn power(dir: &std::path::Path, host: &str, what: Power) -> anyhow::Result<()> {
    let mut state = loaded(dir)?;
    match what {
        Power::Reboot => {
            lab::reboot(&mut state, host).await?;
            eprintln!("{host}: rebooted; its agent answers again");
        }
        Power::Stop => {
            lab::stop_agent(&mut state, host)?;
            eprintln!("{host}: agent stopped");
        }
        Power::Start => {
            lab::restart_agent(&mut state, host).await?;
            eprintln!("{host}: agent started");
        }
    }
    Ok(())
}

/// The lab in `dir`, or an error saying there is none.
fn loaded(dir: &std::path::Path) -> anyhow::Result<LabState> {
    match LabState::load(&dir.canonicalize().unwrap_or(dir.to_owned()))? {
        Some(s) => Ok(s),
        None => bail!("no lab in {}", dir.display()),
    }
}

/// `sh HOST SCRIPT`: the script's output on stdout, its status as ours.
fn run_sh(
    state: &LabState,
    host: &str,
    script: &str,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let Some(h) = state.host(host) else {
        bail!("no host {host} in the lab in {}", state.dir.display());
    };
    let status = if h.vm_index.is_some() {
        let ran = lab::vm::shell::run(state, host, script, timeout)?;
        print!("{}", ran.output);
        ran.status
    } else {
        std::process::Command::new("ip")
            .args(["netns", "exec", &h.netns, "sh", "-c", script])
            .status()?
            .code()
            .unwrap_or(1)
    };
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)))
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Up {
            backend,
            hosts,
            dir,
            replace,
        } => {
            let t = Instant::now();
            let state = lab::up(
                &dir,
                &HostSpec::from_names(&hosts),
                backend.resolve(),
                replace,
            )
            .await?;
            println!("lab up in {:.2} s", t.elapsed().as_secs_f64());
            print_status(&state);
        }
        Cmd::Down { dir } => {
            let t = Instant::now();
            lab::down(&dir)?;
            println!(
                "lab in {} is down ({:.2} s)",
                dir.display(),
                t.elapsed().as_secs_f64()
            );
        }
        Cmd::Status { dir } => match LabState::load(&dir.canonicalize().unwrap_or(dir.clone()))? {
            Some(state) => print_status(&state),
            None => bail!("no lab in {}", dir.display()),
        },
        Cmd::Spec { dir, file } => {
            let Some(state) = LabState::load(&dir.canonicalize().unwrap_or(dir.clone()))? else {
                bail!("no lab in {}", dir.display());
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let filled = state.fleet_spec(&text);
            print!("{filled}");
            // Runtimes on the lab find the spec's container networks.
            if state.backend == "netns" {
                let spec =
                    linkherdctl::spec::FleetSpec::parse(&filled, &file.display().to_string())?;
                for f in lab::containers::write_networks(&state, &spec)? {
                    eprintln!("wrote {}", f.display());
                }
            }
        }
        Cmd::Sh {
            dir,
            timeout_secs,
            host,
            script,
        } => {
            let Some(state) = LabState::load(&dir.canonicalize().unwrap_or(dir.clone()))? else {
                bail!("no lab in {}", dir.display());
            };
            return run_sh(&state, &host, &script, Duration::from_secs(timeout_secs));
        }
        Cmd::Reboot { dir, host } => power(&dir, &host, Power::Reboot).await?,
        Cmd::Stop { dir, host } => power(&dir, &host, Power::Stop).await?,
        Cmd::Start { dir, host } => power(&dir, &host, Power::Start).await?,
        Cmd::Hub { port_file, pcap } => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            std::fs::write(&port_file, listener.local_addr()?.port().to_string())?;
            lab::vm::hub::serve(listener, &pcap)?;
        }
        Cmd::Demo { dir, keep } => demo::run_demo(&dir, keep).await?,
        Cmd::Soak {
            dir,
            seconds,
            json,
            keep,
        } => return run_soak(&dir, seconds, json, keep).await,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// docs/man/linkherd-lab.1 is generated from these commands; it must not
    /// drift from them.
    #[test]
    fn the_man_page_is_current() {
        let mut page = Vec::new();
        clap_mangen::Man::new(super::Cli::command())
            .render(&mut page)
            .expect("render");
        test_support::generated::check(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man/linkherd-lab.1"),
            &page,
            "LINKHERD_BLESS=1 cargo test -p linkherd-lab --bin linkherd-lab",
        );
    }
}
