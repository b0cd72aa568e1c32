//! Entering network namespaces.
//!
//! A netlink socket belongs to the namespace of the thread that created it,
//! for its whole life. So to work on another namespace we enter it on one
//! thread just long enough to create the sockets, then go back. The guard
//! makes "go back" impossible to forget, including on early return.
//!
//! A namespace file comes from a caller (a path, a process id), so it is
//! opened with care ([`open`]): never blocking (a FIFO would hang the
//! thread, and whatever lock its caller holds, for ever), never opening a
//! device, and checked to be a network namespace before anything enters it.

use std::{
    fs::File,
    os::{
        fd::{AsFd, AsRawFd},
        unix::fs::{MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

use nix::sched::{CloneFlags, setns};
use serde::{Deserialize, Serialize};

use super::NetError;

/// Where named namespaces live (`ip netns add NAME`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The `op` of the one error every unusable namespace file gets (see
/// [`is_not_netns`]).
pub const OPEN_OP: &str = "open network namespace";

/// What is said of a file that is not a network namespace the agent can
/// use — the same words whether it is missing, unreadable, a FIFO or
/// `/etc/shadow`, so that the answer tells nothing about the host's files.
pub const NOT_A_NETNS: &str = "is not a network namespace the agent can use";

/// `ioctl(NS_GET_NSTYPE)`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: u64 = 0xb703;
/// `statfs.f_type` of the nsfs file system namespace files live on.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// The path of a named namespace.
pub fn named(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// A namespace's identity: the nsfs device and inode. The same namespace
/// has the same identity whether reached as /run/netns/NAME or
/// /proc/PID/ns/net, and a new namespace never has a live one's, so a
/// reused pid is never mistaken for the process that had it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

impl std::fmt::Display for NsId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "net:[{}] (dev {})", self.ino, self.dev)
    }
}

/// An open network namespace file, checked to be one.
#[derive(Debug)]
pub struct NsFile {
    file: File,
    id: NsId,
}

impl NsFile {
    pub fn id(&self) -> NsId {
        self.id
    }
}

/// Whether `e` is the error [`open`] gives a file that is not a usable
/// network namespace (anything but a missing one).
pub fn is_not_netns(e: &NetError) -> bool {
    matches!(e, NetError::Invalid { op, .. } if *op == OPEN_OP)
}

/// The one answer a caller gets for a namespace file the agent cannot use
/// — missing, unreadable, or not a network namespace — naming the file.
pub fn not_a_netns(file: &Path) -> linkherd_proto::model::ValidationError {
    linkherd_proto::model::ValidationError::new(
        "netns",
        file.display().to_string(),
        NOT_A_NETNS,
        "give a network namespace: a name, a process id, or a file such as /run/netns/NAME \
         or /proc/PID/ns/net",
    )
}

/// Opens the network namespace at `path`, which a caller gave.
///
/// `stat` first, so a device, FIFO, socket or directory is refused without
/// being opened; then `open(O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_NOCTTY)`, which
/// cannot block even if the path was swapped for a FIFO in between; then
/// the open file itself must be a regular nsfs inode whose `NS_GET_NSTYPE`
/// is `CLONE_NEWNET`. Errors: `NotFound` when nothing is at `path` (the
/// [`super::NetOps::netns`] contract), otherwise `Invalid` with
/// [`OPEN_OP`] and the same words for every reason ([`NOT_A_NETNS`]).
pub fn open(path: &Path) -> Result<NsFile, NetError> {
    let refuse = || NetError::Invalid {
        op: OPEN_OP,
        detail: format!("{} {NOT_A_NETNS}", path.display()),
    };
    let missing = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let meta = std::fs::metadata(path).map_err(|e| {
        if missing(&e) {
            NetError::NotFound {
                what: format!("network namespace {}", path.display()),
            }
        } else {
            refuse()
        }
    })?;
    if !meta.file_type().is_file() {
        return Err(refuse());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|_| refuse())?;
    let meta = file.metadata().map_err(|_| refuse())?;
    if !meta.file_type().is_file() || !on_nsfs(&file) || ns_type(&file) != Some(libc::CLONE_NEWNET)
    {
        return Err(refuse());
    }
    Ok(NsFile {
        id: NsId {
            dev: meta.dev(),
            ino: meta.ino(),
        },
        file,
    })
}

/// The identity of the namespace at `path`, checked as [`open`] does.
pub fn identity(path: &Path) -> Result<NsId, NetError> {
    open(path).map(|f| f.id)
}

/// The identity of the calling thread's own network namespace.
pub fn current() -> Result<NsId, NetError> {
    identity(Path::new("/proc/thread-self/ns/net"))
}

// `f_type`'s integer type differs between targets (i64 here, u32 on some).
#[allow(clippy::useless_conversion)]
fn on_nsfs(file: &File) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: the fd is open for the call's duration and `st` is a
    // statfs-sized buffer the kernel fills.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) };
    // SAFETY: fstatfs succeeded, so it wrote the whole struct.
    rc == 0 && i64::from(unsafe { st.assume_init() }.f_type) == NSFS_MAGIC
}

