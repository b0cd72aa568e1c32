//! `linkherd-lab`: a local fleet of hosts, each running a real agent.
//!
//! Every lab lives in a directory of its own. Every kernel object it creates
//! is named from an id derived from that directory (`lh-<id>-no1`,
//! `lh<id>mg`, ...), so two labs never collide, and `down` can find and
//! remove everything by name even when the state file was never written
//! (a crash half way through `up`).

pub mod bins;
pub mod containers;
pub mod docker;
pub mod fleet;
mod guard;
mod netns;
pub mod sh;
pub mod soak;
pub mod traffic;
pub mod vm;

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use linkherd_proto::model::Role;
use linkherdctl::{certs, client::Target};
use serde::{Deserialize, Serialize};

pub use guard::LabGuard;
pub use netns::netns_default_dir;

/// Where the lab's hosts run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Network namespaces on this kernel (fast; VLANs only if it has 8021q).
    Netns,
    /// QEMU guests with a kernel that has 8021q (real tagged frames).
    Vm,
}

impl Backend {
    /// netns when this kernel has 802.1Q, else vm.
    pub fn auto() -> Backend {
        if kernel_has_vlan() {
            Backend::Netns
        } else {
            Backend::Vm
        }
    }
}

/// Whether this kernel can create an 802.1Q VLAN, tried in a throwaway
/// namespace (the only reliable test: a module may be built in or loadable).
pub fn kernel_has_vlan() -> bool {
    let ns = format!("lh-vlanprobe-{}", std::process::id());
    if crate::sh::ip(&["netns", "add", &ns]).is_err() {
        return false;
    }
    let ok = crate::sh::ip_in(
        &ns,
        &["link", "add", "p0", "type", "veth", "peer", "name", "p1"],
    )
    .is_ok()
        && crate::sh::ip_in(
            &ns,
            &[
                "link", "add", "link", "p0", "name", "p0.5", "type", "vlan", "id", "5",
            ],
        )
        .is_ok();
    let _ = crate::sh::ip(&["netns", "del", &ns]);
    ok
}

/// Brings up a lab of `hosts` in `dir` on `backend`. With `replace`, a lab
/// left in `dir` (e.g. by a failed test) is torn down first.
pub async fn up(
    dir: &Path,
    hosts: &[HostSpec],
    backend: Backend,
    replace: bool,
) -> Result<LabState, LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    check_names(hosts)?;
    fs::create_dir_all(dir).map_err(|e| LabError::Io(dir.to_owned(), e))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| LabError::Io(dir.to_owned(), e))?;
    if LabState::load(&dir)?.is_some() {
        if !replace {
            return Err(LabError::AlreadyUp(dir));
        }
        down(&dir)?;
    }
    let res = match backend {
        Backend::Netns => netns::up(&dir, hosts).await,
        Backend::Vm => vm::up(&dir, hosts).await,
    };
    if res.is_err() {
        // Show why before the evidence goes with the lab.
        if let Ok(Some(state)) = LabState::load(&dir) {
            for h in &state.hosts {
                eprintln!("--- {} log (tail)\n{}", h.name, tail(&h.log, 25));
            }
        }
        let _ = down(&dir);
    }
    res
}

/// Starts the agent of `host` again after it was stopped (a test that kills
/// an agent mid-transaction); same state directory, so it finds its
/// journal. Netns backend only.
pub async fn restart_agent(state: &mut LabState, host: &str) -> Result<(), LabError> {
    match state.backend.as_str() {
        "netns" => netns::restart_agent(state, host).await,
        other => Err(LabError::State(format!(
            "restarting an agent is supported on the netns backend, not {other}"
        ))),
    }
}

/// Stops the agent of `host`, leaving what it made and its state.
pub fn stop_agent(state: &mut LabState, host: &str) -> Result<(), LabError> {
    match state.backend.as_str() {
        "netns" => netns::stop_agent(state, host),
        other => Err(LabError::State(format!(
            "stopping an agent is supported on the netns backend, not {other}"
        ))),
    }
}

/// A power cycle of `host` (see `netns::reboot`): returns once its agent
/// answers again, having restored the host by itself.
pub async fn reboot(state: &mut LabState, host: &str) -> Result<(), LabError> {
    match state.backend.as_str() {
        "netns" => netns::reboot(state, host).await,
        other => Err(LabError::State(format!(
            "rebooting a host is supported on the netns backend, not {other} \
             (guests keep no state directory across a reboot yet)"
        ))),
    }
}

