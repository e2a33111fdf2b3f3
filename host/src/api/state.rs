//! What every handler can reach: [`AppState`], made from the parts the
//! daemon wired ([`AppParts`]); the API names no `daemon` type, so the
//! daemon depends on the API and not the reverse.

use std::sync::Arc;

use super::error::ApiError;
use super::stream_slots::StreamSlots;
use crate::auth::Auth;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::events::EventBus;
use crate::executor::Executor;
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::model::Tenant;
use crate::plugin::Plugins;
use crate::relay::Relay;
use crate::scheduler::Scheduler;
use crate::store::Store;
use crate::store::health::StorageHealth;
use crate::summary::Summaries;
use crate::tenancy::Tenants;
use crate::throttle::AddressBudgets;
use crate::vault::Vault;
use crate::workflows::Workflows;

/// The parts of a daemon the API answers from.
pub struct AppParts {
    /// The storage.
    pub store: Arc<dyn Store>,
    /// Whether the storage works (`/healthz`, `/v1/status`).
    pub storage: Arc<StorageHealth>,
    /// Tenants' e-mail digests.
    pub digests: Arc<Summaries>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Run and job events (`/v1/events`).
    pub events: Arc<EventBus>,
    /// The tenants' quotas and caps.
    pub tenants: Arc<Tenants>,
    /// Seals secrets.
    pub vault: Arc<Vault>,
    /// The plugin registry.
    pub plugins: Arc<Plugins>,
    /// The run queue and its workers.
    pub executor: Arc<Executor>,
    /// Schedule fires.
    pub scheduler: Arc<Scheduler>,
    /// Job writes.
    pub jobs: Arc<Jobs>,
    /// Workflows and their runs.
    pub workflows: Arc<Workflows>,
    /// This node in the cluster of its database (PostgreSQL only).
    pub cluster: Option<Arc<Cluster>>,
    /// Every node's events, for the streams (PostgreSQL only).
    pub relay: Option<Arc<Relay>>,
    /// This node's id.
    pub node_id: String,
    /// Tokens to callers.
    pub auth: Auth,
    /// The daemon's settings.
    pub config: Config,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    parts: AppParts,
    /// Each client address's budget of requests without a valid token.
    unauthenticated: AddressBudgets,
    /// Each tenant's open event streams, within `max_event_streams`.
    streams: Arc<StreamSlots>,
    started_at: chrono::DateTime<chrono::Utc>,
}

impl AppState {
    /// Bundles the daemon's parts for the router.
    pub fn new(parts: AppParts) -> AppState {
        let http = &parts.config.http;
        let unauthenticated = AddressBudgets::new(http.unauthenticated_rate, http.unauthenticated_burst);
        let streams = Arc::new(StreamSlots::new(parts.config.max_event_streams));
        AppState {
            inner: Arc::new(Shared {
                parts,
                unauthenticated,
                streams,
                started_at: chrono::Utc::now(),
            }),
        }
    }

    pub(super) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.parts.cluster.as_ref()
    }

    pub(super) fn node_id(&self) -> &str {
        &self.inner.parts.node_id
    }

    pub(super) fn scheduler(&self) -> &Arc<Scheduler> {
        &self.inner.parts.scheduler
    }

    pub(super) fn jobs(&self) -> &Jobs {
        &self.inner.parts.jobs
    }

    pub(super) fn workflows(&self) -> &Arc<Workflows> {
        &self.inner.parts.workflows
    }

    pub(super) fn store(&self) -> &dyn Store {
        self.inner.parts.store.as_ref()
    }

    pub(super) fn storage(&self) -> &StorageHealth {
        &self.inner.parts.storage
    }

    pub(super) fn digests(&self) -> &Summaries {
        &self.inner.parts.digests
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.inner.parts.metrics
    }

    pub(super) fn events(&self) -> &Arc<EventBus> {
        &self.inner.parts.events
    }

    /// Every node's events, in a cluster (`/v1/events` reads them).
    pub(super) fn relay(&self) -> Option<&Arc<Relay>> {
        self.inner.parts.relay.as_ref()
    }

    pub(super) fn tenants(&self) -> &Tenants {
        &self.inner.parts.tenants
    }

    /// The tenant called `name`, or 404 `tenant_not_found`.
    pub(super) fn tenant(&self, name: &str) -> Result<Tenant, ApiError> {
        self.tenants()
            .get(name)
            .ok_or_else(|| ApiError::not_found("tenant_not_found", format!("no tenant named {name:?}")))
    }

    pub(super) fn vault(&self) -> &Vault {
        &self.inner.parts.vault
    }

    pub(super) fn plugins(&self) -> &Plugins {
        &self.inner.parts.plugins
    }

    pub(super) fn executor(&self) -> &Arc<Executor> {
        &self.inner.parts.executor
    }

    pub(super) fn auth(&self) -> &Auth {
        &self.inner.parts.auth
    }

    pub(super) fn config(&self) -> &Config {
        &self.inner.parts.config
    }

    pub(super) fn unauthenticated(&self) -> &AddressBudgets {
        &self.inner.unauthenticated
    }

    pub(super) fn streams(&self) -> &Arc<StreamSlots> {
        &self.inner.streams
    }

    pub(super) fn started_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.started_at
    }
}
