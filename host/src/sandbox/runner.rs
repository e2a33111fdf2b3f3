//! One run in the sandbox: a fresh `Store` with its own limits and
//! capabilities, instantiated from a prepared plugin, driven to its outcome
//! under a deadline, with the error kind of whatever ended it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng;

use wasmtime::component::Component;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use crate::model::run::RunLimits;
use crate::model::{ErrorKind, RunError};

use super::engine::{self, Allocator, ComponentError, EngineKind, Metering, PreparedJob, SandboxConfig};
use super::host::{Capabilities, Interruption, RunContext, RunState};
use super::tape::{self, Recorded, Recording, Seeds, SharedTape, Tape, TapeMode, TapeMonotonic, TapeResult, TapeWall};
use super::{host, limits, log, mask, ticker, wit};

/// How often the epoch advances; the precision of deadlines and cancels.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// A plugin error message is cut to this many bytes.
const MAX_ERROR_MESSAGE: usize = 8 << 10;
/// Fuel between forced checkpoints. Cranelift keeps the fuel counter in a
/// register and saves it only on calls and at these checkpoints, so an
/// epoch interruption would otherwise report stale fuel; with it,
/// `fuel_consumed` of an interrupted run is exact to within this amount.
const FUEL_CHECKPOINT: u64 = 50_000_000;

/// What one run needs besides the compiled plugin.
pub struct RunRequest {
    /// The WIT run-context.
    pub context: RunContext,
    /// Input bytes.
    pub input: Vec<u8>,
    /// Limits for this run.
    pub limits: RunLimits,
    /// What the plugin may use.
    pub capabilities: Capabilities,
    /// Set to stop the run (within one epoch tick).
    pub cancel: Arc<AtomicBool>,
    /// Where the run's log goes (its cap is `limits.logs`); the caller may
    /// read it while the run goes on.
    pub log: log::LogSink,
    /// Whether the run records its host calls, or replays a record.
    pub tape: TapeMode,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The output, or why there is none.
    pub result: Result<Vec<u8>, RunError>,
    /// Fuel the instance spent (None when the run was unmetered).
    pub fuel_consumed: Option<u64>,
    /// Most linear memory held at once.
    pub peak_memory: u64,
    /// The captured log.
    pub log: Vec<u8>,
    /// Where the instance was allocated.
    pub allocator: Allocator,
    /// Why a sandbox with a pool put the instance on demand, if it did.
    pub spill: Option<Spill>,
    /// What the run recorded, or where its replay diverged (None when it
    /// did neither, or never started).
    pub tape: Option<TapeResult>,
}

/// Why a run went to the on-demand engine although there is a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spill {
    /// Every slot of the pool was taken.
    Slots,
    /// A slot was free, but not enough of the pool's core instances,
    /// memories or tables for this component.
    Resources,
}

impl Spill {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Spill::Slots => "slots",
            Spill::Resources => "resources",
        }
    }
}

/// The shared engines and linkers.
pub struct Sandbox {
    /// One family per kind, in [`EngineKind::ALL`]'s order.
    families: Vec<engine::Family>,
    ticker: ticker::Ticker,
}

impl Sandbox {
    /// Builds the engines, their linkers with every import, and the epoch ticker.
    pub fn new(settings: &SandboxConfig) -> anyhow::Result<Sandbox> {
        let families = EngineKind::ALL
            .iter()
            .map(|kind| engine::Family::new(settings, *kind))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let engines: Vec<_> = families
            .iter()
            .flat_map(engine::Family::engines)
            .map(wasmtime::Engine::weak)
            .collect();
        let ticker = ticker::Ticker::spawn(EPOCH_TICK, move || {
            let mut alive = false;
            for engine in engines.iter().filter_map(|weak| weak.upgrade()) {
                engine.increment_epoch();
                alive = true;
            }
            alive
        });
        Ok(Sandbox { families, ticker })
    }

    fn family(&self, kind: impl Into<EngineKind>) -> &engine::Family {
        &self.families[kind.into().index()]
    }

    /// Identifies the compiled-code format of one kind's engines:
    /// artifacts compiled by an engine with another fingerprint must be
    /// compiled again.
    pub fn fingerprint(&self, kind: impl Into<EngineKind>) -> &str {
        &self.family(kind).fingerprint
    }

