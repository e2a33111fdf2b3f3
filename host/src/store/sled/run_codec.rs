//! The stored form of a run record: compact binary, written two or three
//! times per run (queued, maybe running, finished), so its cost is in
//! every run's, on disk and in sled's cache.
//!
//! Layout ([`VERSION`] 5): a version byte, then every field of [`Run`] in
//! declaration order, each in the form `codec` gives its type, except what
//! the record's key or its other fields already say: the run's id and
//! tenant are its key's (`R tenant \0 id`), so they are not stored;
//! `job_id`, `retry_of` and `plugin_digest` are compact texts (ids as their
//! 16 bytes, the digest as its 32); `queued_at`, `started_at` and
//! `finished_at` are nanoseconds from `scheduled_at`; `duration_ms` and
//! `lateness_ms` are one byte when they are what the instants give. A
//! finished noop run is 132 bytes (223 in version 1, ~800 as JSON).
//! Version 3 added the workflow step a run belongs to, last (version 2
//! records have none); version 4 the jitter of a fire's run, after
//! `queued_at` (older records have none), from which `lateness_ms` counts,
//! and its concurrency group, last; version 5 what a recorded run kept of
//! its host calls, after `log_size`, and whether the run records, last.
//! Version 1 records (every field, ids and the digest
//! as text) and JSON ones (first byte `{`), written by older versions,
//! still read.
//! The encoder destructures [`Run`], so a new field does not compile until
//! it has a place here (and a new [`VERSION`] if old records lack it).

use chrono::{DateTime, Utc};

use super::codec::{Reader, Writer, code, priority_code, priority_of};
use super::job_codec::{read_concurrency, write_concurrency};
use crate::model::job::Retry;
use crate::model::run::{RunLimits, RunTape, StepOf};
use crate::model::{ErrorKind, Run, RunError, RunStatus, Trigger};

/// The first byte of a record written now (JSON ones start with `{`).
const VERSION: u8 = 5;

/// The first byte of a record written before runs could record.
const VERSION_4: u8 = 4;

/// The first byte of a record written before runs had a jitter.
const VERSION_3: u8 = 3;

/// The first byte of a record written before runs could belong to a workflow.
const VERSION_2: u8 = 2;

/// The first byte of a record written by versions that stored every field.
const VERSION_1: u8 = 1;

/// `duration_ms` and `lateness_ms` follow from the instants (one byte), or
/// are stored after this byte.
const DERIVED_TIMINGS: u8 = 1;
const STORED_TIMINGS: u8 = 0;

/// What [`crate::model::Run::finish`] and the executor's start make of the
/// instants: the duration from start to finish and the lateness from due
/// instant (`scheduled_at` plus the jitter) to start, in milliseconds.
fn derived_timings(
    due_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
) -> (Option<u64>, Option<i64>) {
    let duration = started_at
        .zip(finished_at)
        .map(|(started, finished)| (finished - started).num_milliseconds().max(0) as u64);
    let lateness = started_at.map(|started| (started - due_at).num_milliseconds());
    (duration, lateness)
}

