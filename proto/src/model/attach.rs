//! Containers on catalog networks: which attachment (CNI's key) and what
//! an attach asks for, validated.

use std::{net::IpAddr, path::PathBuf};

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
