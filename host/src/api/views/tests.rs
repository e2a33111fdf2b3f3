//! The views show exactly what the API showed when it serialized the
//! records and took keys away: every field of the record but the hidden
//! ones, so a field added to a record fails here until its view says
//! whether clients see it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::*;
use crate::model::validate::{parse_spec, validate};
use crate::model::{Job, Quotas, Run, RunError, RunStatus, SecretRecord, Token};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn job(spec: Value) -> Job {
    let defaults = crate::config::Config::default().job_defaults();
    validate(
        parse_spec(&spec).unwrap(),
        "acme",
        None,
        &defaults,
        at("2026-11-25T10:00:00Z"),
    )
    .unwrap()
}

/// The record as stored, less `hidden`, with `added`.
fn record_less(record: impl Serialize, hidden: &[&str], added: Value) -> Value {
    let mut value = serde_json::to_value(record).unwrap();
    let object = value.as_object_mut().unwrap();
    for key in hidden {
        assert!(object.remove(*key).is_some(), "the record has no {key}");
    }
    object.extend(added.as_object().unwrap().clone());
    value
}

#[test]
fn a_job_view_is_the_job_without_its_tenant_and_with_its_state() {
    let spec = json!({
        "name": "nightly", "plugin": "hello@2", "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Paris"},
        "input": {"n": 1}, "labels": {"team": "a"}, "http_allow": ["example.com"], "secrets": ["key"],
        "webhooks": [{"url": "https://example.com/hook", "on": ["failed"]}], "limits": {"fuel": 1000},
    });
    let mut nightly = job(spec);
    nightly.next_fire_at = Some(at("2026-11-26T02:00:00Z"));
    nightly.last_finished_at = Some(at("2026-11-25T02:00:03Z"));
    let expected = record_less(&nightly, &["tenant"], json!({"state": "active"}));
    assert_eq!(serde_json::to_value(JobView::from(nightly.clone())).unwrap(), expected);

    let on_demand = job(json!({"name": "once", "plugin": "hello", "enabled": false}));
    let expected = record_less(&on_demand, &["tenant"], json!({"state": "paused"}));
    let shown = serde_json::to_value(JobView::from(on_demand)).unwrap();
    assert_eq!(shown, expected);
    assert_eq!(shown["schedule"], Value::Null);
}

#[test]
fn a_fire_recorded_ahead_is_the_next_fire_shown_and_a_fired_at_job_is_done() {
    let mut every = job(json!({"name": "tick", "plugin": "hello", "schedule": {"every": "1m"}}));
    every.next_fire_at = Some(at("2026-11-25T10:02:00Z"));
    let ahead = HashMap::from([(every.id.clone(), at("2026-11-25T10:01:00Z"))]);
    let shown = serde_json::to_value(JobView::with_fires_ahead(&every, &ahead)).unwrap();
    assert_eq!(shown["next_fire_at"], json!(at("2026-11-25T10:01:00Z")));

    let mut once = job(json!({"name": "once", "plugin": "hello", "schedule": {"at": "2026-11-25T11:00:00Z"}}));
    once.next_fire_at = None;
    let shown = serde_json::to_value(JobView::with_fires_ahead(&once, &HashMap::new())).unwrap();
    assert_eq!(shown["state"], "done");
    // The fire recorded ahead has not run yet: still active.
    let ahead = HashMap::from([(once.id.clone(), at("2026-11-25T11:00:00Z"))]);
    let shown = serde_json::to_value(JobView::with_fires_ahead(&once, &ahead)).unwrap();
    assert_eq!(shown["state"], "active");
}

