//! Hostile plugin: panics, which in wasm aborts with an `unreachable` trap.

use sandcron_plugin::Context;

fn run(_ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    if std::hint::black_box(input.len()) < usize::MAX {
        panic!("the trap plugin panics on purpose");
    }
    Ok(input)
}

sandcron_plugin::job!(run);
