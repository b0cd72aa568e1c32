//! The network configuration a runtime streams on stdin: the standard
//! fields, linkherd's own (`network`, `agent_socket`), the capabilities it
//! honours (`ips`, `mac` in `runtimeConfig`), `prevResult` for CHECK and
//! DEL, and GC's valid attachments. Other fields belong to other plugins
//! and runtimes, and are left alone.

use std::{collections::BTreeSet, net::IpAddr, path::PathBuf};

use ipnet::IpNet;
use linkherd_proto::model::ObjName;
use serde::Deserialize;

use crate::{
    error::{CniError, Code},
    version::CniVersion,
};

/// At most this many bytes of configuration.
pub const MAX_CONFIG: usize = 1 << 20;
/// Where the agent listens when the configuration does not say.
pub const DEFAULT_SOCKET: &str = "/run/linkherd/agent.sock";

/// One attachment GC must keep.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

#[derive(Debug, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    mac: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    #[serde(rename = "cniVersions", default)]
    cni_versions: Vec<String>,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    network: Option<String>,
    agent_socket: Option<PathBuf>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: RuntimeConfig,
    #[serde(rename = "prevResult", default, deserialize_with = "prev_result")]
    prev_result: Option<PrevResult>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    valid_attachments: Vec<ValidAttachment>,
}

/// What CHECK compares of the previous ADD's result: its addresses. Read
/// strictly, so a malformed one is refused (code 7) rather than taken for
/// a result without addresses.
#[derive(Debug, Deserialize)]
struct PrevResult {
    #[serde(default)]
    ips: Vec<PrevIp>,
}

#[derive(Debug, Deserialize)]
struct PrevIp {
    address: IpNet,
}

/// `prevResult` is a JSON object (serde alone would take `[]` too).
fn prev_result<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PrevResult>, D::Error> {
    use serde::de::Error as _;
    let Some(map) = Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)? else {
        return Ok(None);
    };
    serde_json::from_value(serde_json::Value::Object(map))
        .map(Some)
        .map_err(D::Error::custom)
}

/// A checked network configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// The version to answer in.
    pub version: CniVersion,
    /// The configuration's name.
    pub name: String,
    /// The catalog network to attach to (`network`, default the name).
    pub network: String,
    pub agent_socket: PathBuf,
    /// Static addresses asked for (`runtimeConfig.ips`, e.g. podman `--ip`).
    pub ips: Vec<IpAddr>,
    /// A MAC asked for (`runtimeConfig.mac`, e.g. podman `--mac-address`).
    pub mac: Option<String>,
    /// The addresses of the previous ADD's result (`prevResult`, CHECK).
    pub prev_addresses: Option<BTreeSet<IpNet>>,
    pub valid_attachments: Vec<ValidAttachment>,
}

fn invalid(msg: impl Into<String>, fix: &str) -> CniError {
    CniError::new(Code::InvalidConfig, msg, fix)
}

/// The version to answer a configuration in even when it is otherwise
/// unreadable (the newest when it has none).
pub fn version_of(bytes: &[u8]) -> CniVersion {
    #[derive(Deserialize)]
    struct V {
        #[serde(rename = "cniVersion", default)]
        v: String,
        #[serde(rename = "cniVersions", default)]
        vs: Vec<String>,
    }
    serde_json::from_slice::<V>(bytes)
        .ok()
        .and_then(|v| CniVersion::negotiate(&v.v, &v.vs).ok())
        .unwrap_or(CniVersion::NEWEST)
}

impl NetConf {
    pub fn parse(bytes: &[u8]) -> Result<Self, CniError> {
        if bytes.len() > MAX_CONFIG {
            return Err(invalid(
                format!("the network configuration is {} bytes", bytes.len()),
                "keep it under 1 MiB",
            ));
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| {
            let code = if e.is_data() {
                Code::InvalidConfig
            } else {
                Code::Decode
            };
            CniError::new(
                code,
                format!("cannot read the network configuration: {e}"),
                "give a CNI network configuration (JSON) on stdin",
            )
        })?;
        let version = CniVersion::negotiate(&raw.cni_version, &raw.cni_versions)?;
        check_name("name", &raw.name)?;
        if raw.kind.is_empty() {
            return Err(invalid(
                "\"type\" is empty",
                "set \"type\": \"linkherd-cni\"",
            ));
        }
        let network = raw.network.unwrap_or_else(|| raw.name.clone());
        ObjName::parse("network", &network).map_err(|e| {
            invalid(
                format!("network {:?} {}", e.value, e.problem),
                &format!("{} (a linkherd network name)", e.fix),
            )
        })?;
        let agent_socket = raw
            .agent_socket
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        if !agent_socket.is_absolute() {
            return Err(invalid(
                format!(
                    "agent_socket {} is not an absolute path",
                    agent_socket.display()
                ),
                "give the agent's unix socket, e.g. /run/linkherd/agent.sock",
            ));
        }
        let ips = raw
            .runtime_config
            .ips
            .iter()
            .map(|a| static_ip(a))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            version,
            name: raw.name,
            network,
            agent_socket,
            ips,
            mac: raw.runtime_config.mac.filter(|m| !m.is_empty()),
            prev_addresses: raw
                .prev_result
                .map(|p| p.ips.into_iter().map(|ip| ip.address).collect()),
            valid_attachments: raw.valid_attachments,
        })
    }
}

