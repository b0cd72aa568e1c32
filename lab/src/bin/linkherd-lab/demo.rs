//! The main job: the source document's scenarios on local labs, echoed as
//! a shell transcript and checked as they go (`linkherd-lab demo`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::print_status;

use anyhow::{Context, ensure};
use linkherd_lab::{self as lab, HostSpec, LabState, bins, fleet::macvlan_create, sh::ip_in};

/// One linkherdctl invocation of the demo, echoed like a shell transcript.
struct Ctl {
    bin: PathBuf,
    config: PathBuf,
}

impl Ctl {
    /// Runs and echoes one command: (exit status, stdout).
    fn invoke(&self, host: &str, args: &[&str]) -> anyhow::Result<(i32, String)> {
        println!("$ linkherdctl --host {host} {}", args.join(" "));
        let out = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(["--host", host])
            .args(args)
            .output()
            .context("running linkherdctl")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), stdout))
    }

    /// A fleet command (no `--host`: the spec names the hosts); progress
    /// goes straight to the terminal. (exit status, stdout)
    fn fleet(&self, args: &[&str]) -> anyhow::Result<(i32, String)> {
        use std::io::BufRead;
        println!("$ linkherdctl {}", args.join(" "));
        let mut child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .context("running linkherdctl")?;
        // Line by line, so the plan, the progress and the matrix appear
        // in the order linkherdctl writes them.
        let mut stdout = String::new();
        if let Some(out) = child.stdout.take() {
            for line in std::io::BufReader::new(out).lines() {
                let line = line?;
                println!("{line}");
                stdout.push_str(&line);
                stdout.push('\n');
            }
        }
        let status = child.wait()?;
        Ok((status.code().unwrap_or(-1), stdout))
    }

    fn run(&self, host: &str, args: &[&str]) -> anyhow::Result<(bool, String)> {
        self.invoke(host, args).map(|(code, out)| (code == 0, out))
    }

    fn ok(&self, host: &str, args: &[&str]) -> anyhow::Result<String> {
        let (ok, out) = self.run(host, args)?;
        ensure!(ok, "linkherdctl {} failed on {host}", args.join(" "));
        Ok(out)
    }
}

fn promiscuity(netns: &str, dev: &str) -> anyhow::Result<u64> {
    let out = ip_in(netns, &["-j", "-d", "link", "show", "dev", dev])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v[0]["promiscuity"]
        .as_u64()
        .context("no promiscuity in ip -j output")
}

/// The document's VLAN scenario: mac_net10 (VLAN 10) and mac_net20 (VLAN
/// 20) on no1 (ens192) and no2 (eth0), endpoints b1..b4 — as one fleet
/// spec applied, proven, re-applied as a no-op and destroyed.
async fn demo_vlan(dir: &Path, backend: lab::Backend) -> anyhow::Result<()> {
    println!(
        "\n== the document's VLAN scenario, on the {} backend (VLAN 10 and 20 over one wire)",
        match backend {
            lab::Backend::Netns => "netns",
            lab::Backend::Vm => "vm (QEMU guests: this kernel has no 802.1Q)",
        }
    );
    let t = Instant::now();
    let state = lab::up(dir, &HostSpec::seed(), backend, true).await?;
    println!("lab up in {:.2} s", t.elapsed().as_secs_f64());
    print_status(&state);
    let ctl = Ctl {
        bin: bins::ctl()?,
        config: state.ctl_config(),
    };
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/seed-vlan.yaml"),
    )
    .context("reading deploy/examples/seed-vlan.yaml")?;
    let spec = state.dir.join("seed-vlan.yaml");
    std::fs::write(&spec, state.fleet_spec(&example))?;
    let spec = spec.display().to_string();
    println!(
        "\n== one spec for the whole fleet: deploy/examples/seed-vlan.yaml (agent addresses set to this lab's), written to {spec}"
    );
    println!(
        "\n== apply: plan, apply on both hosts as one transaction, prove it with probes, confirm"
    );
    let (code, out) = ctl.fleet(&["apply", "-f", &spec, "--yes"])?;
    ensure!(code == 0, "apply failed");
    ensure!(
        out.contains("Apply complete: 8 change(s) confirmed on no1, no2."),
        "apply did not confirm all 8 changes"
    );
    ensure!(
        out.lines()
            .filter(|l| l.starts_with(" mac_net"))
            .all(|l| l.contains(" ok ") && l.matches("isolated").count() == 2),
        "the reachability matrix is not all ok within and isolated across VLANs"
    );
    println!("\n== the endpoints, as the hosts have them");
    ctl.fleet(&["get", "endpoints", "-f", &spec])?;
    println!("\n== apply again: nothing to do");
    let (code, out) = ctl.fleet(&["apply", "-f", &spec, "--yes"])?;
    ensure!(
        code == 0 && out.contains("No changes: the fleet matches the spec."),
        "re-applying changed something"
    );
    if let Some(wire) = &state.wire {
        let tags = lab::vm::hub::vlan_ids(wire)?;
        println!("802.1Q frames on the wire by VLAN id: {tags:?}");
        ensure!(
            tags.contains_key(&10) && tags.contains_key(&20),
            "tags 10 and 20 missing on the wire"
        );
    }
    println!("\n== destroy: endpoints, then the VLANs linkherd made, on both hosts");
    let (code, out) = ctl.fleet(&["destroy", "-f", &spec, "--yes"])?;
    ensure!(
        code == 0 && out.contains("Destroy complete"),
        "destroy failed"
    );
    Ok(())
}

