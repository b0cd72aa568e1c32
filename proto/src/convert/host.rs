//! `host.proto`: a host's desired state (`HostService.Plan` / `Apply`),
//! validated, and what it owns (`GetState`), both ways.

use std::collections::BTreeSet;

use super::{DecodeError, catalog_network};
use crate::{
    model::{
        CatalogNetwork, Desired, EndpointSpec, HostAccessSpec, IfName, ObjName, OwnedObjects,
        ValidationError, VlanSpec,
        bounds::{MAX_DESIRED_ENDPOINTS, MAX_DESIRED_NETWORKS, MAX_DESIRED_VLANS, check_count},
    },
    pb,
};

/// Re-roots a field path: `endpoint.mac` -> `desired.endpoints[2].mac`.
fn at(err: ValidationError, from: &str, to: String) -> ValidationError {
    let field = err
        .field
        .strip_prefix(from)
        .map(str::to_owned)
        .unwrap_or(err.field.clone());
    ValidationError {
        field: format!("{to}{field}"),
        ..err
    }
}

impl TryFrom<pb::DesiredState> for Desired {
    type Error = ValidationError;
    fn try_from(d: pb::DesiredState) -> Result<Self, Self::Error> {
        check_counts(&d)?;
        let vlans = vlans(d.vlans)?;
        let absent_vlans = absent_vlans(&d.absent_vlans, &vlans)?;
        let host_access = d
            .host_access
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                HostAccessSpec::try_from(pb::CreateHostAccessRequest {
                    host_access: Some(h),
                })
                .map_err(|err| at(err, "host_access.", format!("desired.host_access[{i}].")))
            })
            .collect::<Result<_, _>>()?;
        let networks = d
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| ObjName::parse(&format!("desired.networks[{i}]"), n))
            .collect::<Result<_, _>>()?;
        Ok(Desired {
            vlans,
            endpoints: endpoints(d.endpoints)?,
            host_access,
            networks,
            absent_vlans,
            catalog: catalog(d.catalog)?,
        })
    }
}

/// Every list within its bound, before any element is parsed.
fn check_counts(d: &pb::DesiredState) -> Result<(), ValidationError> {
    check_count("desired.vlans", d.vlans.len(), MAX_DESIRED_VLANS, "VLANs")?;
    check_count(
        "desired.absent_vlans",
        d.absent_vlans.len(),
        MAX_DESIRED_VLANS,
        "VLANs",
    )?;
    check_count(
        "desired.endpoints",
        d.endpoints.len(),
        MAX_DESIRED_ENDPOINTS,
        "endpoints",
    )?;
    check_count(
        "desired.host_access",
        d.host_access.len(),
        MAX_DESIRED_NETWORKS,
        "host accesses",
    )?;
    check_count(
        "desired.networks",
        d.networks.len(),
        MAX_DESIRED_NETWORKS,
        "networks",
    )?;
    check_count(
        "desired.catalog",
        d.catalog.len(),
        MAX_DESIRED_NETWORKS,
        "catalog networks",
    )
}

/// The catalog, each network once, in name order.
fn catalog(raw: Vec<pb::CatalogNetwork>) -> Result<Vec<CatalogNetwork>, ValidationError> {
    let mut out: Vec<CatalogNetwork> = Vec::with_capacity(raw.len());
    let mut names = BTreeSet::new();
    for (i, n) in raw.into_iter().enumerate() {
        let f = format!("desired.catalog[{i}]");
        let net = super::catalog_network(&f, n)?;
        if !names.insert(net.name.clone()) {
            return Err(ValidationError::new(
                format!("{f}.name"),
                net.name.to_string(),
                "is listed twice",
                "list each network of the catalog once",
            ));
        }
        out.push(net);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The wanted VLANs, each name once (a set: O(n log n)).
fn vlans(raw: Vec<pb::Vlan>) -> Result<Vec<VlanSpec>, ValidationError> {
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        let f = format!("desired.vlans[{i}].");
        let req = pb::CreateVlanRequest {
            parent: v.parent,
            id: v.id,
            protocol: v.protocol,
            name: v.name,
            mtu: v.mtu,
        };
        let spec = VlanSpec::try_from(req).map_err(|e| at(e, "", f.clone()))?;
        if !names.insert(spec.name.clone()) {
            return Err(ValidationError::new(
                format!("{f}name"),
                spec.name.to_string(),
                "is listed twice",
                "list each VLAN once",
            ));
        }
        out.push(spec);
    }
    Ok(out)
}

/// The endpoints, each (network, name) once.
fn endpoints(raw: Vec<pb::MacvlanEndpoint>) -> Result<Vec<EndpointSpec>, ValidationError> {
    let mut keys = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, e) in raw.into_iter().enumerate() {
        let f = format!("desired.endpoints[{i}].");
        // Named namespaces are created as needed, as apply would.
        let create_netns = matches!(
            e.netns.as_ref().and_then(|n| n.target.as_ref()),
            Some(pb::netns_target::Target::Name(_))
        );
        let spec = EndpointSpec::try_from(pb::CreateMacvlanRequest {
            endpoint: Some(e),
            create_netns,
        })
        .map_err(|err| at(err, "endpoint.", f.clone()))?;
        if !keys.insert((spec.network.clone(), spec.name.clone())) {
            return Err(ValidationError::new(
                format!("{f}name"),
                format!("{}/{}", spec.network, spec.name),
                "is listed twice",
                "give each endpoint of a network its own name",
            ));
        }
        out.push(spec);
    }
    Ok(out)
}

