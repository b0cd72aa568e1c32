//! gRPC services: thin adapters from generated tonic traits to the domain.
//! Each handler validates its request with `TryFrom` (linkherd-proto), calls
//! the domain, converts the result, and maps errors through
//! [`crate::error::Error`]. Every mutation is audited, success or not.

mod attachment;
mod converge;
mod host;
mod interface;
mod macvlan;
mod network;
mod probe;
mod vlan;

pub use attachment::AttachmentSvc;
pub use host::HostSvc;
pub use interface::InterfaceSvc;
pub use macvlan::MacvlanSvc;
pub use network::NetworkSvc;
pub use probe::ProbeSvc;
pub use vlan::VlanSvc;

use std::{future::Future, sync::Arc};

use linkherd_proto::pb;
use tonic::{Request, Status};

use crate::{
    context::Context, error::Error, host::Outcome, state::caller::Identity, transport::auth::Rpc,
};

/// One request as a handler sees it: who made it and which RPC it is, both
/// attached by the auth layer. Mutations run through [`Call::to_the_end`],
/// so every one finishes whatever the client does and is audited with its
/// outcome in one place, under the RPC's name as the request path gives it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub who: Identity,
    pub rpc: Rpc,
}

impl Call {
    /// The caller and RPC of `req`; a request without an identity is refused.
    pub fn of<T>(req: &Request<T>) -> Result<Self, Status> {
        Ok(Self {
            who: Identity::of(req)?,
            rpc: Rpc::of(req),
        })
    }

    /// Runs one mutation to its end — whatever the client does — and audits
    /// it with its outcome, then maps the error to its status. `work` is
    /// given the agent's context to own, so the task needs nothing from the
    /// handler that may go away.
    ///
    /// The work runs as a task of its own, so a client that disconnects, or
    /// a deadline that drops the handler, cannot stop it between two kernel
    /// steps: it finishes (or undoes itself) as it would have, and its audit
    /// record says the caller had gone before the answer.
    pub async fn to_the_end<T, F, W, O>(
        &self,
        ctx: &Arc<Context>,
        target: &str,
        detail: &str,
        work: F,
        ok: O,
    ) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Context>) -> W,
        W: Future<Output = Result<T, Error>> + Send + 'static,
        O: FnOnce(&T) -> String + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let work = work(ctx.clone());
        let (ctx, call) = (ctx.clone(), self.clone());
        let (target, detail) = (target.to_owned(), detail.to_owned());
        ctx.mutations.clone().spawn(async move {
            let res = work.await;
            let result = match &res {
                Ok(v) => ok(v),
                Err(e) => format!("error: {e}"),
            };
            let result = match tx.send(res) {
                Ok(()) => result,
                Err(_) => format!("cancelled by the caller, completed anyway: {result}"),
            };
            ctx.audit
                .record(&call.who, &call.rpc.0, &target, &detail, &result);
        });
        match rx.await {
            Ok(res) => res.map_err(Status::from),
            Err(_) => Err(Status::from(Error::Internal(format!(
                "{} stopped before it answered (see the agent's log)",
                self.rpc
            )))),
        }
    }
}

/// Validates a large request (a desired state) on the blocking pool, not on
/// the threads that serve gRPC: validation is O(n log n), but n may be a
/// 4 MiB message.
pub(crate) async fn off_thread<R, T>(raw: R) -> Result<T, Error>
where
    R: Send + 'static,
    T: TryFrom<R, Error = linkherd_proto::model::ValidationError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || T::try_from(raw))
        .await
        .map_err(|e| Error::Internal(format!("validation did not finish: {e}")))?
        .map_err(Error::from)
}

pub(crate) fn outcome_pb(o: Outcome) -> i32 {
    match o {
        Outcome::Created => pb::Outcome::Created,
        Outcome::Unchanged => pb::Outcome::Unchanged,
        Outcome::Deleted => pb::Outcome::Deleted,
    }
    .into()
}

pub(crate) fn outcome_word(o: Outcome) -> String {
    match o {
        Outcome::Created => "created",
        Outcome::Unchanged => "unchanged",
        Outcome::Deleted => "deleted",
    }
    .to_owned()
}