#[test]
fn a_run_view_is_the_run_without_its_tenant_and_input_and_with_the_input_size() {
    let mut run = Run::sample("r1", "j1", at("2026-11-25T10:00:00Z"));
    run.input = br#"{"n": 1}"#.to_vec();
    run.error = Some(RunError {
        kind: crate::model::ErrorKind::Trap,
        message: "unreachable".into(),
    });
    let expected = record_less(
        &run,
        &["tenant", "input"],
        json!({"input_size": 8, "due_at": run.scheduled_at}),
    );
    let shown = serde_json::to_value(RunView::from(&run)).unwrap();
    assert_eq!(shown, expected);
    assert!(shown.get("http_allow").is_none() && shown.get("secrets").is_none());

    run.http_allow = vec!["example.com".into()];
    run.secrets = vec!["key".into()];
    run.jitter_ms = 1500;
    let expected = record_less(
        &run,
        &["tenant", "input", "jitter_ms"],
        json!({"input_size": 8, "due_at": "2026-11-25T10:00:01.500Z"}),
    );
    assert_eq!(serde_json::to_value(RunView::from(&run)).unwrap(), expected);
}

#[test]
fn a_run_shows_its_output_once_finished_as_text_or_base64() {
    let mut run = Run::sample("r1", "j1", at("2026-11-25T10:00:00Z"));
    let going = serde_json::to_value(RunWithOutputView::new(&run, b"so far")).unwrap();
    assert_eq!(
        (&going["output"], &going["output_encoding"]),
        (&Value::Null, &json!("utf8"))
    );
    run.status = RunStatus::Succeeded;
    let text = serde_json::to_value(RunWithOutputView::new(&run, b"done")).unwrap();
    assert_eq!(
        (&text["output"], &text["output_encoding"]),
        (&json!("done"), &json!("utf8"))
    );
    assert_eq!(text["id"], "r1", "the run's fields sit beside the output");
    let bytes = serde_json::to_value(RunWithOutputView::new(&run, &[0xff, 0x00])).unwrap();
    assert_eq!(
        (&bytes["output"], &bytes["output_encoding"]),
        (&json!("/wA="), &json!("base64"))
    );
}

#[test]
fn a_list_of_runs_pages_on_from_its_last_run_only_when_full() {
    let due = at("2026-11-25T10:00:00Z");
    let runs = [Run::sample("r2", "j", due), Run::sample("r1", "j", due)];
    let full = serde_json::to_value(RunList::page(&runs, 2)).unwrap();
    assert_eq!(full["next_cursor"], "r1");
    let last = serde_json::to_value(RunList::page(&runs, 3)).unwrap();
    assert_eq!(last["next_cursor"], Value::Null);
    assert_eq!(last["runs"].as_array().unwrap().len(), 2);
}

#[test]
fn the_quotas_a_tenant_shows_read_back_as_the_same_quotas() {
    let quotas = Quotas {
        max_timeout_ms: Some(5000),
        run_bytes: Some(64 << 20),
        ..Quotas::for_new_tenant()
    };
    let shown = serde_json::to_value(QuotasView::from(&quotas)).unwrap();
    assert_eq!(shown["max_timeout"], "5s");
    assert_eq!(
        shown["max_fuel"],
        Value::Null,
        "no limit is shown as null, not left out"
    );
    assert_eq!(Quotas::from_json(&shown).unwrap(), quotas);
}

#[test]
fn tokens_and_secrets_show_neither_hash_nor_value() {
    let token = Token {
        id: "t1".into(),
        tenant: "acme".into(),
        hash: "abc".into(),
        created_at: at("2026-11-25T10:00:00Z"),
        revoked_at: None,
    };
    let shown = serde_json::to_value(NewTokenView::new(&token, "sc_secret".into())).unwrap();
    assert_eq!(shown, record_less(&token, &["hash"], json!({"token": "sc_secret"})));
    let record = SecretRecord {
        tenant: "acme".into(),
        name: "key".into(),
        nonce: "n".into(),
        sealed: "s".into(),
        created_at: at("2026-11-25T10:00:00Z"),
        updated_at: at("2026-11-25T11:00:00Z"),
    };
    let shown = serde_json::to_value(SecretView::from(&record)).unwrap();
    assert_eq!(shown, record_less(&record, &["tenant", "nonce", "sealed"], json!({})));
}
