//! `macvlan.proto`: endpoint and host-access requests and objects, both ways.

use ipnet::IpNet;

use super::types::{
    DecodeError, decode, mtu, netns_target, netns_to_pb, parse_cidr, parse_ip, parse_mac,
};
use crate::{
    model::{
        DeleteEndpoints, EndpointSelector, EndpointSpec, EndpointState, HostAccessSpec,
        HostAccessState, IfName, MacAddr, MacvlanMode, NetnsRef, ObjName, ValidationError,
        bounds::{MAX_ADDRESSES, MAX_ROUTES, MAX_SOURCE_MACS, check_count},
        check_gateway, check_host_address, default_host_access_name,
    },
    pb,
};

impl TryFrom<pb::CreateMacvlanRequest> for EndpointSpec {
    type Error = ValidationError;
    fn try_from(r: pb::CreateMacvlanRequest) -> Result<Self, Self::Error> {
        let e = r.endpoint.unwrap_or_default();
        let f = |s: &str| format!("endpoint.{s}");
        let network = ObjName::parse(&f("network"), &e.network)?;
        let name = ObjName::parse(&f("name"), &e.name)?;
        let parent = IfName::parse(&f("parent"), &e.parent)?;
        let mode = endpoint_mode(e.mode)?;
        let netns = netns_target(&f("netns"), e.netns)?.ok_or_else(|| {
            ValidationError::new(
                f("netns"),
                "",
                "an endpoint needs a network namespace",
                "give a namespace name, a namespace path or a process id",
            )
        })?;
        if r.create_netns && !matches!(netns, NetnsRef::Named(_)) {
            return Err(ValidationError::new(
                "create_netns",
                "true",
                "only a named namespace can be created",
                "give the namespace by name, or create the process's namespace yourself",
            ));
        }
        let ifname = if e.ifname.is_empty() {
            IfName::parse(&f("ifname"), "eth0")?
        } else {
            IfName::parse(&f("ifname"), &e.ifname)?
        };
        let addresses = endpoint_addresses(&e.addresses)?;
        let gateway = match e.gateway.as_str() {
            "" => None,
            g => {
                let gw = parse_ip(&f("gateway"), g)?;
                check_gateway(&f("gateway"), gw, &addresses)?;
                Some(gw)
            }
        };
        let mac = match e.mac.as_str() {
            "" => None,
            m => Some(parse_mac(&f("mac"), m)?),
        };
        let source_macs = endpoint_source_macs(&e.source_macs, mode)?;
        Ok(Self {
            network,
            name,
            parent,
            mode,
            netns,
            create_netns: r.create_netns,
            ifname,
            addresses,
            gateway,
            mac,
            mtu: mtu(&f("mtu"), e.mtu)?,
            source_macs,
        })
    }
}

/// An endpoint's mode: a known value of the enum, and a mode linkherd
/// supports.
fn endpoint_mode(raw: i32) -> Result<MacvlanMode, ValidationError> {
    let mode = pb::MacvlanMode::try_from(raw).map_err(|_| {
        ValidationError::new(
            "endpoint.mode",
            raw.to_string(),
            "is not a macvlan mode",
            "choose bridge, vepa, private, passthru or source",
        )
    })?;
    MacvlanMode::try_from(mode).map_err(|err| err.within("endpoint"))
}

/// An endpoint's addresses: host addresses, each once. The duplicate check
/// is a set, so a huge list costs O(n log n), not O(n²).
fn endpoint_addresses(raw: &[String]) -> Result<Vec<IpNet>, ValidationError> {
    let field = "endpoint.addresses";
    check_count(field, raw.len(), MAX_ADDRESSES, "addresses")?;
    let mut seen = std::collections::BTreeSet::new();
    let mut addresses = Vec::with_capacity(raw.len());
    for a in raw {
        let net = parse_cidr(field, a)?;
        check_host_address(field, &net)?;
        if !seen.insert(net.addr()) {
            return Err(ValidationError::new(
                field,
                a,
                "is given twice",
                "list each address once",
            ));
        }
        addresses.push(net);
    }
    Ok(addresses)
}

/// Source MACs: only for mode source.
fn endpoint_source_macs(
    raw: &[String],
    mode: MacvlanMode,
) -> Result<Vec<MacAddr>, ValidationError> {
    let field = "endpoint.source_macs";
    check_count(field, raw.len(), MAX_SOURCE_MACS, "source MACs")?;
    let macs = raw
        .iter()
        .map(|m| parse_mac(field, m))
        .collect::<Result<Vec<_>, _>>()?;
    if !macs.is_empty() && mode != MacvlanMode::Source {
        return Err(ValidationError::new(
            field,
            raw.join(","),
            format!(
                "a source MAC list only applies to mode source, not {}",
                mode.as_str()
            ),
            "drop the list, or use mode source",
        ));
    }
    Ok(macs)
}

