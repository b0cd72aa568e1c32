//! Named network namespaces (`/run/netns/NAME`) and per-namespace sysctls:
//! file-system work that `ip netns` does, done here without shelling out.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use nix::{
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, unshare},
};

use crate::net::{NetError, netns::NETNS_RUN_DIR};

fn io(op: &'static str) -> impl Fn(String) -> NetError {
    move |detail| NetError::Io { op, detail }
}

/// Makes /run/netns a shared mount point, as iproute2 does, so namespaces
/// mounted here are visible in every mount namespace that shares it.
fn prepare_run_dir() -> Result<(), NetError> {
    let err = io("prepare /run/netns");
    fs::create_dir_all(NETNS_RUN_DIR).map_err(|e| err(e.to_string()))?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then share it.
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| err(e.to_string()))?;
            shared().map_err(|e| err(e.to_string()))
        }
        Err(nix::errno::Errno::EPERM) => Err(NetError::PermissionDenied {
            op: "prepare /run/netns",
        }),
        Err(e) => Err(err(e.to_string())),
    }
}

/// `ip netns add NAME`.
pub(super) fn create_named(name: &str) -> Result<(), NetError> {
    prepare_run_dir()?;
    let path = PathBuf::from(NETNS_RUN_DIR).join(name);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => NetError::AlreadyExists {
                what: format!("network namespace {name:?}"),
            },
            _ => NetError::Io {
                op: "create network namespace",
                detail: format!("{}: {e}", path.display()),
            },
        })?;
    // A fresh thread gets the new namespace, so the caller's stays as is.
    let res = std::thread::scope(|s| {
        s.spawn(|| -> Result<(), NetError> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| match e {
                nix::errno::Errno::EPERM => NetError::PermissionDenied {
                    op: "create network namespace",
                },
                e => NetError::Io {
                    op: "create network namespace",
                    detail: e.to_string(),
                },
            })?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &path,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| NetError::Io {
                op: "create network namespace",
                detail: format!("bind {}: {e}", path.display()),
            })
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::Io {
                op: "create network namespace",
                detail: "thread panicked".into(),
            })
        })
    });
    if res.is_err() {
        let _ = fs::remove_file(&path);
    }
    res
}

/// `ip netns del NAME`.
pub(super) fn delete_named(name: &str) -> Result<(), NetError> {
    let path = PathBuf::from(NETNS_RUN_DIR).join(name);
    if !path.exists() {
        return Err(NetError::NotFound {
            what: format!("network namespace {name:?}"),
        });
    }
    // Not mounted (a stale file) is fine: remove the file anyway.
    let _ = umount2(&path, MntFlags::MNT_DETACH);
    fs::remove_file(&path).map_err(|e| NetError::Io {
        op: "delete network namespace",
        detail: format!("{}: {e}", path.display()),
    })
}

pub(super) fn names() -> Result<Vec<String>, NetError> {
    let dir = match fs::read_dir(NETNS_RUN_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list network namespaces")(e.to_string())),
    };
    let mut out: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    Ok(out)
}

/// Whether `/run/netns/NAME` is there (what [`names`] would list).
pub(super) fn exists(name: &str) -> Result<bool, NetError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Ok(false);
    }
    match fs::symlink_metadata(Path::new(NETNS_RUN_DIR).join(name)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("look up a network namespace")(e.to_string())),
    }
}

fn write_sysctl(path: &Path, value: &str) -> Result<(), NetError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NetError::NotFound {
                what: format!("sysctl {}", path.display()),
            },
            _ => NetError::Io {
                op: "write sysctl",
                detail: format!("{}: {e}", path.display()),
            },
        })?;
    f.write_all(value.as_bytes()).map_err(|e| NetError::Io {
        op: "write sysctl",
        detail: format!("{}: {e}", path.display()),
    })
}

/// Gratuitous ARP and unsolicited neighbour advertisements on link up.
/// Runs on a thread inside the link's namespace: /proc/sys/net shows the
/// namespace of the thread that opens it.
pub(super) fn enable_announce(ifname: &str) -> Result<(), NetError> {
    write_sysctl(
        &PathBuf::from(format!("/proc/sys/net/ipv4/conf/{ifname}/arp_notify")),
        "1",
    )?;
    // IPv6 may be disabled on this kernel; that is not an error for IPv4.
    let v6 = PathBuf::from(format!("/proc/sys/net/ipv6/conf/{ifname}/ndisc_notify"));
    if v6.exists() {
        write_sysctl(&v6, "1")?;
    }
    Ok(())
}
