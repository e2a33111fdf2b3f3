//! The stored form of a job record: compact binary. Every fire rewrites
//! its job's record and the scheduler reads it back when it plans the next
//! one, and a daemon with many jobs keeps their records in sled's cache; in
//! JSON a cron job took 643 bytes, here 129 (see the size test below).
//!
//! Layout: a version byte ([`VERSION`]), then what a fire checks and a
//! run's end reads (enabled, `updated_at`, `next_fire_at`, the schedule,
//! the webhooks, `failures`), so [`stamp_and_failures`] and [`hooks`]
//! stop early; then every other field of [`Job`], each in the form `codec`
//! gives its type. A schedule is a kind byte and its parts: a cron line
//! and its zone name, an interval, or an instant. The input is its JSON text (none for `null`). Records
//! written as JSON by older versions (first byte `{`) still read, and
//! version 1 records (before `after_jobs`) and version 2 ones (before
//! `failures`, after the webhooks, and the last fields: `fired`, a flag
//! then the schedule's zone and rules, `failure_handler`, the policy's
//! `pause_after_failures` and `concurrency`) and version 3 ones (before
//! `record`, the last field). The
//! encoder destructures [`Job`], so a new field does not compile until it
//! has a place here (and a new [`VERSION`] if old records lack it).

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::codec::{Reader, Writer, code, priority_code, priority_of};
use crate::model::Job;
use crate::model::job::{AfterJobs, Concurrency, Limits, Misfire, Overlap, Policy, Retry, Webhook, WebhookEvent};
use crate::model::when::When;
use crate::store::records::JobHooks;
use crate::timing::{CronExpr, DateSpan, Exclusion, Kind, Rules, Schedule};

/// The first byte of a binary record (JSON ones start with `{`).
const VERSION: u8 = 4;

/// The first byte of a record written before jobs could record their runs.
const VERSION_3: u8 = 3;

/// The first byte of a record written before schedules had rules (and
/// jobs a count of fires that ran).
const VERSION_2: u8 = 2;

/// The first byte of a record written before jobs could wait for other
/// jobs (`after_jobs`, the last field, is absent).
const VERSION_1: u8 = 1;

