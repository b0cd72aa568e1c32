//! `linkherdctl apply` / `destroy` against two real agents (netns lab,
//! mTLS): the document's flat example applied, proven with probes and
//! re-applied as a no-op; a change applies only itself; a stolen address,
//! a killed agent and a concurrent apply each leave every host exactly as it
//! was (checked with `ip -j`).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use linkherd_lab::{
    self as lab, HostSpec, LabGuard, LabState,
    fleet::{
        addr_state, apply_ok, ctl, ctl_command, lab_namespaces, lab_snapshot, rogue, text,
        write_spec,
    },
    sh::ip_in,
    traffic::tcp_reaches,
};
use test_support::have_root;

async fn lab_in(name: &str) -> Option<(LabState, LabGuard)> {
    if !have_root("the fleet apply lab") {
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let state = lab::up(&dir, &HostSpec::seed(), lab::Backend::Netns, true)
        .await
        .expect("lab up");
    let guard = LabGuard(state.dir.clone());
    Some((state, guard))
}

/// A lab with `two_networks` applied: (lab, guard, the spec's path).
async fn lab_with_base(name: &str) -> Option<(LabState, LabGuard, String)> {
    let (state, guard) = lab_in(name).await?;
    let base = write_spec(
        &state.dir,
        "base.yaml",
        &two_networks(&state, "", "", false),
    );
    apply_ok(&state, &base);
    Some((state, guard, base))
}

/// Two flat networks over both hosts (this kernel has no 802.1Q): net_a
/// with b1 on no1 and b3 on no2 plus `extra_a`, net_b with b2 (unless
/// `without_b2`) and b4 plus `extra_b`. Addresses come from the IPAM.
fn two_networks(state: &LabState, extra_a: &str, extra_b: &str, without_b2: bool) -> String {
    let url = |h: &str| state.host(h).expect("host").agent_url.clone();
    let b2 = if without_b2 {
        ""
    } else {
        "      b2: {host: no1}\n"
    };
    format!(
        "hosts:\n  no1: {{address: \"{}\", parent: ens192}}\n  no2: {{address: \"{}\", parent: eth0}}\n\
         networks:\n  net_a:\n    subnet: 10.0.100.0/24\n    ip_range: 10.0.100.96/28\n    gateway: 10.0.100.33\n    \
         endpoints:\n      b1: {{host: no1}}\n      b3: {{host: no2}}\n{extra_a}  \
         net_b:\n    subnet: 10.0.200.0/24\n    endpoints:\n{b2}      b4: {{host: no2}}\n{extra_b}\
         verify: {{mesh: true, mode: mesh, timeout_ms: 500}}\n",
        url("no1"),
        url("no2")
    )
}

/// Waits (polling every millisecond) until a namespace whose name starts
/// with `prefix` exists: the moment an agent starts creating endpoints.
fn wait_for_netns(prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let started = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
            })
            .unwrap_or(false);
        if started {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing named {prefix}* appeared"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts `apply` of one new endpoint on no1 (applied first) and 24 on no2
/// in the background; returns once no2 has begun creating them.
fn apply_many_on_no2(state: &LabState) -> std::process::Child {
    let many: String = (1..=24)
        .map(|i| format!("      k{i:02}: {{host: no2}}\n"))
        .collect();
    let spec = write_spec(
        &state.dir,
        "many.yaml",
        &two_networks(state, "      b6: {host: no1}\n", &many, false),
    );
    let child = ctl_command(state, &["apply", "-y", "-f", &spec])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn apply");
    wait_for_netns(&format!("{}-k", state.host("no2").expect("no2").netns));
    child
}

fn ns_of(state: &LabState, host: &str, endpoint: &str) -> String {
    format!("{}-{endpoint}", state.host(host).expect("host").netns)
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_flat_applies_proves_itself_and_reapplies_as_a_no_op() {
    let Some((state, _guard)) = lab_in("fleet-flat").await else {
        return;
    };
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/seed-flat.yaml"),
    )
    .expect("seed-flat.yaml");
    let spec = write_spec(&state.dir, "seed-flat.yaml", &state.fleet_spec(&example));
    let no1 = state.host("no1").expect("no1").clone();
    let host_links = addr_state(&no1.netns);

    // Without a terminal and without --yes nothing is changed (issue 11,
    // problem 16: it went ahead).
    let before = lab_snapshot(&state);
    let out = ctl(&state, &["apply", "-f", &spec]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "stdin is not a terminal, so nobody can confirm this apply; nothing was changed. \
             Pass --yes (-y) to apply without asking"
        ),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(lab_snapshot(&state), before);

    let shown = apply_ok(&state, &spec);
    assert!(
        shown.starts_with(&format!(
            "no1 ({}):\n  \
             + endpoint    macvlan/node_1           eth0 in netns node_1 on ens192 (bridge), 10.0.100.100/24\n  \
             + endpoint    macvlan/node_2           eth0 in netns node_2 on ens192 (bridge), 10.0.100.101/24\n\
             Plan: 2 to create, 0 to change, 0 to delete.\n",
            no1.agent_url
        )),
        "{shown}"
    );
    let matrix: Vec<&str> = shown.lines().filter(|l| l.contains(" macvlan  ")).collect();
    assert_eq!(matrix.len(), 2, "{shown}");
    assert!(
        matrix[0].contains("node_1@no1  -") && matrix[0].contains(" ok "),
        "{shown}"
    );
    assert!(
        shown.contains("address check (RFC 5227): 2 of 2 address(es) used only by their endpoint"),
        "{shown}"
    );
    assert!(
        shown.ends_with("Apply complete: 2 change(s) confirmed on no1.\n"),
        "{shown}"
    );

    // The kernel has what the spec says: eth0 with the fixed address and a
    // default route through the document's gateway, in each namespace.
    let (n1, n2) = (
        ns_of(&state, "no1", "node_1"),
        ns_of(&state, "no1", "node_2"),
    );
    assert!(
        addr_state(&n1)
            .iter()
            .any(|l| l.starts_with("eth0 ") && l.contains(" [10.0.100.100/24 "))
    );
    assert!(
        addr_state(&n2)
            .iter()
            .any(|l| l.starts_with("eth0 ") && l.contains(" [10.0.100.101/24 "))
    );
    let routes: serde_json::Value =
        serde_json::from_str(&ip_in(&n1, &["-j", "route", "show", "default"]).expect("route"))
            .expect("json");
    assert_eq!(routes[0]["gateway"], "10.0.100.33");
    // And real traffic goes: node_1 -> node_2 over TCP.
    let reached = tcp_reaches(
        &Path::new("/run/netns").join(&n1),
        &Path::new("/run/netns").join(&n2),
        "10.0.100.101".parse().expect("ip"),
        7101,
        Duration::from_secs(2),
    )
    .expect("traffic");
    assert!(reached, "node_1 does not reach node_2");

    // Again: nothing to do, nothing touched.
    let before = lab_snapshot(&state);
    let again = apply_ok(&state, &spec);
    assert_eq!(
        again,
        format!(
            "no1 ({}): no changes\nNo changes: the fleet matches the spec.\n",
            no1.agent_url
        )
    );
    assert_eq!(lab_snapshot(&state), before);
    let out = ctl(&state, &["-o", "json", "apply", "-y", "-f", &spec]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(v["outcome"], "no-changes");
    // Only the plan ran, and the report says how long it took.
    let t = &v["timing"];
    assert!(t["plan_ms"].is_u64(), "{t}");
    for phase in ["apply_ms", "verify_ms", "confirm_ms", "rollback_ms"] {
        assert!(t[phase].is_null(), "{phase}: {t}");
    }

    // verify: the same proof, on demand, changing nothing.
    let out = ctl(&state, &["verify", "-f", &spec]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}\n{}", text(&out.stderr));
    assert_eq!(
        shown
            .lines()
            .filter(|l| l.contains(" macvlan  ") && l.contains(" ok "))
            .count(),
        2,
        "{shown}"
    );
    assert!(
        shown.ends_with("Verified: the fleet does what the spec says.\n"),
        "{shown}"
    );
    assert_eq!(lab_snapshot(&state), before);

    // destroy: both endpoints and their namespaces go; the NIC stays.
    let out = ctl(&state, &["destroy", "-y", "-f", &spec]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("- endpoint    macvlan/node_1"),
        "{}",
        text(&out.stdout)
    );
    let left: Vec<String> = lab_namespaces(&state)
        .into_iter()
        .filter(|n| n.contains("-node_"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(addr_state(&no1.netns), host_links);
    let out = ctl(&state, &["destroy", "-y", "-f", &spec]);
    assert!(
        text(&out.stdout).ends_with("No changes: the fleet matches the spec.\n"),
        "{}",
        text(&out.stdout)
    );
    // Nothing left to prove: verify names what is missing.
    let out = ctl(&state, &["verify", "-f", &spec]);
    assert_eq!(out.status.code(), Some(1));
    // Timing aside (its figures vary), stderr is exactly this.
    let stderr = text(&out.stderr);
    let (timing, said): (Vec<&str>, Vec<&str>) =
        stderr.lines().partition(|l| l.starts_with("Timing: plan "));
    assert_eq!(timing.len(), 1, "{stderr}");
    assert_eq!(
        said.iter().map(|l| format!("{l}\n")).collect::<String>(),
        "warning: the fleet differs from the spec (`linkherdctl status -f` says how); verifying \
         what is there\nerror: verification failed: endpoint(s) missing on their host: \
         node_1@no1, node_2@no1\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_plans_and_applies_only_that() {
    let Some((state, _guard)) = lab_in("fleet-change").await else {
        return;
    };
    let base_text = two_networks(&state, "", "", false);
    let base = write_spec(&state.dir, "base.yaml", &base_text);

    // A host that does not answer stops everything, named, before anything
    // changes; with --skip-unreachable the others go on without it.
    let untouched = lab_snapshot(&state);
    let with_no3 = write_spec(
        &state.dir,
        "with-no3.yaml",
        &base_text.replace(
            "networks:\n",
            "  no3: {address: \"https://127.0.0.1:1\", parent: eth0}\nnetworks:\n",
        ),
    );
    let out = ctl(&state, &["apply", "-y", "-f", &with_no3]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot reach no3 (https://127.0.0.1:1): ")
            && stderr.trim_end().ends_with("; nothing was changed"),
        "{stderr}"
    );
    assert_eq!(lab_snapshot(&state), untouched);
    let out = ctl(
        &state,
        &["apply", "-y", "-f", &with_no3, "--skip-unreachable"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: skipping unreachable host no3 (https://127.0.0.1:1): "),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains("Apply complete: 4 change(s) confirmed on no1, no2."),
        "{}",
        text(&out.stdout)
    );
    let out = ctl(&state, &["status", "-f", &base]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let before = lab_snapshot(&state);

    // Add b5 on no2, remove b2 (no1's only net_b endpoint).
    let changed = write_spec(
        &state.dir,
        "changed.yaml",
        &two_networks(&state, "      b5: {host: no2}\n", "", true),
    );
    let out = ctl(&state, &["plan", "-f", &changed]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "no1 ({}):\n  \
             - endpoint    net_b/b2                 eth0 in netns b2\n\
             no2 ({}):\n  \
             + endpoint    net_a/b5                 eth0 in netns b5 on eth0 (bridge), 10.0.100.99/24\n\
             Plan: 1 to create, 0 to change, 1 to delete.\n",
            state.host("no1").expect("no1").agent_url,
            state.host("no2").expect("no2").agent_url
        )
    );
    let shown = apply_ok(&state, &changed);
    assert!(
        shown.contains("Apply complete: 2 change(s) confirmed on no1, no2."),
        "{shown}"
    );
    let b5_row = shown
        .lines()
        .find(|l| l.contains("net_a") && l.contains(" b5@no2 "))
        .unwrap_or_else(|| panic!("no b5 row:\n{shown}"));
    assert_eq!(b5_row.matches(" ok ").count(), 2, "{shown}");

    // Exactly that changed in the kernel: b2's namespace gone, b5's new,
    // every other link the same (same index: not re-created).
    let after = lab_snapshot(&state);
    let b2 = ns_of(&state, "no1", "b2");
    let b5 = ns_of(&state, "no2", "b5");
    let mut expected: Vec<(String, Vec<String>)> =
        before.into_iter().filter(|(n, _)| *n != b2).collect();
    let b5_state = after
        .iter()
        .find(|(n, _)| *n == b5)
        .expect("b5 namespace")
        .clone();
    assert!(
        b5_state
            .1
            .iter()
            .any(|l| l.starts_with("eth0 ") && l.contains(" [10.0.100.99/24 ")),
        "{b5_state:?}"
    );
    expected.push(b5_state);
    expected.sort();
    assert_eq!(after, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stolen_address_rolls_every_host_back() {
    let Some((state, _guard, base)) = lab_with_base("fleet-stolen").await else {
        return;
    };

    // A rogue namespace on no1's wire already answers for 10.0.100.120.
    rogue(&state, "no1", "10.0.100.120/24");
    let before = lab_snapshot(&state);

    // b6 is given that address; b7 is a change on no2 too.
    let spec = write_spec(
        &state.dir,
        "stolen.yaml",
        &two_networks(
            &state,
            "      b6: {host: no1, ip: 10.0.100.120}\n",
            "      b7: {host: no2}\n",
            false,
        ),
    );
    // With the address check (the default), no1's agent finds the address
    // answered on the wire before configuring it: no1 (applied first)
    // fails, no2 is never started, nothing anywhere changes.
    let out = ctl(&state, &["apply", "-y", "-f", &spec]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: Apply failed on no1: FAILED_PRECONDITION: address check failed, nothing \
             was changed on this host: 10.0.100.120 (for net_a/b6) is already in use on the \
             wire, answered by "
        ) && stderr.contains("no2: not started: another host failed first; nothing was changed"),
        "{stderr}"
    );
    assert_eq!(lab_snapshot(&state), before);

    // Without it, b6 is made; the verification then finds two MACs
    // answering for its address, and every host is rolled back.
    let out = ctl(
        &state,
        &["apply", "-y", "-f", &spec, "--address-check-ms", "0"],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("error: verification failed (")
            && stderr.contains(
                "b6@no1 -> b6@no1 (10.0.100.120): 10.0.100.120 of b6@no1 is also answered for by "
            ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "rolled back everywhere (no1: rolled back 1 step(s); no2: rolled back 1 step(s))"
        ),
        "{stderr}"
    );
    // In the matrix, b1 and b3 fail to reach b6 (two MACs answer).
    for from in [" b1@no1 ", " b3@no2 "] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(" net_a ") && l.contains(from))
            .unwrap_or_else(|| panic!("no{from}row:\n{stdout}"));
        assert_eq!(row.matches("FAIL").count(), 1, "{stdout}");
    }
    // Every host exactly as before, to the interface index.
    assert_eq!(lab_snapshot(&state), before);
    let out = ctl(&state, &["status", "-f", &base]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_applies_one_wins_one_is_refused() {
    let Some((state, _guard, _)) = lab_with_base("fleet-race").await else {
        return;
    };
    let specs = [
        write_spec(
            &state.dir,
            "x.yaml",
            &two_networks(
                &state,
                "      x1: {host: no1}\n      x2: {host: no2}\n",
                "",
                false,
            ),
        ),
        write_spec(
            &state.dir,
            "y.yaml",
            &two_networks(
                &state,
                "      y1: {host: no1}\n      y2: {host: no2}\n",
                "",
                false,
            ),
        ),
    ];
    let children: Vec<_> = specs
        .iter()
        .map(|s| {
            ctl_command(&state, &["apply", "-y", "-f", s])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn apply")
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    let won: Vec<usize> = (0..2).filter(|i| outs[*i].status.success()).collect();
    assert_eq!(
        won.len(),
        1,
        "exactly one apply must win:\n{}\n---\n{}",
        text(&outs[0].stderr),
        text(&outs[1].stderr)
    );
    let (w, l) = (won[0], 1 - won[0]);
    let refused = text(&outs[l].stderr);
    assert!(
        refused.contains("is pending on this host; confirm or roll it back first")
            || refused.contains("changed since it was planned"),
        "{refused}"
    );
    assert!(refused.contains("nothing was changed"), "{refused}");
    // The fleet is the winner's spec, and nothing of the loser's is left.
    let out = ctl(&state, &["status", "-f", &specs[w]]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let loser = if l == 0 { "-x" } else { "-y" };
    let left: Vec<String> = lab_namespaces(&state)
        .into_iter()
        .filter(|n| n.starts_with(&format!("lh-{}-", state.id)) && n.contains(loser))
        .collect();
    assert!(left.is_empty(), "the refused apply left {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_mid_apply_leaves_both_hosts_as_before() {
    let Some((mut state, _guard, base)) = lab_with_base("fleet-kill").await else {
        return;
    };
    let before = lab_snapshot(&state);

    // no2's agent is killed while it is creating its endpoints.
    let child = apply_many_on_no2(&state);
    let no2 = state.host("no2").expect("no2").clone();
    let pid = no2.pid.expect("agent pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the agent this lab started");
    let out = child.wait_with_output().expect("wait");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: Apply failed on no2: "), "{stderr}");
    assert!(
        stderr.contains("no1: rolled back 1 step(s)"),
        "no1 was not rolled back: {stderr}"
    );

    // The restarted agent finds its journal and undoes what it had made.
    lab::restart_agent(&mut state, "no2")
        .await
        .expect("restart no2");
    assert_eq!(lab_snapshot(&state), before);
    let out = ctl(&state, &["status", "-f", &base]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_applying_rolls_back_everywhere() {
    let Some((state, _guard, base)) = lab_with_base("fleet-sigint").await else {
        return;
    };
    let before = lab_snapshot(&state);
    // Ctrl-C while no2 is creating its endpoints: no2 finishes its Apply,
    // then both hosts are rolled back.
    let child = apply_many_on_no2(&state);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("interrupt the apply this test started");
    let out = child.wait_with_output().expect("wait");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: interrupted (Ctrl-C) while applying; rolled back everywhere \
             (no1: rolled back 1 step(s); no2: rolled back 24 step(s))"
        ),
        "{stderr}"
    );
    assert_eq!(lab_snapshot(&state), before);
    let out = ctl(&state, &["status", "-f", &base]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

/// A snapshot without interface indexes: what a reboot may change (the
/// kernel numbers links anew) and what it must not (names, MACs, addresses).
fn without_indexes(snap: Vec<(String, Vec<String>)>) -> Vec<(String, Vec<String>)> {
    snap.into_iter()
        .map(|(ns, rows)| {
            let mut rows: Vec<String> = rows
                .into_iter()
                .map(|r| {
                    let mut parts: Vec<&str> = r.split(' ').collect();
                    parts.retain(|p| !p.starts_with('#'));
                    parts.join(" ")
                })
                .collect();
            rows.sort();
            (ns, rows)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebooted_host_comes_back_by_itself_without_an_apply() {
    let Some((mut state, _guard, base)) = lab_with_base("reboot").await else {
        return;
    };
    let no1 = state.host("no1").expect("no1").netns.clone();
    let before = without_indexes(lab_snapshot(&state));
    let endpoints = |snap: &[(String, Vec<String>)]| {
        snap.iter()
            .filter(|(n, _)| n.starts_with(&format!("{no1}-")))
            .count()
    };
    assert_eq!(endpoints(&before), 2, "b1 and b2 on no1: {before:?}");

    lab::reboot(&mut state, "no1").await.expect("reboot no1");
    // No apply: what the agent restored at its start is all there is.
    let after = without_indexes(lab_snapshot(&state));
    assert_eq!(
        after, before,
        "no1 as it was: the same names, MACs and addresses"
    );

    let verify = ctl(&state, &["verify", "-f", &base]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "verify after the reboot:\n{}\n{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    let status = ctl(&state, &["status", "-f", &base, "-o", "json"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let hosts: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let no1_status = hosts
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["host"] == "no1")
        .expect("no1")
        .clone();
    assert_eq!(no1_status["changes"], serde_json::json!([]));
    let c = &no1_status["convergence"];
    assert_eq!(c["policy"], "repair");
    assert_eq!(c["not_in_sync"], serde_json::json!([]), "{c}");
    assert_eq!(c["objects"]["in-sync"], 2, "{c}");
    // The audit log is written behind the agent's answers: give it a moment.
    let restores = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(state.dir.join("no1/state/audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["action"] == "restore")
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut restored = restores();
    while restored.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        restored = restores();
    }
    assert_eq!(restored.len(), 2, "b1 and b2 restored: {restored:?}");
    assert!(restored.iter().all(|r| r["result"] == "ok"), "{restored:?}");

    // stop / start: the agent alone, nothing of the host changes.
    lab::stop_agent(&mut state, "no1").expect("stop");
    assert_eq!(without_indexes(lab_snapshot(&state)), before);
    lab::restart_agent(&mut state, "no1").await.expect("start");
    assert_eq!(without_indexes(lab_snapshot(&state)), before);
}
