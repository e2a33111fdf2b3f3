//! Hostile plugin: prints to stdout and stderr forever. The host keeps the
//! first bytes up to the log cap and the deadline ends the run.

use sandcron_plugin::Context;

fn run(_ctx: Context, _input: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut line: u64 = 0;
    loop {
        println!("chatty line {line}: all work and no play makes a dull plugin");
        if line.is_multiple_of(16) {
            eprintln!("chatty stderr {line}");
        }
        line += 1;
    }
}

sandcron_plugin::job!(run);
