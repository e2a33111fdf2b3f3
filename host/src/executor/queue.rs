//! The in-memory run queue in front of the executor's slots: ready runs by
//! priority (then due time, then their jobs' age, then arrival), runs not
//! due yet (retries waiting out their backoff) by due time, what is
//! running, and how many runs each job has waiting and running (for the
//! overlap policy) and each tenant has waiting (for its `queued_runs`
//! quota, see `admission`). Pure data; the executor owns the only instance
//! behind a mutex.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Utc};

use super::admission::Admission;
use crate::model::job::Priority;
use crate::model::{Run, Trigger};

/// (tenant, job id).
pub type JobKey = (String, String);

pub use crate::model::run::Activity;

/// (priority, highest first; due instant in µs; the job's age; arrival).
///
/// Runs due at the same instant and priority start in their jobs' order
/// (job ids are ULIDs: oldest job first), the order of the due index,
/// however they were recorded: a fire held back while its job was busy,
/// or recorded in a later pass, does not fall behind the runs of jobs that
/// come after it.
type ReadyKey = (Reverse<Priority>, i64, u128, u64);
/// The same order: a run keeps its key when it comes due.
type DelayedKey = ReadyKey;

/// Due runs moved from delayed to ready per priority at a time. A burst of
/// 10,000 runs due at one instant moved all of them at the first pop after
/// it (25-30 ms before the first could start); now a pop moves what it
/// needs to know the next run, and more only when that is not enough.
const PROMOTE_CHUNK: usize = 64;

fn priority_range(priority: Priority) -> std::ops::RangeInclusive<ReadyKey> {
    (Reverse(priority), i64::MIN, 0, 0)..=(Reverse(priority), i64::MAX, u128::MAX, u64::MAX)
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Ready(ReadyKey),
    Delayed(DelayedKey),
    /// Due, but an exclusive run behind another of its job.
    Parked(ReadyKey),
}

/// A run that is executing.
pub struct Running {
    /// Set to stop it.
    pub cancel: Arc<AtomicBool>,
    /// Its job.
    pub job: JobKey,
}

/// The queue.
#[derive(Default)]
pub struct RunQueue {
    ready: BTreeMap<ReadyKey, Run>,
    delayed: BTreeMap<DelayedKey, Run>,
    /// Exclusive runs due behind a run of their job (running, or exclusive
    /// and ready), in their order: each job has at most one exclusive run
    /// in `ready`, so a job with thousands of runs queued one after
    /// another costs `pop` one look, not thousands.
    parked: HashMap<JobKey, BTreeMap<ReadyKey, Run>>,
    /// Jobs with an exclusive run in `ready`.
    ready_exclusive: std::collections::HashSet<JobKey>,
    slots: HashMap<String, Slot>,
    running: HashMap<String, Running>,
    jobs: HashMap<JobKey, Activity>,
    /// Executing runs per tenant, for the tenants' concurrency quotas.
    tenants_running: HashMap<String, usize>,
    /// Executing runs per concurrency group (tenant, key).
    groups_running: HashMap<(String, String), usize>,
    /// Waiting runs and places taken per tenant, for their queue quotas.
    pub admission: Admission,
    arrivals: u64,
}

/// Where a run's job sorts among jobs: its id's ULID value (ids that are
/// not ULIDs sort last, by arrival).
fn job_age(run: &Run) -> u128 {
    ulid::Ulid::from_string(&run.job_id).map_or(u128::MAX, u128::from)
}

fn job_key(run: &Run) -> JobKey {
    (run.tenant.clone(), run.job_id.clone())
}

impl RunQueue {
    /// Adds a queued run; it is ready once `now` reaches its due instant
    /// (`scheduled_at` plus a fire's jitter).
    /// A run already queued or running is not added twice.
    pub fn push(&mut self, run: Run, now: DateTime<Utc>) {
        if self.slots.contains_key(&run.id) || self.running.contains_key(&run.id) {
            return;
        }
        self.arrivals += 1;
        self.jobs.entry(job_key(&run)).or_default().waiting += 1;
        self.admission.arrived(&run.tenant);
        let key = (
            Reverse(run.priority),
            run.due_at().timestamp_micros(),
            job_age(&run),
            self.arrivals,
        );
        if run.due_at() <= now {
            self.make_ready(key, run);
        } else {
            self.slots.insert(run.id.clone(), Slot::Delayed(key));
            self.delayed.insert(key, run);
        }
    }

