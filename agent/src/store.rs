//! The one durable writer for everything in the state directory.
//!
//! Every file the agent keeps — the transaction journal, the endpoint
//! registry, the lease journal, the audit log — goes through here, so the
//! rules hold everywhere at once:
//!
//! - a write is a temporary file, fsynced, renamed over the old one, and the
//!   directory fsynced: a crash leaves the old file or the new, never half;
//! - a write that fails is an error the caller returns (it is never only
//!   logged), naming the file and the OS error;
//! - the blocking I/O runs on tokio's blocking pool (`spawn_blocking`), the
//!   audit log on its own thread: never on the threads that serve gRPC;
//! - a set of records is a directory with one file per record, so changing
//!   one record writes one file (O(1)), not the whole set;
//! - every file is readable JSON with a `"format"` version; a file of an
//!   older format is upgraded when read (or refused with what to do), one of
//!   a newer format is refused;
//! - a file that cannot be read is moved aside to `NAME.corrupt-<unix
//!   time>`, logged, and reported ([`Store::take_quarantined`]) for the
//!   audit log: the agent goes on from the kernel's truth, and nothing is
//!   silently dropped.
//!
//! Directories are made mode 0700 and files 0600 whatever the umask: they
//! hold who did what, and how to undo it.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    marker::PhantomData,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, mpsc},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// What can go wrong with the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The OS refused a read or write (`No space left on device`, …).
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file this agent cannot read, and must not discard (written by a
    /// newer agent, or in a format too old to upgrade).
    #[error("{path}: {message}")]
    Refused { path: PathBuf, message: String },
    /// A value that does not encode (a bug, not a disk problem).
    #[error("cannot encode {path}: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The blocking task died (it panicked, or the runtime is stopping).
    #[error("state store task for {path} failed: {detail}")]
    Task { path: PathBuf, detail: String },
}

impl StoreError {
    fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| StoreError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// The OS error, when there is one (to tell a full disk from a bug).
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A type kept on disk, with the format version its files carry.
pub trait Versioned: Serialize + DeserializeOwned + Send + 'static {
    /// The format this agent writes (1 for the first versioned format).
    const FORMAT: u32;

    /// Reads a file of an older `format` (0: a file from before formats, it
    /// has no `"format"` field). The default refuses, saying what to do.
    fn upgrade(format: u32, value: Value) -> Result<Self, Upgrade> {
        let _ = value;
        Err(Upgrade::Refuse(format!(
            "format {format} is too old for this agent (it reads format {}); \
             roll back with the agent that wrote it first, or move the file away",
            Self::FORMAT
        )))
    }
}

/// Why an older file could not be upgraded.
#[derive(Debug)]
pub enum Upgrade {
    /// It does not parse as that format: keep it aside and go on.
    Corrupt(String),
    /// It parses, but this agent must not use or drop it.
    Refuse(String),
}

/// A file moved aside because it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub file: PathBuf,
    pub kept_as: PathBuf,
    pub reason: String,
}

/// The state directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    quarantined: Mutex<Vec<Quarantined>>,
}

/// Runs blocking `f` on tokio's blocking pool.
async fn blocking<R: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task {
            path: path.to_owned(),
            detail: e.to_string(),
        })?
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `mkdir -p` with mode 0700, and 0700 even when it existed or the umask
/// took bits away.
fn private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(StoreError::io("create directory", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(StoreError::io("set the mode of", dir))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("sync directory", dir))
}

/// Temp file, fsync, rename over `path`, fsync the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(StoreError::io("create", &tmp))?;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(StoreError::io("set the mode of", &tmp))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(StoreError::io("write", path))?;
        fs::rename(&tmp, path).map_err(StoreError::io("replace", path))
    })();
    if res.is_err() {
        // Leave no temp file taking the space a retry needs.
        let _ = fs::remove_file(&tmp);
    }
    res?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Removes `path` (gone already is fine) and fsyncs its directory.
fn remove_durably(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", path)(e)),
    }
}

fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path)(e)),
    }
}

