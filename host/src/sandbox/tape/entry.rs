//! One entry of a tape: the call a plugin made and what it answered, as
//! they are encoded (a kind byte, the arguments, the answer; LEB128
//! lengths and numbers), decoded and named in a divergence. Kind and
//! answer codes are never reused. It knows nothing of recording or
//! replaying.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::outbound::FetchResponse;
use crate::sandbox::mask::Secrets;

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
        /// The plugin's own timeout, milliseconds.
        timeout_ms: Option<u64>,
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
    pub(super) fn encode(&self, secrets: &Secrets) -> (u8, Vec<u8>) {
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
                timeout_ms,
            } => {
                text(&mut args, method);
                text(&mut args, url);
                put_uint(&mut args, timeout_ms.map_or(0, |ms| ms.saturating_add(1)));
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
    /// `secrets.get` of a secret whose value is empty (a replay hands the
    /// plugin the empty value, not a marker).
    EmptySecret,
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
    pub const EMPTY_SECRET: u8 = 14;
}

/// Whether an answer is one a call of `kind` gives.
pub(super) fn fits(kind: u8, answer: &Answer) -> bool {
    matches!(
        (kind, answer),
        (kind::KV_GET | kind::KV_KEYS | kind::ZONE, Answer::Trap(_))
            | (kind::KV_SET | kind::KV_DELETE, Answer::Trap(_) | Answer::Done(_))
            | (kind::KV_GET, Answer::Value(_))
            | (kind::KV_KEYS, Answer::Keys(_))
            | (kind::HTTP, Answer::Fetched(_))
            | (kind::SECRET, Answer::Present(_) | Answer::EmptySecret)
            | (kind::ZONE, Answer::Zone(_))
            | (kind::UTC_OFFSET, Answer::Offset(_) | Answer::Trap(_))
            | (kind::WALL, Answer::Wall(_))
            | (kind::MONOTONIC, Answer::Monotonic(_))
    )
}

/// How a divergence names a stored call.
pub(super) fn describe(kind: u8, args: &[u8]) -> Result<String, String> {
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
            let timeout = match reader.uint()? {
                0 => String::new(),
                ms => format!(", a timeout of {} ms", ms - 1),
            };
            let digest = reader.take(8)?;
            format!(
                "http {method} {url} (headers and body sha256 {}…{timeout})",
                hex::encode(digest)
            )
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

pub(super) fn encode_answer(
    answer: &Answer,
    secrets: &Secrets,
    wall: &mut i64,
    monotonic: &mut u64,
    out: &mut Vec<u8>,
) {
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
        Answer::EmptySecret => out.push(answer::EMPTY_SECRET),
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

pub(super) fn decode_answer(encoded: &[u8], wall: &mut i64, monotonic: &mut u64) -> Result<Answer, String> {
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
        answer::EMPTY_SECRET => Answer::EmptySecret,
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
pub(super) fn masked(secrets: &Secrets, bytes: &[u8]) -> Vec<u8> {
    if secrets.is_empty() {
        bytes.to_vec()
    } else {
        secrets.mask(bytes)
    }
}

/// The first 8 bytes of the sha256 of `bytes`.
pub(super) fn digest(bytes: &[u8]) -> [u8; 8] {
    Sha256::digest(bytes)[..8].try_into().expect("sha256 has 32 bytes")
}

pub(super) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(super) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

pub(super) fn put_uint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(super) fn uint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads what the `put_` functions wrote.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn uint(&mut self) -> Result<u64, String> {
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

    pub(super) fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        if self.0.len() < length {
            return Err("it ends in the middle of an entry".into());
        }
        let (taken, rest) = self.0.split_at(length);
        self.0 = rest;
        Ok(taken)
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let length = usize::try_from(self.uint()?).map_err(|_| "a length past the address space".to_string())?;
        self.take(length)
    }

    pub(super) fn text(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "a text that is not UTF-8".to_string())
    }

    /// A count of items that each take at least a byte.
    pub(super) fn count(&mut self) -> Result<usize, String> {
        let count = self.uint()?;
        usize::try_from(count)
            .ok()
            .filter(|&count| count <= self.0.len())
            .ok_or_else(|| format!("a count of {count} past the bytes left"))
    }

    /// One entry: its kind, arguments and encoded answer.
    pub(super) fn entry(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), String> {
        Ok((self.byte()?, self.bytes()?, self.bytes()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
