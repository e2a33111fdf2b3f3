//! The executor: turns durable `queued` runs into sandboxed executions. A
//! priority queue sits in front of a global limit of `max_concurrent_runs`;
//! a dispatcher task starts the best ready run whenever a slot is free. It
//! writes each outcome (record, output, log) in one atomic, flushed step
//! before anyone is told, retries failed runs with backoff, and cancels.
//!
//! Durability per run: the queued record before the API answers (or, for
//! schedule fires, with the fire itself); the `running` mark once the run
//! has gone on for the flush window, written beside the instance rather
//! than before it (a crash mid-run finds it `running` and fails it with
//! `host_restart`, see [`Executor::recover`]; a crash before the mark is
//! durable finds it `queued` and runs it again; a run shorter than the
//! window never writes it); the finished record with its output, log and
//! the plugin's kv writes before waiters are woken. Marks and outcomes are
//! written by one thread, many per batch (see [`recorder`]), and flushes of
//! runs within one window are shared (group commit).

mod admission;
mod cancel;
mod claims;
mod places;
mod queue;
mod recorder;
pub mod replay;
mod resume;
mod steps;
mod waiting;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::clock::Clock;
use crate::events::EventBus;
use crate::grant::Granter;
use crate::metrics::Metrics;
use crate::model::job::Priority;
use crate::model::{ErrorKind, Job, Run, RunError, RunStatus, Trigger};
use crate::plugin::{PluginError, Plugins};
use crate::sandbox::log::{LogSink, Secrets};
use crate::sandbox::{EngineKind, Metering, PreparedJob, RunContext, RunRequest, Sandbox, TapeMode, TapeResult};
use crate::store::{JobKey, RunClaims, Store, StoreError};
use crate::sync::lock;

use crate::model::run::{NewRun, RunEnded, RunTape};
pub use places::QueuePlaces;
pub use queue::Activity;
use queue::RunQueue;
pub(crate) use recorder::OUTAGE_PATIENCE;
use recorder::Recorder;
pub use steps::{Followers, StepHook};

/// Why a run could not be queued, cancelled or retried.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The job's plugin cannot be resolved.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run has finished; there is nothing to cancel.
    #[error("run {0} has already finished")]
    Finished(String),
    /// The run has not finished; it cannot be retried yet.
    #[error("run {0} has not finished; only a finished run can be retried")]
    NotFinished(String),
    /// The tenant has as many runs waiting as its `queued_runs` quota allows.
    #[error(
        "queued_runs: tenant {tenant:?} has as many runs waiting in the queue as its quota of {limit} allows; retry once one has started"
    )]
    QueueFull {
        /// The tenant.
        tenant: String,
        /// Its quota.
        limit: u64,
    },
}

/// How much the executor takes on, and where its runs come from.
#[derive(Clone)]
pub struct Capacity {
    /// Runs executing at once (`max_concurrent_runs`).
    pub runs: usize,
    /// Bytes of log captured per run.
    pub log_bytes: u64,
    /// Bytes of tape a recorded run keeps.
    pub record_bytes: u64,
    /// How long a run goes on before its `running` mark is written (the
    /// flush window; zero writes it at once).
    pub mark_running_after: Duration,
    /// The node of the cluster its runs run on, written into them (None:
    /// one daemon on sled).
    pub node: Option<String>,
    /// The cluster's queue, which it claims runs from while it has free
    /// slots (None: one daemon, whose queue is its own).
    pub claims: Option<Arc<dyn RunClaims>>,
}

/// How often a node of a cluster looks for runs to claim when nothing told
/// it of any: runs coming due after a retry's backoff, or let go by a
/// tenant's limit or an exclusive run ending on another node.
const CLAIM_POLL: Duration = Duration::from_millis(200);

/// How often a wait for a run in a cluster reads its record (another node
/// may run it).
const WAIT_POLL: Duration = Duration::from_millis(100);

