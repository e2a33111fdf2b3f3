//! The run subject of [`SledStore`]: every key of a run (record, per-job
//! index, active marker, output, log) in one tree under a one-byte
//! namespace, written with one atomic batch per call; run records are
//! compact binary (see `run_codec`), the runs of one fire pass share one
//! active marker (see `active_groups`), and each tenant's run bytes are
//! kept as runs are written and deleted (see `run_bytes` and `usage`).
//! Listing, recovery at start, and the deletions of retention and quotas.

pub(super) mod keys;
pub(super) mod usage;

use chrono::{DateTime, Utc};

use super::active_groups::{self, ActiveGroups};
use super::database::SledStore;
use super::encoding::{corrupt, encode, from_json};
use super::run_bytes::{self, Changes};
use super::run_codec;
use crate::model::workflow_run::WorkflowRun;
use crate::model::{Run, RunStatus};
use crate::store::error::StoreResult;
use crate::store::records::{RunFilter, RunWrite, no_run_room};
use crate::store::room::{make_room, room_for};
use crate::store::traits::RunStore;
use keys::{active_key, by_job_key, decode_run, record_key, run_key, run_prefix, run_space};
use usage::put_totals;

fn last_part(key: &[u8]) -> &[u8] {
    key.rsplit(|byte| *byte == 0).next().unwrap_or(key)
}

impl SledStore {
    /// The active groups, held across a write that settles their runs.
    pub(super) fn groups(&self) -> std::sync::MutexGuard<'_, ActiveGroups> {
        self.active_groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Withdrawn runs were deleted: their groups count them no more, and a
    /// group left empty loses its key, in a write of its own. If that write
    /// fails (or a crash comes first) the key stays until the next start
    /// finds its runs gone and removes it; the withdrawal itself stands.
    pub(super) fn release(&self, withdrawn: &[Run]) {
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
            RunWrite::Finished {
                run,
                output,
                log,
                tape,
                next,
            } => {
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
                if !tape.is_empty() {
                    batch.insert(run_key(run_space::TAPE, &[tenant, id]), tape);
                }
                if let Some(next) = next {
                    queue(batch, changes, queued, next);
                }
            }
            RunWrite::Join(join) => {
                batch.insert(
                    run_key(run_space::JOIN, &[join.tenant.as_bytes(), join.job_id.as_bytes()]),
                    encode(join),
                );
            }
            RunWrite::Workflow(record) => {
                batch.insert(
                    run_key(
                        run_space::WORKFLOW_RUN,
                        &[record.tenant.as_bytes(), record.id.as_bytes()],
                    ),
                    encode(record),
                );
            }
        }
        Ok(())
    }

    /// Queues `run` within `max_bytes` of run bytes for its tenant (see
    /// [`RunStore::insert_run_under_quota`]): trims the tenant's oldest finished
    /// runs, a bounded write at a time and without holding up other writes
    /// meanwhile, until the run fits; the insert checks again that it does.
    fn insert_making_room(&self, run: &Run, max_bytes: u64) -> StoreResult<()> {
        let (_, unfinished) = self.run_bytes.hold().parts(&run.tenant);
        let room = room_for(run_bytes::queued_charge(run), unfinished, max_bytes)?;
        make_room(self, run, room)?;
        self.write_runs_under_quota(&[RunWrite::Queued(run)], Some((run, max_bytes)))
    }

    /// [`RunStore::write_runs`]; with `room`, the queued run and the quota it
    /// must fit (see [`RunStore::insert_run_under_quota`]).
    fn write_runs_under_quota(&self, writes: &[RunWrite<'_>], room: Option<(&Run, u64)>) -> StoreResult<()> {
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
        let repeated = usage::repeated_runs(writes);
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
                return Err(no_run_room(need, totals.parts(&run.tenant).1, max_bytes));
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

impl RunStore for SledStore {
    fn write_runs(&self, writes: &[RunWrite<'_>]) -> StoreResult<()> {
        self.write_runs_under_quota(writes, None)
    }

    fn insert_run_under_quota(&self, run: &Run, max_bytes: Option<u64>) -> StoreResult<()> {
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

    fn run_tape(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .runs
            .get(run_key(run_space::TAPE, &[tenant.as_bytes(), id.as_bytes()]))?
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
                for space in run_space::OF_A_RUN {
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

    fn prune_workflow_runs(&self, older_than: DateTime<Utc>, max_deletions: usize) -> StoreResult<usize> {
        let cutoff = u64::try_from(older_than.timestamp_millis()).unwrap_or(0);
        let mut batch = sled::Batch::default();
        let mut deleted = 0;
        // `W tenant \0 id`: the id's time part says how old it is, so only
        // old records are read.
        for key in self.runs.scan_prefix([run_space::WORKFLOW_RUN]).keys() {
            let key = key?;
            let started_ms = std::str::from_utf8(last_part(&key))
                .ok()
                .and_then(|id| ulid::Ulid::from_string(&id.to_ascii_uppercase()).ok())
                .map_or(u64::MAX, |ulid| ulid.timestamp_ms());
            if started_ms >= cutoff {
                continue;
            }
            let Some(bytes) = self.runs.get(&key)? else {
                continue;
            };
            let record: WorkflowRun = from_json(&bytes).map_err(|message| corrupt(&key, message))?;
            if !record.status.is_finished() {
                continue;
            }
            batch.remove(key);
            deleted += 1;
            if deleted >= max_deletions {
                break;
            }
        }
        if deleted > 0 {
            let gate = self.writing();
            self.runs.apply_batch(batch).map_err(|error| gate.note(error))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::tests::job_and_fire;
    use crate::store::traits::{Durability, JobStore};

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
        for run in &mut runs {
            store.insert_run(run).unwrap();
            if run.status.is_finished() {
                // Recorded runs, with a tape.
                run.tape = Some(crate::model::run::RunTape {
                    bytes: 4,
                    calls: 1,
                    replayable: true,
                });
                let finished = RunWrite::Finished {
                    run,
                    output: b"out",
                    log: b"log",
                    tape: b"tape",
                    next: None,
                };
                store.write_runs(&[finished]).unwrap();
            }
        }
        assert_eq!(store.run_tape("t", &runs[0].id).unwrap().as_deref(), Some(&b"tape"[..]));
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
        assert_eq!(store.run_tape("t", &runs[0].id).unwrap(), None, "and its tape");
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
