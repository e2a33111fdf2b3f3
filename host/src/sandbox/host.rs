//! What a plugin may call: the `sandcron:plugin` imports (log, kv, http,
//! secrets, run-info) and WASI preview 2, locked down. One `RunState` per
//! run; the capabilities it holds were granted by the executor for this run
//! only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::RunLimiter;
use super::log::LogSink;
use super::tape::{self, Answer, Call, SharedTape, Tape};
use crate::model::Trigger;
use crate::outbound::{FetchRequest, FetchResponse, HttpGrant, MAX_REQUESTS_PER_RUN, Outbound};

/// Largest kv key, bytes.
pub const MAX_KV_KEY_BYTES: usize = 1024;
/// Largest kv value, bytes.
pub const MAX_KV_VALUE_BYTES: usize = 1 << 20;
/// Most keys one `keys` call returns.
pub const MAX_KV_KEYS: usize = 10_000;

/// Durable key-value state of one job, as the sandbox needs it. The
/// executor implements it over the store, `exec` over memory.
pub trait KeyValue: Send + Sync {
    /// The value under `key`.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Stores `value` under `key`.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String>;
    /// Removes `key`.
    fn delete(&self, key: &str) -> Result<(), String>;
    /// Keys starting with `prefix`, in order, at most `limit`.
    fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, String>;
}

/// An in-memory [`KeyValue`] (for `sandcron exec` and benchmarks).
#[derive(Default)]
pub struct MemoryKeyValue {
    entries: std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl MemoryKeyValue {
    fn entries(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Vec<u8>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl KeyValue for MemoryKeyValue {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.entries().get(key).cloned())
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.entries().insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<(), String> {
        self.entries().remove(key);
        Ok(())
    }
    fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, String> {
        Ok(self
            .entries()
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, _)| key.clone())
            .collect())
    }
}

/// What one run may use beyond computing.
#[derive(Clone)]
pub struct Capabilities {
    /// The job's kv state.
    pub kv: Arc<dyn KeyValue>,
    /// The HTTP client behind the SSRF wall; None turns `http.fetch` off.
    pub outbound: Option<Arc<Outbound>>,
    /// The hosts the run may reach.
    pub http: HttpGrant,
    /// The secrets granted to the run, by name.
    pub secrets: BTreeMap<String, String>,
    /// Where `run-info` finds the job's time zone.
    pub zone: ZoneSource,
}

impl Capabilities {
    /// Computing and kv only: no HTTP, no secrets, the zone UTC.
    pub fn kv_only(kv: Arc<dyn KeyValue>) -> Capabilities {
        Capabilities {
            kv,
            outbound: None,
            http: HttpGrant::default(),
            secrets: BTreeMap::new(),
            zone: ZoneSource::Known(Tz::UTC),
        }
    }
}

/// Reads a job's time zone from wherever the job is kept.
pub type ZoneLookup = Arc<dyn Fn() -> Result<Tz, String> + Send + Sync>;

/// Where a run learns its job's time zone (the `run-info` import). It is
/// looked up the first time the plugin asks, so the runs of plugins that
/// never ask (most) read nothing for it, and the run record carries no
/// copy of it.
#[derive(Clone)]
pub enum ZoneSource {
    /// Known before the run starts (`sandcron exec`: UTC).
    Known(Tz),
    /// Read from the job, on a kv lane (it may read the store).
    Lookup(ZoneLookup),
}

/// The offset from UTC, in seconds east, of `zone` at `at_ms` (milliseconds
/// since the Unix epoch; instants past chrono's range read as its ends).
pub fn utc_offset(zone: Tz, at_ms: i64) -> i32 {
    let at = DateTime::from_timestamp_millis(at_ms).unwrap_or(if at_ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    zone.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc()
}

/// Why the epoch callback stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Interruption {
    /// The wall-clock deadline passed.
    #[error("the run passed its wall-clock deadline")]
    Timeout,
    /// Someone cancelled the run.
    #[error("the run was cancelled")]
    Cancelled,
}

/// The run context handed to the plugin.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Tenant.
    pub tenant: String,
    /// Job id.
    pub job_id: String,
    /// Job name.
    pub job_name: String,
    /// Run id.
    pub run_id: String,
    /// Attempt, from 1.
    pub attempt: u32,
    /// What started it.
    pub trigger: Trigger,
    /// When it was due, ms since the epoch.
    pub scheduled_at_ms: i64,
}

