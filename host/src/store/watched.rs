//! A store whose storage failures are watched: every error of the backend
//! is shown to the [`StorageHealth`], and while the storage is failing
//! writes (and flushes) are refused at once with its fault (507 or 503 at
//! the API) instead of reaching a backend that cannot take them. Reads go
//! on: what the backend holds stays readable.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::error::{StoreFuture, StoreResult};
use super::health::StorageHealth;
use super::records::{
    AddedPlugin, DeletedPlugin, DueJob, Fire, JobHooks, NewPluginVersion, RunFilter, RunWrite, StoredArtifact,
};
use super::traits::{
    Durability, JobKey, JobStore, KvStore, PluginStore, RunStore, SecretStore, TenantStore, WorkflowStore,
};
use crate::model::dependency::Join;
use crate::model::workflow::Workflow;
use crate::model::workflow_run::WorkflowRun;
use crate::model::{Artifact, Job, PluginVersion, Run, SecretRecord, Tenant, Token};

/// `inner` with its failures watched by a [`StorageHealth`].
pub struct WatchedStore<S> {
    inner: S,
    health: Arc<StorageHealth>,
}

impl<S> WatchedStore<S> {
    /// Watches `inner`'s failures with `health`.
    pub fn new(inner: S, health: Arc<StorageHealth>) -> WatchedStore<S> {
        WatchedStore { inner, health }
    }

    /// A read: its error, if any, is looked at.
    fn read<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        if let Err(error) = &result {
            self.health.observe(error);
        }
        result
    }

    /// A write: refused while the storage fails, else done and looked at.
    fn write<T>(&self, write: impl FnOnce(&S) -> StoreResult<T>) -> StoreResult<T> {
        if let Some(refused) = self.health.refusal() {
            return Err(refused);
        }
        self.read(write(&self.inner))
    }
}

impl<S: PluginStore> PluginStore for WatchedStore<S> {
    fn add_plugin_version_under_quota(
        &self,
        new: &NewPluginVersion<'_>,
        max_total_bytes: Option<u64>,
    ) -> StoreResult<AddedPlugin> {
        self.write(|store| store.add_plugin_version_under_quota(new, max_total_bytes))
    }

    fn plugin_usage(&self, tenant: &str) -> StoreResult<u64> {
        self.read(self.inner.plugin_usage(tenant))
    }

    fn list_plugin_versions(&self, tenant: &str) -> StoreResult<Vec<PluginVersion>> {
        self.read(self.inner.list_plugin_versions(tenant))
    }

    fn plugin_versions(&self, tenant: &str, name: &str) -> StoreResult<Vec<PluginVersion>> {
        self.read(self.inner.plugin_versions(tenant, name))
    }

    fn plugin_version(&self, tenant: &str, name: &str, version: Option<u32>) -> StoreResult<Option<PluginVersion>> {
        self.read(self.inner.plugin_version(tenant, name, version))
    }

    fn delete_plugin(&self, tenant: &str, name: &str) -> StoreResult<DeletedPlugin> {
        self.write(|store| store.delete_plugin(tenant, name))
    }

    fn collect_plugins(&self) -> StoreResult<Vec<String>> {
        self.write(|store| store.collect_plugins())
    }

    fn plugin_bytes(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(self.inner.plugin_bytes(digest))
    }

    fn artifact(&self, digest: &str, engine: &str) -> StoreResult<Option<(Artifact, Vec<u8>)>> {
        self.read(self.inner.artifact(digest, engine))
    }

    fn has_artifact(&self, digest: &str, engine: &str) -> StoreResult<bool> {
        self.read(self.inner.has_artifact(digest, engine))
    }

    fn put_artifact(&self, artifact: &Artifact, bytes: &[u8]) -> StoreResult<bool> {
        self.write(|store| store.put_artifact(artifact, bytes))
    }

    fn stored_artifacts(&self) -> StoreResult<Vec<StoredArtifact>> {
        self.read(self.inner.stored_artifacts())
    }

    fn drop_artifact(&self, digest: &str, engine: &str) -> StoreResult<()> {
        self.write(|store| store.drop_artifact(digest, engine))
    }
}

