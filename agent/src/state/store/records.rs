//! A record set: a directory of one file per record, so a change costs one
//! small write whatever the number of records.

use std::{
    fs,
    io::{self},
    marker::PhantomData,
    path::{Path, PathBuf},
};

use super::{
    Store, StoreError, Versioned, blocking,
    files::{
        discard_dir, encode, private_dir, remove_durably, remove_tree, sync_dir, write_atomic,
        write_many_atomic,
    },
};

/// A directory of records, one versioned file per key: inserting or
/// removing a record writes only that record's file.
#[derive(Debug, Clone)]
pub struct RecordSet<T> {
    pub(super) store: Store,
    pub(super) dir: PathBuf,
    pub(super) _type: PhantomData<fn() -> T>,
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

    /// Writes the records of `items` (only those files) as one group
    /// commit ([`write_many_atomic`]): the creates of a transaction pay
    /// about one durable write together, not one each.
    pub async fn put_many(&self, items: &[(Vec<&str>, &T)]) -> Result<(), StoreError> {
        let mut files = Vec::with_capacity(items.len());
        for (key, value) in items {
            let path = self.path_of(key);
            let bytes = encode(&path, *value)?;
            files.push((path, bytes));
        }
        let dir = self.dir.clone();
        blocking(&self.dir, move || {
            if !dir.exists() {
                private_dir(&dir)?;
            }
            write_many_atomic(&dir, &files)
        })
        .await
    }

    /// Removes the record of `key` (absent is fine).
    pub async fn remove(&self, key: &[&str]) -> Result<(), StoreError> {
        let path = self.path_of(key);
        blocking(&path.clone(), move || remove_durably(&path)).await
    }

    /// Removes the records of `keys` with one directory sync for them all
    /// (absent ones are fine): a teardown of a thousand endpoints pays one
    /// sync, not a thousand.
    pub async fn remove_many(&self, keys: &[Vec<&str>]) -> Result<(), StoreError> {
        let paths: Vec<PathBuf> = keys.iter().map(|k| self.path_of(k)).collect();
        let dir = self.dir.clone();
        blocking(&self.dir, move || {
            let mut removed = false;
            for path in &paths {
                match fs::remove_file(path) {
                    Ok(()) => removed = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io("remove", path)(e)),
                }
            }
            if removed {
                sync_dir(&dir)?;
            }
            Ok(())
        })
        .await
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
