//! The job subject of [`SledStore`]: job records (compact binary, see
//! `job_codec`) and the index of their names, the due index of their next
//! fires, the index of `run_at_start` jobs, and fires, which write their
//! jobs and queue their runs in one transaction. Decoded jobs are cached
//! (see `job_cache`). A change of a job that withdraws queued runs deletes
//! them in the same transaction; a deleted job's kv state goes with it.

use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, Transactional};

use super::database::SledStore;
use super::encoding::{corrupt, key, prefix, read_count, transaction_error};
use super::run_bytes::{self, Changes};
use super::runs::keys::{by_job_key, record_key, run_key, run_space};
use super::runs::usage::{put_totals_in, withdraw_in, withdrawn_runs};
use super::{active_groups, job_codec, run_codec};
use crate::model::{Job, Run};
use crate::store::error::{StoreError, StoreResult};
use crate::store::records::kept_failures;
use crate::store::records::{DueJob, Fire, JobHooks};
use crate::store::traits::JobStore;

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

impl SledStore {
    /// Builds the `run_at_start` index of a database from before it existed.
    pub(super) fn index_starters(&self) -> StoreResult<()> {
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
}

impl JobStore for SledStore {
    fn insert_job_under_quota(&self, job: &Job, max_jobs: Option<u64>) -> StoreResult<()> {
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
                let mut failures = job.failures;
                if let Some(previous) = jobs.get(job_key.as_slice())? {
                    let previous = job_codec::decode(&previous)
                        .map_err(|message| ConflictableTransactionError::Abort(corrupt(&job_key, message)))?;
                    if previous.name != job.name {
                        job_names.remove(key(&[job.tenant.as_bytes(), previous.name.as_bytes()]))?;
                    }
                    if let Some(entry) = due_key(&previous) {
                        due.remove(entry)?;
                    }
                    failures = kept_failures(previous.enabled, previous.failures, job);
                }
                job_names.insert(name_key.as_slice(), job.id.as_bytes())?;
                jobs.insert(
                    job_key.as_slice(),
                    job_codec::with_failures(job, &record, failures).as_ref(),
                )?;
                if let Some(entry) = &due_entry {
                    due.insert(entry.as_slice(), &[] as &[u8])?;
                }
                if job.run_at_start {
                    starters.insert(job_key.as_slice(), &[] as &[u8])?;
                } else {
                    starters.remove(job_key.as_slice())?;
                }
                Ok((changes, failures))
            })
            .map_err(|error| gate.note(transaction_error(error)));
        drop(gate);
        if let Ok((changes, _)) = &written {
            totals.apply(changes);
        }
        // The groups' lock is taken before the totals elsewhere.
        drop(totals);
        match &written {
            Ok((_, failures)) if *failures == job.failures => self.job_cache.put(job_key, job),
            _ => self.job_cache.forget(&job_key),
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

    fn count_outcome(&self, tenant: &str, id: &str, failed: bool) -> StoreResult<Option<(Job, u64)>> {
        let job_key = key(&[tenant.as_bytes(), id.as_bytes()]);
        let gate = self.writing();
        let written = self
            .jobs
            .transaction(|jobs| {
                let Some(bytes) = jobs.get(job_key.as_slice())? else {
                    return Ok(None);
                };
                let mut job = job_codec::decode(&bytes)
                    .map_err(|message| ConflictableTransactionError::Abort(corrupt(&job_key, message)))?;
                let before = job.failures;
                job.failures = if failed { before.saturating_add(1) } else { 0 };
                if job.failures != before {
                    jobs.insert(job_key.as_slice(), job_codec::encode(&job))?;
                }
                Ok(Some((job, before)))
            })
            .map_err(|error| gate.note(transaction_error(error)));
        drop(gate);
        match &written {
            Ok(Some((job, _))) => self.job_cache.put(job_key, job),
            _ => self.job_cache.forget(&job_key),
        }
        written
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
                // Fires whose job took the store's count of failed runs.
                let mut carried = Vec::new();
                for (fire, encoded) in fires.iter().zip(&encoded) {
                    let job = &fire.job;
                    let stored = jobs.get(encoded.job_key.as_slice())?;
                    let (current, failures) = match stored.as_deref().map(job_codec::stamp_and_failures) {
                        Some(Ok(current)) => current,
                        Some(Err(message)) => {
                            outcomes.push(Err(corrupt(&encoded.job_key, message)));
                            continue;
                        }
                        None => {
                            outcomes.push(Err(StoreError::Conflict(format!("job {} was deleted", job.id))));
                            continue;
                        }
                    };
                    if !fire.runs_only {
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
                        // The count of failed runs is the store's (see `count_outcome`).
                        let record = job_codec::with_failures(job, &encoded.record, failures);
                        jobs.insert(encoded.job_key.as_slice(), record.as_ref())?;
                        if failures != job.failures {
                            carried.push(encoded.job_key.as_slice());
                        }
                    }
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
                Ok((outcomes, members, changes, carried))
            })
            .map_err(|error| gate.note(transaction_error(error)));
        // The groups' lock is taken before the totals and the gate elsewhere.
        drop(gate);
        let mut stale: Vec<&[u8]> = Vec::new();
        let written = written.map(|(outcomes, members, changes, carried)| {
            totals.apply(&changes);
            stale = carried;
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
                Ok(_) if fire.runs_only => {}
                Ok(outcomes)
                    if outcomes.get(index).is_some_and(Result::is_ok)
                        && !stale.contains(&encoded.job_key.as_slice()) =>
                {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::sled::tests::{job_and_fire, validated};
    use crate::store::traits::Durability;

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

    /// A job as the JSON records of older versions had it: without the
    /// fields added since (`record`).
    fn old_json(job: &Job) -> Vec<u8> {
        let mut json = serde_json::to_value(job).unwrap();
        json.as_object_mut().unwrap().remove("record");
        serde_json::to_vec(&json).unwrap()
    }

    #[test]
    fn job_records_are_written_compact_and_old_json_ones_still_read_and_fire() {
        let dir = tempfile::tempdir().unwrap();
        let job_key = |job: &Job| key(&[job.tenant.as_bytes(), job.id.as_bytes()]);
        let (old, mut fire) = {
            let store = SledStore::open(dir.path()).unwrap();
            let (job, fire) = job_and_fire(&store, "old", 1);
            let stored = store.jobs.get(job_key(&job)).unwrap().unwrap();
            assert_eq!(stored.first(), Some(&4), "a new record is binary, version 4");
            // As an older sandcron wrote it (before jobs could record).
            store.jobs.insert(job_key(&job), old_json(&job)).unwrap();
            (job, fire)
        };
        // Read from sled, with nothing cached.
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.job("t", &old.id).unwrap().as_ref(), Some(&old));
        assert_eq!(store.list_jobs("t").unwrap(), std::slice::from_ref(&old));
        let store = SledStore::open_with(&dir.path().join("again"), Duration::from_millis(2), 8 << 20).unwrap();
        store.jobs.insert(job_key(&old), old_json(&old)).unwrap();
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

    #[test]
    fn the_count_of_failed_runs_is_the_stores_whatever_a_fire_or_a_change_carries() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let (job, mut fire) = job_and_fire(&store, "flaky", 0);
        // Counted one at a time, atomically; a success clears it.
        assert_eq!(
            store
                .count_outcome("t", &job.id, true)
                .unwrap()
                .map(|(job, before)| (job.failures, before)),
            Some((1, 0))
        );
        assert_eq!(
            store
                .count_outcome("t", &job.id, true)
                .unwrap()
                .map(|(job, before)| (job.failures, before)),
            Some((2, 1))
        );
        // A pass that read the job before writes its fire, not its count.
        fire.job.next_fire_at = Some(Utc::now() + chrono::Duration::hours(2));
        store
            .record_fires(std::slice::from_ref(&fire))
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        let stored = store.job("t", &job.id).unwrap().unwrap();
        assert_eq!((stored.failures, stored.next_fire_at), (2, fire.job.next_fire_at));
        assert_eq!(store.job_hooks("t", &job.id).unwrap().unwrap().failures, 2);
        // A change keeps it; a change that resumes the job clears it.
        let mut edited = stored.clone();
        edited.failures = 0;
        edited.input = serde_json::json!({"n": 1});
        store.update_job(&edited).unwrap();
        assert_eq!(store.job("t", &job.id).unwrap().unwrap().failures, 2);
        let mut paused = edited.clone();
        paused.enabled = false;
        store.update_job(&paused).unwrap();
        let mut resumed = paused.clone();
        resumed.enabled = true;
        resumed.failures = 7;
        store.update_job(&resumed).unwrap();
        assert_eq!(store.job("t", &job.id).unwrap().unwrap().failures, 0);
        // A fire of runs only leaves the job as stored.
        store.count_outcome("t", &job.id, true).unwrap();
        let mut stale = fire.job.clone();
        stale.next_fire_at = None;
        let run = Run::sample("backfilled", &job.id, Utc::now());
        assert_eq!(store.record_fire_runs(&stale, &[run]).unwrap().len(), 1);
        let stored = store.job("t", &job.id).unwrap().unwrap();
        assert_eq!((stored.failures, stored.next_fire_at.is_some()), (1, true));
        assert_eq!(store.count_outcome("t", "gone", true).unwrap(), None);
    }
}
