use std::fmt;

use serde::Serialize;

use super::{IfName, ValidationError, VlanProtocol, ifname::MAX_IFNAME_LEN};

/// An 802.1Q VLAN id, 1–4094 (0 and 4095 are reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct VlanId(u16);

impl VlanId {
    pub fn new(field: &str, id: u32) -> Result<Self, ValidationError> {
        match u16::try_from(id) {
            Ok(v) if (1..=4094).contains(&v) => Ok(Self(v)),
            _ => Err(ValidationError::new(
                field,
                id.to_string(),
                "is not a VLAN id (0 and 4095 are reserved)",
                "use an id from 1 to 4094",
            )),
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// Read back through [`VlanId::new`]: 0 and 4095 stay refused.
impl<'de> serde::Deserialize<'de> for VlanId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = u32::deserialize(d)?;
        Self::new("id", id).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for VlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A VLAN sub-interface to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VlanSpec {
    pub parent: IfName,
    pub id: VlanId,
    pub protocol: VlanProtocol,
    pub name: IfName,
    /// `None`: the parent's MTU.
    pub mtu: Option<u32>,
}

/// The default name `<parent>.<id>` (as `ip link` and Docker use), or an
/// error that suggests a name that fits when it would be too long.
pub fn default_vlan_name(parent: &IfName, id: VlanId) -> Result<IfName, ValidationError> {
    let suffix = format!(".{id}");
    let name = format!("{parent}{suffix}");
    if name.len() <= MAX_IFNAME_LEN {
        return IfName::parse("name", &name);
    }
    let keep = MAX_IFNAME_LEN - suffix.len();
    let mut cut = parent.as_str().to_owned();
    while cut.len() > keep {
        cut.pop();
    }
    Err(ValidationError::new(
        "name",
        name.clone(),
        format!(
            "the default name {name:?} is {} bytes; Linux allows {MAX_IFNAME_LEN}",
            name.len()
        ),
        format!("give a name, e.g. --name {cut}{suffix}"),
    ))
}

/// Splits a VLAN-style name `X.<id>` into base and id, as Docker does for
/// `-o parent=eth0.10`.
pub fn split_vlan_name(name: &IfName) -> Option<(IfName, VlanId)> {
    let (base, id) = name.as_str().rsplit_once('.')?;
    let id: u32 = id.parse().ok()?;
    Some((
        IfName::parse("parent", base).ok()?,
        VlanId::new("parent", id).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IfName {
        IfName::parse("n", s).expect("name")
    }

    #[test]
    fn ids() {
        assert!(VlanId::new("id", 1).is_ok() && VlanId::new("id", 4094).is_ok());
        for bad in [0, 4095, 70000] {
            let e = VlanId::new("id", bad).expect_err("reserved");
            assert_eq!((e.field.as_str(), e.value), ("id", bad.to_string()));
        }
    }

    #[test]
    fn default_names_and_suggestions() {
        let id = VlanId::new("id", 10).expect("id");
        assert_eq!(
            default_vlan_name(&n("ens192"), id).map(|n| n.to_string()),
            Ok("ens192.10".into())
        );
        let e = default_vlan_name(&n("enp0s31f6abcdef"), VlanId::new("id", 4094).expect("id"))
            .expect_err("too long");
        assert_eq!(e.value, "enp0s31f6abcdef.4094");
        assert_eq!(e.fix, "give a name, e.g. --name enp0s31f6a.4094");
    }

    #[test]
    fn vlan_style_parents() {
        let (base, id) = split_vlan_name(&n("eth0.10")).expect("vlan name");
        assert_eq!((base.as_str(), id.get()), ("eth0", 10));
        assert_eq!(split_vlan_name(&n("eth0")), None);
        assert_eq!(split_vlan_name(&n("eth0.0")), None);
        assert_eq!(split_vlan_name(&n("br.lan")), None);
    }
}

/// A VLAN sub-interface as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VlanState {
    pub name: String,
    pub parent: String,
    pub id: u16,
    pub protocol: VlanProtocol,
    pub mtu: u32,
    pub reorder_header: bool,
    pub owned: bool,
    /// Created automatically for this network's endpoints.
    pub auto_for_network: Option<String>,
}