fn ns_type(file: &File) -> Option<i32> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns a value.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    (rc >= 0).then_some(rc)
}

/// While alive, the current thread is in another network namespace; dropping
/// it returns the thread to the namespace it came from.
#[derive(Debug)]
pub struct NetnsGuard {
    original: File,
}

impl NetnsGuard {
    /// Moves the current thread into the namespace at `path`, opened with
    /// [`open`]'s checks.
    pub fn enter(path: &Path) -> Result<Self, NetError> {
        Self::enter_file(&open(path)?)
    }

    /// Moves the current thread into a namespace opened already.
    pub fn enter_file(target: &NsFile) -> Result<Self, NetError> {
        let original = File::open("/proc/thread-self/ns/net").map_err(|e| NetError::Io {
            op: "enter network namespace",
            detail: format!("open /proc/thread-self/ns/net: {e}"),
        })?;
        setns(target.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| match e {
            nix::errno::Errno::EPERM => NetError::PermissionDenied {
                op: "enter network namespace",
            },
            e => NetError::Io {
                op: "enter network namespace",
                detail: format!("setns {}: {e}", target.id),
            },
        })?;
        Ok(Self { original })
    }
}

/// Enters the namespace at `path`, if one is given, after checking that it
/// is still the namespace `want` identified when the request was checked
/// (a process that exited and whose pid went to another is refused).
pub fn enter_expected(
    path: Option<&Path>,
    want: Option<NsId>,
) -> Result<Option<NetnsGuard>, NetError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let file = open(path)?;
    if want.is_some_and(|w| w != file.id) {
        return Err(NetError::Invalid {
            op: OPEN_OP,
            detail: format!("{} {NOT_A_NETNS}", path.display()),
        });
    }
    NetnsGuard::enter_file(&file).map(Some)
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
    let target = open(path)?;
    setns(target.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetError::Io {
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

type Job = Box<dyn FnOnce() + Send>;

/// A thread that stays inside one namespace and runs what it is given
/// there: work that must be done from inside (a sysctl under /proc/sys/net
/// is the opener's namespace's) without a new thread and two setns calls
/// each time. It ends when dropped; while it lives it keeps the namespace,
/// like a socket would.
#[derive(Debug)]
pub struct NsWorker {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl NsWorker {
    /// Starts the thread, entered into `path` (checked by [`open`]).
    pub fn start(path: &Path) -> Result<Self, NetError> {
        let file = open(path)?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let (ready, entered) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("lh-netns".into())
            .spawn(move || {
                // Held while the thread lives: it stays inside.
                let _inside = match NetnsGuard::enter_file(&file) {
                    Ok(g) => g,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                while let Ok(job) = queue.recv() {
                    job();
                }
            })
            .map_err(|e| NetError::Io {
                op: "enter network namespace",
                detail: format!("start a thread: {e}"),
            })?;
        entered.recv().map_err(|_| NetError::Io {
            op: "enter network namespace",
            detail: "worker thread ended".into(),
        })??;
        Ok(Self { jobs })
    }

    /// Runs `f` on the worker, inside its namespace.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, NetError> + Send + 'static,
    ) -> Result<T, NetError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let gone = || NetError::Io {
            op: "enter network namespace",
            detail: "namespace worker thread ended".into(),
        };
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn refused(path: &Path) -> String {
        match open(path) {
            Err(e) if is_not_netns(&e) => e.to_string(),
            other => panic!(
                "{}: expected the not-a-namespace error, got {other:?}",
                path.display()
            ),
        }
    }

    #[test]
    fn a_fifo_is_refused_at_once_without_being_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let started = Instant::now();
        let msg = refused(&fifo);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            msg,
            format!(
                "open network namespace: rejected by the kernel: {} {NOT_A_NETNS}",
                fifo.display()
            )
        );
    }

    #[test]
    fn files_devices_and_directories_are_not_namespaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").expect("write");
        for p in [
            plain.as_path(),
            Path::new("/dev/null"),
            dir.path(),
            Path::new("/proc/self/ns/mnt"),
        ] {
            refused(p);
        }
        assert!(matches!(
            open(&dir.path().join("missing")),
            Err(NetError::NotFound { .. })
        ));
    }

    #[test]
    fn the_own_namespace_opens_with_its_inode() {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata("/proc/self/ns/net").expect("stat");
        let id = identity(Path::new("/proc/self/ns/net")).expect("own namespace");
        assert_eq!(
            id,
            NsId {
                dev: meta.dev(),
                ino: meta.ino()
            }
        );
        assert_eq!(current().expect("current"), id);
    }
}
