//! The engines runs execute on: one whose instances come from the pooling
//! allocator (slots reused, memory reset copy-on-write), and, beside it, an
//! on-demand engine that takes the runs arriving while every pool slot is
//! taken, so a full pool slows a run down instead of failing it. A plugin
//! is prepared (imports resolved, exports looked up) once per engine.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::{Job as JobWorld, JobPre};
use super::{ASYNC_STACK, MAX_WASM_STACK, RunState, SandboxConfig};

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

fn engine_config(settings: &SandboxConfig, pooled: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.async_stack_size(ASYNC_STACK);
    // Nothing here uses component-model async; turning its bookkeeping off
    // saves several microseconds per instance.
    config.concurrency_support(false);
    if pooled {
        let mut pool = PoolingAllocationConfig::new();
        let instances = settings.pool_instances;
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(8))
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
    pub fn new(settings: &SandboxConfig, pooled: bool) -> anyhow::Result<Linked> {
        let engine = Engine::new(&engine_config(settings, pooled))
            .map_err(|error| anyhow::anyhow!("wasmtime engine: {error}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|error| anyhow::anyhow!("linking WASI: {error}"))?;
        JobWorld::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |state| state)
            .map_err(|error| anyhow::anyhow!("linking sandcron imports: {error}"))?;
        Ok(Linked { engine, linker })
    }

    /// Resolves a component's imports and exports on this engine.
    pub fn prepare(&self, component: &Component) -> Result<JobPre<RunState>, super::ComponentError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|error| super::ComponentError::UnsatisfiedImport(format!("{error:#}")))?;
        JobPre::new(instance_pre).map_err(|error| super::ComponentError::WrongExports(format!("{error:#}")))
    }
}

/// A compiled plugin, ready to instantiate cheaply.
pub struct PreparedJob {
    /// On the sandbox's main engine.
    pub(super) main: JobPre<RunState>,
    component: Component,
    /// On the on-demand fallback engine, made the first time the pool is
    /// full during one of this plugin's runs.
    fallback: OnceLock<Result<JobPre<RunState>, String>>,
}

impl PreparedJob {
    pub(super) fn new(main: JobPre<RunState>, component: &Component) -> PreparedJob {
        PreparedJob {
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
        };
        let (pooled, on_demand) = (
            Linked::new(&settings, true).unwrap(),
            Linked::new(&settings, false).unwrap(),
        );
        assert_eq!(compatibility(&pooled.engine), compatibility(&on_demand.engine));
    }
}
