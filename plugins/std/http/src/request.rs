//! The job's input read into the one request std.http sends: `{"url",
//! "method"?, "headers"?, "body"?, "expect"?, "timeout"?}`, placeholders
//! filled in. Every error names the field and the problem.

use serde_json::{Map, Value};

use crate::expect::Expect;
use crate::template::{Escape, Renderer};

/// The fields std.http takes.
pub const FIELDS: [&str; 6] = ["url", "method", "headers", "body", "expect", "timeout"];

/// The longest one request may take (the host's cap too).
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// The request to send and what its answer must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `GET`, `POST`, ... (upper case).
    pub method: String,
    /// The URL with its placeholders filled in.
    pub url: String,
    /// Header pairs in the order the job gave them (and `content-type` for a
    /// JSON body that names none).
    pub headers: Vec<(String, String)>,
    /// The body's bytes (none for no body).
    pub body: Vec<u8>,
    /// The job's own timeout; None leaves the host's default (10 s).
    pub timeout_ms: Option<u32>,
    /// The statuses that succeed.
    pub expect: Expect,
}

/// Reads the job's input (JSON text) into the call to make.
pub fn plan(input: &[u8], renderer: &Renderer<'_>) -> Result<Call, String> {
    let example = r#"{"url": "https://hooks.example.com/x"}"#;
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(format!(
            "input: std.http needs a JSON object with at least \"url\", e.g. {example}; the job's input is empty"
        ));
    }
    let value: Value = serde_json::from_slice(input).map_err(|error| format!("input: not JSON: {error}"))?;
    let Value::Object(fields) = value else {
        return Err(format!(
            "input: expected a JSON object with at least \"url\", e.g. {example}"
        ));
    };
    if let Some(unknown) = fields.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(format!(
            "input.{unknown}: std.http has no such field; it takes {}",
            FIELDS.join(", ")
        ));
    }
    let url = match fields.get("url") {
        None | Some(Value::Null) => return Err(format!("input.url: missing; name the URL to call, e.g. {example}")),
        Some(Value::String(url)) => renderer.render(url, Escape::Url),
        Some(other) => return Err(format!("input.url: expected a string, not {other}")),
    };
    let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(format!("input.url: {url:?} is not an http:// or https:// URL"));
    }
    let method = match fields.get("method") {
        None | Some(Value::Null) => "GET".to_string(),
        Some(Value::String(method)) if is_token(method) => method.to_ascii_uppercase(),
        Some(other) => return Err(format!("input.method: {other} is not an HTTP method such as \"POST\"")),
    };
    let mut headers = match fields.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(headers)) => read_headers(headers, renderer)?,
        Some(other) => {
            return Err(format!(
                "input.headers: expected an object of names and values, e.g. {{\"authorization\": \"Bearer ...\"}}, not {other}"
            ));
        }
    };
    let body = match fields.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => renderer.render(text, Escape::None).into_bytes(),
        Some(json) => {
            let has_type = headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
            if !has_type {
                headers.push(("content-type".to_string(), "application/json".to_string()));
            }
            render_json(json, renderer).to_string().into_bytes()
        }
    };
    let expect = match fields.get("expect") {
        None | Some(Value::Null) => Expect::default(),
        Some(value) => Expect::parse(value)?,
    };
    let timeout_ms = match fields.get("timeout") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(timeout(text).map_err(|problem| format!("input.timeout: {problem}"))?),
        Some(other) => {
            return Err(format!(
                "input.timeout: expected a duration such as \"10s\" or \"500ms\", not {other}"
            ));
        }
    };
    Ok(Call {
        method,
        url,
        headers,
        body,
        timeout_ms,
        expect,
    })
}

/// An HTTP token (method or header name): RFC 9110's `tchar`s, at least one.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

fn read_headers(headers: &Map<String, Value>, renderer: &Renderer<'_>) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_token(name) {
            return Err(format!("input.headers: {name:?} is not a header name"));
        }
        let Value::String(value) = value else {
            return Err(format!("input.headers.{name}: expected a string, not {value}"));
        };
        let value = renderer.render(value, Escape::None);
        if value.bytes().any(|byte| matches!(byte, b'\r' | b'\n' | 0)) {
            return Err(format!(
                "input.headers.{name}: a header value may not hold a line break"
            ));
        }
        pairs.push((name.clone(), value));
    }
    Ok(pairs)
}