/// The spec that re-creates an observed endpoint (and its namespace, when
/// linkherd made that), checked by the same rules as a request: how a
/// transaction journals the undo of a removal.
impl TryFrom<EndpointState> for EndpointSpec {
    type Error = ValidationError;
    fn try_from(mut old: EndpointState) -> Result<Self, Self::Error> {
        let create_netns = old.netns_created;
        // Counters and carrier are not part of what to re-create.
        old.interface = None;
        EndpointSpec::try_from(pb::CreateMacvlanRequest {
            endpoint: Some(old.into()),
            create_netns,
        })
    }
}

/// The spec that re-creates observed host access, checked like a request.
impl TryFrom<HostAccessState> for HostAccessSpec {
    type Error = ValidationError;
    fn try_from(old: HostAccessState) -> Result<Self, Self::Error> {
        HostAccessSpec::try_from(pb::CreateHostAccessRequest {
            host_access: Some(old.into()),
        })
    }
}

impl TryFrom<pb::CreateHostAccessRequest> for HostAccessSpec {
    type Error = ValidationError;
    fn try_from(r: pb::CreateHostAccessRequest) -> Result<Self, Self::Error> {
        let h = r.host_access.unwrap_or_default();
        let network = ObjName::parse("host_access.network", &h.network)?;
        let parent = IfName::parse("host_access.parent", &h.parent)?;
        let name = if h.name.is_empty() {
            default_host_access_name(&network)
        } else {
            IfName::parse("host_access.name", &h.name)?
        };
        if h.addresses.is_empty() {
            return Err(ValidationError::new(
                "host_access.addresses",
                "",
                "the host needs an address of its own on the network",
                "give a free address, e.g. 172.16.10.254/32",
            ));
        }
        check_count(
            "host_access.addresses",
            h.addresses.len(),
            MAX_ADDRESSES,
            "addresses",
        )?;
        check_count("host_access.routes", h.routes.len(), MAX_ROUTES, "routes")?;
        let addresses = h
            .addresses
            .iter()
            .map(|a| parse_cidr("host_access.addresses", a))
            .collect::<Result<Vec<_>, _>>()?;
        let routes = h
            .routes
            .iter()
            .map(|a| {
                let net = parse_cidr("host_access.routes", a)?;
                if net.trunc() != net {
                    return Err(ValidationError::new(
                        "host_access.routes",
                        a,
                        format!("has host bits set (the network is {})", net.trunc()),
                        format!("write {}", net.trunc()),
                    ));
                }
                Ok(net)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            network,
            parent,
            name,
            addresses,
            routes,
        })
    }
}

impl TryFrom<pb::DeleteMacvlanRequest> for DeleteEndpoints {
    type Error = ValidationError;
    fn try_from(r: pb::DeleteMacvlanRequest) -> Result<Self, Self::Error> {
        let netns = netns_target("netns", r.netns)?;
        let selector = match (r.network.is_empty(), r.name.is_empty(), netns) {
            (false, false, _) => EndpointSelector::Named {
                network: ObjName::parse("network", &r.network)?,
                name: ObjName::parse("name", &r.name)?,
            },
            (false, true, None) => {
                EndpointSelector::Network(ObjName::parse("network", &r.network)?)
            }
            (true, _, Some(netns)) => EndpointSelector::Located {
                netns,
                ifname: IfName::parse(
                    "ifname",
                    if r.ifname.is_empty() {
                        "eth0"
                    } else {
                        &r.ifname
                    },
                )?,
            },
            _ => {
                return Err(ValidationError::new(
                    "network",
                    r.network,
                    "does not say which endpoint to delete",
                    "give network and name, a network alone (all its endpoints), or netns and ifname",
                ));
            }
        };
        Ok(Self {
            selector,
            force: r.force,
        })
    }
}

impl From<EndpointState> for pb::MacvlanEndpoint {
    fn from(e: EndpointState) -> Self {
        Self {
            network: e.network,
            name: e.name,
            parent: e.parent,
            mode: pb::MacvlanMode::from(e.mode).into(),
            netns: Some(netns_to_pb(&e.netns)),
            ifname: e.ifname,
            addresses: e.addresses.iter().map(ToString::to_string).collect(),
            gateway: e.gateway.map(|g| g.to_string()).unwrap_or_default(),
            mac: e.mac.map(|m| m.to_string()).unwrap_or_default(),
            mtu: e.mtu,
            source_macs: e.source_macs.iter().map(ToString::to_string).collect(),
            owned: e.owned,
            interface: e.interface.map(Into::into),
            parent_created: e.parent_created,
            netns_created: e.netns_created,
        }
    }
}

