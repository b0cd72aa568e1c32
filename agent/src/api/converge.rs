//! `HostService.GetConvergence` and `WatchConvergence`: the reconciler's
//! view of the host, in the API's types.

use std::{pin::Pin, sync::Arc};

use linkherd_proto::pb;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::Status;

use crate::{
    context::Context,
    converge::{
        Report,
        tracker::{ObjectStatus, Phase},
    },
    watch::Place,
};

pub type ConvergenceStream =
    Pin<Box<dyn Stream<Item = Result<pb::ConvergenceEvent, Status>> + Send + 'static>>;

fn phase_pb(p: Phase) -> pb::ConvergencePhase {
    match p {
        Phase::InSync => pb::ConvergencePhase::InSync,
        Phase::Drifted => pb::ConvergencePhase::Drifted,
        Phase::Waiting => pb::ConvergencePhase::Waiting,
        Phase::Repairing => pb::ConvergencePhase::Repairing,
        Phase::Fighting => pb::ConvergencePhase::Fighting,
        Phase::Unrecoverable => pb::ConvergencePhase::Unrecoverable,
        Phase::Pending => pb::ConvergencePhase::Pending,
    }
}

pub fn object_pb(s: ObjectStatus) -> pb::ConvergenceObject {
    pb::ConvergenceObject {
        kind: s.key.kind().to_owned(),
        name: s.key.name(),
        phase: phase_pb(s.phase).into(),
        detail: s.detail,
        since: Some(s.since.into()),
        attempts: s.attempts,
        next_try: s.next_try.map(Into::into),
        last_error: s.last_error.unwrap_or_default(),
        repairs: s.repairs,
    }
}

pub fn report_pb(r: Report) -> pb::GetConvergenceResponse {
    let last = r.last.clone();
    pb::GetConvergenceResponse {
        policy: r.policy.as_str().to_owned(),
        desired_generation: r.generation,
        passes: r.passes,
        last_pass: last.as_ref().map(|l| l.at.into()),
        last_pass_ms: last
            .as_ref()
            .map_or(0, |l| u32::try_from(l.took.as_millis()).unwrap_or(u32::MAX)),
        last_trigger: last
            .as_ref()
            .map(|l| l.trigger.as_str().to_owned())
            .unwrap_or_default(),
        last_error: last.and_then(|l| l.error).unwrap_or_default(),
        objects: r.objects.into_iter().map(object_pb).collect(),
    }
}

/// A `WatchConvergence` stream: every object's state, `synced`, then each
/// change. A stream that falls behind gets the whole state again.
pub fn watch(ctx: &Arc<Context>, place: Place) -> ConvergenceStream {
    let events = ctx.converge.subscribe();
    let (tx, rx) = mpsc::channel(64);
    crate::watch::spawn_supervised(
        "a WatchConvergence stream",
        pump(ctx.clone(), place, events, tx),
        async {},
    );
    Box::pin(ReceiverStream::new(rx))
}

type Tx = mpsc::Sender<Result<pb::ConvergenceEvent, Status>>;

async fn snapshot(ctx: &Context, tx: &Tx) -> bool {
    for s in ctx.converge.report().objects {
        let e = pb::ConvergenceEvent {
            object: Some(object_pb(s)),
            synced: false,
        };
        if tx.send(Ok(e)).await.is_err() {
            return false;
        }
    }
    let synced = pb::ConvergenceEvent {
        object: None,
        synced: true,
    };
    tx.send(Ok(synced)).await.is_ok()
}

async fn pump(
    ctx: Arc<Context>,
    mut place: Place,
    mut events: broadcast::Receiver<ObjectStatus>,
    tx: Tx,
) {
    if !snapshot(&ctx, &tx).await {
        return;
    }
    loop {
        let next = tokio::select! {
            biased;
            () = place.stopping() => {
                let _ = tx.send(Err(Status::unavailable("the agent is shutting down; watch again once it is back"))).await;
                return;
            }
            () = tx.closed() => return,
            e = events.recv() => e,
        };
        let ok = match next {
            Ok(s) => tx
                .send(Ok(pb::ConvergenceEvent {
                    object: Some(object_pb(s)),
                    synced: false,
                }))
                .await
                .is_ok(),
            Err(broadcast::error::RecvError::Lagged(_)) => snapshot(&ctx, &tx).await,
            Err(broadcast::error::RecvError::Closed) => false,
        };
        if !ok {
            return;
        }
    }
}
