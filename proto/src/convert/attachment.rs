//! AttachmentService requests, validated.

use std::{net::IpAddr, path::PathBuf};

use super::types::{DecodeError, decode};
use crate::{
    model::{
        AttachKeySpec, AttachSpec, Attachment, IfName, MAX_ATTACH_ADDRESSES, MAX_NETNS_PATH,
        MacAddr, ObjName, ValidationError, parse_container_id,
    },
    pb,
};

fn key(network: &str, id: &str, ifname: &str) -> Result<AttachKeySpec, ValidationError> {
    Ok(AttachKeySpec {
        network: ObjName::parse("network", network)?,
        container_id: parse_container_id("container_id", id)?,
        ifname: IfName::parse("ifname", ifname)?,
    })
}

impl TryFrom<pb::AttachmentKey> for AttachKeySpec {
    type Error = ValidationError;
    fn try_from(k: pb::AttachmentKey) -> Result<Self, Self::Error> {
        key(&k.network, &k.container_id, &k.ifname)
    }
}

impl TryFrom<pb::AttachRequest> for AttachSpec {
    type Error = ValidationError;
    fn try_from(r: pb::AttachRequest) -> Result<Self, Self::Error> {
        let key = key(&r.network, &r.container_id, &r.ifname)?;
        let netns = PathBuf::from(&r.netns);
        if !netns.is_absolute() || r.netns.len() > MAX_NETNS_PATH {
            return Err(ValidationError::new(
                "netns",
                r.netns,
                "is not an absolute path",
                "give the runtime's namespace, e.g. /run/netns/NAME or /proc/PID/ns/net",
            ));
        }
        if r.addresses.len() > MAX_ATTACH_ADDRESSES {
            return Err(ValidationError::new(
                "addresses",
                r.addresses.len().to_string(),
                format!("is more than {MAX_ATTACH_ADDRESSES} addresses"),
                "ask for one address per family",
            ));
        }
        let addresses = r
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.parse::<IpAddr>().map_err(|_| {
                    ValidationError::new(
                        format!("addresses[{i}]"),
                        a,
                        "is not an IP address",
                        "write e.g. 172.16.10.10 (no prefix length)",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let mac = match r.mac.as_str() {
            "" => None,
            m => {
                let mac = MacAddr::parse("mac", m)?;
                if mac.is_multicast() {
                    return Err(ValidationError::new(
                        "mac",
                        m,
                        "is a multicast address",
                        "use a unicast MAC (even first byte)",
                    ));
                }
                Some(mac)
            }
        };
        Ok(AttachSpec {
            key,
            netns,
            addresses,
            mac,
        })
    }
}

/// An attachment as an agent lists it, decoded for `linkherdctl`.
impl TryFrom<pb::Attachment> for Attachment {
    type Error = DecodeError;
    fn try_from(a: pb::Attachment) -> Result<Self, Self::Error> {
        let addresses = a
            .addresses
            .iter()
            .map(|v| decode("attachment.addresses", v, |s| s.parse().ok()))
            .collect::<Result<_, _>>()?;
        let gateways = a
            .gateways
            .iter()
            .map(|v| decode("attachment.gateways", v, |s| s.parse().ok()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            mac: decode("attachment.mac", &a.mac, |s| s.parse().ok())?,
            addresses,
            gateways,
            mtu: (a.mtu != 0).then_some(a.mtu),
            inside: (!a.inside.is_empty()).then_some(a.inside),
            network: a.network,
            container_id: a.container_id,
            ifname: a.ifname,
            netns: a.netns,
            parent: a.parent,
            stale: a.stale,
        })
    }
}

impl From<&Attachment> for pb::Attachment {
    fn from(a: &Attachment) -> Self {
        Self {
            network: a.network.clone(),
            container_id: a.container_id.clone(),
            ifname: a.ifname.clone(),
            netns: a.netns.clone(),
            mac: a.mac.to_string(),
            addresses: a.addresses.iter().map(ToString::to_string).collect(),
            gateways: a.gateways.iter().map(ToString::to_string).collect(),
            parent: a.parent.clone(),
            mtu: a.mtu.unwrap_or(0),
            stale: a.stale,
            inside: a.inside.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> pb::AttachRequest {
        pb::AttachRequest {
            network: "mac_net10".into(),
            container_id: "3f4e9a".into(),
            netns: "/run/netns/cni-1".into(),
            ifname: "eth0".into(),
            addresses: vec!["172.16.10.10".into()],
            mac: String::new(),
        }
    }

    #[test]
    fn an_attach_is_checked_field_by_field() {
        let a = AttachSpec::try_from(req()).expect("valid");
        assert_eq!(a.key.container_id, "3f4e9a");
        assert_eq!(a.addresses, ["172.16.10.10".parse::<IpAddr>().expect("ip")]);
        type Case = (fn(&mut pb::AttachRequest), &'static str, &'static str);
        let cases: [Case; 5] = [
            (
                |r| r.container_id = "-x".into(),
                "container_id",
                "is not a container id",
            ),
            (
                |r| r.netns = "cni-1".into(),
                "netns",
                "is not an absolute path",
            ),
            (
                |r| r.addresses = vec!["172.16.10.10/24".into()],
                "addresses[0]",
                "is not an IP address",
            ),
            (
                |r| r.mac = "01:00:5e:00:00:01".into(),
                "mac",
                "is a multicast address",
            ),
            (
                |r| r.ifname = "eth0:1".into(),
                "ifname",
                "contains ':', which Linux does not allow",
            ),
        ];
        for (mutate, field, problem) in cases {
            let mut r = req();
            mutate(&mut r);
            let e = AttachSpec::try_from(r).expect_err(field);
            assert_eq!(e.field, field);
            assert!(e.problem.starts_with(problem), "{field}: {}", e.problem);
        }
    }

    /// An attachment as the agent lists it reads back as it was; a value
    /// the model cannot hold is a decode error naming the field.
    #[test]
    fn a_listed_attachment_reads_back_and_refuses_garbage() {
        let a = Attachment {
            network: "mac_net10".into(),
            container_id: "c0ffee".into(),
            ifname: "lh0c0ffee".into(),
            netns: "/proc/4242/ns/net".into(),
            mac: MacAddr::stable("mac_net10", "c0ffee"),
            addresses: vec!["172.16.10.48/24".parse().expect("cidr")],
            gateways: vec!["172.16.10.1".parse().expect("ip")],
            parent: "ens192.10".into(),
            mtu: Some(9000),
            stale: true,
            inside: Some("eth0".into()),
        };
        let wire = pb::Attachment::from(&a);
        assert_eq!(Attachment::try_from(wire.clone()), Ok(a.clone()));
        assert_eq!(a.inside(), "eth0");
        let mut bad = wire;
        bad.mac = "02:zz".into();
        let err = Attachment::try_from(bad).expect_err("garbage");
        assert_eq!((err.field, err.value.as_str()), ("attachment.mac", "02:zz"));
    }
}
