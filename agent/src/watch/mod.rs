//! One kernel subscription shared by every `Watch` stream.
//!
//! Each `InterfaceService.Watch` used to open a netlink socket of its own:
//! 1100 streams from one viewer exhausted the agent's file descriptors
//! (nofile 1024) and it stopped accepting connections. The hub holds one
//! subscription ([`NetOps::watch`]) for the namespace it watches and fans
//! its events out over a broadcast channel, so descriptors do not grow with
//! streams; and it caps streams per identity and in total, answering
//! RESOURCE_EXHAUSTED with the cap that was hit.
//!
//! A subscriber that falls behind the broadcast buffer gets
//! [`NetEvent::Overrun`] and resyncs, exactly as after a kernel overrun. A
//! subscription that ends (its netlink connection died) is re-created with
//! backoff and every subscriber is told to resync, since events were lost
//! in between; while it cannot be, health reports `InterfaceService` as
//! NOT_SERVING (the reason is logged). With no subscriber left the
//! subscription is closed.

pub mod stream;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tonic::Status;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::net::{EventStream, NetError, NetEvent, NetOps};

/// Events buffered for the slowest subscriber before it must resync.
const BUFFER: usize = 1024;

/// How often an unused subscription is looked at (and then closed).
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Backoff between attempts to re-create a subscription that died.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The health service name the subscription's state is reported under.
const SERVICE: &str = "linkherd.v1.InterfaceService";

/// Caps on open `Watch` streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    /// Streams one identity (certificate name, `uid:N`) may hold open.
    pub per_identity: usize,
    /// Streams open at once over all callers.
    pub total: usize,
}

impl Default for WatchLimits {
    fn default() -> Self {
        Self {
            per_identity: 16,
            total: 256,
        }
    }
}

/// Why a stream was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error(
        "{who} already holds {cap} Watch streams, the per-identity cap \
         ([limits] watch_streams_per_identity); close one and retry"
    )]
    PerIdentity { who: String, cap: usize },
    #[error(
        "the agent already serves {cap} Watch streams, its global cap \
         ([limits] watch_streams); retry later"
    )]
    Total { cap: usize },
    #[error("the agent is shutting down; watch again once it is back")]
    Stopping,
    #[error(transparent)]
    Net(#[from] NetError),
}

impl From<WatchError> for Status {
    fn from(e: WatchError) -> Self {
        match e {
            WatchError::Net(n) => crate::error::Error::Net(n).into(),
            WatchError::Stopping => Status::unavailable(e.to_string()),
            caps => Status::resource_exhausted(caps.to_string()),
        }
    }
}

type Feed = Arc<tokio::sync::Mutex<Option<broadcast::Sender<NetEvent>>>>;

/// Streams open per identity.
type Holders = Arc<Mutex<HashMap<String, usize>>>;

/// The shared subscription of one namespace and the stream caps.
#[derive(Debug)]
pub struct WatchHub {
    net: Arc<dyn NetOps>,
    limits: WatchLimits,
    total: Arc<Semaphore>,
    holders: Holders,
    feed: Feed,
    health: std::sync::OnceLock<HealthReporter>,
    /// Set when the agent stops: every stream ends, so that connections
    /// holding one can close and shutdown is not held by them.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl WatchHub {
    pub fn new(net: Arc<dyn NetOps>, limits: WatchLimits) -> Self {
        Self {
            net,
            limits,
            total: Arc::new(Semaphore::new(limits.total)),
            holders: Arc::default(),
            feed: Arc::default(),
            health: std::sync::OnceLock::new(),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Ends every stream (they see [`Received::Stopping`]) and refuses new
    /// ones: the agent is shutting down.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Where a subscription that cannot be re-created is reported.
    pub fn report_health(&self, health: HealthReporter) {
        let _ = self.health.set(health);
    }

    /// Streams open now (all callers).
    pub fn streams(&self) -> usize {
        self.limits.total - self.total.available_permits()
    }

    /// Opens a stream for `who`, or says which cap is full. Events after
    /// this returns are delivered, so a caller that then lists links loses
    /// nothing in between.
    pub async fn subscribe(&self, who: &str) -> Result<Subscription, WatchError> {
        if *self.stopping.borrow() {
            return Err(WatchError::Stopping);
        }
        let permit = self.permit(who)?;
        let events = self.receiver().await?;
        Ok(Subscription {
            events,
            stopping: self.stopping.subscribe(),
            _permit: permit,
        })
    }

    /// A place under the same caps for a stream that is not about kernel
    /// events (`WatchConvergence`): held until dropped, and told when the
    /// agent stops.
    pub fn place(&self, who: &str) -> Result<Place, WatchError> {
        if *self.stopping.borrow() {
            return Err(WatchError::Stopping);
        }
        Ok(Place {
            stopping: self.stopping.subscribe(),
            _permit: self.permit(who)?,
        })
    }

    fn permit(&self, who: &str) -> Result<Permit, WatchError> {
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| WatchError::Total {
                cap: self.limits.total,
            })?;
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        let held = holders.entry(who.to_owned()).or_default();
        if *held >= self.limits.per_identity {
            return Err(WatchError::PerIdentity {
                who: linkherd_proto::model::bounds::echo(who),
                cap: self.limits.per_identity,
            });
        }
        *held += 1;
        Ok(Permit {
            _total: total,
            who: who.to_owned(),
            holders: self.holders.clone(),
        })
    }

    /// A receiver on the shared subscription, opening it if there is none.
    async fn receiver(&self) -> Result<broadcast::Receiver<NetEvent>, NetError> {
        let mut feed = self.feed.lock().await;
        if let Some(tx) = feed.as_ref() {
            return Ok(tx.subscribe());
        }
        let events = self.net.watch().await?;
        let (tx, rx) = broadcast::channel(BUFFER);
        *feed = Some(tx.clone());
        let cleared = self.feed.clone();
        spawn_supervised(
            "the kernel event pump",
            pump(
                Source {
                    net: self.net.clone(),
                    health: self.health.get().cloned(),
                },
                events,
                tx,
                self.feed.clone(),
            ),
            // After a panic the next stream opens a fresh subscription;
            // the open ones end (UNAVAILABLE: watch again).
            async move { *cleared.lock().await = None },
        );
        Ok(rx)
    }
}

/// Spawns `task`; if it panics, the panic is logged as an error with
/// `what` failed, and `after_panic` runs. No panic of a background task
/// goes unseen.
pub fn spawn_supervised<F, A>(what: &'static str, task: F, after_panic: A)
where
    F: std::future::Future<Output = ()> + Send + 'static,
    A: std::future::Future<Output = ()> + Send + 'static,
{
    let handle = tokio::spawn(task);
    tokio::spawn(async move {
        if let Err(e) = handle.await
            && e.is_panic()
        {
            let p = e.into_panic();
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            tracing::error!(task = what, panic = %msg, "a background task panicked");
            after_panic.await;
        }
    });
}

/// Where the pump re-subscribes, and where it reports trouble.
struct Source {
    net: Arc<dyn NetOps>,
    health: Option<HealthReporter>,
}

/// Forwards kernel events to every subscriber; re-creates a subscription
/// that died; closes it when nobody listens any more.
async fn pump(
    source: Source,
    mut events: EventStream,
    tx: broadcast::Sender<NetEvent>,
    feed: Feed,
) {
    let mut idle = tokio::time::interval(IDLE_CHECK);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                // No receiver is fine: the idle check closes the feed.
                Some(e) => { let _ = tx.send(e); }
                None => match resubscribe(&source, &tx).await {
                    Some(again) => {
                        events = again;
                        // Whatever happened in between was lost.
                        let _ = tx.send(NetEvent::Overrun);
                    }
                    None => break,
                },
            },
            _ = idle.tick() => {
                // Under the lock `receiver` takes: no subscriber can join
                // between this check and the feed being cleared.
                let mut f = feed.lock().await;
                if tx.receiver_count() == 0 {
                    *f = None;
                    return;
                }
            }
        }
    }
    let mut f = feed.lock().await;
    *f = None;
}

