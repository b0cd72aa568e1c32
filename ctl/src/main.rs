//! `linkherdctl`: the linkherd command-line client.

use std::process::ExitCode;

use clap::Parser;
use linkherdctl::cli::{Cli, Exit, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(&e),
    };
    match run(cli).await {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {}", linkherdctl::output::terminal(&e.to_string()));
            e.exit().into()
        }
    }
}

/// `--help` and `--version` succeed; any other parse error is a usage
/// error, exit 64, never clap's 2 (which `plan` uses for "changes").
fn usage(e: &clap::Error) -> ExitCode {
    // Printing can only fail when stdout/stderr is gone; the code still tells.
    let _ = e.print();
    if e.exit_code() == 0 {
        Exit::Success.into()
    } else {
        Exit::Usage.into()
    }
}
