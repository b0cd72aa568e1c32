//! Agent configuration: a TOML file, overridden by `LINKHERD_*` environment
//! variables, overridden by flags. Resolution checks the security rules once,
//! up front: TCP is mTLS unless plaintext was asked for explicitly on a
//! loopback address.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{app::Limits, converge::tracker::Policy, transport::tls::TlsPem};

pub const DEFAULT_SOCKET: &str = "/run/linkherd/agent.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/linkherd";
pub const DEFAULT_RUN_DIR: &str = "/run/linkherd";

/// Command-line flags (each also readable from a `LINKHERD_*` variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Flags {
    /// TOML configuration file.
    #[arg(long, env = "LINKHERD_CONFIG")]
    pub config: Option<PathBuf>,
    /// TCP address for remote administration (mTLS), e.g. 0.0.0.0:7443.
    #[arg(long, env = "LINKHERD_LISTEN")]
    pub listen: Option<String>,
    /// The agent's certificate (PEM).
    #[arg(long, env = "LINKHERD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The agent's private key (PEM).
    #[arg(long, env = "LINKHERD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA that client certificates must be signed by (PEM).
    #[arg(long, env = "LINKHERD_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// Allow plaintext TCP without client authentication. Only accepted for
    /// a loopback --listen address; every caller is then admin.
    #[arg(long, env = "LINKHERD_INSECURE_LOOPBACK")]
    pub insecure_loopback: bool,
    /// Local unix socket (root only); "none" disables it.
    #[arg(long, env = "LINKHERD_SOCKET")]
    pub socket: Option<String>,
    /// Directory for the audit log and the lease journal.
    #[arg(long, env = "LINKHERD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory (on tmpfs, root's) where the agent notes the namespaces it
    /// made, apart from its state: `--adopt` looks only into those.
    #[arg(long, env = "LINKHERD_RUN_DIR")]
    pub run_dir: Option<PathBuf>,
    /// This host's name in the fleet (default: the kernel hostname).
    #[arg(long, env = "LINKHERD_NAME")]
    pub name: Option<String>,
    /// Run in this network namespace (a namespace file), e.g. for a lab
    /// host; default: the namespace the agent is started in.
    #[arg(long, env = "LINKHERD_NETNS")]
    pub netns: Option<PathBuf>,
    /// Prefix for the named namespaces this agent creates and manages under
    /// /run/netns (for several agents on one machine, as in a lab).
    #[arg(long, env = "LINKHERD_NETNS_PREFIX")]
    pub netns_prefix: Option<String>,
    /// Log format.
    #[arg(long, env = "LINKHERD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Serve Docker's remote network and IPAM driver protocol on this unix
    /// socket, e.g. /run/docker/plugins/linkherd.sock (Docker names the
    /// driver after the file: `-d linkherd`). Off by default.
    #[arg(long, env = "LINKHERD_DOCKER_PLUGIN")]
    pub docker_plugin: Option<PathBuf>,
    /// Plain-HTTP readiness endpoint (`GET /healthz`, no client
    /// certificate) on this loopback address, e.g. 127.0.0.1:7444, for a
    /// kubelet or a supervisor. Off by default.
    #[arg(long, env = "LINKHERD_HEALTH_LISTEN")]
    pub health_listen: Option<String>,
    /// What the agent does when the host drifts from what it set: repair
    /// it (the default), report it only, or neither.
    #[arg(long, env = "LINKHERD_RECONCILE", value_enum)]
    pub reconcile: Option<Policy>,
    /// Seconds between periodic reconcile passes (default 300); passes
    /// also run on kernel events and at start.
    #[arg(long, env = "LINKHERD_RECONCILE_INTERVAL")]
    pub reconcile_interval: Option<u64>,
    /// Seconds a container's attachment whose namespace is gone stays
    /// before the agent releases it and its addresses (default 300).
    #[arg(long, env = "LINKHERD_RECONCILE_STALE_GRACE")]
    pub reconcile_stale_grace: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The configuration file's contents; every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub insecure_loopback: Option<bool>,
    pub socket: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub name: Option<String>,
    pub netns: Option<PathBuf>,
    pub netns_prefix: Option<String>,
    pub log_format: Option<LogFormat>,
    pub docker_plugin: Option<PathBuf>,
    pub health_listen: Option<String>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub reconcile: ReconcileConfig,
}