/// Encodes a run record.
pub fn encode(run: &Run) -> Vec<u8> {
    let Run {
        id,
        tenant,
        job_id,
        job_name,
        plugin,
        plugin_digest,
        trigger,
        attempt,
        status,
        error,
        scheduled_at,
        jitter_ms,
        queued_at,
        started_at,
        finished_at,
        duration_ms,
        lateness_ms,
        fuel_consumed,
        peak_memory,
        output_size,
        log_size,
        tape,
        input,
        limits,
        priority,
        retry,
        exclusive,
        concurrency,
        retry_of,
        http_allow,
        secrets,
        record,
        workflow,
        node,
    } = run;
    // The key says these; the node is kept beside the record.
    let _ = (id, tenant, node);
    let mut out = Writer(Vec::with_capacity(128 + job_name.len() + plugin.len() + input.len()));
    out.0.push(VERSION);
    out.compact_text(job_id);
    out.bytes(job_name.as_bytes());
    out.bytes(plugin.as_bytes());
    out.compact_text(plugin_digest);
    out.0.push(trigger_code(*trigger));
    out.uint(u64::from(*attempt));
    status_and_error(&mut out, *status, error.as_ref());
    out.instant(scheduled_at);
    out.instant_from(scheduled_at, queued_at);
    out.uint(*jitter_ms);
    let execution = Execution {
        started_at: started_at.as_ref(),
        finished_at: finished_at.as_ref(),
        duration_ms: duration_ms.as_ref(),
        lateness_ms: lateness_ms.as_ref(),
        fuel_consumed: fuel_consumed.as_ref(),
        peak_memory: peak_memory.as_ref(),
        output_size: *output_size,
        log_size: *log_size,
        tape: tape.as_ref(),
    };
    execution.write(&mut out, scheduled_at, &run.due_at());
    out.bytes(input);
    let RunLimits {
        fuel,
        timeout_ms,
        memory,
        output,
        logs,
    } = limits;
    out.option(fuel.as_ref(), |out, value| out.uint(*value));
    for value in [timeout_ms, memory, output, logs] {
        out.uint(*value);
    }
    out.0.push(priority_code(*priority));
    let Retry {
        max_attempts,
        backoff,
        max_backoff,
    } = retry;
    out.uint(u64::from(*max_attempts));
    out.duration(backoff);
    out.duration(max_backoff);
    out.flag(*exclusive);
    out.option(retry_of.as_ref(), |out, text| out.compact_text(text));
    out.texts(http_allow);
    out.texts(secrets);
    out.option(workflow.as_ref(), |out, of| {
        out.compact_text(&of.workflow_run);
        out.bytes(of.step.as_bytes());
    });
    out.option(concurrency.as_ref(), write_concurrency);
    out.flag(*record);
    out.0
}

/// The outcome fields of a run but its status and error, as the record
/// holds them (what [`Run::clear_outcome`] clears, with those two).
#[derive(Default)]
struct Execution<'a> {
    started_at: Option<&'a chrono::DateTime<chrono::Utc>>,
    finished_at: Option<&'a chrono::DateTime<chrono::Utc>>,
    duration_ms: Option<&'a u64>,
    lateness_ms: Option<&'a i64>,
    fuel_consumed: Option<&'a u64>,
    peak_memory: Option<&'a u64>,
    output_size: u64,
    log_size: u64,
    tape: Option<&'a RunTape>,
}

impl<'a> Execution<'a> {
    fn of(run: &'a Run) -> Execution<'a> {
        Execution {
            started_at: run.started_at.as_ref(),
            finished_at: run.finished_at.as_ref(),
            duration_ms: run.duration_ms.as_ref(),
            lateness_ms: run.lateness_ms.as_ref(),
            fuel_consumed: run.fuel_consumed.as_ref(),
            peak_memory: run.peak_memory.as_ref(),
            output_size: run.output_size,
            log_size: run.log_size,
            tape: run.tape.as_ref(),
        }
    }

    /// Writes the fields, instants as nanoseconds from `scheduled_at`
    /// (the timings are derived from `due_at`).
    fn write(&self, out: &mut Writer, scheduled_at: &DateTime<Utc>, due_at: &DateTime<Utc>) {
        out.option(self.started_at, |out, at| out.instant_from(scheduled_at, at));
        out.option(self.finished_at, |out, at| out.instant_from(scheduled_at, at));
        let derived = derived_timings(*due_at, self.started_at.copied(), self.finished_at.copied());
        if derived == (self.duration_ms.copied(), self.lateness_ms.copied()) {
            out.0.push(DERIVED_TIMINGS);
        } else {
            out.0.push(STORED_TIMINGS);
            out.option(self.duration_ms, |out, value| out.uint(*value));
            out.option(self.lateness_ms, |out, value| out.int(*value));
        }
        out.option(self.fuel_consumed, |out, value| out.uint(*value));
        out.option(self.peak_memory, |out, value| out.uint(*value));
        out.uint(self.output_size);
        out.uint(self.log_size);
        out.option(self.tape, |out, tape| {
            out.uint(tape.bytes);
            out.uint(tape.calls);
            out.flag(tape.replayable);
        });
    }
}

fn status_and_error(out: &mut Writer, status: RunStatus, error: Option<&RunError>) {
    out.0.push(status_code(status));
    out.option(error, |out, error| {
        out.0.push(kind_code(error.kind));
        out.bytes(error.message.as_bytes());
    });
}

/// The bytes a run's outcome adds to its record: how much longer
/// [`encode`] makes it than the same run with its outcome cleared (see
/// [`Run::clear_outcome`]), found without encoding either (a run's end
/// charges its tenant the difference, see `run_bytes`).
pub fn outcome_len(run: &Run) -> usize {
    fn written(
        status: RunStatus,
        error: Option<&RunError>,
        execution: Execution<'_>,
        scheduled_at: &DateTime<Utc>,
        due_at: &DateTime<Utc>,
    ) -> usize {
        let mut out = Writer(Vec::with_capacity(48));
        status_and_error(&mut out, status, error);
        execution.write(&mut out, scheduled_at, due_at);
        out.0.len()
    }
    // Without instants the cleared form does not depend on `scheduled_at`.
    static CLEARED: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
        let epoch = DateTime::UNIX_EPOCH;
        written(RunStatus::Queued, None, Execution::default(), &epoch, &epoch)
    });
    written(
        run.status,
        run.error.as_ref(),
        Execution::of(run),
        &run.scheduled_at,
        &run.due_at(),
    ) - *CLEARED
}

