//! Tenants and their API tokens. A token's secret is shown once, when it is
//! made; only its sha256 is kept.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::timing::DateSpan;

use crate::config::JobDefaults;
use crate::model::validate::ValidationError;
use crate::units::NumberOrText;

/// A tenant: a namespace of plugins, jobs, runs, kv and secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Its name (also its id).
    pub name: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// What it may use.
    #[serde(default)]
    pub quotas: Quotas,
    /// Host patterns its jobs' `http_allow` must fall within (set by the
    /// admin); None leaves jobs free to list any host (the SSRF wall still
    /// stands).
    #[serde(default)]
    pub http_allow: Option<Vec<String>>,
    /// The daily (or any cron) summary of its runs it asked for by e-mail
    /// (the API's "digest", `/v1/digest`; "digest" alone, in the code,
    /// is a content hash).
    #[serde(default)]
    pub digest: Option<Summary>,
    /// Named sets of dates its jobs' schedules may exclude (holidays).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calendars: BTreeMap<String, Calendar>,
}

/// A tenant's calendar: dates a schedule excludes by the calendar's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    /// Local dates and ranges (`2026-12-25`, `2026-12-24..2026-12-26`), in
    /// the zone of the schedule that excludes them.
    #[serde(with = "date_texts")]
    pub dates: Vec<DateSpan>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

impl Tenant {
    /// The dates of its calendar `name`, if it has one.
    pub fn calendar_dates(&self, name: &str) -> Option<Vec<DateSpan>> {
        self.calendars.get(name).map(|calendar| calendar.dates.clone())
    }
}

/// Dates and ranges as their texts.
mod date_texts {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::timing::DateSpan;

    pub fn serialize<S: Serializer>(dates: &[DateSpan], serializer: S) -> Result<S::Ok, S::Error> {
        dates
            .iter()
            .map(DateSpan::text)
            .collect::<Vec<_>>()
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<DateSpan>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| DateSpan::parse(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// A tenant's e-mail summary of its runs (the API's digest): when, where
/// to, and what was sent last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// When to send it: a cron line ...
    pub cron: String,
    /// ... in this IANA zone.
    pub timezone: String,
    /// Addresses it goes to.
    pub to: Vec<String>,
    /// When it was set: the first digest covers runs from here.
    pub since: DateTime<Utc>,
    /// The fire the last digest was sent for; the next one covers runs
    /// finished after it.
    pub last_sent_at: Option<DateTime<Utc>>,
}

impl Summary {
    /// The schedule it fires on (checked when the digest was set).
    pub fn schedule(&self) -> Option<crate::timing::Schedule> {
        let spec = serde_json::json!({"cron": self.cron, "timezone": self.timezone});
        crate::timing::Schedule::from_json(&spec).ok().flatten()
    }

    /// Where the next digest's window starts.
    pub fn window_start(&self) -> DateTime<Utc> {
        self.last_sent_at.unwrap_or(self.since)
    }

    /// The next fire after the last one sent (or after it was set).
    pub fn next_fire(&self) -> Option<DateTime<Utc>> {
        let start = self.window_start();
        self.schedule()?.next_fire(start, start, None)
    }
}

/// What a tenant may use; None is no limit beyond the daemon's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Bytes of all its plugin versions together.
    pub plugin_bytes: Option<u64>,
    /// Number of jobs.
    pub jobs: Option<u64>,
    /// Runs executing at once; more wait in the queue.
    pub concurrent_runs: Option<u32>,
    /// Most fuel a job may ask for.
    pub max_fuel: Option<u64>,
    /// Longest timeout a job may ask for, milliseconds.
    pub max_timeout_ms: Option<u64>,
    /// Most memory a job may ask for, bytes.
    pub max_memory: Option<u64>,
    /// Bytes of kv state (keys and values) of all its jobs together.
    pub kv_bytes: Option<u64>,
    /// API requests per second (a burst of twice as many is let through).
    pub requests_per_second: Option<u32>,
    /// Runs waiting in the queue at once (queued, not yet running).
    pub queued_runs: Option<u64>,
    /// Bytes of its run history: run records (inputs included), outputs
    /// and logs together.
    pub run_bytes: Option<u64>,
}

/// Quotas as the API takes them: sizes as bytes or `"64MiB"`, the timeout
/// as seconds or `"30s"`; null or absent is no limit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotasSpec {
    plugin_bytes: Option<NumberOrText>,
    jobs: Option<u64>,
    concurrent_runs: Option<u32>,
    max_fuel: Option<u64>,
    max_timeout: Option<NumberOrText>,
    max_memory: Option<NumberOrText>,
    kv_bytes: Option<NumberOrText>,
    requests_per_second: Option<u32>,
    queued_runs: Option<u64>,
    run_bytes: Option<NumberOrText>,
}

