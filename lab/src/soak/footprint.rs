//! An agent process's footprint, read from /proc.

use std::path::PathBuf;

use serde::Serialize;

use crate::LabError;

/// Resident memory, open descriptors and threads of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Footprint {
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

impl Footprint {
    pub fn of(pid: u32) -> Result<Self, LabError> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let status = std::fs::read_to_string(dir.join("status"))
            .map_err(|e| LabError::Io(dir.join("status"), e))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(dir.join("fd"))
            .map_err(|e| LabError::Io(dir.join("fd"), e))?
            .count();
        Ok(Self {
            rss_kib: field("VmRSS:"),
            fds: fds as u64,
            threads: field("Threads:"),
        })
    }

    /// The larger of each figure.
    pub fn max(self, o: Self) -> Self {
        Self {
            rss_kib: self.rss_kib.max(o.rss_kib),
            fds: self.fds.max(o.fds),
            threads: self.threads.max(o.threads),
        }
    }
}
