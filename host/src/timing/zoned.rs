//! Cron in a time zone: turning matching wall-clock times into instants the
//! way Vixie/cronie cron does across DST (see docs/schedules.md):
//!
//! - fixed-time schedules fire once per matching wall time; a wall time in a
//!   spring-forward gap fires at the gap's end, a repeated one at its first
//!   occurrence;
//! - wildcard schedules follow real time: every instant whose local wall time
//!   matches, so both copies of a repeated hour and none of a skipped one.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::cron::CronExpr;

/// How far ahead a search for the next fire looks before giving up
/// (covers Feb 29 on a given weekday, which can be 28 years away).
const HORIZON_DAYS: i64 = 366 * 30;

/// The first fire strictly after `after`.
pub fn next_fire(expr: &CronExpr, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Fires are whole seconds; "strictly after" starts at the next second.
    let start = after.with_nanosecond(0)? + Duration::seconds(1);
    if expr.is_fixed_time() {
        next_fixed_time(expr, tz, start)
    } else {
        next_real_time(expr, tz, start)
    }
}

fn offset_seconds(tz: Tz, at: DateTime<Utc>) -> i64 {
    i64::from(tz.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc())
}

fn wall_time(tz: Tz, at: DateTime<Utc>) -> NaiveDateTime {
    at.with_timezone(&tz).naive_local()
}

/// How many fires come strictly after `after` and at or before `until`.
/// Whole days without an offset change are counted from the fields; only
/// the partial first and last days and DST days are walked fire by fire.
pub fn count_fires(expr: &CronExpr, tz: Tz, after: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
    let mut count = 0;
    let mut cursor = after;
    while cursor < until {
        // Walk fire by fire to the end of the local day after `cursor`.
        let day = wall_time(tz, cursor + Duration::seconds(1)).date();
        let Some(boundary) = day.succ_opt().and_then(|next| local_midnight(tz, next)) else {
            return count;
        };
        let stop = until.min(boundary - Duration::seconds(1));
        while let Some(fire) = next_fire(expr, tz, cursor).filter(|fire| *fire <= stop) {
            count += 1;
            cursor = fire;
        }
        if stop == until {
            return count;
        }
        cursor = boundary - Duration::seconds(1);
        // Whole days inside the range, counted from the fields.
        let mut day_start = boundary;
        loop {
            let date = wall_time(tz, day_start).date();
            let Some(day_end) = date.succ_opt().and_then(|next| local_midnight(tz, next)) else {
                return count;
            };
            let last_second = day_end - Duration::seconds(1);
            if last_second > until || offset_seconds(tz, day_start) != offset_seconds(tz, last_second) {
                break;
            }
            if expr.matches_date(date) {
                count += expr.fires_per_matching_day();
            }
            cursor = last_second;
            day_start = day_end;
        }
    }
    count
}

/// The first instant of a local date (its midnight, or the end of a gap
/// that swallowed it).
pub(crate) fn local_midnight(tz: Tz, date: chrono::NaiveDate) -> Option<DateTime<Utc>> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => gap_end(tz, midnight),
    }
}

/// Fixed-time: walk matching wall times in order; each maps to its first
/// occurrence, or to the end of the gap it falls in.
fn next_fixed_time(expr: &CronExpr, tz: Tz, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let horizon = start + Duration::days(HORIZON_DAYS);
    let mut wall = wall_time(tz, start);
    // A repeated hour: the wall clock at `start` may be in the second copy
    // while matches earlier in that copy already fired in the first one, so
    // begin the search an hour of wall time earlier and let the instant
    // comparison below discard what already happened.
    wall -= Duration::hours(3);
    loop {
        let candidate = expr.next_wall_time(wall, HORIZON_DAYS)?;
        let instant = match tz.from_local_datetime(&candidate) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => gap_end(tz, candidate)?,
        };
        if instant >= start {
            return Some(instant);
        }
        if instant > horizon {
            return None;
        }
        wall = candidate + Duration::seconds(1);
    }
}

/// The first instant whose wall time is after `missing`, a wall time that
/// does not exist because the clocks jumped over it.
fn gap_end(tz: Tz, missing: NaiveDateTime) -> Option<DateTime<Utc>> {
    // Search a window wide enough for any real offset change (under 26 h),
    // in which wall time only moves forward.
    let guess = Utc.from_utc_datetime(&missing);
    let (mut low, mut high) = (guess - Duration::hours(26), guess + Duration::hours(26));
    if wall_time(tz, high) <= missing {
        return None;
    }
    while (high - low) > Duration::seconds(1) {
        let middle = low + (high - low) / 2;
        if wall_time(tz, middle) > missing {
            high = middle;
        } else {
            low = middle;
        }
    }
    high.with_nanosecond(0)
}

