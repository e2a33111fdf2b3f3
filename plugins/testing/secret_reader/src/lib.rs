//! Test plugin: reads the secrets named in its input (a JSON list), prints
//! each value to stdout and in a log line (the host must mask both), and
//! returns, per name, whether it was readable with the value reversed (so a
//! test can tell the plugin saw it without the value itself appearing).

use sandcron_plugin::{Context, log, secrets};
use serde_json::{Map, Value, json};

fn run(_ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    let names: Vec<String> = serde_json::from_slice(&input).map_err(|error| format!("bad input: {error}"))?;
    let mut report = Map::new();
    for name in names {
        let entry = match secrets::get(&name) {
            Some(value) => {
                println!("stdout says {name} = {value}");
                log::info(&format!("log says {name} = {value}"));
                json!({"readable": true, "reversed": value.chars().rev().collect::<String>()})
            }
            None => json!({"readable": false}),
        };
        report.insert(name, entry);
    }
    Ok(Value::Object(report).to_string().into_bytes())
}

sandcron_plugin::job!(run);
