//! A job's coming fires as its scheduler will fire them: from the job's
//! own next fire (or a fire recorded ahead of its instant), on its own
//! anchor, honouring its schedule's rules (exclusions, bounds, what is
//! left of `max_fires`) with each fire's jitter, and counted per hour so a
//! calendar can fold a frequent job. Pure: the caller passes the job, its
//! earliest fire recorded ahead and the range.

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::model::Job;

/// One coming fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComingFire {
    /// Its instant (the run's `scheduled_at`).
    pub at: DateTime<Utc>,
    /// When its run is due: the instant plus its jitter.
    pub due_at: DateTime<Utc>,
}

/// A job's fires in a range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upcoming {
    /// The first fires, in order, at most the limit asked.
    pub fires: Vec<ComingFire>,
    /// How many fires the range holds in all.
    pub total: u64,
    /// The hours (their start, UTC) with fires, and how many.
    pub hours: Vec<(DateTime<Utc>, u64)>,
}

/// The fires of `job` in [`from`, `to`), the first `limit` of them listed.
/// `ahead` is its earliest fire recorded ahead of its instant, if any. A
/// paused job has none; an `after` job only its next one (the ones after
/// it wait for its runs' ends).
pub fn upcoming(
    job: &Job,
    ahead: Option<DateTime<Utc>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Upcoming {
    let millisecond = Duration::milliseconds(1);
    let (Some(schedule), true) = (&job.schedule, job.enabled) else {
        return Upcoming::default();
    };
    let Some(first) = job.next_fire_or(ahead) else {
        return Upcoming::default();
    };
    let anchor = job.created_at;
    let once = schedule.is_after() || schedule.at().is_some();
    // Fires recorded ahead are counted in `fired` already; they are still to come.
    let recorded_ahead = match (ahead, job.next_fire_at) {
        (Some(ahead), Some(next)) if ahead < next => 1 + schedule.count_fires(anchor, ahead, next - millisecond),
        (Some(_), None) => 1,
        _ => 0,
    };
    let mut left = job
        .fires_left()
        .map_or(u64::MAX, |left| left.saturating_add(recorded_ahead));
    let start = if first >= from {
        Some(first)
    } else if once {
        None
    } else {
        schedule.next_fire(from - millisecond, anchor, None)
    };
    let Some(start) = start.filter(|start| *start < to) else {
        return Upcoming::default();
    };
    let coming = |at: DateTime<Utc>| ComingFire {
        at,
        due_at: crate::units::add_saturating(at, job.jitter_for(at)),
    };
    let mut fires = Vec::new();
    let mut next = Some(start);
    while let Some(at) = next.filter(|at| *at < to && fires.len() < limit && (fires.len() as u64) < left) {
        fires.push(coming(at));
        next = if once {
            None
        } else {
            schedule.next_fire(at, anchor, None)
        };
    }
    // Counted, hour by hour, without walking every fire.
    let count = |after_start: DateTime<Utc>, before: DateTime<Utc>| -> u64 {
        if once {
            u64::from(start >= after_start && start < before)
        } else if before <= after_start {
            0
        } else {
            let first_in = u64::from(after_start == start);
            let after = if after_start == start {
                start
            } else {
                after_start - millisecond
            };
            first_in + schedule.count_fires(anchor, after, before - millisecond)
        }
    };
    let mut hours = Vec::new();
    let mut total = 0;
    let mut hour = start.duration_trunc(Duration::hours(1)).unwrap_or(start);
    while hour < to && left > 0 {
        let end = (hour + Duration::hours(1)).min(to);
        let in_hour = count(hour.max(start), end).min(left);
        if in_hour > 0 {
            hours.push((hour, in_hour));
            total += in_hour;
            left -= in_hour;
        }
        hour += Duration::hours(1);
    }
    Upcoming { fires, total, hours }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::validate::{parse_spec, validate};

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn job(schedule: serde_json::Value, at: &str) -> Job {
        let body = serde_json::json!({"name": "j", "plugin": "p", "schedule": schedule});
        let defaults = crate::config::Config::default().job_defaults();
        validate(parse_spec(&body).unwrap(), "t", None, &defaults, utc(at)).unwrap()
    }

    #[test]
    fn an_every_job_fires_on_its_own_anchor_not_on_the_asking_time() {
        // Made at 06:50:31: it fires at :20:31 and :50:31, whenever asked.
        let job = job(serde_json::json!({"every": "30m"}), "2026-12-04T06:50:31Z");
        let coming = upcoming(&job, None, utc("2026-12-04T07:05:00Z"), utc("2026-12-04T09:00:00Z"), 10);
        let at: Vec<_> = coming.fires.iter().map(|fire| fire.at).collect();
        assert_eq!(
            at,
            [
                utc("2026-12-04T07:20:31Z"),
                utc("2026-12-04T07:50:31Z"),
                utc("2026-12-04T08:20:31Z"),
                utc("2026-12-04T08:50:31Z")
            ]
        );
        assert_eq!(coming.total, 4);
        assert_eq!(
            coming.hours,
            [(utc("2026-12-04T07:00:00Z"), 2), (utc("2026-12-04T08:00:00Z"), 2)]
        );
    }

    #[test]
    fn a_frequent_job_is_counted_per_hour_and_listed_up_to_the_limit() {
        let job = job(
            serde_json::json!({"every": "10s", "jitter": "3s"}),
            "2026-12-04T00:00:00Z",
        );
        let coming = upcoming(&job, None, utc("2026-12-04T00:00:00Z"), utc("2026-12-05T00:00:00Z"), 5);
        assert_eq!(coming.fires.len(), 5);
        assert_eq!(coming.total, 24 * 360 - 1, "the fire at the anchor itself is not one");
        assert_eq!(coming.hours.len(), 24);
        assert_eq!(coming.hours[1], (utc("2026-12-04T01:00:00Z"), 360));
        for fire in &coming.fires {
            assert_eq!(
                fire.due_at,
                fire.at + Duration::milliseconds(job.jitter_for(fire.at).as_millis() as i64)
            );
        }
    }

    #[test]
    fn max_fires_a_fire_recorded_ahead_and_a_pause_are_honoured() {
        let mut job = job(
            serde_json::json!({"every": "1m", "max_fires": 3}),
            "2026-12-04T00:00:00Z",
        );
        // One fire ran, the next is recorded ahead (counted), the job moved on.
        job.fired = 2;
        job.next_fire_at = Some(utc("2026-12-04T00:03:00Z"));
        let ahead = Some(utc("2026-12-04T00:02:00Z"));
        let coming = upcoming(
            &job,
            ahead,
            utc("2026-12-04T00:01:30Z"),
            utc("2026-12-04T01:00:00Z"),
            10,
        );
        let at: Vec<_> = coming.fires.iter().map(|fire| fire.at).collect();
        assert_eq!(at, [utc("2026-12-04T00:02:00Z"), utc("2026-12-04T00:03:00Z")]);
        assert_eq!(coming.total, 2);
        job.enabled = false;
        assert_eq!(
            upcoming(
                &job,
                ahead,
                utc("2026-12-04T00:00:00Z"),
                utc("2026-12-05T00:00:00Z"),
                10
            ),
            Upcoming::default()
        );
    }

    #[test]
    fn an_after_job_shows_its_next_fire_only_and_exclusions_leave_their_days_empty() {
        let after = job(serde_json::json!({"after": "5m"}), "2026-12-04T00:00:00Z");
        let coming = upcoming(
            &after,
            None,
            utc("2026-12-04T00:00:00Z"),
            utc("2026-12-05T00:00:00Z"),
            10,
        );
        assert_eq!((coming.fires.len(), coming.total), (1, 1));
        let daily = job(
            serde_json::json!({"cron": "0 9 * * *", "timezone": "Europe/Paris", "exclude": ["2026-12-25"]}),
            "2026-12-20T00:00:00Z",
        );
        let coming = upcoming(
            &daily,
            None,
            utc("2026-12-24T00:00:00Z"),
            utc("2026-12-27T00:00:00Z"),
            10,
        );
        let at: Vec<_> = coming.fires.iter().map(|fire| fire.at).collect();
        assert_eq!(at, [utc("2026-12-24T08:00:00Z"), utc("2026-12-26T08:00:00Z")]);
        assert_eq!(coming.total, 2);
    }
}
