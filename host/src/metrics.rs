//! Prometheus metrics (the `prometheus` crate, text format 0.0.4). Counters
//! and histograms are updated where things happen (a run finishing, a
//! plugin compiled, an HTTP answer); gauges of state (queue depth, running
//! runs, jobs by state) are read when `/metrics` is scraped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::model::{Run, RunStatus};
use crate::store::health::{Fault, StorageHealth};
use crate::sync::lock;

/// Every metric sandcron exports.
pub struct Metrics {
    registry: Registry,
    runs: RunCounts,
    run_duration: HistogramVec,
    run_lateness: HistogramVec,
    fuel: IntCounterVec,
    compile: Histogram,
    plugin_cache: IntCounterVec,
    instances: IntCounterVec,
    pool_spills: IntCounterVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_closed: IntCounterVec,
    unauthenticated_limited: IntCounter,
    workflow_runs: IntCounterVec,
    workflow_steps: HistogramVec,
    /// HTTP connections open now.
    pub http_connections: IntGauge,
    /// Runs waiting, by priority (set at scrape).
    pub queue_depth: IntGaugeVec,
    /// Runs executing (set at scrape).
    pub running: IntGauge,
    /// Nodes of the cluster with a live lease (set at scrape; 1 on sled).
    pub cluster_nodes: IntGauge,
    /// 1 while this node leads the cluster (set at scrape; 1 on sled).
    pub cluster_leader: IntGauge,
    /// Bytes of compiled plugins held in memory (set at scrape).
    pub plugin_cache_bytes: IntGauge,
    /// Jobs by tenant and state (set at scrape).
    pub jobs: IntGaugeVec,
    /// When each job's last run succeeded, in seconds since the epoch (0:
    /// none yet), by tenant and job (set at scrape).
    pub job_last_success: GaugeVec,
    /// Each job's next fire, in seconds since the epoch, by tenant and job
    /// (set at scrape; a job with none has no series).
    pub job_next_fire: GaugeVec,
    /// (tenant, job name) -> when a run of it last succeeded, as seen here
    /// or read from the store ([`Metrics::last_success`]).
    last_success: Mutex<HashMap<(String, String), f64>>,
}

