//! The transaction journal: how to undo each step, written before the step
//! touches the kernel. One file per step in the record set `txn/`, `{"format":
//! 1, "txn": ID, "deadline": UNIX, "seq": N, "steps": [UNDO…]}`, each undo a
//! readable model type; ending a transaction clears the set in one atomic
//! rename.

use linkherd_proto::model::{
    CatalogNetwork, EndpointSelector, EndpointSpec, EndpointState, HostAccessSpec, HostAccessState,
    IfName, ObjName, Owner, VlanSpec, VlanState,
};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::Transactions;
use crate::{
    error::Error,
    faults::Point,
    host::{Host, drift::ObjectKey},
    state::store::Versioned,
};

/// How to undo one applied transaction step, as journaled: the specs are
/// the model's own types, stored as readable JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub(super) enum JournalStep {
    DeleteVlan {
        name: IfName,
    },
    CreateVlan {
        vlan: VlanSpec,
        /// The network it was made for, when linkherd made it for one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auto_for_network: Option<String>,
    },
    DeleteEndpoint {
        network: ObjName,
        name: ObjName,
        /// The named namespace the create made (it did not exist before),
        /// removed with whatever is in it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<String>,
    },
    CreateEndpoint {
        endpoint: EndpointSpec,
    },
    DeleteHostAccess {
        network: ObjName,
    },
    CreateHostAccess {
        host_access: HostAccessSpec,
    },
    /// Put the catalog's network `name` back as it was (`None`: it was not
    /// in the catalog).
    RestoreNetwork {
        name: String,
        previous: Option<CatalogNetwork>,
    },
}

/// One journal file: the undo of one step (several records when the step
/// is a run of removals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Batch {
    pub(super) txn: String,
    /// Unix seconds.
    pub(super) deadline: u64,
    pub(super) seq: u32,
    pub(super) steps: Vec<JournalStep>,
}

impl Versioned for Batch {
    const FORMAT: u32 = 1;
}

impl Batch {
    pub(super) fn key(&self) -> String {
        format!("{:06}", self.seq)
    }
}

/// A transaction's journal in memory: its batches, oldest first.
#[derive(Debug, Clone)]
pub(super) struct Journal {
    pub(super) id: String,
    pub(super) deadline: u64,
    pub(super) batches: Vec<Batch>,
    /// The sequence number of the next batch.
    pub(super) next_seq: u32,
}

impl Journal {
    pub(super) fn is_empty(&self) -> bool {
        self.batches.iter().all(|b| b.steps.is_empty())
    }

    /// Every undo step, newest first.
    pub(super) fn undo_order(&self) -> impl Iterator<Item = &JournalStep> {
        self.batches.iter().rev().flat_map(|b| b.steps.iter().rev())
    }
}

impl JournalStep {
    /// The object the step is about (the catalog is no kernel object).
    pub(super) fn object(&self) -> Option<ObjectKey> {
        Some(match self {
            JournalStep::DeleteVlan { name } => ObjectKey::Vlan {
                name: name.to_string(),
            },
            JournalStep::CreateVlan { vlan, .. } => ObjectKey::Vlan {
                name: vlan.name.to_string(),
            },
            JournalStep::DeleteEndpoint { network, name, .. } => ObjectKey::Endpoint {
                network: network.to_string(),
                name: name.to_string(),
            },
            JournalStep::CreateEndpoint { endpoint: e } => ObjectKey::Endpoint {
                network: e.network.to_string(),
                name: e.name.to_string(),
            },
            JournalStep::DeleteHostAccess { network } => ObjectKey::HostAccess {
                network: network.to_string(),
            },
            JournalStep::CreateHostAccess { host_access } => ObjectKey::HostAccess {
                network: host_access.network.to_string(),
            },
            JournalStep::RestoreNetwork { .. } => return None,
        })
    }

    /// What reverting this step does, in words.
    pub(super) fn describe(&self) -> String {
        match self {
            JournalStep::DeleteVlan { name } => format!("deleted vlan {name}"),
            JournalStep::CreateVlan { vlan, .. } => format!("re-created vlan {}", vlan.name),
            JournalStep::DeleteEndpoint { network, name, .. } => {
                format!("deleted endpoint {network}/{name}")
            }
            JournalStep::CreateEndpoint { endpoint: e } => {
                format!("re-created endpoint {}/{}", e.network, e.name)
            }
            JournalStep::DeleteHostAccess { network } => format!("deleted host access {network}"),
            JournalStep::CreateHostAccess { host_access } => {
                format!("re-created host access {}", host_access.network)
            }
            JournalStep::RestoreNetwork { name, previous } => match previous {
                Some(_) => format!("restored network {name} in the catalog"),
                None => format!("removed network {name} from the catalog"),
            },
        }
    }

