//! What a netns lab gives container runtimes: a podman `containers.conf`
//! that works on this kind of machine (runc, since crun fails on hybrid
//! cgroups; nofile and nproc limits it may set; the CNI backend with the
//! lab's plugin directory holding `linkherd-cni`), and for every network
//! of a spec open to containers, one CNI network configuration per host,
//! in `DIR/cni/HOST/` (podman `--network-config-dir DIR/cni/HOST`), each
//! pointing the plugin at that host's agent.

use std::{fs, path::PathBuf};

use linkherdctl::spec::FleetSpec;

use crate::{LabError, LabState, bins};

impl LabState {
    /// `DIR/podman/containers.conf`.
    pub fn containers_conf(&self) -> PathBuf {
        self.dir.join("podman/containers.conf")
    }

    /// `DIR/cni/HOST`: `host`'s CNI network configurations.
    pub fn cni_dir(&self, host: &str) -> PathBuf {
        self.dir.join("cni").join(host)
    }
}

fn write(path: PathBuf, text: &str) -> Result<(), LabError> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(|e| LabError::Io(d.to_owned(), e))?;
    }
    fs::write(&path, text).map_err(|e| LabError::Io(path, e))
}

/// The plugin directory and `containers.conf` (at `up`).
pub fn write_runtime(state: &LabState) -> Result<(), LabError> {
    let plugins = state.dir.join("podman/plugins");
    fs::create_dir_all(&plugins).map_err(|e| LabError::Io(plugins.clone(), e))?;
    match bins::cni() {
        Ok(plugin) => {
            fs::copy(&plugin, plugins.join("linkherd-cni"))
                .map_err(|e| LabError::Io(plugin.clone(), e))?;
        }
        // The lab works without it; only its containers need it.
        Err(e) => eprintln!("warning: {e}; containers on this lab need linkherd-cni"),
    }
    let tmp = state.dir.join("podman/tmp");
    fs::create_dir_all(&tmp).map_err(|e| LabError::Io(tmp.clone(), e))?;
    let conf = format!(
        "# podman on this lab: `CONTAINERS_CONF={} podman --network-config-dir {} run --network NET ...`\n\
         [containers]\n\
         default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
         [engine]\n\
         runtime = \"runc\"\n\
         cgroup_manager = \"cgroupfs\"\n\
         events_logger = \"file\"\n\
         tmp_dir = \"{}\"\n\
         [network]\n\
         network_backend = \"cni\"\n\
         cni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\n",
        state.containers_conf().display(),
        state.cni_dir("HOST").display(),
        tmp.display(),
        plugins.display()
    );
    write(state.containers_conf(), &conf)
}

/// One network list per network of `spec` open to containers, for each
/// host offering it; the files written.
pub fn write_networks(state: &LabState, spec: &FleetSpec) -> Result<Vec<PathBuf>, LabError> {
    let mut out = Vec::new();
    for (name, net) in &spec.networks {
        let Some(c) = &net.containers else { continue };
        for host in &c.hosts {
            let Some(h) = state.host(host) else { continue };
            let list = serde_json::json!({
                "cniVersion": "1.0.0",
                "name": name.as_str(),
                "plugins": [{
                    "type": "linkherd-cni",
                    "agent_socket": h.socket,
                    "capabilities": {"ips": true, "mac": true},
                }],
            });
            let path = state.cni_dir(host).join(format!("{name}.conflist"));
            write(path.clone(), &format!("{list:#}\n"))?;
            out.push(path);
        }
    }
    Ok(out)
}

/// How to use them, for `status`.
pub fn usage(state: &LabState) -> String {
    let host = state.hosts.first().map_or("no1", |h| h.name.as_str());
    format!(
        "containers: CONTAINERS_CONF={} podman --network-config-dir {} run --network NET ...\n\
         \x20           (`linkherd-lab spec` writes a network list there for each network with containers)",
        state.containers_conf().display(),
        state.cni_dir(host).display()
    )
}
