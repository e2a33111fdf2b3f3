//! The run recorder: one thread writes runs' `running` marks and outcomes,
//! as many as have queued up in one sled batch. A write per run on the
//! blocking pool, each waiting its turn for sled's batch lock, cost more
//! than the sandboxed runs themselves during a burst of 10,000.
//!
//! Batches are spaced: while runs keep finishing, the thread starts a
//! batch no sooner than a quarter of the flush window after the last one
//! (0.5 ms by default), gathering what arrives meanwhile. sled 0.34 writes
//! out its log buffer twice for every batch (before and after the batch's
//! manifest), each write handed to its IO threads with a wake-up of all
//! seven; around a burst of 10,000 runs this halved the batches (862 to
//! 435), and durable throughput with 20,000 jobs rose by about a tenth.
//! After a quiet spell the first outcome is written at once; with a flush
//! window of 0 (flush each write) nothing waits.
//!
//! A run's mark is due once the run has gone on for `mark_after` (the flush
//! window). The delay is the same for every run, so the thread keeps the
//! pending marks in start order, which is deadline order, and writes a mark
//! only if its run is still going (see [`Mark`]). A mark is claimed before
//! the batch that writes it is built and the run's outcome is sent only
//! after its mark was claimed or skipped, so a mark never lands after the
//! outcome of the same run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::steps::StepHook;
use crate::model::Run;
use crate::store::{RunWrite, Store, StoreError};

/// How long a run waits for its plugin, and the recorder tries its
/// outcome again, while the storage is away.
pub(crate) const OUTAGE_PATIENCE: Duration = Duration::from_secs(300);

/// The most entries one batch writes: sled holds its batch lock for the
/// whole batch, and fire recording waits meanwhile.
const MAX_BATCH: usize = 128;

/// A run's pending `running` mark, from its start until it is settled.
pub(super) struct Mark(Arc<AtomicU8>);

const PENDING: u8 = 0;
const CLAIMED: u8 = 1;
const NOT_NEEDED: u8 = 2;

impl Mark {
    /// The run is over: its mark is not written if the recorder has not
    /// claimed it yet. Either way the outcome can be sent now.
    pub(super) fn settle(self) {
        self.skip();
    }

    fn skip(&self) {
        let _ = self
            .0
            .compare_exchange(PENDING, NOT_NEEDED, Ordering::AcqRel, Ordering::Acquire);
    }

