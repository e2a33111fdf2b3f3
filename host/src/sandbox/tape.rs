//! A run's tape: the answer of every host call a recorded run made, in
//! order, so that the run can be executed again against those answers
//! alone (a replay), with nothing reaching kv, the network or the vault.
//! It owns the tape's byte format, the cap, secrets kept out of it and the
//! divergence of a replay; when the run records or replays, and where the
//! bytes are kept, are the caller's business.
//!
//! What a plugin can observe from outside the sandbox is exactly its host
//! calls (kv, http, secrets, run-info) and WASI's clocks and randomness.
//! Calls and clock reads are entries; randomness is the seeds of the run's
//! generators, kept in the header: a few bytes whatever the plugin draws.
//!
//! A secret is never kept: an entry keeps `[secret:NAME]` wherever the
//! value was (in arguments and answers alike), and a replay hands the
//! plugin that marker as the secret's value, so the plugin sees the same
//! text at the same places and its masked output compares equal.
//!
//! Format (version 1): `SCTP`, the version, the random ABI, the secure and
//! insecure generator seeds (32 bytes each) and the insecure seed (16
//! bytes, little endian); then entries, each a call kind byte, its
//! arguments and its answer (both length-prefixed, LEB128 lengths). Kind
//! and answer codes are never reused.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::mask::Secrets;
use crate::outbound::FetchResponse;

const MAGIC: &[u8; 4] = b"SCTP";
/// The tape format's version.
pub const VERSION: u8 = 1;
/// How wasmtime-wasi 48 draws from the run's generators (`get-random-bytes`
/// takes a `u32` per byte, `get-random-u64` one `u64`): a tape made under
/// another pattern would replay other bytes from the same seeds. Pinned by
/// a test of the sandbox.
pub const RANDOM_ABI: u8 = 1;
const HEADER_LEN: usize = MAGIC.len() + 2 + 32 + 32 + 16;
/// The default cap of a run's tape, bytes.
pub const DEFAULT_CAP: u64 = 1 << 20;

/// The seeds of one run's random generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    /// `wasi:random/random`.
    pub secure: [u8; 32],
    /// `wasi:random/insecure`.
    pub insecure: [u8; 32],
    /// `wasi:random/insecure-seed`.
    pub insecure_seed: u128,
}

impl Seeds {
    /// Fresh seeds from the operating system's generator.
    pub fn fresh() -> Seeds {
        Seeds {
            secure: rand::random(),
            insecure: rand::random(),
            insecure_seed: rand::random(),
        }
    }
}

