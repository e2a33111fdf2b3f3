//! Hostile plugin: recurses forever. Overflows the guest's shadow stack or
//! the wasm stack, whichever comes first: both are traps.

use sandcron_plugin::Context;

#[inline(never)]
#[allow(unconditional_recursion)]
fn deeper(depth: u64, pad: [u8; 64]) -> u64 {
    let pad = std::hint::black_box(pad);
    std::hint::black_box(deeper(depth + 1, pad)) + u64::from(pad[(depth % 64) as usize])
}

fn run(_ctx: Context, _input: Vec<u8>) -> Result<Vec<u8>, String> {
    Ok(deeper(0, [1; 64]).to_string().into_bytes())
}

sandcron_plugin::job!(run);
