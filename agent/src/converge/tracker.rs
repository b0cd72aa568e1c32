//! Each desired object's convergence state, and the decisions made from
//! it: repair now or wait (backoff with jitter after a failure, spacing
//! after a success), and when a repair that keeps being undone is a fight
//! with another tool. Pure bookkeeping over an explicit clock, so the
//! decisions are tested without a kernel or a timer.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    time::{Duration, Instant, SystemTime},
};

use serde::Serialize;

use crate::host::drift::{Fix, ObjectKey};

/// First wait after a failed repair; doubled per failure up to
/// [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// Repairs of one object within [`FIGHT_WINDOW`] that make it a fight.
pub const FIGHT_REPAIRS: usize = 4;
pub const FIGHT_WINDOW: Duration = Duration::from_secs(120);
/// First wait once an object is fighting; doubled per fight up to
/// [`FIGHT_MAX`].
pub const FIGHT_FIRST: Duration = Duration::from_secs(300);
pub const FIGHT_MAX: Duration = Duration::from_secs(3600);
/// Unrecoverable objects remembered for `status` (their records are gone).
const FORGOTTEN_KEPT: usize = 256;

/// What the agent does about drift (`[reconcile] policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Repair what drifted (the default).
    Repair,
    /// Report drift; change nothing.
    Report,
    /// Neither check nor repair.
    Off,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Repair => "repair",
            Policy::Report => "report",
            Policy::Off => "off",
        }
    }
}

/// Where an object stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    InSync,
    /// Differs; reported only (policy `report`).
    Drifted,
    /// Differs, and nothing can be done until something else changes (a
    /// parent is missing, a foreign link holds the name).
    Waiting,
    /// Being repaired, or waiting for its next try after a failure.
    Repairing,
    /// Keeps being undone by something else: repairs back off further.
    Fighting,
    /// Cannot come back; its record is gone.
    Unrecoverable,
    /// Left to a pending transaction.
    Pending,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::InSync,
        Phase::Drifted,
        Phase::Waiting,
        Phase::Repairing,
        Phase::Fighting,
        Phase::Unrecoverable,
        Phase::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::InSync => "in-sync",
            Phase::Drifted => "drifted",
            Phase::Waiting => "waiting",
            Phase::Repairing => "repairing",
            Phase::Fighting => "fighting",
            Phase::Unrecoverable => "unrecoverable",
            Phase::Pending => "pending",
        }
    }
}

/// One object as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectStatus {
    pub key: ObjectKey,
    pub phase: Phase,
    /// What differs (or differed), or why it waits.
    pub detail: String,
    /// Since when it is in this phase.
    pub since: SystemTime,
    /// Failed repairs in a row.
    pub attempts: u32,
    pub next_try: Option<SystemTime>,
    pub last_error: Option<String>,
    /// Repairs made since the agent started.
    pub repairs: u32,
}

/// What to do about a drift now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Repair,
    /// Not now (backoff, waiting, pending, report only).
    Hold,
}

#[derive(Debug)]
struct Tracked {
    status: ObjectStatus,
    /// When the current drift was first seen (`None` while in sync).
    drifting_since: Option<Instant>,
    next_try: Option<Instant>,
    /// Successful repairs within [`FIGHT_WINDOW`].
    recent: VecDeque<Instant>,
    /// Fights in a row (reset once a window passes without a repair).
    fights: u32,
}

/// Every desired object's state.
#[derive(Debug)]
pub struct Tracker {
    objects: BTreeMap<ObjectKey, Tracked>,
    forgotten: VecDeque<ObjectStatus>,
    /// How long a stale attachment stays before it is released.
    stale_grace: Duration,
}

/// The default of `[reconcile] stale_grace_seconds`.
pub const STALE_GRACE: Duration = Duration::from_secs(300);

impl Default for Tracker {
    fn default() -> Self {
        Self::new(STALE_GRACE)
    }
}

/// `base` doubled `n` times, at most `max`, then ±20 % so that many
/// objects failing together do not retry together.
pub fn backoff(base: Duration, n: u32, max: Duration) -> Duration {
    let d = base.saturating_mul(1u32 << n.min(20)).min(max);
    d.mul_f64(0.8 + fastrand::f64() * 0.4)
}

