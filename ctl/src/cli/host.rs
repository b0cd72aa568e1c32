//! `linkherdctl host info`.

use std::process::ExitCode;

use clap::Subcommand;
use linkherd_proto::pb::{self, host_service_client::HostServiceClient};
use serde::Serialize;

use super::Ctx;
use crate::{error::CtlError, output};

#[derive(Debug, Subcommand)]
pub enum HostCmd {
    /// Hostname, kernel, agent version, probed capabilities, and who you are.
    Info,
}

#[derive(Debug, Serialize)]
struct HostInfo {
    hostname: String,
    kernel_release: String,
    agent_version: String,
    api_version: String,
    uptime_seconds: u64,
    capabilities: Capabilities,
    caller: Caller,
}

#[derive(Debug, Serialize)]
struct Capabilities {
    vlan: bool,
    macvlan: bool,
    macvlan_modes: Vec<String>,
    netns: bool,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Caller {
    identity: String,
    role: String,
    transport: String,
}

fn mode_name(m: i32) -> String {
    pb::MacvlanMode::try_from(m)
        .map(|m| {
            m.as_str_name()
                .trim_start_matches("MACVLAN_MODE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| m.to_string())
}

fn role_name(r: i32) -> String {
    pb::Role::try_from(r)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("ROLE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| r.to_string())
}

pub async fn run(ctx: &Ctx, cmd: HostCmd) -> Result<ExitCode, CtlError> {
    match cmd {
        HostCmd::Info => {
            let mut client = HostServiceClient::new(ctx.channel().await?);
            let r = client.get_info(pb::GetInfoRequest {}).await?.into_inner();
            let caps = r.capabilities.unwrap_or_default();
            let caller = r.caller.unwrap_or_default();
            let info = HostInfo {
                hostname: r.hostname,
                kernel_release: r.kernel_release,
                agent_version: r.agent_version,
                api_version: r.api_version,
                uptime_seconds: r.uptime_seconds,
                capabilities: Capabilities {
                    vlan: caps.vlan,
                    macvlan: caps.macvlan,
                    macvlan_modes: caps.macvlan_modes.iter().map(|m| mode_name(*m)).collect(),
                    netns: caps.netns,
                    notes: caps.notes,
                },
                caller: Caller {
                    identity: caller.identity,
                    role: role_name(caller.role),
                    transport: caller.transport,
                },
            };
            output::print(ctx.format, &info, |i| {
                let yes = |b: bool| if b { "yes" } else { "no" };
                let mut s = format!(
                    "host:        {}\nkernel:      {}\nagent:       {} ({}), up {}s\nvlan:        {}\nmacvlan:     {} ({})\nnetns:       {}\nyou are:     {} as {} via {}",
                    i.hostname,
                    i.kernel_release,
                    i.agent_version,
                    i.api_version,
                    i.uptime_seconds,
                    yes(i.capabilities.vlan),
                    yes(i.capabilities.macvlan),
                    i.capabilities.macvlan_modes.join(", "),
                    yes(i.capabilities.netns),
                    i.caller.identity,
                    i.caller.role,
                    i.caller.transport,
                );
                for n in &i.capabilities.notes {
                    s.push_str(&format!("\nnote:        {n}"));
                }
                s
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
