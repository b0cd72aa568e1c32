//! `linkherdctl probe ping|arp|tcp|diagnose`.

use clap::Subcommand;
use linkherd_proto::pb::{self, probe_service_client::ProbeServiceClient};
use serde::Serialize;

use super::{CtlError, Ctx, Exit, NetnsArgs};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum ProbeCmd {
    /// ICMP echo from inside a namespace, replies shown as they arrive.
    /// Exit status 1 when nothing answered.
    Ping {
        #[command(flatten)]
        from: NetnsArgs,
        /// Send from this interface (SO_BINDTODEVICE).
        #[arg(long)]
        interface: Option<String>,
        /// Destination address (IPv4 or IPv6).
        #[arg(long)]
        to: String,
        /// Echo requests to send (default 3, at most 10000).
        #[arg(long, short = 'c')]
        count: Option<u32>,
        /// Milliseconds between requests (default 1000; below 10 needs admin).
        #[arg(long)]
        interval_ms: Option<u32>,
        /// Milliseconds to wait for each reply (default 1000).
        #[arg(long)]
        timeout_ms: Option<u32>,
        /// ICMP payload bytes (default 56).
        #[arg(long, short = 's')]
        size: Option<u32>,
    },
    /// Who answers for an address on a link (ARP, or neighbour solicitation
    /// for IPv6). Exit status: 0 one answer (or free with --free), 1 none
    /// (or in use with --free), 3 a duplicate address.
    Arp {
        #[command(flatten)]
        from: NetnsArgs,
        /// The link to ask on (default eth0).
        #[arg(long)]
        interface: Option<String>,
        /// The address asked for (IPv4: ARP; IPv6: neighbour solicitation).
        #[arg(long)]
        to: String,
        /// RFC 5227 probe: is the address free?
        #[arg(long)]
        free: bool,
        /// Milliseconds to collect answers (default 1000).
        #[arg(long)]
        timeout_ms: Option<u32>,
    },
    /// Explain why one endpoint does (not) reach another, layer by layer:
    /// endpoint, parent / VLAN, ARP, ICMP. Endpoints as HOST/NAME, hosts from
    /// --config.
    Diagnose {
        /// The endpoint that should reach, as HOST/NAME (e.g. no1/b1).
        #[arg(long)]
        from: String,
        /// The endpoint it should reach, as HOST/NAME (e.g. no2/b3).
        #[arg(long)]
        to: String,
    },
    /// TCP connect from inside a namespace. Exit status: 0 connected,
    /// 2 refused (the host answered, the port is closed), 1 no answer.
    Tcp {
        #[command(flatten)]
        from: NetnsArgs,
        /// Connect from this interface (SO_BINDTODEVICE).
        #[arg(long)]
        interface: Option<String>,
        /// Destination address (IPv4 or IPv6).
        #[arg(long)]
        to: String,
        /// Destination TCP port.
        #[arg(long)]
        port: u32,
        /// Timeout in milliseconds (default 2000, at most 30000).
        #[arg(long)]
        timeout_ms: Option<u32>,
    },
}

#[derive(Debug, Serialize)]
struct TcpReport {
    result: &'static str,
    elapsed_us: u32,
    detail: String,
}

#[derive(Debug, Serialize)]
struct PingReport {
    sent: u32,
    received: u32,
    loss_percent: f64,
    min_ms: f64,
    avg_ms: f64,
    max_ms: f64,
    mdev_ms: f64,
    /// Why replies may be missing, when the agent knows.
    #[serde(skip_serializing_if = "String::is_empty")]
    note: String,
}

#[derive(Debug, Serialize)]
struct ArpReport {
    responders: Vec<Responder>,
    duplicate: bool,
    verdict: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    note: String,
}

#[derive(Debug, Serialize)]
struct Responder {
    mac: String,
    rtt_ms: f64,
}

fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

type Client = ProbeServiceClient<tonic::transport::Channel>;

pub async fn run(ctx: &Ctx, cmd: ProbeCmd) -> Result<Exit, CtlError> {
    let client = || async { Ok::<_, CtlError>(ProbeServiceClient::new(ctx.channel().await?)) };
    match cmd {
        ProbeCmd::Diagnose { from, to } => super::diagnose::run(ctx, &from, &to).await,
        ProbeCmd::Ping {
            from,
            interface,
            to,
            count,
            interval_ms,
            timeout_ms,
            size,
        } => {
            let req = pb::PingRequest {
                source: from.target(),
                interface: interface.unwrap_or_default(),
                destination: to,
                count: count.unwrap_or(0),
                interval_ms: interval_ms.unwrap_or(0),
                timeout_ms: timeout_ms.unwrap_or(0),
                payload_size: size.unwrap_or(0),
            };
            ping(ctx, client().await?, req).await
        }
        ProbeCmd::Arp {
            from,
            interface,
            to,
            free,
            timeout_ms,
        } => {
            let req = pb::ArpRequest {
                source: from.target(),
                interface: interface.unwrap_or_default(),
                address: to,
                timeout_ms: timeout_ms.unwrap_or(0),
                free_check: free,
            };
            arp(ctx, client().await?, req).await
        }
        ProbeCmd::Tcp {
            from,
            interface,
            to,
            port,
            timeout_ms,
        } => {
            let req = pb::TcpRequest {
                source: from.target(),
                interface: interface.unwrap_or_default(),
                destination: to,
                port,
                timeout_ms: timeout_ms.unwrap_or(0),
            };
            tcp(ctx, client().await?, req).await
        }
    }
}

