//! What std.http makes of the answer: the run's output `{"status",
//! "headers", "body"}` when the status is one `expect` admits, else the
//! run's error naming the status, the expectation and the start of the
//! body.

use serde_json::{Map, Value, json};

use crate::request::Call;

/// Characters of the answer's body an error message quotes.
pub const BODY_PREVIEW_CHARS: usize = 200;

/// The run's output for an answer, or its error message.
///
/// Header names are lower case; a header the answer repeats is one entry,
/// its values joined by ", ". A body that is UTF-8 is the text itself; any
/// other body is base64 (standard alphabet, padded) and the output says so
/// with `"body_encoding": "base64"` (the field is absent for text).
pub fn judge(call: &Call, status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Vec<u8>, String> {
    if !call.expect.admits(status) {
        return Err(format!(
            "{} {} answered {status}, outside expect {}; the body starts: {}",
            call.method,
            call.url,
            call.expect,
            preview(body)
        ));
    }
    let mut header_map = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match header_map.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            _ => {
                header_map.insert(name, Value::String(value.clone()));
            }
        }
    }
    let mut output = json!({"status": status, "headers": header_map});
    match std::str::from_utf8(body) {
        Ok(text) => output["body"] = Value::String(text.to_string()),
        Err(_) => {
            output["body"] = Value::String(base64(body));
            output["body_encoding"] = Value::String("base64".to_string());
        }
    }
    Ok(output.to_string().into_bytes())
}

/// The start of a body for a message: its first characters as text (bytes
/// that are not UTF-8 shown as U+FFFD), quoted, "(empty)" for none.
fn preview(body: &[u8]) -> String {
    if body.is_empty() {
        return "(empty)".to_string();
    }
    let text = String::from_utf8_lossy(body);
    let mut start: String = text.chars().take(BODY_PREVIEW_CHARS).collect();
    if start.len() < text.len() {
        start.push('…');
    }
    format!("{start:?}")
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let triple = chunk
            .iter()
            .enumerate()
            .fold(0_u32, |acc, (index, &byte)| acc | u32::from(byte) << (16 - 8 * index));
        for place in 0..4 {
            if place <= chunk.len() {
                out.push(char::from(ALPHABET[(triple >> (18 - 6 * place) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::Expect;

    fn call(expect: Value) -> Call {
        Call {
            method: "POST".into(),
            url: "http://127.0.0.1:9/hook".into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
            expect: Expect::parse(&expect).unwrap(),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn an_expected_answer_is_the_output() {
        let headers = pairs(&[
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
        ]);
        let output = judge(&call(json!(["2xx"])), 201, &headers, b"made").unwrap();
        let output: Value = serde_json::from_slice(&output).unwrap();
        assert_eq!(
            output,
            json!({"status": 201, "headers": {"content-type": "text/plain", "set-cookie": "a=1, b=2"}, "body": "made"})
        );
    }

    #[test]
    fn an_unexpected_status_fails_naming_it_the_expectation_and_the_body() {
        let error = judge(&call(json!(["2xx", 404])), 503, &[], b"upstream down").unwrap_err();
        assert_eq!(
            error,
            "POST http://127.0.0.1:9/hook answered 503, outside expect [2xx, 404]; the body starts: \"upstream down\""
        );
        let long = "x".repeat(500);
        let error = judge(&call(json!(["2xx"])), 500, &[], long.as_bytes()).unwrap_err();
        assert!(error.ends_with(&format!("\"{}…\"", "x".repeat(200))), "{error}");
        let error = judge(&call(json!(["2xx"])), 404, &[], b"").unwrap_err();
        assert!(error.ends_with("the body starts: (empty)"), "{error}");
        assert!(judge(&call(json!([404])), 404, &[], b"").is_ok());
        assert!(judge(&call(json!(["5xx"])), 502, &[], b"").is_ok());
    }

    #[test]
    fn a_body_that_is_not_utf8_is_base64() {
        let output = judge(&call(json!(["2xx"])), 200, &[], &[0xff, 0x00, 0xfe, 0x41]).unwrap();
        let output: Value = serde_json::from_slice(&output).unwrap();
        assert_eq!(output["body"], "/wD+QQ==");
        assert_eq!(output["body_encoding"], "base64");
        let text = judge(&call(json!(["2xx"])), 200, &[], "é".as_bytes()).unwrap();
        let text: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!((text["body"].as_str(), text.get("body_encoding")), (Some("é"), None));
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
