//! `when`: which outcomes of the runs something waits for make it start,
//! for workflow steps and for jobs that run after other jobs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which outcomes of the runs it waits for start a workflow step or a
/// job with `after_jobs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Every needed step succeeded.
    #[default]
    Success,
    /// At least one needed step failed: a handler.
    Failure,
    /// Every needed step finished, whatever its state.
    Always,
}

impl When {
    /// Whether it holds over finished runs of which `all_succeeded` and
    /// `any_failed` (failed or cancelled) say: `success` when all
    /// succeeded, `failure` when one failed, `always` whatever they did.
    pub fn holds(self, all_succeeded: bool, any_failed: bool) -> bool {
        match self {
            When::Success => all_succeeded,
            When::Failure => any_failed,
            When::Always => true,
        }
    }
}
