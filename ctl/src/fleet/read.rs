//! Reading the fleet: every host of a spec connected to and asked for its
//! state, all at once. The agents are the truth (there is no database), so
//! this is where every plan, verification and listing starts.

use std::{collections::BTreeMap, fmt};

use futures::future::join_all;
use linkherd_proto::{
    convert::DecodeError,
    model::{Attachment, OwnedObjects},
    pb::{
        self, attachment_service_client::AttachmentServiceClient,
        host_service_client::HostServiceClient,
    },
};
use tonic::transport::Channel;

use crate::{
    client::{ConnectError, RpcError, TargetError, Targets},
    spec::FleetSpec,
};

/// One host as read: its connection, and what linkherd owns there.
#[derive(Debug, Clone)]
pub struct HostRead {
    /// The agent's address, as the spec gives it.
    pub address: String,
    pub channel: Channel,
    /// The fingerprint of `owned`, which an Apply must be planned against.
    pub generation: u64,
    pub owned: OwnedObjects,
    /// Containers attached there (none from an agent without
    /// AttachmentService).
    pub attachments: Vec<Attachment>,
}

/// A host that did not answer, and why.
#[derive(Debug, thiserror::Error)]
#[error("{host} ({address}): {cause}")]
pub struct Unreachable {
    pub host: String,
    pub address: String,
    pub cause: ReadError,
}

/// Why a host could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Every host of a spec: those that answered and those that did not.
#[derive(Debug, Default)]
pub struct FleetRead {
    pub hosts: BTreeMap<String, HostRead>,
    pub unreachable: Vec<Unreachable>,
}

/// Hosts that do not answer, listed in one error.
#[derive(Debug, thiserror::Error)]
pub struct UnreachableHosts(pub Vec<Unreachable>);

impl fmt::Display for UnreachableHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "cannot reach {}; nothing was changed", names.join("; "))
    }
}

impl FleetRead {
    /// Every host, or an error naming every host that did not answer.
    pub fn all(self) -> Result<BTreeMap<String, HostRead>, UnreachableHosts> {
        if self.unreachable.is_empty() {
            Ok(self.hosts)
        } else {
            Err(UnreachableHosts(self.unreachable))
        }
    }
}

/// Connects to every host of `spec` and reads its state, concurrently.
/// A host that does not answer is listed, not fatal: the caller decides
/// whether to go on without it.
pub async fn read(spec: &FleetSpec, targets: &dyn Targets) -> FleetRead {
    let reads = spec.hosts.iter().map(|(name, h)| async move {
        let res = read_host(targets, name, &h.address).await;
        (name.clone(), h.address.clone(), res)
    });
    let mut out = FleetRead::default();
    for (host, address, r) in join_all(reads).await {
        match r {
            Ok(v) => {
                out.hosts.insert(host, v);
            }
            Err(cause) => out.unreachable.push(Unreachable {
                host,
                address,
                cause,
            }),
        }
    }
    out
}

async fn read_host(
    targets: &dyn Targets,
    host: &str,
    address: &str,
) -> Result<HostRead, ReadError> {
    let channel = targets.target(host, address)?.connect().await?;
    let st = HostServiceClient::new(channel.clone())
        .get_state(pb::GetStateRequest {})
        .await
        .map_err(RpcError::from)?
        .into_inner();
    let attachments = match AttachmentServiceClient::new(channel.clone())
        .list(pb::ListAttachmentsRequest::default())
        .await
    {
        Ok(r) => r
            .into_inner()
            .attachments
            .into_iter()
            .map(Attachment::try_from)
            .collect::<Result<_, _>>()?,
        Err(s) if s.code() == tonic::Code::Unimplemented => Vec::new(),
        Err(s) => return Err(RpcError::from(s).into()),
    };
    Ok(HostRead {
        address: address.to_owned(),
        channel,
        generation: st.generation,
        owned: OwnedObjects::try_from(st.owned.unwrap_or_default())?,
        attachments,
    })
}
