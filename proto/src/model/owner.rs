use std::fmt;

use super::ObjName;

/// Prefix of every interface alias linkherd writes. Links without it are
/// not linkherd's, and linkherd does not touch them unless forced.
pub const OWNER_PREFIX: &str = "linkherd:v1 ";

/// What linkherd created a link for, as recorded in its alias
/// (IFLA_IFALIAS), e.g. `linkherd:v1 ep net=mac_net10 name=b1`. The kernel
/// is the source of truth: ownership survives agent restarts and state loss.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A VLAN sub-interface created through VlanService.
    Vlan,
    /// A VLAN created automatically as the parent of a network's endpoints.
    AutoVlan { network: String },
    /// A macvlan endpoint.
    Endpoint { network: String, name: String },
    /// A host-access macvlan.
    HostAccess { network: String },
    /// A container's macvlan, attached by a runtime (CNI, Docker) through
    /// AttachmentService: `name` is `CONTAINER_ID/IFNAME`. Not an endpoint:
    /// fleet plans never list or remove it.
    Attachment { network: String, name: String },
}

impl Owner {
    pub fn endpoint(network: &ObjName, name: &ObjName) -> Self {
        Owner::Endpoint {
            network: network.to_string(),
            name: name.to_string(),
        }
    }

    /// Reads an alias, whichever agent wrote it; `None` when the link is
    /// not linkherd's. Agents decide what is theirs with [`Mark::parse`].
    pub fn parse(alias: &str) -> Option<Owner> {
        Mark::parse(alias).map(|m| m.owner)
    }

    fn from_words(
        kind: &str,
        auto: bool,
        net: Option<String>,
        name: Option<String>,
    ) -> Option<Owner> {
        Some(match (kind, auto) {
            ("vlan", false) => Owner::Vlan,
            ("vlan", true) => Owner::AutoVlan { network: net? },
            ("ep", _) => Owner::Endpoint {
                network: net?,
                name: name?,
            },
            // "shim" is how agents before 0.2 marked host access.
            ("host-access" | "shim", _) => Owner::HostAccess { network: net? },
            ("att", _) => Owner::Attachment {
                network: net?,
                name: name?,
            },
            _ => return None,
        })
    }

    pub fn network(&self) -> Option<&str> {
        match self {
            Owner::Vlan => None,
            Owner::AutoVlan { network }
            | Owner::Endpoint { network, .. }
            | Owner::HostAccess { network }
            | Owner::Attachment { network, .. } => Some(network),
        }
    }
}

/// An ownership mark: what a link is for and which agent made it. Several
/// agents may share one kernel (lab hosts, a test agent beside the real
/// one); each lists, adopts and deletes only what carries its own id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mark {
    pub owner: Owner,
    /// The agent's id; `None` on marks written before agents had one.
    pub agent: Option<String>,
}

impl Mark {
    /// Reads an alias; `None` when the link is not linkherd's.
    pub fn parse(alias: &str) -> Option<Mark> {
        let rest = alias.strip_prefix(OWNER_PREFIX)?;
        let mut words = rest.split(' ');
        let kind = words.next()?;
        let mut auto = false;
        let (mut net, mut name, mut agent) = (None, None, None);
        for w in words {
            match w.split_once('=') {
                Some(("net", v)) => net = Some(v.to_owned()),
                Some(("name", v)) => name = Some(v.to_owned()),
                Some(("agent", v)) if !v.is_empty() => agent = Some(v.to_owned()),
                None if w == "auto" => auto = true,
                _ => {}
            }
        }
        let owner = Owner::from_words(kind, auto, net, name)?;
        Some(Mark { owner, agent })
    }
}

impl fmt::Display for Mark {
    /// The alias text: the owner's, then `agent=ID`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.owner)?;
        match &self.agent {
            Some(a) => write!(f, " agent={a}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Owner {
    /// The alias text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(OWNER_PREFIX)?;
        match self {
            Owner::Vlan => f.write_str("vlan"),
            Owner::AutoVlan { network } => write!(f, "vlan auto net={network}"),
            Owner::Endpoint { network, name } => write!(f, "ep net={network} name={name}"),
            Owner::HostAccess { network } => write!(f, "host-access net={network}"),
            Owner::Attachment { network, name } => write!(f, "att net={network} name={name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_round_trip() {
        for o in [
            Owner::Vlan,
            Owner::AutoVlan {
                network: "mac_net10".into(),
            },
            Owner::Endpoint {
                network: "mac_net10".into(),
                name: "b1".into(),
            },
            Owner::HostAccess {
                network: "mac_net20".into(),
            },
            Owner::Attachment {
                network: "mac_net10".into(),
                name: "3f4e9a/eth0".into(),
            },
        ] {
            assert_eq!(Owner::parse(&o.to_string()), Some(o.clone()), "{o}");
        }
        assert_eq!(
            Owner::Endpoint {
                network: "n".into(),
                name: "b1".into()
            }
            .to_string(),
            "linkherd:v1 ep net=n name=b1"
        );
    }

    #[test]
    fn marks_name_their_agent() {
        let m = Mark {
            owner: Owner::Endpoint {
                network: "n".into(),
                name: "b1".into(),
            },
            agent: Some("4f2a9c01d7e3".into()),
        };
        assert_eq!(
            m.to_string(),
            "linkherd:v1 ep net=n name=b1 agent=4f2a9c01d7e3"
        );
        assert_eq!(Mark::parse(&m.to_string()), Some(m.clone()));
        let legacy = Mark::parse("linkherd:v1 ep net=n name=b1").expect("a legacy mark");
        assert_eq!((legacy.owner, legacy.agent), (m.owner, None));
    }

    #[test]
    fn foreign_aliases_are_not_ours() {
        assert_eq!(Owner::parse("uplink to core"), None);
        assert_eq!(Owner::parse("linkherd:v1 ep net=x"), None, "incomplete");
        assert_eq!(Owner::parse("linkherd:v2 vlan"), None, "other version");
    }
}
