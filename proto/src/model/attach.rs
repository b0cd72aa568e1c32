//! Containers on catalog networks: which attachment (CNI's key) and what
//! an attach asks for, validated.

use std::{net::IpAddr, path::PathBuf};

use ipnet::IpNet;

use super::{IfName, MacAddr, ObjName, ValidationError};

/// At most this many bytes in a container id.
pub const MAX_CONTAINER_ID: usize = 128;

/// At most this many addresses asked for in one attach.
pub const MAX_ATTACH_ADDRESSES: usize = 4;

/// At most this many bytes in a namespace path.
pub const MAX_NETNS_PATH: usize = 4096;

/// At most this many valid attachments in one GC.
pub const MAX_GC_VALID: usize = 65_536;

/// Which attachment: CNI's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachKeySpec {
    pub network: ObjName,
    pub container_id: String,
    pub ifname: IfName,
}

/// An attach, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachSpec {
    pub key: AttachKeySpec,
    pub netns: PathBuf,
    pub addresses: Vec<IpAddr>,
    pub mac: Option<MacAddr>,
}

/// A letter or digit, then letters, digits, `_ . -` (CNI's rule), at most
/// [`MAX_CONTAINER_ID`] bytes. The CNI plugin checks with this too, so
/// that what it lets through the agent accepts.
pub fn parse_container_id(field: &str, id: &str) -> Result<String, ValidationError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CONTAINER_ID
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(ValidationError::new(
            field,
            id,
            "is not a container id",
            format!(
                "give the runtime's id: a letter or digit, then letters, digits, _ . or -, \
                 at most {MAX_CONTAINER_ID} bytes"
            ),
        ))
    }
}

/// A container attachment as an agent lists it (`AttachmentService.List`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub network: String,
    pub container_id: String,
    /// The interface as attached.
    pub ifname: String,
    /// The runtime's namespace path.
    pub netns: String,
    pub mac: MacAddr,
    /// With the subnet's prefix length.
    pub addresses: Vec<IpNet>,
    pub gateways: Vec<IpAddr>,
    /// The link the macvlan hangs off.
    pub parent: String,
    /// `None`: the parent's.
    pub mtu: Option<u32>,
    /// The namespace attached in is gone (the container went without a
    /// DEL); a GC or a Detach removes it.
    pub stale: bool,
    /// The interface's name inside the namespace now, when the runtime
    /// renamed it (Docker's `eth0`).
    pub inside: Option<String>,
}

impl Attachment {
    /// The interface's name inside the container: the one the runtime gave
    /// it, else the one attached.
    pub fn inside(&self) -> &str {
        self.inside.as_deref().unwrap_or(&self.ifname)
    }
}
