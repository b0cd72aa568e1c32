//! When passes run, after the one at start: on kernel events about links
//! the desired state hangs off (debounced), after lost events, when a held
//! repair comes due, and every `interval`.
//!
//! Only the host namespace is subscribed to: a socket inside an endpoint's
//! namespace would keep that namespace alive after its owner deleted it.
//! That is enough for what matters most, because the kernel tells a parent
//! when a child macvlan goes, wherever the child lives (NETDEV_CHANGEUPPER
//! arrives as RTM_NEWLINK for the parent): an endpoint deleted in its
//! namespace, or its namespace deleted, wakes the reconciler. A change that
//! leaves the link in place inside a namespace (set down, an address
//! removed) is found by the periodic pass.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use linkherd_proto::model::{IfName, split_vlan_name};

use super::{Reconciler, Trigger, tracker::Policy};
use crate::net::{EventStream, NetEvent, NetOps};

/// Wait before subscribing again after the kernel subscription failed.
const RESUBSCRIBE: Duration = Duration::from_secs(2);

/// The host links the desired state hangs off, by name and as indexed at
/// the last look.
#[derive(Debug, Default)]
struct Watched {
    names: BTreeSet<String>,
    indexes: BTreeSet<u32>,
    /// Every host link index at the last look: an event about another one
    /// is a new link, looked up once by name.
    known: BTreeSet<u32>,
    /// The desired state's change count when it was last looked at:
    /// requests change it between passes.
    seen: Option<(u64, u64)>,
}

impl Watched {
    async fn refresh(&mut self, rec: &Reconciler, net: &dyn NetOps) {
        self.seen = Some(rec.desired_changes().await);
        let d = rec.desired().await;
        let mut names = BTreeSet::new();
        for v in &d.vlans {
            names.insert(v.name.to_string());
            names.insert(v.parent.to_string());
        }
        let parents = d.endpoints.iter().map(|e| &e.parent);
        for parent in parents.chain(d.attachments.iter().map(|a| &a.parent)) {
            names.insert(parent.clone());
            if let Some((base, _)) = IfName::parse("parent", parent)
                .ok()
                .as_ref()
                .and_then(split_vlan_name)
            {
                names.insert(base.to_string());
            }
        }
        for h in &d.host_access {
            names.insert(h.name.to_string());
            names.insert(h.parent.to_string());
        }
        names.extend(d.promisc.iter().cloned());
        let links = net.links().await.unwrap_or_default();
        self.known = links.iter().map(|l| l.index).collect();
        self.indexes = links
            .iter()
            .filter(|l| names.contains(&l.name))
            .map(|l| l.index)
            .collect();
        self.names = names;
    }

    /// Whether `e` is about a watched link (or a new link with a watched
    /// name: a parent re-created gets a new index).
    async fn matters(&mut self, rec: &Reconciler, e: &NetEvent, net: &dyn NetOps) -> bool {
        if self.seen != Some(rec.desired_changes().await) {
            self.refresh(rec, net).await;
        }
        match e {
            NetEvent::Overrun => true,
            NetEvent::LinkRemoved { name, .. } => self.names.contains(name),
            NetEvent::Link { index } | NetEvent::Address { index } => {
                if self.indexes.contains(index) {
                    return true;
                }
                if !self.known.insert(*index) {
                    return false;
                }
                match net.link_by_index(*index).await {
                    Ok(l) if self.names.contains(&l.name) => {
                        self.indexes.insert(*index);
                        true
                    }
                    _ => false,
                }
            }
        }
    }
}

/// Runs passes until the task is dropped (the agent exits). `Off` runs none.
pub async fn run(rec: Arc<Reconciler>, net: Arc<dyn NetOps>) {
    let settings = rec.settings();
    if settings.policy == Policy::Off {
        return;
    }
    let mut sub: Option<EventStream> = None;
    let mut watched = Watched::default();
    let mut periodic = Instant::now() + settings.interval;
    loop {
        if sub.is_none() {
            match net.watch().await {
                Ok(s) => sub = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "reconciler: cannot subscribe to kernel events; periodic passes only until it can")
                }
            }
        }
        watched.refresh(&rec, net.as_ref()).await;
        let trigger = next_trigger(&rec, &mut sub, &mut watched, net.as_ref(), periodic).await;
        if trigger == Trigger::Periodic {
            periodic = Instant::now() + settings.interval;
        }
        if let Err(e) = rec.pass(trigger).await {
            tracing::warn!(error = %e, trigger = trigger.as_str(), "reconcile pass could not read the kernel");
        }
    }
}

/// Waits for the next reason to pass.
async fn next_trigger(
    rec: &Reconciler,
    sub: &mut Option<EventStream>,
    watched: &mut Watched,
    net: &dyn NetOps,
    periodic: Instant,
) -> Trigger {
    loop {
        let due = rec.next_due();
        let resubscribe = sub.is_none().then(|| Instant::now() + RESUBSCRIBE);
        let wake = [Some(periodic), due, resubscribe]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(periodic);
        let event = async {
            match sub.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {
                return match (due, resubscribe) {
                    (Some(d), _) if d <= Instant::now() => Trigger::Retry,
                    // Events may have been missed while unsubscribed.
                    (_, Some(_)) => Trigger::Overrun,
                    _ => Trigger::Periodic,
                };
            }
            e = event => {
                let Some(e) = e else {
                    *sub = None;
                    return Trigger::Overrun;
                };
                if !watched.matters(rec, &e, net).await {
                    continue;
                }
                let overrun = e == NetEvent::Overrun;
                tokio::time::sleep(rec.settings().debounce).await;
                let mut overrun_later = false;
                if let Some(s) = sub.as_mut() {
                    while let Ok(more) = s.try_recv() {
                        overrun_later |= more == NetEvent::Overrun;
                    }
                }
                return if overrun || overrun_later { Trigger::Overrun } else { Trigger::Event };
            }
        }
    }
}
