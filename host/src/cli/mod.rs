//! The command line: `serve` (the daemon), `exec` (one local sandboxed run,
//! no daemon) and client commands for plugins, jobs, runs, logs and
//! schedules, all over the HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

/// `println!` for the command's results: a reader that went away (`| head`)
/// ends the command quietly instead of with a panic (see `print::line`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::print::line(format_args!($($arg)*))
    };
}

mod apply;
mod authoring;
mod exec;
mod job;
mod plugin;
mod print;
mod run;
mod tenant;

use apply::{ApplyArgs, apply};
use job::{JobCommand, job};
use plugin::{PluginCommand, plugin};
use print::print_json;
use run::{RunsArgs, logs, runs};
use tenant::{SecretCommand, TenantCommand, TokenCommand, secret, tenant, token};

use crate::client::{Body, Client, encode, local_token};
use crate::config::{ConfigArgs, DEFAULT_DATA_DIR, DEFAULT_URL, LogFormat};

/// sandcron: cron for sandboxed WebAssembly jobs.
#[derive(Parser)]
#[command(name = "sandcron", version, about, propagate_version = true)]
struct Cli {
    /// How a client command reaches the daemon: global, so the flags go
    /// before or after the subcommand (`sandcron job ls --output json`).
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: Command,
}

/// The daemon a client command talks to and how it prints the answer.
///
/// `data_dir` shares its id with `serve`'s own `--data-dir`
/// ([`crate::config::Settings`]): clap does not copy a global argument into a
/// subcommand that has one of the same id, so `serve` keeps its flag.
#[derive(Args, Clone)]
struct Connection {
    /// Daemon URL.
    #[arg(long, global = true, env = "SANDCRON_URL", default_value = DEFAULT_URL, display_order = CONNECTION_ORDER)]
    url: String,
    /// API token (default: the admin token in the data dir).
    #[arg(long, global = true, env = "SANDCRON_TOKEN", hide_env_values = true, display_order = CONNECTION_ORDER + 1)]
    token: Option<String>,
    /// Where a local daemon keeps its admin token.
    #[arg(long = "data-dir", global = true, env = "SANDCRON_DATA_DIR", default_value = DEFAULT_DATA_DIR, display_order = CONNECTION_ORDER + 2)]
    data_dir: PathBuf,
    /// How lists are printed.
    #[arg(long, global = true, env = "SANDCRON_OUTPUT", value_enum, default_value = "table", display_order = CONNECTION_ORDER + 3)]
    output: Output,
}

/// Where the connection flags sit in a command's help: after its own flags
/// (numbered from 0 as declared; help sorts by number, then name) and
/// before `--help` and `--version` (999).
const CONNECTION_ORDER: usize = 900;

/// How a list is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// Aligned columns for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

impl Connection {
    /// Prints `answer` as JSON, or as a table with `table`.
    fn show(&self, answer: &Value, table: impl FnOnce(&Value)) {
        match self.output {
            Output::Json => print_json(answer),
            Output::Table => table(answer),
        }
    }

    fn client(&self) -> Client {
        let token = self.token.clone().or_else(|| local_token(&self.data_dir));
        Client::new(&self.url, token)
    }
}

