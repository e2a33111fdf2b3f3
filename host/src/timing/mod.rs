//! When a job runs: `cron` in a time zone, `every` (fixed rate), `after`
//! (fixed delay), `at` (once), or on demand. Validation of the JSON a user
//! sends and the next-fire computation; pure functions, no clocks read here
//! (callers pass "now").

pub mod cron;
pub mod zoned;

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::cron::CronExpr;

/// A validated schedule as stored with its job.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// A cron line in an IANA zone.
    Cron {
        /// The expression as the user wrote it.
        expression: String,
        /// Parsed fields.
        parsed: CronExpr,
        /// The zone its wall times are in.
        timezone: Tz,
    },
    /// Every interval, anchored to the job's creation.
    Every(Duration),
    /// The interval after the previous run finished.
    After(Duration),
    /// Once, at an instant.
    At(DateTime<Utc>),
}

/// Why a schedule is refused; the API turns each into an error code. It
/// reads `<field>: <detail>` ([`ScheduleError::field`], [`ScheduleError::detail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// Not an object with exactly one known kind.
    Shape {
        /// What is wrong.
        message: String,
    },
    /// The cron line does not parse.
    InvalidCron {
        /// What is wrong.
        message: String,
    },
    /// Not an IANA zone name.
    UnknownTimezone {
        /// What the user sent.
        timezone: String,
    },
    /// `every`/`after` is not a positive duration.
    InvalidInterval {
        /// `every` or `after`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// `at` is not an RFC 3339 instant or is in the past.
    InvalidInstant {
        /// What is wrong.
        message: String,
    },
}

impl ScheduleError {
    /// The field it is about (`schedule`, `schedule.cron`, ...).
    pub fn field(&self) -> String {
        match self {
            ScheduleError::Shape { .. } => "schedule".to_string(),
            ScheduleError::InvalidCron { .. } => "schedule.cron".to_string(),
            ScheduleError::UnknownTimezone { .. } => "schedule.timezone".to_string(),
            ScheduleError::InvalidInterval { field, .. } => format!("schedule.{field}"),
            ScheduleError::InvalidInstant { .. } => "schedule.at".to_string(),
        }
    }

    /// What is wrong with the field.
    pub fn detail(&self) -> String {
        match self {
            ScheduleError::Shape { message }
            | ScheduleError::InvalidCron { message }
            | ScheduleError::InvalidInterval { message, .. }
            | ScheduleError::InvalidInstant { message } => message.clone(),
            ScheduleError::UnknownTimezone { timezone } => {
                format!("unknown time zone {timezone:?}; use an IANA name like \"Europe/Berlin\"")
            }
        }
    }

    /// The stable code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            ScheduleError::Shape { .. } => "invalid_schedule",
            ScheduleError::InvalidCron { .. } => "invalid_cron",
            ScheduleError::UnknownTimezone { .. } => "unknown_timezone",
            ScheduleError::InvalidInterval { .. } => "invalid_interval",
            ScheduleError::InvalidInstant { .. } => "invalid_instant",
        }
    }
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}: {}", self.field(), self.detail())
    }
}

impl std::error::Error for ScheduleError {}

/// A schedule's JSON form, as users send it and as the API shows it: one
/// of `{"cron", "timezone"}`, `{"every"}`, `{"after"}`, `{"at"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleJson {
    /// A cron line (five fields, six with seconds first, or `@daily` and the like) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
    /// ... in this IANA zone (shown with every cron line; `UTC` unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    /// Fire at this fixed rate from the job's creation (`"30s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    every: Option<String>,
    /// Fire this long after the job's previous run finished (`"1m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// Fire once at this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<String>,
}

const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longer intervals are almost certainly mistakes, and far-future arithmetic
/// has limits: ten years.
pub const MAX_INTERVAL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

fn interval(field: &'static str, text: &str) -> Result<Duration, ScheduleError> {
    let duration =
        crate::units::parse_duration(text).map_err(|message| ScheduleError::InvalidInterval { field, message })?;
    if duration < MIN_INTERVAL {
        return Err(ScheduleError::InvalidInterval {
            field,
            message: format!("{text:?} is shorter than the minimum of 1s"),
        });
    }
    if duration > MAX_INTERVAL {
        return Err(ScheduleError::InvalidInterval {
            field,
            message: format!("{text:?} is longer than ten years"),
        });
    }
    Ok(duration)
}

