//! Commit-confirmed transactions over a host's desired state.
//!
//! `Apply` carries out a plan step by step, recording after each step how to
//! undo it — in memory and in a journal in the state directory. A failure
//! undoes the steps done so far. Success leaves the transaction pending until
//! `Confirm`; if no confirmation comes in time (the controller lost contact,
//! or its verification failed) the agent rolls back by itself. An agent that
//! restarts with a journal rolls that transaction back at once.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use linkherd_proto::{
    convert::{Desired, EndpointSelector},
    model::{EndpointSpec, HostAccessSpec, IfName, MacAddr, ObjName, Owner, VlanSpec},
    pb,
};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::{sync::Mutex, task::AbortHandle};

use crate::{
    audit::Audit,
    auth::Identity,
    error::Error,
    lifecycle::{
        Lifecycle, Outcome, Wanted,
        plan::{Change, Op},
    },
};

const JOURNAL: &str = "txn.json";
/// Confirmation window when the caller gives none, and the longest allowed.
pub const DEFAULT_CONFIRM: Duration = Duration::from_secs(60);
pub const MAX_CONFIRM: Duration = Duration::from_secs(3600);
/// The longest an address check may wait for answers.
pub const MAX_ADDRESS_CHECK_MS: u32 = 5000;

/// How to undo one applied step. Specs are kept as encoded protobuf, the
/// API's own stable form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
enum Undo {
    DeleteVlan {
        name: String,
    },
    CreateVlan {
        vlan: Vec<u8>,
    },
    DeleteEndpoint {
        network: String,
        name: String,
        /// The named namespace the create made (it did not exist before),
        /// removed with whatever is in it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<String>,
    },
    CreateEndpoint {
        endpoint: Vec<u8>,
        create_netns: bool,
    },
    DeleteHostAccess {
        network: String,
    },
    CreateHostAccess {
        host_access: Vec<u8>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    id: String,
    /// Unix seconds.
    deadline: u64,
    undo: Vec<Undo>,
}

#[derive(Debug)]
struct Pending {
    journal: Journal,
    timer: Option<AbortHandle>,
}

/// The result of an apply.
#[derive(Debug, Clone)]
pub struct Applied {
    pub id: String,
    pub changes: Vec<Change>,
    pub deadline: SystemTime,
}

/// A host's transaction manager: at most one pending transaction.
#[derive(Debug, Clone)]
pub struct Transactions {
    lifecycle: Arc<Lifecycle>,
    audit: Arc<Audit>,
    journal: Option<PathBuf>,
    pending: Arc<Mutex<Option<Pending>>>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Transactions {
    pub fn new(lifecycle: Arc<Lifecycle>, audit: Arc<Audit>, state_dir: Option<PathBuf>) -> Self {
        Self {
            lifecycle,
            audit,
            journal: state_dir.map(|d| d.join(JOURNAL)),
            pending: Arc::default(),
        }
    }

    async fn save(&self, j: Option<&Journal>) {
        let Some(path) = &self.journal else { return };
        let res = match j {
            Some(j) => {
                let tmp = path.with_extension("json.tmp");
                match serde_json::to_vec_pretty(j) {
                    Ok(bytes) => match tokio::fs::write(&tmp, bytes).await {
                        Ok(()) => tokio::fs::rename(&tmp, path).await,
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(std::io::Error::other(e)),
                }
            }
            None => match tokio::fs::remove_file(path).await {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        if let Err(e) = res {
            tracing::error!(path = %path.display(), error = %e, "cannot write the transaction journal");
        }
    }

    /// Rolls back a transaction left by an agent that stopped before it was
    /// confirmed. Called once at start.
    pub async fn recover(&self) {
        if let Err(e) = self.lifecycle.remove_stale_probe_netns().await {
            tracing::error!(error = %e, "cannot remove the address-check namespace a previous run left");
        }
        let Some(path) = &self.journal else { return };
        let Ok(bytes) = tokio::fs::read(path).await else {
            return;
        };
        let j: Journal = match serde_json::from_slice(&bytes) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "ignoring a corrupt transaction journal");
                return;
            }
        };
        tracing::warn!(
            txn = j.id,
            "rolling back a transaction left unconfirmed by a previous run"
        );
        let reverted = self.undo(&j.undo).await;
        let who = Identity::agent("restart with an unconfirmed transaction");
        self.audit.record(
            &who,
            "txn-recover",
            &j.id,
            &reverted.join("; "),
            "rolled back",
        );
        self.save(None).await;
    }

    /// Applies `desired` if the host is still at `expected` (0: any); with
    /// `check`, the addresses of new endpoints are probed free on the wire
    /// (waiting that long for answers) before any endpoint is made.
    pub async fn apply(
        &self,
        desired: &Desired,
        expected: u64,
        confirm: Duration,
        check: Option<Duration>,
    ) -> Result<Applied, Error> {
        let mut pending = self.pending.lock().await;
        if let Some(p) = pending.as_ref() {
            return Err(Error::Precondition(format!(
                "transaction {} is pending on this host; confirm or roll it back first",
                p.journal.id
            )));
        }
        let now = generation(&self.lifecycle).await?;
        if expected != 0 && expected != now {
            return Err(Error::Precondition(format!(
                "this host changed since it was planned (generation {expected}, now {now}); plan again"
            )));
        }
        let changes = self.lifecycle.plan(desired).await?;
        let deadline = SystemTime::now() + confirm;
        let mut journal = Journal {
            id: txn_id(),
            deadline: unix(deadline),
            undo: Vec::new(),
        };
        // The address check runs once, right before the first endpoint is
        // made: VLAN parents exist by then, removed endpoints are gone.
        let mut check = check;
        let mut i = 0;
        while let Some(c) = changes.get(i) {
            let endpoint = matches!(c.op, Op::CreateEndpoint(_) | Op::ReplaceEndpoint(_));
            let res = match check.take_if(|_| endpoint) {
                Some(wait) => self.check_addresses(&changes, wait).await,
                None => Ok(()),
            };
            if let Err(e) = res {
                let reverted = self.abandon(&journal).await;
                tracing::warn!(error = %e, reverted, "address check failed; rolled back");
                return Err(e);
            }
            match self.step(&changes[i..], &mut journal).await {
                Ok(done) => i += done,
                Err(e) => {
                    let reverted = self.abandon(&journal).await;
                    tracing::warn!(step = c.object, error = %e, reverted, "apply failed; rolled back");
                    return Err(match e {
                        Error::Invalid(v) => Error::Invalid(v),
                        other => Error::Precondition(format!(
                            "{} {} failed: {other}; everything done before it was rolled back",
                            c.kind, c.object
                        )),
                    });
                }
            }
        }
        let id = journal.id.clone();
        let timer = (!journal.undo.is_empty()).then(|| {
            let this = self.clone();
            let id = id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(confirm).await;
                if let Ok(reverted) = this.rollback(&id).await {
                    let who = Identity::agent("confirmation timed out");
                    this.audit
                        .record(&who, "txn-expiry", &id, &reverted.join("; "), "rolled back");
                }
            })
            .abort_handle()
        });
        if journal.undo.is_empty() {
            // Nothing changed: nothing to confirm.
            self.save(None).await;
        } else {
            *pending = Some(Pending { journal, timer });
        }
        Ok(Applied {
            id,
            changes,
            deadline,
        })
    }

