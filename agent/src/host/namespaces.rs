//! The host's namespaces: opening a target's namespace with a message
//! that says what is missing, its identity (so a reused pid is not taken
//! for the namespace recorded), and every namespace this agent manages.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Arc,
};

use linkherd_proto::model::NetnsRef;

use super::{Host, endpoints::entry_netns, registry::Entry};
use crate::{
    error::Error,
    net::{
        NetError, NetOps,
        netns::{self, NsId, is_not_netns, not_a_netns},
    },
};

impl Host {
    /// Operations inside an endpoint's namespace, with a message that says
    /// what is missing.
    /// A namespace file given by path that is missing, unreadable or not a
    /// network namespace gets one answer, so it cannot tell which.
    pub(super) async fn ns_ops(&self, netns: &NetnsRef) -> Result<Arc<dyn NetOps>, Error> {
        let file = self.ns_file(netns);
        match self.net.netns(&file).await {
            Ok(ops) => Ok(ops),
            Err(e) if is_not_netns(&e) => Err(not_a_netns(&file).into()),
            Err(NetError::NotFound { .. }) if matches!(netns, NetnsRef::Path(_)) => {
                Err(not_a_netns(&file).into())
            }
            Err(NetError::NotFound { .. }) => Err(Error::NotFound(match netns {
                NetnsRef::Named(n) => {
                    format!(
                        "network namespace {n} does not exist; create it, or pass --create-netns"
                    )
                }
                NetnsRef::Pid(p) => format!("process {p} does not exist (no /proc/{p}/ns/net)"),
                NetnsRef::Path(p) => {
                    format!("network namespace file {} does not exist", p.display())
                }
            })),
            Err(e) => Err(e.into()),
        }
    }
    /// The namespaces nothing is ever attached into, by identity whatever
    /// path names them: the one the agent's kernel calls work in, the
    /// agent process's own, and the host's (init's, when readable). Read
    /// once: a process does not change them.
    pub async fn own_netns(&self) -> &BTreeSet<NsId> {
        self.own_netns
            .get_or_init(|| async {
                let mut files = vec![
                    PathBuf::from("/proc/self/ns/net"),
                    PathBuf::from("/proc/1/ns/net"),
                ];
                files.extend(self.net.home_netns());
                tokio::task::spawn_blocking(move || {
                    files
                        .iter()
                        .filter_map(|f| netns::identity(f).ok())
                        .collect()
                })
                .await
                .unwrap_or_default()
            })
            .await
    }

    /// Refuses `id` when it is one of [`Self::own_netns`]: a container's
    /// link, address and default route must never land on the host.
    pub async fn refuse_own_netns(&self, file: &Path, id: Option<NsId>) -> Result<(), Error> {
        match id {
            Some(id) if self.own_netns().await.contains(&id) => {
                Err(Error::Invalid(linkherd_proto::model::ValidationError::new(
                    "netns",
                    file.display().to_string(),
                    format!("is the host's own network namespace ({id}), not a container's"),
                    "give the container's network namespace",
                )))
            }
            _ => Ok(()),
        }
    }

    /// Docker's SandboxKey at Join: nothing there yet (Docker binds the
    /// container's namespace there when the container starts, after Join),
    /// or a network namespace that is not the host's — checked with the
    /// same open as every namespace file, so a FIFO, a device, a directory
    /// or a plain file is refused without blocking.
    pub async fn check_sandbox(&self, file: &Path) -> Result<(), Error> {
        let f = file.to_owned();
        let opened = tokio::task::spawn_blocking(move || netns::identity(&f))
            .await
            .map_err(|e| Error::Internal(format!("sandbox check did not finish: {e}")))?;
        match opened {
            Ok(id) => self.refuse_own_netns(file, Some(id)).await,
            Err(NetError::NotFound { .. }) => Ok(()),
            Err(_) => Err(not_a_netns(file).into()),
        }
    }

    /// The identity of a target's namespace, read on the blocking pool;
    /// `None` when it cannot be opened (gone, or a fake kernel's).
    pub async fn netns_identity(&self, netns: &NetnsRef) -> Option<NsId> {
        let file = self.ns_file(netns);
        tokio::task::spawn_blocking(move || netns::identity(&file).ok())
            .await
            .ok()
            .flatten()
    }
    /// The identities of the namespaces this agent manages besides its own:
    /// its named ones (under its prefix) and those of its recorded
    /// endpoints (as recorded, or as they resolve now for older records).
    pub async fn managed_netns(&self) -> BTreeSet<NsId> {
        let entries: Vec<Entry> = self.registry.lock().await.all().cloned().collect();
        let mut refs: Vec<NetnsRef> = Vec::new();
        let mut out = BTreeSet::new();
        for e in &entries {
            match e.netns_id {
                Some(id) => {
                    out.insert(id);
                }
                None => refs.push(entry_netns(e)),
            }
        }
        for full in self.net.netns_names().await.unwrap_or_default() {
            if let Some(n) = full.strip_prefix(&self.netns_prefix) {
                refs.push(NetnsRef::Named(n.to_owned()));
            }
        }
        for r in refs {
            out.extend(self.netns_identity(&r).await);
        }
        out
    }
}
