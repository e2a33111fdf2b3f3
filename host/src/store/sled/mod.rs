//! The embedded default: sled 0.34. Records are JSON, except jobs' and
//! runs' (compact binary, see `job_codec` and `run_codec`); keys are
//! `tenant \0 ...` byte strings so a tenant's objects form one range.
//! Multi-tree writes go through sled transactions so they land together.
//!
//! sled 0.34 deadlocks when a flush (which holds its concurrency-control
//! read lock while it waits for the log to become stable) meets a batch or
//! transaction (which queues for the write lock, so the IO work the flush
//! waits for cannot take its read lock): seen here with 10,000 jobs firing.
//! So every batch and transaction passes a gate shared with flushes, a flush
//! holds the gate alone, and sled's own timer flusher is off (sandcron
//! flushes explicitly before acknowledging anything). A write or flush that
//! fails with an I/O error (a full disk) stops every later flush before it
//! lets the gate go: after one, a sled flush may wait forever (see `gate`).
//!
//! Runs are written on every run, two or three times, so everything about
//! them (record, per-job index, active marker, output, log) lives in one
//! tree under a one-byte namespace and is written with one atomic
//! `apply_batch`: a multi-tree transaction costs ~90 µs here, a batch a
//! few. The runs of one fire pass share one active marker (see
//! `active_groups`); a run queued any other way has its own. The bytes of
//! each tenant's finished runs (see `run_bytes`) are a key of the same
//! tree, written in the same batch as the outcomes and deletions that
//! change them.
//!
//! One file per subject implements its trait for [`SledStore`], with the
//! keys, codecs and caches only it uses beside it: `plugins` (with
//! `code_files`), `jobs` (with `job_codec` and `job_cache`), `runs` (with
//! `run_codec`, `run_bytes` and `active_groups`), `kv`, `tenants` and
//! `secrets`. This file holds the struct and its trees, opening, the gate
//! every write passes and durability.

mod active_groups;
mod code_files;
mod codec;
mod gate;
mod job_cache;
pub(crate) mod job_codec;
mod jobs;
mod kv;
mod plugins;
mod run_bytes;
pub(crate) mod run_codec;
mod runs;
mod secrets;
mod tenants;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::TransactionError;
use sled::{Db, Tree};

use active_groups::ActiveGroups;
use code_files::CodeFiles;
use gate::{Broken, Writing};
use job_cache::JobCache;
use run_bytes::Totals;

use super::group_commit::GroupCommit;
use super::{Durability, StoreError, StoreFuture, StoreResult};
pub use plugins::PluginStorage;

/// sled-backed [`Store`](super::Store).
#[derive(Clone)]
pub struct SledStore {
    db: Db,
    /// Batches and transactions share it; a flush takes it alone.
    gate: Arc<RwLock<()>>,
    /// Set by the first I/O error of a write or flush: flushes fail from
    /// then on (see `gate`).
    broken: Arc<Broken>,
    /// Shares flushes between concurrent [`Durability::flush_async`] callers.
    group: GroupCommit,
    /// Decoded jobs (see `job_cache`).
    job_cache: Arc<JobCache>,
    /// The unfinished runs of each fire pass's active marker (see
    /// `active_groups`); held across the writes that settle them, and
    /// always taken before the gate.
    active_groups: Arc<Mutex<ActiveGroups>>,
    /// Each tenant's run bytes (see `run_bytes`), held across every write
    /// that changes them; taken after the active groups and before the gate.
    run_bytes: Arc<Totals>,
    plugins: Tree,
    /// Plugin bytes by digest as older versions kept them, moved to
    /// `files` on open.
    plugin_bytes: Tree,
    /// Digest -> how many versions (of any tenant) use it (u64
    /// big-endian), kept in the same transaction as every version written
    /// or deleted (see `plugins`).
    plugin_refs: Tree,
    /// `digest \0 engine` -> the compile record of the code in `files`.
    artifacts: Tree,
    /// Compiled code as older versions kept it, moved to `files` on open.
    artifact_bytes: Tree,
    /// Plugin bytes and compiled code (see `code_files`).
    files: Arc<CodeFiles>,
    jobs: Tree,
    job_names: Tree,
    due: Tree,
    /// `tenant \0 job id` of every job with `run_at_start`, so a start reads
    /// those jobs and not all of them.
    starters: Tree,
    runs: Tree,
    kv: Tree,
    /// Tenant -> bytes of its kv keys and values (u64 big-endian), kept in
    /// the same transaction as every kv write.
    kv_usage: Tree,
    /// `tenant \0 name` -> an encrypted secret.
    secrets: Tree,
    /// Held across a quota's count and the write it admits (plugin versions,
    /// jobs), so two racing writes cannot both fit in the last place.
    counted: Arc<Mutex<()>>,
    /// Tenants by name.
    tenants: Tree,
    /// Tokens by the hex sha256 of their secret.
    tokens: Tree,
    /// `tenant \0 token id` -> the token's hash, to list and revoke by id.
    tenant_tokens: Tree,
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|part| part.len() + 1).sum());
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