    /// Puts a due run in `ready`, or parks it behind its job's run.
    fn make_ready(&mut self, key: ReadyKey, run: Run) {
        let job = job_key(&run);
        if run.exclusive {
            let running = self.jobs.get(&job).is_some_and(|activity| activity.running > 0);
            if running || self.ready_exclusive.contains(&job) {
                self.slots.insert(run.id.clone(), Slot::Parked(key));
                self.parked.entry(job).or_default().insert(key, run);
                return;
            }
            self.ready_exclusive.insert(job);
        }
        self.slots.insert(run.id.clone(), Slot::Ready(key));
        self.ready.insert(key, run);
    }

    /// The next parked run of an idle job becomes ready.
    fn unpark(&mut self, job: &JobKey) {
        let running = self.jobs.get(job).is_some_and(|activity| activity.running > 0);
        if running || self.ready_exclusive.contains(job) {
            return;
        }
        let Some(parked) = self.parked.get_mut(job) else { return };
        let next = parked.pop_first();
        if parked.is_empty() {
            self.parked.remove(job);
        }
        if let Some((key, run)) = next {
            self.make_ready(key, run);
        }
    }

    /// The first delayed run of a priority (its earliest due).
    fn delayed_head(&self, priority: Priority) -> Option<DelayedKey> {
        self.delayed.range(priority_range(priority)).next().map(|(key, _)| *key)
    }

    /// Moves up to [`PROMOTE_CHUNK`] due runs of each priority from delayed
    /// to ready. Returns the first due run still delayed (in queue order).
    fn promote(&mut self, now_micros: i64) -> Option<DelayedKey> {
        let mut pending = None;
        for priority in Priority::ALL.into_iter().rev() {
            for _ in 0..PROMOTE_CHUNK {
                let Some(key) = self.delayed_head(priority).filter(|key| key.1 <= now_micros) else {
                    break;
                };
                let run = self.delayed.remove(&key).expect("the head was just seen");
                self.make_ready(key, run);
            }
            if pending.is_none() {
                pending = self.delayed_head(priority).filter(|key| key.1 <= now_micros);
            }
        }
        pending
    }

    /// The first ready run that may start now.
    fn startable(&self, share: &dyn Fn(&str) -> Option<usize>) -> Option<ReadyKey> {
        let mut full: HashMap<&str, bool> = HashMap::new();
        for (key, run) in &self.ready {
            let tenant_full = *full.entry(run.tenant.as_str()).or_insert_with(|| {
                share(&run.tenant)
                    .is_some_and(|share| self.tenants_running.get(&run.tenant).copied().unwrap_or(0) >= share)
            });
            if tenant_full || self.group_full(run) {
                continue;
            }
            let busy = run.exclusive
                && self
                    .jobs
                    .get(&job_key(run))
                    .is_some_and(|activity| activity.running > 0);
            if !busy {
                return Some(*key);
            }
        }
        None
    }

    /// True when the run's concurrency group has its limit of runs executing.
    fn group_full(&self, run: &Run) -> bool {
        run.concurrency.as_ref().is_some_and(|group| {
            let key = (run.tenant.clone(), group.key.clone());
            self.groups_running.get(&key).copied().unwrap_or(0) >= group.limit as usize
        })
    }

    /// The earliest due instant of the delayed runs.
    fn next_due(&self) -> Option<DateTime<Utc>> {
        Priority::ALL
            .into_iter()
            .filter_map(|priority| self.delayed_head(priority))
            .map(|key| key.1)
            .min()
            .and_then(DateTime::from_timestamp_micros)
    }