/// `[reconcile]`: see [`crate::converge`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    pub policy: Option<Policy>,
    pub interval_seconds: Option<u64>,
    pub stale_grace_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_message_bytes: Option<usize>,
    pub concurrency_per_connection: Option<usize>,
    pub request_timeout_seconds: Option<u64>,
    pub max_concurrent_streams: Option<u32>,
    pub request_bytes_in_flight: Option<usize>,
    pub watch_streams_per_identity: Option<usize>,
    pub watch_streams: Option<usize>,
    pub shutdown_grace_seconds: Option<u64>,
    pub local_connections: Option<usize>,
}

/// Ranges of the `[limits]` keys: outside them a value would refuse every
/// request (0), overflow a deadline or a semaphore (huge), so the agent
/// refuses to start instead, naming the key.
const LIMIT_RANGES: &[(&str, u64, u64)] = &[
    ("max_message_bytes", 1024, 64 << 20),
    ("concurrency_per_connection", 1, 4096),
    ("request_timeout_seconds", 1, 86_400),
    ("max_concurrent_streams", 1, 4096),
    ("request_bytes_in_flight", 1, 4 << 30),
    ("watch_streams_per_identity", 1, 65_536),
    ("watch_streams", 1, 65_536),
    ("shutdown_grace_seconds", 0, 3600),
    ("local_connections", 1, 65_536),
];

/// `value` of `key`, checked against its range.
fn within<T: Copy + TryInto<u64>>(
    key: &'static str,
    value: Option<T>,
) -> Result<Option<T>, ConfigError> {
    let Some(v) = value else { return Ok(None) };
    let (_, min, max) = LIMIT_RANGES
        .iter()
        .copied()
        .find(|(k, _, _)| *k == key)
        .unwrap_or((key, 0, u64::MAX));
    match v.try_into() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(v)),
        Ok(n) => Err(ConfigError::Limit {
            key,
            value: n,
            min,
            max,
        }),
        Err(_) => Err(ConfigError::Limit {
            key,
            value: u64::MAX,
            min,
            max,
        }),
    }
}

impl LimitsConfig {
    /// The file's limits over the defaults, each within its range.
    fn resolve(&self) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        let secs = |key, v: Option<u64>, d: Duration| {
            Ok::<_, ConfigError>(within(key, v)?.map_or(d, Duration::from_secs))
        };
        Ok(Limits {
            max_message_bytes: within("max_message_bytes", self.max_message_bytes)?
                .unwrap_or(d.max_message_bytes),
            concurrency_per_connection: within(
                "concurrency_per_connection",
                self.concurrency_per_connection,
            )?
            .unwrap_or(d.concurrency_per_connection),
            request_timeout: secs(
                "request_timeout_seconds",
                self.request_timeout_seconds,
                d.request_timeout,
            )?,
            max_concurrent_streams: within("max_concurrent_streams", self.max_concurrent_streams)?
                .unwrap_or(d.max_concurrent_streams),
            request_bytes_in_flight: within(
                "request_bytes_in_flight",
                self.request_bytes_in_flight,
            )?
            .unwrap_or(d.request_bytes_in_flight),
            watch: crate::watch::WatchLimits {
                per_identity: within(
                    "watch_streams_per_identity",
                    self.watch_streams_per_identity,
                )?
                .unwrap_or(d.watch.per_identity),
                total: within("watch_streams", self.watch_streams)?.unwrap_or(d.watch.total),
            },
            local_connections: within("local_connections", self.local_connections)?
                .unwrap_or(d.local_connections),
            shutdown_grace: secs(
                "shutdown_grace_seconds",
                self.shutdown_grace_seconds,
                d.shutdown_grace,
            )?,
        })
    }
}

/// Paths of the mTLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

impl TlsFiles {
    pub fn load(&self) -> Result<TlsPem, ConfigError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| ConfigError::Read {
                path: p.to_owned(),
                detail: e.to_string(),
            })
        };
        Ok(TlsPem {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
            client_ca: read(&self.client_ca)?,
        })
    }
}