/// Decodes the record of the run `id` of `tenant` (what its key says),
/// binary of either version or JSON.
pub fn decode(bytes: &[u8], tenant: &str, id: &str) -> Result<Run, String> {
    match bytes.first() {
        Some(b'{') => serde_json::from_slice(bytes).map_err(|error| error.to_string()),
        Some(&version @ (VERSION | VERSION_4 | VERSION_3 | VERSION_2 | VERSION_1)) => {
            let mut input = Reader(&bytes[1..]);
            let run = read_run(&mut input, version, tenant, id)?;
            input.end("run")?;
            Ok(run)
        }
        Some(other) => Err(format!("unknown run record version {other}")),
        None => Err("empty run record".to_string()),
    }
}

/// Reads a binary record of `version`. Version 1 stored every field in
/// declaration order, as text and whole instants; version 2 leaves the id
/// and tenant to the key (`tenant`, `id`), keeps ids and the digest compact,
/// later instants from `scheduled_at` and the timings derived when they can.
fn read_run(input: &mut Reader<'_>, version: u8, tenant: &str, id: &str) -> Result<Run, String> {
    let whole = version == VERSION_1;
    let (id, tenant) = if whole {
        (input.text()?, input.text()?)
    } else {
        (id.to_string(), tenant.to_string())
    };
    let id_text = |input: &mut Reader<'_>| {
        if whole { input.text() } else { input.compact_text() }
    };
    let job_id = id_text(input)?;
    let job_name = input.text()?;
    let plugin = input.text()?;
    let plugin_digest = id_text(input)?;
    let trigger = code(input.byte()?, trigger_of, "trigger")?;
    let attempt = input.u32()?;
    let status = code(input.byte()?, status_of, "status")?;
    let error = input.option(read_error)?;
    let scheduled_at = input.instant()?;
    let later = |input: &mut Reader<'_>| {
        if whole {
            input.instant()
        } else {
            input.instant_from(&scheduled_at)
        }
    };
    let queued_at = later(input)?;
    let jitter_ms = if version >= VERSION_4 { input.uint()? } else { 0 };
    let due_at = i64::try_from(jitter_ms)
        .ok()
        .and_then(|jitter| scheduled_at.checked_add_signed(chrono::Duration::milliseconds(jitter)))
        .ok_or_else(|| format!("a jitter of {jitter_ms} ms is out of range"))?;
    let started_at = input.option(later)?;
    let finished_at = input.option(later)?;
    let timings = if whole { STORED_TIMINGS } else { input.byte()? };
    let (duration_ms, lateness_ms) = match timings {
        DERIVED_TIMINGS => derived_timings(due_at, started_at, finished_at),
        STORED_TIMINGS => (input.option(Reader::uint)?, input.option(Reader::int)?),
        other => return Err(format!("unknown timings form {other}")),
    };
    Ok(Run {
        id,
        tenant,
        job_id,
        job_name,
        plugin,
        plugin_digest,
        trigger,
        attempt,
        status,
        error,
        scheduled_at,
        jitter_ms,
        queued_at,
        started_at,
        finished_at,
        duration_ms,
        lateness_ms,
        fuel_consumed: input.option(Reader::uint)?,
        peak_memory: input.option(Reader::uint)?,
        output_size: input.uint()?,
        log_size: input.uint()?,
        tape: if version >= VERSION {
            input.option(|input| {
                Ok(RunTape {
                    bytes: input.uint()?,
                    calls: input.uint()?,
                    replayable: input.flag("replayable")?,
                })
            })?
        } else {
            None
        },
        input: input.bytes()?.to_vec(),
        limits: RunLimits {
            fuel: input.option(Reader::uint)?,
            timeout_ms: input.uint()?,
            memory: input.uint()?,
            output: input.uint()?,
            logs: input.uint()?,
        },
        priority: code(input.byte()?, priority_of, "priority")?,
        retry: Retry {
            max_attempts: input.u32()?,
            backoff: input.duration()?,
            max_backoff: input.duration()?,
        },
        exclusive: input.flag("exclusive")?,
        retry_of: input.option(id_text)?,
        http_allow: input.texts()?,
        secrets: input.texts()?,
        workflow: if version >= VERSION_3 {
            input.option(|input| {
                Ok(StepOf {
                    workflow_run: input.compact_text()?,
                    step: input.text()?,
                })
            })?
        } else {
            None
        },
        // Read in the record's order: last.
        concurrency: if version >= VERSION_4 {
            input.option(read_concurrency)?
        } else {
            None
        },
        record: version >= VERSION && input.flag("record")?,
        node: None,
    })
}

