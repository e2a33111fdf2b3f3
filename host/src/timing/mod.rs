//! When a job runs: `cron` in a time zone, `every` (fixed rate), `after`
//! (fixed delay), `at` (once), or on demand. Validation of the JSON a user
//! sends and the next-fire computation; pure functions, no clocks read here
//! (callers pass "now").

pub mod cron;
pub mod rules;
pub mod zoned;

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::cron::CronExpr;
pub use self::rules::{DateSpan, Exclusion, Rules};

/// What makes a schedule fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A cron line (in the schedule's zone).
    Cron {
        /// The expression as the user wrote it.
        expression: String,
        /// Parsed fields.
        parsed: CronExpr,
    },
    /// Every interval, anchored to the job's creation.
    Every(Duration),
    /// The interval after the previous run finished.
    After(Duration),
    /// Once, at an instant.
    At(DateTime<Utc>),
}

/// A validated schedule as stored with its job: its kind, the zone of its
/// wall times and dates, and its rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// What makes it fire.
    pub kind: Kind,
    /// The zone a cron line's wall times and `exclude`'s dates are in.
    pub timezone: Tz,
    /// Jitter, exclusions, bounds.
    pub rules: Rules,
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
    /// A rule (`jitter`, `exclude`, `not_before`, `not_after`, `max_fires`)
    /// is not valid, or not for this kind of schedule.
    InvalidRule {
        /// The rule's field, below `schedule.` (`exclude[2]`).
        field: String,
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
            ScheduleError::InvalidRule { field, .. } => format!("schedule.{field}"),
        }
    }

    /// What is wrong with the field.
    pub fn detail(&self) -> String {
        match self {
            ScheduleError::Shape { message }
            | ScheduleError::InvalidCron { message }
            | ScheduleError::InvalidInterval { message, .. }
            | ScheduleError::InvalidInstant { message }
            | ScheduleError::InvalidRule { message, .. } => message.clone(),
            ScheduleError::UnknownTimezone { timezone } => {
                format!("unknown time zone {timezone:?}; use an IANA name like \"Europe/Berlin\"")
            }
        }
    }

    /// The stable code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            ScheduleError::Shape { .. } | ScheduleError::InvalidRule { .. } => "invalid_schedule",
            ScheduleError::InvalidCron { .. } => "invalid_cron",
            ScheduleError::UnknownTimezone { .. } => "unknown_timezone",
            ScheduleError::InvalidInterval { .. } => "invalid_interval",
            ScheduleError::InvalidInstant { .. } => "invalid_instant",
        }
    }

    fn rule(field: impl Into<String>, message: impl Into<String>) -> ScheduleError {
        ScheduleError::InvalidRule {
            field: field.into(),
            message: message.into(),
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
/// of `{"cron", "timezone"}`, `{"every"}`, `{"after"}`, `{"at"}`, each
/// with optional rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleJson {
    /// A cron line (five fields, six with seconds first, or `@daily` and the like) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
    /// ... in this IANA zone (shown with every cron line; `UTC` unless
    /// given). Also the zone of `exclude`'s dates.
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
    /// Start each fire's run later by a delay in [0, jitter) that is the
    /// same for the same job and fire (`"30s"`, at most a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<String>,
    /// Local dates (`"2026-12-25"`), ranges (`"2026-12-24..2026-12-26"`,
    /// both ends included) and tenant calendars by name on which it does
    /// not fire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exclude: Vec<String>,
    /// No fire before this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_before: Option<String>,
    /// No fire after this instant (RFC 3339); the job is then done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
    /// The job is done once this many of its fires have run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_fires: Option<u64>,
}

const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longer intervals are almost certainly mistakes, and far-future arithmetic
/// has limits: ten years.
pub const MAX_INTERVAL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// How many runs of excluded dates a search for the next fire jumps over
/// before it gives up (a cron line whose every date is excluded).
const MAX_EXCLUDED_JUMPS: usize = 10_000;

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

/// An RFC 3339 instant in whole milliseconds (the unit of fires everywhere).
fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|error| format!("{text:?} is not an RFC 3339 instant like \"2026-12-01T14:00:00-03:00\" ({error})"))?
        .with_timezone(&Utc);
    Ok(chrono::DurationRound::duration_trunc(at, chrono::Duration::milliseconds(1)).unwrap_or(at))
}

