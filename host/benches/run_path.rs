//! Per-run cost of the noop path, single thread:
//!
//! - `floor`: bare wasmtime, the reference the issue measures against: a
//!   fresh Store with a default WASI context, instantiate from the `JobPre`,
//!   call `run`, drop; pooling allocator, `concurrency_support(false)`, no
//!   fuel, no epochs.
//! - `sandcron/pooling`: `Sandbox::run` (limiter, epoch deadline, captured
//!   log, output cap; unmetered, the default) plus the finished run record
//!   written to sled (no flush), the whole per-run path.
//! - `sandcron/pooling_fuel`: the same for a job with a fuel budget (the
//!   metered engines).
//! - `sandcron/on_demand`: the same without the pooling allocator.
//! - `sled/flush`: one `flush()` after a small write, the durability price.
//! - `artifact/compile` vs `artifact/load`: compiling the noop component
//!   against deserializing its cached artifact (what a restart does).
//!
//! - `noop_run/floor/*`: the floor with fuel, epochs, both, the on-demand
//!   allocator, and other pool settings (memory kept resident, pagemap scan).
//! - `languages/noop/{rust,python,js}`: a job that does nothing, in each
//!   language, through `Sandbox::run` (pooled, unmetered, no record): what
//!   a language's runtime costs a run. Python and JavaScript need the
//!   components `bench/run-path.sh` builds (`SANDCRON_BENCH_NOOP_PYTHON`,
//!   `SANDCRON_BENCH_NOOP_JS`: their paths); without them only Rust runs.
//! - `cpu_bound/*`: the `crunch` plugin (call-heavy CPU work) with no CPU
//!   limit, fuel, epochs, and both: what each mechanism costs; and through
//!   `Sandbox::run`, unmetered (the default) and with a fuel budget.
//!
//! `cargo bench -p sandcron --bench run_path` (builds the plugins first);
//! a group alone: `cargo bench -p sandcron --bench run_path -- cpu_bound`.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use criterion::{Criterion, criterion_group, criterion_main};
use sandcron::model::run::RunLimits;
use sandcron::model::{Run, RunStatus, Trigger};
use sandcron::sandbox::bindings::JobPre;
use sandcron::sandbox::bindings::sandcron::plugin::types as wit;
use sandcron::sandbox::{Metering, PreparedJob, RunRequest, Sandbox, SandboxConfig};
use sandcron::store::{Durability, KvStore, RunStore, SledStore};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

struct FloorState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for FloorState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// One bare-wasmtime engine setting: which CPU limits it compiles in and
/// how it allocates instances.
#[derive(Clone, Copy)]
struct Floor {
    fuel: bool,
    epochs: bool,
    pooling: bool,
    /// Bytes of linear memory the pool keeps resident between uses.
    keep_resident: usize,
    /// Reset pool memory by scanning resident pages (Linux 6.7+).
    pagemap_scan: bool,
}

impl Floor {
    /// The reference: pooling, `concurrency_support(false)`, 64 KiB kept
    /// resident, no fuel, no epochs.
    const BARE: Floor = Floor {
        fuel: false,
        epochs: false,
        pooling: true,
        keep_resident: 64 << 10,
        pagemap_scan: false,
    };

    fn engine(self) -> wasmtime::Engine {
        let mut config = wasmtime::Config::new();
        config.concurrency_support(false);
        config.consume_fuel(self.fuel);
        config.epoch_interruption(self.epochs);
        if self.pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            pool.total_component_instances(64)
                .total_memories(128)
                .total_tables(256)
                .total_stacks(64)
                .total_core_instances(512);
            pool.linear_memory_keep_resident(self.keep_resident);
            if self.pagemap_scan {
                pool.pagemap_scan(wasmtime::Enabled::Auto);
            }
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        wasmtime::Engine::new(&config).expect("engine")
    }

    fn prepare(self, bytes: &[u8]) -> (wasmtime::Engine, JobPre<FloorState>) {
        let engine = self.engine();
        let component = Component::new(&engine, bytes).expect("compile");
        let mut linker: Linker<FloorState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
        // The sandcron imports are never called by these plugins; traps stand in for them.
        linker.define_unknown_imports_as_traps(&component).expect("stubs");
        let pre = JobPre::new(linker.instantiate_pre(&component).expect("pre")).expect("job world");
        (engine, pre)
    }

    /// A fresh instance, one call of `run`, drop; with the limits compiled
    /// in set as the sandbox sets them (fuel with checkpoints, a yield at
    /// every epoch tick).
    async fn run(self, engine: &wasmtime::Engine, pre: &JobPre<FloorState>, input: &[u8]) -> Vec<u8> {
        let state = FloorState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        };
        let mut store = wasmtime::Store::new(engine, state);
        if self.fuel {
            store.set_fuel(u64::MAX / 2).expect("fuel");
            store
                .fuel_async_yield_interval(Some(50_000_000))
                .expect("fuel interval");
        }
        if self.epochs {
            store.epoch_deadline_async_yield_and_update(1);
        }
        let job = pre.instantiate_async(&mut store).await.expect("instantiate");
        job.call_run(&mut store, &context(), input)
            .await
            .expect("call")
            .expect("ok")
    }
}

