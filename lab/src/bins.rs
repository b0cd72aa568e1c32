//! Finding the project's binaries: next to the running executable (an
//! installed or `cargo build` tree), or one level up from a test binary in
//! `target/*/deps`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot find the `{0}` binary next to this program; build it with `cargo build --workspace --bins` (or set {1})"
)]
pub struct NotFound(pub &'static str, pub &'static str);

/// Path of binary `name`; `env` names a variable that overrides it.
pub fn find(name: &'static str, env: &'static str) -> Result<PathBuf, NotFound> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|_| NotFound(name, env))?;
    let mut dir = exe.parent().map(PathBuf::from).ok_or(NotFound(name, env))?;
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidate = dir.join(name);
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(NotFound(name, env))
    }
}

pub fn agent() -> Result<PathBuf, NotFound> {
    find("linkherd-agent", "LINKHERD_AGENT_BIN")
}

pub fn ctl() -> Result<PathBuf, NotFound> {
    find("linkherdctl", "LINKHERDCTL_BIN")
}

/// The CNI plugin.
pub fn cni() -> Result<PathBuf, NotFound> {
    find("linkherd-cni", "LINKHERD_CNI_BIN")
}

/// Where `scripts/` builds the static agent for guests.
pub const GUEST_TARGET_DIR: &str = "target/guest";

/// The statically linked agent that vm-backend guests run: built with
/// `RUSTFLAGS="-C target-feature=+crt-static" cargo build --target
/// x86_64-unknown-linux-gnu --target-dir target/guest --bin linkherd-agent`
/// (scripts/build-guest-agent.sh).
pub fn guest_agent() -> Result<PathBuf, NotFound> {
    guest_bin("linkherd-agent", "LINKHERD_GUEST_AGENT_BIN")
}

/// The statically linked CNI plugin the guests carry, built next to
/// [`guest_agent`].
pub fn guest_cni() -> Result<PathBuf, NotFound> {
    guest_bin("linkherd-cni", "LINKHERD_GUEST_CNI_BIN")
}

fn guest_bin(name: &'static str, env: &'static str) -> Result<PathBuf, NotFound> {
    const WHAT: &str = "static guest binaries (scripts/build-guest-agent.sh)";
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|_| NotFound(WHAT, env))?;
    // target/debug[/deps]/X -> target/guest/x86_64-unknown-linux-gnu/release/NAME
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(PathBuf::from);
    target
        .map(|t| t.join("guest/x86_64-unknown-linux-gnu/release").join(name))
        .filter(|p| p.is_file())
        .ok_or(NotFound(WHAT, env))
}
