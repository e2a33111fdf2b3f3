//! Checking a job spec and resolving its defaults into a [`Job`]: pure
//! functions that name the field at fault (`limits.memory`), plus the JSON
//! merge patch that `PATCH /v1/jobs/{id}` applies.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::job::{
    AfterJobs, AfterJobsSpec, Job, JobSpec, Limits, LimitsSpec, Misfire, Policy, PolicySpec, Retry, RetrySpec, Webhook,
    input_bytes,
};
use crate::config::JobDefaults;
pub use crate::model::name::check_name;
use crate::model::plugin::PluginRef;
use crate::timing::{DateSpan, Schedule};
use crate::units::NumberOrText;

/// A refused job spec: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Stable error code (`invalid_field`, `invalid_cron`, ...).
    pub code: &'static str,
    /// Dotted path of the field (`limits.memory`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ValidationError {
    /// An `invalid_field` error of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            code: "invalid_field",
            field: field.into(),
            message: message.into(),
        }
    }
}

const MAX_LABELS: usize = 64;
const MAX_LABEL_KEY_LEN: usize = 63;
const MAX_LABEL_VALUE_LEN: usize = 255;
const MAX_LIST_LEN: usize = 64;
const MAX_BACKOFF: Duration = Duration::from_secs(7 * 24 * 3600);

/// An `http_allow` pattern: `host`, `*.domain`, either with `:port`.
pub fn check_host_pattern(pattern: &str) -> Result<(), String> {
    let (host, port) = match pattern.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, Some(port)),
        _ => (pattern, None),
    };
    if let Some(port) = port {
        port.parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("{pattern:?}: port {port:?} is not a number from 1 to 65535"))?;
    }
    let bare = host.strip_prefix("*.").unwrap_or(host);
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    let valid = !bare.is_empty()
        && bare.len() <= 253
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        && !bare.contains('*');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{pattern:?} is not a host pattern like \"api.example.com\", \"*.example.com\" or \"example.com:8443\""
        ))
    }
}

fn resolve_limits(spec: Option<LimitsSpec>, defaults: &JobDefaults) -> Result<Limits, ValidationError> {
    let spec = spec.unwrap_or_default();
    let fuel = spec.fuel.or(defaults.fuel);
    if fuel == Some(0) {
        return Err(ValidationError::new("limits.fuel", "must be at least 1"));
    }
    if let (Some(fuel), Some(ceiling)) = (fuel, defaults.max_fuel)
        && fuel > ceiling
    {
        return Err(ValidationError::new(
            "limits.fuel",
            format!("{fuel} is above {ceiling}, the most this tenant's jobs may ask for"),
        ));
    }
    let timeout = match spec.timeout {
        Some(value) => value
            .to_duration()
            .map_err(|message| ValidationError::new("limits.timeout", message))?,
        None => defaults.timeout,
    };
    if timeout < Duration::from_millis(10) || timeout > defaults.max_timeout {
        return Err(ValidationError::new(
            "limits.timeout",
            format!(
                "{} is outside 10ms..={}",
                crate::units::format_duration(timeout),
                crate::units::format_duration(defaults.max_timeout)
            ),
        ));
    }
    let size = |field: &str, value: Option<NumberOrText>, default: u64, min: u64, max: u64| {
        let bytes = match value {
            Some(value) => value
                .to_size()
                .map_err(|message| ValidationError::new(field, message))?,
            None => default,
        };
        if bytes < min || bytes > max {
            return Err(ValidationError::new(
                field,
                format!("{bytes} bytes is outside {min}..={max}"),
            ));
        }
        Ok(bytes)
    };
    Ok(Limits {
        fuel,
        timeout,
        memory: size(
            "limits.memory",
            spec.memory,
            defaults.memory,
            1 << 20,
            defaults.max_memory,
        )?,
        output: size("limits.output", spec.output, defaults.output, 0, defaults.max_output)?,
    })
}