/// Advances an engine's epoch every 10 ms (the sandbox's tick) while alive.
struct Ticker(Arc<AtomicBool>);

impl Ticker {
    fn start(engine: &wasmtime::Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, stopped) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(10));
                engine.increment_epoch();
            }
        });
        Ticker(stop)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The bare floor under each CPU limit: none, fuel, epochs, both.
fn cpu_limits() -> impl Iterator<Item = (&'static str, Floor)> {
    [
        ("no_limits", false, false),
        ("fuel", true, false),
        ("epochs", false, true),
        ("fuel_epochs", true, true),
    ]
    .into_iter()
    .map(|(name, fuel, epochs)| {
        (
            name,
            Floor {
                fuel,
                epochs,
                ..Floor::BARE
            },
        )
    })
}

/// Benches `floor` variants of one plugin and input under `group`.
fn floors(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    bytes: &[u8],
    input: &[u8],
    variants: &[(String, Floor)],
) {
    for (name, floor) in variants {
        let (engine, pre) = floor.prepare(bytes);
        let _ticker = floor.epochs.then(|| Ticker::start(&engine));
        group.bench_function(name.as_str(), |b| {
            b.iter(|| runtime.block_on(floor.run(&engine, &pre, input)))
        });
    }
}

fn context() -> wit::RunContext {
    wit::RunContext {
        tenant: "default".into(),
        job_id: "job".into(),
        job_name: "job".into(),
        run_id: "run".into(),
        attempt: 1,
        trigger: wit::Trigger::Manual,
        scheduled_at: 0,
    }
}

fn limits() -> RunLimits {
    RunLimits {
        fuel: None,
        timeout_ms: 30_000,
        memory: 64 << 20,
        output: 1 << 20,
        logs: 1 << 20,
    }
}

fn request(fuel: Option<u64>, input: &[u8]) -> RunRequest {
    support::run_request(RunLimits { fuel, ..limits() }, input, sandcron::sandbox::TapeMode::Off)
}

/// A sandbox and the plugin prepared for runs with this fuel budget.
fn sandbox_with(bytes: &[u8], pool_instances: u32, fuel: Option<u64>) -> (Sandbox, PreparedJob) {
    let sandbox = Sandbox::new(&SandboxConfig {
        max_memory: 1 << 30,
        pool_instances,
        core_instances_per_slot: sandcron::config::DEFAULT_POOL_CORE_INSTANCES,
    })
    .expect("sandbox");
    let metering = Metering::of(fuel);
    let component = sandbox.compile(bytes, metering).expect("compile");
    let prepared = sandbox.prepare(&component, metering).expect("prepare");
    (sandbox, prepared)
}

fn run_record(id: u64) -> Run {
    let now = chrono::Utc::now();
    Run {
        id: format!("{id:026}"),
        tenant: "default".into(),
        job_id: "job".into(),
        job_name: "job".into(),
        plugin: "noop@1".into(),
        plugin_digest: "0".repeat(64),
        trigger: Trigger::Manual,
        attempt: 1,
        status: RunStatus::Succeeded,
        error: None,
        scheduled_at: now,
        jitter_ms: 0,
        queued_at: now,
        started_at: Some(now),
        finished_at: Some(now),
        duration_ms: Some(0),
        lateness_ms: Some(0),
        fuel_consumed: Some(2000),
        peak_memory: Some(1 << 20),
        output_size: 2,
        log_size: 0,
        tape: None,
        input: b"{}".to_vec(),
        limits: limits(),
        priority: Default::default(),
        retry: Default::default(),
        exclusive: false,
        concurrency: None,
        http_allow: Vec::new(),
        secrets: Vec::new(),
        record: false,
        workflow: None,
        node: None,
        retry_of: None,
    }
}

