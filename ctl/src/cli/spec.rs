//! `linkherdctl spec check|schema`: check a fleet spec offline (no agent is
//! contacted), and print the JSON Schema editors and linters use.

use std::path::PathBuf;

use clap::Subcommand;
use serde::Serialize;

use super::{CtlError, Ctx, Exit};
use crate::{output, spec::FleetSpec};

#[derive(Debug, Subcommand)]
pub enum SpecCmd {
    /// Check a spec file: every problem with its path and line:column.
    Check {
        /// The fleet spec (YAML).
        #[arg(short = 'f', long)]
        file: PathBuf,
    },
    /// Print the spec's JSON Schema.
    Schema,
}

/// What a valid spec declares, per network.
#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    hosts: Vec<String>,
    networks: Vec<NetSummary>,
}

#[derive(Debug, Serialize)]
struct NetSummary {
    name: String,
    vlan: Option<u16>,
    subnets: Vec<String>,
    hosts: Vec<String>,
    endpoints: usize,
    /// The hosts that offer container addresses, and each family's block
    /// prefix length (`/28`); empty when the network is closed to them.
    #[serde(skip_serializing_if = "Option::is_none")]
    containers: Option<String>,
}

pub fn run(ctx: &Ctx, cmd: SpecCmd) -> Result<Exit, CtlError> {
    match cmd {
        SpecCmd::Schema => {
            let text = serde_json::to_string_pretty(&FleetSpec::json_schema())
                .map_err(crate::output::OutputError::from)?;
            println!("{text}");
            Ok(Exit::Success)
        }
        SpecCmd::Check { file } => {
            let spec = FleetSpec::load(&file)?;
            let s = summarize(&file, &spec);
            output::print(ctx.format, &s, render)?;
            Ok(Exit::Success)
        }
    }
}

fn summarize(file: &std::path::Path, spec: &FleetSpec) -> Summary {
    Summary {
        file: file.display().to_string(),
        hosts: spec.hosts.keys().cloned().collect(),
        networks: spec
            .networks
            .values()
            .map(|n| NetSummary {
                name: n.name.to_string(),
                vlan: n.vlan.map(|v| v.get()),
                subnets: [&n.v4, &n.v6]
                    .into_iter()
                    .flatten()
                    .map(|p| p.subnet.to_string())
                    .collect(),
                hosts: n
                    .parents
                    .iter()
                    .map(|(h, p)| match n.vlan {
                        Some(v) => format!("{h}:{p}.{}", v.get()),
                        None => format!("{h}:{p}"),
                    })
                    .collect(),
                endpoints: n.endpoints.len(),
                containers: n.containers.as_ref().map(|c| {
                    let blocks: Vec<String> = [c.v4, c.v6]
                        .iter()
                        .flatten()
                        .map(|b| format!("/{}", b.len))
                        .collect();
                    let hosts: Vec<&str> = c.hosts.iter().map(String::as_str).collect();
                    match blocks.as_slice() {
                        [] => format!("containers on {} (asked addresses only)", hosts.join(" ")),
                        b => format!("containers on {}, blocks {}", hosts.join(" "), b.join(" ")),
                    }
                }),
            })
            .collect(),
    }
}

fn render(s: &Summary) -> String {
    let mut out = format!(
        "{}: valid — {} host(s), {} network(s)",
        s.file,
        s.hosts.len(),
        s.networks.len()
    );
    for n in &s.networks {
        let vlan = n.vlan.map(|v| format!(" vlan {v}")).unwrap_or_default();
        out.push_str(&format!(
            "\n  {}{vlan} {} on {} — {} endpoint(s)",
            n.name,
            n.subnets.join(" "),
            n.hosts.join(" "),
            n.endpoints
        ));
        if let Some(c) = &n.containers {
            out.push_str(&format!("; {c}"));
        }
    }
    out
}
