//! What happens to runs and jobs, as events: kept in a bounded buffer (so a
//! client that reconnects with `Last-Event-ID` gets what it missed) and
//! broadcast to live subscribers (`/v1/events`, webhooks, metrics). Event
//! ids grow across the daemon's lives (they start from the start time in
//! microseconds), so an id from a previous life is never taken for a new one.
//! Each tenant has its own sequence and its own buffer: its ids have no gaps
//! that would show other tenants' activity, and a busy tenant does not push
//! a quiet one's events out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::model::workflow_run::{WorkflowRun, WorkflowRunStatus};
use crate::model::{Job, Run, RunError, RunStatus, Trigger};

/// Events kept per tenant for resuming clients.
pub const BUFFERED_EVENTS: usize = 10_000;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Increasing id within its tenant (the SSE `id`).
    pub id: u64,
    /// The tenant it belongs to; only that tenant sees it.
    #[serde(skip)]
    pub tenant: String,
    /// `run.queued`, `run.started`, `run.finished`, `run.recovered` (a
    /// job's first success after failed runs), `job.created`,
    /// `job.updated`, `job.paused`, `job.resumed`, `job.deleted`,
    /// `workflow.started`, `workflow.finished`.
    pub kind: &'static str,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The run or job it is about.
    pub data: EventData,
}

/// Every kind of event.
pub const KINDS: [&str; 11] = [
    "run.queued",
    "run.started",
    "run.finished",
    "run.recovered",
    "job.created",
    "job.updated",
    "job.paused",
    "job.resumed",
    "job.deleted",
    "workflow.started",
    "workflow.finished",
];

impl Event {
    /// The job the event is about.
    pub fn job_id(&self) -> &str {
        match &self.data {
            EventData::Run(run) => &run.job_id,
            EventData::Job(job) => &job.job_id,
            EventData::Workflow(_) => "",
        }
    }

    /// The status of the run a run event is about.
    pub fn run_status(&self) -> Option<RunStatus> {
        match &self.data {
            EventData::Run(run) => Some(run.status),
            _ => None,
        }
    }
}

/// What an event is about, kept typed: three events per run, so building
/// a JSON tree for each (and dropping it when the buffer moves on) showed
/// in the profile of a burst. It becomes JSON only when sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    /// A run event's run.
    Run(RunData),
    /// A job event's job.
    Job(JobData),
    /// A workflow event's workflow run.
    Workflow(WorkflowData),
}

/// A workflow run as events show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowData {
    /// The workflow run's id.
    pub workflow_run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Where it is.
    pub status: WorkflowRunStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed or stopped.
    pub error: Option<String>,
}

/// A run as events show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// The run's id.
    pub run_id: String,
    /// Its job's id.
    pub job_id: String,
    /// Its job's name when queued.
    pub job_name: String,
    /// Where it is.
    pub status: RunStatus,
    /// What started it.
    pub trigger: Trigger,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it was due.
    pub scheduled_at: DateTime<Utc>,
    /// When its instance started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Milliseconds from start to finish.
    pub duration_ms: Option<u64>,
    /// Milliseconds from due to start.
    pub lateness_ms: Option<i64>,
    /// Fuel spent (null when unmetered).
    pub fuel_consumed: Option<u64>,
    /// Why it failed.
    pub error: Option<RunError>,
    /// The workflow run it is a step of (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_run: Option<String>,
    /// Its step in that workflow run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// A job as events show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobData {
    /// The job's id.
    pub job_id: String,
    /// Its name.
    pub name: String,
    /// False: paused.
    pub enabled: bool,
    /// Its next fire.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Why it changed, when the daemon changed it (a pause after failed
    /// runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a reader asked for that the buffer no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The oldest id still buffered.
    pub oldest: u64,
}

/// One tenant's sequence and recent events.
struct Buffer {
    next_id: u64,
    /// Shared with the broadcast, so a publish copies no event data.
    events: VecDeque<Arc<Event>>,
}

/// Every tenant's buffer.
struct Buffers {
    /// Where each tenant's sequence starts in this life.
    first_id: u64,
    tenants: HashMap<String, Buffer>,
}

/// The event buffers and their broadcast.
pub struct EventBus {
    buffers: Mutex<Buffers>,
    live: broadcast::Sender<Arc<Event>>,
    capacity: usize,
    /// Gets every event, in order, however far behind it is (the relay
    /// to a cluster's event log: a lagging broadcast receiver loses some).
    tap: std::sync::OnceLock<mpsc::UnboundedSender<Arc<Event>>>,
}

