//! The executor: turns durable `queued` runs into sandboxed executions
//! under a global concurrency limit, and writes each outcome (record,
//! output, log) in one atomic, flushed step before anyone is told.
//!
//! Durability per run, three flushes: the queued record before the API
//! answers; the `running` mark before the instance starts (so a crash
//! mid-run is found `running` and fails with `host_restart`, see
//! [`Executor::recover`]); the finished record with its output, log and the
//! plugin's kv writes before waiters are woken.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, oneshot};

use crate::model::job::input_bytes;
use crate::model::run::RunLimits;
use crate::model::{ErrorKind, Job, Run, RunError, RunStatus, Trigger};
use crate::plugin::{PluginError, Plugins};
use crate::sandbox::{Capabilities, KeyValue, RunContext, RunRequest, Sandbox};
use crate::store::{Store, StoreError};

/// Why a run could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The job's plugin cannot be resolved.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs queued runs.
pub struct Executor {
    store: Arc<dyn Store>,
    sandbox: Arc<Sandbox>,
    plugins: Arc<Plugins>,
    slots: Arc<Semaphore>,
    running: AtomicUsize,
    log_cap: u64,
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<Run>>>>,
}

/// Counts a run as running for as long as it lives (panics included).
struct RunningGuard<'a>(&'a AtomicUsize);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A job's kv state over the store, scoped to tenant and job.
struct StoreKeyValue {
    store: Arc<dyn Store>,
    tenant: String,
    job_id: String,
}

impl KeyValue for StoreKeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.store
            .kv_get(&self.tenant, &self.job_id, key)
            .map_err(|error| error.to_string())
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.store
            .kv_set(&self.tenant, &self.job_id, key, value)
            .map_err(|error| error.to_string())
    }
    fn delete(&self, key: &str) -> Result<(), String> {
        self.store
            .kv_delete(&self.tenant, &self.job_id, key)
            .map_err(|error| error.to_string())
    }
    fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, String> {
        self.store
            .kv_keys(&self.tenant, &self.job_id, prefix, limit)
            .map_err(|error| error.to_string())
    }
}

impl Executor {
    /// An executor running at most `max_concurrent_runs` at once.
    pub fn new(
        store: Arc<dyn Store>,
        sandbox: Arc<Sandbox>,
        plugins: Arc<Plugins>,
        max_concurrent_runs: usize,
        log_cap: u64,
    ) -> Arc<Executor> {
        Arc::new(Executor {
            store,
            sandbox,
            plugins,
            slots: Arc::new(Semaphore::new(max_concurrent_runs)),
            running: AtomicUsize::new(0),
            log_cap,
            waiters: Mutex::new(HashMap::new()),
        })
    }

    /// Writes a durable queued run of `job` and starts it. `input` replaces
    /// the job's input for this run.
    pub async fn queue(
        self: &Arc<Self>,
        job: &Job,
        trigger: Trigger,
        scheduled_at: DateTime<Utc>,
        input: Option<&serde_json::Value>,
    ) -> Result<Run, ExecError> {
        let plugin = self.plugins.resolve(&job.tenant, &job.plugin)?;
        let now = Utc::now();
        let run = Run {
            id: crate::model::new_id(),
            tenant: job.tenant.clone(),
            job_id: job.id.clone(),
            job_name: job.name.clone(),
            plugin: plugin.reference(),
            plugin_digest: plugin.digest,
            trigger,
            attempt: 1,
            status: RunStatus::Queued,
            error: None,
            scheduled_at,
            queued_at: now,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            lateness_ms: None,
            fuel_consumed: None,
            peak_memory: None,
            output_size: 0,
            log_size: 0,
            input: input.map_or_else(|| job.input_bytes(), input_bytes),
            limits: RunLimits {
                fuel: job.limits.fuel,
                timeout_ms: job.limits.timeout.as_millis() as u64,
                memory: job.limits.memory,
                output: job.limits.output,
                logs: self.log_cap,
            },
        };
        self.store.insert_run(&run)?;
        self.store.flush_async().await?;
        tracing::debug!(run_id = %run.id, job_id = %run.job_id, "run queued");
        self.dispatch(run.clone());
        Ok(run)
    }

    /// Starts a queued run as soon as a slot is free. After
    /// [`Executor::shutdown`] it stays queued (durably) for the next start.
    pub fn dispatch(self: &Arc<Self>, run: Run) {
        let executor = self.clone();
        tokio::spawn(async move {
            let Ok(_slot) = executor.slots.clone().acquire_owned().await else {
                return;
            };
            executor.running.fetch_add(1, Ordering::SeqCst);
            let _running = RunningGuard(&executor.running);
            executor.execute(run).await;
        });
    }

    /// Runs executing now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Stops starting runs and waits up to `grace` for the running ones to
    /// finish. Runs still going after that are left `running` in the store
    /// and fail with `host_restart` at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        // Closing wakes every dispatch waiting for a slot; they leave their
        // runs queued. Permits held by running runs are not revoked.
        let in_flight = self.running();
        self.slots.close();
        if in_flight > 0 {
            tracing::info!(
                running = in_flight,
                grace_ms = grace.as_millis() as u64,
                "waiting for running runs"
            );
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.running();
        if left > 0 {
            tracing::warn!(
                running = left,
                "stopping with runs still running; they fail with host_restart at the next start"
            );
        }
    }