/// A retry policy as sent, resolved; `field` names it in errors
/// (`policy.retry`, `steps[2].retry`).
pub fn resolve_retry(field: &str, spec: Option<RetrySpec>) -> Result<Retry, ValidationError> {
    let retry = spec.unwrap_or_default();
    let duration = |name: &str, value: Option<NumberOrText>, default: Duration| match value {
        Some(value) => value
            .to_duration()
            .map_err(|message| ValidationError::new(format!("{field}.{name}"), message)),
        None => Ok(default),
    };
    let max_attempts = retry.max_attempts.unwrap_or(1);
    if !(1..=100).contains(&max_attempts) {
        return Err(ValidationError::new(
            format!("{field}.max_attempts"),
            "must be from 1 to 100",
        ));
    }
    let backoff = duration("backoff", retry.backoff, Duration::from_secs(1))?;
    let max_backoff = duration("max_backoff", retry.max_backoff, Duration::from_secs(3600))?;
    if max_backoff > MAX_BACKOFF {
        return Err(ValidationError::new(
            format!("{field}.max_backoff"),
            "must be at most 7 days",
        ));
    }
    if max_backoff < backoff {
        return Err(ValidationError::new(
            format!("{field}.max_backoff"),
            format!("must not be shorter than {field}.backoff"),
        ));
    }
    Ok(Retry {
        max_attempts,
        backoff,
        max_backoff,
    })
}

/// The largest `policy.concurrency.limit`.
const MAX_CONCURRENCY_LIMIT: u32 = 10_000;

fn resolve_policy(spec: Option<PolicySpec>) -> Result<Policy, ValidationError> {
    let spec = spec.unwrap_or_default();
    let duration = |field: &str, value: Option<NumberOrText>, default: Duration| match value {
        Some(value) => value
            .to_duration()
            .map_err(|message| ValidationError::new(field, message)),
        None => Ok(default),
    };
    let retry = resolve_retry("policy.retry", spec.retry)?;
    Ok(Policy {
        misfire: spec.misfire.unwrap_or_default(),
        misfire_window: duration(
            "policy.misfire_window",
            spec.misfire_window,
            Duration::from_secs(24 * 3600),
        )?,
        overlap: spec.overlap.unwrap_or_default(),
        retry,
        priority: spec.priority.unwrap_or_default(),
        pause_after_failures: match spec.pause_after_failures {
            Some(0) => {
                return Err(ValidationError::new(
                    "policy.pause_after_failures",
                    "must be at least 1",
                ));
            }
            count => count,
        },
        concurrency: match spec.concurrency {
            Some(group) => {
                check_name(&group.key).map_err(|message| ValidationError::new("policy.concurrency.key", message))?;
                if !(1..=MAX_CONCURRENCY_LIMIT).contains(&group.limit) {
                    return Err(ValidationError::new(
                        "policy.concurrency.limit",
                        format!("must be from 1 to {MAX_CONCURRENCY_LIMIT}"),
                    ));
                }
                Some(group)
            }
            None => None,
        },
    })
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if labels.len() > MAX_LABELS {
        return Err(ValidationError::new(
            "labels",
            format!("has {} labels; the limit is {MAX_LABELS}", labels.len()),
        ));
    }
    for (key, value) in labels {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_LABEL_KEY_LEN
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !key_ok {
            return Err(ValidationError::new(
                format!("labels.{key}"),
                format!("label keys are 1-{MAX_LABEL_KEY_LEN} of letters, digits, '.', '_', '-', '/'"),
            ));
        }
        if value.len() > MAX_LABEL_VALUE_LEN || value.chars().any(char::is_control) {
            return Err(ValidationError::new(
                format!("labels.{key}"),
                format!("label values are at most {MAX_LABEL_VALUE_LEN} bytes without control characters"),
            ));
        }
    }
    Ok(())
}

/// Checks each item of a list field (at most 64) with `check`.
pub fn check_list(
    field: &str,
    items: &[String],
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<(), ValidationError> {
    if items.len() > MAX_LIST_LEN {
        return Err(ValidationError::new(
            field,
            format!("has {} items; the limit is {MAX_LIST_LEN}", items.len()),
        ));
    }
    for (index, item) in items.iter().enumerate() {
        check(item).map_err(|message| ValidationError::new(format!("{field}[{index}]"), message))?;
    }
    Ok(())
}

/// The most jobs one job may wait for.
const MAX_AFTER_JOBS: usize = 20;

/// `after_jobs` as sent, checked: 1 to 20 job names, none twice, not the
/// job's own (`own`). Whether they exist is the caller's check.
fn resolve_after_jobs(spec: Option<AfterJobsSpec>, own: &str) -> Result<Option<AfterJobs>, ValidationError> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let jobs = spec
        .jobs
        .ok_or_else(|| ValidationError::new("after_jobs.jobs", "is required: the jobs to wait for"))?;
    if jobs.is_empty() || jobs.len() > MAX_AFTER_JOBS {
        return Err(ValidationError::new(
            "after_jobs.jobs",
            format!("names {} jobs; give 1 to {MAX_AFTER_JOBS}", jobs.len()),
        ));
    }
    for (index, name) in jobs.iter().enumerate() {
        let field = format!("after_jobs.jobs[{index}]");
        check_name(name).map_err(|message| ValidationError::new(field.clone(), message))?;
        if name == own {
            return Err(ValidationError::new(field, "is the job itself"));
        }
        if jobs[..index].contains(name) {
            return Err(ValidationError::new(field, format!("names {name:?} twice")));
        }
    }
    Ok(Some(AfterJobs {
        jobs,
        when: spec.when.unwrap_or_default(),
    }))
}

