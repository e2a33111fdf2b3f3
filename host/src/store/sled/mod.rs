//! The embedded default: sled 0.34. Records are JSON, except runs' (a
//! compact binary form, see `run_codec`); keys are `tenant \0 ...` byte
//! strings so a tenant's objects form one range.
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

mod active_groups;
mod code_files;
mod codec;
mod gate;
mod job_cache;
pub(crate) mod job_codec;
mod run_bytes;
pub(crate) mod run_codec;
mod run_usage;

use run_usage::{put_totals, put_totals_in, withdraw_in, withdrawn_runs};

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Db, Tree};
use std::sync::{Arc, Mutex, RwLock};

use active_groups::ActiveGroups;
use code_files::CodeFiles;
use gate::{Broken, Writing};
use job_cache::JobCache;
use run_bytes::{Changes, Totals};

use super::group_commit::GroupCommit;

mod plugins;

use super::{
    AddedPlugin, DeletedPlugin, DueJob, Durability, Fire, JobHooks, JobStore, KvStore, NewPluginVersion, PluginStore,
    RunFilter, RunStore, RunWrite, SecretStore, StoreError, StoreFuture, StoreResult, TenantStore,
};
use crate::model::{Artifact, Job, PluginVersion, Run, RunStatus, SecretRecord, Tenant, Token};
pub use plugins::PluginStorage;

/// sled-backed [`Store`].
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

/// Namespaces of the `runs` tree.
mod run_space {
    /// `R tenant \0 run_id` -> the run record.
    pub const RECORD: u8 = b'R';
    /// `J tenant \0 job_id \0 run_id` -> (), runs of a job.
    pub const BY_JOB: u8 = b'J';
    /// `A tenant \0 run_id` -> (), queued or running runs.
    pub const ACTIVE: u8 = b'A';
    /// `G group id` -> the record keys of the runs one fire pass queued,
    /// while any of them is unfinished (see `active_groups`).
    pub const GROUP: u8 = b'G';
    /// `O tenant \0 run_id` -> the output bytes.
    pub const OUTPUT: u8 = b'O';
    /// `L tenant \0 run_id` -> the captured log.
    pub const LOG: u8 = b'L';
    /// `H tenant` -> the bytes of the tenant's finished runs, its run
    /// history (u64 big-endian); `H` alone marks that every tenant's are
    /// counted. Between the group markers and the job index, away from the
    /// end of the records where new ones land: on that page its update
    /// with each batch of outcomes cost five times as much.
    pub const USAGE: u8 = b'H';
}

fn run_key(space: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut spaced = vec![space];
    spaced.extend_from_slice(&key(parts));
    spaced
}

/// The key of a run's record.
fn record_key(run: &Run) -> Vec<u8> {
    run_key(run_space::RECORD, &[run.tenant.as_bytes(), run.id.as_bytes()])
}

/// The key of a run in its job's index.
fn by_job_key(run: &Run) -> Vec<u8> {
    run_key(
        run_space::BY_JOB,
        &[run.tenant.as_bytes(), run.job_id.as_bytes(), run.id.as_bytes()],
    )
}

/// The key of a run's own active marker (one queued outside a fire pass).
fn active_key(run: &Run) -> Vec<u8> {
    run_key(run_space::ACTIVE, &[run.tenant.as_bytes(), run.id.as_bytes()])
}

fn run_prefix(space: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut spaced = vec![space];
    spaced.extend_from_slice(&prefix(parts));
    spaced
}

/// The due-index key of a job: its next fire (ms since the epoch, big
/// endian so keys sort by time), then tenant and id. None when the job has
/// no next fire or is paused.
fn due_key(job: &Job) -> Option<Vec<u8>> {
    let next = job.next_fire_at.filter(|_| job.enabled)?;
    Some(due_entry(next, &job.tenant, &job.id))
}

fn due_entry(at: DateTime<Utc>, tenant: &str, job_id: &str) -> Vec<u8> {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut entry = millis.to_be_bytes().to_vec();
    entry.extend_from_slice(&key(&[tenant.as_bytes(), job_id.as_bytes()]));
    entry
}

