//! Running a command in a test: its stdout, or a panic with its stderr.

use std::process::Command;

/// Runs `cmd args…` and returns its stdout; panics with the command line and
/// its stderr when it fails, so the test's message says what went wrong.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text(&out.stdout)
}

/// Bytes a command printed, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
