//! sandcron: a job runner whose jobs are sandboxed WebAssembly components.
//!
//! The modules follow the path of a job, one stage each:
//! upload -> [`plugin`] (validate, compile, cache) -> [`store`];
//! job spec -> [`model`] + [`schedule`] (validate) -> [`store`] ->
//! [`scheduler`] (next fire) -> [`executor`] (priority queue) -> [`sandbox`]
//! (wasmtime) -> run record + logs -> [`api`].
//! [`config`] holds every default, [`auth`] maps tokens to tenants,
//! [`tenancy`] keeps their quotas at hand, [`throttle`] their request
//! budgets, [`server`] holds the HTTP connections to the API and
//! [`permissions`] keeps the data dir its owner's, [`outbound`] is plugins' HTTP
//! behind the SSRF wall, [`vault`] seals secrets at rest, [`lanes`] are the few threads that
//! write the store off the runtime, and [`client`] and
//! [`cli`] are the command line on top of the HTTP API.

/// Every allocation of the daemon, its tests and benches (see
/// [`daemon::tune_allocator`]). The `system-allocator` feature leaves the
/// system's malloc in place, for heap profilers that wrap it (heaptrack:
/// see docs/benchmarks.md, "Hostile tenants: memory under sustained load").
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod events;
pub mod executor;
pub mod failures;
pub mod grant;
pub mod jobs;
pub mod lanes;
pub mod mail;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod outbound;
pub mod permissions;
pub mod plugin;
#[cfg(test)]
mod proptests;
pub mod relay;
pub mod retention;
pub mod sandbox;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod summary;
pub mod sync;
pub mod tenancy;
pub mod throttle;
pub mod timing;
pub mod units;
pub mod vault;
pub mod workflows;
