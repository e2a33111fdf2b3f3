//! Durations ("90s", "1h30m"), byte sizes (67108864, "64MiB") and rates
//! ("20/s") as users write them in JSON, TOML and flags. Pure parsing; no I/O.

use std::time::Duration;

use serde::Deserialize;

/// A duration as text (`"90s"`, `"1h 30m"`, `"250ms"`) or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty; expected a duration like \"30s\" or \"5m\"".to_string());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration like \"30s\" or \"5m\" ({error})"))
}

/// `at + duration`, saturating at the latest representable instant instead
/// of panicking on overflow.
pub fn add_saturating(at: chrono::DateTime<chrono::Utc>, duration: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|duration| at.checked_add_signed(duration))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// Writes a duration the way [`parse_duration`] reads it back ("1m 30s").
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_string();
    }
    humantime::format_duration(duration).to_string()
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("k", 1 << 10),
    ("m", 1 << 20),
    ("g", 1 << 30),
    ("b", 1),
];

/// A byte size as a number of bytes or text with a unit (`"64MiB"`, `"512 KiB"`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let (number, multiplier) = SIZE_UNITS
        .iter()
        .find_map(|(suffix, multiplier)| lower.strip_suffix(suffix).map(|number| (number.trim(), *multiplier)))
        .unwrap_or((lower.as_str(), 1));
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{trimmed:?} is not a size like 67108864 or \"64MiB\""))?;
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{trimmed:?} is too large"))
}

/// A rate as events per second: `"20/s"`, `"600/m"`, `"1000/h"`, a bare
/// number of events a second, or `"off"` / `0` for no limit (0.0).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("off") {
        return Ok(0.0);
    }
    let refusal = || format!("{trimmed:?} is not a rate like \"20/s\", \"600/m\" or \"off\"");
    let (count, per) = match trimmed.split_once('/') {
        Some((count, unit)) => {
            let per = match unit.trim().to_ascii_lowercase().as_str() {
                "s" | "sec" | "second" => 1.0,
                "m" | "min" | "minute" => 60.0,
                "h" | "hour" => 3600.0,
                _ => return Err(refusal()),
            };
            (count.trim(), per)
        }
        None => (trimmed, 1.0),
    };
    let count: f64 = count.parse().map_err(|_| refusal())?;
    if !count.is_finite() || count < 0.0 {
        return Err(refusal());
    }
    Ok(count / per)
}

/// A JSON/TOML value that is either a number or a string, for fields that
/// take `30` or `"30s"`, `67108864` or `"64MiB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NumberOrText {
    /// A plain non-negative integer.
    Number(u64),
    /// Text with a unit.
    Text(String),
}

impl NumberOrText {
    /// Reads the value as a duration (numbers are seconds).
    pub fn to_duration(&self) -> Result<Duration, String> {
        match self {
            NumberOrText::Number(seconds) => Ok(Duration::from_secs(*seconds)),
            NumberOrText::Text(text) => parse_duration(text),
        }
    }

    /// Reads the value as a byte size (numbers are bytes).
    pub fn to_size(&self) -> Result<u64, String> {
        match self {
            NumberOrText::Number(bytes) => Ok(*bytes),
            NumberOrText::Text(text) => parse_size(text),
        }
    }

    /// Reads the value as a rate per second (numbers are per second).
    pub fn to_rate(&self) -> Result<f64, String> {
        match self {
            NumberOrText::Number(count) => Ok(*count as f64),
            NumberOrText::Text(text) => parse_rate(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_from_text_and_seconds() {
        let rows: &[(&str, Option<u64>)] = &[
            ("90s", Some(90_000)),
            ("1m", Some(60_000)),
            ("1h 30m", Some(5_400_000)),
            ("1h30m", Some(5_400_000)),
            ("250ms", Some(250)),
            ("45", Some(45_000)),
            ("", None),
            ("soon", None),
            ("-5s", None),
        ];
        for (text, expected_ms) in rows {
            let parsed = parse_duration(text).ok().map(|d| d.as_millis() as u64);
            assert_eq!(parsed, *expected_ms, "parse_duration({text:?})");
        }
    }

    #[test]
    fn durations_format_round_trips() {
        for ms in [0u64, 1, 1_000, 90_000, 5_400_000] {
            let duration = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(duration)).unwrap(), duration);
        }
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        let rows: &[(&str, Option<u64>)] = &[
            ("1024", Some(1024)),
            ("64MiB", Some(64 << 20)),
            ("64 MiB", Some(64 << 20)),
            ("512k", Some(512 << 10)),
            ("1GB", Some(1_000_000_000)),
            ("12b", Some(12)),
            ("lots", None),
            ("-1", None),
            ("99999999999999999999GiB", None),
        ];
        for (text, expected) in rows {
            assert_eq!(parse_size(text).ok(), *expected, "parse_size({text:?})");
        }
    }

    #[test]
    fn rates_parse_per_second_minute_and_hour() {
        let rows: &[(&str, Option<f64>)] = &[
            ("20/s", Some(20.0)),
            ("600/m", Some(10.0)),
            ("3600 / hour", Some(1.0)),
            ("5", Some(5.0)),
            ("0.5/s", Some(0.5)),
            ("off", Some(0.0)),
            ("0", Some(0.0)),
            ("20/day", None),
            ("-1/s", None),
            ("lots", None),
            ("inf", None),
        ];
        for (text, expected) in rows {
            assert_eq!(parse_rate(text).ok(), *expected, "parse_rate({text:?})");
        }
    }
}