/// What a fire checks of its job's stored record: a user's change moves
/// `updated_at`, and a fire planned before it is refused. Fires of the
/// same instant recorded twice are told apart by their run ids.
#[derive(Debug, PartialEq, serde::Deserialize)]
pub struct Stamp {
    /// False: paused.
    pub enabled: bool,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The next fire the record holds.
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// Encodes a job record.
pub fn encode(job: &Job) -> Vec<u8> {
    let Job {
        id,
        tenant,
        name,
        plugin,
        schedule,
        input,
        limits,
        policy,
        enabled,
        labels,
        run_at_start,
        record,
        http_allow,
        secrets,
        webhooks,
        created_at,
        updated_at,
        next_fire_at,
        skipped_fires,
        fired,
        failures,
        last_finished_at,
        after_jobs,
        failure_handler,
    } = job;
    let mut out = Writer(Vec::with_capacity(128 + name.len() + plugin.len()));
    out.0.push(VERSION);
    out.flag(*enabled);
    out.instant(updated_at);
    out.option(next_fire_at.as_ref(), Writer::instant);
    match schedule.as_ref().map(|schedule| (&schedule.kind, schedule.timezone)) {
        None => out.0.push(0),
        Some((Kind::Cron { expression, .. }, timezone)) => {
            out.0.push(1);
            out.bytes(expression.as_bytes());
            out.bytes(timezone.name().as_bytes());
        }
        Some((Kind::Every(every), _)) => {
            out.0.push(2);
            out.duration(every);
        }
        Some((Kind::After(after), _)) => {
            out.0.push(3);
            out.duration(after);
        }
        Some((Kind::At(at), _)) => {
            out.0.push(4);
            out.instant(at);
        }
    }
    out.uint(webhooks.len() as u64);
    for Webhook { url, on } in webhooks {
        out.bytes(url.as_bytes());
        out.uint(on.len() as u64);
        out.0.extend(on.iter().map(|event| event_code(*event)));
    }
    out.uint(*failures);
    for text in [id, tenant, name, plugin] {
        out.bytes(text.as_bytes());
    }
    if input.is_null() {
        out.bytes(&[]);
    } else {
        out.bytes(&serde_json::to_vec(input).expect("a serde_json::Value always serializes"));
    }
    let Limits {
        fuel,
        timeout,
        memory,
        output,
    } = limits;
    out.option(fuel.as_ref(), |out, value| out.uint(*value));
    out.duration(timeout);
    out.uint(*memory);
    out.uint(*output);
    let Policy {
        misfire,
        misfire_window,
        overlap,
        retry,
        priority,
        pause_after_failures,
        concurrency,
    } = policy;
    out.0.push(misfire_code(*misfire));
    out.duration(misfire_window);
    out.0.push(overlap_code(*overlap));
    let Retry {
        max_attempts,
        backoff,
        max_backoff,
    } = retry;
    out.uint(u64::from(*max_attempts));
    out.duration(backoff);
    out.duration(max_backoff);
    out.0.push(priority_code(*priority));
    out.uint(labels.len() as u64);
    for (label, value) in labels {
        out.bytes(label.as_bytes());
        out.bytes(value.as_bytes());
    }
    out.flag(*run_at_start);
    out.texts(http_allow);
    out.texts(secrets);
    out.instant(created_at);
    out.uint(*skipped_fires);
    out.option(last_finished_at.as_ref(), Writer::instant);
    out.option(after_jobs.as_ref(), |out, after| {
        out.texts(&after.jobs);
        out.0.push(when_code(after.when));
    });
    out.uint(*fired);
    let ruled = schedule
        .as_ref()
        .filter(|schedule| !schedule.rules.is_empty() || schedule.timezone != Tz::UTC);
    out.option(ruled, write_rules);
    out.option(failure_handler.as_ref(), |out, name| out.bytes(name.as_bytes()));
    out.option(pause_after_failures.as_ref(), |out, count| out.uint(u64::from(*count)));
    out.option(concurrency.as_ref(), write_concurrency);
    out.flag(*record);
    out.0
}

/// A concurrency group: its key and limit (a run's record holds one too).
pub(super) fn write_concurrency(out: &mut Writer, group: &Concurrency) {
    out.bytes(group.key.as_bytes());
    out.uint(u64::from(group.limit));
}

/// Reads what [`write_concurrency`] wrote.
pub(super) fn read_concurrency(input: &mut Reader<'_>) -> Result<Concurrency, String> {
    Ok(Concurrency {
        key: input.text()?,
        limit: input.u32()?,
    })
}

/// A schedule's zone (a cron line's is with the line) and rules.
fn write_rules(out: &mut Writer, schedule: &Schedule) {
    out.bytes(schedule.timezone.name().as_bytes());
    let Rules {
        jitter,
        exclude,
        not_before,
        not_after,
        max_fires,
    } = &schedule.rules;
    out.option(jitter.as_ref(), Writer::duration);
    out.uint(exclude.len() as u64);
    for exclusion in exclude {
        match exclusion {
            Exclusion::Dates(span) => {
                out.0.push(0);
                out.bytes(span.text().as_bytes());
            }
            Exclusion::Calendar { name, dates } => {
                out.0.push(1);
                out.bytes(name.as_bytes());
                out.texts(&dates.iter().map(DateSpan::text).collect::<Vec<_>>());
            }
        }
    }
    out.option(not_before.as_ref(), Writer::instant);
    out.option(not_after.as_ref(), Writer::instant);
    out.option(max_fires.as_ref(), |out, max| out.uint(*max));
}

/// Reads what [`write_rules`] wrote into `schedule`.
fn read_rules(input: &mut Reader<'_>, schedule: &mut Schedule) -> Result<(), String> {
    let zone = input.text()?;
    schedule.timezone = zone.parse::<Tz>().map_err(|_| format!("unknown time zone {zone}"))?;
    let span = |text: String| DateSpan::parse(&text).map_err(|error| format!("exclude: {error}"));
    schedule.rules = Rules {
        jitter: input.option(Reader::duration)?,
        exclude: (0..input.count()?)
            .map(|_| match input.byte()? {
                0 => Ok(Exclusion::Dates(span(input.text()?)?)),
                1 => Ok(Exclusion::Calendar {
                    name: input.text()?,
                    dates: input.texts()?.into_iter().map(span).collect::<Result<_, _>>()?,
                }),
                other => Err(format!("unknown exclusion kind {other}")),
            })
            .collect::<Result<_, String>>()?,
        not_before: input.option(Reader::instant)?,
        not_after: input.option(Reader::instant)?,
        max_fires: input.option(Reader::uint)?,
    };
    Ok(())
}

/// Decodes a job record, binary or JSON.
pub fn decode(bytes: &[u8]) -> Result<Job, String> {
    let Some(mut input) = binary(bytes)? else {
        return serde_json::from_slice(bytes).map_err(|error| error.to_string());
    };
    let version = bytes[0];
    let stamp = read_stamp(&mut input)?;
    let schedule = read_schedule(&mut input)?.parse()?;
    let webhooks = read_webhooks(&mut input)?;
    let failures = if version >= VERSION_3 { input.uint()? } else { 0 };
    let job = Job {
        id: input.text()?,
        tenant: input.text()?,
        name: input.text()?,
        plugin: input.text()?,
        schedule,
        input: match input.bytes()? {
            [] => serde_json::Value::Null,
            text => serde_json::from_slice(text).map_err(|error| format!("input: {error}"))?,
        },
        limits: Limits {
            fuel: input.option(Reader::uint)?,
            timeout: input.duration()?,
            memory: input.uint()?,
            output: input.uint()?,
        },
        policy: Policy {
            misfire: code(input.byte()?, misfire_of, "misfire")?,
            misfire_window: input.duration()?,
            overlap: code(input.byte()?, overlap_of, "overlap")?,
            retry: Retry {
                max_attempts: input.u32()?,
                backoff: input.duration()?,
                max_backoff: input.duration()?,
            },
            priority: code(input.byte()?, priority_of, "priority")?,
            pause_after_failures: None,
            concurrency: None,
        },
        enabled: stamp.enabled,
        labels: (0..input.count()?)
            .map(|_| Ok((input.text()?, input.text()?)))
            .collect::<Result<_, String>>()?,
        run_at_start: input.flag("run_at_start")?,
        record: false,
        http_allow: input.texts()?,
        secrets: input.texts()?,
        webhooks,
        created_at: input.instant()?,
        updated_at: stamp.updated_at,
        next_fire_at: stamp.next_fire_at,
        skipped_fires: input.uint()?,
        fired: 0,
        failures,
        last_finished_at: input.option(Reader::instant)?,
        after_jobs: if version >= VERSION_2 {
            input.option(|input| {
                Ok(AfterJobs {
                    jobs: input.texts()?,
                    when: code(input.byte()?, when_of, "when")?,
                })
            })?
        } else {
            None
        },
        failure_handler: None,
    };
    let mut job = job;
    if version >= VERSION_3 {
        job.fired = input.uint()?;
        let ruled = input.flag("rules")?;
        match job.schedule.as_mut() {
            Some(schedule) if ruled => read_rules(&mut input, schedule)?,
            None if ruled => return Err("rules without a schedule".to_string()),
            _ => {}
        }
        job.failure_handler = input.option(Reader::text)?;
        job.policy.pause_after_failures = input.option(Reader::u32)?;
        job.policy.concurrency = input.option(read_concurrency)?;
    }
    if version >= VERSION {
        job.record = input.flag("record")?;
    }
    input.end("job")?;
    Ok(job)
}

/// A job record's hooks (see [`JobHooks`]), binary or JSON, without
/// parsing its schedule or reading the fields after the webhooks.
pub fn hooks(bytes: &[u8]) -> Result<JobHooks, String> {
    head(bytes).map(|(_, hooks)| hooks)
}

/// What a fire checks of a job record (its stamp) and what a write of the
/// job keeps of it (its count of failed runs, see
/// `JobStore::count_outcome`), binary or JSON, without the rest.
pub fn stamp_and_failures(bytes: &[u8]) -> Result<(Stamp, u64), String> {
    head(bytes).map(|(stamp, hooks)| (stamp, hooks.failures))
}

/// The record's stamp and hooks, what comes before the rest of the job.
fn head(bytes: &[u8]) -> Result<(Stamp, JobHooks), String> {
    let Some(mut input) = binary(bytes)? else {
        let stamp = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
        let hooks = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
        return Ok((stamp, hooks));
    };
    let version = bytes[0];
    let stamp = read_stamp(&mut input)?;
    let after = matches!(read_schedule(&mut input)?, StoredSchedule::After(_));
    let webhooks = read_webhooks(&mut input)?;
    let hooks = JobHooks {
        after,
        webhooks,
        failures: if version >= VERSION_3 { input.uint()? } else { 0 },
    };
    Ok((stamp, hooks))
}

/// The record of `job` (`record`, its encoding) with `failures` as its
/// count of failed runs: `record` itself when that is the job's count.
pub fn with_failures<'a>(job: &Job, record: &'a [u8], failures: u64) -> std::borrow::Cow<'a, [u8]> {
    if failures == job.failures {
        return std::borrow::Cow::Borrowed(record);
    }
    let mut counted = job.clone();
    counted.failures = failures;
    std::borrow::Cow::Owned(encode(&counted))
}

