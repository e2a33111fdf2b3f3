//! Scheduling decisions as plain functions over plain data: which fires of a
//! due job become runs (misfire policy), whether a fire may start beside the
//! job's earlier runs (overlap policy), and how long a retry waits (backoff).
//! The scheduler and the executor both call these, so they sit below
//! both; nothing here reads a clock or touches storage.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::job::{Misfire, Overlap};
use crate::timing::{Kind, Schedule};

/// A fire this much behind its instant still counts as on time: a busy
/// scheduler is late by milliseconds, a daemon that was down by much more.
pub const ON_TIME: Duration = Duration::from_secs(1);

/// The most runs one catch-up (`run_all`) queues for one job.
pub const MAX_CATCH_UP_RUNS: usize = 10_000;

/// What to do with a job whose next fire is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePlan {
    /// Instants to queue runs for, oldest first.
    pub fires: Vec<DateTime<Utc>>,
    /// Missed fires that will not run (counted on the job).
    pub skipped: u64,
    /// The job's next fire after this one.
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// Fires from `first` (a fire) up to `until` inclusive, at most `limit`.
fn list_fires(
    schedule: &Schedule,
    anchor: DateTime<Utc>,
    first: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
) -> Vec<DateTime<Utc>> {
    let mut fires = Vec::new();
    let mut next = Some(first);
    while let Some(fire) = next.filter(|fire| *fire <= until && fires.len() < limit) {
        fires.push(fire);
        next = schedule.next_fire(fire, anchor, None);
    }
    fires
}

/// Plans the fires of a job whose next fire `due` is at or before `now`.
///
/// Fires older than `misfire_window` are dropped and counted; among the rest,
/// those behind `now` by more than [`ON_TIME`] were missed (the daemon was
/// down or the job paused) and follow `misfire`: `skip` drops them, `run_once`
/// runs the latest of them once, `run_all` runs each (up to
/// [`MAX_CATCH_UP_RUNS`]). Fires within [`ON_TIME`] always run. Dropped fires
/// are counted, not enumerated, however long the outage.
pub fn plan_fires(
    schedule: &Schedule,
    anchor: DateTime<Utc>,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    misfire: Misfire,
    misfire_window: Duration,
) -> FirePlan {
    let next_fire_at = match schedule.kind {
        // `after` counts from the end of the run this fire starts.
        Kind::After(_) | Kind::At(_) => None,
        _ => schedule.next_fire(now, anchor, None),
    };
    if due > now {
        return FirePlan {
            fires: Vec::new(),
            skipped: 0,
            next_fire_at: Some(due),
        };
    }
    let millisecond = chrono::Duration::milliseconds(1);
    let window = chrono::Duration::from_std(misfire_window).unwrap_or(chrono::Duration::MAX);
    let oldest_kept = now.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let on_time_cut = now - chrono::Duration::from_std(ON_TIME).expect("one second fits");
    // `due` and every fire after it up to `before` (exclusive).
    let count_from_due = |start: DateTime<Utc>, before: DateTime<Utc>| -> u64 {
        if start >= before {
            0
        } else {
            1 + schedule.count_fires(anchor, start, before - millisecond)
        }
    };
    // Beyond the window: dropped and counted.
    let (expired, first_kept) = if due < oldest_kept {
        let first_kept = schedule.next_fire(oldest_kept - millisecond, anchor, None);
        (count_from_due(due, oldest_kept), first_kept)
    } else {
        (0, Some(due))
    };
    let Some(first_kept) = first_kept.filter(|first| *first <= now) else {
        return FirePlan {
            fires: Vec::new(),
            skipped: expired,
            next_fire_at,
        };
    };
    // Missed (older than ON_TIME) and current fires.
    let missed = count_from_due(first_kept, on_time_cut);
    let first_current = if first_kept >= on_time_cut {
        Some(first_kept)
    } else {
        schedule.next_fire(on_time_cut - millisecond, anchor, None)
    };
    let current = first_current.map_or_else(Vec::new, |first| list_fires(schedule, anchor, first, now, usize::MAX));
    let (mut fires, skipped_missed) = match misfire {
        _ if missed == 0 => (Vec::new(), 0),
        Misfire::Skip => (Vec::new(), missed),
        Misfire::RunOnce => {
            let latest = schedule.last_fire_between(anchor, first_kept, on_time_cut - millisecond);
            (latest.into_iter().collect(), missed - 1)
        }
        Misfire::RunAll => {
            let listed = list_fires(
                schedule,
                anchor,
                first_kept,
                on_time_cut - millisecond,
                MAX_CATCH_UP_RUNS,
            );
            let beyond = missed - listed.len() as u64;
            (listed, beyond)
        }
    };
    fires.extend(current);
    FirePlan {
        fires,
        skipped: expired + skipped_missed,
        next_fire_at,
    }
}

/// The most runs one backfill queues.
pub const MAX_BACKFILL_RUNS: u64 = 1000;

