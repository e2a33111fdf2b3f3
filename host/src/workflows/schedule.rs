//! Scheduled workflows: one loop sleeps to the earliest `next_fire_at` of
//! the enabled scheduled workflows (or deadline of a workflow run going),
//! fires what is due through the workflow's misfire and overlap policies,
//! moves `next_fire_at` on, and stops workflow runs past their timeout.
//!
//! A fire's workflow run id derives from (workflow, instant), so a fire
//! started again after a crash (before its `next_fire_at` moved) finds its
//! run and starts nothing. Misfire: `run_once` (the default) starts one run
//! for all the fires due, at the latest instant; `run_all` one per fire (at
//! most [`MAX_CATCH_UP`]); `skip` only a fire less than [`ON_TIME`] late.
//! Overlap with a run of the same workflow still going: `skip` (the
//! default) starts nothing, `allow` starts beside it, `queue` keeps one fire
//! to start when the run ends, `replace` cancels the run and starts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::engine::Workflows;
use super::error::WorkflowError;
use crate::cluster::Leadership;
use crate::model::Trigger;
use crate::model::job::{Misfire, Overlap};
use crate::model::workflow::Workflow;
use crate::model::workflow_run::WorkflowRun;
use crate::sync::lock;
use crate::timing::Schedule;

/// The most missed fires `run_all` starts at once.
const MAX_CATCH_UP: usize = 100;
/// A fire at most this late is on time (`skip` still starts it).
const ON_TIME: Duration = Duration::from_secs(2);
/// How long the loop sleeps with nothing scheduled (a change wakes it).
const IDLE: Duration = Duration::from_secs(60);

