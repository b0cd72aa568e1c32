//! One plugin call: the verb carried out by asking the agent over its unix
//! socket (AttachmentService), and its answer as CNI wants it on stdout.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use linkherd_proto::pb::{self, attachment_service_client::AttachmentServiceClient};
use tonic::{
    Code as GrpcCode, Status,
    transport::{Channel, Endpoint, Uri},
};

use crate::{
    config::NetConf,
    env::{Invocation, Verb},
    error::{CniError, Code},
    result::{AttachResult, IfaceResult, IpResult, RouteResult},
    version::{CniVersion, version_json},
};

/// How long the agent may take to answer (an attach may wait for the
/// kernel to release an old MAC, and probe its address on the wire).
const ANSWER: Duration = Duration::from_secs(25);
const CONNECT: Duration = Duration::from_secs(2);

/// Runs `inv` with `stdin` (the configuration); the JSON to print on
/// success (`None`: nothing), or the error and the version to write it in.
pub async fn run(
    inv: &Invocation,
    stdin: &[u8],
) -> Result<Option<serde_json::Value>, (CniError, CniVersion)> {
    if inv.verb == Verb::Version {
        return Ok(Some(version_json()));
    }
    let version = crate::config::version_of(stdin);
    let conf = NetConf::parse(stdin).map_err(|e| (e, version))?;
    let v = conf.version;
    if matches!(inv.verb, Verb::Status | Verb::Gc) && !v.has_status_and_gc() {
        let e = CniError::new(
            Code::IncompatibleVersion,
            format!(
                "{} needs cniVersion 1.1.0, the configuration has {v}",
                inv.verb.as_str()
            ),
            "set cniVersion 1.1.0 in the network configuration",
        );
        return Err((e, v));
    }
    let mut agent = connect(&conf.agent_socket).await.map_err(|e| (e, v))?;
    verb(inv, &conf, &mut agent)
        .await
        .map_err(|s| (from_status(&s, &conf.agent_socket), v))
}

async fn verb(
    inv: &Invocation,
    conf: &NetConf,
    agent: &mut AttachmentServiceClient<Channel>,
) -> Result<Option<serde_json::Value>, Status> {
    let key = || pb::AttachmentKey {
        network: conf.network.clone(),
        container_id: inv.container_id.clone(),
        ifname: inv.ifname.clone(),
    };
    match inv.verb {
        Verb::Add => {
            let asked: BTreeSet<IpAddr> = conf.ips.iter().chain(&inv.ips).copied().collect();
            let a = agent
                .attach(pb::AttachRequest {
                    network: conf.network.clone(),
                    container_id: inv.container_id.clone(),
                    netns: inv
                        .netns
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    ifname: inv.ifname.clone(),
                    addresses: asked.iter().map(ToString::to_string).collect(),
                    mac: conf.mac.clone().unwrap_or_default(),
                })
                .await?
                .into_inner();
            Ok(Some(result_of(&a).to_json(conf.version)))
        }
        Verb::Del => agent.detach(key()).await.map(|_| None),
        Verb::Check => {
            let a = agent.check(key()).await?.into_inner();
            check_prev(conf, &a)?;
            Ok(None)
        }
        Verb::Status => {
            let s = agent
                .status(pb::NetworkStatusRequest {
                    network: conf.network.clone(),
                })
                .await?
                .into_inner();
            if s.ready {
                Ok(None)
            } else {
                Err(Status::unavailable(s.reason))
            }
        }
        Verb::Gc => {
            let valid = conf
                .valid_attachments
                .iter()
                .map(|v| pb::AttachmentKey {
                    network: conf.network.clone(),
                    container_id: v.container_id.clone(),
                    ifname: v.ifname.clone(),
                })
                .collect();
            agent
                .gc(pb::GcAttachmentsRequest {
                    network: conf.network.clone(),
                    valid,
                })
                .await
                .map(|_| None)
        }
        Verb::Version => Ok(Some(version_json())),
    }
}

