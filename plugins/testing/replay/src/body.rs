// The body of the `replay` test plugins; each includes it after naming
// its `KEY`. Input: `{"url"?, "calls"?: n, "secret"?: name}`.
//
// In order: a read of each clock, 16 random bytes and a u64, `kv.get(KEY)`,
// the secret (when named; a value present is copied to kv,
// sent in a header and, form-encoded, in the URL's query), a GET of `url` (when given), `kv.set(KEY, n + 1)`, then `calls` times a kv
// read, a wall clock read and 8 random bytes. The output shows all of it,
// so a replay that answered anything differently shows a different output.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sandcron_plugin::http::{Request, fetch};
use sandcron_plugin::{Context, kv, secrets};
use serde::Deserialize;
use serde_json::json;

/// `wasi:random/random`, which the standard library does not expose.
mod wasi_random {
    wit_bindgen::generate!({
        inline: "
            package wasi:random@0.2.0;
            interface random {
                get-random-bytes: func(len: u64) -> list<u8>;
                get-random-u64: func() -> u64;
            }
            world imports {
                import random;
            }
        ",
        world: "imports",
    });
}

use wasi_random::wasi::random::random::{get_random_bytes, get_random_u64};

#[derive(Deserialize)]
struct Input {
    url: Option<String>,
    #[serde(default)]
    calls: u32,
    secret: Option<String>,
}

/// `text` as an HTML form (and the url crate) encodes it: letters, digits
/// and `*-._` as they are, a space as `+`, any other byte as `%XX`.
fn form_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => (byte as char).to_string(),
            b' ' => "+".to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn run(_ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    let input: Input = serde_json::from_slice(&input).map_err(|error| format!("bad input: {error}"))?;
    let wall_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|error| error.to_string())?
        .as_millis();
    let started = Instant::now();
    let random = hex(&get_random_bytes(16));
    let random_u64 = get_random_u64();
    let count: u64 = kv::get_string(KEY).and_then(|text| text.parse().ok()).unwrap_or(0);
    let mut headers = Vec::new();
    let mut query = String::new();
    let secret_present = match &input.secret {
        Some(name) => match secrets::get(name) {
            Some(value) => {
                kv::set("secret-copy", &value)?;
                headers.push(("authorization".to_string(), format!("Bearer {value}")));
                query = format!("?key={}", form_encoded(&value));
                true
            }
            None => false,
        },
        None => false,
    };
    let (status, body) = match input.url {
        Some(url) => {
            let url = format!("{url}{query}");
            let response = fetch(&Request {
                method: "GET".into(),
                url,
                headers,
                body: Vec::new(),
                timeout_ms: None,
            })?;
            (response.status, String::from_utf8_lossy(&response.body).into_owned())
        }
        None => (0, String::new()),
    };
    kv::set(KEY, (count + 1).to_string())?;
    let mut last_wall = 0u128;
    let mut drawn = 0usize;
    for _ in 0..input.calls {
        kv::get(KEY);
        last_wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|error| error.to_string())?
            .as_nanos();
        drawn += get_random_bytes(8).len();
    }
    let answer = json!({
        "wall_ms": wall_ms as u64,
        "elapsed_ns": started.elapsed().as_nanos() as u64,
        "random": random,
        "random_u64": random_u64,
        "count": count,
        "status": status,
        "body": body,
        "secret_present": secret_present,
        "last_wall_ns": last_wall.to_string(),
        "drawn": drawn,
    });
    Ok(answer.to_string().into_bytes())
}

sandcron_plugin::job!(run);