/// Checks webhooks: each an http(s) URL or a `mailto:` address.
pub fn check_webhooks(webhooks: &[Webhook]) -> Result<(), ValidationError> {
    if webhooks.len() > MAX_LIST_LEN {
        return Err(ValidationError::new("webhooks", format!("the limit is {MAX_LIST_LEN}")));
    }
    for (index, webhook) in webhooks.iter().enumerate() {
        let valid = match webhook.url.strip_prefix("mailto:") {
            Some(address) => is_mail_address(address),
            None => url::Url::parse(&webhook.url)
                .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some()),
        };
        if !valid || webhook.url.len() > 2048 {
            return Err(ValidationError::new(
                format!("webhooks[{index}].url"),
                format!(
                    "{:?} is not an http:// or https:// URL or a mailto:name@domain address",
                    webhook.url
                ),
            ));
        }
    }
    Ok(())
}

/// Is `text` an address a message can go to (`name@domain`)?
pub fn is_mail_address(text: &str) -> bool {
    text.parse::<lettre::Address>().is_ok()
}

/// Parses a JSON body into a spec, naming the field of any type error.
pub fn parse_spec(body: &Value) -> Result<JobSpec, ValidationError> {
    serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        ValidationError::new(field, error.into_inner().to_string())
    })
}

/// Checks a spec and resolves defaults into a job. `existing` is the job a
/// PUT or PATCH replaces (keeps id and creation time); `now` is the clock.
pub fn validate(
    spec: JobSpec,
    tenant: &str,
    existing: Option<&Job>,
    defaults: &JobDefaults,
    now: DateTime<Utc>,
) -> Result<Job, ValidationError> {
    let name = spec.name.ok_or_else(|| ValidationError::new("name", "is required"))?;
    check_name(&name).map_err(|message| ValidationError::new("name", message))?;
    let name_for_after = name.clone();
    let plugin = spec
        .plugin
        .ok_or_else(|| ValidationError::new("plugin", "is required"))?;
    PluginRef::parse(&plugin).map_err(|message| ValidationError::new("plugin", message))?;
    let schedule = Schedule::from_json(&spec.schedule).map_err(|error| ValidationError {
        code: error.code(),
        field: error.field(),
        message: error.detail(),
    })?;
    check_input(&spec.input, defaults.max_input_bytes)?;
    let limits = resolve_limits(spec.limits, defaults)?;
    let policy = resolve_policy(spec.policy)?;
    let labels = spec.labels.unwrap_or_default();
    check_labels(&labels)?;
    let http_allow = spec.http_allow.unwrap_or_default();
    check_list("http_allow", &http_allow, check_host_pattern)?;
    let secrets = spec.secrets.unwrap_or_default();
    check_list("secrets", &secrets, check_name)?;
    let webhooks = spec.webhooks.unwrap_or_default();
    check_webhooks(&webhooks)?;
    // Whole milliseconds: the anchor of `every` fires, and the due index's unit.
    let now = chrono::DurationRound::duration_trunc(now, chrono::Duration::milliseconds(1)).unwrap_or(now);
    let created_at = existing.map_or(now, |job| job.created_at);
    // As sent: a stored schedule's calendars have their dates filled in.
    let unchanged = existing.and_then(|job| job.schedule.as_ref()).map(Schedule::to_json)
        == schedule.as_ref().map(Schedule::to_json);
    if let Some(end) = schedule.as_ref().and_then(|schedule| schedule.rules.not_after)
        && end <= now
        && !unchanged
    {
        return Err(ValidationError {
            code: "invalid_schedule",
            field: "schedule.not_after".to_string(),
            message: format!("{} is in the past: the job would never fire", end.to_rfc3339()),
        });
    }
    if let Some(at) = schedule.as_ref().and_then(Schedule::at) {
        let window = chrono::Duration::from_std(policy.misfire_window).unwrap_or(chrono::Duration::MAX);
        let too_old = at < now && (policy.misfire == Misfire::Skip || now - at > window);
        if too_old && !unchanged {
            return Err(ValidationError {
                code: "invalid_instant",
                field: "schedule.at".to_string(),
                message: format!(
                    "{} is in the past and policy.misfire {:?} with misfire_window {} would never run it",
                    at.to_rfc3339(),
                    policy.misfire,
                    crate::units::format_duration(policy.misfire_window)
                ),
            });
        }
    }
    let mut job = Job {
        id: existing.map_or_else(crate::model::id::new_id, |job| job.id.clone()),
        tenant: tenant.to_string(),
        name,
        plugin,
        schedule,
        input: spec.input,
        limits,
        policy,
        enabled: spec.enabled.unwrap_or(true),
        labels,
        run_at_start: spec.run_at_start.unwrap_or(false),
        record: spec.record.unwrap_or(false),
        http_allow,
        secrets,
        webhooks,
        created_at,
        updated_at: now,
        next_fire_at: None,
        skipped_fires: existing.map_or(0, |job| job.skipped_fires),
        fired: existing.map_or(0, |job| job.fired),
        // A job enabled again counts its failed runs from none (the store
        // keeps its own count otherwise, see `JobStore::count_outcome`).
        failures: existing.map_or(0, |job| {
            if !job.enabled && spec.enabled.unwrap_or(true) {
                0
            } else {
                job.failures
            }
        }),
        last_finished_at: existing.and_then(|job| job.last_finished_at),
        after_jobs: resolve_after_jobs(spec.after_jobs, &name_for_after)?,
        failure_handler: match spec.failure_handler {
            Some(handler) if handler == name_for_after => {
                return Err(ValidationError::new(
                    "failure_handler",
                    "a job cannot handle its own failures",
                ));
            }
            Some(handler) => {
                check_name(&handler).map_err(|message| ValidationError::new("failure_handler", message))?;
                Some(handler)
            }
            None => None,
        },
    };
    job.next_fire_at = job.first_fire(now);
    Ok(job)
}

