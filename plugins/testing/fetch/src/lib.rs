//! Test plugin: sends the HTTP request its input describes
//! (`{"method", "url", "headers": [[name, value]], "body", "timeout_ms"}`)
//! and returns the response as JSON (`{"status", "headers", "body"}`), or
//! fails the run with the host's refusal.

use sandcron_plugin::Context;
use sandcron_plugin::http::{Request, fetch};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Input {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
    timeout_ms: Option<u32>,
}

fn get() -> String {
    "GET".to_string()
}

fn run(_ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    let input: Input = serde_json::from_slice(&input).map_err(|error| format!("bad input: {error}"))?;
    let response = fetch(&Request {
        method: input.method,
        url: input.url,
        headers: input.headers,
        body: input.body.into_bytes(),
        timeout_ms: input.timeout_ms,
    })?;
    let answer = json!({
        "status": response.status,
        "headers": response.headers,
        "body": String::from_utf8_lossy(&response.body),
    });
    Ok(answer.to_string().into_bytes())
}

sandcron_plugin::job!(run);
