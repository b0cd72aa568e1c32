//! `linkherd-lab`: a local fleet of hosts, each running a real agent.
//!
//! Every lab lives in a directory of its own. Every kernel object it creates
//! is named from an id derived from that directory (`lh-<id>-no1`,
//! `lh<id>mg`, ...), so two labs never collide, and `down` can find and
//! remove everything by name even when the state file was never written
//! (a crash half way through `up`).

mod netns;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use netns::{down, netns_default_dir, up};

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
    pub log: PathBuf,
    pub pid: Option<u32>,
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

    fn save(&self) -> Result<(), LabError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| LabError::State(e.to_string()))?;
        std::fs::write(Self::path(&self.dir), bytes).map_err(|e| LabError::State(e.to_string()))
    }

    pub fn host(&self, name: &str) -> Option<&HostState> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// `DIR/ctl.toml`: a linkherdctl config naming every host.
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
