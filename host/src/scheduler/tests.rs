//! The scheduler stepped by hand: a real store, a manual clock, and a fake
//! run sink standing in for the executor (nothing runs: queued runs stay
//! queued); each test moves the clock and calls `pass()`, then reads what
//! was recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Parts, Places, ResolvePlugin, RunSink, Scheduler};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::model::run::{Activity, RunEnded};
use crate::model::validate::{parse_spec, validate};
use crate::model::{Job, PluginVersion, Run, RunStatus, Trigger};
use crate::store::{RunFilter, SledStore, Store};

/// The executor's queue as the scheduler sees it: the runs handed over
/// (none ever starts), and a `queued_runs` quota per tenant.
struct FakeSink {
    clock: Arc<ManualClock>,
    queue: Mutex<Vec<Run>>,
    quotas: Mutex<HashMap<String, usize>>,
    /// Places held by passes, per tenant.
    taken: Mutex<HashMap<String, usize>>,
    /// Jobs with a run executing (as the tests say).
    running: Mutex<Vec<String>>,
    cancelled: Mutex<Vec<String>>,
}

impl FakeSink {
    fn waiting_of(&self, tenant: &str) -> usize {
        self.queue
            .lock()
            .unwrap()
            .iter()
            .filter(|run| run.tenant == tenant)
            .count()
    }

    fn queued(&self) -> usize {
        self.queue.lock().unwrap().len()
    }
}

impl RunSink for FakeSink {
    fn enqueue(&self, runs: Vec<Run>) {
        self.queue.lock().unwrap().extend(runs);
    }

    fn restore(&self, runs: Vec<Run>) {
        self.enqueue(runs);
    }

    fn activity(&self, tenant: &str, job_id: &str) -> Activity {
        let queue = self.queue.lock().unwrap();
        Activity {
            waiting: queue
                .iter()
                .filter(|run| run.tenant == tenant && run.job_id == job_id)
                .count(),
            running: self.running.lock().unwrap().iter().filter(|id| *id == job_id).count(),
        }
    }

    fn withdraw_ahead(&self, job: Option<(&str, &str)>) -> Vec<Run> {
        let now = self.clock.now();
        let mut queue = self.queue.lock().unwrap();
        let (withdrawn, kept) = std::mem::take(&mut *queue).into_iter().partition(|run: &Run| {
            job.is_none_or(|(tenant, job_id)| run.tenant == tenant && run.job_id == job_id)
                && run.trigger == Trigger::Schedule
                && run.queued_at < run.scheduled_at
                && run.scheduled_at > now
        });
        *queue = kept;
        withdrawn
    }

    fn withdraw_recorded_ahead(&self) -> Vec<Run> {
        let mut queue = self.queue.lock().unwrap();
        let (withdrawn, kept) = std::mem::take(&mut *queue)
            .into_iter()
            .partition(|run: &Run| run.trigger == Trigger::Schedule && run.queued_at < run.scheduled_at);
        *queue = kept;
        withdrawn
    }

    fn cancel_running(&self, _tenant: &str, job_id: &str) {
        self.cancelled.lock().unwrap().push(job_id.to_string());
    }

    fn places(&self) -> Box<dyn Places + Send + '_> {
        Box::new(FakePlaces {
            sink: self,
            held: HashMap::new(),
        })
    }
}

struct FakePlaces<'a> {
    sink: &'a FakeSink,
    held: HashMap<String, usize>,
}

impl Places for FakePlaces<'_> {
    fn take(&mut self, tenant: &str, wanted: usize) -> usize {
        let Some(limit) = self.sink.quotas.lock().unwrap().get(tenant).copied() else {
            return wanted;
        };
        let mut taken = self.sink.taken.lock().unwrap();
        let used = self.sink.waiting_of(tenant) + taken.get(tenant).copied().unwrap_or(0);
        let granted = wanted.min(limit.saturating_sub(used));
        *taken.entry(tenant.to_string()).or_default() += granted;
        *self.held.entry(tenant.to_string()).or_default() += granted;
        granted
    }

    fn give_back(&mut self, tenant: &str, count: usize) {
        let held = self.held.entry(tenant.to_string()).or_default();
        let count = count.min(*held);
        *held -= count;
        *self.sink.taken.lock().unwrap().entry(tenant.to_string()).or_default() -= count;
    }
}