impl Schedule {
    /// Validates the JSON a user sent; `null` means on demand (None).
    pub fn from_json(value: &Value) -> Result<Option<Schedule>, ScheduleError> {
        if value.is_null() {
            return Ok(None);
        }
        let json: ScheduleJson = serde_json::from_value(value.clone()).map_err(|error| ScheduleError::Shape {
            message: format!(
                "{error}; expected one of {{\"cron\", \"timezone\"?}}, {{\"every\"}}, {{\"after\"}}, {{\"at\"}} or null"
            ),
        })?;
        let kinds = [&json.cron, &json.every, &json.after, &json.at]
            .iter()
            .filter(|kind| kind.is_some())
            .count();
        if kinds != 1 {
            return Err(ScheduleError::Shape {
                message: "give exactly one of \"cron\", \"every\", \"after\", \"at\" (or null for on demand)"
                    .to_string(),
            });
        }
        if json.timezone.is_some() && json.cron.is_none() {
            return Err(ScheduleError::Shape {
                message: "\"timezone\" only applies to \"cron\"".to_string(),
            });
        }
        if let Some(expression) = json.cron {
            let parsed =
                CronExpr::parse(&expression).map_err(|error| ScheduleError::InvalidCron { message: error.message })?;
            let timezone = match json.timezone.as_deref() {
                None => Tz::UTC,
                Some(name) => name.parse::<Tz>().map_err(|_| ScheduleError::UnknownTimezone {
                    timezone: name.to_string(),
                })?,
            };
            return Ok(Some(Schedule::Cron {
                expression,
                parsed,
                timezone,
            }));
        }
        if let Some(text) = json.every {
            return Ok(Some(Schedule::Every(interval("every", &text)?)));
        }
        if let Some(text) = json.after {
            return Ok(Some(Schedule::After(interval("after", &text)?)));
        }
        let text = json.at.unwrap_or_default();
        let at = DateTime::parse_from_rfc3339(&text).map_err(|error| ScheduleError::InvalidInstant {
            message: format!("{text:?} is not an RFC 3339 instant like \"2026-12-01T14:00:00-03:00\" ({error})"),
        })?;
        // Whole milliseconds, the unit of fires everywhere else.
        let at = at.with_timezone(&Utc);
        let at = chrono::DurationRound::duration_trunc(at, chrono::Duration::milliseconds(1)).unwrap_or(at);
        Ok(Some(Schedule::At(at)))
    }