    /// Keeps a pending transaction.
    pub async fn confirm(&self, id: &str) -> Result<u64, Error> {
        let mut pending = self.pending.lock().await;
        match pending.as_ref() {
            Some(p) if p.journal.id == id => {}
            _ => {
                return Err(Error::NotFound(format!(
                    "no pending transaction {id} on this host"
                )));
            }
        }
        if let Some(p) = pending.take()
            && let Some(t) = p.timer
        {
            t.abort();
        }
        self.save(None).await;
        drop(pending);
        generation(&self.lifecycle).await
    }

    /// Undoes a pending transaction; returns what was reverted, in words.
    pub async fn rollback(&self, id: &str) -> Result<Vec<String>, Error> {
        let mut pending = self.pending.lock().await;
        match pending.as_ref() {
            Some(p) if p.journal.id == id => {}
            _ => {
                return Err(Error::NotFound(format!(
                    "no pending transaction {id} on this host"
                )));
            }
        }
        let Some(p) = pending.take() else {
            return Err(Error::NotFound(format!(
                "no pending transaction {id} on this host"
            )));
        };
        if let Some(t) = p.timer {
            t.abort();
        }
        let reverted = self.undo(&p.journal.undo).await;
        self.save(None).await;
        Ok(reverted)
    }

    /// Undoes what a transaction that failed half way did and forgets its
    /// journal; returns how many steps were reverted.
    async fn abandon(&self, j: &Journal) -> usize {
        let reverted = self.undo(&j.undo).await;
        self.save(None).await;
        reverted.len()
    }