impl Drop for FakePlaces<'_> {
    fn drop(&mut self) {
        let mut taken = self.sink.taken.lock().unwrap();
        for (tenant, count) in &self.held {
            *taken.entry(tenant.clone()).or_default() -= count;
        }
    }
}

/// No plugin resolves (the runs keep the job's reference).
struct NoPlugins;

impl ResolvePlugin for NoPlugins {
    fn resolve_version(&self, _tenant: &str, _reference: &str) -> Option<PluginVersion> {
        None
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
    scheduler: Arc<Scheduler>,
    sink: Arc<FakeSink>,
    /// Runs' ends, as the executor would report them.
    ended: mpsc::UnboundedSender<RunEnded>,
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

const START: &str = "2026-11-25T10:00:00Z";

/// Fires recorded at their instant (the tests of firing ahead say so).
fn harness() -> Harness {
    harness_firing_ahead(std::time::Duration::ZERO)
}

fn harness_firing_ahead(fire_ahead: std::time::Duration) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(utc(START)));
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("db")).unwrap());
    let sink = Arc::new(FakeSink {
        clock: clock.clone(),
        queue: Mutex::default(),
        quotas: Mutex::default(),
        taken: Mutex::default(),
        running: Mutex::default(),
        cancelled: Mutex::default(),
    });
    let (ended_sender, ended) = mpsc::unbounded_channel();
    let scheduler = Scheduler::new(Parts {
        store: store.clone(),
        sink: sink.clone(),
        plugins: Arc::new(NoPlugins),
        run_log_bytes: 1024,
        clock: clock.clone(),
        fire_ahead,
        ended,
        leadership: crate::cluster::Leadership::single(),
        outcomes: None,
    });
    Harness {
        _dir: dir,
        clock,
        store,
        scheduler,
        sink,
        ended: ended_sender,
    }
}

impl Harness {
    fn job(&self, spec: Value) -> Job {
        let mut body = json!({"name": "job", "plugin": "noop"});
        body.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
        let defaults = Config::default().job_defaults();
        let job = validate(parse_spec(&body).unwrap(), "t", None, &defaults, self.clock.now()).unwrap();
        self.store.insert_job(&job).unwrap();
        job
    }

    async fn at(&self, instant: &str) -> Vec<Run> {
        self.clock.set(utc(instant));
        self.scheduler.pass().await.unwrap();
        self.runs()
    }

    fn runs(&self) -> Vec<Run> {
        let filter = RunFilter {
            limit: 1000,
            ..RunFilter::default()
        };
        let mut runs = self.store.list_runs("t", &filter).unwrap();
        runs.sort_by_key(|run| run.scheduled_at);
        runs
    }

    fn reload(&self, job: &Job) -> Job {
        self.store.job("t", &job.id).unwrap().unwrap()
    }

    fn finish_all(&self) {
        for mut run in self.runs().into_iter().filter(|run| !run.status.is_finished()) {
            run.finish(RunStatus::Succeeded, None, utc(START));
            self.store.finish_run(&run, b"", b"").unwrap();
        }
    }
}

fn fires(runs: &[Run]) -> Vec<DateTime<Utc>> {
    runs.iter().map(|run| run.scheduled_at).collect()
}

#[tokio::test]
async fn an_every_job_fires_on_its_grid_and_plans_the_next_fire() {
    let h = harness();
    let job = h.job(json!({"schedule": {"every": "10s"}, "policy": {"overlap": "allow"}}));
    assert_eq!(job.next_fire_at, Some(utc("2026-11-25T10:00:10Z")));
    assert!(h.at("2026-11-25T10:00:09.999Z").await.is_empty(), "not before its time");
    let runs = h.at("2026-11-25T10:00:10.003Z").await;
    assert_eq!(fires(&runs), [utc("2026-11-25T10:00:10Z")]);
    assert_eq!(runs[0].trigger, Trigger::Schedule);
    assert_eq!(
        runs[0].id,
        crate::model::scheduled_run_id("t", &job.id, utc("2026-11-25T10:00:10Z"))
    );
    assert_eq!(h.reload(&job).next_fire_at, Some(utc("2026-11-25T10:00:20Z")));
    assert_eq!(h.at("2026-11-25T10:00:20.001Z").await.len(), 2);
}