/// CHECK: the addresses of the previous ADD's result are the attachment's.
fn check_prev(conf: &NetConf, a: &pb::Attachment) -> Result<(), Status> {
    let Some(before) = &conf.prev_addresses else {
        return Ok(());
    };
    let now: BTreeSet<IpNet> = a.addresses.iter().filter_map(|s| s.parse().ok()).collect();
    if *before == now {
        Ok(())
    } else {
        let show = |s: &BTreeSet<IpNet>| s.iter().map(ToString::to_string).collect::<Vec<_>>();
        Err(Status::failed_precondition(format!(
            "the attachment has {:?}, the previous ADD gave {:?}",
            show(&now),
            show(before)
        )))
    }
}

fn result_of(a: &pb::Attachment) -> AttachResult {
    let gateways: Vec<IpAddr> = a.gateways.iter().filter_map(|g| g.parse().ok()).collect();
    let gw_of = |n: &IpNet| {
        gateways
            .iter()
            .copied()
            .find(|g| g.is_ipv4() == n.addr().is_ipv4())
    };
    let ips: Vec<IpResult> = a
        .addresses
        .iter()
        .filter_map(|s| s.parse::<IpNet>().ok())
        .map(|address| IpResult {
            gateway: gw_of(&address),
            address,
            interface: 0,
        })
        .collect();
    let routes = gateways
        .iter()
        .map(|gw| RouteResult {
            dst: if gw.is_ipv4() {
                IpNet::V4(ipnet::Ipv4Net::default())
            } else {
                IpNet::V6(ipnet::Ipv6Net::default())
            },
            gw: Some(*gw),
        })
        .collect();
    AttachResult {
        interfaces: vec![IfaceResult {
            name: a.ifname.clone(),
            mac: a.mac.clone(),
            sandbox: a.netns.clone(),
            mtu: (a.mtu != 0).then_some(a.mtu),
        }],
        ips,
        routes,
    }
}

async fn connect(socket: &Path) -> Result<AttachmentServiceClient<Channel>, CniError> {
    let path: PathBuf = socket.to_owned();
    // The URI is required by the API but unused by the connector.
    let ch = Endpoint::from_static("http://localhost")
        .connect_timeout(CONNECT)
        .timeout(ANSWER)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| unreachable(socket, &innermost(&e)))?;
    Ok(AttachmentServiceClient::new(ch))
}

/// The deepest cause of `e` ("No such file or directory"), not tonic's
/// "transport error".
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn unreachable(socket: &Path, why: &str) -> CniError {
    CniError::new(
        Code::TryAgainLater,
        format!("cannot reach linkherd-agent at {}: {why}", socket.display()),
        "start linkherd-agent on this host (its --socket), or set agent_socket in the network configuration",
    )
}

/// The agent's answer as a CNI error, the agent's own words kept.
fn from_status(s: &Status, socket: &Path) -> CniError {
    let msg = s.message().to_owned();
    match s.code() {
        GrpcCode::Unavailable if msg.is_empty() || msg.contains("transport") => {
            unreachable(socket, &msg)
        }
        GrpcCode::Unavailable => CniError::new(
            Code::NotAvailable,
            msg,
            "see `linkherdctl get networks` for the network on this host",
        ),
        GrpcCode::DeadlineExceeded | GrpcCode::Cancelled => CniError::new(
            Code::TryAgainLater,
            msg,
            "the agent is busy; the runtime may try again",
        ),
        GrpcCode::InvalidArgument => CniError::new(
            Code::InvalidConfig,
            msg,
            "fix the network configuration or the runtime's arguments",
        ),
        GrpcCode::NotFound => CniError::new(
            Code::InvalidConfig,
            msg,
            "the network must be in this host's catalog",
        ),
        GrpcCode::PermissionDenied | GrpcCode::Unauthenticated => {
            CniError::new(Code::Refused, msg, "run the container runtime as root")
        }
        _ => CniError::new(
            Code::Refused,
            msg,
            "the agent refused; its message says why",
        ),
    }
}
