//! The reachability matrix a verification prints: a row per prober, a
//! column per target; `ok` with the round trip, `isolated`, `FAIL`/`LEAK`,
//! `??` where a probe could not be run (inconclusive), `-` for itself and
//! `.` where nothing was asked; then the address checks and every failure.

use std::collections::HashMap;

use crate::{
    fleet::verify::{Check, Member, ProbeOutcome},
    output,
};

pub fn render(members: &[Member], outcomes: &[ProbeOutcome]) -> String {
    let labels: Vec<String> = members.iter().map(Member::label).collect();
    // Each cell's probes looked up, not searched for: 200 endpoints make
    // 40,000 cells over thousands of probes.
    let mut by_pair: HashMap<(&str, &str), Vec<&ProbeOutcome>> = HashMap::new();
    for o in outcomes.iter().filter(|o| o.check != Check::Address) {
        by_pair
            .entry((o.from.as_str(), o.to.as_str()))
            .or_default()
            .push(o);
    }
    let mut t = output::table();
    let mut header = vec!["network".to_owned(), "from \\ to".to_owned()];
    header.extend(labels.iter().cloned());
    t.set_header(header);
    for (a, from) in members.iter().zip(&labels) {
        let mut row = vec![a.network.clone(), from.clone()];
        for to in &labels {
            let mine = by_pair.get(&(from.as_str(), to.as_str()));
            row.push(cell(from == to, mine.map_or(&[][..], Vec::as_slice)));
        }
        t.add_row(row);
    }
    let mut out = vec![t.to_string()];
    if let Some(line) = sampled(members, outcomes) {
        out.push(line);
    }
    let addr: Vec<&ProbeOutcome> = outcomes
        .iter()
        .filter(|o| o.check == Check::Address)
        .collect();
    if !addr.is_empty() {
        let free = addr.iter().filter(|o| o.ok()).count();
        out.push(format!(
            "address check (RFC 5227): {free} of {} address(es) used only by their endpoint",
            addr.len()
        ));
    }
    for o in outcomes.iter().filter(|o| !o.ok()) {
        out.push(format!(
            "{} {} {} -> {} ({}): {}",
            if o.result.inconclusive() {
                "INCONCLUSIVE"
            } else {
                "FAILED"
            },
            o.check.as_str(),
            o.from,
            o.to,
            o.address,
            o.detail()
        ));
    }
    out.join("\n")
}

/// When reach probes covered fewer pairs than the mesh would: how many.
fn sampled(members: &[Member], outcomes: &[ProbeOutcome]) -> Option<String> {
    let probed: std::collections::BTreeSet<(&str, &str)> = outcomes
        .iter()
        .filter(|o| o.check == Check::Reach)
        .map(|o| (o.from.as_str(), o.to.as_str()))
        .collect();
    let mut per_network: std::collections::BTreeMap<&str, usize> = Default::default();
    for m in members {
        *per_network.entry(&m.network).or_default() += 1;
    }
    let all: usize = per_network.values().map(|n| n * (n - 1)).sum();
    (!probed.is_empty() && probed.len() < all).then(|| {
        format!(
            "reach: {} of {all} endpoint pairs probed (verify.mode sampled: every pair of hosts \
             of each network, every endpoint once; `.` = not probed; mode mesh probes all)",
            probed.len()
        )
    })
}

/// One cell: `itself`, or the probes from its row's member to its
/// column's.
fn cell(itself: bool, mine: &[&ProbeOutcome]) -> String {
    if itself {
        return "-".into();
    }
    match mine.first().map(|o| o.check) {
        None => ".".into(),
        Some(Check::Isolation) if mine.iter().all(|o| o.ok()) => "isolated".into(),
        Some(Check::Isolation) => "LEAK".into(),
        Some(_) if mine.iter().all(|o| o.ok()) => {
            let rtts: Vec<u32> = mine.iter().filter_map(|o| o.result.rtt_us()).collect();
            let avg = rtts.iter().map(|r| f64::from(*r)).sum::<f64>() / rtts.len().max(1) as f64;
            format!("ok {:.2}ms", avg / 1000.0)
        }
        Some(_) if mine.iter().any(|o| o.result.inconclusive()) => "??".into(),
        Some(_) => "FAIL".into(),
    }
}