#[tokio::test]
async fn overlap_skip_counts_a_fire_while_the_last_run_is_waiting() {
    let h = harness();
    let job = h.job(json!({"schedule": {"every": "10s"}}));
    assert_eq!(h.at("2026-11-25T10:00:10Z").await.len(), 1);
    // The executor is not started: the first run is still waiting.
    assert_eq!(h.at("2026-11-25T10:00:20Z").await.len(), 1);
    assert_eq!(h.reload(&job).skipped_fires, 1);
}

#[tokio::test]
async fn fires_past_the_tenants_queue_quota_are_skipped_at_their_instant_and_the_schedule_moves_on() {
    let h = harness_firing_ahead(std::time::Duration::from_secs(1));
    h.sink.quotas.lock().unwrap().insert("t".into(), 2);
    let jobs: Vec<Job> = ["a", "b", "c"]
        .into_iter()
        .map(|name| h.job(json!({"name": name, "schedule": {"every": "10s"}, "policy": {"overlap": "allow"}})))
        .collect();
    let after = h.job(json!({"name": "d", "schedule": {"after": "20s"}}));
    // Ahead of 10:00:10: two fires fit, the third waits for its instant.
    assert_eq!(h.at("2026-11-25T10:00:08.5Z").await.len(), 2);
    assert_eq!(h.sink.waiting_of("t"), 2);
    let held: Vec<&Job> = jobs
        .iter()
        .filter(|job| h.reload(job).next_fire_at == job.next_fire_at)
        .collect();
    assert_eq!(held.len(), 1, "one fire is held back, not skipped yet");
    // At its instant the queue is still full (the executor is not
    // started): it is skipped and its job moves on.
    assert_eq!(h.at("2026-11-25T10:00:10Z").await.len(), 2);
    let skipped = h.reload(held[0]);
    assert_eq!(skipped.skipped_fires, 1);
    assert_eq!(skipped.next_fire_at, Some(utc("2026-11-25T10:00:20Z")));
    // Every fire of the next instant is skipped; the `after` job counts
    // its delay from the skipped fire.
    h.at("2026-11-25T10:00:18.5Z").await;
    assert_eq!(h.at("2026-11-25T10:00:20Z").await.len(), 2);
    for job in &jobs {
        let job = h.reload(job);
        assert_eq!(job.next_fire_at, Some(utc("2026-11-25T10:00:30Z")), "{}", job.name);
        assert!(job.skipped_fires >= 1, "{}", job.name);
    }
    let after = h.reload(&after);
    assert_eq!(after.skipped_fires, 1);
    assert_eq!(after.next_fire_at, Some(utc("2026-11-25T10:00:40Z")));
    assert_eq!(h.sink.waiting_of("t"), 2, "the quota held");
}

#[tokio::test]
async fn overlap_allow_queues_beside_a_waiting_run() {
    let h = harness();
    h.job(json!({"schedule": {"every": "10s"}, "policy": {"overlap": "allow"}}));
    h.at("2026-11-25T10:00:10Z").await;
    assert_eq!(h.at("2026-11-25T10:00:20Z").await.len(), 2);
}

#[tokio::test]
async fn misfire_policies_after_the_scheduler_was_away() {
    for (misfire, expected_fires, expected_skipped) in [
        ("skip", vec![], 5),
        ("run_once", vec!["2026-11-25T10:00:50Z"], 4),
        ("run_all", vec!["10", "20", "30", "40", "50"], 0),
    ] {
        let h = harness();
        let job = h.job(json!({"schedule": {"every": "10s"}, "policy": {"misfire": misfire, "overlap": "allow"}}));
        // Nothing ran from 10:00:00 to 10:00:55.
        let runs = h.at("2026-11-25T10:00:55Z").await;
        let expected: Vec<DateTime<Utc>> = expected_fires
            .iter()
            .map(|fire| {
                if fire.len() == 2 {
                    utc(&format!("2026-11-25T10:00:{fire}Z"))
                } else {
                    utc(fire)
                }
            })
            .collect();
        assert_eq!(fires(&runs), expected, "{misfire}");
        let job = h.reload(&job);
        assert_eq!(job.skipped_fires, expected_skipped, "{misfire}");
        assert_eq!(job.next_fire_at, Some(utc("2026-11-25T10:01:00Z")), "{misfire}");
    }
}

