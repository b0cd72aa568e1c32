//! Creating and deleting links, addresses and routes over netlink.

use std::{fs::File, net::IpAddr, os::fd::AsRawFd};

use futures::TryStreamExt;
use linkherd_proto::model::{MacvlanMode, VlanProtocol};
use rtnetlink::{
    LinkMacVlan, LinkUnspec, LinkVlan, RouteMessageBuilder,
    packet_route::{
        link::{InfoMacVlan, MacVlanMacAddressMode, MacVlanMode},
        route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType},
    },
};

use super::parse;
use crate::net::{LinkSetup, NetError, NewLink, NewLinkKind, Route};

const RT_TABLE_MAIN: u8 = 254;

fn mode(m: MacvlanMode) -> MacVlanMode {
    match m {
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
        MacvlanMode::Source => MacVlanMode::Source,
    }
}

pub(super) async fn add_link(h: &rtnetlink::Handle, link: &NewLink) -> Result<(), NetError> {
    // The namespace fd must stay open until the kernel has the request.
    let target = match &link.target {
        Some(path) => Some(File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NetError::NotFound {
                what: format!("network namespace {}", path.display()),
            },
            _ => NetError::Io {
                op: "open network namespace",
                detail: format!("{}: {e}", path.display()),
            },
        })?),
        None => None,
    };
    let name = link.name.as_str();
    let (op, mut msg) = match &link.kind {
        NewLinkKind::Vlan {
            parent_index,
            id,
            protocol,
        } => {
            let proto = match protocol {
                VlanProtocol::Ieee8021Q => rtnetlink::packet_route::link::VlanProtocol::Ieee8021Q,
                VlanProtocol::Ieee8021Ad => rtnetlink::packet_route::link::VlanProtocol::Ieee8021Ad,
            };
            (
                "add vlan",
                LinkVlan::new(name, *parent_index, id.get())
                    .protocol(proto)
                    .build(),
            )
        }
        NewLinkKind::Macvlan {
            parent_index,
            mode: m,
            source_macs,
        } => {
            let mut b = LinkMacVlan::new(name, *parent_index, mode(*m));
            if !source_macs.is_empty() {
                b = b
                    .append_info_data(InfoMacVlan::MacAddrMode(MacVlanMacAddressMode::Set))
                    .append_info_data(InfoMacVlan::MacAddrData(
                        source_macs
                            .iter()
                            .map(|m| InfoMacVlan::MacAddr(m.0))
                            .collect(),
                    ));
            }
            ("add macvlan", b.build())
        }
    };
    // Attributes common to both kinds, appended to the built message.
    let mut extra = LinkUnspec::new_with_index(0)
        .alias(link.alias.clone())
        .link_group(link.group);
    if let Some(mtu) = link.mtu {
        extra = extra.mtu(mtu);
    }
    if let Some(mac) = link.mac {
        extra = extra.address(mac.0.to_vec());
    }
    if let Some(fd) = &target {
        extra = extra.setns_by_fd(fd.as_raw_fd());
    }
    msg.attributes.extend(extra.build().attributes);
    let res = h.link().add(msg).execute().await;
    drop(target);
    res.map_err(|e| parse::error(op, || format!("interface {name:?}"), e))
}

pub(super) async fn del_group(h: &rtnetlink::Handle, group: u32) -> Result<(), NetError> {
    // ifindex 0, no name, IFLA_GROUP: the kernel deletes the whole group.
    let msg = LinkUnspec::new_with_index(0).link_group(group).build();
    match h.link().del_with_message(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) => match parse::error("delete link group", || format!("link group {group}"), e) {
            // An empty group is not an error for us.
            NetError::NotFound { .. } => Ok(()),
            e => Err(e),
        },
    }
}

fn route_of(m: &RouteMessage) -> Option<Route> {
    if m.header.table != RT_TABLE_MAIN {
        return None;
    }
    let mut dest = None;
    let mut gateway = None;
    let mut index = 0;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dest = Some(IpAddr::V4(*ip)),
            RouteAttribute::Destination(RouteAddress::Inet6(ip)) => dest = Some(IpAddr::V6(*ip)),
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(IpAddr::V4(*ip)),
            RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => gateway = Some(IpAddr::V6(*ip)),
            RouteAttribute::Oif(i) => index = *i,
            _ => {}
        }
    }
    let v6 = m.header.address_family == rtnetlink::packet_route::AddressFamily::Inet6;
    let dest = dest.unwrap_or(if v6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    });
    Some(Route {
        dest: ipnet::IpNet::new(dest, m.header.destination_prefix_length).ok()?,
        gateway,
        index,
    })
}

/// Sends `setup`'s requests for link `index` back to back on one socket
/// (the kernel takes them in order; each answer is matched by sequence
/// number), then waits for every answer: one wait instead of one each.
pub(super) async fn setup_link(
    h: &rtnetlink::Handle,
    index: u32,
    setup: &LinkSetup,
) -> Result<(), NetError> {
    let what = move || format!("interface index {index}");
    let mut sent: Vec<futures::future::BoxFuture<'static, Result<(), NetError>>> = Vec::new();
    for &a in &setup.addresses {
        let req = h.address().add(index, a.addr(), a.prefix_len()).execute();
        sent.push(Box::pin(async move {
            req.await
                .map_err(|e| parse::error("add address", || format!("address {a}"), e))
        }));
    }
    if setup.up {
        let req = h
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute();
        sent.push(Box::pin(async move {
            req.await.map_err(|e| parse::error("set link up", what, e))
        }));
    }
    for r in setup.routes.clone() {
        let h = h.clone();
        sent.push(Box::pin(async move { add_route(&h, &r).await }));
    }
    futures::future::try_join_all(sent).await?;
    Ok(())
}

/// Main-table routes, of every link or only those out of `via`. On a
/// strict socket the header and `RTA_OIF` are the kernel's filters: any
/// protocol and type, the main table, that link.
pub(super) async fn routes(
    h: &rtnetlink::Handle,
    via: Option<u32>,
) -> Result<Vec<Route>, NetError> {
    let mut out = Vec::new();
    for mut msg in [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ] {
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.kind = RouteType::Unspec;
        msg.attributes.extend(via.map(RouteAttribute::Oif));
        let found: Vec<RouteMessage> = h
            .route()
            .get(msg)
            .execute()
            .try_collect()
            .await
            .map_err(|e| parse::error("list routes", String::new, e))?;
        out.extend(
            found
                .iter()
                .filter_map(route_of)
                .filter(|r| via.is_none_or(|i| r.index == i)),
        );
    }
    Ok(out)
}

pub(super) async fn add_route(h: &rtnetlink::Handle, r: &Route) -> Result<(), NetError> {
    let msg = match (r.dest, r.gateway) {
        (ipnet::IpNet::V4(d), gw) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(d.addr(), d.prefix_len())
                .output_interface(r.index);
            if let Some(IpAddr::V4(g)) = gw {
                b = b.gateway(g);
            }
            b.build()
        }
        (ipnet::IpNet::V6(d), gw) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(d.addr(), d.prefix_len())
                .output_interface(r.index);
            if let Some(IpAddr::V6(g)) = gw {
                b = b.gateway(g);
            }
            b.build()
        }
    };
    h.route()
        .add(msg)
        .execute()
        .await
        .map_err(|e| parse::error("add route", || format!("route to {}", r.dest), e))
}