/// The specification's rule for a network configuration's name: a letter
/// or digit, then `A-Z a-z 0-9 _ . -` (at most 64 here: it names a
/// linkherd network unless `network` does).
fn check_name(field: &str, n: &str) -> Result<(), CniError> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            format!("{field} {n:?} is not a network name"),
            "use 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit",
        ))
    }
}

/// `runtimeConfig.ips` entries are addresses, with or without a prefix.
fn static_ip(a: &str) -> Result<IpAddr, CniError> {
    a.parse::<IpAddr>()
        .or_else(|_| a.parse::<IpNet>().map(|n| n.addr()))
        .map_err(|_| {
            invalid(
                format!("runtimeConfig.ips: {a:?} is not an IP address"),
                "give addresses such as 172.16.10.10",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_config_attaches_to_the_network_of_its_name() {
        let c =
            NetConf::parse(br#"{"cniVersion":"1.0.0","name":"mac_net10","type":"linkherd-cni"}"#)
                .expect("valid");
        assert_eq!(c.version, CniVersion::V1_0_0);
        assert_eq!(
            (c.name.as_str(), c.network.as_str()),
            ("mac_net10", "mac_net10")
        );
        assert_eq!(c.agent_socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!((c.ips.len(), c.mac.as_ref()), (0, None));
    }

    #[test]
    fn a_malformed_prev_result_is_refused_not_read_as_empty() {
        let conf = |prev: &str| {
            format!(
                r#"{{"cniVersion":"1.1.0","name":"n","type":"linkherd-cni","prevResult":{prev}}}"#
            )
        };
        let good = NetConf::parse(
            conf(r#"{"ips":[{"address":"172.16.10.10/24","gateway":"172.16.10.1"}]}"#).as_bytes(),
        )
        .expect("valid");
        let want: BTreeSet<IpNet> = ["172.16.10.10/24".parse().expect("net")].into();
        assert_eq!(good.prev_addresses, Some(want));
        for bad in [
            r#""not an object""#,
            r#"{"ips":"x"}"#,
            r#"{"ips":[{"address":"not-an-address"}]}"#,
            r#"{"ips":[{"gateway":"172.16.10.1"}]}"#,
            r#"[]"#,
        ] {
            let err = NetConf::parse(conf(bad).as_bytes()).expect_err(bad);
            assert_eq!(err.code, Code::InvalidConfig as u32, "{bad}: {err}");
        }
    }

    #[test]
    fn capabilities_prev_result_and_gc_attachments_are_read() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","type":"linkherd-cni","network":"mac_net10",
                "agent_socket":"/run/lh/a.sock","ipam":{"type":"ignored"},
                "runtimeConfig":{"ips":["172.16.10.10/24"],"mac":"02:42:ac:10:0a:0a"},
                "prevResult":{"cniVersion":"1.1.0","interfaces":[]},
                "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .expect("valid");
        assert_eq!(c.network, "mac_net10");
        assert_eq!(c.ips, ["172.16.10.10".parse::<IpAddr>().expect("ip")]);
        assert_eq!(c.mac.as_deref(), Some("02:42:ac:10:0a:0a"));
        assert_eq!(c.prev_addresses, Some(BTreeSet::new()));
        assert_eq!(
            c.valid_attachments,
            [ValidAttachment {
                container_id: "c1".into(),
                ifname: "eth0".into()
            }]
        );
    }

    #[test]
    fn a_bad_config_gets_the_right_code() {
        let cases: [(&[u8], u32, &str); 5] = [
            (
                b"{not json",
                6,
                "cannot read the network configuration: key must be a string at line 1 column 2",
            ),
            (
                br#"{"cniVersion":"1.0.0","type":"x"}"#,
                7,
                "cannot read the network configuration: missing field `name` at line 1 column 33",
            ),
            (
                br#"{"cniVersion":"0.3.1","name":"n","type":"x"}"#,
                1,
                "CNI version 0.3.1 is not supported",
            ),
            (
                br#"{"cniVersion":"1.0.0","name":"a b","type":"x"}"#,
                7,
                "name \"a b\" is not a network name",
            ),
            (
                br#"{"cniVersion":"1.0.0","name":"n","type":"x","agent_socket":"a.sock"}"#,
                7,
                "agent_socket a.sock is not an absolute path",
            ),
        ];
        for (bytes, code, msg) in cases {
            let err = NetConf::parse(bytes).expect_err(msg);
            assert_eq!((err.code, err.msg.as_str()), (code, msg));
        }
        assert_eq!(version_of(br#"{"cniVersion":"0.4.0"}"#), CniVersion::V0_4_0);
        assert_eq!(version_of(b"garbage"), CniVersion::V1_1_0);
        let huge = vec![b' '; MAX_CONFIG + 1];
        assert_eq!(NetConf::parse(&huge).map_err(|e| e.code), Err(7));
    }
}
