//! What the fleet suites share: running `linkherdctl` against a lab, and
//! reading the kernel state of a lab's hosts with `ip -j` to compare before
//! and after.

use std::{
    path::Path,
    process::{Command, Output},
};

use crate::{LabState, bins, sh::ip_in};

/// `linkherdctl --config <the lab's ctl.toml> ARGS`, stdin closed (not a
/// terminal, so apply does not ask).
pub fn ctl(state: &LabState, args: &[&str]) -> Output {
    ctl_command(state, args).output().expect("run linkherdctl")
}

/// A netns lab of the seed's hosts (no1/ens192, no2/eth0) in `dir/lab`,
/// `dir` emptied first, and the guard that takes it down (for tests).
pub async fn seed_lab(dir: &Path) -> (LabState, crate::LabGuard) {
    let _ = std::fs::remove_dir_all(dir);
    let state = crate::up(
        &dir.join("lab"),
        &crate::HostSpec::seed(),
        crate::Backend::Netns,
        true,
    )
    .await
    .expect("lab up");
    let guard = crate::LabGuard(state.dir.clone());
    (state, guard)
}

/// `linkherdctl ARGS` against the agent at `url` directly, as the admin
/// client of the CA in `pki` (no config file).
pub fn ctl_at(url: &str, pki: &Path, args: &[&str]) -> Output {
    Command::new(bins::ctl().expect("linkherdctl built"))
        .arg("--agent")
        .arg(url)
        .arg("--ca")
        .arg(pki.join("ca.pem"))
        .arg("--cert")
        .arg(pki.join("client-admin.pem"))
        .arg("--key")
        .arg(pki.join("client-admin-key.pem"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run linkherdctl")
}

/// The same, to start in the background.
pub fn ctl_command(state: &LabState, args: &[&str]) -> Command {
    let mut c = Command::new(bins::ctl().expect("linkherdctl built"));
    c.arg("--config")
        .arg(state.ctl_config())
        .args(args)
        .stdin(std::process::Stdio::null());
    c
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes a spec file in `dir`; returns its path.
pub fn write_spec(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write spec");
    path.display().to_string()
}

/// Every link name in a namespace, from `ip -j link`.
pub fn links(ns: &str) -> Vec<String> {
    let out = ip_in(ns, &["-j", "link", "show"]).expect("ip -j link");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let mut names: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["ifname"].as_str().expect("ifname").to_owned())
        .collect();
    names.sort();
    names
}

/// Every named namespace (`ip -j netns list`).
pub fn namespaces() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-j", "netns", "list"])
        .output()
        .expect("ip netns list");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut names: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The named namespaces of one lab (its hosts', its switch's and its
/// endpoints', all named `lh-ID-…`): what a test may compare before and
/// after, whatever other labs on the machine do meanwhile.
pub fn lab_namespaces(state: &LabState) -> Vec<String> {
    let prefix = format!("lh-{}-", state.id);
    namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// The links of one namespace as `ip -j addr` shows them: name, index,
/// MAC and addresses. A re-created link has another index, so equal
/// snapshots mean nothing was touched.
pub fn addr_state(ns: &str) -> Vec<String> {
    let out = ip_in(ns, &["-j", "addr", "show"]).expect("ip -j addr");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let mut rows: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|l| {
            let addrs: Vec<String> = l["addr_info"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| format!("{}/{}", x["local"], x["prefixlen"]).replace('"', ""))
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{} #{} {} [{}]",
                l["ifname"].as_str().unwrap_or("?"),
                l["ifindex"],
                l["address"].as_str().unwrap_or("-"),
                addrs.join(" ")
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The whole lab as the kernel has it: every namespace of the lab (hosts
/// and their endpoints) with its links and addresses.
pub fn lab_snapshot(state: &LabState) -> Vec<(String, Vec<String>)> {
    lab_namespaces(state)
        .into_iter()
        .map(|n| {
            let s = addr_state(&n);
            (n, s)
        })
        .collect()
}

/// `linkherdctl --host HOST ARGS` against the lab.
pub fn ctl_on(state: &LabState, host: &str, args: &[&str]) -> Output {
    let mut full = vec!["--host", host];
    full.extend(args);
    ctl(state, &full)
}

/// `linkherdctl --host HOST ARGS -o json`, which must succeed: the document.
pub fn ctl_json(state: &LabState, host: &str, args: &[&str]) -> serde_json::Value {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    let out = ctl_on(state, host, &full);
    assert!(
        out.status.success(),
        "{host} {args:?}: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

/// `macvlan create` of a bridge-mode endpoint in named namespace `netns`
/// (created), with an optional address and gateway.
pub fn macvlan_create<'a>(
    network: &'a str,
    name: &'a str,
    parent: &'a str,
    netns: &'a str,
    ip: Option<&'a str>,
    gateway: Option<&'a str>,
) -> Vec<&'a str> {
    let mut args = vec![
        "macvlan",
        "create",
        "--network",
        network,
        "--name",
        name,
        "--parent",
        parent,
        "--mode",
        "bridge",
        "--netns",
        netns,
        "--create-netns",
    ];
    if let Some(ip) = ip {
        args.extend(["--ip", ip]);
    }
    if let Some(gw) = gateway {
        args.extend(["--gateway", gw]);
    }
    args
}

/// A fleet spec for a seed lab's two hosts (no1 on ens192, no2 on eth0)
/// with `rest` after the hosts (`networks:` and on).
pub fn seed_spec(state: &LabState, rest: &str) -> String {
    let url = |h: &str| {
        state
            .host(h)
            .map(|h| h.agent_url.clone())
            .unwrap_or_default()
    };
    format!(
        "hosts:\n  no1: {{address: \"{}\", parent: ens192}}\n  no2: {{address: \"{}\", parent: eth0}}\n{rest}",
        url("no1"),
        url("no2")
    )
}

/// `linkherdctl apply -y -f spec` on a test's lab; panics (naming the
/// output) unless it exits 0. Its stdout.
pub fn apply_ok(state: &LabState, spec: &str) -> String {
    let out = ctl(state, &["apply", "-y", "-f", spec]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A namespace that is not linkherd's on `host`'s wire (a macvlan off the
/// host's NIC) answering for `cidr`'s address, named for the lab so that
/// `down` removes it: its name and MAC. Panics (for tests) when it cannot.
pub fn rogue(state: &LabState, host: &str, cidr: &str) -> (String, String) {
    let h = state.host(host).expect("lab host").clone();
    let ns = format!("lh-{}-rogue", state.id);
    crate::sh::ip(&["netns", "add", &ns]).expect("rogue netns");
    ip_in(
        &h.netns,
        &[
            "link", "add", "rogue0", "link", &h.nic, "type", "macvlan", "mode", "bridge",
        ],
    )
    .expect("rogue link");
    ip_in(&h.netns, &["link", "set", "rogue0", "netns", &ns]).expect("move");
    ip_in(&ns, &["addr", "add", cidr, "dev", "rogue0"]).expect("addr");
    ip_in(&ns, &["link", "set", "rogue0", "up"]).expect("up");
    let link: serde_json::Value =
        serde_json::from_str(&ip_in(&ns, &["-j", "link", "show", "rogue0"]).expect("link"))
            .expect("ip -j");
    let mac = link[0]["address"].as_str().expect("mac").to_owned();
    (ns, mac)
}