impl TryFrom<pb::MacvlanEndpoint> for EndpointState {
    type Error = DecodeError;
    fn try_from(e: pb::MacvlanEndpoint) -> Result<Self, Self::Error> {
        let mode = MacvlanMode::try_from(e.mode()).map_err(|_| DecodeError {
            field: "endpoint.mode",
            value: e.mode.to_string(),
        })?;
        let netns = netns_target("netns", e.netns)
            .ok()
            .flatten()
            .ok_or(DecodeError {
                field: "endpoint.netns",
                value: String::new(),
            })?;
        Ok(Self {
            mode,
            netns,
            addresses: e
                .addresses
                .iter()
                .map(|a| decode("endpoint.addresses", a, |s| s.parse().ok()))
                .collect::<Result<_, _>>()?,
            gateway: match e.gateway.as_str() {
                "" => None,
                g => Some(decode("endpoint.gateway", g, |s| s.parse().ok())?),
            },
            mac: match e.mac.as_str() {
                "" => None,
                m => Some(decode("endpoint.mac", m, |s| {
                    MacAddr::parse("mac", s).ok()
                })?),
            },
            source_macs: e
                .source_macs
                .iter()
                .map(|m| decode("endpoint.source_macs", m, |s| MacAddr::parse("mac", s).ok()))
                .collect::<Result<_, _>>()?,
            network: e.network,
            name: e.name,
            parent: e.parent,
            ifname: e.ifname,
            mtu: e.mtu,
            owned: e.owned,
            parent_created: e.parent_created,
            netns_created: e.netns_created,
            interface: e
                .interface
                .map(crate::model::Interface::try_from)
                .transpose()?,
        })
    }
}

impl From<HostAccessState> for pb::HostAccess {
    fn from(h: HostAccessState) -> Self {
        Self {
            network: h.network,
            parent: h.parent,
            name: h.name,
            addresses: h.addresses.iter().map(ToString::to_string).collect(),
            routes: h.routes.iter().map(ToString::to_string).collect(),
            owned: h.owned,
            mac: h.mac.map(|m| m.to_string()).unwrap_or_default(),
            interface: None,
        }
    }
}

