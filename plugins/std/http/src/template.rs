//! The placeholders std.http fills in its strings: `{{timestamp}}` (the
//! run's scheduled instant, RFC 3339 in the job's zone), `{{timestamp_ms}}`,
//! `{{run_id}}`, `{{job}}` and `{{attempt}}`. A placeholder it does not know
//! stays as written, so a body that carries templates of its own (a chat
//! service's `{{user}}`) passes through.

use std::cell::OnceCell;

/// The names a placeholder may have.
pub const PLACEHOLDERS: [&str; 5] = ["timestamp", "timestamp_ms", "run_id", "job", "attempt"];

/// What the placeholders stand for in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The run's id.
    pub run_id: String,
    /// The job's name.
    pub job: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the run was due, milliseconds since the Unix epoch.
    pub scheduled_at_ms: i64,
}

/// How a filled-in value is written into its string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As it is (headers, bodies).
    None,
    /// Percent-encoded but for RFC 3986's unreserved characters (URLs: a
    /// timestamp's `+` would otherwise read as a space in a query).
    Url,
}

/// Fills placeholders in with one run's facts. The zone's offset is asked
/// for (of the host, through `offset`) only when a string names
/// `{{timestamp}}`, and then once.
pub struct Renderer<'a> {
    facts: Facts,
    offset: Box<dyn Fn() -> i32 + 'a>,
    known_offset: OnceCell<i32>,
}

impl<'a> Renderer<'a> {
    /// A renderer of `facts`; `offset` gives the job's zone's offset from
    /// UTC, in seconds east, at the scheduled instant.
    pub fn new(facts: Facts, offset: impl Fn() -> i32 + 'a) -> Renderer<'a> {
        Renderer {
            facts,
            offset: Box::new(offset),
            known_offset: OnceCell::new(),
        }
    }

    /// The value of a placeholder, or None when the name is not one.
    fn value(&self, name: &str) -> Option<String> {
        Some(match name {
            "timestamp" => {
                let offset = *self.known_offset.get_or_init(|| (self.offset)());
                rfc3339(self.facts.scheduled_at_ms, offset)
            }
            "timestamp_ms" => self.facts.scheduled_at_ms.to_string(),
            "run_id" => self.facts.run_id.clone(),
            "job" => self.facts.job.clone(),
            "attempt" => self.facts.attempt.to_string(),
            _ => return None,
        })
    }

    /// `text` with every known `{{name}}` (spaces inside the braces allowed)
    /// replaced by its value.
    pub fn render(&self, text: &str, escape: Escape) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                return out;
            };
            match self.value(after[..end].trim()) {
                Some(value) if escape == Escape::Url => percent_encode(&value, &mut out),
                Some(value) => out.push_str(&value),
                // Not ours: kept, and the search goes on after its opening
                // braces (so `{{{{job}}` still finds `{{job}}`).
                None => {
                    out.push_str("{{");
                    rest = after;
                    continue;
                }
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

fn percent_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 15)]));
        }
    }
}

/// An instant as RFC 3339 wall time at `offset` seconds east of UTC:
/// `2026-05-04T18:30:00+09:00`, with `.mmm` when the instant has
/// milliseconds. An offset with seconds (local mean time, before zones
/// were standard) is cut to whole minutes, which RFC 3339 can write.
pub fn rfc3339(at_ms: i64, offset: i32) -> String {
    let offset_minutes = i64::from(offset / 60);
    let local = at_ms.saturating_add(offset_minutes * 60_000);
    let days = local.div_euclid(86_400_000);
    let of_day = local.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second, milli) = (
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1000 % 60,
        of_day % 1000,
    );
    let mut text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    if milli != 0 {
        text.push_str(&format!(".{milli:03}"));
    }
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let magnitude = offset_minutes.abs();
    text.push_str(&format!("{sign}{:02}:{:02}", magnitude / 60, magnitude % 60));
    text
}

