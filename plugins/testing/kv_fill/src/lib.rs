//! Test plugin: writes a value of `n` bytes under key `key` (input
//! `{"key": "...", "bytes": n}` as JSON text, parsed by hand) and fails the
//! run with the host's answer when the write is refused.

use sandcron_plugin::{Context, kv};

fn field<'a>(input: &'a str, name: &str) -> Option<&'a str> {
    let start = input.find(&format!("\"{name}\""))? + name.len() + 2;
    let rest = input[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"'))
}

fn run(_ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    let input = String::from_utf8(input).map_err(|_| "input is not UTF-8".to_string())?;
    let key = field(&input, "key").ok_or("input needs \"key\"")?;
    let bytes: usize = field(&input, "bytes")
        .and_then(|text| text.parse().ok())
        .ok_or("input needs \"bytes\"")?;
    kv::set(key, vec![b'x'; bytes])?;
    Ok(format!("wrote {bytes} bytes under {key}").into_bytes())
}

sandcron_plugin::job!(run);