/// Why a range cannot be backfilled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackfillRefusal {
    /// `after` fires count from runs' ends, on demand jobs have none.
    #[error("{0}")]
    NoFixedFires(&'static str),
    /// The range holds more fires than one backfill queues.
    #[error("the range holds {fires} fires; a backfill queues at most {MAX_BACKFILL_RUNS}: split it")]
    TooMany {
        /// How many.
        fires: u64,
    },
}

/// The fires of `schedule` (anchored at `anchor`) in [`from`, `to`), under
/// its rules (exclusions and bounds; `max_fires` counts the scheduler's
/// fires, not these), oldest first. An `every` grid is taken back before
/// its anchor (the fires it would have had).
pub fn backfill_fires(
    schedule: Option<&Schedule>,
    anchor: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, BackfillRefusal> {
    let Some(schedule) = schedule else {
        return Err(BackfillRefusal::NoFixedFires(
            "the job runs on demand only: it has no fires to backfill",
        ));
    };
    if schedule.is_after() {
        return Err(BackfillRefusal::NoFixedFires(
            "an `after` schedule's fires follow its runs' ends: it has no fires to backfill",
        ));
    }
    let millisecond = chrono::Duration::milliseconds(1);
    if to <= from {
        return Ok(Vec::new());
    }
    // An `every` grid reaches back before the job was made.
    let anchor = match schedule.kind {
        Kind::Every(every) if from <= anchor => {
            let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
            let periods = (anchor - from).num_milliseconds() / every.num_milliseconds().max(1) + 1;
            i32::try_from(periods)
                .ok()
                .and_then(|periods| every.checked_mul(periods))
                .and_then(|back| anchor.checked_sub_signed(back))
                .unwrap_or(anchor)
        }
        _ => anchor,
    };
    let total = schedule.count_fires(anchor, from - millisecond, to - millisecond);
    if total > MAX_BACKFILL_RUNS {
        return Err(BackfillRefusal::TooMany { fires: total });
    }
    let mut fires = Vec::new();
    let mut next = schedule.next_fire(from - millisecond, anchor, None);
    while let Some(fire) = next.filter(|fire| *fire < to) {
        fires.push(fire);
        next = schedule.next_fire(fire, anchor, None);
    }
    Ok(fires)
}

/// What the overlap policy says about a new fire of a job that already has
/// `running` runs and `waiting` queued runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapDecision {
    /// Queue the new run.
    Start,
    /// Queue it and cancel the running ones.
    ReplaceRunning,
    /// Drop the fire (it is counted as skipped).
    Skip,
}

