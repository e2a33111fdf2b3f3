//! CPU-bound plugin for the benchmarks: call-heavy work (a naive recursive
//! Fibonacci and a hash loop over a vector it sorts), sized by its input,
//! a decimal `n` (default 25). Returns a checksum so nothing is optimised
//! away. Measures what fuel and epoch checks cost on code that calls a lot.

use std::hint::black_box;

use sandcron_plugin::Context;

fn fib(n: u32) -> u64 {
    if n < 2 { n as u64 } else { fib(n - 1) + fib(n - 2) }
}

fn mix(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, value| {
        (hash ^ value).wrapping_mul(0x0100_0000_01b3)
    })
}

fn run(_ctx: Context, input: Vec<u8>) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(&input);
    let n: u32 = match text.trim().trim_matches('"') {
        "" | "null" => 25,
        digits => digits
            .parse()
            .map_err(|_| format!("input {digits:?} is not a number"))?,
    };
    let mut values: Vec<u64> = (0..(1u64 << 12))
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7)
        .collect();
    let checksum = fib(black_box(n)) ^ mix(black_box(&mut values));
    Ok(checksum.to_string().into_bytes())
}

sandcron_plugin::job!(run);