    /// Validates and compiles component bytes (CPU-heavy: call off the runtime).
    pub fn compile(&self, bytes: &[u8], kind: impl Into<EngineKind>) -> Result<Component, ComponentError> {
        check_header(bytes)?;
        Component::new(&self.family(kind).main.engine, bytes)
            .map_err(|error| ComponentError::Invalid(format!("{error:#}")))
    }

    /// Serializes a compiled component for the artifact cache.
    pub fn serialize(&self, component: &Component) -> anyhow::Result<Vec<u8>> {
        component
            .serialize()
            .map_err(|error| anyhow::anyhow!("serializing a component: {error}"))
    }

    /// Loads an artifact produced by [`Sandbox::serialize`].
    ///
    /// # Safety
    ///
    /// `bytes` must come from [`Sandbox::serialize`] of a component compiled
    /// for `kind` by an engine with the same fingerprint, unmodified:
    /// wasmtime maps it as executable code. The plugin module stores
    /// artifacts with their sha256 and checks it before calling this.
    pub unsafe fn deserialize(&self, bytes: &[u8], kind: impl Into<EngineKind>) -> anyhow::Result<Component> {
        // SAFETY: the caller guarantees the bytes are our own serialized artifact.
        unsafe { Component::deserialize(&self.family(kind).main.engine, bytes) }
            .map_err(|error| anyhow::anyhow!("loading an artifact: {error}"))
    }

    /// Resolves imports and exports once, so each run only instantiates.
    /// `component` must have been compiled or loaded for `kind`.
    pub fn prepare(&self, component: &Component, kind: impl Into<EngineKind>) -> Result<PreparedJob, ComponentError> {
        let kind = kind.into();
        let main = self.family(kind).main.prepare(component)?;
        Ok(PreparedJob::new(kind, main, component))
    }

