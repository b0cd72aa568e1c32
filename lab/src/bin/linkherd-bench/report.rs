//! The benchmark's results: a table for people, JSON for scripts.

use std::{fmt::Write as _, time::Duration};

use serde::Serialize;

use crate::phases::Phase;

/// One measured operation over `count` endpoints.
#[derive(Debug, Serialize)]
pub struct Row {
    pub operation: String,
    pub count: usize,
    pub total_ms: f64,
    pub per_endpoint_ms: f64,
    /// Where the agent spent it, by step (rows that ask the agent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
}

/// Latency of events, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub events: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From samples in any order; `None` without samples.
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1e3
        };
        Some(Self {
            events: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: samples.last()?.as_secs_f64() * 1e3,
        })
    }
}

/// Resident memory of an agent process, in KiB.
#[derive(Debug, Serialize)]
pub struct Memory {
    pub idle_kib: u64,
    pub endpoints: usize,
    pub with_endpoints_kib: u64,
}

/// Everything one run measured.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub count: usize,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub watch: Option<Latency>,
    pub memory: Option<Memory>,
}

impl Report {
    pub fn new(count: usize) -> Self {
        Self {
            count,
            ..Self::default()
        }
    }

    pub fn row(&mut self, what: &str, took: Duration) {
        let ms = took.as_secs_f64() * 1e3;
        self.rows.push(Row {
            operation: what.to_owned(),
            count: self.count,
            total_ms: ms,
            per_endpoint_ms: ms / self.count as f64,
            phases: Vec::new(),
        });
    }

    /// A row of `n` operations (fewer than the run's count).
    pub fn row_n(&mut self, what: &str, n: usize, took: Duration) {
        self.row(what, took);
        if let Some(r) = self.rows.last_mut() {
            r.count = n;
            r.per_endpoint_ms = r.total_ms / n.max(1) as f64;
        }
    }

    /// Appends `other`'s rows and notes.
    pub fn extend(&mut self, other: Report) {
        self.rows.extend(other.rows);
        self.notes.extend(other.notes);
    }

    /// The agent's phases of the row just added.
    pub fn phases(&mut self, phases: Vec<Phase>) {
        if let Some(r) = self.rows.last_mut() {
            r.phases = phases;
        }
    }

    pub fn note(&mut self, line: &str) {
        self.notes.push(line.to_owned());
    }

    /// The table.
    pub fn text(&self) -> String {
        let mut t = format!(
            "{:<52} {:>6} {:>13} {:>16} {:>11}\n",
            "operation", "count", "total", "per endpoint", "rate"
        );
        for r in &self.rows {
            let _ = writeln!(
                t,
                "{:<52} {:>6} {:>10.1} ms {:>10.2} ms/each {:>9.0}/s",
                r.operation,
                r.count,
                r.total_ms,
                r.per_endpoint_ms,
                r.count as f64 / (r.total_ms / 1e3)
            );
            for p in &r.phases {
                let _ = writeln!(
                    t,
                    "    {:<48} {:>6} {:>13} {:>10.3} ms/each",
                    p.name, p.spans, "", p.per_endpoint_ms
                );
            }
        }
        if let Some(w) = &self.watch {
            let _ = writeln!(
                t,
                "watch: link created -> event at the client, {} events: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                w.events, w.p50_ms, w.p99_ms, w.max_ms
            );
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                t,
                "agent process RSS: idle {} KiB; with {} endpoints {} KiB",
                m.idle_kib, m.endpoints, m.with_endpoints_kib
            );
        }
        for n in &self.notes {
            let _ = writeln!(t, "{n}");
        }
        t
    }
}
