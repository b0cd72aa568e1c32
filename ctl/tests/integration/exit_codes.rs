//! The binary's exit codes as the table in `cli::exit` promises: usage
//! errors are 64 (never clap's 2, which `plan` uses for changes), help and
//! version 0, completion scripts print, failures are 1.

use std::process::{Command, Output};

use linkherdctl::cli::Exit;

fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linkherdctl"))
        .args(args)
        .env_remove("LINKHERD_AGENT")
        .env_remove("LINKHERD_CTL_CONFIG")
        .env_remove("LINKHERD_HOST")
        .output()
        .expect("run linkherdctl")
}

fn code(args: &[&str]) -> Option<i32> {
    ctl(args).status.code()
}

#[test]
fn usage_errors_are_64_and_help_is_0() {
    let usage = Some(i32::from(Exit::Usage.code()));
    assert_eq!(code(&["--bogus"]), usage);
    assert_eq!(code(&["plan"]), usage, "plan without -f");
    assert_eq!(code(&["apply", "-f", "x.yaml", "--parallel", "0"]), usage);
    // No agent named is a usage error too; a bad one is a failure.
    assert_eq!(code(&["if", "list"]), usage);
    assert_eq!(
        code(&["--agent", "http://10.0.0.1:1", "if", "list"]),
        Some(1)
    );
    assert_eq!(code(&["--help"]), Some(0));
    assert_eq!(code(&["plan", "--help"]), Some(0));
    assert_eq!(code(&["--version"]), Some(0));
}

#[test]
fn the_long_help_has_the_exit_code_table() {
    let out = ctl(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Exit status:"), "{help}");
    assert!(help.contains("64  usage"), "{help}");
}

#[test]
fn completion_scripts_are_printed_for_each_shell() {
    for (shell, mark) in [
        ("bash", "_linkherdctl()"),
        ("zsh", "#compdef linkherdctl"),
        ("fish", "complete -c linkherdctl"),
    ] {
        let out = ctl(&["completion", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(mark), "{shell}: {script}");
    }
}

#[test]
fn a_spec_error_is_a_failure_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("fleet.yaml");
    std::fs::write(&bad, "hosts:\n  no1: {address: ftp://x}\n").expect("write");
    let out = ctl(&["spec", "check", "-f", &bad.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("hosts.no1.address"), "{err}");
}