async fn demo(dir: &Path) -> anyhow::Result<()> {
    println!("== bringing up the lab (hosts no1 with NIC ens192, no2 with NIC eth0)");
    let t = Instant::now();
    let state = lab::up(dir, &HostSpec::seed(), lab::Backend::Netns, true).await?;
    println!("lab up in {:.2} s", t.elapsed().as_secs_f64());
    print_status(&state);
    let ctl = Ctl {
        bin: bins::ctl()?,
        config: state.ctl_config(),
    };
    demo_hosts(&ctl, &state)?;
    demo_promisc(&ctl, &state).await?;
    demo_flat_network(&ctl, &state)?;
    demo_vlan_refusal(&ctl)
}

/// Each agent over mTLS (identity, kernel, capabilities) and its
/// interfaces: the parent NICs are named differently on each host.
fn demo_hosts(ctl: &Ctl, state: &LabState) -> anyhow::Result<()> {
    println!("\n== each agent over mTLS: identity, kernel, capabilities");
    for h in &state.hosts {
        let out = ctl.ok(&h.name, &["host", "info"])?;
        ensure!(
            out.contains(&format!("host:        {}", h.name)),
            "wrong host answered"
        );
    }
    println!("\n== interfaces (the parent NICs are named differently on each host)");
    ensure!(
        ctl.ok("no1", &["if", "list"])?.contains("ens192"),
        "ens192 missing on no1"
    );
    ensure!(
        ctl.ok("no2", &["if", "list"])?.contains("eth0"),
        "eth0 missing on no2"
    );
    Ok(())
}

/// Promiscuous mode on the parents as the source document does with
/// ifconfig: a lease on no1 that reverts by itself, a permanent (and
/// idempotent) one on no2, and a viewer refused the change.
async fn demo_promisc(ctl: &Ctl, state: &LabState) -> anyhow::Result<()> {
    let no1 = state.host("no1").context("no1")?;
    let no2 = state.host("no2").context("no2")?;
    println!("\n== promiscuous mode on the parent NICs, as the source document does with ifconfig");
    ctl.ok("no1", &["promisc", "on", "ens192", "--lease", "3"])?;
    let p1 = promiscuity(&no1.netns, "ens192")?;
    println!("kernel on no1: promiscuity {p1}");
    ensure!(p1 == 1, "promisc not set on no1");
    ctl.ok("no2", &["promisc", "on", "eth0"])?;
    let out = ctl.ok("no2", &["promisc", "on", "eth0"])?;
    ensure!(
        out.contains("(unchanged)"),
        "second promisc on must be a no-op"
    );
    ensure!(
        promiscuity(&no2.netns, "eth0")? == 1,
        "promisc counted twice on no2"
    );
    ctl.ok("no2", &["if", "get", "eth0"])?;

    println!("\n== a viewer may look but not change");
    let cert = state.pki().join("client-viewer.pem");
    let key = state.pki().join("client-viewer-key.pem");
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let (ok, _) = ctl.run(
        "no2",
        &["--cert", &cert, "--key", &key, "promisc", "off", "eth0"],
    )?;
    ensure!(!ok, "a viewer changed promiscuous mode");
    ensure!(
        promiscuity(&no2.netns, "eth0")? == 1,
        "the viewer's change went through"
    );

    println!("\n== the lease on no1 reverts by itself");
    let deadline = Instant::now() + Duration::from_secs(8);
    while promiscuity(&no1.netns, "ens192")? != 0 {
        ensure!(Instant::now() < deadline, "lease did not revert");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "kernel on no1: promiscuity {}",
        promiscuity(&no1.netns, "ens192")?
    );
    ctl.ok("no2", &["promisc", "off", "eth0"])?;
    Ok(())
}

