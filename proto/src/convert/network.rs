//! Catalog networks (`NetworkService`, `DesiredState.catalog`), both ways.

use super::types::{mtu, parse_cidr, parse_ip};
use crate::{
    model::{
        CatalogNetwork, CatalogPool, Excluded, IfName, MAX_EXCLUDED, MacvlanMode, ObjName,
        ValidationError, VlanId,
    },
    pb,
};

fn pool(field: &str, p: pb::CatalogPool) -> Result<CatalogPool, ValidationError> {
    let subnet = parse_cidr(&format!("{field}.subnet"), &p.subnet)?;
    let gateway = match p.gateway.as_str() {
        "" => None,
        g => Some(parse_ip(&format!("{field}.gateway"), g)?),
    };
    if p.blocks.len() > crate::model::MAX_BLOCKS {
        return Err(ValidationError::new(
            format!("{field}.blocks"),
            p.blocks.len().to_string(),
            format!("is more than {} blocks", crate::model::MAX_BLOCKS),
            "grant fewer, larger blocks",
        ));
    }
    let blocks = p
        .blocks
        .iter()
        .enumerate()
        .map(|(i, b)| parse_cidr(&format!("{field}.blocks[{i}]"), b))
        .collect::<Result<_, _>>()?;
    if p.excluded.len() > MAX_EXCLUDED {
        return Err(ValidationError::new(
            format!("{field}.excluded"),
            p.excluded.len().to_string(),
            format!("is more than {MAX_EXCLUDED} exclusions"),
            "exclude fewer, larger prefixes",
        ));
    }
    let excluded = p
        .excluded
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let prefix = parse_cidr(&format!("{field}.excluded[{i}].prefix"), &e.prefix)?;
            Ok(Excluded { prefix, why: e.why })
        })
        .collect::<Result<_, ValidationError>>()?;
    Ok(CatalogPool {
        subnet,
        gateway,
        blocks,
        excluded,
    })
}

/// Validates a catalog network; `field` roots the error paths
/// (`desired.catalog[2]`).
pub fn catalog_network(
    field: &str,
    n: pb::CatalogNetwork,
) -> Result<CatalogNetwork, ValidationError> {
    let mode = pb::MacvlanMode::try_from(n.mode)
        .ok()
        .map(MacvlanMode::try_from)
        .unwrap_or_else(|| {
            Err(ValidationError::new(
                "mode",
                n.mode.to_string(),
                "is not a macvlan mode",
                "choose bridge, vepa, private, passthru or source",
            ))
        })
        .map_err(|e| ValidationError {
            field: format!("{field}.mode"),
            ..e
        })?;
    let vlan = match n.vlan_id {
        0 => None,
        id => Some(VlanId::new(&format!("{field}.vlan_id"), id)?),
    };
    let net = CatalogNetwork {
        name: ObjName::parse(&format!("{field}.name"), &n.name)?,
        parent: IfName::parse(&format!("{field}.parent"), &n.parent)?,
        vlan,
        mode,
        mtu: mtu(&format!("{field}.mtu"), n.mtu)?,
        v4: n.v4.map(|p| pool(&format!("{field}.v4"), p)).transpose()?,
        v6: n.v6.map(|p| pool(&format!("{field}.v6"), p)).transpose()?,
    };
    net.check(field)?;
    Ok(net)
}

impl From<&CatalogPool> for pb::CatalogPool {
    fn from(p: &CatalogPool) -> Self {
        Self {
            subnet: p.subnet.to_string(),
            gateway: p.gateway.map(|g| g.to_string()).unwrap_or_default(),
            blocks: p.blocks.iter().map(ToString::to_string).collect(),
            excluded: p
                .excluded
                .iter()
                .map(|e| pb::Excluded {
                    prefix: e.prefix.to_string(),
                    why: e.why.clone(),
                })
                .collect(),
        }
    }
}

impl From<&CatalogNetwork> for pb::CatalogNetwork {
    fn from(n: &CatalogNetwork) -> Self {
        Self {
            name: n.name.to_string(),
            parent: n.parent.to_string(),
            vlan_id: n.vlan.map_or(0, |v| u32::from(v.get())),
            mode: pb::MacvlanMode::from(n.mode).into(),
            mtu: n.mtu.unwrap_or(0),
            v4: n.v4.as_ref().map(Into::into),
            v6: n.v6.as_ref().map(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> pb::CatalogNetwork {
        pb::CatalogNetwork {
            name: "mac_net10".into(),
            parent: "ens192.10".into(),
            vlan_id: 10,
            mode: pb::MacvlanMode::Bridge.into(),
            mtu: 0,
            v4: Some(pb::CatalogPool {
                subnet: "172.16.10.0/24".into(),
                gateway: "172.16.10.1".into(),
                blocks: vec!["172.16.10.48/28".into(), "172.16.10.64/28".into()],
                excluded: vec![pb::Excluded {
                    prefix: "172.16.10.96/28".into(),
                    why: "no2's container block".into(),
                }],
            }),
            v6: None,
        }
    }

    #[test]
    fn a_catalog_network_round_trips() {
        let n = catalog_network("n", sample()).expect("valid");
        assert_eq!(n.vlan.map(VlanId::get), Some(10));
        assert_eq!(n.v4.as_ref().map(|p| p.blocks.len()), Some(2));
        assert_eq!(pb::CatalogNetwork::from(&n), sample());
    }

    #[test]
    fn bad_blocks_and_families_are_named() {
        type Case = (fn(&mut pb::CatalogNetwork), &'static str, &'static str);
        let cases: [Case; 6] = [
            (
                |n| n.v4.as_mut().expect("v4").excluded[0].prefix = "172.16.10.64/27".into(),
                "n.v4.excluded[0]",
                "overlaps this host's block 172.16.10.64/28",
            ),
            (
                |n| n.v4.as_mut().expect("v4").blocks[1] = "172.16.10.56/29".into(),
                "n.v4.blocks[1]",
                "overlaps the block 172.16.10.48/28",
            ),
            (
                |n| n.v4.as_mut().expect("v4").blocks[0] = "172.16.11.0/28".into(),
                "n.v4.blocks[0]",
                "is not a prefix inside the subnet 172.16.10.0/24",
            ),
            (
                |n| n.v4.as_mut().expect("v4").gateway = "172.16.11.1".into(),
                "n.v4.gateway",
                "is outside the subnet 172.16.10.0/24",
            ),
            (
                |n| n.v4.as_mut().expect("v4").subnet = "fd00::/64".into(),
                "n.v4.subnet",
                "is not an IPv4 prefix without host bits",
            ),
            (|n| n.v4 = None, "n.v4", "is missing, and so is v6"),
        ];
        for (mutate, field, problem) in cases {
            let mut n = sample();
            mutate(&mut n);
            let err = catalog_network("n", n).expect_err(field);
            assert_eq!((err.field.as_str(), err.problem.as_str()), (field, problem));
        }
    }
}