/// The data of one run's `Store`.
pub struct RunState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: RunLimiter,
    pub(super) log: LogSink,
    pub(super) capabilities: Capabilities,
    /// Requests this run may still make.
    pub(super) http_budget: u32,
    pub(super) deadline: Instant,
    pub(super) cancel: Arc<AtomicBool>,
    /// The job's zone once `run-info` has looked it up.
    pub(super) zone: Option<Tz>,
    /// The tape of a run that records or replays.
    pub(super) tape: Option<SharedTape>,
}

impl RunState {
    /// The job's zone, looked up on the first call.
    async fn zone(&mut self) -> wasmtime::Result<Tz> {
        if let Some(zone) = self.zone {
            return Ok(zone);
        }
        if let Some(answer) = self.replayed(Call::Zone)? {
            let zone = match answer {
                Answer::Zone(name) => name.parse::<Tz>().map_err(|_| {
                    wasmtime::Error::msg(format!("run-info: the recorded zone {name:?} is unknown here"))
                })?,
                other => return Err(from_tape(other)),
            };
            self.zone = Some(zone);
            return Ok(zone);
        }
        let zone = look_up_zone(self.capabilities.zone.clone()).await;
        self.record(Call::Zone, || match &zone {
            Ok(zone) => Answer::Zone(zone.name().to_string()),
            Err(error) => trap_answer(error),
        });
        let zone = zone?;
        self.zone = Some(zone);
        Ok(zone)
    }

    /// In a replay, the recorded answer to `call` (a call the record does
    /// not have there ends the run with the divergence); None otherwise.
    fn replayed(&self, call: Call<'_>) -> wasmtime::Result<Option<Answer>> {
        let Some(tape) = &self.tape else {
            return Ok(None);
        };
        match &mut *tape::lock(tape) {
            Tape::Recording(_) => Ok(None),
            Tape::Playback(playback) => playback.answer(call).map(Some).map_err(wasmtime::Error::new),
        }
    }

    /// In a recorded run, puts `call` and its answer on the tape.
    fn record(&self, call: Call<'_>, answer: impl FnOnce() -> Answer) {
        if let Some(tape) = &self.tape
            && let Tape::Recording(recording) = &mut *tape::lock(tape)
        {
            recording.push_with(call, answer);
        }
    }

    /// Whether the run records (so a call's arguments are worth keeping
    /// for the tape after the call took them).
    fn records(&self) -> bool {
        self.tape
            .as_ref()
            .is_some_and(|tape| matches!(*tape::lock(tape), Tape::Recording(_)))
    }
}

/// Reads the job's zone from where it is kept.
async fn look_up_zone(source: ZoneSource) -> wasmtime::Result<Tz> {
    Ok(match source {
        ZoneSource::Known(zone) => zone,
        // A failed read of the job traps the run (as a failed kv read
        // does) rather than tell the plugin a zone that may be wrong.
        ZoneSource::Lookup(lookup) => crate::lanes::KV
            .run(move || lookup())
            .await
            .map_err(|error| wasmtime::Error::msg(format!("run-info: the job could not be read: {error}")))?
            .map_err(|problem| wasmtime::Error::msg(format!("run-info: the job could not be read: {problem}")))?,
    })
}

/// A recorded answer that ends the run, as the recorded run ended.
fn from_tape(answer: Answer) -> wasmtime::Error {
    match answer {
        Answer::Trap(message) => wasmtime::Error::msg(message),
        // Opening the tape checked that each answer fits its call.
        other => wasmtime::Error::msg(format!("the record answered with {other:?} where it cannot")),
    }
}

/// How the tape keeps a call's error that ended the run.
fn trap_answer(error: &wasmtime::Error) -> Answer {
    Answer::Trap(error.root_cause().to_string())
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("kv: the key is empty".to_string());
    }
    if key.len() > MAX_KV_KEY_BYTES {
        return Err(format!(
            "kv: the key is {} bytes; the limit is {MAX_KV_KEY_BYTES}",
            key.len()
        ));
    }
    Ok(())
}

/// Runs a kv call on a kv lane thread: the store behind it reads and
/// writes the database, which must not hold up an async worker (and the
/// other tenants' runs and requests on it), nor add threads that touch it.
async fn off_runtime<T: Send + 'static>(
    kv: &Arc<dyn KeyValue>,
    call: impl FnOnce(&dyn KeyValue) -> T + Send + 'static,
) -> wasmtime::Result<T> {
    let kv = kv.clone();
    crate::lanes::KV
        .run(move || call(kv.as_ref()))
        .await
        .map_err(|error| wasmtime::Error::msg(format!("kv: the storage call failed: {error}")))
}

