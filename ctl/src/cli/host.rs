//! `linkherdctl host info`.

use clap::Subcommand;
use linkherd_proto::{
    convert::DecodeError,
    pb::{self, host_service_client::HostServiceClient},
};
use serde::Serialize;

use super::{CtlError, Ctx, Exit};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum HostCmd {
    /// Hostname, kernel, agent version, probed capabilities, and who you are.
    Info,
    /// Everything linkherd owns on the host (VLANs, endpoints, host access)
    /// and the generation that changes with any of it.
    State,
    /// Keep a pending transaction (from an apply).
    Confirm {
        /// The transaction id, as the apply printed it.
        txn: String,
    },
    /// Undo a pending transaction now.
    Rollback {
        /// The transaction id, as the apply printed it.
        txn: String,
    },
}

#[derive(Debug, Serialize)]
struct HostInfo {
    hostname: String,
    kernel_release: String,
    agent_version: String,
    agent_id: String,
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

#[derive(Debug, Serialize)]
struct State {
    generation: u64,
    vlans: Vec<linkherd_proto::model::VlanState>,
    endpoints: Vec<linkherd_proto::model::EndpointState>,
    host_access: Vec<linkherd_proto::model::HostAccessState>,
}

pub async fn run(ctx: &Ctx, cmd: HostCmd) -> Result<Exit, CtlError> {
    let client = HostServiceClient::new(ctx.channel().await?);
    match cmd {
        HostCmd::Info => info(ctx, client).await?,
        HostCmd::State => state(ctx, client).await?,
        HostCmd::Confirm { txn } => confirm(ctx, client, txn).await?,
        HostCmd::Rollback { txn } => rollback(ctx, client, txn).await?,
    }
    Ok(Exit::Success)
}

type Client = HostServiceClient<tonic::transport::Channel>;

async fn state(ctx: &Ctx, mut client: Client) -> Result<(), CtlError> {
    let r = client.get_state(pb::GetStateRequest {}).await?.into_inner();
    let o = r.owned.unwrap_or_default();
    let state = State {
        generation: r.generation,
        vlans: decode_all(o.vlans)?,
        endpoints: decode_all(o.endpoints)?,
        host_access: decode_all(o.host_access)?,
    };
    Ok(output::print(ctx.format, &state, state_text)?)
}

fn decode_all<P, M: TryFrom<P, Error = DecodeError>>(v: Vec<P>) -> Result<Vec<M>, DecodeError> {
    v.into_iter().map(M::try_from).collect()
}

fn state_text(s: &State) -> String {
    let mut out = vec![format!("generation {}", s.generation)];
    out.extend(s.vlans.iter().map(|v| {
        format!(
            "vlan      {} (VLAN {} {} on {})",
            v.name,
            v.protocol.as_str(),
            v.id,
            v.parent
        )
    }));
    out.extend(s.endpoints.iter().map(|e| {
        let addrs: Vec<String> = e.addresses.iter().map(ToString::to_string).collect();
        format!(
            "endpoint  {}/{} ({} in {} on {}, {})",
            e.network,
            e.name,
            e.ifname,
            e.netns,
            e.parent,
            addrs.join(" ")
        )
    }));
    out.extend(
        s.host_access
            .iter()
            .map(|h| format!("access    {} ({} on {})", h.network, h.name, h.parent)),
    );
    out.join("\n")
}

async fn confirm(ctx: &Ctx, mut client: Client, txn: String) -> Result<(), CtlError> {
    let r = client
        .confirm(pb::ConfirmRequest {
            txn_id: txn.clone(),
        })
        .await?
        .into_inner();
    Ok(output::print(
        ctx.format,
        &serde_json::json!({ "txn": txn, "generation": r.generation }),
        |_| format!("{txn}: confirmed (generation {})", r.generation),
    )?)
}

async fn rollback(ctx: &Ctx, mut client: Client, txn: String) -> Result<(), CtlError> {
    let r = client
        .rollback(pb::RollbackRequest {
            txn_id: txn.clone(),
        })
        .await?
        .into_inner();
    let reverted: Vec<String> = r.reverted.into_iter().map(|c| c.detail).collect();
    Ok(output::print(
        ctx.format,
        &serde_json::json!({ "txn": txn, "reverted": reverted }),
        |_| {
            let mut out = vec![format!("{txn}: rolled back")];
            out.extend(reverted.iter().map(|r| format!("  {r}")));
            out.join("\n")
        },
    )?)
}

async fn info(ctx: &Ctx, mut client: Client) -> Result<(), CtlError> {
    let r = client.get_info(pb::GetInfoRequest {}).await?.into_inner();
    let caps = r.capabilities.unwrap_or_default();
    let caller = r.caller.unwrap_or_default();
    let info = HostInfo {
        hostname: r.hostname,
        kernel_release: r.kernel_release,
        agent_version: r.agent_version,
        agent_id: r.agent_id,
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
    Ok(output::print(ctx.format, &info, info_text)?)
}

fn info_text(i: &HostInfo) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut s = format!(
        "host:        {}\nkernel:      {}\nagent:       {} ({}), up {}s, id {}\nvlan:        {}\nmacvlan:     {} ({})\nnetns:       {}\nyou are:     {} as {} via {}",
        i.hostname,
        i.kernel_release,
        i.agent_version,
        i.api_version,
        i.uptime_seconds,
        i.agent_id,
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
}