/// The source document's first example: macvlan network mac_net
/// (10.0.100.0/24, gateway .33) with node_1 on no1 and node_2 on no2,
/// proven with a TCP connection across the hosts; creating node_1 again is
/// a no-op; both are deleted again.
fn demo_flat_network(ctl: &Ctl, state: &LabState) -> anyhow::Result<()> {
    let no1 = state.host("no1").context("no1")?;
    let no2 = state.host("no2").context("no2")?;
    println!(
        "\n== the source document's first example: macvlan network mac_net (10.0.100.0/24, gateway .33)"
    );
    let node1 = macvlan_create(
        "mac_net",
        "node_1",
        "ens192",
        "node1",
        Some("10.0.100.100/24"),
        Some("10.0.100.33"),
    );
    let node2 = macvlan_create(
        "mac_net",
        "node_2",
        "eth0",
        "node2",
        Some("10.0.100.101/24"),
        Some("10.0.100.33"),
    );
    for (h, args) in [(no1, &node1), (no2, &node2)] {
        let out = ctl.ok(&h.name, args)?;
        ensure!(out.contains("(created)"), "{} was not created", h.name);
    }
    ctl.ok("no2", &["macvlan", "list"])?;
    let (from, to) = (
        Path::new("/run/netns").join(format!("{}-node1", no1.netns)),
        Path::new("/run/netns").join(format!("{}-node2", no2.netns)),
    );
    let reached = linkherd_lab::traffic::tcp_reaches(
        &from,
        &to,
        "10.0.100.101".parse()?,
        7000,
        Duration::from_secs(2),
    )
    .map_err(anyhow::Error::msg)?;
    println!(
        "traffic: node_1 on no1 -> node_2 on no2 (10.0.100.101:7000): {}",
        if reached { "connected" } else { "FAILED" }
    );
    ensure!(reached, "node_1 does not reach node_2 across the hosts");
    let out = ctl.ok("no1", &node1)?;
    ensure!(
        out.contains("(unchanged)"),
        "re-creating node_1 must be a no-op"
    );
    for (h, name) in [(no1, "node_1"), (no2, "node_2")] {
        ctl.ok(
            &h.name,
            &["macvlan", "delete", "--network", "mac_net", "--name", name],
        )?;
    }
    Ok(())
}

/// VLAN sub-interfaces (the second half of the document) need 802.1Q in
/// the kernel; an agent on a kernel without it says so and changes nothing.
fn demo_vlan_refusal(ctl: &Ctl) -> anyhow::Result<()> {
    println!(
        "\n== VLAN sub-interfaces (the second half of the document) need 802.1Q in the kernel"
    );
    let (ok, _) = ctl.run(
        "no1",
        &["vlan", "create", "--parent", "ens192", "--id", "10"],
    )?;
    if ok {
        ctl.ok("no1", &["vlan", "delete", "ens192.10"])?;
    } else {
        println!("(this kernel has no 802.1Q: the agent said so, and changed nothing)");
    }
    Ok(())
}

/// Prints the tail of every host's log of the lab in `dir`, if there is one.
fn print_logs(dir: &Path) {
    if let Ok(Some(state)) = LabState::load(&dir.canonicalize().unwrap_or(dir.to_owned())) {
        for h in &state.hosts {
            eprintln!("--- {} log (tail)\n{}", h.name, lab::tail(&h.log, 15));
        }
    }
}

/// The main job: the document's first scenario on a netns lab in `dir`,
/// then its VLAN scenario on a second lab (netns when this kernel has
/// 802.1Q, QEMU guests otherwise). Logs are printed and the labs taken
/// down on failure, and on success unless `keep`.
pub(crate) async fn run_demo(dir: &Path, keep: bool) -> anyhow::Result<()> {
    let mut res = demo(dir).await;
    if res.is_ok() {
        let vlan_dir = dir.with_file_name(format!(
            "{}-vlan",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("lab")
        ));
        let vres = demo_vlan(&vlan_dir, lab::Backend::auto()).await;
        if vres.is_err() {
            print_logs(&vlan_dir);
        }
        if !keep || vres.is_err() {
            lab::down(&vlan_dir)?;
        }
        res = vres;
        if res.is_ok() {
            println!("\ndemo passed");
        }
    }
    if res.is_err() {
        print_logs(dir);
    }
    if !keep || res.is_err() {
        let t = Instant::now();
        lab::down(dir)?;
        println!("lab down in {:.2} s", t.elapsed().as_secs_f64());
    }
    res
}
