//! The records that flow through sandcron: plugins, jobs and runs. Plain
//! data with serde; validation of what users send lives in [`validate`], the
//! storage of these records in [`crate::store`].

pub mod job;
pub mod plugin;
pub mod run;
pub mod validate;

pub use job::{Job, JobSpec, Limits, Policy};
pub use plugin::{Artifact, PluginRef, PluginVersion};
pub use run::{ErrorKind, Run, RunError, RunStatus, Trigger};

/// The tenant every object belongs to until full tenancy arrives; keys and
/// queries carry the tenant from day one.
pub const DEFAULT_TENANT: &str = "default";

/// A new time-ordered identifier (ULID): sorting ids sorts by creation time.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}