#[tokio::test]
async fn an_at_job_fires_once_then_is_done() {
    let h = harness();
    let job = h.job(json!({"schedule": {"at": "2026-11-25T10:05:00Z"}}));
    assert_eq!(
        fires(&h.at("2026-11-25T10:05:00.002Z").await),
        [utc("2026-11-25T10:05:00Z")]
    );
    let job = h.reload(&job);
    assert_eq!(job.state(), "done");
    h.finish_all();
    assert_eq!(h.at("2026-11-25T11:00:00Z").await.len(), 1, "it does not fire again");
}

#[tokio::test]
async fn a_paused_job_does_not_fire_and_catches_up_by_policy_when_resumed() {
    let h = harness();
    let mut job = h.job(json!({"schedule": {"every": "10s"}, "policy": {"misfire": "run_once"}}));
    job.enabled = false;
    job.updated_at = h.clock.now();
    h.store.update_job(&job).unwrap();
    assert!(h.at("2026-11-25T10:00:45Z").await.is_empty());
    job.enabled = true;
    h.store.update_job(&job).unwrap();
    let runs = h.at("2026-11-25T10:00:45.5Z").await;
    assert_eq!(
        fires(&runs),
        [utc("2026-11-25T10:00:40Z")],
        "the latest missed fire, once"
    );
    assert_eq!(h.reload(&job).skipped_fires, 3);
}

#[tokio::test]
async fn a_cron_job_in_a_zone_fires_at_wall_clock_times_across_dst() {
    let h = harness();
    h.clock.set(utc("2026-03-07T12:00:00Z"));
    let job = h.job(
        json!({"schedule": {"cron": "30 2 * * *", "timezone": "America/New_York"}, "policy": {"overlap": "allow"}}),
    );
    // 02:30 does not exist on March 8 (clocks jump 02:00 -> 03:00): it fires
    // at 03:00 EDT, 07:00Z; the next day at 02:30 EDT, 06:30Z.
    assert_eq!(job.next_fire_at, Some(utc("2026-03-08T07:00:00Z")));
    let runs = h.at("2026-03-08T07:00:00.001Z").await;
    assert_eq!(fires(&runs), [utc("2026-03-08T07:00:00Z")]);
    assert_eq!(h.reload(&job).next_fire_at, Some(utc("2026-03-09T06:30:00Z")));
}

#[tokio::test]
async fn recording_the_same_fire_twice_keeps_one_run() {
    let h = harness();
    let job = h.job(json!({"schedule": {"every": "10s"}}));
    h.at("2026-11-25T10:00:10Z").await;
    let job = h.reload(&job);
    let again = h.runs()[0].clone();
    let inserted = h.store.record_fire(&job, &[again]).unwrap();
    assert!(inserted.is_empty(), "a fire's run id exists already");
    assert_eq!(h.runs().len(), 1);
}

#[tokio::test]
async fn one_pass_fires_every_job_due_at_the_same_instant() {
    let h = harness();
    for index in 0..40 {
        h.job(json!({"name": format!("job-{index}"), "schedule": {"cron": "*/10 * * * * *"}}));
    }
    let runs = h.at("2026-11-25T10:00:10.001Z").await;
    assert_eq!(runs.len(), 40);
    assert!(runs.iter().all(|run| run.scheduled_at == utc("2026-11-25T10:00:10Z")));
}

#[tokio::test]
async fn a_fire_whose_job_changed_is_left_out_and_the_others_are_recorded() {
    let h = harness();
    let first = h.job(json!({"name": "first", "schedule": {"every": "10s"}}));
    let second = h.job(json!({"name": "second", "schedule": {"every": "10s"}}));
    let fire_of = |job: &Job| {
        let mut moved = job.clone();
        moved.next_fire_at = Some(utc("2026-11-25T10:00:20Z"));
        crate::store::Fire {
            job: moved,
            runs: Vec::new(),
            runs_only: false,
        }
    };
    let fires = [fire_of(&first), fire_of(&second)];
    // The second job is edited between the plan and the write.
    let mut edited = second.clone();
    edited.updated_at = utc("2026-11-25T10:00:05Z");
    h.store.update_job(&edited).unwrap();
    let outcomes = h.store.record_fires(&fires).unwrap();
    assert!(outcomes[0].is_ok());
    assert!(matches!(outcomes[1], Err(crate::store::StoreError::Conflict(_))));
    assert_eq!(h.reload(&first).next_fire_at, Some(utc("2026-11-25T10:00:20Z")));
    assert_eq!(h.reload(&second).next_fire_at, Some(utc("2026-11-25T10:00:10Z")));
}

