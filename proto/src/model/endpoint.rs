use std::net::IpAddr;

use ipnet::IpNet;

use super::{IfName, MacAddr, MacvlanMode, NetnsRef, ObjName, ValidationError};

/// Smallest MTU accepted for an endpoint (IPv4's minimum).
pub const MIN_MTU: u32 = 68;

/// A macvlan endpoint to create: what `docker run --network mac_net10
/// --ip 172.16.10.10` sets up, stated in full.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointSpec {
    pub network: ObjName,
    pub name: ObjName,
    pub parent: IfName,
    pub mode: MacvlanMode,
    pub netns: NetnsRef,
    /// Create the named namespace when it does not exist.
    pub create_netns: bool,
    pub ifname: IfName,
    pub addresses: Vec<IpNet>,
    pub gateway: Option<IpAddr>,
    /// `None`: [`MacAddr::stable`].
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub source_macs: Vec<MacAddr>,
}

impl EndpointSpec {
    /// The MAC the endpoint gets: the given one or the stable one.
    pub fn effective_mac(&self) -> MacAddr {
        self.mac
            .unwrap_or_else(|| MacAddr::stable(self.network.as_str(), self.name.as_str()))
    }
}

/// A host-access link to create.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostAccessSpec {
    pub network: ObjName,
    pub parent: IfName,
    pub name: IfName,
    pub addresses: Vec<IpNet>,
    pub routes: Vec<IpNet>,
}

impl HostAccessSpec {
    pub fn mac(&self) -> MacAddr {
        MacAddr::stable(self.network.as_str(), "host-access")
    }
}

/// The default host-access link name: `lh-` + network, cut to 15 bytes.
pub fn default_host_access_name(network: &ObjName) -> IfName {
    let mut name = format!("lh-{network}");
    while name.len() > 15 {
        name.pop();
    }
    // ObjName characters are all valid in interface names, and the prefix
    // keeps it non-empty.
    IfName::from_valid(name)
}

/// Checks an endpoint address: a host address, not its subnet's network or
/// broadcast address.
pub fn check_host_address(field: &str, net: &IpNet) -> Result<(), ValidationError> {
    if let IpNet::V4(v4) = net
        && v4.prefix_len() <= 30
    {
        let a = v4.addr();
        if a == v4.network() || a == v4.broadcast() {
            let what = if a == v4.network() {
                "network"
            } else {
                "broadcast"
            };
            return Err(ValidationError::new(
                field,
                net.to_string(),
                format!("is the {what} address of {}", v4.trunc()),
                "use a host address inside the subnet",
            ));
        }
    }
    Ok(())
}

/// Checks a gateway against the endpoint's addresses: same family, inside
/// one of their subnets, and not one of them.
pub fn check_gateway(field: &str, gw: IpAddr, addresses: &[IpNet]) -> Result<(), ValidationError> {
    let same_family: Vec<&IpNet> = addresses
        .iter()
        .filter(|a| a.addr().is_ipv4() == gw.is_ipv4())
        .collect();
    let family = if gw.is_ipv4() { "IPv4" } else { "IPv6" };
    if same_family.is_empty() {
        return Err(ValidationError::new(
            field,
            gw.to_string(),
            format!("is {family}, but the endpoint has no {family} address"),
            format!(
                "add an {family} address or give an {} gateway",
                if gw.is_ipv4() { "IPv6" } else { "IPv4" }
            ),
        ));
    }
    if same_family.iter().any(|a| a.addr() == gw) {
        return Err(ValidationError::new(
            field,
            gw.to_string(),
            "is the endpoint's own address",
            "give the router's address",
        ));
    }
    if !same_family.iter().any(|a| a.contains(&gw)) {
        let subnets: Vec<String> = same_family.iter().map(|a| a.trunc().to_string()).collect();
        return Err(ValidationError::new(
            field,
            gw.to_string(),
            format!("is outside the endpoint's subnet {}", subnets.join(", ")),
            "give a gateway inside the subnet, e.g. its .1",
        ));
    }
    Ok(())
}