/// The resolved, checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Option<SocketAddr>,
    /// `None` with `listen` set means plaintext loopback.
    pub tls: Option<TlsFiles>,
    pub socket: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub name: Option<String>,
    pub netns: Option<PathBuf>,
    pub netns_prefix: String,
    pub log_format: LogFormat,
    pub docker_plugin: Option<PathBuf>,
    pub health_listen: Option<SocketAddr>,
    pub limits: Limits,
    pub reconcile: crate::converge::Settings,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("invalid listen address {0:?}: use HOST:PORT with an IP address, e.g. 0.0.0.0:7443")]
    Listen(String),
    #[error(
        "refusing plaintext TCP on {0}: give --tls-cert, --tls-key and --client-ca for mTLS \
         (see `linkherdctl certs`), or --insecure-loopback with a loopback address"
    )]
    PlaintextTcp(SocketAddr),
    #[error("--insecure-loopback needs a loopback --listen address (127.0.0.1 or [::1]), not {0}")]
    InsecureNotLoopback(SocketAddr),
    #[error("--insecure-loopback needs a --listen address")]
    InsecureWithoutListen,
    #[error(
        "--health-listen serves without client certificates, so only on a loopback address \
         (127.0.0.1 or [::1]), not {0}"
    )]
    HealthNotLoopback(SocketAddr),
    #[error("--insecure-loopback and TLS files are contradictory: choose one")]
    InsecureWithTls,
    #[error(
        "incomplete mTLS configuration: missing {0}; give all of --tls-cert, --tls-key and --client-ca"
    )]
    PartialTls(&'static str),
    #[error("TLS files given but no --listen address to use them on")]
    TlsWithoutListen,
    #[error("nothing to serve: give --listen (mTLS) and/or a --socket")]
    NothingToServe,
    #[error("reconcile interval {0} s is out of range: give 1..=86400 seconds")]
    ReconcileInterval(u64),
    #[error("reconcile stale grace {0} s is out of range: give 0..=86400 seconds")]
    StaleGrace(u64),
    #[error("[limits] {key} = {value} is out of range: give {min}..={max}")]
    Limit {
        key: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}

impl Settings {
    /// Merges file, environment and flags, and checks the result.
    pub fn resolve(flags: Flags) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    detail: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        Self::merge(flags, file)
    }

    fn merge(flags: Flags, file: FileConfig) -> Result<Self, ConfigError> {
        let reconcile = reconcile_settings(&flags, &file.reconcile)?;
        let listen = flags
            .listen
            .or(file.listen)
            .map(|l| l.parse::<SocketAddr>().map_err(|_| ConfigError::Listen(l)))
            .transpose()?;
        let insecure = flags.insecure_loopback || file.insecure_loopback.unwrap_or(false);
        let cert = flags.tls_cert.or(file.tls_cert);
        let key = flags.tls_key.or(file.tls_key);
        let ca = flags.client_ca.or(file.client_ca);
        let tls = match (cert, key, ca) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(client_ca)) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, _, _) => return Err(ConfigError::PartialTls("--tls-cert")),
            (_, None, _) => return Err(ConfigError::PartialTls("--tls-key")),
            (_, _, None) => return Err(ConfigError::PartialTls("--client-ca")),
        };
        match (listen, &tls, insecure) {
            (Some(_), Some(_), true) => return Err(ConfigError::InsecureWithTls),
            (Some(addr), None, false) => return Err(ConfigError::PlaintextTcp(addr)),
            (Some(addr), None, true) if !addr.ip().is_loopback() => {
                return Err(ConfigError::InsecureNotLoopback(addr));
            }
            (None, _, true) => return Err(ConfigError::InsecureWithoutListen),
            (None, Some(_), false) => return Err(ConfigError::TlsWithoutListen),
            _ => {}
        }
        let socket = match flags.socket.or(file.socket) {
            Some(s) if s == "none" || s.is_empty() => None,
            Some(s) => Some(PathBuf::from(s)),
            None => Some(PathBuf::from(DEFAULT_SOCKET)),
        };
        if listen.is_none() && socket.is_none() {
            return Err(ConfigError::NothingToServe);
        }
        let limits = file.limits.resolve()?;
        let health_listen = flags
            .health_listen
            .or(file.health_listen)
            .map(|l| match l.parse::<SocketAddr>() {
                Ok(a) if a.ip().is_loopback() => Ok(a),
                Ok(a) => Err(ConfigError::HealthNotLoopback(a)),
                Err(_) => Err(ConfigError::Listen(l)),
            })
            .transpose()?;
        Ok(Self {
            listen,
            tls,
            socket,
            state_dir: flags
                .state_dir
                .or(file.state_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            run_dir: flags
                .run_dir
                .or(file.run_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR)),
            name: flags.name.or(file.name),
            netns: flags.netns.or(file.netns),
            netns_prefix: flags.netns_prefix.or(file.netns_prefix).unwrap_or_default(),
            log_format: flags.log_format.or(file.log_format).unwrap_or_default(),
            docker_plugin: flags.docker_plugin.or(file.docker_plugin),
            health_listen,
            limits,
            reconcile,
        })
    }
}