    /// Runs one fresh instance to completion under `request.limits`.
    pub async fn run(&self, prepared: &PreparedJob, request: RunRequest) -> RunOutcome {
        let _ticking = self.ticker.ticking();
        let log = request.log.clone();
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(log.stream())
            .stderr(log.stream())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let deadline = Instant::now() + Duration::from_millis(request.limits.timeout_ms);
        let secrets = log::Secrets::new(&request.capabilities.secrets);
        let cancel_flag = request.cancel.clone();
        let tape = taped(&mut wasi, request.tape, &request.capabilities.secrets);
        let state = RunState {
            wasi: wasi.build(),
            table: wasmtime::component::ResourceTable::new(),
            limiter: limits::RunLimiter::new(request.limits.memory),
            log: log.clone(),
            capabilities: request.capabilities,
            http_budget: host::HTTP_BUDGET,
            deadline,
            cancel: request.cancel,
            zone: None,
            tape: tape.clone(),
        };
        let needed = EngineKind::of(Metering::of(request.limits.fuel), tape.is_some());
        if needed.metering != prepared.kind.metering || (needed.deterministic && !prepared.kind.deterministic) {
            let message = format!(
                "the plugin was prepared {:?} for a run that is {needed:?}",
                prepared.kind
            );
            return failed_outcome(ErrorKind::PluginUnavailable, message, log, &secrets);
        }
        // A pool slot, or (every slot taken) the on-demand engine; the
        // lease outlives the store.
        let family = self.family(prepared.kind);
        let main = (&family.main.engine, &prepared.main);
        let (mut lease, (engine, mut pre), mut allocator, mut spill) = match &family.pooled {
            None => (None, main, Allocator::OnDemand, None),
            Some((pool, fallback)) => match pool.lease() {
                Some(lease) => (Some(lease), main, Allocator::Pooling, None),
                None => match prepared.on(fallback) {
                    Ok(pre) => (None, (&fallback.engine, pre), Allocator::OnDemand, Some(Spill::Slots)),
                    Err(message) => return failed_outcome(ErrorKind::PluginUnavailable, message, log, &secrets),
                },
            },
        };
        let mut store = match new_store(engine, state, request.limits.fuel) {
            Ok(store) => store,
            Err(message) => return failed_outcome(ErrorKind::PluginUnavailable, message, log, &secrets),
        };
        let context = wit::v0_1::run_context(&request.context);
        // Host calls do not burn fuel or see epochs; bound them by the
        // deadline too, with one tick of grace for the epoch path to win.
        let budget = Duration::from_millis(request.limits.timeout_ms) + EPOCH_TICK * 5;
        let ends = tokio::time::Instant::now() + budget;
        let mut instance = tokio::time::timeout_at(ends, pre.instantiate_async(&mut store)).await;
        // The pool's slot was free but its core instances, memories or
        // tables ran out (a component that needs more of them than a slot's
        // share): the run goes to the on-demand engine instead of failing.
        if let (Ok(Err(error)), Some((_, fallback))) = (&instance, &family.pooled)
            && allocator == Allocator::Pooling
            && error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some()
        {
            let moved = prepared.on(fallback).and_then(|fallback_pre| {
                let mut state = store.into_data();
                state.limiter = limits::RunLimiter::new(request.limits.memory);
                new_store(&fallback.engine, state, request.limits.fuel).map(|store| (store, fallback_pre))
            });
            let (fallback_store, fallback_pre) = match moved {
                Ok(moved) => moved,
                Err(message) => return failed_outcome(ErrorKind::PluginUnavailable, message, log, &secrets),
            };
            (store, pre, allocator, spill) = (
                fallback_store,
                fallback_pre,
                Allocator::OnDemand,
                Some(Spill::Resources),
            );
            lease = None;
            instance = tokio::time::timeout_at(ends, pre.instantiate_async(&mut store)).await;
        }
        let _lease = lease;
        let called = match instance {
            Ok(Ok(instance)) => {
                let call = instance.call_run(&mut store, &context, &request.input);
                // A plugin waiting in a host call (a sleep, a poll) meets no
                // epoch check: a cancel reaches it here too, within a tick.
                let cancel = cancel_flag.clone();
                let cancelled = async move {
                    while !cancel.load(Ordering::Relaxed) {
                        tokio::time::sleep(EPOCH_TICK).await;
                    }
                };
                tokio::select! {
                    called = tokio::time::timeout_at(ends, call) => called.map(|called| called.map_err(Failure::Call)),
                    () = cancelled => Ok(Err(Failure::Call(wasmtime::Error::new(Interruption::Cancelled)))),
                }
            }
            Ok(Err(error)) => Ok(Err(Failure::Instantiate(error))),
            Err(elapsed) => Err(elapsed),
        };
        let result = match called {
            Ok(Ok(Ok(output))) if output.len() as u64 > request.limits.output => Err(RunError {
                kind: ErrorKind::OutputLimit,
                message: format!(
                    "the plugin returned {} bytes of output; the limit is {}",
                    output.len(),
                    request.limits.output
                ),
            }),
            Ok(Ok(Ok(output))) => Ok(output),
            Ok(Ok(Err(message))) => Err(RunError {
                kind: ErrorKind::PluginError,
                message,
            }),
            Ok(Err(failure)) => {
                let (error, details) = classify(failure, store.data().limiter.refused());
                // The whole chain and the wasm backtrace go to the log; the
                // run's error keeps one readable line.
                log.line("ERROR", &format!("sandcron: the run failed: {details}"));
                Err(error)
            }
            Err(_) => Err(RunError {
                kind: ErrorKind::Timeout,
                message: format!(
                    "the run passed its {} ms deadline inside a host call",
                    request.limits.timeout_ms
                ),
            }),
        };
        let fuel_consumed = request
            .limits
            .fuel
            .map(|budget| budget.saturating_sub(store.get_fuel().unwrap_or(0)));
        let peak_memory = store.data().limiter.peak_memory();
        drop(store);
        // Finishing a recording scans it for the secrets' values once more:
        // off the async workers when there are any.
        let tape = match tape {
            Some(tape) if !secrets.is_empty() => tokio::task::spawn_blocking(move || finish_tape(tape)).await.ok(),
            tape => tape.map(finish_tape),
        };
        let (result, log) = mask_words(
            result,
            log,
            secrets,
            deadline + EPOCH_TICK * 5,
            request.limits.timeout_ms,
        )
        .await;
        RunOutcome {
            result,
            fuel_consumed,
            peak_memory,
            log,
            allocator,
            spill,
            tape,
        }
    }
}

