//! Reading one link back, naming links in errors, and the temporary names
//! a link is created under before it is renamed into its namespace.

use futures::TryStreamExt;
use linkherd_proto::model::{IfName, Interface};

use super::parse;
use crate::net::NetError;

/// A name no one else uses, for a link on its way to another namespace.
pub(super) fn temporary_name() -> Result<IfName, NetError> {
    let mut bytes = [0u8; 4];
    temp_entropy(&mut bytes);
    let name = format!("lhtmp{:08x}", u32::from_ne_bytes(bytes));
    IfName::parse("name", &name).map_err(|e| NetError::Io {
        op: "add link",
        detail: e.to_string(),
    })
}

/// Randomness for temporary names: the clock and the pid are enough to avoid
/// collisions between concurrent requests, which also hold the host lock.
pub(super) fn temp_entropy(out: &mut [u8; 4]) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = nanos
        ^ std::process::id().rotate_left(16)
        ^ TEMP_SEQ.fetch_add(0x9e37_79b9, std::sync::atomic::Ordering::Relaxed);
    *out = mix.to_ne_bytes();
}

pub(super) static TEMP_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub(super) fn iface_what(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("interface {name:?}")
}

pub(super) fn index_what(index: u32) -> impl FnOnce() -> String {
    move || format!("interface index {index}")
}

/// Fetches one link and its addresses, resolving the names of its parent
/// and master.
pub(super) async fn one_link(
    h: rtnetlink::Handle,
    req: rtnetlink::LinkGetRequest,
    what: impl FnOnce() -> String,
) -> Result<Interface, NetError> {
    let msg = req
        .execute()
        .try_next()
        .await
        .map_err(|e| parse::error("get link", what, e))?
        .ok_or_else(|| NetError::Io {
            op: "get link",
            detail: "kernel returned no link".into(),
        })?;
    let parsed = parse::link(&msg);
    let mut iface = parsed.iface;
    let index = iface.index;
    let mut addrs = h.address().get().set_link_index_filter(index);
    // Filtered by the kernel too, on a strict socket (see `strict`).
    addrs.message_mut().header.index = index;
    iface.addresses = addrs
        .execute()
        .map_ok(|a| parse::address(&a))
        .try_filter_map(|a| async move { Ok(a.map(|(_, net)| net)) })
        .try_collect()
        .await
        .map_err(|e| parse::error("get addresses", index_what(index), e))?;
    if iface.parent_index != 0 && !parsed.parent_elsewhere {
        iface.parent = name_of(&h, iface.parent_index).await;
    }
    if parsed.master_index != 0 {
        iface.master = name_of(&h, parsed.master_index).await;
    }
    Ok(iface)
}

pub(super) async fn name_of(h: &rtnetlink::Handle, index: u32) -> Option<String> {
    let msg = h
        .link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await
        .ok()??;
    Some(parse::link(&msg).iface.name)
}
