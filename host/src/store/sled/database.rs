//! The sled database of [`SledStore`]: the struct and its trees, the
//! caches and locks its subjects share, the gate every write passes (see
//! `gate`), reading records, and durability. Opening it is `open`; each
//! subject's file implements its trait on it.

use std::sync::{Arc, Mutex, RwLock};

use serde::de::DeserializeOwned;
use sled::{Db, Tree};

use super::active_groups::ActiveGroups;
use super::encoding::{corrupt, from_json};
use super::gate::{Broken, Writing};
use super::job_cache::JobCache;
use super::run_bytes::Totals;
use crate::store::code_files::CodeFiles;
use crate::store::error::{StoreFuture, StoreResult};
use crate::store::group_commit::GroupCommit;
use crate::store::traits::Durability;

/// sled-backed [`Store`](crate::store::Store).
#[derive(Clone)]
pub struct SledStore {
    pub(super) db: Db,
    /// Batches and transactions share it; a flush takes it alone.
    pub(super) gate: Arc<RwLock<()>>,
    /// Set by the first I/O error of a write or flush: flushes fail from
    /// then on (see `gate`).
    pub(super) broken: Arc<Broken>,
    /// Shares flushes between concurrent [`Durability::flush_async`] callers.
    pub(super) group: GroupCommit,
    /// Decoded jobs (see `job_cache`).
    pub(super) job_cache: Arc<JobCache>,
    /// The unfinished runs of each fire pass's active marker (see
    /// `active_groups`); held across the writes that settle them, and
    /// always taken before the gate.
    pub(super) active_groups: Arc<Mutex<ActiveGroups>>,
    /// Each tenant's run bytes (see `run_bytes`), held across every write
    /// that changes them; taken after the active groups and before the gate.
    pub(super) run_bytes: Arc<Totals>,
    pub(super) plugins: Tree,
    /// Plugin bytes by digest as older versions kept them, moved to
    /// `files` on open.
    pub(super) plugin_bytes: Tree,
    /// Digest -> how many versions (of any tenant) use it (u64
    /// big-endian), kept in the same transaction as every version written
    /// or deleted (see `plugins`).
    pub(super) plugin_refs: Tree,
    /// `digest \0 engine` -> the compile record of the code in `files`.
    pub(super) artifacts: Tree,
    /// Compiled code as older versions kept it, moved to `files` on open.
    pub(super) artifact_bytes: Tree,
    /// Plugin bytes and compiled code (see `code_files`).
    pub(super) files: Arc<CodeFiles>,
    pub(super) jobs: Tree,
    pub(super) job_names: Tree,
    pub(super) due: Tree,
    /// `tenant \0 job id` of every job with `run_at_start`, so a start reads
    /// those jobs and not all of them.
    pub(super) starters: Tree,
    pub(super) runs: Tree,
    pub(super) kv: Tree,
    /// Tenant -> bytes of its kv keys and values (u64 big-endian), kept in
    /// the same transaction as every kv write.
    pub(super) kv_usage: Tree,
    /// `tenant \0 name` -> an encrypted secret.
    pub(super) secrets: Tree,
    /// Held across a quota's count and the write it admits (plugin versions,
    /// jobs), so two racing writes cannot both fit in the last place.
    pub(super) counted: Arc<Mutex<()>>,
    /// Tenants by name.
    pub(super) tenants: Tree,
    /// `tenant \0 name` -> a workflow (JSON).
    pub(super) workflows: Tree,
    /// Tokens by the hex sha256 of their secret.
    pub(super) tokens: Tree,
    /// `tenant \0 token id` -> the token's hash, to list and revoke by id.
    pub(super) tenant_tokens: Tree,
}

impl SledStore {
    /// Holds the quota lock (see `counted`).
    pub(super) fn counting(&self) -> std::sync::MutexGuard<'_, ()> {
        self.counted.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Held across every batch and transaction (see the `sled` module docs).
    pub(super) fn writing(&self) -> Writing<'_> {
        Writing::new(
            self.gate.read().unwrap_or_else(|poisoned| poisoned.into_inner()),
            &self.broken,
        )
    }

    /// The JSON records under `prefix`.
    pub(super) fn scan<T: DeserializeOwned>(tree: &Tree, prefix: &[u8]) -> StoreResult<Vec<T>> {
        Self::scan_with(tree, prefix, from_json)
    }

    /// The records under `prefix`, as `decode` reads them.
    pub(super) fn scan_with<T>(
        tree: &Tree,
        prefix: &[u8],
        decode: fn(&[u8]) -> Result<T, String>,
    ) -> StoreResult<Vec<T>> {
        tree.scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry?;
                decode(&value).map_err(|message| corrupt(&key, message))
            })
            .collect()
    }

    /// The JSON record under `key`.
    pub(super) fn get<T: DeserializeOwned>(tree: &Tree, key: &[u8]) -> StoreResult<Option<T>> {
        Self::get_with(tree, key, from_json)
    }

    /// The record under `key`, as `decode` reads it.
    pub(super) fn get_with<T>(
        tree: &Tree,
        key: &[u8],
        decode: fn(&[u8]) -> Result<T, String>,
    ) -> StoreResult<Option<T>> {
        tree.get(key)?
            .map(|value| decode(&value).map_err(|message| corrupt(key, message)))
            .transpose()
    }
}

impl Durability for SledStore {
    fn flush(&self) -> StoreResult<()> {
        let _alone = self.gate.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.broken.flush(&self.db)
    }

    fn flush_async(&self) -> StoreFuture {
        let group = self.group.clone();
        Box::pin(async move { group.flush().await })
    }

    fn flush_soon(&self) {
        self.group.flush_soon();
    }
}