/// One host call, as a tape names it.
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    /// `kv.get(key)`.
    KvGet(&'a str),
    /// `kv.set(key, value)`: the tape keeps the value's length and digest.
    KvSet(&'a str, &'a [u8]),
    /// `kv.delete(key)`.
    KvDelete(&'a str),
    /// `kv.keys(prefix)`.
    KvKeys(&'a str),
    /// `http.fetch`: the tape keeps method and URL, and a digest of the
    /// headers and body.
    Http {
        /// Method.
        method: &'a str,
        /// URL.
        url: &'a str,
        /// Header pairs.
        headers: &'a [(String, String)],
        /// Body.
        body: &'a [u8],
    },
    /// `secrets.get(name)`.
    Secret(&'a str),
    /// `run-info.timezone`.
    Zone,
    /// `run-info.utc-offset(at)`.
    UtcOffset(i64),
    /// A read of the wall clock.
    Wall,
    /// A read of the monotonic clock.
    Monotonic,
}

/// Call kinds, as stored.
mod kind {
    pub const KV_GET: u8 = 1;
    pub const KV_SET: u8 = 2;
    pub const KV_DELETE: u8 = 3;
    pub const KV_KEYS: u8 = 4;
    pub const HTTP: u8 = 5;
    pub const SECRET: u8 = 6;
    pub const ZONE: u8 = 7;
    pub const UTC_OFFSET: u8 = 8;
    pub const WALL: u8 = 9;
    pub const MONOTONIC: u8 = 10;
}

impl Call<'_> {
    /// The kind byte and the arguments as a tape keeps them, with the
    /// secrets' values masked (before any digest is taken).
    fn encode(&self, secrets: &Secrets) -> (u8, Vec<u8>) {
        let mut args = Vec::new();
        let text = |args: &mut Vec<u8>, text: &str| put_bytes(args, &masked(secrets, text.as_bytes()));
        let kind = match *self {
            Call::KvGet(key) => {
                text(&mut args, key);
                kind::KV_GET
            }
            Call::KvSet(key, value) => {
                text(&mut args, key);
                let value = masked(secrets, value);
                put_uint(&mut args, value.len() as u64);
                args.extend_from_slice(&digest(&value));
                kind::KV_SET
            }
            Call::KvDelete(key) => {
                text(&mut args, key);
                kind::KV_DELETE
            }
            Call::KvKeys(prefix) => {
                text(&mut args, prefix);
                kind::KV_KEYS
            }
            Call::Http {
                method,
                url,
                headers,
                body,
            } => {
                text(&mut args, method);
                text(&mut args, url);
                // Each part masked before its length is put, so the
                // marker a replay sends gives the same digest.
                let mut sent = Vec::new();
                for (name, value) in headers {
                    text(&mut sent, name);
                    text(&mut sent, value);
                }
                put_bytes(&mut sent, &masked(secrets, body));
                args.extend_from_slice(&digest(&sent));
                kind::HTTP
            }
            Call::Secret(name) => {
                put_bytes(&mut args, name.as_bytes());
                kind::SECRET
            }
            Call::Zone => kind::ZONE,
            Call::UtcOffset(at) => {
                put_uint(&mut args, zigzag(at));
                kind::UTC_OFFSET
            }
            Call::Wall => kind::WALL,
            Call::Monotonic => kind::MONOTONIC,
        };
        (kind, args)
    }
}

/// What a call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The call ended the run (a failed storage read, say), with this message.
    Trap(String),
    /// `kv.get`.
    Value(Option<Vec<u8>>),
    /// `kv.set`, `kv.delete`: done, or the plugin's error.
    Done(Result<(), String>),
    /// `kv.keys`.
    Keys(Vec<String>),
    /// `http.fetch`: the response, or the plugin's error.
    Fetched(Result<FetchResponse, String>),
    /// `secrets.get`: whether the secret was there (never its value).
    Present(bool),
    /// `run-info.timezone`.
    Zone(String),
    /// `run-info.utc-offset`, seconds east.
    Offset(i32),
    /// The wall clock, since the Unix epoch.
    Wall(Duration),
    /// The monotonic clock, nanoseconds.
    Monotonic(u64),
}

/// Answer codes, as stored.
mod answer {
    pub const TRAP: u8 = 0;
    pub const NO_VALUE: u8 = 1;
    pub const VALUE: u8 = 2;
    pub const DONE: u8 = 3;
    pub const REFUSED: u8 = 4;
    pub const KEYS: u8 = 5;
    pub const RESPONSE: u8 = 6;
    pub const FETCH_FAILED: u8 = 7;
    pub const ABSENT: u8 = 8;
    pub const PRESENT: u8 = 9;
    pub const ZONE: u8 = 10;
    pub const OFFSET: u8 = 11;
    pub const WALL: u8 = 12;
    pub const MONOTONIC: u8 = 13;
}

/// Where a replay left the recorded sequence of calls.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("the replay diverged at call {call}: the record has {expected}, the run made {got}")]
pub struct Divergence {
    /// The index of the call, from 0.
    pub call: u64,
    /// The recorded call there.
    pub expected: String,
    /// The call the replayed run made.
    pub got: String,
}

/// A tape that cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapeError {
    /// Not a tape, or damaged.
    #[error("the record is damaged: {0}")]
    Damaged(String),
    /// Made by a sandcron whose tape format or random draws differ.
    #[error("the record was made by another version of sandcron (tape {version}, random ABI {random_abi})")]
    Incompatible {
        /// The tape's format version.
        version: u8,
        /// The tape's random ABI.
        random_abi: u8,
    },
}

/// What a run does with a tape.
pub enum TapeMode {
    /// Neither records nor replays (the usual run).
    Off,
    /// Records, keeping at most `cap` bytes.
    Record {
        /// The cap, bytes.
        cap: u64,
    },
    /// Answers every call from this tape.
    Replay(Playback),
}

/// What became of a run's tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeResult {
    /// The run recorded.
    Recorded(Recorded),
    /// The run replayed; where it diverged, if it did.
    Replayed(Option<Divergence>),
}

/// A recorded run's tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The tape; None when the run passed the cap or a secret could not
    /// be kept out of it (the run cannot be replayed).
    pub tape: Option<Vec<u8>>,
    /// Host calls and clock reads the run made.
    pub calls: u64,
}

