//! Watch latency: a link created in the host namespace until its `added`
//! event reaches a gRPC client of the agent.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use linkherd_agent::net::{NetOps, NewLink, NewLinkKind, rtnl::Rtnl};
use linkherd_proto::{
    model::{IfName, MacvlanMode},
    pb::{self, watch_interfaces_response::Event},
};
use tonic::transport::Channel;

use super::report::Latency;

/// Link group of the links this measurement makes, so one request removes
/// them all.
const GROUP: u32 = 0x4c48_beef;

/// `n` macvlans on `parent`, made one after the other straight through
/// netlink (not through the agent), each timed from just before its
/// request to its event at the client.
pub async fn latency(
    ch: &Channel,
    host_ns: &Path,
    parent: u32,
    n: usize,
) -> anyhow::Result<Latency> {
    let mut client = pb::interface_service_client::InterfaceServiceClient::new(ch.clone());
    let mut stream = client
        .watch(pb::WatchInterfacesRequest {})
        .await?
        .into_inner();
    while !matches!(next(&mut stream).await?, Event::Synced(_)) {}
    let net = Rtnl::in_netns(host_ns)?;
    let mut samples = Vec::with_capacity(n);
    let measured = measure(&net, &mut stream, parent, n, &mut samples).await;
    net.del_group(GROUP).await?;
    measured?;
    Latency::of(samples).context("no events measured")
}

async fn measure(
    net: &Rtnl,
    stream: &mut tonic::Streaming<pb::WatchInterfacesResponse>,
    parent: u32,
    n: usize,
    samples: &mut Vec<Duration>,
) -> anyhow::Result<()> {
    for i in 0..n {
        let name = format!("lhw{i}");
        let link = NewLink {
            name: IfName::parse("name", &name)?,
            kind: NewLinkKind::Macvlan {
                parent_index: parent,
                mode: MacvlanMode::Bridge,
                source_macs: Vec::new(),
            },
            mtu: None,
            mac: None,
            alias: String::new(),
            group: GROUP,
            target: None,
        };
        let started = Instant::now();
        net.add_link(&link).await?;
        loop {
            if let Event::Added(l) = next(stream).await?
                && l.name == name
            {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    Ok(())
}

/// The next event, within 5 s.
async fn next(stream: &mut tonic::Streaming<pb::WatchInterfacesResponse>) -> anyhow::Result<Event> {
    let msg = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .context("no watch event within 5 s")??;
    match msg.and_then(|m| m.event) {
        Some(e) => Ok(e),
        None => bail!("the watch stream ended"),
    }
}
