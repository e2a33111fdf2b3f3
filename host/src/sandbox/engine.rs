//! The engines runs execute on. There are two families: unmetered (epoch
//! interruption only, the default) and metered (fuel as well, for jobs with
//! a fuel budget); a CPU-bound plugin ran 2.1x as long metered in the cpu
//! bench, so only jobs that ask for fuel pay for it.
//! Recorded runs and their replays have two more families, deterministic
//! (the same bits on any machine) and without a pool.
//! In each family one engine's instances come from the pooling allocator
//! (slots reused, memory reset copy-on-write), and, beside it, an on-demand
//! engine takes the runs arriving while every pool slot is taken, so a full
//! pool slows a run down instead of failing it. A plugin is prepared
//! (imports resolved, exports looked up) once per engine.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::host::RunState;
use super::wit::v0_1::{Job as JobWorld, JobPre};

/// The deepest wasm stack a guest may use, well below the async stack.
pub(crate) const MAX_WASM_STACK: usize = 512 << 10;
/// The host stack each run's fiber gets.
pub(crate) const ASYNC_STACK: usize = 2 << 20;
/// Settings of the shared engine.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Largest linear memory any run may have (the pooling slot size).
    pub max_memory: u64,
    /// Instances the pooling allocator keeps slots for (runs beyond them get
    /// on-demand instances); 0 disables pooling.
    pub pool_instances: u32,
    /// Core instances the pool keeps per slot, on average.
    pub core_instances_per_slot: u32,
}

/// Why bytes are not a usable job plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentError {
    /// A core wasm module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component; build it for wasm32-wasip2 (or run `wasm-tools component new`)"
    )]
    CoreModule,
    /// Not wasm at all.
    #[error("this is not WebAssembly (it does not start with the \\0asm magic bytes)")]
    NotWasm,
    /// Wasm that does not validate or compile.
    #[error("the component does not validate: {0}")]
    Invalid(String),
    /// It imports something sandcron does not provide.
    #[error("the component imports something sandcron does not provide: {0}")]
    UnsatisfiedImport(String),
    /// It does not export the `job` world's `run`.
    #[error("the component does not implement the sandcron:plugin/job world: {0}")]
    WrongExports(String),
}

/// Where a run's instance was allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// A slot of the pooling allocator.
    Pooling,
    /// Fresh mappings (no pool, or the pool was full).
    OnDemand,
}

impl Allocator {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Allocator::Pooling => "pooling",
            Allocator::OnDemand => "on_demand",
        }
    }
}

/// A hash of what an engine's compiled code depends on: artifacts load only
/// into an engine with the same one.
pub(super) fn compatibility(engine: &Engine) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

/// An engine with every import linked.
pub(super) struct Linked {
    pub engine: Engine,
    pub linker: Linker<RunState>,
}

/// Whether a run counts fuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metering {
    /// Epoch interruption only: the deadline bounds compute.
    Unmetered,
    /// Fuel as well: the run stops when its budget is spent.
    Fuel,
}

impl Metering {
    /// The metering a run with this fuel budget needs.
    pub fn of(fuel: Option<u64>) -> Metering {
        match fuel {
            Some(_) => Metering::Fuel,
            None => Metering::Unmetered,
        }
    }
}

/// Which engines compile and run a plugin: its metering, and whether the
/// run must compute the same bits on any machine (recorded runs and their
/// replays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EngineKind {
    /// Fuel or not.
    pub metering: Metering,
    /// NaNs canonicalised and relaxed SIMD deterministic.
    pub deterministic: bool,
}

impl EngineKind {
    /// Every kind, in the order the sandbox keeps their engines.
    pub const ALL: [EngineKind; 4] = [
        EngineKind::of(Metering::Unmetered, false),
        EngineKind::of(Metering::Fuel, false),
        EngineKind::of(Metering::Unmetered, true),
        EngineKind::of(Metering::Fuel, true),
    ];

    /// The kind of this metering and determinism.
    pub const fn of(metering: Metering, deterministic: bool) -> EngineKind {
        EngineKind {
            metering,
            deterministic,
        }
    }

    /// Its place in [`EngineKind::ALL`].
    pub(super) fn index(self) -> usize {
        usize::from(self.metering == Metering::Fuel) + 2 * usize::from(self.deterministic)
    }
}

impl From<Metering> for EngineKind {
    fn from(metering: Metering) -> EngineKind {
        EngineKind::of(metering, false)
    }
}

