//! The netns backend: each host is a network namespace on this kernel.
//!
//! ```text
//!  root ns: lh<id>mg (bridge, 198.18.K.1/24) ── lh<id>m0 ─┐   ┌─ lh<id>m1 ──
//!                                                         │   │
//!  lh-<id>-no1: mgmt0 198.18.K.11 (agent :7443)   lh-<id>-no2: mgmt0 198.18.K.12
//!               ens192 ──┐                                     eth0 ──┐
//!  lh-<id>-sw:  br0 ── p-no1                          br0 ── p-no2 ───┘
//! ```
//!
//! The management network reaches only the lab's own namespaces; the data
//! network (the NICs) is a bridge inside its own namespace with no route
//! anywhere.

use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use linkherdctl::certs;

use super::{
    AGENT_PORT, HostSpec, HostState, LabError, LabState, issue_pki, lab_id, runs, stop, wait_ready,
    write_ctl_config,
};
use crate::{
    bins,
    sh::{ip, ip_in},
};

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The upstream router of the data network: answers as the gateway of the
/// document's networks (10.0.100.33 for the flat example; 172.16.10.1 and
/// 172.16.20.1 on VLANs 10 and 20 when this kernel has 802.1Q).
fn upstream(state: &LabState) -> Result<(), LabError> {
    let up = format!("lh-{}-up", state.id);
    let sw = &state.switch_netns;
    ip(&["netns", "add", &up])?;
    ip_in(&up, &["link", "set", "lo", "up"])?;
    ip_in(
        &up,
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "p-up", "netns", sw,
        ],
    )?;
    ip_in(sw, &["link", "set", "p-up", "master", "br0", "up"])?;
    ip_in(&up, &["addr", "add", UPSTREAM_FLAT, "dev", "eth0"])?;
    ip_in(&up, &["link", "set", "eth0", "up"])?;
    for (id, cidr) in UPSTREAM_VLANS {
        let dev = format!("eth0.{id}");
        if ip_in(
            &up,
            &[
                "link", "add", "link", "eth0", "name", &dev, "type", "vlan", "id", id,
            ],
        )
        .is_ok()
        {
            ip_in(&up, &["addr", "add", cidr, "dev", &dev])?;
            ip_in(&up, &["link", "set", &dev, "up"])?;
        }
    }
    Ok(())
}

/// The upstream router's addresses.
pub const UPSTREAM_FLAT: &str = "10.0.100.33/24";
pub const UPSTREAM_VLANS: [(&str, &str); 2] = [("10", "172.16.10.1/24"), ("20", "172.16.20.1/24")];

/// A /24 in 198.18.0.0/15 (reserved for benchmarking, RFC 2544) that no
/// address on this machine uses yet.
fn free_subnet(id: &str) -> Result<u8, LabError> {
    let used = ip(&["-4", "-o", "addr", "show"])?;
    let start = u8::from_str_radix(&id[..2], 16).unwrap_or(0);
    (0..=255u8)
        .map(|i| start.wrapping_add(i))
        .find(|k| !used.contains(&format!("198.18.{k}.")))
        .ok_or(LabError::NoSubnet)
}

/// Brings up `hosts` as namespaces (`dir` is canonical and free; the
/// caller checked).
pub(super) async fn up(dir: &Path, hosts: &[HostSpec]) -> Result<LabState, LabError> {
    let dir = dir.to_owned();
    let agent_bin = bins::agent()?;
    let id = lab_id(&dir);
    let k = free_subnet(&id)?;
    let mut state = LabState {
        id: id.clone(),
        backend: "netns".into(),
        dir: dir.clone(),
        mgmt_bridge: format!("lh{id}mg"),
        mgmt_subnet: format!("198.18.{k}.0/24"),
        switch_netns: format!("lh-{id}-sw"),
        hub_pid: None,
        wire: None,
        hosts: hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mgmt_ip = format!("198.18.{k}.{}", 11 + i);
                HostState {
                    name: h.name.clone(),
                    nic: h.nic.clone(),
                    netns: format!("lh-{id}-{}", h.name),
                    agent_url: format!("https://{mgmt_ip}:{AGENT_PORT}"),
                    mgmt_ip,
                    socket: dir.join(&h.name).join("agent.sock"),
                    log: dir.join(&h.name).join("agent.log"),
                    pid: None,
                    vm_index: None,
                }
            })
            .collect(),
    };
    // Record intent first: a crash from here on is cleaned up by `down`.
    state.save()?;
    build(&mut state, &agent_bin).await?;
    crate::containers::write_runtime(&state)?;
    Ok(state)
}

