//! What the vm backend boots: QEMU, a Debian cloud kernel (it has 8021q)
//! with the modules the guest needs, busybox, and a static agent. Fetched
//! through the Debian registry with the ordinary tools, once, into a cache.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::LabError;

/// Modules the guest loads, in insmod order: virtio NIC, then 802.1Q and
/// macvlan (+ veth for tests inside a guest).
pub const MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci",
    "net/core/failover",
    "drivers/net/net_failover",
    "drivers/net/virtio_net",
    "net/llc/llc",
    "net/802/stp",
    "net/802/garp",
    "net/802/mrp",
    "net/8021q/8021q",
    "drivers/net/macvlan",
    "drivers/net/veth",
    "drivers/char/virtio_console",
];

/// Paths of the fetched and extracted assets.
#[derive(Debug, Clone)]
pub struct Assets {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    /// `lib/modules/<version>/kernel` of the extracted package.
    pub modules: PathBuf,
    pub busybox: PathBuf,
}

fn sh(cmd: &mut Command) -> Result<String, LabError> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| LabError::Assets(format!("{shown}: {e}")))?;
    if !out.status.success() {
        return Err(LabError::Assets(format!(
            "{shown} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The default cache: `$LINKHERD_LAB_CACHE`, else `/var/cache/linkherd-lab`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("LINKHERD_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/linkherd-lab"))
}

fn ensure_qemu() -> Result<PathBuf, LabError> {
    let find = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("qemu-system-x86_64"))
                .find(|p| p.is_file())
        })
    };
    if let Some(q) = find() {
        return Ok(q);
    }
    sh(Command::new("apt-get").args(["update", "-qq"]))?;
    sh(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "qemu-system-x86",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    find().ok_or_else(|| {
        LabError::Assets("qemu-system-x86_64 not found after installing qemu-system-x86".into())
    })
}

/// The versioned kernel package behind `linkherd-image-cloud-amd64`.
fn kernel_package() -> Result<String, LabError> {
    let deps = sh(Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
    let found = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| {
            p.starts_with("linux-image-") && p.chars().nth(12).is_some_and(|c| c.is_ascii_digit())
        })
        .map(str::to_owned);
    match found {
        Some(p) => Ok(p),
        None => {
            // An empty package list: fetch it once and ask again.
            sh(Command::new("apt-get").args(["update", "-qq"]))?;
            let deps = sh(Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
            deps.lines()
                .filter_map(|l| l.trim().strip_prefix("Depends: "))
                .find(|p| {
                    p.starts_with("linux-image-")
                        && p.chars().nth(12).is_some_and(|c| c.is_ascii_digit())
                })
                .map(str::to_owned)
                .ok_or_else(|| {
                    LabError::Assets("no linux-image-*-cloud-amd64 package found".into())
                })
        }
    }
}

fn download(pkg: &str, dir: &Path) -> Result<PathBuf, LabError> {
    let find = || {
        fs::read_dir(dir).ok().and_then(|d| {
            d.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            })
        })
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    sh(Command::new("apt-get")
        .args(["download", "-qq", pkg])
        .current_dir(dir))?;
    find().ok_or_else(|| {
        LabError::Assets(format!(
            "apt-get download {pkg} left no .deb in {}",
            dir.display()
        ))
    })
}

/// Fetches (once) and returns every asset.
pub fn ensure(cache: &Path) -> Result<Assets, LabError> {
    let qemu = ensure_qemu()?;
    fs::create_dir_all(cache).map_err(|e| LabError::Io(cache.to_owned(), e))?;
    let pkg = kernel_package()?;
    let kdir = cache.join(&pkg);
    // The stamp names the modules extracted: a longer list extracts again.
    let stamp = kdir.join(".extracted");
    let wanted = MODULES.join("\n");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let deb = download(&pkg, cache)?;
        fs::create_dir_all(&kdir).map_err(|e| LabError::Io(kdir.clone(), e))?;
        let mut patterns = vec!["./boot/vmlinuz-*".to_owned()];
        patterns.extend(
            MODULES
                .iter()
                .map(|m| format!("./lib/modules/*/kernel/{m}.ko")),
        );
        let tar = format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --wildcards {}",
            deb.display(),
            kdir.display(),
            patterns
                .iter()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        sh(Command::new("sh").args(["-c", &tar]))?;
        fs::write(&stamp, &wanted).map_err(|e| LabError::Io(stamp.clone(), e))?;
    }
    let kernel = fs::read_dir(kdir.join("boot"))
        .map_err(|e| LabError::Io(kdir.join("boot"), e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or_else(|| LabError::Assets(format!("no vmlinuz in {}", kdir.display())))?;
    let modules = fs::read_dir(kdir.join("lib/modules"))
        .map_err(|e| LabError::Io(kdir.join("lib/modules"), e))?
        .flatten()
        .map(|e| e.path().join("kernel"))
        .next()
        .ok_or_else(|| LabError::Assets("no modules extracted".into()))?;
    let bb_dir = cache.join("busybox");
    let busybox = bb_dir.join("bin/busybox");
    if !busybox.exists() {
        let deb = download("busybox-static", cache)?;
        sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&bb_dir))?;
    }
    Ok(Assets {
        qemu,
        kernel,
        modules,
        busybox,
    })
}
