//! A bounded soak of one lab agent (issue 11's proof): for a set time,
//! concurrent Watch streams, probes, reads and commit-confirmed applies
//! within the agent's caps, plus clients that go over them on purpose (a
//! viewer opening more Watch streams than its cap, an operator starting more
//! probes than its budget). It reports requests served, p50/p99 latency per
//! RPC, errors — none expected beyond the deliberate refusals — and the
//! agent's RSS, descriptors and threads before and after, which must not
//! grow beyond [`BOUNDS`].
//!
//! Run by `linkherd-lab soak` (any duration) and by the netns lab suite
//! (60 s in CI).

mod footprint;
mod load;

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;

pub use footprint::Footprint;
pub use load::{OVER_PROBE_BUDGET, OVER_WATCH_CAP};

use crate::{LabError, LabState};

/// How long and how hard.
#[derive(Debug, Clone, Copy)]
pub struct SoakOptions {
    pub duration: Duration,
    /// Watch streams held for the whole run (one viewer; its cap is 16).
    pub watchers: usize,
    /// Loops of Ping and Arp between the two hosts' endpoints.
    pub probers: usize,
    /// Loops of GetState, InterfaceService.List and MacvlanService.List.
    pub readers: usize,
}

impl Default for SoakOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(60),
            watchers: 8,
            probers: 4,
            readers: 4,
        }
    }
}

/// Growth allowed from the start of the load to its end (measured after
/// the clients left and the runtime's idle threads timed out).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bounds {
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

pub const BOUNDS: Bounds = Bounds {
    rss_kib: 16 * 1024,
    fds: 8,
    threads: 4,
};

/// Latency of one RPC over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RpcStats {
    pub served: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What the soak saw.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub seconds: f64,
    pub served: u64,
    pub rpcs: BTreeMap<String, RpcStats>,
    pub watch_events: u64,
    /// Refusals the over-cap clients asked for, by kind.
    pub deliberate_refusals: BTreeMap<String, u64>,
    /// Everything else that failed (the first 20 in full).
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub start: Footprint,
    pub peak: Footprint,
    pub end: Footprint,
    pub bounds: Bounds,
}

impl SoakReport {
    /// Why the soak failed; empty when it passed.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.errors > 0 {
            p.push(format!("{} errors: {:?}", self.errors, self.first_errors));
        }
        for kind in [OVER_WATCH_CAP, OVER_PROBE_BUDGET] {
            if self.deliberate_refusals.get(kind).copied().unwrap_or(0) == 0 {
                p.push(format!("no refusal for {kind}: the cap was not enforced"));
            }
        }
        let grew = |what: &str, start: u64, end: u64, bound: u64| {
            (end > start + bound).then(|| format!("{what} grew {start} -> {end} (bound +{bound})"))
        };
        p.extend(grew(
            "RSS KiB",
            self.start.rss_kib,
            self.end.rss_kib,
            self.bounds.rss_kib,
        ));
        p.extend(grew("fds", self.start.fds, self.end.fds, self.bounds.fds));
        p.extend(grew(
            "threads",
            self.start.threads,
            self.end.threads,
            self.bounds.threads,
        ));
        p
    }

    /// The report as a person reads it.
    pub fn text(&self) -> String {
        let mut s = format!(
            "soak: {:.0} s, {} requests served, {} watch events, {} errors\n",
            self.seconds, self.served, self.watch_events, self.errors
        );
        s.push_str("  rpc                               served     p50 ms   p99 ms   max ms\n");
        for (rpc, r) in &self.rpcs {
            s.push_str(&format!(
                "  {rpc:<32} {:>7} {:>10.2} {:>8.2} {:>8.2}\n",
                r.served, r.p50_ms, r.p99_ms, r.max_ms
            ));
        }
        for (kind, n) in &self.deliberate_refusals {
            s.push_str(&format!("  deliberate refusals, {kind}: {n}\n"));
        }
        for (what, f) in [
            ("start", &self.start),
            ("peak", &self.peak),
            ("end", &self.end),
        ] {
            s.push_str(&format!(
                "  agent {what:<5} RSS {:>6} KiB, {:>3} fds, {:>3} threads\n",
                f.rss_kib, f.fds, f.threads
            ));
        }
        s
    }
}

/// Runs the soak against the lab's first host (its endpoints probe the
/// second's); needs a netns lab of at least two hosts.
pub async fn run(state: &LabState, opts: SoakOptions) -> Result<SoakReport, LabError> {
    let [a, b, ..] = state.hosts.as_slice() else {
        return Err(LabError::State("the soak needs two hosts".into()));
    };
    let pid = a
        .pid
        .ok_or_else(|| LabError::State(format!("{} has no agent process", a.name)))?;
    let clients = load::Clients::connect(state, a, b).await?;
    clients.prepare(b).await?;
    let start = Footprint::of(pid)?;
    let (rec, seconds) = clients.run(opts, pid).await;
    drop(clients);
    // Idle runtime threads time out after 10 s; connections close at once.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let end = Footprint::of(pid)?;
    Ok(rec.report(seconds, start, end))
}
