//! The addresses of a subnet that no host may have, one rule for the
//! controller's IPAM and the agents' allocators alike.

use std::net::IpAddr;

use ipnet::IpNet;

/// The subnet's own addresses: its network address, and for IPv4 its
/// broadcast address (a /31 or /32 has neither, RFC 3021).
pub fn subnet_specials(subnet: &IpNet) -> Vec<IpAddr> {
    match subnet {
        IpNet::V4(n) if n.prefix_len() < 31 => {
            vec![IpAddr::V4(n.network()), IpAddr::V4(n.broadcast())]
        }
        IpNet::V4(_) => Vec::new(),
        IpNet::V6(n) => vec![IpAddr::V6(n.network())],
    }
}

/// Whether `a` is one of [`subnet_specials`].
pub fn is_subnet_special(subnet: &IpNet, a: IpAddr) -> bool {
    subnet_specials(subnet).contains(&a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    #[test]
    fn network_and_broadcast_except_on_point_to_point_links() {
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        assert_eq!(
            subnet_specials(&net("10.0.0.0/24")),
            [ip("10.0.0.0"), ip("10.0.0.255")]
        );
        assert!(subnet_specials(&net("10.0.0.0/31")).is_empty());
        assert!(subnet_specials(&net("10.0.0.1/32")).is_empty());
        assert_eq!(subnet_specials(&net("fd00::/64")), [ip("fd00::")]);
        assert!(is_subnet_special(&net("10.0.0.0/24"), ip("10.0.0.255")));
        assert!(!is_subnet_special(&net("10.0.0.0/24"), ip("10.0.0.1")));
    }
}