fn format_instant(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The rules of a schedule's JSON form, checked against its kind.
fn read_rules(json: &ScheduleJson, kind: &Kind) -> Result<Rules, ScheduleError> {
    let jitter = match json.jitter.as_deref() {
        None => None,
        Some(text) => {
            let jitter =
                crate::units::parse_duration(text).map_err(|message| ScheduleError::rule("jitter", message))?;
            if jitter > rules::MAX_JITTER {
                return Err(ScheduleError::rule("jitter", format!("{text:?} is longer than a day")));
            }
            (!jitter.is_zero()).then_some(jitter)
        }
    };
    if json.exclude.len() > rules::MAX_DATES {
        return Err(ScheduleError::rule(
            "exclude",
            format!("at most {} entries", rules::MAX_DATES),
        ));
    }
    let mut exclude: Vec<Exclusion> = Vec::with_capacity(json.exclude.len());
    for (index, text) in json.exclude.iter().enumerate() {
        let exclusion =
            Exclusion::parse(text).map_err(|message| ScheduleError::rule(format!("exclude[{index}]"), message))?;
        if exclude.contains(&exclusion) {
            return Err(ScheduleError::rule(
                format!("exclude[{index}]"),
                format!("{text:?} is listed twice"),
            ));
        }
        exclude.push(exclusion);
    }
    let calendars = exclude
        .iter()
        .filter(|exclusion| matches!(exclusion, Exclusion::Calendar { .. }))
        .count();
    if calendars > rules::MAX_CALENDARS {
        return Err(ScheduleError::rule(
            "exclude",
            format!(
                "{calendars} calendars; a schedule excludes at most {}",
                rules::MAX_CALENDARS
            ),
        ));
    }
    let bound = |field: &'static str, text: &Option<String>| {
        text.as_deref()
            .map(|text| instant(text).map_err(|message| ScheduleError::rule(field, message)))
            .transpose()
    };
    let rules = Rules {
        jitter,
        exclude,
        not_before: bound("not_before", &json.not_before)?,
        not_after: bound("not_after", &json.not_after)?,
        max_fires: json.max_fires,
    };
    if rules.max_fires == Some(0) {
        return Err(ScheduleError::rule("max_fires", "must be at least 1"));
    }
    if let (Some(start), Some(end)) = (rules.not_before, rules.not_after)
        && end <= start
    {
        return Err(ScheduleError::rule(
            "not_after",
            format!(
                "{} is not after not_before {}",
                format_instant(&end),
                format_instant(&start)
            ),
        ));
    }
    if let Kind::At(_) = kind {
        let once = Rules {
            jitter: rules.jitter,
            ..Rules::default()
        };
        let others = Rules { jitter: None, ..rules };
        if let Some(field) = others.first_set() {
            return Err(ScheduleError::rule(
                field,
                "an \"at\" schedule fires once; it takes no exclude, not_before, not_after or max_fires",
            ));
        }
        return Ok(once);
    }
    Ok(rules)
}

impl Kind {
    /// The first fire strictly after `after`, before any rule (see
    /// [`Schedule::next_fire`]).
    fn next_fire(
        &self,
        timezone: Tz,
        after: DateTime<Utc>,
        anchor: DateTime<Utc>,
        last_finished: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Kind::Cron { parsed, .. } => zoned::next_fire(parsed, timezone, after),
            Kind::Every(every) => {
                let every = chrono::Duration::from_std(*every).ok()?;
                if after < anchor {
                    return anchor.checked_add_signed(every);
                }
                let periods = (after - anchor).num_milliseconds() / every.num_milliseconds().max(1) + 1;
                anchor.checked_add_signed(every.checked_mul(i32::try_from(periods).ok()?)?)
            }
            Kind::After(delay) => {
                let next = last_finished
                    .unwrap_or(anchor)
                    .checked_add_signed(chrono::Duration::from_std(*delay).ok()?)?;
                Some(next.max(after + chrono::Duration::milliseconds(1)))
            }
            Kind::At(at) => (*at > after).then_some(*at),
        }
    }

    /// How many fires come strictly after `after` and at or before `until`,
    /// before any rule.
    fn count_fires(&self, timezone: Tz, anchor: DateTime<Utc>, after: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
        if until <= after {
            return 0;
        }
        match self {
            Kind::Cron { parsed, .. } => zoned::count_fires(parsed, timezone, after, until),
            Kind::Every(every) => {
                let every = every.as_millis().max(1) as i64;
                // Fires are anchor + k * every for k >= 1.
                let index = |at: DateTime<Utc>| ((at - anchor).num_milliseconds().max(0)) / every;
                (index(until) - index(after.max(anchor))).max(0) as u64
            }
            Kind::After(_) => 0,
            Kind::At(at) => u64::from(*at > after && *at <= until),
        }
    }
}

