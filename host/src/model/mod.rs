//! The records that flow through sandcron: plugins, jobs and runs. Plain
//! data with serde; validation of what users send lives in [`validate`], the
//! storage of these records in [`crate::store`].

pub mod dependency;
pub mod id;
pub mod job;
pub mod name;
pub mod plugin;
pub mod policy;
pub mod run;
pub mod tenant;
pub mod upcoming;
pub mod validate;
pub mod when;
pub mod workflow;
pub mod workflow_run;

pub use id::{DEFAULT_TENANT, new_id, scheduled_run_id};
pub use job::{Job, JobSpec, Limits, Policy};
pub use plugin::{Artifact, PluginRef, PluginVersion};
pub use run::{ErrorKind, Run, RunError, RunStatus, Trigger};
pub use tenant::{Quotas, SecretRecord, Tenant, Token};
