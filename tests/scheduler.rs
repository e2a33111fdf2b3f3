//! Black-box tests of the scheduler: jobs fire by themselves, survive
//! SIGKILL without losing or doubling fires, honour misfire and overlap
//! policies, retry, cancel, and `run_at_start`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every run of a job, oldest first by scheduled_at.
async fn runs_of(daemon: &TestDaemon, job: &str) -> Vec<Value> {
    let answer = daemon
        .call(Method::GET, &format!("/v1/runs?job={job}&limit=500"), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let mut runs = answer.body["runs"].as_array().unwrap().clone();
    runs.sort_by_key(|run| instant(&run["scheduled_at"]));
    runs
}

fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("not a time: {value}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// Polls until `done` holds for the job's runs, or panics after `limit`.
async fn wait_for_runs(daemon: &TestDaemon, job: &str, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let runs = runs_of(daemon, job).await;
        if done(&runs) {
            return runs;
        }
        assert!(started.elapsed() < limit, "gave up after {limit:?}; runs: {runs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_finished(run: &Value) -> bool {
    ["succeeded", "failed", "cancelled"].contains(&run["status"].as_str().unwrap())
}

fn finished(runs: &[Value]) -> usize {
    runs.iter().filter(|run| is_finished(run)).count()
}

/// A catch-up run was queued at least a second after its fire (the
/// scheduler only calls a fire missed when it is that late).
fn is_catch_up(run: &Value) -> bool {
    instant(&run["queued_at"]) - instant(&run["scheduled_at"]) >= chrono::Duration::seconds(1)
}

#[tokio::test]
async fn an_every_second_job_runs_at_least_three_times_in_four_seconds() {
    let daemon = TestDaemon::start();
    daemon
        .job_with("tick", "noop", json!({"schedule": {"every": "1s"}}))
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let runs = runs_of(&daemon, "tick").await;
    assert!(finished(&runs) >= 3, "{runs:#?}");
    for run in &runs {
        assert_eq!(run["trigger"], "schedule");
        if let Some(lateness) = run["lateness_ms"].as_i64() {
            assert!(lateness < 1000, "a fire was {lateness} ms late");
        }
    }
}

#[tokio::test]
async fn an_at_job_fires_once_and_is_done() {
    let daemon = TestDaemon::start();
    let at = (Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let job = daemon.job_with("once", "noop", json!({"schedule": {"at": at}})).await;
    assert_eq!(job["state"], "active");
    let runs = wait_for_runs(&daemon, "once", Duration::from_secs(10), |runs| finished(runs) == 1).await;
    let due = instant(&json!(at));
    assert_eq!(
        instant(&runs[0]["scheduled_at"]).timestamp_millis(),
        due.timestamp_millis()
    );
    let job = daemon.call(Method::GET, "/v1/jobs/once", None).await.body;
    assert_eq!(job["state"], "done");
    assert_eq!(job["next_fire_at"], Value::Null);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs_of(&daemon, "once").await.len(), 1, "it fired once");
}

#[tokio::test]
async fn an_after_job_fires_its_delay_after_each_run_ends_including_a_run_asked_for() {
    let daemon = TestDaemon::start();
    daemon
        .job_with("breather", "noop", json!({"schedule": {"after": "1s"}}))
        .await;
    let runs = wait_for_runs(&daemon, "breather", Duration::from_secs(15), |runs| finished(runs) >= 2).await;
    let mut runs: Vec<&Value> = runs.iter().filter(|run| is_finished(run)).collect();
    runs.sort_by_key(|run| instant(&run["scheduled_at"]));
    let (first, second) = (runs[0], runs[1]);
    let finished_at = instant(&first["finished_at"]);
    assert_eq!(
        instant(&second["scheduled_at"]).timestamp_millis(),
        (finished_at + chrono::Duration::seconds(1)).timestamp_millis(),
        "{runs:#?}"
    );
    // A run asked for is a run too: the next fire counts from its end.
    let job = daemon
        .call(
            Method::PATCH,
            "/v1/jobs/breather",
            Some(json!({"schedule": {"after": "1h"}})),
        )
        .await;
    assert_eq!(job.status, StatusCode::OK, "{}", job.body);
    let manual = daemon.run_job("breather", None).await;
    let ended = instant(&manual["finished_at"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let job = daemon.call(Method::GET, "/v1/jobs/breather", None).await.body;
        if job["next_fire_at"].is_string() && instant(&job["next_fire_at"]) == ended + chrono::Duration::hours(1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the next fire did not move: {job}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_fire_recorded_ahead_is_withdrawn_by_a_pause_and_caught_up_on_resume() {
    if common::on_postgres() {
        // On PostgreSQL the daemon is a node of a cluster, whose fires are
        // recorded at their instant (`fire_ahead` 0, docs/cluster.md).
        return;
    }
    let daemon = TestDaemon::start_with(&["--fire-ahead", "3s"], &[]);
    let at_text =
        (Utc::now() + chrono::Duration::milliseconds(2500)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let at = instant(&json!(at_text));
    daemon
        .job_with("once", "noop", json!({"schedule": {"at": at_text}}))
        .await;
    // Within the window: the run is queued for its instant, the job still
    // shows that fire as next.
    let queued = wait_for_runs(&daemon, "once", Duration::from_secs(2), |runs| runs.len() == 1).await;
    assert_eq!(queued[0]["status"], "queued");
    assert_eq!(instant(&queued[0]["scheduled_at"]), at);
    let job = daemon.call(Method::GET, "/v1/jobs/once", None).await.body;
    assert_eq!(job["state"], "active", "{job}");
    assert_eq!(instant(&job["next_fire_at"]), at);
    let paused = daemon.call(Method::POST, "/v1/jobs/once/pause", None).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert!(runs_of(&daemon, "once").await.is_empty(), "the pause withdrew it");
    assert_eq!(instant(&paused.body["next_fire_at"]), at, "and kept the fire");
    // Past the instant nothing ran; resuming catches the fire up once.
    tokio::time::sleep(until(at) + Duration::from_millis(300)).await;
    assert!(runs_of(&daemon, "once").await.is_empty());
    daemon.call(Method::POST, "/v1/jobs/once/resume", None).await;
    let runs = wait_for_runs(&daemon, "once", Duration::from_secs(10), |runs| finished(runs) == 1).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(instant(&runs[0]["scheduled_at"]), at);
    let job = daemon.call(Method::GET, "/v1/jobs/once", None).await.body;
    assert_eq!(job["state"], "done");
}

fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or_default()
}

#[tokio::test]
async fn sigkill_while_jobs_fire_loses_no_fire_and_doubles_none() {
    let mut daemon = TestDaemon::start();
    daemon
        .job_with(
            "steady",
            "noop",
            json!({"schedule": {"every": "1s"}, "policy": {"misfire": "run_all"}}),
        )
        .await;
    for round in 0..5 {
        tokio::time::sleep(Duration::from_millis(1100 + 150 * round)).await;
        daemon.restart();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The next fire may already be queued ahead of its instant; the history
    // is the runs that are due.
    let due = |runs: &[Value]| -> Vec<Value> {
        let now = Utc::now();
        runs.iter()
            .filter(|run| instant(&run["scheduled_at"]) <= now)
            .cloned()
            .collect()
    };
    let runs = wait_for_runs(&daemon, "steady", Duration::from_secs(20), |runs| {
        let due = due(runs);
        due.len() >= 5 && finished(&due) == due.len()
    })
    .await;
    let runs = due(&runs);
    let fires: Vec<DateTime<Utc>> = runs.iter().map(|run| instant(&run["scheduled_at"])).collect();
    let unique: HashSet<&DateTime<Utc>> = fires.iter().collect();
    assert_eq!(unique.len(), fires.len(), "a fire was recorded twice: {fires:#?}");
    for pair in fires.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "a gap in the history: {fires:#?}"
        );
    }
    let span = *fires.last().unwrap() - fires[0];
    assert!(
        span >= chrono::Duration::seconds(6),
        "the history spans the five restarts: {fires:#?}"
    );
}

async fn history_after_downtime(misfire: &str) -> (Vec<Value>, Value) {
    let mut daemon = TestDaemon::start();
    daemon
        .job_with(
            "job",
            "noop",
            json!({"schedule": {"every": "2s"}, "policy": {"misfire": misfire}}),
        )
        .await;
    wait_for_runs(&daemon, "job", Duration::from_secs(10), |runs| finished(runs) >= 1).await;
    daemon.kill();
    tokio::time::sleep(Duration::from_millis(5500)).await;
    daemon.start_again();
    // Past the restart and the next on-time fire.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Every run due by now has finished (a fire recorded ahead of its
    // instant waits queued).
    let runs = wait_for_runs(&daemon, "job", Duration::from_secs(10), |runs| {
        runs.iter()
            .all(|run| is_finished(run) || instant(&run["scheduled_at"]) > Utc::now())
    })
    .await;
    let job = daemon.call(Method::GET, "/v1/jobs/job", None).await.body;
    (runs, job)
}

#[tokio::test]
async fn misfire_skip_drops_the_fires_missed_while_down_and_counts_them() {
    let (runs, job) = history_after_downtime("skip").await;
    assert_eq!(runs.iter().filter(|run| is_catch_up(run)).count(), 0, "{runs:#?}");
    assert!(job["skipped_fires"].as_u64().unwrap() >= 2, "{job}");
}

#[tokio::test]
async fn misfire_run_once_runs_the_missed_fires_once() {
    let (runs, job) = history_after_downtime("run_once").await;
    assert_eq!(runs.iter().filter(|run| is_catch_up(run)).count(), 1, "{runs:#?}");
    assert!(job["skipped_fires"].as_u64().unwrap() >= 1, "{job}");
}

#[tokio::test]
async fn misfire_run_all_runs_every_missed_fire() {
    let (runs, job) = history_after_downtime("run_all").await;
    assert!(runs.iter().filter(|run| is_catch_up(run)).count() >= 2, "{runs:#?}");
    let fires: Vec<DateTime<Utc>> = runs.iter().map(|run| instant(&run["scheduled_at"])).collect();
    for pair in fires.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(2),
            "no fire is missing: {fires:#?}"
        );
    }
    assert_eq!(job["skipped_fires"], 0);
}

#[tokio::test]
async fn overlap_skip_counts_fires_instead_of_piling_runs_up() {
    let daemon = TestDaemon::start();
    daemon
        .job_with(
            "slow",
            "spin",
            json!({"schedule": {"every": "1s"}, "limits": {"timeout": "2500ms"}}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let runs = runs_of(&daemon, "slow").await;
    let job = daemon.call(Method::GET, "/v1/jobs/slow", None).await.body;
    assert!(job["skipped_fires"].as_u64().unwrap() >= 2, "{job}");
    assert!(runs.len() <= 3, "runs piled up: {runs:#?}");
    let mut busy_until: Option<DateTime<Utc>> = None;
    for run in runs.iter().filter(|run| !run["started_at"].is_null()) {
        let started = instant(&run["started_at"]);
        if let Some(previous_end) = busy_until {
            assert!(started >= previous_end, "two runs overlapped: {runs:#?}");
        }
        busy_until = run["finished_at"].as_str().map(|_| instant(&run["finished_at"]));
        if busy_until.is_none() {
            break;
        }
    }
}

#[tokio::test]
async fn cancel_stops_a_spinning_run_quickly_and_a_queued_one_at_once() {
    let daemon = TestDaemon::start_with(&["--max-concurrent-runs", "1"], &[]);
    daemon
        .job_with("spin", "spin", json!({"limits": {"timeout": "60s"}}))
        .await;
    let running = daemon.call(Method::POST, "/v1/jobs/spin/run", None).await.body;
    let waiting = daemon.call(Method::POST, "/v1/jobs/spin/run", None).await.body;
    let running_id = running["id"].as_str().unwrap();
    wait_for_runs(&daemon, "spin", Duration::from_secs(10), |runs| {
        runs.iter().any(|run| run["status"] == "running")
    })
    .await;

    let started = Instant::now();
    let cancelled = daemon
        .call(Method::POST, &format!("/v1/runs/{running_id}/cancel"), None)
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["error"], Value::Null);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "cancel took {:?}",
        started.elapsed()
    );

    // The second run was waiting for the one slot and starts now; cancel it too.
    let waiting_id = waiting["id"].as_str().unwrap();
    let second = daemon
        .call(Method::POST, &format!("/v1/runs/{waiting_id}/cancel"), None)
        .await;
    assert_eq!(second.body["status"], "cancelled");
    let again = daemon
        .call(Method::POST, &format!("/v1/runs/{running_id}/cancel"), None)
        .await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "run_finished"));
}

#[tokio::test]
async fn failed_runs_retry_with_backoff_as_new_attempts_of_one_lineage() {
    let daemon = TestDaemon::start();
    daemon
        .job_with(
            "flaky",
            "trap",
            json!({"policy": {"retry": {"max_attempts": 3, "backoff": "100ms", "max_backoff": "200ms"}}}),
        )
        .await;
    let first = daemon.run_job("flaky", None).await;
    assert_eq!(first["error"]["kind"], "trap");
    let runs = wait_for_runs(&daemon, "flaky", Duration::from_secs(10), |runs| {
        runs.len() == 3 && finished(runs) == 3
    })
    .await;
    let attempts: Vec<u64> = runs.iter().map(|run| run["attempt"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [1, 2, 3]);
    let triggers: Vec<&str> = runs.iter().map(|run| run["trigger"].as_str().unwrap()).collect();
    assert_eq!(triggers, ["manual", "retry", "retry"]);
    for retry in &runs[1..] {
        assert_eq!(retry["retry_of"], first["id"]);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs_of(&daemon, "flaky").await.len(), 3, "no fourth attempt");

    // A retry by hand: a new attempt of a finished run.
    let manual = daemon
        .call(
            Method::POST,
            &format!("/v1/runs/{}/retry", runs[2]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(manual.status, StatusCode::ACCEPTED, "{}", manual.body);
    assert_eq!(manual.body["attempt"], 4);
    assert_eq!(manual.body["trigger"], "retry");
}

#[tokio::test]
async fn a_run_waited_for_to_its_final_attempt_answers_with_the_last_retry() {
    let daemon = TestDaemon::start();
    daemon
        .job_with(
            "flaky",
            "trap",
            json!({"policy": {"retry": {"max_attempts": 3, "backoff": "100ms", "max_backoff": "200ms"}}}),
        )
        .await;
    let answer = daemon
        .call(Method::POST, "/v1/jobs/flaky/run?wait=30s&final_attempt=true", None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["attempt"], 3, "{}", answer.body);
    assert_eq!(answer.body["status"], "failed");
    assert_eq!(answer.body["trigger"], "retry");
    // Without it, the first attempt's end is the answer.
    let first = daemon.call(Method::POST, "/v1/jobs/flaky/run?wait=30s", None).await;
    assert_eq!(first.body["attempt"], 1, "{}", first.body);
    // A wait too short for the retries answers 202 with the attempt going on.
    daemon
        .job_with(
            "slow_retries",
            "trap",
            json!({"policy": {"retry": {"max_attempts": 2, "backoff": "30s"}}}),
        )
        .await;
    let pending = daemon
        .call(
            Method::POST,
            "/v1/jobs/slow_retries/run?wait=1s&final_attempt=true",
            None,
        )
        .await;
    assert_eq!(pending.status, StatusCode::ACCEPTED, "{}", pending.body);
    assert_eq!(pending.body["attempt"], 2, "{}", pending.body);
    assert_eq!(pending.body["status"], "queued");
    // Only with wait.
    let refused = daemon
        .call(Method::POST, "/v1/jobs/flaky/run?final_attempt=true", None)
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.message().contains("final_attempt"), "{}", refused.body);
}

#[tokio::test]
async fn run_at_start_fires_once_per_start() {
    let mut daemon = TestDaemon::start();
    daemon.job_with("warm", "noop", json!({"run_at_start": true})).await;
    wait_for_runs(&daemon, "warm", Duration::from_secs(10), |runs| finished(runs) == 1).await;
    daemon.restart();
    wait_for_runs(&daemon, "warm", Duration::from_secs(10), |runs| finished(runs) == 2).await;
    daemon.restart();
    let runs = wait_for_runs(&daemon, "warm", Duration::from_secs(10), |runs| finished(runs) == 3).await;
    assert!(runs.iter().all(|run| run["trigger"] == "start"), "{runs:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs_of(&daemon, "warm").await.len(), 3);
}

#[tokio::test]
async fn pausing_the_scheduler_stops_fires_and_status_shows_it() {
    let daemon = TestDaemon::start();
    daemon
        .job_with(
            "tick",
            "noop",
            json!({"schedule": {"every": "1s"}, "policy": {"misfire": "skip"}}),
        )
        .await;
    let status = daemon.call(Method::GET, "/v1/status", None).await.body;
    assert_eq!(status["scheduler"], "running");
    assert_eq!(status["jobs"], 1);
    assert_eq!(status["next_fires"][0]["job"], "tick");
    let paused = daemon.call(Method::POST, "/v1/scheduler/pause", None).await;
    assert_eq!(paused.body["scheduler"], "paused");
    let before = runs_of(&daemon, "tick").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        runs_of(&daemon, "tick").await.len(),
        before,
        "nothing fired while paused"
    );
    assert_eq!(
        daemon.call(Method::GET, "/v1/status", None).await.body["scheduler"],
        "paused"
    );
    daemon.call(Method::POST, "/v1/scheduler/resume", None).await;
    wait_for_runs(&daemon, "tick", Duration::from_secs(5), |runs| runs.len() > before).await;
    let job = daemon.call(Method::GET, "/v1/jobs/tick", None).await.body;
    assert!(
        job["skipped_fires"].as_u64().unwrap() >= 1,
        "fires missed while paused are counted: {job}"
    );
}

/// The (instant, due) pairs a job's fires endpoint lists for a range.
async fn coming_fires(daemon: &TestDaemon, job: &str, from: &str, to: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let path = format!("/v1/jobs/{job}/fires?from={from}&to={to}&limit=1000");
    let answer = daemon.call(Method::GET, &path, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|fire| (instant(&fire["at"]), instant(&fire["due_at"])))
        .collect()
}

#[tokio::test]
async fn a_jittered_run_starts_at_its_fires_own_delay_never_earlier_and_the_delay_survives_a_restart() {
    let mut daemon = TestDaemon::start();
    daemon
        .job_with(
            "jittery",
            "noop",
            json!({"schedule": {"every": "1s", "jitter": "800ms"}}),
        )
        .await;
    let text = |at: DateTime<Utc>| {
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .replace('+', "%2B")
    };
    let (from, to) = (Utc::now(), Utc::now() + chrono::Duration::seconds(60));
    let listed = coming_fires(&daemon, "jittery", &text(from), &text(to)).await;
    assert!(listed.len() >= 55, "{listed:?}");
    let delays: HashSet<i64> = listed.iter().map(|(at, due)| (*due - *at).num_milliseconds()).collect();
    assert!(delays.iter().all(|delay| (0..800).contains(delay)), "{delays:?}");
    assert!(delays.len() > 10, "each fire has its own delay: {delays:?}");
    let runs = wait_for_runs(&daemon, "jittery", Duration::from_secs(10), |runs| finished(runs) >= 3).await;
    for run in runs.iter().filter(|run| is_finished(run)) {
        let (at, due) = (instant(&run["scheduled_at"]), instant(&run["due_at"]));
        assert_eq!(
            listed.iter().find(|(listed, _)| *listed == at).map(|(_, due)| *due),
            Some(due),
            "{run}"
        );
        let started = instant(&run["started_at"]);
        assert!(started >= due, "started before its jittered instant: {run}");
        assert_eq!(
            run["lateness_ms"].as_i64(),
            Some((started - due).num_milliseconds()),
            "{run}"
        );
    }
    daemon.restart();
    let again = coming_fires(&daemon, "jittery", &text(from), &text(to)).await;
    assert!(!again.is_empty());
    for (at, due) in &again {
        let before = listed.iter().find(|(listed, _)| listed == at).map(|(_, due)| due);
        assert_eq!(before, Some(due), "the fire at {at} moved");
    }
}

#[tokio::test]
async fn calendars_and_excluded_dates_move_fires_and_bounds_end_jobs() {
    let daemon = TestDaemon::start();
    daemon.upload("noop", "noop").await;
    let today = Utc::now().date_naive();
    let day = |offset: i64| (today + chrono::Duration::days(offset)).to_string();
    let noon = |offset: i64| format!("{}T12:00:00Z", day(offset));
    let first_noon = if Utc::now().time() < chrono::NaiveTime::from_hms_opt(12, 0, 0).unwrap() {
        0
    } else {
        1
    };
    // Unknown calendar: refused, naming the entry.
    let refused = daemon
        .call(
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "daily", "plugin": "noop",
            "schedule": {"cron": "0 12 * * *", "exclude": ["2026-01-01", "holidays"]}})),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::BAD_REQUEST, "calendar_not_found"),
        "{}",
        refused.body
    );
    assert!(refused.message().contains("schedule.exclude[1]"), "{}", refused.body);
    // Today and tomorrow are holidays: the next noon is the day after.
    let range = format!("{}..{}", day(0), day(1));
    let set = daemon
        .call(
            Method::PUT,
            "/v1/calendars/holidays",
            Some(json!({"dates": [range], "description": "days off"})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let job = daemon
        .create_job(
            json!({"name": "daily", "plugin": "noop", "schedule": {"cron": "0 12 * * *", "exclude": ["holidays"]}}),
        )
        .await;
    assert_eq!(instant(&job["next_fire_at"]), instant(&json!(noon(2))), "{job}");
    assert_eq!(job["schedule"]["exclude"], json!(["holidays"]));
    let shown = daemon.call(Method::GET, "/v1/calendars/holidays", None).await.body;
    assert_eq!(
        (shown["used_by"].clone(), shown["dates"].clone()),
        (json!(["daily"]), json!([range]))
    );
    // In use: not deleted. Emptied: the job's next fire comes back.
    let in_use = daemon.call(Method::DELETE, "/v1/calendars/holidays", None).await;
    assert_eq!(
        (in_use.status, in_use.code()),
        (StatusCode::CONFLICT, "calendar_in_use"),
        "{}",
        in_use.body
    );
    let emptied = daemon
        .call(Method::PUT, "/v1/calendars/holidays", Some(json!({"dates": []})))
        .await;
    assert_eq!(emptied.status, StatusCode::OK, "{}", emptied.body);
    let job = daemon.call(Method::GET, "/v1/jobs/daily", None).await.body;
    assert_eq!(
        instant(&job["next_fire_at"]),
        instant(&json!(noon(first_noon))),
        "{job}"
    );
    // Dates written in the schedule, in its zone.
    let own = daemon
        .create_job(json!({"name": "own", "plugin": "noop",
            "schedule": {"cron": "0 12 * * *", "exclude": [day(first_noon)], "timezone": "UTC"}}))
        .await;
    assert_eq!(
        instant(&own["next_fire_at"]),
        instant(&json!(noon(first_noon + 1))),
        "{own}"
    );
    for bad in [json!(["2026-02-30"]), json!("2026-12-25")] {
        let refused = daemon
            .call(Method::PUT, "/v1/calendars/holidays", Some(json!({"dates": bad})))
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        assert!(refused.message().starts_with("dates"), "{}", refused.body);
    }
    // Bounds: two fires, then done; past not_after, done.
    daemon
        .create_job(json!({"name": "twice", "plugin": "noop", "schedule": {"every": "1s", "max_fires": 2}}))
        .await;
    let not_after = (Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    daemon
        .create_job(json!({"name": "brief", "plugin": "noop", "schedule": {"every": "1s", "not_after": not_after}}))
        .await;
    let runs = wait_for_runs(&daemon, "twice", Duration::from_secs(10), |runs| finished(runs) == 2).await;
    assert_eq!(runs.len(), 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for name in ["twice", "brief"] {
        let job = daemon.call(Method::GET, &format!("/v1/jobs/{name}"), None).await.body;
        assert_eq!(
            (job["state"].as_str(), job["next_fire_at"].clone()),
            (Some("done"), Value::Null),
            "{job}"
        );
    }
    assert_eq!(runs_of(&daemon, "twice").await.len(), 2, "no third fire");
    let late = daemon
        .call(
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "late", "plugin": "noop",
            "schedule": {"every": "1s", "not_after": "2020-01-01T00:00:00Z"}})),
        )
        .await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{}", late.body);
    assert!(late.message().starts_with("schedule.not_after"), "{}", late.body);
}

#[tokio::test]
async fn a_backfill_queues_a_past_ranges_fires_once_with_their_instants_and_refuses_past_its_cap() {
    let daemon = TestDaemon::start();
    daemon
        .job_with("hourly", "noop", json!({"schedule": {"cron": "0 * * * *"}}))
        .await;
    let top = chrono::DurationRound::duration_trunc(Utc::now(), chrono::Duration::hours(1)).unwrap();
    let hour = |back: i64| (top - chrono::Duration::hours(back)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // The job's own fires (at the top of an hour the test may cross) aside.
    let backfilled = |runs: &[Value]| -> Vec<Value> {
        runs.iter()
            .filter(|run| run["trigger"] == "backfill")
            .cloned()
            .collect()
    };
    let backfill = |from: String, to: String| {
        let daemon = &daemon;
        async move {
            daemon
                .call(
                    Method::POST,
                    "/v1/jobs/hourly/backfill",
                    Some(json!({"from": from, "to": to})),
                )
                .await
        }
    };
    // From included, to excluded: three fires.
    let first = backfill(hour(5), hour(2)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(
        (first.body["fires"].as_u64(), first.body["queued"].as_u64()),
        (Some(3), Some(3)),
        "{}",
        first.body
    );
    let expected: HashSet<String> = [hour(5), hour(4), hour(3)].into_iter().collect();
    assert_eq!(first.body["runs"].as_array().map(Vec::len), Some(3));
    let runs = wait_for_runs(&daemon, "hourly", Duration::from_secs(10), |runs| {
        finished(&backfilled(runs)) == 3
    })
    .await;
    for run in &backfilled(&runs) {
        assert_eq!(run["status"], "succeeded", "{run}");
        let at = instant(&run["scheduled_at"]).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert!(expected.contains(&at), "{at} is not one of {expected:?}");
    }
    // The same range again queues nothing; an overlapping one only what is new.
    let again = backfill(hour(5), hour(2)).await;
    assert_eq!(
        (again.body["queued"].as_u64(), again.body["already_recorded"].as_u64()),
        (Some(0), Some(3)),
        "{}",
        again.body
    );
    let wider = backfill(hour(6), hour(3)).await;
    assert_eq!(
        (wider.body["queued"].as_u64(), wider.body["already_recorded"].as_u64()),
        (Some(1), Some(2)),
        "{}",
        wider.body
    );
    wait_for_runs(&daemon, "hourly", Duration::from_secs(10), |runs| {
        finished(&backfilled(runs)) == 4
    })
    .await;
    // Past the cap, in the future, or with no fixed fires: refused, nothing queued.
    daemon
        .create_job(json!({"name": "fast", "plugin": "noop", "schedule": {"every": "1s"}, "enabled": false}))
        .await;
    let too_many = daemon
        .call(
            Method::POST,
            "/v1/jobs/fast/backfill",
            Some(json!({"from": hour(2), "to": hour(1)})),
        )
        .await;
    assert_eq!(
        (too_many.status, too_many.code()),
        (StatusCode::BAD_REQUEST, "backfill_too_large"),
        "{}",
        too_many.body
    );
    assert!(too_many.message().contains("3600 fires"), "{}", too_many.body);
    let too_long = backfill("2020-01-01T00:00:00Z".to_string(), hour(1)).await;
    assert_eq!(
        (too_long.status, too_long.code()),
        (StatusCode::BAD_REQUEST, "invalid_field"),
        "{}",
        too_long.body
    );
    assert!(too_long.message().contains("366 days"), "{}", too_long.body);
    let future = backfill(hour(1), hour(-2)).await;
    assert_eq!(
        (future.status, future.code()),
        (StatusCode::BAD_REQUEST, "invalid_field"),
        "{}",
        future.body
    );
    assert!(future.message().starts_with("to:"), "{}", future.body);
    daemon
        .create_job(json!({"name": "breather", "plugin": "noop", "schedule": {"after": "1m"}}))
        .await;
    let after = daemon
        .call(
            Method::POST,
            "/v1/jobs/breather/backfill",
            Some(json!({"from": hour(2), "to": hour(1)})),
        )
        .await;
    assert_eq!(
        (after.status, after.code()),
        (StatusCode::BAD_REQUEST, "invalid_schedule"),
        "{}",
        after.body
    );
    assert!(runs_of(&daemon, "fast").await.is_empty());
    assert_eq!(backfilled(&runs_of(&daemon, "hourly").await).len(), 4);
}

#[tokio::test]
async fn a_concurrency_group_never_runs_more_than_its_limit_across_its_jobs() {
    let daemon = TestDaemon::start_with(&["--max-concurrent-runs", "4"], &[]);
    let policy = json!({"concurrency": {"key": "db", "limit": 2}, "overlap": "allow"});
    let slow = json!({"sleep_ms": 300});
    daemon
        .job_with("load-a", "step", json!({"policy": policy, "input": slow}))
        .await;
    for name in ["load-b", "free"] {
        let policy = if name == "free" {
            json!({"overlap": "allow"})
        } else {
            policy.clone()
        };
        daemon
            .create_job(json!({"name": name, "plugin": "step", "policy": policy, "input": slow}))
            .await;
    }
    let bad = daemon
        .call(
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "x", "plugin": "step", "policy": {"concurrency": {"key": "db", "limit": 0}}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.message().starts_with("policy.concurrency.limit"), "{}", bad.body);
    for name in [
        "load-a", "load-b", "load-a", "load-b", "load-a", "load-b", "free", "free",
    ] {
        let queued = daemon.call(Method::POST, &format!("/v1/jobs/{name}/run"), None).await;
        assert!(queued.status.is_success(), "{}", queued.body);
        let group = if name == "free" {
            Value::Null
        } else {
            json!({"key": "db", "limit": 2})
        };
        assert_eq!(queued.body["concurrency"], group, "{}", queued.body);
    }
    let mut spans = Vec::new();
    for name in ["load-a", "load-b", "free"] {
        let expected = if name == "free" { 2 } else { 3 };
        let runs = wait_for_runs(&daemon, name, Duration::from_secs(20), |runs| {
            finished(runs) == expected
        })
        .await;
        for run in runs {
            assert_eq!(run["status"], "succeeded", "{run}");
            spans.push((name, instant(&run["started_at"]), instant(&run["finished_at"])));
        }
    }
    // The most of the group's runs executing at one instant.
    let most_at_once = |group: &[&str]| {
        let members: Vec<_> = spans.iter().filter(|(name, ..)| group.contains(name)).collect();
        members
            .iter()
            .map(|(_, start, _)| {
                members
                    .iter()
                    .filter(|(_, other_start, other_end)| other_start <= start && start < other_end)
                    .count()
            })
            .max()
            .unwrap_or(0)
    };
    assert_eq!(
        most_at_once(&["load-a", "load-b"]),
        2,
        "the group runs two at once, never more: {spans:?}"
    );
    assert!(
        most_at_once(&["load-a", "load-b", "free"]) >= 3,
        "a run of no group goes beside it: {spans:?}"
    );
}