/// Sets a recorded or replayed run's clocks and random generators to go
/// through its tape, and gives the tape.
fn taped(
    wasi: &mut WasiCtxBuilder,
    mode: TapeMode,
    secrets: &std::collections::BTreeMap<String, String>,
) -> Option<SharedTape> {
    let (seeds, tape) = match mode {
        TapeMode::Off => return None,
        TapeMode::Record { cap } => {
            let seeds = Seeds::fresh();
            let secrets = tape::recorded_secrets(secrets);
            (seeds, Tape::Recording(Recording::new(&seeds, cap, secrets)))
        }
        TapeMode::Replay(playback) => (playback.seeds(), Tape::Playback(playback)),
    };
    let tape = Arc::new(Mutex::new(tape));
    wasi.wall_clock(TapeWall(tape.clone()))
        .monotonic_clock(TapeMonotonic(tape.clone()))
        .secure_random(ChaCha20Rng::from_seed(seeds.secure))
        .insecure_random(ChaCha20Rng::from_seed(seeds.insecure))
        .insecure_random_seed(seeds.insecure_seed);
    Some(tape)
}

/// The tape of a run whose store (and so its clocks) is gone.
fn finish_tape(tape: SharedTape) -> TapeResult {
    let tape = match Arc::try_unwrap(tape) {
        Ok(tape) => tape.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()),
        // Nothing else holds it once the store is dropped; were it held,
        // the record would be lost (and a replay not called identical),
        // not wrong.
        Err(shared) => {
            return match &*tape::lock(&shared) {
                Tape::Recording(recording) => TapeResult::Recorded(Recorded {
                    tape: None,
                    calls: recording.calls(),
                }),
                Tape::Playback(playback) => TapeResult::Replayed(Some(playback.unfinished())),
            };
        }
    };
    match tape {
        Tape::Recording(recording) => TapeResult::Recorded(recording.finish()),
        Tape::Playback(playback) => TapeResult::Replayed(playback.finish()),
    }
}

/// A store for one run on `engine`: the memory limiter, the fuel budget,
/// and the epoch check of the deadline and cancellation.
fn new_store(engine: &wasmtime::Engine, state: RunState, fuel: Option<u64>) -> Result<Store<RunState>, String> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    if let Some(fuel) = fuel {
        store
            .set_fuel(fuel)
            .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_CHECKPOINT)))
            .map_err(|error| format!("setting fuel: {error}"))?;
    }
    // Check the deadline and cancellation at every tick, yielding to the
    // runtime so a spinning guest does not hold a worker thread.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|context| {
        let state = context.data();
        if state.cancel.load(Ordering::Relaxed) {
            return Err(wasmtime::Error::new(Interruption::Cancelled));
        }
        if Instant::now() >= state.deadline {
            return Err(wasmtime::Error::new(Interruption::Timeout));
        }
        // A replay that left its record in a clock read (which cannot
        // fail) stops here.
        if let Some(tape) = &state.tape
            && let Tape::Playback(playback) = &*tape::lock(tape)
            && let Some(divergence) = playback.divergence()
        {
            return Err(wasmtime::Error::new(divergence.clone()));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    Ok(store)
}

/// The run's output, plugin error message and log with the secrets masked,
/// on a blocking thread (a big log or output takes a while to scan) and
/// within the run's deadline: a run whose words cannot be masked in time
/// fails with `timeout` and keeps none of them.
async fn mask_words(
    result: Result<Vec<u8>, RunError>,
    log: log::LogSink,
    secrets: log::Secrets,
    deadline: Instant,
    timeout_ms: u64,
) -> (Result<Vec<u8>, RunError>, Vec<u8>) {
    if secrets.is_empty() {
        let result = result.map_err(|error| match error.kind {
            ErrorKind::PluginError => RunError {
                kind: error.kind,
                message: truncate(error.message),
            },
            _ => error,
        });
        return (result, log.contents(&secrets));
    }
    let masked = tokio::task::spawn_blocking(move || -> Result<_, mask::MaskingTimedOut> {
        let result = match result {
            Ok(output) => Ok(secrets.mask_until(&output, Some(deadline))?),
            Err(error) if error.kind == ErrorKind::PluginError => {
                let message = secrets.mask_until(error.message.as_bytes(), Some(deadline))?;
                Err(RunError {
                    kind: error.kind,
                    message: truncate(String::from_utf8_lossy(&message).into_owned()),
                })
            }
            Err(error) => Err(error),
        };
        Ok((result, log.contents_until(&secrets, Some(deadline))?))
    })
    .await;
    match masked {
        Ok(Ok(words)) => words,
        Ok(Err(mask::MaskingTimedOut)) => (
            Err(RunError {
                kind: ErrorKind::Timeout,
                message: format!(
                    "the run passed its {timeout_ms} ms deadline while its output and log were masked for secrets; \
                     neither was kept"
                ),
            }),
            mask::WITHHELD.to_vec(),
        ),
        Err(error) => (
            Err(RunError {
                kind: ErrorKind::Trap,
                message: format!("the host failed while masking the run's secrets: {error}"),
            }),
            mask::WITHHELD.to_vec(),
        ),
    }
}

