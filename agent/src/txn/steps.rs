//! The steps of a transaction, each kind with its undo written first
//! (write-ahead): VLANs, endpoints (in groups, one durable write per group),
//! host access and catalog networks, and the address check before any of
//! them.

use std::time::Duration;

use linkherd_proto::model::{
    CatalogNetwork, EndpointSelector, EndpointSpec, HostAccessSpec, IfName, MacAddr, NetnsRef,
    ObjName, Owner, VlanSpec,
};

use tracing::Instrument;

use super::{
    Transactions,
    journal::{Journal, JournalStep},
};
use crate::{
    error::Error,
    faults::Point,
    host::{
        Outcome, Wanted,
        plan::{Change, Op},
    },
};

/// At most this many new endpoints share one journal batch (and its one
/// durable write): a batch file stays small.
pub(super) const CREATE_GROUP: usize = 256;

impl Transactions {
    /// Probes the IPv4 addresses the plan's new and replaced endpoints are
    /// to get, all at once; any in use fails the transaction.
    pub(super) async fn check_addresses(
        &self,
        changes: &[Change],
        wait: Duration,
    ) -> Result<(), Error> {
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
            .host
            .endpoints()
            .list_endpoints()
            .await?
            .into_iter()
            .filter(|e| replaced.contains(&(e.network.clone(), e.name.clone())))
            .filter_map(|e| e.mac)
            .collect();
        let in_use = self
            .host
            .addrcheck()
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
    /// network's endpoints that follow it, as one — each part journaled
    /// before it is made; returns how many of `ops` it did.
    pub(super) async fn step(
        &self,
        ops: &[Change],
        at: usize,
        j: &mut Journal,
    ) -> Result<usize, Error> {
        let Some(first) = ops.first() else {
            return Ok(0);
        };
        if let Op::CreateEndpoint(_) = &first.op {
            // New endpoints in a row go together: one durable journal
            // write for them all.
            let specs: Vec<&EndpointSpec> = ops
                .iter()
                .map_while(|c| match &c.op {
                    Op::CreateEndpoint(spec) => Some(spec),
                    _ => None,
                })
                .take(CREATE_GROUP)
                .collect();
            return match self.add_endpoints(&specs, at, j).await {
                Ok(()) => Ok(specs.len()),
                Err((k, e)) if k > 0 => Err(Error::Step {
                    step: format!("{} {}", ops[k].kind, ops[k].object),
                    source: Box::new(e),
                }),
                Err((_, e)) => Err(e),
            };
        }
        match &first.op {
            Op::CreateVlan(spec) => self.add_vlan(spec, j).await?,
            Op::DeleteVlan { name } => self.remove_vlan(name, j).await?,
            Op::ReplaceVlan(spec) => {
                self.remove_vlan(&spec.name, j).await?;
                self.add_vlan(spec, j).await?;
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
                self.remove_endpoints(network, &names, j).await?;
                return Ok(names.len());
            }
            Op::ReplaceEndpoint(spec) => {
                self.remove_endpoints(spec.network.as_str(), &[spec.name.as_str()], j)
                    .await?;
                self.add_endpoints(&[spec], at, j).await.map_err(|e| e.1)?;
            }
            Op::CreateEndpoint(spec) => {
                self.add_endpoints(&[spec], at, j).await.map_err(|e| e.1)?
            }
            Op::DeleteHostAccess { network } => self.remove_host_access(network, j).await?,
            Op::ReplaceHostAccess(spec) => {
                self.remove_host_access(spec.network.as_str(), j).await?;
                self.add_host_access(spec, j).await?;
            }
            Op::CreateHostAccess(spec) => self.add_host_access(spec, j).await?,
            Op::PutNetwork(net) => self.change_network(net.name.as_str(), Some(net), j).await?,
            Op::RemoveNetwork { name } => self.change_network(name, None, j).await?,
        }
        Ok(1)
    }

    /// Journals `undo`, then runs `create`; the record stays only when the
    /// create made something (there already: nothing to undo; failed: the
    /// create undid itself).
    pub(super) async fn journaled_create(
        &self,
        j: &mut Journal,
        undo: JournalStep,
        create: impl Future<Output = Result<Outcome, Error>>,
    ) -> Result<(), Error> {
        self.write_batch(j, vec![undo]).await?;
        match create.await {
            Ok(Outcome::Created) => Ok(()),
            Ok(_) => self.retract(j, true).await,
            Err(e) => {
                self.retract(j, false).await?;
                Err(e)
            }
        }
    }

    pub(super) async fn add_vlan(&self, spec: &VlanSpec, j: &mut Journal) -> Result<(), Error> {
        let undo = JournalStep::DeleteVlan {
            name: spec.name.clone(),
        };
        let create = async { Ok(self.host.vlans().create_vlan(spec, Owner::Vlan).await?.1) };
        self.journaled_create(j, undo, create).await
    }

    /// Creates endpoints, write-ahead: the undo of them all is on disk, in
    /// one batch, before the kernel is touched for the first, so an agent
    /// killed half way through still removes what it made when it restarts
    /// (an undo of one not made yet finds nothing to remove). Afterwards
    /// the batch keeps only those this apply made: one found there already
    /// is not this transaction's to remove. `at`: the first one's index in
    /// the plan (for the crash-test hooks). A failure says which of
    /// `specs` failed.
    pub(super) async fn add_endpoints(
        &self,
        specs: &[&EndpointSpec],
        at: usize,
        j: &mut Journal,
    ) -> Result<(), (usize, Error)> {
        let undo = self.endpoint_undo(specs).await.map_err(|e| (0, e))?;
        self.write_batch(j, undo).await.map_err(|e| (0, e))?;
        let (outcomes, failed) = self
            .host
            .endpoints()
            .create_endpoints(specs, |k| self.faults.hit(Point::Made { index: at + k }))
            .await;
        let mut made = vec![false; specs.len()];
        for (m, outcome) in made.iter_mut().zip(&outcomes) {
            *m = *outcome == Outcome::Created;
        }
        self.keep_made(j, &made).await.map_err(|e| (0, e))?;
        failed.map_or(Ok(()), Err)
    }

    /// How to undo each of `specs`: delete it, and the namespace it is to
    /// be made in when this apply is to create that.
    pub(super) async fn endpoint_undo(
        &self,
        specs: &[&EndpointSpec],
    ) -> Result<Vec<JournalStep>, Error> {
        let mut undo = Vec::with_capacity(specs.len());
        for spec in specs {
            let netns = match (&spec.netns, spec.create_netns) {
                (NetnsRef::Named(n), true) if !self.host.netns_exists(n).await? => Some(n.clone()),
                _ => None,
            };
            undo.push(JournalStep::DeleteEndpoint {
                network: spec.network.clone(),
                name: spec.name.clone(),
                netns,
            });
        }
        Ok(undo)
    }

    /// Rewrites the newest batch with only the steps whose `made` is true
    /// (nothing to write when that is all of them; removed when none).
    pub(super) async fn keep_made(&self, j: &mut Journal, made: &[bool]) -> Result<(), Error> {
        if made.iter().all(|m| *m) {
            return Ok(());
        }
        if !made.iter().any(|m| *m) {
            return self.retract(j, true).await;
        }
        let Some(batch) = j.batches.last_mut() else {
            return Ok(());
        };
        let mut keep = made.iter();
        batch
            .steps
            .retain(|_| keep.next().copied().unwrap_or(false));
        if let Some(r) = &self.journal {
            r.put(&[&batch.txn, &batch.key()], batch)
                .instrument(tracing::debug_span!("txn.journal"))
                .await?;
        }
        Ok(())
    }

    pub(super) async fn add_host_access(
        &self,
        spec: &HostAccessSpec,
        j: &mut Journal,
    ) -> Result<(), Error> {
        let undo = JournalStep::DeleteHostAccess {
            network: spec.network.clone(),
        };
        let create = async { Ok(self.host.host_access().create_host_access(spec).await?.1) };
        self.journaled_create(j, undo, create).await
    }

    /// Removes endpoints `names` of `network`, write-ahead: how to
    /// re-create each is on disk first, in one file. When they are all the
    /// network has on this host (a teardown), one link-group request
    /// removes them: a link delete waits for an RCU grace period, which a
    /// group pays once.
    pub(super) async fn remove_endpoints(
        &self,
        network: &str,
        names: &[&str],
        j: &mut Journal,
    ) -> Result<(), Error> {
        let here = self.host.endpoints().endpoint_names(network).await;
        let whole = here.iter().all(|n| names.contains(&n.as_str()));
        let undo = self
            .host
            .endpoints()
            .endpoints_of(network, Some(names))
            .await?
            .into_iter()
            .map(JournalStep::recreate_endpoint)
            .collect::<Result<Vec<_>, _>>()?;
        self.write_batch(j, undo).await?;
        let network_name = ObjName::parse("network", network)?;
        if whole {
            self.host
                .endpoints()
                .delete_endpoints(&EndpointSelector::Network(network_name), false)
                .await?;
            return Ok(());
        }
        for name in names {
            let sel = EndpointSelector::Named {
                network: network_name.clone(),
                name: ObjName::parse("name", name)?,
            };
            self.host.endpoints().delete_endpoints(&sel, false).await?;
        }
        Ok(())
    }

    /// Puts `net` in the catalog as `name` (`None`: removes it),
    /// write-ahead: what it was is on disk first.
    pub(super) async fn change_network(
        &self,
        name: &str,
        net: Option<&CatalogNetwork>,
        j: &mut Journal,
    ) -> Result<(), Error> {
        let previous = self.host.catalog().network(name).await;
        let undo = JournalStep::RestoreNetwork {
            name: name.to_owned(),
            previous,
        };
        self.write_batch(j, vec![undo]).await?;
        match net {
            Some(net) => self.host.catalog().put_network(net.clone()).await.map(drop),
            None => self.host.catalog().remove_network(name).await.map(drop),
        }
    }

    /// Deletes host access, write-ahead: how to re-create it is on disk
    /// first.
    pub(super) async fn remove_host_access(
        &self,
        network: &str,
        j: &mut Journal,
    ) -> Result<(), Error> {
        let old = self
            .host
            .host_access()
            .list_host_access()
            .await?
            .into_iter()
            .find(|h| h.network == network);
        let undo = old.map(JournalStep::recreate_host_access).transpose()?;
        self.write_batch(j, undo.into_iter().collect()).await?;
        self.host
            .host_access()
            .delete_host_access(&ObjName::parse("network", network)?)
            .await?;
        Ok(())
    }

    /// Deletes an owned VLAN, write-ahead: how to re-create it as it was is
    /// on disk first.
    pub(super) async fn remove_vlan(&self, name: &IfName, j: &mut Journal) -> Result<(), Error> {
        let lc = &self.host;
        let old = lc
            .vlans()
            .list_vlans()
            .await?
            .into_iter()
            .find(|v| v.name == name.as_str());
        let undo = old.map(JournalStep::recreate_vlan).transpose()?;
        self.write_batch(j, undo.into_iter().collect()).await?;
        lc.vlans().delete_vlan(name, false).await?;
        Ok(())
    }
}
