//! Views of the daemon as a whole: its status, the scheduler, the storage's
//! health, schedule previews.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::error::ErrorDetail;
use crate::model::job::Priority;

/// Whether schedules fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerState {
    Running,
    /// By `POST /v1/scheduler/pause`, until resumed.
    Paused,
}

/// `POST /v1/scheduler/pause` and `/resume`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulerView {
    pub scheduler: SchedulerState,
}

/// `GET /v1/cluster`: the nodes sharing the database.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    /// Where the state is kept: `sled` (one node) or `postgres`.
    pub backend: &'static str,
    /// Every node, by id.
    pub nodes: Vec<NodeView>,
}

/// A node of the cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    /// Its id (`--node-id`).
    pub id: String,
    /// Whether it holds the leader lease: it plans fires and sweeps.
    pub leader: bool,
    /// When it last renewed its lease.
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: chrono::DateTime<chrono::Utc>,
    /// Runs it was running then.
    pub running_runs: u32,
}

impl From<crate::store::NodeRecord> for NodeView {
    fn from(node: crate::store::NodeRecord) -> NodeView {
        NodeView {
            id: node.id,
            leader: node.leader,
            last_seen: node.last_seen,
            running_runs: node.running_runs,
        }
    }
}

/// Whether the storage takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StorageState {
    Ok,
    /// A write failed (a full disk, an I/O error): writes are refused.
    Failing,
    /// It takes writes again; the daemon is restarting to reopen the database.
    Recovered,
}

impl From<&crate::store::health::Condition> for StorageState {
    fn from(condition: &crate::store::health::Condition) -> StorageState {
        use crate::store::health::Condition;
        match condition {
            Condition::Healthy => StorageState::Ok,
            Condition::Failing(_) => StorageState::Failing,
            Condition::Recovered { .. } => StorageState::Recovered,
        }
    }
}

/// An upcoming fire.
#[derive(Debug, Serialize, ToSchema)]
pub struct NextFireView {
    /// The job's name.
    pub job: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
}

/// `GET /v1/status`: the caller's tenant's runs and queue (the admin's: all).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    pub scheduler: SchedulerState,
    pub storage: StorageState,
    pub version: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    pub running_runs: usize,
    pub queue_depth: usize,
    /// Queued runs by priority (`low`, `normal`, `high`, `critical`).
    pub queue_depth_by_priority: BTreeMap<Priority, usize>,
    pub max_concurrent_runs: usize,
    pub jobs: usize,
    pub jobs_paused: usize,
    /// The earliest upcoming fires.
    pub next_fires: Vec<NextFireView>,
}

/// `POST /v1/schedules/preview`: the next fires.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulePreviewView {
    /// RFC 3339, UTC.
    pub fires: Vec<String>,
    /// For a cron line: its zone ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// ... and the same instants as wall times there, with their offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<Vec<String>>,
    /// With a `jitter`: the instant by which each fire's run is due at the
    /// latest (its fire plus the jitter less a millisecond; each job's
    /// delay is fixed within that range).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_by: Option<Vec<String>>,
}

/// `ok` while the storage takes writes; `failing` once it failed;
/// `restarting` when it recovered and the daemon restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Failing,
    Restarting,
}

/// Failures of the storage counted since the daemon started, by fault.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageErrorsView {
    pub no_space: u64,
    pub io: u64,
}

/// The storage's part of `/healthz`; the rest only once it failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageReportView {
    pub state: StorageState,
    /// `no_space` or `io`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// What went wrong, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the first failure was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<StorageErrorsView>,
    /// When it could take writes again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub recovered_at: Option<DateTime<Utc>>,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    pub status: HealthStatus,
    pub version: String,
    pub storage: StorageReportView,
}

/// `GET /healthz` while the storage fails: the error writes get meanwhile
/// (`insufficient_storage` or `storage_unavailable`) beside the report.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Only described: `ApiError::storage_unhealthy` makes it.
pub struct UnhealthyView {
    error: ErrorDetail,
    #[serde(flatten)]
    health: HealthView,
}
