//! Kernel multicast messages as the agent's events.

use rtnetlink::{
    packet_core::NetlinkPayload,
    packet_route::{RouteNetlinkMessage, link::LinkAttribute},
};

use crate::net::NetEvent;

pub(super) fn to_event(
    msg: rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
) -> Option<NetEvent> {
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => Some(NetEvent::Link {
            index: l.header.index,
        }),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
            let name = l
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            Some(NetEvent::LinkRemoved {
                index: l.header.index,
                name,
            })
        }
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a),
        ) => Some(NetEvent::Address {
            index: a.header.index,
        }),
        NetlinkPayload::Overrun(_) => Some(NetEvent::Overrun),
        _ => None,
    }
}