/// Seconds from 1 ms to 10 min.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];
/// Seconds from 0.5 ms to 1 min: lateness is small when all is well.
const LATENESS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0, 60.0,
];

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once, under a unique name");
    metric
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter"),
            )
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            register(&registry, HistogramVec::new(opts, labels).expect("a valid histogram"))
        };
        Metrics {
            runs: register(&registry, RunCounts::new()),
            run_duration: histogram(
                "sandcron_run_duration_seconds",
                "Wall-clock time of finished runs.",
                &["tenant"],
                DURATION_BUCKETS,
            ),
            run_lateness: histogram(
                "sandcron_run_lateness_seconds",
                "How long after it was due a run started.",
                &["tenant"],
                LATENESS_BUCKETS,
            ),
            fuel: counter(
                "sandcron_fuel_consumed_total",
                "Fuel (wasm instructions, roughly) spent by runs.",
                &["tenant"],
            ),
            compile: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new("sandcron_plugin_compile_seconds", "Time to compile a plugin.")
                        .buckets(DURATION_BUCKETS.to_vec()),
                )
                .expect("a valid histogram"),
            ),
            plugin_cache: counter(
                "sandcron_plugin_cache_total",
                "Plugin instantiations prepared from memory, from a stored artifact, or compiled.",
                &["result"],
            ),
            instances: counter(
                "sandcron_instances_total",
                "Plugin instances made for runs, by allocator (pooling, or on_demand when the pool was full).",
                &["allocator"],
            ),
            pool_spills: counter(
                "sandcron_pool_spills_total",
                "Runs put on the on-demand engine although there is a pool: every slot taken (slots), or a free slot but not enough of the pool's core instances, memories or tables for the component (resources).",
                &["reason"],
            ),
            http_requests: counter(
                "sandcron_http_requests_total",
                "API requests by route, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: histogram(
                "sandcron_http_request_duration_seconds",
                "Time to answer an API request (to the first byte).",
                &["route"],
                DURATION_BUCKETS,
            ),
            workflow_runs: counter(
                "sandcron_workflow_runs_total",
                "Finished workflow runs by tenant, workflow and status.",
                &["tenant", "workflow", "status"],
            ),
            workflow_steps: histogram(
                "sandcron_workflow_step_duration_seconds",
                "Wall-clock time of workflow steps' finished runs.",
                &["tenant", "workflow"],
                DURATION_BUCKETS,
            ),
            http_closed: counter(
                "sandcron_http_connections_closed_total",
                "HTTP connections the server closed or refused: header_timeout, idle_timeout, evicted (at the cap, to make room), refused (at the cap, all busy).",
                &["reason"],
            ),
            unauthenticated_limited: register(
                &registry,
                IntCounter::new(
                    "sandcron_http_unauthenticated_limited_total",
                    "Requests without a valid token refused because their address spent its budget.",
                )
                .expect("a valid counter"),
            ),
            http_connections: register(
                &registry,
                IntGauge::new("sandcron_http_connections", "HTTP connections open now.").expect("a valid gauge"),
            ),
            queue_depth: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("sandcron_queue_depth", "Runs waiting, by priority."),
                    &["priority"],
                )
                .expect("a valid gauge"),
            ),
            running: register(
                &registry,
                IntGauge::new("sandcron_running_runs", "Runs executing now.").expect("a valid gauge"),
            ),
            cluster_nodes: register(
                &registry,
                IntGauge::new(
                    "sandcron_cluster_nodes",
                    "Nodes of the cluster sharing this daemon's database, this one included.",
                )
                .expect("a valid gauge"),
            ),
            cluster_leader: register(
                &registry,
                IntGauge::new(
                    "sandcron_cluster_leader",
                    "1 while this node leads the cluster (plans fires, sweeps, takes over dead nodes), else 0.",
                )
                .expect("a valid gauge"),
            ),
            plugin_cache_bytes: register(
                &registry,
                IntGauge::new(
                    "sandcron_plugin_cache_bytes",
                    "Compiled plugins held in memory, in bytes of their serialized code.",
                )
                .expect("a valid gauge"),
            ),
            jobs: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("sandcron_jobs", "Jobs by tenant and state."),
                    &["tenant", "state"],
                )
                .expect("a valid gauge"),
            ),
            job_last_success: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "sandcron_job_last_success_timestamp_seconds",
                        "When the job's last run succeeded (0: none yet), seconds since the epoch.",
                    ),
                    &["tenant", "job"],
                )
                .expect("a valid gauge"),
            ),
            job_next_fire: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "sandcron_job_next_fire_timestamp_seconds",
                        "When the job fires next, seconds since the epoch.",
                    ),
                    &["tenant", "job"],
                )
                .expect("a valid gauge"),
            ),
            last_success: Mutex::new(HashMap::new()),
            registry,
        }
    }

    /// When `job` of `tenant` last succeeded, in seconds since the epoch (0:
    /// never), if known: seen here since the start, or read from the store
    /// once ([`Metrics::read_last_success`]).
    pub fn last_success(&self, tenant: &str, job: &str) -> Option<f64> {
        lock(&self.last_success)
            .get(&(tenant.to_string(), job.to_string()))
            .copied()
    }

    /// Keeps `found` (the store's newest success of the job; None: none)
    /// as its last success, unless one was told meanwhile; answers it.
    pub fn read_last_success(&self, tenant: &str, job: &str, found: Option<chrono::DateTime<chrono::Utc>>) -> f64 {
        let seconds = found.map_or(0.0, |at| at.timestamp_millis() as f64 / 1000.0);
        *lock(&self.last_success)
            .entry((tenant.to_string(), job.to_string()))
            .or_insert(seconds)
    }

    /// A run finished.
    pub fn run_finished(&self, run: &Run) {
        self.runs.add(&run.tenant, &run.job_name, run.status);
        if run.status == RunStatus::Succeeded
            && let Some(at) = run.finished_at
        {
            let seconds = at.timestamp_millis() as f64 / 1000.0;
            let mut known = lock(&self.last_success);
            let last = known.entry((run.tenant.clone(), run.job_name.clone())).or_insert(0.0);
            *last = last.max(seconds);
        }
        if let Some(ms) = run.duration_ms {
            self.run_duration
                .with_label_values(&[run.tenant.as_str()])
                .observe(ms as f64 / 1000.0);
        }
        if let Some(fuel) = run.fuel_consumed {
            self.fuel.with_label_values(&[run.tenant.as_str()]).inc_by(fuel);
        }
    }

    /// A workflow run ended.
    pub fn workflow_finished(&self, tenant: &str, workflow: &str, status: &str) {
        self.workflow_runs.with_label_values(&[tenant, workflow, status]).inc();
    }

    /// A workflow step's run ended after `seconds`.
    pub fn workflow_step(&self, tenant: &str, workflow: &str, seconds: f64) {
        self.workflow_steps
            .with_label_values(&[tenant, workflow])
            .observe(seconds);
    }

    /// A job was deleted: its run counters go with it, so jobs created
    /// and deleted by the thousand (one-shots) do not keep a series each.
    pub fn job_deleted(&self, tenant: &str, job_name: &str) {
        self.runs.forget(tenant, job_name);
        lock(&self.last_success).remove(&(tenant.to_string(), job_name.to_string()));
    }

    /// A run started `lateness_ms` after it was due.
    pub fn run_started(&self, run: &Run) {
        if let Some(ms) = run.lateness_ms {
            self.run_lateness
                .with_label_values(&[run.tenant.as_str()])
                .observe(ms.max(0) as f64 / 1000.0);
        }
    }

    /// A run's instance came from this allocator (spilled from the pool
    /// for this reason, if it was).
    pub fn instance(&self, allocator: crate::sandbox::Allocator, spill: Option<crate::sandbox::Spill>) {
        self.instances.with_label_values(&[allocator.as_str()]).inc();
        if let Some(spill) = spill {
            self.pool_spills.with_label_values(&[spill.as_str()]).inc();
        }
    }

    /// A plugin compiled in `seconds`.
    pub fn compiled(&self, seconds: f64) {
        self.compile.observe(seconds);
        self.plugin_cache.with_label_values(&["compiled"]).inc();
    }

    /// A prepared plugin came from `source` (`memory` or `artifact`).
    pub fn cache_hit(&self, source: &str) {
        self.plugin_cache.with_label_values(&[source]).inc();
    }

    /// An API request was answered.
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_duration.with_label_values(&[route]).observe(seconds);
    }

    /// The HTTP server closed or refused a connection, for `reason`.
    pub fn http_connection_closed(&self, reason: &str) {
        self.http_closed.with_label_values(&[reason]).inc();
    }

    /// A request without a valid token was refused for its address's rate.
    pub fn unauthenticated_limited(&self) {
        self.unauthenticated_limited.inc();
    }

    /// Exports the storage's health: `sandcron_storage_healthy`,
    /// `sandcron_storage_errors_total{kind}` and the bytes available on
    /// the volume of `data_dir`, `sandcron_storage_available_bytes`, all
    /// read when scraped. Called once.
    pub fn watch_storage(&self, health: Arc<StorageHealth>, data_dir: std::path::PathBuf) {
        register(&self.registry, StorageGauges::new(health, data_dir));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding metrics into memory does not fail");
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// The statuses a finished run counts under, in their slots' order.
const FINISHED: [RunStatus; 3] = [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Cancelled];

/// `sandcron_runs_total{tenant,job,status}`, counted in a map of its own
/// and made series only when scraped. As a prometheus `IntCounterVec`,
/// every job's first finished run built a series (its descriptor, label
/// pairs, hashes): a burst of one-shot jobs paid that on every run, 7 % of
/// a burst's CPU in a profile. A series appears once it counts a run.
/// Clones share the counts.
#[derive(Clone)]
struct RunCounts {
    desc: Desc,
    counts: Arc<Mutex<CountsByTenant>>,
}

/// Tenant, then job name: finished runs by status ([`FINISHED`]).
type CountsByTenant = HashMap<String, HashMap<String, [u64; 3]>>;

impl RunCounts {
    fn new() -> RunCounts {
        let labels = ["tenant", "job", "status"].map(String::from).to_vec();
        RunCounts {
            desc: Desc::new(
                "sandcron_runs_total".into(),
                "Finished runs by tenant, job and status.".into(),
                labels,
                HashMap::new(),
            )
            .expect("a valid descriptor"),
            counts: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CountsByTenant> {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One more run of `job` ended with `status` (not counted unless
    /// finished).
    fn add(&self, tenant: &str, job: &str, status: RunStatus) {
        let Some(slot) = FINISHED.iter().position(|finished| *finished == status) else {
            return;
        };
        let mut counts = self.lock();
        let jobs = match counts.get_mut(tenant) {
            Some(jobs) => jobs,
            None => counts.entry(tenant.to_string()).or_default(),
        };
        match jobs.get_mut(job) {
            Some(by_status) => by_status[slot] += 1,
            None => {
                let mut by_status = [0; 3];
                by_status[slot] = 1;
                jobs.insert(job.to_string(), by_status);
            }
        }
    }

    /// A job's series go with it.
    fn forget(&self, tenant: &str, job: &str) {
        let mut counts = self.lock();
        if let Some(jobs) = counts.get_mut(tenant) {
            jobs.remove(job);
            if jobs.is_empty() {
                counts.remove(tenant);
            }
        }
    }
}

impl Collector for RunCounts {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let label = |name: &str, value: &str| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.to_string());
            pair
        };
        let mut metrics = Vec::new();
        for (tenant, jobs) in self.lock().iter() {
            for (job, by_status) in jobs {
                for (status, count) in FINISHED.iter().zip(by_status).filter(|(_, count)| **count > 0) {
                    let mut counter = Counter::default();
                    counter.set_value(*count as f64);
                    let mut metric = Metric::default();
                    // By label name, as prometheus orders them.
                    metric.set_label(vec![
                        label("job", job),
                        label("status", status.as_str()),
                        label("tenant", tenant),
                    ]);
                    metric.set_counter(counter);
                    metrics.push(metric);
                }
            }
        }
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::COUNTER);
        family.set_metric(metrics);
        vec![family]
    }
}

/// The storage's health as metrics, read from the [`StorageHealth`] (and
/// the data volume) at each scrape.
#[derive(Clone)]
struct StorageGauges {
    health: Arc<StorageHealth>,
    data_dir: std::path::PathBuf,
    healthy: Desc,
    errors: Desc,
    available: Desc,
}

impl StorageGauges {
    fn new(health: Arc<StorageHealth>, data_dir: std::path::PathBuf) -> StorageGauges {
        let desc = |name: &str, help: &str, labels: &[&str]| {
            Desc::new(
                name.into(),
                help.into(),
                labels.iter().map(|label| label.to_string()).collect(),
                HashMap::new(),
            )
            .expect("a valid descriptor")
        };
        StorageGauges {
            health,
            data_dir,
            healthy: desc(
                "sandcron_storage_healthy",
                "1 while the storage takes writes; 0 once a write failed (a full volume, an I/O error) until the daemon restarts into working storage.",
                &[],
            ),
            errors: desc(
                "sandcron_storage_errors_total",
                "Store operations that failed because the storage failed (writes refused while it fails included), by kind (no_space, io).",
                &["kind"],
            ),
            available: desc(
                "sandcron_storage_available_bytes",
                "Bytes still available on the data volume.",
                &[],
            ),
        }
    }
}

/// One family of one sample.
fn family(desc: &Desc, kind: MetricType, samples: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(desc.fq_name.clone());
    family.set_help(desc.help.clone());
    family.set_field_type(kind);
    family.set_metric(samples);
    family
}

/// A gauge sample.
fn gauge_sample(value: f64) -> Metric {
    let mut gauge = prometheus::proto::Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::default();
    metric.set_gauge(gauge);
    metric
}

impl Collector for StorageGauges {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.healthy, &self.errors, &self.available]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snapshot = self.health.snapshot();
        let healthy = if snapshot.healthy() { 1.0 } else { 0.0 };
        let errors = [Fault::NoSpace, Fault::Io]
            .into_iter()
            .map(|fault| {
                let mut counter = Counter::default();
                counter.set_value(snapshot.errors[fault as usize] as f64);
                let mut pair = LabelPair::default();
                pair.set_name("kind".to_string());
                pair.set_value(fault.as_str().to_string());
                let mut metric = Metric::default();
                metric.set_label(vec![pair]);
                metric.set_counter(counter);
                metric
            })
            .collect();
        let mut families = vec![
            family(&self.healthy, MetricType::GAUGE, vec![gauge_sample(healthy)]),
            family(&self.errors, MetricType::COUNTER, errors),
        ];
        if let Ok(bytes) = crate::store::watchdog::available_bytes(&self.data_dir) {
            families.push(family(
                &self.available,
                MetricType::GAUGE,
                vec![gauge_sample(bytes as f64)],
            ));
        }
        families
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_registry_renders_every_family_with_help_and_type() {
        let metrics = Metrics::new();
        metrics.http_request("/v1/jobs", "GET", 200, 0.002);
        metrics.compiled(0.1);
        metrics.running.set(3);
        let text = metrics.render();
        for family in [
            "sandcron_http_requests_total",
            "sandcron_plugin_compile_seconds",
            "sandcron_plugin_cache_total",
            "sandcron_running_runs",
        ] {
            assert!(text.contains(&format!("# TYPE {family}")), "{family} in {text}");
        }
        assert!(text.contains(r#"sandcron_http_requests_total{method="GET",route="/v1/jobs",status="200"} 1"#));
        assert!(text.contains("sandcron_running_runs 3"));
    }

    #[test]
    fn runs_are_counted_by_tenant_job_and_status_until_the_job_goes() {
        let metrics = Metrics::new();
        assert!(
            !metrics.render().contains("sandcron_runs_total"),
            "no series before a run"
        );
        let run = |tenant: &str, job: &str, status: RunStatus| {
            let mut run = Run::sample("r", "j", chrono::Utc::now());
            (run.tenant, run.job_name, run.status) = (tenant.into(), job.into(), status);
            metrics.run_finished(&run);
        };
        run("acme", "nightly", RunStatus::Succeeded);
        run("acme", "nightly", RunStatus::Succeeded);
        run("acme", "nightly", RunStatus::Failed);
        run("acme", "once", RunStatus::Cancelled);
        run("other", "nightly", RunStatus::Succeeded);
        // Not finished: not counted.
        run("acme", "once", RunStatus::Running);
        let series: Vec<String> = metrics
            .render()
            .lines()
            .filter(|line| line.starts_with("sandcron_runs_total{"))
            .map(String::from)
            .collect();
        assert!(metrics.render().contains("# TYPE sandcron_runs_total counter"));
        assert_eq!(
            series,
            [
                r#"sandcron_runs_total{job="nightly",status="failed",tenant="acme"} 1"#,
                r#"sandcron_runs_total{job="nightly",status="succeeded",tenant="acme"} 2"#,
                r#"sandcron_runs_total{job="nightly",status="succeeded",tenant="other"} 1"#,
                r#"sandcron_runs_total{job="once",status="cancelled",tenant="acme"} 1"#,
            ]
        );
        metrics.job_deleted("acme", "nightly");
        metrics.job_deleted("acme", "never-ran");
        let text = metrics.render();
        assert!(!text.contains(r#"job="nightly",status="failed""#), "{text}");
        assert!(text.contains(r#"sandcron_runs_total{job="nightly",status="succeeded",tenant="other"} 1"#));
        assert!(text.contains(r#"sandcron_runs_total{job="once",status="cancelled",tenant="acme"} 1"#));
    }

    #[test]
    fn storage_health_shows_as_a_gauge_a_counter_by_kind_and_the_room_left() {
        let metrics = Metrics::new();
        let health = Arc::new(StorageHealth::new());
        let dir = tempfile::tempdir().unwrap();
        metrics.watch_storage(health.clone(), dir.path().to_path_buf());
        let text = metrics.render();
        assert!(text.contains("# TYPE sandcron_storage_healthy gauge"), "{text}");
        assert!(text.contains("sandcron_storage_healthy 1"), "{text}");
        assert!(
            text.contains(r#"sandcron_storage_errors_total{kind="no_space"} 0"#),
            "{text}"
        );
        assert!(text.contains("# TYPE sandcron_storage_available_bytes gauge"), "{text}");
        health.failed(Fault::NoSpace, "no space left on the data volume");
        health.failed(Fault::NoSpace, "no space left on the data volume");
        let text = metrics.render();
        assert!(text.contains("sandcron_storage_healthy 0"), "{text}");
        assert!(
            text.contains(r#"sandcron_storage_errors_total{kind="no_space"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"sandcron_storage_errors_total{kind="io"} 0"#), "{text}");
    }
}