impl Schedule {
    /// A schedule of `kind` in UTC with no rules.
    pub fn of(kind: Kind) -> Schedule {
        Schedule {
            kind,
            timezone: Tz::UTC,
            rules: Rules::default(),
        }
    }

    /// Validates the JSON a user sent; `null` means on demand (None).
    /// Calendars named in `exclude` are left unresolved (empty).
    pub fn from_json(value: &Value) -> Result<Option<Schedule>, ScheduleError> {
        if value.is_null() {
            return Ok(None);
        }
        let json: ScheduleJson = serde_json::from_value(value.clone()).map_err(|error| ScheduleError::Shape {
            message: format!(
                "{error}; expected one of {{\"cron\", \"timezone\"?}}, {{\"every\"}}, {{\"after\"}}, {{\"at\"}} (with rules: \"jitter\", \"exclude\", \"not_before\", \"not_after\", \"max_fires\") or null"
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
        if json.timezone.is_some() && json.cron.is_none() && json.exclude.is_empty() {
            return Err(ScheduleError::Shape {
                message: "\"timezone\" only applies to \"cron\" and to \"exclude\"'s dates".to_string(),
            });
        }
        let timezone = match json.timezone.as_deref() {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| ScheduleError::UnknownTimezone {
                timezone: name.to_string(),
            })?,
        };
        let kind = if let Some(expression) = json.cron.clone() {
            let parsed =
                CronExpr::parse(&expression).map_err(|error| ScheduleError::InvalidCron { message: error.message })?;
            Kind::Cron { expression, parsed }
        } else if let Some(text) = &json.every {
            Kind::Every(interval("every", text)?)
        } else if let Some(text) = &json.after {
            Kind::After(interval("after", text)?)
        } else {
            let text = json.at.as_deref().unwrap_or_default();
            Kind::At(instant(text).map_err(|message| ScheduleError::InvalidInstant { message })?)
        };
        let rules = read_rules(&json, &kind)?;
        Ok(Some(Schedule { kind, timezone, rules }))
    }

    /// The JSON form (the inverse of [`Schedule::from_json`]).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.to_form()).expect("a struct of strings always serializes")
    }

    /// The JSON form as its type.
    pub fn to_form(&self) -> ScheduleJson {
        let mut form = ScheduleJson::default();
        match &self.kind {
            Kind::Cron { expression, .. } => form.cron = Some(expression.clone()),
            Kind::Every(every) => form.every = Some(crate::units::format_duration(*every)),
            Kind::After(after) => form.after = Some(crate::units::format_duration(*after)),
            Kind::At(at) => form.at = Some(format_instant(at)),
        }
        form.timezone = self.timezone().map(|zone| zone.name().to_string());
        let Rules {
            jitter,
            exclude,
            not_before,
            not_after,
            max_fires,
        } = &self.rules;
        form.jitter = jitter.map(crate::units::format_duration);
        form.exclude = exclude.iter().map(Exclusion::text).collect();
        form.not_before = not_before.as_ref().map(format_instant);
        form.not_after = not_after.as_ref().map(format_instant);
        form.max_fires = *max_fires;
        form
    }

    /// The first fire strictly after `after`, on no excluded date and
    /// within `not_before`..`not_after`. `anchor` is when the job was
    /// created (the origin of `every`); `last_finished` is when its previous
    /// run finished (the origin of `after`). An `after` schedule whose
    /// delay ends on an excluded date fires when the next date that is not
    /// begins. `max_fires` is the caller's: it counts runs.
    pub fn next_fire(
        &self,
        after: DateTime<Utc>,
        anchor: DateTime<Utc>,
        last_finished: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let millisecond = chrono::Duration::milliseconds(1);
        let mut after = self.after_not_before(after);
        for _ in 0..MAX_EXCLUDED_JUMPS {
            let fire = self.kind.next_fire(self.timezone, after, anchor, last_finished)?;
            if self.rules.not_after.is_some_and(|end| fire > end) {
                return None;
            }
            let date = fire.with_timezone(&self.timezone).date_naive();
            match self.rules.excluded_through(date) {
                None => return Some(fire),
                Some(last) => after = zoned::local_midnight(self.timezone, last.succ_opt()?)? - millisecond,
            }
        }
        None
    }

    /// How many fires come strictly after `after` and at or before `until`,
    /// computed without walking every fire where the schedule allows: the
    /// fires of the range within the bounds, less those on excluded dates.
    pub fn count_fires(&self, anchor: DateTime<Utc>, after: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
        let millisecond = chrono::Duration::milliseconds(1);
        let after = self.after_not_before(after);
        let until = match self.rules.not_after {
            Some(end) => until.min(end),
            None => until,
        };
        if until <= after {
            return 0;
        }
        let count =
            |after: DateTime<Utc>, until: DateTime<Utc>| self.kind.count_fires(self.timezone, anchor, after, until);
        let mut total = count(after, until);
        let (first, last) = (
            after.with_timezone(&self.timezone).date_naive(),
            until.with_timezone(&self.timezone).date_naive(),
        );
        for span in self.rules.merged_exclusions() {
            if span.to < first || span.from > last {
                continue;
            }
            let start = zoned::local_midnight(self.timezone, span.from);
            let end = span
                .to
                .succ_opt()
                .and_then(|next| zoned::local_midnight(self.timezone, next));
            if let (Some(start), Some(end)) = (start, end) {
                let excluded = count(after.max(start - millisecond), until.min(end - millisecond));
                total = total.saturating_sub(excluded);
            }
        }
        total
    }

    /// `after`, or just before `not_before` when that is later: the fires
    /// strictly after the result are those the bound lets through.
    fn after_not_before(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self.rules.not_before {
            Some(start) => after.max(start - chrono::Duration::milliseconds(1)),
            None => after,
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

    /// The zone its wall times or dates are in: a cron line's, or the one
    /// given for `exclude`'s dates (the others have none).
    pub fn timezone(&self) -> Option<Tz> {
        match self.kind {
            Kind::Cron { .. } => Some(self.timezone),
            _ if !self.rules.exclude.is_empty() => Some(self.timezone),
            Kind::Every(_) | Kind::After(_) | Kind::At(_) => None,
        }
    }

    /// True for an `after` schedule (its next fire waits for a run's end).
    pub fn is_after(&self) -> bool {
        matches!(self.kind, Kind::After(_))
    }

    /// The instant of an `at` schedule.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        match self.kind {
            Kind::At(at) => Some(at),
            _ => None,
        }
    }

    /// The next `count` fires strictly after `from` (for previews).
    pub fn preview(&self, from: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::with_capacity(count);
        let mut at = from;
        let limit = self
            .rules
            .max_fires
            .map_or(count, |max| count.min(usize::try_from(max).unwrap_or(usize::MAX)));
        while fires.len() < limit {
            let Some(next) = self.next_fire(at, from, None) else {
                break;
            };
            fires.push(next);
            at = next;
            if self.is_after() {
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
        let schedule = Schedule::of(Kind::Every(Duration::from_secs(30)));
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
        let after = Schedule::of(Kind::After(Duration::from_secs(60)));
        let anchor = utc("2026-11-25T10:00:00Z");
        assert_eq!(after.next_fire(anchor, anchor, None), Some(utc("2026-11-25T10:01:00Z")));
        assert_eq!(
            after.next_fire(anchor, anchor, Some(utc("2026-11-25T10:05:10Z"))),
            Some(utc("2026-11-25T10:06:10Z"))
        );
        let at = Schedule::of(Kind::At(utc("2026-12-01T17:00:00Z")));
        assert_eq!(at.next_fire(anchor, anchor, None), Some(utc("2026-12-01T17:00:00Z")));
        assert_eq!(at.next_fire(utc("2026-12-01T17:00:00Z"), anchor, None), None);
    }

    #[test]
    fn last_fire_between_finds_the_latest_fire_in_range() {
        let anchor = utc("2026-11-25T10:00:00Z");
        let every = Schedule::of(Kind::Every(Duration::from_secs(60)));
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

    fn ruled(value: serde_json::Value) -> Schedule {
        Schedule::from_json(&value).unwrap().unwrap()
    }

    /// Fires in (after, until] one by one.
    fn walk(
        schedule: &Schedule,
        anchor: DateTime<Utc>,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::new();
        let mut at = after;
        while let Some(fire) = schedule.next_fire(at, anchor, None).filter(|fire| *fire <= until) {
            fires.push(fire);
            at = fire;
        }
        fires
    }

    #[test]
    fn rules_are_read_shown_back_and_refused_by_field() {
        let full = json!({"every": "1h", "timezone": "Europe/Berlin", "jitter": "30s",
            "exclude": ["2026-12-25", "2026-12-24..2026-12-26", "holidays"],
            "not_before": "2026-12-01T00:00:00.000Z", "not_after": "2027-01-01T00:00:00.000Z", "max_fires": 10});
        assert_eq!(ruled(full.clone()).to_json(), full);
        let jittered_at = json!({"at": "2026-12-01T17:00:00.000Z", "jitter": "1m"});
        assert_eq!(ruled(jittered_at.clone()).to_json(), jittered_at);
        for (value, field) in [
            (json!({"every": "1h", "jitter": "soon"}), "schedule.jitter"),
            (json!({"every": "1h", "jitter": "2d"}), "schedule.jitter"),
            (
                json!({"every": "1h", "exclude": ["2026-12-25", "2026-13-01"]}),
                "schedule.exclude[1]",
            ),
            (json!({"every": "1h", "exclude": ["Holi days"]}), "schedule.exclude[0]"),
            (json!({"every": "1h", "not_before": "tomorrow"}), "schedule.not_before"),
            (
                json!({"every": "1h", "not_before": "2027-01-01T00:00:00Z", "not_after": "2026-01-01T00:00:00Z"}),
                "schedule.not_after",
            ),
            (json!({"every": "1h", "max_fires": 0}), "schedule.max_fires"),
            (
                json!({"at": "2026-12-01T17:00:00Z", "max_fires": 2}),
                "schedule.max_fires",
            ),
            (
                json!({"at": "2026-12-01T17:00:00Z", "exclude": ["2026-12-01"]}),
                "schedule.exclude",
            ),
            (json!({"every": "1h", "timezone": "Europe/Berlin"}), "schedule"),
            (
                json!({"every": "1h", "exclude": ["holidays", "2026-12-25", "holidays"]}),
                "schedule.exclude[2]",
            ),
            (
                json!({"every": "1h", "exclude": (0..11).map(|index| format!("c{index}")).collect::<Vec<_>>()}),
                "schedule.exclude",
            ),
        ] {
            let error = Schedule::from_json(&value).expect_err(&value.to_string());
            assert_eq!(
                (error.field(), error.code()),
                (field.to_string(), error.code()),
                "{value}: {error}"
            );
            assert!(matches!(error.code(), "invalid_schedule"), "{value}: {error}");
        }
    }

    #[test]
    fn excluded_dates_are_local_to_the_zone_and_skipped_whole() {
        // 09:00 in New York on weekdays; Christmas Eve to Boxing Day off.
        let cron = ruled(json!({"cron": "0 9 * * *", "timezone": "America/New_York",
            "exclude": ["2026-12-24..2026-12-26"]}));
        let anchor = utc("2026-12-01T00:00:00Z");
        assert_eq!(
            walk(&cron, anchor, utc("2026-12-23T00:00:00Z"), utc("2026-12-28T00:00:00Z")),
            [utc("2026-12-23T14:00:00Z"), utc("2026-12-27T14:00:00Z")]
        );
        // Every 6 hours, excluded by Berlin's dates, not UTC's: 2026-12-25
        // in Berlin is 2026-12-24T23:00Z to 2026-12-25T23:00Z.
        let every = ruled(json!({"every": "6h", "timezone": "Europe/Berlin", "exclude": ["2026-12-25"]}));
        assert_eq!(
            walk(&every, anchor, utc("2026-12-24T12:00:00Z"), utc("2026-12-26T06:00:00Z")),
            [
                utc("2026-12-24T12:00:00Z") + chrono::Duration::hours(6),
                utc("2026-12-26T00:00:00Z"),
                utc("2026-12-26T06:00:00Z")
            ]
        );
        // An `after` delay that ends on an excluded date fires when the next
        // date begins (Berlin's midnight).
        let after = ruled(json!({"after": "1h", "timezone": "Europe/Berlin", "exclude": ["2026-12-25"]}));
        assert_eq!(
            after.next_fire(utc("2026-12-24T23:30:00Z"), anchor, Some(utc("2026-12-24T23:30:00Z"))),
            Some(utc("2026-12-25T23:00:00Z"))
        );
        // A date swallowed by a DST gap starts at the gap's end: Havana
        // springs forward at midnight on 2026-03-08.
        let havana = ruled(json!({"cron": "30 * * * *", "timezone": "America/Havana", "exclude": ["2026-03-07"]}));
        assert_eq!(
            havana.next_fire(utc("2026-03-07T12:00:00Z"), anchor, None),
            Some(utc("2026-03-08T05:30:00Z")),
            "01:30 CDT on 2026-03-08, the first half hour of that day"
        );
    }

    #[test]
    fn bounds_start_and_end_the_fires() {
        let anchor = utc("2026-12-01T00:00:00Z");
        let bounded =
            ruled(json!({"every": "1h", "not_before": "2026-12-01T05:30:00Z", "not_after": "2026-12-01T08:00:00Z"}));
        assert_eq!(
            walk(&bounded, anchor, anchor, utc("2026-12-02T00:00:00Z")),
            [
                utc("2026-12-01T06:00:00Z"),
                utc("2026-12-01T07:00:00Z"),
                utc("2026-12-01T08:00:00Z")
            ]
        );
        assert_eq!(bounded.next_fire(utc("2026-12-01T08:00:00Z"), anchor, None), None);
        let limited = ruled(json!({"cron": "*/10 * * * *", "max_fires": 2}));
        assert_eq!(
            limited.preview(anchor, 10).len(),
            2,
            "a preview shows max_fires at most"
        );
    }

    #[test]
    fn counting_fires_agrees_with_walking_them_under_every_rule() {
        let anchor = utc("2026-11-30T23:59:59.500Z");
        let schedules = [
            json!({"every": "7m", "timezone": "Europe/Berlin", "exclude": ["2026-12-02", "2026-12-05..2026-12-06", "2026-12-06..2026-12-08"]}),
            json!({"cron": "*/20 * * * *", "timezone": "America/Sao_Paulo", "exclude": ["2026-12-03"],
                "not_before": "2026-12-01T10:10:00Z", "not_after": "2026-12-09T03:00:00Z"}),
            json!({"cron": "30 1 * * *", "timezone": "Europe/London", "exclude": ["2027-03-28"]}),
            json!({"every": "90m", "not_after": "2026-12-04T00:00:00Z"}),
        ];
        for value in schedules {
            let schedule = ruled(value.clone());
            for (after, until) in [
                ("2026-12-01T00:00:00Z", "2026-12-10T00:00:00Z"),
                ("2026-12-02T13:17:00Z", "2026-12-06T01:00:00Z"),
                ("2027-03-26T00:00:00Z", "2027-03-30T00:00:00Z"),
            ] {
                let (after, until) = (utc(after), utc(until));
                let walked = walk(&schedule, anchor, after, until).len() as u64;
                assert_eq!(
                    schedule.count_fires(anchor, after, until),
                    walked,
                    "{value} in ({after}, {until}]"
                );
            }
        }
    }
}