impl<S: JobStore> JobStore for WatchedStore<S> {
    fn insert_job_under_quota(&self, job: &Job, max_jobs: Option<u64>) -> StoreResult<()> {
        self.write(|store| store.insert_job_under_quota(job, max_jobs))
    }

    fn update_job_withdrawing(&self, job: &Job, withdrawn: &[Run]) -> StoreResult<()> {
        self.write(|store| store.update_job_withdrawing(job, withdrawn))
    }

    fn job(&self, tenant: &str, id: &str) -> StoreResult<Option<Job>> {
        self.read(self.inner.job(tenant, id))
    }

    fn jobs_by_id(&self, keys: &[JobKey]) -> StoreResult<Vec<StoreResult<Option<Job>>>> {
        let answers = self.read(self.inner.jobs_by_id(keys))?;
        for error in answers.iter().filter_map(|answer| answer.as_ref().err()) {
            self.health.observe(error);
        }
        Ok(answers)
    }

    fn job_hooks(&self, tenant: &str, id: &str) -> StoreResult<Option<JobHooks>> {
        self.read(self.inner.job_hooks(tenant, id))
    }

    fn count_outcome(&self, tenant: &str, id: &str, failed: bool) -> StoreResult<Option<(Job, u64)>> {
        self.write(|store| store.count_outcome(tenant, id, failed))
    }

    fn job_id_by_name(&self, tenant: &str, name: &str) -> StoreResult<Option<String>> {
        self.read(self.inner.job_id_by_name(tenant, name))
    }

    fn list_jobs(&self, tenant: &str) -> StoreResult<Vec<Job>> {
        self.read(self.inner.list_jobs(tenant))
    }

    fn delete_job_withdrawing(&self, tenant: &str, id: &str, withdrawn: &[Run]) -> StoreResult<bool> {
        self.write(|store| store.delete_job_withdrawing(tenant, id, withdrawn))
    }

    fn record_fires(&self, fires: &[Fire]) -> StoreResult<Vec<StoreResult<Vec<Run>>>> {
        self.write(|store| store.record_fires(fires))
    }

    fn due_jobs(&self, until: DateTime<Utc>, limit: usize) -> StoreResult<Vec<DueJob>> {
        self.read(self.inner.due_jobs(until, limit))
    }

    fn next_due_after(&self, after: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        self.read(self.inner.next_due_after(after))
    }

    fn remove_due(&self, due: &DueJob) -> StoreResult<()> {
        self.write(|store| store.remove_due(due))
    }

    fn run_at_start_jobs(&self) -> StoreResult<Vec<Job>> {
        self.read(self.inner.run_at_start_jobs())
    }
}

impl<S: RunStore> RunStore for WatchedStore<S> {
    fn write_runs(&self, writes: &[RunWrite<'_>]) -> StoreResult<()> {
        self.write(|store| store.write_runs(writes))
    }

    fn run(&self, tenant: &str, id: &str) -> StoreResult<Option<Run>> {
        self.read(self.inner.run(tenant, id))
    }

    fn run_output(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(self.inner.run_output(tenant, id))
    }

    fn run_log(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(self.inner.run_log(tenant, id))
    }

    fn run_tape(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(self.inner.run_tape(tenant, id))
    }

    fn list_runs(&self, tenant: &str, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        self.read(self.inner.list_runs(tenant, filter))
    }

    // A read at start-up that also tidies markers: not refused.
    fn unfinished_runs(&self) -> StoreResult<Vec<Run>> {
        self.read(self.inner.unfinished_runs())
    }

    fn prune_runs(&self, older_than: DateTime<Utc>, keep_per_job: usize, max_deletions: usize) -> StoreResult<usize> {
        self.write(|store| store.prune_runs(older_than, keep_per_job, max_deletions))
    }

    fn prune_workflow_runs(&self, older_than: DateTime<Utc>, max_deletions: usize) -> StoreResult<usize> {
        self.write(|store| store.prune_workflow_runs(older_than, max_deletions))
    }

    fn insert_run_under_quota(&self, run: &Run, max_bytes: Option<u64>) -> StoreResult<()> {
        self.write(|store| store.insert_run_under_quota(run, max_bytes))
    }

    fn run_bytes(&self, tenant: &str) -> StoreResult<u64> {
        self.read(self.inner.run_bytes(tenant))
    }

    fn trim_runs(&self, tenant: &str, max_bytes: u64, max_deletions: usize) -> StoreResult<usize> {
        self.write(|store| store.trim_runs(tenant, max_bytes, max_deletions))
    }
}

impl<S: KvStore> KvStore for WatchedStore<S> {
    fn kv_get(&self, tenant: &str, job_id: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(self.inner.kv_get(tenant, job_id, key))
    }