/// The proleptic Gregorian date of a day counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn facts() -> Facts {
        Facts {
            run_id: "01JRUN".into(),
            job: "nightly-report".into(),
            attempt: 2,
            // 2026-05-04T09:30:00Z
            scheduled_at_ms: 1_777_887_000_000,
        }
    }

    #[test]
    fn every_placeholder_is_filled_in() {
        let renderer = Renderer::new(facts(), || 9 * 3600);
        assert_eq!(
            renderer.render(
                "{{job}} run {{run_id}} try {{attempt}} at {{timestamp}} ({{timestamp_ms}})",
                Escape::None
            ),
            "nightly-report run 01JRUN try 2 at 2026-05-04T18:30:00+09:00 (1777887000000)"
        );
        assert_eq!(renderer.render("{{ job }}", Escape::None), "nightly-report");
    }

    #[test]
    fn unknown_and_unclosed_placeholders_stay_as_written() {
        let renderer = Renderer::new(facts(), || 0);
        assert_eq!(
            renderer.render("hi {{user}}, {{job}}", Escape::None),
            "hi {{user}}, nightly-report"
        );
        assert_eq!(renderer.render("{{{{job}}", Escape::None), "{{nightly-report");
        assert_eq!(renderer.render("open {{job", Escape::None), "open {{job");
        assert_eq!(renderer.render("{{}} and }}", Escape::None), "{{}} and }}");
        assert_eq!(renderer.render("", Escape::None), "");
        assert_eq!(renderer.render("é {{attempt}} ü", Escape::None), "é 2 ü");
    }

    #[test]
    fn values_in_urls_are_percent_encoded() {
        let renderer = Renderer::new(facts(), || 9 * 3600);
        assert_eq!(
            renderer.render("http://h/x?at={{timestamp}}&run={{run_id}}", Escape::Url),
            "http://h/x?at=2026-05-04T18%3A30%3A00%2B09%3A00&run=01JRUN"
        );
    }

    #[test]
    fn the_offset_is_asked_for_once_and_only_when_needed() {
        let asked = Cell::new(0);
        let renderer = Renderer::new(facts(), || {
            asked.set(asked.get() + 1);
            3600
        });
        renderer.render("{{job}} {{run_id}}", Escape::None);
        assert_eq!(asked.get(), 0);
        renderer.render("{{timestamp}} {{timestamp}}", Escape::None);
        renderer.render("{{timestamp}}", Escape::Url);
        assert_eq!(asked.get(), 1);
    }

    #[test]
    fn timestamps_are_rfc3339_wall_times_at_the_offset() {
        let at = 1_777_887_000_000; // 2026-05-04T09:30:00Z
        assert_eq!(rfc3339(at, 0), "2026-05-04T09:30:00+00:00");
        assert_eq!(rfc3339(at, 9 * 3600), "2026-05-04T18:30:00+09:00");
        assert_eq!(rfc3339(at, -(9 * 3600 + 30 * 60)), "2026-05-04T00:00:00-09:30");
        assert_eq!(rfc3339(at, -10 * 3600), "2026-05-03T23:30:00-10:00");
        assert_eq!(rfc3339(at + 7, 5 * 3600 + 45 * 60), "2026-05-04T15:15:00.007+05:45");
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59.999+00:00");
        // Leap days, century rules, the end of a year.
        assert_eq!(rfc3339(951_782_400_000, 0), "2000-02-29T00:00:00+00:00");
        assert_eq!(rfc3339(4_107_542_399_000, 0), "2100-02-28T23:59:59+00:00");
        assert_eq!(rfc3339(4_107_542_400_000, 0), "2100-03-01T00:00:00+00:00");
        assert_eq!(rfc3339(1_798_761_599_000, 3600), "2027-01-01T00:59:59+01:00");
        // Local mean time: the offset is cut to whole minutes.
        assert_eq!(rfc3339(0, 9 * 3600 + 18 * 60 + 59), "1970-01-01T09:18:00+09:18");
    }

    #[test]
    fn dates_agree_with_a_day_by_day_count() {
        // Walk 1,000 years of days from 1970 and compare with a plain calendar.
        let (mut year, mut month, mut day) = (1970_i64, 1_u32, 1_u32);
        let leap = |year: i64| (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        for days in 0..365_243 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let length = match month {
                2 if leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }
}
