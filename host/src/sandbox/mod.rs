//! The wasmtime sandbox: shared engines (component model, epoch interruption
//! driven by a ticker thread, fuel for the jobs that ask for it; instances
//! from a pool, with an on-demand engine beside it for when the pool is
//! full, see [`engine`]), and per run a fresh `Store` with its own limits,
//! instantiated from a `JobPre` kept per plugin. It knows nothing of HTTP or
//! storage: callers hand it bytes and capabilities and get back an outcome
//! with an error kind.

mod engine;
pub mod host;
pub mod limits;
pub mod log;
pub mod mask;
pub mod replay;
mod runner;
pub mod tape;
mod ticker;
pub mod wit;

pub use engine::{Allocator, ComponentError, EngineKind, Metering, PreparedJob, SandboxConfig};
pub use host::{Capabilities, Interruption, KeyValue, MemoryKeyValue, RunContext, RunState, ZoneLookup, ZoneSource};
pub use runner::{EPOCH_TICK, RunOutcome, RunRequest, Sandbox, Spill, check_header};
pub use tape::{Divergence, TapeMode, TapeResult};

/// The bindings of the contract's current world (older worlds stay in
/// [`wit`] beside it).
pub use wit::v0_1 as bindings;