    fn kv_set_under_quota(
        &self,
        tenant: &str,
        job_id: &str,
        key: &str,
        value: &[u8],
        max_bytes: Option<u64>,
    ) -> StoreResult<()> {
        self.write(|store| store.kv_set_under_quota(tenant, job_id, key, value, max_bytes))
    }

    fn kv_usage(&self, tenant: &str) -> StoreResult<u64> {
        self.read(self.inner.kv_usage(tenant))
    }

    fn kv_delete(&self, tenant: &str, job_id: &str, key: &str) -> StoreResult<()> {
        self.write(|store| store.kv_delete(tenant, job_id, key))
    }

    fn kv_keys(&self, tenant: &str, job_id: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        self.read(self.inner.kv_keys(tenant, job_id, prefix, limit))
    }
}

impl<S: TenantStore> TenantStore for WatchedStore<S> {
    fn insert_tenant(&self, tenant: &Tenant, token: &Token) -> StoreResult<()> {
        self.write(|store| store.insert_tenant(tenant, token))
    }

    fn put_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        self.write(|store| store.put_tenant(tenant))
    }

    fn tenant(&self, name: &str) -> StoreResult<Option<Tenant>> {
        self.read(self.inner.tenant(name))
    }

    fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.read(self.inner.list_tenants())
    }

    fn insert_token(&self, token: &Token) -> StoreResult<()> {
        self.write(|store| store.insert_token(token))
    }

    fn token_by_hash(&self, hash: &str) -> StoreResult<Option<Token>> {
        self.read(self.inner.token_by_hash(hash))
    }

    fn list_tokens(&self, tenant: &str) -> StoreResult<Vec<Token>> {
        self.read(self.inner.list_tokens(tenant))
    }

    fn revoke_token(&self, tenant: &str, id: &str, at: DateTime<Utc>) -> StoreResult<Option<Token>> {
        self.write(|store| store.revoke_token(tenant, id, at))
    }
}

impl<S: SecretStore> SecretStore for WatchedStore<S> {
    fn put_secret(&self, secret: &SecretRecord) -> StoreResult<()> {
        self.write(|store| store.put_secret(secret))
    }

    fn secret(&self, tenant: &str, name: &str) -> StoreResult<Option<SecretRecord>> {
        self.read(self.inner.secret(tenant, name))
    }

    fn list_secrets(&self, tenant: &str) -> StoreResult<Vec<SecretRecord>> {
        self.read(self.inner.list_secrets(tenant))
    }

    fn delete_secret(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        self.write(|store| store.delete_secret(tenant, name))
    }
}

impl<S: WorkflowStore> WorkflowStore for WatchedStore<S> {
    fn put_workflow(&self, workflow: &Workflow) -> StoreResult<()> {
        self.write(|store| store.put_workflow(workflow))
    }

    fn workflow(&self, tenant: &str, name: &str) -> StoreResult<Option<Workflow>> {
        self.read(self.inner.workflow(tenant, name))
    }

    fn list_workflows(&self, tenant: &str) -> StoreResult<Vec<Workflow>> {
        self.read(self.inner.list_workflows(tenant))
    }

    fn all_workflows(&self) -> StoreResult<Vec<Workflow>> {
        self.read(self.inner.all_workflows())
    }

    fn delete_workflow(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        self.write(|store| store.delete_workflow(tenant, name))
    }

