//! What the executor asks of whoever chains runs (workflows, and jobs that
//! wait for other jobs): when a run others follow ends, the recorder asks
//! what that starts, and writes those runs, the joins and the workflow
//! run's record in the same batch as the outcome, so a crash never keeps
//! one without the other. The hook answers from memory and the store's
//! reads (no await, no lock held across a write).

use crate::model::Run;
use crate::model::dependency::Join;
use crate::model::workflow_run::WorkflowRun;

/// What a run's end starts, to write in its outcome's batch.
#[derive(Debug, Default)]
pub struct Followers {
    /// Runs queued now (workflow steps, jobs waiting for this one).
    pub runs: Vec<Run>,
    /// Joins of jobs waiting for this one's job, as they are now.
    pub joins: Vec<Join>,
    /// Runs queued now and already written (by a store that moves joins
    /// on in transactions of their own): told, not written again.
    pub recorded: Vec<Run>,
}

/// Moves workflow runs on as their steps' runs end, and fires the jobs
/// that wait for other jobs.
pub trait StepHook: Send + Sync {
    /// Whether others may follow this run's end (a workflow step, or the
    /// last attempt of a job others wait for); asked of every outcome, so
    /// cheap.
    fn followed(&self, run: &Run, next: Option<&Run>) -> bool;
    /// A followed run ended (`next`: its next attempt, when it is retried):
    /// moves its workflow run on in memory, fires the jobs waiting for it,
    /// and returns what to write with the outcome.
    fn ended(&self, run: &Run, output: &[u8], next: Option<&Run>) -> Followers;
    /// The latest record of a workflow run, to write (None: not running in
    /// this daemon, nothing to write).
    fn snapshot(&self, workflow_run: &str) -> Option<WorkflowRun>;
    /// Those records (from [`StepHook::snapshot`]) were written (durable
    /// with the next flush), or the write failed (`ok` false).
    fn written(&self, records: &[WorkflowRun], ok: bool);
    /// A step's run end is durable and told (its events sent, the runs it
    /// started queued): what follows from it can be told now.
    fn told(&self, run: &Run);
}
