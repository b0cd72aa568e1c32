//! Records made by agents before the desired state was kept: an endpoint
//! record without its spec, a VLAN or host access known only by its mark in
//! the host namespace. Read back once at start from the kernel, so that
//! what was made before an upgrade is restored after the next reboot like
//! the rest. Only this agent's own marks in the host namespace count (no
//! tenant can write an alias there) and only endpoints it has records of.

use linkherd_proto::model::{EndpointSpec, HostAccessSpec, VlanSpec};

use super::{Host, registry::Entry};
use crate::error::Error;

impl Host {
    /// Fills in what older records lack; what it recorded, in words.
    pub async fn backfill_desired(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let bare: Vec<Entry> = {
            let reg = self.registry.lock().await;
            reg.all().filter(|e| e.spec.is_none()).cloned().collect()
        };
        let observed = self.endpoints().observe_many(&bare).await?;
        let vlans = self.vlans().list_vlans().await?;
        let host_access = self.host_access().list_host_access().await?;
        let mut reg = self.registry.lock().await;
        for (e, state) in bare.into_iter().zip(observed) {
            let Some(state) = state.filter(|s| s.owned) else {
                continue;
            };
            let Ok(spec) = EndpointSpec::try_from(state) else {
                continue;
            };
            if reg.get(&e.network, &e.name) != Some(&e) {
                continue;
            }
            out.push(format!("endpoint {}/{}", e.network, e.name));
            reg.insert(Entry {
                spec: Some(spec),
                ..e
            })
            .await?;
        }
        for v in vlans
            .iter()
            .filter(|v| v.owned && v.auto_for_network.is_none())
        {
            if reg.vlans.get(&v.name).is_none()
                && let Ok(spec) = VlanSpec::try_from(v)
            {
                out.push(format!("vlan {}", v.name));
                reg.keep_vlan(&spec).await?;
            }
        }
        for h in host_access {
            // Listed only when this agent's mark names it.
            if reg.host_access.get(&h.network).is_some() {
                continue;
            }
            let network = h.network.clone();
            if let Ok(spec) = HostAccessSpec::try_from(h) {
                out.push(format!("host access {network}"));
                reg.keep_host_access(&spec).await?;
            }
        }
        Ok(out)
    }
}