/// How long a cancel waits for a running run to stop.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Who hears about runs: the event stream, the metrics, and whoever
/// schedules (each run's end, see [`RunEnded`]).
pub struct Observers {
    /// Run events.
    pub events: Arc<EventBus>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Each run's end, after its outcome (and retry) are durable. Unbounded:
    /// a lost end would leave an `after` job without its next fire.
    pub ended: mpsc::UnboundedSender<RunEnded>,
}

/// Told when a run finishes: the finished run, and the id of the retry
/// queued after it, if any.
type Waiter = oneshot::Sender<(Run, Option<String>)>;

/// Runs queued runs.
pub struct Executor {
    /// What each run may use, and the tenants' quotas.
    granter: Granter,
    events: Arc<EventBus>,
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    sandbox: Arc<Sandbox>,
    plugins: Arc<Plugins>,
    clock: Arc<dyn Clock>,
    slots: Arc<Semaphore>,
    queue: Mutex<RunQueue>,
    /// Woken when a run is queued or a slot frees up.
    wake: Notify,
    stopping: AtomicBool,
    running: AtomicUsize,
    log_cap: u64,
    /// The tape a recorded run keeps, bytes.
    record_cap: u64,
    /// The node its runs run on (see [`Capacity::node`]).
    node: Option<String>,
    /// Runs executing at once, at most.
    capacity: usize,
    /// The cluster's queue (see [`Capacity::claims`]).
    claims: Option<Arc<dyn RunClaims>>,
    /// Wakes the claims (runs were queued, or a slot freed up).
    claim_now: Notify,
    /// When runs waiting in the cluster's queue come due (their notices
    /// said): the claims look then.
    claim_at: Mutex<std::collections::BTreeSet<DateTime<Utc>>>,
    /// The daemon's runtime, for what other nodes ask (heard on the
    /// store's own runtime).
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    /// Writes running marks and outcomes.
    recorder: Recorder,
    /// Who waits for a run to finish, by run id.
    waiters: Mutex<HashMap<String, Vec<Waiter>>>,
    /// The logs of runs executing now, with the secrets to mask in them.
    live_logs: Mutex<HashMap<String, (LogSink, Secrets)>>,
    /// Where each run's end is reported.
    ended: mpsc::UnboundedSender<RunEnded>,
    /// Moves workflow runs on as their steps end (see [`Executor::chain`]).
    steps: std::sync::OnceLock<Arc<dyn StepHook>>,
    /// Replays executing now, by tenant (see `replay.rs`).
    replays: Mutex<HashMap<String, usize>>,
}

/// Counts a run as running for as long as it lives (panics included).
struct RunningGuard<'a>(&'a Executor);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.wake.notify_one();
        self.0.claim_now.notify_one();
    }
}

/// Runs `future`, a panic in it (a bug in a host import) becoming an
/// error that fails this run and nothing else. Caught here rather than by
/// giving the sandbox a task of its own: a second task per run showed in
/// the profile of a burst.
async fn isolated<T>(future: impl std::future::Future<Output = T>) -> Result<T, String> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|message| message.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            format!("it panicked: {message}")
        })
}

impl Executor {
    /// An executor running at most `capacity.runs` at once. Call
    /// [`Executor::start`] to begin dispatching.
    pub fn new(
        store: Arc<dyn Store>,
        sandbox: Arc<Sandbox>,
        plugins: Arc<Plugins>,
        clock: Arc<dyn Clock>,
        capacity: Capacity,
        granter: Granter,
        observers: Observers,
    ) -> Arc<Executor> {
        Arc::new(Executor {
            granter,
            events: observers.events,
            metrics: observers.metrics,
            store,
            sandbox,
            plugins,
            clock,
            slots: Arc::new(Semaphore::new(capacity.runs)),
            queue: Mutex::new(RunQueue::default()),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            log_cap: capacity.log_bytes,
            record_cap: capacity.record_bytes,
            node: capacity.node,
            capacity: capacity.runs,
            claims: capacity.claims,
            claim_now: Notify::new(),
            claim_at: Mutex::new(std::collections::BTreeSet::new()),
            runtime: std::sync::OnceLock::new(),
            recorder: Recorder::new(capacity.mark_running_after),
            waiters: Mutex::new(HashMap::new()),
            replays: Mutex::new(HashMap::new()),
            live_logs: Mutex::new(HashMap::new()),
            ended: observers.ended,
            steps: std::sync::OnceLock::new(),
        })
    }