    /// Probes the IPv4 addresses the plan's new and replaced endpoints are
    /// to get, all at once; any in use fails the transaction.
    async fn check_addresses(&self, changes: &[Change], wait: Duration) -> Result<(), Error> {
        let mut wanted = Vec::new();
        let mut replaced = Vec::new();
        for c in changes {
            let (Op::CreateEndpoint(spec) | Op::ReplaceEndpoint(spec)) = &c.op else {
                continue;
            };
            // A passthru macvlan is the only one its parent may carry: no
            // probe link can go next to it.
            if spec.mode == linkherd_proto::model::MacvlanMode::Passthru {
                continue;
            }
            if matches!(c.op, Op::ReplaceEndpoint(_)) {
                replaced.push((spec.network.to_string(), spec.name.to_string()));
            }
            wanted.extend(spec.addresses.iter().filter_map(|a| match a.addr() {
                std::net::IpAddr::V4(v4) => Some(Wanted {
                    parent: spec.parent.clone(),
                    addr: v4,
                    endpoint: format!("{}/{}", spec.network, spec.name),
                }),
                std::net::IpAddr::V6(_) => None,
            }));
        }
        // Endpoints about to be replaced still answer for their addresses.
        let expected: Vec<MacAddr> = self
            .lifecycle
            .list_endpoints()
            .await?
            .into_iter()
            .filter(|e| replaced.contains(&(e.network.clone(), e.name.clone())))
            .filter_map(|e| e.mac)
            .collect();
        let in_use = self
            .lifecycle
            .addresses_in_use(&wanted, &expected, wait)
            .await?;
        if in_use.is_empty() {
            Ok(())
        } else {
            Err(Error::Precondition(format!(
                "address check failed, nothing was changed on this host: {}; give those \
                 endpoints other addresses, or free these",
                in_use.join("; ")
            )))
        }
    }

    /// Carries out the first of `ops` — with the removals of the same
    /// network's endpoints that follow it, as one — and records the undo;
    /// returns how many of `ops` it did.
    async fn step(&self, ops: &[Change], j: &mut Journal) -> Result<usize, Error> {
        let lc = &self.lifecycle;
        let Some(first) = ops.first() else {
            return Ok(0);
        };
        let mut done = 1;
        match &first.op {
            Op::CreateVlan(spec) => {
                if lc.create_vlan(spec, Owner::Vlan).await?.1 == Outcome::Created {
                    j.undo.push(Undo::DeleteVlan {
                        name: spec.name.to_string(),
                    });
                }
            }
            Op::DeleteVlan { name } => self.remove_vlan(name, j).await?,
            Op::ReplaceVlan(spec) => {
                self.remove_vlan(&spec.name, j).await?;
                self.save(Some(j)).await;
                lc.create_vlan(spec, Owner::Vlan).await?;
                j.undo.push(Undo::DeleteVlan {
                    name: spec.name.to_string(),
                });
            }
            Op::DeleteEndpoint { network, .. } => {
                // Removals of one network's endpoints in a row go together.
                let names: Vec<&str> = ops
                    .iter()
                    .map_while(|c| match &c.op {
                        Op::DeleteEndpoint { network: n, name } if n == network => {
                            Some(name.as_str())
                        }
                        _ => None,
                    })
                    .collect();
                done = names.len();
                self.remove_endpoints(network, &names, j).await?;
            }
            Op::ReplaceEndpoint(spec) => {
                self.remove_endpoints(spec.network.as_str(), &[spec.name.as_str()], j)
                    .await?;
                self.save(Some(j)).await;
                self.add_endpoint(spec, j).await?;
            }
            Op::CreateEndpoint(spec) => self.add_endpoint(spec, j).await?,
            Op::DeleteHostAccess { network } => self.remove_host_access(network, j).await?,
            Op::ReplaceHostAccess(spec) => {
                self.remove_host_access(spec.network.as_str(), j).await?;
                self.save(Some(j)).await;
                self.add_host_access(spec, j).await?;
            }
            Op::CreateHostAccess(spec) => self.add_host_access(spec, j).await?,
        }
        self.save(Some(j)).await;
        Ok(done)
    }

    /// Creates an endpoint, write-ahead: its undo is on disk before the
    /// kernel is touched, so an agent killed half way through the create
    /// still removes what it made when it restarts.
    async fn add_endpoint(&self, spec: &EndpointSpec, j: &mut Journal) -> Result<(), Error> {
        let netns = match (&spec.netns, spec.create_netns) {
            (linkherd_proto::model::NetnsRef::Named(n), true)
                if !self.lifecycle.netns_exists(n).await? =>
            {
                Some(n.clone())
            }
            _ => None,
        };
        j.undo.push(Undo::DeleteEndpoint {
            network: spec.network.to_string(),
            name: spec.name.to_string(),
            netns,
        });
        self.save(Some(j)).await;
        match self.lifecycle.create_endpoint(spec).await {
            Ok((_, Outcome::Created)) => Ok(()),
            // There already (nothing to undo), or failed and undone by the
            // create itself.
            other => {
                j.undo.pop();
                other.map(|_| ())
            }
        }
    }

