//! `vlan.proto`: VLAN requests and objects, both ways.

use super::types::{DecodeError, mtu};
use crate::{
    model::{IfName, ValidationError, VlanId, VlanSpec, VlanState, default_vlan_name},
    pb,
};

impl TryFrom<pb::CreateVlanRequest> for VlanSpec {
    type Error = ValidationError;
    fn try_from(r: pb::CreateVlanRequest) -> Result<Self, Self::Error> {
        let parent = IfName::parse("parent", &r.parent)?;
        let id = VlanId::new("id", r.id)?;
        let protocol = pb::VlanProtocol::try_from(r.protocol)
            .map_err(|_| {
                ValidationError::new(
                    "protocol",
                    r.protocol.to_string(),
                    "is not a VLAN protocol",
                    "use 802.1Q or 802.1ad",
                )
            })?
            .into();
        let name = if r.name.is_empty() {
            default_vlan_name(&parent, id)?
        } else {
            IfName::parse("name", &r.name)?
        };
        Ok(Self {
            parent,
            id,
            protocol,
            name,
            mtu: mtu("mtu", r.mtu)?,
        })
    }
}

/// The spec that re-creates an observed VLAN.
impl TryFrom<&VlanState> for VlanSpec {
    type Error = ValidationError;
    fn try_from(old: &VlanState) -> Result<Self, Self::Error> {
        Ok(VlanSpec {
            parent: IfName::parse("parent", &old.parent)?,
            id: VlanId::new("id", u32::from(old.id))?,
            protocol: old.protocol,
            name: IfName::parse("name", &old.name)?,
            mtu: mtu("mtu", old.mtu)?,
        })
    }
}

impl From<VlanState> for pb::Vlan {
    fn from(v: VlanState) -> Self {
        Self {
            name: v.name,
            parent: v.parent,
            id: v.id.into(),
            protocol: pb::VlanProtocol::from(v.protocol).into(),
            mtu: v.mtu,
            reorder_header: v.reorder_header,
            owned: v.owned,
            interface: None,
            auto_for_network: v.auto_for_network.unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::Vlan> for VlanState {
    type Error = DecodeError;
    fn try_from(v: pb::Vlan) -> Result<Self, Self::Error> {
        Ok(Self {
            protocol: v.protocol().into(),
            id: u16::try_from(v.id).map_err(|_| DecodeError {
                field: "vlan.id",
                value: v.id.to_string(),
            })?,
            name: v.name,
            parent: v.parent,
            mtu: v.mtu,
            reorder_header: v.reorder_header,
            owned: v.owned,
            auto_for_network: (!v.auto_for_network.is_empty()).then_some(v.auto_for_network),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_requests() {
        let r = |parent: &str, id, name: &str| pb::CreateVlanRequest {
            parent: parent.into(),
            id,
            protocol: 0,
            name: name.into(),
            mtu: 0,
        };
        let v = VlanSpec::try_from(r("ens192", 10, "")).expect("valid");
        assert_eq!(
            (v.name.as_str(), v.protocol),
            ("ens192.10", crate::model::VlanProtocol::Ieee8021Q)
        );
        assert_eq!(
            VlanSpec::try_from(r("ens192", 4095, ""))
                .expect_err("id")
                .field,
            "id"
        );
        let e = VlanSpec::try_from(r("enp0s31f6abcdef", 10, "")).expect_err("long");
        assert_eq!(e.fix, "give a name, e.g. --name enp0s31f6abc.10");
        assert!(VlanSpec::try_from(r("enp0s31f6abcdef", 10, "uplink.10")).is_ok());
    }
}