impl MacAddr {
    /// A locally administered unicast MAC derived from network and endpoint
    /// names (FNV-1a, then mixed): the same names always give the same MAC, so an
    /// endpoint that is re-created keeps the MAC its neighbours have cached.
    pub fn stable(network: &str, endpoint: &str) -> MacAddr {
        let mut h = format!("linkherd/{network}/{endpoint}")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        // FNV alone gives similar names similar MACs; a final mix (murmur3's
        // fmix64) spreads every input bit over every output bit.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        let b = h.to_be_bytes();
        MacAddr([(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]])
    }
}

/// Which endpoints a delete request means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSelector {
    /// One endpoint by network and name.
    Named { network: ObjName, name: ObjName },
    /// Every endpoint of a network on this host.
    Network(ObjName),
    /// A macvlan by where it is (also for links linkherd does not own).
    Located { netns: NetnsRef, ifname: IfName },
}

/// A validated `MacvlanService.Delete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteEndpoints {
    pub selector: EndpointSelector,
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().expect("cidr")).collect()
    }

    #[test]
    fn stable_macs_are_local_unicast_and_distinct() {
        let a = MacAddr::stable("mac_net10", "b1");
        assert_eq!(a, MacAddr::stable("mac_net10", "b1"));
        assert_ne!(a, MacAddr::stable("mac_net10", "b2"));
        assert_ne!(a, MacAddr::stable("mac_net20", "b1"));
        assert_eq!(a.0[0] & 0x03, 0x02, "locally administered, unicast: {a}");
        // Names that differ in one character share no MAC bytes by pattern.
        let (b1, b3) = (
            MacAddr::stable("mac_net10", "b1"),
            MacAddr::stable("mac_net10", "b3"),
        );
        let same = b1.0[1..]
            .iter()
            .zip(&b3.0[1..])
            .filter(|(x, y)| x == y)
            .count();
        assert!(same <= 2, "{b1} and {b3} are too alike");
    }

    #[test]
    fn gateway_rules() {
        let a = nets(&["172.16.10.10/24"]);
        assert!(check_gateway("gateway", "172.16.10.1".parse().expect("ip"), &a).is_ok());
        let e =
            check_gateway("gateway", "172.16.20.1".parse().expect("ip"), &a).expect_err("outside");
        assert_eq!(e.problem, "is outside the endpoint's subnet 172.16.10.0/24");
        let e = check_gateway("gateway", "fd00::1".parse().expect("ip"), &a).expect_err("family");
        assert_eq!(e.problem, "is IPv6, but the endpoint has no IPv6 address");
        let e = check_gateway("gateway", "172.16.10.10".parse().expect("ip"), &a).expect_err("own");
        assert_eq!(e.problem, "is the endpoint's own address");
    }

    #[test]
    fn host_addresses() {
        assert!(check_host_address("addresses", &"172.16.10.10/24".parse().expect("cidr")).is_ok());
        let e = check_host_address("addresses", &"172.16.10.0/24".parse().expect("cidr"))
            .expect_err("net");
        assert_eq!(e.problem, "is the network address of 172.16.10.0/24");
        let e = check_host_address("addresses", &"172.16.10.255/24".parse().expect("cidr"))
            .expect_err("bc");
        assert_eq!(e.problem, "is the broadcast address of 172.16.10.0/24");
        assert!(check_host_address("addresses", &"10.0.0.1/32".parse().expect("cidr")).is_ok());
    }

    #[test]
    fn host_access_names_fit() {
        let n = ObjName::parse("network", "a_very_long_network_name").expect("name");
        assert_eq!(default_host_access_name(&n).as_str(), "lh-a_very_long_");
    }
}

/// An endpoint as observed on a host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EndpointState {
    pub network: String,
    pub name: String,
    pub parent: String,
    pub mode: MacvlanMode,
    pub netns: NetnsRef,
    pub ifname: String,
    pub addresses: Vec<IpNet>,
    pub gateway: Option<IpAddr>,
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_macs: Vec<MacAddr>,
    pub owned: bool,
    pub parent_created: bool,
    pub netns_created: bool,
    /// The link inside the namespace as the kernel reports it (state,
    /// counters), when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<super::Interface>,
}

/// A host-access link as observed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostAccessState {
    pub network: String,
    pub parent: String,
    pub name: String,
    pub addresses: Vec<IpNet>,
    pub routes: Vec<IpNet>,
    pub mac: Option<MacAddr>,
    pub owned: bool,
}
