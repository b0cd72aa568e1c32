//! `linkherdctl probe tcp`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};
use linkherd_proto::{
    convert::netns_to_pb,
    model::NetnsRef,
    pb::{self, probe_service_client::ProbeServiceClient},
};
use serde::Serialize;

use super::Ctx;
use crate::{error::CtlError, output};

/// The namespace to probe from (default: the agent's own).
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct From {
    #[arg(long)]
    netns: Option<String>,
    #[arg(long)]
    netns_path: Option<PathBuf>,
    #[arg(long)]
    pid: Option<u32>,
}

impl From {
    fn target(&self) -> Option<pb::NetnsTarget> {
        let n = match (&self.netns, &self.netns_path, self.pid) {
            (Some(n), _, _) => NetnsRef::Named(n.clone()),
            (_, Some(p), _) => NetnsRef::Path(p.clone()),
            (_, _, Some(pid)) => NetnsRef::Pid(pid),
            _ => return None,
        };
        Some(netns_to_pb(&n))
    }
}

#[derive(Debug, Subcommand)]
pub enum ProbeCmd {
    /// TCP connect from inside a namespace. Exit status: 0 connected,
    /// 2 refused (the host answered, the port is closed), 1 no answer.
    Tcp {
        #[command(flatten)]
        from: From,
        /// Bind to this interface.
        #[arg(long)]
        interface: Option<String>,
        /// Destination address.
        #[arg(long)]
        to: String,
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

pub async fn run(ctx: &Ctx, cmd: ProbeCmd) -> Result<ExitCode, CtlError> {
    let mut client = ProbeServiceClient::new(ctx.channel().await?);
    match cmd {
        ProbeCmd::Tcp {
            from,
            interface,
            to,
            port,
            timeout_ms,
        } => {
            let r = client
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
