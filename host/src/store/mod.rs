//! Durable state behind subject traits (see `traits`: plugins, jobs, runs,
//! kv, tenants, secrets, workflows, durability; [`Store`] is their sum),
//! with two backends implementing each subject: sled (embedded, the
//! default) and PostgreSQL (shared by the nodes of a cluster). Every key carries the tenant. The store knows records and
//! bytes, nothing of wasmtime or HTTP.
//!
//! Durability: writes are atomic per call; they are durable once
//! [`Durability::flush`] (or [`Durability::flush_async`]) has returned. The
//! API flushes before acknowledging a state change. A full or failing data
//! volume turns the storage failing (see [`health`]): writes and flushes are
//! refused from then on until the daemon restarts and reopens the database.

mod code_files;
mod error;
mod group_commit;
pub mod health;
mod postgres;
mod records;
mod room;
pub(crate) mod sled;
mod traits;
pub mod watchdog;
mod watched;

pub use self::postgres::{PgStore, redacted as redacted_database_url};
pub use self::sled::{PluginStorage, SledStore};
pub use error::{StoreError, StoreFuture, StoreResult};
pub use records::{
    AddedPlugin, DeletedPlugin, DueJob, Fire, JobHooks, NewPluginVersion, RunFilter, RunWrite, StoredArtifact,
    check_plugin_quota, no_run_room,
};
pub use traits::{
    ClusterNotice, ClusterStore, Durability, EventLog, JobKey, JobStore, KvStore, NodeRecord, PluginStore, RunClaims,
    RunStore, SecretStore, StopRuns, Store, StoredEvent, TakenOver, TenantStore, WorkflowStore,
};
pub use watched::WatchedStore;
