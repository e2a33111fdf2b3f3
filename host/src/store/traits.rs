//! The subject traits of the store, one per kind of state it keeps, and
//! [`Store`], their sum: what the daemon holds (`Arc<dyn Store>`) and what a
//! backend implements, one subject at a time.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

#[cfg(doc)]
use super::error::StoreError;
use super::error::{StoreFuture, StoreResult};
use super::records::{
    AddedPlugin, DeletedPlugin, DueJob, Fire, JobHooks, NewPluginVersion, RunFilter, RunWrite, StoredArtifact,
};
use crate::model::dependency::Join;
use crate::model::run::Activity;
use crate::model::workflow::Workflow;
use crate::model::workflow_run::WorkflowRun;
use crate::model::{Artifact, Job, PluginVersion, Run, SecretRecord, Tenant, Token};

/// Plugins: their versions, the bytes those share by digest and the code
/// compiled from them.
///
/// Plugin bytes and compiled artifacts are kept once per digest, shared by
/// every version (of any tenant) with those bytes, and deleted with the
/// last such version.
pub trait PluginStore: Send + Sync {
    /// Adds `bytes` as the next version of `name`, or returns the version
    /// that already holds the same digest.
    fn add_plugin_version(
        &self,
        tenant: &str,
        name: &str,
        digest: &str,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<AddedPlugin> {
        let new = NewPluginVersion {
            tenant,
            name,
            digest,
            bytes,
            uploaded_at: now,
            compiled: None,
        };
        self.add_plugin_version_under_quota(&new, None)
    }
    /// [`PluginStore::add_plugin_version`] with the upload's compiled artifact,
    /// refused with [`StoreError::QuotaExceeded`] (writing nothing) when the
    /// tenant's plugin versions would take more than `max_total_bytes`
    /// together.
    fn add_plugin_version_under_quota(
        &self,
        new: &NewPluginVersion<'_>,
        max_total_bytes: Option<u64>,
    ) -> StoreResult<AddedPlugin>;
    /// Bytes of all the tenant's plugin versions together (what its
    /// `plugin_bytes` quota counts).
    fn plugin_usage(&self, tenant: &str) -> StoreResult<u64>;
    /// Every version of every plugin of the tenant, by name then version.
    fn list_plugin_versions(&self, tenant: &str) -> StoreResult<Vec<PluginVersion>>;
    /// The versions of one plugin, oldest first.
    fn plugin_versions(&self, tenant: &str, name: &str) -> StoreResult<Vec<PluginVersion>>;
    /// One version of a plugin, the newest when `version` is None, read
    /// without the others (every fire resolves its job's plugin).
    fn plugin_version(&self, tenant: &str, name: &str, version: Option<u32>) -> StoreResult<Option<PluginVersion>>;
    /// Deletes every version of a plugin and, in the same atomic write, the
    /// bytes and artifacts of the digests no version uses any more.
    fn delete_plugin(&self, tenant: &str, name: &str) -> StoreResult<DeletedPlugin>;
    /// Deletes the bytes and artifacts of every digest no version uses (left
    /// by a daemon from before they were deleted with their last version);
    /// returns those digests.
    fn collect_plugins(&self) -> StoreResult<Vec<String>>;
    /// The component bytes with this digest.
    fn plugin_bytes(&self, digest: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A compiled artifact for (digest, engine fingerprint).
    fn artifact(&self, digest: &str, engine: &str) -> StoreResult<Option<(Artifact, Vec<u8>)>>;
    /// Whether a compiled artifact for (digest, engine fingerprint) is kept,
    /// without reading it.
    fn has_artifact(&self, digest: &str, engine: &str) -> StoreResult<bool>;
    /// Stores a compiled artifact while a version still uses its digest;
    /// false (nothing written) when none does.
    fn put_artifact(&self, artifact: &Artifact, bytes: &[u8]) -> StoreResult<bool>;
    /// Every compiled code stored, with its size on disk.
    fn stored_artifacts(&self) -> StoreResult<Vec<StoredArtifact>>;
    /// Deletes the compiled code of `digest` for `engine`; the plugin's
    /// bytes stay, and it is compiled again when a run needs it.
    fn drop_artifact(&self, digest: &str, engine: &str) -> StoreResult<()>;
}

/// Jobs: their records and names, the due index of their next fires, the
/// fires that move them on and queue their runs, and what a run's end and a
/// start read of them.
pub trait JobStore: Send + Sync {
    /// Creates a job; fails with [`StoreError::NameTaken`] if the name is used.
    fn insert_job(&self, job: &Job) -> StoreResult<()> {
        self.insert_job_under_quota(job, None)
    }
    /// [`JobStore::insert_job`], refused with [`StoreError::QuotaExceeded`]
    /// when the tenant already has `max_jobs` jobs.
    fn insert_job_under_quota(&self, job: &Job, max_jobs: Option<u64>) -> StoreResult<()>;
    /// Replaces a job (same id), moving its name if it changed.
    fn update_job(&self, job: &Job) -> StoreResult<()> {
        self.update_job_withdrawing(job, &[])
    }
    /// [`JobStore::update_job`], deleting in the same atomic write the queued
    /// runs of fires recorded ahead of their instant that the change
    /// withdraws.
    fn update_job_withdrawing(&self, job: &Job, withdrawn: &[Run]) -> StoreResult<()>;
    /// A job by id.
    fn job(&self, tenant: &str, id: &str) -> StoreResult<Option<Job>>;
    /// Moves a job's count of failed runs in a row (`failed`: one more,
    /// else back to none) in one atomic step of its stored record, nothing
    /// else of it; the job as written and its count before, None when it is
    /// gone.
    fn count_outcome(&self, tenant: &str, id: &str, failed: bool) -> StoreResult<Option<(Job, u64)>>;
    /// Jobs by id, in the order of `keys`: one answer each (a job that
    /// cannot be decoded answers its own error), or the error that kept
    /// the store from answering at all. A remote store reads them in one
    /// round trip.
    fn jobs_by_id(&self, keys: &[JobKey]) -> StoreResult<Vec<StoreResult<Option<Job>>>> {
        Ok(keys.iter().map(|(tenant, id)| self.job(tenant, id)).collect())
    }
    /// What a finished run of a job needs of it (see [`JobHooks`]), read
    /// without decoding the whole job.
    fn job_hooks(&self, tenant: &str, id: &str) -> StoreResult<Option<JobHooks>>;
    /// A job's id by its name.
    fn job_id_by_name(&self, tenant: &str, name: &str) -> StoreResult<Option<String>>;
    /// The tenant's jobs, oldest first.
    fn list_jobs(&self, tenant: &str) -> StoreResult<Vec<Job>>;
    /// Deletes a job and its kv state (its runs stay); false if absent.
    fn delete_job(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        self.delete_job_withdrawing(tenant, id, &[])
    }
    /// [`JobStore::delete_job`], deleting in the same atomic write the queued
    /// runs of fires recorded ahead of their instant.
    fn delete_job_withdrawing(&self, tenant: &str, id: &str, withdrawn: &[Run]) -> StoreResult<bool>;

    /// Fires, atomically together: for each, writes the job (its new next
    /// fire and counters, moving its due-index entry; its count of failed
    /// runs stays the stored one, see [`JobStore::count_outcome`]) and the
    /// queued runs not recorded yet (a scheduled run's id is derived from
    /// (job, scheduled_at), so a fire recorded twice is found and skipped).
    /// A fire whose job changed or went since it was read is left out and
    /// answered [`StoreError::Conflict`]; the others are written. A fire of
    /// runs only (`Fire::runs_only`) writes no job and needs it to exist.
    /// Returns, per fire, the runs it inserted.
    fn record_fires(&self, fires: &[Fire]) -> StoreResult<Vec<StoreResult<Vec<Run>>>>;
    /// [`JobStore::record_fires`] of one fire.
    fn record_fire(&self, job: &Job, runs: &[Run]) -> StoreResult<Vec<Run>> {
        self.record_fire_of(job, runs, false)
    }
    /// The runs of a fire of `job` not recorded yet (a backfill), the job
    /// left as it is stored.
    fn record_fire_runs(&self, job: &Job, runs: &[Run]) -> StoreResult<Vec<Run>> {
        self.record_fire_of(job, runs, true)
    }
    /// [`JobStore::record_fire`], or [`JobStore::record_fire_runs`] when
    /// `runs_only`.
    fn record_fire_of(&self, job: &Job, runs: &[Run], runs_only: bool) -> StoreResult<Vec<Run>> {
        let fire = Fire {
            job: job.clone(),
            runs: runs.to_vec(),
            runs_only,
        };
        self.record_fires(std::slice::from_ref(&fire))?
            .pop()
            .unwrap_or_else(|| Ok(Vec::new()))
    }
    /// Due-index entries at or before `until`, earliest first.
    fn due_jobs(&self, until: DateTime<Utc>, limit: usize) -> StoreResult<Vec<DueJob>>;
    /// The earliest next fire of any enabled job after `after` (to the
    /// millisecond the index keeps).
    fn next_due_after(&self, after: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>>;
    /// Drops a due-index entry whose job went or cannot be fired.
    fn remove_due(&self, due: &DueJob) -> StoreResult<()>;
    /// Every job with `run_at_start`, of every tenant (read at start-up
    /// from an index, not by scanning all jobs).
    fn run_at_start_jobs(&self) -> StoreResult<Vec<Job>>;
}

/// Runs: the steps of their lives, their outputs and logs, listing, the
/// unfinished ones a start recovers, each tenant's run bytes and the
/// deletions of retention and quotas.
pub trait RunStore: Send + Sync {
    /// Writes steps of runs' lives in one atomic batch, in order (a later
    /// step of the same run wins). The executor's recorder writes many runs
    /// per call.
    fn write_runs(&self, writes: &[RunWrite<'_>]) -> StoreResult<()>;
    /// Writes a new run (queued) and its indexes.
    fn insert_run(&self, run: &Run) -> StoreResult<()> {
        self.write_runs(&[RunWrite::Queued(run)])
    }
    /// [`RunStore::insert_run`] within the tenant's `run_bytes` quota of
    /// `max_bytes`: when the run's record (with its input) would take the
    /// tenant's run history past it, the tenant's oldest finished runs are
    /// deleted first to make room, as retention would (in writes of their
    /// own); refused with [`StoreError::QuotaExceeded`] when they cannot
    /// make enough (queued and running runs are never deleted).
    fn insert_run_under_quota(&self, run: &Run, max_bytes: Option<u64>) -> StoreResult<()>;
    /// Rewrites a run's record: an unfinished one as it is, a finished one
    /// as [`RunStore::finish_run`] with no output or log.
    fn update_run(&self, run: &Run) -> StoreResult<()> {
        if run.status.is_finished() {
            return self.finish_run(run, &[], &[]);
        }
        self.write_runs(&[RunWrite::Updated(run)])
    }
    /// Writes a finished run with its output and log in one atomic step.
    fn finish_run(&self, run: &Run, output: &[u8], log: &[u8]) -> StoreResult<()> {
        self.write_runs(&[RunWrite::Finished {
            run,
            output,
            log,
            tape: &[],
            next: None,
        }])
    }
    /// A run by id.
    fn run(&self, tenant: &str, id: &str) -> StoreResult<Option<Run>>;
    /// A run's output.
    fn run_output(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A run's captured log.
    fn run_log(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A recorded run's tape.
    fn run_tape(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Runs matching `filter`, newest first.
    fn list_runs(&self, tenant: &str, filter: &RunFilter) -> StoreResult<Vec<Run>>;
    /// Every queued or running run of every tenant (for recovery at start).
    fn unfinished_runs(&self) -> StoreResult<Vec<Run>>;
    /// Deletes finished runs (record, output, log, indexes) that are older
    /// than `older_than` (by the time in their id: when they were queued or
    /// due) or beyond the newest `keep_per_job` of their job (0: no such
    /// cap); at most `max_deletions` in one call. Returns how many went.
    fn prune_runs(&self, older_than: DateTime<Utc>, keep_per_job: usize, max_deletions: usize) -> StoreResult<usize>;
    /// Deletes finished workflow runs started before `older_than` (by the
    /// time in their id), at most `max_deletions` in one call; their steps'
    /// runs go by [`RunStore::prune_runs`] like any run. Returns how many.
    fn prune_workflow_runs(&self, older_than: DateTime<Utc>, max_deletions: usize) -> StoreResult<usize>;
    /// Bytes of the tenant's run history: each run's record as queued (its
    /// input included) while it is unfinished, and once finished its whole
    /// record, output and log. Kept as runs are written and deleted, not
    /// counted on asking.
    fn run_bytes(&self, tenant: &str) -> StoreResult<u64>;
    /// Deletes the tenant's oldest finished runs (record, output, log,
    /// indexes) until its run bytes are at most `max_bytes`, at most
    /// `max_deletions` in one call. Returns how many went.
    fn trim_runs(&self, tenant: &str, max_bytes: u64, max_deletions: usize) -> StoreResult<usize>;
}

/// Each job's key-value state, counted per tenant for its `kv_bytes` quota.
pub trait KvStore: Send + Sync {
    /// A job's kv value.
    fn kv_get(&self, tenant: &str, job_id: &str, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Sets a job's kv value.
    fn kv_set(&self, tenant: &str, job_id: &str, key: &str, value: &[u8]) -> StoreResult<()> {
        self.kv_set_under_quota(tenant, job_id, key, value, None)
    }
    /// [`KvStore::kv_set`], refused with [`StoreError::QuotaExceeded`] when it
    /// would grow the tenant's kv state (keys and values of all its jobs)
    /// past `max_bytes`.
    fn kv_set_under_quota(
        &self,
        tenant: &str,
        job_id: &str,
        key: &str,
        value: &[u8],
        max_bytes: Option<u64>,
    ) -> StoreResult<()>;
    /// Bytes of the tenant's kv keys and values.
    fn kv_usage(&self, tenant: &str) -> StoreResult<u64>;
    /// Removes a job's kv value.
    fn kv_delete(&self, tenant: &str, job_id: &str, key: &str) -> StoreResult<()>;
    /// A job's kv keys with `prefix`, in order, at most `limit`.
    fn kv_keys(&self, tenant: &str, job_id: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>>;
}

/// Tenants and their API tokens.
pub trait TenantStore: Send + Sync {
    /// Creates a tenant with its first token; fails with
    /// [`StoreError::TenantExists`] if the name is taken.
    fn insert_tenant(&self, tenant: &Tenant, token: &Token) -> StoreResult<()>;
    /// Writes a tenant's record (its quotas changed; or the default tenant
    /// gets one).
    fn put_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    /// A tenant by name.
    fn tenant(&self, name: &str) -> StoreResult<Option<Tenant>>;
    /// Every tenant, by name.
    fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// Every tenant's name, the default tenant's included (it exists
    /// before any record of it does).
    fn tenant_names(&self) -> StoreResult<Vec<String>> {
        let mut names: Vec<String> = self.list_tenants()?.into_iter().map(|tenant| tenant.name).collect();
        if !names.iter().any(|name| name == crate::model::DEFAULT_TENANT) {
            names.push(crate::model::DEFAULT_TENANT.to_string());
        }
        Ok(names)
    }
    /// Adds a token.
    fn insert_token(&self, token: &Token) -> StoreResult<()>;
    /// The token whose secret hashes to `hash` (hex sha256).
    fn token_by_hash(&self, hash: &str) -> StoreResult<Option<Token>>;
    /// A tenant's tokens, oldest first (revoked ones included).
    fn list_tokens(&self, tenant: &str) -> StoreResult<Vec<Token>>;
    /// Marks a tenant's token revoked; None if it has no such token.
    fn revoke_token(&self, tenant: &str, id: &str, at: DateTime<Utc>) -> StoreResult<Option<Token>>;
}

/// Tenants' secrets, kept as the vault sealed them.
pub trait SecretStore: Send + Sync {
    /// Writes an encrypted secret (new or replacing).
    fn put_secret(&self, secret: &SecretRecord) -> StoreResult<()>;
    /// A tenant's secret by name.
    fn secret(&self, tenant: &str, name: &str) -> StoreResult<Option<SecretRecord>>;
    /// A tenant's secrets, by name.
    fn list_secrets(&self, tenant: &str) -> StoreResult<Vec<SecretRecord>>;
    /// Deletes a secret; false if absent.
    fn delete_secret(&self, tenant: &str, name: &str) -> StoreResult<bool>;
}

/// Workflows and their runs. A workflow run's record is written through
/// [`RunStore::write_runs`] ([`RunWrite::Workflow`]) beside the step runs
/// it starts and the step outcome that moved it on, in one atomic write.
pub trait WorkflowStore: Send + Sync {
    /// Writes a workflow (new or replacing the one of its name).
    fn put_workflow(&self, workflow: &Workflow) -> StoreResult<()>;
    /// A tenant's workflow by name.
    fn workflow(&self, tenant: &str, name: &str) -> StoreResult<Option<Workflow>>;
    /// A tenant's workflows, by name.
    fn list_workflows(&self, tenant: &str) -> StoreResult<Vec<Workflow>>;
    /// Every tenant's workflows.
    fn all_workflows(&self) -> StoreResult<Vec<Workflow>>;
    /// Deletes a workflow (its runs stay); false if absent.
    fn delete_workflow(&self, tenant: &str, name: &str) -> StoreResult<bool>;
    /// A tenant's workflow run by id.
    fn workflow_run(&self, tenant: &str, id: &str) -> StoreResult<Option<WorkflowRun>>;
    /// A tenant's workflow runs, newest first: only `workflow`'s when
    /// given, only those older than run id `before` when given.
    fn list_workflow_runs(
        &self,
        tenant: &str,
        workflow: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<WorkflowRun>>;
    /// Every tenant's workflow runs still running (what a start resumes).
    fn running_workflow_runs(&self) -> StoreResult<Vec<WorkflowRun>>;
    /// For a store other processes write too (a cluster's nodes): every
    /// workflow run not finished, whichever node drives it. None from a
    /// store only this process writes: the runs going are those this
    /// process holds.
    fn going_workflow_runs(&self) -> Option<StoreResult<Vec<WorkflowRun>>> {
        None
    }
    /// The join of a job with `after_jobs` (written through
    /// [`RunStore::write_runs`], [`RunWrite::Join`]).
    fn join(&self, tenant: &str, job_id: &str) -> StoreResult<Option<Join>>;
    /// For a store other processes write too (a cluster's nodes): moves a
    /// job's join on in one transaction that no other update of it
    /// interleaves with. `update` gets the join as stored (a new one if
    /// none) and answers the run its end fires, if any; the join and that
    /// run (unless already there, by its id) are written together, and
    /// the run is answered once written. None from a store only this
    /// process writes: the caller keeps the join and writes it with the
    /// run's outcome.
    fn update_join(
        &self,
        tenant: &str,
        job_id: &str,
        update: &mut (dyn FnMut(&mut Join) -> Option<Run> + Send),
    ) -> Option<StoreResult<Option<Run>>> {
        let _ = (tenant, job_id, update);
        None
    }
}

/// When writes become durable: each write is atomic; it is durable once a
/// flush begun after it has returned.
pub trait Durability: Send + Sync {
    /// Makes every write so far durable.
    fn flush(&self) -> StoreResult<()>;
    /// Makes every write so far durable without blocking a runtime thread.
    /// Callers within one durability window (`flush_interval`) share one
    /// flush (group commit).
    fn flush_async(&self) -> StoreFuture;
    /// Makes every write so far durable within the durability window,
    /// without waiting for it.
    fn flush_soon(&self);
}

/// A node of a cluster: as the nodes table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Its id (`--node-id`).
    pub id: String,
    /// Whether it holds the leader lease now.
    pub leader: bool,
    /// When it last renewed its lease.
    pub last_seen: DateTime<Utc>,
    /// Runs it was running then.
    pub running_runs: u32,
}

/// What a node took over from a dead one: its unfinished runs and the
/// workflow runs it drove, now the taker's.
#[derive(Debug, Clone, Default)]
pub struct TakenOver {
    /// The dead node.
    pub node: String,
    /// Its queued and running runs.
    pub runs: Vec<Run>,
    /// Its running workflow runs.
    pub workflow_runs: Vec<WorkflowRun>,
}

/// Runs a node asks the cluster to stop.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopRuns {
    /// One run, on the node that has it.
    Run {
        /// The node running it.
        node: String,
        /// Its tenant.
        tenant: String,
        /// The run.
        run: String,
    },
    /// Every running run of a job, on every node (overlap `replace`).
    Job {
        /// Its tenant.
        tenant: String,
        /// The job.
        job: String,
    },
    /// A workflow run, cancelled by the node that drives it.
    WorkflowRun {
        /// Its tenant.
        tenant: String,
        /// The workflow run.
        run: String,
    },
}

/// What another node of the cluster said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterNotice {
    /// A job was written: its next fire may be earlier than the leader
    /// knows.
    JobChanged,
    /// The leader gave its lease up: try for it now.
    LeaderResigned,
    /// A tenant's record was written: its quotas may have changed.
    TenantChanged,
    /// Runs were queued (or given back) for any node to claim; the
    /// earliest is due then, if told.
    RunsQueued(Option<DateTime<Utc>>),
    /// Events were appended to the cluster's event log.
    EventsAppended,
    /// Runs are to stop (cancelled through another node, or replaced).
    Stop(StopRuns),
    /// The scheduler was paused or resumed through a node.
    PauseChanged,
    /// This node listens (again): what was said before was missed.
    Listening,
}

/// The nodes of a cluster sharing one database: each node's lease, the
/// leader lease (one node plans fires and sweeps), and taking over a dead
/// node's runs. Times are the database's clock, never a node's.
pub trait ClusterStore: Send + Sync {
    /// This node's id.
    fn node_id(&self) -> &str;
    /// Registers this node with a lease of `ttl`; refused with
    /// [`StoreError::Locked`] while a live node has the same id.
    fn join_cluster(&self, ttl: std::time::Duration) -> StoreResult<()>;
    /// Renews this node's lease (and reports its running runs); false when
    /// its row is gone: the node was declared dead and its runs taken over.
    fn renew_node(&self, ttl: std::time::Duration, running_runs: usize) -> StoreResult<bool>;
    /// Takes the leader lease if nobody holds it, or renews it if this node
    /// does, for `ttl`; true while this node leads.
    fn lead(&self, ttl: std::time::Duration) -> StoreResult<bool>;
    /// Gives the leader lease up (if this node holds it) and tells the
    /// others at once.
    fn resign(&self) -> StoreResult<()>;
    /// Removes this node's row (a clean stop, once its runs are done).
    fn leave_cluster(&self) -> StoreResult<()>;
    /// Every node, by id.
    fn nodes(&self) -> StoreResult<Vec<NodeRecord>>;
    /// Pauses (or resumes) the cluster's scheduler and tells every node.
    fn set_paused(&self, paused: bool) -> StoreResult<()>;
    /// Whether the cluster's scheduler is paused.
    fn paused(&self) -> StoreResult<bool>;
    /// Hears the other nodes from now on, telling `on` of each notice.
    fn listen(&self, on: std::sync::Arc<dyn Fn(ClusterNotice) + Send + Sync>);
    /// Takes over every node whose lease ran out (and every owner of
    /// unfinished work that has no row: it left): in one transaction each,
    /// its row goes, its runs not started go back to the queue, and its
    /// running runs and running workflow runs become this node's.
    fn take_over_dead_nodes(&self) -> StoreResult<Vec<TakenOver>>;
}

/// A job, as (tenant, job id).
pub type JobKey = (String, String);

/// The queue of a cluster, kept in its database: a queued run is no
/// node's until one claims it, and whoever looks at how busy a job or a
/// tenant is counts every node's runs. Only a shared store (PostgreSQL)
/// has one.
pub trait RunClaims: Send + Sync {
    /// Claims for this node up to `max` queued runs due by `now` that no
    /// node has, best first (priority, then due time, then the job's age),
    /// skipping rows another transaction holds. A tenant's runs are
    /// claimed only while the runs nodes have of it stay under its limit
    /// in `limits` (its `concurrent_runs`), an exclusive run only while no
    /// other run of its job is with a node. The claimed runs, and whether
    /// more may be claimable now.
    fn claim_runs(
        &self,
        max: usize,
        now: DateTime<Utc>,
        limits: &HashMap<String, usize>,
    ) -> StoreResult<(Vec<Run>, bool)>;
    /// The runs of fires recorded ahead of their instant (trigger
    /// `schedule`, queued before it) that no node has (none claims a run
    /// before it is due): of one job (`tenant` and `job_id`), of a tenant,
    /// or all; only those not due by `not_due_at` if given.
    fn ahead_runs(
        &self,
        tenant: Option<&str>,
        job_id: Option<&str>,
        not_due_at: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<Run>>;
    /// Claims one queued run no node has, to end it here (a cancel); false
    /// when it is not such a run.
    fn claim_run(&self, tenant: &str, id: &str) -> StoreResult<bool>;
    /// Gives runs this node claimed and has not started back to the queue.
    fn release_runs(&self, runs: &[JobKey]) -> StoreResult<()>;
    /// Waiting and running runs of each of `jobs`, on every node (a run a
    /// node has claimed counts as running).
    fn job_activities(&self, jobs: &[JobKey]) -> StoreResult<HashMap<JobKey, Activity>>;
    /// A tenant's runs not started yet, on every node.
    fn waiting_runs(&self, tenant: &str) -> StoreResult<usize>;
    /// Asks the node (or nodes) running them to stop runs; they end
    /// `cancelled` there.
    fn stop_runs(&self, stop: &StopRuns) -> StoreResult<()>;
}

/// An event as the cluster's event log keeps it: its data as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id, one sequence for the whole cluster.
    pub id: u64,
    /// The tenant it belongs to.
    pub tenant: String,
    /// `run.finished`, `job.created`...
    pub kind: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Its data, JSON.
    pub data: Vec<u8>,
}

/// Every node's events, in one log in the cluster's database, so a stream
/// on any node carries them all. Only a shared store (PostgreSQL) has one.
pub trait EventLog: Send + Sync {
    /// Appends events (their ids are ignored) in order, tells the other
    /// nodes, and returns the ids given; the ids of appends commit in order.
    fn append_events(&self, events: &[StoredEvent]) -> StoreResult<Vec<u64>>;
    /// Up to `limit` events after id `after`, oldest first: of one tenant,
    /// or of all.
    fn events_after(&self, tenant: Option<&str>, after: u64, limit: usize) -> StoreResult<Vec<StoredEvent>>;
    /// The newest `limit` events of a tenant after id `after`, oldest
    /// first (a stream resuming).
    fn newest_events_after(&self, tenant: &str, after: u64, limit: usize) -> StoreResult<Vec<StoredEvent>>;
    /// The newest event's id (0: none).
    fn last_event_id(&self) -> StoreResult<u64>;
    /// Deletes all but the newest `keep` events; how many went.
    fn prune_events(&self, keep: u64) -> StoreResult<usize>;
}

/// Everything sandcron keeps: every subject together. Any type that
/// implements them all is a [`Store`], so a backend implements the
/// subjects; a caller that needs one subject can take it alone
/// (`&dyn TenantStore`, `Arc<dyn RunStore>`: a `dyn Store` coerces to it).
pub trait Store:
    PluginStore
    + JobStore
    + RunStore
    + KvStore
    + TenantStore
    + SecretStore
    + WorkflowStore
    + Durability
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: PluginStore
        + JobStore
        + RunStore
        + KvStore
        + TenantStore
        + SecretStore
        + WorkflowStore
        + Durability
        + Send
        + Sync
        + 'static
{
}
