//! What the agent keeps on the host beyond endpoints: the VLANs and host
//! access an operator asked for, each as its spec. The kernel forgets them
//! at a reboot; these records are how the agent knows to make them again
//! (see `converge`). One file per object (`vlans/NAME.json`,
//! `host-access/NETWORK.json`), written before the call that made the
//! object answers, removed when it is deleted.

use std::collections::BTreeMap;

use linkherd_proto::model::{HostAccessSpec, VlanSpec};

use crate::state::store::{RecordSet, Store, StoreError, Versioned};

impl Versioned for VlanSpec {
    const FORMAT: u32 = 1;
}

impl Versioned for HostAccessSpec {
    const FORMAT: u32 = 1;
}

/// A record set of specs by name, loaded whole (a host has at most a few
/// hundred of them).
#[derive(Debug)]
pub struct Kept<T> {
    records: Option<RecordSet<T>>,
    items: BTreeMap<String, T>,
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Self {
            records: None,
            items: BTreeMap::new(),
        }
    }
}

impl<T: Versioned + Clone + PartialEq> Kept<T> {
    /// Loads the records in `dir` of `store` (none without a store).
    pub async fn load(
        store: Option<&Store>,
        dir: &str,
        key: fn(&T) -> String,
    ) -> Result<Self, StoreError> {
        let Some(store) = store else {
            return Ok(Self::default());
        };
        let records = store.records::<T>(dir);
        let items = records
            .load_all()
            .await?
            .into_iter()
            .map(|t| (key(&t), t))
            .collect();
        Ok(Self {
            records: Some(records),
            items,
        })
    }

    pub fn get(&self, name: &str) -> Option<&T> {
        self.items.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &T> {
        self.items.values()
    }

    /// Records `value` as `name` on disk, then here (nothing written when
    /// it is recorded so already).
    pub async fn put(&mut self, name: &str, value: &T) -> Result<(), StoreError> {
        if self.items.get(name) == Some(value) {
            return Ok(());
        }
        if let Some(r) = &self.records {
            r.put(&[name], value).await?;
        }
        self.items.insert(name.to_owned(), value.clone());
        Ok(())
    }

    /// Forgets `name` on disk, then here (absent is fine).
    pub async fn remove(&mut self, name: &str) -> Result<Option<T>, StoreError> {
        if !self.items.contains_key(name) {
            return Ok(None);
        }
        if let Some(r) = &self.records {
            r.remove(&[name]).await?;
        }
        Ok(self.items.remove(name))
    }
}

#[cfg(test)]
mod tests {
    use linkherd_proto::model::{IfName, VlanId, VlanProtocol};

    use super::*;

    fn vlan(id: u16) -> VlanSpec {
        VlanSpec {
            parent: IfName::parse("p", "ens192").expect("name"),
            id: VlanId::new("id", u32::from(id)).expect("id"),
            protocol: VlanProtocol::Ieee8021Q,
            name: IfName::parse("n", &format!("ens192.{id}")).expect("name"),
            mtu: None,
        }
    }

    #[tokio::test]
    async fn kept_specs_survive_a_reload_and_a_removal_is_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("store");
        let key = |v: &VlanSpec| v.name.to_string();
        let mut kept = Kept::load(Some(&store), "vlans", key).await.expect("load");
        kept.put("ens192.10", &vlan(10)).await.expect("put");
        kept.put("ens192.20", &vlan(20)).await.expect("put");
        assert!(dir.path().join("vlans/ens192.10.json").exists());
        assert_eq!(kept.remove("ens192.20").await.expect("rm"), Some(vlan(20)));
        assert_eq!(kept.remove("ens192.20").await.expect("rm again"), None);
        let again = Kept::load(Some(&store), "vlans", key)
            .await
            .expect("reload");
        assert_eq!(again.all().cloned().collect::<Vec<_>>(), [vlan(10)]);
    }
}
