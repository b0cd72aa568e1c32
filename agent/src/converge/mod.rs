//! Convergence: every host keeps itself as set.
//!
//! The host's desired state is what its records say linkherd confirmed there
//! ([`Host::desired`]). A pass compares it with the kernel
//! ([`Host::drift`]), decides per object what to do ([`tracker`]: policy,
//! backoff, fights) and mends what it may ([`Host::repair`]), each repair
//! audited and announced to `WatchConvergence` streams. Passes run at start
//! (before the agent reports SERVING: the restore after a reboot), on kernel
//! events about the links the desired state hangs off (debounced), after
//! lost events, when a held repair is due, and periodically ([`runner`]).
//!
//! A pass never runs into a transaction: it holds the transactions' lock
//! while it repairs (none applies, confirms or rolls back meanwhile) and
//! leaves the objects of a pending one to it.

pub mod runner;
pub mod tracker;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::broadcast;

use crate::{
    error::Error,
    host::{
        Host, Repaired,
        drift::{Desired, Drift, Fix, ObjectKey, Seen},
    },
    leases::PromiscLeases,
    state::{audit::Audit, caller::Identity},
    txn::Transactions,
};
use tracker::{Decision, ObjectStatus, Phase, Policy, Tracker};

/// Convergence settings (`[reconcile]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub policy: Policy,
    /// Time between periodic passes.
    pub interval: Duration,
    /// Quiet time after a kernel event before a pass.
    pub debounce: Duration,
    /// How long a container's attachment whose namespace is gone stays
    /// (its runtime may still say DEL or GC) before the agent releases it.
    pub stale_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: Policy::Repair,
            interval: Duration::from_secs(300),
            debounce: Duration::from_millis(200),
            stale_grace: tracker::STALE_GRACE,
        }
    }
}

/// Why a pass ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// At start: what a reboot or crash undid is restored.
    Start,
    /// A kernel event about a link the desired state hangs off.
    Event,
    /// The kernel dropped events (ENOBUFS).
    Overrun,
    /// A held repair came due.
    Retry,
    Periodic,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Event => "event",
            Trigger::Overrun => "overrun",
            Trigger::Retry => "retry",
            Trigger::Periodic => "periodic",
        }
    }
}

/// The last pass, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastPass {
    pub at: SystemTime,
    pub took: Duration,
    pub trigger: Trigger,
    /// Why the pass could not read the kernel, when it could not.
    pub error: Option<String>,
}

/// A pass's outcome, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub drifted: usize,
    pub repaired: usize,
    pub failed: usize,
}

/// What `status` shows of the host's convergence.
#[derive(Debug, Clone)]
pub struct Report {
    pub policy: Policy,
    /// [`Desired::generation`] at the last pass.
    pub generation: u64,
    pub passes: u64,
    pub last: Option<LastPass>,
    pub objects: Vec<ObjectStatus>,
}

/// Change announced to `WatchConvergence` streams.
pub type Event = ObjectStatus;

/// Streams fall this far behind before they are told to re-read.
const EVENT_BUFFER: usize = 1024;

#[derive(Debug, Default)]
struct Book {
    tracker: Tracker,
    generation: u64,
    passes: u64,
    last: Option<LastPass>,
}