enum Failure {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

fn failed_outcome(kind: ErrorKind, message: String, log: log::LogSink, secrets: &log::Secrets) -> RunOutcome {
    RunOutcome {
        result: Err(RunError { kind, message }),
        fuel_consumed: None,
        peak_memory: 0,
        log: log.contents(secrets),
        allocator: Allocator::OnDemand,
        spill: None,
        tape: None,
    }
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_ERROR_MESSAGE {
        let mut end = MAX_ERROR_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(" [truncated]");
    }
    message
}

/// Maps a wasmtime error to the run's error kind and a one-line message
/// (the cause, and the innermost frame of the plugin's own code when the
/// component has names); the second value is the whole error with its wasm
/// backtrace, for the run's log.
fn classify(failure: Failure, memory_refused: bool) -> (RunError, String) {
    let (error, instantiating) = match failure {
        Failure::Instantiate(error) => (error, true),
        Failure::Call(error) => (error, false),
    };
    let details = format!("{error:?}");
    let message = truncate(one_line(&error));
    let kind = if let Some(interruption) = error.downcast_ref::<Interruption>() {
        match interruption {
            Interruption::Timeout => ErrorKind::Timeout,
            // Cancellation is a status, not an error kind; the executor
            // checks the cancel flag before looking at this.
            Interruption::Cancelled => ErrorKind::Timeout,
        }
    } else if let Some(trap) = error.downcast_ref::<Trap>() {
        match trap {
            Trap::OutOfFuel => ErrorKind::FuelExhausted,
            Trap::Interrupt => ErrorKind::Timeout,
            // A Rust guest that cannot allocate aborts with `unreachable`:
            // report the limit it hit, not the symptom.
            _ if memory_refused => ErrorKind::MemoryLimit,
            _ => ErrorKind::Trap,
        }
    } else if memory_refused {
        ErrorKind::MemoryLimit
    } else if instantiating {
        ErrorKind::PluginUnavailable
    } else {
        ErrorKind::Trap
    };
    (RunError { kind, message }, details)
}

/// The first line of the error's cause ("wasm trap: call stack exhausted"),
/// with where it happened when a frame has a name that is the plugin's own
/// (not the standard library's panic and abort machinery).
fn one_line(error: &wasmtime::Error) -> String {
    let cause = error.root_cause().to_string();
    let cause = cause.lines().next().unwrap_or_default().trim();
    let cause = if cause.is_empty() { "the run failed" } else { cause };
    let frame = error.downcast_ref::<wasmtime::WasmBacktrace>().and_then(|backtrace| {
        backtrace
            .frames()
            .iter()
            .filter_map(wasmtime::FrameInfo::func_name)
            .find(|name| !is_runtime_frame(name))
    });
    match frame {
        Some(name) => format!("{cause} (in {name})"),
        None => cause.to_string(),
    }
}

/// Frames of the guest's language runtime rather than its code.
fn is_runtime_frame(name: &str) -> bool {
    const RUNTIME: [&str; 10] = [
        "std::",
        "core::",
        "alloc::",
        "__rust",
        "rust_panic",
        "abort",
        "<std::",
        "<core::",
        "<alloc::",
        "wit_bindgen",
    ];
    RUNTIME.iter().any(|prefix| name.starts_with(prefix))
}

/// Rejects what is clearly not a component before asking wasmtime (cheap:
/// the first eight bytes).
pub fn check_header(bytes: &[u8]) -> Result<(), ComponentError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(ComponentError::NotWasm);
    }
    // Core modules have version 1 and layer 0; components have layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(ComponentError::CoreModule);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_core_modules_and_non_wasm_apart() {
        assert_eq!(check_header(b""), Err(ComponentError::NotWasm));
        assert_eq!(check_header(b"hello world"), Err(ComponentError::NotWasm));
        assert_eq!(check_header(b"\0asm\x01\0\0\0"), Err(ComponentError::CoreModule));
        assert_eq!(check_header(b"\0asm\x0d\0\x01\0"), Ok(()));
    }
}
