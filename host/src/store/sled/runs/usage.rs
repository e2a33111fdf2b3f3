//! The tenants' run bytes in sled (see `run_bytes`): their keys and how the
//! writes of runs change them, reading them at open (counted once from the
//! run records in a database from before they were kept), and the trimming
//! of a tenant's oldest finished runs that retention and
//! [`RunStore::insert_run_under_quota`] use to keep it within its quota.

use std::collections::{HashMap, HashSet};

use super::keys::{active_key, by_job_key, decode_run, record_key, run_key, run_prefix, run_space};
use crate::model::Run;
use crate::store::error::StoreResult;
use crate::store::records::RunWrite;
use crate::store::sled::active_groups;
use crate::store::sled::database::SledStore;
use crate::store::sled::encoding::read_count;
use crate::store::sled::run_bytes::{self, Changes, Held};
#[cfg(doc)]
use crate::store::traits::RunStore;

/// The key of a tenant's run bytes.
pub(super) fn usage_key(tenant: &str) -> Vec<u8> {
    [&[run_space::USAGE][..], tenant.as_bytes()].concat()
}

/// Stores the finished runs' bytes `changes` leave in `batch`.
pub(super) fn put_totals(batch: &mut sled::Batch, totals: &Held<'_>, changes: &Changes) {
    for (tenant, total) in totals.stored_after(changes) {
        batch.insert(usage_key(tenant), &total.to_be_bytes());
    }
}

/// Stores the finished runs' bytes `changes` leave in a transaction on
/// the runs tree.
pub(in crate::store::sled) fn put_totals_in(
    run_tree: &sled::transaction::TransactionalTree,
    totals: &Held<'_>,
    changes: &Changes,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    for (tenant, total) in totals.stored_after(changes) {
        run_tree.insert(usage_key(tenant), &total.to_be_bytes())?;
    }
    Ok(())
}

/// A withdrawn queued run: its keys (record first) and what its tenant
/// gets back if its record is still there.
pub(in crate::store::sled) struct Withdrawn<'a> {
    keys: [Vec<u8>; 3],
    tenant: &'a str,
    charge: u64,
}

/// What deleting withdrawn queued runs deletes.
pub(in crate::store::sled) fn withdrawn_runs(runs: &[Run]) -> Vec<Withdrawn<'_>> {
    runs.iter()
        .map(|run| Withdrawn {
            keys: [record_key(run), by_job_key(run), active_key(run)],
            tenant: &run.tenant,
            charge: run_bytes::queued_charge(run),
        })
        .collect()
}

/// Deletes withdrawn queued runs in a transaction on the runs tree and
/// stores what their tenants' run bytes come to.
pub(in crate::store::sled) fn withdraw_in(
    run_tree: &sled::transaction::TransactionalTree,
    withdrawn: &[Withdrawn<'_>],
    totals: &Held<'_>,
) -> Result<Changes, sled::transaction::UnabortableTransactionError> {
    let mut changes = Changes::default();
    for run in withdrawn {
        if run_tree.remove(run.keys[0].as_slice())?.is_some() {
            changes.dropped(run.tenant, false, run.charge);
        }
        for other in &run.keys[1..] {
            run_tree.remove(other.as_slice())?;
        }
    }
    put_totals_in(run_tree, totals, &changes)?;
    Ok(changes)
}

/// Hashes a run id by its last eight bytes (random in a ULID and in a
/// fire's derived id): enough to tell repeats apart in one write, at a
/// fraction of SipHash's cost on every run's outcome.
#[derive(Default)]
pub(super) struct IdTail(u64);

impl std::hash::Hasher for IdTail {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(8)..];
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Run ids, hashed by [`IdTail`].
pub(super) type RunIds<'a> = HashSet<&'a str, std::hash::BuildHasherDefault<IdTail>>;

/// The ids of the runs more than one step of `writes` writes (the
/// recorder's batches have none but a run's mark beside its outcome).
pub(super) fn repeated_runs<'a>(writes: &[RunWrite<'a>]) -> RunIds<'a> {
    let mut repeated = RunIds::default();
    if writes.len() < 2 {
        return repeated;
    }
    let mut seen = RunIds::with_capacity_and_hasher(writes.len(), Default::default());
    for write in writes {
        let (run, next) = match *write {
            RunWrite::Queued(run) | RunWrite::Updated(run) => (run, None),
            RunWrite::Finished { run, next, .. } => (run, next),
            RunWrite::Workflow(_) | RunWrite::Join(_) => continue,
        };
        for run in std::iter::once(run).chain(next) {
            if !seen.insert(run.id.as_str()) {
                repeated.insert(run.id.as_str());
            }
        }
    }
    repeated
}

