//! The store's resource limiter: caps linear memory and tables per run (one
//! budget for both: a table's elements count as bytes) and remembers whether it refused a growth, so a guest that aborts after a
//! failed allocation is reported as `memory_limit`, not a bare trap.

use wasmtime::ResourceLimiter;

/// Instances, tables and memories a single run may create. A Rust
/// wasm32-wasip2 component uses a handful of each.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;
/// Table elements per table.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Host memory a table element takes (a funcref or externref is a pointer
/// in wasmtime's tables), charged against the run's memory limit.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Per-run limiter over the total of all linear memories and tables.
#[derive(Debug)]
pub struct RunLimiter {
    memory_limit: usize,
    memory_in_use: usize,
    peak_memory: usize,
    refused: bool,
}

impl RunLimiter {
    /// A limiter allowing `memory_limit` bytes of linear memory and tables in all.
    pub fn new(memory_limit: u64) -> RunLimiter {
        RunLimiter {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            memory_in_use: 0,
            peak_memory: 0,
            refused: false,
        }
    }

    /// True once a memory or table growth was refused.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// The most linear memory and tables the run held at once, bytes.
    pub fn peak_memory(&self) -> u64 {
        self.peak_memory as u64
    }

    /// Takes `growth` bytes from the budget, or refuses (and remembers it).
    fn charge(&mut self, growth: usize) -> bool {
        let total = self.memory_in_use.saturating_add(growth);
        if total > self.memory_limit {
            self.refused = true;
            return false;
        }
        self.memory_in_use = total;
        self.peak_memory = self.peak_memory.max(total);
        true
    }
}

impl ResourceLimiter for RunLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|maximum| desired > maximum) {
            self.refused = true;
            return Ok(false);
        }
        Ok(self.charge(desired.saturating_sub(current)))
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS || maximum.is_some_and(|maximum| desired > maximum) {
            self.refused = true;
            return Ok(false);
        }
        Ok(self.charge(desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES)))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_total_is_refused_and_remembered() {
        let mut limiter = RunLimiter::new(10 << 20);
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap());
        assert!(
            limiter.memory_growing(0, 4 << 20, None).unwrap(),
            "a second memory counts toward the total"
        );
        assert!(!limiter.refused());
        assert!(!limiter.memory_growing(4 << 20, 8 << 20, None).unwrap());
        assert!(limiter.refused());
        assert_eq!(limiter.peak_memory(), 8 << 20);
    }

    #[test]
    fn tables_count_toward_the_same_limit_as_memory() {
        let mut limiter = RunLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 19, None).unwrap());
        // 1,000 elements of 8 bytes fit beside half a MiB of memory ...
        assert!(limiter.table_growing(0, 1_000, None).unwrap());
        assert_eq!(limiter.peak_memory(), (1 << 19) + 1_000 * TABLE_ELEMENT_BYTES as u64);
        // ... but a table growing by 64 Ki elements does not.
        assert!(!limiter.table_growing(1_000, 1_000 + 65_536, None).unwrap());
        assert!(limiter.refused());
    }
}
