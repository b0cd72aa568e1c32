//! Progress of fleet-wide work on stderr, drawn from the engine's
//! [`fleet::Progress`] events: live spinners and bars on a terminal
//! (indicatif), one plain line per finished task otherwise, so that logs of
//! scripted runs still say what happened on which host.

use std::{
    collections::BTreeMap,
    io::IsTerminal,
    sync::Mutex,
    time::{Duration, Instant},
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::fleet::{
    self,
    rollout::{HostFailure, Pending},
    verify::ProbeOutcome,
};

/// The display all tasks of one command share.
#[derive(Debug)]
pub struct Progress {
    /// `None`: not a terminal (or quiet), print finished tasks as lines.
    multi: Option<MultiProgress>,
    quiet: bool,
    /// Hosts applying, by name.
    hosts: Mutex<BTreeMap<String, Task>>,
    /// The verification's probe counter.
    probes: Mutex<Option<Task>>,
}

/// One unit of work shown on its own line: a host's apply, the probes.
#[derive(Debug)]
pub struct Task {
    bar: Option<ProgressBar>,
    label: String,
    started: Instant,
    quiet: bool,
}

impl Progress {
    /// Live display when stderr is a terminal; `quiet` shows nothing (for
    /// structured output, whose reader wants the document alone).
    pub fn new(quiet: bool) -> Self {
        let live = !quiet && std::io::stderr().is_terminal();
        Self {
            multi: live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            quiet,
            hosts: Mutex::default(),
            probes: Mutex::default(),
        }
    }

    /// A spinner labelled `label` saying `msg` until it finishes.
    fn spinner(&self, label: &str, msg: &str) -> Task {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {prefix:<8} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(crate::output::terminal(label).into_owned());
            b.set_message(crate::output::terminal(msg).into_owned());
            b.enable_steady_tick(Duration::from_millis(100));
            b
        });
        self.task(bar, label)
    }

    /// A bar counting `len` steps.
    fn counter(&self, label: &str, len: u64) -> Task {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(len));
            b.set_style(
                ProgressStyle::with_template("  {prefix:<8} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_prefix(label.to_owned());
            b
        });
        self.task(bar, label)
    }

    fn task(&self, bar: Option<ProgressBar>, label: &str) -> Task {
        Task {
            bar,
            label: label.to_owned(),
            started: Instant::now(),
            quiet: self.quiet,
        }
    }
}

impl Task {
    /// One more step done (counters).
    fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// Ends the task with a last word, kept on screen (or printed).
    fn finish(&self, ok: bool, msg: &str) {
        let mark = if ok { "ok" } else { "FAILED" };
        let secs = self.started.elapsed().as_secs_f64();
        match &self.bar {
            Some(b) => {
                b.set_style(
                    ProgressStyle::with_template("{prefix:<10} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.set_prefix(format!(
                    "{mark:<2} {}",
                    crate::output::terminal(&self.label)
                ));
                b.finish_with_message(format!("{} ({secs:.2} s)", crate::output::terminal(msg)));
            }
            None if !self.quiet => eprintln!(
                "{}",
                crate::output::terminal(&format!("{}: {mark}: {msg} ({secs:.2} s)", self.label))
            ),
            None => {}
        }
    }
}

impl fleet::Progress for Progress {
    fn applying(&self, host: &str, changes: usize) {
        let task = self.spinner(host, &format!("applying {changes} change(s)"));
        if let Ok(mut hosts) = self.hosts.lock() {
            hosts.insert(host.to_owned(), task);
        }
    }

    fn applied(&self, host: &str, result: Result<&Pending, &HostFailure>) {
        let Some(task) = self.hosts.lock().ok().and_then(|mut h| h.remove(host)) else {
            return;
        };
        match result {
            Ok(p) => task.finish(
                true,
                &format!(
                    "{} change(s) applied, pending confirmation ({})",
                    p.applied, p.txn_id
                ),
            ),
            Err(f) => task.finish(false, &f.to_string()),
        }
    }
}

impl fleet::ProbeProgress for Progress {
    fn probing(&self, total: usize) {
        let task = self.counter("verify", total as u64);
        if let Ok(mut p) = self.probes.lock() {
            *p = Some(task);
        }
    }

    fn probed(&self, _outcome: &ProbeOutcome) {
        if let Ok(p) = self.probes.lock()
            && let Some(t) = p.as_ref()
        {
            t.inc();
        }
    }

    fn probes_done(&self, outcomes: &[ProbeOutcome]) {
        let Some(task) = self.probes.lock().ok().and_then(|mut p| p.take()) else {
            return;
        };
        let failed = outcomes.iter().filter(|o| !o.ok()).count();
        task.finish(
            failed == 0,
            &format!("{} probe(s), {failed} failed", outcomes.len()),
        );
    }
}
