//! Proving a fleet works, with the agents' own probes, from inside each
//! endpoint's namespace:
//!
//! - reach (`verify.mesh`): an endpoint asks ARP for another endpoint of
//!   its network and must get the answer from that endpoint's MAC, and only
//!   from it; then ICMP echo must come back. `verify.mode` says which pairs:
//!   every pair of hosts of each network (`sampled`, the default) or every
//!   pair of endpoints (`mesh`);
//! - isolation (`verify.isolation`): ARP for an endpoint of another network
//!   must go unanswered by it. This is layer 2 on purpose: separate VLANs
//!   are what isolation means here; a router between the subnets may still
//!   forward, which is not a leak;
//! - address check: an RFC 5227 probe for each endpoint's own address must
//!   get no answer (nobody else on the wire uses it).
//!
//! With `verify.containers`, the containers attached to the spec's networks
//! (read afresh: runtimes add and remove them at any time) are members
//! like endpoints, probed from inside their own namespaces.

mod probe;
mod run;

pub use probe::{Check, Member, Probe, container_members, members, missing, probes};
pub use run::{PROBES_PER_HOST, ProbeError, ProbeOutcome, ProbeResult};

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

use super::{Silent, plan::FleetPlan};
use crate::client::RpcError;

/// Events of a verification as they happen; every method has a default
/// that ignores the event.
pub trait ProbeProgress: Send + Sync {
    /// `total` probes are about to run.
    fn probing(&self, _total: usize) {}
    /// One probe has its result.
    fn probed(&self, _outcome: &ProbeOutcome) {}
    /// Every probe has its result.
    fn probes_done(&self, _outcomes: &[ProbeOutcome]) {}
}

impl ProbeProgress for Silent {}

/// What the probes found: the endpoints probed, and every probe's outcome
/// (both empty when nothing was probed).
#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub members: Vec<Member>,
    pub outcomes: Vec<ProbeOutcome>,
}

impl Verification {
    pub fn failed(&self) -> impl Iterator<Item = &ProbeOutcome> {
        self.outcomes.iter().filter(|o| !o.ok())
    }
}

/// Why a fleet does not verify.
#[derive(Debug, Clone)]
pub enum VerifyFailure {
    /// A host's state could not be read again after applying.
    CannotRead { host: String, error: RpcError },
    /// A host's state, read again, is not one the model can hold (a newer
    /// or broken agent).
    CannotDecode { host: String, error: DecodeError },
    /// Endpoints of the spec their (reachable) host does not have, as `b1@no1`.
    Missing(Vec<String>),
    /// Probes failed (twice each) or could not be run: how many of how
    /// many, how many of them inconclusive, and the first few.
    Probes {
        failed: usize,
        inconclusive: usize,
        total: usize,
        first: Vec<ProbeOutcome>,
    },
}

/// Failed probes named in the message; all of them are in the report.
const NAMED: usize = 3;

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyFailure::CannotRead { host, error } => {
                write!(f, "verification failed: cannot read {host}: {error}")
            }
            VerifyFailure::CannotDecode { host, error } => {
                write!(f, "verification failed: cannot read {host}: {error}")
            }
            VerifyFailure::Missing(eps) => write!(
                f,
                "verification failed: endpoint(s) missing on their host: {}",
                eps.join(", ")
            ),
            VerifyFailure::Probes {
                failed,
                inconclusive,
                total,
                first,
            } => {
                let mut why: Vec<String> = first
                    .iter()
                    .map(|o| format!("{} -> {} ({}): {}", o.from, o.to, o.address, o.detail()))
                    .collect();
                if *failed > first.len() {
                    why.push(format!("and {} more", failed - first.len()));
                }
                let counted = match inconclusive {
                    0 => format!("{failed} of {total} probe(s)"),
                    i if i == failed => format!("{i} of {total} probe(s) inconclusive"),
                    i => format!("{failed} of {total} probe(s), {i} of them inconclusive"),
                };
                write!(f, "verification failed ({counted}): {}", why.join("; "))
            }
        }
    }
}

impl std::error::Error for VerifyFailure {}

/// A verification: what was probed, and why it fails if it does.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub verification: Verification,
    pub failure: Option<VerifyFailure>,
}

