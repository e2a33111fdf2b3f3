//! `expect`: the statuses that make a std.http run succeed. An entry is a
//! status (`404` or `"404"`), a class (`"2xx"`) or a range (`"200-204"`);
//! the default is `["2xx"]`.

use std::fmt;

use serde_json::Value;

/// Statuses a request may answer with and succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// Each entry as the job wrote it (for messages) and the statuses it admits.
    entries: Vec<(String, u16, u16)>,
}

impl Default for Expect {
    fn default() -> Expect {
        Expect {
            entries: vec![("2xx".to_string(), 200, 299)],
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<&str> = self.entries.iter().map(|(label, _, _)| label.as_str()).collect();
        write!(formatter, "[{}]", labels.join(", "))
    }
}

/// The lowest and highest statuses an HTTP answer can have.
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

const HINT: &str = "use a status (100-599), a class like \"2xx\" or a range like \"200-204\"";

impl Expect {
    /// Does `status` meet the expectation?
    pub fn admits(&self, status: u16) -> bool {
        self.entries
            .iter()
            .any(|&(_, low, high)| (low..=high).contains(&status))
    }

    /// The expectation a job's `expect` value gives (a list of entries, or
    /// one entry alone); the error names the entry and what is wrong.
    pub fn parse(value: &Value) -> Result<Expect, String> {
        let entries: Vec<(String, &Value)> = match value {
            Value::Array(items) if items.is_empty() => {
                return Err(
                    "input.expect: the list is empty; name the statuses that mean success, e.g. [\"2xx\"]".into(),
                );
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| (format!("input.expect[{index}]"), item))
                .collect(),
            single => vec![("input.expect".to_string(), single)],
        };
        let entries = entries
            .into_iter()
            .map(|(field, item)| entry(item).map_err(|problem| format!("{field}: {problem}")))
            .collect::<Result<_, _>>()?;
        Ok(Expect { entries })
    }
}

/// One entry: its label and the statuses it admits.
fn entry(value: &Value) -> Result<(String, u16, u16), String> {
    let text = match value {
        Value::Number(number) => {
            let status = number
                .as_u64()
                .and_then(|status| u16::try_from(status).ok())
                .filter(|status| STATUSES.contains(status))
                .ok_or_else(|| format!("{number} is not an HTTP status; {HINT}"))?;
            return Ok((status.to_string(), status, status));
        }
        Value::String(text) => text.trim(),
        other => return Err(format!("{other} is not a status or a range; {HINT}")),
    };
    let status = |part: &str| {
        part.trim()
            .parse::<u16>()
            .ok()
            .filter(|status| STATUSES.contains(status))
            .filter(|_| part.trim().len() == 3)
    };
    let bad = || format!("{text:?} is not a status or a range; {HINT}");
    let lower = text.to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        let digit = class
            .parse::<u16>()
            .ok()
            .filter(|digit| (1..=5).contains(digit) && class.len() == 1);
        let digit = digit.ok_or_else(bad)?;
        return Ok((format!("{digit}xx"), digit * 100, digit * 100 + 99));
    }
    if let Some((low, high)) = text.split_once('-') {
        let (low, high) = (status(low).ok_or_else(bad)?, status(high).ok_or_else(bad)?);
        if low > high {
            return Err(format!("{text:?} runs backwards; write the lower status first"));
        }
        return Ok((format!("{low}-{high}"), low, high));
    }
    let single = status(text).ok_or_else(bad)?;
    Ok((single.to_string(), single, single))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_admits_2xx_only() {
        let expect = Expect::default();
        assert!(expect.admits(200) && expect.admits(204) && expect.admits(299));
        assert!(!expect.admits(199) && !expect.admits(301) && !expect.admits(404));
        assert_eq!(expect.to_string(), "[2xx]");
    }

    #[test]
    fn statuses_classes_and_ranges_parse() {
        let expect = Expect::parse(&json!([404, "5XX", "200-204", " 302 "])).unwrap();
        assert_eq!(expect.to_string(), "[404, 5xx, 200-204, 302]");
        for status in [404, 500, 503, 599, 200, 204, 302] {
            assert!(expect.admits(status), "{status}");
        }
        for status in [205, 400, 405, 301] {
            assert!(!expect.admits(status), "{status}");
        }
        assert_eq!(Expect::parse(&json!(404)).unwrap().to_string(), "[404]");
        assert_eq!(Expect::parse(&json!("3xx")).unwrap().to_string(), "[3xx]");
    }

    #[test]
    fn bad_entries_are_named_with_their_place() {
        for (value, field) in [
            (json!(["2xx", "6xx"]), "input.expect[1]: \"6xx\""),
            (json!([200, 99]), "input.expect[1]: 99 is not an HTTP status"),
            (json!([1000]), "input.expect[0]: 1000"),
            (json!(["20x"]), "input.expect[0]: \"20x\""),
            (json!(["2xxx"]), "input.expect[0]: \"2xxx\""),
            (json!(["ok"]), "input.expect[0]: \"ok\""),
            (json!(["299-200"]), "input.expect[0]: \"299-200\" runs backwards"),
            (json!(["200-"]), "input.expect[0]: \"200-\""),
            (json!(["0200"]), "input.expect[0]: \"0200\""),
            (json!([2.5]), "input.expect[0]: 2.5"),
            (json!([null]), "input.expect[0]: null"),
            (json!([]), "input.expect: the list is empty"),
            (json!({"a": 1}), "input.expect: {\"a\":1}"),
        ] {
            let error = Expect::parse(&value).unwrap_err();
            assert!(error.starts_with(field), "{value}: {error}");
        }
    }
}
