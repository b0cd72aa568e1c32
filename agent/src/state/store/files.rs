//! The durable file operations every record goes through: write to a
//! temporary file, fsync, rename, fsync the directory; several files as one
//! group commit; remove durably; and the versioned JSON format, read back
//! or kept aside.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use serde::Serialize;
use serde_json::Value;

use super::{StoreError, Upgrade, Versioned};

/// `mkdir -p` with mode 0700, and 0700 even when it existed or the umask
/// took bits away.
pub(super) fn private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(StoreError::io("create directory", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(StoreError::io("set the mode of", dir))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("sync directory", dir))
}

/// `path`'s temporary sibling, `PATH.tmp`.
pub(super) fn tmp_of(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// `bytes` in a new temporary file (mode 0600) beside `path`, not synced yet.
pub(super) fn write_tmp(path: &Path, bytes: &[u8]) -> Result<(PathBuf, File), StoreError> {
    let tmp = tmp_of(path);
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
        f.write_all(bytes).map_err(StoreError::io("write", path))?;
        Ok(f)
    })();
    match res {
        Ok(f) => Ok((tmp, f)),
        Err(e) => {
            // Leave no temp file taking the space a retry needs.
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Temp file, fsync, rename over `path`, fsync the directory.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let (tmp, f) = write_tmp(path, bytes)?;
    let res = f
        .sync_all()
        .map_err(StoreError::io("write", path))
        .and_then(|()| fs::rename(&tmp, path).map_err(StoreError::io("replace", path)));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Starts the writeback of `f`'s data without waiting for it, so that the
/// fsyncs that follow find their data on its way and share one journal
/// commit (group commit). Only a hint: an error here is left to the fsync.
pub(super) fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the call's whole duration, and
    // sync_file_range reads no memory of ours.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// [`write_atomic`] for many files of one directory as one group commit:
/// every temp file written, all their writeback started, each fsynced
/// (after the first, the fsyncs find their data already committed),
/// renamed, then one directory sync for all. A thousand records cost about
/// two journal commits, not two thousand. On failure no temp file is left,
/// and the files renamed already are removed again: the set is written
/// whole or not at all (as far as a failing disk allows).
pub(super) fn write_many_atomic(
    dir: &Path,
    items: &[(PathBuf, Vec<u8>)],
) -> Result<(), StoreError> {
    let mut written: Vec<(&Path, PathBuf, File)> = Vec::with_capacity(items.len());
    let mut renamed: Vec<&Path> = Vec::with_capacity(items.len());
    let res = (|| {
        for (path, bytes) in items {
            let (tmp, f) = write_tmp(path, bytes)?;
            written.push((path, tmp, f));
        }
        for (_, _, f) in &written {
            start_writeback(f);
        }
        for (path, _, f) in &written {
            f.sync_all().map_err(StoreError::io("write", path))?;
        }
        for (path, tmp, _) in &written {
            fs::rename(tmp, path).map_err(StoreError::io("replace", path))?;
            renamed.push(path);
        }
        sync_dir(dir)
    })();
    if res.is_err() {
        for (_, tmp, _) in &written {
            let _ = fs::remove_file(tmp);
        }
        for path in renamed {
            let _ = fs::remove_file(path);
        }
    }
    res
}

/// Removes `path` (gone already is fine) and fsyncs its directory.
pub(super) fn remove_durably(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", path)(e)),
    }
}

pub(super) fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path)(e)),
    }
}

/// `{"format": N, ...value's fields}`, pretty-printed for people.
pub(super) fn encode<T: Versioned>(path: &Path, value: &T) -> Result<Vec<u8>, StoreError> {
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
pub(super) enum Decoded<T> {
    Ok(T),
    Corrupt(String),
    Refused(String),
}

pub(super) fn decode<T: Versioned>(bytes: &[u8]) -> Decoded<T> {
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

pub(super) fn discard_dir(dir: &Path) -> PathBuf {
    let mut d = dir.as_os_str().to_owned();
    d.push(".discard");
    PathBuf::from(d)
}

pub(super) fn remove_tree(dir: &Path) -> Result<(), StoreError> {
    fs::remove_dir_all(dir).map_err(StoreError::io("remove", dir))?;
    sync_dir(dir.parent().unwrap_or(Path::new(".")))
}
