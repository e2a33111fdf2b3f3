//! `sandcron serve`: opens the data directory, wires store -> plugins ->
//! scheduler -> executor -> API, recovers unfinished runs and serves until
//! SIGINT/SIGTERM.

use std::sync::Arc;

use anyhow::Context;

use crate::api::{AppState, router};
use crate::auth::Auth;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::digest::Digests;
use crate::events::{BUFFERED_EVENTS, EventBus};
use crate::executor::{Capacity, Executor, Grants, Observers};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::outbound::Outbound;
use crate::plugin::{PluginLimits, Plugins};
use crate::retention;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::scheduler::Scheduler;
use crate::store::{SledStore, Store, StoreError};
use crate::tenancy::Tenants;
use crate::vault::Vault;

/// Pool slots per allowed concurrent run: runs in flight plus a margin for
/// instances being torn down while new ones start.
const POOL_SLOTS_PER_RUN: u32 = 2;

/// The parts of a running daemon, before it listens.
pub struct Daemon {
    /// The storage.
    pub store: Arc<dyn Store>,
    /// Sends webhooks.
    pub notifier: Arc<Notifier>,
    /// Sends tenants' digests.
    pub digests: Arc<Digests>,
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
}

/// Builds the engine for a configuration.
pub fn sandbox_for(config: &Config) -> anyhow::Result<Sandbox> {
    let slots = u32::try_from(config.max_concurrent_runs).unwrap_or(u32::MAX / 4);
    Sandbox::new(&SandboxConfig {
        max_memory: config.jobs.max_memory,
        pool_instances: config
            .pool_size
            .unwrap_or_else(|| slots.saturating_mul(POOL_SLOTS_PER_RUN).max(4)),
    })
}

impl Daemon {
    /// Opens the data directory and builds every part (nothing runs yet).
    pub fn open(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        let store: Arc<dyn Store> =
            match SledStore::open_with(&config.database_path(), config.flush_interval, config.db_cache) {
                Ok(store) => Arc::new(store),
                Err(StoreError::Locked(message)) => anyhow::bail!("{message}"),
                Err(error) => return Err(error).context("opening the database"),
            };
        let sandbox = Arc::new(sandbox_for(config)?);
        let metrics = Arc::new(Metrics::new());
        let plugins = Arc::new(Plugins::new(
            store.clone(),
            sandbox.clone(),
            metrics.clone(),
            PluginLimits {
                max_bytes: config.max_plugin_bytes,
                concurrent_compiles: config.max_concurrent_compiles,
                cache_bytes: config.plugin_cache_bytes,
            },
        ));
        plugins.collect().context("collecting unused plugin code")?;
        let tenants = Arc::new(Tenants::load(store.as_ref()).context("reading the tenants")?);
        let events = Arc::new(EventBus::new(BUFFERED_EVENTS, clock.now()));
        let vault = Arc::new(Vault::for_config(config)?);
        let outbound = Arc::new(
            Outbound::new(config.http_allow_private.clone(), config.http_resolve.clone())
                .context("building the HTTP client")?,
        );
        let mailer = match &config.smtp_url {
            Some(url) => Some(Arc::new(Mailer::new(url, &config.smtp_from)?)),
            None => None,
        };
        let digests = Arc::new(Digests::new(
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
        let grants = Grants {
            tenants: tenants.clone(),
            outbound,
            vault: vault.clone(),
        };
        let executor = Executor::new(
            store.clone(),
            sandbox.clone(),
            plugins.clone(),
            clock.clone(),
            Capacity {
                runs: config.max_concurrent_runs,
                log_bytes: config.jobs.logs,
                mark_running_after: config.flush_interval,
            },
            grants,
            Observers {
                events: events.clone(),
                metrics: metrics.clone(),
            },
        );
        let scheduler = Scheduler::new(store.clone(), executor.clone(), clock, config.fire_ahead);
        Ok(Daemon {
            store,
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
        })
    }

    /// Recovers unfinished runs, then starts the executor and the scheduler
    /// and fires the `run_at_start` jobs.
    pub async fn start(&self) -> anyhow::Result<()> {
        // Recovery records outcomes through the recorder.
        self.executor.start_recording().context("starting the run recorder")?;
        self.executor.recover().await.context("recovering unfinished runs")?;
        self.scheduler
            .take_back_recorded_ahead()
            .await
            .context("planning fires recorded ahead again")?;
        self.notifier.clone().start(&self.events);
        self.digests.clone().start();
        self.executor.start();
        self.scheduler.start();
        let fired = self
            .scheduler
            .fire_run_at_start_jobs()
            .await
            .context("firing run_at_start jobs")?;
        if fired > 0 {
            tracing::info!(runs = fired, "queued run_at_start jobs");
        }
        Ok(())
    }
}

/// mimalloc's option number for its purge delay (`mi_option_purge_delay`
/// in mimalloc.h, the same in v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets up the allocator; call first thing in `main`. The daemon allocates
/// with mimalloc (the crate's global allocator): under glibc's malloc the
/// runtime's, sled's and the recorder's threads queued on its arena locks,
/// and durable throughput was ~40 % lower (docs/benchmarks.md). Freed memory
/// goes back to the system at once instead of after mimalloc's default
/// second: with 10,000 cron jobs the daemon held 54-55 MiB instead of
/// 61-63. `MIMALLOC_PURGE_DELAY` (milliseconds), when set, wins.
pub fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores a tunable mimalloc reads on its
        // next purge; it touches no allocation.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

/// Runs the daemon until a shutdown signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let daemon = Daemon::open(&config, Arc::new(SystemClock))?;
    let auth = Auth::for_config(&config)
        .with_context(|| format!("reading the admin token {}", config.admin_token_path().display()))?;
    daemon.start().await?;
    let policy = retention::Policy {
        retention: config.retention,
        max_runs_per_job: config.max_runs_per_job,
    };
    retention::start(daemon.store.clone(), Arc::new(SystemClock), policy);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(data_dir = %config.data_dir.display(), "listening on http://{address}");
    let (store, executor, scheduler) = (daemon.store.clone(), daemon.executor.clone(), daemon.scheduler.clone());
    let grace = config.shutdown_grace;
    let app = router(AppState::new(daemon, auth, config));
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.notified().await })
            .await
    });
    tokio::select! {
        served = &mut server => {
            served.context("the HTTP server task failed")?.context("serving HTTP")?;
        }
        () = shutdown_signal() => {
            // Stop firing and accepting connections, let running runs finish
            // within the grace period, then give answers in flight a moment.
            scheduler.stop();
            stop.notify_one();
            executor.shutdown(grace).await;
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), server).await;
        }
    }
    store.flush().context("flushing the database at shutdown")?;
    tracing::info!("stopped");
    Ok(())
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
mod tests {
    #[test]
    fn the_allocator_purges_freed_memory_at_once() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reading a mimalloc option has no effect on allocations.
        let delay = || unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        // The option number is mimalloc's purge delay: its default is 1 s.
        assert_eq!(delay(), 1000);
        super::tune_allocator();
        assert_eq!(delay(), 0);
    }
}
