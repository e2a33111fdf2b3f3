//! Hostile plugin: allocates 1 MiB blocks, touching each, until refused.

use sandcron_plugin::Context;

fn run(_ctx: Context, _input: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block[0] = blocks.len() as u8;
        blocks.push(std::hint::black_box(block));
    }
}

sandcron_plugin::job!(run);