/// What a plugin may call, whatever version of the contract it was built
/// against: each world's bindings (`super::wit`) adapt their types to these.
/// An `Err` of the outer result traps the run; an inner `Err` is the
/// plugin's to handle.
impl RunState {
    /// A line of the run's log at `level` (`TRACE` ... `ERROR`).
    pub(crate) fn log_line(&mut self, level: &str, message: &str) {
        self.log.line(level, message);
    }

    /// The job's value under `key`. `get` cannot give the guest an error: a
    /// storage failure ends the run (as a trap) rather than pretend the key
    /// is absent; a key that cannot exist reads as none.
    pub(crate) async fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        if check_key(&key).is_err() {
            return Ok(None);
        }
        if let Some(answer) = self.replayed(Call::KvGet(&key))? {
            return match answer {
                Answer::Value(value) => Ok(value),
                other => Err(from_tape(other)),
            };
        }
        let asked = key.clone();
        let value = off_runtime(&self.capabilities.kv, move |kv| kv.get(&key))
            .await
            .and_then(|value| value.map_err(wasmtime::Error::msg));
        self.record(Call::KvGet(&asked), || match &value {
            Ok(value) => Answer::Value(value.clone()),
            Err(error) => trap_answer(error),
        });
        value
    }

    /// Stores `value` under `key`, within the value size and the tenant's quota.
    pub(crate) async fn kv_set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        if let Err(problem) = check_key(&key) {
            return Ok(Err(problem));
        }
        if value.len() > MAX_KV_VALUE_BYTES {
            return Ok(Err(format!(
                "kv: the value is {} bytes; the limit is {MAX_KV_VALUE_BYTES}",
                value.len()
            )));
        }
        if let Some(answer) = self.replayed(Call::KvSet(&key, &value))? {
            return done_from_tape(answer);
        }
        let asked = self.records().then(|| (key.clone(), value.clone()));
        let done = off_runtime(&self.capabilities.kv, move |kv| kv.set(&key, &value)).await;
        if let Some((key, value)) = asked {
            self.record(Call::KvSet(&key, &value), || done_answer(&done));
        }
        done
    }

    /// Removes `key`.
    pub(crate) async fn kv_delete(&mut self, key: String) -> wasmtime::Result<Result<(), String>> {
        if let Err(problem) = check_key(&key) {
            return Ok(Err(problem));
        }
        if let Some(answer) = self.replayed(Call::KvDelete(&key))? {
            return done_from_tape(answer);
        }
        let asked = key.clone();
        let done = off_runtime(&self.capabilities.kv, move |kv| kv.delete(&key)).await;
        self.record(Call::KvDelete(&asked), || done_answer(&done));
        done
    }

    /// The job's keys starting with `prefix`, at most [`MAX_KV_KEYS`].
    pub(crate) async fn kv_keys(&mut self, prefix: String) -> wasmtime::Result<Vec<String>> {
        if let Some(answer) = self.replayed(Call::KvKeys(&prefix))? {
            return match answer {
                Answer::Keys(keys) => Ok(keys),
                other => Err(from_tape(other)),
            };
        }
        let asked = prefix.clone();
        let keys = off_runtime(&self.capabilities.kv, move |kv| kv.keys(&prefix, MAX_KV_KEYS))
            .await
            .and_then(|keys| keys.map_err(wasmtime::Error::msg));
        self.record(Call::KvKeys(&asked), || match &keys {
            Ok(keys) => Answer::Keys(keys.clone()),
            Err(error) => trap_answer(error),
        });
        keys
    }

    /// An HTTP request under the run's grant, its deadline and its request
    /// budget; the error names the request and why it failed.
    pub(crate) async fn http_fetch(&mut self, fetch: FetchRequest) -> wasmtime::Result<Result<FetchResponse, String>> {
        if let Some(answer) = self.replayed(http_call(&fetch))? {
            return match answer {
                Answer::Fetched(fetched) => Ok(fetched),
                other => Err(from_tape(other)),
            };
        }
        let asked = self.records().then(|| fetch.clone());
        let fetched = self.fetch(fetch).await;
        if let Some(asked) = asked {
            self.record(http_call(&asked), || Answer::Fetched(fetched.clone()));
        }
        Ok(fetched)
    }

    async fn fetch(&mut self, fetch: FetchRequest) -> Result<FetchResponse, String> {
        let what = format!("http: {} {}", fetch.method, fetch.url);
        let Some(outbound) = self.capabilities.outbound.clone() else {
            return Err(format!("{what} denied: outbound HTTP is off in this sandbox"));
        };
        outbound
            .fetch(&self.capabilities.http, fetch, self.deadline, &mut self.http_budget)
            .await
            .map_err(|problem| format!("{what} failed: {problem}"))
    }

    /// A secret granted to the run; any other reads as none. A replay
    /// hands the plugin `[secret:NAME]` (what the record keeps in place of
    /// the value) for a secret that was there.
    pub(crate) fn secret(&self, name: &str) -> wasmtime::Result<Option<String>> {
        if let Some(answer) = self.replayed(Call::Secret(name))? {
            return match answer {
                Answer::Present(present) => Ok(present.then(|| super::mask::marker(name))),
                Answer::EmptySecret => Ok(Some(String::new())),
                other => Err(from_tape(other)),
            };
        }
        let value = self.capabilities.secrets.get(name).cloned();
        self.record(Call::Secret(name), || match value.as_deref() {
            Some("") => Answer::EmptySecret,
            value => Answer::Present(value.is_some()),
        });
        Ok(value)
    }

    /// The offset from UTC of the job's zone at `at` (ms since the epoch).
    pub(crate) async fn job_utc_offset(&mut self, at: i64) -> wasmtime::Result<i32> {
        let zone = self.zone().await?;
        if let Some(answer) = self.replayed(Call::UtcOffset(at))? {
            return match answer {
                Answer::Offset(offset) => Ok(offset),
                other => Err(from_tape(other)),
            };
        }
        let offset = utc_offset(zone, at);
        self.record(Call::UtcOffset(at), || Answer::Offset(offset));
        Ok(offset)
    }

    /// The job's time zone (looked up the first time).
    pub(crate) async fn job_zone(&mut self) -> wasmtime::Result<Tz> {
        self.zone().await
    }
}

