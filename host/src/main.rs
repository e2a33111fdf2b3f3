//! The `sandcron` binary: the daemon and its command-line client.

fn main() -> std::process::ExitCode {
    sandcron::cli::main()
}