/// Replies as they arrive (text), then the statistics; exit 1 when nothing
/// answered.
async fn ping(ctx: &Ctx, mut client: Client, req: pb::PingRequest) -> Result<Exit, CtlError> {
    let to = req.destination.clone();
    let mut stream = client.ping(req).await?.into_inner();
    let live = ctx.text();
    if live {
        println!("PING {to}");
    }
    while let Some(msg) = futures::StreamExt::next(&mut stream).await {
        match msg?.event {
            Some(pb::ping_response::Event::Reply(r)) if live => {
                println!("{}", output::terminal(&reply_line(&to, &r)));
            }
            Some(pb::ping_response::Event::Summary(s)) => {
                output::print(ctx.format, &PingReport::from(&s), |r| r.text(&to))?;
                return Ok(if s.received == 0 {
                    Exit::Failure
                } else {
                    Exit::Success
                });
            }
            _ => {}
        }
    }
    Err(CtlError::EmptyResponse)
}

fn reply_line(to: &str, r: &pb::PingReply) -> String {
    if r.timed_out {
        format!("no answer from {to}: icmp_seq={}", r.sequence)
    } else {
        format!(
            "reply from {to}: icmp_seq={} ttl={} time={:.3} ms",
            r.sequence,
            r.ttl,
            ms(r.rtt_us)
        )
    }
}

impl From<&pb::PingSummary> for PingReport {
    fn from(s: &pb::PingSummary) -> Self {
        PingReport {
            sent: s.sent,
            received: s.received,
            loss_percent: s.loss_percent,
            min_ms: ms(s.min_us),
            avg_ms: ms(s.avg_us),
            max_ms: ms(s.max_us),
            mdev_ms: ms(s.mdev_us),
            note: s.note.clone(),
        }
    }
}

impl PingReport {
    fn text(&self, to: &str) -> String {
        let note = if self.note.is_empty() {
            String::new()
        } else {
            format!("\nnote: {}", self.note)
        };
        format!(
            "--- {to} ping statistics ---\n{} packets transmitted, {} received, {:.0}% packet loss\nrtt min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} ms{note}",
            self.sent,
            self.received,
            self.loss_percent,
            self.min_ms,
            self.avg_ms,
            self.max_ms,
            self.mdev_ms
        )
    }
}

/// Who answered; exit 0 for one answer (or free with --free), 1 for none
/// (or in use), 3 for a duplicate.
async fn arp(ctx: &Ctx, mut client: Client, req: pb::ArpRequest) -> Result<Exit, CtlError> {
    let free = req.free_check;
    let r = client.arp(req).await?.into_inner();
    let report = ArpReport {
        responders: r
            .responders
            .iter()
            .map(|x| Responder {
                mac: x.mac.clone(),
                rtt_ms: ms(x.rtt_us),
            })
            .collect(),
        duplicate: r.duplicate,
        verdict: r.verdict.clone(),
        note: r.note.clone(),
    };
    output::print(ctx.format, &report, |r| {
        let mut s: Vec<String> = r
            .responders
            .iter()
            .map(|x| format!("answer from {} in {:.3} ms", x.mac, x.rtt_ms))
            .collect();
        s.push(r.verdict.clone());
        if !r.note.is_empty() {
            s.push(format!("note: {}", r.note));
        }
        s.join("\n")
    })?;
    Ok(match (r.responders.len(), free) {
        (0, true) | (1, false) => Exit::Success,
        _ if r.duplicate => Exit::Duplicate,
        _ => Exit::Failure,
    })
}

/// Connected (0), refused (2: the host answered, the port is closed), or
/// no answer (1).
async fn tcp(ctx: &Ctx, mut client: Client, req: pb::TcpRequest) -> Result<Exit, CtlError> {
    let (to, port) = (req.destination.clone(), req.port);
    let r = client.tcp(req).await?.into_inner();
    let (result, code) = match r.result() {
        pb::TcpResult::Connected => ("connected", Exit::Success),
        pb::TcpResult::Refused => ("refused", Exit::Changes),
        pb::TcpResult::TimedOut => ("timed out", Exit::Failure),
        pb::TcpResult::Unreachable | pb::TcpResult::Unspecified => ("unreachable", Exit::Failure),
    };
    let report = TcpReport {
        result,
        elapsed_us: r.elapsed_us,
        detail: r.detail,
    };
    output::print(ctx.format, &report, |r| {
        format!(
            "tcp {to}:{port}: {} in {:.1} ms ({})",
            r.result,
            f64::from(r.elapsed_us) / 1000.0,
            r.detail
        )
    })?;
    Ok(code)
}
