//! The request connection and its supervision: a netlink socket whose
//! task dies (the kernel closed it, a panic) is re-created, and callers get
//! the new handle; every socket is strict (the kernel checks the headers of
//! dump requests).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rtnetlink::{MulticastGroup, packet_route::RouteNetlinkMessage};
use tokio::sync::oneshot;

use crate::net::{NetError, netns};

pub(super) type Connection = rtnetlink::proto::Connection<RouteNetlinkMessage>;

pub(super) type Unsolicited = futures::channel::mpsc::UnboundedReceiver<(
    rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

/// The request connection of one [`Rtnl`]: the handle callers clone, and
/// the task that drives the socket.
#[derive(Debug)]
pub(super) struct Supervised {
    handle: std::sync::RwLock<rtnetlink::Handle>,
    pub(super) task: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    pub(super) reconnects: std::sync::atomic::AtomicU64,
}

impl Supervised {
    pub(super) fn new(handle: rtnetlink::Handle) -> Self {
        Self {
            handle: std::sync::RwLock::new(handle),
            task: std::sync::Mutex::default(),
            reconnects: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(super) fn handle(&self) -> rtnetlink::Handle {
        self.handle
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Drives the request connection until its [`Rtnl`] is dropped. A
/// connection that ends, panics or is aborted is logged with why and
/// re-created (backing off while the kernel refuses a socket), so one bad
/// moment does not leave every later call failing while health says
/// SERVING. Calls in flight when it dies fail; later ones use the new one.
pub(super) async fn supervise(
    netns: Option<PathBuf>,
    mut conn: Connection,
    slot: Arc<Supervised>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let task = tokio::spawn(conn);
        *slot.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        let abort = task.abort_handle();
        let why = tokio::select! {
            r = task => match r {
                Ok(()) => "it ended".to_owned(),
                Err(e) if e.is_panic() => format!("it panicked: {}", panic_text(e.into_panic())),
                Err(_) => "it was aborted".to_owned(),
            },
            _ = &mut stopped => {
                abort.abort();
                return;
            }
        };
        tracing::error!(netns = ?netns, why, "the netlink connection died; re-creating it");
        let mut backoff = std::time::Duration::from_millis(50);
        conn = loop {
            let ns = netns.clone();
            let rt = tokio::runtime::Handle::current();
            let made = tokio::task::spawn_blocking(move || connect(&rt, ns.as_deref(), &[])).await;
            match made {
                Ok(Ok((c, h, _))) => {
                    *slot.handle.write().unwrap_or_else(|p| p.into_inner()) = h;
                    slot.reconnects
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(netns = ?netns, "netlink connection re-created");
                    break c;
                }
                Ok(Err(e)) => {
                    tracing::error!(netns = ?netns, error = %e, ?backoff, "cannot re-create the netlink connection")
                }
                Err(e) => {
                    tracing::error!(netns = ?netns, error = %e, "cannot re-create the netlink connection")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = &mut stopped => return,
            }
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        };
    }
}

pub(super) fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Opens a netlink socket inside `netns`, registered with runtime `rt`,
/// joined to multicast `groups` (none for a request socket).
pub(super) fn connect(
    rt: &tokio::runtime::Handle,
    netns: Option<&Path>,
    groups: &[MulticastGroup],
) -> Result<(Connection, rtnetlink::Handle, Unsolicited), NetError> {
    netns::run_in(netns, || {
        let _enter = rt.enter();
        let res = if groups.is_empty() {
            rtnetlink::new_connection().map(|(mut conn, h, rx)| {
                strict(&mut conn);
                (conn, h, rx)
            })
        } else {
            rtnetlink::new_multicast_connection(groups)
        };
        res.map_err(|e| NetError::Io {
            op: "open netlink socket",
            detail: e.to_string(),
        })
    })
}

/// Asks the kernel to honour the filters of dump requests (the interface
/// of an address or route dump), so that one link's addresses cost one
/// link's worth of messages, not the whole namespace's. A kernel before
/// 4.20 refuses the option and dumps everything; the same filters are
/// applied here too, so answers are the same either way.
pub(super) fn strict(conn: &mut Connection) {
    use rtnetlink::sys::AsyncSocket;
    if let Err(e) = conn
        .socket_mut()
        .socket_ref()
        .set_netlink_get_strict_chk(true)
    {
        tracing::debug!(error = %e, "netlink strict checking unavailable; filtering dumps here");
    }
}
