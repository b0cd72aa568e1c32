//! Containers attached to a spec's networks, as their agents list them:
//! the one shape `get endpoints`, `status` and `verify` show them in, and
//! the short label that names one (`3f2a9c01b2de/eth0`).

use linkherd_proto::model::Attachment;
use serde::Serialize;

use crate::spec::FleetSpec;

/// How many characters of a container id name it in a label, as `docker
/// ps` and `podman ps` show them.
const SHORT_ID: usize = 12;

/// `CID/IFNAME`, with the container id cut to twelve characters.
pub fn label(a: &Attachment) -> String {
    short(&a.container_id, a.inside())
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
    pub fn new(host: &str, a: &Attachment) -> Self {
        Self {
            host: host.to_owned(),
            network: a.network.clone(),
            container_id: a.container_id.clone(),
            ifname: a.inside().to_owned(),
            netns: a.netns.clone(),
            addresses: a.addresses.iter().map(ToString::to_string).collect(),
            mac: a.mac.to_string(),
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
    attachments: &'a [Attachment],
) -> impl Iterator<Item = &'a Attachment> + 'a {
    attachments
        .iter()
        .filter(|a| spec.networks.keys().any(|n| n.as_str() == a.network))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_the_short_id_and_the_interface() {
        let attachment = |id: &str, ifname: &str, inside: Option<&str>| Attachment {
            network: "n".into(),
            container_id: id.into(),
            ifname: ifname.into(),
            netns: "/run/netns/x".into(),
            mac: "02:00:00:00:00:01".parse().expect("mac"),
            addresses: vec![],
            gateways: vec![],
            parent: "ens192".into(),
            mtu: None,
            stale: false,
            inside: inside.map(str::to_owned),
        };
        assert_eq!(
            label(&attachment("3f2a9c01b2de4455667788", "net1", None)),
            "3f2a9c01b2de/net1"
        );
        assert_eq!(label(&attachment("c1", "eth0", None)), "c1/eth0");
        // Docker renamed it: the label names it as it is inside.
        assert_eq!(label(&attachment("c1", "lh1234", Some("eth0"))), "c1/eth0");
    }
}