/// A point in `now`'s future as wall-clock time (for display).
fn wall(at: Instant, now: Instant) -> SystemTime {
    SystemTime::now() + at.saturating_duration_since(now)
}

impl Tracker {
    pub fn new(stale_grace: Duration) -> Self {
        Self {
            objects: BTreeMap::new(),
            forgotten: VecDeque::new(),
            stale_grace,
        }
    }

    /// Makes the tracked objects those of `desired`: new ones start in
    /// sync, those no longer desired are dropped.
    pub fn track(&mut self, desired: &BTreeSet<ObjectKey>) {
        self.objects.retain(|k, _| desired.contains(k));
        for k in desired {
            self.also(k);
        }
    }

    /// Tracks `key` too (an object to remove is not desired, but is seen
    /// until it is gone).
    pub fn also(&mut self, k: &ObjectKey) {
        self.objects.entry(k.clone()).or_insert_with(|| Tracked {
            status: ObjectStatus {
                key: k.clone(),
                phase: Phase::InSync,
                detail: String::new(),
                since: SystemTime::now(),
                attempts: 0,
                next_try: None,
                last_error: None,
                repairs: 0,
            },
            drifting_since: None,
            next_try: None,
            recent: VecDeque::new(),
            fights: 0,
        });
    }

    fn get(&mut self, key: &ObjectKey) -> Option<&mut Tracked> {
        self.objects.get_mut(key)
    }

    /// `key` matches its desired state; the new status when that is news.
    pub fn in_sync(&mut self, key: &ObjectKey, now: Instant) -> Option<ObjectStatus> {
        let t = self.get(key)?;
        while t.recent.front().is_some_and(|r| now - *r > FIGHT_WINDOW) {
            t.recent.pop_front();
        }
        if t.recent.is_empty() {
            t.fights = 0;
        }
        t.drifting_since = None;
        if t.status.phase == Phase::InSync {
            return None;
        }
        let s = &mut t.status;
        s.phase = Phase::InSync;
        s.since = SystemTime::now();
        s.attempts = 0;
        s.last_error = None;
        s.next_try = None;
        Some(s.clone())
    }

    /// `key` differs (`what`, mended by `fix`): what to do now, and the new
    /// status when that is news.
    pub fn drifted(
        &mut self,
        key: &ObjectKey,
        (what, fix): (&str, &Fix),
        policy: Policy,
        pending: bool,
        now: Instant,
    ) -> (Decision, Option<ObjectStatus>) {
        let grace = self.stale_grace;
        let Some(t) = self.get(key) else {
            return (Decision::Hold, None);
        };
        let since = *t.drifting_since.get_or_insert(now);
        let mut what = what.to_owned();
        let (phase, decision) = if pending {
            (Phase::Pending, Decision::Hold)
        } else if *fix == Fix::Wait {
            (Phase::Waiting, Decision::Hold)
        } else if policy != Policy::Repair {
            (Phase::Drifted, Decision::Hold)
        } else if *fix == Fix::Release && now.duration_since(since) < grace {
            // Stale: the runtime may still say DEL or GC; released when
            // the grace is over (the runner wakes for it).
            let at = since + grace;
            t.next_try = Some(at);
            t.status.next_try = Some(wall(at, now));
            what = format!("{what}; released in {}s", (at - now).as_secs());
            (Phase::Waiting, Decision::Hold)
        } else if t.next_try.is_some_and(|at| at > now) {
            let keep = match t.status.phase {
                Phase::Fighting => Phase::Fighting,
                _ => Phase::Repairing,
            };
            (keep, Decision::Hold)
        } else {
            (Phase::Repairing, Decision::Repair)
        };
        // A fight keeps the note that says so until it is over.
        let fighting = phase == Phase::Fighting && t.status.phase == Phase::Fighting;
        let news = t.status.phase != phase || (!fighting && t.status.detail != what);
        if t.status.phase != phase {
            t.status.since = SystemTime::now();
        }
        t.status.phase = phase;
        if !fighting {
            t.status.detail = what;
        }
        (decision, news.then(|| t.status.clone()))
    }