#[cfg(test)]
mod tests {
    use linkherd_proto::model::NetnsRef;

    use super::*;
    use crate::fleet::verify::ProbeResult;

    fn member(network: &str, name: &str, host: &str, addrs: &[&str]) -> Member {
        Member {
            network: network.into(),
            name: name.into(),
            host: host.into(),
            netns: NetnsRef::Named(name.into()),
            ifname: "eth0".into(),
            addresses: addrs.iter().map(|a| a.parse().expect("ip")).collect(),
            mac: format!("02:00:00:00:00:{:02x}", name.len()),
        }
    }

    fn outcome(from: &Member, to: &Member, result: ProbeResult) -> ProbeOutcome {
        let check = match &result {
            ProbeResult::Free => Check::Address,
            ProbeResult::Isolated | ProbeResult::Leak { .. } => Check::Isolation,
            _ => Check::Reach,
        };
        ProbeOutcome {
            check,
            network: from.network.clone(),
            from: from.label(),
            to: to.label(),
            address: to.addresses[0],
            result,
            retried: false,
        }
    }

    #[test]
    fn the_matrix_shows_each_pair_and_lists_failures() {
        let m = vec![
            member("mac_net10", "b1", "no1", &["172.16.10.10"]),
            member("mac_net10", "b3", "no2", &["172.16.10.11", "fd00::11"]),
            member("mac_net20", "b2", "no1", &["172.16.20.10"]),
        ];
        let reached = ProbeResult::Reached {
            received: 3,
            sent: 3,
            avg_us: 610,
        };
        let o = vec![
            outcome(&m[0], &m[0], ProbeResult::Free),
            outcome(&m[0], &m[1], reached),
            outcome(
                &m[1],
                &m[0],
                ProbeResult::NoArpAnswer {
                    timeout_ms: 500,
                    note: String::new(),
                },
            ),
            outcome(&m[0], &m[2], ProbeResult::Isolated),
            outcome(
                &m[2],
                &m[0],
                ProbeResult::Leak {
                    its_network: "mac_net10".into(),
                },
            ),
        ];
        let text = render(&m, &o);
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        assert_eq!(
            lines,
            [
                " network    from \\ to  b1@no1  b3@no2     b2@no1",
                " mac_net10  b1@no1     -       ok 0.61ms  isolated",
                " mac_net10  b3@no2     FAIL    -          .",
                " mac_net20  b2@no1     LEAK    .          -",
                "address check (RFC 5227): 1 of 1 address(es) used only by their endpoint",
                "FAILED reach b3@no2 -> b1@no1 (172.16.10.10): no ARP answer for 172.16.10.10 within 500 ms",
                "FAILED isolation b2@no1 -> b1@no1 (172.16.10.10): b1@no1 (mac_net10) answered ARP \
                 for 172.16.10.10 from b2@no1 of network mac_net20: the networks share a link",
            ]
        );
    }

    #[test]
    fn a_sampled_verification_says_how_many_pairs_it_probed() {
        let m = vec![
            member("n", "a1", "no1", &["10.0.0.1"]),
            member("n", "a2", "no2", &["10.0.0.2"]),
            member("n", "a3", "no3", &["10.0.0.3"]),
        ];
        let reached = || ProbeResult::Reached {
            received: 3,
            sent: 3,
            avg_us: 500,
        };
        let o = vec![
            outcome(&m[0], &m[1], reached()),
            outcome(&m[1], &m[2], reached()),
            outcome(&m[2], &m[0], reached()),
        ];
        let text = render(&m, &o);
        assert!(
            text.contains("reach: 3 of 6 endpoint pairs probed (verify.mode sampled"),
            "{text}"
        );
        let all: Vec<ProbeOutcome> = (0..3)
            .flat_map(|i| (0..3).map(move |j| (i, j)))
            .filter(|(i, j)| i != j)
            .map(|(i, j)| outcome(&m[i], &m[j], reached()))
            .collect();
        assert!(!render(&m, &all).contains("endpoint pairs probed"));
    }
}
