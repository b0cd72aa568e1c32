//! The `NetworkDriver` half: a Docker network is bound to a catalog
//! network (CreateNetwork), and each endpoint is an attachment handed over
//! to Docker (`host::attachments::handover`): recorded with its address at
//! CreateEndpoint, its macvlan made at Join for Docker to move, deleted at
//! Leave, forgotten at DeleteEndpoint. What changes state runs to its end
//! and is audited, whatever Docker does with the connection.

use std::{net::IpAddr, path::PathBuf, sync::Arc};

use ipnet::IpNet;
use linkherd_proto::model::{MacAddr, parse_container_id};
use serde_json::{Value, json};

use super::{
    Plugin, Reply,
    bindings::{self, Binding},
    matching, shown,
    wire::{
        CreateEndpoint, CreateNetwork, EndpointRef, InterfaceName, Join, JoinResponse,
        NETWORK_OPTION, NetworkRef,
    },
};
use crate::host::{attachments::handover::handover_ifname, registry::attachments::AttachKey};

/// The prefix of the name Docker gives the interface inside (`eth0`).
const DST_PREFIX: &str = "eth";

fn empty() -> Value {
    Value::Object(Default::default())
}

/// Docker's ids are 64 hex digits; anything else (a path, say) is not
/// Docker's, and never becomes a file name.
fn docker_id(what: &str, id: &str) -> Result<String, String> {
    parse_container_id(what, id).map_err(|_| {
        format!(
            "{what} {} is not a Docker id (letters and digits, at most 128)",
            shown(id)
        )
    })
}

impl Plugin {
    pub(super) async fn create_network(self: &Arc<Self>, r: CreateNetwork) -> Reply {
        let id = docker_id("NetworkID", &r.network_id)?;
        let generic = matching::generic_options(&r.options)?;
        let nets = self.ctx.host.catalog().networks().await;
        let (subnet, v6) = match (r.ipv4_data.first(), r.ipv6_data.first()) {
            (Some(d), _) => (d.pool.as_str(), false),
            (None, Some(d)) => (d.pool.as_str(), true),
            (None, None) => ("", false),
        };
        let name = generic.get(NETWORK_OPTION).map(String::as_str);
        let net = matching::which(&nets, name, subnet, v6)?;
        matching::check_network(net, &generic, &r.ipv4_data, &r.ipv6_data)?;
        let binding = Binding {
            network_id: id.clone(),
            network: net.name.to_string(),
        };
        let detail = format!("bind to {}", binding.network);
        let me = self.clone();
        self.mutate(
            "CreateNetwork",
            &id,
            &detail,
            async move {
                let mut bindings = me.bindings.lock().await;
                if !bindings.has_room_for(&binding.network_id) {
                    return Err(crate::error::Error::Precondition(format!(
                        "this host's agent has {} Docker networks already (its bound); \
                         remove unused ones (docker network prune)",
                        bindings::MAX_BINDINGS
                    )));
                }
                bindings.put(binding).await?;
                Ok(())
            },
            |_| "bound".to_owned(),
        )
        .await?;
        Ok(empty())
    }

    pub(super) async fn delete_network(self: &Arc<Self>, r: NetworkRef) -> Reply {
        let id = docker_id("NetworkID", &r.network_id)?;
        let me = self.clone();
        let key = id.clone();
        self.mutate(
            "DeleteNetwork",
            &id,
            "unbind",
            async move { Ok(me.bindings.lock().await.remove(&key).await?) },
            |gone| match gone {
                Some(n) => format!("unbound from {n}"),
                None => "not bound".to_owned(),
            },
        )
        .await?;
        Ok(empty())
    }

