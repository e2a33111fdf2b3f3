//! Test plugin: returns what `run-info` says of the run,
//! `{"timezone", "offset"}` (the offset in seconds east of UTC at the run's
//! scheduled instant).

use sandcron_plugin::{Context, run_info};
use serde_json::json;

fn run(ctx: Context, _input: Vec<u8>) -> Result<Vec<u8>, String> {
    let answer = json!({
        "timezone": run_info::timezone(),
        "offset": run_info::utc_offset(ctx.scheduled_at_ms),
    });
    Ok(answer.to_string().into_bytes())
}

sandcron_plugin::job!(run);
