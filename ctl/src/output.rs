//! Rendering: human tables by default, JSON or YAML for scripts.

use comfy_table::{Table, presets::NOTHING};
use linkherd_proto::model::{Interface, LinkDetails};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// A value that could not be written as JSON or YAML.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_saphyr::ser::Error),
}

/// Serialises `value` as JSON or YAML; `None` for table output, which the
/// caller renders itself.
pub fn structured<T: Serialize>(format: Format, value: &T) -> Result<Option<String>, OutputError> {
    match format {
        Format::Table => Ok(None),
        Format::Json => Ok(Some(serde_json::to_string_pretty(value)?)),
        Format::Yaml => Ok(Some(serde_saphyr::to_string(value)?.trim_end().to_owned())),
    }
}

/// One JSON document on one line (`watch`: one per event, for `jq`).
pub fn json_line<T: Serialize>(value: &T) -> Result<String, OutputError> {
    Ok(serde_json::to_string(value)?)
}

/// Prints `value` in `format`, using `table` for human output.
pub fn print<T: Serialize>(
    format: Format,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<(), OutputError> {
    match structured(format, value)? {
        Some(s) => println!("{}", terminal(&s)),
        None => println!("{}", terminal(&table(value))),
    }
    Ok(())
}

/// `text` safe for a terminal: every control character but newline and
/// tab written as its escape (`\u{1b}`, `\r`). Names and messages come
/// from agents, and through them from whatever a tenant wrote into its own
/// namespace: nothing linkherdctl prints may drive the operator's terminal.
pub fn terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A borderless table, as every listing uses.
pub fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t
}

/// `on`/`off` with the kernel's counter, e.g. `on (1)`; the counter is what
/// tells whether the NIC really accepts other hosts' frames.
pub fn promisc_cell(i: &Interface) -> String {
    let flag = if i.promiscuous { "on" } else { "off" };
    let mut s = format!("{flag} ({})", i.promiscuity);
    if let Some(l) = &i.promisc_lease {
        s.push_str(&format!(
            " lease {}s->{}",
            l.remaining_seconds,
            if l.revert_to { "on" } else { "off" }
        ));
    }
    s
}

fn kind_cell(i: &Interface) -> String {
    let base = if i.kind_name.is_empty() {
        serde_json::to_value(i.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    } else {
        i.kind_name.clone()
    };
    match &i.details {
        Some(LinkDetails::Macvlan { mode, .. }) => format!("{base} {}", mode.as_str()),
        Some(LinkDetails::Vlan { id, protocol, .. }) => {
            format!("{base} {} {id}", protocol.as_str())
        }
        None => base,
    }
}

fn state_cell(i: &Interface) -> String {
    format!(
        "{}/{}",
        if i.admin_up { "up" } else { "down" },
        i.oper_state.as_str()
    )
}

/// The `if list` table.
pub fn interface_table(ifaces: &[Interface]) -> String {
    let mut t = table();
    t.set_header([
        "INDEX",
        "NAME",
        "KIND",
        "PARENT",
        "MAC",
        "MTU",
        "STATE",
        "PROMISC",
        "ADDRESSES",
    ]);
    for i in ifaces {
        t.add_row([
            i.index.to_string(),
            i.name.clone(),
            kind_cell(i),
            i.parent.clone().unwrap_or_else(|| "-".into()),
            i.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            i.mtu.to_string(),
            state_cell(i),
            promisc_cell(i),
            i.addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    t.to_string()
}

/// The `if get` view: everything `ip -d -s link` and `ifconfig` show.
pub fn interface_detail(i: &Interface) -> String {
    let mut t = table();
    let mut row = |k: &str, v: String| {
        t.add_row([k.to_owned(), v]);
    };
    row("name", format!("{} (index {})", i.name, i.index));
    row("kind", kind_cell(i));
    if let Some(p) = &i.parent {
        row("parent", p.clone());
    }
    if let Some(m) = &i.master {
        row("master", m.clone());
    }
    row(
        "mac",
        i.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
    );
    row(
        "mtu",
        format!("{} (range {}..{})", i.mtu, i.min_mtu, i.max_mtu),
    );
    row("state", state_cell(i));
    row("flags", format!("<{}>", i.flags.join(",")));
    row("promiscuous", promisc_cell(i));
    if let Some(LinkDetails::Vlan { reorder_header, .. }) = &i.details {
        row(
            "reorder_hdr",
            if *reorder_header { "on" } else { "off" }.into(),
        );
    }
    if let Some(LinkDetails::Macvlan { source_macs, .. }) = &i.details
        && !source_macs.is_empty()
    {
        {
            row(
                "source macs",
                source_macs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
    }
    for a in &i.addresses {
        row(
            if a.addr().is_ipv4() { "inet" } else { "inet6" },
            a.to_string(),
        );
    }
    if let Some(alias) = &i.alias {
        row("alias", alias.clone());
    }
    let c = &i.counters;
    row(
        "RX",
        format!(
            "packets {}  bytes {}  errors {}  dropped {}  overruns {}  frame {}",
            c.rx_packets,
            c.rx_bytes,
            c.rx_errors,
            c.rx_dropped,
            c.rx_over_errors,
            c.rx_frame_errors
        ),
    );
    row(
        "TX",
        format!(
            "packets {}  bytes {}  errors {}  dropped {}  carrier {}  collisions {}",
            c.tx_packets, c.tx_bytes, c.tx_errors, c.tx_dropped, c.tx_carrier_errors, c.collisions
        ),
    );
    t.to_string()
}

/// `--color`: whether plans are painted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour for a person at a terminal who has not set NO_COLOR.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to paint stdout. `auto` gives colour only to a person at a
    /// terminal who has not asked for none (<https://no-color.org>).
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

#[cfg(test)]
mod terminal_tests {
    use super::terminal;

    #[test]
    fn control_characters_from_agents_never_reach_the_terminal() {
        assert_eq!(terminal("b1\tok\n"), "b1\tok\n");
        assert_eq!(
            terminal("ghost\u{1b}[2J\r\u{7}\u{9b}31m"),
            "ghost\\u{1b}[2J\\r\\u{7}\\u{9b}31m"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_table_shows_promisc_count_and_addresses() {
        let mut i = linkherd_proto::model::interface_sample();
        i.promiscuous = true;
        i.promiscuity = 2;
        let out = interface_table(&[i]);
        assert!(out.contains("on (2)"), "{out}");
        assert!(out.contains("172.25.22.109/22"), "{out}");
        assert!(out.contains("00:50:56:b0:80:c6"), "{out}");
    }

    #[test]
    fn json_and_yaml_are_structured() {
        let i = linkherd_proto::model::interface_sample();
        let json = structured(Format::Json, &i).expect("json").expect("some");
        let v: serde_json::Value = serde_json::from_str(&json).expect("parse");
        assert_eq!(v["name"], "ens192");
        assert_eq!(v["oper_state"], "UP");
        let yaml = structured(Format::Yaml, &i).expect("yaml").expect("some");
        assert!(yaml.contains("name: ens192"), "{yaml}");
        assert_eq!(structured(Format::Table, &i).expect("table"), None);
    }
}
