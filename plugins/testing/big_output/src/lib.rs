//! Hostile plugin: returns 2 MiB (or `input` as a decimal number of bytes),
//! above the default 1 MiB output cap.

use sandcron_plugin::Context;

fn run(_ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    let size = std::str::from_utf8(&input)
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .unwrap_or(2 << 20);
    Ok(vec![b'x'; size])
}

sandcron_plugin::job!(run);
