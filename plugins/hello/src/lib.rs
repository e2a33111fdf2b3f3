//! Example plugin: reads `{"name": "..."}` and returns a greeting.

use sandcron_plugin::{Context, log};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    name: Option<String>,
}

fn run(ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    let name = if input.is_empty() {
        None
    } else {
        let parsed: Input =
            serde_json::from_slice(&input).map_err(|error| format!("input is not {{\"name\": ...}}: {error}"))?;
        parsed.name
    };
    let name = name.unwrap_or_else(|| "world".to_string());
    log::info(&format!(
        "greeting {name} (run {}, attempt {})",
        ctx.run_id, ctx.attempt
    ));
    Ok(format!("Hello, {name}!").into_bytes())
}

sandcron_plugin::job!(run);
