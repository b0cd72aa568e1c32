//! Where each endpoint lives. The kernel holds the truth about links (their
//! aliases mark ownership), but a link inside a process's namespace cannot
//! be found by scanning /run/netns, so the agent remembers where it put
//! each endpoint, and what it created for it.

use std::{collections::BTreeMap, path::PathBuf};

use linkherd_proto::model::NetnsRef;
use serde::{Deserialize, Serialize};

const FILE: &str = "endpoints.json";

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
}

/// [`NetnsRef`] in a stable on-disk form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Endpoint records keyed by (network, name), persisted in the state dir.
#[derive(Debug, Default)]
pub struct Registry {
    path: Option<PathBuf>,
    entries: BTreeMap<(String, String), Entry>,
}

impl Registry {
    /// Loads `dir/endpoints.json` (empty when missing or unreadable).
    pub fn load(dir: Option<PathBuf>) -> Self {
        let path = dir.map(|d| d.join(FILE));
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| match serde_json::from_slice::<Vec<Entry>>(&b) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::error!(error = %e, "ignoring a corrupt endpoint registry");
                    None
                }
            })
            .unwrap_or_default()
            .into_iter()
            .map(|e| ((e.network.clone(), e.name.clone()), e))
            .collect();
        Self { path, entries }
    }

    pub fn get(&self, network: &str, name: &str) -> Option<&Entry> {
        self.entries.get(&(network.to_owned(), name.to_owned()))
    }

    pub fn all(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn insert(&mut self, e: Entry) {
        self.entries.insert((e.network.clone(), e.name.clone()), e);
        self.save();
    }

    pub fn remove(&mut self, network: &str, name: &str) -> Option<Entry> {
        let e = self.entries.remove(&(network.to_owned(), name.to_owned()));
        self.save();
        e
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        let entries: Vec<&Entry> = self.entries.values().collect();
        let Ok(bytes) = serde_json::to_vec_pretty(&entries) else {
            return;
        };
        let tmp = path.with_extension("json.tmp");
        if let Err(e) = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)) {
            tracing::error!(path = %path.display(), error = %e, "cannot write the endpoint registry");
        }
    }
}
