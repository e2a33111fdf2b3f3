//! Hostile plugin: spins forever without calling the host. Stopped by the
//! epoch deadline (`timeout`) or by fuel (`fuel_exhausted`).

use sandcron_plugin::Context;

fn run(_ctx: Context, _input: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

sandcron_plugin::job!(run);
