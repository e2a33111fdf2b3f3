//! Prometheus metrics (the `prometheus` crate, text format 0.0.4). Counters
//! and histograms are updated where things happen (a run finishing, a
//! plugin compiled, an HTTP answer); gauges of state (queue depth, running
//! runs, jobs by state) are read when `/metrics` is scraped.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::model::{Run, RunStatus};

/// Every metric sandcron exports.
pub struct Metrics {
    registry: Registry,
    runs: IntCounterVec,
    run_duration: HistogramVec,
    run_lateness: HistogramVec,
    fuel: IntCounterVec,
    compile: Histogram,
    plugin_cache: IntCounterVec,
    instances: IntCounterVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    /// Runs waiting, by priority (set at scrape).
    pub queue_depth: IntGaugeVec,
    /// Runs executing (set at scrape).
    pub running: IntGauge,
    /// Jobs by tenant and state (set at scrape).
    pub jobs: IntGaugeVec,
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
            runs: counter(
                "sandcron_runs_total",
                "Finished runs by tenant, job and status.",
                &["tenant", "job", "status"],
            ),
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
            jobs: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("sandcron_jobs", "Jobs by tenant and state."),
                    &["tenant", "state"],
                )
                .expect("a valid gauge"),
            ),
            registry,
        }
    }

    /// A run finished.
    pub fn run_finished(&self, run: &Run) {
        self.runs
            .with_label_values(&[run.tenant.as_str(), run.job_name.as_str(), run.status.as_str()])
            .inc();
        if let Some(ms) = run.duration_ms {
            self.run_duration
                .with_label_values(&[run.tenant.as_str()])
                .observe(ms as f64 / 1000.0);
        }
        if let Some(fuel) = run.fuel_consumed {
            self.fuel.with_label_values(&[run.tenant.as_str()]).inc_by(fuel);
        }
    }

    /// A job was deleted: its run counters go with it, so jobs created
    /// and deleted by the thousand (one-shots) do not keep a series each.
    pub fn job_deleted(&self, tenant: &str, job_name: &str) {
        for status in [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Cancelled] {
            // Absent when the job never finished a run with that status.
            let _ = self.runs.remove_label_values(&[tenant, job_name, status.as_str()]);
        }
    }

    /// A run started `lateness_ms` after it was due.
    pub fn run_started(&self, run: &Run) {
        if let Some(ms) = run.lateness_ms {
            self.run_lateness
                .with_label_values(&[run.tenant.as_str()])
                .observe(ms.max(0) as f64 / 1000.0);
        }
    }

    /// A run's instance came from this allocator.
    pub fn instance(&self, allocator: crate::sandbox::Allocator) {
        self.instances.with_label_values(&[allocator.as_str()]).inc();
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

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding metrics into memory does not fail");
        String::from_utf8(buffer).unwrap_or_default()
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
}