/// Proves the fleet of `plan` as the spec's `verify` section says: every
/// endpoint of the spec present on its (reachable) host, then the probes.
/// Hosts in `changed` are read again (their state is what was just
/// applied); the others' state is the one read before planning.
pub async fn verify(
    plan: &FleetPlan,
    changed: &[&str],
    progress: &dyn ProbeProgress,
) -> VerifyReport {
    let observed = match observe(plan, changed).await {
        Ok(o) => o,
        Err(failure) => return failed(Verification::default(), failure),
    };
    let mut members = members(&plan.spec, &observed);
    let missing = missing(&plan.spec, &observed, &members);
    if !missing.is_empty() {
        return failed(Verification::default(), VerifyFailure::Missing(missing));
    }
    let v = plan.spec.verify;
    if v.containers {
        match attached(plan).await {
            Ok(a) => members.extend(container_members(&plan.spec, &a)),
            Err(failure) => return failed(Verification::default(), failure),
        }
    }
    let probes = probes(&members, v.reach, v.isolation, v.mode);
    if probes.is_empty() {
        return VerifyReport::default();
    }
    let channels = plan
        .hosts
        .iter()
        .map(|h| (h.host.clone(), h.channel.clone()))
        .collect();
    progress.probing(probes.len());
    let outcomes = run::run(&members, &probes, &channels, v.timeout, progress).await;
    progress.probes_done(&outcomes);
    let verification = Verification { members, outcomes };
    let bad: Vec<ProbeOutcome> = verification.failed().cloned().collect();
    if bad.is_empty() {
        return VerifyReport {
            verification,
            failure: None,
        };
    }
    let failure = VerifyFailure::Probes {
        failed: bad.len(),
        inconclusive: bad.iter().filter(|o| o.result.inconclusive()).count(),
        total: verification.outcomes.len(),
        first: bad.into_iter().take(NAMED).collect(),
    };
    failed(verification, failure)
}

fn failed(verification: Verification, failure: VerifyFailure) -> VerifyReport {
    VerifyReport {
        verification,
        failure: Some(failure),
    }
}

/// Every planned host's attachments, read now.
async fn attached(plan: &FleetPlan) -> Result<BTreeMap<String, Vec<Attachment>>, VerifyFailure> {
    let reads = plan.hosts.iter().map(|h| async move {
        AttachmentServiceClient::new(h.channel.clone())
            .list(pb::ListAttachmentsRequest::default())
            .await
            .map(|r| r.into_inner().attachments)
            // An agent without AttachmentService has no containers.
            .or_else(|s| match s.code() {
                tonic::Code::Unimplemented => Ok(Vec::new()),
                _ => Err(s),
            })
            .map_err(|s| VerifyFailure::CannotRead {
                host: h.host.clone(),
                error: RpcError::from(s),
            })
            .and_then(|list| {
                list.into_iter()
                    .map(Attachment::try_from)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| VerifyFailure::CannotDecode {
                        host: h.host.clone(),
                        error,
                    })
            })
            .map(|a| (h.host.clone(), a))
    });
    join_all(reads).await.into_iter().collect()
}

/// Every planned host's owned objects: read again for `changed` hosts.
async fn observe(
    plan: &FleetPlan,
    changed: &[&str],
) -> Result<BTreeMap<String, OwnedObjects>, VerifyFailure> {
    let reads = plan.hosts.iter().map(|h| async move {
        let st = if changed.contains(&h.host.as_str()) {
            HostServiceClient::new(h.channel.clone())
                .get_state(pb::GetStateRequest {})
                .await
                .map_err(|s| VerifyFailure::CannotRead {
                    host: h.host.clone(),
                    error: RpcError::from(s),
                })
                .and_then(|s| {
                    OwnedObjects::try_from(s.into_inner().owned.unwrap_or_default()).map_err(
                        |error| VerifyFailure::CannotDecode {
                            host: h.host.clone(),
                            error,
                        },
                    )
                })
        } else {
            Ok(h.observed.clone())
        };
        st.map(|s| (h.host.clone(), s))
    });
    join_all(reads).await.into_iter().collect()
}
