//! The journal of agents before the state store (format 0): one file,
//! `txn.json`, whose undo steps carry specs as protobuf bytes. Still read at
//! start, upgraded to today's steps and rolled back.

use linkherd_proto::{
    model::{EndpointSpec, HostAccessSpec, IfName, ObjName, VlanSpec},
    pb,
};
use prost::Message;
use serde::Deserialize;

use super::{
    LEGACY_JOURNAL,
    journal::{Batch, Journal, JournalStep},
};

/// The journal of agents before the store: `txn.json`, specs as protobuf.
#[derive(Debug, Deserialize)]
pub(super) struct LegacyJournal {
    id: String,
    deadline: u64,
    undo: Vec<LegacyStep>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub(super) enum LegacyStep {
    DeleteVlan {
        name: String,
    },
    CreateVlan {
        vlan: Vec<u8>,
    },
    DeleteEndpoint {
        network: String,
        name: String,
        #[serde(default)]
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

impl LegacyStep {
    /// The same undo as a [`JournalStep`].
    pub(super) fn upgrade(self) -> Result<JournalStep, String> {
        let decode = |e: prost::DecodeError| format!("undecodable protobuf: {e}");
        let step = match self {
            LegacyStep::DeleteVlan { name } => JournalStep::DeleteVlan {
                name: IfName::parse("name", &name).map_err(|e| e.to_string())?,
            },
            LegacyStep::CreateVlan { vlan } => {
                let v = pb::Vlan::decode(vlan.as_slice()).map_err(decode)?;
                let auto = (!v.auto_for_network.is_empty()).then(|| v.auto_for_network.clone());
                let vlan = VlanSpec::try_from(pb::CreateVlanRequest {
                    parent: v.parent,
                    id: v.id,
                    protocol: v.protocol,
                    name: v.name,
                    mtu: v.mtu,
                })
                .map_err(|e| e.to_string())?;
                JournalStep::CreateVlan {
                    vlan,
                    auto_for_network: auto,
                }
            }
            LegacyStep::DeleteEndpoint {
                network,
                name,
                netns,
            } => JournalStep::DeleteEndpoint {
                network: ObjName::parse("network", &network).map_err(|e| e.to_string())?,
                name: ObjName::parse("name", &name).map_err(|e| e.to_string())?,
                netns,
            },
            LegacyStep::CreateEndpoint {
                endpoint,
                create_netns,
            } => {
                let e = pb::MacvlanEndpoint::decode(endpoint.as_slice()).map_err(decode)?;
                let req = pb::CreateMacvlanRequest {
                    endpoint: Some(e),
                    create_netns,
                };
                JournalStep::CreateEndpoint {
                    endpoint: EndpointSpec::try_from(req).map_err(|e| e.to_string())?,
                }
            }
            LegacyStep::DeleteHostAccess { network } => JournalStep::DeleteHostAccess {
                network: ObjName::parse("network", &network).map_err(|e| e.to_string())?,
            },
            LegacyStep::CreateHostAccess { host_access } => {
                let h = pb::HostAccess::decode(host_access.as_slice()).map_err(decode)?;
                let req = pb::CreateHostAccessRequest {
                    host_access: Some(h),
                };
                JournalStep::CreateHostAccess {
                    host_access: HostAccessSpec::try_from(req).map_err(|e| e.to_string())?,
                }
            }
        };
        Ok(step)
    }
}

impl LegacyJournal {
    /// The journal as one batch, and the steps that could not be read.
    pub(super) fn upgrade(self) -> (Journal, Vec<String>) {
        let mut steps = Vec::new();
        let mut unreadable = Vec::new();
        for s in self.undo {
            match s.upgrade() {
                Ok(s) => steps.push(s),
                Err(e) => {
                    unreadable.push(format!("FAILED to read a step of {LEGACY_JOURNAL}: {e}"))
                }
            }
        }
        let batch = Batch {
            txn: self.id.clone(),
            deadline: self.deadline,
            seq: 1,
            steps,
        };
        let journal = Journal {
            id: self.id,
            deadline: self.deadline,
            batches: vec![batch],
            next_seq: 2,
        };
        (journal, unreadable)
    }
}

#[cfg(test)]
mod tests {
    use linkherd_proto::model::NetnsRef;

    use super::*;

    #[test]
    fn an_old_journal_step_in_protobuf_is_upgraded() {
        let old = pb::MacvlanEndpoint::from(linkherd_proto::model::EndpointState {
            network: "mac_net".into(),
            name: "b1".into(),
            parent: "ens192".into(),
            mode: linkherd_proto::model::MacvlanMode::Bridge,
            netns: NetnsRef::Named("b1".into()),
            ifname: "eth0".into(),
            addresses: vec!["10.0.100.10/24".parse().expect("cidr")],
            gateway: None,
            mac: None,
            mtu: 1500,
            source_macs: vec![],
            owned: true,
            parent_created: false,
            netns_created: true,
            interface: None,
        });
        let legacy: LegacyJournal = serde_json::from_value(serde_json::json!({
            "id": "txn-1-1",
            "deadline": 1,
            "undo": [
                {"undo": "create_endpoint", "endpoint": old.encode_to_vec(), "create_netns": true},
                {"undo": "create_vlan", "vlan": [255, 255]},
            ],
        }))
        .expect("old journal");
        let (journal, unreadable) = legacy.upgrade();
        let JournalStep::CreateEndpoint { endpoint } = &journal.batches[0].steps[0] else {
            panic!("{journal:?}");
        };
        assert_eq!(
            (endpoint.network.as_str(), endpoint.ifname.as_str()),
            ("mac_net", "eth0")
        );
        assert!(endpoint.create_netns);
        assert_eq!(journal.batches[0].steps.len(), 1);
        assert_eq!(unreadable.len(), 1);
        assert!(
            unreadable[0].starts_with("FAILED to read a step of txn.json: undecodable protobuf"),
            "{}",
            unreadable[0]
        );
    }
}
