//! Durable state behind subject traits (see `traits`: plugins, jobs, runs,
//! kv, tenants, secrets, durability; [`Store`] is their sum), so another
//! backend (PostgreSQL) can come without touching the rest: it implements
//! each subject. Every key carries the tenant. The store knows records and
//! bytes, nothing of wasmtime or HTTP.
//!
//! Durability: writes are atomic per call; they are durable once
//! [`Durability::flush`] (or [`Durability::flush_async`]) has returned. The
//! API flushes before acknowledging a state change. A full or failing data
//! volume turns the storage failing (see [`health`]): writes and flushes are
//! refused from then on until the daemon restarts and reopens the database.

mod error;
mod group_commit;
pub mod health;
mod records;
pub(crate) mod sled;
mod traits;
pub mod watchdog;
mod watched;

pub use self::sled::{PluginStorage, SledStore};
pub use error::{StoreError, StoreFuture, StoreResult};
pub use records::{
    AddedPlugin, DeletedPlugin, DueJob, Fire, JobHooks, NewPluginVersion, RunFilter, RunWrite, StoredArtifact,
    check_plugin_quota,
};
pub use traits::{
    Durability, JobStore, KvStore, PluginStore, RunStore, SecretStore, Store, TenantStore, WorkflowStore,
};
pub use watched::WatchedStore;
