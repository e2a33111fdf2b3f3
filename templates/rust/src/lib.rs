//! {{name}}: a sandcron job. It greets, counts its runs in the job's kv
//! store, and shows the rest of the SDK when its input asks (every key is
//! optional):
//!
//! ```text
//! {"name": "Ada"}                     who to greet
//! {"fetch": "https://example.com/"}   GET this URL (list its host in the job's http_allow)
//! {"secret": "api-token"}             read this secret (list it in the job's secrets)
//! {"fail": "why"}                     return Err, to see a failed run
//! ```

use sandcron_plugin::{Context, http, kv, log, secrets};
use serde::{Deserialize, Serialize};

/// The job's JSON input.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Input {
    name: Option<String>,
    fetch: Option<String>,
    secret: Option<String>,
    fail: Option<String>,
}

/// The run's JSON output.
#[derive(Serialize)]
struct Reply {
    greeting: String,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetched: Option<Fetched>,
    /// The run's output and log show a granted secret as [secret:NAME].
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<Option<String>>,
}

#[derive(Serialize)]
struct Fetched {
    status: u16,
    body: String,
}

fn run(ctx: Context, input: Input) -> Result<Reply, String> {
    let name = input.name.unwrap_or_else(|| "world".to_string());
    let count = kv::get_string("count")
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    kv::set("count", count.to_string())?;
    log::info(&format!(
        "hello {name}: run {count} of job {}",
        ctx.job_name
    ));
    let fetched = match input.fetch {
        Some(url) => {
            let response = http::get(&url)?;
            let body = String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect();
            Some(Fetched {
                status: response.status,
                body,
            })
        }
        None => None,
    };
    let secret = input.secret.map(|name| secrets::get(&name));
    if let Some(why) = input.fail {
        return Err(why);
    }
    Ok(Reply {
        greeting: format!("Hello, {name}!"),
        count,
        fetched,
        secret,
    })
}

sandcron_plugin::json_job!(run);
