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

use super::elsewhere::{Elsewhere, LOOK_AGAIN};
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
        let mut leading = leadership.watch();
        tokio::spawn(async move {
            loop {
                // In a cluster one node fires workflows, the leader; each
                // node stops its own runs past their deadline.
                let next = if leadership.is_leader() {
                    match engine.fire_due().await {
                        Ok(next) => next,
                        Err(error) => {
                            tracing::warn!(%error, "scheduled workflows not fired; trying again in a second");
                            Some(engine.clock.now() + chrono::Duration::seconds(1))
                        }
                    }
                } else {
                    engine.stop_late(engine.clock.now()).await
                };
                let until = next.unwrap_or_else(|| crate::units::add_saturating(engine.clock.now(), IDLE));
                tokio::select! {
                    () = engine.clock.sleep_until(until) => {}
                    () = engine.schedule_changed.notified() => {}
                    // The sender lives as long as `leadership`, held here.
                    _ = leading.changed() => {}
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
        let mut sooner = |next: DateTime<Utc>| earliest = Some(earliest.map_or(next, |at| at.min(next)));
        let elsewhere = self.elsewhere()?;
        for workflow in self.store.all_workflows()? {
            let key = (workflow.tenant.clone(), workflow.name.clone());
            let (Some(schedule), true) = (workflow.schedule.clone(), workflow.enabled) else {
                continue;
            };
            let ended = lock(&self.planner).ended.remove(&key);
            let waiting = lock(&self.planner).waiting.get(&key).copied();
            let going = self.is_going(&workflow, &elsewhere);
            if let Some(at) = waiting
                && !going
            {
                lock(&self.planner).waiting.remove(&key);
                self.start_fire(&workflow, at).await?;
            }
            let awaits_end = workflow.next_fire_at.is_none() && schedule.is_after();
            // In a cluster the run an `after` schedule counts from may have
            // ended on another node: its end is read from the store.
            let ended = match (awaits_end && !going && self.clustered(), ended) {
                (true, _) => self.stored_end(&workflow)?,
                (false, ended) => ended,
            };
            let next = match (workflow.next_fire_at, schedule.is_after(), ended) {
                // An `after` schedule waits for its run to end.
                (None, true, Some(ended)) => {
                    self.move_next_fire(&workflow, schedule.next_fire(now, workflow.created_at, Some(ended)))?
                }
                (Some(due), _, _) if due <= now => self.fire(&workflow, &schedule, due, now, &elsewhere).await?,
                (next, _, _) => next,
            };
            if let Some(next) = next {
                sooner(next);
            }
            // Nothing tells this node when a run another node drives ends.
            let still_waits = lock(&self.planner).waiting.contains_key(&key) || (awaits_end && next.is_none());
            if still_waits && !elsewhere.runs_of(&workflow).is_empty() {
                sooner(now + chrono::Duration::from_std(LOOK_AGAIN).unwrap_or_default());
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
        elsewhere: &Elsewhere,
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
            self.overlap(workflow, at, elsewhere).await?;
        }
        // An `after` schedule's next fire comes when this run ends.
        let next = if schedule.is_after() { None } else { next };
        self.move_next_fire(workflow, next)
    }

    /// Starts a fire, or not, by the workflow's overlap policy.
    async fn overlap(
        &self,
        workflow: &Workflow,
        at: DateTime<Utc>,
        elsewhere: &Elsewhere,
    ) -> Result<(), WorkflowError> {
        if !self.is_going(workflow, elsewhere) {
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
                for id in self.going_runs(workflow, elsewhere) {
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

    /// The ids of the workflow's runs going now, here and on other nodes.
    fn going_runs(&self, workflow: &Workflow, elsewhere: &Elsewhere) -> Vec<String> {
        let mut going = self.active_runs_of(&workflow.tenant, &workflow.id);
        going.extend_from_slice(elsewhere.runs_of(workflow));
        going
    }

    fn is_going(&self, workflow: &Workflow, elsewhere: &Elsewhere) -> bool {
        !self.going_runs(workflow, elsewhere).is_empty()
    }
}
