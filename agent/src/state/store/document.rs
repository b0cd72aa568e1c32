//! A document: one file holding one value.

use std::{
    marker::PhantomData,
    path::{Path, PathBuf},
};

use super::{
    Store, StoreError, Versioned, blocking,
    files::{encode, remove_durably, write_atomic},
};

/// One versioned JSON file, replaced atomically.
#[derive(Debug, Clone)]
pub struct Document<T> {
    pub(super) store: Store,
    pub(super) path: PathBuf,
    pub(super) _type: PhantomData<fn() -> T>,
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