#[tokio::test]
async fn the_run_at_start_index_follows_create_update_and_delete() {
    let h = harness();
    let ids = |store: &Arc<dyn Store>| -> Vec<String> {
        let mut ids: Vec<String> = store
            .run_at_start_jobs()
            .unwrap()
            .into_iter()
            .map(|job| job.id)
            .collect();
        ids.sort();
        ids
    };
    let warm = h.job(json!({"name": "warm", "run_at_start": true}));
    let cold = h.job(json!({"name": "cold"}));
    assert_eq!(ids(&h.store), std::slice::from_ref(&warm.id));
    let mut turned = cold.clone();
    turned.run_at_start = true;
    h.store.update_job(&turned).unwrap();
    let mut both = vec![warm.id.clone(), cold.id.clone()];
    both.sort();
    assert_eq!(ids(&h.store), both);
    let mut off = warm.clone();
    off.run_at_start = false;
    h.store.update_job(&off).unwrap();
    assert_eq!(ids(&h.store), std::slice::from_ref(&cold.id));
    h.store.delete_job("t", &cold.id).unwrap();
    assert!(ids(&h.store).is_empty());
}

#[tokio::test]
async fn a_fire_is_recorded_ahead_and_waits_in_the_queue_for_its_instant() {
    let h = harness_firing_ahead(std::time::Duration::from_secs(1));
    let job = h.job(json!({"schedule": {"every": "10s"}}));
    h.clock.set(utc("2026-11-25T10:00:08.4Z"));
    assert_eq!(
        h.scheduler.pass().await.unwrap(),
        Some(utc("2026-11-25T10:00:08.5Z")),
        "it wakes on the half-second mark at or before a second ahead of the fire"
    );
    assert!(h.runs().is_empty());
    let runs = h.at("2026-11-25T10:00:08.5Z").await;
    assert_eq!(fires(&runs), [utc("2026-11-25T10:00:10Z")]);
    assert_eq!(runs[0].status, RunStatus::Queued);
    assert_eq!(h.reload(&job).next_fire_at, Some(utc("2026-11-25T10:00:20Z")));
    let queued = h.sink.queued();
    assert_eq!(queued, 1, "the run waits in the queue for its instant");
}

#[tokio::test]
async fn pausing_withdraws_a_fire_recorded_ahead_and_resuming_catches_it_up() {
    let h = harness_firing_ahead(std::time::Duration::from_secs(1));
    let job = h.job(json!({"schedule": {"every": "10s"}, "policy": {"misfire": "run_once"}}));
    assert_eq!(h.at("2026-11-25T10:00:09.5Z").await.len(), 1);
    let mut paused = h.reload(&job);
    paused.enabled = false;
    h.scheduler.update_job(&mut paused).await.unwrap();
    assert!(h.runs().is_empty(), "the fire recorded ahead is withdrawn");
    assert_eq!(h.sink.queued(), 0);
    let paused = h.reload(&paused);
    assert_eq!(
        paused.next_fire_at,
        Some(utc("2026-11-25T10:00:10Z")),
        "nothing is lost"
    );
    assert!(h.at("2026-11-25T10:00:12Z").await.is_empty());
    h.clock.set(utc("2026-11-25T10:00:15Z"));
    let mut resumed = paused.clone();
    resumed.enabled = true;
    h.scheduler.update_job(&mut resumed).await.unwrap();
    let runs = h.at("2026-11-25T10:00:15Z").await;
    assert_eq!(fires(&runs), [utc("2026-11-25T10:00:10Z")], "the missed fire, once");
}

