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
//!   time>` (`SET.NAME.corrupt-<unix time>` in the state directory for a
//!   record of a set), logged, and reported ([`Store::take_quarantined`])
//!   for the audit log: the agent goes on from the kernel's truth, and
//!   nothing is silently dropped.
//!
//! Directories are made mode 0700 and files 0600 whatever the umask: they
//! hold who did what, and how to undo it.

mod document;
mod files;
mod log;
mod records;

pub use document::Document;

pub use log::AppendLog;
pub use records::{RecordSet, key_file};

use std::{
    fs, io,
    marker::PhantomData,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use files::{Decoded, decode, private_dir, read_if_present, remove_durably, sync_dir};

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
    pub(crate) fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
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

/// Where an unreadable file is kept: `NAME.corrupt-<unix time>` next to
/// it — in the state directory itself for a record of a set
/// (`SET.RECORD.corrupt-<time>`), since a set's directory is removed whole
/// when it is cleared.
fn kept_aside(dir: &Path, path: &Path, time: u64) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    match path.parent() {
        Some(p) if p != dir => {
            let set = p.file_name().unwrap_or_default().to_string_lossy();
            dir.join(format!("{set}.{name}.corrupt-{time}"))
        }
        _ => dir.join(format!("{name}.corrupt-{time}")),
    }
}

impl Inner {
    /// Moves an unreadable file aside, logs and remembers it for the audit.
    fn quarantine(&self, path: &Path, reason: String) -> Result<(), StoreError> {
        let kept = kept_aside(&self.dir, path, unix_now());
        fs::rename(path, &kept).map_err(StoreError::io("move aside", path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        sync_dir(&self.dir)?;
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use serde::Deserialize;

    use super::{files::discard_dir, *};

    /// A record type at format 2; format 1 called `n` `count`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    struct Rec {
        name: String,
        n: u32,
    }

    impl Versioned for Rec {
        const FORMAT: u32 = 2;
        fn upgrade(format: u32, value: Value) -> Result<Self, Upgrade> {
            #[derive(Deserialize)]
            struct V1 {
                name: String,
                count: u32,
            }
            match format {
                1 => serde_json::from_value::<V1>(value)
                    .map(|v| Rec {
                        name: v.name,
                        n: v.count,
                    })
                    .map_err(|e| Upgrade::Corrupt(e.to_string())),
                f => Err(Upgrade::Refuse(format!("format {f} is too old"))),
            }
        }
    }

    fn rec(name: &str, n: u32) -> Rec {
        Rec {
            name: name.into(),
            n,
        }
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("state")).await.expect("open");
        (dir, store)
    }

    fn json(path: &Path) -> Value {
        serde_json::from_slice(&fs::read(path).expect("read")).expect("json")
    }

    #[tokio::test]
    async fn a_document_is_replaced_whole_with_its_format() {
        let (_t, store) = store().await;
        let doc = store.document::<Rec>("doc.json");
        assert_eq!(doc.load().await.expect("load"), None);
        doc.save(&rec("a", 1)).await.expect("save");
        let before = fs::metadata(doc.path()).expect("meta").ino();
        doc.save(&rec("a", 2)).await.expect("save again");
        // A new file renamed over the old one, not the old one rewritten.
        assert_ne!(fs::metadata(doc.path()).expect("meta").ino(), before);
        assert_eq!(
            json(doc.path()),
            serde_json::json!({"format": 2, "name": "a", "n": 2})
        );
        let text = fs::read_to_string(doc.path()).expect("read");
        assert!(text.starts_with("{\n  \"format\": 2,"), "{text}");
        let names: Vec<String> = fs::read_dir(store.dir())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["doc.json"], "no temp file left");
        assert_eq!(doc.load().await.expect("load"), Some(rec("a", 2)));
        doc.remove().await.expect("remove");
        assert!(!doc.path().exists());
        doc.remove().await.expect("removing twice is fine");
    }