/// Gives the calendars a schedule excludes by name their dates (from
/// `dates_of`, the tenant's calendars), naming the entry of one it does not
/// have. A job's next fire is the caller's to compute again.
pub fn resolve_calendars(
    schedule: &mut Schedule,
    dates_of: impl Fn(&str) -> Option<Vec<DateSpan>>,
) -> Result<(), ValidationError> {
    let rules = &mut schedule.rules;
    let resolved = rules.resolve_calendars(dates_of);
    resolved.map_err(|missing| {
        let index = rules
            .exclude
            .iter()
            .position(|exclusion| exclusion.text() == missing)
            .unwrap_or_default();
        ValidationError {
            code: "calendar_not_found",
            field: format!("schedule.exclude[{index}]"),
            message: format!("the tenant has no calendar named {missing:?}; PUT /v1/calendars/{missing} makes one"),
        }
    })
}

fn check_input(input: &Value, max_bytes: usize) -> Result<(), ValidationError> {
    let size = input_bytes(input).len();
    if size > max_bytes {
        return Err(ValidationError::new(
            "input",
            format!("is {size} bytes of JSON; the limit is {max_bytes}"),
        ));
    }
    Ok(())
}

/// Applies an RFC 7386 JSON merge patch to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::job::Overlap;
    use serde_json::json;

    fn defaults() -> JobDefaults {
        crate::config::Config::default().job_defaults()
    }

    fn check(body: Value) -> Result<Job, ValidationError> {
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        validate(parse_spec(&body)?, "default", None, &defaults(), now)
    }

    #[test]
    fn a_minimal_job_gets_defaults() {
        let job = check(json!({"name": "hello", "plugin": "hello"})).unwrap();
        assert_eq!(job.limits.timeout, Duration::from_secs(30));
        assert_eq!(job.limits.memory, 64 << 20);
        assert_eq!(job.policy.misfire, Misfire::RunOnce);
        assert_eq!(job.policy.overlap, Overlap::Skip);
        assert!(job.enabled);
        assert_eq!(job.next_fire_at, None);
        assert_eq!(job.state(), "active");
    }

    #[test]
    fn bad_specs_name_the_field() {
        let rows = [
            (json!({"plugin": "hello"}), "name"),
            (json!({"name": "a b", "plugin": "hello"}), "name"),
            (json!({"name": "x", "plugin": "hello@0"}), "plugin"),
            (json!({"name": "x"}), "plugin"),
            (
                json!({"name": "x", "plugin": "p", "limits": {"memory": "lots"}}),
                "limits.memory",
            ),
            (
                json!({"name": "x", "plugin": "p", "limits": {"memory": 1024}}),
                "limits.memory",
            ),
            (
                json!({"name": "x", "plugin": "p", "limits": {"timeout": "1ms"}}),
                "limits.timeout",
            ),
            (
                json!({"name": "x", "plugin": "p", "limits": {"fuel": 0}}),
                "limits.fuel",
            ),
            (
                json!({"name": "x", "plugin": "p", "limits": {"fuel": "many"}}),
                "limits.fuel",
            ),
            (json!({"name": "x", "plugin": "p", "limits": {"cpu": 1}}), "limits"),
            (
                json!({"name": "x", "plugin": "p", "policy": {"overlap": "sometimes"}}),
                "policy.overlap",
            ),
            (
                json!({"name": "x", "plugin": "p", "policy": {"retry": {"max_attempts": 0}}}),
                "policy.retry.max_attempts",
            ),
            (
                json!({"name": "x", "plugin": "p", "policy": {"retry": {"max_backoff": "100000000h"}}}),
                "policy.retry.max_backoff",
            ),
            (
                json!({"name": "x", "plugin": "p", "schedule": {"every": "100000000h"}}),
                "schedule.every",
            ),
            (
                json!({"name": "x", "plugin": "p", "schedule": {"cron": "* * *"}}),
                "schedule.cron",
            ),
            (
                json!({"name": "x", "plugin": "p", "schedule": {"cron": "* * * * *", "timezone": "Nowhere/Land"}}),
                "schedule.timezone",
            ),
            (
                json!({"name": "x", "plugin": "p", "schedule": {"at": "2020-01-01T00:00:00Z"}}),
                "schedule.at",
            ),
            (
                json!({"name": "x", "plugin": "p", "labels": {"bad key": "v"}}),
                "labels.bad key",
            ),
            (
                json!({"name": "x", "plugin": "p", "http_allow": ["exa mple.com"]}),
                "http_allow[0]",
            ),
            (json!({"name": "x", "plugin": "p", "secrets": ["../etc"]}), "secrets[0]"),
            (
                json!({"name": "x", "plugin": "p", "webhooks": [{"url": "ftp://x"}]}),
                "webhooks[0].url",
            ),
            (json!({"name": "x", "plugin": "p", "colour": "red"}), "colour"),
            (json!({"name": "x", "plugin": "p", "enabled": "yes"}), "enabled"),
        ];
        for (body, field) in rows {
            let error = check(body.clone()).expect_err(&body.to_string());
            assert!(
                error.field.starts_with(field),
                "{body}: field {:?} should be {field:?} ({})",
                error.field,
                error.message
            );
        }
    }

    #[test]
    fn host_patterns_accept_exact_wildcard_and_port() {
        for good in [
            "api.example.com",
            "*.example.com",
            "example.com:8443",
            "127.0.0.1:8080",
            "[::1]:80",
        ] {
            assert!(check_host_pattern(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "*",
            "a*.example.com",
            "example.com:0",
            "example.com:x",
            "http://example.com",
        ] {
            assert!(check_host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(&mut target, &json!({"a": null, "b": {"c": 5}, "e": [2], "f": "new"}));
        assert_eq!(target, json!({"b": {"c": 5, "d": 3}, "e": [2], "f": "new"}));
    }

    #[test]
    fn spec_round_trips_through_a_job() {
        let job = check(json!({
            "name": "nightly", "plugin": "hello@2",
            "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
            "input": {"name": "x"}, "labels": {"team": "data"},
            "limits": {"memory": "128MiB", "timeout": "2m"},
            "policy": {"priority": "high", "retry": {"max_attempts": 3}}
        }))
        .unwrap();
        let again = check(job.to_spec_json()).unwrap();
        assert_eq!(again.to_spec_json(), job.to_spec_json());
        assert_eq!(job.limits.memory, 128 << 20);
        assert!(job.next_fire_at.is_some());
    }
}
