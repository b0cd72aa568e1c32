//! The guest's root file system: busybox, iproute2's `ip` (handy for a look
//! inside), the kernel modules, the static agent and CNI plugin, and an
//! init script. One
//! common archive, plus a small one per host with its certificates; the
//! kernel unpacks concatenated cpio archives one after the other.

use std::{
    fs,
    io::Write,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use super::assets::{Assets, MODULES};
use crate::LabError;

const APPLETS: &[&str] = &[
    "sh", "mount", "insmod", "sleep", "cat", "hostname", "mkdir", "ls", "echo", "ps", "kill",
    "stty", "ping", "printf", "nc",
];

/// PID 1 of every guest. Parameters come from the kernel command line:
/// `lh.name=no1 lh.nic=ens192`.
const INIT: &str = r#"#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs run /run; mount -t tmpfs tmp /tmp
for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "insmod $m failed"; done
for kv in $(cat /proc/cmdline); do
  case $kv in lh.name=*) NAME=${kv#lh.name=};; lh.nic=*) NIC=${kv#lh.nic=};; esac
done
hostname "$NAME"
i=0; while [ ! -e /sys/class/net/eth1 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
# The data NIC (52:54:00:10:..) gets the host's NIC name, the management NIC
# (52:54:00:20:..) is mgmt0 on QEMU's private user network.
for d in /sys/class/net/eth*; do
  case $(cat $d/address) in
    52:54:00:10:*) /bin/ip link set ${d##*/} name "$NIC" ;;
    52:54:00:20:*) /bin/ip link set ${d##*/} name mgmt0 ;;
  esac
done
/bin/ip link set lo up; /bin/ip link set "$NIC" up; /bin/ip link set mgmt0 up
/bin/ip addr add 10.0.2.15/24 dev mgmt0
mkdir -p /run/netns /run/linkherd
# The lab's shell: commands written to the guest's virtio console (a unix
# socket in the lab's directory on the host) run here, for the tests to
# drive what runs inside a host, such as the CNI plugin. Through a pipe, so
# that sh is not interactive (no prompt); raw, without echo, set on the
# descriptor that stays open (the console resets its modes on last close).
i=0; while [ ! -e /dev/hvc0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
( while true; do
    sh -c 'stty raw -echo; exec cat' </dev/hvc0 | sh >/dev/hvc0 2>&1; sleep 1
  done ) &
echo "LINKHERD-GUEST-UP $NAME $NIC"
/bin/linkherd-agent --listen 0.0.0.0:7443 --tls-cert /etc/linkherd/agent.pem \
  --tls-key /etc/linkherd/agent-key.pem --client-ca /etc/linkherd/ca.pem \
  --socket /run/linkherd/agent.sock --state-dir /run/linkherd --name "$NAME" &
while true; do sleep 3600; done
"#;

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |e| LabError::Io(p.to_owned(), e)
}

fn copy(from: &Path, to: &Path) -> Result<(), LabError> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    fs::copy(from, to).map_err(io(from))?;
    Ok(())
}

/// Shared libraries `ip` needs, from `ldd`.
fn libraries(bin: &Path) -> Result<Vec<PathBuf>, LabError> {
    let out = Command::new("ldd").arg(bin).output().map_err(io(bin))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

/// `find . | busybox cpio -o -H newc` in `root`.
fn cpio(busybox: &Path, root: &Path, out: &Path) -> Result<(), LabError> {
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::from(".")];
    while let Some(rel) = stack.pop() {
        files.push(rel.clone());
        let abs = root.join(&rel);
        let meta = fs::symlink_metadata(&abs).map_err(io(&abs))?;
        if meta.is_dir() {
            for e in fs::read_dir(&abs).map_err(io(&abs))?.flatten() {
                stack.push(rel.join(e.file_name()));
            }
        }
    }
    let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    let outf = fs::File::create(out).map_err(io(out))?;
    let mut child = Command::new(busybox)
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(outf)
        .stderr(Stdio::null())
        .spawn()
        .map_err(io(busybox))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(list.as_bytes()).map_err(io(out))?;
    }
    let status = child.wait().map_err(io(busybox))?;
    if !status.success() {
        return Err(LabError::Assets(format!(
            "busybox cpio failed for {}",
            root.display()
        )));
    }
    Ok(())
}

/// The static binaries a guest runs.
pub struct GuestBins<'a> {
    pub agent: &'a Path,
    pub cni: &'a Path,
}

/// Builds the common archive in `work` and returns its path.
pub fn common(assets: &Assets, bins: &GuestBins<'_>, work: &Path) -> Result<PathBuf, LabError> {
    let root = work.join("root");
    let _ = fs::remove_dir_all(&root);
    for d in [
        "bin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "mods",
        "etc/linkherd",
    ] {
        fs::create_dir_all(root.join(d)).map_err(io(&root))?;
    }
    copy(&assets.busybox, &root.join("bin/busybox"))?;
    for a in APPLETS {
        symlink("busybox", root.join("bin").join(a)).map_err(io(&root))?;
    }
    let ip = Path::new("/usr/sbin/ip");
    copy(ip, &root.join("bin/ip"))?;
    for lib in libraries(ip)? {
        let rel = lib.strip_prefix("/").unwrap_or(&lib);
        copy(&lib, &root.join(rel))?;
    }
    copy(bins.agent, &root.join("bin/linkherd-agent"))?;
    copy(bins.cni, &root.join("bin/linkherd-cni"))?;
    let mut order = String::new();
    for m in MODULES {
        let name = Path::new(m)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(m);
        copy(
            &assets.modules.join(format!("{m}.ko")),
            &root.join("mods").join(format!("{name}.ko")),
        )?;
        order.push_str(name);
        order.push(' ');
    }
    fs::write(root.join("mods/order"), order).map_err(io(&root))?;
    let init = root.join("init");
    fs::write(&init, INIT).map_err(io(&init))?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).map_err(io(&init))?;
    let out = work.join("common.cpio");
    cpio(&assets.busybox, &root, &out)?;
    let _ = fs::remove_dir_all(&root);
    Ok(out)
}

/// Common archive + this host's files (`(path in guest, source)`), as one
/// initrd.
pub fn host(
    busybox: &Path,
    common: &Path,
    files: &[(&str, PathBuf)],
    work: &Path,
    out: &Path,
) -> Result<(), LabError> {
    let root = work.join("root-host");
    let _ = fs::remove_dir_all(&root);
    for (dest, src) in files {
        copy(src, &root.join(dest.trim_start_matches('/')))?;
    }
    let part = work.join("host.cpio");
    cpio(busybox, &root, &part)?;
    let mut initrd = fs::read(common).map_err(io(common))?;
    initrd.extend(fs::read(&part).map_err(io(&part))?);
    fs::write(out, initrd).map_err(io(out))?;
    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_file(&part);
    Ok(())
}