    /// Places in tenants' queues for runs about to be queued (the
    /// `queued_runs` quota): hold them until the runs are handed over.
    pub fn places(&self) -> QueuePlaces<'_> {
        QueuePlaces::new(self.granter.tenants(), self.claims.as_deref(), &self.queue)
    }

    /// Takes one place in the tenant's queue, or refuses with
    /// [`ExecError::QueueFull`].
    fn place_for(&self, tenant: &str) -> Result<QueuePlaces<'_>, ExecError> {
        let mut places = self.places();
        if places.take(tenant, 1) == 0 {
            return Err(ExecError::QueueFull {
                tenant: tenant.to_string(),
                limit: self.granter.tenants().queued_runs(tenant).unwrap_or(0),
            });
        }
        Ok(places)
    }

    /// Writes a queued run asked for over the API, within its tenant's
    /// `run_bytes` quota, and makes it durable.
    async fn insert_asked(&self, run: &Run) -> Result<(), ExecError> {
        let max_bytes = self.granter.tenants().run_bytes(&run.tenant);
        self.store.insert_run_under_quota(run, max_bytes)?;
        self.store.flush_async().await?;
        Ok(())
    }

    /// Writes a durable queued run of `job` now and hands it to the queue,
    /// within the tenant's `queued_runs` and `run_bytes` quotas.
    pub async fn queue(
        &self,
        job: &Job,
        trigger: Trigger,
        input: Option<&serde_json::Value>,
    ) -> Result<Run, ExecError> {
        // Fail with a clear error when the plugin is gone.
        let version = self.plugins.resolve(&job.tenant, &job.plugin)?;
        let _place = self.place_for(&job.tenant)?;
        let now = self.clock.now();
        let new = NewRun {
            job,
            trigger,
            scheduled_at: now,
            jitter_ms: 0,
            id: crate::model::new_id(),
            input,
        };
        let run = Run::queued(new, Some(version), now, self.log_cap);
        self.insert_asked(&run).await?;
        tracing::debug!(run_id = %run.id, job_id = %run.job_id, "run queued");
        self.queued(vec![run.clone()]);
        Ok(run)
    }

    /// Looks at the queue again (a tenant's concurrency share changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Hands new durable queued runs to the queue and tells subscribers.
    pub fn queued(&self, runs: Vec<Run>) {
        for run in &runs {
            self.events.run("run.queued", run);
        }
        self.submit(runs);
    }

    /// Hands durable queued runs to the queue (new ones: [`Executor::queued`]).
    /// In a cluster they wait in its queue for a node to claim them, but
    /// for workflow steps, which stay with this node (it drives their
    /// workflow runs).
    pub fn submit(&self, mut runs: Vec<Run>) {
        if self.claims.is_some() {
            let before = runs.len();
            runs.retain(|run| run.workflow.is_some());
            if runs.len() < before {
                self.claim_now();
            }
        }
        self.push(runs);
    }

    /// Puts runs in this node's queue.
    fn push(&self, runs: Vec<Run>) {
        if runs.is_empty() {
            return;
        }
        let now = self.clock.now();
        let mut queue = lock(&self.queue);
        for run in runs {
            queue.push(run, now);
        }
        drop(queue);
        self.wake.notify_one();
    }

    /// Looks for runs to claim from the cluster's queue now (runs were
    /// queued there).
    pub fn claim_now(&self) {
        self.claim_now.notify_one();
    }

    /// Takes the runs of fires recorded ahead of their instant and not due
    /// yet out of the queue, of one job (tenant, id) or of all (a change to
    /// the job, or pausing the scheduler, withdraws them).
    pub fn withdraw_ahead(&self, job: Option<(&str, &str)>) -> Vec<Run> {
        if let Some(ahead) = self.ahead_in_cluster(job.map(|job| job.0), job.map(|job| job.1), false) {
            return ahead;
        }
        let now = self.clock.now();
        lock(&self.queue).withdraw_ahead(job, Some(now))
    }

    /// At start-up, before the dispatcher runs: takes out every run of a
    /// fire recorded ahead by the last life of the daemon, due or not, so
    /// the scheduler plans those fires again (a fire whose instant passed
    /// while the daemon was down then follows its job's misfire policy).
    pub fn withdraw_recorded_ahead(&self) -> Vec<Run> {
        if let Some(ahead) = self.ahead_in_cluster(None, None, true) {
            return ahead;
        }
        lock(&self.queue).withdraw_ahead(None, None)
    }

    /// The earliest fire recorded ahead of its instant of each of a
    /// tenant's jobs (a job's own `next_fire_at` has moved past it).
    pub fn fires_ahead(&self, tenant: &str) -> HashMap<String, DateTime<Utc>> {
        if let Some(ahead) = self.ahead_in_cluster(Some(tenant), None, false) {
            return queue::earliest_by_job(&ahead);
        }
        let now = self.clock.now();
        lock(&self.queue).fires_ahead(tenant, now)
    }

    /// Waiting and running runs of each of `jobs` (in a cluster, on every
    /// node); a job missing from the answer has none.
    pub fn activities(&self, jobs: &[JobKey]) -> HashMap<JobKey, Activity> {
        if let Some(claims) = &self.claims {
            match claims.job_activities(jobs) {
                Ok(activities) => return activities,
                Err(error) => {
                    tracing::warn!(%error, "cannot count the jobs' runs across the cluster; counting this node's")
                }
            }
        }
        let queue = lock(&self.queue);
        jobs.iter()
            .map(|job| (job.clone(), queue.activity(&job.0, &job.1)))
            .filter(|(_, activity)| *activity != Activity::default())
            .collect()
    }

    /// Runs of a tenant waiting in the queue (what its `queued_runs` quota
    /// counts; in a cluster, on every node).
    pub fn waiting_of(&self, tenant: &str) -> usize {
        if let Some(claims) = &self.claims
            && let Ok(waiting) = claims.waiting_runs(tenant)
        {
            return waiting;
        }
        lock(&self.queue).admission.waiting(tenant)
    }

    /// Runs waiting, in all and by priority.
    pub fn queue_depth(&self, tenant: Option<&str>) -> (usize, BTreeMap<Priority, usize>) {
        let by_priority = lock(&self.queue).depth_by_priority(tenant);
        (by_priority.values().sum(), by_priority)
    }

    /// Nothing is queued or running.
    pub fn is_idle(&self) -> bool {
        lock(&self.queue).is_idle() && self.running() == 0
    }

    /// Whether the run executes now in this daemon.
    pub fn is_running(&self, run_id: &str) -> bool {
        lock(&self.queue).running_flag(run_id).is_some()
    }

    /// Runs executing now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Runs of one tenant (or, None, of all) executing now.
    pub fn running_of(&self, tenant: Option<&str>) -> usize {
        match tenant {
            Some(tenant) => lock(&self.queue).running_of(tenant),
            None => self.running(),
        }
    }

    /// Starts the thread that writes runs' marks and outcomes: before
    /// [`Executor::recover`], which records outcomes through it.
    pub fn start_recording(&self) -> std::io::Result<()> {
        self.recorder.start(self.store.clone(), self.steps.get().cloned())
    }

    /// Has workflow step runs' ends move their workflow runs on (before
    /// [`Executor::start_recording`]; once).
    pub fn chain(&self, steps: Arc<dyn StepHook>) {
        if self.steps.set(steps).is_err() {
            tracing::warn!("the executor's step hook was set twice; the first stays");
        }
    }

    /// Writes a workflow run's latest record with the step runs it queues
    /// (in the order of every other write of it) and makes them durable;
    /// hand the runs to the queue then ([`Executor::queued`]).
    pub async fn write_workflow(&self, id: String, runs: Vec<Run>) -> Result<(), StoreError> {
        self.recorder.workflow(id, runs).await?;
        self.store.flush_async().await
    }

    /// Starts the dispatcher (after [`Executor::start_recording`]), and in
    /// a cluster the claims.
    pub fn start(self: &Arc<Self>) {
        let _ = self.runtime.set(tokio::runtime::Handle::current());
        let executor = self.clone();
        tokio::spawn(async move { executor.dispatch_loop().await });
        if let Some(claims) = self.claims.clone() {
            let executor = self.clone();
            tokio::spawn(async move { executor.claim_loop(claims).await });
        }
    }

    async fn dispatch_loop(self: Arc<Self>) {
        loop {
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                return;
            };
            let (run, cancel) = loop {
                if self.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let tenants = &self.granter.tenants();
                let next = lock(&self.queue).pop(self.clock.now(), &|tenant| tenants.concurrency(tenant));
                match next {
                    Ok(ready) => break ready,
                    Err(next_due) => {
                        let sleep = match next_due {
                            Some(due) => self.clock.sleep_until(due),
                            None => Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
                        };
                        tokio::select! {
                            () = self.wake.notified() => {}
                            () = sleep => {}
                        }
                    }
                }
            };
            self.running.fetch_add(1, Ordering::SeqCst);
            let executor = self.clone();
            tokio::spawn(async move { executor.execute(run, cancel, slot).await });
        }
    }

    async fn execute(self: Arc<Self>, mut run: Run, cancel: Arc<AtomicBool>, slot: OwnedSemaphorePermit) {
        let _running = RunningGuard(&self);
        let started_at = self.clock.now();
        // A built-in runs as this daemon has it: a run queued by another
        // build (before an upgrade) may name other bytes of the same version.
        if let Some(current) = crate::plugin::builtin::current_digest(&run.plugin)
            && current != run.plugin_digest
        {
            run.plugin_digest = current.to_string();
        }
        run.status = RunStatus::Running;
        run.started_at = Some(started_at);
        run.node.clone_from(&self.node);
        run.lateness_ms = Some((started_at - run.due_at()).num_milliseconds());
        let mark = self.recorder.started(&run);
        self.events.run("run.started", &run);
        self.metrics.run_started(&run);
        let (output, log, tape) = match self.prepared(&run, &cancel).await {
            Ok(prepared) => {
                let request = self.request(&run, cancel.clone());
                let secrets = Secrets::new(&request.capabilities.secrets);
                lock(&self.live_logs).insert(run.id.clone(), (request.log.clone(), secrets));
                let outcome = isolated(self.sandbox.run(&prepared, request)).await;
                let finished_at = self.clock.now();
                match outcome {
                    Ok(outcome) => {
                        self.metrics.instance(outcome.allocator, outcome.spill);
                        run.fuel_consumed = outcome.fuel_consumed;
                        run.peak_memory = Some(outcome.peak_memory);
                        let tape = match outcome.tape {
                            Some(TapeResult::Recorded(recorded)) => recorded.kept(&mut run),
                            _ => Vec::new(),
                        };
                        match outcome.result {
                            Ok(output) => {
                                run.finish(RunStatus::Succeeded, None, finished_at);
                                (output, outcome.log, tape)
                            }
                            Err(_) if cancel.load(Ordering::SeqCst) => {
                                run.finish(RunStatus::Cancelled, None, finished_at);
                                (Vec::new(), outcome.log, tape)
                            }
                            Err(error) => {
                                run.finish(RunStatus::Failed, Some(error), finished_at);
                                (Vec::new(), outcome.log, tape)
                            }
                        }
                    }
                    Err(panic) => {
                        let error = RunError {
                            kind: ErrorKind::Trap,
                            message: format!("the host failed while running the plugin: {panic}"),
                        };
                        run.finish(RunStatus::Failed, Some(error), finished_at);
                        (Vec::new(), Vec::new(), Vec::new())
                    }
                }
            }
            Err(error) => {
                let error = RunError {
                    kind: ErrorKind::PluginUnavailable,
                    message: error.to_string(),
                };
                run.finish(RunStatus::Failed, Some(error), self.clock.now());
                (Vec::new(), Vec::new(), Vec::new())
            }
        };
        // A run that was to record but never ran its plugin kept no record.
        if run.record {
            run.tape.get_or_insert(RunTape::NONE);
        }
        // The slot bounds executing instances; recording the outcome does
        // not need one.
        drop(slot);
        run.output_size = output.len() as u64;
        run.log_size = log.len() as u64;
        lock(&self.queue).finished(&run);
        // The next run of this job (if it waits its turn) may start now.
        self.wake.notify_one();
        mark.settle();
        let run_id = run.id.clone();
        self.finish(run, output, log, tape).await;
        lock(&self.live_logs).remove(&run_id);
    }

    /// The run's plugin, ready to instantiate. While its bytes cannot be
    /// read because the storage is away (a cluster's database restarting),
    /// the run waits for them with backoff, for up to [`OUTAGE_PATIENCE`]
    /// or until cancelled, rather than failing `plugin_unavailable`.
    async fn prepared(&self, run: &Run, cancel: &AtomicBool) -> Result<Arc<PreparedJob>, PluginError> {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            match self
                .plugins
                .prepared(
                    &run.plugin_digest,
                    EngineKind::of(Metering::of(run.limits.fuel), run.record),
                )
                .await
            {
                Err(PluginError::Store(error))
                    if error.is_outage() && started.elapsed() < OUTAGE_PATIENCE && !cancel.load(Ordering::SeqCst) =>
                {
                    if backoff == Duration::from_millis(50) {
                        tracing::warn!(run_id = %run.id, %error, "the run's plugin cannot be read; waiting for the storage");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                prepared => return prepared,
            }
        }
    }

    fn request(&self, run: &Run, cancel: Arc<AtomicBool>) -> RunRequest {
        RunRequest {
            context: RunContext {
                tenant: run.tenant.clone(),
                job_id: run.job_id.clone(),
                job_name: run.job_name.clone(),
                run_id: run.id.clone(),
                attempt: run.attempt,
                trigger: run.trigger,
                scheduled_at_ms: run.scheduled_at.timestamp_millis(),
            },
            input: run.input.clone(),
            limits: run.limits,
            capabilities: self.granter.capabilities(run),
            cancel,
            log: LogSink::new(run.limits.logs),
            tape: match run.record {
                true => TapeMode::Record { cap: self.record_cap },
                false => TapeMode::Off,
            },
        }
    }

    /// The log so far of a run executing now, masked on a blocking thread.
    pub async fn live_log(&self, run_id: &str) -> Option<Vec<u8>> {
        let (sink, secrets) = lock(&self.live_logs).get(run_id).cloned()?;
        tokio::task::spawn_blocking(move || sink.live_contents(&secrets))
            .await
            .ok()
    }

    /// Records a finished run durably, queues its retry if it has attempts
    /// left, reports its end, and wakes waiters.
    async fn finish(&self, run: Run, output: Vec<u8>, log: Vec<u8>, tape: Vec<u8>) {
        let retry = self.retry_of_failed(&run);
        let write = match self
            .recorder
            .finished(run.clone(), output, log, tape, retry.clone())
            .await
        {
            Ok(started) => self.store.flush_async().await.map(|()| started),
            Err(error) => Err(error),
        };
        let started = write.unwrap_or_else(|error| {
            tracing::error!(run_id = %run.id, %error, "cannot record the finished run");
            Vec::new()
        });
        self.events.run("run.finished", &run);
        self.metrics.run_finished(&run);
        match &run.error {
            None => {
                tracing::info!(run_id = %run.id, job_id = %run.job_id, status = run.status.as_str(), duration_ms = run.duration_ms, "run finished")
            }
            Some(error) => {
                tracing::info!(run_id = %run.id, job_id = %run.job_id, status = run.status.as_str(), kind = error.kind.as_str(), "run finished")
            }
        }
        let retry_id = retry.as_ref().map(|retry| retry.id.clone());
        if let Some(retry) = retry {
            tracing::info!(run_id = %retry.id, attempt = retry.attempt, at = %retry.scheduled_at, "retry queued");
            self.queued(vec![retry]);
        }
        if !started.is_empty() {
            self.queued(started);
        }
        if run.workflow.is_some()
            && let Some(steps) = self.steps.get()
        {
            steps.told(&run);
        }
        // After the retry is queued, so whoever schedules sees it among the
        // job's activity. The receiver lives as long as the daemon.
        let _ = self.ended.send(RunEnded {
            tenant: run.tenant.clone(),
            job_id: run.job_id.clone(),
            run_id: run.id.clone(),
            status: run.status,
            finished_at: run.finished_at,
            retried: retry_id.is_some(),
        });
        let waiters = lock(&self.waiters).remove(&run.id).unwrap_or_default();
        for waiter in waiters {
            let _ = waiter.send((run.clone(), retry_id.clone()));
        }
    }

    /// The next attempt of a failed run, if its retry policy has one left.
    fn retry_of_failed(&self, run: &Run) -> Option<Run> {
        if !run.has_attempts_left() {
            return None;
        }
        let delay = run.retry.delay(run.attempt, rand::random::<f64>());
        let now = self.clock.now();
        Some(run.next_attempt(crate::units::add_saturating(now, delay), now))
    }

    /// Queues a new attempt of a finished run now, trigger `retry`, within
    /// the tenant's `queued_runs` and `run_bytes` quotas.
    pub async fn retry(&self, tenant: &str, run_id: &str) -> Result<Option<Run>, ExecError> {
        let Some(run) = self.store.run(tenant, run_id)? else {
            return Ok(None);
        };
        if !run.status.is_finished() {
            return Err(ExecError::NotFinished(run.id));
        }
        let _place = self.place_for(tenant)?;
        let now = self.clock.now();
        let retry = run.next_attempt(now, now);
        self.insert_asked(&retry).await?;
        self.queued(vec![retry.clone()]);
        Ok(Some(retry))
    }

    /// Stops starting runs and waits up to `grace` for the running ones to
    /// finish. Queued runs stay queued (durably) for the next start; runs
    /// still going after the grace period fail with `host_restart`, and their
    /// retries (if attempts remain) are queued for the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.slots.close();
        self.wake.notify_one();
        self.claim_now.notify_one();
        self.release_claimed();
        let in_flight = self.running();
        if in_flight > 0 {
            tracing::info!(
                running = in_flight,
                grace_ms = grace.as_millis() as u64,
                "waiting for running runs"
            );
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // What is still running fails now with `host_restart` (and its retry
        // is queued durably), so the next start retries it.
        let still_running = lock(&self.queue).running_ids();
        if !still_running.is_empty() {
            tracing::warn!(
                running = still_running.len(),
                "stopping with runs still running; they fail with host_restart"
            );
        }
        for (tenant, run_id) in still_running {
            let Ok(Some(mut run)) = self.store.run(&tenant, &run_id) else {
                continue;
            };
            if run.status.is_finished() {
                continue;
            }
            let error = RunError {
                kind: ErrorKind::HostRestart,
                message: format!(
                    "the daemon stopped and its {} ms grace period ran out",
                    grace.as_millis()
                ),
            };
            run.finish(RunStatus::Failed, Some(error), self.clock.now());
            self.finish(run, Vec::new(), Vec::new(), Vec::new()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_run_becomes_its_error_and_the_task_goes_on() {
        assert_eq!(isolated(async { 7 }).await, Ok(7));
        let static_message = isolated(async { panic!("a host import broke") }).await;
        assert_eq!(
            static_message,
            Err::<(), _>("it panicked: a host import broke".to_string())
        );
        let formatted = isolated(async {
            tokio::task::yield_now().await;
            panic!("run {} broke", 42)
        })
        .await;
        assert_eq!(formatted, Err::<(), _>("it panicked: run 42 broke".to_string()));
    }
}
