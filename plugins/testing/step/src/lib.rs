//! Test plugin for workflows: its input, when JSON, says what to do:
//! `sleep_ms` waits that long first, `fail` fails with that message
//! (`fail_before_attempt`: only attempts before that one fail),
//! `output` is returned (as JSON); otherwise the input comes back as it
//! is, so a step's output shows what it was handed.

use std::time::Duration;

use sandcron_plugin::Context;
use serde_json::Value;

fn run(ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    let Ok(Value::Object(asked)) = serde_json::from_slice::<Value>(&input) else {
        return Ok(input);
    };
    if let Some(millis) = asked.get("sleep_ms").and_then(Value::as_u64) {
        std::thread::sleep(Duration::from_millis(millis));
    }
    let failing = asked
        .get("fail_before_attempt")
        .and_then(Value::as_u64)
        .is_none_or(|before| u64::from(ctx.attempt) < before);
    if let Some(message) = asked.get("fail").and_then(Value::as_str)
        && failing
    {
        return Err(message.to_string());
    }
    match asked.get("output") {
        Some(output) => serde_json::to_vec(output).map_err(|error| error.to_string()),
        None => Ok(input),
    }
}

sandcron_plugin::job!(run);
