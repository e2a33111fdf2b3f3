//! The scheduler: sleeps until the earliest due fire in the store's ordered
//! due index comes within `fire_ahead` (at the half-second mark before, see
//! [`pass_mark`]; woken early when a job changes), then turns the fires into
//! queued runs with their jobs' next fires in one atomic write, and hands
//! the runs to a [`RunSink`] (the executor, whose queue holds each until
//! its instant). A change to a job (or pausing the scheduler) withdraws its
//! fires recorded ahead in the same write as the change. The decisions
//! (misfire, overlap) are the pure functions of [`policy`]; this loop only
//! reads, writes and sleeps. A fire that would pass its tenant's
//! `queued_runs` quota is skipped like the fire of a busy job under overlap
//! `skip` (counted in the job's `skipped_fires`): the schedule moves on and
//! no other tenant waits for it. Runs' ends come back as [`RunEnded`]: the
//! scheduler then writes an `after` job's next fire and looks again at a
//! job whose fire it held back while the job was busy. In a cluster only
//! the leader's scheduler passes (see `cluster`); every node's hears the
//! ends of its own runs.

pub mod backfill;
mod outcomes;
mod sink;
mod streak;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc};

use crate::clock::Clock;
use crate::cluster::Leadership;
use crate::model::job::Overlap;
use crate::model::policy::{self, OverlapDecision, plan_fires};
use crate::model::run::{Activity, NewRun, RunEnded};
use crate::model::{Job, Run, Trigger, scheduled_run_id};
use crate::store::{DueJob, Fire, JobKey, Store, StoreError};
use crate::sync::lock;
pub use sink::{Places, ResolvePlugin, RunSink};

/// Due jobs handled per pass (one write and one flush cover a pass). A
/// sled write holds the database's write lock throughout, every other read
/// and write waiting, and a pass's runs start only once it is flushed: at
/// 1,000 a pass held the lock ~55 ms and overdue runs reached the executor
/// in lumps, a fifth less durable throughput than at 256 (docs/benchmarks.md).
const PASS_SIZE: usize = 256;
/// How many times a job change reads and withdraws its fires recorded
/// ahead when, in a cluster, they changed between the read and the write.
const WITHDRAW_ATTEMPTS: usize = 5;

/// Fires schedules.
pub struct Scheduler {
    store: Arc<dyn Store>,
    sink: Arc<dyn RunSink>,
    plugins: Arc<dyn ResolvePlugin>,
    /// Bytes of log each run keeps (`jobs.logs`), written into its record.
    run_log_bytes: u64,
    clock: Arc<dyn Clock>,
    /// Woken when a job changes, a held-back job goes idle, or on stop.
    wake: Notify,
    paused: AtomicBool,
    stopping: AtomicBool,
    /// Runs' ends, from the sink; read by the loop [`Scheduler::start`]
    /// spawns, then by [`Scheduler::drain_ended`] at shutdown.
    ended: tokio::sync::Mutex<mpsc::UnboundedReceiver<RunEnded>>,
    /// Tells the loop reading `ended` to stop (shutdown).
    ended_stop: Notify,
    /// Jobs (tenant, id) with a fire held back while busy: their next run
    /// ending wakes the loop.
    idle_watch: Mutex<HashSet<(String, String)>>,
    /// How far ahead of its instant a fire is recorded.
    fire_ahead: Duration,
    /// Held by a pass and by a job change, so a change sees every fire
    /// recorded ahead in the queue (none is between the store and it).
    firing: tokio::sync::Mutex<()>,
    /// Passes run only while this node leads.
    leadership: Arc<Leadership>,
    /// The last attempts' ends, passed on.
    outcomes: Option<mpsc::UnboundedSender<RunEnded>>,
}

/// The last half-second mark (a whole second plus 500 ms) at or before
/// `at`. Passes that record fires ahead wake on these marks, so a fire is
/// recorded between `fire_ahead` and `fire_ahead` + 1 s before its instant
/// and a pass's work never competes with the runs it queued: most fires
/// (cron lines, `at` instants) fall on whole seconds, and a pass woken on
/// one took a core from that second's runs (p99 lateness of 10,000 cron
/// jobs, docs/benchmarks.md).
pub fn pass_mark(at: DateTime<Utc>) -> DateTime<Utc> {
    let millis = at.timestamp_millis();
    let mark = (millis - 500).div_euclid(1000) * 1000 + 500;
    DateTime::from_timestamp_millis(mark).unwrap_or(at)
}

