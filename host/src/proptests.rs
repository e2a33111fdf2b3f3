//! Property tests of every parser and decoder that reads what users,
//! plugins or the disk hand the daemon: cron lines, durations and sizes,
//! job JSON, and the binary job and run records on damaged bytes. Each
//! must answer with a value or an error, never a panic.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::model::Job;
use crate::model::run::Run;
use crate::store::sled::{job_codec, run_codec};
use crate::timing::cron::CronExpr;
use crate::units::{format_duration, parse_duration, parse_size};

/// Text that looks like cron: its digits, names, operators and macros.
fn cronish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        "[0-9]{1,3}",
        Just("*".to_string()),
        Just("*/".to_string()),
        Just(",".to_string()),
        Just("-".to_string()),
        Just("/".to_string()),
        Just(" ".to_string()),
        Just("?".to_string()),
        Just("L".to_string()),
        Just("#".to_string()),
        "(MON|SUN|FRI|JAN|FEB|DEC|mon|jan)",
        "@(hourly|daily|weekly|monthly|yearly|reboot)",
    ];
    prop::collection::vec(token, 0..16).prop_map(|tokens| tokens.concat())
}

/// A JSON value of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|number| serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        "[0-9]{1,4}(ms|s|m|h|d|KiB|MiB|GiB)?".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A job body: the fields a job has, each with any JSON or a typical value.
fn job_body() -> impl Strategy<Value = Value> {
    let field = |typical: Value| prop_oneof![Just(typical), any_json()];
    (
        field(json!("job")),
        field(json!("plugin@1")),
        field(json!({"cron": "*/5 * * * *", "timezone": "Europe/Berlin"})),
        field(json!({"timeout": "10s", "memory": "16MiB", "fuel": 1000})),
        field(json!({"misfire": "run_all", "retry": {"max_attempts": 3, "backoff": "1s"}})),
        field(json!(["api.example.com"])),
        field(json!([{"url": "https://hooks.example.com", "on": ["failed"]}])),
        any_json(),
    )
        .prop_map(
            |(name, plugin, schedule, limits, policy, http_allow, webhooks, input)| {
                json!({"name": name, "plugin": plugin, "schedule": schedule, "limits": limits, "policy": policy,
                   "http_allow": http_allow, "webhooks": webhooks, "input": input})
            },
        )
}

/// A change to some bytes: flip, cut, insert or overwrite.
#[derive(Debug, Clone)]
enum Damage {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Set(usize, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, bits)| Damage::Flip(at, bits)),
        any::<usize>().prop_map(Damage::Cut),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..9)).prop_map(|(at, bytes)| Damage::Insert(at, bytes)),
        (
            any::<usize>(),
            prop_oneof![Just(0u8), Just(0xff), Just(0x7f), Just(0x80), any::<u8>()]
        )
            .prop_map(|(at, byte)| Damage::Set(at, byte)),
    ]
}

fn damaged(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for damage in damages {
        if bytes.is_empty() {
            break;
        }
        match damage {
            Damage::Flip(at, bits) => {
                let at = at % bytes.len();
                bytes[at] ^= bits;
            }
            Damage::Cut(at) => bytes.truncate(at % bytes.len()),
            Damage::Insert(at, more) => {
                let at = at % bytes.len();
                bytes.splice(at..at, more.iter().copied());
            }
            Damage::Set(at, byte) => {
                let at = at % bytes.len();
                bytes[at] = *byte;
            }
        }
    }
    bytes
}

fn validated(body: &Value) -> Option<Job> {
    let defaults = crate::config::Config::default().job_defaults();
    let spec = crate::model::validate::parse_spec(body).ok()?;
    let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
        .expect("a fixed instant")
        .with_timezone(&Utc);
    crate::model::validate::validate(spec, "acme", None, &defaults, now).ok()
}

fn a_job() -> Job {
    validated(&json!({
        "name": "nightly", "plugin": "report@7",
        "schedule": {"cron": "30 2 * * 1-5", "timezone": "Europe/Lisbon"},
        "input": {"rows": [1, 2]}, "labels": {"team": "data"},
        "http_allow": ["api.example.com"], "secrets": ["TOKEN"],
        "webhooks": [{"url": "https://hooks.example.com/a", "on": ["failed"]}],
        "policy": {"retry": {"max_attempts": 3, "backoff": "1s"}},
    }))
    .expect("the sample job is valid")
}

fn a_run() -> Run {
    let due = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
        .expect("a fixed instant")
        .with_timezone(&Utc);
    let mut run = Run::sample("01kbgz8m7yq3d5v2c8n6r4t1wx", "01kbgz8m7yq3d5v2c8n6r4t1wy", due);
    run.input = br#"{"rows": [1, 2]}"#.to_vec();
    run.error = Some(crate::model::RunError {
        kind: crate::model::ErrorKind::Timeout,
        message: "deadline".into(),
    });
    run
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn cron_lines_parse_or_fail_and_every_fire_matches(text in cronish(), start_minutes in 0i64..5_000_000) {
        if let Ok(expression) = CronExpr::parse(&text) {
            let start = NaiveDateTime::parse_from_str("2020-01-01 00:00:00", "%Y-%m-%d %H:%M:%S")
                .expect("a fixed time") + chrono::Duration::minutes(start_minutes);
            if let Some(fire) = expression.next_wall_time(start, 400) {
                prop_assert!(fire >= start);
                prop_assert!(expression.matches(fire), "{text}: {fire}");
            }
        }
    }

    #[test]
    fn any_text_is_a_cron_line_or_an_error(text in ".{0,64}") {
        let _ = CronExpr::parse(&text);
    }

    #[test]
    fn durations_and_sizes_parse_or_fail(text in ".{0,24}", structured in "[0-9]{0,25}(ns|ms|s|m|h|d|w|y|KiB|MiB|GiB|kb|b| )?") {
        let _ = parse_duration(&text);
        let _ = parse_size(&text);
        let _ = parse_duration(&structured);
        let _ = parse_size(&structured);
    }

    #[test]
    fn a_written_duration_reads_back(seconds in 0u64..10_000_000_000, millis in 0u64..1000) {
        let duration = Duration::from_secs(seconds) + Duration::from_millis(millis);
        prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
    }

    #[test]
    fn any_job_body_is_a_job_or_a_field_error(body in job_body()) {
        if let Some(job) = validated(&body) {
            // What validates also stores and reads back.
            prop_assert_eq!(job_codec::decode(&job_codec::encode(&job)), Ok(job));
        }
    }

    #[test]
    fn damaged_job_records_decode_or_fail(damages in prop::collection::vec(damage(), 1..4)) {
        let bytes = damaged(job_codec::encode(&a_job()), &damages);
        let _ = job_codec::decode(&bytes);
        let _ = job_codec::stamp_and_failures(&bytes);
        let _ = job_codec::hooks(&bytes);
    }

    #[test]
    fn damaged_run_records_decode_or_fail(damages in prop::collection::vec(damage(), 1..4)) {
        let run = a_run();
        let bytes = damaged(run_codec::encode(&run), &damages);
        let _ = run_codec::decode(&bytes, &run.tenant, &run.id);
    }

    #[test]
    fn any_bytes_are_a_record_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = job_codec::decode(&bytes);
        let _ = job_codec::stamp_and_failures(&bytes);
        let _ = job_codec::hooks(&bytes);
        let _ = run_codec::decode(&bytes, "acme", "01kbgz8m7yq3d5v2c8n6r4t1wx");
    }
}