fn engine_config(settings: &SandboxConfig, pooled: bool, kind: EngineKind) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(kind.metering == Metering::Fuel);
    if kind.deterministic {
        // The two sources of different bits for the same input: the sign
        // and payload of a NaN a float operation makes, and relaxed SIMD
        // (on by default) whose results depend on the CPU.
        config.cranelift_nan_canonicalization(true);
        config.relaxed_simd_deterministic(true);
    }
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.async_stack_size(ASYNC_STACK);
    // Nothing here uses component-model async; turning its bookkeeping off
    // saves several microseconds per instance.
    config.concurrency_support(false);
    if pooled {
        let mut pool = PoolingAllocationConfig::new();
        let instances = settings.pool_instances;
        // Per slot, room for the core instances, memories and tables of the
        // components people build (measured, per instance: a Rust plugin
        // 3 core instances, 1 memory, 2 tables; SpiderMonkey JS 4, 1, 2;
        // QuickJS JS 9, 2, 2; componentize-py Python 14, 1, 2). A core
        // instance slot is metadata; memories and tables cost address
        // space, not resident memory. A run that finds too few left goes on
        // demand (`Spill::Resources`).
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(settings.core_instances_per_slot))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(4))
            .total_stacks(instances)
            .max_memory_size(usize::try_from(settings.max_memory).unwrap_or(usize::MAX))
            // Memory is reset between uses; keeping the first 64 KiB
            // resident (zeroed by memset, not unmapped) beat 0 and 1 MiB in
            // the run_path bench, and resetting only the pages found dirty
            // by the kernel's pagemap scan (Linux 6.7+, else the usual
            // reset) made a fresh instance 0.72x as costly again.
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

impl Linked {
    /// An engine (pooled or on demand) and its linker.
    pub fn new(settings: &SandboxConfig, pooled: bool, kind: EngineKind) -> anyhow::Result<Linked> {
        let engine = Engine::new(&engine_config(settings, pooled, kind))
            .map_err(|error| anyhow::anyhow!("wasmtime engine: {error}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|error| anyhow::anyhow!("linking WASI: {error}"))?;
        JobWorld::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |state| state)
            .map_err(|error| anyhow::anyhow!("linking sandcron imports: {error}"))?;
        Ok(Linked { engine, linker })
    }

    /// Resolves a component's imports and exports on this engine.
    pub fn prepare(&self, component: &Component) -> Result<JobPre<RunState>, ComponentError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|error| ComponentError::UnsatisfiedImport(format!("{error:#}")))?;
        JobPre::new(instance_pre).map_err(|error| ComponentError::WrongExports(format!("{error:#}")))
    }
}

/// The engines of one metering: the main one (pooled when there is a pool)
/// and the pool with its on-demand fallback.
pub(super) struct Family {
    /// Pooled when `pool_instances` > 0, else on demand.
    pub main: Linked,
    /// With a pool: its slots, and the on-demand engine runs go to while
    /// every slot is taken.
    pub pooled: Option<(Pool, Linked)>,
    /// Identifies the compiled-code format of this family's engines.
    pub fingerprint: String,
}

impl Family {
    /// The engines of `kind`. Deterministic ones have no pool: few runs
    /// record or replay, and a second pool would reserve its slots' memory
    /// and stacks again.
    pub fn new(settings: &SandboxConfig, kind: EngineKind) -> anyhow::Result<Family> {
        let pooled = settings.pool_instances > 0 && !kind.deterministic;
        let main = Linked::new(settings, pooled, kind)?;
        let pooled = match pooled {
            true => Some((Pool::new(settings.pool_instances), Linked::new(settings, false, kind)?)),
            false => None,
        };
        let fingerprint = format!(
            "wasmtime-{}{}-{:016x}",
            if kind.deterministic { "det-" } else { "" },
            env!("CARGO_PKG_VERSION"),
            compatibility(&main.engine)
        );
        Ok(Family {
            main,
            pooled,
            fingerprint,
        })
    }

    /// Every engine of the family.
    pub fn engines(&self) -> impl Iterator<Item = &Engine> {
        std::iter::once(&self.main)
            .chain(self.pooled.as_ref().map(|(_, fallback)| fallback))
            .map(|linked| &linked.engine)
    }
}

/// A compiled plugin, ready to instantiate cheaply.
pub struct PreparedJob {
    /// The family it was compiled for.
    pub(super) kind: EngineKind,
    /// On the sandbox's main engine.
    pub(super) main: JobPre<RunState>,
    component: Component,
    /// On the on-demand fallback engine, made the first time the pool is
    /// full during one of this plugin's runs.
    fallback: OnceLock<Result<JobPre<RunState>, String>>,
}

impl PreparedJob {
    pub(super) fn new(kind: EngineKind, main: JobPre<RunState>, component: &Component) -> PreparedJob {
        PreparedJob {
            kind,
            main,
            component: component.clone(),
            fallback: OnceLock::new(),
        }
    }