impl TryFrom<pb::HostAccess> for HostAccessState {
    type Error = DecodeError;
    fn try_from(h: pb::HostAccess) -> Result<Self, Self::Error> {
        Ok(Self {
            addresses: h
                .addresses
                .iter()
                .map(|a| decode("host_access.addresses", a, |s| s.parse().ok()))
                .collect::<Result<_, _>>()?,
            routes: h
                .routes
                .iter()
                .map(|a| decode("host_access.routes", a, |s| s.parse().ok()))
                .collect::<Result<_, _>>()?,
            mac: match h.mac.as_str() {
                "" => None,
                m => Some(decode("host_access.mac", m, |s| {
                    MacAddr::parse("mac", s).ok()
                })?),
            },
            network: h.network,
            parent: h.parent,
            name: h.name,
            owned: h.owned,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn endpoint() -> pb::MacvlanEndpoint {
        pb::MacvlanEndpoint {
            network: "mac_net10".into(),
            name: "b1".into(),
            parent: "ens192.10".into(),
            mode: pb::MacvlanMode::Bridge.into(),
            netns: Some(pb::NetnsTarget {
                target: Some(pb::netns_target::Target::Name("b1".into())),
            }),
            addresses: vec!["172.16.10.10/24".into()],
            gateway: "172.16.10.1".into(),
            ..Default::default()
        }
    }

    fn create(e: pb::MacvlanEndpoint) -> Result<EndpointSpec, ValidationError> {
        EndpointSpec::try_from(pb::CreateMacvlanRequest {
            endpoint: Some(e),
            create_netns: true,
        })
    }

    #[test]
    fn a_seed_endpoint_validates_with_defaults() {
        let s = create(endpoint()).expect("valid");
        assert_eq!(s.ifname.as_str(), "eth0");
        assert_eq!(s.mode, MacvlanMode::Bridge);
        assert_eq!(s.effective_mac(), MacAddr::stable("mac_net10", "b1"));
        assert_eq!(s.gateway, Some("172.16.10.1".parse().expect("ip")));
    }

    type Mutation = Box<dyn Fn(&mut pb::MacvlanEndpoint)>;

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(Mutation, &str, &str)> = vec![
            (
                Box::new(|e| e.mode = 0),
                "endpoint.mode",
                "a macvlan mode is required (the kernel would silently pick vepa)",
            ),
            (
                Box::new(|e| e.addresses = vec!["172.16.10.300/24".into()]),
                "endpoint.addresses",
                "is not an address with prefix length",
            ),
            (
                Box::new(|e| e.addresses = vec!["172.16.10.0/24".into()]),
                "endpoint.addresses",
                "is the network address of 172.16.10.0/24",
            ),
            (
                Box::new(|e| e.gateway = "172.16.20.1".into()),
                "endpoint.gateway",
                "is outside the endpoint's subnet 172.16.10.0/24",
            ),
            (
                Box::new(|e| e.gateway = "fd00::1".into()),
                "endpoint.gateway",
                "is IPv6, but the endpoint has no IPv6 address",
            ),
            (
                Box::new(|e| e.gateway = "172.16.10.1/24".into()),
                "endpoint.gateway",
                "is not an IP address",
            ),
            (
                Box::new(|e| e.mac = "01:00:5e:00:00:01".into()),
                "endpoint.mac",
                "is a multicast address (the first byte is odd)",
            ),
            (
                Box::new(|e| e.mac = "zz".into()),
                "endpoint.mac",
                "is not a MAC address",
            ),
            (
                Box::new(|e| e.source_macs = vec!["02:00:00:00:00:01".into()]),
                "endpoint.source_macs",
                "a source MAC list only applies to mode source, not bridge",
            ),
            (
                Box::new(|e| e.netns = None),
                "endpoint.netns",
                "an endpoint needs a network namespace",
            ),
            (
                Box::new(|e| e.parent = "a/b".into()),
                "endpoint.parent",
                "contains '/', which Linux does not allow in interface names",
            ),
            (
                Box::new(|e| e.mtu = 40),
                "endpoint.mtu",
                "is below the minimum MTU 68",
            ),
            (
                Box::new(|e| e.network = "bad name".into()),
                "endpoint.network",
                "is not a valid name",
            ),
            (
                Box::new(|e| e.mode = 42),
                "endpoint.mode",
                "is not a macvlan mode",
            ),
        ];
        for (mutate, field, problem) in cases {
            let mut e = endpoint();
            mutate(&mut e);
            let err = create(e).expect_err(field);
            assert_eq!((err.field.as_str(), err.problem.as_str()), (field, problem));
        }
    }

    #[test]
    fn source_mode_takes_its_list() {
        let mut e = endpoint();
        e.mode = pb::MacvlanMode::Source.into();
        e.source_macs = vec!["02:00:00:00:00:01".into()];
        assert_eq!(create(e).expect("valid").source_macs.len(), 1);
    }

    #[test]
    fn create_netns_needs_a_name() {
        let mut e = endpoint();
        e.netns = Some(pb::NetnsTarget {
            target: Some(pb::netns_target::Target::Pid(1)),
        });
        let err = create(e).expect_err("pid");
        assert_eq!(err.field, "create_netns");
    }

    #[test]
    fn delete_selectors() {
        let d = DeleteEndpoints::try_from(pb::DeleteMacvlanRequest {
            network: "mac_net10".into(),
            ..Default::default()
        })
        .expect("network");
        assert!(matches!(d.selector, EndpointSelector::Network(_)));
        let err =
            DeleteEndpoints::try_from(pb::DeleteMacvlanRequest::default()).expect_err("nothing");
        assert_eq!(err.problem, "does not say which endpoint to delete");
    }

    #[test]
    fn host_access_routes_have_no_host_bits() {
        let err = HostAccessSpec::try_from(pb::CreateHostAccessRequest {
            host_access: Some(pb::HostAccess {
                network: "mac_net10".into(),
                parent: "ens192".into(),
                addresses: vec!["172.16.10.254/32".into()],
                routes: vec!["172.16.10.5/24".into()],
                ..Default::default()
            }),
        })
        .expect_err("host bits");
        assert_eq!(
            err.problem,
            "has host bits set (the network is 172.16.10.0/24)"
        );
    }

    /// An observed endpoint (b1 of mac_net10, on an automatic VLAN), for
    /// the round trips here and of a host's owned objects.
    pub(in crate::convert) fn endpoint_state_sample() -> EndpointState {
        EndpointState {
            network: "mac_net10".into(),
            name: "b1".into(),
            parent: "ens192.10".into(),
            mode: MacvlanMode::Bridge,
            netns: NetnsRef::Named("b1".into()),
            ifname: "eth0".into(),
            addresses: vec!["172.16.10.10/24".parse().expect("cidr")],
            gateway: Some("172.16.10.1".parse().expect("ip")),
            mac: Some(MacAddr::stable("mac_net10", "b1")),
            mtu: 1500,
            source_macs: vec![],
            owned: true,
            parent_created: true,
            netns_created: false,
            interface: Some(crate::model::interface_sample()),
        }
    }

    #[test]
    fn endpoint_state_round_trips() {
        let s = endpoint_state_sample();
        assert_eq!(
            EndpointState::try_from(pb::MacvlanEndpoint::from(s.clone())),
            Ok(s)
        );
    }
}