/// A run's tape being written.
pub struct Recording {
    bytes: Vec<u8>,
    cap: usize,
    calls: u64,
    over_cap: bool,
    secrets: Secrets,
    started: Instant,
    last_wall: i64,
    last_monotonic: u64,
}

impl Recording {
    /// A tape for a run with these generator seeds, kept within `cap`
    /// bytes, with the values of `secrets` masked.
    pub fn new(seeds: &Seeds, cap: u64, secrets: Secrets) -> Recording {
        let mut bytes = Vec::with_capacity(HEADER_LEN + 64);
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        bytes.push(RANDOM_ABI);
        bytes.extend_from_slice(&seeds.secure);
        bytes.extend_from_slice(&seeds.insecure);
        bytes.extend_from_slice(&seeds.insecure_seed.to_le_bytes());
        Recording {
            over_cap: bytes.len() as u64 > cap,
            bytes,
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            calls: 0,
            secrets,
            started: Instant::now(),
            last_wall: 0,
            last_monotonic: 0,
        }
    }

    /// Appends a call and its answer; past the cap only the count grows.
    pub fn push(&mut self, call: Call<'_>, answer: &Answer) {
        self.calls += 1;
        if self.over_cap {
            return;
        }
        let (kind, args) = call.encode(&self.secrets);
        let mut encoded = Vec::new();
        encode_answer(
            answer,
            &self.secrets,
            &mut self.last_wall,
            &mut self.last_monotonic,
            &mut encoded,
        );
        let entry = 1 + uint_len(args.len() as u64) + args.len() + uint_len(encoded.len() as u64) + encoded.len();
        if self.bytes.len() + entry > self.cap {
            self.over_cap = true;
            self.bytes = Vec::new();
            return;
        }
        self.bytes.push(kind);
        put_bytes(&mut self.bytes, &args);
        put_bytes(&mut self.bytes, &encoded);
    }

    /// Reads the wall clock and records it.
    pub fn wall(&mut self) -> Duration {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.push(Call::Wall, &Answer::Wall(now));
        now
    }

    /// Reads the monotonic clock (nanoseconds since the run started) and records it.
    pub fn monotonic(&mut self) -> u64 {
        let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.push(Call::Monotonic, &Answer::Monotonic(now));
        now
    }

    /// The tape, unless the run passed the cap or a secret's value is in it
    /// still (split across what was masked piece by piece).
    pub fn finish(self) -> Recorded {
        let leaked = !self.secrets.is_empty() && self.secrets.mask(&self.bytes) != self.bytes;
        Recorded {
            tape: (!self.over_cap && !leaked).then_some(self.bytes),
            calls: self.calls,
        }
    }
}

/// A tape being replayed.
pub struct Playback {
    bytes: Vec<u8>,
    at: usize,
    index: u64,
    seeds: Seeds,
    last_wall: i64,
    last_monotonic: u64,
    diverged: Option<Divergence>,
}