/// Removes every object of the lab in `dir`, whether or not `up` finished.
/// Safe to run twice.
pub fn down(dir: &Path) -> Result<(), LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    if let Some(state) = LabState::load(&dir)?.filter(|s| s.backend == "vm") {
        vm::down(&state);
    }
    netns::down(&dir)
}

fn check_names(hosts: &[HostSpec]) -> Result<(), LabError> {
    for h in hosts {
        let ok = !h.name.is_empty()
            && h.name.len() <= 8
            && h.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !ok {
            return Err(LabError::HostName(h.name.clone()));
        }
    }
    Ok(())
}

/// The lab's CA, a client per role, an agent certificate per host (valid
/// for its management address).
fn issue_pki(state: &LabState) -> Result<(), LabError> {
    let pki = state.pki();
    certs::init(&pki, 30, true)?;
    for role in Role::ALL {
        certs::issue_client(&pki, role.as_str(), role, 30)?;
    }
    for h in &state.hosts {
        certs::issue_agent(&pki, &h.name, std::slice::from_ref(&h.mgmt_ip), 30)?;
    }
    Ok(())
}

/// Waits until the agent answers a health check over mTLS as admin.
async fn wait_ready(state: &LabState, h: &HostState, timeout: Duration) -> Result<(), LabError> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let pki = state.pki();
    let target = Target::parse(
        &h.agent_url,
        Some(pki.join(certs::CA_CERT)),
        Some(pki.join("client-admin.pem")),
        Some(pki.join("client-admin-key.pem")),
    )
    .map_err(|e| LabError::State(e.to_string()))?;
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(ch) = target.connect().await {
            let res = HealthClient::new(ch)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if res.is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(LabError::NotReady {
        host: h.name.clone(),
        secs: timeout.as_secs(),
        log: tail(&h.log, 20),
    })
}

/// `DIR/ctl.toml`, naming every host with the admin credentials.
fn write_ctl_config(state: &LabState) -> Result<(), LabError> {
    let mut text = String::from(
        "# linkherdctl configuration for this lab (written by linkherd-lab up)\n\
         [defaults]\nca = \"pki/ca.pem\"\ncert = \"pki/client-admin.pem\"\nkey = \"pki/client-admin-key.pem\"\n",
    );
    for h in &state.hosts {
        text.push_str(&format!(
            "\n[[hosts]]\nname = \"{}\"\nagent = \"{}\"\n[hosts.labels]\nnic = \"{}\"\nbackend = \"{}\"\n",
            h.name, h.agent_url, h.nic, state.backend
        ));
    }
    let path = state.ctl_config();
    fs::write(&path, text).map_err(|e| LabError::Io(path, e))
}

/// True while `pid` runs a program whose command line contains `what`
/// (so a reused pid is never signalled).
fn runs(pid: u32, what: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(what))
        .unwrap_or(false)
}

/// SIGTERM, then SIGKILL after 3 s, for a process the lab started.
fn stop(pid: u32, what: &str) {
    use nix::{
        sys::signal::{Signal, kill},
        unistd::Pid,
    };
    let Ok(raw) = i32::try_from(pid) else { return };
    let target = Pid::from_raw(raw);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while runs(pid, what) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if runs(pid, what) {
        let _ = kill(target, Signal::SIGKILL);
    }
    // Reap it if it was our child; harmless otherwise.
    let _ = nix::sys::wait::waitpid(target, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
}

/// Port every lab agent listens on (mTLS) on its management address.
pub const AGENT_PORT: u16 = 7443;
const STATE_FILE: &str = "lab.json";

/// One host to create: its name and its NIC's name (they differ per host,
/// as in the source document: `ens192` on no1, `eth0` on no2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    pub name: String,
    pub nic: String,
}

impl HostSpec {
    /// The seed document's hosts.
    pub fn seed() -> Vec<HostSpec> {
        vec![
            HostSpec {
                name: "no1".into(),
                nic: "ens192".into(),
            },
            HostSpec {
                name: "no2".into(),
                nic: "eth0".into(),
            },
        ]
    }

    /// Hosts from names: the seed's NIC names for no1/no2, `eth0` otherwise.
    pub fn from_names(names: &[String]) -> Vec<HostSpec> {
        names
            .iter()
            .map(|n| HostSpec {
                name: n.clone(),
                nic: if n == "no1" { "ens192" } else { "eth0" }.into(),
            })
            .collect()
    }
}