fn parse_due_key(due: &[u8]) -> Option<DueJob> {
    let (millis, rest) = due.split_first_chunk::<8>()?;
    let millis = i64::try_from(u64::from_be_bytes(*millis)).ok()?;
    let mut parts = rest.split(|byte| *byte == 0);
    let tenant = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let job_id = String::from_utf8(parts.next()?.to_vec()).ok()?;
    Some(DueJob {
        at: DateTime::from_timestamp_millis(millis)?,
        tenant,
        job_id,
    })
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

/// A run record under its key `R tenant \0 id` (see `run_codec`: the
/// record leaves the tenant and id to its key).
fn decode_run(key: &[u8], bytes: &[u8]) -> StoreResult<Run> {
    let (tenant, id) = key
        .get(1..)
        .and_then(|rest| {
            let split = rest.iter().position(|byte| *byte == 0)?;
            Some((
                std::str::from_utf8(&rest[..split]).ok()?,
                std::str::from_utf8(&rest[split + 1..]).ok()?,
            ))
        })
        .ok_or_else(|| corrupt(key, "the key is not `R tenant NUL id`".to_string()))?;
    run_codec::decode(bytes, tenant, id).map_err(|message| corrupt(key, message))
}

fn last_part(key: &[u8]) -> &[u8] {
    key.rsplit(|byte| *byte == 0).next().unwrap_or(key)
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

    /// Counts each tenant's kv bytes in a database from before the count
    /// was kept.
    fn count_kv_usage(&self) -> StoreResult<()> {
        let mut usage: std::collections::BTreeMap<Vec<u8>, u64> = std::collections::BTreeMap::new();
        for entry in self.kv.iter() {
            let (full, value) = entry?;
            let mut parts = full.splitn(3, |byte| *byte == 0);
            let (Some(tenant), Some(_job), Some(user_key)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            *usage.entry(tenant.to_vec()).or_default() += (user_key.len() + value.len()) as u64;
        }
        let mut batch = sled::Batch::default();
        for (tenant, bytes) in usage {
            batch.insert(tenant, &bytes.to_be_bytes());
        }
        let gate = self.writing();
        self.kv_usage.apply_batch(batch).map_err(|error| gate.note(error))?;
        Ok(())
    }

    /// Holds the quota lock (see `counted`).
    fn counting(&self) -> std::sync::MutexGuard<'_, ()> {
        self.counted.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Builds the `run_at_start` index of a database from before it existed.
    fn index_starters(&self) -> StoreResult<()> {
        let mut batch = sled::Batch::default();
        for job in Self::scan_with(&self.jobs, &[], job_codec::decode)? {
            if job.run_at_start {
                batch.insert(key(&[job.tenant.as_bytes(), job.id.as_bytes()]), &[] as &[u8]);
            }
        }
        let gate = self.writing();
        self.starters.apply_batch(batch).map_err(|error| gate.note(error))?;
        Ok(())
    }

    /// The active groups, held across a write that settles their runs.
    fn groups(&self) -> std::sync::MutexGuard<'_, ActiveGroups> {
        self.active_groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Withdrawn runs were deleted: their groups count them no more, and a
    /// group left empty loses its key, in a write of its own. If that write
    /// fails (or a crash comes first) the key stays until the next start
    /// finds its runs gone and removes it; the withdrawal itself stands.
    fn release(&self, withdrawn: &[Run]) {
        let mut groups = self.groups();
        let records: Vec<Vec<u8>> = withdrawn.iter().map(record_key).collect();
        let settling = groups.plan(records.iter().map(Vec::as_slice));
        if !settling.emptied.is_empty() {
            let mut batch = sled::Batch::default();
            for group in &settling.emptied {
                batch.remove(group.as_ref());
            }
            let gate = self.writing();
            if let Err(error) = self.runs.apply_batch(batch).map_err(|error| gate.note(error)) {
                tracing::warn!(%error, "cannot remove the active marker of withdrawn runs; the next start will");
            }
        }
        groups.apply(settling);
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

    /// The run record under `record_key`.
    fn run_at(&self, record_key: &[u8]) -> StoreResult<Option<Run>> {
        self.runs
            .get(record_key)?
            .map(|value| decode_run(record_key, &value))
            .transpose()
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

    /// Adds the keys a run's step changes to `batch`, what it changes in
    /// its tenant's run bytes to `changes` and the record keys of the runs
    /// it queues to `queued` (`earlier`: the steps before it in the same
    /// write, when any is of the same run): sled costs ~13 µs per key here,
    /// so each step writes only what it must.
    fn add_run_step(
        &self,
        batch: &mut sled::Batch,
        changes: &mut Changes,
        queued: &mut Vec<Vec<u8>>,
        write: &RunWrite<'_>,
        earlier: &[RunWrite<'_>],
        groups: &ActiveGroups,
    ) -> StoreResult<()> {
        let queue = |batch: &mut sled::Batch, changes: &mut Changes, queued: &mut Vec<Vec<u8>>, run: &Run| {
            let record = run_codec::encode(run);
            let charge = run_bytes::charge_encoded(run, &record);
            changes.stored(&run.tenant, run.status.is_finished(), charge);
            let record_key = record_key(run);
            batch.insert(record_key.as_slice(), record);
            if !run.status.is_finished() {
                queued.push(record_key);
            }
            batch.insert(by_job_key(run), &[] as &[u8]);
            batch.insert(active_key(run), &[] as &[u8]);
        };
        match *write {
            RunWrite::Queued(run) => queue(batch, changes, queued, run),
            // An unfinished run is charged as queued: a mark changes nothing.
            RunWrite::Updated(run) => {
                batch.insert(record_key(run), run_codec::encode(run));
            }
            RunWrite::Finished { run, output, log, next } => {
                let (tenant, id) = (run.tenant.as_bytes(), run.id.as_bytes());
                let record_key = record_key(run);
                let grouped = groups.is_grouped(&record_key);
                let record = run_codec::encode(run);
                let unfinished = grouped || groups.is_alone(&record_key);
                if let Some((finished, charge)) = self.stored_before(run, &record, &record_key, unfinished, earlier)? {
                    changes.dropped(&run.tenant, finished, charge);
                }
                let charge = run_bytes::charge_encoded(run, &record);
                changes.stored(&run.tenant, run.status.is_finished(), charge);
                if !grouped {
                    batch.remove(active_key(run));
                }
                batch.insert(record_key, record);
                if !output.is_empty() {
                    batch.insert(run_key(run_space::OUTPUT, &[tenant, id]), output);
                }
                if !log.is_empty() {
                    batch.insert(run_key(run_space::LOG, &[tenant, id]), log);
                }
                if let Some(next) = next {
                    queue(batch, changes, queued, next);
                }
            }
        }
        Ok(())
    }

    /// [`RunStore::write_runs`]; with `room`, the queued run and the quota it
    /// must fit (see [`RunStore::insert_run_within`]).
    fn write_runs_within(&self, writes: &[RunWrite<'_>], room: Option<(&Run, u64)>) -> StoreResult<()> {
        let mut groups = self.groups();
        let finished: Vec<Vec<u8>> = writes
            .iter()
            .filter_map(|write| match write {
                RunWrite::Finished { run, .. } => Some(record_key(run)),
                _ => None,
            })
            .collect();
        let settling = groups.plan(finished.iter().map(Vec::as_slice));
        let mut batch = sled::Batch::default();
        let mut changes = Changes::default();
        let mut queued = Vec::new();
        let repeated = run_usage::repeated_runs(writes);
        for (index, write) in writes.iter().enumerate() {
            // Only a run written twice in this write has an earlier step.
            let earlier = match write {
                RunWrite::Finished { run, .. } if repeated.contains(run.id.as_str()) => &writes[..index],
                _ => &[],
            };
            self.add_run_step(&mut batch, &mut changes, &mut queued, write, earlier, &groups)?;
        }
        for group in &settling.emptied {
            batch.remove(group.as_ref());
        }
        let mut totals = self.run_bytes.hold();
        if let Some((run, max_bytes)) = room {
            let need = run_bytes::queued_charge(run);
            if totals.get(&run.tenant).saturating_add(need) > max_bytes {
                return Err(run_usage::no_room(need, totals.parts(&run.tenant).1, max_bytes));
            }
        }
        put_totals(&mut batch, &totals, &changes);
        let gate = self.writing();
        self.runs.apply_batch(batch).map_err(|error| gate.note(error))?;
        totals.apply(&changes);
        groups.apply(settling);
        for record_key in queued {
            groups.add_alone(record_key);
        }
        Ok(())
    }
}

/// A fire's records and keys, encoded once outside the transaction (which
/// sled may run more than once).
struct EncodedFire {
    job_key: Vec<u8>,
    record: Vec<u8>,
    due_entry: Option<Vec<u8>>,
    runs: Vec<EncodedRun>,
}

/// A queued run's record and the key of its per-job index (its active
/// marker is its fire pass's group).
struct EncodedRun {
    record_key: Vec<u8>,
    record: Vec<u8>,
    by_job: Vec<u8>,
    /// What it adds to its tenant's run bytes.
    charge: u64,
}

impl EncodedFire {
    fn of(fire: &Fire) -> EncodedFire {
        let job = &fire.job;
        let (tenant, job_id) = (job.tenant.as_bytes(), job.id.as_bytes());
        EncodedFire {
            job_key: key(&[tenant, job_id]),
            record: job_codec::encode(job),
            due_entry: due_key(job),
            runs: fire
                .runs
                .iter()
                .map(|run| {
                    let record = run_codec::encode(run);
                    EncodedRun {
                        record_key: record_key(run),
                        charge: run_bytes::charge_encoded(run, &record),
                        record,
                        by_job: by_job_key(run),
                    }
                })
                .collect(),
        }
    }
}

impl PluginStore for SledStore {
    fn add_plugin_version_within(
        &self,
        new: &NewPluginVersion<'_>,
        max_total_bytes: Option<u64>,
    ) -> StoreResult<AddedPlugin> {
        self.add_plugin(new, max_total_bytes)
    }

    fn plugin_usage(&self, tenant: &str) -> StoreResult<u64> {
        self.usage_of(tenant)
    }

    fn list_plugin_versions(&self, tenant: &str) -> StoreResult<Vec<PluginVersion>> {
        Self::scan(&self.plugins, &prefix(&[tenant.as_bytes()]))
    }

    fn plugin_versions(&self, tenant: &str, name: &str) -> StoreResult<Vec<PluginVersion>> {
        self.versions_of(tenant, name)
    }

    fn plugin_version(&self, tenant: &str, name: &str, version: Option<u32>) -> StoreResult<Option<PluginVersion>> {
        self.version_of(tenant, name, version)
    }

    fn delete_plugin(&self, tenant: &str, name: &str) -> StoreResult<DeletedPlugin> {
        self.delete_versions(tenant, name)
    }

    fn collect_plugins(&self) -> StoreResult<Vec<String>> {
        self.collect_unused()
    }

    fn plugin_bytes(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        self.bytes_of(digest)
    }

    fn artifact(&self, digest: &str, engine: &str) -> StoreResult<Option<(Artifact, Vec<u8>)>> {
        self.artifact_of(digest, engine)
    }

    fn has_artifact(&self, digest: &str, engine: &str) -> StoreResult<bool> {
        self.has_artifact_of(digest, engine)
    }

    fn put_artifact(&self, artifact: &Artifact, bytes: &[u8]) -> StoreResult<bool> {
        self.put_used_artifact(artifact, bytes)
    }

    fn stored_artifacts(&self) -> StoreResult<Vec<super::StoredArtifact>> {
        self.artifacts_on_disk()
    }

    fn drop_artifact(&self, digest: &str, engine: &str) -> StoreResult<()> {
        self.drop_artifact_of(digest, engine)
    }
}

impl JobStore for SledStore {
    fn insert_job_within(&self, job: &Job, max_jobs: Option<u64>) -> StoreResult<()> {
        let _counting = self.counting();
        if let Some(limit) = max_jobs {
            let count = self.job_names.scan_prefix(prefix(&[job.tenant.as_bytes()])).count() as u64;
            if count >= limit {
                return Err(StoreError::QuotaExceeded(format!(
                    "jobs: the tenant has {count} jobs; its quota is {limit} (delete a job to make room)"
                )));
            }
        }
        let job_key = key(&[job.tenant.as_bytes(), job.id.as_bytes()]);
        let name_key = key(&[job.tenant.as_bytes(), job.name.as_bytes()]);
        let record = job_codec::encode(job);
        let due_entry = due_key(job);
        let gate = self.writing();
        (&self.jobs, &self.job_names, &self.due, &self.starters)
            .transaction(|(jobs, job_names, due, starters)| {
                if job_names.get(name_key.as_slice())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::NameTaken {
                        name: job.name.clone(),
                    }));
                }
                job_names.insert(name_key.as_slice(), job.id.as_bytes())?;
                jobs.insert(job_key.as_slice(), record.as_slice())?;
                if let Some(entry) = &due_entry {
                    due.insert(entry.as_slice(), &[] as &[u8])?;
                }
                if job.run_at_start {
                    starters.insert(job_key.as_slice(), &[] as &[u8])?;
                } else {
                    starters.remove(job_key.as_slice())?;
                }
                Ok(())
            })
            .map_err(|error| gate.note(transaction_error(error)))?;
        self.job_cache.put(job_key, job);
        Ok(())
    }

    fn update_job_withdrawing(&self, job: &Job, withdrawn: &[Run]) -> StoreResult<()> {
        let withdrawn_runs = withdrawn_runs(withdrawn);
        let job_key = key(&[job.tenant.as_bytes(), job.id.as_bytes()]);
        let name_key = key(&[job.tenant.as_bytes(), job.name.as_bytes()]);
        let record = job_codec::encode(job);
        let due_entry = due_key(job);
        let mut totals = self.run_bytes.hold();
        let gate = self.writing();
        let written = (&self.jobs, &self.job_names, &self.due, &self.starters, &self.runs)
            .transaction(|(jobs, job_names, due, starters, run_tree)| {
                let changes = withdraw_in(run_tree, &withdrawn_runs, &totals)?;
                if let Some(owner) = job_names.get(name_key.as_slice())?
                    && owner.as_ref() != job.id.as_bytes()
                {
                    return Err(ConflictableTransactionError::Abort(StoreError::NameTaken {
                        name: job.name.clone(),
                    }));
                }
                if let Some(previous) = jobs.get(job_key.as_slice())? {
                    let previous = job_codec::decode(&previous)
                        .map_err(|message| ConflictableTransactionError::Abort(corrupt(&job_key, message)))?;
                    if previous.name != job.name {
                        job_names.remove(key(&[job.tenant.as_bytes(), previous.name.as_bytes()]))?;
                    }
                    if let Some(entry) = due_key(&previous) {
                        due.remove(entry)?;
                    }
                }
                job_names.insert(name_key.as_slice(), job.id.as_bytes())?;
                jobs.insert(job_key.as_slice(), record.as_slice())?;
                if let Some(entry) = &due_entry {
                    due.insert(entry.as_slice(), &[] as &[u8])?;
                }
                if job.run_at_start {
                    starters.insert(job_key.as_slice(), &[] as &[u8])?;
                } else {
                    starters.remove(job_key.as_slice())?;
                }
                Ok(changes)
            })
            .map_err(|error| gate.note(transaction_error(error)));
        drop(gate);
        if let Ok(changes) = &written {
            totals.apply(changes);
        }
        // The groups' lock is taken before the totals elsewhere.
        drop(totals);
        match written {
            Ok(_) => self.job_cache.put(job_key, job),
            Err(_) => self.job_cache.forget(&job_key),
        }
        written?;
        self.release(withdrawn);
        Ok(())
    }

    fn job(&self, tenant: &str, id: &str) -> StoreResult<Option<Job>> {
        let job_key = key(&[tenant.as_bytes(), id.as_bytes()]);
        if let Some(job) = self.job_cache.get(&job_key) {
            return Ok(Some(job));
        }
        let seen = self.job_cache.generation();
        let job = Self::get_with(&self.jobs, &job_key, job_codec::decode)?;
        if let Some(job) = &job {
            self.job_cache.fill(job_key, job, seen);
        }
        Ok(job)
    }

    fn job_hooks(&self, tenant: &str, id: &str) -> StoreResult<Option<JobHooks>> {
        let job_key = key(&[tenant.as_bytes(), id.as_bytes()]);
        if let Some(hooks) = self.job_cache.hooks(&job_key) {
            return Ok(Some(hooks));
        }
        let seen = self.job_cache.generation();
        let hooks = Self::get_with(&self.jobs, &job_key, job_codec::hooks)?;
        if let Some(hooks) = &hooks {
            self.job_cache.fill_hooks(job_key, hooks, seen);
        }
        Ok(hooks)
    }

    fn job_id_by_name(&self, tenant: &str, name: &str) -> StoreResult<Option<String>> {
        Ok(self
            .job_names
            .get(key(&[tenant.as_bytes(), name.as_bytes()]))?
            .map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    fn list_jobs(&self, tenant: &str) -> StoreResult<Vec<Job>> {
        Self::scan_with(&self.jobs, &prefix(&[tenant.as_bytes()]), job_codec::decode)
    }

    fn delete_job_withdrawing(&self, tenant: &str, id: &str, withdrawn: &[Run]) -> StoreResult<bool> {
        let withdrawn_runs = withdrawn_runs(withdrawn);
        let Some(job) = self.job(tenant, id)? else {
            return Ok(false);
        };
        let job_key = key(&[tenant.as_bytes(), id.as_bytes()]);
        let name_key = key(&[tenant.as_bytes(), job.name.as_bytes()]);
        let scope = prefix(&[tenant.as_bytes(), id.as_bytes()]);
        let kv_keys: Vec<sled::IVec> = self.kv.scan_prefix(&scope).keys().collect::<Result<_, _>>()?;
        let due_entry = due_key(&job);
        let mut totals = self.run_bytes.hold();
        let gate = self.writing();
        let written = (
            &self.jobs,
            &self.job_names,
            &self.kv,
            &self.due,
            &self.starters,
            &self.runs,
            &self.kv_usage,
        )
            .transaction(|(jobs, job_names, kv, due, starters, run_tree, kv_usage)| {
                let changes = withdraw_in(run_tree, &withdrawn_runs, &totals)?;
                jobs.remove(job_key.as_slice())?;
                starters.remove(job_key.as_slice())?;
                job_names.remove(name_key.as_slice())?;
                if let Some(entry) = &due_entry {
                    due.remove(entry.as_slice())?;
                }
                let mut freed = 0;
                for kv_key in &kv_keys {
                    if let Some(old) = kv.remove(kv_key)? {
                        freed += (kv_key.len() - scope.len() + old.len()) as u64;
                    }
                }
                let used = read_count(kv_usage.get(tenant.as_bytes())?);
                kv_usage.insert(tenant.as_bytes(), &used.saturating_sub(freed).to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(changes)
            })
            .map_err(|error| gate.note(transaction_error(error)));
        drop(gate);
        if let Ok(changes) = &written {
            totals.apply(changes);
        }
        // The groups' lock is taken before the totals elsewhere.
        drop(totals);
        self.job_cache.forget(&job_key);
        written?;
        self.release(withdrawn);
        Ok(true)
    }

    fn record_fires(&self, fires: &[Fire]) -> StoreResult<Vec<StoreResult<Vec<Run>>>> {
        let encoded: Vec<EncodedFire> = fires.iter().map(EncodedFire::of).collect();
        let group: active_groups::GroupKey = run_key(run_space::GROUP, &[crate::model::new_id().as_bytes()]).into();
        let mut totals = self.run_bytes.hold();
        let gate = self.writing();
        let written = (&self.jobs, &self.due, &self.runs)
            .transaction(|(jobs, due, run_tree)| {
                let mut changes = Changes::default();
                let mut members: Vec<&[u8]> = Vec::new();
                let mut outcomes = Vec::with_capacity(encoded.len());
                for (fire, encoded) in fires.iter().zip(&encoded) {
                    let job = &fire.job;
                    let current = match jobs.get(encoded.job_key.as_slice())? {
                        Some(current) => match job_codec::stamp(&current) {
                            Ok(current) => current,
                            Err(message) => {
                                outcomes.push(Err(corrupt(&encoded.job_key, message)));
                                continue;
                            }
                        },
                        None => {
                            outcomes.push(Err(StoreError::Conflict(format!("job {} was deleted", job.id))));
                            continue;
                        }
                    };
                    if current.updated_at != job.updated_at || current.enabled != job.enabled {
                        outcomes.push(Err(StoreError::Conflict(format!(
                            "job {} changed while its fire was planned",
                            job.id
                        ))));
                        continue;
                    }
                    if let Some(next) = current.next_fire_at.filter(|_| current.enabled) {
                        due.remove(due_entry(next, &job.tenant, &job.id))?;
                    }
                    if let Some(entry) = &encoded.due_entry {
                        due.insert(entry.as_slice(), &[] as &[u8])?;
                    }
                    jobs.insert(encoded.job_key.as_slice(), encoded.record.as_slice())?;
                    let mut inserted = Vec::new();
                    for (run, keys) in fire.runs.iter().zip(&encoded.runs) {
                        // A fire's run id is derived from (job, scheduled_at):
                        // if it exists, this fire was recorded before.
                        if run_tree.get(keys.record_key.as_slice())?.is_some() {
                            continue;
                        }
                        run_tree.insert(keys.record_key.as_slice(), keys.record.as_slice())?;
                        run_tree.insert(keys.by_job.as_slice(), &[] as &[u8])?;
                        changes.stored(&run.tenant, false, keys.charge);
                        members.push(keys.record_key.as_slice());
                        inserted.push(run.clone());
                    }
                    outcomes.push(Ok(inserted));
                }
                if !members.is_empty() {
                    run_tree.insert(group.as_ref(), active_groups::encode_members(members.iter().copied()))?;
                }
                put_totals_in(run_tree, &totals, &changes)?;
                Ok((outcomes, members, changes))
            })
            .map_err(|error| gate.note(transaction_error(error)));
        // The groups' lock is taken before the totals and the gate elsewhere.
        drop(gate);
        let written = written.map(|(outcomes, members, changes)| {
            totals.apply(&changes);
            (outcomes, members)
        });
        drop(totals);
        let written = written.map(|(outcomes, members)| {
            if !members.is_empty() {
                self.groups().add(&group, members.into_iter().map(<[u8]>::to_vec));
            }
            outcomes
        });
        for (index, (fire, encoded)) in fires.iter().zip(&encoded).enumerate() {
            match &written {
                Ok(outcomes) if outcomes.get(index).is_some_and(Result::is_ok) => {
                    self.job_cache.put(encoded.job_key.clone(), &fire.job)
                }
                _ => self.job_cache.forget(&encoded.job_key),
            }
        }
        written
    }

    fn due_jobs(&self, until: DateTime<Utc>, limit: usize) -> StoreResult<Vec<DueJob>> {
        let mut due = Vec::new();
        for entry in self.due.iter().keys() {
            let entry = entry?;
            let Some(job) = parse_due_key(&entry) else {
                tracing::warn!("skipping an unreadable due-index entry");
                continue;
            };
            if job.at > until || due.len() >= limit {
                break;
            }
            due.push(job);
        }
        Ok(due)
    }

    fn next_due_after(&self, after: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        let after_millis = u64::try_from(after.timestamp_millis()).unwrap_or(0);
        let start = after_millis.saturating_add(1).to_be_bytes();
        match self.due.range(start..).next() {
            Some(entry) => Ok(parse_due_key(&entry?.0).map(|job| job.at)),
            None => Ok(None),
        }
    }

    fn remove_due(&self, due: &DueJob) -> StoreResult<()> {
        self.due.remove(due_entry(due.at, &due.tenant, &due.job_id))?;
        Ok(())
    }

    fn run_at_start_jobs(&self) -> StoreResult<Vec<Job>> {
        let mut found = Vec::new();
        for entry in self.starters.iter().keys() {
            if let Some(job) = Self::get_with(&self.jobs, &entry?, job_codec::decode)? {
                found.push(job);
            }
        }
        Ok(found)
    }
}

impl RunStore for SledStore {
    fn write_runs(&self, writes: &[RunWrite<'_>]) -> StoreResult<()> {
        self.write_runs_within(writes, None)
    }

    fn insert_run_within(&self, run: &Run, max_bytes: Option<u64>) -> StoreResult<()> {
        match max_bytes {
            Some(max_bytes) => self.insert_making_room(run, max_bytes),
            None => self.insert_run(run),
        }
    }

    fn run(&self, tenant: &str, id: &str) -> StoreResult<Option<Run>> {
        self.run_at(&run_key(run_space::RECORD, &[tenant.as_bytes(), id.as_bytes()]))
    }

    fn run_output(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .runs
            .get(run_key(run_space::OUTPUT, &[tenant.as_bytes(), id.as_bytes()]))?
            .map(|bytes| bytes.to_vec()))
    }

    fn run_log(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .runs
            .get(run_key(run_space::LOG, &[tenant.as_bytes(), id.as_bytes()]))?
            .map(|bytes| bytes.to_vec()))
    }

    fn list_runs(&self, tenant: &str, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        // Run ids sort by time, so walking keys backwards lists newest first.
        let scope = match &filter.job_id {
            Some(job_id) => run_prefix(run_space::BY_JOB, &[tenant.as_bytes(), job_id.as_bytes()]),
            None => run_prefix(run_space::RECORD, &[tenant.as_bytes()]),
        };
        let upper = match &filter.before {
            Some(before) => [scope.as_slice(), before.as_bytes()].concat(),
            None => [scope.as_slice(), &[0xff]].concat(),
        };
        let mut runs = Vec::new();
        for entry in self.runs.range(scope.clone()..upper).rev() {
            if runs.len() >= filter.limit {
                break;
            }
            let (entry_key, value) = entry?;
            let run: Run = if filter.job_id.is_some() {
                let run_id = String::from_utf8_lossy(last_part(&entry_key)).into_owned();
                match self.run(tenant, &run_id)? {
                    Some(run) => run,
                    None => continue,
                }
            } else {
                decode_run(&entry_key, &value)?
            };
            if filter.status.is_none_or(|status| run.status == status) {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    fn unfinished_runs(&self) -> StoreResult<Vec<Run>> {
        let unfinished = |record_key: &[u8]| -> StoreResult<Option<Run>> {
            Ok(self
                .run_at(record_key)?
                .filter(|run| matches!(run.status, RunStatus::Queued | RunStatus::Running)))
        };
        let mut runs = Vec::new();
        for entry in self.runs.scan_prefix([run_space::ACTIVE]) {
            let (active_key, _) = entry?;
            let mut record_key = active_key.to_vec();
            record_key[0] = run_space::RECORD;
            runs.extend(unfinished(&record_key)?);
        }
        let mut groups = self.groups();
        let mut emptied = sled::Batch::default();
        for entry in self.runs.scan_prefix([run_space::GROUP]) {
            let (group_key, members) = entry?;
            let mut left = Vec::new();
            for record_key in active_groups::decode_members(&members) {
                if let Some(run) = unfinished(&record_key)? {
                    runs.push(run);
                    left.push(record_key);
                }
            }
            if left.is_empty() {
                emptied.remove(group_key);
            } else {
                groups.add(&active_groups::GroupKey::from(group_key.as_ref()), left);
            }
        }
        let gate = self.writing();
        self.runs.apply_batch(emptied).map_err(|error| gate.note(error))?;
        Ok(runs)
    }

    fn prune_runs(&self, older_than: DateTime<Utc>, keep_per_job: usize, max_deletions: usize) -> StoreResult<usize> {
        let cutoff = u64::try_from(older_than.timestamp_millis()).unwrap_or(0);
        let mut batch = sled::Batch::default();
        let mut changes = Changes::default();
        let mut deleted = 0;
        let mut cursor = vec![run_space::BY_JOB];
        'jobs: while deleted < max_deletions {
            let Some(first) = self.runs.range(cursor.as_slice()..).keys().next() else {
                break;
            };
            let first = first?;
            if first.first() != Some(&run_space::BY_JOB) {
                break;
            }
            // `J tenant \0 job \0 run`: the group is everything up to the run id.
            let Some(run_start) = first.iter().rposition(|byte| *byte == 0).map(|at| at + 1) else {
                cursor = [first.as_ref(), &[0]].concat();
                continue;
            };
            let group = first[..run_start].to_vec();
            let tenant_end = group[1..].iter().position(|byte| *byte == 0).map_or(0, |at| at + 1);
            let tenant = group[1..tenant_end].to_vec();
            let count = self.runs.scan_prefix(&group).keys().count();
            let excess = if keep_per_job == 0 {
                0
            } else {
                count.saturating_sub(keep_per_job)
            };
            // Oldest first: ids sort by time.
            for (index, entry) in self.runs.scan_prefix(&group).keys().enumerate() {
                let index_key = entry?;
                let run_id = &index_key[group.len()..];
                let queued_ms = std::str::from_utf8(run_id)
                    .ok()
                    .and_then(|id| ulid::Ulid::from_string(&id.to_ascii_uppercase()).ok())
                    .map_or(u64::MAX, |ulid| ulid.timestamp_ms());
                if index >= excess && queued_ms >= cutoff {
                    break;
                }
                let record_key = run_key(run_space::RECORD, &[&tenant, run_id]);
                if let Some(bytes) = self.runs.get(&record_key)? {
                    let run = decode_run(&record_key, &bytes)?;
                    if !run.status.is_finished() {
                        continue;
                    }
                    changes.dropped(&run.tenant, true, run_bytes::charge(&run));
                }
                for space in [run_space::RECORD, run_space::OUTPUT, run_space::LOG] {
                    batch.remove(run_key(space, &[&tenant, run_id]));
                }
                batch.remove(index_key.as_ref());
                deleted += 1;
                if deleted >= max_deletions {
                    break 'jobs;
                }
            }
            let mut next = group;
            if let Some(last) = next.last_mut() {
                *last = 1;
            }
            cursor = next;
        }
        if deleted > 0 {
            let mut totals = self.run_bytes.hold();
            put_totals(&mut batch, &totals, &changes);
            let gate = self.writing();
            self.runs.apply_batch(batch).map_err(|error| gate.note(error))?;
            totals.apply(&changes);
        }
        Ok(deleted)
    }

    fn run_bytes(&self, tenant: &str) -> StoreResult<u64> {
        Ok(self.run_bytes.hold().get(tenant))
    }

    fn trim_runs(&self, tenant: &str, max_bytes: u64, max_deletions: usize) -> StoreResult<usize> {
        // Only finished runs go: past them, there is nothing to look for.
        let (finished, unfinished) = self.run_bytes.hold().parts(tenant);
        let over = (finished + unfinished).saturating_sub(max_bytes).min(finished);
        if over == 0 {
            return Ok(0);
        }
        let victims = self.oldest_finished(tenant, over, max_deletions)?;
        if victims.is_empty() {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        let mut changes = Changes::default();
        Self::delete_finished(&mut batch, &mut changes, tenant, &victims);
        let mut totals = self.run_bytes.hold();
        put_totals(&mut batch, &totals, &changes);
        let gate = self.writing();
        self.runs.apply_batch(batch).map_err(|error| gate.note(error))?;
        totals.apply(&changes);
        Ok(victims.len())
    }
}

impl KvStore for SledStore {
    fn kv_get(&self, tenant: &str, job_id: &str, kv_key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .kv
            .get(key(&[tenant.as_bytes(), job_id.as_bytes(), kv_key.as_bytes()]))?
            .map(|bytes| bytes.to_vec()))
    }

    fn kv_set_within(
        &self,
        tenant: &str,
        job_id: &str,
        kv_key: &str,
        value: &[u8],
        max_bytes: Option<u64>,
    ) -> StoreResult<()> {
        let full = key(&[tenant.as_bytes(), job_id.as_bytes(), kv_key.as_bytes()]);
        let entry_bytes = (kv_key.len() + value.len()) as u64;
        let gate = self.writing();
        (&self.kv, &self.kv_usage)
            .transaction(|(kv, kv_usage)| {
                let old = kv.get(full.as_slice())?.map_or(0, |old| (kv_key.len() + old.len()) as u64);
                let used = read_count(kv_usage.get(tenant.as_bytes())?);
                let after = used.saturating_sub(old) + entry_bytes;
                if let Some(limit) = max_bytes
                    && after > limit
                    && after > used
                {
                    return Err(ConflictableTransactionError::Abort(StoreError::QuotaExceeded(format!(
                        "kv_bytes: the tenant's kv state takes {used} bytes; this write would make it {after}, past its quota of {limit}"
                    ))));
                }
                kv.insert(full.as_slice(), value)?;
                kv_usage.insert(tenant.as_bytes(), &after.to_be_bytes())?;
                Ok(())
            })
            .map_err(|error| gate.note(transaction_error(error)))
    }

    fn kv_delete(&self, tenant: &str, job_id: &str, kv_key: &str) -> StoreResult<()> {
        let full = key(&[tenant.as_bytes(), job_id.as_bytes(), kv_key.as_bytes()]);
        let gate = self.writing();
        (&self.kv, &self.kv_usage)
            .transaction(|(kv, kv_usage)| {
                if let Some(old) = kv.remove(full.as_slice())? {
                    let used = read_count(kv_usage.get(tenant.as_bytes())?);
                    let freed = (kv_key.len() + old.len()) as u64;
                    kv_usage.insert(tenant.as_bytes(), &used.saturating_sub(freed).to_be_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|error| gate.note(transaction_error(error)))
    }

    fn kv_usage(&self, tenant: &str) -> StoreResult<u64> {
        Ok(read_count(self.kv_usage.get(tenant.as_bytes())?))
    }

    fn kv_keys(&self, tenant: &str, job_id: &str, kv_prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        let scope = prefix(&[tenant.as_bytes(), job_id.as_bytes()]);
        let start = [scope.as_slice(), kv_prefix.as_bytes()].concat();
        self.kv
            .scan_prefix(start)
            .keys()
            .take(limit)
            .map(|entry| {
                let full = entry?;
                Ok(String::from_utf8_lossy(&full[scope.len()..]).into_owned())
            })
            .collect()
    }
}

impl TenantStore for SledStore {
    fn insert_tenant(&self, tenant: &Tenant, token: &Token) -> StoreResult<()> {
        let record = encode(tenant);
        let token_record = encode(token);
        let index_key = key(&[token.tenant.as_bytes(), token.id.as_bytes()]);
        let gate = self.writing();
        (&self.tenants, &self.tokens, &self.tenant_tokens)
            .transaction(|(tenants, tokens, tenant_tokens)| {
                if tenants.get(tenant.name.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::TenantExists {
                        name: tenant.name.clone(),
                    }));
                }
                tenants.insert(tenant.name.as_bytes(), record.as_slice())?;
                tokens.insert(token.hash.as_bytes(), token_record.as_slice())?;
                tenant_tokens.insert(index_key.as_slice(), token.hash.as_bytes())?;
                Ok(())
            })
            .map_err(|error| gate.note(transaction_error(error)))
    }

    fn put_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        let gate = self.writing();
        self.tenants
            .insert(tenant.name.as_bytes(), encode(tenant))
            .map_err(|error| gate.note(error))?;
        Ok(())
    }

    fn tenant(&self, name: &str) -> StoreResult<Option<Tenant>> {
        Self::get(&self.tenants, name.as_bytes())
    }

    fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        Self::scan(&self.tenants, &[])
    }

    fn insert_token(&self, token: &Token) -> StoreResult<()> {
        let record = encode(token);
        let index_key = key(&[token.tenant.as_bytes(), token.id.as_bytes()]);
        let gate = self.writing();
        (&self.tokens, &self.tenant_tokens)
            .transaction(|(tokens, tenant_tokens)| {
                tokens.insert(token.hash.as_bytes(), record.as_slice())?;
                tenant_tokens.insert(index_key.as_slice(), token.hash.as_bytes())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|error| gate.note(transaction_error(error)))
    }

    fn token_by_hash(&self, hash: &str) -> StoreResult<Option<Token>> {
        Self::get(&self.tokens, hash.as_bytes())
    }

    fn list_tokens(&self, tenant: &str) -> StoreResult<Vec<Token>> {
        let mut tokens = Vec::new();
        for entry in self.tenant_tokens.scan_prefix(prefix(&[tenant.as_bytes()])) {
            let (_, hash) = entry?;
            if let Some(token) = Self::get(&self.tokens, &hash)? {
                tokens.push(token);
            }
        }
        Ok(tokens)
    }

    fn revoke_token(&self, tenant: &str, id: &str, at: DateTime<Utc>) -> StoreResult<Option<Token>> {
        let Some(hash) = self.tenant_tokens.get(key(&[tenant.as_bytes(), id.as_bytes()]))? else {
            return Ok(None);
        };
        let Some(mut token) = Self::get::<Token>(&self.tokens, &hash)? else {
            return Ok(None);
        };
        if token.revoked_at.is_none() {
            token.revoked_at = Some(at);
            let gate = self.writing();
            self.tokens
                .insert(&hash, encode(&token))
                .map_err(|error| gate.note(error))?;
        }
        Ok(Some(token))
    }
}

impl SecretStore for SledStore {
    fn put_secret(&self, secret: &SecretRecord) -> StoreResult<()> {
        let gate = self.writing();
        self.secrets
            .insert(key(&[secret.tenant.as_bytes(), secret.name.as_bytes()]), encode(secret))
            .map_err(|error| gate.note(error))?;
        Ok(())
    }

    fn secret(&self, tenant: &str, name: &str) -> StoreResult<Option<SecretRecord>> {
        Self::get(&self.secrets, &key(&[tenant.as_bytes(), name.as_bytes()]))
    }

    fn list_secrets(&self, tenant: &str) -> StoreResult<Vec<SecretRecord>> {
        Self::scan(&self.secrets, &prefix(&[tenant.as_bytes()]))
    }

    fn delete_secret(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        let gate = self.writing();
        Ok(self
            .secrets
            .remove(key(&[tenant.as_bytes(), name.as_bytes()]))
            .map_err(|error| gate.note(error))?
            .is_some())
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
    use super::*;

    /// A job of tenant `t` from its spec, with the default limits.
    fn validated(spec: &serde_json::Value) -> Job {
        let defaults = crate::config::Config::default().job_defaults();
        let parsed = crate::model::validate::parse_spec(spec).unwrap();
        crate::model::validate::validate(parsed, "t", None, &defaults, Utc::now()).unwrap()
    }

    #[test]
    fn same_bytes_give_back_the_same_version_and_new_bytes_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = Utc::now();
        let first = store.add_plugin_version("t", "p", "aa", b"one", now).unwrap();
        assert!(first.created);
        assert_eq!(first.version.version, 1);
        let again = store.add_plugin_version("t", "p", "aa", b"one", now).unwrap();
        assert!(!again.created);
        assert_eq!(again.version.version, 1);
        let second = store.add_plugin_version("t", "p", "bb", b"two", now).unwrap();
        assert_eq!(second.version.version, 2);
        // Another tenant's versions are its own.
        assert_eq!(
            store
                .add_plugin_version("u", "p", "bb", b"two", now)
                .unwrap()
                .version
                .version,
            1
        );
        assert_eq!(store.plugin_versions("t", "p").unwrap().len(), 2);
    }

    #[test]
    fn one_plugin_version_reads_without_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = Utc::now();
        for (index, digest) in ["aa", "bb", "cc"].into_iter().enumerate() {
            store.add_plugin_version("t", "p", digest, &[index as u8], now).unwrap();
        }
        // A name that extends this one is another plugin.
        store.add_plugin_version("t", "p2", "dd", b"x", now).unwrap();
        store.add_plugin_version("u", "p", "ee", b"y", now).unwrap();
        let read = |name: &str, version| store.plugin_version("t", name, version).unwrap();
        assert_eq!(read("p", None).map(|version| version.digest), Some("cc".to_string()));
        assert_eq!(read("p", Some(2)).map(|version| version.digest), Some("bb".to_string()));
        assert_eq!(read("p", Some(9)), None);
        assert_eq!(read("p2", None).map(|version| version.version), Some(1));
        assert_eq!(read("q", None), None);
        assert_eq!(read("q", Some(1)), None);
    }

    #[test]
    fn kv_keys_are_scoped_to_tenant_and_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.kv_set("t", "j1", "a/1", b"x").unwrap();
        store.kv_set("t", "j1", "a/2", b"y").unwrap();
        store.kv_set("t", "j2", "a/3", b"z").unwrap();
        store.kv_set("u", "j1", "a/4", b"w").unwrap();
        assert_eq!(store.kv_keys("t", "j1", "a/", 10).unwrap(), ["a/1", "a/2"]);
        assert_eq!(store.kv_keys("t", "j1", "", 1).unwrap(), ["a/1"]);
        assert_eq!(store.kv_get("u", "j1", "a/1").unwrap(), None);
    }

    #[test]
    fn a_database_from_before_the_run_at_start_index_gets_it_built_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let spec = serde_json::json!({"name": "warm", "plugin": "p", "run_at_start": true});
        let job = validated(&spec);
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.insert_job(&job).unwrap();
            // As an older sandcron left it: no index.
            store.db.drop_tree("run_at_start").unwrap();
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let found: Vec<String> = store
            .run_at_start_jobs()
            .unwrap()
            .into_iter()
            .map(|job| job.id)
            .collect();
        assert_eq!(found, [job.id]);
    }

    #[test]
    fn a_jobs_hooks_read_from_sled_match_the_decoded_job() {
        let dir = tempfile::tempdir().unwrap();
        let specs = [
            serde_json::json!({"name": "a", "plugin": "p", "schedule": {"after": "5m"},
                "webhooks": [{"url": "https://example.com/hook", "on": ["failed"]}]}),
            serde_json::json!({"name": "c", "plugin": "p", "schedule": {"cron": "0 * * * *", "timezone": "Europe/Berlin"}}),
            serde_json::json!({"name": "o", "plugin": "p", "schedule": {"at": "2030-01-01T00:00:00Z"},
                "webhooks": [{"url": "https://example.com/other"}]}),
            serde_json::json!({"name": "d", "plugin": "p"}),
        ];
        let jobs: Vec<Job> = specs.iter().map(validated).collect();
        {
            let store = SledStore::open(dir.path()).unwrap();
            for job in &jobs {
                store.insert_job(job).unwrap();
                // From the cache.
                assert_eq!(store.job_hooks("t", &job.id).unwrap(), Some(JobHooks::of(job)));
            }
        }
        // From sled, with nothing cached.
        let store = SledStore::open(dir.path()).unwrap();
        let read: Vec<JobHooks> = jobs
            .iter()
            .map(|job| store.job_hooks("t", &job.id).unwrap().unwrap())
            .collect();
        assert_eq!(read, jobs.iter().map(JobHooks::of).collect::<Vec<_>>());
        assert_eq!(
            read.iter().map(|hooks| hooks.after).collect::<Vec<_>>(),
            [true, false, false, false]
        );
        assert_eq!(read[0].webhooks.len(), 1);
        assert_eq!(store.job_hooks("t", "missing").unwrap(), None);
    }

    #[test]
    fn run_records_are_written_compact_and_old_json_ones_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let (_, fire) = job_and_fire(&store, "compact", 1);
        store.record_fires(std::slice::from_ref(&fire)).unwrap();
        let run = &fire.runs[0];
        let stored = store.runs.get(record_key(run)).unwrap().unwrap();
        assert_ne!(stored.first(), Some(&b'{'), "a new record is binary");
        assert_eq!(store.run("t", &run.id).unwrap().as_ref(), Some(run));
        // As an older sandcron wrote it.
        let mut old = run.clone();
        old.id = "01kbgz8m7yq3d5v2c8n6r4t1wz".into();
        store
            .runs
            .insert(record_key(&old), serde_json::to_vec(&old).unwrap())
            .unwrap();
        assert_eq!(store.run("t", &old.id).unwrap(), Some(old));
        // A damaged record is an error naming its key, not a panic.
        store.runs.insert(record_key(run), &[1u8, 200][..]).unwrap();
        let error = store.run("t", &run.id).unwrap_err().to_string();
        assert!(error.contains(&run.id), "{error}");
    }

    #[test]
    fn job_records_are_written_compact_and_old_json_ones_still_read_and_fire() {
        let dir = tempfile::tempdir().unwrap();
        let job_key = |job: &Job| key(&[job.tenant.as_bytes(), job.id.as_bytes()]);
        let (old, mut fire) = {
            let store = SledStore::open(dir.path()).unwrap();
            let (job, fire) = job_and_fire(&store, "old", 1);
            let stored = store.jobs.get(job_key(&job)).unwrap().unwrap();
            assert_eq!(stored.first(), Some(&1), "a new record is binary");
            // As an older sandcron wrote it.
            store
                .jobs
                .insert(job_key(&job), serde_json::to_vec(&job).unwrap())
                .unwrap();
            (job, fire)
        };
        // Read from sled, with nothing cached.
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.job("t", &old.id).unwrap().as_ref(), Some(&old));
        assert_eq!(store.list_jobs("t").unwrap(), std::slice::from_ref(&old));
        let store = SledStore::open_with(&dir.path().join("again"), Duration::from_millis(2), 8 << 20).unwrap();
        store
            .jobs
            .insert(job_key(&old), serde_json::to_vec(&old).unwrap())
            .unwrap();
        assert_eq!(store.job_hooks("t", &old.id).unwrap(), Some(JobHooks::of(&old)));
        // A fire checks the old record's stamp and writes the new form.
        fire.job.next_fire_at = Some(Utc::now() + chrono::Duration::hours(1));
        let outcomes = store.record_fires(std::slice::from_ref(&fire)).unwrap();
        assert_eq!(outcomes[0].as_ref().unwrap().len(), 1);
        let stored = store.jobs.get(job_key(&old)).unwrap().unwrap();
        assert_eq!(job_codec::decode(&stored).unwrap(), fire.job);
        // A damaged record is an error naming its key, not a panic.
        store.jobs.insert(job_key(&old), &[1u8, 7][..]).unwrap();
        store.job_cache.forget(&job_key(&old));
        let error = store.job("t", &old.id).unwrap_err().to_string();
        assert!(error.contains(&old.id), "{error}");
    }

    /// A stored job of tenant `t` and the fire of `runs` of it, due now.
    fn job_and_fire(store: &SledStore, name: &str, runs: usize) -> (Job, Fire) {
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

    fn group_keys(store: &SledStore) -> usize {
        store.runs.scan_prefix([run_space::GROUP]).count()
    }

    fn finish(store: &SledStore, run: &Run) {
        let mut run = run.clone();
        run.finish(RunStatus::Succeeded, None, Utc::now());
        store.finish_run(&run, b"", b"").unwrap();
    }

    #[test]
    fn a_fire_pass_shares_one_active_marker_that_goes_with_its_last_run_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (runs, withdrawn) = {
            let store = SledStore::open(dir.path()).unwrap();
            let (_, first) = job_and_fire(&store, "first", 3);
            let (_, second) = job_and_fire(&store, "second", 1);
            let recorded = store.record_fires(&[first, second]).unwrap();
            let runs: Vec<Run> = recorded.into_iter().flat_map(Result::unwrap).collect();
            assert_eq!(runs.len(), 4);
            assert_eq!(group_keys(&store), 1, "one marker for the pass");
            assert_eq!(store.runs.scan_prefix([run_space::ACTIVE]).count(), 0);
            finish(&store, &runs[0]);
            assert_eq!(store.unfinished_runs().unwrap().len(), 3);
            // The second job's run is withdrawn by a change of its job.
            let second_job = store.job("t", &runs[3].job_id).unwrap().unwrap();
            store.update_job_withdrawing(&second_job, &runs[3..]).unwrap();
            store.flush().unwrap();
            let withdrawn = runs[3].clone();
            (runs, withdrawn)
        };
        // A restart: the two unfinished runs are found through the marker.
        let store = SledStore::open(dir.path()).unwrap();
        let mut found: Vec<String> = store.unfinished_runs().unwrap().into_iter().map(|run| run.id).collect();
        found.sort();
        assert_eq!(found, [runs[1].id.clone(), runs[2].id.clone()]);
        assert!(store.run("t", &withdrawn.id).unwrap().is_none());
        finish(&store, &runs[1]);
        assert_eq!(group_keys(&store), 1, "one run is still unfinished");
        finish(&store, &runs[2]);
        assert_eq!(group_keys(&store), 0, "the last outcome took the marker with it");
        assert!(store.unfinished_runs().unwrap().is_empty());
    }

    #[test]
    fn a_marker_whose_runs_are_all_gone_is_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let (_, fire) = job_and_fire(&store, "gone", 2);
            let runs: Vec<Run> = store
                .record_fires(&[fire])
                .unwrap()
                .into_iter()
                .flat_map(Result::unwrap)
                .collect();
            // Outcomes written by an earlier version, or the marker's own
            // removal lost to a crash: the runs are finished, the key stays.
            let mut batch = sled::Batch::default();
            for run in &runs {
                let mut run = run.clone();
                run.finish(RunStatus::Succeeded, None, Utc::now());
                batch.insert(record_key(&run), run_codec::encode(&run));
            }
            store.runs.apply_batch(batch).unwrap();
            store.flush().unwrap();
            assert_eq!(group_keys(&store), 1);
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert!(store.unfinished_runs().unwrap().is_empty());
        assert_eq!(group_keys(&store), 0);
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

    /// A run of `job` queued at `minute` past 10:00, finished unless `active`.
    fn aged_run(job: &str, minute: u32, active: bool) -> Run {
        let at = DateTime::parse_from_rfc3339(&format!("2026-11-25T10:{minute:02}:00Z"))
            .unwrap()
            .with_timezone(&Utc);
        let id = crate::model::scheduled_run_id("t", job, at);
        let mut run = Run::sample(&id, job, at);
        if !active {
            run.finish(RunStatus::Succeeded, None, at);
        }
        run
    }

    #[test]
    fn pruning_deletes_old_and_excess_finished_runs_and_nothing_active() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db")).unwrap();
        let mut runs = Vec::new();
        for minute in 0..10 {
            runs.push(aged_run("a", minute, minute == 1));
        }
        for minute in 0..3 {
            runs.push(aged_run("b", minute, false));
        }
        for run in &runs {
            store.insert_run(run).unwrap();
            if run.status.is_finished() {
                store.finish_run(run, b"out", b"log").unwrap();
            }
        }
        let ids = |job: &str| -> Vec<String> {
            let filter = RunFilter {
                job_id: Some(job.to_string()),
                limit: 100,
                ..RunFilter::default()
            };
            store
                .list_runs("t", &filter)
                .unwrap()
                .into_iter()
                .map(|run| run.id)
                .collect()
        };
        // Older than 10:05: minutes 0, 2, 3, 4 of a (1 is still running) and all of b.
        let cutoff = DateTime::parse_from_rfc3339("2026-11-25T10:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(store.prune_runs(cutoff, 0, 100).unwrap(), 7);
        assert_eq!(ids("a").len(), 6);
        assert!(ids("a").contains(&runs[1].id), "an active run stays");
        assert!(ids("b").is_empty());
        assert_eq!(store.run_log("t", &runs[0].id).unwrap(), None, "its log went with it");
        assert_eq!(store.run_output("t", &runs[0].id).unwrap(), None);
        // Keep the newest 3 of a: minutes 5 and 6 go (1 stays: it is active).
        let long_ago = DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(store.prune_runs(long_ago, 3, 100).unwrap(), 2);
        let left = ids("a");
        assert_eq!(left.len(), 4);
        assert!(left.contains(&runs[9].id) && left.contains(&runs[1].id));
        // A cap on deletions per call is kept.
        assert_eq!(store.prune_runs(long_ago, 1, 1).unwrap(), 1);
        assert_eq!(store.prune_runs(long_ago, 1, 100).unwrap(), 1);
        assert_eq!(
            store.prune_runs(long_ago, 1, 100).unwrap(),
            0,
            "what is left is active or the newest"
        );
    }
}