impl Playback {
    /// Opens a tape, checking every entry once so the replay never meets a
    /// damaged one.
    pub fn open(bytes: Vec<u8>) -> Result<Playback, TapeError> {
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
            return Err(TapeError::Damaged("it does not start with a tape header".into()));
        }
        let (version, random_abi) = (bytes[4], bytes[5]);
        if version != VERSION || random_abi != RANDOM_ABI {
            return Err(TapeError::Incompatible { version, random_abi });
        }
        let seed = |at: usize| -> [u8; 32] { bytes[at..at + 32].try_into().expect("the header is long enough") };
        let seeds = Seeds {
            secure: seed(6),
            insecure: seed(38),
            insecure_seed: u128::from_le_bytes(bytes[70..86].try_into().expect("the header is long enough")),
        };
        let mut reader = Reader(&bytes[HEADER_LEN..]);
        let (mut wall, mut monotonic) = (0, 0);
        while !reader.0.is_empty() {
            let (kind, args, encoded) = reader.entry().map_err(TapeError::Damaged)?;
            describe(kind, args).map_err(TapeError::Damaged)?;
            let answer = decode_answer(encoded, &mut wall, &mut monotonic).map_err(TapeError::Damaged)?;
            if !fits(kind, &answer) {
                return Err(TapeError::Damaged(format!("call kind {kind} with answer {answer:?}")));
            }
        }
        Ok(Playback {
            bytes,
            at: HEADER_LEN,
            index: 0,
            seeds,
            last_wall: 0,
            last_monotonic: 0,
            diverged: None,
        })
    }

    /// The seeds of the recorded run's generators.
    pub fn seeds(&self) -> Seeds {
        self.seeds
    }

    /// The recorded answer to `call`, the next one on the tape; the
    /// divergence when the tape has another call there (or none). After a
    /// divergence every call answers with it.
    pub fn answer(&mut self, call: Call<'_>) -> Result<Answer, Divergence> {
        if let Some(divergence) = &self.diverged {
            return Err(divergence.clone());
        }
        let (kind, args) = call.encode(&Secrets::default());
        let got = || describe(kind, &args).unwrap_or_else(|problem| problem);
        let mut reader = Reader(&self.bytes[self.at..]);
        let Ok((recorded, recorded_args, encoded)) = reader.entry() else {
            return Err(self.diverge("the end of the record".into(), got()));
        };
        if recorded != kind || recorded_args != args.as_slice() {
            let expected = describe(recorded, recorded_args).unwrap_or_else(|problem| problem);
            return Err(self.diverge(expected, got()));
        }
        let answer = decode_answer(encoded, &mut self.last_wall, &mut self.last_monotonic)
            .expect("every entry was decoded when the tape was opened");
        self.at = self.bytes.len() - reader.0.len();
        self.index += 1;
        Ok(answer)
    }

    fn diverge(&mut self, expected: String, got: String) -> Divergence {
        let divergence = Divergence {
            call: self.index,
            expected,
            got,
        };
        self.diverged = Some(divergence.clone());
        divergence
    }

    /// Where the replay left the record, if it has.
    pub fn divergence(&self) -> Option<&Divergence> {
        self.diverged.as_ref()
    }

    /// Where the replay left the record: at a call, or at its end with
    /// recorded calls the run did not make.
    pub fn finish(mut self) -> Option<Divergence> {
        if self.diverged.is_none() && self.at < self.bytes.len() {
            let mut reader = Reader(&self.bytes[self.at..]);
            if let Ok((kind, args, _)) = reader.entry() {
                let expected = describe(kind, args).unwrap_or_else(|problem| problem);
                self.diverge(expected, "the end of the run".into());
            }
        }
        self.diverged
    }

    fn clock(&mut self, call: Call<'_>) -> Option<Answer> {
        self.answer(call).ok()
    }
}

/// A run's tape, shared by its host calls and its WASI clocks.
pub enum Tape {
    /// The run records.
    Recording(Recording),
    /// The run replays.
    Playback(Playback),
}

/// The tape of one run, as its store and clocks hold it.
pub type SharedTape = Arc<Mutex<Tape>>;

/// Locks a run's tape (a panic elsewhere does not lose it).
pub fn lock(tape: &SharedTape) -> MutexGuard<'_, Tape> {
    tape.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The WASI wall clock of a recorded or replayed run.
pub struct TapeWall(pub SharedTape);

impl wasmtime_wasi::HostWallClock for TapeWall {
    // A fixed resolution: the platform's is not on the tape.
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    // A replay that has diverged reads 0; the run then stops at the next
    // epoch tick or host call.
    fn now(&self) -> Duration {
        match &mut *lock(&self.0) {
            Tape::Recording(recording) => recording.wall(),
            Tape::Playback(playback) => match playback.clock(Call::Wall) {
                Some(Answer::Wall(now)) => now,
                _ => Duration::ZERO,
            },
        }
    }
}

/// The WASI monotonic clock of a recorded or replayed run.
pub struct TapeMonotonic(pub SharedTape);

impl wasmtime_wasi::HostMonotonicClock for TapeMonotonic {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        match &mut *lock(&self.0) {
            Tape::Recording(recording) => recording.monotonic(),
            Tape::Playback(playback) => match playback.clock(Call::Monotonic) {
                Some(Answer::Monotonic(now)) => now,
                _ => 0,
            },
        }
    }
}

/// Whether an answer is one a call of `kind` gives.
fn fits(kind: u8, answer: &Answer) -> bool {
    matches!(
        (kind, answer),
        (kind::KV_GET | kind::KV_KEYS | kind::ZONE, Answer::Trap(_))
            | (kind::KV_SET | kind::KV_DELETE, Answer::Trap(_) | Answer::Done(_))
            | (kind::KV_GET, Answer::Value(_))
            | (kind::KV_KEYS, Answer::Keys(_))
            | (kind::HTTP, Answer::Fetched(_))
            | (kind::SECRET, Answer::Present(_))
            | (kind::ZONE, Answer::Zone(_))
            | (kind::UTC_OFFSET, Answer::Offset(_) | Answer::Trap(_))
            | (kind::WALL, Answer::Wall(_))
            | (kind::MONOTONIC, Answer::Monotonic(_))
    )
}