    #[tokio::test]
    async fn a_record_is_one_file_and_others_are_not_rewritten() {
        let (_t, store) = store().await;
        let set = store.records::<Rec>("recs");
        assert_eq!(set.load_all().await.expect("load"), Vec::<Rec>::new());
        set.put(&["net", "a"], &rec("a", 1)).await.expect("a");
        set.put(&["net", "b"], &rec("b", 1)).await.expect("b");
        let stamp = |k: &str| {
            let m = fs::metadata(set.path_of(&["net", k])).expect("meta");
            (m.ino(), m.mtime(), m.mtime_nsec())
        };
        let (a, b) = (stamp("a"), stamp("b"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        set.put(&["net", "c"], &rec("c", 1)).await.expect("c");
        set.put(&["net", "b"], &rec("b", 2)).await.expect("b again");
        set.remove(&["net", "c"]).await.expect("remove c");
        assert_eq!(stamp("a"), a, "inserting c or changing b touched a");
        assert_ne!(stamp("b"), b);
        assert!(!set.path_of(&["net", "c"]).exists());
        assert_eq!(
            json(&set.path_of(&["net", "a"])),
            serde_json::json!({"format": 2, "name": "a", "n": 1})
        );
        let mut all = set.load_all().await.expect("load");
        all.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(all, [rec("a", 1), rec("b", 2)]);
    }

    #[tokio::test]
    async fn records_put_together_are_written_whole_or_not_at_all() {
        let (_t, store) = store().await;
        let set = store.records::<Rec>("recs");
        let (a, b) = (rec("a", 1), rec("b", 1));
        set.put_many(&[(vec!["net", "a"], &a), (vec!["net", "b"], &b)])
            .await
            .expect("put a and b");
        assert_eq!(
            json(&set.path_of(&["net", "b"])),
            serde_json::json!({"format": 2, "name": "b", "n": 1})
        );
        // A directory where the third record goes: its rename fails, and
        // the group leaves neither its temp files nor c and d behind.
        fs::create_dir(set.path_of(&["net", "e"])).expect("mkdir");
        let (c, d, e) = (rec("c", 1), rec("d", 1), rec("e", 1));
        let err = set
            .put_many(&[
                (vec!["net", "c"], &c),
                (vec!["net", "d"], &d),
                (vec!["net", "e"], &e),
            ])
            .await
            .expect_err("e cannot be written");
        assert!(
            err.to_string().starts_with(&format!(
                "cannot replace {}: ",
                set.path_of(&["net", "e"]).display()
            )),
            "{err}"
        );
        let mut names: Vec<String> = fs::read_dir(set.dir())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["net+a.json", "net+b.json", "net+e.json"]);
    }

    #[tokio::test]
    async fn clearing_a_set_is_one_rename_and_a_cut_short_clear_is_finished() {
        let (_t, store) = store().await;
        let set = store.records::<Rec>("recs");
        set.put(&["x"], &rec("x", 1)).await.expect("x");
        set.clear().await.expect("clear");
        assert!(!set.dir().exists());
        assert!(!discard_dir(set.dir()).exists());
        set.clear().await.expect("clearing nothing is fine");
        // A crash after the rename: the records are gone, whatever is left.
        let discard = discard_dir(set.dir());
        fs::create_dir_all(&discard).expect("mkdir");
        fs::write(discard.join("x.json"), b"{}").expect("write");
        set.put(&["y"], &rec("y", 1)).await.expect("y");
        assert_eq!(set.load_all().await.expect("load"), [rec("y", 1)]);
        assert!(!discard.exists());
    }

    #[tokio::test]
    async fn an_older_format_is_upgraded_and_a_newer_one_refused() {
        let (_t, store) = store().await;
        let doc = store.document::<Rec>("doc.json");
        fs::write(doc.path(), br#"{"format": 1, "name": "old", "count": 7}"#).expect("write");
        assert_eq!(doc.load().await.expect("load"), Some(rec("old", 7)));
        fs::write(doc.path(), br#"{"name": "older"}"#).expect("write");
        let err = doc.load().await.expect_err("format 0 is refused");
        assert_eq!(
            err.to_string(),
            format!("{}: format 0 is too old", doc.path().display())
        );
        fs::write(doc.path(), br#"{"format": 3, "name": "new"}"#).expect("write");
        let err = doc.load().await.expect_err("newer");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: written in format 3 by a newer agent; this one reads up to format 2: \
                 run the newer agent, or move the file away to start without it",
                doc.path().display()
            )
        );
        // A refused file stays where it is, untouched.
        assert_eq!(json(doc.path())["format"], 3);
        assert_eq!(store.take_quarantined(), []);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_kept_aside_and_reported() {
        let (_t, store) = store().await;
        let doc = store.document::<Rec>("doc.json");
        fs::write(doc.path(), b"{\"format\": 2, \"name\": ").expect("write");
        let set = store.records::<Rec>("recs");
        set.put(&["good"], &rec("good", 1)).await.expect("good");
        fs::write(set.path_of(&["bad"]), br#"{"format": 2, "name": 5}"#).expect("write");

        assert_eq!(doc.load().await.expect("load"), None);
        assert_eq!(set.load_all().await.expect("load"), [rec("good", 1)]);

        let q = store.take_quarantined();
        assert_eq!(q.len(), 2, "{q:?}");
        assert_eq!(q[0].file, doc.path());
        assert!(q[0].reason.starts_with("not JSON: "), "{}", q[0].reason);
        assert_eq!(q[1].file, set.path_of(&["bad"]));
        assert!(
            q[1].reason.starts_with("format 2: invalid type"),
            "{}",
            q[1].reason
        );
        let prefixes = [
            format!("{}/doc.json.corrupt-", store.dir().display()),
            format!("{}/recs.bad.json.corrupt-", store.dir().display()),
        ];
        for (q, prefix) in q.iter().zip(prefixes) {
            assert!(!q.file.exists());
            let kept = q.kept_as.to_string_lossy();
            let time: u64 = kept
                .strip_prefix(&prefix)
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{kept} is not {prefix}<unix time>"));
            assert!(time.abs_diff(unix_now()) < 60);
            assert!(q.kept_as.exists());
        }
        // Reported once.
        assert_eq!(store.take_quarantined(), []);
        // The kept file is no record: the next load does not see it.
        assert_eq!(set.load_all().await.expect("load"), [rec("good", 1)]);
        assert_eq!(store.take_quarantined(), []);
    }

    #[tokio::test]
    async fn legacy_files_are_read_or_kept_aside() {
        let (_t, store) = store().await;
        assert_eq!(
            store
                .read_legacy::<Vec<u32>>("old.json")
                .await
                .expect("none"),
            None
        );
        fs::write(store.dir().join("old.json"), b"[1, 2]").expect("write");
        assert_eq!(
            store
                .read_legacy::<Vec<u32>>("old.json")
                .await
                .expect("read"),
            Some(vec![1, 2])
        );
        store.remove_file("old.json").await.expect("remove");
        assert!(!store.dir().join("old.json").exists());
        fs::write(store.dir().join("old.json"), b"[1, ").expect("write");
        assert_eq!(
            store
                .read_legacy::<Vec<u32>>("old.json")
                .await
                .expect("kept"),
            None
        );
        assert_eq!(store.take_quarantined().len(), 1);
    }

    #[tokio::test]
    async fn modes_are_private_whatever_the_umask() {
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let (_t, store) = store().await;
        let doc = store.document::<Rec>("doc.json");
        doc.save(&rec("a", 1)).await.expect("save");
        let set = store.records::<Rec>("recs");
        set.put(&["a"], &rec("a", 1)).await.expect("put");
        let log = store.append_log("audit.log").expect("log");
        log.append(b"{}".to_vec());
        log.flush().await;
        nix::sys::stat::umask(old);
        let mode = |p: &Path| fs::metadata(p).expect("meta").mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(set.dir()), 0o700);
        assert_eq!(mode(doc.path()), 0o600);
        assert_eq!(mode(&set.path_of(&["a"])), 0o600);
        assert_eq!(mode(log.path()), 0o600);
        assert_eq!(fs::read_to_string(log.path()).expect("read"), "{}\n");
    }

    #[tokio::test]
    async fn an_append_log_writes_what_was_queued_before_it_goes() {
        let (_t, store) = store().await;
        let log = store.append_log("audit.log").expect("log");
        let path = log.path().to_owned();
        for i in 0..100 {
            log.append(format!("{i}").into_bytes());
        }
        drop(log);
        let text = fs::read_to_string(path).expect("read");
        let want: String = (0..100).map(|i| format!("{i}\n")).collect();
        assert_eq!(text, want);
    }

    #[tokio::test]
    async fn an_existing_directory_becomes_private() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("state");
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        Store::open(&dir).await.expect("open");
        assert_eq!(fs::metadata(&dir).expect("meta").mode() & 0o777, 0o700);
    }

    #[test]
    fn keys_are_safe_file_names() {
        assert_eq!(key_file(&["mac_net10", "b1"]), "mac_net10+b1.json");
        assert_eq!(key_file(&[".", ".."]), ".+...json");
        assert_eq!(key_file(&["a/b", "c+d"]), "a%2Fb+c%2Bd.json");
    }

    #[tokio::test]
    async fn a_failed_write_names_the_file_and_the_os_error() {
        let (_t, store) = store().await;
        let doc = store.document::<Rec>("doc.json");
        // A directory where the temp file should go.
        fs::create_dir(store.dir().join("doc.json.tmp")).expect("mkdir");
        let err = doc.save(&rec("a", 1)).await.expect_err("cannot write");
        let tmp = store.dir().join("doc.json.tmp");
        assert_eq!(
            err.to_string(),
            format!(
                "cannot create {}: Is a directory (os error 21)",
                tmp.display()
            )
        );
        assert_eq!(
            err.os_error().and_then(io::Error::raw_os_error),
            Some(libc::EISDIR)
        );
        assert!(!doc.path().exists());
    }
}