/// Moves a job's next fire back to the earliest of its withdrawn fires.
fn take_back(job: &mut Job, withdrawn: &[Run]) {
    job.next_fire_at = job.next_fire_or(withdrawn.iter().map(|run| run.scheduled_at).min());
}

/// Takes the withdrawn fires out of the job's count of fires that ran
/// (`max_fires` counts them again when they fire).
fn uncount(job: &mut Job, withdrawn: &[Run]) {
    let fires = withdrawn.iter().filter(|run| run.trigger == Trigger::Schedule).count();
    job.fired = job.fired.saturating_sub(fires as u64);
}

/// What a due entry comes to.
enum Planned {
    /// Record this fire, which skips this many fires (logged once it is
    /// recorded: a pass that cannot write plans the same skips again).
    Fire(Box<Fire>, u64),
    /// A fire ahead of its instant, left for a pass at its instant.
    AtItsInstant,
    /// The entry was stale and is gone from the index.
    Stale,
}

/// What a scheduler is made of.
pub struct Parts {
    /// Jobs, their due index and the runs written with each fire.
    pub store: Arc<dyn Store>,
    /// Where queued runs go.
    pub sink: Arc<dyn RunSink>,
    /// Resolves a job's plugin when a fire is recorded.
    pub plugins: Arc<dyn ResolvePlugin>,
    /// Bytes of log each run keeps (`jobs.logs`).
    pub run_log_bytes: u64,
    /// Now, and sleeping.
    pub clock: Arc<dyn Clock>,
    /// How far ahead of its instant a fire is recorded.
    pub fire_ahead: Duration,
    /// Runs' ends, as the sink reports them.
    pub ended: mpsc::UnboundedReceiver<RunEnded>,
    /// Whether this node plans fires (in a cluster, only the leader does).
    pub leadership: Arc<Leadership>,
    /// Where the last attempts' ends go on to (what counts a job's failed
    /// runs), if anywhere.
    pub outcomes: Option<mpsc::UnboundedSender<RunEnded>>,
}

