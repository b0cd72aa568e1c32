//! The fleet spec: one YAML file that says which hosts exist, which macvlan
//! networks (optionally on an 802.1Q VLAN) span them, and which endpoints
//! live where. Parsing checks everything that can be checked without asking
//! a host, and reports every problem with its path and line/column.

mod error;
mod raw;
mod validate;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::Path,
    time::Duration,
};

use linkherd_proto::model::{IfName, MacAddr, MacvlanMode, NetnsRef, ObjName, VlanId};

pub use error::{SpecError, SpecIssue};

use crate::ipam::Pool;

/// A checked fleet spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSpec {
    pub hosts: BTreeMap<String, HostSpec>,
    pub networks: BTreeMap<ObjName, NetworkSpec>,
    pub verify: VerifySpec,
}

/// A host running linkherd-agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// `https://host:port` of its agent.
    pub address: String,
    /// The host's default parent NIC (names differ between hosts).
    pub parent: Option<IfName>,
    pub labels: BTreeMap<String, String>,
}

/// One macvlan network across hosts. Subnet and gateway are the same on
/// every host by construction: they are stated once, here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: ObjName,
    pub vlan: Option<VlanId>,
    pub v4: Option<Pool>,
    pub v6: Option<Pool>,
    pub mode: MacvlanMode,
    pub mtu: Option<u32>,
    /// Every host the network spans, with the parent NIC used there (the
    /// VLAN sub-interface is created on it when `vlan` is set).
    pub parents: BTreeMap<String, IfName>,
    /// Host access addresses per host.
    pub host_access: BTreeMap<String, IpAddr>,
    pub endpoints: BTreeMap<ObjName, EndpointDecl>,
    /// Addresses offered to containers, when the spec asks for them.
    pub containers: Option<ContainersSpec>,
}

/// Addresses a network offers to containers that runtimes create on its
/// hosts, in blocks per host ([`crate::ipam::blocks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainersSpec {
    pub v4: Option<BlockSpec>,
    pub v6: Option<BlockSpec>,
    /// The hosts that offer them (all spanned by the network).
    pub hosts: BTreeSet<String>,
}

/// How one family's blocks are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    /// Inside the subnet.
    pub range: ipnet::IpNet,
    /// Each block's prefix length, at least the range's.
    pub len: u8,
}

/// An endpoint as declared: where it lives and what the spec fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointDecl {
    pub host: String,
    pub netns: NetnsRef,
    pub ip: Option<IpAddr>,
    pub ip6: Option<IpAddr>,
    pub mac: Option<MacAddr>,
}

/// What to prove after applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifySpec {
    /// Endpoints of a network reach each other (spec key `mesh`).
    pub reach: bool,
    /// No endpoint reaches an endpoint of another network.
    pub isolation: bool,
    /// Containers attached to the networks are probed like endpoints.
    pub containers: bool,
    /// Which pairs the reach and isolation probes cover.
    pub mode: VerifyMode,
    pub timeout: Duration,
}

/// Which pairs a verification probes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Every pair of hosts of each network (one probe each way between
    /// them, alternating), and every endpoint at least once; isolation: each
    /// endpoint against one endpoint of every other network. The cost
    /// grows with hosts² per network, not endpoints².
    #[default]
    Sampled,
    /// Every ordered pair of endpoints: for small fleets.
    Mesh,
}

impl Default for VerifySpec {
    fn default() -> Self {
        Self {
            reach: true,
            isolation: false,
            containers: false,
            mode: VerifyMode::Sampled,
            timeout: Duration::from_millis(1000),
        }
    }
}

impl FleetSpec {
    /// Reads and checks a spec file.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks spec text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, SpecError> {
        let invalid = |issues| SpecError::Invalid {
            file: file.to_owned(),
            issues,
        };
        let raw = validate::deserialize(text).map_err(|i| invalid(vec![i]))?;
        validate::check(raw).map_err(invalid)
    }

    /// The JSON Schema of the spec file, for editors and CI linters.
    pub fn json_schema() -> serde_json::Value {
        serde_json::Value::from(schemars::schema_for!(raw::RawSpec))
    }
}

#[cfg(test)]
mod tests;
