//! Where each endpoint lives. The kernel holds the truth about links (their
//! aliases mark ownership), but a link inside a process's namespace cannot
//! be found by scanning /run/netns, so the agent remembers where it put
//! each endpoint, and what it created for it.

pub mod attachments;
pub mod held;
pub mod kept;

use std::{collections::BTreeMap, path::PathBuf};

use linkherd_proto::model::{EndpointSpec, HostAccessSpec, NetnsRef, VlanSpec};
use serde::{Deserialize, Serialize};

use crate::{
    net::netns::NsId,
    state::store::{RecordSet, Store, StoreError, Versioned},
};

/// One endpoint's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub network: String,
    pub name: String,
    pub netns: Netns,
    pub ifname: String,
    pub parent: String,
    /// linkherd created the parent (an auto VLAN) for this network.
    pub parent_created: bool,
    /// linkherd created the named namespace for this endpoint.
    pub netns_created: bool,
    /// The namespace's identity (nsfs device + inode) when the endpoint was
    /// made: a process's namespace whose pid is later reused by another
    /// process is not mistaken for it. `None` in records written before it
    /// was kept (they load as before) and where it cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_id: Option<NsId>,
    /// What was asked for (its MAC filled in): how the endpoint is made
    /// again after a reboot or a repair. `None` in records written before
    /// it was kept, until the agent reads it back from the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<EndpointSpec>,
}

/// [`NetnsRef`] in a stable on-disk form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Netns {
    Name(String),
    Path(PathBuf),
    Pid(u32),
}

impl From<&NetnsRef> for Netns {
    fn from(n: &NetnsRef) -> Self {
        match n {
            NetnsRef::Named(s) => Netns::Name(s.clone()),
            NetnsRef::Path(p) => Netns::Path(p.clone()),
            NetnsRef::Pid(p) => Netns::Pid(*p),
        }
    }
}

impl From<&Netns> for NetnsRef {
    fn from(n: &Netns) -> Self {
        match n {
            Netns::Name(s) => NetnsRef::Named(s.clone()),
            Netns::Path(p) => NetnsRef::Path(p.clone()),
            Netns::Pid(p) => NetnsRef::Pid(*p),
        }
    }
}

impl Versioned for Entry {
    const FORMAT: u32 = 1;
}

/// The registry's record set: `endpoints/NETWORK+NAME.json`, one file per
/// endpoint, so a create or delete writes one small file.
const RECORDS: &str = "endpoints";
/// Before format 1: one JSON array of every entry, rewritten on each change.
const LEGACY_FILE: &str = "endpoints.json";

/// Endpoint records keyed by (network, name), persisted in the state dir.
///
/// Changes are written before they are made in memory, and a write that
/// fails is returned: a record the disk does not have is one the agent
/// would not find again after a restart.
#[derive(Debug, Default)]
pub struct Registry {
    records: Option<RecordSet<Entry>>,
    entries: BTreeMap<(String, String), Entry>,
    /// Containers' attachments, behind the same lock.
    pub attachments: attachments::AttachmentRecords,
    /// The VLANs an operator asked for (not those made for a network).
    pub vlans: kept::Kept<VlanSpec>,
    /// Host access, by network.
    pub host_access: kept::Kept<HostAccessSpec>,
    /// Bumped by every change to the records: the reconciler looks at the
    /// desired state again only when it moved.
    changes: u64,
}

/// The record set of kept VLANs.
const VLANS: &str = "vlans";
/// The record set of kept host access.
const HOST_ACCESS: &str = "host-access";

impl Registry {
    /// Loads the records in `store` (none without a store), migrating the
    /// old single `endpoints.json` (read, written as records, then removed).
    pub async fn load(store: Option<&Store>) -> Result<Self, StoreError> {
        let Some(store) = store else {
            return Ok(Self::default());
        };
        let attachments = attachments::AttachmentRecords::load(Some(store)).await?;
        let vlans = kept::Kept::load(Some(store), VLANS, |v: &VlanSpec| v.name.to_string()).await?;
        let host_access = kept::Kept::load(Some(store), HOST_ACCESS, |h: &HostAccessSpec| {
            h.network.to_string()
        })
        .await?;
        let records = store.records::<Entry>(RECORDS);
        let mut entries: BTreeMap<_, _> = records
            .load_all()
            .await?
            .into_iter()
            .map(|e| ((e.network.clone(), e.name.clone()), e))
            .collect();
        if let Some(old) = store.read_legacy::<Vec<Entry>>(LEGACY_FILE).await? {
            tracing::info!(
                count = old.len(),
                "migrating {LEGACY_FILE} to one file per endpoint"
            );
            for e in old {
                records.put(&[&e.network, &e.name], &e).await?;
                entries.insert((e.network.clone(), e.name.clone()), e);
            }
            store.remove_file(LEGACY_FILE).await?;
        }
        Ok(Self {
            records: Some(records),
            entries,
            attachments,
            vlans,
            host_access,
            changes: 0,
        })
    }

