//! The network catalog: the fleet's networks as this host offers them to
//! container runtimes (its parent link, subnets, gateways and address
//! blocks), as the last applied desired state gave them. One record per
//! network in the state directory (`networks/NAME.json`), so runtimes can
//! attach while no controller runs and after the agent restarts. Changed
//! only through transactions (`DesiredState.catalog`), journaled and undone
//! like every other step.

use std::collections::BTreeMap;

use linkherd_proto::model::CatalogNetwork;

use super::CatalogNetworks;
use crate::{
    error::Error,
    state::store::{RecordSet, Store, StoreError, Versioned},
};

/// The record set's directory in the state directory.
const RECORDS: &str = "networks";

impl Versioned for CatalogNetwork {
    const FORMAT: u32 = 1;
}

/// The catalog in memory, backed by its records.
#[derive(Debug, Default)]
pub struct Catalog {
    records: Option<RecordSet<CatalogNetwork>>,
    nets: BTreeMap<String, CatalogNetwork>,
}

impl Catalog {
    /// Loads the records in `store` (an empty catalog without a store). A
    /// record that no longer passes the checks a new one must pass (a
    /// block edited by hand into another's) is left out, logged.
    pub async fn load(store: Option<&Store>) -> Result<Self, StoreError> {
        let Some(store) = store else {
            return Ok(Self::default());
        };
        let records = store.records::<CatalogNetwork>(RECORDS);
        let mut nets = BTreeMap::new();
        for n in records.load_all().await? {
            match n.check(&format!("{RECORDS}/{}", n.name)) {
                Ok(()) => {
                    nets.insert(n.name.to_string(), n);
                }
                Err(e) => tracing::error!(network = %n.name, error = %e, "catalog record refused"),
            }
        }
        Ok(Self {
            records: Some(records),
            nets,
        })
    }

    pub fn all(&self) -> impl Iterator<Item = &CatalogNetwork> {
        self.nets.values()
    }

    pub fn get(&self, name: &str) -> Option<&CatalogNetwork> {
        self.nets.get(name)
    }

    /// Records `net` on disk, then here; what it replaced.
    pub async fn put(&mut self, net: CatalogNetwork) -> Result<Option<CatalogNetwork>, StoreError> {
        if let Some(r) = &self.records {
            r.put(&[net.name.as_str()], &net).await?;
        }
        Ok(self.nets.insert(net.name.to_string(), net))
    }

    /// Forgets `name` on disk, then here; what it was.
    pub async fn remove(&mut self, name: &str) -> Result<Option<CatalogNetwork>, StoreError> {
        if let Some(r) = &self.records {
            r.remove(&[name]).await?;
        }
        Ok(self.nets.remove(name))
    }
}

/// A network in a few words: `on ens192.10, 172.16.10.0/24 blocks
/// 172.16.10.48/28`.
pub fn describe(n: &CatalogNetwork) -> String {
    let mut out = format!("on {}", n.parent);
    for p in [&n.v4, &n.v6].into_iter().flatten() {
        out.push_str(&format!(", {}", p.subnet));
        if !p.blocks.is_empty() {
            let blocks: Vec<String> = p.blocks.iter().map(ToString::to_string).collect();
            out.push_str(&format!(" blocks {}", blocks.join(" ")));
        }
    }
    out
}

/// What differs from `old` to `new`, in words.
pub fn differences(old: &CatalogNetwork, new: &CatalogNetwork) -> String {
    let mut d = Vec::new();
    if old.parent != new.parent {
        d.push(format!("parent {} -> {}", old.parent, new.parent));
    }
    if old.mode != new.mode {
        d.push(format!(
            "mode {} -> {}",
            old.mode.as_str(),
            new.mode.as_str()
        ));
    }
    if old.mtu != new.mtu {
        let show = |m: Option<u32>| m.map_or("parent's".to_owned(), |m| m.to_string());
        d.push(format!("mtu {} -> {}", show(old.mtu), show(new.mtu)));
    }
    for (family, a, b) in [("v4", &old.v4, &new.v4), ("v6", &old.v6, &new.v6)] {
        if a != b {
            let show = |p: &Option<linkherd_proto::model::CatalogPool>| match p {
                None => "none".to_owned(),
                Some(p) => {
                    let blocks: Vec<String> = p.blocks.iter().map(ToString::to_string).collect();
                    format!("{} [{}]", p.subnet, blocks.join(" "))
                }
            };
            d.push(format!("{family} {} -> {}", show(a), show(b)));
        }
    }
    d.join(", ")
}

impl CatalogNetworks<'_> {
    /// The catalog's networks, by name.
    pub async fn networks(&self) -> Vec<CatalogNetwork> {
        self.h.catalog.lock().await.all().cloned().collect()
    }
    /// One network of the catalog.
    pub async fn network(&self, name: &str) -> Option<CatalogNetwork> {
        self.h.catalog.lock().await.get(name).cloned()
    }
    /// Puts `net` in the catalog (durably); what it replaced.
    pub async fn put_network(&self, net: CatalogNetwork) -> Result<Option<CatalogNetwork>, Error> {
        Ok(self.h.catalog.lock().await.put(net).await?)
    }
    /// Removes `name` from the catalog (durably); what it was.
    pub async fn remove_network(&self, name: &str) -> Result<Option<CatalogNetwork>, Error> {
        Ok(self.h.catalog.lock().await.remove(name).await?)
    }
}