    /// The plugin on the fallback engine (loaded from its own compiled
    /// code, not compiled again).
    pub(super) fn on(&self, fallback: &Linked) -> Result<&JobPre<RunState>, String> {
        self.fallback
            .get_or_init(|| {
                let bytes = self
                    .component
                    .serialize()
                    .map_err(|error| format!("serializing for the on-demand engine: {error}"))?;
                // SAFETY: the bytes are this component's own compiled code,
                // just serialized, for an engine of the same settings but
                // the allocator (which compiled code does not depend on).
                let component = unsafe { Component::deserialize(&fallback.engine, &bytes) }
                    .map_err(|error| format!("loading on the on-demand engine: {error}"))?;
                fallback.prepare(&component).map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Counts the pool's component-instance slots in use, so a run that would
/// find the pool full goes to the fallback engine instead.
pub(super) struct Pool {
    capacity: u32,
    in_use: AtomicU32,
}

/// One slot of the pool, given back on drop.
pub(super) struct Lease<'a>(&'a AtomicU32);

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    pub fn new(capacity: u32) -> Pool {
        Pool {
            capacity,
            in_use: AtomicU32::new(0),
        }
    }

    /// A slot, or None when all are taken.
    pub fn lease(&self) -> Option<Lease<'_>> {
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.capacity).then_some(used + 1)
            })
            .ok()
            .map(|_| Lease(&self.in_use))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_lends_its_capacity_and_takes_slots_back() {
        let pool = Pool::new(2);
        let first = pool.lease().expect("a free slot");
        let second = pool.lease().expect("a free slot");
        assert!(pool.lease().is_none(), "the pool is full");
        drop(first);
        let third = pool.lease().expect("a slot came back");
        drop((second, third));
        assert_eq!(pool.in_use.load(Ordering::Acquire), 0);
    }

    #[test]
    fn pooled_and_on_demand_engines_share_compiled_code() {
        let settings = SandboxConfig {
            max_memory: 64 << 20,
            pool_instances: 4,
            core_instances_per_slot: crate::config::DEFAULT_POOL_CORE_INSTANCES,
        };
        for metering in [Metering::Unmetered, Metering::Fuel] {
            let (pooled, on_demand) = (
                Linked::new(&settings, true, metering.into()).unwrap(),
                Linked::new(&settings, false, metering.into()).unwrap(),
            );
            assert_eq!(compatibility(&pooled.engine), compatibility(&on_demand.engine));
        }
    }

    /// A core module exporting `f(a: f32, b: f32) -> i32`: the bits of `a / b`.
    const DIVIDE: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
        0x01, 0x07, 0x01, 0x60, 0x02, 0x7d, 0x7d, 0x01, 0x7f, // type: (f32, f32) -> i32
        0x03, 0x02, 0x01, 0x00, // function 0 of type 0
        0x07, 0x05, 0x01, 0x01, b'f', 0x00, 0x00, // export "f"
        0x0a, 0x0a, 0x01, 0x08, 0x00, // code: one body, no locals
        0x20, 0x00, 0x20, 0x01, 0x95, 0xbc, 0x0b, // local.get 0, local.get 1, f32.div, i32.reinterpret_f32, end
    ];

    #[tokio::test]
    async fn the_deterministic_engines_canonicalise_nans() {
        let settings = SandboxConfig {
            max_memory: 64 << 20,
            pool_instances: 0,
            core_instances_per_slot: crate::config::DEFAULT_POOL_CORE_INSTANCES,
        };
        let mut bits = Vec::new();
        for deterministic in [false, true] {
            let linked = Linked::new(&settings, false, EngineKind::of(Metering::Unmetered, deterministic)).unwrap();
            let module = wasmtime::Module::new(&linked.engine, DIVIDE).unwrap();
            let mut store = wasmtime::Store::new(&linked.engine, ());
            store.set_epoch_deadline(u64::MAX);
            let instance = wasmtime::Instance::new_async(&mut store, &module, &[]).await.unwrap();
            let divide = instance.get_typed_func::<(f32, f32), i32>(&mut store, "f").unwrap();
            bits.push(divide.call_async(&mut store, (0.0, 0.0)).await.unwrap() as u32);
        }
        assert_eq!(bits[1], 0x7fc0_0000, "the canonical NaN: {:#x}", bits[1]);
        // x86's own NaN of 0/0 has its sign bit set: what the flag changes.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(bits[0], 0xffc0_0000, "{:#x}", bits[0]);
    }

    #[test]
    fn code_of_each_kind_of_engine_stays_apart() {
        let settings = SandboxConfig {
            max_memory: 64 << 20,
            pool_instances: 0,
            core_instances_per_slot: crate::config::DEFAULT_POOL_CORE_INSTANCES,
        };
        let hashes: Vec<u64> = EngineKind::ALL
            .iter()
            .map(|kind| compatibility(&Linked::new(&settings, false, *kind).unwrap().engine))
            .collect();
        for (index, hash) in hashes.iter().enumerate() {
            assert_eq!(EngineKind::ALL[index].index(), index);
            assert_eq!(
                hashes.iter().filter(|other| *other == hash).count(),
                1,
                "{:?}",
                EngineKind::ALL[index]
            );
        }
    }
}