/// A JSON body with placeholders filled in in every string value (object
/// keys are left alone: they are the body's shape, not its data).
fn render_json(value: &Value, renderer: &Renderer<'_>) -> Value {
    match value {
        Value::String(text) => Value::String(renderer.render(text, Escape::None)),
        Value::Array(items) => Value::Array(items.iter().map(|item| render_json(item, renderer)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, item)| (key.clone(), render_json(item, renderer)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A duration such as `10s`, `500ms`, `1m` or `1m30s`, in milliseconds,
/// more than zero and at most [`MAX_TIMEOUT_MS`].
fn timeout(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a duration such as \"10s\", \"500ms\" or \"1m30s\"");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let amount: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            _ => return Err(bad()),
        };
        total = total.saturating_add(amount.saturating_mul(scale));
        rest = &rest[unit_end..];
    }
    if total == 0 {
        return Err(format!("{text:?} is no time at all; give the request at least 1ms"));
    }
    if total > MAX_TIMEOUT_MS {
        return Err(format!("{text:?} is longer than one request may take (60s)"));
    }
    Ok(total as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Facts;
    use serde_json::json;

    fn renderer() -> Renderer<'static> {
        Renderer::new(
            Facts {
                run_id: "01JRUN".into(),
                job: "ping".into(),
                attempt: 1,
                scheduled_at_ms: 1_777_887_000_000,
            },
            || 9 * 3600,
        )
    }

    fn planned(input: Value) -> Result<Call, String> {
        plan(input.to_string().as_bytes(), &renderer())
    }

    #[test]
    fn a_bare_url_is_a_get_expecting_2xx() {
        let call = planned(json!({"url": "https://example.com/health"})).unwrap();
        assert_eq!(call.method, "GET");
        assert_eq!(call.url, "https://example.com/health");
        assert!(call.headers.is_empty() && call.body.is_empty());
        assert_eq!((call.timeout_ms, call.expect), (None, Expect::default()));
    }

    #[test]
    fn every_string_is_templated() {
        let call = planned(json!({
            "url": "http://127.0.0.1:9/hook/{{run_id}}?job={{job}}",
            "method": "post",
            "headers": {"X-Job": "{{job}}#{{attempt}}"},
            "body": {"at": "{{timestamp}}", "ms": "{{timestamp_ms}}", "list": ["{{attempt}}", 3, null], "{{job}}": true},
            "expect": ["2xx", 409],
            "timeout": "2500ms"
        }))
        .unwrap();
        assert_eq!(call.method, "POST");
        assert_eq!(call.url, "http://127.0.0.1:9/hook/01JRUN?job=ping");
        assert_eq!(
            call.headers,
            vec![
                ("X-Job".to_string(), "ping#1".to_string()),
                ("content-type".to_string(), "application/json".to_string())
            ]
        );
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(
            body,
            json!({"at": "2026-05-04T18:30:00+09:00", "ms": "1777887000000", "list": ["1", 3, null], "{{job}}": true})
        );
        assert_eq!(call.timeout_ms, Some(2500));
        assert!(call.expect.admits(409) && !call.expect.admits(404));
    }

    #[test]
    fn a_text_body_is_sent_as_written_and_a_content_type_given_wins() {
        let text = planned(json!({"url": "http://h/", "method": "PUT", "body": "run {{run_id}}"})).unwrap();
        assert_eq!(text.body, b"run 01JRUN");
        assert!(text.headers.is_empty(), "a text body gets no content-type of ours");
        let typed = planned(json!({
            "url": "http://h/",
            "headers": {"Content-Type": "application/vnd.api+json"},
            "body": {"a": 1}
        }))
        .unwrap();
        assert_eq!(
            typed.headers,
            vec![("Content-Type".to_string(), "application/vnd.api+json".to_string())]
        );
        assert_eq!(typed.body, br#"{"a":1}"#);
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        let cases = [
            (json!({}), "input.url: missing"),
            (json!({"url": null}), "input.url: missing"),
            (json!({"url": 5}), "input.url: expected a string"),
            (json!({"url": "ftp://h/x"}), "input.url: \"ftp://h/x\" is not an http"),
            (
                json!({"url": "example.com"}),
                "input.url: \"example.com\" is not an http",
            ),
            (json!({"url": "http://h", "method": "GE T"}), "input.method: \"GE T\""),
            (json!({"url": "http://h", "method": 1}), "input.method: 1"),
            (
                json!({"url": "http://h", "headers": ["a"]}),
                "input.headers: expected an object",
            ),
            (
                json!({"url": "http://h", "headers": {"a b": "c"}}),
                "input.headers: \"a b\"",
            ),
            (
                json!({"url": "http://h", "headers": {"x": 1}}),
                "input.headers.x: expected a string",
            ),
            (
                json!({"url": "http://h", "headers": {"x": "a\r\nb"}}),
                "input.headers.x: a header value",
            ),
            (
                json!({"url": "http://h", "expect": ["7xx"]}),
                "input.expect[0]: \"7xx\"",
            ),
            (
                json!({"url": "http://h", "timeout": "soon"}),
                "input.timeout: \"soon\" is not a duration",
            ),
            (
                json!({"url": "http://h", "timeout": "10"}),
                "input.timeout: \"10\" is not a duration",
            ),
            (
                json!({"url": "http://h", "timeout": "0s"}),
                "input.timeout: \"0s\" is no time",
            ),
            (
                json!({"url": "http://h", "timeout": "61s"}),
                "input.timeout: \"61s\" is longer",
            ),
            (
                json!({"url": "http://h", "timeout": 10}),
                "input.timeout: expected a duration",
            ),
            (
                json!({"url": "http://h", "header": {}}),
                "input.header: std.http has no such field",
            ),
            (json!(["http://h"]), "input: expected a JSON object"),
        ];
        for (input, start) in cases {
            let error = planned(input.clone()).unwrap_err();
            assert!(error.starts_with(start), "{input}: {error}");
        }
        assert!(plan(b"", &renderer()).unwrap_err().contains("the job's input is empty"));
        assert!(plan(b"{url", &renderer()).unwrap_err().starts_with("input: not JSON"));
    }

    #[test]
    fn timeouts_add_their_parts() {
        assert_eq!(timeout("10s"), Ok(10_000));
        assert_eq!(timeout("500ms"), Ok(500));
        assert_eq!(timeout("1m"), Ok(60_000));
        assert_eq!(timeout("30s500ms"), Ok(30_500));
        assert_eq!(timeout(" 2s "), Ok(2000));
        assert!(timeout("1h").is_err() && timeout("s").is_err() && timeout("-1s").is_err());
        assert!(timeout("99999999999999999999s").is_err());
    }
}
