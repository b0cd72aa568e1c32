//! The runtime netlink work runs on ("lh-netlink" threads): the kernel does
//! its work inside `sendmsg`, and a link delete blocks the calling thread
//! for ~16 ms (RCU), so this work never runs on the threads that serve
//! gRPC. Blocking file work (namespace files) goes to the blocking pool.

use std::future::Future;

use tokio::runtime::Runtime;

use crate::net::NetError;

/// Netlink worker threads: enough to overlap a slow delete with reads.
pub(super) const NETLINK_THREADS: usize = 2;

/// The dedicated runtime that netlink work runs on.
pub(super) struct NetRuntime {
    rt: Option<Runtime>,
}

impl std::fmt::Debug for NetRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetRuntime")
    }
}

impl NetRuntime {
    pub(super) fn new() -> Result<Self, NetError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(NETLINK_THREADS)
            .thread_name("lh-netlink")
            .enable_all()
            .build()
            .map_err(|e| NetError::Io {
                op: "start netlink runtime",
                detail: e.to_string(),
            })?;
        Ok(Self { rt: Some(rt) })
    }

    pub(super) fn handle(&self) -> Result<&tokio::runtime::Handle, NetError> {
        self.rt.as_ref().map(Runtime::handle).ok_or(NetError::Io {
            op: "netlink",
            detail: "netlink runtime is shut down".into(),
        })
    }

    /// Runs `fut` on the netlink threads and waits for it from the caller's.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, NetError>> + Send + 'static,
    ) -> Result<T, NetError> {
        self.handle()?.spawn(fut).await.map_err(|e| NetError::Io {
            op: "netlink",
            detail: format!("netlink task failed: {e}"),
        })?
    }
}

impl Drop for NetRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Dropping a runtime from async context would panic; the
            // background shutdown is safe anywhere.
            rt.shutdown_background();
        }
    }
}

/// Runs blocking namespace or file-system work on the blocking pool, never on
/// a runtime worker.
pub(super) async fn blocking<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, NetError> + Send + 'static,
) -> Result<T, NetError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NetError::Io {
            op,
            detail: e.to_string(),
        })?
}
