//! Running probes through the agents, from inside each endpoint's
//! namespace, and what each one found.

use std::{collections::BTreeMap, fmt, net::IpAddr, time::Duration};

use futures::{StreamExt, stream};
use linkherd_proto::{
    convert::netns_to_pb,
    pb::{self, probe_service_client::ProbeServiceClient},
};
use serde::{Serialize, ser::SerializeStruct};
use tonic::transport::Channel;

use super::{
    ProbeProgress,
    probe::{Check, Member, Probe},
};
use crate::client::RpcError;

/// Echo requests per reach probe: one lost packet is not a failure.
const PINGS: u32 = 3;
const PING_INTERVAL_MS: u32 = 50;

/// Probes each agent runs at the same time. A probe mostly waits (ARP
/// collects answers for the whole timeout, to see duplicates), on one of
/// the agent's blocking threads; the agent serves up to 64 calls per
/// connection.
pub const PROBES_PER_HOST: usize = 32;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// Address check: nobody else answers for the address.
    Free,
    /// Address check: these MACs answer for it too.
    InUse { macs: Vec<String> },
    /// Isolation: the other network's endpoint did not answer.
    Isolated,
    /// Isolation: it answered, from `its_network`.
    Leak { its_network: String },
    /// Reach: no ARP answer within the timeout; `note`: why, when the
    /// prober's agent knows (empty otherwise).
    NoArpAnswer { timeout_ms: u32, note: String },
    /// Reach: others than (or besides) the target answered ARP.
    WrongResponders {
        macs: Vec<String>,
        expected: String,
        target_answered: bool,
    },
    /// Reach: ARP and ICMP echo answered.
    Reached {
        received: u32,
        sent: u32,
        avg_us: u32,
    },
    /// Reach: ARP answered, ICMP did not; `note` as for `NoArpAnswer`.
    NoEcho { sent: u32, note: String },
    /// The probe could not be run.
    Error(ProbeError),
}

/// Why a probe could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("no connection to {0}")]
    NoConnection(String),
    /// The agent's error as printed (`CODE: message`): kept as text so
    /// that outcomes stay comparable and cheap to clone into reports.
    #[error("{0}")]
    Rpc(String),
    #[error("the agent sent no ping summary")]
    NoSummary,
}

impl From<tonic::Status> for ProbeError {
    fn from(s: tonic::Status) -> Self {
        ProbeError::Rpc(RpcError::from(s).to_string())
    }
}

impl ProbeResult {
    /// The probe could not be run (an agent refused or failed it): its
    /// verdict is unknown, which is reported apart from a failure.
    pub fn inconclusive(&self) -> bool {
        matches!(self, ProbeResult::Error(_))
    }

    /// Worth a second try before it counts: silence can be load (a lost
    /// frame, a busy agent); a wrong answer or a leak cannot.
    fn retryable(&self) -> bool {
        matches!(
            self,
            ProbeResult::NoArpAnswer { .. } | ProbeResult::NoEcho { .. } | ProbeResult::Error(_)
        )
    }

    pub fn ok(&self) -> bool {
        matches!(
            self,
            ProbeResult::Free | ProbeResult::Isolated | ProbeResult::Reached { .. }
        )
    }

    /// Average ICMP round trip (reach probes that passed).
    pub fn rtt_us(&self) -> Option<u32> {
        match self {
            ProbeResult::Reached { avg_us, .. } => Some(*avg_us),
            _ => None,
        }
    }
}

/// One probe's result, with who probed whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub check: Check,
    pub network: String,
    /// `b1@no1`.
    pub from: String,
    pub to: String,
    pub address: IpAddr,
    pub result: ProbeResult,
    /// The first try failed by silence or error; `result` is the second.
    pub retried: bool,
}

impl ProbeOutcome {
    pub fn ok(&self) -> bool {
        self.result.ok()
    }

    /// What was found, in a sentence.
    pub fn detail(&self) -> String {
        Detail(self).to_string()
    }
}

