//! An append-only log (the audit log), written on a thread of its own.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Mutex, mpsc},
};

use super::StoreError;

pub(super) enum LogMsg {
    Line(Vec<u8>),
    Flush(tokio::sync::oneshot::Sender<()>),
    /// Write what is queued, then end the writer.
    Stop,
}

/// An append-only file of lines, written (and fdatasynced after each burst)
/// by its own thread, so that appending never waits for the disk.
///
/// Appends cannot fail the request that made them — the audit line of a
/// change is written after the change — so write errors are logged.
#[derive(Debug)]
pub struct AppendLog {
    path: PathBuf,
    tx: Mutex<mpsc::Sender<LogMsg>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// Lines queued when the log goes (the agent stopping) are written first.
impl Drop for AppendLog {
    fn drop(&mut self) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let _ = tx.send(LogMsg::Stop);
        drop(tx);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl AppendLog {
    pub(super) fn open(path: PathBuf) -> Result<AppendLog, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(StoreError::io("set the mode of", &path))?;
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        let writer = std::thread::Builder::new()
            .name("linkherd-append".into())
            .spawn(move || append_loop(&p, file, &rx))
            .map_err(StoreError::io("start the writer of", &path))?;
        Ok(AppendLog {
            path,
            tx: Mutex::new(tx),
            writer: Some(writer),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `line` (a newline is added).
    pub fn append(&self, mut line: Vec<u8>) {
        line.push(b'\n');
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if tx.send(LogMsg::Line(line)).is_err() {
            tracing::error!(path = %self.path.display(), "the append log's writer has stopped");
        }
    }

    /// Waits until every line queued before is written and synced.
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(LogMsg::Flush(done));
        if sent.is_ok() {
            let _ = wait.await;
        }
    }
}

pub(super) fn append_loop(path: &Path, mut file: File, rx: &mpsc::Receiver<LogMsg>) {
    let mut stop = false;
    while !stop && let Ok(first) = rx.recv() {
        let mut waiting = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                LogMsg::Line(line) => {
                    if let Err(e) = file.write_all(&line) {
                        tracing::error!(path = %path.display(), error = %e, "cannot append");
                    }
                }
                LogMsg::Flush(done) => waiting.push(done),
                LogMsg::Stop => stop = true,
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = file.sync_data() {
            tracing::error!(path = %path.display(), error = %e, "cannot sync");
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}
