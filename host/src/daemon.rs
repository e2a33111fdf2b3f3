//! `sandcron serve`: opens the data directory, wires store -> plugins ->
//! scheduler -> executor -> API, recovers unfinished runs and serves until
//! SIGINT/SIGTERM, or until storage that failed (a full disk) can take
//! writes again: then it exits with [`STORAGE_RECOVERED_EXIT_CODE`] for its
//! supervisor to start it again, since sled only recovers by reopening.
//! On PostgreSQL the daemon is a node of the cluster of its database (see
//! `cluster`): it joins before it recovers, and leads or follows.

mod storage;

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::api::{AppParts, AppState, router};
use crate::auth::Auth;
use crate::clock::{Clock, SystemClock};
use crate::cluster::{Cluster, Hooks, Leadership};
use crate::config::Config;
use crate::events::{BUFFERED_EVENTS, EventBus};
use crate::executor::{Capacity, Executor, Observers};
use crate::failures::FailureWatch;
use crate::grant::Granter;
use crate::jobs::{Jobs, JobsParts};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::model::run::RunEnded;
use crate::notify::Notifier;
use crate::outbound::Outbound;
use crate::plugin::{PluginLimits, Plugins};
use crate::relay::Relay;
use crate::retention;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::scheduler::{self, Scheduler};
use crate::server;
use crate::store::health::StorageHealth;
use crate::store::{StopRuns, Store, StoreError, watchdog};
use crate::summary::Summaries;
use crate::sync::Coalesced;
use crate::tenancy::Tenants;
use crate::vault::Vault;
use crate::workflows::{Workflows, WorkflowsParts};

/// Pool slots per allowed concurrent run: runs in flight plus a margin for
/// instances being torn down while new ones start.
const POOL_SLOTS_PER_RUN: u32 = 2;

/// The exit code of a daemon whose storage failed (a full disk, an I/O
/// error) and can take writes again: sled stays failed after an I/O error
/// until the database is reopened, so the daemon exits for its supervisor
/// (systemd `Restart=on-failure`) to start it again; the restart reopens the
/// database and recovers its log. 75 is `EX_TEMPFAIL`: try again.
pub const STORAGE_RECOVERED_EXIT_CODE: u8 = 75;

/// The parts of a running daemon, before it listens.
pub struct Daemon {
    /// The storage.
    pub store: Arc<dyn Store>,
    /// Whether the storage works (shown by `/healthz` and the metrics).
    pub storage: Arc<StorageHealth>,
    /// Sends webhooks.
    pub notifier: Arc<Notifier>,
    /// Sends tenants' digests.
    pub digests: Arc<Summaries>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Run and job events.
    pub events: Arc<EventBus>,
    /// The tenants' quotas and caps.
    pub tenants: Arc<Tenants>,
    /// Seals and opens secrets.
    pub vault: Arc<Vault>,
    /// The sandbox.
    pub sandbox: Arc<Sandbox>,
    /// The plugin registry.
    pub plugins: Arc<Plugins>,
    /// The executor.
    pub executor: Arc<Executor>,
    /// The scheduler.
    pub scheduler: Arc<Scheduler>,
    /// Job writes.
    pub jobs: Arc<Jobs>,
    /// Workflows and their runs.
    pub workflows: Arc<Workflows>,
    /// This node in the cluster of its database (PostgreSQL only).
    pub cluster: Option<Arc<Cluster>>,
    /// Every node's events for this node's streams (PostgreSQL only).
    pub relay: Option<Arc<Relay>>,
    /// Whether this node leads (always, on sled).
    pub leadership: Arc<Leadership>,
    /// This node's id.
    pub node_id: String,
    /// What acts on runs failing and succeeding again, and the ends it
    /// hears, until [`Daemon::start`] starts it.
    failures: std::sync::Mutex<Option<(Arc<FailureWatch>, UnboundedReceiver<RunEnded>)>>,
}

/// Builds the engine for a configuration.
pub fn sandbox_for(config: &Config) -> anyhow::Result<Sandbox> {
    let slots = u32::try_from(config.max_concurrent_runs).unwrap_or(u32::MAX / 4);
    Sandbox::new(&SandboxConfig {
        max_memory: config.jobs.max_memory,
        pool_instances: config
            .pool_size
            .unwrap_or_else(|| slots.saturating_mul(POOL_SLOTS_PER_RUN).max(4)),
        core_instances_per_slot: config.pool_core_instances,
    })
}