fn read_error(input: &mut Reader<'_>) -> Result<RunError, String> {
    Ok(RunError {
        kind: code(input.byte()?, kind_of, "error kind")?,
        message: input.text()?,
    })
}

// Codes of the enums: never reuse or renumber one (see `codec`).

fn trigger_code(trigger: Trigger) -> u8 {
    match trigger {
        Trigger::Schedule => 0,
        Trigger::Manual => 1,
        Trigger::Retry => 2,
        Trigger::Dependency => 3,
        Trigger::Start => 4,
        Trigger::Backfill => 5,
    }
}

fn trigger_of(code: u8) -> Option<Trigger> {
    Some(match code {
        0 => Trigger::Schedule,
        1 => Trigger::Manual,
        2 => Trigger::Retry,
        3 => Trigger::Dependency,
        4 => Trigger::Start,
        5 => Trigger::Backfill,
        _ => return None,
    })
}

fn status_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Queued => 0,
        RunStatus::Running => 1,
        RunStatus::Succeeded => 2,
        RunStatus::Failed => 3,
        RunStatus::Cancelled => 4,
    }
}

fn status_of(code: u8) -> Option<RunStatus> {
    Some(match code {
        0 => RunStatus::Queued,
        1 => RunStatus::Running,
        2 => RunStatus::Succeeded,
        3 => RunStatus::Failed,
        4 => RunStatus::Cancelled,
        _ => return None,
    })
}

fn kind_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::PluginError => 0,
        ErrorKind::Trap => 1,
        ErrorKind::FuelExhausted => 2,
        ErrorKind::Timeout => 3,
        ErrorKind::MemoryLimit => 4,
        ErrorKind::OutputLimit => 5,
        ErrorKind::HostRestart => 6,
        ErrorKind::PluginUnavailable => 7,
    }
}