/// Wildcard: walk real time in spans of one UTC offset; within a span wall
/// time is continuous, so the next match is a wall-clock search. Offset
/// changes are looked for only up to the candidate, so a zone without DST
/// costs one search.
fn next_real_time(expr: &CronExpr, tz: Tz, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let horizon = start + Duration::days(HORIZON_DAYS);
    let mut span_start = start;
    while span_start <= horizon {
        let offset = offset_seconds(tz, span_start);
        let wall_start = span_start.naive_utc() + Duration::seconds(offset);
        let wall = expr.next_wall_time(wall_start, HORIZON_DAYS)?;
        let candidate = Utc.from_utc_datetime(&(wall - Duration::seconds(offset)));
        match next_offset_change(tz, span_start, offset, candidate) {
            Some(change) if change <= candidate => span_start = change,
            _ => return Some(candidate),
        }
    }
    None
}

/// The first instant after `from` whose UTC offset differs from `offset`,
/// if one comes before `limit`. Zones change offset at most a few times a
/// year, never twice within a day, so probing day by day and then bisecting
/// finds every change.
fn next_offset_change(tz: Tz, from: DateTime<Utc>, offset: i64, limit: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut low = from;
    loop {
        let high = low + Duration::days(1);
        if offset_seconds(tz, high) != offset {
            let (mut low, mut high) = (low, high);
            while (high - low) > Duration::seconds(1) {
                let middle = low + (high - low) / 2;
                if offset_seconds(tz, middle) != offset {
                    high = middle;
                } else {
                    low = middle;
                }
            }
            return high.with_nanosecond(0);
        }
        if high > limit {
            return None;
        }
        low = high;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn fires(expr: &str, tz: &str, from: &str, count: usize) -> Vec<String> {
        let expr = CronExpr::parse(expr).unwrap();
        let tz: Tz = tz.parse().unwrap();
        let mut at = utc(from);
        let mut out = Vec::new();
        for _ in 0..count {
            at = next_fire(&expr, tz, at).unwrap();
            out.push(at.with_timezone(&tz).to_rfc3339());
        }
        out
    }

    #[test]
    fn fixed_time_in_spring_gap_fires_at_gap_end_once() {
        // New York springs forward 2026-03-08 02:00 -> 03:00.
        assert_eq!(
            fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", 3),
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00"
            ]
        );
        // Two wall times inside the gap collapse into one fire.
        assert_eq!(
            fires("0,30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", 2),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]
        );
    }

    #[test]
    fn fixed_time_in_repeated_hour_fires_at_first_occurrence_only() {
        // New York falls back 2026-11-01 02:00 -> 01:00.
        assert_eq!(
            fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00", 2),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        );
        // Asked from inside the second copy, it does not fire again.
        assert_eq!(
            fires("45 1 * * *", "America/New_York", "2026-11-01T01:10:00-05:00", 1),
            ["2026-11-02T01:45:00-05:00"]
        );
    }

    #[test]
    fn wildcard_follows_real_time_across_dst() {
        assert_eq!(
            fires("30 * * * *", "America/New_York", "2026-11-01T00:00:00-04:00", 4),
            [
                "2026-11-01T00:30:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T02:30:00-05:00"
            ]
        );
        assert_eq!(
            fires("30 * * * *", "America/New_York", "2026-03-08T00:00:00-05:00", 3),
            [
                "2026-03-08T00:30:00-05:00",
                "2026-03-08T01:30:00-05:00",
                "2026-03-08T03:30:00-04:00"
            ]
        );
    }

    #[test]
    fn half_hour_zone_and_southern_hemisphere() {
        // Lord Howe moves by 30 minutes; Sao Paulo has no DST any more.
        assert_eq!(
            fires("0 19 * * MON-FRI", "America/Sao_Paulo", "2026-11-27T20:00:00-03:00", 1),
            ["2026-11-30T19:00:00-03:00"]
        );
        assert_eq!(
            fires("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30", 1),
            ["2026-10-04T02:30:00+11:00"]
        );
    }

    /// Cases where cron implementations differ; each expectation follows
    /// docs/schedules.md (Vixie day rule, cronie DST rules, instants
    /// exclusive of `from`).
    #[test]
    fn conformance_table() {
        let rows: &[(&str, &str, &str, &[&str])] = &[
            // A gap time and the time after the gap are one instant: one fire.
            (
                "0 2,3 * * *",
                "America/New_York",
                "2026-03-08T00:00:00-05:00",
                &[
                    "2026-03-08T03:00:00-04:00",
                    "2026-03-09T02:00:00-04:00",
                    "2026-03-09T03:00:00-04:00",
                ],
            ),
            // Seconds of a fire moved out of a gap are dropped.
            (
                "15 30 2 * * *",
                "America/New_York",
                "2026-03-08T00:00:00-05:00",
                &["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:15-04:00"],
            ),
            // Fixed minute and hour with a seconds step: the first copy of
            // the repeated hour only.
            (
                "*/30 30 1 * * *",
                "America/New_York",
                "2026-11-01T01:00:00-04:00",
                &[
                    "2026-11-01T01:30:00-04:00",
                    "2026-11-01T01:30:30-04:00",
                    "2026-11-02T01:30:00-05:00",
                ],
            ),
            // Leap days only.
            (
                "0 0 29 2 *",
                "UTC",
                "2026-01-01T00:00:00Z",
                &["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"],
            ),
            // Both day fields restricted: either matches; `from` is exclusive.
            (
                "0 0 1,15 * 3",
                "UTC",
                "2026-11-25T00:00:00Z",
                &[
                    "2026-12-01T00:00:00+00:00",
                    "2026-12-02T00:00:00+00:00",
                    "2026-12-09T00:00:00+00:00",
                    "2026-12-15T00:00:00+00:00",
                    "2026-12-16T00:00:00+00:00",
                ],
            ),
            // A day field starting with `*` (even `*/2`) makes it AND.
            (
                "0 0 */2 * 1",
                "UTC",
                "2026-11-25T00:00:00Z",
                &["2026-12-07T00:00:00+00:00", "2026-12-21T00:00:00+00:00"],
            ),
            // Lisbon springs forward at 01:00 and falls back at 02:00.
            (
                "30 1 * * *",
                "Europe/Lisbon",
                "2026-03-28T12:00:00Z",
                &["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"],
            ),
            (
                "30 1 * * *",
                "Europe/Lisbon",
                "2026-10-24T12:00:00Z",
                &["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"],
            ),
            // Lord Howe falls back by half an hour (02:00 -> 01:30).
            (
                "45 1 * * *",
                "Australia/Lord_Howe",
                "2026-04-04T12:00:00+11:00",
                &["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
            ),
            (
                "*/15 * * * *",
                "Australia/Lord_Howe",
                "2026-04-05T01:20:00+11:00",
                &[
                    "2026-04-05T01:30:00+11:00",
                    "2026-04-05T01:45:00+11:00",
                    "2026-04-05T01:30:00+10:30",
                    "2026-04-05T01:45:00+10:30",
                    "2026-04-05T02:00:00+10:30",
                ],
            ),
            // Quartz day forms pick the day; the DST rules place the time:
            // London's last Sunday of March has no 01:30 (01:00 GMT jumps to
            // 02:00 BST), so it fires at the gap's end; October's has two,
            // and it fires at the first.
            (
                "0 30 1 ? 3 SUNL",
                "Europe/London",
                "2026-03-01T00:00:00Z",
                &["2026-03-29T02:00:00+01:00", "2027-03-28T02:00:00+01:00"],
            ),
            (
                "0 30 1 ? 10 SUN#4",
                "Europe/London",
                "2026-10-01T00:00:00Z",
                &["2026-10-25T01:30:00+01:00", "2027-10-24T01:30:00+01:00"],
            ),
        ];
        for (text, zone, from, expected) in rows {
            assert_eq!(
                fires(text, zone, from, expected.len()),
                *expected,
                "{text} in {zone} from {from}"
            );
        }
    }

    #[test]
    fn counting_agrees_with_walking() {
        let rows = [
            (
                "0 * * * *",
                "America/New_York",
                "2026-10-30T00:00:00Z",
                "2026-11-04T00:00:00Z",
            ),
            (
                "30 2 * * *",
                "America/New_York",
                "2026-03-01T00:00:00Z",
                "2026-03-20T00:00:00Z",
            ),
            (
                "*/7 * * * *",
                "Europe/Lisbon",
                "2026-03-25T00:00:00Z",
                "2026-04-02T13:17:00Z",
            ),
            (
                "15 2 * * *",
                "Australia/Lord_Howe",
                "2026-09-28T00:00:00Z",
                "2026-10-09T00:00:00Z",
            ),
            ("0 0 13 * FRI", "UTC", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            (
                "0 9 LW,15W * ?",
                "America/New_York",
                "2026-01-01T00:00:00Z",
                "2028-03-01T00:00:00Z",
            ),
            (
                "0 9 ? * MON#2,FRIL",
                "Europe/London",
                "2026-01-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            ("*/20 * * * * *", "UTC", "2026-11-25T10:00:05Z", "2026-11-27T11:00:00Z"),
        ];
        for (text, zone, after, until) in rows {
            let expr = CronExpr::parse(text).unwrap();
            let tz: Tz = zone.parse().unwrap();
            let (after, until) = (utc(after), utc(until));
            let mut walked = 0;
            let mut at = after;
            while let Some(next) = next_fire(&expr, tz, at).filter(|next| *next <= until) {
                walked += 1;
                at = next;
            }
            assert_eq!(count_fires(&expr, tz, after, until), walked, "{text} in {zone}");
        }
    }

    #[test]
    fn fires_strictly_increase_and_match() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        for text in [
            "*/7 * * * *",
            "0 2 * * *",
            "30 2 * * SUN",
            "*/20 * * * * *",
            "0 */3 * * *",
        ] {
            let expr = CronExpr::parse(text).unwrap();
            let mut at = utc("2026-03-27T00:00:00Z");
            for _ in 0..200 {
                let next = next_fire(&expr, tz, at).unwrap();
                assert!(next > at, "{text}: {next} after {at}");
                let wall = wall_time(tz, next);
                if tz.from_local_datetime(&wall).single().is_some() && !expr.is_fixed_time() {
                    assert!(expr.matches(wall), "{text}: {wall} should match");
                }
                at = next;
            }
        }
    }
}