impl Daemon {
    /// Opens the data directory and builds every part (nothing runs yet).
    pub fn open(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Daemon> {
        crate::permissions::create_private_dir(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        let storage = Arc::new(StorageHealth::new());
        let storage::Opened {
            store,
            cluster,
            node_id,
            claims,
            event_log,
        } = storage::open_store(config, &storage)?;
        let leadership = cluster
            .as_ref()
            .map_or_else(Leadership::single, |cluster| cluster.leadership());
        let sandbox = Arc::new(sandbox_for(config)?);
        let metrics = Arc::new(Metrics::new());
        metrics.watch_storage(storage.clone(), config.data_dir.clone());
        let plugins = Arc::new(Plugins::new(
            store.clone(),
            sandbox.clone(),
            metrics.clone(),
            PluginLimits {
                max_bytes: config.max_plugin_bytes,
                concurrent_compiles: config.max_concurrent_compiles,
                cache_bytes: config.plugin_cache_bytes,
                artifact_bytes: config.artifact_cache_bytes,
            },
        ));
        plugins.collect().context("collecting unused plugin code")?;
        let tenants = Arc::new(Tenants::load(store.as_ref()).context("reading the tenants")?);
        let events = Arc::new(EventBus::new(BUFFERED_EVENTS, clock.now()));
        let relay = event_log.map(|log| Relay::new(log, &events));
        let vault = Arc::new(Vault::for_config(config)?);
        let outbound = Arc::new(
            Outbound::new(config.http_allow_private.clone(), config.http_resolve.clone())
                .context("building the HTTP client")?,
        );
        let mailer = match &config.smtp_url {
            Some(url) => Some(Arc::new(Mailer::new(url, &config.smtp_from)?)),
            None => None,
        };
        let digests = Arc::new(Summaries::new(
            store.clone(),
            tenants.clone(),
            mailer.clone(),
            clock.clone(),
        ));
        let notifier = Arc::new(Notifier::new(
            store.clone(),
            tenants.clone(),
            outbound.clone(),
            vault.clone(),
            mailer.clone(),
        ));
        let granter = Granter::new(store.clone(), tenants.clone(), outbound, vault.clone());
        // Runs' ends, from the executor to the scheduler.
        let (ended_sender, ended) = tokio::sync::mpsc::unbounded_channel();
        let executor = Executor::new(
            store.clone(),
            sandbox.clone(),
            plugins.clone(),
            clock.clone(),
            Capacity {
                runs: config.max_concurrent_runs,
                log_bytes: config.jobs.logs,
                record_bytes: config.jobs.record_bytes,
                mark_running_after: config.flush_interval,
                node: cluster.as_ref().map(|cluster| cluster.node_id().to_string()),
                claims,
            },
            granter,
            Observers {
                events: events.clone(),
                metrics: metrics.clone(),
                ended: ended_sender,
            },
        );
        let workflows = Workflows::new(WorkflowsParts {
            store: store.clone(),
            executor: executor.clone(),
            plugins: plugins.clone(),
            clock: clock.clone(),
            events: events.clone(),
            metrics: metrics.clone(),
            max_input_bytes: config.jobs.max_input_bytes,
            run_log_bytes: config.jobs.logs,
        });
        executor.chain(workflows.clone());
        // The last attempts' ends, from the scheduler to the failure watch.
        let (outcomes_sender, outcomes) = tokio::sync::mpsc::unbounded_channel();
        let scheduler = Scheduler::new(scheduler::Parts {
            store: store.clone(),
            sink: executor.clone(),
            plugins: plugins.clone(),
            run_log_bytes: config.jobs.logs,
            clock: clock.clone(),
            fire_ahead: config.fire_ahead,
            ended,
            leadership: leadership.clone(),
            outcomes: Some(outcomes_sender),
        });
        let jobs = Arc::new(Jobs::new(JobsParts {
            store: store.clone(),
            scheduler: scheduler.clone(),
            tenants: tenants.clone(),
            plugins: plugins.clone(),
            events: events.clone(),
            metrics: metrics.clone(),
            defaults: config.job_defaults(),
            clock,
            workflows: workflows.clone(),
        }));
        let failures = Arc::new(FailureWatch {
            store: store.clone(),
            scheduler: scheduler.clone(),
            jobs: jobs.clone(),
            executor: executor.clone(),
            events: events.clone(),
        });
        Ok(Daemon {
            failures: std::sync::Mutex::new(Some((failures, outcomes))),
            store,
            storage,
            digests,
            notifier,
            metrics,
            events,
            tenants,
            vault,
            sandbox,
            plugins,
            executor,
            scheduler,
            jobs,
            workflows,
            cluster,
            relay,
            leadership,
            node_id,
        })
    }

    /// The parts the API answers from, with the token check and settings.
    pub fn into_app_parts(self, auth: Auth, config: Config) -> AppParts {
        AppParts {
            store: self.store,
            storage: self.storage,
            digests: self.digests,
            metrics: self.metrics,
            events: self.events,
            tenants: self.tenants,
            vault: self.vault,
            plugins: self.plugins,
            executor: self.executor,
            scheduler: self.scheduler,
            jobs: self.jobs,
            workflows: self.workflows,
            cluster: self.cluster,
            relay: self.relay,
            node_id: self.node_id,
            auth,
            config,
        }
    }

    /// Recovers unfinished runs, then starts the executor and the scheduler
    /// and fires the `run_at_start` jobs.
    pub async fn start(&self) -> anyhow::Result<()> {
        // Recovery records outcomes through the recorder.
        self.executor.start_recording().context("starting the run recorder")?;
        // Workflow runs first: the recovered runs' outcomes move them on.
        tolerate_failing_storage(self.workflows.recover()).context("resuming workflow runs")?;
        tolerate_failing_storage(self.executor.recover().await).context("recovering unfinished runs")?;
        // One daemon plans the fires its last life recorded ahead again, so
        // one whose instant passed while it was down follows its job's
        // misfire policy; so does a node of a cluster that starts alone
        // (the cluster was down). A node that starts beside others does
        // not: the leader may be firing those jobs this moment, and a job's
        // next fire moved back under it would be overwritten by its pass
        // (their fires lost). Those runs run, late if their instant passed,
        // as runs taken over from a dead node do.
        let alone = match &self.cluster {
            Some(cluster) => cluster.alone().context("reading the cluster's nodes")?,
            None => true,
        };
        if alone {
            tolerate_failing_storage(self.scheduler.take_back_recorded_ahead().await)
                .context("planning fires recorded ahead again")?;
        }
        self.notifier.clone().start(&self.events);
        if let Some((failures, ends)) = crate::sync::lock(&self.failures).take() {
            failures.start(ends);
        }
        if let Some(relay) = &self.relay {
            relay.start();
        }
        self.digests.clone().start(self.leadership.clone());
        self.executor.start();
        if let Some(cluster) = &self.cluster {
            // Paused through a node before this one started: it is too.
            self.scheduler
                .hold(cluster.paused().context("reading whether the scheduler is paused")?);
            // A node that can lead does before its first pass.
            cluster.try_to_lead();
            cluster.start(self.cluster_hooks());
        }
        self.scheduler.start();
        self.workflows.start_schedule(self.leadership.clone());
        // A cluster's run_at_start jobs run when its leader starts.
        if self.leadership.is_leader() {
            let fired = tolerate_failing_storage(self.scheduler.fire_run_at_start_jobs().await)
                .context("firing run_at_start jobs")?;
            if fired > 0 {
                tracing::info!(runs = fired, "queued run_at_start jobs");
            }
        }
        Ok(())
    }

    /// What the cluster asks of this node: its running runs, and resuming
    /// a dead node's runs and workflow runs here.
    fn cluster_hooks(&self) -> Hooks {
        let executor = self.executor.clone();
        let (running, claimer) = (self.executor.clone(), self.executor.clone());
        let relay = self.relay.clone();
        let (stopper, canceller) = (self.executor.clone(), self.workflows.clone());
        // Notices are heard off this runtime.
        let runtime = tokio::runtime::Handle::current();
        let (paused_scheduler, pause_cluster) = (self.scheduler.clone(), self.cluster.clone());
        let workflows = self.workflows.clone();
        let (scheduler, after_jobs) = (self.scheduler.clone(), self.workflows.clone());
        let (tenants, store) = (self.tenants.clone(), self.store.clone());
        // Reading every job or tenant again is store work, off the runtime
        // and one pass at a time however many writes the others notify
        // (10,000 jobs created through one node are 10,000 notices).
        let reindex = {
            let after_jobs = after_jobs.clone();
            Coalesced::new(move || after_jobs.reindex_after_jobs())
        };
        let reload = Coalesced::new(move || {
            if let Err(error) = tenants.reload(store.as_ref()) {
                tracing::warn!(%error, "cannot read the tenants again");
            }
        });
        Hooks {
            running_runs: Box::new(move || running.running()),
            job_changed: Arc::new(move || {
                scheduler.job_changed();
                after_jobs.schedule_changed();
                reindex.ask();
            }),
            tenant_changed: Arc::new(move || reload.ask()),
            runs_queued: Arc::new(move |due| claimer.claim_by(due)),
            stop_runs: Arc::new(move |stop| match stop {
                StopRuns::WorkflowRun { tenant, run } => {
                    let canceller = canceller.clone();
                    runtime.spawn(async move { canceller.cancel_asked(&tenant, &run).await });
                }
                stop => stopper.stop_here(&stop),
            }),
            pause_changed: Arc::new(move || {
                let (scheduler, cluster) = (paused_scheduler.clone(), pause_cluster.clone());
                tokio::task::spawn_blocking(move || match cluster.as_ref().map(|cluster| cluster.paused()) {
                    Some(Ok(paused)) => scheduler.hold(paused),
                    Some(Err(error)) => tracing::warn!(%error, "cannot read whether the scheduler is paused"),
                    None => {}
                });
            }),
            events_appended: Arc::new(move || {
                if let Some(relay) = &relay {
                    relay.appended();
                }
            }),
            take_over: Box::new(move |over| {
                let (executor, workflows) = (executor.clone(), workflows.clone());
                Box::pin(async move {
                    // Workflow runs first: the runs' outcomes move them on.
                    workflows.resume(over.workflow_runs);
                    executor.take_over(&over.node, over.runs).await;
                })
            }),
        }
    }
}

/// A start-up step that failed because the storage is failing (a daemon
/// started on a full disk) does not stop the start: the daemon serves reads
/// and `/healthz` 503 meanwhile, and restarts once the volume can take
/// writes, when the step is done again. Exiting instead would have the
/// supervisor restart it in a tight loop for as long as the disk is full.
fn tolerate_failing_storage<T: Default>(step: Result<T, StoreError>) -> Result<T, StoreError> {
    match step {
        Err(error) if error.fault().is_some() => {
            tracing::debug!(%error, "a start-up step is left for the restart after the storage recovers");
            Ok(T::default())
        }
        other => other,
    }
}

/// mimalloc's option number for its purge delay (`mi_option_purge_delay`
/// in mimalloc.h, the same in v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc's option number for the full pages each thread keeps among
/// those it allocates from, per size class (`mi_option_page_full_retain`
/// in mimalloc v3's mimalloc.h, the version the `mimalloc` crate builds).
const MI_OPTION_PAGE_FULL_RETAIN: libmimalloc_sys::mi_option_t = 36;

/// Sets up the allocator; call first thing in `main`. The daemon allocates
/// with mimalloc (the crate's global allocator): under glibc's malloc the
/// runtime's, sled's and the recorder's threads queued on its arena locks,
/// and durable throughput was ~40 % lower (docs/benchmarks.md). Freed memory
/// goes back to the system at once instead of after mimalloc's default
/// second: with 10,000 cron jobs the daemon held 54-55 MiB instead of
/// 61-63. No thread keeps full pages among those it allocates from (the
/// default keeps two per size class): sled's pages are allocated and freed
/// by two dozen threads (the runtime's, its blocking pool, sled's, the
/// recorder), and under 200 every-second jobs the daemon held 87.7 and
/// 89.4 MiB instead of 104.5 and 96.9 (medians of two soaks' minutes 4-8,
/// alternating), at the same CPU. `MIMALLOC_PURGE_DELAY`
/// (milliseconds) and `MIMALLOC_PAGE_FULL_RETAIN`, when set, win.
pub fn tune_allocator() {
    for (variable, option) in [
        ("MIMALLOC_PURGE_DELAY", MI_OPTION_PURGE_DELAY),
        ("MIMALLOC_PAGE_FULL_RETAIN", MI_OPTION_PAGE_FULL_RETAIN),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: mi_option_set only stores a tunable mimalloc reads
            // when it next purges or sets up a thread; it touches no
            // allocation.
            unsafe {
                libmimalloc_sys::mi_option_set(option, 0);
            }
        }
    }
}

/// Runs the daemon until a shutdown signal, or until failed storage can
/// take writes again: then the process exits with
/// [`STORAGE_RECOVERED_EXIT_CODE`].
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Before anything is created: the database's files must be the
    // daemon user's alone, like the directory holding them.
    crate::permissions::restrict_new_files();
    let daemon = Daemon::open(&config, Arc::new(SystemClock))?;
    let auth = Auth::for_config(&config)
        .with_context(|| format!("reading the admin token {}", config.admin_token_path().display()))?;
    daemon.start().await?;
    let policy = retention::Policy {
        retention: config.retention,
        max_runs_per_job: config.max_runs_per_job,
    };
    retention::start(
        daemon.store.clone(),
        Arc::new(SystemClock),
        policy,
        daemon.tenants.clone(),
        daemon.leadership.clone(),
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(data_dir = %config.data_dir.display(), "listening on http://{address}");
    let (store, executor, scheduler) = (daemon.store.clone(), daemon.executor.clone(), daemon.scheduler.clone());
    let cluster = daemon.cluster.clone();
    let recovered = watchdog::recovered(daemon.storage.clone(), config.data_dir.clone(), config.storage_min_free);
    let grace = config.shutdown_grace;
    let mut limits = config.http.clone();
    limits.max_connections = server::fit_connection_cap(limits.max_connections);
    let metrics = daemon.metrics.clone();
    let app = router(AppState::new(daemon.into_app_parts(auth, config)));
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let mut server = tokio::spawn(server::serve(listener, app, limits, metrics, async move {
        stopped.notified().await
    }));
    tokio::select! {
        served = &mut server => {
            served.context("the HTTP server task failed")?;
        }
        () = shutdown_signal() => {
            // Stop firing and accepting connections, let running runs finish
            // within the grace period, then give answers in flight a moment.
            // A leader gives its lease up first: another node fires meanwhile.
            scheduler.stop();
            if let Some(cluster) = &cluster {
                cluster.resign();
            }
            stop.notify_one();
            executor.shutdown(grace).await;
            // The runs that ended meanwhile: `after` jobs' next fires.
            scheduler.drain_ended().await;
            if let Some(cluster) = &cluster {
                cluster.leave();
            }
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), server).await;
        }
        () = recovered => {
            // Nothing can be written before the database is reopened, so
            // running runs are not waited for: their outcomes could not be
            // recorded, and the restart finds them queued or running as the
            // disk last saw them and handles them like after a crash.
            scheduler.stop();
            stop.notify_one();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), server).await;
            tracing::warn!(
                exit_code = STORAGE_RECOVERED_EXIT_CODE,
                "exiting so the supervisor restarts the daemon and the database is reopened"
            );
            exit_keeping_the_store(STORAGE_RECOVERED_EXIT_CODE);
        }
    }
    if let Err(error) = store.flush() {
        if error.fault().is_some() {
            tracing::error!(%error, "stopped without flushing: the storage is failing; the next start recovers what was flushed");
            exit_keeping_the_store(1);
        }
        return Err(error).context("flushing the database at shutdown");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Ends the process without dropping the store: sled flushes when its
/// last handle goes, and after an I/O error such a flush may never return
/// (see the store's `Broken`). The kernel releases the database's lock
/// and files; the next start replays sled's log.
fn exit_keeping_the_store(code: u8) -> ! {
    std::process::exit(i32::from(code))
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}

#[cfg(test)]
mod router_tests;

#[cfg(test)]
mod tests {
    use crate::store::StoreError;

    #[test]
    fn a_start_up_step_failed_by_failing_storage_is_left_for_the_restart_and_others_stop_the_start() {
        let full: Result<usize, StoreError> = Err(StoreError::NoSpace("no space left on the data volume".into()));
        assert_eq!(super::tolerate_failing_storage(full).unwrap(), 0);
        let broken: Result<usize, StoreError> = Err(StoreError::Unavailable("an I/O error".into()));
        assert_eq!(super::tolerate_failing_storage(broken).unwrap(), 0);
        let bug: Result<usize, StoreError> = Err(StoreError::Backend("a bug".into()));
        assert!(super::tolerate_failing_storage(bug).is_err());
        assert_eq!(super::tolerate_failing_storage(Ok(3)).unwrap(), 3);
    }

    #[test]
    fn the_allocator_purges_freed_memory_at_once_and_threads_keep_no_full_pages() {
        // SAFETY: reading a mimalloc option has no effect on allocations.
        let option = |number| unsafe { libmimalloc_sys::mi_option_get(number) };
        let set = |variable| std::env::var_os(variable).is_some();
        // The option numbers are mimalloc's: the purge delay's default is
        // 1 s, page_full_retain's 2 pages.
        if !set("MIMALLOC_PURGE_DELAY") {
            assert_eq!(option(super::MI_OPTION_PURGE_DELAY), 1000);
        }
        if !set("MIMALLOC_PAGE_FULL_RETAIN") {
            assert_eq!(option(super::MI_OPTION_PAGE_FULL_RETAIN), 2);
        }
        super::tune_allocator();
        if !set("MIMALLOC_PURGE_DELAY") {
            assert_eq!(option(super::MI_OPTION_PURGE_DELAY), 0);
        }
        if !set("MIMALLOC_PAGE_FULL_RETAIN") {
            assert_eq!(option(super::MI_OPTION_PAGE_FULL_RETAIN), 0);
        }
    }
}