/// `{"format": N, ...value's fields}`, pretty-printed for people.
fn encode<T: Versioned>(path: &Path, value: &T) -> Result<Vec<u8>, StoreError> {
    #[derive(Serialize)]
    struct Envelope<'a, T> {
        format: u32,
        #[serde(flatten)]
        body: &'a T,
    }
    let mut bytes = serde_json::to_vec_pretty(&Envelope {
        format: T::FORMAT,
        body: value,
    })
    .map_err(|source| StoreError::Encode {
        path: path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// What reading one file gave.
enum Decoded<T> {
    Ok(T),
    Corrupt(String),
    Refused(String),
}

fn decode<T: Versioned>(bytes: &[u8]) -> Decoded<T> {
    let mut value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Decoded::Corrupt(format!("not JSON: {e}")),
    };
    let format = match value.get("format") {
        None => 0,
        Some(f) => match f.as_u64().and_then(|f| u32::try_from(f).ok()) {
            Some(f) => f,
            None => return Decoded::Corrupt(format!("\"format\" is {f}, not a version")),
        },
    };
    if format > T::FORMAT {
        return Decoded::Refused(format!(
            "written in format {format} by a newer agent; this one reads up to format {}: \
             run the newer agent, or move the file away to start without it",
            T::FORMAT
        ));
    }
    if format < T::FORMAT {
        return match T::upgrade(format, value) {
            Ok(v) => Decoded::Ok(v),
            Err(Upgrade::Corrupt(why)) => Decoded::Corrupt(why),
            Err(Upgrade::Refuse(why)) => Decoded::Refused(why),
        };
    }
    if let Some(map) = value.as_object_mut() {
        map.remove("format");
    }
    match serde_json::from_value(value) {
        Ok(v) => Decoded::Ok(v),
        Err(e) => Decoded::Corrupt(format!("format {format}: {e}")),
    }
}

impl Inner {
    /// Moves an unreadable file aside, logs and remembers it for the audit.
    fn quarantine(&self, path: &Path, reason: String) -> Result<(), StoreError> {
        let mut kept = path.as_os_str().to_owned();
        kept.push(format!(".corrupt-{}", unix_now()));
        let kept = PathBuf::from(kept);
        fs::rename(path, &kept).map_err(StoreError::io("move aside", path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        tracing::error!(
            file = %path.display(),
            kept_as = %kept.display(),
            reason,
            "unreadable state file kept aside; going on from the kernel's state"
        );
        let q = Quarantined {
            file: path.to_owned(),
            kept_as: kept,
            reason,
        };
        self.quarantined
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(q);
        Ok(())
    }

    /// Reads and decodes `path`: `None` when missing or kept aside.
    fn load<T: Versioned>(&self, path: &Path) -> Result<Option<T>, StoreError> {
        let Some(bytes) = read_if_present(path)? else {
            return Ok(None);
        };
        match decode(&bytes) {
            Decoded::Ok(v) => Ok(Some(v)),
            Decoded::Corrupt(reason) => self.quarantine(path, reason).map(|()| None),
            Decoded::Refused(message) => Err(StoreError::Refused {
                path: path.to_owned(),
                message,
            }),
        }
    }
}

impl Store {
    /// Opens (creating, mode 0700) the state directory.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let dir = dir.into();
        let d = dir.clone();
        blocking(&dir, move || private_dir(&d)).await?;
        Ok(Store {
            inner: Arc::new(Inner {
                dir,
                quarantined: Mutex::default(),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The single versioned file `name` (e.g. `promisc-leases.json`).
    pub fn document<T: Versioned>(&self, name: &str) -> Document<T> {
        Document {
            store: self.clone(),
            path: self.inner.dir.join(name),
            _type: PhantomData,
        }
    }

    /// The record set in directory `name` (e.g. `endpoints`).
    pub fn records<T: Versioned>(&self, name: &str) -> RecordSet<T> {
        RecordSet {
            store: self.clone(),
            dir: self.inner.dir.join(name),
            _type: PhantomData,
        }
    }

    /// Files kept aside since the last call, for the audit log.
    pub fn take_quarantined(&self) -> Vec<Quarantined> {
        std::mem::take(
            &mut *self
                .inner
                .quarantined
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Reads a file of a layout this agent no longer writes (to migrate it):
    /// `None` when absent; one that does not parse as `T` is kept aside.
    pub async fn read_legacy<T: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        let path = self.inner.dir.join(name);
        let inner = self.inner.clone();
        blocking(&path.clone(), move || {
            let Some(bytes) = read_if_present(&path)? else {
                return Ok(None);
            };
            match serde_json::from_slice(&bytes) {
                Ok(v) => Ok(Some(v)),
                Err(e) => inner
                    .quarantine(&path, format!("old layout: {e}"))
                    .map(|()| None),
            }
        })
        .await
    }

    /// Removes a file (gone already is fine): the old file, once migrated.
    pub async fn remove_file(&self, name: &str) -> Result<(), StoreError> {
        let path = self.inner.dir.join(name);
        blocking(&path.clone(), move || remove_durably(&path)).await
    }

    /// Opens `name` for appending (the audit log), written by its own
    /// thread.
    pub fn append_log(&self, name: &str) -> Result<AppendLog, StoreError> {
        AppendLog::open(self.inner.dir.join(name))
    }
}

/// One versioned JSON file, replaced atomically.
#[derive(Debug, Clone)]
pub struct Document<T> {
    store: Store,
    path: PathBuf,
    _type: PhantomData<fn() -> T>,
}

impl<T: Versioned> Document<T> {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The document, `None` when there is none (or it was kept aside).
    pub async fn load(&self) -> Result<Option<T>, StoreError> {
        let (inner, path) = (self.store.inner.clone(), self.path.clone());
        blocking(&self.path, move || inner.load(&path)).await
    }

    /// Replaces the document (temp, fsync, rename, fsync dir).
    pub async fn save(&self, value: &T) -> Result<(), StoreError> {
        let bytes = encode(&self.path, value)?;
        let path = self.path.clone();
        blocking(&self.path, move || write_atomic(&path, &bytes)).await
    }

    /// Removes the document (gone already is fine).
    pub async fn remove(&self) -> Result<(), StoreError> {
        let path = self.path.clone();
        blocking(&self.path, move || remove_durably(&path)).await
    }
}

/// A directory of records, one versioned file per key: inserting or
/// removing a record writes only that record's file.
#[derive(Debug, Clone)]
pub struct RecordSet<T> {
    store: Store,
    dir: PathBuf,
    _type: PhantomData<fn() -> T>,
}

/// The file name of a key: its parts joined by `+`, characters outside
/// `A-Z a-z 0-9 _ . -` as `%XX`, and `.json` (so never `.` or `..`).
pub fn key_file(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('+');
        }
        for b in part.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out.push_str(".json");
    out
}

impl<T: Versioned> RecordSet<T> {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a key's record lives in.
    pub fn path_of(&self, key: &[&str]) -> PathBuf {
        self.dir.join(key_file(key))
    }

    /// Every record (creating the directory when missing). Leftover temp
    /// files are removed, unreadable records kept aside, and a clear cut
    /// short by a crash is finished first.
    pub async fn load_all(&self) -> Result<Vec<T>, StoreError> {
        let (inner, dir) = (self.store.inner.clone(), self.dir.clone());
        blocking(&self.dir, move || {
            let discard = discard_dir(&dir);
            if discard.exists() {
                remove_tree(&discard)?;
            }
            private_dir(&dir)?;
            let mut names: Vec<PathBuf> = Vec::new();
            for e in fs::read_dir(&dir).map_err(StoreError::io("list", &dir))? {
                let path = e.map_err(StoreError::io("list", &dir))?.path();
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if name.ends_with(".json.tmp") {
                    remove_durably(&path)?;
                } else if name.ends_with(".json") {
                    names.push(path);
                }
            }
            names.sort();
            let mut out = Vec::with_capacity(names.len());
            for path in names {
                out.extend(inner.load::<T>(&path)?);
            }
            Ok(out)
        })
        .await
    }

    /// Writes the record of `key` (only that file).
    pub async fn put(&self, key: &[&str], value: &T) -> Result<(), StoreError> {
        let path = self.path_of(key);
        let bytes = encode(&path, value)?;
        let dir = self.dir.clone();
        blocking(&path.clone(), move || {
            if !dir.exists() {
                private_dir(&dir)?;
            }
            write_atomic(&path, &bytes)
        })
        .await
    }

    /// Removes the record of `key` (absent is fine).
    pub async fn remove(&self, key: &[&str]) -> Result<(), StoreError> {
        let path = self.path_of(key);
        blocking(&path.clone(), move || remove_durably(&path)).await
    }

    /// Removes every record at once: the directory is renamed away first
    /// (one atomic step, the commit point), then emptied. A crash half way
    /// never leaves some records of the set behind.
    pub async fn clear(&self) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        blocking(&self.dir, move || {
            let discard = discard_dir(&dir);
            match fs::rename(&dir, &discard) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(StoreError::io("clear", &dir)(e)),
            }
            sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
            remove_tree(&discard)
        })
        .await
    }
}

fn discard_dir(dir: &Path) -> PathBuf {
    let mut d = dir.as_os_str().to_owned();
    d.push(".discard");
    PathBuf::from(d)
}

fn remove_tree(dir: &Path) -> Result<(), StoreError> {
    fs::remove_dir_all(dir).map_err(StoreError::io("remove", dir))?;
    sync_dir(dir.parent().unwrap_or(Path::new(".")))
}

enum LogMsg {
    Line(Vec<u8>),
    Flush(tokio::sync::oneshot::Sender<()>),
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
}

impl AppendLog {
    fn open(path: PathBuf) -> Result<AppendLog, StoreError> {
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
        std::thread::Builder::new()
            .name("linkherd-append".into())
            .spawn(move || append_loop(&p, file, &rx))
            .map_err(StoreError::io("start the writer of", &path))?;
        Ok(AppendLog {
            path,
            tx: Mutex::new(tx),
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

fn append_loop(path: &Path, mut file: File, rx: &mpsc::Receiver<LogMsg>) {
    while let Ok(first) = rx.recv() {
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
