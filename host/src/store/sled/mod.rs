//! The embedded default: sled 0.34. Records are JSON, except jobs' and
//! runs' (compact binary, see `job_codec` and `run_codec`); keys are
//! `tenant \0 ...` byte strings so a tenant's objects form one range.
//! Multi-tree writes go through sled transactions so they land together.
//!
//! sled 0.34 deadlocks when a flush (which holds its concurrency-control
//! read lock while it waits for the log to become stable) meets a batch or
//! transaction (which queues for the write lock, so the IO work the flush
//! waits for cannot take its read lock): seen here with 10,000 jobs firing.
//! So every batch and transaction passes a gate shared with flushes, a flush
//! holds the gate alone, and sled's own timer flusher is off (sandcron
//! flushes explicitly before acknowledging anything). A write or flush that
//! fails with an I/O error (a full disk) stops every later flush before it
//! lets the gate go: after one, a sled flush may wait forever (see `gate`).
//!
//! Runs are written on every run, two or three times, so everything about
//! them (record, per-job index, active marker, output, log) lives in one
//! tree under a one-byte namespace and is written with one atomic
//! `apply_batch`: a multi-tree transaction costs ~90 µs here, a batch a
//! few. The runs of one fire pass share one active marker (see
//! `active_groups`); a run queued any other way has its own. The bytes of
//! each tenant's finished runs (see `run_bytes`) are a key of the same
//! tree, written in the same batch as the outcomes and deletions that
//! change them.
//!
//! One file per subject implements its trait for [`SledStore`], with the
//! keys, codecs and caches only it uses beside it: `plugins` (with
//! the store's `code_files`), `jobs` (with `job_codec` and `job_cache`), `runs` (with
//! `run_codec`, `run_bytes` and `active_groups`), `kv`, `tenants` and
//! `secrets`. `database` holds the struct, its trees and durability, `open`
//! opens it, `gate` is the gate every write passes, and `encoding` the
//! keys, JSON records and counts the subjects share.

mod active_groups;
mod codec;
mod database;
mod encoding;
mod gate;
pub(crate) mod job_cache;
pub(crate) mod job_codec;
mod jobs;
mod kv;
mod open;
mod plugins;
pub(crate) mod run_bytes;
pub(crate) mod run_codec;
mod runs;
mod secrets;
mod tenants;
#[cfg(test)]
mod tests;
mod workflows;

pub use database::SledStore;
pub use plugins::PluginStorage;