    /// The JSON form (the inverse of [`Schedule::from_json`]).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.to_form()).expect("a struct of strings always serializes")
    }

    /// The JSON form as its type.
    pub fn to_form(&self) -> ScheduleJson {
        match self {
            Schedule::Cron {
                expression, timezone, ..
            } => ScheduleJson {
                cron: Some(expression.clone()),
                timezone: Some(timezone.name().to_string()),
                ..ScheduleJson::default()
            },
            Schedule::Every(every) => ScheduleJson {
                every: Some(crate::units::format_duration(*every)),
                ..ScheduleJson::default()
            },
            Schedule::After(after) => ScheduleJson {
                after: Some(crate::units::format_duration(*after)),
                ..ScheduleJson::default()
            },
            Schedule::At(at) => ScheduleJson {
                at: Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                ..ScheduleJson::default()
            },
        }
    }

    /// The first fire strictly after `after`. `anchor` is when the job was
    /// created (the origin of `every`); `last_finished` is when its previous
    /// run finished (the origin of `after`).
    pub fn next_fire(
        &self,
        after: DateTime<Utc>,
        anchor: DateTime<Utc>,
        last_finished: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { parsed, timezone, .. } => zoned::next_fire(parsed, *timezone, after),
            Schedule::Every(every) => {
                let every = chrono::Duration::from_std(*every).ok()?;
                if after < anchor {
                    return anchor.checked_add_signed(every);
                }
                let periods = (after - anchor).num_milliseconds() / every.num_milliseconds().max(1) + 1;
                anchor.checked_add_signed(every.checked_mul(i32::try_from(periods).ok()?)?)
            }
            Schedule::After(delay) => {
                let next = last_finished
                    .unwrap_or(anchor)
                    .checked_add_signed(chrono::Duration::from_std(*delay).ok()?)?;
                Some(next.max(after + chrono::Duration::milliseconds(1)))
            }
            Schedule::At(at) => (*at > after).then_some(*at),
        }
    }

    /// How many fires come strictly after `after` and at or before `until`,
    /// computed without walking every fire where the schedule allows.
    pub fn count_fires(&self, anchor: DateTime<Utc>, after: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
        if until <= after {
            return 0;
        }
        match self {
            Schedule::Cron { parsed, timezone, .. } => zoned::count_fires(parsed, *timezone, after, until),
            Schedule::Every(every) => {
                let every = every.as_millis().max(1) as i64;
                // Fires are anchor + k * every for k >= 1.
                let index = |at: DateTime<Utc>| ((at - anchor).num_milliseconds().max(0)) / every;
                (index(until) - index(after.max(anchor))).max(0) as u64
            }
            Schedule::After(_) => 0,
            Schedule::At(at) => u64::from(*at > after && *at <= until),
        }
    }

    /// The latest fire at or after `start` and at or before `limit`.
    pub fn last_fire_between(
        &self,
        anchor: DateTime<Utc>,
        start: DateTime<Utc>,
        limit: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let second = chrono::Duration::seconds(1);
        let fire_after = |at: DateTime<Utc>| self.next_fire(at, anchor, None);
        // A fire in (limit - reach, limit], found by doubling the reach...
        let just_before_start = start - chrono::Duration::milliseconds(1);
        let mut reach = second;
        let mut low = loop {
            let low = (limit - reach).max(just_before_start);
            if fire_after(low).is_some_and(|fire| fire <= limit) {
                break low;
            }
            if low == just_before_start {
                return None;
            }
            reach = reach * 2;
        };
        // ...then narrowed: keep a fire in (low, limit], move low up.
        let mut high = limit;
        while high - low > chrono::Duration::milliseconds(1) {
            let middle = low + (high - low) / 2;
            if fire_after(middle).is_some_and(|fire| fire <= limit) {
                low = middle;
            } else {
                high = middle;
            }
        }
        fire_after(low).filter(|fire| *fire <= limit && *fire >= start)
    }

    /// The zone a cron schedule's wall times are in (the others have none).
    pub fn timezone(&self) -> Option<Tz> {
        match self {
            Schedule::Cron { timezone, .. } => Some(*timezone),
            Schedule::Every(_) | Schedule::After(_) | Schedule::At(_) => None,
        }
    }

    /// The next `count` fires strictly after `from` (for previews).
    pub fn preview(&self, from: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::with_capacity(count);
        let mut at = from;
        while fires.len() < count {
            let Some(next) = self.next_fire(at, from, None) else {
                break;
            };
            fires.push(next);
            at = next;
            if matches!(self, Schedule::After(_)) {
                // Each run of an `after` job starts the delay again; a preview
                // assumes runs take no time.
                break;
            }
        }
        fires
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Schedule::from_json(&value)
            .map_err(serde::de::Error::custom)?
            .ok_or_else(|| serde::de::Error::custom("schedule: null where a schedule was expected"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_field_apart_from_what_is_wrong() {
        let cases = [
            (json_error(serde_json::json!({"every": "1m", "at": "x"})), "schedule"),
            (json_error(serde_json::json!({"cron": "61 * * * *"})), "schedule.cron"),
            (
                json_error(serde_json::json!({"cron": "* * * * *", "timezone": "Mars/Olympus"})),
                "schedule.timezone",
            ),
            (json_error(serde_json::json!({"after": "0s"})), "schedule.after"),
            (json_error(serde_json::json!({"at": "yesterday"})), "schedule.at"),
        ];
        for (error, field) in cases {
            assert_eq!(error.field(), field, "{error:?}");
            assert!(
                !error.detail().is_empty() && !error.detail().starts_with(field),
                "{error:?}"
            );
            assert_eq!(error.to_string(), format!("{field}: {}", error.detail()));
        }
    }

    fn json_error(json: serde_json::Value) -> ScheduleError {
        Schedule::from_json(&json).expect_err("a refused schedule")
    }
    use serde_json::json;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn schedule_json_is_validated_with_a_code_per_problem() {
        let rows = [
            (
                json!({"cron": "0 19 * * MON-FRI", "timezone": "America/Sao_Paulo"}),
                None,
            ),
            (json!({"cron": "@daily"}), None),
            (json!({"every": "30s"}), None),
            (json!({"after": "1m"}), None),
            (json!({"at": "2026-12-01T14:00:00-03:00"}), None),
            (json!({"cron": "61 * * * *"}), Some("invalid_cron")),
            (
                json!({"cron": "* * * * *", "timezone": "Mars/Olympus"}),
                Some("unknown_timezone"),
            ),
            (json!({"every": "0s"}), Some("invalid_interval")),
            (json!({"every": "-5s"}), Some("invalid_interval")),
            (json!({"after": "soon"}), Some("invalid_interval")),
            (json!({"at": "tomorrow"}), Some("invalid_instant")),
            (json!({"every": "30s", "after": "1m"}), Some("invalid_schedule")),
            (json!({"every": "30s", "timezone": "UTC"}), Some("invalid_schedule")),
            (json!({"hourly": true}), Some("invalid_schedule")),
            (json!({}), Some("invalid_schedule")),
            (json!("* * * * *"), Some("invalid_schedule")),
        ];
        for (value, expected) in rows {
            let code = Schedule::from_json(&value).err().map(|error| error.code());
            assert_eq!(code, expected, "{value}");
        }
        assert_eq!(Schedule::from_json(&Value::Null).unwrap(), None);
    }

    #[test]
    fn json_round_trips() {
        for value in [
            json!({"cron": "0 19 * * MON-FRI", "timezone": "America/Sao_Paulo"}),
            json!({"every": "30s"}),
            json!({"after": "1m 30s"}),
            json!({"at": "2026-12-01T17:00:00.000Z"}),
        ] {
            let schedule = Schedule::from_json(&value).unwrap().unwrap();
            assert_eq!(schedule.to_json(), value);
        }
    }

    #[test]
    fn every_is_anchored_to_creation_and_does_not_drift() {
        let schedule = Schedule::Every(Duration::from_secs(30));
        let anchor = utc("2026-11-25T10:00:00.250Z");
        assert_eq!(
            schedule.next_fire(anchor, anchor, None),
            Some(utc("2026-11-25T10:00:30.250Z"))
        );
        // Asked late (say after a slow run), the next fire stays on the grid.
        assert_eq!(
            schedule.next_fire(utc("2026-11-25T10:07:41Z"), anchor, None),
            Some(utc("2026-11-25T10:08:00.250Z"))
        );
    }

    #[test]
    fn after_counts_from_the_last_finish_and_at_fires_once() {
        let after = Schedule::After(Duration::from_secs(60));
        let anchor = utc("2026-11-25T10:00:00Z");
        assert_eq!(after.next_fire(anchor, anchor, None), Some(utc("2026-11-25T10:01:00Z")));
        assert_eq!(
            after.next_fire(anchor, anchor, Some(utc("2026-11-25T10:05:10Z"))),
            Some(utc("2026-11-25T10:06:10Z"))
        );
        let at = Schedule::At(utc("2026-12-01T17:00:00Z"));
        assert_eq!(at.next_fire(anchor, anchor, None), Some(utc("2026-12-01T17:00:00Z")));
        assert_eq!(at.next_fire(utc("2026-12-01T17:00:00Z"), anchor, None), None);
    }

    #[test]
    fn last_fire_between_finds_the_latest_fire_in_range() {
        let anchor = utc("2026-11-25T10:00:00Z");
        let every = Schedule::Every(Duration::from_secs(60));
        assert_eq!(
            every.last_fire_between(anchor, utc("2026-11-25T10:01:00Z"), utc("2026-11-25T10:05:30Z")),
            Some(utc("2026-11-25T10:05:00Z"))
        );
        assert_eq!(
            every.last_fire_between(anchor, utc("2026-11-25T10:05:10Z"), utc("2026-11-25T10:05:30Z")),
            None
        );
        let daily = Schedule::from_json(&json!({"cron": "30 2 * * *", "timezone": "Europe/Lisbon"}))
            .unwrap()
            .unwrap();
        assert_eq!(
            daily.last_fire_between(anchor, utc("2026-01-01T00:00:00Z"), utc("2026-11-25T10:00:00Z")),
            Some(utc("2026-11-25T02:30:00Z"))
        );
        assert_eq!(every.count_fires(anchor, anchor, utc("2026-11-25T11:00:00Z")), 60);
        assert_eq!(
            every.count_fires(anchor, utc("2026-11-25T10:00:30Z"), utc("2026-11-25T10:02:00Z")),
            2
        );
    }

    #[test]
    fn preview_lists_fires_after_from() {
        let schedule = Schedule::from_json(&json!({"cron": "*/15 * * * *"})).unwrap().unwrap();
        let fires = schedule.preview(utc("2026-11-25T10:00:00Z"), 3);
        assert_eq!(
            fires,
            [
                utc("2026-11-25T10:15:00Z"),
                utc("2026-11-25T10:30:00Z"),
                utc("2026-11-25T10:45:00Z")
            ]
        );
    }
}
