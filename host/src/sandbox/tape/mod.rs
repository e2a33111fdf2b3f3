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

mod entry;

pub use entry::{Answer, Call};
use entry::{Reader, decode_answer, describe, encode_answer, fits, put_bytes, uint_len};

use super::mask::{Secrets, marker};

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

/// What a recording masks of the secrets granted to a run: each value as
/// it is, and as it reads written in a URL (percent-encoded, a space as
/// `+` or `%20`) or in a JSON string, where those differ; each becomes the
/// secret's `[secret:NAME]`.
pub fn recorded_secrets(granted: &std::collections::BTreeMap<String, String>) -> Secrets {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in granted {
        let query: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let json = serde_json::to_string(value).unwrap_or_default();
        let json = json
            .get(1..json.len().saturating_sub(1))
            .unwrap_or_default()
            .to_string();
        let path = query.replace('+', "%20");
        for form in [value.clone(), query, path, json] {
            if !pairs.iter().any(|(_, kept)| *kept == form) {
                pairs.push((name.clone(), form));
            }
        }
    }
    Secrets::new(pairs.iter().map(|(name, value)| (name, value)))
}

impl Recorded {
    /// Notes on `run` what the run kept (see [`RunTape`]), and gives the
    /// tape to store beside it (empty when none was kept).
    pub fn kept(self, run: &mut crate::model::Run) -> Vec<u8> {
        let tape = self.tape.unwrap_or_default();
        run.tape = Some(crate::model::run::RunTape {
            bytes: tape.len() as u64,
            calls: self.calls,
            replayable: !tape.is_empty(),
        });
        tape
    }
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
        self.push_with(call, || answer.clone());
    }

    /// [`Recording::push`], making the answer only while within the cap
    /// (an answer may be a large response to copy).
    pub fn push_with(&mut self, call: Call<'_>, answer: impl FnOnce() -> Answer) {
        self.calls += 1;
        if self.over_cap {
            return;
        }
        let (kind, args) = call.encode(&self.secrets);
        let mut encoded = Vec::new();
        let answer = answer();
        encode_answer(
            &answer,
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

    /// Host calls and clock reads so far.
    pub fn calls(&self) -> u64 {
        self.calls
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
    /// still (a last check: each argument and answer was masked as it came).
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
    /// The markers the replay hands out as secrets, in the forms a
    /// recording masks (a marker the plugin form-encodes matches the
    /// recorded call, whose encoded value became the marker).
    secrets: Secrets,
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
        let mut markers = std::collections::BTreeMap::new();
        while !reader.0.is_empty() {
            let (kind, args, encoded) = reader.entry().map_err(TapeError::Damaged)?;
            describe(kind, args).map_err(TapeError::Damaged)?;
            let answer = decode_answer(encoded, &mut wall, &mut monotonic).map_err(TapeError::Damaged)?;
            if !fits(kind, &answer) {
                return Err(TapeError::Damaged(format!("call kind {kind} with answer {answer:?}")));
            }
            if answer == Answer::Present(true) {
                let name = Reader(args).text().map_err(TapeError::Damaged)?;
                markers.insert(name.clone(), marker(&name));
            }
        }
        Ok(Playback {
            secrets: recorded_secrets(&markers),
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
        let (kind, args) = call.encode(&self.secrets);
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

    /// Where the replay is: its divergence, or, when it cannot be told
    /// whether the replay made every recorded call, one that says so.
    pub fn unfinished(&self) -> Divergence {
        self.diverged.clone().unwrap_or_else(|| Divergence {
            call: self.index,
            expected: "the rest of the record".into(),
            got: "a replay whose end the host could not see".into(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::FetchResponse;

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
                    timeout_ms: None,
                },
                response("hello"),
            ),
            (
                Call::Http {
                    method: "POST",
                    url: "http://127.0.0.1:1/b",
                    headers: HEADERS,
                    body: b"{}",
                    timeout_ms: Some(5000),
                },
                Answer::Fetched(Err("http: refused".into())),
            ),
            (Call::Secret("token"), Answer::Present(true)),
            (Call::Secret("gone"), Answer::Present(false)),
            (Call::Secret("blank"), Answer::EmptySecret),
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
                    timeout_ms: None,
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
                timeout_ms: None,
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
    fn a_value_written_in_a_url_or_json_is_masked_too_and_the_replay_matches_it() {
        let granted = [("token".to_string(), "a b/c\"d".to_string())].into_iter().collect();
        let secrets = recorded_secrets(&granted);
        let get = |url| Call::Http {
            method: "GET",
            url,
            headers: &[],
            body: b"",
            timeout_ms: None,
        };
        let calls = [
            (Call::Secret("token"), Answer::Present(true)),
            (get("http://h/?q=a+b%2Fc%22d"), response("{\"echo\": \"a b/c\\\"d\"}")),
            (get("http://h/a%20b%2Fc%22d"), response("")),
        ];
        let tape = record(&calls, DEFAULT_CAP, secrets).tape.unwrap();
        for form in ["a b/c", "a+b%2Fc", "a%20b%2Fc", "a b/c\\\""] {
            assert!(
                !tape.windows(form.len()).any(|window| window == form.as_bytes()),
                "{form}"
            );
        }
        // The replayed plugin form-encodes the marker it was handed.
        let mut playback = Playback::open(tape).unwrap();
        playback.answer(Call::Secret("token")).unwrap();
        playback.answer(get("http://h/?q=%5Bsecret%3Atoken%5D")).unwrap();
        playback.answer(get("http://h/%5Bsecret%3Atoken%5D")).unwrap();
        assert_eq!(playback.finish(), None);
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
}