impl Cli {
    /// The command line as parsed, with `serve`'s data dir as `serve` was
    /// given it (see [`forget_client_data_dir`]).
    fn from_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut cli = <Self as clap::FromArgMatches>::from_arg_matches(matches)?;
        if let (Command::Serve(args), Some(serve)) = (&mut cli.command, matches.subcommand_matches("serve")) {
            forget_client_data_dir(args, serve);
        }
        Ok(cli)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve(Box<ConfigArgs>),
    /// Run a plugin once, locally, in the same sandbox (no daemon).
    Exec(exec::ExecArgs),
    /// Upload, list and delete plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Create, list, show, delete, pause, resume and run jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// List runs, newest first.
    Runs(RunsArgs),
    /// Show a run's captured log.
    Logs {
        /// Run id.
        run: String,
        /// Keep printing the log as the run writes it, until it finishes.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Show a run.
    Run {
        /// Run id.
        run: String,
    },
    /// Work with schedules.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Create and list tenants (admin token).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Create, list and revoke a tenant's API tokens (admin token).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Set, list and delete the tenant's secrets (values are never shown).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Make the tenant's jobs match a TOML file (`[[job]]` tables), by name.
    Apply(ApplyArgs),
    /// Write a new plugin project (a hello job with its SDK) in Rust, Python or JavaScript.
    New(authoring::NewArgs),
    /// Build the plugin project in DIR into a component; prints its path last.
    Build(authoring::BuildArgs),
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Show the next fires of a cron line.
    Preview {
        /// Cron expression (or use --every/--after/--at).
        expression: Option<String>,
        /// Time zone.
        #[arg(long)]
        tz: Option<String>,
        /// Fixed rate instead of cron ("15m").
        #[arg(long, conflicts_with_all = ["expression", "after", "at"])]
        every: Option<String>,
        /// Fixed delay instead of cron ("1m"): fires as if each run ended at once.
        #[arg(long, conflicts_with_all = ["expression", "at"])]
        after: Option<String>,
        /// Once, at an RFC 3339 instant.
        #[arg(long, conflicts_with = "expression")]
        at: Option<String>,
        /// Start after this instant (RFC 3339, default now).
        #[arg(long)]
        from: Option<String>,
        /// How many fires.
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    crate::daemon::tune_allocator();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match Cli::from_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.format(&mut <Cli as clap::CommandFactory>::command()).exit(),
    };
    let log_format = match &cli.command {
        Command::Serve(args) => args.settings.log_format.unwrap_or(LogFormat::Pretty),
        _ => LogFormat::Pretty,
    };
    init_tracing(log_format, matches!(cli.command, Command::Serve(_)));
    if let Some(serve) = matches.subcommand_matches("serve") {
        warn_of_secrets_in_flags(serve);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, &cli.connection)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A preview's fires: UTC, and beside it the wall time in the schedule's
/// zone when it has one (`2026-03-29 03:30:00 CEST`).
fn print_fires(answer: &Value) {
    let zone = answer["timezone"]
        .as_str()
        .and_then(|name| name.parse::<chrono_tz::Tz>().ok());
    for fire in answer["fires"].as_array().into_iter().flatten() {
        let fire = fire.as_str().unwrap_or_default();
        let local = zone.zip(chrono::DateTime::parse_from_rfc3339(fire).ok());
        match local {
            Some((zone, instant)) if zone != chrono_tz::UTC => out!(
                "{fire:<22}  {}",
                instant.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z (%:z)")
            ),
            _ => out!("{fire}"),
        }
    }
}

/// Secrets given to `serve` as flags, with the variable that keeps them
/// off the command line.
const SECRET_FLAGS: &[(&str, &str, &str)] = &[
    (
        "admin_token",
        "--admin-token",
        "SANDCRON_ADMIN_TOKEN or the admin-token file in the data dir",
    ),
    (
        "secrets_key",
        "--secrets-key",
        "SANDCRON_SECRETS_KEY or --secrets-key-file",
    ),
    ("smtp_url", "--smtp-url", "SANDCRON_SMTP_URL"),
];

/// Warns of each secret given as a flag: a process's arguments can be read
/// by every local user (`ps`, `/proc/<pid>/cmdline`). The SMTP URL counts
/// only when it carries a password.
fn warn_of_secrets_in_flags(serve: &clap::ArgMatches) {
    for (id, flag, instead) in SECRET_FLAGS {
        if serve.value_source(id) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        if *id == "smtp_url" {
            let value = serve.get_one::<String>(id).map(String::as_str).unwrap_or_default();
            let has_password = url::Url::parse(value).is_ok_and(|url| url.password().is_some());
            if !has_password {
                continue;
            }
        }
        tracing::warn!(
            "{flag} was given on the command line, where every local user can read it (ps, /proc/<pid>/cmdline); give it through {instead}"
        );
    }
}

/// Drops the client's default data dir that clap copied into `serve`.
///
/// After parsing, clap gives each subcommand on the way the value of a
/// global argument it did not get, a default included: without `--data-dir`,
/// `serve` would read the client's `./sandcron-data` as if given as a flag,
/// and it would beat the config file's `data_dir`. `serve`'s own
/// `--data-dir` has no default, so a default there is always the client's.
fn forget_client_data_dir(args: &mut ConfigArgs, serve: &clap::ArgMatches) {
    if serve.value_source("data_dir") == Some(clap::parser::ValueSource::DefaultValue) {
        args.settings.data_dir = None;
    }
}

fn init_tracing(format: LogFormat, daemon: bool) {
    let default = if daemon { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SANDCRON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

async fn dispatch(command: Command, connection: &Connection) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            let config = args.resolve()?;
            crate::daemon::serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec(args) => exec::exec(args).await,
        Command::Plugin(command) => plugin(command, connection).await,
        Command::Tenant(command) => tenant(command, connection).await,
        Command::Token(command) => token(command, connection).await,
        Command::Secret(command) => secret(command, connection).await,
        Command::Apply(args) => apply(args, connection).await,
        Command::New(args) => authoring::new(args),
        Command::Build(args) => authoring::build(args),
        Command::Job(command) => job(command, connection).await,
        Command::Runs(args) => runs(args, connection).await,
        Command::Logs { run, follow } => logs(&connection.client(), &run, follow).await,
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "sandcron", &mut script);
            print::write(&script);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { run } => {
            print_json(&connection.client().get(&format!("/v1/runs/{}", encode(&run))).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schedule(ScheduleCommand::Preview {
            expression,
            tz,
            every,
            after,
            at,
            from,
            count,
        }) => {
            let schedule = match (expression, every, after, at) {
                (Some(cron), None, None, None) => {
                    json!({"cron": cron, "timezone": tz.unwrap_or_else(|| "UTC".to_string())})
                }
                (None, Some(every), None, None) => json!({"every": every}),
                (None, None, Some(after), None) => json!({"after": after}),
                (None, None, None, Some(at)) => json!({"at": at}),
                _ => bail!("give a cron expression, --every, --after or --at"),
            };
            let mut body = json!({"schedule": schedule, "count": count});
            if let Some(from) = from {
                body["from"] = json!(from);
            }
            let answer = connection.client().post("/v1/schedules/preview", body).await?;
            connection.show(&answer, print_fires);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{flag}: {text:?} is not JSON"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let matches = Cli::command().try_get_matches_from(args).expect("the arguments parse");
        Cli::from_matches(&matches).expect("the matches make a Cli")
    }

    /// The data dir `serve` would use, as given on its command line.
    fn serve_data_dir(args: &[&str]) -> Option<PathBuf> {
        match parse(args).command {
            Command::Serve(args) => args.settings.data_dir,
            _ => panic!("not serve"),
        }
    }

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn connection_flags_go_before_or_after_the_subcommand() {
        for args in [
            &["sandcron", "job", "ls", "--output", "json", "--url", "http://daemon:1"][..],
            &["sandcron", "--output", "json", "--url", "http://daemon:1", "job", "ls"][..],
            &["sandcron", "job", "--output", "json", "--url", "http://daemon:1", "ls"][..],
        ] {
            let cli = parse(args);
            assert_eq!(cli.connection.output, Output::Json, "{args:?}");
            assert_eq!(cli.connection.url, "http://daemon:1", "{args:?}");
        }
    }

    #[test]
    fn serve_keeps_its_own_data_dir() {
        assert_eq!(
            serve_data_dir(&["sandcron", "serve", "--data-dir", "/srv/sandcron"]),
            Some(PathBuf::from("/srv/sandcron"))
        );
        // Without the flag (or its variable) the config file or the default decides.
        if std::env::var_os("SANDCRON_DATA_DIR").is_none() {
            assert_eq!(serve_data_dir(&["sandcron", "serve"]), None);
        }
    }
}