fn bench(c: &mut Criterion) {
    let bytes = support::noop_bytes();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("noop_run");

    let bare = Floor::BARE;
    let mut variants: Vec<(String, Floor)> = cpu_limits()
        .map(|(name, floor)| match name {
            "no_limits" => ("floor".to_string(), floor),
            name => (format!("floor/{name}"), floor),
        })
        .collect();
    let settings = [
        ("floor/on_demand", Floor { pooling: false, ..bare }),
        (
            "floor/keep_resident_0",
            Floor {
                keep_resident: 0,
                ..bare
            },
        ),
        (
            "floor/keep_resident_1mib",
            Floor {
                keep_resident: 1 << 20,
                ..bare
            },
        ),
        (
            "floor/pagemap_scan",
            Floor {
                pagemap_scan: true,
                ..bare
            },
        ),
    ];
    variants.extend(settings.map(|(name, floor)| (name.to_string(), floor)));
    floors(&mut group, &runtime, &bytes, b"{}", &variants);

    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(&dir.path().join("db")).expect("sled");
    let fuel = Some(1_000_000_000);
    for (name, pool_instances, fuel) in [
        ("sandcron/pooling", 64, None),
        ("sandcron/pooling_fuel", 64, fuel),
        ("sandcron/on_demand", 0, None),
    ] {
        let _guard = runtime.enter();
        let (sandbox, prepared) = sandbox_with(&bytes, pool_instances, fuel);
        let mut next_id = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                let outcome = runtime.block_on(sandbox.run(&prepared, request(fuel, b"{}")));
                let output = outcome.result.expect("noop succeeds");
                next_id += 1;
                store
                    .finish_run(&run_record(next_id), &output, &outcome.log)
                    .expect("record");
            })
        });
    }
    {
        let _guard = runtime.enter();
        let (sandbox, prepared) = sandbox_with(&bytes, 64, None);
        group.bench_function("sandcron/run_without_record", |b| {
            b.iter(|| {
                runtime
                    .block_on(sandbox.run(&prepared, request(None, b"{}")))
                    .result
                    .expect("noop succeeds")
            })
        });
    }
    let mut next_id = 1_000_000_000u64;
    group.bench_function("record_only", |b| {
        b.iter(|| {
            next_id += 1;
            store.finish_run(&run_record(next_id), b"{}", b"").expect("record");
        })
    });
    // The three writes of a run's life as the executor makes them
    // (queued, running, finished), without their flushes.
    group.bench_function("record_lifecycle", |b| {
        b.iter(|| {
            next_id += 1;
            let mut run = run_record(next_id);
            run.status = RunStatus::Queued;
            store.insert_run(&run).expect("queued");
            run.status = RunStatus::Running;
            store.update_run(&run).expect("running");
            run.status = RunStatus::Succeeded;
            store.finish_run(&run, b"{}", b"").expect("finished");
        })
    });
    group.finish();

    let mut languages = c.benchmark_group("languages");
    languages.sample_size(30);
    let mut components = vec![("rust", bytes.clone())];
    for (lang, variable) in [
        ("python", "SANDCRON_BENCH_NOOP_PYTHON"),
        ("js", "SANDCRON_BENCH_NOOP_JS"),
    ] {
        match std::env::var_os(variable) {
            Some(path) => components.push((lang, std::fs::read(&path).expect("the noop component"))),
            None => eprintln!("{variable} is not set: no {lang} noop (bench/run-path.sh builds it)"),
        }
    }
    for (lang, component) in &components {
        let _guard = runtime.enter();
        let (sandbox, prepared) = sandbox_with(component, 64, None);
        languages.bench_function(format!("noop/{lang}"), |b| {
            b.iter(|| {
                runtime
                    .block_on(sandbox.run(&prepared, request(None, b"{}")))
                    .result
                    .expect("noop succeeds")
            })
        });
    }
    languages.finish();

    // A CPU-bound plugin (call-heavy: recursive Fibonacci, a sort and a hash
    // loop) under each CPU limit: what fuel and epoch checks cost.
    let crunch = support::plugin_bytes("crunch");
    let mut cpu = c.benchmark_group("cpu_bound");
    cpu.sample_size(20);
    let limits: Vec<(String, Floor)> = cpu_limits().map(|(name, floor)| (name.to_string(), floor)).collect();
    floors(&mut cpu, &runtime, &crunch, b"27", &limits);
    for (name, fuel) in [("sandcron/unmetered", None), ("sandcron/fuel", Some(u64::MAX / 2))] {
        let _guard = runtime.enter();
        let (sandbox, prepared) = sandbox_with(&crunch, 64, fuel);
        cpu.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(sandbox.run(&prepared, request(fuel, b"27")))
                    .result
                    .expect("crunch succeeds")
            })
        });
    }
    cpu.finish();

    let mut artifact = c.benchmark_group("artifact");
    {
        let _guard = runtime.enter();
        let (sandbox, _) = sandbox_with(&bytes, 64, None);
        let compile = |metering| sandbox.compile(&bytes, metering).expect("compile");
        artifact.bench_function("compile", |b| b.iter(|| compile(Metering::Unmetered)));
        artifact.bench_function("compile_metered", |b| b.iter(|| compile(Metering::Fuel)));
        // The same bytes on a default engine (no fuel, no epochs): the floor.
        let plain = wasmtime::Engine::default();
        artifact.bench_function("compile_default_engine", |b| {
            b.iter(|| Component::new(&plain, &bytes).expect("compile"))
        });
        let serialized = sandbox.serialize(&compile(Metering::Unmetered)).expect("serialize");
        artifact.bench_function("load", |b| {
            // SAFETY: `serialized` came from this sandbox's own `serialize`
            // of code compiled unmetered.
            b.iter(|| unsafe { sandbox.deserialize(&serialized, Metering::Unmetered) }.expect("load"))
        });
    }
    artifact.finish();

    let mut flush = c.benchmark_group("sled");
    let mut counter = 0u64;
    flush.bench_function("flush", |b| {
        b.iter(|| {
            counter += 1;
            store.kv_set("t", "j", "k", &counter.to_le_bytes()).expect("write");
            store.flush().expect("flush");
        })
    });
    flush.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