/// What the store finds unfinished at open.
pub(in crate::store::sled) struct Unfinished {
    /// The bytes of each tenant's unfinished runs.
    pub bytes: HashMap<String, u64>,
    /// The record keys of those queued on their own (with their own marker).
    pub alone: Vec<Vec<u8>>,
}

/// A finished run chosen for deletion: what its keys need, and its charge.
pub(super) struct Victim {
    id: String,
    job_id: String,
    charge: u64,
}

impl SledStore {
    /// The record a write finishing `run` (encoded as `record`) replaces,
    /// if any: whether it is a finished run's, and its charge. Known
    /// without a read for a run written earlier in the same write and for
    /// one the active groups hold `unfinished`; otherwise (an outcome
    /// written twice, a run never queued) one read.
    pub(super) fn stored_before(
        &self,
        run: &Run,
        record: &[u8],
        record_key: &[u8],
        unfinished: bool,
        earlier: &[RunWrite<'_>],
    ) -> StoreResult<Option<(bool, u64)>> {
        let same = |other: &Run| other.id == run.id && other.tenant == run.tenant;
        for write in earlier.iter().rev() {
            match *write {
                RunWrite::Queued(other) | RunWrite::Updated(other) if same(other) => {
                    return Ok(Some((other.status.is_finished(), run_bytes::charge(other))));
                }
                RunWrite::Finished { run: other, .. } if same(other) => {
                    return Ok(Some((other.status.is_finished(), run_bytes::charge(other))));
                }
                RunWrite::Finished { next: Some(other), .. } if same(other) => {
                    return Ok(Some((false, run_bytes::charge(other))));
                }
                _ => {}
            }
        }
        if unfinished {
            return Ok(Some((false, run_bytes::queued_charge_encoded(run, record))));
        }
        Ok(self
            .run_at(record_key)?
            .map(|stored| (stored.status.is_finished(), run_bytes::charge(&stored))))
    }

    /// The bytes of every tenant's finished runs as stored, counted first
    /// if they never were.
    pub(in crate::store::sled) fn read_run_bytes(&self) -> StoreResult<HashMap<String, u64>> {
        let marker = [run_space::USAGE];
        if !self.runs.contains_key(marker)? {
            return self.count_run_bytes();
        }
        let mut totals = HashMap::new();
        for entry in self.runs.scan_prefix(marker) {
            let (key, value) = entry?;
            if let Some(tenant) = key.get(1..).filter(|tenant| !tenant.is_empty()) {
                totals.insert(String::from_utf8_lossy(tenant).into_owned(), read_count(Some(value)));
            }
        }
        Ok(totals)
    }

    /// The bytes of each tenant's finished and unfinished runs from its
    /// run records, one pass over them.
    fn recount_run_bytes(&self) -> StoreResult<[HashMap<String, u64>; 2]> {
        let mut totals: [HashMap<String, u64>; 2] = Default::default();
        for entry in self.runs.scan_prefix([run_space::RECORD]) {
            let (key, value) = entry?;
            match decode_run(&key, &value) {
                Ok(run) => {
                    let part = usize::from(!run.status.is_finished());
                    *totals[part].entry(run.tenant.clone()).or_default() += run_bytes::charge(&run);
                }
                Err(error) => tracing::warn!(%error, "a run record that does not read is not counted"),
            }
        }
        Ok(totals)
    }

    /// Counts and stores the bytes of every tenant's finished runs in a
    /// database from before they were kept, with the mark that they are.
    fn count_run_bytes(&self) -> StoreResult<HashMap<String, u64>> {
        let [totals, _] = self.recount_run_bytes()?;
        let mut batch = sled::Batch::default();
        for (tenant, total) in &totals {
            batch.insert(usage_key(tenant), &total.to_be_bytes());
        }
        batch.insert(&[run_space::USAGE][..], &[] as &[u8]);
        let gate = self.writing();
        self.runs.apply_batch(batch).map_err(|error| gate.note(error))?;
        if !totals.is_empty() {
            tracing::info!(tenants = totals.len(), "run bytes counted");
        }
        Ok(totals)
    }

    /// The bytes of each tenant's unfinished runs: those the store would
    /// recover (see [`RunStore::unfinished_runs`]), found through their active
    /// markers; and the record keys of those with their own marker.
    pub(in crate::store::sled) fn count_unfinished(&self) -> StoreResult<Unfinished> {
        let mut totals: HashMap<String, u64> = HashMap::new();
        let mut count = |record_key: &[u8]| -> StoreResult<bool> {
            match self.run_at(record_key)? {
                Some(run) if !run.status.is_finished() => {
                    *totals.entry(run.tenant.clone()).or_default() += run_bytes::charge(&run);
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        let mut alone = Vec::new();
        for entry in self.runs.scan_prefix([run_space::ACTIVE]) {
            let (active_key, _) = entry?;
            let mut record_key = active_key.to_vec();
            record_key[0] = run_space::RECORD;
            if count(&record_key)? {
                alone.push(record_key);
            }
        }
        for entry in self.runs.scan_prefix([run_space::GROUP]) {
            let (_, members) = entry?;
            for record_key in active_groups::decode_members(&members) {
                count(&record_key)?;
            }
        }
        Ok(Unfinished { bytes: totals, alone })
    }

    /// The tenant's oldest finished runs (ids sort by time) whose charges
    /// come to at least `at_least`, at most `max_runs` of them (fewer when
    /// its finished runs do not come to that much).
    pub(super) fn oldest_finished(&self, tenant: &str, at_least: u64, max_runs: usize) -> StoreResult<Vec<Victim>> {
        let mut victims = Vec::new();
        let mut freed = 0;
        for entry in self
            .runs
            .scan_prefix(run_prefix(run_space::RECORD, &[tenant.as_bytes()]))
        {
            if freed >= at_least || victims.len() >= max_runs {
                break;
            }
            let (key, value) = entry?;
            let run = decode_run(&key, &value)?;
            if !run.status.is_finished() {
                continue;
            }
            let charge = run_bytes::charge(&run);
            freed += charge;
            victims.push(Victim {
                id: run.id,
                job_id: run.job_id,
                charge,
            });
        }
        Ok(victims)
    }

    /// Adds the deletion of finished runs of `tenant` (record, output, log,
    /// job index) to `batch`, and what it gives back to `changes`.
    pub(super) fn delete_finished(batch: &mut sled::Batch, changes: &mut Changes, tenant: &str, victims: &[Victim]) {
        let tenant_bytes = tenant.as_bytes();
        for victim in victims {
            let id = victim.id.as_bytes();
            for space in run_space::OF_A_RUN {
                batch.remove(run_key(space, &[tenant_bytes, id]));
            }
            batch.remove(run_key(
                run_space::BY_JOB,
                &[tenant_bytes, victim.job_id.as_bytes(), id],
            ));
            changes.dropped(tenant, true, victim.charge);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::{RunStatus, Trigger};
    use crate::store::error::StoreError;
    use crate::store::records::{Fire, RunFilter};
    use crate::store::traits::{Durability, JobStore, RunStore};

    fn open(dir: &std::path::Path) -> SledStore {
        SledStore::open(&dir.join("db")).unwrap()
    }

    /// A manual run of tenant `t` with `input`, queued `minute` minutes
    /// after 10:00 (ids sort by time).
    fn manual(minute: u32, input: usize) -> Run {
        let at = chrono::DateTime::parse_from_rfc3339(&format!("2026-11-25T10:{minute:02}:00Z"))
            .unwrap()
            .with_timezone(&Utc);
        let millis = u64::try_from(at.timestamp_millis()).unwrap();
        let id = ulid::Ulid::from_parts(millis, u128::from(minute))
            .to_string()
            .to_ascii_lowercase();
        let mut run = Run::sample(&id, "job", at);
        run.trigger = Trigger::Manual;
        run.input = vec![b'x'; input];
        run
    }

    fn finished(run: &Run, output: usize, log: usize) -> Run {
        let mut run = run.clone();
        run.status = RunStatus::Running;
        run.started_at = Some(run.scheduled_at);
        run.output_size = output as u64;
        run.log_size = log as u64;
        run.finish(RunStatus::Succeeded, None, run.scheduled_at);
        run
    }

    fn finish(store: &SledStore, run: &Run, output: usize, log: usize) -> Run {
        let done = finished(run, output, log);
        store.finish_run(&done, &vec![b'o'; output], &vec![b'l'; log]).unwrap();
        done
    }

    /// The total kept equals a fresh count of the records.
    fn assert_counted(store: &SledStore) -> u64 {
        let kept = store.run_bytes("t").unwrap();
        let counted: u64 = store
            .recount_run_bytes()
            .unwrap()
            .iter()
            .map(|part| part.get("t").copied().unwrap_or(0))
            .sum();
        assert_eq!(kept, counted, "the kept total drifted from the records");
        kept
    }

    fn ids(store: &SledStore) -> Vec<String> {
        let filter = RunFilter {
            limit: 1000,
            ..RunFilter::default()
        };
        let mut ids: Vec<String> = store
            .list_runs("t", &filter)
            .unwrap()
            .into_iter()
            .map(|run| run.id)
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn the_total_follows_every_write_and_deletion_of_runs_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert_eq!(assert_counted(&store), 0);
        let first = manual(0, 100);
        store.insert_run(&first).unwrap();
        assert_eq!(assert_counted(&store), run_bytes::charge(&first));
        // A running mark changes nothing; the outcome adds output and log.
        let mut running = first.clone();
        running.status = RunStatus::Running;
        running.started_at = Some(first.scheduled_at);
        store.update_run(&running).unwrap();
        assert_counted(&store);
        let failed = {
            let mut failed = finished(&first, 0, 300);
            failed.status = RunStatus::Failed;
            // A recorded run: its tape counts too.
            failed.tape = Some(crate::model::run::RunTape {
                bytes: 50,
                calls: 7,
                replayable: true,
            });
            failed
        };
        // A failure with its retry queued in the same write.
        let mut retry = manual(1, 100);
        retry.attempt = 2;
        store
            .write_runs(&[RunWrite::Finished {
                run: &failed,
                output: b"",
                log: &[b'l'; 300],
                tape: &[b't'; 50],
                next: Some(&retry),
            }])
            .unwrap();
        assert_counted(&store);
        // The retry's mark and outcome in one write, and an outcome written
        // twice (the second replaces the first's record).
        let mut retry_running = retry.clone();
        retry_running.status = RunStatus::Running;
        let retry_done = finished(&retry, 40, 0);
        store
            .write_runs(&[
                RunWrite::Updated(&retry_running),
                RunWrite::Finished {
                    run: &retry_done,
                    output: &[b'o'; 40],
                    log: b"",
                    tape: b"",
                    next: None,
                },
            ])
            .unwrap();
        assert_counted(&store);
        finish(&store, &retry, 10, 10);
        assert_counted(&store);
        let twice = finished(&retry, 3, 3);
        let outcome = RunWrite::Finished {
            run: &twice,
            output: b"ooo",
            log: b"lll",
            tape: b"",
            next: None,
        };
        store.write_runs(&[outcome, outcome]).unwrap();
        assert_counted(&store);
        // Fires, and fires withdrawn by a change of their job.
        let spec = serde_json::json!({"name": "fired", "plugin": "p", "schedule": {"every": "1h"}});
        let defaults = crate::config::Config::default().job_defaults();
        let job = crate::model::validate::validate(
            crate::model::validate::parse_spec(&spec).unwrap(),
            "t",
            None,
            &defaults,
            Utc::now(),
        )
        .unwrap();
        store.insert_job(&job).unwrap();
        let runs: Vec<Run> = (2..5)
            .map(|minute| {
                let mut run = manual(minute, 20);
                run.job_id = job.id.clone();
                run.trigger = Trigger::Schedule;
                run
            })
            .collect();
        let fire = Fire {
            job: job.clone(),
            runs: runs.clone(),
            runs_only: false,
        };
        store.record_fires(std::slice::from_ref(&fire)).unwrap();
        // Recorded twice: the runs are there already and add nothing.
        let mut again = fire.clone();
        again.job = store.job("t", &job.id).unwrap().unwrap();
        store.record_fires(&[again]).unwrap();
        assert_counted(&store);
        finish(&store, &runs[0], 5, 5);
        let job = store.job("t", &job.id).unwrap().unwrap();
        store.update_job_withdrawing(&job, &runs[1..2]).unwrap();
        assert_counted(&store);
        store.delete_job_withdrawing("t", &job.id, &runs[2..]).unwrap();
        let before_prune = assert_counted(&store);
        // Pruning takes away what it deletes.
        let cutoff = manual(1, 0).scheduled_at + chrono::Duration::seconds(1);
        assert_eq!(store.prune_runs(cutoff, 0, 100).unwrap(), 2);
        assert!(assert_counted(&store) < before_prune);
        // Left unfinished at the close: a run queued on its own and one of
        // a fire pass.
        store.insert_run(&manual(20, 70)).unwrap();
        let mut other = job.clone();
        other.id = "01kbgz8m7yq3d5v2c8n6r4t1wz".into();
        other.name = "other".into();
        store.insert_job(&other).unwrap();
        let mut fired = manual(21, 30);
        fired.job_id = other.id.clone();
        fired.trigger = Trigger::Schedule;
        let fire = Fire {
            job: other,
            runs: vec![fired],
            runs_only: false,
        };
        store.record_fires(&[fire]).unwrap();
        let kept = assert_counted(&store);
        store.flush().unwrap();
        drop(store);
        let store = open(dir.path());
        assert_eq!(
            store.run_bytes("t").unwrap(),
            kept,
            "finished as stored, unfinished counted again"
        );
        assert_counted(&store);
    }

    #[test]
    fn trimming_deletes_the_oldest_finished_runs_until_the_tenant_is_within_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let runs: Vec<Run> = (0..6).map(|minute| manual(minute, 500)).collect();
        for (index, run) in runs.iter().enumerate() {
            store.insert_run(run).unwrap();
            // The second stays queued: trimming goes past it.
            if index != 1 {
                finish(&store, run, 500, 500);
            }
        }
        let total = assert_counted(&store);
        let each = run_bytes::charge(&finished(&runs[0], 500, 500));
        // Room for about four of the six: the two oldest finished ones go.
        let max = total - each - each / 2;
        assert_eq!(store.trim_runs("t", max, 100).unwrap(), 2);
        let left = ids(&store);
        let expected: Vec<String> = [1, 3, 4, 5].iter().map(|index| runs[*index].id.clone()).collect();
        assert_eq!(left, expected);
        assert!(assert_counted(&store) <= max);
        assert_eq!(store.run_output("t", &runs[0].id).unwrap(), None, "its output went too");
        assert_eq!(store.trim_runs("t", max, 100).unwrap(), 0, "within: nothing more goes");
        // A cap on deletions per call is kept.
        assert_eq!(store.trim_runs("t", 0, 1).unwrap(), 1);
        assert_eq!(store.trim_runs("t", 0, 100).unwrap(), 2);
        assert_eq!(ids(&store), [runs[1].id.clone()], "a queued run is never trimmed");
        assert_counted(&store);
    }

    #[test]
    fn a_run_that_passes_the_quota_makes_room_from_the_oldest_finished_runs_or_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let first = manual(0, 1000);
        store.insert_run_under_quota(&first, Some(10_000)).unwrap();
        finish(&store, &first, 2000, 0);
        let second = manual(1, 1000);
        store.insert_run_under_quota(&second, Some(10_000)).unwrap();
        let used = assert_counted(&store);
        // The third fits only once the first (finished) has gone.
        let third = manual(2, 1000);
        let max = used + run_bytes::charge(&third) - 1;
        store.insert_run_under_quota(&third, Some(max)).unwrap();
        assert_eq!(ids(&store), [second.id.clone(), third.id.clone()]);
        assert!(assert_counted(&store) <= max);
        // Queued runs are never deleted to make room: refused, nothing written.
        let fourth = manual(3, 4000);
        let error = store.insert_run_under_quota(&fourth, Some(max)).unwrap_err();
        assert!(
            matches!(&error, StoreError::QuotaExceeded(message) if message.starts_with("run_bytes:")),
            "{error}"
        );
        assert_eq!(ids(&store).len(), 2);
        // An input larger than the whole quota is refused outright.
        let huge = manual(4, 20_000);
        let error = store
            .insert_run_under_quota(&huge, Some(10_000))
            .unwrap_err()
            .to_string();
        assert!(error.contains("more than the tenant's quota"), "{error}");
        assert_counted(&store);
    }

    #[test]
    fn a_database_from_before_the_totals_gets_them_counted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let store = open(dir.path());
            let run = manual(0, 300);
            store.insert_run(&run).unwrap();
            finish(&store, &run, 100, 100);
            store.insert_run(&manual(1, 50)).unwrap();
            let expected = store.run_bytes("t").unwrap();
            // As an older sandcron left it: no totals, no mark.
            let keys: Vec<sled::IVec> = store
                .runs
                .scan_prefix([run_space::USAGE])
                .keys()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(keys.len(), 2, "the mark and t's total");
            for key in keys {
                store.runs.remove(key).unwrap();
            }
            store.flush().unwrap();
            expected
        };
        let store = open(dir.path());
        assert_eq!(store.run_bytes("t").unwrap(), expected);
        assert_eq!(store.run_bytes("nobody").unwrap(), 0);
    }
}
