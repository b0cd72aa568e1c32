//! Running system commands (`ip`) with errors that carry their stderr.

use std::process::Command;

#[derive(Debug, thiserror::Error)]
#[error("`{cmd}` failed: {detail}")]
pub struct ShError {
    pub cmd: String,
    pub detail: String,
}

/// Runs `program args…`, returning stdout; a non-zero exit is an error with
/// the command line and its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, ShError> {
    let cmd = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ShError {
            cmd: cmd.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(ShError {
            cmd,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS…`.
pub fn ip(args: &[&str]) -> Result<String, ShError> {
    run("ip", args)
}

/// `ip -n NS ARGS…`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String, ShError> {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    run("ip", &full)
}