/// Applies the job's overlap policy.
pub fn overlap(policy: Overlap, running: usize, waiting: usize) -> OverlapDecision {
    let busy = running + waiting > 0;
    match policy {
        Overlap::Allow => OverlapDecision::Start,
        Overlap::Skip if busy => OverlapDecision::Skip,
        Overlap::Skip => OverlapDecision::Start,
        // At most one waiting behind the running one.
        Overlap::Queue if waiting >= 1 => OverlapDecision::Skip,
        Overlap::Queue => OverlapDecision::Start,
        Overlap::Replace if running > 0 => OverlapDecision::ReplaceRunning,
        Overlap::Replace if waiting > 0 => OverlapDecision::Skip,
        Overlap::Replace => OverlapDecision::Start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn schedule(value: serde_json::Value) -> Schedule {
        Schedule::from_json(&value).unwrap().unwrap()
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn an_on_time_fire_runs_and_the_next_is_planned() {
        let every = schedule(json!({"every": "10s"}));
        let anchor = utc("2026-11-25T10:00:00Z");
        let plan = plan_fires(
            &every,
            anchor,
            utc("2026-11-25T10:00:10Z"),
            utc("2026-11-25T10:00:10.004Z"),
            Misfire::Skip,
            DAY,
        );
        assert_eq!(plan.fires, [utc("2026-11-25T10:00:10Z")]);
        assert_eq!(plan.skipped, 0);
        assert_eq!(plan.next_fire_at, Some(utc("2026-11-25T10:00:20Z")));
    }

    #[test]
    fn misfire_after_downtime_follows_each_policy() {
        // Every minute; the daemon was down from 10:00:30 to 10:05:30.
        let every = schedule(json!({"every": "1m"}));
        let anchor = utc("2026-11-25T10:00:00Z");
        let (due, now) = (utc("2026-11-25T10:01:00Z"), utc("2026-11-25T10:05:30Z"));
        let skip = plan_fires(&every, anchor, due, now, Misfire::Skip, DAY);
        assert_eq!((skip.fires.len(), skip.skipped), (0, 5));
        let once = plan_fires(&every, anchor, due, now, Misfire::RunOnce, DAY);
        assert_eq!(
            once.fires,
            [utc("2026-11-25T10:05:00Z")],
            "the latest missed fire, once"
        );
        assert_eq!(once.skipped, 4);
        let all = plan_fires(&every, anchor, due, now, Misfire::RunAll, DAY);
        assert_eq!(all.fires.len(), 5);
        assert_eq!(all.fires[0], due);
        assert_eq!(all.skipped, 0);
        for plan in [skip, once, all] {
            assert_eq!(plan.next_fire_at, Some(utc("2026-11-25T10:06:00Z")));
        }
    }

    #[test]
    fn the_window_bounds_catch_up_by_time_and_long_outages_are_counted_not_walked() {
        // Every second, down for a year: 31.5 million missed fires.
        let every = schedule(json!({"every": "1s"}));
        let anchor = utc("2025-11-25T00:00:00Z");
        let (due, now) = (utc("2025-11-25T00:00:01Z"), utc("2026-11-25T00:00:00.500Z"));
        let started = std::time::Instant::now();
        let all = plan_fires(&every, anchor, due, now, Misfire::RunAll, Duration::from_secs(60));
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(all.fires.len(), 60, "only the last minute runs");
        assert_eq!(
            all.fires.len() as u64 + all.skipped,
            365 * 86400,
            "every fire is run or counted"
        );
        // run_once: the latest missed fire once, plus the fire that is on time.
        let once = plan_fires(&every, anchor, due, now, Misfire::RunOnce, DAY);
        assert_eq!(once.fires, [utc("2026-11-24T23:59:59Z"), utc("2026-11-25T00:00:00Z")]);
        assert_eq!(once.skipped, 365 * 86400 - 2);
    }

    #[test]
    fn cron_misfires_are_counted_across_dst() {
        // Hourly in New York across the fall-back day: 25 fires in that day.
        let hourly = schedule(json!({"cron": "0 * * * *", "timezone": "America/New_York"}));
        let anchor = utc("2026-10-01T00:00:00Z");
        let due = utc("2026-11-01T04:00:00Z"); // 00:00 EDT
        let now = utc("2026-11-02T04:59:00Z"); // 23:59 EST
        let skip = plan_fires(&hourly, anchor, due, now, Misfire::Skip, DAY * 7);
        assert_eq!(skip.skipped, 25);
        assert_eq!(skip.next_fire_at, Some(utc("2026-11-02T05:00:00Z")));
    }

    #[test]
    fn overlap_policies() {
        use OverlapDecision::*;
        let rows = [
            (Overlap::Skip, 0, 0, Start),
            (Overlap::Skip, 1, 0, Skip),
            (Overlap::Skip, 0, 1, Skip),
            (Overlap::Allow, 3, 2, Start),
            (Overlap::Queue, 1, 0, Start),
            (Overlap::Queue, 1, 1, Skip),
            (Overlap::Replace, 1, 0, ReplaceRunning),
            (Overlap::Replace, 0, 0, Start),
        ];
        for (policy, running, waiting, expected) in rows {
            assert_eq!(
                overlap(policy, running, waiting),
                expected,
                "{policy:?} with {running} running, {waiting} waiting"
            );
        }
    }

    #[test]
    fn a_backfill_takes_the_fires_from_its_start_included_to_its_end_excluded_and_refuses_past_the_cap() {
        let anchor = utc("2026-11-25T10:00:00Z");
        let hourly = schedule(json!({"cron": "0 * * * *", "exclude": ["2026-11-26"]}));
        let fires = backfill_fires(
            Some(&hourly),
            anchor,
            utc("2026-11-25T12:00:00Z"),
            utc("2026-11-25T15:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            fires,
            [
                utc("2026-11-25T12:00:00Z"),
                utc("2026-11-25T13:00:00Z"),
                utc("2026-11-25T14:00:00Z")
            ]
        );
        let around = backfill_fires(
            Some(&hourly),
            anchor,
            utc("2026-11-25T23:00:00Z"),
            utc("2026-11-27T01:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            around,
            [utc("2026-11-25T23:00:00Z"), utc("2026-11-27T00:00:00Z")],
            "no fire on the excluded day"
        );
        let every = schedule(json!({"every": "1s"}));
        assert_eq!(
            backfill_fires(Some(&every), anchor, anchor, anchor + chrono::Duration::seconds(1001)),
            Err(BackfillRefusal::TooMany { fires: 1001 })
        );
        let most = backfill_fires(Some(&every), anchor, anchor, anchor + chrono::Duration::seconds(1000)).unwrap();
        assert_eq!(most.len(), 1000);
        let hourly_every = schedule(json!({"every": "1h"}));
        let before = backfill_fires(Some(&hourly_every), anchor, utc("2026-11-25T07:30:00Z"), anchor).unwrap();
        assert_eq!(
            before,
            [utc("2026-11-25T08:00:00Z"), utc("2026-11-25T09:00:00Z")],
            "the grid before the job was made, its anchor excluded as the range's end"
        );
        assert!(matches!(
            backfill_fires(
                Some(&schedule(json!({"after": "1m"}))),
                anchor,
                anchor,
                anchor + chrono::Duration::hours(1)
            ),
            Err(BackfillRefusal::NoFixedFires(_))
        ));
        assert!(matches!(
            backfill_fires(None, anchor, anchor, anchor),
            Err(BackfillRefusal::NoFixedFires(_))
        ));
    }
}