/// How a divergence names a stored call.
fn describe(kind: u8, args: &[u8]) -> Result<String, String> {
    let mut reader = Reader(args);
    let described = match kind {
        kind::KV_GET => format!("kv.get {:?}", reader.text()?),
        kind::KV_SET => {
            let key = reader.text()?;
            let length = reader.uint()?;
            let digest = reader.take(8)?;
            format!("kv.set {key:?} ({length} bytes, sha256 {}…)", hex::encode(digest))
        }
        kind::KV_DELETE => format!("kv.delete {:?}", reader.text()?),
        kind::KV_KEYS => format!("kv.keys {:?}", reader.text()?),
        kind::HTTP => {
            let method = reader.text()?;
            let url = reader.text()?;
            let digest = reader.take(8)?;
            format!("http {method} {url} (headers and body sha256 {}…)", hex::encode(digest))
        }
        kind::SECRET => format!("secrets.get {:?}", reader.text()?),
        kind::ZONE => "run-info.timezone".to_string(),
        kind::UTC_OFFSET => format!("run-info.utc-offset {}", unzigzag(reader.uint()?)),
        kind::WALL => "a read of the wall clock".to_string(),
        kind::MONOTONIC => "a read of the monotonic clock".to_string(),
        other => return Err(format!("an unknown call kind {other}")),
    };
    if !reader.0.is_empty() {
        return Err(format!("{described} with bytes left over"));
    }
    Ok(described)
}

fn encode_answer(answer: &Answer, secrets: &Secrets, wall: &mut i64, monotonic: &mut u64, out: &mut Vec<u8>) {
    let text = |out: &mut Vec<u8>, code: u8, text: &str| {
        out.push(code);
        put_bytes(out, &masked(secrets, text.as_bytes()));
    };
    match answer {
        Answer::Trap(message) => text(out, answer::TRAP, message),
        Answer::Value(None) => out.push(answer::NO_VALUE),
        Answer::Value(Some(value)) => {
            out.push(answer::VALUE);
            put_bytes(out, &masked(secrets, value));
        }
        Answer::Done(Ok(())) => out.push(answer::DONE),
        Answer::Done(Err(problem)) => text(out, answer::REFUSED, problem),
        Answer::Keys(keys) => {
            out.push(answer::KEYS);
            put_uint(out, keys.len() as u64);
            for key in keys {
                put_bytes(out, &masked(secrets, key.as_bytes()));
            }
        }
        Answer::Fetched(Ok(response)) => {
            out.push(answer::RESPONSE);
            put_uint(out, u64::from(response.status));
            put_uint(out, response.headers.len() as u64);
            for (name, value) in &response.headers {
                put_bytes(out, &masked(secrets, name.as_bytes()));
                put_bytes(out, &masked(secrets, value.as_bytes()));
            }
            put_bytes(out, &masked(secrets, &response.body));
        }
        Answer::Fetched(Err(problem)) => text(out, answer::FETCH_FAILED, problem),
        Answer::Present(false) => out.push(answer::ABSENT),
        Answer::Present(true) => out.push(answer::PRESENT),
        Answer::Zone(zone) => text(out, answer::ZONE, zone),
        Answer::Offset(offset) => {
            out.push(answer::OFFSET);
            put_uint(out, zigzag(i64::from(*offset)));
        }
        Answer::Wall(now) => {
            // Nanoseconds since the epoch fit an i64 until 2262.
            let now = i64::try_from(now.as_nanos()).unwrap_or(i64::MAX);
            out.push(answer::WALL);
            put_uint(out, zigzag(now.wrapping_sub(*wall)));
            *wall = now;
        }
        Answer::Monotonic(now) => {
            out.push(answer::MONOTONIC);
            put_uint(out, zigzag(now.wrapping_sub(*monotonic) as i64));
            *monotonic = *now;
        }
    }
}

