//! The audit log: one JSON line per mutation, with who asked for it.
//!
//! Written to `STATE_DIR/audit.log` (append-only) and mirrored to tracing
//! under the `linkherd::audit` target, so it reaches journald as well.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::Serialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::auth::Identity;

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
    file: Option<Mutex<File>>,
    path: Option<PathBuf>,
}

impl Audit {
    /// Appends to `dir/audit.log`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("audit.log");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self {
            file: Some(Mutex::new(file)),
            path: Some(path),
        })
    }

    /// Audit to tracing only (tests, or no state directory).
    pub fn tracing_only() -> Self {
        Self {
            file: None,
            path: None,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Records `action` on `target` by `who`.
    pub fn record(&self, who: &Identity, action: &str, target: &str, detail: &str, result: &str) {
        let event = AuditEvent {
            time: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            caller: &who.name,
            role: who.role.as_str(),
            transport: who.transport.as_str(),
            action,
            target,
            detail,
            result,
        };
        tracing::info!(
            target: "linkherd::audit",
            caller = event.caller,
            role = event.role,
            transport = event.transport,
            action,
            target_object = target,
            detail,
            result,
            "audit"
        );
        let Some(file) = &self.file else { return };
        let Ok(mut line) = serde_json::to_vec(&event) else {
            return;
        };
        line.push(b'\n');
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_all(&line) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }
}