fn kind_of(code: u8) -> Option<ErrorKind> {
    Some(match code {
        0 => ErrorKind::PluginError,
        1 => ErrorKind::Trap,
        2 => ErrorKind::FuelExhausted,
        3 => ErrorKind::Timeout,
        4 => ErrorKind::MemoryLimit,
        5 => ErrorKind::OutputLimit,
        6 => ErrorKind::HostRestart,
        7 => ErrorKind::PluginUnavailable,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::model::job::Priority;

    /// A run with every field set to something other than its default.
    fn full_run() -> Run {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc);
        let mut run = Run::sample(
            "01kbgz8m7yq3d5v2c8n6r4t1wx",
            "01kbgz8m7yq3d5v2c8n6r4t1wy",
            at("2026-12-02T10:00:00.123456789Z"),
        );
        run.tenant = "acme".into();
        run.job_name = "nightly-ünïcode".into();
        run.plugin = "report@7".into();
        run.plugin_digest = "ab".repeat(32);
        run.trigger = Trigger::Retry;
        run.attempt = 3;
        run.status = RunStatus::Failed;
        run.error = Some(RunError {
            kind: ErrorKind::FuelExhausted,
            message: "fuel ran out after 1000 units".into(),
        });
        run.queued_at = at("1969-07-20T20:17:40.5Z");
        run.started_at = Some(at("2026-12-02T10:00:00.2Z"));
        run.finished_at = Some(at("2026-12-02T10:00:01Z"));
        run.duration_ms = Some(800);
        run.lateness_ms = Some(-3);
        run.fuel_consumed = Some(u64::MAX);
        run.peak_memory = Some(1 << 20);
        run.output_size = 12;
        run.log_size = 300;
        run.tape = Some(RunTape {
            bytes: 0,
            calls: 1 << 40,
            replayable: false,
        });
        run.record = true;
        run.input = vec![0, 1, 2, 255, b'{'];
        run.limits = RunLimits {
            fuel: Some(1_000),
            timeout_ms: 30_000,
            memory: 64 << 20,
            output: 1 << 20,
            logs: 1 << 16,
        };
        run.priority = Priority::Critical;
        run.retry = Retry {
            max_attempts: 5,
            backoff: Duration::from_millis(1500),
            max_backoff: Duration::from_secs(3600),
        };
        run.exclusive = true;
        run.retry_of = Some("01kbgz8m7yq3d5v2c8n6r4t1wz".into());
        run.http_allow = vec!["api.example.com".into(), "*.example.org".into()];
        run.secrets = vec!["TOKEN".into()];
        run.workflow = Some(StepOf {
            workflow_run: "01kbgz8m7yq3d5v2c8n6r4t1wy".into(),
            step: "load".into(),
        });
        run.jitter_ms = 1234;
        run.concurrency = Some(crate::model::job::Concurrency {
            key: "reports".into(),
            limit: 3,
        });
        run
    }

    /// The key's parts of [`full_run`].
    const TENANT: &str = "acme";
    const ID: &str = "01kbgz8m7yq3d5v2c8n6r4t1wx";

    /// A finished run of the noop plugin as the executor writes it.
    fn noop_run() -> Run {
        let due = DateTime::parse_from_rfc3339("2026-12-03T09:00:01.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut run = Run::sample(&crate::model::new_id(), &crate::model::new_id(), due);
        run.tenant = "default".into();
        run.job_name = "soak-17".into();
        run.plugin = "noop@1".into();
        run.plugin_digest = "5e".repeat(32);
        run.queued_at = due - chrono::TimeDelta::milliseconds(2_300);
        let started = due + chrono::TimeDelta::microseconds(1_412);
        run.started_at = Some(started);
        run.lateness_ms = Some((started - due).num_milliseconds());
        run.fuel_consumed = None;
        run.peak_memory = Some(1_114_112);
        run.limits = RunLimits {
            fuel: None,
            timeout_ms: 30_000,
            memory: 64 << 20,
            output: 1 << 20,
            logs: 1 << 20,
        };
        run.finish(
            RunStatus::Succeeded,
            None,
            started + chrono::TimeDelta::microseconds(310),
        );
        run
    }

    #[test]
    fn every_field_round_trips() {
        let run = full_run();
        let bytes = encode(&run);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode(&bytes, TENANT, ID).unwrap(), run);
        let sample = Run::sample("r", "j", Utc::now());
        assert_eq!(decode(&encode(&sample), "t", "r").unwrap(), sample);
        let noop = noop_run();
        assert_eq!(decode(&encode(&noop), &noop.tenant, &noop.id).unwrap(), noop);
    }

    /// The place of the first byte that differs between the records of
    /// `run` and of `run` changed by `change`.
    fn changed_at(run: &Run, change: impl FnOnce(&mut Run)) -> usize {
        let mut changed = run.clone();
        change(&mut changed);
        encode(run)
            .iter()
            .zip(encode(&changed))
            .position(|(now, then)| *now != then)
            .expect("the change is written")
    }

    /// The record of `run` (no tape, not recording) as version 4 wrote it:
    /// version 5 without the tape after `log_size` and the flag last.
    fn version_4(run: &Run) -> Vec<u8> {
        let mut bytes = encode(run);
        assert_eq!(bytes.pop(), Some(0), "not recording");
        let at = changed_at(run, |run| {
            run.tape = Some(RunTape {
                bytes: 1,
                calls: 1,
                replayable: true,
            })
        });
        assert_eq!(bytes.remove(at), 0);
        bytes[0] = VERSION_4;
        bytes
    }

    #[test]
    fn version_4_records_read_as_runs_that_did_not_record() {
        let run = noop_run();
        assert_eq!(decode(&version_4(&run), &run.tenant, &run.id).unwrap(), run);
        let mut recorded = run.clone();
        recorded.record = true;
        recorded.tape = Some(RunTape {
            bytes: 21_147,
            calls: 2005,
            replayable: true,
        });
        let bytes = encode(&recorded);
        assert_eq!(
            bytes.len(),
            encode(&run).len() + 6,
            "the tape's two sizes (here 3 and 2 bytes) and its flag"
        );
        assert_eq!(decode(&bytes, &run.tenant, &run.id).unwrap(), recorded);
    }

    /// The record of `run` (no jitter, no concurrency group, no tape) as
    /// version 3 wrote it: version 4 without the jitter after `queued_at`
    /// and the group last.
    fn version_3(run: &Run) -> Vec<u8> {
        let mut bytes = version_4(run);
        assert_eq!(bytes.pop(), Some(0), "no concurrency group");
        let at = changed_at(run, |run| run.jitter_ms = 300);
        assert_eq!(bytes.remove(at), 0);
        bytes[0] = VERSION_3;
        bytes
    }

    #[test]
    fn older_records_read_as_runs_of_no_jitter_and_no_workflow() {
        let mut run = noop_run();
        let mut bytes = version_3(&run);
        assert_eq!(decode(&bytes, &run.tenant, &run.id).unwrap(), run);
        // Version 2 is version 3 without the trailing workflow field.
        assert_eq!(bytes.pop(), Some(0));
        bytes[0] = VERSION_2;
        assert_eq!(decode(&bytes, &run.tenant, &run.id).unwrap(), run);
        run.workflow = Some(StepOf {
            workflow_run: "wr".into(),
            step: "s".into(),
        });
        assert_eq!(decode(&encode(&run), &run.tenant, &run.id).unwrap(), run);
    }

    #[test]
    fn a_jittered_run_counts_its_lateness_from_its_due_instant_in_the_compact_form() {
        let mut run = noop_run();
        let plain = encode(&run).len();
        run.jitter_ms = 12_345;
        run.lateness_ms = run
            .started_at
            .map(|started| (started - run.due_at()).num_milliseconds());
        let bytes = encode(&run);
        assert_eq!(bytes.len(), plain + 1, "two bytes of jitter, the timings still derived");
        assert_eq!(decode(&bytes, &run.tenant, &run.id).unwrap(), run);
    }

    #[test]
    fn timings_that_differ_from_the_instants_are_kept() {
        let mut run = noop_run();
        let derived = encode(&run).len();
        run.duration_ms = Some(7);
        run.lateness_ms = None;
        let bytes = encode(&run);
        assert!(bytes.len() > derived);
        assert_eq!(decode(&bytes, &run.tenant, &run.id).unwrap(), run);
    }

    #[test]
    fn texts_that_are_not_ids_or_digests_are_kept_as_they_are() {
        let mut run = noop_run();
        for text in [
            "",
            "job-1",
            "01KBGZ8M7YQ3D5V2C8N6R4T1WX",
            "01kbgz8m7yq3d5v2c8n6r4t1w",
            "8zzzzzzzzzzzzzzzzzzzzzzzzz",
            "abc",
            "ABCDEF",
            "0a0",
        ] {
            run.job_id = text.into();
            run.plugin_digest = text.into();
            run.retry_of = Some(text.into());
            assert_eq!(decode(&encode(&run), &run.tenant, &run.id).unwrap(), run, "{text}");
        }
    }

    #[test]
    fn instants_far_apart_are_kept_whole() {
        let mut run = noop_run();
        run.queued_at = DateTime::from_timestamp(-200_000_000_000, 7).unwrap();
        run.finished_at = Some(DateTime::from_timestamp(200_000_000_000, 999_999_999).unwrap());
        assert_eq!(decode(&encode(&run), &run.tenant, &run.id).unwrap(), run);
    }

    #[test]
    fn a_finished_noop_run_takes_under_140_bytes() {
        // 223 in version 1: the id and tenant, the ids and the digest as
        // text, every instant whole, the timings stored.
        let run = noop_run();
        let bytes = encode(&run).len();
        assert!(bytes <= 140, "{bytes} bytes");
    }

    /// [`full_run`] as version 1 wrote it.
    const VERSION_1_RECORD: &[&str] = &[
        "011a30316b62677a386d377971336435763263386e367234743177780461636d651a30316b62677a",
        "386d377971336435763263386e36723474317779116e696768746c792dc3bc6ec3af636f64650872",
        "65706f72744037406162616261626162616261626162616261626162616261626162616261626162",
        "616261626162616261626162616261626162616261626162616261626162616202030301021d6675",
        "656c2072616e206f7574206166746572203130303020756e697473c0b0ffb00d959aef3ab7a8c30d",
        "80cab5ee0101c0b0ffb00d8084af5f01c2b0ffb00d0001a006010501ffffffffffffffffff010180",
        "80400cac0205000102ff7b01e807b0ea018080802080804080800403050180cab5ee01901c000101",
        "1a30316b62677a386d377971336435763263386e3672347431777a020f6170692e6578616d706c65",
        "2e636f6d0d2a2e6578616d706c652e6f72670105544f4b454e",
    ];

    #[test]
    fn a_record_written_by_version_1_still_reads() {
        let bytes = hex::decode(VERSION_1_RECORD.concat()).unwrap();
        assert_eq!(bytes[0], VERSION_1);
        // Version 1 stored the tenant and id: the key's are not used; it
        // knew no workflows, jitters, concurrency groups or recording.
        let mut expected = full_run();
        expected.workflow = None;
        expected.jitter_ms = 0;
        expected.concurrency = None;
        expected.tape = None;
        expected.record = false;
        assert_eq!(decode(&bytes, "other", "other").unwrap(), expected);
        assert!(encode(&expected).len() + 60 < bytes.len());
    }

    #[test]
    fn the_outcome_length_is_what_clearing_the_outcome_takes_off_the_record() {
        let full = full_run();
        let mut runs = vec![full.clone(), Run::sample("r", "j", Utc::now())];
        let mut running = Run::sample("r", "j", Utc::now());
        running.status = RunStatus::Running;
        running.started_at = Some(Utc::now());
        running.lateness_ms = Some(-1);
        runs.push(running);
        let mut long_error = full;
        long_error.error.as_mut().unwrap().message = "e".repeat(5000);
        runs.push(long_error);
        for run in runs {
            let mut cleared = run.clone();
            cleared.clear_outcome();
            assert_eq!(
                encode(&run).len() - outcome_len(&run),
                encode(&cleared).len(),
                "{run:?}"
            );
        }
    }

    #[test]
    fn every_enum_code_reads_back_as_its_variant() {
        for code in 0..=u8::MAX {
            assert!(trigger_of(code).is_none_or(|value| trigger_code(value) == code));
            assert!(status_of(code).is_none_or(|value| status_code(value) == code));
            assert!(kind_of(code).is_none_or(|value| kind_code(value) == code));
            assert!(priority_of(code).is_none_or(|value| priority_code(value) == code));
        }
        assert_eq!((0..=u8::MAX).filter_map(trigger_of).count(), 6);
        assert_eq!((0..=u8::MAX).filter_map(status_of).count(), 5);
        assert_eq!((0..=u8::MAX).filter_map(kind_of).count(), 8);
        assert_eq!((0..=u8::MAX).filter_map(priority_of).count(), 4);
    }

    #[test]
    fn it_is_smaller_than_the_json() {
        let run = full_run();
        let json = serde_json::to_vec(&run).unwrap();
        assert!(
            encode(&run).len() * 2 < json.len(),
            "{} against {}",
            encode(&run).len(),
            json.len()
        );
    }

    #[test]
    fn a_record_written_as_json_still_reads() {
        let run = full_run();
        assert_eq!(
            decode(&serde_json::to_vec(&run).unwrap(), "other", "other").unwrap(),
            run
        );
    }

    #[test]
    fn a_cut_or_damaged_record_is_an_error_not_a_panic() {
        let bytes = encode(&full_run());
        for end in 0..bytes.len() {
            assert!(decode(&bytes[..end], TENANT, ID).is_err(), "cut at {end}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, TENANT, ID).unwrap_err().contains("left after"));
        assert!(decode(&[9, 1, 2], TENANT, ID).unwrap_err().contains("version 9"));
        // Every single-byte change either fails or decodes to some run.
        for at in 1..bytes.len() {
            for value in [0u8, 0x7f, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] = value;
                let _ = decode(&damaged, TENANT, ID);
            }
        }
    }
}
