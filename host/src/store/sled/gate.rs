//! The gate sled writes pass (see the `sled` module: a flush holds it alone)
//! and the fuse that stops flushes once a write or flush failed with an
//! I/O error, noted before the failed write lets the gate go.

use std::sync::{OnceLock, RwLockReadGuard};

use crate::store::error::{StoreError, StoreResult};

/// The gate held across a write (see the `sled` module's docs). A write that
/// failed with an I/O error breaks the store's flushes (see [`Broken`])
/// before the gate is let go, so no flush can start in between.
pub(super) struct Writing<'a> {
    _gate: RwLockReadGuard<'a, ()>,
    broken: &'a Broken,
}

impl<'a> Writing<'a> {
    /// Holds `gate` (read) for a write that notes its I/O errors in `broken`.
    pub(super) fn new(gate: RwLockReadGuard<'a, ()>, broken: &'a Broken) -> Writing<'a> {
        Writing { _gate: gate, broken }
    }

    /// A failure of the write: noted if it is an I/O error, and returned.
    pub(super) fn note(&self, error: impl Into<StoreError>) -> StoreError {
        self.broken.note(error.into())
    }
}

/// The first I/O error of a write or flush. sled 0.34 stays failed after
/// one, and worse: a write whose node had to go to a blob file of its own
/// (any node past ~128 KiB: run logs, plugins) and could not write it
/// (ENOSPC) leaves its log buffer with a writer that never finishes, so
/// every later flush waits forever, holding the gate and stalling every
/// write. So once a write or flush failed with an I/O error, flushes fail
/// at once with that error instead of reaching sled; nothing written after
/// it is acknowledged, and reopening the database recovers.
#[derive(Debug, Default)]
pub(super) struct Broken(OnceLock<StoreError>);

impl Broken {
    /// Keeps the first I/O error; returns `error`.
    pub(super) fn note(&self, error: StoreError) -> StoreError {
        if error.fault().is_some() {
            let _ = self.0.set(error.clone());
        }
        error
    }

    /// Err once an I/O error was noted.
    pub(super) fn check(&self) -> StoreResult<()> {
        match self.0.get() {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// A flush under the gate held alone: refused once broken, and its own
    /// I/O error noted.
    pub(super) fn flush(&self, db: &sled::Db) -> StoreResult<()> {
        self.check()?;
        db.flush().map_err(|error| self.note(error.into()))?;
        Ok(())
    }
}
