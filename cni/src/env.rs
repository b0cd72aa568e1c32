//! The call's parameters, from the environment the runtime sets:
//! `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`,
//! `CNI_PATH`. Each is checked as the specification says, and what a verb
//! needs and lacks is refused with code 4, naming the variable.

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf};

use linkherd_proto::model::{IfName, ValidationError, parse_container_id};

use crate::error::{CniError, Code};

/// The verbs of CNI 1.1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Verb {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADD" => Verb::Add,
            "DEL" => Verb::Del,
            "CHECK" => Verb::Check,
            "STATUS" => Verb::Status,
            "GC" => Verb::Gc,
            "VERSION" => Verb::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Del => "DEL",
            Verb::Check => "CHECK",
            Verb::Status => "STATUS",
            Verb::Gc => "GC",
            Verb::Version => "VERSION",
        }
    }
}

/// One call's parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub verb: Verb,
    /// Empty for STATUS, GC and VERSION.
    pub container_id: String,
    /// `None` where the verb allows it to be missing (DEL: the runtime
    /// removed the namespace already).
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// `IP=` of `CNI_ARGS` (podman and others pass a static address so).
    pub ips: Vec<IpAddr>,
}

/// At most this many bytes in one variable.
const MAX_VAR: usize = 4096;

fn invalid(var: &str, problem: impl Into<String>, fix: &str) -> CniError {
    CniError::new(
        Code::InvalidEnvironment,
        format!("{var} {}", problem.into()),
        fix,
    )
}

impl Invocation {
    /// From the process environment (`std::env::vars_os`, or a test's).
    pub fn from_env<I, K, V>(vars: I) -> Result<Self, CniError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<std::ffi::OsString>,
        V: Into<std::ffi::OsString>,
    {
        let mut env = BTreeMap::new();
        for (k, v) in vars {
            let (k, v) = (k.into(), v.into());
            let Some(k) = k
                .to_str()
                .filter(|k| k.starts_with("CNI_"))
                .map(str::to_owned)
            else {
                continue;
            };
            let v = v
                .into_string()
                .map_err(|_| invalid(&k, "is not UTF-8", "set it to plain text"))?;
            if v.len() > MAX_VAR {
                return Err(invalid(
                    &k,
                    format!("is {} bytes long", v.len()),
                    "keep it under 4 KiB",
                ));
            }
            env.insert(k, v);
        }
        Self::from_map(&env)
    }

    fn from_map(env: &BTreeMap<String, String>) -> Result<Self, CniError> {
        let get = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let verb = match get("CNI_COMMAND") {
            None => {
                return Err(invalid(
                    "CNI_COMMAND",
                    "is not set",
                    "run the plugin from a container runtime, with CNI_COMMAND=ADD, DEL, CHECK, STATUS, GC or VERSION",
                ));
            }
            Some(c) => Verb::parse(c).ok_or_else(|| {
                invalid(
                    "CNI_COMMAND",
                    format!("{c:?} is not a CNI verb"),
                    "use ADD, DEL, CHECK, STATUS, GC or VERSION",
                )
            })?,
        };
        let attaching = matches!(verb, Verb::Add | Verb::Del | Verb::Check);
        let container_id = match get("CNI_CONTAINERID") {
            Some(id) if attaching => container_id(id)?,
            None if attaching => {
                return Err(invalid(
                    "CNI_CONTAINERID",
                    "is not set",
                    "the runtime must name the container",
                ));
            }
            _ => String::new(),
        };
        let ifname = match get("CNI_IFNAME") {
            Some(n) if attaching => ifname(n)?,
            None if attaching => {
                return Err(invalid(
                    "CNI_IFNAME",
                    "is not set",
                    "the runtime must name the interface, e.g. eth0",
                ));
            }
            _ => String::new(),
        };
        let netns = get("CNI_NETNS").filter(|_| attaching).map(PathBuf::from);
        if netns.is_none() && matches!(verb, Verb::Add | Verb::Check) {
            return Err(invalid(
                "CNI_NETNS",
                "is not set",
                "the runtime must give the container's network namespace",
            ));
        }
        if let Some(p) = &netns
            && !p.is_absolute()
        {
            return Err(invalid(
                "CNI_NETNS",
                format!("{} is not an absolute path", p.display()),
                "give the namespace's path, e.g. /run/netns/NAME",
            ));
        }
        let ips = args_ips(get("CNI_ARGS").unwrap_or_default())?;
        Ok(Self {
            verb,
            container_id,
            netns,
            ifname,
            ips,
        })
    }
}

/// The agent's own rule (`parse_container_id`), so that what passes here
/// is what the agent takes.
fn container_id(id: &str) -> Result<String, CniError> {
    parse_container_id("CNI_CONTAINERID", id).map_err(from_rule)
}

/// The agent's own rule for interface names ([`IfName`]).
fn ifname(n: &str) -> Result<String, CniError> {
    IfName::parse("CNI_IFNAME", n)
        .map(|n| n.to_string())
        .map_err(from_rule)
}

