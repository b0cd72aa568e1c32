//! The vm backend: each host is a QEMU guest (TCG) booted from Debian's
//! cloud kernel, which has 802.1Q. The guests' data NICs share one wire (the
//! lab hub, which also records a pcap); each agent is reached over mTLS
//! through a port QEMU forwards from 127.0.0.1. QEMU's user network is
//! `restrict=on`: a guest can reach nothing but its forwarded port.

pub mod assets;
pub mod hub;
mod initramfs;
pub mod shell;

use std::{
    fs,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{
    HostSpec, HostState, LabError, LabState, issue_pki, lab_id, wait_ready, write_ctl_config,
};
use crate::bins;

/// A TCG boot plus the agent's start takes a few seconds; allow for a slow
/// machine.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

fn free_port() -> Result<u16, LabError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| LabError::Io("127.0.0.1:0".into(), e))?;
    Ok(l.local_addr()
        .map_err(|e| LabError::Io("127.0.0.1:0".into(), e))?
        .port())
}

fn spawn_detached(cmd: &mut Command, log: &Path) -> Result<u32, LabError> {
    let out = fs::File::create(log).map_err(|e| LabError::Io(log.to_owned(), e))?;
    let err = out
        .try_clone()
        .map_err(|e| LabError::Io(log.to_owned(), e))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| LabError::Io(PathBuf::from(format!("{cmd:?}")), e))?;
    Ok(child.id())
}

/// Starts the hub and returns (pid, port).
fn start_hub(dir: &Path) -> Result<(u32, u16), LabError> {
    let lab_bin = bins::find("linkherd-lab", "LINKHERD_LAB_BIN")?;
    let port_file = dir.join("hub.port");
    let _ = fs::remove_file(&port_file);
    let pid = spawn_detached(
        Command::new(lab_bin)
            .arg("hub")
            .arg("--port-file")
            .arg(&port_file)
            .arg("--pcap")
            .arg(dir.join("wire.pcap")),
        &dir.join("hub.log"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(port) = fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return Ok((pid, port));
        }
        if Instant::now() > deadline {
            return Err(LabError::State(
                "the lab hub did not start (see hub.log)".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Brings up `hosts` as QEMU guests in `dir` (which `up` already checked).
pub async fn up(dir: &Path, hosts: &[HostSpec]) -> Result<LabState, LabError> {
    let agent = bins::guest_agent()?;
    let cni = bins::guest_cni()?;
    let assets = assets::ensure(&assets::cache_dir())?;
    let id = lab_id(dir);
    let mut state = LabState {
        id: id.clone(),
        backend: "vm".into(),
        dir: dir.to_owned(),
        mgmt_bridge: String::new(),
        mgmt_subnet: "127.0.0.1/32".into(),
        switch_netns: String::new(),
        hub_pid: None,
        wire: Some(dir.join("wire.pcap")),
        hosts: Vec::new(),
    };
    for (i, h) in hosts.iter().enumerate() {
        let port = free_port()?;
        state.hosts.push(HostState {
            name: h.name.clone(),
            nic: h.nic.clone(),
            netns: String::new(),
            mgmt_ip: "127.0.0.1".into(),
            agent_url: format!("https://127.0.0.1:{port}"),
            socket: PathBuf::new(),
            log: dir.join(&h.name).join("console.log"),
            pid: None,
            vm_index: Some(i),
        });
    }
    state.save()?;
    issue_pki(&state)?;
    let work = dir.join("vm");
    fs::create_dir_all(&work).map_err(|e| LabError::Io(work.clone(), e))?;
    let common = initramfs::common(
        &assets,
        &initramfs::GuestBins {
            agent: &agent,
            cni: &cni,
        },
        &work,
    )?;
    let (hub_pid, hub_port) = start_hub(dir)?;
    state.hub_pid = Some(hub_pid);
    state.save()?;

    let pki = state.pki();
    for h in &mut state.hosts {
        let hdir = dir.join(&h.name);
        fs::create_dir_all(&hdir).map_err(|e| LabError::Io(hdir.clone(), e))?;
        let initrd = hdir.join("initrd.cpio");
        initramfs::host(
            &assets.busybox,
            &common,
            &[
                (
                    "etc/linkherd/agent.pem",
                    pki.join(format!("agent-{}.pem", h.name)),
                ),
                (
                    "etc/linkherd/agent-key.pem",
                    pki.join(format!("agent-{}-key.pem", h.name)),
                ),
                ("etc/linkherd/ca.pem", pki.join("ca.pem")),
            ],
            &work,
            &initrd,
        )?;
        let mut qemu = guest_command(&assets, h, &initrd, hub_port);
        h.pid = Some(spawn_detached(&mut qemu, &hdir.join("qemu.log"))?);
    }
    state.save()?;
    for h in &state.hosts {
        wait_ready(&state, h, READY_TIMEOUT).await?;
    }
    write_ctl_config(&state)?;
    Ok(state)
}

/// The QEMU command line of one guest: TCG, the lab's kernel and this
/// host's initramfs, a data NIC on the hub's wire and a management NIC whose
/// user network only forwards the agent's port from loopback.
fn guest_command(assets: &assets::Assets, h: &HostState, initrd: &Path, hub_port: u16) -> Command {
    let n = h.vm_index.unwrap_or(0) + 1;
    let port = h.agent_url.rsplit(':').next().unwrap_or("0").to_owned();
    let mut c = Command::new(&assets.qemu);
    c.args([
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        "384",
        "-smp",
        "1",
        "-nodefaults",
    ])
    .args(["-display", "none", "-monitor", "none", "-no-reboot"])
    .arg("-serial")
    .arg(format!("file:{}", h.log.display()))
    .args(["-device", "virtio-serial-pci"])
    .arg("-chardev")
    .arg(format!(
        "socket,id=shell,path={},server=on,wait=off",
        shell::socket(&h.log).display()
    ))
    .args(["-device", "virtconsole,chardev=shell"])
    .arg("-kernel")
    .arg(&assets.kernel)
    .arg("-initrd")
    .arg(initrd)
    .arg("-append")
    .arg(format!(
        "console=ttyS0 quiet panic=-1 lh.name={} lh.nic={}",
        h.name, h.nic
    ))
    .arg("-netdev")
    .arg(format!("socket,id=data,connect=127.0.0.1:{hub_port}"))
    .arg("-device")
    .arg(format!(
        "virtio-net-pci,netdev=data,mac=52:54:00:10:00:{n:02x}"
    ))
    .arg("-netdev")
    .arg(format!(
        "user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:7443"
    ))
    .arg("-device")
    .arg(format!(
        "virtio-net-pci,netdev=mgmt,mac=52:54:00:20:00:{n:02x}"
    ));
    c
}

fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// Stops the guests and the hub (only processes that are still what the
/// lab started) and removes the lab's files.
pub fn down(state: &LabState) {
    for h in &state.hosts {
        if let Some(pid) = h.pid.filter(|p| cmdline(*p).contains("qemu-system")) {
            super::stop(pid, "qemu-system");
        }
    }
    if let Some(pid) = state
        .hub_pid
        .filter(|p| cmdline(*p).contains("linkherd-lab"))
    {
        super::stop(pid, "linkherd-lab");
    }
    let _ = fs::remove_dir_all(state.dir.join("vm"));
    for f in ["hub.port", "hub.log", "wire.pcap"] {
        let _ = fs::remove_file(state.dir.join(f));
    }
}
