//! `linkherdctl probe ping|arp|tcp|diagnose`.

use std::process::ExitCode;

use clap::Subcommand;
use linkherd_proto::pb::{self, probe_service_client::ProbeServiceClient};
use serde::Serialize;

use super::{Ctx, NetnsArgs};
use crate::{error::CtlError, output};

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
}

#[derive(Debug, Serialize)]
struct ArpReport {
    responders: Vec<Responder>,
    duplicate: bool,
    verdict: String,
}

#[derive(Debug, Serialize)]
struct Responder {
    mac: String,
    rtt_ms: f64,
}

fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

async fn client(ctx: &Ctx) -> Result<ProbeServiceClient<tonic::transport::Channel>, CtlError> {
    Ok(ProbeServiceClient::new(ctx.channel().await?))
}

pub async fn run(ctx: &Ctx, cmd: ProbeCmd) -> Result<ExitCode, CtlError> {
    match cmd {
        ProbeCmd::Diagnose { from, to } => crate::diagnose::run(ctx, &from, &to).await,
        ProbeCmd::Ping {
            from,
            interface,
            to,
            count,
            interval_ms,
            timeout_ms,
            size,
        } => {
            let mut stream = client(ctx)
                .await?
                .ping(pb::PingRequest {
                    source: from.target(),
                    interface: interface.unwrap_or_default(),
                    destination: to.clone(),
                    count: count.unwrap_or(0),
                    interval_ms: interval_ms.unwrap_or(0),
                    timeout_ms: timeout_ms.unwrap_or(0),
                    payload_size: size.unwrap_or(0),
                })
                .await?
                .into_inner();
            let live = ctx.format == crate::output::Format::Table;
            if live {
                println!("PING {to}");
            }
            while let Some(msg) = futures::StreamExt::next(&mut stream).await {
                match msg?.event {
                    Some(pb::ping_response::Event::Reply(r)) if live => {
                        if r.timed_out {
                            println!("no answer from {to}: icmp_seq={}", r.sequence);
                        } else {
                            println!(
                                "reply from {to}: icmp_seq={} ttl={} time={:.3} ms",
                                r.sequence,
                                r.ttl,
                                ms(r.rtt_us)
                            );
                        }
                    }
                    Some(pb::ping_response::Event::Summary(s)) => {
                        let report = PingReport {
                            sent: s.sent,
                            received: s.received,
                            loss_percent: s.loss_percent,
                            min_ms: ms(s.min_us),
                            avg_ms: ms(s.avg_us),
                            max_ms: ms(s.max_us),
                            mdev_ms: ms(s.mdev_us),
                        };
                        output::print(ctx.format, &report, |r| {
                            format!(
                                "--- {to} ping statistics ---\n{} packets transmitted, {} received, {:.0}% packet loss\nrtt min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} ms",
                                r.sent,
                                r.received,
                                r.loss_percent,
                                r.min_ms,
                                r.avg_ms,
                                r.max_ms,
                                r.mdev_ms
                            )
                        })?;
                        return Ok(if s.received == 0 {
                            ExitCode::FAILURE
                        } else {
                            ExitCode::SUCCESS
                        });
                    }
                    _ => {}
                }
            }
            Err(CtlError::EmptyResponse)
        }
        ProbeCmd::Arp {
            from,
            interface,
            to,
            free,
            timeout_ms,
        } => {
            let r = client(ctx)
                .await?
                .arp(pb::ArpRequest {
                    source: from.target(),
                    interface: interface.unwrap_or_default(),
                    address: to,
                    timeout_ms: timeout_ms.unwrap_or(0),
                    free_check: free,
                })
                .await?
                .into_inner();
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
            };
            output::print(ctx.format, &report, |r| {
                let mut s: Vec<String> = r
                    .responders
                    .iter()
                    .map(|x| format!("answer from {} in {:.3} ms", x.mac, x.rtt_ms))
                    .collect();
                s.push(r.verdict.clone());
                s.join("\n")
            })?;
            let n = r.responders.len();
            Ok(ExitCode::from(match (n, free) {
                (0, true) | (1, false) => 0,
                (_, _) if r.duplicate => 3,
                _ => 1,
            }))
        }
        ProbeCmd::Tcp {
            from,
            interface,
            to,
            port,
            timeout_ms,
        } => {
            let r = client(ctx)
                .await?
                .tcp(pb::TcpRequest {
                    source: from.target(),
                    interface: interface.unwrap_or_default(),
                    destination: to.clone(),
                    port,
                    timeout_ms: timeout_ms.unwrap_or(0),
                })
                .await?
                .into_inner();
            let (result, code) = match r.result() {
                pb::TcpResult::Connected => ("connected", 0),
                pb::TcpResult::Refused => ("refused", 2),
                pb::TcpResult::TimedOut => ("timed out", 1),
                pb::TcpResult::Unreachable | pb::TcpResult::Unspecified => ("unreachable", 1),
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
            Ok(ExitCode::from(code))
        }
    }
}
