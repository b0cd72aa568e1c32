//! The network catalog: fleet networks as one host offers them to
//! container runtimes, resolved for that host. Checked on the way in, so a
//! runtime attaching to a catalog network never meets a block outside its
//! subnet or two blocks that overlap.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{IfName, MacvlanMode, ObjName, ValidationError, VlanId};

/// At most this many blocks per family and network on one host.
pub const MAX_BLOCKS: usize = 64;
/// At most this many exclusions per family and network.
pub const MAX_EXCLUDED: usize = 8192;
/// At most this many bytes say why a prefix is excluded.
pub const MAX_WHY: usize = 128;

/// A prefix of the subnet no container may take, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Excluded {
    pub prefix: IpNet,
    pub why: String,
}

/// One address family of a catalog network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CatalogPool {
    pub subnet: IpNet,
    pub gateway: Option<IpAddr>,
    /// This host's blocks, inside the subnet, never overlapping.
    pub blocks: Vec<IpNet>,
    /// What containers may not take here (other hosts' blocks, fixed
    /// addresses, reserved ones).
    #[serde(default)]
    pub excluded: Vec<Excluded>,
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
            if let Some(o) = self.blocks[..i].iter().find(|o| overlap(o, b)) {
                return Err(ValidationError::new(
                    at,
                    b.to_string(),
                    format!("overlaps the block {o}"),
                    "grant blocks that do not overlap",
                ));
            }
        }
        self.check_excluded(field)
    }

    fn check_excluded(&self, field: &str) -> Result<(), ValidationError> {
        if self.excluded.len() > MAX_EXCLUDED {
            return Err(ValidationError::new(
                format!("{field}.excluded"),
                self.excluded.len().to_string(),
                format!("is more than {MAX_EXCLUDED} exclusions"),
                "exclude fewer, larger prefixes",
            ));
        }
        for (i, e) in self.excluded.iter().enumerate() {
            let inside = self.subnet.contains(&e.prefix.network());
            if !inside || e.why.len() > MAX_WHY || e.why.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    format!("{field}.excluded[{i}]"),
                    e.prefix.to_string(),
                    format!(
                        "is not a prefix of the subnet {} with a reason of at most {MAX_WHY} \
                         printable bytes",
                        self.subnet
                    ),
                    "exclude prefixes of the subnet, each with a short reason",
                ));
            }
            if let Some(b) = self.blocks.iter().find(|b| overlap(b, &e.prefix)) {
                return Err(ValidationError::new(
                    format!("{field}.excluded[{i}]"),
                    e.prefix.to_string(),
                    format!("overlaps this host's block {b}"),
                    "a host's blocks are its own: exclude only what lies outside them",
                ));
            }
        }
        Ok(())
    }

    /// Why a container may not have `a` here, if it may not.
    pub fn why_excluded(&self, a: std::net::IpAddr) -> Option<String> {
        if !self.subnet.contains(&a) {
            return Some(format!("is outside the subnet {}", self.subnet));
        }
        if self.gateway == Some(a) {
            return Some("is the gateway".to_owned());
        }
        self.excluded
            .iter()
            .find(|e| e.prefix.contains(&a))
            .map(|e| format!("is taken: {} ({})", e.why, e.prefix))
    }
}

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
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