    /// Reverts the step. Deletes accept what is already gone: the undo is
    /// written before the step, which may never have happened.
    pub(super) async fn revert(&self, lc: &Host) -> Result<(), Error> {
        match self {
            JournalStep::DeleteVlan { name } => gone_ok(lc.vlans().delete_vlan(name, false).await),
            JournalStep::CreateVlan {
                vlan,
                auto_for_network,
            } => {
                let owner = match auto_for_network {
                    Some(network) => Owner::AutoVlan {
                        network: network.clone(),
                    },
                    None => Owner::Vlan,
                };
                lc.vlans().create_vlan(vlan, owner).await.map(drop)
            }
            JournalStep::DeleteEndpoint {
                network,
                name,
                netns,
            } => {
                let sel = EndpointSelector::Named {
                    network: network.clone(),
                    name: name.clone(),
                };
                gone_ok(lc.endpoints().delete_endpoints(&sel, false).await)?;
                match netns {
                    Some(n) => lc.remove_step_netns(n).await,
                    None => Ok(()),
                }
            }
            JournalStep::CreateEndpoint { endpoint } => {
                lc.endpoints().create_endpoint(endpoint).await.map(drop)
            }
            JournalStep::DeleteHostAccess { network } => {
                gone_ok(lc.host_access().delete_host_access(network).await)
            }
            JournalStep::CreateHostAccess { host_access } => lc
                .host_access()
                .create_host_access(host_access)
                .await
                .map(drop),
            JournalStep::RestoreNetwork { name, previous } => match previous {
                Some(net) => lc.catalog().put_network(net.clone()).await.map(drop),
                None => lc.catalog().remove_network(name).await.map(drop),
            },
        }
    }

    /// How to re-create a VLAN as it is now.
    pub(super) fn recreate_vlan(old: VlanState) -> Result<Self, Error> {
        Ok(JournalStep::CreateVlan {
            vlan: VlanSpec::try_from(&old)?,
            auto_for_network: old.auto_for_network,
        })
    }

    /// How to re-create an endpoint as it is now (its namespace too, when
    /// linkherd made that).
    pub(super) fn recreate_endpoint(old: EndpointState) -> Result<Self, Error> {
        Ok(JournalStep::CreateEndpoint {
            endpoint: EndpointSpec::try_from(old)?,
        })
    }

    pub(super) fn recreate_host_access(old: HostAccessState) -> Result<Self, Error> {
        Ok(JournalStep::CreateHostAccess {
            host_access: HostAccessSpec::try_from(old)?,
        })
    }
}

/// Gone already counts as deleted.
pub(super) fn gone_ok<T>(r: Result<T, Error>) -> Result<(), Error> {
    match r {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Transactions {
    /// Journals `steps` as the next batch — before the kernel is touched:
    /// when this fails, the step is not made.
    pub(super) async fn write_batch(
        &self,
        j: &mut Journal,
        steps: Vec<JournalStep>,
    ) -> Result<(), Error> {
        if steps.is_empty() {
            return Ok(());
        }
        let batch = Batch {
            txn: j.id.clone(),
            deadline: j.deadline,
            seq: j.next_seq,
            steps,
        };
        if let Some(r) = &self.journal {
            r.put(&[&batch.txn, &batch.key()], &batch)
                .instrument(tracing::debug_span!("txn.journal"))
                .await?;
        }
        self.faults.hit(Point::Journaled { seq: batch.seq });
        j.next_seq += 1;
        j.batches.push(batch);
        Ok(())
    }

    /// Drops the newest batch: its step made nothing. `durable`: remove its
    /// file too (on a failure the whole journal goes just after).
    pub(super) async fn retract(&self, j: &mut Journal, durable: bool) -> Result<(), Error> {
        let Some(batch) = j.batches.pop() else {
            return Ok(());
        };
        if durable && let Some(r) = &self.journal {
            r.remove(&[&batch.txn, &batch.key()]).await?;
        }
        Ok(())
    }

    /// Removes the whole journal (one atomic rename, then the files).
    pub(super) async fn forget(&self) -> Result<(), Error> {
        if let Some(r) = &self.journal {
            r.clear().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use linkherd_proto::pb;

    use super::*;

    fn spec() -> EndpointSpec {
        EndpointSpec::try_from(pb::CreateMacvlanRequest {
            endpoint: Some(pb::MacvlanEndpoint {
                network: "mac_net".into(),
                name: "b1".into(),
                parent: "ens192".into(),
                mode: pb::MacvlanMode::Bridge.into(),
                netns: Some(pb::NetnsTarget {
                    target: Some(pb::netns_target::Target::Name("b1".into())),
                }),
                addresses: vec!["10.0.100.10/24".into()],
                ..Default::default()
            }),
            create_netns: true,
        })
        .expect("spec")
    }

    #[test]
    fn journal_steps_are_readable_json_and_read_back() {
        let batch = Batch {
            txn: "txn-1-1".into(),
            deadline: 4_102_444_800,
            seq: 1,
            steps: vec![JournalStep::CreateEndpoint { endpoint: spec() }],
        };
        let v = serde_json::to_value(&batch).expect("json");
        let e = &v["steps"][0];
        assert_eq!(e["undo"], "create_endpoint");
        assert_eq!(e["endpoint"]["network"], "mac_net");
        assert_eq!(e["endpoint"]["netns"], serde_json::json!({"named": "b1"}));
        assert_eq!(
            e["endpoint"]["addresses"],
            serde_json::json!(["10.0.100.10/24"])
        );
        assert_eq!(e["endpoint"]["mode"], "bridge");
        let back: Batch = serde_json::from_value(v).expect("read back");
        assert_eq!(back, batch);
    }
}
