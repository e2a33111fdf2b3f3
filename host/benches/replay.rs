//! What recording and replaying cost a run, single thread, through
//! `Sandbox::run` (no store: the tape's write is one more value in the
//! run's batch, measured by `run_writes`):
//!
//! - `replay/{noop,calls}/off`: an ordinary run, on the pooled engine.
//! - `replay/{noop,calls}/deterministic`: the same on the deterministic
//!   engine recorded runs use (on demand, NaNs canonicalised), no tape:
//!   the engine's share of the recording overhead.
//! - `replay/{noop,calls}/record`: a recorded run.
//! - `replay/{noop,calls}/replay`: its replay, every answer from the tape.
//! - `replay/compile/{normal,deterministic}`: compiling the noop plugin on
//!   each engine (what the first recorded run of a plugin pays once).
//!
//! `noop` is the plugin that does nothing; `calls` is the `replay` test
//! plugin with `calls: 1000` (1000 × a kv read, a wall clock read and 8
//! random bytes, over an in-memory kv), about 2000 tape entries.
//!
//! `cargo bench -p sandcron --bench replay`.

#[path = "support/mod.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use sandcron::model::run::RunLimits;
use sandcron::sandbox::tape::Playback;
use sandcron::sandbox::{EngineKind, Metering, PreparedJob, RunRequest, Sandbox, SandboxConfig, TapeMode, TapeResult};

fn request(input: &[u8], tape: TapeMode) -> RunRequest {
    let limits = RunLimits {
        fuel: None,
        timeout_ms: 30_000,
        memory: 64 << 20,
        output: 1 << 20,
        logs: 1 << 20,
    };
    support::run_request(limits, input, tape)
}

/// The plugin prepared on the normal and the deterministic engine.
fn prepared(sandbox: &Sandbox, bytes: &[u8]) -> (PreparedJob, PreparedJob) {
    let [normal, deterministic] = [false, true].map(|deterministic| {
        let kind = EngineKind::of(Metering::Unmetered, deterministic);
        let component = sandbox.compile(bytes, kind).expect("compile");
        sandbox.prepare(&component, kind).expect("prepare")
    });
    (normal, deterministic)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = Sandbox::new(&SandboxConfig {
        max_memory: 1 << 30,
        pool_instances: 16,
        core_instances_per_slot: sandcron::config::DEFAULT_POOL_CORE_INSTANCES,
    })
    .expect("sandbox");
    let mut group = c.benchmark_group("replay");
    let plugins = [
        ("noop", support::noop_bytes(), b"{}".to_vec()),
        ("calls", support::plugin_bytes("replay"), br#"{"calls": 1000}"#.to_vec()),
    ];
    for (name, bytes, input) in &plugins {
        let (normal, deterministic) = prepared(&sandbox, bytes);
        // One recorded run and its replay, checked before they are timed.
        let recorded = runtime.block_on(sandbox.run(&deterministic, request(input, TapeMode::Record { cap: 1 << 20 })));
        let output = recorded.result.clone().expect("the recorded run succeeds");
        let Some(TapeResult::Recorded(record)) = recorded.tape else {
            panic!("no tape")
        };
        let tape = record.tape.expect("within the cap");
        eprintln!("{name}: {} calls, a tape of {} bytes", record.calls, tape.len());
        let replay = || TapeMode::Replay(Playback::open(tape.clone()).expect("a tape"));
        let replayed = runtime.block_on(sandbox.run(&deterministic, request(input, replay())));
        assert_eq!(replayed.result, Ok(output), "{name}: the replay's output");
        assert_eq!(replayed.tape, Some(TapeResult::Replayed(None)), "{name}");

        let cases: [(&str, &PreparedJob, &dyn Fn() -> TapeMode); 4] = [
            ("off", &normal, &|| TapeMode::Off),
            ("deterministic", &deterministic, &|| TapeMode::Off),
            ("record", &deterministic, &|| TapeMode::Record { cap: 1 << 20 }),
            ("replay", &deterministic, &replay),
        ];
        for (case, prepared, tape) in cases {
            group.bench_function(format!("{name}/{case}"), |b| {
                b.iter(|| {
                    let outcome = runtime.block_on(sandbox.run(prepared, request(input, tape())));
                    assert!(outcome.result.is_ok());
                })
            });
        }
    }
    let noop = &plugins[0].1;
    for (case, deterministic) in [("normal", false), ("deterministic", true)] {
        let kind = EngineKind::of(Metering::Unmetered, deterministic);
        group.bench_function(format!("compile/{case}"), |b| {
            b.iter(|| sandbox.compile(noop, kind).expect("compile"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
