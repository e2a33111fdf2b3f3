//! What the nouns read from their flags alike: JSON given on the command
//! line (`--input '{"name": "Ada"}'`).

use anyhow::Context;
use serde_json::Value;

/// A flag's JSON value, or an error naming the flag.
pub(super) fn parse_json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{flag}: {text:?} is not JSON"))
}
