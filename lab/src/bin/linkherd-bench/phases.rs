//! Where the agent's time goes: the wall time of its `create.*`,
//! `attach.*`, `detach.*` and `txn.*` spans, summed per name while one
//! benchmark row runs. The agent opens these spans at debug level around
//! each step of a create (lock wait, lookup, parent, record, link,
//! configure), of an attach and a detach, and around each journal write; a normal agent's subscriber never enables them, so they cost it
//! nothing. Spans overlap when requests run in parallel, so a row's phases
//! add up to its wall time only when its requests run one at a time (a
//! transaction).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;
use tracing::{Subscriber, span};
use tracing_subscriber::{
    Layer,
    filter::{FilterFn, Filtered},
    layer::Context,
    registry::LookupSpan,
};

/// Time summed per span name, shared with the benchmark.
#[derive(Debug, Clone, Default)]
pub struct Phases(Arc<Mutex<BTreeMap<&'static str, (Duration, u64)>>>);

/// One phase of a row: its spans' summed wall time per endpoint.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub spans: u64,
    pub per_endpoint_ms: f64,
}

/// When a span opened, kept in its extensions.
struct Opened(Instant);

impl Phases {
    /// The layer to install: only the agent's spans, no events.
    pub fn layer<S>(&self) -> Filtered<Self, FilterFn, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let only_spans: FilterFn =
            FilterFn::new(|m| m.is_span() && m.target().starts_with("linkherd_agent"));
        self.clone().with_filter(only_spans)
    }

    /// What was summed since the last call, per endpoint of `count`.
    pub fn take(&self, count: usize) -> Vec<Phase> {
        let summed = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        summed
            .into_iter()
            .map(|(name, (took, spans))| Phase {
                name,
                spans,
                per_endpoint_ms: took.as_secs_f64() * 1e3 / count.max(1) as f64,
            })
            .collect()
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Phases {
    fn on_new_span(&self, _: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Opened(Instant::now()));
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(opened) = span.extensions().get::<Opened>().map(|o| o.0) else {
            return;
        };
        let mut summed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let slot = summed.entry(span.name()).or_default();
        slot.0 += opened.elapsed();
        slot.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[tokio::test]
    async fn a_span_is_summed_under_its_name_and_taken_once() {
        let phases = Phases::default();
        let subscriber = tracing_subscriber::registry().with(phases.layer());
        let _guard = tracing::subscriber::set_default(subscriber);
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(5))
                .instrument(tracing::debug_span!(target: "linkherd_agent::x", "create.link"))
                .await;
        }
        // Not the agent's: not summed.
        async {}
            .instrument(tracing::debug_span!(target: "other", "create.link"))
            .await;
        let taken = phases.take(2);
        assert_eq!(taken.len(), 1, "{taken:?}");
        assert_eq!((taken[0].name, taken[0].spans), ("create.link", 2));
        assert!(taken[0].per_endpoint_ms >= 5.0, "{taken:?}");
        assert!(phases.take(2).is_empty(), "taken twice");
    }
}
