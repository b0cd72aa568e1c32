//! The CLI reference, generated from the clap definitions so it cannot
//! drift: `docs/cli.md` ([`markdown`]) and one man page per command
//! ([`man_pages`]). A test regenerates both and compares them with the
//! committed files.

use clap::{Arg, Command, CommandFactory};

use super::{Cli, exit::Exit};

/// The command line as built, bin names filled in (`linkherdctl host info`).
fn command() -> Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// Every command, depth first, without clap's `help` subcommands.
fn walk<'a>(cmd: &'a Command, out: &mut Vec<&'a Command>) {
    out.push(cmd);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        walk(sub, out);
    }
}

/// `docs/cli.md`: every command with its usage and options, the global
/// options once, and the exit codes.
pub fn markdown() -> String {
    let root = command();
    let mut all = Vec::new();
    walk(&root, &mut all);
    let mut out = String::from(
        "# linkherdctl command reference\n\n\
         <!-- Generated from the clap definitions by linkherdctl::cli::docs::markdown; do not \
         edit. Refresh with: LINKHERD_BLESS=1 cargo test -p linkherdctl --test integration docs:: -->\n\n",
    );
    out.push_str(&text(root.get_long_about().or(root.get_about())));
    out.push_str("\n\n## Exit status\n\n| Code | Meaning |\n|---:|---|\n");
    for e in Exit::ALL {
        out.push_str(&format!("| {} | {} |\n", e.code(), cell(e.meaning())));
    }
    out.push_str("\n## Global options\n\nEvery command takes these.\n\n");
    out.push_str(&options(root.get_arguments().filter(|a| a.is_global_set())));
    for cmd in all.iter().skip(1) {
        section(cmd, &mut out);
    }
    out
}

fn section(cmd: &Command, out: &mut String) {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    out.push_str(&format!("\n## `{name}`\n\n"));
    out.push_str(&text(cmd.get_long_about().or(cmd.get_about())));
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage);
    out.push_str(&format!("\n\n```\n{usage}\n```\n"));
    let own: Vec<&Arg> = cmd.get_arguments().filter(|a| shown(a)).collect();
    if !own.is_empty() {
        out.push('\n');
        out.push_str(&options(own.into_iter()));
    }
    let subs: Vec<&Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    if !subs.is_empty() {
        out.push_str("\n| Command | Description |\n|---|---|\n");
        for s in subs {
            let about = text(s.get_about());
            out.push_str(&format!("| `{}` | {} |\n", s.get_name(), cell(&about)));
        }
    }
}

/// An argument of the command itself (global options are listed once).
fn shown(a: &Arg) -> bool {
    !a.is_global_set() && !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version")
}

fn options<'a>(args: impl Iterator<Item = &'a Arg>) -> String {
    let mut out = String::from("| Option | Description |\n|---|---|\n");
    for a in args {
        out.push_str(&format!("| `{}` | {} |\n", spelling(a), cell(&describe(a))));
    }
    out
}

/// `-o, --output <OUTPUT>`, `--yes`, or `<NAME>` for a positional.
fn spelling(a: &Arg) -> String {
    let value = a
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| a.get_id().as_str().to_ascii_uppercase());
    if a.is_positional() {
        return format!("<{value}>");
    }
    let mut names: Vec<String> = a.get_short().map(|s| format!("-{s}")).into_iter().collect();
    names.extend(a.get_long().map(|l| format!("--{l}")));
    let takes_value = a.get_num_args().is_some_and(|n| n.takes_values());
    if takes_value {
        format!("{} <{value}>", names.join(", "))
    } else {
        names.join(", ")
    }
}

/// Help text, then possible values, default and environment variable.
fn describe(a: &Arg) -> String {
    let mut out = sentence(&text(a.get_long_help().or(a.get_help())));
    let values: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    let takes_value = a.get_num_args().is_some_and(|n| n.takes_values());
    if takes_value && !values.is_empty() {
        out.push_str(&format!(" Values: {}.", values.join(", ")));
    }
    let defaults: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() {
        out.push_str(&format!(" Default: `{}`.", defaults.join(",")));
    }
    if let Some(env) = a.get_env() {
        out.push_str(&format!(" Environment: `{}`.", env.to_string_lossy()));
    }
    out.trim().to_owned()
}

/// clap drops the final period of a one-line help; notes follow it.
fn sentence(s: &str) -> String {
    match s.trim_end().chars().last() {
        None => String::new(),
        Some('.' | '!' | '?' | ')' | ':') => s.trim_end().to_owned(),
        Some(_) => format!("{}.", s.trim_end()),
    }
}

fn text(s: Option<&clap::builder::StyledStr>) -> String {
    s.map(ToString::to_string).unwrap_or_default()
}

/// A table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// One man page per command: `linkherdctl.1`, `linkherdctl-host-info.1`, …
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let root = command();
    let mut all = Vec::new();
    walk(&root, &mut all);
    all.into_iter()
        .map(|cmd| {
            let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
            let mut page = Vec::new();
            // Every page names the version, not only the top command's.
            let cmd = cmd.clone().version(env!("CARGO_PKG_VERSION"));
            clap_mangen::Man::new(cmd).render(&mut page)?;
            Ok((format!("{name}.1"), page))
        })
        .collect()
}