/// A run as events show it.
pub fn run_data(run: &Run) -> EventData {
    EventData::Run(RunData {
        run_id: run.id.clone(),
        job_id: run.job_id.clone(),
        job_name: run.job_name.clone(),
        status: run.status,
        trigger: run.trigger,
        attempt: run.attempt,
        scheduled_at: run.scheduled_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
        duration_ms: run.duration_ms,
        lateness_ms: run.lateness_ms,
        fuel_consumed: run.fuel_consumed,
        error: run.error.clone(),
        workflow_run: run.workflow.as_ref().map(|of| of.workflow_run.clone()),
        step: run.workflow.as_ref().map(|of| of.step.clone()),
    })
}

/// A job as events show it.
pub fn job_data(job: &Job) -> EventData {
    EventData::Job(JobData {
        job_id: job.id.clone(),
        name: job.name.clone(),
        enabled: job.enabled,
        next_fire_at: job.next_fire_at,
        reason: None,
    })
}

impl EventBus {
    /// A bus keeping each tenant's last `capacity` events, ids starting
    /// after `start`.
    pub fn new(capacity: usize, start: DateTime<Utc>) -> EventBus {
        let (live, _) = broadcast::channel(1024);
        EventBus {
            buffers: Mutex::new(Buffers {
                first_id: u64::try_from(start.timestamp_micros()).unwrap_or(1).max(1),
                tenants: HashMap::new(),
            }),
            live,
            capacity: capacity.max(1),
            tap: std::sync::OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffers> {
        self.buffers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records and broadcasts an event.
    pub fn publish(&self, tenant: &str, kind: &'static str, data: EventData) {
        let mut buffers = self.lock();
        let first_id = buffers.first_id;
        if !buffers.tenants.contains_key(tenant) {
            let buffer = Buffer {
                next_id: first_id,
                events: VecDeque::new(),
            };
            buffers.tenants.insert(tenant.to_string(), buffer);
        }
        let buffer = buffers
            .tenants
            .get_mut(tenant)
            .expect("the tenant's buffer was made above");
        let event = Arc::new(Event {
            id: buffer.next_id,
            tenant: tenant.to_string(),
            kind,
            at: Utc::now(),
            data,
        });
        buffer.next_id += 1;
        if buffer.events.len() == self.capacity {
            buffer.events.pop_front();
        }
        buffer.events.push_back(event.clone());
        if let Some(tap) = self.tap.get() {
            let _ = tap.send(event.clone());
        }
        // Sent under the lock, so live events arrive in id order.
        let _ = self.live.send(event);
    }

    /// Sends every event from now on to `tap` too, in order (once).
    pub fn tap(&self, tap: mpsc::UnboundedSender<Arc<Event>>) {
        let _ = self.tap.set(tap);
    }

    /// Records and broadcasts an event that has its id (the cluster's,
    /// read from its event log, in order).
    pub fn publish_numbered(&self, event: Event) {
        let mut buffers = self.lock();
        let buffer = buffers.tenants.entry(event.tenant.clone()).or_insert_with(|| Buffer {
            next_id: event.id,
            events: VecDeque::new(),
        });
        buffer.next_id = buffer.next_id.max(event.id + 1);
        if buffer.events.len() == self.capacity {
            buffer.events.pop_front();
        }
        let event = Arc::new(event);
        buffer.events.push_back(event.clone());
        let _ = self.live.send(event);
    }

    /// A run event.
    pub fn run(&self, kind: &'static str, run: &Run) {
        self.publish(&run.tenant, kind, run_data(run));
    }

    /// A job event.
    pub fn job(&self, kind: &'static str, job: &Job) {
        self.publish(&job.tenant, kind, job_data(job));
    }

    /// A job event the daemon caused, saying why.
    pub fn job_because(&self, kind: &'static str, job: &Job, reason: String) {
        let mut data = job_data(job);
        if let EventData::Job(job) = &mut data {
            job.reason = Some(reason);
        }
        self.publish(&job.tenant, kind, data);
    }

    /// A workflow run event.
    pub fn workflow(&self, kind: &'static str, run: &WorkflowRun) {
        let data = EventData::Workflow(WorkflowData {
            workflow_run_id: run.id.clone(),
            workflow: run.workflow.name.clone(),
            status: run.status,
            started_at: run.started_at,
            finished_at: run.finished_at,
            error: run.error.clone(),
        });
        self.publish(&run.tenant, kind, data);
    }

    /// Subscribes to `tenant`'s events from after `last_seen` (None: from
    /// now on): the buffered events after it that `keep` accepts, a gap when
    /// some were dropped from the buffer, and the live receiver for what
    /// follows (every tenant's: filter it). Taken under one lock, so nothing
    /// falls between the two.
    pub fn subscribe(
        &self,
        tenant: &str,
        last_seen: Option<u64>,
        keep: impl Fn(&Event) -> bool,
    ) -> (Vec<Arc<Event>>, Option<Gap>, broadcast::Receiver<Arc<Event>>) {
        let buffers = self.lock();
        let receiver = self.live.subscribe();
        let Some(last_seen) = last_seen else {
            return (Vec::new(), None, receiver);
        };
        let Some(buffer) = buffers.tenants.get(tenant) else {
            return (Vec::new(), None, receiver);
        };
        let oldest = buffer.events.front().map_or(buffer.next_id, |event| event.id);
        let gap = (last_seen + 1 < oldest && last_seen < buffer.next_id).then_some(Gap { oldest });
        let missed = buffer
            .events
            .iter()
            .filter(|event| event.id > last_seen && event.tenant == tenant && keep(event))
            .cloned()
            .collect();
        (missed, gap, receiver)
    }

    /// A receiver of every event from now on (webhooks, metrics).
    pub fn listen(&self) -> broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> EventData {
        EventData::Job(JobData {
            job_id: "j".into(),
            name: "n".into(),
            enabled: true,
            next_fire_at: None,
            reason: None,
        })
    }

    fn bus(capacity: usize) -> EventBus {
        EventBus::new(capacity, DateTime::from_timestamp_micros(1000).unwrap())
    }

    #[test]
    fn ids_grow_and_a_resume_gets_what_came_after_in_order() {
        let bus = bus(10);
        for index in 0..5 {
            bus.publish(if index % 2 == 0 { "a" } else { "b" }, "job.created", job());
        }
        let (missed, gap, _) = bus.subscribe("a", Some(1000), |_| true);
        let ids: Vec<u64> = missed.iter().map(|event| event.id).collect();
        assert_eq!(ids, [1001, 1002], "only tenant a's, after 1000");
        assert!(missed.iter().all(|event| event.tenant == "a"));
        assert_eq!(gap, None);
        let (missed, _, _) = bus.subscribe("a", None, |_| true);
        assert!(missed.is_empty(), "no Last-Event-ID: live events only");
    }

    #[test]
    fn each_tenant_has_its_own_sequence_and_buffer() {
        let bus = bus(3);
        bus.publish("quiet", "job.created", job());
        for _ in 0..50 {
            bus.publish("busy", "job.created", job());
        }
        bus.publish("quiet", "job.deleted", job());
        // The quiet tenant's ids follow each other whatever the busy one did,
        // and its events are still there to resume from.
        let (missed, gap, _) = bus.subscribe("quiet", Some(999), |_| true);
        let ids: Vec<u64> = missed.iter().map(|event| event.id).collect();
        assert_eq!(ids, [1000, 1001]);
        assert_eq!(gap, None);
        let (missed, gap, _) = bus.subscribe("busy", Some(999), |_| true);
        assert_eq!(missed.len(), 3);
        assert_eq!(gap, Some(Gap { oldest: 1047 }));
        let (missed, gap, _) = bus.subscribe("nobody", Some(5), |_| true);
        assert!(missed.is_empty() && gap.is_none());
    }

    #[test]
    fn a_resume_older_than_the_buffer_reports_the_gap() {
        let bus = bus(3);
        for _ in 0..6 {
            bus.publish("a", "job.created", job());
        }
        let (missed, gap, _) = bus.subscribe("a", Some(1000), |_| true);
        assert_eq!(gap, Some(Gap { oldest: 1003 }));
        assert_eq!(missed.len(), 3);
        let (_, gap, _) = bus.subscribe("a", Some(1002), |_| true);
        assert_eq!(gap, None, "the next one is still there");
        // An id from a later life (a clock gone back) is not a gap.
        let (missed, gap, _) = bus.subscribe("a", Some(99_999), |_| true);
        assert!(missed.is_empty() && gap.is_none());
    }

    #[tokio::test]
    async fn live_subscribers_get_events_published_after_they_subscribed() {
        let bus = bus(10);
        bus.publish("a", "job.created", job());
        let (_, _, mut live) = bus.subscribe("a", Some(0), |_| true);
        bus.publish("a", "job.deleted", job());
        let event = live.recv().await.unwrap();
        assert_eq!((event.id, event.kind), (1001, "job.deleted"));
    }
}
