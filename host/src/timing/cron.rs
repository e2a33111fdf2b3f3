//! Cron expressions as Vixie cron reads them, and the search for the next
//! matching wall-clock time. Pure: no time zones here (see `zoned`), no I/O.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// A parsed cron expression: one bit set per field, and the Quartz forms
/// of the day fields beside their bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    /// `L`, `L-3`, `15W`, `LW` in the day-of-month field.
    month_days: Vec<MonthDay>,
    months: u16,
    days_of_week: u8,
    /// `5L`, `MON#1` in the day-of-week field.
    week_days: Vec<WeekDay>,
    /// The day-of-month field starts with `*` or is `?` (Vixie's DOM_STAR).
    dom_star: bool,
    /// The day-of-week field starts with `*` or is `?` (Vixie's DOW_STAR).
    dow_star: bool,
    /// Neither the minute nor the hour field starts with `*`: the schedule
    /// names wall-clock times, which changes how it behaves across DST.
    fixed_time: bool,
}

/// A Quartz/Spring day-of-month form: a day that depends on the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MonthDay {
    /// `L`, `L-3`: the month's last day, or that many days before it.
    Last(u32),
    /// `15W`: the weekday (Monday to Friday) nearest that day, within its
    /// month; none in a month without that day.
    NearestWeekday(u32),
    /// `LW`: the month's last weekday.
    LastWeekday,
}

/// A Quartz/Spring day-of-week form (days numbered as Vixie does: 0 and 7
/// are Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeekDay {
    /// `5L`, `FRIL`: the month's last such day.
    Last(u32),
    /// `MON#1`, `5#3`: the month's nth (1 to 5) such day.
    Nth(u32, u32),
}

/// The last day of `date`'s month.
fn last_day_of_month(date: NaiveDate) -> u32 {
    let (year, month) = (date.year(), date.month());
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    first_of_next
        .and_then(|first| first.pred_opt())
        .map_or(28, |last| last.day())
}

impl MonthDay {
    fn matches(self, date: NaiveDate) -> bool {
        let last = last_day_of_month(date);
        let day = date.day();
        match self {
            MonthDay::Last(before) => last > before && day == last - before,
            MonthDay::NearestWeekday(wanted) => {
                let Some(target) = date.with_day(wanted) else {
                    return false;
                };
                let nearest = match target.weekday().num_days_from_monday() {
                    // Saturday: the Friday before, or the Monday after the 1st.
                    5 if wanted == 1 => wanted + 2,
                    5 => wanted - 1,
                    // Sunday: the Monday after, or the Friday before the last day.
                    6 if wanted == last => wanted - 2,
                    6 => wanted + 1,
                    _ => wanted,
                };
                day == nearest
            }
            MonthDay::LastWeekday => {
                let last_date = date.with_day(last).unwrap_or(date);
                let back = match last_date.weekday().num_days_from_monday() {
                    5 => 1,
                    6 => 2,
                    _ => 0,
                };
                day == last - back
            }
        }
    }

    /// Whether a month of `longest` days at most has such a day.
    fn can_fall_in(self, longest: u32) -> bool {
        match self {
            MonthDay::Last(before) => before < longest,
            MonthDay::NearestWeekday(wanted) => wanted <= longest,
            MonthDay::LastWeekday => true,
        }
    }
}

impl WeekDay {
    fn matches(self, date: NaiveDate) -> bool {
        let weekday = date.weekday().num_days_from_sunday();
        match self {
            WeekDay::Last(wanted) => weekday == wanted && date.day() + 7 > last_day_of_month(date),
            WeekDay::Nth(wanted, n) => weekday == wanted && (date.day() - 1) / 7 + 1 == n,
        }
    }
}

/// Why an expression is not valid cron.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    /// What is wrong, naming the field.
    pub message: String,
}

fn error(message: impl Into<String>) -> CronError {
    CronError {
        message: message.into(),
    }
}

