//! How long each phase of a fleet run took: what an operator of a large
//! fleet needs to see where the time goes (and what `--parallel` buys).

use std::{
    fmt,
    time::{Duration, Instant},
};

use serde::{Serialize, Serializer};

/// The wall time of each phase that ran; a phase that did not run is
/// `None` (a verify has no apply, a rollout that failed has no confirm).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Phases {
    /// Reading every host and planning its part.
    #[serde(rename = "plan_ms", serialize_with = "ms")]
    pub plan: Option<Duration>,
    /// The pending transactions on every host that has changes.
    #[serde(rename = "apply_ms", serialize_with = "ms")]
    pub apply: Option<Duration>,
    /// The probes.
    #[serde(rename = "verify_ms", serialize_with = "ms")]
    pub verify: Option<Duration>,
    /// Confirming everywhere.
    #[serde(rename = "confirm_ms", serialize_with = "ms")]
    pub confirm: Option<Duration>,
    /// Rolling back everywhere.
    #[serde(rename = "rollback_ms", serialize_with = "ms")]
    pub rollback: Option<Duration>,
}

/// Milliseconds, as reports give times.
fn ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}

impl Phases {
    fn all(&self) -> [(&'static str, Option<Duration>); 5] {
        [
            ("plan", self.plan),
            ("apply", self.apply),
            ("verify", self.verify),
            ("confirm", self.confirm),
            ("rollback", self.rollback),
        ]
    }

    /// The phases that ran, end to end.
    pub fn total(&self) -> Duration {
        self.all().iter().filter_map(|(_, d)| *d).sum()
    }
}

/// `plan 0.81 s, apply 3.52 s, verify 8.10 s, confirm 0.12 s (total 12.55 s)`.
impl fmt::Display for Phases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ran: Vec<String> = self
            .all()
            .iter()
            .filter_map(|(name, d)| d.map(|d| format!("{name} {:.2} s", d.as_secs_f64())))
            .collect();
        write!(
            f,
            "{} (total {:.2} s)",
            ran.join(", "),
            self.total().as_secs_f64()
        )
    }
}

/// Runs `f` and stores how long it took in `slot`.
pub async fn timed<T>(slot: &mut Option<Duration>, f: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = f.await;
    *slot = Some(start.elapsed());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_phases_that_ran_are_shown_and_summed() {
        let p = Phases {
            plan: Some(Duration::from_millis(810)),
            apply: Some(Duration::from_millis(3520)),
            verify: None,
            confirm: None,
            rollback: Some(Duration::from_millis(130)),
        };
        assert_eq!(
            p.to_string(),
            "plan 0.81 s, apply 3.52 s, rollback 0.13 s (total 4.46 s)"
        );
        assert_eq!(
            serde_json::to_value(p).expect("json"),
            serde_json::json!({
                "plan_ms": 810, "apply_ms": 3520, "verify_ms": null,
                "confirm_ms": null, "rollback_ms": 130
            })
        );
    }

    #[tokio::test]
    async fn timed_stores_the_wall_time() {
        let mut slot = None;
        let v = timed(&mut slot, async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            7
        })
        .await;
        assert_eq!(v, 7);
        assert!(slot.is_some_and(|d| d >= Duration::from_millis(20)));
    }
}
