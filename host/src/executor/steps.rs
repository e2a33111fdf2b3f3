//! What the executor asks of whoever chains runs into workflows: when a
//! step's run ends, the recorder asks it to move the step's workflow run
//! on, and writes the runs that starts and the workflow run's record in the
//! same batch as the outcome, so a crash never keeps one without the other.
//! The hook answers from memory (no await, no lock held across a write).

use crate::model::Run;
use crate::model::workflow_run::WorkflowRun;

/// Moves workflow runs on as their steps' runs end.
pub trait StepHook: Send + Sync {
    /// A workflow step's run ended (`next`: its next attempt, when it is
    /// retried): moves its workflow run on in memory and returns the step
    /// runs that start now, queued, for the outcome's batch.
    fn step_ended(&self, run: &Run, output: &[u8], next: Option<&Run>) -> Vec<Run>;
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