impl Workflows {
    /// Starts the loop that fires scheduled workflows.
    pub fn start_schedule(self: &Arc<Self>, leadership: Arc<Leadership>) {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                // In a cluster one node fires workflows: the leader.
                leadership.until_leader().await;
                let next = match engine.fire_due().await {
                    Ok(next) => next,
                    Err(error) => {
                        tracing::warn!(%error, "scheduled workflows not fired; trying again in a second");
                        Some(engine.clock.now() + chrono::Duration::seconds(1))
                    }
                };
                let until = next.unwrap_or_else(|| crate::units::add_saturating(engine.clock.now(), IDLE));
                tokio::select! {
                    () = engine.clock.sleep_until(until) => {}
                    () = engine.schedule_changed.notified() => {}
                }
            }
        });
    }

    /// A workflow may have changed on another node of the cluster: look at
    /// the schedules again.
    pub fn schedule_changed(&self) {
        self.schedule_changed.notify_one();
    }

    /// A workflow run ended: a fire waiting for it starts, an `after`
    /// schedule counts from now.
    pub(super) fn workflow_run_ended(&self, record: &WorkflowRun) {
        let key = (record.tenant.clone(), record.workflow.name.clone());
        let at = record.finished_at.unwrap_or_else(|| self.clock.now());
        let waited_for = {
            let mut planner = lock(&self.planner);
            let waited_for = planner.waiting.contains_key(&key);
            planner.ended.insert(key, at);
            waited_for
        };
        // A pass reads every workflow: wake it only when this end matters
        // now (a fire waits for it, or its schedule counts from it); a
        // definition's change wakes it anyway.
        if waited_for || record.workflow.schedule.is_some() {
            self.schedule_changed.notify_one();
        }
    }

    /// Stops the workflow runs past their deadline and fires every due
    /// scheduled workflow; returns the next instant due.
    async fn fire_due(&self) -> Result<Option<DateTime<Utc>>, WorkflowError> {
        let now = self.clock.now();
        let mut earliest: Option<DateTime<Utc>> = self.stop_late(now).await;
        for workflow in self.store.all_workflows()? {
            let key = (workflow.tenant.clone(), workflow.name.clone());
            let (Some(schedule), true) = (workflow.schedule.clone(), workflow.enabled) else {
                continue;
            };
            let ended = lock(&self.planner).ended.remove(&key);
            let waiting = lock(&self.planner).waiting.get(&key).copied();
            if let Some(at) = waiting
                && !self.is_going(&workflow)
            {
                lock(&self.planner).waiting.remove(&key);
                self.start_fire(&workflow, at).await?;
            }
            let next = match (workflow.next_fire_at, &schedule, ended) {
                // An `after` schedule waits for its run to end.
                (None, Schedule::After(_), Some(ended)) => {
                    self.move_next_fire(&workflow, schedule.next_fire(now, workflow.created_at, Some(ended)))?
                }
                (Some(due), _, _) if due <= now => self.fire(&workflow, &schedule, due, now).await?,
                (next, _, _) => next,
            };
            if let Some(next) = next {
                earliest = Some(earliest.map_or(next, |at| at.min(next)));
            }
        }
        Ok(earliest)
    }

    /// Fires a due workflow by its policies; returns its next fire.
    async fn fire(
        &self,
        workflow: &Workflow,
        schedule: &Schedule,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, WorkflowError> {
        let mut fires = vec![due];
        let mut next = schedule.next_fire(due, workflow.created_at, None);
        while let Some(at) = next
            && at <= now
        {
            if fires.len() < MAX_CATCH_UP {
                fires.push(at);
            } else if let Some(last) = fires.last_mut() {
                *last = at;
            }
            next = schedule.next_fire(at, workflow.created_at, None);
        }
        let latest = *fires.last().expect("one fire at least");
        let on_time = now - latest <= chrono::Duration::from_std(ON_TIME).unwrap_or_default();
        let starting: Vec<DateTime<Utc>> = match workflow.policy.misfire {
            Misfire::RunAll => fires,
            Misfire::RunOnce => vec![latest],
            Misfire::Skip if on_time => vec![latest],
            Misfire::Skip => {
                tracing::info!(workflow = %workflow.name, missed = fires.len(), "missed workflow fires skipped");
                Vec::new()
            }
        };
        for at in starting {
            self.overlap(workflow, at).await?;
        }
        // An `after` schedule's next fire comes when this run ends.
        let next = match schedule {
            Schedule::After(_) => None,
            _ => next,
        };
        self.move_next_fire(workflow, next)
    }

    /// Starts a fire, or not, by the workflow's overlap policy.
    async fn overlap(&self, workflow: &Workflow, at: DateTime<Utc>) -> Result<(), WorkflowError> {
        if !self.is_going(workflow) {
            return self.start_fire(workflow, at).await;
        }
        match workflow.policy.overlap {
            Overlap::Allow => self.start_fire(workflow, at).await,
            Overlap::Skip => {
                tracing::info!(workflow = %workflow.name, %at, "workflow fire skipped: a run of it is going");
                Ok(())
            }
            Overlap::Queue => {
                let key = (workflow.tenant.clone(), workflow.name.clone());
                lock(&self.planner).waiting.insert(key, at);
                Ok(())
            }
            Overlap::Replace => {
                for id in self.going_runs(workflow) {
                    if let Err(error) = self.cancel(&workflow.tenant, &id).await {
                        tracing::debug!(workflow_run = %id, %error, "replaced workflow run not cancelled");
                    }
                }
                self.start_fire(workflow, at).await
            }
        }
    }

    /// Starts the run of the fire at `at`, unless it exists (started
    /// before a crash).
    async fn start_fire(&self, workflow: &Workflow, at: DateTime<Utc>) -> Result<(), WorkflowError> {
        let id = crate::model::scheduled_run_id(&workflow.tenant, &format!("workflow:{}", workflow.id), at);
        if self.store.workflow_run(&workflow.tenant, &id)?.is_some() {
            return Ok(());
        }
        self.start_as(workflow.clone(), id, None, Trigger::Schedule, Some(at))
            .await?;
        Ok(())
    }

    /// Writes the workflow's next fire unless it changed meanwhile.
    fn move_next_fire(
        &self,
        workflow: &Workflow,
        next: Option<DateTime<Utc>>,
    ) -> Result<Option<DateTime<Utc>>, WorkflowError> {
        let Some(mut current) = self.store.workflow(&workflow.tenant, &workflow.name)? else {
            return Ok(None);
        };
        if current.updated_at != workflow.updated_at || current.id != workflow.id {
            // Edited meanwhile: its own next fire stands.
            return Ok(current.next_fire_at);
        }
        current.next_fire_at = next;
        self.store.put_workflow(&current)?;
        self.store.flush_soon();
        Ok(next)
    }

    /// The ids of the workflow's runs going now.
    fn going_runs(&self, workflow: &Workflow) -> Vec<String> {
        self.active_runs_of(&workflow.tenant, &workflow.id)
    }

    fn is_going(&self, workflow: &Workflow) -> bool {
        !self.going_runs(workflow).is_empty()
    }
}