struct Field {
    name: &'static str,
    low: u32,
    high: u32,
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    low: 0,
    high: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    low: 0,
    high: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    low: 0,
    high: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    low: 1,
    high: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    low: 1,
    high: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
/// 0 and 7 are both Sunday.
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    low: 0,
    high: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

impl Field {
    fn value(&self, text: &str) -> Result<u32, CronError> {
        let lower = text.to_ascii_lowercase();
        let value = if let Some(index) = self.names.iter().position(|name| *name == lower) {
            index as u32 + self.low
        } else if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
            text.parse::<u32>()
                .map_err(|_| error(format!("{} value {text:?} is too large", self.name)))?
        } else {
            return Err(error(format!(
                "{} field: {text:?} is not a number{}",
                self.name,
                self.name_hint()
            )));
        };
        if value < self.low || value > self.high {
            return Err(error(format!(
                "{} field: {value} is out of range {}-{}",
                self.name, self.low, self.high
            )));
        }
        Ok(value)
    }

    /// A plain number of this field within `item` (a Quartz form).
    fn number(&self, text: &str, item: &str) -> Result<u32, CronError> {
        text.parse::<u32>().map_err(|_| {
            error(format!(
                "{} field: {item:?} is not a day form (a number is missing)",
                self.name
            ))
        })
    }

    /// [`Field::parse`], or no bits for an empty field (its items were all
    /// Quartz forms).
    fn parse_or_none(&self, text: &str) -> Result<u64, CronError> {
        if text.is_empty() { Ok(0) } else { self.parse(text) }
    }

    fn name_hint(&self) -> String {
        match self.names.first() {
            Some(_) => format!(" or a name ({})", self.names.join(", ").to_ascii_uppercase()),
            None => String::new(),
        }
    }

    /// Parses one field (a comma list of `*`, `N`, `A-B`, with `/step`) into
    /// a bit set over `low..=high`.
    fn parse(&self, text: &str) -> Result<u64, CronError> {
        let mut bits = 0u64;
        for item in text.split(',') {
            if item.is_empty() {
                return Err(error(format!("{} field {text:?} has an empty list item", self.name)));
            }
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => {
                    let step: u32 = step.parse().ok().filter(|step| *step > 0).ok_or_else(|| {
                        error(format!("{} field: step in {item:?} must be a number from 1", self.name))
                    })?;
                    (range, Some(step))
                }
                None => (item, None),
            };
            let (first, last) = if range == "*" {
                (self.low, self.high)
            } else if let Some((start, end)) = range.split_once('-') {
                let (start, end) = (self.value(start)?, self.value(end)?);
                if start > end {
                    return Err(error(format!(
                        "{} field: range {range:?} is reversed (start {start} is after end {end})",
                        self.name
                    )));
                }
                (start, end)
            } else {
                let start = self.value(range)?;
                // `N/step` means `N-high/step`, as cronie and most crons read it.
                (start, if step.is_some() { self.high } else { start })
            };
            let step = step.unwrap_or(1);
            let mut value = first;
            while value <= last {
                bits |= 1 << value;
                value += step;
            }
        }
        Ok(bits)
    }
}

/// Splits the Quartz forms out of a day field: its other items (for
/// [`Field::parse`]) and the forms `form` reads (None: not a form) from
/// each item and its upper case. `?` is the whole field: no specific day.
fn split_forms<F>(
    text: &str,
    form: impl Fn(&str, &str) -> Result<Option<F>, CronError>,
) -> Result<(String, Vec<F>), CronError> {
    if text == "?" {
        return Ok(("*".to_string(), Vec::new()));
    }
    let mut plain = Vec::new();
    let mut forms = Vec::new();
    for item in text.split(',') {
        match form(item, &item.to_ascii_uppercase())? {
            Some(form) => forms.push(form),
            None => plain.push(item),
        }
    }
    Ok((plain.join(","), forms))
}

/// A day-of-month item as a Quartz form: `L`, `L-3`, `LW`, `15W`.
fn month_day(item: &str, upper: &str) -> Result<Option<MonthDay>, CronError> {
    if upper == "L" {
        return Ok(Some(MonthDay::Last(0)));
    }
    if upper == "LW" {
        return Ok(Some(MonthDay::LastWeekday));
    }
    if let Some(before) = upper.strip_prefix("L-") {
        let before = DAY_OF_MONTH.number(before, item)?;
        if before > 30 {
            return Err(error(format!(
                "day-of-month field: {item:?} is more than 30 days before the last day"
            )));
        }
        return Ok(Some(MonthDay::Last(before)));
    }
    if let Some(day) = upper.strip_suffix('W') {
        let day = DAY_OF_MONTH.number(day, item)?;
        if !(1..=31).contains(&day) {
            return Err(error(format!("day-of-month field: {item:?}: the day must be 1-31")));
        }
        return Ok(Some(MonthDay::NearestWeekday(day)));
    }
    Ok(None)
}

