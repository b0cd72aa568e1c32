//! Entering network namespaces.
//!
//! A netlink socket belongs to the namespace of the thread that created it,
//! for its whole life. So to work on another namespace we enter it on one
//! thread just long enough to create the sockets, then go back. The guard
//! makes "go back" impossible to forget, including on early return.

use std::{
    fs::File,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use nix::sched::{CloneFlags, setns};

use super::NetError;

/// Where named namespaces live (`ip netns add NAME`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The path of a named namespace.
pub fn named(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// While alive, the current thread is in another network namespace; dropping
/// it returns the thread to the namespace it came from.
#[derive(Debug)]
pub struct NetnsGuard {
    original: File,
}

impl NetnsGuard {
    /// Moves the current thread into the namespace at `path`.
    pub fn enter(path: &Path) -> Result<Self, NetError> {
        let io = |detail: String| NetError::Io {
            op: "enter network namespace",
            detail,
        };
        let original = File::open("/proc/thread-self/ns/net")
            .map_err(|e| io(format!("open /proc/thread-self/ns/net: {e}")))?;
        let target = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NetError::NotFound {
                what: format!("network namespace {}", path.display()),
            },
            _ => io(format!("open {}: {e}", path.display())),
        })?;
        setns(target.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| match e {
            nix::errno::Errno::EPERM => NetError::PermissionDenied {
                op: "enter network namespace",
            },
            e => io(format!("setns {}: {e}", path.display())),
        })?;
        Ok(Self { original })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.original.as_fd(), CloneFlags::CLONE_NEWNET) {
            // The thread would keep working in the wrong namespace: that is
            // not recoverable safely.
            tracing::error!(error = %e, "cannot return to the original network namespace");
            std::process::abort();
        }
    }
}

/// Moves the calling thread into the namespace at `path` for good. Called
/// by the agent before it starts any other thread, so that every thread it
/// makes (and every socket) lives there — unlike `ip netns exec`, this does
/// not give the agent a mount namespace of its own, so the namespaces it
/// creates under /run/netns are visible to the whole host.
pub fn enter_for_good(path: &Path) -> Result<(), NetError> {
    let target = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => NetError::NotFound {
            what: format!("network namespace {}", path.display()),
        },
        _ => NetError::Io {
            op: "enter network namespace",
            detail: format!("open {}: {e}", path.display()),
        },
    })?;
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetError::Io {
        op: "enter network namespace",
        detail: format!("setns {}: {e}", path.display()),
    })
}

/// Runs `f` on a fresh thread inside the namespace at `path` (or in the
/// current one when `None`), leaving the caller's thread where it is.
pub fn run_in<T: Send>(
    path: Option<&Path>,
    f: impl FnOnce() -> Result<T, NetError> + Send,
) -> Result<T, NetError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let _guard = path.map(NetnsGuard::enter).transpose()?;
            f()
        })
        .join()
        .map_err(|_| NetError::Io {
            op: "enter network namespace",
            detail: "worker thread panicked".into(),
        })?
    })
}