/// `[reconcile]` and its flags, checked.
fn reconcile_settings(
    flags: &Flags,
    file: &ReconcileConfig,
) -> Result<crate::converge::Settings, ConfigError> {
    let mut reconcile = crate::converge::Settings::default();
    if let Some(p) = flags.reconcile.or(file.policy) {
        reconcile.policy = p;
    }
    match flags.reconcile_interval.or(file.interval_seconds) {
        Some(s @ 1..=86400) => reconcile.interval = std::time::Duration::from_secs(s),
        Some(s) => return Err(ConfigError::ReconcileInterval(s)),
        None => {}
    }
    match flags.reconcile_stale_grace.or(file.stale_grace_seconds) {
        Some(s @ 0..=86400) => reconcile.stale_grace = std::time::Duration::from_secs(s),
        Some(s) => return Err(ConfigError::StaleGrace(s)),
        None => {}
    }
    Ok(reconcile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(listen: Option<&str>) -> Flags {
        Flags {
            listen: listen.map(str::to_owned),
            ..Flags::default()
        }
    }

    fn with_tls(mut f: Flags) -> Flags {
        f.tls_cert = Some("agent.pem".into());
        f.tls_key = Some("agent-key.pem".into());
        f.client_ca = Some("ca.pem".into());
        f
    }

    #[test]
    fn plaintext_tcp_is_refused_unless_loopback_and_explicit() {
        let err = Settings::merge(flags(Some("0.0.0.0:7443")), FileConfig::default())
            .expect_err("plaintext");
        assert_eq!(
            err,
            ConfigError::PlaintextTcp("0.0.0.0:7443".parse().expect("addr"))
        );
        let mut f = flags(Some("10.1.2.3:7443"));
        f.insecure_loopback = true;
        assert_eq!(
            Settings::merge(f, FileConfig::default()).expect_err("not loopback"),
            ConfigError::InsecureNotLoopback("10.1.2.3:7443".parse().expect("addr"))
        );
        let mut f = flags(Some("127.0.0.1:7443"));
        f.insecure_loopback = true;
        let s = Settings::merge(f, FileConfig::default()).expect("loopback ok");
        assert!(s.tls.is_none());
    }

    #[test]
    fn the_plain_health_endpoint_is_loopback_only_and_the_plugin_off_by_default() {
        let mut f = with_tls(flags(Some("0.0.0.0:7443")));
        f.health_listen = Some("0.0.0.0:7444".into());
        assert_eq!(
            Settings::merge(f, FileConfig::default()).expect_err("not loopback"),
            ConfigError::HealthNotLoopback("0.0.0.0:7444".parse().expect("addr"))
        );
        let file = FileConfig {
            health_listen: Some("127.0.0.1:7444".into()),
            docker_plugin: Some("/run/docker/plugins/linkherd.sock".into()),
            ..FileConfig::default()
        };
        let s = Settings::merge(with_tls(flags(Some("0.0.0.0:7443"))), file).expect("ok");
        assert_eq!(
            s.health_listen,
            Some("127.0.0.1:7444".parse().expect("addr"))
        );
        assert_eq!(
            s.docker_plugin.as_deref(),
            Some(std::path::Path::new("/run/docker/plugins/linkherd.sock"))
        );
        let s = Settings::merge(with_tls(flags(Some("0.0.0.0:7443"))), FileConfig::default())
            .expect("defaults");
        assert_eq!((s.health_listen, s.docker_plugin), (None, None));
    }

    #[test]
    fn mtls_needs_all_three_files() {
        let mut f = with_tls(flags(Some("0.0.0.0:7443")));
        f.client_ca = None;
        assert_eq!(
            Settings::merge(f, FileConfig::default()).expect_err("partial"),
            ConfigError::PartialTls("--client-ca")
        );
        let s = Settings::merge(with_tls(flags(Some("0.0.0.0:7443"))), FileConfig::default())
            .expect("full");
        assert_eq!(s.tls.map(|t| t.client_ca), Some(PathBuf::from("ca.pem")));
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let file: FileConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:1"
            insecure_loopback = true
            socket = "none"
            name = "from-file"
            [limits]
            request_timeout_seconds = 5
            watch_streams_per_identity = 4
            request_bytes_in_flight = 1000
            "#,
        )
        .expect("toml");
        let mut f = flags(Some("127.0.0.1:7443"));
        f.name = Some("no1".into());
        let s = Settings::merge(f, file).expect("merge");
        assert_eq!(s.listen, Some("127.0.0.1:7443".parse().expect("addr")));
        assert_eq!(s.name.as_deref(), Some("no1"));
        assert_eq!(s.socket, None);
        assert_eq!(s.limits.request_timeout, Duration::from_secs(5));
        assert_eq!(s.limits.watch.per_identity, 4);
        assert_eq!(s.limits.watch.total, 256);
        assert_eq!(s.limits.request_bytes_in_flight, 1000);
        assert_eq!(s.limits.max_concurrent_streams, 128);
        assert_eq!(s.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(s.run_dir, PathBuf::from(DEFAULT_RUN_DIR));
    }

    #[test]
    fn limits_out_of_range_refuse_to_start_naming_the_key() {
        for (key, value, want) in [
            (
                "shutdown_grace_seconds",
                "18446744073709551615",
                "[limits] shutdown_grace_seconds = 18446744073709551615 is out of range: give 0..=3600",
            ),
            (
                "local_connections",
                "0",
                "[limits] local_connections = 0 is out of range: give 1..=65536",
            ),
            (
                "watch_streams",
                "100000000",
                "[limits] watch_streams = 100000000 is out of range: give 1..=65536",
            ),
        ] {
            let file: FileConfig = toml::from_str(&format!(
                "listen = \"127.0.0.1:1\"\ninsecure_loopback = true\n[limits]\n{key} = {value}\n"
            ))
            .expect("toml");
            let err = Settings::merge(flags(None), file).expect_err(key);
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn reconcile_settings_come_from_the_file_and_flags_and_are_checked() {
        let file: FileConfig = toml::from_str(
            "[reconcile]\npolicy = \"report\"\ninterval_seconds = 30\nstale_grace_seconds = 0\n",
        )
        .expect("toml");
        let mut f = flags(None);
        f.socket = Some("/tmp/x.sock".into());
        let s = Settings::merge(f.clone(), file.clone()).expect("settings");
        assert_eq!(s.reconcile.policy, Policy::Report);
        assert_eq!(s.reconcile.interval, std::time::Duration::from_secs(30));
        assert_eq!(s.reconcile.stale_grace, std::time::Duration::ZERO);
        f.reconcile = Some(Policy::Off);
        assert_eq!(
            Settings::merge(f.clone(), file.clone())
                .expect("ok")
                .reconcile
                .policy,
            Policy::Off
        );
        f.reconcile_interval = Some(0);
        let err = Settings::merge(f, file).expect_err("zero interval");
        assert_eq!(
            err.to_string(),
            "reconcile interval 0 s is out of range: give 1..=86400 seconds"
        );
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let err = toml::from_str::<FileConfig>("lisen = \"x\"").expect_err("typo");
        assert!(err.to_string().contains("unknown field `lisen`"), "{err}");
    }

    #[test]
    fn bad_listen_address_names_the_value() {
        let err =
            Settings::merge(flags(Some("localhost")), FileConfig::default()).expect_err("bad");
        assert_eq!(err, ConfigError::Listen("localhost".into()));
    }

    /// The shipped unit lets the agent write everything the shipped
    /// configuration makes it write, and keeps the run directory (the
    /// namespaces the agent made are noted there) across restarts.
    /// `KEY=` values of a unit file and its drop-ins, split on spaces.
    fn unit_values(files: &[&str], key: &str) -> Vec<String> {
        files
            .iter()
            .flat_map(|f| f.lines())
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .flat_map(|v| v.split_whitespace().map(str::to_owned))
            .collect()
    }

    /// What the unit (with `drop_ins`) lets the agent write.
    fn unit_writable(files: &[&str]) -> Vec<PathBuf> {
        let values = |key: &str| unit_values(files, key);
        let mut writable: Vec<PathBuf> = values("ReadWritePaths")
            .iter()
            .map(|p| PathBuf::from(p.trim_start_matches('-')))
            .collect();
        writable.extend(
            values("RuntimeDirectory")
                .iter()
                .map(|d| Path::new("/run").join(d)),
        );
        writable.extend(
            values("StateDirectory")
                .iter()
                .map(|d| Path::new("/var/lib").join(d)),
        );
        writable
    }

    /// What settings make the agent write.
    fn written(s: &Settings) -> Vec<PathBuf> {
        let mut written = vec![
            s.state_dir.clone(),
            s.run_dir.clone(),
            PathBuf::from("/run/netns"),
        ];
        written.extend(
            s.socket
                .iter()
                .chain(&s.docker_plugin)
                .filter_map(|p| p.parent().map(Path::to_owned)),
        );
        written
    }

    fn allowed(writable: &[PathBuf], w: &Path) -> bool {
        writable.iter().any(|r| w.starts_with(r))
    }

    #[test]
    fn the_systemd_unit_allows_what_the_shipped_configuration_writes() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let read = |f: &str| std::fs::read_to_string(deploy.join(f)).expect("unit file");
        let unit = read("systemd/linkherd-agent.service");
        let docker = read("systemd/linkherd-agent.service.d/docker-plugin.conf");
        let s = Settings::resolve(Flags {
            config: Some(deploy.join("agent.toml")),
            ..Flags::default()
        })
        .expect("the shipped configuration");
        let writable = unit_writable(&[&unit]);
        for w in written(&s) {
            assert!(
                allowed(&writable, &w),
                "{} is written by the agent but not writable under the unit ({writable:?})",
                w.display()
            );
        }
        // The Docker plugin's drop-in: its socket's directory becomes
        // writable with it, and only with it.
        let plugin = unit_values(&[&docker], "Environment")
            .iter()
            .find_map(|e| e.strip_prefix("LINKHERD_DOCKER_PLUGIN=").map(PathBuf::from))
            .expect("the drop-in sets the plugin socket");
        let dir = plugin.parent().expect("dir");
        assert!(
            !allowed(&writable, dir),
            "the unit alone opens {}",
            dir.display()
        );
        assert!(allowed(&unit_writable(&[&unit, &docker]), dir));
        let run_dirs: Vec<PathBuf> = unit_values(&[&unit], "RuntimeDirectory")
            .iter()
            .map(|d| Path::new("/run").join(d))
            .collect();
        if run_dirs.iter().any(|d| s.run_dir.starts_with(d)) {
            assert_eq!(
                unit_values(&[&unit], "RuntimeDirectoryPreserve"),
                ["yes"],
                "the notes would go at each stop"
            );
        }
        // Ready after the restore, and before the runtimes restart theirs.
        assert_eq!(unit_values(&[&unit], "Type"), ["notify"]);
        let before = unit_values(&[&unit], "Before");
        for rt in [
            "docker.service",
            "containerd.service",
            "podman.service",
            "crio.service",
            "kubelet.service",
        ] {
            assert!(before.iter().any(|b| b == rt), "not ordered before {rt}");
        }
    }
}
