//! The PostgreSQL backend: all state in one database that several daemons
//! share (a cluster), behind the same subject traits as sled. Each subject
//! has its file (`plugins`, `jobs`, `runs`, `kv`, `tenants` with secrets,
//! `workflows`); `database` holds the pool, the runtime that drives it and
//! the bridge from the synchronous traits, and `schema` the migrations.
//! Records are the bytes sled keeps, so both read them alike; compiled code
//! stays on each node's disk.

mod claims;
mod cluster;
mod database;
mod events;
mod hooks;
mod jobs;
mod kv;
mod listen;
mod plugins;
mod runs;
mod schema;
mod tenants;
mod workflows;

pub use database::{PgStore, redacted};