    /// A repair of `key` ended; its new status.
    pub fn repaired(
        &mut self,
        key: &ObjectKey,
        result: Result<(), String>,
        now: Instant,
    ) -> Option<ObjectStatus> {
        let t = self.get(key)?;
        match result {
            Ok(()) => {
                t.status.repairs += 1;
                t.status.attempts = 0;
                t.status.last_error = None;
                t.recent.push_back(now);
                while t.recent.front().is_some_and(|r| now - *r > FIGHT_WINDOW) {
                    t.recent.pop_front();
                }
                let n = u32::try_from(t.recent.len()).unwrap_or(u32::MAX);
                if t.recent.len() >= FIGHT_REPAIRS {
                    t.fights += 1;
                    let wait = backoff(FIGHT_FIRST, t.fights - 1, FIGHT_MAX);
                    t.next_try = Some(now + wait);
                    t.status.phase = Phase::Fighting;
                    t.status.since = SystemTime::now();
                    t.status.detail = format!(
                        "repaired {n} times in {}s and undone each time by something else; \
                         next repair in {}s: {}",
                        FIGHT_WINDOW.as_secs(),
                        wait.as_secs(),
                        t.status.detail
                    );
                } else {
                    // Repeated repairs of one object are spaced: 1 s, 2 s, 4 s…
                    t.next_try = Some(now + backoff(RETRY_FIRST, n - 1, RETRY_MAX));
                    // The next check says if something undid it again.
                    t.status.phase = Phase::InSync;
                    t.status.since = SystemTime::now();
                    t.status.detail = format!("repaired: {}", t.status.detail);
                }
            }
            Err(e) => {
                t.status.attempts += 1;
                let wait = backoff(RETRY_FIRST, t.status.attempts - 1, RETRY_MAX);
                t.next_try = Some(now + wait);
                t.status.last_error = Some(e);
                t.status.phase = Phase::Repairing;
            }
        }
        t.status.next_try = t.next_try.map(|at| wall(at, now));
        Some(t.status.clone())
    }

    /// `key` cannot come back and was forgotten (`why`).
    pub fn forgotten(&mut self, key: &ObjectKey, why: &str) -> ObjectStatus {
        let repairs = self.objects.remove(key).map_or(0, |t| t.status.repairs);
        let status = ObjectStatus {
            key: key.clone(),
            phase: Phase::Unrecoverable,
            detail: why.to_owned(),
            since: SystemTime::now(),
            attempts: 0,
            next_try: None,
            last_error: None,
            repairs,
        };
        if self.forgotten.len() == FORGOTTEN_KEPT {
            self.forgotten.pop_front();
        }
        self.forgotten.push_back(status.clone());
        status
    }

    /// `key` was removed as no longer desired: it is tracked no more.
    pub fn removed(&mut self, key: &ObjectKey) -> Option<ObjectStatus> {
        let t = self.objects.remove(key)?;
        Some(t.status)
    }

    /// When the next held repair is due, if any is still to come (a time
    /// already past was acted on by the pass it woke, or is moot: the
    /// runner never spins on it).
    pub fn next_due(&self) -> Option<Instant> {
        let now = Instant::now();
        self.objects
            .values()
            .filter(|t| t.status.phase != Phase::InSync)
            .filter_map(|t| t.next_try)
            .filter(|at| *at > now)
            .min()
    }

    /// Every object (and those forgotten), for `status`.
    pub fn statuses(&self) -> Vec<ObjectStatus> {
        self.objects
            .values()
            .map(|t| t.status.clone())
            .chain(self.forgotten.iter().cloned())
            .collect()
    }

