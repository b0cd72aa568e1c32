//! Containers attached to a spec's networks, as their agents list them:
//! the one shape `get endpoints`, `status` and `verify` show them in, and
//! the short label that names one (`3f2a9c01b2de/eth0`).

use linkherd_proto::pb;
use serde::Serialize;

use crate::spec::FleetSpec;

/// How many characters of a container id name it in a label, as `docker
/// ps` and `podman ps` show them.
const SHORT_ID: usize = 12;

/// `CID/IFNAME`, with the container id cut to twelve characters.
pub fn label(a: &pb::Attachment) -> String {
    short(&a.container_id, inside(a))
}

/// The interface's name inside the container: the one the runtime gave it
/// when it renamed it (Docker), else the one attached.
pub fn inside(a: &pb::Attachment) -> &str {
    if a.inside.is_empty() {
        &a.ifname
    } else {
        &a.inside
    }
}

fn short(container_id: &str, ifname: &str) -> String {
    let id: String = container_id.chars().take(SHORT_ID).collect();
    format!("{id}/{ifname}")
}

/// One attachment, for output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachedView {
    pub host: String,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub addresses: Vec<String>,
    pub mac: String,
    pub parent: String,
    /// The namespace it was attached in is gone (the runtime removed the
    /// container without a DEL); `Gc` or `Detach` removes the record.
    pub stale: bool,
}

impl AttachedView {
    pub fn new(host: &str, a: &pb::Attachment) -> Self {
        Self {
            host: host.to_owned(),
            network: a.network.clone(),
            container_id: a.container_id.clone(),
            ifname: inside(a).to_owned(),
            netns: a.netns.clone(),
            addresses: a.addresses.clone(),
            mac: a.mac.to_ascii_lowercase(),
            parent: a.parent.clone(),
            stale: a.stale,
        }
    }

    /// As [`label`].
    pub fn label(&self) -> String {
        short(&self.container_id, &self.ifname)
    }
}

/// The attachments of `host` on networks of `spec`, in the agent's order
/// (network, container id, ifname). Others the host may have (networks of
/// another spec) are not this spec's to show.
pub fn of_spec<'a>(
    spec: &'a FleetSpec,
    attachments: &'a [pb::Attachment],
) -> impl Iterator<Item = &'a pb::Attachment> + 'a {
    attachments
        .iter()
        .filter(|a| spec.networks.keys().any(|n| n.as_str() == a.network))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_the_short_id_and_the_interface() {
        let a = pb::Attachment {
            container_id: "3f2a9c01b2de4455667788".into(),
            ifname: "net1".into(),
            ..Default::default()
        };
        assert_eq!(label(&a), "3f2a9c01b2de/net1");
        let short = pb::Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            ..Default::default()
        };
        assert_eq!(label(&short), "c1/eth0");
    }
}
