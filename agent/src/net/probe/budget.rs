//! What probes may cost: how many run at once and how many packets they
//! send per second, on the whole agent and per caller.
//!
//! Every probe holds a [`Ticket`] for its whole life — on the blocking
//! thread that runs it, not in the request's task, so a client that goes
//! away does not free its slot while the thread still runs. At most
//! [`MAX_PROBES`] probe threads exist, so a flood of slow probes cannot
//! take the blocking pool (512 threads) that every other request needs.
//! Packets are paced by token buckets: a ping waits for a token before each
//! echo request, so many fast pings share [`MAX_PPS`] between them instead
//! of adding up.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Probes running at once on one agent.
pub const MAX_PROBES: usize = 64;
/// Probes running at once for one caller (one identity): as many as a
/// fleet verification sends to one host at a time (`linkherdctl`'s 32).
pub const MAX_PROBES_PER_CALLER: usize = 32;
/// Probe packets per second on one agent.
pub const MAX_PPS: u32 = 1000;
/// Probe packets per second for one caller.
pub const MAX_PPS_PER_CALLER: u32 = 200;
/// Callers remembered at most; idle ones are forgotten beyond this.
const MAX_CALLERS: usize = 1024;

/// A probe refused for its budget: RESOURCE_EXHAUSTED, naming which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "probe budget exhausted: at most {limit} probes run at once on this agent; \
         try again when one ends"
    )]
    Agent { limit: usize },
    #[error(
        "probe budget exhausted: at most {limit} probes run at once per caller, and {who} \
         has {limit} running; try again when one ends"
    )]
    Caller { who: String, limit: usize },
}

/// A token bucket: `rate` tokens a second, at most a tenth of a second's
/// worth saved up, so a burst is short.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        let burst = (rate / 10.0).max(1.0);
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token, or says how long until there is one.
    fn try_take(&self) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = *s;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 {
            *s = (tokens - 1.0, now);
            Ok(())
        } else {
            *s = (tokens, now);
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }

    /// Blocks the calling (probe) thread until a token is taken; `false`
    /// when there is none before `deadline`.
    fn take(&self, deadline: Instant) -> bool {
        loop {
            match self.try_take() {
                Ok(()) => return true,
                Err(wait) => {
                    if Instant::now() + wait > deadline {
                        return false;
                    }
                    std::thread::sleep(wait);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Caller {
    running: Arc<Semaphore>,
    rate: Arc<Bucket>,
}

/// The agent's probe budget; one per agent, shared by its probe service.
#[derive(Debug)]
pub struct Budget {
    running: Arc<Semaphore>,
    limit: usize,
    rate: Arc<Bucket>,
    callers: Mutex<HashMap<String, Arc<Caller>>>,
    per_caller: usize,
    per_caller_pps: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(
            MAX_PROBES,
            MAX_PROBES_PER_CALLER,
            MAX_PPS,
            MAX_PPS_PER_CALLER,
        )
    }
}

impl Budget {
    pub fn new(probes: usize, per_caller: usize, pps: u32, per_caller_pps: u32) -> Self {
        Self {
            running: Arc::new(Semaphore::new(probes)),
            limit: probes,
            rate: Arc::new(Bucket::new(pps)),
            callers: Mutex::default(),
            per_caller,
            per_caller_pps,
        }
    }

    fn caller(&self, who: &str) -> Arc<Caller> {
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        if callers.len() >= MAX_CALLERS && !callers.contains_key(who) {
            // Forget callers with nothing running (their bucket refills
            // within a second anyway).
            callers.retain(|_, c| Arc::strong_count(c) > 1);
        }
        callers
            .entry(who.to_owned())
            .or_insert_with(|| {
                Arc::new(Caller {
                    running: Arc::new(Semaphore::new(self.per_caller)),
                    rate: Arc::new(Bucket::new(self.per_caller_pps)),
                })
            })
            .clone()
    }

    /// A slot for one probe by `who`, at once or not at all: a probe over
    /// budget is refused, never queued (a queue would hold the request, and
    /// its connection's slot, for as long as others' probes run).
    pub fn admit(&self, who: &str) -> Result<Ticket, Refused> {
        let caller = self.caller(who);
        let mine = caller
            .running
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Caller {
                who: linkherd_proto::model::bounds::echo(who),
                limit: self.per_caller,
            })?;
        let all = self
            .running
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Agent { limit: self.limit })?;
        Ok(Ticket {
            _slots: (mine, all),
            pacer: Pacer {
                caller: caller.rate.clone(),
                agent: self.rate.clone(),
            },
        })
    }

    /// Probes running now (for tests and diagnostics).
    pub fn running(&self) -> usize {
        self.limit.saturating_sub(self.running.available_permits())
    }
}

/// One admitted probe: its slots, freed when it is dropped, and its pacer.
#[derive(Debug)]
pub struct Ticket {
    _slots: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    pub pacer: Pacer,
}

/// Packets per second for one probe: its caller's and the agent's buckets.
#[derive(Debug, Clone)]
pub struct Pacer {
    caller: Arc<Bucket>,
    agent: Arc<Bucket>,
}

impl Pacer {
    /// No limit: the agent's own probes (address checks).
    pub fn unlimited() -> Self {
        let b = Arc::new(Bucket::new(u32::MAX));
        Self {
            caller: b.clone(),
            agent: b,
        }
    }

    /// Blocks until one packet may be sent; `false` when not before
    /// `deadline`.
    pub fn send_one(&self, deadline: Instant) -> bool {
        self.caller.take(deadline) && self.agent.take(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_refused_per_caller_then_per_agent_and_freed_on_drop() {
        let b = Budget::new(3, 2, 1000, 1000);
        let a1 = b.admit("alice").expect("1");
        let _a2 = b.admit("alice").expect("2");
        assert_eq!(
            b.admit("alice").expect_err("3rd").to_string(),
            "probe budget exhausted: at most 2 probes run at once per caller, and alice has 2 \
             running; try again when one ends"
        );
        let _b1 = b.admit("bob").expect("bob");
        assert!(matches!(b.admit("carol"), Err(Refused::Agent { .. })));
        drop(a1);
        let _c = b.admit("carol").expect("a slot came free");
    }

    #[test]
    fn packets_are_paced_at_the_rate() {
        let bucket = Bucket::new(100);
        let started = Instant::now();
        for _ in 0..60 {
            assert!(bucket.take(started + Duration::from_secs(5)));
        }
        // 10 saved up, then 50 at 100/s.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(450), "{took:?}");
        assert!(!bucket.take(Instant::now()), "none left right now");
    }
}