/// A day-of-week item as a Quartz form: `5L`, `FRIL`, `MON#1`, `5#3`.
fn week_day(item: &str, upper: &str) -> Result<Option<WeekDay>, CronError> {
    if let Some((day, nth)) = upper.split_once('#') {
        let n = nth
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=5).contains(n))
            .ok_or_else(|| error(format!("day-of-week field: in {item:?} the number after # must be 1-5")))?;
        return Ok(Some(WeekDay::Nth(DAY_OF_WEEK.value(day)? % 7, n)));
    }
    if upper == "L" {
        return Err(error(
            "day-of-week field: \"L\" alone is ambiguous (Quartz's Saturday); name the day, as in \"SATL\" or \"5L\"",
        ));
    }
    match upper.strip_suffix('L').filter(|day| !day.is_empty()) {
        Some(day) => Ok(Some(WeekDay::Last(DAY_OF_WEEK.value(day)? % 7))),
        None => Ok(None),
    }
}

impl CronExpr {
    /// Parses 5 fields (minute hour day-of-month month day-of-week), 6 with a
    /// leading seconds field, or a macro such as `@daily`. The day fields
    /// also take the Quartz/Spring forms `?`, `L`, `W` and `#`.
    pub fn parse(text: &str) -> Result<CronExpr, CronError> {
        let trimmed = text.trim();
        let expanded = if trimmed.starts_with('@') {
            let lower = trimmed.to_ascii_lowercase();
            MACROS
                .iter()
                .find(|(name, _)| *name == lower)
                .map(|(_, fields)| *fields)
                .ok_or_else(|| {
                    let known: Vec<&str> = MACROS.iter().map(|(name, _)| *name).collect();
                    error(format!("unknown macro {trimmed:?}; known: {}", known.join(", ")))
                })?
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            0 => return Err(error("is empty; expected 5 fields like \"*/15 * * * *\"")),
            count => {
                return Err(error(format!(
                    "has {count} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 with leading seconds"
                )));
            }
        };
        let (dom_plain, month_days) = split_forms(rest[2], month_day)?;
        let (dow_plain, week_days) = split_forms(rest[4], week_day)?;
        let days_of_week = DAY_OF_WEEK.parse_or_none(&dow_plain)?;
        // 7 is another name for Sunday (0).
        let days_of_week = ((days_of_week | (days_of_week >> 7)) & 0x7f) as u8;
        let expression = CronExpr {
            seconds: SECOND.parse(seconds)?,
            minutes: MINUTE.parse(rest[0])?,
            hours: HOUR.parse(rest[1])? as u32,
            days_of_month: DAY_OF_MONTH.parse_or_none(&dom_plain)? as u32,
            month_days,
            months: MONTH.parse(rest[3])? as u16,
            days_of_week,
            week_days,
            dom_star: dom_plain.starts_with('*'),
            dow_star: dow_plain.starts_with('*'),
            fixed_time: !rest[0].starts_with('*') && !rest[1].starts_with('*'),
        };
        if !expression.can_fire() {
            return Err(error(
                "never fires: none of the months it names has any of the days of the month it names",
            ));
        }
        Ok(expression)
    }