/// A reader after the version byte of a binary record; None for JSON.
fn binary(bytes: &[u8]) -> Result<Option<Reader<'_>>, String> {
    match bytes.first() {
        Some(b'{') => Ok(None),
        Some(&(VERSION | VERSION_3 | VERSION_2 | VERSION_1)) => Ok(Some(Reader(&bytes[1..]))),
        Some(other) => Err(format!("unknown job record version {other}")),
        None => Err("empty job record".to_string()),
    }
}

fn read_stamp(input: &mut Reader<'_>) -> Result<Stamp, String> {
    Ok(Stamp {
        enabled: input.flag("enabled")?,
        updated_at: input.instant()?,
        next_fire_at: input.option(Reader::instant)?,
    })
}

/// A schedule as stored, before its cron line and zone are parsed.
enum StoredSchedule<'a> {
    None,
    Cron { expression: &'a [u8], timezone: &'a [u8] },
    Every(Duration),
    After(Duration),
    At(DateTime<Utc>),
}

fn read_schedule<'a>(input: &mut Reader<'a>) -> Result<StoredSchedule<'a>, String> {
    Ok(match input.byte()? {
        0 => StoredSchedule::None,
        1 => StoredSchedule::Cron {
            expression: input.bytes()?,
            timezone: input.bytes()?,
        },
        2 => StoredSchedule::Every(input.duration()?),
        3 => StoredSchedule::After(input.duration()?),
        4 => StoredSchedule::At(input.instant()?),
        other => return Err(format!("unknown schedule kind {other}")),
    })
}

