//! Address check before use: are the IPv4 addresses a transaction is about
//! to give its new endpoints free on the wire?
//!
//! All of them are probed at once (RFC 5227: sender 0.0.0.0, so nothing is
//! claimed and no cache anywhere changes) from one temporary macvlan per
//! parent, in bridge mode so that the probe also reaches the parent's other
//! macvlans — the containers next door. The probe links live in a
//! namespace of their own that is removed afterwards, so no address
//! configuration daemon on the host ever sees them.

use std::{collections::BTreeMap, net::Ipv4Addr, sync::Arc, time::Duration};

use futures::future::join_all;
use linkherd_proto::model::{IfName, MacAddr, MacvlanMode, NetnsRef};

use super::AddrCheck;
use crate::{
    error::Error,
    net::{NetOps, NewLink, NewLinkKind},
};

/// The namespace the probe links live in (with the agent's prefix).
const PROBE_NETNS: &str = "lh-addrcheck";

/// An address to check, and the endpoint that is to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub parent: IfName,
    pub addr: Ipv4Addr,
    /// `network/name`, for the error.
    pub endpoint: String,
}

impl AddrCheck<'_> {
    /// Probes every wanted address at once, waiting `wait` for answers.
    /// Answers from MACs in `expected` (endpoints about to be replaced,
    /// which still hold their addresses) do not count. Returns one line per
    /// address in use: `10.0.100.120 (for net_a/b6) is already in use on
    /// the wire, answered by …`.
    ///
    /// Lock order, by type: the check's one namespace is held while the
    /// work runs on a [`Prober`], which reaches the kernel and nothing else
    /// of the host — no record, no other lock can be taken under it. A
    /// caller may hold the registry (an attach) or nothing (a transaction).
    pub async fn addresses_in_use(
        &self,
        wanted: &[Wanted],
        expected: &[MacAddr],
        wait: Duration,
    ) -> Result<Vec<String>, Error> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let _one_at_a_time = self.h.addrcheck.lock().await;
        self.prober().run(wanted, expected, wait).await
    }

    /// Removes a probe namespace an agent that died while checking left.
    pub async fn remove_stale_probe_netns(&self) -> Result<(), Error> {
        let _one_at_a_time = self.h.addrcheck.lock().await;
        self.prober().remove_stale().await
    }

    fn prober(&self) -> Prober<'_> {
        Prober {
            net: &self.h.net,
            netns: format!("{}{PROBE_NETNS}", self.h.netns_prefix),
        }
    }
}

/// The address check's work, with the kernel and its namespace's full name
/// only (see [`AddrCheck::addresses_in_use`]).
struct Prober<'a> {
    net: &'a Arc<dyn NetOps>,
    /// The probe namespace's name, with the agent's prefix.
    netns: String,
}

impl Prober<'_> {
    async fn run(
        &self,
        wanted: &[Wanted],
        expected: &[MacAddr],
        wait: Duration,
    ) -> Result<Vec<String>, Error> {
        // One left by an agent that died while checking goes first.
        self.remove_stale().await?;
        self.net.create_netns(&self.netns).await?;
        let res = self.probe_all(wanted, expected, wait).await;
        let gone = self.net.delete_netns(&self.netns).await;
        let found = res?;
        gone?;
        Ok(found)
    }

    async fn remove_stale(&self) -> Result<(), Error> {
        if self.net.netns_exists(&self.netns).await? {
            self.net.delete_netns(&self.netns).await?;
        }
        Ok(())
    }

    fn file(&self) -> std::path::PathBuf {
        NetnsRef::Named(self.netns.clone()).file()
    }

    async fn probe_all(
        &self,
        wanted: &[Wanted],
        expected: &[MacAddr],
        wait: Duration,
    ) -> Result<Vec<String>, Error> {
        let ops: Arc<dyn NetOps> = self.net.netns(&self.file()).await?;
        // A MAC of this host and moment: agents of several hosts checking
        // on one wire at once must not share one (the switch would send
        // each the other's answers).
        let seed = format!(
            "{}-{}-{:?}",
            nix::unistd::gethostname()
                .unwrap_or_default()
                .to_string_lossy(),
            std::process::id(),
            std::time::SystemTime::now()
        );
        let links = self.probe_links(wanted, &seed, &ops).await?;
        let probes = wanted.iter().map(|w| {
            let ops = ops.clone();
            let link = links.get(w.parent.as_str()).copied();
            async move {
                let Some((index, mac)) = link else {
                    return Ok(None);
                };
                let users: Vec<String> = ops
                    .probe_address(index, mac, w.addr, wait)
                    .await?
                    .into_iter()
                    .filter(|m| !expected.contains(m))
                    .map(|m| m.to_string())
                    .collect();
                Ok::<_, Error>((!users.is_empty()).then(|| {
                    format!(
                        "{} (for {}) is already in use on the wire, answered by {}",
                        w.addr,
                        w.endpoint,
                        users.join(", ")
                    )
                }))
            }
        });
        join_all(probes)
            .await
            .into_iter()
            .filter_map(Result::transpose)
            .collect()
    }

    /// One probe link per parent, named chk0, chk1, …, up in `ops`'s
    /// namespace: its index and MAC, by parent.
    async fn probe_links<'w>(
        &self,
        wanted: &'w [Wanted],
        seed: &str,
        ops: &Arc<dyn NetOps>,
    ) -> Result<BTreeMap<&'w str, (u32, MacAddr)>, Error> {
        let mut links: BTreeMap<&str, (u32, MacAddr)> = BTreeMap::new();
        for (i, parent) in wanted
            .iter()
            .map(|w| w.parent.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .enumerate()
        {
            let lower = self.net.link(&IfName::parse("parent", parent)?).await?;
            let name = IfName::parse("name", &format!("chk{i}"))?;
            let mac = MacAddr::stable(seed, parent);
            self.net
                .add_link(&NewLink {
                    name: name.clone(),
                    kind: NewLinkKind::Macvlan {
                        parent_index: lower.index,
                        mode: MacvlanMode::Bridge,
                        source_macs: Vec::new(),
                    },
                    mtu: None,
                    mac: Some(mac),
                    alias: String::new(),
                    group: 0,
                    target: Some(self.file()),
                })
                .await?;
            let link = ops.link(&name).await?;
            ops.set_up(link.index, true).await?;
            links.insert(parent, (link.index, mac));
        }
        Ok(links)
    }
}