async fn build(state: &mut LabState, agent_bin: &Path) -> Result<(), LabError> {
    neighbour_room()?;
    issue_pki(state)?;
    let gw = format!("{}/24", state.mgmt_subnet.replace(".0/24", ".1"));
    ip(&["link", "add", &state.mgmt_bridge, "type", "bridge"])?;
    ip(&["addr", "add", &gw, "dev", &state.mgmt_bridge])?;
    ip(&["link", "set", &state.mgmt_bridge, "up"])?;

    let sw = state.switch_netns.clone();
    ip(&["netns", "add", &sw])?;
    ip_in(&sw, &["link", "set", "lo", "up"])?;
    ip_in(&sw, &["link", "add", "br0", "type", "bridge"])?;
    ip_in(&sw, &["link", "set", "br0", "up"])?;
    upstream(state)?;

    for (i, h) in state.hosts.iter().enumerate() {
        ip(&["netns", "add", &h.netns])?;
        ip_in(&h.netns, &["link", "set", "lo", "up"])?;
        // Data NIC, plugged into the switch.
        let port = format!("p-{}", h.name);
        ip_in(
            &h.netns,
            &[
                "link", "add", &h.nic, "type", "veth", "peer", "name", &port, "netns", &sw,
            ],
        )?;
        ip_in(&sw, &["link", "set", &port, "master", "br0", "up"])?;
        ip_in(&h.netns, &["link", "set", &h.nic, "up"])?;
        // Management leg to the root namespace.
        let leg = format!("lh{}m{i}", state.id);
        ip(&[
            "link", "add", &leg, "type", "veth", "peer", "name", "mgmt0", "netns", &h.netns,
        ])?;
        ip(&["link", "set", &leg, "master", &state.mgmt_bridge, "up"])?;
        ip_in(
            &h.netns,
            &["addr", "add", &format!("{}/24", h.mgmt_ip), "dev", "mgmt0"],
        )?;
        ip_in(&h.netns, &["link", "set", "mgmt0", "up"])?;
    }

    for i in 0..state.hosts.len() {
        let pid = spawn_agent(state, &state.hosts[i], agent_bin)?;
        state.hosts[i].pid = Some(pid);
    }
    state.save()?;
    for h in &state.hosts {
        wait_ready(state, h, READY_TIMEOUT).await?;
    }
    write_ctl_config(state)
}

/// Neighbour-table sizes a lab of many hosts needs (threshold 1, 2, 3).
const NEIGHBOUR_ROOM: [u64; 3] = [4096, 65_536, 131_072];