impl StoredSchedule<'_> {
    fn parse(self) -> Result<Option<Schedule>, String> {
        Ok(Some(match self {
            StoredSchedule::None => return Ok(None),
            StoredSchedule::Cron { expression, timezone } => {
                let expression = String::from_utf8(expression.to_vec()).map_err(|error| error.to_string())?;
                let parsed = CronExpr::parse(&expression).map_err(|error| format!("schedule: {}", error.message))?;
                let timezone = std::str::from_utf8(timezone)
                    .ok()
                    .and_then(|name| name.parse::<Tz>().ok())
                    .ok_or_else(|| format!("unknown time zone {}", String::from_utf8_lossy(timezone)))?;
                Schedule {
                    timezone,
                    ..Schedule::of(Kind::Cron { expression, parsed })
                }
            }
            StoredSchedule::Every(every) => Schedule::of(Kind::Every(every)),
            StoredSchedule::After(after) => Schedule::of(Kind::After(after)),
            StoredSchedule::At(at) => Schedule::of(Kind::At(at)),
        }))
    }
}

fn read_webhooks(input: &mut Reader<'_>) -> Result<Vec<Webhook>, String> {
    (0..input.count()?)
        .map(|_| {
            let url = input.text()?;
            let on = (0..input.count()?)
                .map(|_| code(input.byte()?, event_of, "webhook event"))
                .collect::<Result<_, _>>()?;
            Ok(Webhook { url, on })
        })
        .collect()
}