impl Scheduler {
    /// A scheduler over `parts.store` feeding `parts.sink`.
    pub fn new(parts: Parts) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            store: parts.store,
            sink: parts.sink,
            plugins: parts.plugins,
            run_log_bytes: parts.run_log_bytes,
            clock: parts.clock,
            wake: Notify::new(),
            paused: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            ended: tokio::sync::Mutex::new(parts.ended),
            ended_stop: Notify::new(),
            idle_watch: Mutex::new(HashSet::new()),
            fire_ahead: parts.fire_ahead,
            firing: tokio::sync::Mutex::new(()),
            leadership: parts.leadership,
            outcomes: parts.outcomes,
        })
    }

    /// A job was created, changed, paused, resumed or deleted: look again.
    pub fn job_changed(&self) {
        self.wake.notify_one();
    }

    /// Stops firing schedules. Fires recorded ahead of their instant are
    /// withdrawn (their jobs' next fires go back to them); runs already due
    /// go on.
    pub async fn pause(&self) -> Result<(), StoreError> {
        self.paused.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let _firing = self.firing.lock().await;
        self.take_back_all(self.sink.withdraw_ahead(None))
    }

    /// At start-up (before the executor starts): fires the last life of the
    /// daemon recorded ahead are planned again, so one whose instant passed
    /// while it was down follows its job's misfire policy like any missed
    /// fire instead of running late as if queued in time.
    pub async fn take_back_recorded_ahead(&self) -> Result<(), StoreError> {
        let _firing = self.firing.lock().await;
        let withdrawn = self.sink.withdraw_recorded_ahead();
        if !withdrawn.is_empty() {
            tracing::info!(
                runs = withdrawn.len(),
                "fires recorded ahead before the restart are planned again"
            );
        }
        self.take_back_all(withdrawn)
    }

    /// Deletes withdrawn runs and moves each job's next fire back to them.
    fn take_back_all(&self, withdrawn: Vec<Run>) -> Result<(), StoreError> {
        let mut by_job: BTreeMap<(String, String), Vec<Run>> = BTreeMap::new();
        for run in withdrawn {
            by_job
                .entry((run.tenant.clone(), run.job_id.clone()))
                .or_default()
                .push(run);
        }
        let mut failed = None;
        for ((tenant, job_id), withdrawn) in by_job {
            let mut given = Some(withdrawn);
            let written = self.withdrawing(|| {
                // In a cluster, read again after a conflict (see `update_job`).
                let withdrawn = given
                    .take()
                    .unwrap_or_else(|| self.sink.withdraw_ahead(Some((&tenant, &job_id))));
                let written = match self.store.job(&tenant, &job_id) {
                    Ok(Some(mut job)) => {
                        take_back(&mut job, &withdrawn);
                        uncount(&mut job, &withdrawn);
                        self.store.update_job_withdrawing(&job, &withdrawn)
                    }
                    // The job went meanwhile (its delete withdrew what it saw).
                    Ok(None) => {
                        self.sink.restore(withdrawn);
                        return Ok(());
                    }
                    Err(error) => Err(error),
                };
                if written.is_err() {
                    self.sink.restore(withdrawn);
                }
                written
            });
            if let Err(error) = written {
                failed = Some(error);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Waits until no pass is between writing fires and queueing their
    /// runs, and keeps it so while the guard lives: reads of jobs together
    /// with the executor's fires ahead then agree.
    pub async fn settled(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.firing.lock().await
    }

    /// Fires again; fires missed meanwhile follow each job's misfire policy.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Pauses or resumes as the cluster says (the node asked to pause
    /// withdrew the fires recorded ahead, from the cluster's queue).
    pub fn hold(&self, paused: bool) {
        if self.paused.swap(paused, Ordering::SeqCst) != paused {
            tracing::info!(paused, "the cluster's scheduler was paused or resumed");
        }
        self.wake.notify_one();
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Stops the loops for good (shutdown). Runs that end from now on are
    /// handled by [`Scheduler::drain_ended`].
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        self.ended_stop.notify_one();
    }

    /// Starts the loops: firing, and hearing runs' ends.
    pub fn start(self: &Arc<Self>) {
        let scheduler = self.clone();
        tokio::spawn(async move { scheduler.run_loop().await });
        let scheduler = self.clone();
        tokio::spawn(async move { scheduler.ended_loop().await });
    }

    /// Handles runs' ends as they come, until [`Scheduler::stop`].
    async fn ended_loop(self: Arc<Self>) {
        let mut ended = self.ended.lock().await;
        loop {
            tokio::select! {
                next = ended.recv() => match next {
                    Some(run) => self.run_ended(run).await,
                    None => return,
                },
                () = self.ended_stop.notified() => return,
            }
        }
    }

    /// At shutdown, once the sink has stopped (every run it ran has
    /// ended): handles the ends not handled yet, so `after` jobs' next
    /// fires are written before the last flush.
    pub async fn drain_ended(&self) {
        let mut ended = self.ended.lock().await;
        while let Ok(run) = ended.try_recv() {
            self.run_ended(run).await;
        }
    }

    /// A run ended: an `after` job's next fire counts from its last
    /// attempt's end, and a job whose fire was held back while it was busy
    /// may have it recorded now.
    async fn run_ended(&self, ended: RunEnded) {
        if !ended.retried
            && let Some(finished_at) = ended.finished_at
        {
            self.after_run_ended(&ended.tenant, &ended.job_id, finished_at).await;
        }
        if !ended.retried
            && let Some(outcomes) = &self.outcomes
        {
            // The receiver lives as long as the daemon.
            let _ = outcomes.send(ended.clone());
        }
        if lock(&self.idle_watch).remove(&(ended.tenant, ended.job_id)) {
            self.wake.notify_one();
        }
    }

    /// The last attempt of a run of an `after` job ended at `finished_at`:
    /// its next fire is the delay after that.
    async fn after_run_ended(&self, tenant: &str, job_id: &str, finished_at: DateTime<Utc>) {
        // Most jobs are not `after` jobs: tell without decoding the job.
        match self.store.job_hooks(tenant, job_id) {
            Ok(Some(hooks)) if hooks.after => {}
            _ => return,
        }
        let _firing = self.firing.lock().await;
        for _ in 0..3 {
            let Ok(Some(mut job)) = self.store.job(tenant, job_id) else {
                return;
            };
            let Some(schedule) = job.schedule.as_ref().filter(|schedule| schedule.is_after()) else {
                return;
            };
            job.last_finished_at = Some(finished_at);
            job.next_fire_at = match job.fires_left() {
                Some(0) => None,
                _ => schedule.next_fire(finished_at, job.created_at, job.last_finished_at),
            };
            match self.store.record_fire(&job, &[]) {
                Ok(_) => {
                    self.wake.notify_one();
                    return;
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => {
                    tracing::error!(job_id = %job.id, %error, "cannot plan the next fire of an `after` job");
                    return;
                }
            }
        }
    }

    async fn run_loop(self: Arc<Self>) {
        let mut failures = streak::FailureStreak::default();
        while !self.stopping.load(Ordering::SeqCst) {
            if self.is_paused() {
                self.wake.notified().await;
                continue;
            }
            if !self.leadership.is_leader() {
                tokio::select! {
                    () = self.leadership.until_leader() => {}
                    () = self.wake.notified() => {}
                }
                continue;
            }
            let passed = self.pass().await;
            if passed.is_ok()
                && let Some(count) = failures.succeeded()
            {
                tracing::info!(failures = count, "scheduler passes succeed again");
            }
            match passed {
                Ok(Some(next)) => {
                    if self.clock.now() >= next {
                        continue;
                    }
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = self.clock.sleep_until(next) => {}
                    }
                }
                Ok(None) => self.wake.notified().await,
                Err(error) => {
                    match failures.failed(&error.to_string(), std::time::Instant::now()) {
                        Some(streak::Report::New) => tracing::error!(
                            %error,
                            "scheduler pass failed; retrying every second (the same failure is logged again once a minute)"
                        ),
                        Some(streak::Report::Again { failures }) => {
                            tracing::error!(%error, failures, "scheduler passes still failing")
                        }
                        None => {}
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// Fires every job due by now plus `fire_ahead` (up to a pass's worth)
    /// in one atomic write, makes the new runs durable with one flush and
    /// queues them: a run of a fire recorded ahead waits in the queue for
    /// its instant, so the write is not part of its lateness. Returns when
    /// to look again.
    pub async fn pass(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let _firing = self.firing.lock().await;
        let now = self.clock.now();
        let horizon = self.horizon(now);
        let due = self.store.due_jobs(horizon, PASS_SIZE)?;
        let mut fires = Vec::with_capacity(due.len());
        let mut entries = Vec::with_capacity(due.len());
        // Per fire: its job, the fires it skips and the job's total.
        let mut skips = Vec::with_capacity(due.len());
        // The earliest fire held back until its instant.
        let mut held: Option<DateTime<Utc>> = None;
        // Held until the pass's runs are in the queue.
        let mut places = self.sink.places();
        let jobs: Vec<JobKey> = due
            .iter()
            .map(|entry| (entry.tenant.clone(), entry.job_id.clone()))
            .collect();
        let activities = self.sink.activities(&jobs);
        let stored = self.store.jobs_by_id(&jobs)?;
        for ((entry, key), job) in due.iter().zip(&jobs).zip(stored) {
            let activity = activities.get(key).copied().unwrap_or_default();
            match job.and_then(|job| self.plan(entry, job, now, activity, places.as_mut())) {
                Ok(Planned::Fire(fire, skipped)) => {
                    skips.push((fire.job.id.clone(), skipped, fire.job.skipped_fires));
                    fires.push(*fire);
                    entries.push(entry);
                }
                Ok(Planned::AtItsInstant) => held = Some(held.map_or(entry.at, |held| held.min(entry.at))),
                Ok(Planned::Stale) => {}
                // Failing storage says nothing about the job: keep it.
                Err(error) if error.is_outage() => return Err(error),
                Err(error) => self.drop_entry(entry, &error)?,
            }
        }
        if !fires.is_empty() {
            // Off the runtime's threads: a pass's write takes milliseconds,
            // and runs due meanwhile must start on time.
            let store = self.store.clone();
            let outcomes = crate::lanes::FIRES
                .run(move || store.record_fires(&fires))
                .await
                .map_err(|error| StoreError::Backend(format!("recording fires failed: {error}")))??;
            let mut runs = Vec::new();
            let mut skipped_fires = Vec::new();
            for ((outcome, entry), skip) in outcomes.into_iter().zip(entries).zip(skips) {
                match outcome {
                    // Runs recorded by an earlier life of this fire are left out.
                    Ok(inserted) => {
                        runs.extend(inserted);
                        skipped_fires.push(skip);
                    }
                    // The job changed under us; the next pass sees the new one.
                    Err(StoreError::Conflict(reason)) => tracing::debug!(%reason, "fire planned again"),
                    Err(error) if error.is_outage() => return Err(error),
                    Err(error) => self.drop_entry(entry, &error)?,
                }
            }
            self.store.flush_async().await?;
            for (job_id, skipped, total) in skipped_fires.into_iter().filter(|(_, skipped, _)| *skipped > 0) {
                tracing::info!(%job_id, skipped, total, "fires skipped");
            }
            self.sink.enqueue(runs);
            // Next fires just written may fall inside the window: look again.
            return Ok(Some(now));
        }
        if due.len() >= PASS_SIZE {
            return Ok(Some(now));
        }
        let beyond = self.store.next_due_after(horizon)?.map(|at| self.pass_for(at));
        Ok(match (held, beyond) {
            (Some(held), Some(beyond)) => Some(held.min(beyond)),
            (held, beyond) => held.or(beyond),
        })
    }

    /// The latest due instant a pass at `now` records: `fire_ahead` past
    /// the next half-second mark (see [`pass_mark`]), or `now` itself when
    /// fires are recorded at their instant.
    fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.fire_ahead.is_zero() {
            return now;
        }
        let next_mark = pass_mark(now) + chrono::Duration::seconds(1);
        // The index keeps milliseconds: one before the window's end.
        crate::units::add_saturating(next_mark, self.fire_ahead) - chrono::Duration::milliseconds(1)
    }

    /// When a pass records the fire due at `at`.
    fn pass_for(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        match chrono::Duration::from_std(self.fire_ahead) {
            Ok(ahead) if !ahead.is_zero() => at.checked_sub_signed(ahead).map_or(at, pass_mark),
            _ => at,
        }
    }

    /// Stores a new job (within a tenant's `jobs` quota, if given); the
    /// caller wakes the loop ([`Scheduler::job_changed`]) once it is durable.
    pub fn insert_job(&self, job: &Job, max_jobs: Option<u64>) -> Result<(), StoreError> {
        self.store.insert_job_under_quota(job, max_jobs)
    }

    /// Changes a job, withdrawing (in the same write) the runs of its fires
    /// recorded ahead of their instant: they were planned from the job as
    /// it was. When the job keeps its schedule, its next fire goes back to
    /// the earliest withdrawn one, so pausing and resuming loses nothing.
    /// In a cluster the fires recorded ahead are read before the write
    /// that withdraws them, which is refused (a conflict) when they changed
    /// meanwhile (the leader recorded another, or a node claimed one): read
    /// again and tried again, up to [`WITHDRAW_ATTEMPTS`] times.
    pub async fn update_job(&self, job: &mut Job) -> Result<(), StoreError> {
        let _firing = self.firing.lock().await;
        let asked = job.clone();
        self.withdrawing(|| {
            *job = asked.clone();
            let withdrawn = self.sink.withdraw_ahead(Some((&job.tenant, &job.id)));
            let stored = self.store.job(&job.tenant, &job.id)?;
            // The count of fires that ran is the store's (a pass may have
            // moved it since the change was read), less those withdrawn.
            if let Some(stored) = &stored {
                job.fired = stored.fired;
            }
            uncount(job, &withdrawn);
            if stored.is_some_and(|stored| stored.schedule == job.schedule) {
                take_back(job, &withdrawn);
            }
            // A fire withdrawn may be what left it with no next fire (its
            // `max_fires` reached): it has one again.
            let repeating = job.schedule.as_ref().is_some_and(|schedule| !schedule.is_after());
            if !withdrawn.is_empty()
                && repeating
                && job.next_fire_at.is_none()
                && job.fires_left().is_some_and(|left| left > 0)
            {
                job.next_fire_at = job.first_fire(self.clock.now());
            }
            let written = self.store.update_job_withdrawing(job, &withdrawn);
            self.settle(written, withdrawn)
        })
    }

    /// Deletes a job with the runs of its fires recorded ahead of their
    /// instant (read again as [`Scheduler::update_job`] does). False if it
    /// did not exist.
    pub async fn delete_job(&self, tenant: &str, job_id: &str) -> Result<bool, StoreError> {
        let _firing = self.firing.lock().await;
        self.withdrawing(|| {
            let withdrawn = self.sink.withdraw_ahead(Some((tenant, job_id)));
            let written = self.store.delete_job_withdrawing(tenant, job_id, &withdrawn);
            self.settle(written, withdrawn)
        })
    }

    /// Runs `attempt` (a read of fires recorded ahead and the write that
    /// withdraws them) again while the write is refused as a conflict (in
    /// a cluster they changed in between), up to [`WITHDRAW_ATTEMPTS`]
    /// times.
    fn withdrawing<T>(&self, mut attempt: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut attempts = 1;
        loop {
            match attempt() {
                Err(StoreError::Conflict(reason)) if attempts < WITHDRAW_ATTEMPTS => {
                    tracing::debug!(%reason, "fires recorded ahead read and withdrawn again");
                    attempts += 1;
                }
                written => return written,
            }
        }
    }

    /// After a job change: on failure the withdrawn runs go back in the
    /// queue (they are still in the store). The caller wakes the loop once
    /// the change is durable and announced ([`Scheduler::job_changed`]).
    fn settle<T>(&self, written: Result<T, StoreError>, withdrawn: Vec<Run>) -> Result<T, StoreError> {
        if written.is_err() {
            self.sink.restore(withdrawn);
        } else if !withdrawn.is_empty() {
            tracing::debug!(
                count = withdrawn.len(),
                "fires recorded ahead withdrawn by a job change"
            );
        }
        written
    }

    /// A due entry that cannot be fired (its job is unreadable) leaves the
    /// index, so it does not stall every pass after it.
    fn drop_entry(&self, entry: &DueJob, error: &StoreError) -> Result<(), StoreError> {
        tracing::error!(job_id = %entry.job_id, %error, "cannot fire; dropping it from the due index");
        self.store.remove_due(entry)
    }

    /// One due job (`job`: as stored, if it still is): plans its fires and
    /// applies the overlap policy. A fire ahead of its instant is planned
    /// as on time; it is held back until its instant instead when the job
    /// is busy and its overlap policy would have to decide (the busy run
    /// may be over by then).
    fn plan(
        &self,
        entry: &DueJob,
        job: Option<Job>,
        now: DateTime<Utc>,
        activity: Activity,
        places: &mut dyn Places,
    ) -> Result<Planned, StoreError> {
        // The index keeps milliseconds; the job keeps the exact instant.
        let current = |job: &Job| job.next_fire_at.map(|at| at.timestamp_millis()) == Some(entry.at.timestamp_millis());
        let Some(mut job) = job.filter(|job| job.enabled && current(job)) else {
            // A stale entry: the job went, was paused or moved on.
            self.store.remove_due(entry)?;
            return Ok(Planned::Stale);
        };
        let Some(schedule) = job.schedule.clone() else {
            self.store.remove_due(entry)?;
            return Ok(Planned::Stale);
        };
        let ahead = entry.at > now;
        if ahead && job.policy.overlap != Overlap::Allow && (activity.running > 0 || activity.waiting > 0) {
            lock(&self.idle_watch).insert((job.tenant.clone(), job.id.clone()));
            return Ok(Planned::AtItsInstant);
        }
        let now = now.max(entry.at);
        let plan = plan_fires(
            &schedule,
            job.created_at,
            entry.at,
            now,
            job.policy.misfire,
            job.policy.misfire_window,
        );
        // The fires of one plan (a catch-up of missed fires and the fire on
        // time) are one unit for the overlap policy; unless overlap is
        // `allow` they then run one after another (see `Run::exclusive`).
        let mut skipped = plan.skipped;
        let mut fires = plan.fires;
        // `max_fires`: the fires past it are not fires at all.
        if let Some(left) = job.fires_left() {
            fires.truncate(usize::try_from(left).unwrap_or(usize::MAX));
        }
        let decision = policy::overlap(job.policy.overlap, activity.running, activity.waiting);
        let wanted = if decision == OverlapDecision::Skip {
            skipped += fires.len() as u64;
            0
        } else {
            fires.len()
        };
        // The tenant's queue quota: what does not fit is skipped (the
        // earliest fires of a catch-up are kept), at the fire's instant: by
        // then a run may have started and made room.
        let granted = places.take(&job.tenant, wanted);
        if granted < wanted && ahead {
            places.give_back(&job.tenant, granted);
            return Ok(Planned::AtItsInstant);
        }
        if granted < wanted {
            let over = (wanted - granted) as u64;
            skipped += over;
            tracing::warn!(tenant = %job.tenant, job_id = %job.id, skipped = over, "fires skipped: the tenant's queue is at its queued_runs quota");
        }
        if granted > 0 && decision == OverlapDecision::ReplaceRunning {
            self.sink.cancel_running(&job.tenant, &job.id);
        }
        let runs: Vec<Run> = fires[..granted]
            .iter()
            .map(|fire| self.scheduled_run(&job, *fire, Trigger::Schedule))
            .collect();
        job.fired += runs.len() as u64;
        job.next_fire_at = match (schedule.is_after(), plan.next_fire_at) {
            // A job that ran its `max_fires` is done.
            _ if job.fires_left() == Some(0) => None,
            // An `after` job whose fire did not run counts its delay from now.
            (true, None) if runs.is_empty() => schedule.next_fire(now, job.created_at, Some(now)),
            (_, next) => next,
        };
        job.skipped_fires += skipped;
        Ok(Planned::Fire(
            Box::new(Fire {
                job,
                runs,
                runs_only: false,
            }),
            skipped,
        ))
    }

    /// The run of a fire (its id derived from the job and the instant):
    /// the job's plugin is resolved now, so the run keeps the version it
    /// was queued with.
    fn scheduled_run(&self, job: &Job, fire: DateTime<Utc>, trigger: Trigger) -> Run {
        let jitter = match trigger {
            Trigger::Schedule => job.jitter_for(fire),
            _ => Duration::ZERO,
        };
        let new = NewRun {
            job,
            trigger,
            scheduled_at: fire,
            jitter_ms: u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX),
            id: scheduled_run_id(&job.tenant, &job.id, fire),
            input: None,
        };
        let version = self.plugins.resolve_version(&job.tenant, &job.plugin);
        Run::queued(new, version, self.clock.now(), self.run_log_bytes)
    }

    /// Queues one run of each enabled `run_at_start` job (at daemon start).
    pub async fn fire_run_at_start_jobs(&self) -> Result<usize, StoreError> {
        let jobs: Vec<Job> = self
            .store
            .run_at_start_jobs()?
            .into_iter()
            .filter(|job| job.enabled && job.run_at_start)
            .collect();
        let mut count = 0;
        for job in jobs {
            count += self.fire_now(&job).await?;
        }
        Ok(count)
    }

    /// Queues one run of `job` now, as its schedule would (the `run_at_start`
    /// pattern). Returns how many runs were queued (0 or 1).
    pub async fn fire_now(&self, job: &Job) -> Result<usize, StoreError> {
        let _firing = self.firing.lock().await;
        let mut places = self.sink.places();
        if places.take(&job.tenant, 1) == 0 {
            tracing::warn!(tenant = %job.tenant, job_id = %job.id, "run_at_start fire skipped: the tenant's queue is at its queued_runs quota");
            return Ok(0);
        }
        let run = self.scheduled_run(job, self.clock.now(), Trigger::Start);
        let inserted = match self.store.record_fire(job, &[run]) {
            Ok(inserted) => inserted,
            Err(StoreError::Conflict(_)) => return Ok(0),
            Err(error) => return Err(error),
        };
        self.store.flush_async().await?;
        let count = inserted.len();
        self.sink.enqueue(inserted);
        Ok(count)
    }
}
