//! AttachmentService requests, validated.

use std::{net::IpAddr, path::PathBuf};

use crate::model::{
    AttachKeySpec, AttachSpec, MAX_ATTACH_ADDRESSES, MAX_NETNS_PATH, parse_container_id,
};
use crate::{
    model::{IfName, MacAddr, ObjName, ValidationError},
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
}
