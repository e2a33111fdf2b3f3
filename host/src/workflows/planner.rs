//! What the workflow engine's loops and indexes keep: the schedule loop's
//! state between passes, and which jobs wait for which.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

/// What the loop holds between passes.
#[derive(Default)]
pub(super) struct Planner {
    /// Per (tenant, workflow): a fire waiting for the run going now to end
    /// (overlap `queue`).
    pub(super) waiting: HashMap<(String, String), DateTime<Utc>>,
    /// Per (tenant, workflow): when its last run ended (the origin of an
    /// `after` schedule), reported by the engine.
    pub(super) ended: HashMap<(String, String), DateTime<Utc>>,
    /// (deadline, tenant, workflow run id, its start) of the workflow runs
    /// going, earliest first: a run still going at its deadline is stopped
    /// (a retried run has a later start, so its old entry does nothing).
    pub(super) deadlines: BTreeSet<(DateTime<Utc>, String, String, DateTime<Utc>)>,
}

/// tenant -> job name -> the ids of the jobs waiting for it
/// (`after_jobs`); nested, so a run's end looks its job up without
/// allocating.
pub(super) type Waiting = HashMap<String, HashMap<String, Vec<String>>>;