fn prefix(parts: &[&[u8]]) -> Vec<u8> {
    let mut prefix = key(parts);
    prefix.push(0);
    prefix
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data and always serialize")
}

/// A record under `key` that does not decode.
fn corrupt(key: &[u8], message: String) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        message,
    }
}

/// A record stored as JSON (every kind but jobs and runs).
fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|error| error.to_string())
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> StoreResult<T> {
    from_json(bytes).map_err(|message| corrupt(key, message))
}

/// A count stored as u64 big-endian (absent is 0).
fn read_count(bytes: Option<sled::IVec>) -> u64 {
    bytes
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

fn transaction_error(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => error.into(),
    }
}

impl SledStore {
    /// Opens (or creates) the database at `path`, flushing as soon as asked.
    /// A second process on the same path fails with [`StoreError::Locked`].
    pub fn open(path: &Path) -> StoreResult<SledStore> {
        SledStore::open_with(path, Duration::ZERO, crate::config::DEFAULT_DB_CACHE)
    }

    /// Opens the database with flushes at least `flush_interval` apart (see
    /// the group commit's durability window) and `cache_bytes` of sled's
    /// page cache. Plugin bytes and compiled code are files under
    /// `path/plugins`.
    pub fn open_with(path: &Path, flush_interval: Duration, cache_bytes: u64) -> StoreResult<SledStore> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None);
        let db = config.open().map_err(|error| match &error {
            sled::Error::Io(io) if io.to_string().contains("lock") || io.kind() == std::io::ErrorKind::WouldBlock => {
                StoreError::Locked(format!(
                    "the database {} is in use by another process (is another sandcron daemon running on this data dir?): {io}",
                    path.display()
                ))
            }
            _ => StoreError::Backend(format!("cannot open {}: {error}", path.display())),
        })?;
        let tree = |name: &str| db.open_tree(name);
        let had_tree = |name: &[u8]| db.tree_names().iter().any(|tree| tree.as_ref() == name);
        let (had_starters, had_kv_usage) = (had_tree(b"run_at_start"), had_tree(b"kv_usage"));
        let gate = Arc::new(RwLock::new(()));
        let broken = Arc::new(Broken::default());
        let group = GroupCommit::new(
            {
                let (db, gate, broken) = (db.clone(), gate.clone(), broken.clone());
                Arc::new(move || {
                    let _alone = gate.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                    broken.flush(&db)
                })
            },
            flush_interval,
        );
        let store = SledStore {
            plugins: tree("plugins")?,
            plugin_bytes: tree("plugin_bytes")?,
            plugin_refs: tree("plugin_refs")?,
            artifacts: tree("artifacts")?,
            artifact_bytes: tree("artifact_bytes")?,
            files: Arc::new(CodeFiles::open(&path.join("plugins"))?),
            jobs: tree("jobs")?,
            job_names: tree("job_names")?,
            due: tree("due")?,
            starters: tree("run_at_start")?,
            runs: tree("runs")?,
            kv: tree("kv")?,
            kv_usage: tree("kv_usage")?,
            secrets: tree("secrets")?,
            counted: Arc::new(Mutex::new(())),
            tenants: tree("tenants")?,
            tokens: tree("tokens")?,
            tenant_tokens: tree("tenant_tokens")?,
            gate,
            broken,
            group,
            job_cache: Arc::new(JobCache::default()),
            active_groups: Arc::new(Mutex::new(ActiveGroups::default())),
            run_bytes: Arc::new(Totals::default()),
            db,
        };
        let unfinished = store.count_unfinished()?;
        let store = SledStore {
            run_bytes: Arc::new(Totals::new(store.read_run_bytes()?, unfinished.bytes)),
            ..store
        };
        for record_key in unfinished.alone {
            store.groups().add_alone(record_key);
        }
        if !had_starters {
            store.index_starters()?;
        }
        if !had_kv_usage {
            store.count_kv_usage()?;
        }
        store.prepare_plugins()?;
        Ok(store)
    }

    /// Holds the quota lock (see `counted`).
    fn counting(&self) -> std::sync::MutexGuard<'_, ()> {
        self.counted.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Held across every batch and transaction (see the module docs).
    fn writing(&self) -> Writing<'_> {
        Writing::new(
            self.gate.read().unwrap_or_else(|poisoned| poisoned.into_inner()),
            &self.broken,
        )
    }

    fn scan<T: DeserializeOwned>(tree: &Tree, prefix: &[u8]) -> StoreResult<Vec<T>> {
        Self::scan_with(tree, prefix, from_json)
    }

    /// The records under `prefix`, as `decode` reads them.
    fn scan_with<T>(tree: &Tree, prefix: &[u8], decode: fn(&[u8]) -> Result<T, String>) -> StoreResult<Vec<T>> {
        tree.scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry?;
                decode(&value).map_err(|message| corrupt(&key, message))
            })
            .collect()
    }

    fn get<T: DeserializeOwned>(tree: &Tree, key: &[u8]) -> StoreResult<Option<T>> {
        Self::get_with(tree, key, from_json)
    }

    /// The record under `key`, as `decode` reads it.
    fn get_with<T>(tree: &Tree, key: &[u8], decode: fn(&[u8]) -> Result<T, String>) -> StoreResult<Option<T>> {
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

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::{Job, Run};
    use crate::store::{Fire, JobStore, KvStore};

    /// A job of tenant `t` from its spec, with the default limits.
    pub(super) fn validated(spec: &serde_json::Value) -> Job {
        let defaults = crate::config::Config::default().job_defaults();
        let parsed = crate::model::validate::parse_spec(spec).unwrap();
        crate::model::validate::validate(parsed, "t", None, &defaults, Utc::now()).unwrap()
    }

    /// A stored job of tenant `t` and the fire of `runs` of it, due now.
    pub(super) fn job_and_fire(store: &SledStore, name: &str, runs: usize) -> (Job, Fire) {
        let spec = serde_json::json!({"name": name, "plugin": "p", "schedule": {"every": "1h"}});
        let job = validated(&spec);
        store.insert_job(&job).unwrap();
        let now = Utc::now();
        let runs = (0..runs)
            .map(|index| {
                let mut run = Run::sample(&format!("{name}-run-{index}"), &job.id, now);
                run.job_id = job.id.clone();
                run
            })
            .collect();
        let fire = Fire { job: job.clone(), runs };
        (job, fire)
    }

    #[tokio::test]
    async fn after_an_io_error_flushes_fail_with_it_at_once_instead_of_reaching_sled() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.kv_set("t", "j", "k", b"v").unwrap();
        store.flush().unwrap();
        // Not an I/O error: flushes go on.
        store.broken.note(StoreError::Conflict("changed".into()));
        store.flush_async().await.unwrap();
        store
            .broken
            .note(StoreError::NoSpace("no space left on the data volume".into()));
        store
            .broken
            .note(StoreError::Unavailable("a later, other error".into()));
        for flushed in [store.flush(), store.flush_async().await] {
            match flushed {
                Err(StoreError::NoSpace(message)) => assert!(message.contains("no space"), "{message}"),
                other => panic!("a flush after an I/O error answered {other:?}"),
            }
        }
        // Reads go on.
        assert_eq!(store.kv_get("t", "j", "k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        // sled's lock is per process file lock; a second open in the same
        // process is refused too.
        match SledStore::open(dir.path()) {
            Err(StoreError::Locked(message)) => assert!(message.contains("in use")),
            Err(other) => panic!("expected Locked, got {other}"),
            Ok(_) => panic!("a second open must fail"),
        }
    }
}