/// One host's reconciler.
#[derive(Debug)]
pub struct Reconciler {
    host: Arc<Host>,
    leases: PromiscLeases,
    audit: Arc<Audit>,
    txns: Transactions,
    settings: Settings,
    book: Mutex<Book>,
    events: broadcast::Sender<Event>,
    /// Passes run one at a time.
    running: tokio::sync::Mutex<()>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Reconciler {
    pub fn new(
        host: Arc<Host>,
        leases: PromiscLeases,
        audit: Arc<Audit>,
        txns: Transactions,
        (settings, metrics): (Settings, Arc<crate::metrics::Metrics>),
    ) -> Self {
        // Every series is there from the start, zero until a pass counts.
        metrics.set_objects(&Phase::ALL.map(Phase::as_str), &[]);
        Self {
            metrics,
            host,
            leases,
            audit,
            txns,
            settings,
            book: Mutex::new(Book {
                tracker: Tracker::new(settings.stale_grace),
                ..Book::default()
            }),
            events: broadcast::channel(EVENT_BUFFER).0,
            running: tokio::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // A panic while holding it leaves only counters half updated.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes to status changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// What `status` shows.
    pub fn report(&self) -> Report {
        let book = self.book();
        Report {
            policy: self.settings.policy,
            generation: book.generation,
            passes: book.passes,
            last: book.last.clone(),
            objects: book.tracker.statuses(),
        }
    }

    /// When the next held repair is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.book().tracker.next_due()
    }

    /// A number that moves whenever the desired state does (cheap: no
    /// copy of it).
    pub async fn desired_changes(&self) -> (u64, u64) {
        (
            self.host.desired_changes().await,
            self.leases.kept_changes().await,
        )
    }

    /// The desired state as the records have it now.
    pub async fn desired(&self) -> Desired {
        self.host.desired(self.leases.kept_on().await).await
    }

    /// One pass: check, decide, repair. An error is a kernel that could not
    /// be read; nothing was changed then.
    pub async fn pass(&self, trigger: Trigger) -> Result<Tally, Error> {
        if self.settings.policy == Policy::Off {
            return Ok(Tally::default());
        }
        let _one = self.running.lock().await;
        let started = Instant::now();
        let desired = self.desired().await;
        self.book().tracker.track(&desired.keys());
        let result = match self.host.drift(&desired).await {
            Ok(drifts) => Ok(self.act(&drifts, trigger).await),
            Err(e) => Err(e),
        };
        let mut book = self.book();
        book.generation = desired.generation();
        book.passes += 1;
        self.metrics
            .passes
            .get_or_create(&crate::metrics::Trigger {
                trigger: trigger.as_str(),
            })
            .inc();
        self.metrics
            .pass_seconds
            .observe(started.elapsed().as_secs_f64());
        self.publish_counts(&book.tracker);
        book.last = Some(LastPass {
            at: SystemTime::now(),
            took: started.elapsed(),
            trigger,
            error: result.as_ref().err().map(ToString::to_string),
        });
        result
    }

    /// Decides about each drift and repairs what may be, inside the repair
    /// window; objects that did not drift are in sync.
    async fn act(&self, drifts: &[Drift], trigger: Trigger) -> Tally {
        let window = match self.settings.policy {
            Policy::Repair => Some(self.txns.repair_window().await),
            _ => None,
        };
        let pending = |k: &ObjectKey| window.as_ref().is_some_and(|w| w.objects.contains(k));
        let now = Instant::now();
        let drifted: std::collections::BTreeSet<&ObjectKey> =
            drifts.iter().map(|d| &d.key).collect();
        let in_sync: Vec<ObjectStatus> = {
            let mut book = self.book();
            let keys: Vec<ObjectKey> = book
                .tracker
                .statuses()
                .into_iter()
                .filter(|s| s.phase != Phase::Unrecoverable && !drifted.contains(&s.key))
                .map(|s| s.key)
                .collect();
            keys.iter()
                .filter_map(|k| book.tracker.in_sync(k, now))
                .collect()
        };
        for s in in_sync {
            self.announce(s);
        }
        let mut tally = Tally {
            drifted: drifts.len(),
            ..Tally::default()
        };
        for d in drifts {
            self.book().tracker.also(&d.key);
            self.metrics
                .drift
                .get_or_create(&crate::metrics::Kind { kind: d.key.kind() })
                .inc();
            let (decision, news) = self.book().tracker.drifted(
                &d.key,
                (&d.what, &d.fix),
                self.settings.policy,
                pending(&d.key),
                Instant::now(),
            );
            if let Some(s) = news {
                self.announce(s);
            }
            if decision == Decision::Repair {
                match self.mend(d, trigger).await {
                    Some(true) => tally.repaired += 1,
                    Some(false) => tally.failed += 1,
                    None => {}
                }
            }
        }
        drop(window);
        tally
    }

    /// Repairs one drift, audited; whether it worked (`None`: superseded).
    async fn mend(&self, d: &Drift, trigger: Trigger) -> Option<bool> {
        let who = Identity::agent("reconciler");
        let action = match (trigger, &d.fix) {
            (_, Fix::Forget) => "forget",
            (_, Fix::Remove { .. }) => "remove",
            (_, Fix::Release) => "release",
            (Trigger::Start, _) => "restore",
            _ => "repair",
        };
        let result = match &d.seen {
            Seen::Promisc(_) => self.restore_promisc(d).await,
            _ => self.host.repair(d).await,
        };
        let target = d.key.to_string();
        match result {
            Ok(Repaired::Superseded) => None,
            Ok(Repaired::Done(done)) => {
                self.count_repair(d, "ok");
                let detail = format!("{}: {done}", d.what);
                self.audit.record(&who, action, &target, &detail, "ok");
                tracing::info!(object = %target, %action, %detail, "converged");
                let status = if d.fix == Fix::Forget || d.fix == Fix::Release {
                    Some(self.book().tracker.forgotten(&d.key, &d.what))
                } else if matches!(d.fix, Fix::Remove { .. }) {
                    self.book().tracker.removed(&d.key)
                } else {
                    self.book().tracker.repaired(&d.key, Ok(()), Instant::now())
                };
                if let Some(s) = status {
                    if s.phase == Phase::Fighting {
                        self.audit
                            .record(&who, "fighting", &target, &s.detail, "backing off");
                        tracing::warn!(object = %target, detail = %s.detail, "fighting another tool");
                    }
                    self.announce(s);
                }
                Some(true)
            }
            Err(e) => {
                self.count_repair(d, "error");
                let detail = d.what.clone();
                self.audit
                    .record(&who, action, &target, &detail, &format!("error: {e}"));
                tracing::warn!(object = %target, error = %e, "repair failed");
                let status =
                    self.book()
                        .tracker
                        .repaired(&d.key, Err(e.to_string()), Instant::now());
                if let Some(s) = status {
                    self.announce(s);
                }
                Some(false)
            }
        }
    }

    async fn restore_promisc(&self, d: &Drift) -> Result<Repaired, Error> {
        let Seen::Promisc(name) = &d.seen else {
            return Ok(Repaired::Superseded);
        };
        let name = linkherd_proto::model::IfName::parse("link", name)?;
        let link = self.host.link(&name).await?;
        Ok(match self.leases.restore_kept(&link).await? {
            true => Repaired::Done("promiscuous mode on".into()),
            false => Repaired::Superseded,
        })
    }

    /// Objects per kind and phase, to `/metrics`.
    fn publish_counts(&self, tracker: &Tracker) {
        let counts: Vec<_> = tracker
            .counts()
            .into_iter()
            .map(|((kind, phase), n)| ((kind, phase.as_str()), n))
            .collect();
        self.metrics
            .set_objects(&Phase::ALL.map(Phase::as_str), &counts);
    }

    fn count_repair(&self, d: &Drift, result: &'static str) {
        self.metrics
            .repairs
            .get_or_create(&crate::metrics::KindResult {
                kind: d.key.kind(),
                result,
            })
            .inc();
    }

    fn announce(&self, s: ObjectStatus) {
        // No subscriber is fine.
        let _ = self.events.send(s);
    }
}