// Codes of the enums: never reuse or renumber one (see `codec`).

fn when_code(when: When) -> u8 {
    match when {
        When::Success => 0,
        When::Failure => 1,
        When::Always => 2,
    }
}

fn when_of(code: u8) -> Option<When> {
    Some(match code {
        0 => When::Success,
        1 => When::Failure,
        2 => When::Always,
        _ => return None,
    })
}

fn misfire_code(misfire: Misfire) -> u8 {
    match misfire {
        Misfire::Skip => 0,
        Misfire::RunOnce => 1,
        Misfire::RunAll => 2,
    }
}

fn misfire_of(code: u8) -> Option<Misfire> {
    Some(match code {
        0 => Misfire::Skip,
        1 => Misfire::RunOnce,
        2 => Misfire::RunAll,
        _ => return None,
    })
}

fn overlap_code(overlap: Overlap) -> u8 {
    match overlap {
        Overlap::Skip => 0,
        Overlap::Allow => 1,
        Overlap::Queue => 2,
        Overlap::Replace => 3,
    }
}

fn overlap_of(code: u8) -> Option<Overlap> {
    Some(match code {
        0 => Overlap::Skip,
        1 => Overlap::Allow,
        2 => Overlap::Queue,
        3 => Overlap::Replace,
        _ => return None,
    })
}

fn event_code(event: WebhookEvent) -> u8 {
    match event {
        WebhookEvent::Started => 0,
        WebhookEvent::Succeeded => 1,
        WebhookEvent::Failed => 2,
        WebhookEvent::Recovered => 3,
        WebhookEvent::Paused => 4,
    }
}

