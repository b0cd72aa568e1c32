//! A Docker engine per netns lab host, for tests and benchmarks: Debian's
//! dockerd with its own data, exec and pid files under a directory of the
//! caller's, its API on a socket there, no iptables and no bridge, in the
//! host's network namespace — and in a mount namespace of its own where
//! `/run/docker/plugins` is the host's plugin directory, so that each
//! engine finds its own host's agent as driver `linkherd`.
//!
//! The engine's namespace files (`EXEC/netns/*`, Docker's SandboxKeys)
//! are made under a shared mount, so the agent, in the machine's mount
//! namespace, opens them as Docker names them. Dropping the engine stops it
//! by pid (SIGTERM, then SIGKILL), and removes its mounts and files.

use std::{
    fs,
    os::unix::process::{CommandExt, ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use crate::{LabError, LabState, runs, stop};

/// Debian's client, of the engine's version.
const CLIENT: &str = "/usr/bin/docker";
/// How long an engine may take to answer after it starts.
const READY: Duration = Duration::from_secs(60);

impl LabState {
    /// `DIR/HOST/plugins`: where `host`'s agent serves `linkherd.sock`, and
    /// what its Docker engine sees as `/run/docker/plugins`.
    pub fn docker_plugins(&self, host: &str) -> PathBuf {
        self.dir.join(host).join("plugins")
    }
}

/// One running engine; dropped, it is stopped and its files removed.
#[derive(Debug)]
pub struct Dockerd {
    pub dir: PathBuf,
    /// The network namespace it runs in.
    pub host: String,
    pid: u32,
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |e| LabError::Io(p.to_owned(), e)
}

fn sh(cmd: &mut Command) -> Result<(), LabError> {
    let out = cmd.output().map_err(io(Path::new("sh")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::State(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Dockerd {
    /// Starts an engine for lab host `host` with its files in `dir`, and
    /// waits until it answers.
    pub fn start(state: &LabState, host: &str, dir: &Path) -> Result<Self, LabError> {
        let h = state
            .host(host)
            .ok_or_else(|| LabError::State(format!("no host {host} in this lab")))?;
        Self::start_in(&h.netns, &state.docker_plugins(host), dir)
    }

    /// Starts an engine in named namespace `netns`, seeing `plugins` as
    /// `/run/docker/plugins`, with its files in `dir`.
    pub fn start_in(netns: &str, plugins: &Path, dir: &Path) -> Result<Self, LabError> {
        if !Path::new("/usr/sbin/dockerd").exists() {
            return Err(LabError::State(
                "dockerd is missing: scripts/setup.sh installs Debian's docker.io".into(),
            ));
        }
        let exec_netns = dir.join("exec/netns");
        for d in [
            exec_netns.as_path(),
            &dir.join("data"),
            plugins,
            Path::new("/run/docker/plugins"),
        ] {
            fs::create_dir_all(d).map_err(io(d))?;
        }
        // Shared, so the sandboxes Docker mounts here show outside.
        sh(Command::new("mount")
            .arg("--bind")
            .arg(&exec_netns)
            .arg(&exec_netns))?;
        sh(Command::new("mount").arg("--make-shared").arg(&exec_netns))?;
        let log = fs::File::create(dir.join("dockerd.log")).map_err(io(dir))?;
        let err = log.try_clone().map_err(io(dir))?;
        let script = "mount --bind \"$1\" /run/docker/plugins && shift && exec \"$@\"";
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "unchanged",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(plugins)
            .arg("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .arg("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
            ])
            .args(["--ip-masq=false", "--bridge=none"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(io(Path::new("unshare")))?;
        let d = Self {
            dir: dir.to_owned(),
            host: netns.to_owned(),
            pid: child.id(),
        };
        d.wait_ready()?;
        Ok(d)
    }

    fn wait_ready(&self) -> Result<(), LabError> {
        let deadline = Instant::now() + READY;
        while Instant::now() < deadline {
            if self.docker(&["version"]).status.success() {
                return Ok(());
            }
            if !runs(self.pid, "dockerd") && !runs(self.pid, "unshare") {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(LabError::State(format!(
            "dockerd for {} did not answer in {} s; see {}",
            self.host,
            READY.as_secs(),
            self.dir.join("dockerd.log").display()
        )))
    }

    /// `docker ARGS` against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(CLIENT)
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            .args(args)
            .output()
            .unwrap_or_else(|e| Output {
                status: ExitStatus::from_raw(127 << 8),
                stdout: Vec::new(),
                stderr: format!("{CLIENT}: {e}").into_bytes(),
            })
    }

    /// Imports `rootfs_tar` as image `name`.
    pub fn import(&self, rootfs_tar: &Path, name: &str) -> Result<(), LabError> {
        let path = rootfs_tar.to_string_lossy();
        let out = self.docker(&["import", &path, name]);
        if out.status.success() {
            Ok(())
        } else {
            Err(LabError::State(format!(
                "docker import: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        stop(self.pid, "dockerd");
        // Its containerd, had dockerd no time to stop it.
        let pidfile = self.dir.join("exec/containerd/containerd.pid");
        if let Some(pid) = fs::read_to_string(pidfile)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            stop(pid, "containerd");
        }
        let netns = self.dir.join("exec/netns");
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(&netns)
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A busybox root file system as a tar in `dir` (`rootfs.tar`), for an
/// image without a registry: the static busybox and its applets.
pub fn busybox_rootfs(dir: &Path) -> Result<PathBuf, LabError> {
    let root = dir.join("rootfs");
    let bin = root.join("bin");
    fs::create_dir_all(&bin).map_err(io(&bin))?;
    fs::copy("/bin/busybox", bin.join("busybox")).map_err(io(Path::new("/bin/busybox")))?;
    sh(Command::new("chroot")
        .arg(&root)
        .args(["/bin/busybox", "--install", "-s", "/bin"]))?;
    let tar = dir.join("rootfs.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."))?;
    Ok(tar)
}
