//! The kernel's neighbour tables (ARP and NDP). A kernel has one of each,
//! shared by every network namespace, with one size limit (`gc_thresh3`,
//! 1024 entries by default). When it is full, the kernel refuses every new
//! entry — and with it answers no ARP request that would add one, and
//! sends no packet to a neighbour it cannot add. Probes then fail with no
//! sign of why; these counters say why.

use std::path::Path;

/// The tables' statistics files (one row per CPU, hexadecimal). The kernel
/// shows them only in the initial namespace: an agent inside another one
/// (`--netns`, as in a lab) reads them through pid 1's view when it may.
const STATS: [[&str; 2]; 2] = [
    ["/proc/1/net/stat/arp_cache", "/proc/net/stat/arp_cache"],
    ["/proc/1/net/stat/ndisc_cache", "/proc/net/stat/ndisc_cache"],
];

/// How often the kernel refused a new neighbour because a table was full,
/// over both tables and every CPU; `None` when the files cannot be read.
pub fn table_fulls() -> Option<u64> {
    let counts: Vec<u64> = STATS
        .iter()
        .filter_map(|places| {
            places.iter().find_map(|f| {
                let text = std::fs::read_to_string(Path::new(f)).ok()?;
                column_sum(&text, "table_fulls")
            })
        })
        .collect();
    // Without IPv6 there is no NDP table: the ARP one still counts.
    (!counts.is_empty()).then(|| counts.iter().sum())
}

/// The sum of column `name` over the rows of a statistics file.
fn column_sum(text: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines();
    let col = lines.next()?.split_whitespace().position(|h| h == name)?;
    lines
        .map(|l| u64::from_str_radix(l.split_whitespace().nth(col)?, 16).ok())
        .sum()
}

/// What a probe's result should say when the tables filled up while it ran
/// (`before` and `after` from [`table_fulls`]).
pub fn note(before: Option<u64>, after: Option<u64>) -> Option<String> {
    let refused = after?.checked_sub(before?).filter(|n| *n > 0)?;
    Some(format!(
        "the kernel's neighbour table was full while probing ({refused} new entries refused): \
         it answers no ARP or NDP that would add one; raise net.ipv4.neigh.default.gc_thresh3 \
         (and net.ipv6.neigh.default.gc_thresh3) on this host"
    ))
}

/// The note for a probe that got no answer (`silent`), from the counters
/// read `before` it: silence is what a full table fakes, so an answered
/// probe reads nothing more.
pub async fn explain_silence(silent: bool, before: Option<u64>) -> Option<String> {
    if !silent {
        return None;
    }
    note(before, table_fulls_now().await)
}

/// [`table_fulls`] on the blocking pool, off the threads serving gRPC.
pub async fn table_fulls_now() -> Option<u64> {
    tokio::task::spawn_blocking(table_fulls)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answered_probe_gets_no_note_whatever_the_counters() {
        // From 0 refusals before, any count now would be a note if the
        // probe had been silent; answered, it is not even read.
        assert_eq!(explain_silence(false, Some(0)).await, None);
        assert_eq!(explain_silence(false, None).await, None);
        // Silent with no reading before: no claim.
        assert_eq!(explain_silence(true, None).await, None);
    }

    const SAMPLE: &str = "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n\
        00000400 00000ff2 00000c0e 00000004   001d964b 000988e8 00000002   00000000         00000000         0000011e         00006664       00000000            00006607\n\
        00000400 00000f5a 00000f3e 00000004   00173992 000666ce 00000005   00000000         00000000         00000000         00004bc2       00000000            00004b65\n";

    #[test]
    fn table_fulls_are_summed_over_cpus_by_column_name() {
        assert_eq!(column_sum(SAMPLE, "table_fulls"), Some(0x6607 + 0x4b65));
        assert_eq!(column_sum(SAMPLE, "entries"), Some(0x800));
        assert_eq!(column_sum(SAMPLE, "no_such_column"), None);
        assert_eq!(column_sum("", "table_fulls"), None);
        assert_eq!(column_sum("table_fulls\nzz\n", "table_fulls"), None);
    }

    #[test]
    fn a_note_only_when_refusals_grew() {
        assert_eq!(note(Some(5), Some(5)), None);
        assert_eq!(note(None, Some(5)), None);
        assert_eq!(note(Some(5), None), None);
        assert_eq!(note(Some(7), Some(5)), None, "counters went back: no claim");
        let n = note(Some(5), Some(9)).expect("grew");
        assert!(
            n.starts_with(
                "the kernel's neighbour table was full while probing (4 new entries refused)"
            ),
            "{n}"
        );
    }

    #[test]
    fn this_kernels_counters_are_read() {
        // The ARP table's file exists on every Linux with IPv4.
        assert!(table_fulls().is_some());
    }
}
