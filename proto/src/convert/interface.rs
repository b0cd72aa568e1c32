//! `interface.proto`: the interface requests, validated.

use std::time::Duration;

use crate::{
    model::{
        IfName, InterfaceName, MAX_PROMISC_LEASE, SetMtu, SetPromiscuous, SetUp, ValidationError,
    },
    pb,
};

impl TryFrom<pb::GetInterfaceRequest> for InterfaceName {
    type Error = ValidationError;
    fn try_from(r: pb::GetInterfaceRequest) -> Result<Self, Self::Error> {
        IfName::parse("name", &r.name).map(Self)
    }
}

impl TryFrom<pb::SetPromiscuousRequest> for SetPromiscuous {
    type Error = ValidationError;
    fn try_from(r: pb::SetPromiscuousRequest) -> Result<Self, Self::Error> {
        let name = IfName::parse("name", &r.name)?;
        let lease = match r.lease_seconds {
            0 => None,
            s if u64::from(s) > MAX_PROMISC_LEASE.as_secs() => {
                return Err(ValidationError::new(
                    "lease_seconds",
                    s.to_string(),
                    format!(
                        "is longer than the {} s maximum",
                        MAX_PROMISC_LEASE.as_secs()
                    ),
                    "use a shorter lease, or 0 for a permanent change",
                ));
            }
            s => Some(Duration::from_secs(s.into())),
        };
        Ok(Self {
            name,
            enabled: r.enabled,
            lease,
        })
    }
}

impl TryFrom<pb::SetUpRequest> for SetUp {
    type Error = ValidationError;
    fn try_from(r: pb::SetUpRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            name: IfName::parse("name", &r.name)?,
            up: r.up,
        })
    }
}

impl TryFrom<pb::SetMtuRequest> for SetMtu {
    type Error = ValidationError;
    fn try_from(r: pb::SetMtuRequest) -> Result<Self, Self::Error> {
        let name = IfName::parse("name", &r.name)?;
        if r.mtu == 0 {
            return Err(ValidationError::new(
                "mtu",
                "0",
                "an MTU is required",
                "give the MTU in bytes, e.g. 1500",
            ));
        }
        Ok(Self { name, mtu: r.mtu })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promisc_lease_bounds() {
        let req = |lease_seconds| pb::SetPromiscuousRequest {
            name: "ens192".into(),
            enabled: true,
            lease_seconds,
        };
        assert_eq!(SetPromiscuous::try_from(req(0)).map(|r| r.lease), Ok(None));
        assert_eq!(
            SetPromiscuous::try_from(req(30)).map(|r| r.lease),
            Ok(Some(Duration::from_secs(30)))
        );
        let err = SetPromiscuous::try_from(req(86_401)).expect_err("too long");
        assert_eq!(
            (err.field.as_str(), err.value.as_str()),
            ("lease_seconds", "86401")
        );
    }

    #[test]
    fn names_are_validated_in_every_request() {
        let err = SetMtu::try_from(pb::SetMtuRequest {
            name: "a/b".into(),
            mtu: 1500,
        })
        .expect_err("bad name");
        assert_eq!(err.field, "name");
        let err = SetUp::try_from(pb::SetUpRequest {
            name: String::new(),
            up: true,
        })
        .expect_err("empty");
        assert_eq!(err.problem, "an interface name is required");
        let err = SetMtu::try_from(pb::SetMtuRequest {
            name: "eth0".into(),
            mtu: 0,
        })
        .expect_err("zero");
        assert_eq!((err.field.as_str(), err.value.as_str()), ("mtu", "0"));
    }
}