fn decode_answer(encoded: &[u8], wall: &mut i64, monotonic: &mut u64) -> Result<Answer, String> {
    let mut reader = Reader(encoded);
    let answer = match reader.byte()? {
        answer::TRAP => Answer::Trap(reader.text()?),
        answer::NO_VALUE => Answer::Value(None),
        answer::VALUE => Answer::Value(Some(reader.bytes()?.to_vec())),
        answer::DONE => Answer::Done(Ok(())),
        answer::REFUSED => Answer::Done(Err(reader.text()?)),
        answer::KEYS => {
            let count = reader.count()?;
            Answer::Keys((0..count).map(|_| reader.text()).collect::<Result<_, _>>()?)
        }
        answer::RESPONSE => {
            let status = u16::try_from(reader.uint()?).map_err(|_| "a status past 65535".to_string())?;
            let count = reader.count()?;
            let headers = (0..count)
                .map(|_| Ok((reader.text()?, reader.text()?)))
                .collect::<Result<_, String>>()?;
            let body = reader.bytes()?.to_vec();
            Answer::Fetched(Ok(FetchResponse { status, headers, body }))
        }
        answer::FETCH_FAILED => Answer::Fetched(Err(reader.text()?)),
        answer::ABSENT => Answer::Present(false),
        answer::PRESENT => Answer::Present(true),
        answer::ZONE => Answer::Zone(reader.text()?),
        answer::OFFSET => {
            Answer::Offset(i32::try_from(unzigzag(reader.uint()?)).map_err(|_| "an offset past an i32".to_string())?)
        }
        answer::WALL => {
            *wall = wall.wrapping_add(unzigzag(reader.uint()?));
            Answer::Wall(Duration::from_nanos(u64::try_from(*wall).unwrap_or(0)))
        }
        answer::MONOTONIC => {
            *monotonic = monotonic.wrapping_add(unzigzag(reader.uint()?) as u64);
            Answer::Monotonic(*monotonic)
        }
        other => return Err(format!("an unknown answer code {other}")),
    };
    if !reader.0.is_empty() {
        return Err("an answer with bytes left over".into());
    }
    Ok(answer)
}

/// `bytes` with the secrets' values masked (no copy is worth avoiding:
/// entries are small).
fn masked(secrets: &Secrets, bytes: &[u8]) -> Vec<u8> {
    if secrets.is_empty() {
        bytes.to_vec()
    } else {
        secrets.mask(bytes)
    }
}

