//! The host's generation: a fingerprint of everything linkherd owns there,
//! as the kernel has it, over the model's own types. Any change to an owned
//! object changes it, so a transaction planned against one state refuses
//! another.

use linkherd_proto::model::OwnedObjects;

use crate::{error::Error, host::Host};

/// Everything linkherd owns on this host, as the kernel has it, in a stable
/// order (so equal states serialise to equal bytes).
pub async fn observed(lc: &Host) -> Result<OwnedObjects, Error> {
    let mut vlans: Vec<_> = lc
        .vlans()
        .list_vlans()
        .await?
        .into_iter()
        .filter(|v| v.owned)
        .collect();
    vlans.sort_by(|a, b| a.name.cmp(&b.name));
    let mut endpoints: Vec<_> = lc
        .endpoints()
        .list_endpoints()
        .await?
        .into_iter()
        .filter(|e| e.owned)
        .map(|mut e| {
            // Counters and carrier change all the time; they are not state.
            e.interface = None;
            e
        })
        .collect();
    endpoints.sort_by(|a, b| (&a.network, &a.name).cmp(&(&b.network, &b.name)));
    let mut host_access = lc.host_access().list_host_access().await?;
    host_access.sort_by(|a, b| a.network.cmp(&b.network));
    // In name order already.
    let catalog = lc.catalog().networks().await;
    Ok(OwnedObjects {
        vlans,
        endpoints,
        host_access,
        catalog,
    })
}

/// A fingerprint of the owned state (FNV-1a over its JSON form): any change
/// to an owned object changes it. Only ever compared with another of the
/// same agent, never stored.
pub fn fingerprint(state: &OwnedObjects) -> u64 {
    // Serialising plain model types (no maps, no floats) cannot fail; an
    // empty input would still give a fingerprint, just a poorer one.
    let bytes = serde_json::to_vec(state).unwrap_or_default();
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The current generation of this host.
pub async fn generation(lc: &Host) -> Result<u64, Error> {
    Ok(fingerprint(&observed(lc).await?))
}