    /// Removes endpoints `names` of `network`, write-ahead: how to
    /// re-create each is on disk first. When they are all the network has
    /// on this host (a teardown), one link-group request removes them: a
    /// link delete waits for an RCU grace period, which a group pays once.
    async fn remove_endpoints(
        &self,
        network: &str,
        names: &[&str],
        j: &mut Journal,
    ) -> Result<(), Error> {
        let here = self.lifecycle.endpoint_names(network).await;
        let whole = here.iter().all(|n| names.contains(&n.as_str()));
        for old in self.lifecycle.endpoints_of(network, Some(names)).await? {
            let create_netns = old.netns_created;
            let mut old = old;
            old.interface = None;
            j.undo.push(Undo::CreateEndpoint {
                endpoint: pb::MacvlanEndpoint::from(old).encode_to_vec(),
                create_netns,
            });
        }
        self.save(Some(j)).await;
        let network_name = ObjName::parse("network", network)?;
        if whole {
            self.lifecycle
                .delete_endpoints(&EndpointSelector::Network(network_name), false)
                .await?;
            return Ok(());
        }
        for name in names {
            let sel = EndpointSelector::Named {
                network: network_name.clone(),
                name: ObjName::parse("name", name)?,
            };
            self.lifecycle.delete_endpoints(&sel, false).await?;
        }
        Ok(())
    }

    async fn add_host_access(&self, spec: &HostAccessSpec, j: &mut Journal) -> Result<(), Error> {
        if self.lifecycle.create_host_access(spec).await?.1 == Outcome::Created {
            j.undo.push(Undo::DeleteHostAccess {
                network: spec.network.to_string(),
            });
        }
        Ok(())
    }

    async fn remove_host_access(&self, network: &str, j: &mut Journal) -> Result<(), Error> {
        let old = self
            .lifecycle
            .list_host_access()
            .await?
            .into_iter()
            .find(|h| h.network == network);
        self.lifecycle
            .delete_host_access(&ObjName::parse("network", network)?)
            .await?;
        if let Some(old) = old {
            j.undo.push(Undo::CreateHostAccess {
                host_access: pb::HostAccess::from(old).encode_to_vec(),
            });
        }
        Ok(())
    }

    /// Deletes an owned VLAN, journaling how to re-create it as it was.
    async fn remove_vlan(&self, name: &IfName, j: &mut Journal) -> Result<(), Error> {
        let lc = &self.lifecycle;
        let old = lc
            .list_vlans()
            .await?
            .into_iter()
            .find(|v| v.name == name.as_str());
        lc.delete_vlan(name, false).await?;
        if let Some(old) = old {
            j.undo.push(Undo::CreateVlan {
                vlan: pb::Vlan::from(old).encode_to_vec(),
            });
        }
        Ok(())
    }