    /// Whether some day of some year matches: a day-of-month restricted
    /// alone (day-of-week `*`) must exist in one of the months (February
    /// has a 29th in leap years).
    fn can_fire(&self) -> bool {
        if self.dom_star || !self.dow_star {
            return true;
        }
        const LONGEST_MONTHS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12u32).any(|month| {
            let longest = LONGEST_MONTHS[month as usize - 1];
            self.months & (1 << month) != 0
                && ((1..=longest).any(|day| self.days_of_month & (1 << day) != 0)
                    || self.month_days.iter().any(|form| form.can_fall_in(longest)))
        })
    }

    /// True when the schedule names wall-clock times (see docs/schedules.md, "Across DST").
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// Does `date` match the day fields? When both day fields are restricted
    /// a day matches if either does (Vixie); otherwise both must.
    pub fn matches_date(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0 || self.month_days.iter().any(|form| form.matches(date));
        let dow = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0
            || self.week_days.iter().any(|form| form.matches(date));
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// How many fires a matching day has when its wall clock runs normally
    /// (no DST change that day).
    pub fn fires_per_matching_day(&self) -> u64 {
        u64::from(self.hours.count_ones()) * u64::from(self.minutes.count_ones()) * u64::from(self.seconds.count_ones())
    }

    /// Does the wall-clock time `at` match every field?
    pub fn matches(&self, at: NaiveDateTime) -> bool {
        self.matches_date(at.date())
            && self.hours & (1 << at.hour()) != 0
            && self.minutes & (1 << at.minute()) != 0
            && self.seconds & (1 << at.second()) != 0
    }

    /// The first matching wall-clock time at or after `start` (whole seconds),
    /// searching at most `horizon_days` days ahead.
    pub fn next_wall_time(&self, start: NaiveDateTime, horizon_days: i64) -> Option<NaiveDateTime> {
        let start = start.with_nanosecond(0)?;
        let mut date = start.date();
        let mut earliest = Some(start.time());
        for _ in 0..=horizon_days {
            if self.matches_date(date)
                && let Some(time) = self.first_time_of_day(earliest.unwrap_or(NaiveTime::MIN))
            {
                return Some(date.and_time(time));
            }
            date = date.checked_add_signed(Duration::days(1))?;
            earliest = None;
        }
        None
    }

    /// The first matching time of day at or after `from`.
    fn first_time_of_day(&self, from: NaiveTime) -> Option<NaiveTime> {
        let (h0, m0, s0) = (from.hour(), from.minute(), from.second());
        let mut hour = next_bit(u64::from(self.hours), h0)?;
        loop {
            let minute_start = if hour == h0 { m0 } else { 0 };
            if let Some(minute) = next_bit(self.minutes, minute_start) {
                let second_start = if hour == h0 && minute == m0 { s0 } else { 0 };
                let found = next_bit(self.seconds, second_start)
                    .map(|second| (minute, second))
                    .or_else(|| next_bit(self.minutes, minute + 1).map(|m| (m, first_bit(self.seconds))));
                if let Some((minute, second)) = found {
                    return NaiveTime::from_hms_opt(hour, minute, second);
                }
            }
            hour = next_bit(u64::from(self.hours), hour + 1)?;
        }
    }
}

/// The lowest set bit at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let masked = bits & (u64::MAX << from);
    (masked != 0).then(|| masked.trailing_zeros())
}

