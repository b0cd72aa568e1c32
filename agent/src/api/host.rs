//! `linkherd.v1.HostService`.

use std::sync::Arc;

use linkherd_proto::{API_VERSION, model::Desired, pb};
use tonic::{Request, Response, Status};

use super::Call;
use crate::{context::Context, error::Error};

#[derive(Debug, Clone)]
pub struct HostSvc {
    ctx: Arc<Context>,
}

impl HostSvc {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[tonic::async_trait]
impl pb::host_service_server::HostService for HostSvc {
    type WatchConvergenceStream = super::converge::ConvergenceStream;

    async fn get_convergence(
        &self,
        req: Request<pb::GetConvergenceRequest>,
    ) -> Result<Response<pb::GetConvergenceResponse>, Status> {
        Call::of(&req)?;
        Ok(Response::new(super::converge::report_pb(
            self.ctx.converge.report(),
        )))
    }

    async fn watch_convergence(
        &self,
        req: Request<pb::WatchConvergenceRequest>,
    ) -> Result<Response<Self::WatchConvergenceStream>, Status> {
        let call = Call::of(&req)?;
        let place = self.ctx.watches.place(&call.who.name)?;
        Ok(Response::new(super::converge::watch(&self.ctx, place)))
    }

    async fn get_info(
        &self,
        req: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::GetInfoResponse>, Status> {
        let call = Call::of(&req)?;
        let caps = self.ctx.capabilities().await;
        Ok(Response::new(pb::GetInfoResponse {
            hostname: self.ctx.host_name.clone(),
            kernel_release: kernel_release(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            agent_id: self.ctx.host.agent().id().to_owned(),
            api_version: API_VERSION.to_owned(),
            capabilities: Some(pb::Capabilities {
                vlan: caps.vlan,
                macvlan: caps.macvlan,
                macvlan_modes: caps
                    .macvlan_modes
                    .iter()
                    .map(|m| pb::MacvlanMode::from(*m).into())
                    .collect(),
                netns: caps.netns,
                notes: caps.notes.clone(),
            }),
            caller: Some(pb::Caller {
                identity: call.who.name,
                role: pb::Role::from(call.who.role).into(),
                transport: call.who.transport.as_str().to_owned(),
            }),
            uptime_seconds: self.ctx.started.elapsed().as_secs(),
        }))
    }

    async fn plan(
        &self,
        req: Request<pb::PlanRequest>,
    ) -> Result<Response<pb::PlanResponse>, Status> {
        let desired = super::off_thread(req.into_inner().desired.unwrap_or_default()).await?;
        let changes = self
            .ctx
            .host
            .planner()
            .plan(&desired)
            .await
            .map_err(Error::into_status)?;
        let generation = crate::txn::generation(&self.ctx.host)
            .await
            .map_err(Error::into_status)?;
        Ok(Response::new(pb::PlanResponse {
            generation,
            changes: changes.into_iter().map(change_pb).collect(),
        }))
    }

    async fn get_state(
        &self,
        _req: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateResponse>, Status> {
        let observed = crate::txn::observed(&self.ctx.host)
            .await
            .map_err(Error::into_status)?;
        Ok(Response::new(pb::GetStateResponse {
            generation: crate::txn::fingerprint(&observed),
            owned: Some(observed.into()),
        }))
    }

    async fn apply(
        &self,
        req: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let call = Call::of(&req)?;
        let r = req.into_inner();
        let res = call
            .to_the_end(
                &self.ctx,
                "desired state",
                "",
                |ctx| async move {
                    let (confirm, check) = apply_options(&r)?;
                    let desired: Desired = super::off_thread(r.desired.unwrap_or_default()).await?;
                    ctx.txns
                        .apply(&desired, r.expected_generation, confirm, check)
                        .await
                },
                |a| format!("{} pending with {} change(s)", a.id, a.changes.len()),
            )
            .await;
        let a = res?;
        let deadline = a
            .deadline
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Response::new(pb::ApplyResponse {
            txn_id: a.id,
            applied: a.changes.into_iter().map(change_pb).collect(),
            confirm_deadline: Some(prost_types::Timestamp {
                seconds: i64::try_from(deadline.as_secs()).unwrap_or(i64::MAX),
                nanos: 0,
            }),
        }))
    }

    async fn confirm(
        &self,
        req: Request<pb::ConfirmRequest>,
    ) -> Result<Response<pb::ConfirmResponse>, Status> {
        let call = Call::of(&req)?;
        let id = req.into_inner().txn_id;
        let txn = id.clone();
        let res = call
            .to_the_end(
                &self.ctx,
                &id,
                "",
                |ctx| async move { ctx.txns.confirm(&txn).await },
                |_| "confirmed".into(),
            )
            .await;
        Ok(Response::new(pb::ConfirmResponse { generation: res? }))
    }

    async fn rollback(
        &self,
        req: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::RollbackResponse>, Status> {
        let call = Call::of(&req)?;
        let id = req.into_inner().txn_id;
        let txn = id.clone();
        let res = call
            .to_the_end(
                &self.ctx,
                &id,
                "",
                |ctx| async move { ctx.txns.rollback(&txn).await },
                |r| r.join("; "),
            )
            .await;
        Ok(Response::new(pb::RollbackResponse {
            reverted: res?
                .into_iter()
                .map(|detail| pb::Change {
                    action: pb::ChangeAction::Unspecified.into(),
                    object_kind: String::new(),
                    object: String::new(),
                    detail,
                })
                .collect(),
        }))
    }
}

fn change_pb(c: crate::host::plan::Change) -> pb::Change {
    use crate::host::plan::Action;
    pb::Change {
        action: match c.action {
            Action::Create => pb::ChangeAction::Create,
            Action::Update => pb::ChangeAction::Update,
            Action::Delete => pb::ChangeAction::Delete,
        }
        .into(),
        object_kind: c.kind.to_owned(),
        object: c.object,
        detail: c.detail,
    }
}

/// The confirm window and address-check wait an Apply asks for, within
/// their bounds (0 means the default window, and no check).
fn apply_options(
    r: &pb::ApplyRequest,
) -> Result<(std::time::Duration, Option<std::time::Duration>), Error> {
    use crate::txn::{DEFAULT_CONFIRM, MAX_ADDRESS_CHECK_MS, MAX_CONFIRM};
    use linkherd_proto::model::ValidationError;
    let confirm = match r.confirm_timeout_seconds {
        0 => DEFAULT_CONFIRM,
        s if u64::from(s) > MAX_CONFIRM.as_secs() => {
            return Err(Error::Invalid(ValidationError::new(
                "confirm_timeout_seconds",
                s.to_string(),
                format!("is longer than {} s", MAX_CONFIRM.as_secs()),
                "confirm sooner",
            )));
        }
        s => std::time::Duration::from_secs(s.into()),
    };
    let check = match r.address_check_ms {
        0 => None,
        ms if ms > MAX_ADDRESS_CHECK_MS => {
            return Err(Error::Invalid(ValidationError::new(
                "address_check_ms",
                ms.to_string(),
                format!("is longer than {MAX_ADDRESS_CHECK_MS} ms"),
                "answers on one link come within milliseconds; wait less",
            )));
        }
        ms => Some(std::time::Duration::from_millis(ms.into())),
    };
    Ok((confirm, check))
}
