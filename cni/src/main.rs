//! `linkherd-cni`: the CNI plugin. A runtime runs it with the verb and the
//! container in the environment and the network configuration on stdin; it
//! asks the host's linkherd-agent over its unix socket and prints the
//! result, or the error, as the CNI specification says.

use std::io::{Read, Write};

use linkherd_cni::{CniError, CniVersion, Code, Invocation, call, config::MAX_CONFIG};

fn main() -> std::process::ExitCode {
    let answer = answer();
    let (json, ok) = match answer {
        Ok(Some(v)) => (Some(v), true),
        Ok(None) => (None, true),
        Err((e, v)) => (Some(e.to_json(v.as_str())), false),
    };
    if let Some(json) = json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{json}");
    }
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

fn answer() -> Result<Option<serde_json::Value>, (CniError, CniVersion)> {
    let inv = Invocation::from_env(std::env::vars_os()).map_err(|e| (e, CniVersion::NEWEST))?;
    let mut stdin = Vec::new();
    if inv.verb != linkherd_cni::Verb::Version {
        let limit = u64::try_from(MAX_CONFIG + 1).unwrap_or(u64::MAX);
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut stdin)
            .map_err(|e| {
                (
                    CniError::new(
                        Code::Io,
                        format!("cannot read stdin: {e}"),
                        "give the network configuration on stdin",
                    ),
                    CniVersion::NEWEST,
                )
            })?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            (
                CniError::new(
                    Code::Io,
                    format!("cannot start: {e}"),
                    "see the host's limits",
                ),
                CniVersion::NEWEST,
            )
        })?;
    rt.block_on(call::run(&inv, &stdin))
}
