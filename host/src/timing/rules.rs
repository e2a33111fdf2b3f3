//! What a schedule may add to its kind: `jitter` (each fire's run starts
//! later by a delay in [0, jitter) fixed by the job and the fire),
//! `exclude` (local dates, date ranges and tenant calendars on which it
//! does not fire), `not_before`/`not_after` (the instants it fires
//! between) and `max_fires` (how many fires it runs before it is done).
//! Pure data and arithmetic on dates; the schedule applies them to its
//! fires (see `Schedule::next_fire`).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

/// The longest jitter: a fire is moved within a day at most.
pub const MAX_JITTER: Duration = Duration::from_secs(24 * 3600);

/// The most entries a schedule's `exclude` and a calendar's `dates` take.
pub const MAX_DATES: usize = 1000;

/// The most calendars one schedule excludes (each holds up to
/// [`MAX_DATES`] entries).
pub const MAX_CALENDARS: usize = 10;

/// The longest date range one entry names (ten years of days).
const MAX_SPAN_DAYS: i64 = 3660;

/// Local dates from `from` to `to`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateSpan {
    /// The first date.
    pub from: NaiveDate,
    /// The last date (`from` for a single date).
    pub to: NaiveDate,
}

impl DateSpan {
    /// Reads `2026-12-25` or `2026-12-24..2026-12-26` (both ends included).
    pub fn parse(text: &str) -> Result<DateSpan, String> {
        let date = |part: &str| {
            NaiveDate::parse_from_str(part.trim(), "%Y-%m-%d")
                .map_err(|_| format!("{part:?} is not a date like \"2026-12-25\""))
        };
        let span = match text.split_once("..") {
            Some((from, to)) => DateSpan {
                from: date(from)?,
                to: date(to)?,
            },
            None => {
                let day = date(text)?;
                DateSpan { from: day, to: day }
            }
        };
        if span.to < span.from {
            return Err(format!("{text:?} ends before it starts"));
        }
        if (span.to - span.from).num_days() >= MAX_SPAN_DAYS {
            return Err(format!("{text:?} spans more than ten years"));
        }
        Ok(span)
    }

    /// The text [`DateSpan::parse`] reads.
    pub fn text(&self) -> String {
        if self.from == self.to {
            self.from.to_string()
        } else {
            format!("{}..{}", self.from, self.to)
        }
    }

    fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to
    }
}

/// Reads a list of date entries (a schedule's dates or a calendar's),
/// naming the entry at fault as `field[index]`.
pub fn parse_spans(field: &str, texts: &[String]) -> Result<Vec<DateSpan>, (String, String)> {
    if texts.len() > MAX_DATES {
        return Err((field.to_string(), format!("at most {MAX_DATES} entries")));
    }
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| DateSpan::parse(text).map_err(|message| (format!("{field}[{index}]"), message)))
        .collect()
}

/// A calendar's name: a letter, then up to 63 of `A-Z a-z 0-9 . _ -` (a
/// job's name that starts with a letter, so it is never a date).
pub fn is_calendar_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|first: char| first.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// One entry of `exclude`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    /// Local dates written in the schedule.
    Dates(DateSpan),
    /// A tenant calendar by name, with its dates as they were when the job
    /// was saved or the calendar last changed (empty until resolved).
    Calendar {
        /// The calendar's name.
        name: String,
        /// Its dates.
        dates: Vec<DateSpan>,
    },
}

impl Exclusion {
    /// Reads an entry: a date or range (it starts with a digit), or the
    /// name of a tenant calendar.
    pub fn parse(text: &str) -> Result<Exclusion, String> {
        if text.starts_with(|first: char| first.is_ascii_digit()) {
            return DateSpan::parse(text).map(Exclusion::Dates);
        }
        if !is_calendar_name(text) {
            return Err(format!(
                "{text:?} is neither a date (\"2026-12-25\"), a range (\"2026-12-24..2026-12-26\") nor a calendar's name (a letter, then up to 63 of letters, digits, '.', '_' and '-')"
            ));
        }
        Ok(Exclusion::Calendar {
            name: text.to_string(),
            dates: Vec::new(),
        })
    }