    /// The next run to start (highest priority, then earliest due), marked
    /// running; or None and when the next delayed run comes due. An
    /// exclusive run waits while another run of its job is running, and a
    /// run waits while its tenant has `share(tenant)` runs executing, so a
    /// tenant flooding the queue holds at most its share of the slots and
    /// the runs behind its flood start first.
    pub fn pop(
        &mut self,
        now: DateTime<Utc>,
        share: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<(Run, Arc<AtomicBool>), Option<DateTime<Utc>>> {
        let now_micros = now.timestamp_micros();
        // Promote until the best startable run is ahead of every due run
        // still delayed (or none is left).
        let startable = loop {
            let pending = self.promote(now_micros);
            match (self.startable(share), pending) {
                (Some(key), Some(pending)) if pending < key => continue,
                (None, Some(_)) => continue,
                (startable, _) => break startable,
            }
        };
        let Some(run) = startable.and_then(|key| self.ready.remove(&key)) else {
            return Err(self.next_due());
        };
        self.slots.remove(&run.id);
        if run.exclusive {
            self.ready_exclusive.remove(&job_key(&run));
        }
        let activity = self.jobs.entry(job_key(&run)).or_default();
        activity.waiting = activity.waiting.saturating_sub(1);
        activity.running += 1;
        self.admission.left(&run.tenant);
        *self.tenants_running.entry(run.tenant.clone()).or_default() += 1;
        if let Some(group) = &run.concurrency {
            *self
                .groups_running
                .entry((run.tenant.clone(), group.key.clone()))
                .or_default() += 1;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        self.running.insert(
            run.id.clone(),
            Running {
                cancel: cancel.clone(),
                job: job_key(&run),
            },
        );
        Ok((run, cancel))
    }

    /// Takes a waiting run out of the queue (to cancel it).
    pub fn remove(&mut self, run_id: &str) -> Option<Run> {
        let slot = self.slots.remove(run_id)?;
        let job = match &slot {
            Slot::Ready(key) => job_key(self.ready.get(key)?),
            Slot::Delayed(key) => job_key(self.delayed.get(key)?),
            Slot::Parked(key) => self
                .parked
                .iter()
                .find(|(_, runs)| runs.contains_key(key))
                .map(|(job, _)| job.clone())?,
        };
        let run = match slot {
            Slot::Ready(key) => {
                let run = self.ready.remove(&key)?;
                if run.exclusive {
                    self.ready_exclusive.remove(&job);
                }
                run
            }
            Slot::Delayed(key) => self.delayed.remove(&key)?,
            Slot::Parked(key) => {
                let parked = self.parked.get_mut(&job)?;
                let run = parked.remove(&key)?;
                if parked.is_empty() {
                    self.parked.remove(&job);
                }
                run
            }
        };
        if let Some(activity) = self.jobs.get_mut(&job) {
            activity.waiting = activity.waiting.saturating_sub(1);
        }
        self.admission.left(&job.0);
        self.unpark(&job);
        self.forget_idle(&job);
        Some(run)
    }

    /// Takes out the runs of fires recorded ahead of their instant, of one
    /// job or of every job, so a change can withdraw them: those not due at
    /// `not_due_at`, or (None, at start-up, before any has started) all of
    /// them, due or not.
    pub fn withdraw_ahead(&mut self, job: Option<(&str, &str)>, not_due_at: Option<DateTime<Utc>>) -> Vec<Run> {
        let ids: Vec<String> = self
            .ready
            .values()
            .chain(self.delayed.values())
            .chain(self.parked.values().flat_map(BTreeMap::values))
            .filter(|run| job.is_none_or(|(tenant, job_id)| run.tenant == tenant && run.job_id == job_id))
            .filter(|run| run.is_recorded_ahead())
            .filter(|run| not_due_at.is_none_or(|now| run.scheduled_at > now))
            .map(|run| run.id.clone())
            .collect();
        ids.iter().filter_map(|id| self.remove(id)).collect()
    }

    /// Takes every waiting run out (a node of a cluster stopping gives
    /// them back).
    pub fn withdraw_all(&mut self) -> Vec<Run> {
        let ids: Vec<String> = self.slots.keys().cloned().collect();
        ids.iter().filter_map(|id| self.remove(id)).collect()
    }

    /// Runs waiting (ready, parked or not due yet).
    pub fn waiting(&self) -> usize {
        self.slots.len()
    }

    /// The earliest scheduled run of each of a tenant's jobs that waits
    /// ahead of its instant (not due at `now`).
    pub fn fires_ahead(&self, tenant: &str, now: DateTime<Utc>) -> HashMap<String, DateTime<Utc>> {
        earliest_by_job(
            self.delayed
                .values()
                .filter(|run| run.tenant == tenant && run.trigger == Trigger::Schedule && run.scheduled_at > now),
        )
    }

    /// Marks a running run finished.
    pub fn finished(&mut self, run: &Run) {
        if self.running.remove(&run.id).is_none() {
            return self.job_run_ended(run);
        }
        if let Some(count) = self.tenants_running.get_mut(&run.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.tenants_running.remove(&run.tenant);
            }
        }
        if let Some(group) = &run.concurrency {
            let key = (run.tenant.clone(), group.key.clone());
            if let Some(count) = self.groups_running.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.groups_running.remove(&key);
                }
            }
        }
        self.job_run_ended(run);
    }

    /// A run of a job stopped running: the job's next exclusive run may go.
    fn job_run_ended(&mut self, run: &Run) {
        let key = job_key(run);
        if let Some(activity) = self.jobs.get_mut(&key) {
            activity.running = activity.running.saturating_sub(1);
        }
        self.unpark(&key);
        self.forget_idle(&key);
    }

    /// Nothing waits or runs.
    pub fn is_idle(&self) -> bool {
        self.ready.is_empty() && self.delayed.is_empty() && self.parked.is_empty() && self.running.is_empty()
    }

    fn forget_idle(&mut self, key: &JobKey) {
        if self
            .jobs
            .get(key)
            .is_some_and(|activity| *activity == Activity::default())
        {
            self.jobs.remove(key);
        }
    }

    /// The cancel flag of a running run.
    pub fn running_flag(&self, run_id: &str) -> Option<Arc<AtomicBool>> {
        self.running.get(run_id).map(|running| running.cancel.clone())
    }

    /// (tenant, run id) of every running run.
    pub fn running_ids(&self) -> Vec<(String, String)> {
        self.running
            .iter()
            .map(|(run_id, running)| (running.job.0.clone(), run_id.clone()))
            .collect()
    }

    /// The cancel flags of a job's running runs.
    pub fn running_flags_of(&self, tenant: &str, job_id: &str) -> Vec<Arc<AtomicBool>> {
        self.running
            .values()
            .filter(|running| running.job.0 == tenant && running.job.1 == job_id)
            .map(|running| running.cancel.clone())
            .collect()
    }

    /// Waiting and running runs of a job.
    pub fn activity(&self, tenant: &str, job_id: &str) -> Activity {
        self.jobs
            .get(&(tenant.to_string(), job_id.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// Runs of a tenant executing.
    pub fn running_of(&self, tenant: &str) -> usize {
        self.tenants_running.get(tenant).copied().unwrap_or(0)
    }

    /// Runs waiting, of one tenant or (None) of all, by priority.
    pub fn depth_by_priority(&self, tenant: Option<&str>) -> BTreeMap<Priority, usize> {
        let mut depth = BTreeMap::new();
        let parked = self.parked.values().flat_map(BTreeMap::values);
        let runs = self.ready.values().chain(self.delayed.values()).chain(parked);
        for run in runs.filter(|run| tenant.is_none_or(|tenant| run.tenant == tenant)) {
            *depth.entry(run.priority).or_default() += 1;
        }
        depth
    }
}

/// The earliest `scheduled_at` of each job among `runs`, by job id.
pub(super) fn earliest_by_job<'a>(runs: impl IntoIterator<Item = &'a Run>) -> HashMap<String, DateTime<Utc>> {
    let mut earliest: HashMap<String, DateTime<Utc>> = HashMap::new();
    for run in runs {
        earliest
            .entry(run.job_id.clone())
            .and_modify(|at| *at = (*at).min(run.scheduled_at))
            .or_insert(run.scheduled_at);
    }
    earliest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, job: &str, priority: Priority, due: &str) -> Run {
        let mut run = Run::sample(id, job, at(due));
        run.priority = priority;
        run
    }

    fn waiting(queue: &RunQueue) -> usize {
        queue.depth_by_priority(None).values().sum()
    }

    fn unlimited(_tenant: &str) -> Option<usize> {
        None
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn runs_start_by_priority_then_due_time_then_arrival() {
        let mut queue = RunQueue::default();
        let now = at("2026-11-25T10:00:10Z");
        queue.push(run("a", "j1", Priority::Normal, "2026-11-25T10:00:02Z"), now);
        queue.push(run("b", "j2", Priority::Low, "2026-11-25T10:00:00Z"), now);
        queue.push(run("c", "j3", Priority::Critical, "2026-11-25T10:00:05Z"), now);
        queue.push(run("d", "j4", Priority::Normal, "2026-11-25T10:00:01Z"), now);
        queue.push(run("e", "j5", Priority::High, "2026-11-25T10:00:09Z"), now);
        let order: Vec<String> =
            std::iter::from_fn(|| queue.pop(now, &unlimited).ok().map(|(run, _)| run.id)).collect();
        assert_eq!(order, ["c", "e", "d", "a", "b"]);
    }

    #[test]
    fn runs_due_together_start_by_their_jobs_age_then_arrival() {
        let mut queue = RunQueue::default();
        let now = at("2026-11-25T10:00:10Z");
        // Job ids as `new_id` makes them: ULIDs, lower case.
        let id = |millis: u64, random: u128| ulid::Ulid::from_parts(millis, random).to_string().to_ascii_lowercase();
        let (older, newer) = (id(1_000, 9), id(2_000, 1));
        let due = "2026-11-25T10:00:00Z";
        // The newer job's runs arrive first (recorded in an earlier pass),
        // then the older job's (its fire was held back while it was busy).
        queue.push(run("n1", &newer, Priority::Normal, due), now);
        queue.push(run("n2", &newer, Priority::Normal, due), now);
        queue.push(run("o1", &older, Priority::Normal, due), now);
        // Not a ULID: after the jobs that are, by arrival.
        queue.push(run("x1", "j-imported", Priority::Normal, due), now);
        queue.push(run("x2", "j-other", Priority::Normal, due), now);
        // Priority and due time still come first.
        queue.push(run("h1", "j-high", Priority::High, due), now);
        queue.push(run("e1", &newer, Priority::Normal, "2026-11-25T09:59:59Z"), now);
        let order: Vec<String> =
            std::iter::from_fn(|| queue.pop(now, &unlimited).ok().map(|(run, _)| run.id)).collect();
        assert_eq!(order, ["h1", "e1", "o1", "n1", "n2", "x1", "x2"]);
    }

    #[test]
    fn delayed_runs_wait_for_their_time() {
        let mut queue = RunQueue::default();
        queue.push(
            run("retry", "j", Priority::Critical, "2026-11-25T10:01:00Z"),
            at("2026-11-25T10:00:00Z"),
        );
        assert_eq!(
            queue.pop(at("2026-11-25T10:00:30Z"), &unlimited).err(),
            Some(Some(at("2026-11-25T10:01:00Z")))
        );
        assert_eq!(
            queue
                .pop(at("2026-11-25T10:01:00Z"), &unlimited)
                .ok()
                .map(|(run, _)| run.id),
            Some("retry".to_string())
        );
        assert_eq!(queue.pop(at("2026-11-25T10:01:00Z"), &unlimited).err(), Some(None));
    }

    #[test]
    fn a_burst_coming_due_is_promoted_as_needed_in_queue_order() {
        let mut queue = RunQueue::default();
        let (before, instant) = (at("2026-11-25T09:59:59Z"), "2026-11-25T10:00:00Z");
        for index in 0..1000 {
            queue.push(
                run(&format!("n{index:04}"), &format!("j{index}"), Priority::Normal, instant),
                before,
            );
        }
        // Recorded after the burst, but of a higher priority.
        queue.push(run("tick", "tick", Priority::High, instant), before);
        let now = at(instant);
        assert_eq!(queue.pop(now, &unlimited).unwrap().0.id, "tick");
        assert!(
            queue.ready.len() <= PROMOTE_CHUNK,
            "{} runs moved to start one",
            queue.ready.len()
        );
        let order: Vec<String> =
            std::iter::from_fn(|| queue.pop(now, &unlimited).ok().map(|(run, _)| run.id)).collect();
        let expected: Vec<String> = (0..1000).map(|index| format!("n{index:04}")).collect();
        assert_eq!(order, expected, "the rest by arrival");
        // A flooding tenant at its share does not hide a run behind its
        // flood that was not promoted yet.
        let mut queue = RunQueue::default();
        for index in 0..500 {
            queue.push(
                run(&format!("a{index}"), &format!("a{index}"), Priority::Normal, instant),
                before,
            );
        }
        let mut other = run("b", "b", Priority::Normal, instant);
        other.tenant = "other".to_string();
        queue.push(other, before);
        let first = queue.pop(now, &unlimited).unwrap().0;
        assert_eq!(first.tenant, "t");
        let share = |tenant: &str| (tenant == "t").then_some(1);
        assert_eq!(queue.pop(now, &share).unwrap().0.id, "b");
    }

    #[test]
    fn a_run_is_not_started_a_fraction_of_a_millisecond_early() {
        let mut queue = RunQueue::default();
        let due = "2026-11-25T10:00:00.000800Z";
        queue.push(run("r", "j", Priority::Normal, due), at("2026-11-25T09:59:59Z"));
        assert!(queue.pop(at("2026-11-25T10:00:00.000500Z"), &unlimited).is_err());
        assert_eq!(queue.pop(at(due), &unlimited).unwrap().0.id, "r");
    }

    #[test]
    fn withdrawing_takes_only_the_jobs_scheduled_runs_not_due_yet() {
        let mut queue = RunQueue::default();
        let now = at("2026-11-25T10:00:00Z");
        queue.push(run("due", "j", Priority::Normal, "2026-11-25T10:00:00Z"), now);
        // Fires recorded ahead: queued before their instant.
        let mut ahead = run("ahead", "j", Priority::Normal, "2026-11-25T10:00:01Z");
        ahead.queued_at = now;
        queue.push(ahead, now);
        let mut missed = run("missed", "j", Priority::Normal, "2026-11-25T10:00:00Z");
        missed.queued_at = at("2026-11-25T09:59:59.5Z");
        queue.push(missed, now);
        let mut retry = run("retry", "j", Priority::Normal, "2026-11-25T10:00:01Z");
        retry.trigger = Trigger::Retry;
        queue.push(retry, now);
        queue.push(run("other", "k", Priority::Normal, "2026-11-25T10:00:01Z"), now);
        assert_eq!(
            queue.fires_ahead("t", now).get("j"),
            Some(&at("2026-11-25T10:00:01Z")),
            "only a scheduled run not due yet is a fire ahead"
        );
        let withdrawn: Vec<String> = queue
            .withdraw_ahead(Some(("t", "j")), Some(now))
            .into_iter()
            .map(|run| run.id)
            .collect();
        assert_eq!(withdrawn, ["ahead"]);
        assert_eq!(queue.fires_ahead("t", now).get("j"), None);
        assert_eq!(queue.activity("t", "j"), Activity { waiting: 3, running: 0 });
        // At start-up every fire recorded ahead goes, due or not.
        let at_start: Vec<String> = queue.withdraw_ahead(None, None).into_iter().map(|run| run.id).collect();
        assert_eq!(at_start, ["missed"]);
        assert_eq!(waiting(&queue), 3);
    }

    #[test]
    fn an_exclusive_run_waits_for_its_job_and_lets_others_pass() {
        let mut queue = RunQueue::default();
        let now = at("2026-11-25T10:00:00Z");
        let mut first = run("a1", "a", Priority::High, "2026-11-25T10:00:00Z");
        first.exclusive = true;
        let mut second = run("a2", "a", Priority::High, "2026-11-25T10:00:00Z");
        second.exclusive = true;
        queue.push(first, now);
        queue.push(second, now);
        queue.push(run("b1", "b", Priority::Low, "2026-11-25T10:00:00Z"), now);
        let (started, _) = queue.pop(now, &unlimited).unwrap();
        assert_eq!(started.id, "a1");
        assert_eq!(queue.pop(now, &unlimited).unwrap().0.id, "b1", "a2 waits for a1");
        assert!(queue.pop(now, &unlimited).is_err());
        queue.finished(&started);
        assert_eq!(queue.pop(now, &unlimited).unwrap().0.id, "a2");
    }

    #[test]
    fn a_job_with_many_exclusive_runs_parks_them_and_runs_them_in_order() {
        let mut queue = RunQueue::default();
        let now = at("2026-11-25T10:00:00Z");
        for index in 0..1000 {
            let mut queued = run(&format!("a{index:04}"), "a", Priority::Normal, "2026-11-25T10:00:00Z");
            queued.exclusive = true;
            queue.push(queued, now);
        }
        queue.push(run("b", "b", Priority::Low, "2026-11-25T10:00:00Z"), now);
        // One of job a's runs is ready, the rest wait behind it.
        assert_eq!(queue.ready.len(), 2);
        assert_eq!(waiting(&queue), 1001);
        assert_eq!(queue.activity("t", "a").waiting, 1000);
        let (first, _) = queue.pop(now, &unlimited).unwrap();
        assert_eq!(first.id, "a0000");
        let (other, _) = queue.pop(now, &unlimited).unwrap();
        assert_eq!(other.id, "b");
        queue.finished(&other);
        assert!(queue.pop(now, &unlimited).is_err(), "a0001 waits for a0000");
        // Cancelling a parked run and the next one in line keeps the order.
        assert!(queue.remove("a0001").is_some());
        assert!(queue.remove("a0500").is_some());
        queue.finished(&first);
        let mut order = Vec::new();
        while let Ok((next, _)) = queue.pop(now, &unlimited) {
            assert!(queue.pop(now, &unlimited).is_err(), "one of job a's runs at a time");
            order.push(next.id.clone());
            queue.finished(&next);
        }
        assert_eq!(order.len(), 997);
        assert_eq!(order.first().map(String::as_str), Some("a0002"));
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "in order");
        assert!(!order.contains(&"a0500".to_string()));
        assert!(queue.is_idle());
    }

    #[test]
    fn withdrawing_reaches_parked_runs() {
        let mut queue = RunQueue::default();
        let now = at("2026-11-25T10:00:00Z");
        let mut busy = run("busy", "a", Priority::Normal, "2026-11-25T10:00:00Z");
        busy.exclusive = true;
        queue.push(busy, now);
        let (busy, _) = queue.pop(now, &unlimited).unwrap();
        // Two fires of the job recorded ahead, parked behind the busy run
        // once due.
        for (id, due) in [("f1", "2026-11-25T10:00:01Z"), ("f2", "2026-11-25T10:00:02Z")] {
            let mut fire = run(id, "a", Priority::Normal, due);
            fire.exclusive = true;
            fire.trigger = Trigger::Schedule;
            fire.queued_at = now;
            queue.push(fire, now);
        }
        assert!(queue.pop(at("2026-11-25T10:00:01.5Z"), &unlimited).is_err());
        let withdrawn = queue.withdraw_ahead(Some(("t", "a")), Some(at("2026-11-25T10:00:00.5Z")));
        assert_eq!(withdrawn.len(), 2);
        queue.finished(&busy);
        assert!(queue.is_idle());
    }

    #[test]
    fn activity_counts_waiting_and_running_per_job() {
        let mut queue = RunQueue::default();
        let now = at("2026-11-25T10:00:00Z");
        queue.push(run("a", "j", Priority::Normal, "2026-11-25T10:00:00Z"), now);
        queue.push(run("a", "j", Priority::Normal, "2026-11-25T10:00:00Z"), now);
        queue.push(run("b", "j", Priority::Normal, "2026-11-25T10:00:00Z"), now);
        assert_eq!(
            queue.activity("t", "j"),
            Activity { waiting: 2, running: 0 },
            "a is not queued twice"
        );
        assert_eq!(queue.admission.waiting("t"), 2, "the tenant's count agrees");
        let (first, _) = queue.pop(now, &unlimited).unwrap();
        assert_eq!(queue.activity("t", "j"), Activity { waiting: 1, running: 1 });
        assert_eq!(queue.admission.waiting("t"), 1, "a running run does not wait");
        assert!(queue.remove("b").is_some());
        queue.finished(&first);
        assert_eq!(queue.activity("t", "j"), Activity::default());
        assert_eq!(waiting(&queue), 0);
        assert_eq!(queue.admission.waiting("t"), 0);
    }

    #[test]
    fn a_tenant_at_its_share_waits_and_others_start_past_its_flood() {
        let mut queue = RunQueue::default();
        let now = at("2026-11-25T10:00:00Z");
        for index in 0..50 {
            let mut flood = run(
                &format!("f{index:02}"),
                &format!("spin{index}"),
                Priority::Critical,
                "2026-11-25T09:59:00Z",
            );
            flood.tenant = "greedy".into();
            queue.push(flood, now);
        }
        queue.push(run("calm", "every", Priority::Low, "2026-11-25T10:00:00Z"), now);
        let share = |tenant: &str| (tenant == "greedy").then_some(1);
        let (first, _) = queue.pop(now, &share).unwrap();
        assert_eq!(first.id, "f00");
        // The greedy tenant holds its one slot; the other tenant's run,
        // lower in priority and later in the queue, starts next.
        assert_eq!(queue.pop(now, &share).unwrap().0.id, "calm");
        assert!(queue.pop(now, &share).is_err(), "the flood waits; it does not fail");
        assert_eq!(waiting(&queue), 49);
        queue.finished(&first);
        assert_eq!(queue.pop(now, &share).unwrap().0.id, "f01");
    }

    #[test]
    fn a_concurrency_group_never_runs_more_than_its_limit_and_the_rest_wait_in_order() {
        let mut queue = RunQueue::default();
        let now = at("2026-11-25T10:00:00Z");
        let group = crate::model::job::Concurrency {
            key: "db".into(),
            limit: 2,
        };
        for index in 0..6 {
            let mut member = run(
                &format!("g{index}"),
                &format!("job{index}"),
                Priority::Normal,
                "2026-11-25T09:59:00Z",
            );
            member.concurrency = Some(group.clone());
            queue.push(member, now);
        }
        let mut other_tenant = run("elsewhere", "job0", Priority::Low, "2026-11-25T10:00:00Z");
        other_tenant.tenant = "other".into();
        other_tenant.concurrency = Some(group);
        queue.push(other_tenant, now);
        queue.push(run("free", "solo", Priority::Low, "2026-11-25T10:00:00Z"), now);
        let share = |_: &str| None;
        let mut running = Vec::new();
        let mut started = Vec::new();
        while let Ok((run, _)) = queue.pop(now, &share) {
            started.push(run.id.clone());
            running.push(run);
        }
        // Two of the group; the other tenant's group of the same name and a
        // run of no group pass the rest.
        assert_eq!(started, ["g0", "g1", "elsewhere", "free"]);
        for next in ["g2", "g3", "g4", "g5"] {
            let member = running.iter().position(|run| run.id.starts_with('g')).unwrap();
            let done = running.remove(member);
            queue.finished(&done);
            let (run, _) = queue.pop(now, &share).unwrap();
            assert_eq!(run.id, next, "in order");
            running.push(run);
            assert!(queue.pop(now, &share).is_err(), "never more than two");
        }
    }
}
