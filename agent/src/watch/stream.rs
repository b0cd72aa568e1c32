//! One Watch stream: the snapshot, the sync marker, then each change the
//! hub's kernel subscription announces, read back from the kernel and
//! compared with what this stream last sent; after lost events (an
//! overrun), everything compared again. The API layer turns its events
//! into protobuf; this module knows nothing of the wire.

use std::{collections::HashMap, sync::Arc};

use linkherd_proto::model::Interface;
use tokio::sync::mpsc;

use crate::{
    leases::PromiscLeases,
    net::{NetError, NetEvent, NetOps},
    watch::{Received, Subscription},
};

/// What a Watch stream reports, in order: every link that exists, then
/// `Synced`, then changes.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    Existing(Interface),
    Synced,
    Added(Interface),
    Changed {
        interface: Interface,
        fields: Vec<&'static str>,
    },
    Removed {
        index: u32,
        name: String,
    },
}

/// Why a stream ended before its client left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The kernel event subscription ended; the client should watch again.
    KernelStreamEnded,
    /// The agent is shutting down.
    Stopping,
}

/// Reads links as a stream reports them: with their promiscuous-mode lease.
#[derive(Debug, Clone)]
pub struct LinkReader {
    pub net: Arc<dyn NetOps>,
    pub leases: PromiscLeases,
}

impl LinkReader {
    /// Every link, annotated.
    pub async fn links(&self) -> Result<Vec<Interface>, NetError> {
        let mut links = self.net.links().await?;
        self.leases.annotate(&mut links).await;
        Ok(links)
    }

    /// One link as it is now, annotated.
    pub async fn link(&self, index: u32) -> Result<Interface, NetError> {
        let mut iface = self.net.link_by_index(index).await?;
        iface.promisc_lease = self.leases.lease_of(index).await;
        Ok(iface)
    }
}

/// Turns kernel events into Watch events for one subscriber.
#[derive(Debug)]
pub struct Watcher {
    pub links: LinkReader,
    pub tx: mpsc::Sender<Result<WatchEvent, StreamEnd>>,
}

impl Watcher {
    async fn send(&self, event: WatchEvent) -> bool {
        self.tx.send(Ok(event)).await.is_ok()
    }

    /// Sends `snapshot` and the sync marker, then follows `events` until
    /// the client leaves or the subscription ends.
    pub async fn run(self, snapshot: Vec<Interface>, mut events: Subscription) {
        let mut known: HashMap<u32, Interface> = HashMap::new();
        for iface in snapshot {
            known.insert(iface.index, iface.clone());
            if !self.send(WatchEvent::Existing(iface)).await {
                return;
            }
        }
        if !self.send(WatchEvent::Synced).await {
            return;
        }
        loop {
            let event = tokio::select! {
                () = self.tx.closed() => return,
                e = events.recv() => e,
            };
            let end = match event {
                Received::Event(e) => {
                    if self.follow(&mut known, e).await {
                        continue;
                    }
                    return;
                }
                Received::Ended => StreamEnd::KernelStreamEnded,
                Received::Stopping => StreamEnd::Stopping,
            };
            let _ = self.tx.send(Err(end)).await;
            return;
        }
    }

    /// Reports one kernel event; false when the client has gone.
    async fn follow(&self, known: &mut HashMap<u32, Interface>, event: NetEvent) -> bool {
        match event {
            NetEvent::Link { index } | NetEvent::Address { index } => {
                self.refresh(known, index).await
            }
            NetEvent::LinkRemoved { index, name } => match known.remove(&index) {
                Some(_) => self.send(WatchEvent::Removed { index, name }).await,
                None => true,
            },
            NetEvent::Overrun => self.resync(known).await,
        }
    }

    /// Re-reads one link and reports how it differs from what was last sent.
    async fn refresh(&self, known: &mut HashMap<u32, Interface>, index: u32) -> bool {
        match self.links.link(index).await {
            Ok(now) => self.report(known, now).await,
            Err(NetError::NotFound { .. }) => match known.remove(&index) {
                Some(old) => {
                    self.send(WatchEvent::Removed {
                        index,
                        name: old.name,
                    })
                    .await
                }
                None => true,
            },
            Err(e) => {
                tracing::warn!(error = %e, index, "cannot read a changed link");
                true
            }
        }
    }

    async fn report(&self, known: &mut HashMap<u32, Interface>, now: Interface) -> bool {
        let event = match known.get(&now.index) {
            None => WatchEvent::Added(now.clone()),
            Some(old) => {
                let fields = old.changed_fields(&now);
                if fields.is_empty() {
                    return true;
                }
                WatchEvent::Changed {
                    interface: now.clone(),
                    fields,
                }
            }
        };
        known.insert(now.index, now);
        self.send(event).await
    }

    /// After lost events: compare everything with the kernel again.
    async fn resync(&self, known: &mut HashMap<u32, Interface>) -> bool {
        let Ok(links) = self.links.links().await else {
            return true;
        };
        let present: Vec<u32> = links.iter().map(|l| l.index).collect();
        let gone: Vec<u32> = known
            .keys()
            .copied()
            .filter(|i| !present.contains(i))
            .collect();
        for index in gone {
            if let Some(old) = known.remove(&index)
                && !self
                    .send(WatchEvent::Removed {
                        index,
                        name: old.name,
                    })
                    .await
            {
                return false;
            }
        }
        for link in links {
            if !self.report(known, link).await {
                return false;
            }
        }
        true
    }
}