/// A variable the agent's rules refuse: `CNI_IFNAME "eth0:1" contains …`.
fn from_rule(e: ValidationError) -> CniError {
    CniError::new(
        Code::InvalidEnvironment,
        format!("{} {:?} {}", e.field, e.value, e.problem),
        e.fix,
    )
}

/// `K=V;K=V`: the `IP=` values (comma-separated); `IgnoreUnknown` and
/// other keys are for other plugins.
fn args_ips(args: &str) -> Result<Vec<IpAddr>, CniError> {
    let mut out = Vec::new();
    for pair in args.split(';').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(invalid(
                "CNI_ARGS",
                format!("{pair:?} is not KEY=VALUE"),
                "separate KEY=VALUE pairs with ;",
            ));
        };
        if k != "IP" {
            continue;
        }
        for a in v.split(',') {
            let ip = a.parse::<IpAddr>().map_err(|_| {
                invalid(
                    "CNI_ARGS",
                    format!("IP={a} is not an IP address"),
                    "give IP=ADDRESS, e.g. IP=172.16.10.10",
                )
            })?;
            out.push(ip);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(vars: &[(&str, &str)]) -> Result<Invocation, CniError> {
        Invocation::from_env(vars.iter().map(|(k, v)| (*k, *v)))
    }

    const ADD: [(&str, &str); 4] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", "/run/netns/cni-1"),
        ("CNI_IFNAME", "eth0"),
    ];

    #[test]
    fn an_add_reads_its_parameters_and_static_addresses() {
        let mut vars = ADD.to_vec();
        vars.push(("CNI_ARGS", "IgnoreUnknown=1;IP=172.16.10.10;K8S_POD_NAME=x"));
        vars.push(("HOME", "/root"));
        let i = call(&vars).expect("valid");
        assert_eq!(i.verb, Verb::Add);
        assert_eq!(
            (i.container_id.as_str(), i.ifname.as_str()),
            ("c0ffee", "eth0")
        );
        assert_eq!(i.netns, Some(PathBuf::from("/run/netns/cni-1")));
        assert_eq!(i.ips, ["172.16.10.10".parse::<IpAddr>().expect("ip")]);
        // DEL may come without the namespace; VERSION needs nothing.
        let del = call(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c0ffee"),
            ("CNI_IFNAME", "eth0"),
        ]);
        assert_eq!(del.map(|d| d.netns), Ok(None));
        assert_eq!(
            call(&[("CNI_COMMAND", "VERSION")]).map(|v| v.verb),
            Ok(Verb::Version)
        );
    }

    #[test]
    fn a_bad_environment_is_code_4_naming_the_variable() {
        let cases: [(&str, &str, &str); 6] = [
            (
                "CNI_COMMAND",
                "PUT",
                "CNI_COMMAND \"PUT\" is not a CNI verb",
            ),
            (
                "CNI_CONTAINERID",
                "-x",
                "CNI_CONTAINERID \"-x\" is not a container id",
            ),
            (
                "CNI_IFNAME",
                "eth0:1",
                "CNI_IFNAME \"eth0:1\" contains ':', which Linux does not allow in interface names",
            ),
            (
                "CNI_IFNAME",
                "abcdefghijklmnop",
                "CNI_IFNAME \"abcdefghijklmnop\" is 16 bytes long; Linux interface names are at \
                 most 15 bytes",
            ),
            (
                "CNI_NETNS",
                "netns/x",
                "CNI_NETNS netns/x is not an absolute path",
            ),
            (
                "CNI_ARGS",
                "IP=1.2.3",
                "CNI_ARGS IP=1.2.3 is not an IP address",
            ),
        ];
        for (var, value, msg) in cases {
            let vars: Vec<(&str, &str)> = ADD
                .iter()
                .copied()
                .filter(|(k, _)| *k != var)
                .chain([(var, value)])
                .collect();
            let err = call(&vars).expect_err(var);
            assert_eq!((err.code, err.msg.as_str()), (4, msg));
        }
        // Longer than the agent takes: refused here, as code 4, not by the
        // agent as code 100.
        let long = "c".repeat(129);
        let vars: Vec<(&str, &str)> = ADD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_CONTAINERID")
            .chain([("CNI_CONTAINERID", long.as_str())])
            .collect();
        let err = call(&vars).expect_err("too long");
        assert_eq!(err.code, 4);
        assert!(
            err.msg.starts_with("CNI_CONTAINERID \"ccc")
                && err.msg.ends_with("\" is not a container id"),
            "{}",
            err.msg
        );
        let err = call(&ADD[..3]).expect_err("no ifname");
        assert_eq!(err.msg, "CNI_IFNAME is not set");
        let err = call(&[]).expect_err("nothing");
        assert_eq!(err.msg, "CNI_COMMAND is not set");
    }
}