    fn workflow_run(&self, tenant: &str, id: &str) -> StoreResult<Option<WorkflowRun>> {
        self.read(self.inner.workflow_run(tenant, id))
    }

    fn list_workflow_runs(
        &self,
        tenant: &str,
        workflow: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<WorkflowRun>> {
        self.read(self.inner.list_workflow_runs(tenant, workflow, before, limit))
    }

    fn running_workflow_runs(&self) -> StoreResult<Vec<WorkflowRun>> {
        self.read(self.inner.running_workflow_runs())
    }

    fn going_workflow_runs(&self) -> Option<StoreResult<Vec<WorkflowRun>>> {
        self.inner.going_workflow_runs().map(|result| self.read(result))
    }

    fn join(&self, tenant: &str, job_id: &str) -> StoreResult<Option<Join>> {
        self.read(self.inner.join(tenant, job_id))
    }

    fn update_join(
        &self,
        tenant: &str,
        job_id: &str,
        update: &mut (dyn FnMut(&mut Join) -> Option<Run> + Send),
    ) -> Option<StoreResult<Option<Run>>> {
        if let Some(refused) = self.health.refusal() {
            return Some(Err(refused));
        }
        self.inner
            .update_join(tenant, job_id, update)
            .map(|result| self.read(result))
    }
}

impl<S: Durability> Durability for WatchedStore<S> {
    fn flush(&self) -> StoreResult<()> {
        self.write(|store| store.flush())
    }

    fn flush_async(&self) -> StoreFuture {
        if let Some(refused) = self.health.refusal() {
            return Box::pin(std::future::ready(Err(refused)));
        }
        let flushed = self.inner.flush_async();
        let health = self.health.clone();
        Box::pin(async move {
            let result = flushed.await;
            if let Err(error) = &result {
                health.observe(error);
            }
            result
        })
    }

    fn flush_soon(&self) {
        if self.health.is_failing() {
            return;
        }
        // Through `flush_async`, so a failure of the background flush is
        // seen too (the health logs it once).
        let flushed = self.flush_async();
        tokio::spawn(async move {
            if let Err(error) = flushed.await {
                tracing::debug!(%error, "a background flush failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::error::StoreError;
    use crate::store::health::Fault;
    use crate::store::sled::SledStore;

    fn watched() -> (tempfile::TempDir, WatchedStore<SledStore>, Arc<StorageHealth>) {
        let dir = tempfile::tempdir().unwrap();
        let health = Arc::new(StorageHealth::new());
        let store = WatchedStore::new(SledStore::open(dir.path()).unwrap(), health.clone());
        (dir, store, health)
    }

    #[tokio::test]
    async fn failing_storage_refuses_writes_and_flushes_at_once_and_still_reads() {
        let (_dir, store, health) = watched();
        store.kv_set("t", "j", "k", b"before").unwrap();
        store.flush_async().await.unwrap();
        health.failed(Fault::NoSpace, "no space left on the data volume");
        let refused = store.kv_set("t", "j", "k", b"after").unwrap_err();
        assert!(matches!(refused, StoreError::NoSpace(_)), "{refused}");
        assert!(refused.to_string().contains("no space left"), "{refused}");
        assert!(matches!(store.flush_async().await, Err(StoreError::NoSpace(_))));
        assert!(matches!(store.flush(), Err(StoreError::NoSpace(_))));
        assert_eq!(store.kv_get("t", "j", "k").unwrap().as_deref(), Some(&b"before"[..]));
        assert_eq!(health.snapshot().errors[0], 4, "the fault and three refusals");
    }

    #[test]
    fn an_io_failure_refuses_writes_as_unavailable() {
        let (_dir, store, health) = watched();
        health.observe(&StoreError::Unavailable("an I/O error on the data volume".into()));
        let tenant = crate::model::Tenant {
            name: crate::model::DEFAULT_TENANT.to_string(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            quotas: crate::model::Quotas::default(),
            http_allow: None,
            digest: None,
            calendars: Default::default(),
        };
        let refused = store.put_tenant(&tenant).unwrap_err();
        assert!(matches!(refused, StoreError::Unavailable(_)), "{refused}");
    }
}