/// Makes room in the kernel's neighbour tables. A lab's hosts share this
/// one kernel, and with it one ARP table and one NDP table for every
/// namespace (`gc_thresh3` is 1024 by default): 20 hosts with 2 endpoints
/// each, every endpoint resolving every other, already fill it, and then
/// the kernel answers no ARP request that would add an entry — probes fail
/// for the lab, not for linkherd. Real hosts each have their own table.
/// Only raised, never lowered (another lab may be up), and not restored: a
/// larger limit costs memory only for entries that exist.
fn neighbour_room() -> Result<(), LabError> {
    for family in ["ipv4", "ipv6"] {
        // Largest first, so that 1 <= 2 <= 3 holds at every step.
        for (i, want) in NEIGHBOUR_ROOM.iter().enumerate().rev() {
            let path = PathBuf::from(format!(
                "/proc/sys/net/{family}/neigh/default/gc_thresh{}",
                i + 1
            ));
            let now: u64 = fs::read_to_string(&path)
                .map_err(|e| LabError::Io(path.clone(), e))?
                .trim()
                .parse()
                .unwrap_or(0);
            if now < *want {
                fs::write(&path, want.to_string()).map_err(|e| LabError::Io(path.clone(), e))?;
                eprintln!(
                    "lab: raised {} from {now} to {want}: the lab's hosts share this kernel's neighbour table",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// Starts host `h`'s agent in its namespace; returns its pid.
fn spawn_agent(state: &LabState, h: &HostState, agent_bin: &Path) -> Result<u32, LabError> {
    let pki = state.pki();
    let hdir = state.dir.join(&h.name);
    fs::create_dir_all(&hdir).map_err(|e| LabError::Io(hdir.clone(), e))?;
    // Appended to: a restarted agent's log follows its predecessor's.
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&h.log)
        .map_err(|e| LabError::Io(h.log.clone(), e))?;
    let err = log
        .try_clone()
        .map_err(|e| LabError::Io(h.log.clone(), e))?;
    let child = Command::new(agent_bin)
        .arg("--netns")
        .arg(Path::new("/run/netns").join(&h.netns))
        .arg("--listen")
        .arg(format!("{}:{AGENT_PORT}", h.mgmt_ip))
        .arg("--tls-cert")
        .arg(pki.join(format!("agent-{}.pem", h.name)))
        .arg("--tls-key")
        .arg(pki.join(format!("agent-{}-key.pem", h.name)))
        .arg("--client-ca")
        .arg(pki.join(certs::CA_CERT))
        .arg("--socket")
        .arg(&h.socket)
        .arg("--state-dir")
        .arg(hdir.join("state"))
        .arg("--name")
        .arg(&h.name)
        // Endpoint namespaces of this host: lh-<id>-<host>-NAME.
        .arg("--netns-prefix")
        .arg(format!("{}-", h.netns))
        // Docker's driver `linkherd`, for an engine started on this host
        // (`docker::Dockerd`); nothing calls it otherwise.
        .arg("--docker-plugin")
        .arg(state.docker_plugins(&h.name).join("linkherd.sock"))
        // A lab's containers come and go in seconds: a stale attachment
        // (its container removed while the agent was away) is released
        // after 3 s rather than a real host's 5 minutes.
        .args(["--reconcile-stale-grace", "3"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        // Its own process group: a Ctrl-C at the lab's terminal must not
        // kill the agents behind `down`'s back.
        .process_group(0)
        .spawn()
        .map_err(|e| LabError::Io(agent_bin.to_owned(), e))?;
    Ok(child.id())
}

/// Starts the agent of `host` again (after a test killed it), with the same
/// state directory, and waits until it answers.
pub(super) async fn restart_agent(state: &mut LabState, host: &str) -> Result<(), LabError> {
    let agent_bin = bins::agent()?;
    let i = host_index(state, host)?;
    let pid = spawn_agent(state, &state.hosts[i], &agent_bin)?;
    state.hosts[i].pid = Some(pid);
    state.save()?;
    wait_ready(state, &state.hosts[i], READY_TIMEOUT).await
}

/// Stops the agent of `host` (SIGTERM, SIGKILL after 3 s); its state
/// directory and everything it made stay.
pub(super) fn stop_agent(state: &mut LabState, host: &str) -> Result<(), LabError> {
    let i = host_index(state, host)?;
    if let Some(pid) = state.hosts[i].pid.filter(|p| runs(*p, "linkherd-agent")) {
        stop(pid, "linkherd-agent");
    }
    state.hosts[i].pid = None;
    state.save()
}

/// A power cycle of `host`: its agent killed (SIGKILL: no shutdown), then
/// what a reboot takes from a kernel — every namespace the host's agent
/// made and every link in the host's namespace but its NIC, its management
/// leg and loopback, the NIC's flags back to a boot's (promiscuous mode
/// off) — then the agent started again with the same state directory.
/// Returns once the agent answers: it has restored the host by then.
pub(super) async fn reboot(state: &mut LabState, host: &str) -> Result<(), LabError> {
    use nix::{
        sys::signal::{Signal, kill},
        unistd::Pid,
    };
    let i = host_index(state, host)?;
    let h = state.hosts[i].clone();
    if let Some(pid) = h.pid.filter(|p| runs(*p, "linkherd-agent")) {
        let raw = i32::try_from(pid).map_err(|_| LabError::State(format!("pid {pid}")))?;
        let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while runs(pid, "linkherd-agent") && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(raw),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }
    state.hosts[i].pid = None;
    state.save()?;
    let made = format!("{}-", h.netns);
    let listed = ip(&["netns", "list"])?;
    for ns in listed.lines().filter_map(|l| l.split_whitespace().next()) {
        if ns.starts_with(&made) {
            // Links first, synchronously: the kernel tears a deleted
            // namespace down later, and its macvlans would hold their MACs
            // on the NIC meanwhile — a real reboot leaves nothing behind.
            del_links(ns, &["lo"])?;
            ip(&["netns", "del", ns])?;
        }
    }
    del_links(&h.netns, &["lo", "mgmt0", h.nic.as_str()])?;
    ip_in(&h.netns, &["link", "set", &h.nic, "promisc", "off"])?;
    restart_agent(state, host).await
}

/// Deletes every link of namespace `ns` but those named in `keep`.
fn del_links(ns: &str, keep: &[&str]) -> Result<(), LabError> {
    let links = ip_in(ns, &["-o", "link", "show"])?;
    for name in links.lines().filter_map(|l| l.split(": ").nth(1)) {
        let name = name.split('@').next().unwrap_or(name);
        if !keep.contains(&name) {
            ip_in(ns, &["link", "del", name])?;
        }
    }
    Ok(())
}

fn host_index(state: &LabState, host: &str) -> Result<usize, LabError> {
    state
        .hosts
        .iter()
        .position(|h| h.name == host)
        .ok_or_else(|| LabError::State(format!("no host {host} in this lab")))
}

/// Removes every object of the lab in `dir`, found by name from the lab id,
/// whether or not `up` finished, and the lab's files. Safe to run twice.
pub(super) fn down(dir: &Path) -> Result<(), LabError> {
    let id = lab_id(dir);
    if let Some(state) = LabState::load(dir)? {
        for h in &state.hosts {
            if let Some(pid) = h.pid.filter(|p| runs(*p, "linkherd-agent")) {
                stop(pid, "linkherd-agent");
            }
        }
    }
    // Namespaces of this lab, whatever the state file says.
    let prefix = format!("lh-{id}-");
    let listed = ip(&["netns", "list"]).unwrap_or_default();
    for ns in listed.lines().filter_map(|l| l.split_whitespace().next()) {
        if !ns.starts_with(&prefix) {
            continue;
        }
        // Anything still running inside a lab namespace was started by the
        // lab (or by a test on it).
        for pid in ip(&["netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
        {
            if let Ok(pid) = pid.parse::<u32>() {
                stop(pid, "");
            }
        }
        let _ = ip(&["netns", "del", ns]);
    }
    // Root-namespace links: the management bridge and legs.
    let links = ip(&["-o", "link", "show"]).unwrap_or_default();
    let root_prefix = format!("lh{id}m");
    for name in links.lines().filter_map(|l| l.split(": ").nth(1)) {
        let name = name.split('@').next().unwrap_or(name);
        if name.starts_with(&root_prefix) {
            let _ = ip(&["link", "del", name]);
        }
    }
    for p in [LabState::path(dir), dir.join("ctl.toml")] {
        let _ = fs::remove_file(p);
    }
    let _ = fs::remove_dir_all(dir.join("pki"));
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            // Per-host directories (agent log or console, socket, state).
            if e.path().join("agent.log").exists() || e.path().join("console.log").exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Default lab directory: `./linkherd-lab`.
pub fn netns_default_dir() -> PathBuf {
    PathBuf::from("linkherd-lab")
}