    async fn execute(&self, mut run: Run) {
        let started_at = Utc::now();
        run.status = RunStatus::Running;
        run.started_at = Some(started_at);
        run.lateness_ms = Some((started_at - run.scheduled_at).num_milliseconds());
        let marked = match self.store.update_run(&run) {
            Ok(()) => self.store.flush_async().await,
            Err(error) => Err(error),
        };
        if let Err(error) = marked {
            tracing::error!(run_id = %run.id, %error, "cannot mark the run running");
        }
        let (output, log) = match self.plugins.prepared(&run.plugin_digest).await {
            Ok(prepared) => {
                let request = self.request(&run);
                let sandbox = self.sandbox.clone();
                // Its own task, so a panic in a host import fails this run
                // and nothing else.
                let outcome = tokio::spawn(async move { sandbox.run(&prepared, request).await }).await;
                match outcome {
                    Ok(outcome) => {
                        run.fuel_consumed = Some(outcome.fuel_consumed);
                        run.peak_memory = Some(outcome.peak_memory);
                        match outcome.result {
                            Ok(output) => {
                                run.finish(RunStatus::Succeeded, None, Utc::now());
                                (output, outcome.log)
                            }
                            Err(error) => {
                                run.finish(RunStatus::Failed, Some(error), Utc::now());
                                (Vec::new(), outcome.log)
                            }
                        }
                    }
                    Err(join_error) => {
                        let error = RunError {
                            kind: ErrorKind::Trap,
                            message: format!("the host failed while running the plugin: {join_error}"),
                        };
                        run.finish(RunStatus::Failed, Some(error), Utc::now());
                        (Vec::new(), Vec::new())
                    }
                }
            }
            Err(error) => {
                let error = RunError {
                    kind: ErrorKind::PluginUnavailable,
                    message: error.to_string(),
                };
                run.finish(RunStatus::Failed, Some(error), Utc::now());
                (Vec::new(), Vec::new())
            }
        };
        run.output_size = output.len() as u64;
        run.log_size = log.len() as u64;
        self.finish(run, &output, &log).await;
    }

    fn request(&self, run: &Run) -> RunRequest {
        RunRequest {
            context: RunContext {
                tenant: run.tenant.clone(),
                job_id: run.job_id.clone(),
                job_name: run.job_name.clone(),
                run_id: run.id.clone(),
                attempt: run.attempt,
                trigger: run.trigger,
                scheduled_at_ms: run.scheduled_at.timestamp_millis(),
            },
            input: run.input.clone(),
            limits: run.limits,
            capabilities: Capabilities {
                kv: Arc::new(StoreKeyValue {
                    store: self.store.clone(),
                    tenant: run.tenant.clone(),
                    job_id: run.job_id.clone(),
                }),
                http_allow: self
                    .store
                    .job(&run.tenant, &run.job_id)
                    .ok()
                    .flatten()
                    .map(|job| job.http_allow)
                    .unwrap_or_default(),
            },
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    async fn finish(&self, run: Run, output: &[u8], log: &[u8]) {
        let write = match self.store.finish_run(&run, output, log) {
            Ok(()) => self.store.flush_async().await,
            Err(error) => Err(error),
        };
        if let Err(error) = write {
            tracing::error!(run_id = %run.id, %error, "cannot record the finished run");
        }
        match &run.error {
            None => {
                tracing::info!(run_id = %run.id, job_id = %run.job_id, status = run.status.as_str(), duration_ms = run.duration_ms, "run finished")
            }
            Some(error) => {
                tracing::info!(run_id = %run.id, job_id = %run.job_id, status = run.status.as_str(), kind = error.kind.as_str(), "run finished")
            }
        }
        let waiters = self
            .waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&run.id)
            .unwrap_or_default();
        for waiter in waiters {
            let _ = waiter.send(run.clone());
        }
    }

    /// Waits up to `timeout` for a run to finish; returns its latest record.
    pub async fn wait(&self, tenant: &str, run_id: &str, timeout: Duration) -> Result<Option<Run>, StoreError> {
        let (sender, receiver) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(run_id.to_string())
            .or_default()
            .push(sender);
        // Registered first, then checked: a finish in between is not missed.
        let current = self.store.run(tenant, run_id)?;
        if current.as_ref().is_none_or(|run| run.status.is_finished()) {
            return Ok(current);
        }
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(run)) => Ok(Some(run)),
            _ => self.store.run(tenant, run_id),
        }
    }

    /// After a start: queued runs are started again; runs that were running
    /// when the daemon stopped fail with `host_restart`.
    pub async fn recover(self: &Arc<Self>) -> Result<(), StoreError> {
        for mut run in self.store.unfinished_runs()? {
            match run.status {
                RunStatus::Running => {
                    let error = RunError {
                        kind: ErrorKind::HostRestart,
                        message: "the daemon stopped while this run was running".to_string(),
                    };
                    run.finish(RunStatus::Failed, Some(error), Utc::now());
                    tracing::warn!(run_id = %run.id, "run interrupted by a restart");
                    self.finish(run, &[], &[]).await;
                }
                _ => {
                    tracing::info!(run_id = %run.id, "resuming a queued run");
                    self.dispatch(run);
                }
            }
        }
        Ok(())
    }
}