    /// How many changes the records have seen (see [`Registry::changes`]).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn changed(&mut self) {
        self.changes = self.changes.wrapping_add(1);
    }

    pub fn get(&self, network: &str, name: &str) -> Option<&Entry> {
        self.entries.get(&(network.to_owned(), name.to_owned()))
    }

    pub fn all(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Records `e` on disk, then here (nothing to write when it is
    /// recorded so already).
    pub async fn insert(&mut self, e: Entry) -> Result<(), StoreError> {
        if self.get(&e.network, &e.name) == Some(&e) {
            return Ok(());
        }
        if let Some(r) = &self.records {
            r.put(&[&e.network, &e.name], &e).await?;
        }
        self.entries.insert((e.network.clone(), e.name.clone()), e);
        self.changed();
        Ok(())
    }

    /// Records `entries` on disk as one group commit, then here (those
    /// recorded so already are not written again).
    pub async fn insert_many(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        let new: Vec<Entry> = entries
            .into_iter()
            .filter(|e| self.get(&e.network, &e.name) != Some(e))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        if let Some(r) = &self.records {
            let items: Vec<(Vec<&str>, &Entry)> = new
                .iter()
                .map(|e| (vec![e.network.as_str(), e.name.as_str()], e))
                .collect();
            r.put_many(&items).await?;
        }
        for e in new {
            self.entries.insert((e.network.clone(), e.name.clone()), e);
        }
        self.changed();
        Ok(())
    }

    /// Forgets endpoints (network, name) on disk, with one sync for all,
    /// then here.
    pub async fn remove_many(&mut self, keys: &[(&str, &str)]) -> Result<(), StoreError> {
        if let Some(r) = &self.records {
            let parts: Vec<Vec<&str>> = keys.iter().map(|(n, e)| vec![*n, *e]).collect();
            r.remove_many(&parts).await?;
        }
        for (network, name) in keys {
            self.entries
                .remove(&((*network).to_owned(), (*name).to_owned()));
        }
        self.changed();
        Ok(())
    }

    /// Keeps the VLAN `spec` (durably).
    pub async fn keep_vlan(&mut self, spec: &VlanSpec) -> Result<(), StoreError> {
        self.vlans.put(spec.name.as_str(), spec).await?;
        self.changed();
        Ok(())
    }

    /// Stops keeping the VLAN `name` (durably; absent is fine).
    pub async fn drop_vlan(&mut self, name: &str) -> Result<(), StoreError> {
        self.vlans.remove(name).await?;
        self.changed();
        Ok(())
    }

    /// Keeps the host access `spec` (durably).
    pub async fn keep_host_access(&mut self, spec: &HostAccessSpec) -> Result<(), StoreError> {
        self.host_access.put(spec.network.as_str(), spec).await?;
        self.changed();
        Ok(())
    }

    /// Stops keeping the host access of `network` (durably; absent is fine).
    pub async fn drop_host_access(&mut self, network: &str) -> Result<(), StoreError> {
        self.host_access.remove(network).await?;
        self.changed();
        Ok(())
    }

    /// Forgets an endpoint on disk, then here.
    pub async fn remove(&mut self, network: &str, name: &str) -> Result<Option<Entry>, StoreError> {
        if let Some(r) = &self.records {
            r.remove(&[network, name]).await?;
        }
        self.changed();
        Ok(self.entries.remove(&(network.to_owned(), name.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn entry(name: &str) -> Entry {
        Entry {
            network: "mac_net".into(),
            name: name.into(),
            netns: Netns::Name(name.into()),
            ifname: "eth0".into(),
            parent: "ens192".into(),
            parent_created: false,
            netns_created: true,
            netns_id: None,
            spec: None,
        }
    }

    #[tokio::test]
    async fn the_old_single_file_is_migrated_to_one_file_per_endpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("store");
        let old = serde_json::to_vec(&[entry("b1"), entry("b2")]).expect("json");
        std::fs::write(dir.path().join(LEGACY_FILE), old).expect("write");
        let reg = Registry::load(Some(&store)).await.expect("load");
        assert_eq!(
            reg.all().cloned().collect::<Vec<_>>(),
            [entry("b1"), entry("b2")]
        );
        assert!(!dir.path().join(LEGACY_FILE).exists());
        let b1: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("endpoints/mac_net+b1.json")).expect("read"),
        )
        .expect("json");
        assert_eq!(b1["format"], 1);
        assert_eq!(b1["netns"], serde_json::json!({"name": "b1"}));
        // And loads the same from the new layout.
        let again = Registry::load(Some(&store)).await.expect("load");
        assert_eq!(again.all().count(), 2);
    }

    #[tokio::test]
    async fn a_change_writes_only_its_record_and_an_unchanged_one_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("store");
        let mut reg = Registry::load(Some(&store)).await.expect("load");
        reg.insert(entry("b1")).await.expect("b1");
        let b1 = dir.path().join("endpoints/mac_net+b1.json");
        let stamp = |p: &std::path::Path| {
            let m = std::fs::metadata(p).expect("meta");
            (m.ino(), m.mtime_nsec())
        };
        let before = stamp(&b1);
        reg.insert(entry("b1")).await.expect("same again");
        reg.insert(entry("b2")).await.expect("b2");
        assert_eq!(stamp(&b1), before);
        assert_eq!(
            reg.remove("mac_net", "b2").await.expect("remove"),
            Some(entry("b2"))
        );
        assert!(!dir.path().join("endpoints/mac_net+b2.json").exists());
        assert_eq!(stamp(&b1), before);
    }
}
