//! Which catalog network each Docker network is: recorded at
//! CreateNetwork, since Docker's later calls name only the network's id,
//! and kept on disk, since Docker does not create its networks again when
//! the agent restarts. One file per network (`docker-networks/ID.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::state::store::{RecordSet, Store, StoreError, Versioned};

const RECORDS: &str = "docker-networks";

/// Docker networks bound at once; one more is refused (dockerd makes one
/// per `docker network create`, a host has a handful).
pub const MAX_BINDINGS: usize = 1024;

/// A Docker network bound to a network of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub network_id: String,
    pub network: String,
}

impl Versioned for Binding {
    const FORMAT: u32 = 1;
}

/// Every binding, in memory and on disk.
#[derive(Debug, Default)]
pub struct Bindings {
    records: Option<RecordSet<Binding>>,
    all: BTreeMap<String, String>,
}

impl Bindings {
    pub async fn load(store: Option<&Store>) -> Result<Self, StoreError> {
        let Some(store) = store else {
            return Ok(Self::default());
        };
        let records = store.records::<Binding>(RECORDS);
        let all = records
            .load_all()
            .await?
            .into_iter()
            .map(|b| (b.network_id, b.network))
            .collect();
        Ok(Self {
            records: Some(records),
            all,
        })
    }

    /// The catalog network Docker network `id` is.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.all.get(id).map(String::as_str)
    }

    /// Whether one more network may be bound (a known id always may).
    pub fn has_room_for(&self, id: &str) -> bool {
        self.all.contains_key(id) || self.all.len() < MAX_BINDINGS
    }

    /// Records the binding on disk, then here.
    pub async fn put(&mut self, b: Binding) -> Result<(), StoreError> {
        if let Some(r) = &self.records {
            r.put(&[&b.network_id], &b).await?;
        }
        self.all.insert(b.network_id, b.network);
        Ok(())
    }

    /// Forgets `id` on disk, then here; the network it was bound to.
    pub async fn remove(&mut self, id: &str) -> Result<Option<String>, StoreError> {
        if let Some(r) = &self.records {
            r.remove(&[id]).await?;
        }
        Ok(self.all.remove(id))
    }
}