impl Quotas {
    /// Reads the API's form (as a tenant shows its `quotas`, or with sizes
    /// and the timeout as text), naming the field at fault.
    pub fn from_json(value: &serde_json::Value) -> Result<Quotas, ValidationError> {
        let spec: QuotasSpec = serde_path_to_error::deserialize(value).map_err(|error| {
            let path = error.path().to_string();
            ValidationError::new(
                format!("quotas.{path}").trim_end_matches('.'),
                error.into_inner().to_string(),
            )
        })?;
        let size = |field: &str, value: Option<NumberOrText>| {
            value
                .map(|value| value.to_size())
                .transpose()
                .map_err(|message| ValidationError::new(format!("quotas.{field}"), message))
        };
        let at_least_one = |field: &str, value: Option<u64>| match value {
            Some(0) => Err(ValidationError::new(
                format!("quotas.{field}"),
                "must be at least 1 (null is no limit)",
            )),
            _ => Ok(value),
        };
        let max_timeout_ms = spec
            .max_timeout
            .map(|value| value.to_duration())
            .transpose()
            .map_err(|message| ValidationError::new("quotas.max_timeout", message))?
            .map(|timeout| u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        Ok(Quotas {
            plugin_bytes: size("plugin_bytes", spec.plugin_bytes)?,
            jobs: spec.jobs,
            concurrent_runs: at_least_one("concurrent_runs", spec.concurrent_runs.map(u64::from))?
                .map(|runs| u32::try_from(runs).unwrap_or(u32::MAX)),
            max_fuel: at_least_one("max_fuel", spec.max_fuel)?,
            max_timeout_ms: at_least_one("max_timeout", max_timeout_ms)?,
            max_memory: size("max_memory", spec.max_memory)?,
            kv_bytes: size("kv_bytes", spec.kv_bytes)?,
            requests_per_second: at_least_one("requests_per_second", spec.requests_per_second.map(u64::from))?
                .map(|rate| u32::try_from(rate).unwrap_or(u32::MAX)),
            queued_runs: at_least_one("queued_runs", spec.queued_runs)?,
            run_bytes: size("run_bytes", spec.run_bytes)?,
        })
    }

    /// The job defaults and ceilings under these quotas: each ceiling the
    /// smaller of the daemon's and the tenant's, each default no more than
    /// its ceiling.
    pub fn cap(&self, defaults: &JobDefaults) -> JobDefaults {
        let mut capped = defaults.clone();
        if let Some(fuel) = self.max_fuel {
            capped.max_fuel = Some(capped.max_fuel.map_or(fuel, |ceiling| ceiling.min(fuel)));
        }
        if let Some(ms) = self.max_timeout_ms {
            capped.max_timeout = capped.max_timeout.min(std::time::Duration::from_millis(ms));
        }
        if let Some(memory) = self.max_memory {
            capped.max_memory = capped.max_memory.min(memory);
        }
        // Under a fuel ceiling every run is metered: by default at the ceiling.
        capped.fuel = match (capped.fuel, capped.max_fuel) {
            (Some(fuel), Some(ceiling)) => Some(fuel.min(ceiling)),
            (None, ceiling) => ceiling,
            (fuel, None) => fuel,
        };
        capped.timeout = capped.timeout.min(capped.max_timeout);
        capped.memory = capped.memory.min(capped.max_memory);
        capped
    }

    /// What a tenant made over the API gets unless the admin says otherwise:
    /// room for real work, not for taking the daemon over.
    pub fn for_new_tenant() -> Quotas {
        Quotas {
            plugin_bytes: Some(1 << 30),
            jobs: Some(10_000),
            concurrent_runs: Some(8),
            max_fuel: None,
            max_timeout_ms: None,
            max_memory: None,
            kv_bytes: Some(256 << 20),
            requests_per_second: Some(200),
            queued_runs: Some(10_000),
            run_bytes: Some(1 << 30),
        }
    }
}

/// An API token of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Its id (a ULID), to list and revoke it by.
    pub id: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// sha256 of the secret, hex.
    pub hash: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked token authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A tenant's secret as stored: the value sealed with the daemon's master
/// key (see `crate::vault`); never the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// The tenant it belongs to.
    pub tenant: String,
    /// Its name, as jobs list it in `secrets`.
    pub name: String,
    /// The AEAD nonce, base64.
    pub nonce: String,
    /// The sealed value (ciphertext and tag), base64.
    pub sealed: String,
    /// When it was first set.
    pub created_at: DateTime<Utc>,
    /// When its value last changed.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quotas_read_sizes_and_durations_and_name_bad_fields() {
        let quotas = Quotas::from_json(&json!({
            "plugin_bytes": "10MiB", "jobs": 3, "concurrent_runs": 1, "max_timeout": "5s",
            "max_memory": 33554432, "kv_bytes": "1KiB", "requests_per_second": 4, "max_fuel": null,
            "queued_runs": 50, "run_bytes": "64MiB"
        }))
        .unwrap();
        assert_eq!(quotas.plugin_bytes, Some(10 << 20));
        assert_eq!((quotas.queued_runs, quotas.run_bytes), (Some(50), Some(64 << 20)));
        assert_eq!(quotas.max_timeout_ms, Some(5000));
        assert_eq!(quotas.kv_bytes, Some(1024));
        assert_eq!(quotas.max_fuel, None);
        for (bad, field) in [
            (json!({"jobs": "many"}), "quotas.jobs"),
            (json!({"concurrent_runs": 0}), "quotas.concurrent_runs"),
            (json!({"max_timeout": "soon"}), "quotas.max_timeout"),
            (json!({"kv_bytes": "1 potato"}), "quotas.kv_bytes"),
            (json!({"queued_runs": 0}), "quotas.queued_runs"),
            (json!({"queued_runs": "lots"}), "quotas.queued_runs"),
            (json!({"run_bytes": "1 potato"}), "quotas.run_bytes"),
            (json!({"cpu": 1}), "quotas.cpu"),
        ] {
            let error = Quotas::from_json(&bad).unwrap_err();
            assert_eq!(error.field, field, "{bad}: {error}");
        }
    }

    #[test]
    fn ceilings_lower_the_daemons_limits_and_defaults_follow() {
        let defaults = crate::config::Config::default().job_defaults();
        let quotas = Quotas {
            max_timeout_ms: Some(5000),
            max_memory: Some(16 << 20),
            max_fuel: Some(1000),
            ..Quotas::default()
        };
        let capped = quotas.cap(&defaults);
        assert_eq!(capped.max_timeout, std::time::Duration::from_secs(5));
        assert_eq!(capped.timeout, std::time::Duration::from_secs(5));
        assert_eq!((capped.max_memory, capped.memory), (16 << 20, 16 << 20));
        assert_eq!((capped.max_fuel, capped.fuel), (Some(1000), Some(1000)));
        assert_eq!(Quotas::default().cap(&defaults), defaults);
    }
}