    /// The text [`Exclusion::parse`] reads.
    pub fn text(&self) -> String {
        match self {
            Exclusion::Dates(span) => span.text(),
            Exclusion::Calendar { name, .. } => name.clone(),
        }
    }

    fn spans(&self) -> &[DateSpan] {
        match self {
            Exclusion::Dates(span) => std::slice::from_ref(span),
            Exclusion::Calendar { dates, .. } => dates,
        }
    }
}

/// A schedule's rules; the default has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Each fire's run starts later by a delay in [0, jitter).
    pub jitter: Option<Duration>,
    /// Local dates it does not fire on.
    pub exclude: Vec<Exclusion>,
    /// No fire before this instant.
    pub not_before: Option<DateTime<Utc>>,
    /// No fire after this instant.
    pub not_after: Option<DateTime<Utc>>,
    /// The job is done once this many of its fires have run.
    pub max_fires: Option<u64>,
}

impl Rules {
    /// True when it has none.
    pub fn is_empty(&self) -> bool {
        self == &Rules::default()
    }

    /// The name of the first rule set, as the JSON calls it.
    pub fn first_set(&self) -> Option<&'static str> {
        [
            ("jitter", self.jitter.is_some()),
            ("exclude", !self.exclude.is_empty()),
            ("not_before", self.not_before.is_some()),
            ("not_after", self.not_after.is_some()),
            ("max_fires", self.max_fires.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }

    /// The names of the calendars it excludes.
    pub fn calendars(&self) -> impl Iterator<Item = &str> {
        self.exclude.iter().filter_map(|exclusion| match exclusion {
            Exclusion::Calendar { name, .. } => Some(name.as_str()),
            Exclusion::Dates(_) => None,
        })
    }

    /// Fills in each calendar's dates from `dates_of`; the name of the
    /// first calendar it does not know, if any.
    pub fn resolve_calendars(&mut self, dates_of: impl Fn(&str) -> Option<Vec<DateSpan>>) -> Result<(), String> {
        for exclusion in &mut self.exclude {
            if let Exclusion::Calendar { name, dates } = exclusion {
                *dates = dates_of(name).ok_or_else(|| name.clone())?;
            }
        }
        Ok(())
    }

    /// When `date` is excluded: the last date of the run of excluded dates
    /// it starts (so the schedule may jump past them all at once).
    pub fn excluded_through(&self, date: NaiveDate) -> Option<NaiveDate> {
        let mut last = None;
        let mut day = date;
        loop {
            let through = self
                .exclude
                .iter()
                .flat_map(Exclusion::spans)
                .filter(|span| span.contains(day))
                .map(|span| span.to)
                .max();
            match through {
                Some(to) => {
                    last = Some(to);
                    day = to.succ_opt()?;
                }
                None => return last,
            }
        }
    }

    /// Every excluded date as ranges that neither overlap nor touch, in order.
    pub fn merged_exclusions(&self) -> Vec<DateSpan> {
        let mut spans: Vec<DateSpan> = self.exclude.iter().flat_map(Exclusion::spans).copied().collect();
        spans.sort();
        let mut merged: Vec<DateSpan> = Vec::with_capacity(spans.len());
        for span in spans {
            match merged.last_mut() {
                Some(last) if last.to.succ_opt().is_none_or(|next| span.from <= next) => {
                    last.to = last.to.max(span.to);
                }
                _ => merged.push(span),
            }
        }
        merged
    }

    /// The delay of the fire at `fire` of the job `key`: in [0, jitter),
    /// whole milliseconds, the same every time it is asked (across
    /// restarts and nodes), spread evenly over the range.
    pub fn jitter_for(&self, key: &str, fire: DateTime<Utc>) -> Duration {
        let Some(jitter) = self.jitter.filter(|jitter| jitter.as_millis() > 0) else {
            return Duration::ZERO;
        };
        let mut hash = Sha256::new();
        hash.update(key.as_bytes());
        hash.update(fire.timestamp_millis().to_be_bytes());
        let digest = hash.finalize();
        let value = u64::from_be_bytes(digest[..8].try_into().expect("a sha256 has 8 bytes"));
        let span = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(value % span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn rules(exclude: &[&str]) -> Rules {
        Rules {
            exclude: exclude.iter().map(|text| Exclusion::parse(text).unwrap()).collect(),
            ..Rules::default()
        }
    }

    #[test]
    fn dates_and_ranges_read_and_refuse_what_is_not_one() {
        assert_eq!(DateSpan::parse("2026-12-25").unwrap().text(), "2026-12-25");
        assert_eq!(
            DateSpan::parse("2026-12-24..2026-12-26").unwrap().text(),
            "2026-12-24..2026-12-26"
        );
        for bad in [
            "2026-13-01",
            "2026-12-26..2026-12-24",
            "12-25",
            "2026-02-30",
            "2020-01-01..2031-01-01",
        ] {
            assert!(DateSpan::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(Exclusion::parse("holidays"), Ok(Exclusion::Calendar { .. })));
        assert!(Exclusion::parse("Holidays!").is_err());
        assert!(Exclusion::parse("2026-1-5x").is_err());
    }

    #[test]
    fn an_excluded_date_reports_the_end_of_its_run_of_excluded_dates() {
        let rules = rules(&["2026-12-24..2026-12-25", "2026-12-26", "2026-12-31"]);
        assert_eq!(rules.excluded_through(date("2026-12-24")), Some(date("2026-12-26")));
        assert_eq!(rules.excluded_through(date("2026-12-26")), Some(date("2026-12-26")));
        assert_eq!(rules.excluded_through(date("2026-12-27")), None);
        assert_eq!(
            rules.merged_exclusions(),
            [
                DateSpan::parse("2026-12-24..2026-12-26").unwrap(),
                DateSpan::parse("2026-12-31").unwrap()
            ]
        );
    }

    #[test]
    fn calendars_resolve_by_name_and_an_unknown_one_is_named() {
        let mut known = rules(&["holidays", "2026-01-02"]);
        let dates = vec![DateSpan::parse("2026-01-01").unwrap()];
        known
            .resolve_calendars(|name| (name == "holidays").then(|| dates.clone()))
            .unwrap();
        assert_eq!(known.excluded_through(date("2026-01-01")), Some(date("2026-01-02")));
        let mut unknown = rules(&["closures"]);
        assert_eq!(unknown.resolve_calendars(|_| None), Err("closures".to_string()));
    }

    #[test]
    fn jitter_stays_below_its_bound_and_is_the_same_for_the_same_fire() {
        let rules = Rules {
            jitter: Some(Duration::from_secs(30)),
            ..Rules::default()
        };
        let start = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let delays: Vec<Duration> = (0..2000)
            .map(|minute| rules.jitter_for("t/job", start + chrono::Duration::minutes(minute)))
            .collect();
        assert!(delays.iter().all(|delay| *delay < Duration::from_secs(30)));
        // Spread over the range, not bunched at one end.
        let early = delays.iter().filter(|delay| **delay < Duration::from_secs(15)).count();
        assert!((800..1200).contains(&early), "{early}");
        assert_eq!(rules.jitter_for("t/job", start), delays[0]);
        assert_ne!(
            (0..20)
                .map(|minute| rules.jitter_for("t/other", start + chrono::Duration::minutes(minute)))
                .collect::<Vec<_>>(),
            delays[..20]
        );
        assert_eq!(Rules::default().jitter_for("t/job", start), Duration::ZERO);
    }
}
