//! The named namespaces this agent made, noted where a lost state
//! directory does not take them along: an empty file per namespace under
//! the run directory (`/run/linkherd/netns/NAME`, root's; on tmpfs like
//! `/run/netns` itself, so both go at a reboot). `--adopt` looks only into
//! these: a runtime's namespaces — podman's live under `/run/netns` too —
//! are never scanned for marks, whatever their links say.

use std::path::{Path, PathBuf};

/// The notes, or none when the agent has no run directory (tests).
#[derive(Debug, Clone, Default)]
pub struct MadeNetns {
    dir: Option<PathBuf>,
}

impl MadeNetns {
    pub fn new(run_dir: Option<&Path>) -> Self {
        Self {
            dir: run_dir.map(|d| d.join("netns")),
        }
    }

    /// Notes that the agent made namespace `full` (its full name). A note
    /// that cannot be written is logged: only `--adopt` needs it.
    pub async fn note(&self, full: &str) {
        let Some(file) = self.file(full) else {
            return;
        };
        let written = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::DirBuilderExt;
            if let Some(dir) = file.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            std::fs::write(&file, b"")
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::warn!(
                netns = full,
                "cannot note a namespace this agent made (--adopt will not look into it)"
            );
        }
    }

    /// Drops the note of namespace `full`, which is gone.
    pub async fn forget(&self, full: &str) {
        if let Some(file) = self.file(full) {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(file)).await;
        }
    }

    /// Whether the agent noted that it made namespace `full`.
    pub async fn noted(&self, full: &str) -> bool {
        let Some(file) = self.file(full) else {
            return false;
        };
        tokio::task::spawn_blocking(move || file.is_file())
            .await
            .unwrap_or(false)
    }

    /// A namespace's note; none for a name that is not one plain file name.
    fn file(&self, full: &str) -> Option<PathBuf> {
        let plain = !full.is_empty() && full != "." && full != ".." && !full.contains('/');
        self.dir.as_ref().filter(|_| plain).map(|d| d.join(full))
    }
}