/// The first 8 bytes of the sha256 of `bytes`.
fn digest(bytes: &[u8]) -> [u8; 8] {
    Sha256::digest(bytes)[..8].try_into().expect("sha256 has 32 bytes")
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn put_uint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn uint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads what the `put_` functions wrote.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number longer than 64 bits".into())
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        if self.0.len() < length {
            return Err("it ends in the middle of an entry".into());
        }
        let (taken, rest) = self.0.split_at(length);
        self.0 = rest;
        Ok(taken)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let length = usize::try_from(self.uint()?).map_err(|_| "a length past the address space".to_string())?;
        self.take(length)
    }

    fn text(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "a text that is not UTF-8".to_string())
    }

    /// A count of items that each take at least a byte.
    fn count(&mut self) -> Result<usize, String> {
        let count = self.uint()?;
        usize::try_from(count)
            .ok()
            .filter(|&count| count <= self.0.len())
            .ok_or_else(|| format!("a count of {count} past the bytes left"))
    }

    /// One entry: its kind, arguments and encoded answer.
    fn entry(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), String> {
        Ok((self.byte()?, self.bytes()?, self.bytes()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDS: Seeds = Seeds {
        secure: [1; 32],
        insecure: [2; 32],
        insecure_seed: 3,
    };

    fn response(body: &str) -> Answer {
        Answer::Fetched(Ok(FetchResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        }))
    }

    /// A run's calls, one of each kind and answer.
    fn calls() -> Vec<(Call<'static>, Answer)> {
        const HEADERS: &[(String, String)] = &[];
        vec![
            (
                Call::Wall,
                Answer::Wall(Duration::from_nanos(1_780_000_000_123_456_789)),
            ),
            (Call::Monotonic, Answer::Monotonic(1_500)),
            (
                Call::Wall,
                Answer::Wall(Duration::from_nanos(1_780_000_000_123_999_999)),
            ),
            (Call::KvGet("counter"), Answer::Value(Some(b"41".to_vec()))),
            (Call::KvGet("missing"), Answer::Value(None)),
            (Call::KvSet("counter", b"42"), Answer::Done(Ok(()))),
            (Call::KvSet("big", b"x"), Answer::Done(Err("kv: over the quota".into()))),
            (Call::KvDelete("old"), Answer::Done(Ok(()))),
            (Call::KvKeys("c"), Answer::Keys(vec!["counter".into(), "cursor".into()])),
            (Call::KvKeys("d"), Answer::Trap("kv: the storage call failed".into())),
            (
                Call::Http {
                    method: "GET",
                    url: "http://127.0.0.1:1/a",
                    headers: HEADERS,
                    body: b"",
                },
                response("hello"),
            ),
            (
                Call::Http {
                    method: "POST",
                    url: "http://127.0.0.1:1/b",
                    headers: HEADERS,
                    body: b"{}",
                },
                Answer::Fetched(Err("http: refused".into())),
            ),
            (Call::Secret("token"), Answer::Present(true)),
            (Call::Secret("gone"), Answer::Present(false)),
            (Call::Zone, Answer::Zone("Europe/Berlin".into())),
            (Call::UtcOffset(-5), Answer::Offset(-3600)),
            (Call::Monotonic, Answer::Monotonic(900_000)),
        ]
    }

    fn record(calls: &[(Call<'_>, Answer)], cap: u64, secrets: Secrets) -> Recorded {
        let mut recording = Recording::new(&SEEDS, cap, secrets);
        for (call, answer) in calls {
            recording.push(*call, answer);
        }
        recording.finish()
    }

    #[test]
    fn a_replay_gets_every_answer_back_in_order() {
        let calls = calls();
        let recorded = record(&calls, DEFAULT_CAP, Secrets::default());
        assert_eq!(recorded.calls, calls.len() as u64);
        let mut playback = Playback::open(recorded.tape.expect("within the cap")).unwrap();
        assert_eq!(playback.seeds(), SEEDS);
        for (call, answer) in &calls {
            assert_eq!(&playback.answer(*call).unwrap(), answer, "{call:?}");
        }
        assert_eq!(playback.finish(), None);
    }

    #[test]
    fn clock_reads_take_a_few_bytes() {
        let mut recording = Recording::new(&SEEDS, DEFAULT_CAP, Secrets::default());
        recording.wall();
        let after_first = recording.bytes.len();
        for _ in 0..100 {
            recording.wall();
            recording.monotonic();
        }
        let per_read = (recording.bytes.len() - after_first) as f64 / 200.0;
        assert!(per_read <= 7.0, "{per_read} bytes per clock read");
    }

    #[test]
    fn a_different_call_is_a_divergence_at_its_index() {
        let calls = calls();
        let mut playback = Playback::open(record(&calls, DEFAULT_CAP, Secrets::default()).tape.unwrap()).unwrap();
        for (call, _) in &calls[..3] {
            playback.answer(*call).unwrap();
        }
        let divergence = playback.answer(Call::KvGet("counter-v2")).unwrap_err();
        assert_eq!(
            divergence,
            Divergence {
                call: 3,
                expected: "kv.get \"counter\"".into(),
                got: "kv.get \"counter-v2\"".into(),
            }
        );
        // Every later call answers with the first divergence.
        assert_eq!(playback.answer(Call::KvGet("counter")).unwrap_err(), divergence);
        assert_eq!(playback.divergence(), Some(&divergence));
        assert_eq!(playback.finish(), Some(divergence));
    }

    #[test]
    fn the_same_call_with_another_value_or_body_diverges() {
        let calls = [(Call::KvSet("counter", b"42"), Answer::Done(Ok(())))];
        let mut playback = Playback::open(record(&calls, DEFAULT_CAP, Secrets::default()).tape.unwrap()).unwrap();
        let divergence = playback.answer(Call::KvSet("counter", b"43")).unwrap_err();
        assert!(divergence.expected.starts_with("kv.set \"counter\" (2 bytes, sha256 "));
        assert_ne!(divergence.expected, divergence.got);
    }

    #[test]
    fn calls_past_the_record_or_left_over_are_divergences() {
        let calls = calls();
        let tape = record(&calls[..2], DEFAULT_CAP, Secrets::default()).tape.unwrap();
        let mut playback = Playback::open(tape.clone()).unwrap();
        playback.answer(Call::Wall).unwrap();
        playback.answer(Call::Monotonic).unwrap();
        let divergence = playback.answer(Call::Zone).unwrap_err();
        assert_eq!(
            (divergence.call, divergence.expected.as_str(), divergence.got.as_str()),
            (2, "the end of the record", "run-info.timezone")
        );
        let mut playback = Playback::open(tape).unwrap();
        playback.answer(Call::Wall).unwrap();
        let left = playback.finish().expect("a recorded call was not made");
        assert_eq!(
            (left.call, left.expected.as_str(), left.got.as_str()),
            (1, "a read of the monotonic clock", "the end of the run")
        );
    }

    #[test]
    fn a_run_past_the_cap_keeps_no_tape_but_counts_its_calls() {
        let calls = calls();
        let whole = record(&calls, DEFAULT_CAP, Secrets::default()).tape.unwrap().len() as u64;
        let exact = record(&calls, whole, Secrets::default());
        assert_eq!(
            exact.tape.map(|tape| tape.len() as u64),
            Some(whole),
            "a tape of exactly the cap is kept"
        );
        let over = record(&calls, whole - 1, Secrets::default());
        assert_eq!(over.tape, None);
        assert_eq!(over.calls, calls.len() as u64);
        assert_eq!(
            record(&[], 10, Secrets::default()).tape,
            None,
            "not even the header fits"
        );
    }

    #[test]
    fn secret_values_become_their_marker_in_arguments_and_answers() {
        let secrets = super::super::mask::tests::granted(&[("token", "s3cr3t-value")]);
        let sent = [("authorization".to_string(), "Bearer s3cr3t-value".to_string())];
        let replayed = [("authorization".to_string(), "Bearer [secret:token]".to_string())];
        let calls = [
            (Call::Secret("token"), Answer::Present(true)),
            (
                Call::Http {
                    method: "GET",
                    url: "http://127.0.0.1:1/?key=s3cr3t-value",
                    headers: &sent,
                    body: b"s3cr3t-value",
                },
                response("echo s3cr3t-value"),
            ),
            (Call::KvSet("copy", b"s3cr3t-value"), Answer::Done(Ok(()))),
            (Call::KvGet("copy"), Answer::Value(Some(b"s3cr3t-value".to_vec()))),
        ];
        let tape = record(&calls, DEFAULT_CAP, secrets)
            .tape
            .expect("no value was left in the tape");
        assert!(!tape.windows(6).any(|window| window == b"s3cr3t"), "{tape:?}");
        // The replayed plugin holds the marker as the value: the same calls match.
        let mut playback = Playback::open(tape).unwrap();
        playback.answer(Call::Secret("token")).unwrap();
        let answer = playback
            .answer(Call::Http {
                method: "GET",
                url: "http://127.0.0.1:1/?key=[secret:token]",
                headers: &replayed,
                body: b"[secret:token]",
            })
            .unwrap();
        assert_eq!(answer, response("echo [secret:token]"));
        playback.answer(Call::KvSet("copy", b"[secret:token]")).unwrap();
        assert_eq!(
            playback.answer(Call::KvGet("copy")).unwrap(),
            Answer::Value(Some(b"[secret:token]".to_vec()))
        );
    }

    #[test]
    fn damaged_or_foreign_tapes_are_refused() {
        let tape = record(&calls(), DEFAULT_CAP, Secrets::default()).tape.unwrap();
        assert!(matches!(Playback::open(b"nope".to_vec()), Err(TapeError::Damaged(_))));
        for cut in [HEADER_LEN + 1, HEADER_LEN + 5, tape.len() - 1] {
            assert!(
                matches!(Playback::open(tape[..cut].to_vec()), Err(TapeError::Damaged(_))),
                "{cut}"
            );
        }
        let mut foreign = tape.clone();
        foreign[5] = RANDOM_ABI + 1;
        assert_eq!(
            Playback::open(foreign).err(),
            Some(TapeError::Incompatible {
                version: VERSION,
                random_abi: RANDOM_ABI + 1
            })
        );
        // An answer that no call of its kind gives.
        let mut mixed = Recording::new(&SEEDS, DEFAULT_CAP, Secrets::default());
        mixed.push(Call::Zone, &Answer::Present(true));
        assert!(matches!(
            Playback::open(mixed.finish().tape.unwrap()),
            Err(TapeError::Damaged(_))
        ));
    }

    #[test]
    fn numbers_round_trip_through_the_varint_and_zigzag_forms() {
        for value in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1_780_000_000_000_000_000] {
            let mut out = Vec::new();
            put_uint(&mut out, zigzag(value));
            assert_eq!(out.len(), uint_len(zigzag(value)));
            assert_eq!(unzigzag(Reader(&out).uint().unwrap()), value);
        }
    }
}
