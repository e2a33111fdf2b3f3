//! What a job with `after_jobs` has seen of the jobs it waits for since it
//! last fired that way: the outcome of each one's last run, by job name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::run::RunStatus;

/// A dependent job's join: the jobs it waits for that have ended a run
/// since it last fired (or was skipped by its `when`), with how.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// The dependent job's tenant.
    pub tenant: String,
    /// The dependent job's id.
    pub job_id: String,
    /// Job name -> the status of its last run's last attempt.
    pub seen: BTreeMap<String, RunStatus>,
    /// The ids of the runs told last (at most [`TOLD`]): a run's end told
    /// again (in a cluster, its node died after moving the join on and
    /// before writing the outcome, which the node taking it over then
    /// writes) changes nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<String>,
}

/// How many run ids a join remembers as told.
const TOLD: usize = 32;

impl Join {
    /// [`Join::ended`] for the run `run_id`, unless that run was told
    /// already (then None, changing nothing).
    pub fn ended_by(
        &mut self,
        run_id: &str,
        job: &str,
        status: RunStatus,
        waits_for: &[String],
    ) -> Option<(bool, bool)> {
        if self.told.iter().any(|told| told == run_id) {
            return None;
        }
        if self.told.len() == TOLD {
            self.told.remove(0);
        }
        self.told.push(run_id.to_string());
        self.ended(job, status, waits_for)
    }

    /// Records that `job`'s run ended with `status`; when every job of
    /// `waits_for` has ended one, returns whether they all succeeded and
    /// whether one failed (or was cancelled), and starts a new join.
    pub fn ended(&mut self, job: &str, status: RunStatus, waits_for: &[String]) -> Option<(bool, bool)> {
        self.seen.insert(job.to_string(), status);
        let statuses: Vec<RunStatus> = waits_for
            .iter()
            .map(|name| self.seen.get(name).copied())
            .collect::<Option<_>>()?;
        self.seen.clear();
        let all_succeeded = statuses.iter().all(|status| *status == RunStatus::Succeeded);
        let any_failed = statuses
            .iter()
            .any(|status| matches!(status, RunStatus::Failed | RunStatus::Cancelled));
        Some((all_succeeded, any_failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_completes_once_every_job_has_ended_a_run_and_starts_again() {
        let waits_for = vec!["a".to_string(), "b".to_string()];
        let mut join = Join::default();
        assert_eq!(join.ended("a", RunStatus::Succeeded, &waits_for), None);
        assert_eq!(
            join.ended("a", RunStatus::Failed, &waits_for),
            None,
            "the latest counts"
        );
        assert_eq!(join.ended("b", RunStatus::Succeeded, &waits_for), Some((false, true)));
        assert!(join.seen.is_empty());
        assert_eq!(join.ended("b", RunStatus::Succeeded, &waits_for), None);
        assert_eq!(join.ended("a", RunStatus::Succeeded, &waits_for), Some((true, false)));
        // The same run told twice counts once.
        let mut join = Join::default();
        assert_eq!(join.ended_by("r1", "a", RunStatus::Succeeded, &waits_for), None);
        assert_eq!(
            join.ended_by("r2", "b", RunStatus::Succeeded, &waits_for),
            Some((true, false))
        );
        assert_eq!(join.ended_by("r2", "b", RunStatus::Succeeded, &waits_for), None);
        assert!(join.seen.is_empty(), "the repeat started no new round: {join:?}");
        assert_eq!(join.ended_by("r3", "a", RunStatus::Succeeded, &waits_for), None);
        assert_eq!(
            join.ended_by("r1", "b", RunStatus::Succeeded, &waits_for),
            None,
            "r1 was told"
        );
        assert_eq!(join.seen.len(), 1);
        let alone = vec!["a".to_string()];
        assert_eq!(
            Join::default().ended("a", RunStatus::Cancelled, &alone),
            Some((false, true))
        );
    }
}
