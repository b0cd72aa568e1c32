//! `linkherdctl`: the linkherd command-line client.

use std::process::ExitCode;

use clap::Parser;
use linkherdctl::cli::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