/// The sentence of an outcome, which needs both its ends.
struct Detail<'a>(&'a ProbeOutcome);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        match &o.result {
            ProbeResult::Free => f.write_str("free"),
            ProbeResult::InUse { macs } => write!(
                f,
                "{} of {} is also answered for by {}",
                o.address,
                o.from,
                macs.join(", ")
            ),
            ProbeResult::Isolated => f.write_str("isolated"),
            ProbeResult::Leak { its_network } => write!(
                f,
                "{} ({its_network}) answered ARP for {} from {} of network {}: the networks share a link",
                o.to, o.address, o.from, o.network
            ),
            ProbeResult::NoArpAnswer { timeout_ms, note } => {
                write!(f, "no ARP answer for {} within {timeout_ms} ms", o.address)?;
                with_note(f, note)
            }
            ProbeResult::WrongResponders {
                macs,
                expected,
                target_answered,
            } => write!(
                f,
                "{} answered ARP for {} where only {} ({expected}) should: {}",
                macs.join(", "),
                o.address,
                o.to,
                if *target_answered {
                    "the address is used twice"
                } else {
                    "another machine has the address"
                }
            ),
            ProbeResult::Reached { received, sent, .. } => {
                write!(f, "{received}/{sent} echo replies")
            }
            ProbeResult::NoEcho { sent, note } => {
                write!(f, "ARP answered but no ICMP echo reply ({sent} sent)")?;
                with_note(f, note)
            }
            ProbeResult::Error(e) => write!(f, "probe failed: {e}"),
        }
    }
}

/// `; NOTE` after a result's words, when there is a note.
fn with_note(f: &mut std::fmt::Formatter<'_>, note: &str) -> std::fmt::Result {
    if note.is_empty() {
        Ok(())
    } else {
        write!(f, "; {note}")
    }
}

/// As reports show it: `ok`, `detail` and `rtt_us` in place of the result.
impl Serialize for ProbeOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ProbeOutcome", 10)?;
        st.serialize_field("check", &self.check)?;
        st.serialize_field("network", &self.network)?;
        st.serialize_field("from", &self.from)?;
        st.serialize_field("to", &self.to)?;
        st.serialize_field("address", &self.address)?;
        st.serialize_field("ok", &self.ok())?;
        st.serialize_field("inconclusive", &self.result.inconclusive())?;
        st.serialize_field("retried", &self.retried)?;
        st.serialize_field("detail", &self.detail())?;
        st.serialize_field("rtt_us", &self.result.rtt_us())?;
        st.end()
    }
}

/// Runs every probe through the agent of the prober's host, all hosts at
/// once and [`PROBES_PER_HOST`] at a time on each, telling `progress` of
/// each. Outcomes come in the order of `probes`.
pub async fn run(
    members: &[Member],
    probes: &[Probe],
    channels: &BTreeMap<String, Channel>,
    timeout: Duration,
    progress: &dyn ProbeProgress,
) -> Vec<ProbeOutcome> {
    let mut by_host: BTreeMap<&str, Vec<(usize, &Probe)>> = BTreeMap::new();
    for (i, p) in probes.iter().enumerate() {
        by_host
            .entry(members[p.from].host.as_str())
            .or_default()
            .push((i, p));
    }
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let hosts = by_host.into_values().map(|list| {
        stream::iter(list)
            .map(|(i, p)| async move {
                let o = run_probe(members, p, channels, timeout_ms).await;
                progress.probed(&o);
                (i, o)
            })
            .buffer_unordered(PROBES_PER_HOST)
            .collect::<Vec<_>>()
    });
    let mut all: Vec<(usize, ProbeOutcome)> = futures::future::join_all(hosts)
        .await
        .into_iter()
        .flatten()
        .collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, o)| o).collect()
}

async fn run_probe(
    members: &[Member],
    p: &Probe,
    channels: &BTreeMap<String, Channel>,
    timeout_ms: u32,
) -> ProbeOutcome {
    let (from, to) = (&members[p.from], &members[p.to]);
    let (result, retried) = with_retry(|| async {
        match channels.get(&from.host) {
            Some(ch) => run_one(ch.clone(), p, from, to, timeout_ms)
                .await
                .unwrap_or_else(ProbeResult::Error),
            None => ProbeResult::Error(ProbeError::NoConnection(from.host.clone())),
        }
    })
    .await;
    ProbeOutcome {
        check: p.check,
        network: from.network.clone(),
        from: from.label(),
        to: to.label(),
        address: p.address,
        result,
        retried,
    }
}

/// Pause before a second try: long enough for a burst to pass.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// Runs a probe, and once more when it failed by silence or error: a
/// probe must fail twice before it can roll a fleet back.
async fn with_retry<F, Fut>(probe: F) -> (ProbeResult, bool)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ProbeResult>,
{
    let first = probe().await;
    if !first.retryable() {
        return (first, false);
    }
    tokio::time::sleep(RETRY_AFTER).await;
    (probe().await, true)
}