    /// Objects per phase.
    pub fn counts(&self) -> BTreeMap<(&'static str, Phase), usize> {
        let mut out = BTreeMap::new();
        for t in self.objects.values() {
            *out.entry((t.status.key.kind(), t.status.phase))
                .or_default() += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ObjectKey {
        ObjectKey::Endpoint {
            network: "mac_net10".into(),
            name: "b1".into(),
        }
    }

    fn tracker() -> Tracker {
        let mut t = Tracker::default();
        t.track(&BTreeSet::from([key()]));
        t
    }

    const MISSING: (&str, &Fix) = ("missing", &Fix::Make);

    #[test]
    fn a_drift_is_repaired_at_once_and_reported_in_sync_after() {
        let mut t = tracker();
        let now = Instant::now();
        let (d, news) = t.drifted(&key(), MISSING, Policy::Repair, false, now);
        assert_eq!(d, Decision::Repair);
        assert_eq!(news.map(|s| s.phase), Some(Phase::Repairing));
        let s = t.repaired(&key(), Ok(()), now).expect("tracked");
        assert_eq!((s.phase, s.repairs), (Phase::InSync, 1));
        assert_eq!(s.detail, "repaired: missing");
        assert_eq!(
            t.in_sync(&key(), now),
            None,
            "no news when the check agrees"
        );
        // Undone again: a drift, held until the spacing passes.
        let (d, news) = t.drifted(&key(), MISSING, Policy::Repair, false, now);
        assert_eq!(
            (d, news.map(|s| s.phase)),
            (Decision::Hold, Some(Phase::Repairing))
        );
    }

    #[test]
    fn report_policy_and_pending_transactions_never_repair() {
        let mut t = tracker();
        let now = Instant::now();
        let (d, s) = t.drifted(&key(), MISSING, Policy::Report, false, now);
        assert_eq!(
            (d, s.map(|s| s.phase)),
            (Decision::Hold, Some(Phase::Drifted))
        );
        let (d, s) = t.drifted(&key(), MISSING, Policy::Repair, true, now);
        assert_eq!(
            (d, s.map(|s| s.phase)),
            (Decision::Hold, Some(Phase::Pending))
        );
        let (d, s) = t.drifted(
            &key(),
            ("parent gone", &Fix::Wait),
            Policy::Repair,
            false,
            now,
        );
        assert_eq!(
            (d, s.map(|s| s.phase)),
            (Decision::Hold, Some(Phase::Waiting))
        );
    }

    #[test]
    fn failures_back_off_exponentially_with_jitter_up_to_a_minute() {
        let mut t = tracker();
        let start = Instant::now();
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..10 {
            let (d, _) = t.drifted(&key(), MISSING, Policy::Repair, false, now);
            assert_eq!(d, Decision::Repair);
            t.repaired(&key(), Err("parent refused".into()), now);
            let due = t.next_due().expect("due");
            // Not before it is due.
            let (held, _) = t.drifted(&key(), MISSING, Policy::Repair, false, now);
            assert_eq!(held, Decision::Hold);
            waits.push(due - now);
            now = due;
        }
        let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
        assert!((0.8..=1.2).contains(&secs[0]), "{secs:?}");
        assert!((1.6..=2.4).contains(&secs[1]), "{secs:?}");
        assert!((3.2..=4.8).contains(&secs[2]), "{secs:?}");
        assert!(secs.iter().all(|s| *s <= 72.0), "{secs:?}");
        assert!(secs[9] >= 48.0, "{secs:?}");
        let s = &t.statuses()[0];
        assert_eq!(
            (s.attempts, s.last_error.as_deref()),
            (10, Some("parent refused"))
        );
    }

    #[test]
    fn an_object_undone_again_and_again_is_fighting_after_a_bounded_number_of_repairs() {
        let mut t = tracker();
        let mut now = Instant::now();
        let end = now + Duration::from_secs(15);
        let mut repairs = 0;
        // Something deletes it every 200 ms for 15 s; each check finds it gone.
        while now < end {
            let (d, _) = t.drifted(&key(), MISSING, Policy::Repair, false, now);
            if d == Decision::Repair {
                repairs += 1;
                t.repaired(&key(), Ok(()), now);
            }
            now += Duration::from_millis(200);
        }
        assert_eq!(repairs, FIGHT_REPAIRS);
        let s = &t.statuses()[0];
        assert_eq!(s.phase, Phase::Fighting);
        assert!(s.detail.contains("undone each time"), "{}", s.detail);
        let due = t.next_due().expect("due");
        assert!(
            due - now >= Duration::from_secs(200),
            "backs off for minutes"
        );
    }

    #[test]
    fn objects_no_longer_desired_are_dropped_and_forgotten_ones_listed() {
        let mut t = tracker();
        let s = t.forgotten(&key(), "its namespace /proc/42/ns/net is gone");
        assert_eq!(s.phase, Phase::Unrecoverable);
        t.track(&BTreeSet::new());
        let all = t.statuses();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].phase, Phase::Unrecoverable);
    }
}
