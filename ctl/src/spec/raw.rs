//! The spec as written: plain serde types, every value that a later check
//! may reject wrapped in `Spanned` so the error can say where it is.
//! Unknown fields are refused — a misspelt `gatway` must not be silently
//! ignored and leave a network without its gateway.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    #[serde(default)]
    pub hosts: BTreeMap<String, RawHost>,
    #[serde(default)]
    pub networks: BTreeMap<String, RawNetwork>,
    #[serde(default)]
    pub verify: Option<RawVerify>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub address: S<String>,
    pub parent: Option<S<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub vlan: Option<S<u32>>,
    pub subnet: Option<S<String>>,
    pub gateway: Option<S<String>>,
    pub ip_range: Option<S<String>>,
    #[serde(default)]
    pub reserved: Vec<S<String>>,
    pub subnet_v6: Option<S<String>>,
    pub gateway_v6: Option<S<String>>,
    pub ip_range_v6: Option<S<String>>,
    #[serde(default)]
    pub reserved_v6: Vec<S<String>>,
    pub mode: Option<S<String>>,
    pub mtu: Option<S<u32>>,
    /// Host access (shim) address per host, so the host itself can reach
    /// the network's endpoints.
    #[serde(default)]
    pub host_access: BTreeMap<String, S<String>>,
    /// Hosts the network spans; default: every host with an endpoint on it.
    #[serde(default)]
    pub hosts: Option<Vec<S<String>>>,
    /// Per-host parent NIC overrides.
    #[serde(default)]
    pub parents: BTreeMap<String, S<String>>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, RawEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub host: S<String>,
    pub netns: Option<S<String>>,
    pub pid: Option<S<u32>>,
    pub ip: Option<S<String>>,
    pub ip6: Option<S<String>>,
    pub mac: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub mesh: Option<bool>,
    pub isolation: Option<bool>,
    pub timeout_ms: Option<S<u64>>,
}
