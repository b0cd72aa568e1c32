//! The network catalog: fleet networks as one host offers them to
//! container runtimes, resolved for that host. Checked on the way in, so a
//! runtime attaching to a catalog network never meets a block outside its
//! subnet or two blocks that overlap.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{IfName, MacvlanMode, ObjName, ValidationError, VlanId};

/// At most this many blocks per family and network on one host.
pub const MAX_BLOCKS: usize = 64;

/// One address family of a catalog network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogPool {
    pub subnet: IpNet,
    pub gateway: Option<IpAddr>,
    /// This host's blocks, inside the subnet, never overlapping.
    pub blocks: Vec<IpNet>,
}

/// A network of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogNetwork {
    pub name: ObjName,
    /// The NIC, or its VLAN sub-interface.
    pub parent: IfName,
    pub vlan: Option<VlanId>,
    pub mode: MacvlanMode,
    pub mtu: Option<u32>,
    pub v4: Option<CatalogPool>,
    pub v6: Option<CatalogPool>,
}

impl CatalogPool {
    /// Checks the pool of family `v6` at `field` (`catalog[2].v4`).
    pub fn check(&self, field: &str, v6: bool) -> Result<(), ValidationError> {
        let family = if v6 { "IPv6" } else { "IPv4" };
        if self.subnet.addr().is_ipv6() != v6 || self.subnet.trunc() != self.subnet {
            return Err(ValidationError::new(
                format!("{field}.subnet"),
                self.subnet.to_string(),
                format!("is not an {family} prefix without host bits"),
                format!(
                    "give the network's {family} subnet, e.g. {}",
                    self.subnet.trunc()
                ),
            ));
        }
        if let Some(g) = self.gateway.filter(|g| !self.subnet.contains(g)) {
            return Err(ValidationError::new(
                format!("{field}.gateway"),
                g.to_string(),
                format!("is outside the subnet {}", self.subnet),
                "give the gateway inside the subnet",
            ));
        }
        if self.blocks.len() > MAX_BLOCKS {
            return Err(ValidationError::new(
                format!("{field}.blocks"),
                self.blocks.len().to_string(),
                format!("is more than {MAX_BLOCKS} blocks"),
                "grant fewer, larger blocks",
            ));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            let at = format!("{field}.blocks[{i}]");
            let inside = self.subnet.contains(&b.network()) && self.subnet.contains(&b.broadcast());
            if b.trunc() != *b || !inside {
                return Err(ValidationError::new(
                    at,
                    b.to_string(),
                    format!("is not a prefix inside the subnet {}", self.subnet),
                    "grant blocks of the subnet",
                ));
            }
            if let Some(o) = self.blocks[..i]
                .iter()
                .find(|o| o.contains(&b.network()) || b.contains(&o.network()))
            {
                return Err(ValidationError::new(
                    at,
                    b.to_string(),
                    format!("overlaps the block {o}"),
                    "grant blocks that do not overlap",
                ));
            }
        }
        Ok(())
    }
}

impl CatalogNetwork {
    /// Checks the network at `field` (`desired.catalog[2]`): one family at
    /// least, each consistent.
    pub fn check(&self, field: &str) -> Result<(), ValidationError> {
        if self.v4.is_none() && self.v6.is_none() {
            return Err(ValidationError::new(
                format!("{field}.v4"),
                "",
                "is missing, and so is v6",
                "give the network's subnet in v4 or v6",
            ));
        }
        if let Some(p) = &self.v4 {
            p.check(&format!("{field}.v4"), false)?;
        }
        if let Some(p) = &self.v6 {
            p.check(&format!("{field}.v6"), true)?;
        }
        Ok(())
    }
}