fn first_bit(bits: u64) -> u32 {
    bits.trailing_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn valid_expressions_parse() {
        let rows = [
            "* * * * *",
            "*/15 * * * *",
            "0 19 * * MON-FRI",
            "0 0 1 JAN,jul *",
            "30 2 * * 0",
            "30 2 * * 7",
            "0-59/10 * * * *",
            "5/10 * * * *",
            "*/5 * * * * *",
            "@hourly",
            "@DAILY",
            "@weekly",
            "@monthly",
            "@yearly",
            "0 0 29 2 *",
            "0 0 30 2 MON",
            "0 0 31 1-4 *",
        ];
        for text in rows {
            assert!(
                CronExpr::parse(text).is_ok(),
                "{text:?} should parse: {:?}",
                CronExpr::parse(text)
            );
        }
    }

    #[test]
    fn invalid_expressions_name_the_problem() {
        let rows = [
            ("", "empty"),
            ("* * * *", "4 fields"),
            ("* * * * * * *", "7 fields"),
            ("60 * * * *", "minute field: 60 is out of range"),
            ("* 24 * * *", "hour field: 24 is out of range"),
            ("* * 0 * *", "day-of-month field: 0 is out of range"),
            ("* * * 13 *", "month field: 13 is out of range"),
            ("* * * * 8", "day-of-week field: 8 is out of range"),
            ("5-1 * * * *", "reversed"),
            ("*/0 * * * *", "step"),
            ("a * * * *", "not a number"),
            ("* * * * FOO", "not a number or a name"),
            ("1,,2 * * * *", "empty list item"),
            ("@reboot", "unknown macro"),
            ("? * * * *", "not a number"),
            ("* * L-31 * *", "more than 30 days"),
            ("* * 32W * *", "the day must be 1-31"),
            ("* * W * *", "a number is missing"),
            ("* * * * MON#6", "must be 1-5"),
            ("* * * * MON#", "must be 1-5"),
            ("* * * * L", "ambiguous"),
            ("* * * * FOOL", "not a number or a name"),
            ("0 0 31W 2 *", "never fires"),
            ("0 0 L-30 2 *", "never fires"),
            ("0 0 30 2 *", "never fires"),
            ("0 0 31 4,6,9,11 *", "never fires"),
            ("0 0 30,31 FEB *", "never fires"),
        ];
        for (text, expected) in rows {
            let message = CronExpr::parse(text).expect_err(text).message;
            assert!(
                message.contains(expected),
                "{text:?}: {message:?} should mention {expected:?}"
            );
        }
    }

    /// Each pair of lines parses to the same expression.
    fn same(pairs: &[(&str, &str)]) {
        for (one, other) in pairs {
            assert_eq!(
                CronExpr::parse(one).unwrap(),
                CronExpr::parse(other).unwrap(),
                "{one} = {other}"
            );
        }
    }

    #[test]
    fn sunday_is_both_zero_and_seven() {
        same(&[
            ("0 0 * * 0", "0 0 * * 7"),
            ("0 0 * * SUN", "0 0 * * 0"),
            ("0 0 * * 5-7", "0 0 * * FRI,SAT,SUN"),
        ]);
    }

    #[test]
    fn restricted_day_fields_match_either_day() {
        // 2026-11-02 is a Monday, not the 13th; 2026-11-13 is a Friday.
        let expr = CronExpr::parse("0 0 13 * MON").unwrap();
        assert!(expr.matches_date(at("2026-11-02 00:00:00").date()));
        assert!(expr.matches_date(at("2026-11-13 00:00:00").date()));
        assert!(!expr.matches_date(at("2026-11-03 00:00:00").date()));
        // A star in either field makes the fields combine with AND.
        let expr = CronExpr::parse("0 0 */2 * MON").unwrap();
        assert!(!expr.matches_date(at("2026-11-02 00:00:00").date()), "Nov 2 is even");
        assert!(
            expr.matches_date(at("2026-11-09 00:00:00").date()),
            "Nov 9 is odd and Monday"
        );
    }

    #[test]
    fn next_wall_time_finds_the_first_match_at_or_after_start() {
        let rows = [
            ("*/15 * * * *", "2026-11-25 10:07:30", "2026-11-25 10:15:00"),
            ("*/15 * * * *", "2026-11-25 10:15:00", "2026-11-25 10:15:00"),
            ("0 19 * * MON-FRI", "2026-11-27 19:00:01", "2026-11-30 19:00:00"),
            ("0 0 29 2 *", "2026-03-01 00:00:00", "2028-02-29 00:00:00"),
            ("*/20 * * * * *", "2026-11-25 10:07:41", "2026-11-25 10:08:00"),
            ("59 23 31 12 *", "2026-12-31 23:59:01", "2027-12-31 23:59:00"),
        ];
        for (expr, start, expected) in rows {
            let found = CronExpr::parse(expr).unwrap().next_wall_time(at(start), 3000);
            assert_eq!(found, Some(at(expected)), "{expr} from {start}");
        }
        assert_eq!(
            CronExpr::parse("0 0 29 2 *")
                .unwrap()
                .next_wall_time(at("2026-03-01 00:00:00"), 300),
            None,
            "nothing within the horizon"
        );
    }

    /// Quartz/Spring day forms, each against dates read off a calendar:
    /// the fires from `start`, in order.
    #[test]
    fn quartz_day_forms_fire_on_the_days_a_calendar_gives() {
        let rows: &[(&str, &str, &[&str])] = &[
            // The last day, across month ends and a leap year.
            (
                "0 0 12 L * ?",
                "2026-01-15 00:00:00",
                &["2026-01-31 12:00:00", "2026-02-28 12:00:00", "2026-03-31 12:00:00"],
            ),
            ("0 0 12 L * ?", "2028-02-01 00:00:00", &["2028-02-29 12:00:00"]),
            (
                "0 0 L-3 * ?",
                "2026-01-01 00:00:00",
                &["2026-01-28 00:00:00", "2026-02-25 00:00:00", "2026-03-28 00:00:00"],
            ),
            ("0 0 L-3 * ?", "2028-02-01 00:00:00", &["2028-02-26 00:00:00"]),
            // The last weekday: Jan 31 2026 is a Saturday, May 31 a Sunday.
            (
                "0 0 LW * ?",
                "2026-01-01 00:00:00",
                &["2026-01-30 00:00:00", "2026-02-27 00:00:00", "2026-03-31 00:00:00"],
            ),
            (
                "0 0 LW 5,8 ?",
                "2026-01-01 00:00:00",
                &["2026-05-29 00:00:00", "2026-08-31 00:00:00"],
            ),
            (
                "0 0 LW 2 ?",
                "2027-01-01 00:00:00",
                &["2027-02-26 00:00:00", "2028-02-29 00:00:00"],
            ),
            // The nearest weekday, never in another month: Aug 1 2026 is a
            // Saturday (Monday the 3rd), Aug 15 a Saturday (Friday the 14th),
            // Mar 15 a Sunday (Monday the 16th).
            (
                "0 0 15W * ?",
                "2026-01-01 00:00:00",
                &["2026-01-15 00:00:00", "2026-02-16 00:00:00", "2026-03-16 00:00:00"],
            ),
            ("0 0 15W 8 ?", "2026-01-01 00:00:00", &["2026-08-14 00:00:00"]),
            (
                "0 0 1W * ?",
                "2026-07-02 00:00:00",
                &["2026-08-03 00:00:00", "2026-09-01 00:00:00"],
            ),
            ("0 0 1W * ?", "2026-10-02 00:00:00", &["2026-11-02 00:00:00"]),
            // 31W: none in a 30-day month or February; May 31 is a Sunday.
            (
                "0 0 31W * ?",
                "2026-01-01 00:00:00",
                &[
                    "2026-01-30 00:00:00",
                    "2026-03-31 00:00:00",
                    "2026-05-29 00:00:00",
                    "2026-07-31 00:00:00",
                ],
            ),
            // The last Friday, by number and by name.
            (
                "0 0 ? * 5L",
                "2026-01-01 00:00:00",
                &["2026-01-30 00:00:00", "2026-02-27 00:00:00", "2026-03-27 00:00:00"],
            ),
            (
                "0 0 ? * FRIL",
                "2026-05-01 00:00:00",
                &["2026-05-29 00:00:00", "2026-06-26 00:00:00"],
            ),
            // The nth weekday; 7 is Sunday too.
            (
                "0 0 ? * MON#1",
                "2026-01-01 00:00:00",
                &["2026-01-05 00:00:00", "2026-02-02 00:00:00", "2026-03-02 00:00:00"],
            ),
            (
                "0 0 ? * 5#3",
                "2026-01-01 00:00:00",
                &["2026-01-16 00:00:00", "2026-02-20 00:00:00", "2026-03-20 00:00:00"],
            ),
            (
                "0 0 ? * 7#5",
                "2026-01-01 00:00:00",
                &["2026-03-29 00:00:00", "2026-05-31 00:00:00"],
            ),
            // Both day fields restricted: either matches (Vixie's rule).
            (
                "0 0 L * MON",
                "2026-01-27 00:00:00",
                &["2026-01-31 00:00:00", "2026-02-02 00:00:00"],
            ),
            // A list mixing numbers and forms.
            (
                "0 0 1,L 2 ?",
                "2026-01-01 00:00:00",
                &["2026-02-01 00:00:00", "2026-02-28 00:00:00", "2027-02-01 00:00:00"],
            ),
        ];
        for (text, start, expected) in rows {
            let expr = CronExpr::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            let mut from = at(start);
            for want in *expected {
                let found = expr
                    .next_wall_time(from, 800)
                    .unwrap_or_else(|| panic!("{text}: none after {from}"));
                assert_eq!(found, at(want), "{text} from {start}");
                from = found + Duration::seconds(1);
            }
        }
    }

    #[test]
    fn a_question_mark_is_a_star_in_the_day_fields() {
        same(&[
            ("0 0 12 * * ?", "0 0 12 * * *"),
            ("0 0 12 ? * MON", "0 0 12 * * MON"),
            ("0 12 l * ?", "0 12 L * ?"),
        ]);
    }

    #[test]
    fn fixed_time_means_neither_minute_nor_hour_is_a_star() {
        assert!(CronExpr::parse("30 2 * * *").unwrap().is_fixed_time());
        assert!(CronExpr::parse("@daily").unwrap().is_fixed_time());
        assert!(!CronExpr::parse("@hourly").unwrap().is_fixed_time());
        assert!(!CronExpr::parse("*/15 * * * *").unwrap().is_fixed_time());
        assert!(!CronExpr::parse("0 */2 * * *").unwrap().is_fixed_time());
    }
}
