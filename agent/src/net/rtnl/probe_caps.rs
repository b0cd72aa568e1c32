//! What the kernel can do, probed once: a VLAN and a macvlan asked for with
//! messages the kernel rejects for a reason that tells whether it knows the
//! kind (no link is ever made).

use futures::TryStreamExt;
use rtnetlink::{
    LinkMessageBuilder, LinkUnspec,
    packet_route::link::{InfoData, InfoKind, InfoVlan, LinkMessage},
};

pub(super) fn probe_vlan_message() -> LinkMessage {
    // A VLAN without IFLA_LINK: a kernel with 8021q rejects it with EINVAL
    // ("link not specified"), one without with EOPNOTSUPP ("Unknown device
    // type"). Either way nothing is created.
    LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Vlan)
        .name("lh-capprobe".to_owned())
        .set_info_data(InfoData::Vlan(vec![InfoVlan::Id(1)]))
        .build()
}

pub(super) fn probe_macvlan_message() -> LinkMessage {
    LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::MacVlan)
        .name("lh-capprobe".to_owned())
        .build()
}

/// `Some(true)` when the kernel knows the link kind, `Some(false)` when not,
/// `None` when it cannot be told (e.g. no permission).
pub(super) async fn probe_kind(h: &rtnetlink::Handle, msg: LinkMessage) -> Option<bool> {
    match h.link().add(msg).execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == libc::EOPNOTSUPP => Some(false),
        Err(rtnetlink::Error::NetlinkError(e)) if -e.raw_code() == libc::EPERM => None,
        Err(_) => Some(true),
        Ok(()) => {
            // Should be impossible; never leave a stray link behind.
            if let Ok(Some(m)) = h
                .link()
                .get()
                .match_name("lh-capprobe")
                .execute()
                .try_next()
                .await
            {
                let _ = h.link().del(m.header.index).execute().await;
            }
            Some(true)
        }
    }
}
