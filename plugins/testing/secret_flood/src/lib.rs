//! Hostile plugin: floods its output and log with a granted secret and
//! near-misses of it (the value without its last byte), the worst case of a
//! byte-by-byte masker. Input: `{"name": "<secret>", "bytes": <output size>}`.

use std::io::Write;

use sandcron_plugin::{Context, secrets};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    name: String,
    bytes: usize,
}

fn run(_ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    let input: Input = serde_json::from_slice(&input).map_err(|error| format!("bad input: {error}"))?;
    let value = secrets::get(&input.name).ok_or_else(|| format!("secret {} is not granted", input.name))?;
    let value = value.as_bytes();
    let mut output = Vec::with_capacity(input.bytes + 2 * value.len() + 2);
    while output.len() < input.bytes {
        output.extend_from_slice(value);
        output.push(b'\n');
        output.extend_from_slice(&value[..value.len() - 1]);
        output.push(b'\n');
    }
    output.truncate(input.bytes);
    // The log gets the same words until its cap.
    let mut stdout = std::io::stdout();
    stdout.write_all(&output).map_err(|error| error.to_string())?;
    stdout.flush().map_err(|error| error.to_string())?;
    Ok(output)
}

sandcron_plugin::job!(run);
