//! A host's desired state (`HostService.Plan` / `Apply`), validated.

use crate::{
    model::{EndpointSpec, HostAccessSpec, ValidationError, VlanSpec},
    pb,
};

/// What a host should have: VLANs, endpoints, host access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub vlans: Vec<VlanSpec>,
    pub endpoints: Vec<EndpointSpec>,
    pub host_access: Vec<HostAccessSpec>,
}

/// Re-roots a field path: `endpoint.mac` -> `desired.endpoints[2].mac`.
fn at(err: ValidationError, from: &str, to: String) -> ValidationError {
    let field = err
        .field
        .strip_prefix(from)
        .map(str::to_owned)
        .unwrap_or(err.field.clone());
    ValidationError {
        field: format!("{to}{field}"),
        ..err
    }
}

impl TryFrom<pb::DesiredState> for Desired {
    type Error = ValidationError;
    fn try_from(d: pb::DesiredState) -> Result<Self, Self::Error> {
        let mut out = Desired::default();
        for (i, v) in d.vlans.into_iter().enumerate() {
            let f = format!("desired.vlans[{i}].");
            let req = pb::CreateVlanRequest {
                parent: v.parent,
                id: v.id,
                protocol: v.protocol,
                name: v.name,
                mtu: v.mtu,
            };
            let spec = VlanSpec::try_from(req).map_err(|e| at(e, "", f.clone()))?;
            if out.vlans.iter().any(|x: &VlanSpec| x.name == spec.name) {
                return Err(ValidationError::new(
                    format!("{f}name"),
                    spec.name.to_string(),
                    "is listed twice",
                    "list each VLAN once",
                ));
            }
            out.vlans.push(spec);
        }
        for (i, e) in d.endpoints.into_iter().enumerate() {
            let f = format!("desired.endpoints[{i}].");
            // Named namespaces are created as needed, as apply would.
            let create_netns = matches!(
                e.netns.as_ref().and_then(|n| n.target.as_ref()),
                Some(pb::netns_target::Target::Name(_))
            );
            let spec = EndpointSpec::try_from(pb::CreateMacvlanRequest {
                endpoint: Some(e),
                create_netns,
            })
            .map_err(|err| at(err, "endpoint.", f.clone()))?;
            if out
                .endpoints
                .iter()
                .any(|x: &EndpointSpec| x.network == spec.network && x.name == spec.name)
            {
                return Err(ValidationError::new(
                    format!("{f}name"),
                    format!("{}/{}", spec.network, spec.name),
                    "is listed twice",
                    "give each endpoint of a network its own name",
                ));
            }
            out.endpoints.push(spec);
        }
        for (i, h) in d.host_access.into_iter().enumerate() {
            let f = format!("desired.host_access[{i}].");
            let spec = HostAccessSpec::try_from(pb::CreateHostAccessRequest {
                host_access: Some(h),
            })
            .map_err(|err| at(err, "host_access.", f.clone()))?;
            out.host_access.push(spec);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_path_in_the_desired_state() {
        let ep = |ip: &str| pb::MacvlanEndpoint {
            network: "n".into(),
            name: "b1".into(),
            parent: "ens192".into(),
            mode: pb::MacvlanMode::Bridge.into(),
            netns: Some(pb::NetnsTarget {
                target: Some(pb::netns_target::Target::Name("b1".into())),
            }),
            addresses: vec![ip.into()],
            ..Default::default()
        };
        let err = Desired::try_from(pb::DesiredState {
            endpoints: vec![ep("10.0.0.1/24"), ep("10.0.0.300/24")],
            ..Default::default()
        })
        .expect_err("bad address");
        assert_eq!(err.field, "desired.endpoints[1].addresses");
        let err = Desired::try_from(pb::DesiredState {
            endpoints: vec![ep("10.0.0.1/24"), ep("10.0.0.2/24")],
            ..Default::default()
        })
        .expect_err("twice");
        assert_eq!(
            (err.field.as_str(), err.problem.as_str()),
            ("desired.endpoints[1].name", "is listed twice")
        );
        let ok = Desired::try_from(pb::DesiredState {
            endpoints: vec![ep("10.0.0.1/24")],
            ..Default::default()
        })
        .expect("ok");
        assert!(ok.endpoints[0].create_netns);
    }
}