    fn claim(&self) -> bool {
        self.0
            .compare_exchange(PENDING, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// What the thread is asked to write.
enum Entry {
    /// A run started: write its mark once it is due.
    Started { due: Instant, mark: Mark, run: Box<Run> },
    /// A run finished: write its outcome (and its next attempt), then say so.
    Finished(Box<Outcome>),
    /// A workflow run changed outside its steps' ends (started, cancelled,
    /// retried): write its latest record and the runs it queues.
    Workflow(Box<WorkflowWrite>),
}

/// A workflow run's record to write, with the step runs it queues.
struct WorkflowWrite {
    id: String,
    runs: Vec<Run>,
    written: oneshot::Sender<Result<(), StoreError>>,
}

/// A finished run to write, and whom to tell.
struct Outcome {
    run: Run,
    output: Vec<u8>,
    log: Vec<u8>,
    /// A recorded run's tape (empty when none was kept).
    tape: Vec<u8>,
    next: Option<Run>,
    /// Step runs its end started (a workflow step's), written with it.
    started: Vec<Run>,
    /// Runs its end started that are written already (see
    /// [`super::steps::Followers::recorded`]).
    recorded: Vec<Run>,
    written: oneshot::Sender<Result<Vec<Run>, StoreError>>,
}

/// Hands marks and outcomes to the writing thread.
pub(super) struct Recorder {
    sender: mpsc::Sender<Entry>,
    /// Taken by [`Recorder::start`].
    receiver: Mutex<Option<mpsc::Receiver<Entry>>>,
    mark_after: Duration,
    /// Batches written so far.
    batches: Arc<AtomicU64>,
}

impl Recorder {
    /// A recorder writing to `store` once started; marks are due
    /// `mark_after` after their run starts.
    pub(super) fn new(mark_after: Duration) -> Recorder {
        let (sender, receiver) = mpsc::channel();
        Recorder {
            sender,
            receiver: Mutex::new(Some(receiver)),
            mark_after,
            batches: Arc::default(),
        }
    }

    /// Starts the writing thread (once; it ends when the recorder is
    /// dropped). Must be called within the runtime: a mark's flush is
    /// started on it.
    pub(super) fn start(&self, store: Arc<dyn Store>, steps: Option<Arc<dyn StepHook>>) -> std::io::Result<()> {
        let Some(receiver) = crate::sync::lock(&self.receiver).take() else {
            return Ok(());
        };
        let runtime = tokio::runtime::Handle::current();
        let (spacing, batches) = (self.spacing(), self.batches.clone());
        std::thread::Builder::new()
            .name("sandcron-recorder".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                Writer {
                    store,
                    steps,
                    marks: VecDeque::new(),
                    spacing,
                    last_batch: None,
                    batches,
                }
                .serve(&receiver);
            })?;
        Ok(())
    }

    /// Batches written so far.
    #[cfg(test)]
    fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// The shortest time between the starts of two batches (see the
    /// module's doc).
    fn spacing(&self) -> Duration {
        self.mark_after / 4
    }

    /// The run started: its mark is written once it is due, unless the
    /// returned [`Mark`] is settled first.
    pub(super) fn started(&self, run: &Run) -> Mark {
        let state = Arc::new(AtomicU8::new(PENDING));
        let entry = Entry::Started {
            due: Instant::now() + self.mark_after,
            mark: Mark(state.clone()),
            run: Box::new(run.clone()),
        };
        // A send fails only once the thread is gone; the outcome's send
        // reports it.
        let _ = self.sender.send(entry);
        Mark(state)
    }

    /// Writes a finished run (and the queued record of its next attempt):
    /// returns once written, not yet flushed, with the workflow step runs
    /// its end started (written with it).
    pub(super) async fn finished(
        &self,
        run: Run,
        output: Vec<u8>,
        log: Vec<u8>,
        tape: Vec<u8>,
        next: Option<Run>,
    ) -> Result<Vec<Run>, StoreError> {
        let (written, done) = oneshot::channel();
        let entry = Entry::Finished(Box::new(Outcome {
            run,
            output,
            log,
            tape,
            next,
            started: Vec::new(),
            recorded: Vec::new(),
            written,
        }));
        self.sender.send(entry).map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }

    /// Writes a workflow run's latest record and the queued step runs
    /// `runs`: returns once written, not yet flushed.
    pub(super) async fn workflow(&self, id: String, runs: Vec<Run>) -> Result<(), StoreError> {
        let (written, done) = oneshot::channel();
        let entry = Entry::Workflow(Box::new(WorkflowWrite { id, runs, written }));
        self.sender.send(entry).map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }
}

fn gone() -> StoreError {
    StoreError::Backend("the run recorder has stopped".into())
}

/// What one batch writes besides the due marks.
#[derive(Default)]
struct Batch {
    finished: Vec<Outcome>,
    workflows: Vec<WorkflowWrite>,
}

impl Batch {
    fn len(&self) -> usize {
        self.finished.len() + self.workflows.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The thread's state: the store, the workflows' hook, the marks not yet
/// due, and when the last batch started.
struct Writer {
    store: Arc<dyn Store>,
    steps: Option<Arc<dyn StepHook>>,
    marks: VecDeque<(Instant, Mark, Box<Run>)>,
    spacing: Duration,
    last_batch: Option<Instant>,
    batches: Arc<AtomicU64>,
}

impl Writer {
    /// Writes until every sender is gone.
    fn serve(mut self, receiver: &mpsc::Receiver<Entry>) {
        loop {
            let first = match self.marks.front() {
                Some((due, ..)) => match receiver.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Ok(entry) => Some(entry),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
                None => match receiver.recv() {
                    Ok(entry) => Some(entry),
                    Err(mpsc::RecvError) => return,
                },
            };
            let mut finished = Batch::default();
            for entry in first.into_iter().chain(std::iter::from_fn(|| receiver.try_recv().ok())) {
                self.take(entry, &mut finished);
                if finished.len() >= MAX_BATCH {
                    break;
                }
            }
            // Runs keep finishing: gather until the spacing is over.
            if let Some(last) = self.last_batch
                && !finished.is_empty()
            {
                let until = last + self.spacing;
                while finished.len() < MAX_BATCH {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match receiver.recv_timeout(left) {
                        Ok(entry) => self.take(entry, &mut finished),
                        Err(_) => break,
                    }
                }
            }
            self.write(finished);
        }
    }

    /// Keeps a started run's mark, or adds an outcome to the batch.
    fn take(&mut self, entry: Entry, batch: &mut Batch) {
        match entry {
            Entry::Workflow(write) => batch.workflows.push(*write),
            Entry::Started { due, mark, run } => self.marks.push_back((due, mark, run)),
            Entry::Finished(outcome) => {
                // An outcome written another way than by its run's end (a
                // shutdown's `host_restart`) supersedes the run's pending
                // mark too.
                for (_, mark, pending) in &self.marks {
                    if pending.id == outcome.run.id && pending.tenant == outcome.run.tenant {
                        mark.skip();
                    }
                }
                batch.finished.push(*outcome);
            }
        }
    }

    /// Writes `writes`; while the database cannot be reached (a cluster's,
    /// restarting or cut off), tries again with backoff for up to
    /// [`OUTAGE_PATIENCE`], so the runs' outcomes are kept, not dropped (past
    /// it they are given up, logged, and the runs end `host_restart` at the
    /// node's next start or take-over); every other write waits behind them
    /// meanwhile, as it would fail.
    fn write_through(&self, writes: &[RunWrite<'_>]) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut warned = false;
        loop {
            match self.store.write_runs(writes) {
                Err(StoreError::Disconnected(message)) if started.elapsed() < OUTAGE_PATIENCE => {
                    if !std::mem::replace(&mut warned, true) {
                        tracing::warn!(%message, writes = writes.len(), "cannot record runs; trying again until the database is back");
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                result => {
                    if warned && result.is_ok() {
                        tracing::info!("runs recorded again");
                    }
                    return result;
                }
            }
        }
    }

    /// Writes the marks now due (claimed first), the outcomes, the step
    /// runs they start and the records of the workflow runs they move on,
    /// in one batch, and tells each sender.
    fn write(&mut self, batch: Batch) {
        let now = Instant::now();
        let mut marked = Vec::new();
        while let Some((due, ..)) = self.marks.front()
            && *due <= now
        {
            if let Some((_, mark, run)) = self.marks.pop_front()
                && mark.claim()
            {
                marked.push(run);
            }
        }
        if marked.is_empty() && batch.is_empty() {
            return;
        }
        self.last_batch = Some(now);
        self.batches.fetch_add(1, Ordering::Relaxed);
        let Batch {
            mut finished,
            workflows,
        } = batch;
        // Workflow runs this batch writes, each once, with its state after
        // every outcome of the batch.
        let mut touched: Vec<String> = Vec::new();
        let mut touch = |id: &str| {
            if !touched.iter().any(|seen| seen == id) {
                touched.push(id.to_string());
            }
        };
        let mut joins = Vec::new();
        if let Some(steps) = &self.steps {
            for outcome in &mut finished {
                if !steps.followed(&outcome.run, outcome.next.as_ref()) {
                    continue;
                }
                let followers = steps.ended(&outcome.run, &outcome.output, outcome.next.as_ref());
                outcome.started = followers.runs;
                outcome.recorded = followers.recorded;
                joins.extend(followers.joins);
                if let Some(of) = &outcome.run.workflow {
                    touch(&of.workflow_run);
                }
            }
        }
        for write in &workflows {
            touch(&write.id);
        }
        let records: Vec<_> = match &self.steps {
            Some(steps) => touched.iter().filter_map(|id| steps.snapshot(id)).collect(),
            None => Vec::new(),
        };
        let writes: Vec<RunWrite<'_>> = marked
            .iter()
            .map(|run| RunWrite::Updated(run))
            .chain(finished.iter().flat_map(|outcome| {
                std::iter::once(RunWrite::Finished {
                    run: &outcome.run,
                    output: &outcome.output,
                    log: &outcome.log,
                    tape: &outcome.tape,
                    next: outcome.next.as_ref(),
                })
                .chain(outcome.started.iter().map(RunWrite::Queued))
            }))
            .chain(
                workflows
                    .iter()
                    .flat_map(|write| write.runs.iter().map(RunWrite::Queued)),
            )
            .chain(records.iter().map(RunWrite::Workflow))
            .chain(joins.iter().map(RunWrite::Join))
            .collect();
        let result = self.write_through(&writes);
        drop(writes);
        if let Err(error) = &result
            && !marked.is_empty()
        {
            tracing::error!(%error, runs = marked.len(), "cannot mark runs running");
        }
        if !marked.is_empty() && result.is_ok() {
            self.store.flush_soon();
        }
        if let Some(steps) = &self.steps
            && !records.is_empty()
        {
            steps.written(&records, result.is_ok());
        }
        for mut outcome in finished {
            outcome.started.append(&mut outcome.recorded);
            let _ = outcome.written.send(result.clone().map(|()| outcome.started));
        }
        for write in workflows {
            let _ = write.written.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunStatus;
    use crate::store::SledStore;

    fn recorder(mark_after: Duration) -> (Recorder, Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SledStore::open_with(&dir.path().join("db"), Duration::from_millis(2), 8 << 20).unwrap());
        let recorder = Recorder::new(mark_after);
        recorder.start(store.clone(), None).unwrap();
        (recorder, store, dir)
    }

    /// A queued run in the store, and the same run as it starts.
    fn queued_and_started(store: &Arc<dyn Store>, index: usize) -> Run {
        let mut run = Run::sample(&format!("run-{index:05}"), "job", chrono::Utc::now());
        store.insert_run(&run).unwrap();
        run.status = RunStatus::Running;
        run.started_at = Some(chrono::Utc::now());
        run
    }

    async fn status_becomes(store: &Arc<dyn Store>, run: &Run, wanted: RunStatus) {
        let began = Instant::now();
        while store.run(&run.tenant, &run.id).unwrap().unwrap().status != wanted {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "{} never became {wanted:?}",
                run.id
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_going_on_past_the_window_is_marked_and_a_shorter_one_is_not() {
        let (recorder, store, _dir) = recorder(Duration::from_millis(30));
        let long = queued_and_started(&store, 1);
        let _mark = recorder.started(&long);
        let short = queued_and_started(&store, 2);
        recorder.started(&short).settle();
        status_becomes(&store, &long, RunStatus::Running).await;
        // The short run's mark was due as soon as the long one's.
        assert_eq!(store.run("t", &short.id).unwrap().unwrap().status, RunStatus::Queued);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outcomes_are_never_overwritten_by_marks() {
        // Marks due at once race every outcome.
        let (recorder, store, _dir) = recorder(Duration::ZERO);
        let recorder = Arc::new(recorder);
        let tasks: Vec<_> = (0..400)
            .map(|index| {
                let (recorder, store) = (recorder.clone(), store.clone());
                tokio::spawn(async move {
                    let mut run = queued_and_started(&store, index);
                    let mark = recorder.started(&run);
                    tokio::task::yield_now().await;
                    mark.settle();
                    run.finish(RunStatus::Succeeded, None, chrono::Utc::now());
                    recorder
                        .finished(run.clone(), b"out".to_vec(), Vec::new(), Vec::new(), None)
                        .await
                        .unwrap();
                    run
                })
            })
            .collect();
        let mut runs = Vec::new();
        for task in tasks {
            runs.push(task.await.unwrap());
        }
        // Marks still on their way would land after this.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for run in &runs {
            let stored = store.run("t", &run.id).unwrap().unwrap();
            assert_eq!(stored.status, RunStatus::Succeeded, "{}", run.id);
            assert_eq!(store.run_output("t", &run.id).unwrap().as_deref(), Some(&b"out"[..]));
        }
        assert!(store.unfinished_runs().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outcome_not_from_the_run_itself_cancels_its_pending_mark() {
        let (recorder, store, _dir) = recorder(Duration::from_millis(30));
        let mut run = queued_and_started(&store, 1);
        // Never settled: a shutdown fails the run while it still executes.
        let _mark = recorder.started(&run);
        run.finish(RunStatus::Failed, None, chrono::Utc::now());
        recorder
            .finished(run.clone(), Vec::new(), Vec::new(), Vec::new(), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(store.run("t", &run.id).unwrap().unwrap().status, RunStatus::Failed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outcomes_arriving_one_by_one_share_a_batch_and_one_after_a_quiet_spell_waits_for_nothing() {
        // A 100 ms spacing.
        let (recorder, store, _dir) = recorder(Duration::from_millis(400));
        let recorder = Arc::new(recorder);
        let finish = |index: usize, after: Duration| {
            let (recorder, store) = (recorder.clone(), store.clone());
            tokio::spawn(async move {
                let mut run = queued_and_started(&store, index);
                tokio::time::sleep(after).await;
                run.finish(RunStatus::Succeeded, None, chrono::Utc::now());
                let began = Instant::now();
                recorder
                    .finished(run.clone(), Vec::new(), Vec::new(), Vec::new(), None)
                    .await
                    .unwrap();
                (run, began.elapsed())
            })
        };
        let (_, first_took) = finish(0, Duration::ZERO).await.unwrap();
        assert!(first_took < Duration::from_millis(100), "{first_took:?}");
        assert_eq!(recorder.batches(), 1);
        // Ten more, 2 ms apart, within the spacing after the first batch.
        let tasks: Vec<_> = (1..=10)
            .map(|index| finish(index, Duration::from_millis(2 * index as u64)))
            .collect();
        for task in tasks {
            let (run, _) = task.await.unwrap();
            assert_eq!(store.run("t", &run.id).unwrap().unwrap().status, RunStatus::Succeeded);
        }
        assert_eq!(recorder.batches(), 2, "the ten outcomes were written together");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (_, quiet_took) = finish(11, Duration::ZERO).await.unwrap();
        assert!(quiet_took < Duration::from_millis(100), "{quiet_took:?}");
        assert_eq!(recorder.batches(), 3);
    }
}