/// Opens the subscription again after its connection died, with backoff,
/// for as long as anybody listens. `None`: nobody does any more.
async fn resubscribe(source: &Source, tx: &broadcast::Sender<NetEvent>) -> Option<EventStream> {
    tracing::warn!("the kernel event subscription ended; re-creating it");
    let mut wait = RETRY_FIRST;
    let mut failed = false;
    while tx.receiver_count() > 0 {
        match source.net.watch().await {
            Ok(events) => {
                tracing::info!("kernel event subscription re-created");
                if failed {
                    source.report(ServingStatus::Serving).await;
                }
                return Some(events);
            }
            Err(e) => {
                tracing::error!(
                    error = %e, retry_in = ?wait, service = SERVICE,
                    "cannot re-create the kernel event subscription; health: NOT_SERVING"
                );
                if !failed {
                    failed = true;
                    source.report(ServingStatus::NotServing).await;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
    if failed {
        // Nobody listens any more; the next stream subscribes afresh.
        source.report(ServingStatus::Serving).await;
    }
    None
}

impl Source {
    async fn report(&self, status: ServingStatus) {
        if let Some(h) = &self.health {
            h.set_service_status(SERVICE, status).await;
        }
    }
}

/// A stream's place under the caps; given back when it drops.
#[derive(Debug)]
struct Permit {
    _total: OwnedSemaphorePermit,
    who: String,
    holders: Holders,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = holders.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                holders.remove(&self.who);
            }
        }
    }
}

/// One stream's view of the shared subscription. Dropping it gives the
/// stream's place under the caps back.
#[derive(Debug)]
pub struct Subscription {
    events: broadcast::Receiver<NetEvent>,
    stopping: tokio::sync::watch::Receiver<bool>,
    _permit: Permit,
}

/// A stream's place under the caps (see [`WatchHub::place`]).
#[derive(Debug)]
pub struct Place {
    stopping: tokio::sync::watch::Receiver<bool>,
    _permit: Permit,
}

impl Place {
    /// Completes when the agent stops.
    pub async fn stopping(&mut self) {
        let _ = self.stopping.wait_for(|s| *s).await;
    }
}

/// What a stream receives.
#[derive(Debug)]
pub enum Received {
    /// A kernel event; [`NetEvent::Overrun`] when this subscriber fell
    /// behind.
    Event(NetEvent),
    /// The kernel subscription is gone for good.
    Ended,
    /// The agent is shutting down.
    Stopping,
}

impl Subscription {
    pub async fn recv(&mut self) -> Received {
        tokio::select! {
            biased;
            _ = self.stopping.wait_for(|s| *s) => Received::Stopping,
            r = self.events.recv() => match r {
                Ok(e) => Received::Event(e),
                Err(broadcast::error::RecvError::Lagged(_)) => Received::Event(NetEvent::Overrun),
                Err(broadcast::error::RecvError::Closed) => Received::Ended,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_name_themselves() {
        let e = WatchError::PerIdentity {
            who: "viewer".into(),
            cap: 16,
        };
        let s = Status::from(e);
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("watch_streams_per_identity"), "{s:?}");
        let s = Status::from(WatchError::Total { cap: 256 });
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("256"), "{s:?}");
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported_and_followed_up() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn_supervised("a test task", async { panic!("boom") }, async move {
            let _ = tx.send(());
        });
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("follow-up ran")
            .expect("sent");
    }
}
