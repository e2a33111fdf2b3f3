//! The cheapest plugin: returns its input. Used by the benchmarks.

use sandcron_plugin::Context;

fn run(_ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    Ok(input)
}

sandcron_plugin::job!(run);