fn event_of(code: u8) -> Option<WebhookEvent> {
    Some(match code {
        0 => WebhookEvent::Started,
        1 => WebhookEvent::Succeeded,
        2 => WebhookEvent::Failed,
        3 => WebhookEvent::Recovered,
        4 => WebhookEvent::Paused,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::job::Priority;

    /// A job from its spec, validated as the API would (tenant `acme`).
    fn validated(spec: serde_json::Value) -> Job {
        let defaults = crate::config::Config::default().job_defaults();
        let parsed = crate::model::validate::parse_spec(&spec).unwrap();
        crate::model::validate::validate(parsed, "acme", None, &defaults, Utc::now()).unwrap()
    }

    /// A job with every field set to something other than its default.
    fn full_job() -> Job {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc);
        let mut job = validated(serde_json::json!({
            "name": "nightly.report_2",
            "plugin": "report@7",
            "schedule": {"cron": "30 2 * * 1-5", "timezone": "Europe/Lisbon"},
            "input": {"rows": [1, 2.5, null, "x"], "deep": {"ok": true}},
            "limits": {"fuel": 1000, "timeout": "90s", "memory": "32MiB", "output": "2KiB"},
            "policy": {"misfire": "run_all", "misfire_window": "2h", "overlap": "replace",
                       "retry": {"max_attempts": 5, "backoff": "1.5s", "max_backoff": "10m"},
                       "priority": "critical"},
            "enabled": false,
            "labels": {"team": "dätä", "tier": "1"},
            "run_at_start": true,
            "http_allow": ["api.example.com", "*.example.org"],
            "secrets": ["TOKEN"],
            "webhooks": [{"url": "https://hooks.example.com/a", "on": ["started", "failed"]},
                         {"url": "https://hooks.example.com/b"}],
        }));
        job.created_at = at("1969-07-20T20:17:40.5Z");
        job.updated_at = at("2026-12-02T10:00:00.123456789Z");
        job.next_fire_at = Some(at("2026-12-03T02:30:00Z"));
        job.skipped_fires = u64::MAX;
        job.last_finished_at = Some(at("2026-12-02T02:30:01.25Z"));
        job
    }

    #[test]
    fn every_field_round_trips() {
        let job = full_job();
        assert_eq!(job.policy.priority, Priority::Critical);
        let bytes = encode(&job);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode(&bytes).unwrap(), job);
    }

    #[test]
    fn every_schedule_kind_round_trips() {
        for schedule in [
            serde_json::json!(null),
            serde_json::json!({"cron": "*/5 * * * * *"}),
            serde_json::json!({"every": "90s"}),
            serde_json::json!({"after": "1h"}),
            serde_json::json!({"at": "2030-01-01T00:00:00.5+02:00"}),
        ] {
            let job = validated(serde_json::json!({"name": "j", "plugin": "p", "schedule": schedule}));
            assert_eq!(decode(&encode(&job)).unwrap(), job, "{schedule}");
            let hooks = hooks(&encode(&job)).unwrap();
            assert_eq!(hooks, JobHooks::of(&job), "{schedule}");
        }
    }

    #[test]
    fn the_stamp_and_the_hooks_read_as_the_whole_record_says() {
        let job = full_job();
        for bytes in [encode(&job), serde_json::to_vec(&job).unwrap()] {
            let (stamp, failures) = stamp_and_failures(&bytes).unwrap();
            assert_eq!(failures, job.failures);
            assert_eq!(
                stamp,
                Stamp {
                    enabled: job.enabled,
                    updated_at: job.updated_at,
                    next_fire_at: job.next_fire_at,
                }
            );
            assert_eq!(hooks(&bytes).unwrap(), JobHooks::of(&job));
        }
    }

    #[test]
    fn a_record_written_as_json_still_reads() {
        let job = full_job();
        assert_eq!(decode(&serde_json::to_vec(&job).unwrap()).unwrap(), job);
    }

    #[test]
    fn a_broken_record_is_an_error_not_a_panic() {
        let bytes = encode(&full_job());
        for length in 0..bytes.len() {
            assert!(decode(&bytes[..length]).is_err(), "cut at {length}");
        }
        assert!(
            decode(&[bytes.as_slice(), &[0]].concat())
                .unwrap_err()
                .contains("left after")
        );
        assert!(decode(&[9, 1, 2]).unwrap_err().contains("version 9"));
        assert!(stamp_and_failures(&[]).is_err());
        let mut bad_zone = encode(&validated(serde_json::json!({"name": "j", "plugin": "p",
            "schedule": {"cron": "* * * * *", "timezone": "Asia/Tokyo"}})));
        let at = bad_zone.windows(5).position(|part| part == b"Tokyo").unwrap();
        bad_zone[at..at + 5].copy_from_slice(b"Tokyp");
        assert!(decode(&bad_zone).unwrap_err().contains("Asia/Tokyp"));
    }

    #[test]
    fn every_enum_code_reads_back_as_its_variant() {
        for code in 0..=u8::MAX {
            assert!(misfire_of(code).is_none_or(|value| misfire_code(value) == code));
            assert!(overlap_of(code).is_none_or(|value| overlap_code(value) == code));
            assert!(event_of(code).is_none_or(|value| event_code(value) == code));
        }
        assert_eq!((0..=u8::MAX).filter_map(misfire_of).count(), 3);
        assert_eq!((0..=u8::MAX).filter_map(overlap_of).count(), 4);
        assert_eq!((0..=u8::MAX).filter_map(event_of).count(), 5);
    }

    /// The figures in the module's doc: a job as the cron bench makes them.
    #[test]
    fn a_cron_job_is_a_quarter_of_its_json() {
        let mut job = validated(serde_json::json!({"name": "cron-1234", "plugin": "noop",
            "schedule": {"cron": "34 0/10 * * * *"}}));
        job.next_fire_at = Some(Utc::now());
        let (binary, json) = (encode(&job).len(), serde_json::to_vec(&job).unwrap().len());
        assert!(binary * 4 <= json + 40, "{binary} bytes against {json}");
        assert!(binary < 160, "{binary} bytes");
    }

    #[test]
    fn a_job_waiting_for_others_round_trips_and_a_version_1_record_waits_for_none() {
        let mut job = validated(serde_json::json!({"name": "after", "plugin": "noop"}));
        job.after_jobs = Some(AfterJobs {
            jobs: vec!["a".into(), "b".into()],
            when: When::Always,
        });
        assert_eq!(decode(&encode(&job)).unwrap(), job);
        job.after_jobs = None;
        let mut bytes = encode(&job);
        // Version 4 is version 3 with `record` last ...
        let mut version_3 = bytes.clone();
        assert_eq!(version_3.pop(), Some(0));
        version_3[0] = VERSION_3;
        assert_eq!(decode(&version_3).unwrap(), job);
        // ... version 3 is version 2 with `failures` after the webhooks ...
        let mut failing = job.clone();
        failing.failures = 300;
        let at = bytes
            .iter()
            .zip(encode(&failing))
            .position(|(now, then)| *now != then)
            .expect("the count is written");
        assert_eq!(bytes.remove(at), 0);
        // ... and no fire run, no rules, no failure_handler, no
        // pause_after_failures, no concurrency last.
        assert_eq!(bytes.split_off(bytes.len() - 6), [0, 0, 0, 0, 0, 0]);
        bytes[0] = VERSION_2;
        assert_eq!(decode(&bytes).unwrap(), job);
        assert_eq!(bytes.pop(), Some(0), "version 2 is version 1 and the trailing field");
        bytes[0] = VERSION_1;
        assert_eq!(decode(&bytes).unwrap(), job);
    }

    #[test]
    fn a_schedules_zone_and_rules_the_fires_run_failures_and_handler_round_trip() {
        let calendar = vec![crate::timing::DateSpan::parse("2026-01-01").unwrap()];
        for schedule in [
            serde_json::json!({"every": "1h", "timezone": "Europe/Berlin", "exclude": ["2026-12-24..2026-12-26", "holidays"],
                "jitter": "30s", "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z", "max_fires": 3}),
            serde_json::json!({"cron": "0 9 * * *", "timezone": "America/New_York", "jitter": "5m"}),
            serde_json::json!({"after": "1m", "max_fires": 1}),
            serde_json::json!({"at": "2030-01-01T00:00:00Z", "jitter": "1s"}),
        ] {
            let mut job = validated(serde_json::json!({"name": "ruled", "plugin": "noop", "schedule": schedule}));
            if let Some(schedule) = job.schedule.as_mut() {
                schedule.rules.resolve_calendars(|_| Some(calendar.clone())).unwrap();
            }
            job.fired = 2;
            job.failures = 3;
            job.failure_handler = Some("cleanup".into());
            job.policy.pause_after_failures = Some(5);
            job.policy.concurrency = Some(Concurrency {
                key: "reports".into(),
                limit: 2,
            });
            assert_eq!(decode(&encode(&job)).unwrap(), job, "{schedule}");
            assert_eq!(hooks(&encode(&job)).unwrap().failures, 3);
        }
    }
}
