//! `destroy`: what the fleet converges to when a spec's objects go, and
//! how that rollout runs (no probes: there is nothing left to prove).

use std::collections::BTreeMap;

use linkherd_proto::{convert::Desired, model::default_vlan_name};

use super::{DesiredError, desired::spoken_for, rollout::ApplyOptions};
use crate::spec::FleetSpec;

/// Seconds a host waits for the confirmation of a teardown.
pub const CONFIRM_TIMEOUT: u32 = 120;

/// What `destroy` converges every host to: none of the spec's endpoints
/// or host access, and none of the VLAN sub-interfaces its networks use
/// (those linkherd made; a VLAN that was there before is left).
pub fn teardown(spec: &FleetSpec) -> Result<BTreeMap<String, Desired>, DesiredError> {
    let mut out = spoken_for(spec);
    for net in spec.networks.values() {
        let Some(id) = net.vlan else { continue };
        for (host, parent) in &net.parents {
            let name = default_vlan_name(parent, id).map_err(|source| DesiredError::Name {
                network: net.name.to_string(),
                host: host.clone(),
                source: Box::new(source),
            })?;
            let d = out.entry(host.clone()).or_default();
            if !d.absent_vlans.contains(&name) {
                d.absent_vlans.push(name);
            }
        }
    }
    Ok(out)
}

/// How a teardown applies: `parallel` hosts at once after the first, no
/// address check (nothing is made) and no verification.
pub fn options(parallel: usize) -> ApplyOptions {
    ApplyOptions {
        confirm_timeout: CONFIRM_TIMEOUT,
        address_check_ms: 0,
        parallel,
        verify: false,
    }
}