/// VLANs that must not exist; none may also be wanted.
fn absent_vlans(raw: &[String], wanted: &[VlanSpec]) -> Result<Vec<IfName>, ValidationError> {
    let wanted: BTreeSet<&IfName> = wanted.iter().map(|v| &v.name).collect();
    raw.iter()
        .enumerate()
        .map(|(i, v)| {
            let f = format!("desired.absent_vlans[{i}]");
            let name = IfName::parse(&f, v)?;
            if wanted.contains(&name) {
                return Err(ValidationError::new(
                    f,
                    v,
                    "is also listed in desired.vlans",
                    "a VLAN is either wanted or absent: drop one of the two",
                ));
            }
            Ok(name)
        })
        .collect()
}

/// The wire form a client sends to `HostService.Plan` / `Apply`: exactly
/// what [`Desired::try_from`] reads back (no observed-only fields are set).
impl From<&Desired> for pb::DesiredState {
    fn from(d: &Desired) -> Self {
        let strings = |v: &[ipnet::IpNet]| v.iter().map(ToString::to_string).collect();
        Self {
            vlans: d
                .vlans
                .iter()
                .map(|v| pb::Vlan {
                    name: v.name.to_string(),
                    parent: v.parent.to_string(),
                    id: u32::from(v.id.get()),
                    protocol: pb::VlanProtocol::from(v.protocol).into(),
                    mtu: v.mtu.unwrap_or(0),
                    ..Default::default()
                })
                .collect(),
            endpoints: d
                .endpoints
                .iter()
                .map(|e| pb::MacvlanEndpoint {
                    network: e.network.to_string(),
                    name: e.name.to_string(),
                    parent: e.parent.to_string(),
                    mode: pb::MacvlanMode::from(e.mode).into(),
                    netns: Some(super::types::netns_to_pb(&e.netns)),
                    ifname: e.ifname.to_string(),
                    addresses: strings(&e.addresses),
                    gateway: e.gateway.map(|g| g.to_string()).unwrap_or_default(),
                    mac: e.mac.map(|m| m.to_string()).unwrap_or_default(),
                    mtu: e.mtu.unwrap_or(0),
                    source_macs: e.source_macs.iter().map(ToString::to_string).collect(),
                    ..Default::default()
                })
                .collect(),
            host_access: d
                .host_access
                .iter()
                .map(|h| pb::HostAccess {
                    network: h.network.to_string(),
                    parent: h.parent.to_string(),
                    name: h.name.to_string(),
                    addresses: strings(&h.addresses),
                    routes: strings(&h.routes),
                    ..Default::default()
                })
                .collect(),
            networks: d.networks.iter().map(ToString::to_string).collect(),
            absent_vlans: d.absent_vlans.iter().map(ToString::to_string).collect(),
            catalog: d.catalog.iter().map(Into::into).collect(),
        }
    }
}

impl From<OwnedObjects> for pb::OwnedObjects {
    fn from(o: OwnedObjects) -> Self {
        Self {
            vlans: o.vlans.into_iter().map(Into::into).collect(),
            endpoints: o.endpoints.into_iter().map(Into::into).collect(),
            host_access: o.host_access.into_iter().map(Into::into).collect(),
            catalog: o.catalog.iter().map(Into::into).collect(),
        }
    }
}