#[tokio::test]
async fn editing_or_deleting_a_job_withdraws_its_fire_recorded_ahead() {
    let h = harness_firing_ahead(std::time::Duration::from_secs(1));
    let job = h.job(json!({"schedule": {"every": "10s"}, "input": {"v": 1}}));
    assert_eq!(h.at("2026-11-25T10:00:09.5Z").await.len(), 1);
    // An edit: the fire is planned again from the new job, with its input.
    let mut edited = h.reload(&job);
    edited.input = json!({"v": 2});
    edited.updated_at = h.clock.now();
    h.scheduler.update_job(&mut edited).await.unwrap();
    assert!(h.runs().is_empty());
    let runs = h.at("2026-11-25T10:00:09.6Z").await;
    assert_eq!(fires(&runs), [utc("2026-11-25T10:00:10Z")]);
    assert_eq!(runs[0].input, br#"{"v":2}"#);
    assert!(h.scheduler.delete_job("t", &job.id).await.unwrap());
    assert!(h.runs().is_empty(), "deleting the job withdraws it too");
    assert_eq!(h.sink.queued(), 0);
}

#[tokio::test]
async fn a_busy_jobs_fire_is_held_back_until_its_instant() {
    let h = harness_firing_ahead(std::time::Duration::from_secs(1));
    let job = h.job(json!({"schedule": {"every": "10s"}}));
    assert_eq!(h.at("2026-11-25T10:00:09.5Z").await.len(), 1);
    // The executor is not started: that run still waits when the next fire
    // comes within the window, so overlap must decide at the instant.
    h.clock.set(utc("2026-11-25T10:00:19.5Z"));
    assert_eq!(h.scheduler.pass().await.unwrap(), Some(utc("2026-11-25T10:00:20Z")));
    assert_eq!(h.runs().len(), 1);
    assert_eq!(h.reload(&job).skipped_fires, 0);
    assert_eq!(h.at("2026-11-25T10:00:20Z").await.len(), 1);
    assert_eq!(h.reload(&job).skipped_fires, 1, "overlap skip, decided at the instant");
}

#[tokio::test]
async fn pausing_the_scheduler_withdraws_every_fire_recorded_ahead() {
    let h = harness_firing_ahead(std::time::Duration::from_secs(1));
    let first = h.job(json!({"name": "first", "schedule": {"every": "10s"}}));
    let second = h.job(json!({"name": "second", "schedule": {"cron": "*/10 * * * * *"}}));
    assert_eq!(h.at("2026-11-25T10:00:09.5Z").await.len(), 2);
    h.scheduler.pause().await.unwrap();
    assert!(h.runs().is_empty());
    assert_eq!(h.sink.queued(), 0);
    for job in [&first, &second] {
        assert_eq!(h.reload(job).next_fire_at, Some(utc("2026-11-25T10:00:10Z")));
    }
}

#[tokio::test]
async fn after_a_restart_a_fire_recorded_ahead_and_missed_follows_the_misfire_policy() {
    let h = harness_firing_ahead(std::time::Duration::from_secs(1));
    let job = h.job(json!({"schedule": {"every": "10s"}, "policy": {"misfire": "skip"}}));
    assert_eq!(h.at("2026-11-25T10:00:09.5Z").await.len(), 1);
    // The daemon was down from here until 10:00:15; at start-up the fire
    // recorded ahead is planned again instead of running late.
    h.clock.set(utc("2026-11-25T10:00:15Z"));
    h.scheduler.take_back_recorded_ahead().await.unwrap();
    assert!(h.runs().is_empty());
    assert_eq!(h.reload(&job).next_fire_at, Some(utc("2026-11-25T10:00:10Z")));
    assert!(
        h.at("2026-11-25T10:00:15Z").await.is_empty(),
        "skip: the missed fire does not run"
    );
    let job = h.reload(&job);
    assert_eq!(job.skipped_fires, 1);
    assert_eq!(job.next_fire_at, Some(utc("2026-11-25T10:00:20Z")));
}

#[test]
fn passes_that_record_ahead_wake_half_past_a_second() {
    use super::pass_mark;
    for (at, mark) in [
        ("2026-11-25T10:00:09Z", "2026-11-25T10:00:08.5Z"),
        ("2026-11-25T10:00:09.499Z", "2026-11-25T10:00:08.5Z"),
        ("2026-11-25T10:00:09.5Z", "2026-11-25T10:00:09.5Z"),
        ("2026-11-25T10:00:09.999Z", "2026-11-25T10:00:09.5Z"),
        ("1970-01-01T00:00:00.2Z", "1969-12-31T23:59:59.5Z"),
    ] {
        assert_eq!(pass_mark(utc(at)), utc(mark), "{at}");
    }
}

#[tokio::test]
async fn a_pass_records_every_fire_whose_mark_has_come_and_none_later() {
    let h = harness_firing_ahead(std::time::Duration::from_secs(2));
    // Due at 10:00:10 (mark 10:00:07.5) and 10:00:10.6 (mark 10:00:08.5).
    let first = h.job(json!({"name": "first", "schedule": {"at": "2026-11-25T10:00:10Z"}}));
    h.job(json!({"name": "second", "schedule": {"at": "2026-11-25T10:00:10.600Z"}}));
    h.clock.set(utc("2026-11-25T10:00:07.499Z"));
    assert_eq!(h.scheduler.pass().await.unwrap(), Some(utc("2026-11-25T10:00:07.5Z")));
    assert!(h.runs().is_empty());
    // Any pass before the next mark (a job change wakes one) records the same.
    h.clock.set(utc("2026-11-25T10:00:08.2Z"));
    h.scheduler.pass().await.unwrap();
    let next = h.scheduler.pass().await.unwrap();
    assert_eq!(
        h.runs().iter().map(|run| run.job_id.as_str()).collect::<Vec<_>>(),
        [first.id.as_str()]
    );
    assert_eq!(next, Some(utc("2026-11-25T10:00:08.5Z")));
    let runs = h.at("2026-11-25T10:00:08.5Z").await;
    assert_eq!(
        fires(&runs),
        [utc("2026-11-25T10:00:10Z"), utc("2026-11-25T10:00:10.600Z")]
    );
}

#[tokio::test]
async fn an_after_jobs_next_fire_counts_from_its_last_attempts_end() {
    let h = harness();
    let job = h.job(json!({"schedule": {"after": "20s"}}));
    assert_eq!(job.next_fire_at, Some(utc("2026-11-25T10:00:20Z")));
    assert_eq!(h.at("2026-11-25T10:00:20Z").await.len(), 1);
    assert_eq!(h.reload(&job).next_fire_at, None, "it waits for the run's end");
    let ended = |finished_at: &str, retried: bool| RunEnded {
        tenant: "t".into(),
        job_id: job.id.clone(),
        run_id: "r".into(),
        status: RunStatus::Succeeded,
        finished_at: Some(utc(finished_at)),
        retried,
    };
    // A failed attempt with a retry queued is not the last: nothing moves.
    h.ended.send(ended("2026-11-25T10:00:21Z", true)).unwrap();
    h.scheduler.drain_ended().await;
    assert_eq!(h.reload(&job).next_fire_at, None);
    h.ended.send(ended("2026-11-25T10:00:23.5Z", false)).unwrap();
    h.scheduler.drain_ended().await;
    let moved = h.reload(&job);
    assert_eq!(moved.next_fire_at, Some(utc("2026-11-25T10:00:43.5Z")));
    assert_eq!(moved.last_finished_at, Some(utc("2026-11-25T10:00:23.5Z")));
    // The run is over; the next fires at its instant.
    h.sink.queue.lock().unwrap().clear();
    assert_eq!(h.at("2026-11-25T10:00:43.4Z").await.len(), 1, "not before its time");
    let runs = h.at("2026-11-25T10:00:43.5Z").await;
    assert_eq!(
        fires(&runs),
        [utc("2026-11-25T10:00:20Z"), utc("2026-11-25T10:00:43.5Z")]
    );
}

#[tokio::test]
async fn a_run_of_another_job_or_schedule_ending_moves_no_fire() {
    let h = harness();
    let every = h.job(json!({"name": "every", "schedule": {"every": "10s"}}));
    h.ended
        .send(RunEnded {
            tenant: "t".into(),
            job_id: every.id.clone(),
            run_id: "r".into(),
            status: RunStatus::Succeeded,
            finished_at: Some(utc("2026-11-25T10:00:03Z")),
            retried: false,
        })
        .unwrap();
    h.scheduler.drain_ended().await;
    assert_eq!(h.reload(&every), every, "an `every` job keeps its grid");
}

#[tokio::test]
async fn overlap_replace_cancels_the_running_run_through_the_sink_and_queues_the_fire() {
    let h = harness();
    let job = h.job(json!({"schedule": {"every": "10s"}, "policy": {"overlap": "replace"}}));
    assert_eq!(h.at("2026-11-25T10:00:10Z").await.len(), 1);
    // The first run starts (and runs on past the next fire).
    h.sink.queue.lock().unwrap().clear();
    h.sink.running.lock().unwrap().push(job.id.clone());
    assert_eq!(h.at("2026-11-25T10:00:20Z").await.len(), 2);
    assert_eq!(*h.sink.cancelled.lock().unwrap(), std::slice::from_ref(&job.id));
    assert_eq!(h.reload(&job).skipped_fires, 0);
}

#[tokio::test]
async fn a_jittered_fire_keeps_its_instant_and_is_due_later_by_the_same_delay_every_time() {
    let h = harness();
    let job = h.job(json!({"schedule": {"every": "10s", "jitter": "5s"}, "policy": {"overlap": "allow"}}));
    h.at("2026-11-25T10:00:10.001Z").await;
    let runs = h.at("2026-11-25T10:00:20.001Z").await;
    assert_eq!(fires(&runs), [utc("2026-11-25T10:00:10Z"), utc("2026-11-25T10:00:20Z")]);
    for run in &runs {
        let jitter = h.reload(&job).jitter_for(run.scheduled_at);
        assert_eq!(run.jitter_ms as u128, jitter.as_millis(), "{}", run.id);
        assert!(run.jitter_ms < 5000);
        assert_eq!(
            run.due_at(),
            run.scheduled_at + chrono::Duration::milliseconds(run.jitter_ms as i64)
        );
    }
    assert_ne!(runs[0].jitter_ms, runs[1].jitter_ms, "each fire has its own delay");
}

#[tokio::test]
async fn a_job_that_ran_its_max_fires_is_done_and_fires_no_more() {
    let h = harness();
    let job = h.job(
        json!({"schedule": {"every": "10s", "max_fires": 3}, "policy": {"overlap": "allow", "misfire": "run_all"}}),
    );
    assert_eq!(h.at("2026-11-25T10:00:20.001Z").await.len(), 2);
    assert_eq!(h.reload(&job).state(), "active");
    // Two fires are due; only one is left.
    let runs = h.at("2026-11-25T10:00:40.001Z").await;
    assert_eq!(fires(&runs).len(), 3);
    let done = h.reload(&job);
    assert_eq!((done.fired, done.next_fire_at, done.state()), (3, None, "done"));
    assert!(h.at("2026-11-25T10:01:40.001Z").await.len() == 3);
}

#[tokio::test]
async fn a_job_past_its_not_after_is_done() {
    let h = harness();
    let job = h.job(
        json!({"schedule": {"every": "10s", "not_after": "2026-11-25T10:00:25Z"}, "policy": {"overlap": "allow"}}),
    );
    h.at("2026-11-25T10:00:10.001Z").await;
    assert_eq!(h.at("2026-11-25T10:00:20.001Z").await.len(), 2);
    let done = h.reload(&job);
    assert_eq!((done.next_fire_at, done.state()), (None, "done"));
}

#[tokio::test]
async fn a_fire_recorded_ahead_and_withdrawn_is_not_counted_against_max_fires() {
    let h = harness_firing_ahead(std::time::Duration::from_secs(1));
    let job = h.job(json!({"schedule": {"every": "10s", "max_fires": 2}, "policy": {"overlap": "allow"}}));
    assert_eq!(h.at("2026-11-25T10:00:08.5Z").await.len(), 1, "recorded ahead");
    assert_eq!(h.reload(&job).fired, 1);
    // Paused and resumed before its instant: the fire is withdrawn and
    // recorded again, counted once.
    let mut paused = h.reload(&job);
    paused.enabled = false;
    h.scheduler.update_job(&mut paused).await.unwrap();
    assert_eq!((h.reload(&job).fired, h.runs().len()), (0, 0));
    let mut resumed = h.reload(&job);
    resumed.enabled = true;
    h.scheduler.update_job(&mut resumed).await.unwrap();
    assert_eq!(h.at("2026-11-25T10:00:08.6Z").await.len(), 1);
    assert_eq!(h.at("2026-11-25T10:00:18.5Z").await.len(), 2);
    let done = h.reload(&job);
    assert_eq!((done.fired, done.next_fire_at, done.state()), (2, None, "done"));
}
