//! gRPC services: thin adapters from generated tonic traits to the domain.
//! Each handler validates its request with `TryFrom` (linkherd-proto), calls
//! the domain, converts the result, and maps errors through
//! [`crate::error::Error`]. Every mutation is audited, success or not.

mod host;
mod interface;
mod macvlan;
mod probe;
mod vlan;

pub use host::HostSvc;
pub use interface::InterfaceSvc;
pub use macvlan::MacvlanSvc;
pub use probe::ProbeSvc;
pub use vlan::VlanSvc;

use linkherd_proto::pb;

use crate::{auth::Identity, context::Context, error::Error, lifecycle::Outcome};

/// Writes the audit record of a mutation; `ok` names a success's result.
pub(crate) fn audit<T>(
    ctx: &Context,
    who: &Identity,
    action: &str,
    target: &str,
    detail: &str,
    res: &Result<T, Error>,
    ok: impl FnOnce(&T) -> String,
) {
    let result = match res {
        Ok(v) => ok(v),
        Err(e) => format!("error: {e}"),
    };
    ctx.audit.record(who, action, target, detail, &result);
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