/// ARP from `from` for the probe's address, judged by what the check
/// expects; a reach probe answered by its target alone goes on to ICMP.
async fn run_one(
    ch: Channel,
    p: &Probe,
    from: &Member,
    to: &Member,
    timeout_ms: u32,
) -> Result<ProbeResult, ProbeError> {
    let mut client = ProbeServiceClient::new(ch);
    let source = Some(netns_to_pb(&from.netns));
    let arp = client
        .arp(pb::ArpRequest {
            source: source.clone(),
            interface: from.ifname.clone(),
            address: p.address.to_string(),
            timeout_ms,
            free_check: p.check == Check::Address,
        })
        .await?
        .into_inner();
    let macs: Vec<String> = arp
        .responders
        .iter()
        .map(|r| r.mac.to_ascii_lowercase())
        .collect();
    let by_target = macs.contains(&to.mac);
    Ok(match p.check {
        Check::Address if macs.is_empty() => ProbeResult::Free,
        Check::Address => ProbeResult::InUse { macs },
        Check::Isolation if by_target => ProbeResult::Leak {
            its_network: to.network.clone(),
        },
        Check::Isolation => ProbeResult::Isolated,
        Check::Reach if macs.is_empty() => ProbeResult::NoArpAnswer {
            timeout_ms,
            note: arp.note,
        },
        Check::Reach if !by_target || macs.len() > 1 => ProbeResult::WrongResponders {
            macs,
            expected: to.mac.clone(),
            target_answered: by_target,
        },
        Check::Reach => ping(&mut client, source, &from.ifname, p.address, timeout_ms).await?,
    })
}

async fn ping(
    client: &mut ProbeServiceClient<Channel>,
    source: Option<pb::NetnsTarget>,
    ifname: &str,
    to: IpAddr,
    timeout_ms: u32,
) -> Result<ProbeResult, ProbeError> {
    let mut replies = client
        .ping(pb::PingRequest {
            source,
            interface: ifname.to_owned(),
            destination: to.to_string(),
            count: PINGS,
            interval_ms: PING_INTERVAL_MS,
            timeout_ms,
            payload_size: 0,
        })
        .await?
        .into_inner();
    let mut summary = None;
    while let Some(ev) = replies.next().await {
        if let Some(pb::ping_response::Event::Summary(s)) = ev?.event {
            summary = Some(s);
        }
    }
    let s = summary.ok_or(ProbeError::NoSummary)?;
    Ok(if s.received > 0 {
        ProbeResult::Reached {
            received: s.received,
            sent: s.sent,
            avg_us: s.avg_us,
        }
    } else {
        ProbeResult::NoEcho {
            sent: s.sent,
            note: s.note,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// `results` in turn, counting the tries.
    async fn tries(results: &[ProbeResult]) -> (ProbeResult, bool, usize) {
        let n = AtomicUsize::new(0);
        let (r, retried) =
            with_retry(|| async { results[n.fetch_add(1, Ordering::SeqCst)].clone() }).await;
        (r, retried, n.load(Ordering::SeqCst))
    }

    #[test]
    fn an_agents_note_follows_the_failure_it_explains() {
        let outcome = |result| ProbeOutcome {
            check: Check::Reach,
            network: "n".into(),
            from: "a1@no1".into(),
            to: "a2@no2".into(),
            address: "10.0.0.2".parse().expect("ip"),
            result,
            retried: true,
        };
        let full = "the kernel's neighbour table was full while probing (4 new entries refused)";
        let o = outcome(ProbeResult::NoEcho {
            sent: 3,
            note: full.into(),
        });
        assert_eq!(
            o.detail(),
            format!("ARP answered but no ICMP echo reply (3 sent); {full}")
        );
        let o = outcome(ProbeResult::NoArpAnswer {
            timeout_ms: 500,
            note: String::new(),
        });
        assert_eq!(o.detail(), "no ARP answer for 10.0.0.2 within 500 ms");
    }

    #[tokio::test]
    async fn silence_is_tried_twice_a_wrong_answer_once() {
        let silent = ProbeResult::NoArpAnswer {
            timeout_ms: 100,
            note: String::new(),
        };
        let reached = ProbeResult::Reached {
            received: 3,
            sent: 3,
            avg_us: 9,
        };
        assert_eq!(
            tries(&[silent.clone(), reached.clone()]).await,
            (reached.clone(), true, 2)
        );
        assert_eq!(
            tries(&[silent.clone(), silent.clone()]).await,
            (silent, true, 2)
        );
        assert_eq!(
            tries(std::slice::from_ref(&reached)).await,
            (reached, false, 1)
        );
        let leak = ProbeResult::Leak {
            its_network: "n".into(),
        };
        assert_eq!(tries(std::slice::from_ref(&leak)).await, (leak, false, 1));
        let err = ProbeResult::Error(ProbeError::NoSummary);
        let (r, retried, n) = tries(&[err.clone(), err]).await;
        assert!(r.inconclusive() && !r.ok() && retried && n == 2);
    }
}
