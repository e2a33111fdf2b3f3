//! Test plugin: reads every source of nondeterminism a plugin has (clocks,
//! random bytes, kv, HTTP, a secret) and returns what it saw, for the
//! record and replay tests (see `body.rs`). `replay_v2` is the same plugin
//! reading another kv key, so its replay of a record of this one diverges
//! at that call.

const KEY: &str = "counter";

include!("body.rs");
