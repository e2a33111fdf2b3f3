//! Example plugin: adds one to a number kept in the job's kv store and
//! returns it, so each run sees the last one's state.

use sandcron_plugin::{Context, kv, log};

const KEY: &str = "count";

fn run(_ctx: Context, _input: Vec<u8>) -> Result<Vec<u8>, String> {
    let previous: u64 = match kv::get_string(KEY) {
        Some(text) => text
            .parse()
            .map_err(|error| format!("kv {KEY:?} holds {text:?}: {error}"))?,
        None => 0,
    };
    let count = previous + 1;
    kv::set(KEY, count.to_string())?;
    log::info(&format!("count is now {count}"));
    Ok(count.to_string().into_bytes())
}

sandcron_plugin::job!(run);
