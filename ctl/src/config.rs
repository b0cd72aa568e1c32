//! `linkherdctl` configuration: a TOML file with defaults and named hosts,
//! overridden by `LINKHERD_*` variables and flags.
//!
//! ```toml
//! [defaults]
//! ca = "ca.pem"                 # relative paths are relative to this file
//! cert = "client-admin.pem"
//! key = "client-admin-key.pem"
//! output = "table"
//!
//! [[hosts]]
//! name = "no1"
//! agent = "https://198.18.0.11:7443"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{
    client::{Target, TargetError, Targets},
    output::Format,
};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtlConfig {
    #[serde(default)]
    pub defaults: Credentials,
    #[serde(default)]
    pub hosts: Vec<HostEntry>,
}

/// Connection credentials; any may be absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub output: Option<Format>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    pub name: String,
    /// `https://HOST:PORT` or `unix:///path`.
    pub agent: String,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("unknown host {name:?} in {path}; known hosts: {known}")]
    UnknownHost {
        name: String,
        path: PathBuf,
        known: String,
    },
    #[error("--host {0:?} needs --config FILE (or LINKHERD_CTL_CONFIG) naming the hosts")]
    HostWithoutConfig(String),
    #[error(
        "no agent given: use --agent https://HOST:PORT (or unix:///PATH), or --config FILE \
         with --host NAME"
    )]
    NoAgent,
    #[error(transparent)]
    Target(#[from] TargetError),
}

impl CtlConfig {
    /// Reads `path`, making relative credential paths relative to it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let mut cfg: CtlConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(v) = p.as_mut().filter(|v| v.is_relative()) {
                *v = base.join(&*v);
            }
        };
        fix(&mut cfg.defaults.ca);
        fix(&mut cfg.defaults.cert);
        fix(&mut cfg.defaults.key);
        for h in &mut cfg.hosts {
            fix(&mut h.ca);
            fix(&mut h.cert);
            fix(&mut h.key);
        }
        Ok(cfg)
    }
}

/// What the global flags said about where to connect.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub agent: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub host: Option<String>,
}

impl Selection {
    /// Resolves flags + config into a connection target. Flags win over the
    /// host entry, which wins over the config defaults.
    pub fn resolve(&self) -> Result<(Target, Option<Format>), ConfigError> {
        let cfg = self.load()?;
        let host = self.entry(cfg.as_ref())?;
        let agent = self
            .agent
            .clone()
            .or_else(|| host.map(|h| h.agent.clone()))
            .ok_or(ConfigError::NoAgent)?;
        let target = self.target_with(cfg.as_ref(), &agent, host)?;
        Ok((target, cfg.and_then(|c| c.defaults.output)))
    }

    /// The config file named by `--config`, if any.
    pub fn load(&self) -> Result<Option<CtlConfig>, ConfigError> {
        self.config.as_deref().map(CtlConfig::load).transpose()
    }

    /// The host entry `--host` names; with no `--host` and no `--agent`, the
    /// only host of the file (that host is meant).
    fn entry<'a>(&self, cfg: Option<&'a CtlConfig>) -> Result<Option<&'a HostEntry>, ConfigError> {
        match (&self.host, cfg, &self.config) {
            (Some(name), Some(cfg), Some(path)) => cfg
                .hosts
                .iter()
                .find(|h| &h.name == name)
                .map(Some)
                .ok_or_else(|| ConfigError::UnknownHost {
                    name: name.clone(),
                    path: path.clone(),
                    known: cfg
                        .hosts
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            (Some(name), _, _) => Err(ConfigError::HostWithoutConfig(name.clone())),
            (None, Some(cfg), _) if self.agent.is_none() && cfg.hosts.len() == 1 => {
                Ok(cfg.hosts.first())
            }
            _ => Ok(None),
        }
    }

    /// `agent` with each credential from the flags, else the host entry,
    /// else the config defaults.
    fn target_with(
        &self,
        cfg: Option<&CtlConfig>,
        agent: &str,
        host: Option<&HostEntry>,
    ) -> Result<Target, TargetError> {
        let d = cfg.map(|c| &c.defaults);
        let pick = |flag: &Option<PathBuf>, h: Option<&PathBuf>, d: Option<&PathBuf>| {
            flag.clone().or_else(|| h.cloned()).or_else(|| d.cloned())
        };
        Target::parse(
            agent,
            pick(
                &self.ca,
                host.and_then(|h| h.ca.as_ref()),
                d.and_then(|d| d.ca.as_ref()),
            ),
            pick(
                &self.cert,
                host.and_then(|h| h.cert.as_ref()),
                d.and_then(|d| d.cert.as_ref()),
            ),
            pick(
                &self.key,
                host.and_then(|h| h.key.as_ref()),
                d.and_then(|d| d.key.as_ref()),
            ),
        )
    }
}

/// The fleet's hosts as the global flags and the config file reach them:
/// the spec gives each host's address; credentials come from the flags,
/// else the config entry of the same name, else the config defaults.
#[derive(Debug, Clone)]
pub struct FleetTargets {
    selection: Selection,
    config: Option<CtlConfig>,
}

impl FleetTargets {
    /// Reads the config file once, for every host.
    pub fn new(selection: &Selection) -> Result<Self, ConfigError> {
        Ok(Self {
            config: selection.load()?,
            selection: selection.clone(),
        })
    }
}

impl Targets for FleetTargets {
    fn target(&self, host: &str, address: &str) -> Result<Target, TargetError> {
        let cfg = self.config.as_ref();
        let entry = cfg.and_then(|c| c.hosts.iter().find(|h| h.name == host));
        self.selection.target_with(cfg, address, entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_entry_with_relative_paths_resolves_against_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ctl.toml");
        std::fs::write(
            &path,
            r#"
            [defaults]
            ca = "ca.pem"
            cert = "client-admin.pem"
            key = "client-admin-key.pem"
            [[hosts]]
            name = "no1"
            agent = "https://127.0.0.1:7443"
            [[hosts]]
            name = "no2"
            agent = "https://127.0.0.1:7444"
            cert = "/abs/other.pem"
            "#,
        )
        .expect("write");
        let sel = Selection {
            config: Some(path.clone()),
            host: Some("no2".into()),
            ..Selection::default()
        };
        let (target, _) = sel.resolve().expect("resolve");
        assert_eq!(target.to_string(), "https://127.0.0.1:7444");
        let tls = target.tls().expect("tls");
        assert_eq!(tls.ca.as_deref(), Some(dir.path().join("ca.pem").as_path()));
        assert_eq!(tls.cert.as_deref(), Some(Path::new("/abs/other.pem")));

        let sel = Selection {
            config: Some(path.clone()),
            host: Some("no9".into()),
            ..Selection::default()
        };
        assert_eq!(
            sel.resolve().expect_err("unknown").to_string(),
            format!(
                "unknown host \"no9\" in {}; known hosts: no1, no2",
                path.display()
            )
        );
    }

    #[test]
    fn nothing_given_is_a_clear_error() {
        assert_eq!(
            Selection::default().resolve().expect_err("none"),
            ConfigError::NoAgent
        );
    }
}