/// How the tape names an HTTP request.
fn http_call(fetch: &FetchRequest) -> Call<'_> {
    Call::Http {
        method: &fetch.method,
        url: &fetch.url,
        headers: &fetch.headers,
        body: &fetch.body,
        timeout_ms: fetch
            .timeout
            .map(|timeout| u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// How the tape keeps the answer of `kv.set` or `kv.delete`.
fn done_answer(done: &wasmtime::Result<Result<(), String>>) -> Answer {
    match done {
        Ok(done) => Answer::Done(done.clone()),
        Err(error) => trap_answer(error),
    }
}

/// The recorded answer of `kv.set` or `kv.delete`.
fn done_from_tape(answer: Answer) -> wasmtime::Result<Result<(), String>> {
    match answer {
        Answer::Done(done) => Ok(done),
        other => Err(from_tape(other)),
    }
}

/// Requests a new run may make.
pub(super) const HTTP_BUDGET: u32 = MAX_REQUESTS_PER_RUN;

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
    }

    #[test]
    fn offsets_follow_the_zone_and_its_seasons() {
        assert_eq!(utc_offset(Tz::Asia__Tokyo, at("2026-05-04T09:30:00Z")), 9 * 3600);
        assert_eq!(utc_offset(Tz::UTC, at("2026-05-04T09:30:00Z")), 0);
        assert_eq!(utc_offset(Tz::Europe__Berlin, at("2026-01-15T12:00:00Z")), 3600);
        assert_eq!(utc_offset(Tz::Europe__Berlin, at("2026-07-15T12:00:00Z")), 2 * 3600);
        // The instant of the spring change: 01:00 UTC on the last Sunday of March.
        assert_eq!(utc_offset(Tz::Europe__Berlin, at("2026-03-29T00:59:59Z")), 3600);
        assert_eq!(utc_offset(Tz::Europe__Berlin, at("2026-03-29T01:00:00Z")), 2 * 3600);
        assert_eq!(
            utc_offset(Tz::America__St_Johns, at("2026-01-15T12:00:00Z")),
            -(3 * 3600 + 30 * 60)
        );
        // Any s64 a plugin sends is answered, none panics.
        for extreme in [i64::MIN, i64::MAX, 0, -1] {
            utc_offset(Tz::Asia__Kolkata, extreme);
        }
    }
}
