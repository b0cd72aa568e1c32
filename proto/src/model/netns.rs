use std::{fmt, path::PathBuf};

use serde::Serialize;

use super::ValidationError;

/// Where an endpoint (or a probe) lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetnsRef {
    /// A named namespace under /run/netns (`ip netns add NAME`).
    Named(String),
    /// Any namespace file, e.g. a bind mount or /proc/PID/ns/net.
    Path(PathBuf),
    /// The namespace of a process, e.g. a container's init.
    Pid(u32),
}

impl NetnsRef {
    /// A named namespace, validated like `ip netns add` does.
    pub fn named(field: &str, name: &str) -> Result<Self, ValidationError> {
        let bad = |problem: &str| {
            ValidationError::new(
                field,
                name,
                problem,
                "use a name like b1 or ns-web (no '/')",
            )
        };
        if name.is_empty() {
            return Err(bad("a namespace name is required"));
        }
        if name == "." || name == ".." || name.contains('/') {
            return Err(bad("is not a valid namespace name"));
        }
        if name.len() > super::bounds::MAX_NETNS_NAME {
            return Err(bad(&format!(
                "is {} bytes long; a namespace name is at most {} bytes",
                name.len(),
                super::bounds::MAX_NETNS_NAME
            )));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace"));
        }
        Ok(Self::Named(name.to_owned()))
    }

    pub fn path(field: &str, path: &str) -> Result<Self, ValidationError> {
        if path.len() > super::bounds::MAX_PATH {
            return Err(ValidationError::new(
                field,
                path,
                format!("is longer than {} bytes", super::bounds::MAX_PATH),
                "give a shorter path",
            ));
        }
        if !path.starts_with('/') {
            return Err(ValidationError::new(
                field,
                path,
                "a namespace path must be absolute",
                "give e.g. /proc/1234/ns/net or /run/netns/NAME",
            ));
        }
        Ok(Self::Path(path.into()))
    }

    pub fn pid(field: &str, pid: u32) -> Result<Self, ValidationError> {
        if pid == 0 {
            return Err(ValidationError::new(
                field,
                "0",
                "is not a process id",
                "give the pid of a running process",
            ));
        }
        Ok(Self::Pid(pid))
    }

    /// The namespace file to open.
    pub fn file(&self) -> PathBuf {
        match self {
            NetnsRef::Named(n) => PathBuf::from("/run/netns").join(n),
            NetnsRef::Path(p) => p.clone(),
            NetnsRef::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }
}

impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsRef::Named(n) => write!(f, "netns {n}"),
            NetnsRef::Path(p) => write!(f, "netns {}", p.display()),
            NetnsRef::Pid(p) => write!(f, "netns of pid {p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_validation() {
        assert_eq!(
            NetnsRef::named("netns", "b1").expect("ok").file(),
            PathBuf::from("/run/netns/b1")
        );
        assert_eq!(
            NetnsRef::pid("pid", 42).expect("ok").file(),
            PathBuf::from("/proc/42/ns/net")
        );
        assert!(NetnsRef::named("netns", "../etc").is_err());
        assert!(NetnsRef::path("netns_path", "relative/x").is_err());
        assert_eq!(NetnsRef::pid("pid", 0).expect_err("0").field, "pid");
    }
}
