//! The connection flags every client command shares: which daemon, which
//! token, where a local daemon keeps its admin token and how lists print.

use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::output::Output;
use super::print;
use crate::client::{Client, local_token};
use crate::config::{DEFAULT_DATA_DIR, DEFAULT_URL};

/// The daemon a client command talks to and how it prints the answer.
///
/// `data_dir` shares its id with `serve`'s own `--data-dir`
/// ([`crate::config::Settings`]): clap does not copy a global argument into a
/// subcommand that has one of the same id, so `serve` keeps its flag.
#[derive(Args, Clone)]
pub(super) struct Connection {
    /// Daemon URL.
    #[arg(long, global = true, env = "SANDCRON_URL", default_value = DEFAULT_URL, display_order = CONNECTION_ORDER)]
    pub(super) url: String,
    /// API token (default: the admin token in the data dir).
    #[arg(long, global = true, env = "SANDCRON_TOKEN", hide_env_values = true, display_order = CONNECTION_ORDER + 1)]
    pub(super) token: Option<String>,
    /// Where a local daemon keeps its admin token.
    #[arg(long = "data-dir", global = true, env = "SANDCRON_DATA_DIR", default_value = DEFAULT_DATA_DIR, display_order = CONNECTION_ORDER + 2)]
    pub(super) data_dir: PathBuf,
    /// How lists are printed.
    #[arg(long, global = true, env = "SANDCRON_OUTPUT", value_enum, default_value = "table", display_order = CONNECTION_ORDER + 3)]
    pub(super) output: Output,
}

/// Where the connection flags sit in a command's help: after its own flags
/// (numbered from 0 as declared; help sorts by number, then name) and
/// before `--help` and `--version` (999).
const CONNECTION_ORDER: usize = 900;

impl Connection {
    /// Prints `answer` as JSON, or as a table with `table`.
    pub(super) fn show(&self, answer: &Value, table: impl FnOnce(&Value)) {
        match self.output {
            Output::Json => print::print_json(answer),
            Output::Table => table(answer),
        }
    }

    /// A client for the daemon, with the token given or the local admin one.
    pub(super) fn client(&self) -> Client {
        let token = self.token.clone().or_else(|| local_token(&self.data_dir));
        Client::new(&self.url, token)
    }
}