    /// The catalog network Docker network `id` is bound to.
    async fn bound(&self, id: &str) -> Result<String, String> {
        self.bindings
            .lock()
            .await
            .get(id)
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "Docker network {id} is not a linkherd network this host's agent knows; remove \
                 it (docker network rm) and create it again"
                )
            })
    }

    async fn key_of(&self, network_id: &str, endpoint_id: &str) -> Result<AttachKey, String> {
        let network = self.bound(&docker_id("NetworkID", network_id)?).await?;
        let endpoint = docker_id("EndpointID", endpoint_id)?;
        let ifname = handover_ifname(&endpoint);
        Ok((network, endpoint, ifname))
    }

    pub(super) async fn create_endpoint(self: &Arc<Self>, r: CreateEndpoint) -> Reply {
        let (network, endpoint, _) = self.key_of(&r.network_id, &r.endpoint_id).await?;
        let iface = r.interface.unwrap_or_default();
        let mut addresses = Vec::new();
        for a in [&iface.address, &iface.address_ipv6] {
            if !a.is_empty() {
                addresses.push(
                    a.parse::<IpNet>().map_err(|_| {
                        format!("endpoint address {} is not ADDRESS/PREFIX", shown(a))
                    })?,
                );
            }
        }
        if addresses.is_empty() {
            return Err(format!(
                "endpoint {endpoint} has no address: create the network with --ipam-driver linkherd"
            ));
        }
        let mac = match iface.mac_address.as_str() {
            "" => None,
            m => Some(
                m.parse::<MacAddr>()
                    .map_err(|_| format!("--mac-address {} is not a MAC", shown(m)))?,
            ),
        };
        let lc = self.ctx.host.clone();
        let what = format!("{network}/{endpoint}");
        let detail = format!("create endpoint {}", join(&addresses));
        let (state, _) = self
            .mutate(
                "CreateEndpoint",
                &what,
                &detail,
                async move {
                    lc.attachments()
                        .create_handover(&network, &endpoint, &addresses, mac)
                        .await
                },
                |(s, made)| {
                    let word = if *made { "recorded" } else { "unchanged" };
                    format!("{word} {} {}", s.record.mac, join(&s.record.addresses))
                },
            )
            .await?;
        // Docker takes a MAC from the driver only when it had none.
        Ok(match mac {
            Some(_) => empty(),
            None => json!({ "Interface": { "MacAddress": state.record.mac.to_string() } }),
        })
    }

    pub(super) async fn join(self: &Arc<Self>, r: Join) -> Reply {
        let key = self.key_of(&r.network_id, &r.endpoint_id).await?;
        let sandbox = PathBuf::from(&r.sandbox_key);
        if !sandbox.is_absolute() || r.sandbox_key.len() > 4096 {
            return Err(format!(
                "SandboxKey {} is not an absolute path",
                shown(&r.sandbox_key)
            ));
        }
        let (lc, k) = (self.ctx.host.clone(), key.clone());
        let what = format!("{}/{}", key.0, key.1);
        let detail = format!("join {}", sandbox.display());
        let state = self
            .mutate(
                "Join",
                &what,
                &detail,
                async move { lc.attachments().join_handover(&k, &sandbox).await },
                |s| {
                    format!(
                        "made {} on {} for Docker to move",
                        s.record.ifname, s.record.parent
                    )
                },
            )
            .await?;
        let gw = |v6: bool| {
            state
                .gateways
                .iter()
                .find(|g| g.is_ipv6() == v6)
                .map(IpAddr::to_string)
                .unwrap_or_default()
        };
        serde_json::to_value(JoinResponse {
            interface_name: InterfaceName {
                src_name: state.record.ifname.clone(),
                dst_prefix: DST_PREFIX.to_owned(),
            },
            gateway: gw(false),
            gateway_ipv6: gw(true),
            disable_gateway_service: true,
        })
        .map_err(|e| e.to_string())
    }

    /// The key of an endpoint Docker is taking away; `None` when it names
    /// nothing this agent knows, which is then done already.
    async fn key_to_remove(&self, r: &EndpointRef) -> Option<AttachKey> {
        match self.key_of(&r.network_id, &r.endpoint_id).await {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::info!(endpoint = r.endpoint_id, error = %e, "nothing to remove");
                None
            }
        }
    }

    pub(super) async fn leave(self: &Arc<Self>, r: EndpointRef) -> Reply {
        let Some(key) = self.key_to_remove(&r).await else {
            return Ok(empty());
        };
        let (lc, k) = (self.ctx.host.clone(), key.clone());
        let what = format!("{}/{}", key.0, key.1);
        self.mutate(
            "Leave",
            &what,
            "leave",
            async move { lc.attachments().leave_handover(&k).await },
            |gone| {
                if *gone {
                    "deleted its interface"
                } else {
                    "no interface left"
                }
                .to_owned()
            },
        )
        .await?;
        Ok(empty())
    }

    pub(super) async fn delete_endpoint(self: &Arc<Self>, r: EndpointRef) -> Reply {
        let Some(key) = self.key_to_remove(&r).await else {
            return Ok(empty());
        };
        let (lc, k) = (self.ctx.host.clone(), key.clone());
        let what = format!("{}/{}", key.0, key.1);
        self.mutate(
            "DeleteEndpoint",
            &what,
            "delete endpoint",
            async move { lc.attachments().detach_handover(&k).await },
            |gone| match gone {
                Some(a) => format!("released {}", join(&a.addresses)),
                None => "nothing recorded".to_owned(),
            },
        )
        .await?;
        Ok(empty())
    }

    /// What `docker network inspect` shows of the endpoint.
    pub(super) async fn oper_info(&self, r: EndpointRef) -> Reply {
        let key = self.key_of(&r.network_id, &r.endpoint_id).await?;
        let Some(a) = self.ctx.host.attachments().attachment(&key).await else {
            return Ok(json!({ "Value": {} }));
        };
        Ok(json!({ "Value": {
            "linkherd.network": a.network,
            "linkherd.parent": a.parent,
            "linkherd.mac": a.mac.to_string(),
            "linkherd.addresses": join(&a.addresses),
        }}))
    }
}

fn join(addresses: &[IpNet]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}