    /// Undoes steps, newest first. Every step is tried; failures are logged
    /// and reported, since the caller needs the rest undone regardless.
    async fn undo(&self, steps: &[Undo]) -> Vec<String> {
        let lc = &self.lifecycle;
        let mut out = Vec::new();
        for u in steps.iter().rev() {
            let (what, res): (String, Result<(), Error>) = match u {
                Undo::DeleteVlan { name } => (
                    format!("deleted vlan {name}"),
                    async {
                        lc.delete_vlan(&IfName::parse("name", name)?, false).await?;
                        Ok(())
                    }
                    .await,
                ),
                Undo::CreateVlan { vlan } => match pb::Vlan::decode(vlan.as_slice()) {
                    Ok(v) => {
                        let owner = if v.auto_for_network.is_empty() {
                            Owner::Vlan
                        } else {
                            Owner::AutoVlan {
                                network: v.auto_for_network.clone(),
                            }
                        };
                        let name = v.name.clone();
                        let req = pb::CreateVlanRequest {
                            parent: v.parent,
                            id: v.id,
                            protocol: v.protocol,
                            name: v.name,
                            mtu: v.mtu,
                        };
                        (
                            format!("re-created vlan {name}"),
                            async {
                                lc.create_vlan(&VlanSpec::try_from(req)?, owner).await?;
                                Ok(())
                            }
                            .await,
                        )
                    }
                    Err(e) => (
                        "re-create a vlan".into(),
                        Err(Error::Precondition(e.to_string())),
                    ),
                },
                Undo::DeleteEndpoint {
                    network,
                    name,
                    netns,
                } => (
                    format!("deleted endpoint {network}/{name}"),
                    async {
                        let sel = EndpointSelector::Named {
                            network: ObjName::parse("network", network)?,
                            name: ObjName::parse("name", name)?,
                        };
                        match lc.delete_endpoints(&sel, false).await {
                            // Never finished (the agent died creating it).
                            Ok(_) | Err(Error::NotFound(_)) => {}
                            Err(e) => return Err(e),
                        }
                        if let Some(n) = netns {
                            lc.remove_step_netns(n).await?;
                        }
                        Ok(())
                    }
                    .await,
                ),
                Undo::CreateEndpoint {
                    endpoint,
                    create_netns,
                } => match pb::MacvlanEndpoint::decode(endpoint.as_slice()) {
                    Ok(e) => {
                        let what = format!("re-created endpoint {}/{}", e.network, e.name);
                        let req = pb::CreateMacvlanRequest {
                            endpoint: Some(e),
                            create_netns: *create_netns,
                        };
                        (
                            what,
                            async {
                                lc.create_endpoint(&EndpointSpec::try_from(req)?).await?;
                                Ok(())
                            }
                            .await,
                        )
                    }
                    Err(e) => (
                        "re-create an endpoint".into(),
                        Err(Error::Precondition(e.to_string())),
                    ),
                },
                Undo::DeleteHostAccess { network } => (
                    format!("deleted host access {network}"),
                    async {
                        lc.delete_host_access(&ObjName::parse("network", network)?)
                            .await?;
                        Ok(())
                    }
                    .await,
                ),
                Undo::CreateHostAccess { host_access } => {
                    match pb::HostAccess::decode(host_access.as_slice()) {
                        Ok(h) => {
                            let what = format!("re-created host access {}", h.network);
                            let req = pb::CreateHostAccessRequest {
                                host_access: Some(h),
                            };
                            (
                                what,
                                async {
                                    lc.create_host_access(&HostAccessSpec::try_from(req)?)
                                        .await?;
                                    Ok(())
                                }
                                .await,
                            )
                        }
                        Err(e) => (
                            "re-create host access".into(),
                            Err(Error::Precondition(e.to_string())),
                        ),
                    }
                }
            };
            match res {
                Ok(()) => out.push(what),
                Err(e) => {
                    tracing::error!(step = what, error = %e, "rollback step failed");
                    out.push(format!("FAILED to {what}: {e}"));
                }
            }
        }
        out
    }
}

/// Everything linkherd owns on this host, as the kernel has it, in a stable
/// order (so equal states encode to equal bytes).
pub async fn observed(lc: &Lifecycle) -> Result<pb::OwnedObjects, Error> {
    let mut vlans: Vec<pb::Vlan> = lc
        .list_vlans()
        .await?
        .into_iter()
        .filter(|v| v.owned)
        .map(Into::into)
        .collect();
    vlans.sort_by(|a, b| a.name.cmp(&b.name));
    let mut endpoints: Vec<pb::MacvlanEndpoint> = lc
        .list_endpoints()
        .await?
        .into_iter()
        .filter(|e| e.owned)
        .map(|mut e| {
            // Counters and carrier change all the time; they are not state.
            e.interface = None;
            e.into()
        })
        .collect();
    endpoints.sort_by(|a, b| (&a.network, &a.name).cmp(&(&b.network, &b.name)));
    let mut host_access: Vec<pb::HostAccess> = lc
        .list_host_access()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    host_access.sort_by(|a, b| a.network.cmp(&b.network));
    Ok(pb::OwnedObjects {
        vlans,
        endpoints,
        host_access,
        ..Default::default()
    })
}

/// `txn-<unix seconds>-<8 hex digits>`: the digits come from the clock's
/// nanoseconds and the pid, so transactions of several hosts started in the
/// same second (agents in identical guests have the same pid) differ.
fn txn_id() -> String {
    let now = SystemTime::now();
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "txn-{}-{:08x}",
        unix(now),
        nanos ^ std::process::id().rotate_left(16)
    )
}

/// A fingerprint of the owned state: any change to an owned object changes
/// it, so a transaction planned against one state can refuse another.
pub fn fingerprint(state: &pb::OwnedObjects) -> u64 {
    state
        .encode_to_vec()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// The current generation of this host.
pub async fn generation(lc: &Lifecycle) -> Result<u64, Error> {
    Ok(fingerprint(&observed(lc).await?))
}
