//! The spec as written: plain serde types, every value that a later check
//! may reject wrapped in `Spanned` so the error can say where it is.
//! Unknown fields are refused — a misspelt `gatway` must not be silently
//! ignored and leave a network without its gateway. The doc comments here
//! are the field descriptions of the published JSON Schema.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;

/// A linkherd fleet: hosts, the macvlan networks spanning them, their
/// endpoints, and what to prove after applying.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "linkherd fleet spec")]
pub struct RawSpec {
    /// Hosts by name (the name is used everywhere else in the spec).
    #[serde(default)]
    pub hosts: BTreeMap<String, RawHost>,
    /// Networks by name (1-64 of A-Z a-z 0-9 _ . -), e.g. mac_net10.
    #[serde(default)]
    pub networks: BTreeMap<String, RawNetwork>,
    /// Probes run after applying; the apply is rolled back if they fail.
    #[serde(default)]
    pub verify: Option<RawVerify>,
}

/// A host running linkherd-agent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// The agent's address, https://HOST:PORT.
    #[schemars(with = "String")]
    pub address: S<String>,
    /// The host's parent NIC for every network, e.g. ens192 (override per
    /// network with `parents`).
    #[schemars(with = "Option<String>")]
    pub parent: Option<S<String>>,
    /// Free-form labels, shown in plans and status.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A macvlan network, optionally on an 802.1Q VLAN, across hosts.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// 802.1Q VLAN id (1-4094): endpoints sit on PARENT.ID instead of PARENT.
    #[schemars(with = "Option<u32>", range(min = 1, max = 4094))]
    pub vlan: Option<S<u32>>,
    /// IPv4 subnet, e.g. 172.16.10.0/24; the same on every host.
    #[schemars(with = "Option<String>")]
    pub subnet: Option<S<String>>,
    /// IPv4 default gateway of the endpoints, inside the subnet.
    #[schemars(with = "Option<String>")]
    pub gateway: Option<S<String>>,
    /// Allocate IPv4 addresses only from this prefix (inside the subnet).
    #[schemars(with = "Option<String>")]
    pub ip_range: Option<S<String>>,
    /// IPv4 addresses never allocated (routers, VIPs).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub reserved: Vec<S<String>>,
    /// IPv6 subnet, e.g. fd00:10::/64.
    #[schemars(with = "Option<String>")]
    pub subnet_v6: Option<S<String>>,
    /// IPv6 default gateway, inside subnet_v6.
    #[schemars(with = "Option<String>")]
    pub gateway_v6: Option<S<String>>,
    /// Allocate IPv6 addresses only from this prefix.
    #[schemars(with = "Option<String>")]
    pub ip_range_v6: Option<S<String>>,
    /// IPv6 addresses never allocated.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub reserved_v6: Vec<S<String>>,
    /// Macvlan mode: bridge (default), private, vepa, passthru or source.
    #[schemars(with = "Option<String>")]
    pub mode: Option<S<String>>,
    /// MTU of the endpoints (68-65535); default: the parent's.
    #[schemars(with = "Option<u32>", range(min = 68, max = 65535))]
    pub mtu: Option<S<u32>>,
    /// Host access address per host, so the host itself can reach
    /// the network's endpoints.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub host_access: BTreeMap<String, S<String>>,
    /// Hosts the network spans; default: every host with an endpoint or
    /// host access on it.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub hosts: Option<Vec<S<String>>>,
    /// Parent NIC per host, overriding the host's `parent`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub parents: BTreeMap<String, S<String>>,
    /// Endpoints by name; the name is also the default namespace name.
    #[serde(default)]
    pub endpoints: BTreeMap<String, RawEndpoint>,
    /// Opens the network to containers that runtimes (CNI, Docker) create
    /// on its hosts. With `block` (or `block_v6`), each host gets blocks of
    /// the range and allocates from them on its own, so no two hosts hand
    /// out the same address; without, containers get only the addresses
    /// they ask for.
    pub containers: Option<RawContainers>,
}

/// `networks.NAME.containers`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawContainers {
    /// Prefix length of each host's IPv4 blocks, e.g. 28 (16 addresses).
    #[schemars(with = "Option<u8>", range(min = 1, max = 32))]
    pub block: Option<S<u8>>,
    /// Carve the IPv4 blocks from here (inside the subnet); default: the
    /// network's ip_range, else its subnet.
    #[schemars(with = "Option<String>")]
    pub range: Option<S<String>>,
    /// Prefix length of each host's IPv6 blocks, e.g. 112.
    #[schemars(with = "Option<u8>", range(min = 1, max = 128))]
    pub block_v6: Option<S<u8>>,
    /// Carve the IPv6 blocks from here; default: ip_range_v6, else subnet_v6.
    #[schemars(with = "Option<String>")]
    pub range_v6: Option<S<String>>,
    /// The hosts that offer container addresses; default: every host of
    /// the network.
    #[schemars(with = "Option<Vec<String>>")]
    pub hosts: Option<Vec<S<String>>>,
}

/// A macvlan interface inside a network namespace on one host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    /// The host it lives on (a key of `hosts`).
    #[schemars(with = "String")]
    pub host: S<String>,
    /// Named namespace (/run/netns/NAME); default: the endpoint's name.
    #[schemars(with = "Option<String>")]
    pub netns: Option<S<String>>,
    /// Or: the namespace of this process (e.g. a container's init).
    #[schemars(with = "Option<u32>")]
    pub pid: Option<S<u32>>,
    /// Fixed IPv4 address; default: allocated from the network's range.
    #[schemars(with = "Option<String>")]
    pub ip: Option<S<String>>,
    /// Fixed IPv6 address; default: allocated when the network has subnet_v6.
    #[schemars(with = "Option<String>")]
    pub ip6: Option<S<String>>,
    /// Fixed unicast MAC; default: stable, derived from network and name.
    #[schemars(with = "Option<String>")]
    pub mac: Option<S<String>>,
}

/// `verify.mode`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawVerifyMode {
    Sampled,
    Mesh,
}

/// What to prove after applying.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    /// Endpoints of a network reach each other (default true).
    pub mesh: Option<bool>,
    /// No endpoint reaches an endpoint of another network (default false).
    pub isolation: Option<bool>,
    /// Containers attached to the networks (CNI, Docker) are probed too,
    /// like endpoints: reach, isolation and the address check (default
    /// false).
    pub containers: Option<bool>,
    /// Which pairs are probed: `sampled` (default: every pair of hosts of
    /// each network, every endpoint at least once) or `mesh` (every pair of
    /// endpoints, for small fleets).
    pub mode: Option<RawVerifyMode>,
    /// Timeout of each probe in milliseconds (1-60000, default 1000).
    #[schemars(with = "Option<u64>", range(min = 1, max = 60000))]
    pub timeout_ms: Option<S<u64>>,
}
