//! `linkherdctl certs init|issue`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use linkherd_proto::model::Role;
use serde::Serialize;

use super::{CtlError, Ctx, Exit};
use crate::{certs, output};

#[derive(Debug, Subcommand)]
pub enum CertsCmd {
    /// Create a fleet CA (ca.pem, ca-key.pem) in DIR.
    Init {
        /// The directory for the CA's files.
        #[arg(long)]
        dir: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Replace an existing CA (its certificates stop being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Issue an agent certificate (--agent) or a client certificate (--client).
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["agent", "client"])))]
pub struct IssueArgs {
    /// The CA's directory; the certificate and its key are written there.
    #[arg(long)]
    dir: PathBuf,
    /// Agent name; the certificate is valid for it and every --san.
    #[arg(long)]
    agent: Option<String>,
    /// Extra names the agent is reached by: IP addresses or DNS names.
    #[arg(long, requires = "agent")]
    san: Vec<String>,
    /// Client name (the identity in the audit log).
    #[arg(long, requires = "role")]
    client: Option<String>,
    /// The client's role.
    #[arg(long, requires = "client", value_parser = parse_role)]
    role: Option<Role>,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

#[derive(Debug, Serialize)]
struct Written {
    cert: PathBuf,
    key: PathBuf,
}

pub fn run(ctx: &Ctx, cmd: CertsCmd) -> Result<Exit, CtlError> {
    let issued = match cmd {
        CertsCmd::Init { dir, days, force } => certs::init(&dir, days, force)?,
        CertsCmd::Issue(a) => match (a.agent, a.client, a.role) {
            (Some(agent), _, _) => certs::issue_agent(&a.dir, &agent, &a.san, a.days)?,
            (None, Some(client), Some(role)) => certs::issue_client(&a.dir, &client, role, a.days)?,
            _ => {
                return Err(CtlError::Usage(
                    "give --agent NAME [--san ...] or --client NAME --role ROLE".into(),
                ));
            }
        },
    };
    let w = Written {
        cert: issued.cert,
        key: issued.key,
    };
    output::print(ctx.format, &w, |w| {
        format!("wrote {}\nwrote {}", w.cert.display(), w.key.display())
    })?;
    Ok(Exit::Success)
}