/// A host of a running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    pub name: String,
    pub nic: String,
    /// The host's network namespace.
    pub netns: String,
    /// Management address the agent listens on.
    pub mgmt_ip: String,
    /// `https://IP:PORT`.
    pub agent_url: String,
    /// The agent's local unix socket.
    pub socket: PathBuf,
    /// Agent log (netns) or guest console (vm).
    pub log: PathBuf,
    pub pid: Option<u32>,
    /// Position among the guests (vm backend).
    #[serde(default)]
    pub vm_index: Option<usize>,
}

/// What `up` made; `down` undoes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub id: String,
    pub backend: String,
    pub dir: PathBuf,
    /// Root-namespace bridge of the management network.
    pub mgmt_bridge: String,
    pub mgmt_subnet: String,
    /// Namespace holding the data-plane "switch" (a bridge).
    pub switch_netns: String,
    /// The vm backend's hub process.
    #[serde(default)]
    pub hub_pid: Option<u32>,
    /// The vm backend's capture of the wire.
    #[serde(default)]
    pub wire: Option<PathBuf>,
    pub hosts: Vec<HostState>,
}

impl LabState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    pub fn load(dir: &Path) -> Result<Option<Self>, LabError> {
        match std::fs::read(Self::path(dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| LabError::State(format!("{}: {e}", Self::path(dir).display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LabError::State(format!(
                "{}: {e}",
                Self::path(dir).display()
            ))),
        }
    }

    pub(crate) fn save(&self) -> Result<(), LabError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| LabError::State(e.to_string()))?;
        std::fs::write(Self::path(&self.dir), bytes).map_err(|e| LabError::State(e.to_string()))
    }

    pub fn host(&self, name: &str) -> Option<&HostState> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// `DIR/ctl.toml`: a linkherdctl config naming every host.
    /// A fleet spec from `deploy/examples` made to address this lab's
    /// agents: the examples' placeholder addresses `https://HOST.lab:7443`
    /// become the agents' real ones.
    pub fn fleet_spec(&self, example: &str) -> String {
        self.hosts.iter().fold(example.to_owned(), |text, h| {
            text.replace(&format!("https://{}.lab:7443", h.name), &h.agent_url)
        })
    }

    pub fn ctl_config(&self) -> PathBuf {
        self.dir.join("ctl.toml")
    }

    pub fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root (network namespaces): run it as root")]
    NotRoot,
    #[error(transparent)]
    Sh(#[from] crate::sh::ShError),
    #[error(transparent)]
    Bins(#[from] crate::bins::NotFound),
    #[error(transparent)]
    Certs(#[from] linkherdctl::certs::CertError),
    #[error("lab state: {0}")]
    State(String),
    #[error("a lab is already up in {0}; run `linkherd-lab down --dir {0}` first")]
    AlreadyUp(PathBuf),
    #[error("invalid host name {0:?}: use 1-8 lowercase letters and digits")]
    HostName(String),
    #[error("agent on {host} did not become ready within {secs} s; last log lines:\n{log}")]
    NotReady {
        host: String,
        secs: u64,
        log: String,
    },
    #[error("no free management subnet in 198.18.0.0/16")]
    NoSubnet,
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("vm assets: {0}")]
    Assets(String),
}

/// Short id of the lab in `dir`, used in every name it creates. FNV-1a of
/// the canonical path: stable across builds, so a newer `linkherd-lab` still
/// finds an older lab's objects.
pub fn lab_id(dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let hash = canonical
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
        });
    format!("{:04x}", (hash ^ (hash >> 16)) & 0xffff)
}

/// The last `n` lines of a log file, for failure reports.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_ids_are_stable_and_differ_per_directory() {
        let a = lab_id(Path::new("/nonexistent/lab-a"));
        assert_eq!(a, lab_id(Path::new("/nonexistent/lab-a")));
        assert_ne!(a, lab_id(Path::new("/nonexistent/lab-b")));
        assert_eq!(a.len(), 4);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn seed_hosts_have_the_documents_nic_names() {
        let hosts = HostSpec::from_names(&["no1".into(), "no2".into(), "no3".into()]);
        let nics: Vec<&str> = hosts.iter().map(|h| h.nic.as_str()).collect();
        assert_eq!(nics, ["ens192", "eth0", "eth0"]);
        assert_eq!(HostSpec::seed(), hosts[..2]);
    }
}
