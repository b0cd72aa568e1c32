//! Private network namespaces with test-unique names, removed when the
//! guard drops — also when the test fails.

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use crate::cmd::run;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name no other test (in this or another process) uses: the process id,
/// a sequence number and the caller's tag.
pub fn unique_name(tag: &str) -> String {
    format!(
        "lh-t{}-{}-{tag}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// A named network namespace with `lo` up, deleted on drop.
#[derive(Debug)]
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(tag: &str) -> Self {
        let name = unique_name(tag);
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    /// A guard for a namespace the code under test creates by `name`:
    /// deleted by name on drop, on failure too.
    pub fn guard(name: String) -> Self {
        Self { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip -n NS ARGS...`, panicking with its stderr on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ip -j -d link show DEV`, parsed.
    pub fn link_json(&self, dev: &str) -> serde_json::Value {
        let out = self.ip(&["-j", "-d", "link", "show", "dev", dev]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
        v[0].clone()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
