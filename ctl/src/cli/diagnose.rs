//! `linkherdctl probe diagnose --from HOST/NAME --to HOST/NAME`: finds both
//! endpoints through the config file's hosts, runs the diagnosis
//! ([`crate::diagnose`]) and prints its steps and verdict; exit 0 only when
//! `from` reaches `to`.

use super::{CtlError, Ctx, Exit};
use crate::{
    config::Selection,
    diagnose::{self, Report, Side},
    output,
};

/// `no1/b1` -> (`no1`, `b1`).
fn split(s: &str) -> Result<(&str, &str), CtlError> {
    s.split_once('/')
        .filter(|(h, e)| !h.is_empty() && !e.is_empty())
        .ok_or_else(|| CtlError::Usage(format!("{s:?} is not HOST/ENDPOINT, e.g. no1/b1")))
}

/// The endpoint `spec` names, on its host from the config file.
async fn side(ctx: &Ctx, spec: &str) -> Result<Side, CtlError> {
    let (host, name) = split(spec)?;
    let sel = Selection {
        host: Some(host.to_owned()),
        agent: None,
        ..ctx.selection.clone()
    };
    let (target, _) = sel.resolve()?;
    let channel = target.connect().await?;
    Ok(Side::find(channel, host, name).await?)
}

pub async fn run(ctx: &Ctx, from: &str, to: &str) -> Result<Exit, CtlError> {
    let a = side(ctx, from).await?;
    let b = side(ctx, to).await?;
    let report = diagnose::diagnose(&a, &b).await?;
    output::print(ctx.format, &report, text)?;
    Ok(if report.verdict.is_ok() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn text(r: &Report) -> String {
    let mut out: Vec<String> = r
        .steps
        .iter()
        .map(|s| {
            format!(
                "{} {:<10} {}",
                if s.ok { "ok  " } else { "FAIL" },
                s.layer.as_str(),
                s.detail
            )
        })
        .collect();
    out.push(format!("verdict: {}", r.verdict));
    out.join("\n")
}
