//! Secret masking of a run's words: sandcron's one-pass masker against the
//! byte-by-byte masker it replaced (kept below as `byte_by_byte`, the code
//! of before, so both are measured in the same invocation). Prints the
//! median milliseconds of each scenario.
//!
//! `cargo bench -p sandcron --bench masking -- [ROUNDS]` (3 by default).
//! The byte-by-byte masker runs once per scenario where it takes minutes.

use std::time::{Duration, Instant};

use sandcron::sandbox::mask::Secrets;

/// The masker of before: one scan per value, comparing the whole value at
/// every byte of the output.
fn byte_by_byte(values: &[(String, Vec<u8>)], bytes: &[u8]) -> Vec<u8> {
    let mut masked = bytes.to_vec();
    for (name, value) in values {
        if masked.len() < value.len() {
            continue;
        }
        let marker = format!("[secret:{name}]").into_bytes();
        let mut out = Vec::with_capacity(masked.len());
        let mut at = 0;
        while at < masked.len() {
            if masked[at..].starts_with(value) {
                out.extend_from_slice(&marker);
                at += value.len();
            } else {
                out.push(masked[at]);
                at += 1;
            }
        }
        masked = out;
    }
    masked
}

/// Deterministic pseudo-random bytes (xorshift), printable.
fn noise(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'!' + (state % 90) as u8
        })
        .collect()
}

struct Scenario {
    name: &'static str,
    values: Vec<(String, Vec<u8>)>,
    output: Vec<u8>,
    /// Skip the byte-by-byte masker (it would take minutes).
    old_too_slow: bool,
}

/// `value` and near-misses of it (all but its last byte) until `length`.
fn flood(value: &[u8], length: usize) -> Vec<u8> {
    let mut output = Vec::with_capacity(length + 2 * value.len());
    while output.len() < length {
        output.extend_from_slice(value);
        output.push(b'\n');
        output.extend_from_slice(&value[..value.len() - 1]);
        output.push(b'\n');
    }
    output.truncate(length);
    output
}

fn scenarios() -> Vec<Scenario> {
    let random_secret = noise(64 << 10, 7);
    let mut random_output = noise(4 << 20, 11);
    for index in 0..16 {
        let at = index * (256 << 10);
        random_output[at..at + random_secret.len()].copy_from_slice(&random_secret);
    }
    let repeated = vec![b'a'; 64 << 10];
    let many: Vec<(String, Vec<u8>)> = (0..64)
        .map(|index| (format!("s{index}"), noise(64 << 10, 100 + index)))
        .collect();
    let mut big_output = noise(64 << 20, 13);
    for (index, (_, value)) in many.iter().enumerate() {
        let at = index * (1 << 20);
        big_output[at..at + value.len()].copy_from_slice(value);
    }
    vec![
        Scenario {
            name: "64 KiB random secret, 4 MiB output, 16 occurrences",
            values: vec![("big".into(), random_secret)],
            output: random_output,
            old_too_slow: false,
        },
        Scenario {
            name: "64 KiB secret of one byte, 4 MiB of it and near-misses",
            output: flood(&repeated, 4 << 20),
            values: vec![("big".into(), repeated)],
            old_too_slow: false,
        },
        Scenario {
            name: "64 secrets of 64 KiB, 64 MiB output",
            values: many,
            output: big_output,
            old_too_slow: true,
        },
    ]
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|argument| argument.parse().ok())
        .unwrap_or(3);
    for scenario in scenarios() {
        let pairs: Vec<(String, String)> = scenario
            .values
            .iter()
            .map(|(name, value)| (name.clone(), String::from_utf8(value.clone()).expect("printable")))
            .collect();
        let mut samples = Vec::new();
        let mut masked = Vec::new();
        for _ in 0..rounds {
            // A run builds its masker afresh: count the build too.
            let started = Instant::now();
            let secrets = Secrets::new(pairs.iter().map(|(name, value)| (name, value)));
            masked = secrets.mask(&scenario.output);
            samples.push(started.elapsed());
        }
        let new = median(samples);
        let old = if scenario.old_too_slow {
            None
        } else {
            let started = Instant::now();
            let before = byte_by_byte(&scenario.values, &scenario.output);
            let elapsed = started.elapsed();
            assert_eq!(before, masked, "{}: both maskers agree", scenario.name);
            Some(elapsed)
        };
        match old {
            Some(old) => println!(
                "{:<58} one pass {:>9.1} ms   byte by byte {:>10.1} ms   ({:.0}x)",
                scenario.name,
                new.as_secs_f64() * 1e3,
                old.as_secs_f64() * 1e3,
                old.as_secs_f64() / new.as_secs_f64()
            ),
            None => println!(
                "{:<58} one pass {:>9.1} ms   byte by byte: not run (minutes)",
                scenario.name,
                new.as_secs_f64() * 1e3
            ),
        }
    }
}