/// What an agent reports owning, decoded for `linkherdctl`: a value the
/// model cannot hold (a newer or broken agent) is an error, not garbage.
impl TryFrom<pb::OwnedObjects> for OwnedObjects {
    type Error = DecodeError;
    fn try_from(o: pb::OwnedObjects) -> Result<Self, Self::Error> {
        Ok(Self {
            vlans: o
                .vlans
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            endpoints: o
                .endpoints
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            host_access: o
                .host_access
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            catalog: o
                .catalog
                .into_iter()
                .map(|n| {
                    catalog_network("catalog", n).map_err(|e| DecodeError {
                        field: "catalog",
                        value: e.to_string(),
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_path_in_the_desired_state() {
        let ep = |ip: &str| pb::MacvlanEndpoint {
            network: "n".into(),
            name: "b1".into(),
            parent: "ens192".into(),
            mode: pb::MacvlanMode::Bridge.into(),
            netns: Some(pb::NetnsTarget {
                target: Some(pb::netns_target::Target::Name("b1".into())),
            }),
            addresses: vec![ip.into()],
            ..Default::default()
        };
        let err = Desired::try_from(pb::DesiredState {
            endpoints: vec![ep("10.0.0.1/24"), ep("10.0.0.300/24")],
            ..Default::default()
        })
        .expect_err("bad address");
        assert_eq!(err.field, "desired.endpoints[1].addresses");
        let err = Desired::try_from(pb::DesiredState {
            endpoints: vec![ep("10.0.0.1/24"), ep("10.0.0.2/24")],
            ..Default::default()
        })
        .expect_err("twice");
        assert_eq!(
            (err.field.as_str(), err.problem.as_str()),
            ("desired.endpoints[1].name", "is listed twice")
        );
        let ok = Desired::try_from(pb::DesiredState {
            endpoints: vec![ep("10.0.0.1/24")],
            ..Default::default()
        })
        .expect("ok");
        assert!(ok.endpoints[0].create_netns);
    }

    /// What an agent reports owning reads back into the model as it was
    /// (linkherdctl's engine works on the model); a value the model cannot
    /// hold is a decode error naming the field.
    #[test]
    fn owned_objects_read_back_and_refuse_garbage() {
        use crate::model::{
            CatalogPool, EndpointState, HostAccessState, MacAddr, MacvlanMode, VlanProtocol,
            VlanState,
        };
        let owned = OwnedObjects {
            vlans: vec![VlanState {
                name: "ens192.10".into(),
                parent: "ens192".into(),
                id: 10,
                protocol: VlanProtocol::Ieee8021Q,
                mtu: 1500,
                reorder_header: true,
                owned: true,
                auto_for_network: Some("mac_net10".into()),
            }],
            // Counters and carrier are not what GetState reports.
            endpoints: vec![EndpointState {
                interface: None,
                ..super::super::macvlan::tests::endpoint_state_sample()
            }],
            host_access: vec![HostAccessState {
                network: "mac_net10".into(),
                parent: "ens192.10".into(),
                name: "lh-mac_net10".into(),
                addresses: vec!["172.16.10.254/32".parse().expect("cidr")],
                routes: vec!["172.16.10.10/32".parse().expect("cidr")],
                mac: Some(MacAddr::stable("mac_net10", "host-access")),
                owned: true,
            }],
            catalog: vec![CatalogNetwork {
                name: ObjName::parse("name", "mac_net10").expect("name"),
                parent: IfName::parse("parent", "ens192.10").expect("parent"),
                vlan: Some(crate::model::VlanId::new("vlan", 10).expect("vlan")),
                mode: MacvlanMode::Bridge,
                mtu: None,
                v4: Some(CatalogPool {
                    subnet: "172.16.10.0/24".parse().expect("subnet"),
                    gateway: Some("172.16.10.1".parse().expect("gateway")),
                    blocks: vec!["172.16.10.48/28".parse().expect("block")],
                    excluded: vec![],
                }),
                v6: None,
            }],
        };
        let wire = pb::OwnedObjects::from(owned.clone());
        assert_eq!(OwnedObjects::try_from(wire.clone()), Ok(owned));
        let mut bad = wire;
        bad.endpoints[0].addresses = vec!["not-an-address".into()];
        let err = OwnedObjects::try_from(bad).expect_err("garbage");
        assert_eq!(err.value, "not-an-address");
    }
}
