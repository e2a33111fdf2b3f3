//! Test plugin: `replay` reading another kv key (`counter-v2`), a new
//! version whose replay against a record of `replay` diverges there.

const KEY: &str = "counter-v2";

include!("../../replay/src/body.rs");
