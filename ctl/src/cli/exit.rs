//! Exit codes: one table, for the shell, the long help and docs/cli.md.
//! A code means one thing: in particular a usage error is never 2, which
//! `plan` and `status` use for "there are changes".

use std::process::ExitCode;

/// What a run of `linkherdctl` tells the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; `plan`/`status`: no changes; `verify`: everything holds.
    Success,
    /// Failed: an agent refused, a host did not answer, a bad spec or file,
    /// TLS, an apply rolled back or cancelled, a verification or probe failed.
    Failure,
    /// `plan`/`status`: the fleet differs from the spec; `probe tcp`: refused.
    Changes,
    /// `probe arp`: the address is answered by more than one machine.
    Duplicate,
    /// The command line is wrong (EX_USAGE from sysexits.h).
    Usage,
}

impl Exit {
    pub const ALL: [Exit; 5] = [
        Exit::Success,
        Exit::Failure,
        Exit::Changes,
        Exit::Duplicate,
        Exit::Usage,
    ];

    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Changes => 2,
            Exit::Duplicate => 3,
            Exit::Usage => 64,
        }
    }

    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => {
                "success; plan/status: no changes; verify: everything holds; probe: answered"
            }
            Exit::Failure => {
                "failure: an agent refused or failed, a host did not answer, a bad spec, file or \
                 certificate, an apply rolled back or cancelled, a verification or probe failed"
            }
            Exit::Changes => "plan/status: the fleet differs from the spec; probe tcp: refused",
            Exit::Duplicate => "probe arp: more than one machine answers for the address",
            Exit::Usage => {
                "usage: the command line is wrong (unknown or missing argument, no agent)"
            }
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// The table as plain text, for the long help.
pub fn table() -> String {
    let mut out = String::from("Exit status:\n");
    for e in Exit::ALL {
        out.push_str(&format!("  {:>2}  {}\n", e.code(), e.meaning()));
    }
    out.trim_end().to_owned()
}
