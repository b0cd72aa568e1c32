//! The audit log: one JSON line per mutation, with who asked for it.
//!
//! Written to `STATE_DIR/audit.log` (append-only, mode 0600) and mirrored
//! to tracing under the `linkherd::audit` target, so it reaches journald as
//! well. The file is the state store's append log: lines are written by its
//! own thread, never on the threads that serve gRPC.

use std::path::Path;

use linkherd_proto::model::Role;
use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    state::caller::Identity,
    state::store::{AppendLog, Store, StoreError},
};

/// One audited action.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    pub time: String,
    pub caller: &'a str,
    pub role: &'a str,
    pub transport: &'a str,
    /// `Service/Method`, or `lease-expiry` for the agent's own reverts.
    pub action: &'a str,
    pub target: &'a str,
    pub detail: &'a str,
    /// `changed`, `unchanged`, or `error: ...`.
    pub result: &'a str,
}

/// The audit sink.
#[derive(Debug)]
pub struct Audit {
    log: Option<AppendLog>,
}

impl Audit {
    /// Appends to `audit.log` in the state directory.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            log: Some(store.append_log("audit.log")?),
        })
    }

    /// Audit to tracing only (tests, or no state directory).
    pub fn tracing_only() -> Self {
        Self { log: None }
    }

    pub fn path(&self) -> Option<&Path> {
        self.log.as_ref().map(AppendLog::path)
    }

    /// Waits until every line recorded so far is on disk.
    pub async fn flush(&self) {
        if let Some(log) = &self.log {
            log.flush().await;
        }
    }

    /// Records `action` on `target` by `who`.
    pub fn record(&self, who: &Identity, action: &str, target: &str, detail: &str, result: &str) {
        self.write(&AuditEvent {
            time: now(),
            caller: &who.name,
            role: who.role.as_str(),
            transport: who.transport.as_str(),
            action,
            target,
            detail,
            result,
        });
    }

    /// Records a call refused before any handler saw it: by whoever the
    /// connection identified (`role` `None` when it identified nobody),
    /// with the reason it was given.
    pub fn refusal(
        &self,
        caller: &str,
        role: Option<Role>,
        transport: &str,
        action: &str,
        why: &str,
    ) {
        self.write(&AuditEvent {
            time: now(),
            caller,
            role: role.map_or("none", Role::as_str),
            transport,
            action,
            target: "",
            detail: why,
            result: "refused",
        });
    }

    fn write(&self, event: &AuditEvent<'_>) {
        tracing::info!(
            target: "linkherd::audit",
            caller = event.caller,
            role = event.role,
            transport = event.transport,
            action = event.action,
            target_object = event.target,
            detail = event.detail,
            result = event.result,
            "audit"
        );
        let Some(log) = &self.log else { return };
        match serde_json::to_vec(event) {
            Ok(line) => log.append(line),
            Err(e) => tracing::error!(error = %e, "cannot encode an audit line"),
        }
    }
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}
