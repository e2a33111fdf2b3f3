//! The command line: `serve` (the daemon), `exec` (one local sandboxed run,
//! no daemon), `new` and `build` (plugin projects), `migrate` (a sled data
//! dir into PostgreSQL) and client commands for
//! plugins, jobs, workflows, runs, logs, schedules, tenants, tokens and
//! secrets, all over the HTTP API. One file per noun; this one parses the
//! command line and hands each command to its file. What the nouns share
//! lives in files of its own (the connection flags in `connection`,
//! printing in `print` and `output`, JSON flags in `arguments`), which they
//! import directly, never through this one.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod apply;
mod arguments;
mod authoring;
mod connection;
mod exec;
mod job;
mod migrate;
mod output;
mod plugin;
mod print;
mod replay;
mod run;
mod schedule;
mod secret;
mod serve;
mod tenant;
mod token;
mod workflow;

use crate::config::{ConfigArgs, LogFormat};
use connection::Connection;

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

impl Cli {
    /// The command line as parsed, with `serve`'s data dir as `serve` was
    /// given it (see [`serve::forget_client_data_dir`]).
    fn from_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut cli = <Self as clap::FromArgMatches>::from_arg_matches(matches)?;
        if let (Command::Serve(args), Some(serve)) = (&mut cli.command, matches.subcommand_matches("serve")) {
            serve::forget_client_data_dir(args, serve);
        }
        Ok(cli)
    }
}

/// Every command, each handled in its own file.
#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve(Box<ConfigArgs>),
    /// Run a plugin once, locally, in the same sandbox (no daemon).
    Exec(exec::ExecArgs),
    /// Upload, list and delete plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Create, list, show, delete, pause, resume and run jobs.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Create, list, show, delete, pause, resume and run workflows; list,
    /// show, cancel and retry their runs.
    #[command(subcommand)]
    Workflow(workflow::WorkflowCommand),
    /// List runs, newest first.
    Runs(run::RunsArgs),
    /// Show a run's captured log.
    Logs(run::LogsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Show a run.
    Run(run::RunArgs),
    /// Execute a recorded run again against its record, with no side
    /// effects (on another plugin version with --plugin); exits 1 unless
    /// the replay is identical.
    Replay(replay::ReplayArgs),
    /// Write a recorded run's record (for `sandcron exec --replay FILE`).
    Record(replay::RecordArgs),
    /// Work with schedules.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Create and list tenants (admin token).
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Create, list and revoke a tenant's API tokens (admin token).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Set, list and delete the tenant's secrets (values are never shown).
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Make the tenant's jobs and workflows match a TOML file (`[[job]]` and
    /// `[[workflow]]` tables), by name.
    Apply(apply::ApplyArgs),
    /// Write a new plugin project (a hello job with its SDK) in Rust, Python or JavaScript.
    New(authoring::NewArgs),
    /// Build the plugin project in DIR into a component; prints its path last.
    Build(authoring::BuildArgs),
    /// Copy a stopped sled daemon's whole state (its data dir) into an empty
    /// PostgreSQL database.
    Migrate(migrate::MigrateArgs),
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
    serve::init_tracing(log_format, matches!(cli.command, Command::Serve(_)));
    if let Some(serve) = matches.subcommand_matches("serve") {
        serve::warn_of_secrets_in_flags(serve);
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

/// Runs the command; client commands reach the daemon through `connection`.
async fn dispatch(command: Command, connection: &Connection) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::serve(&args).await,
        Command::Exec(args) => exec::exec(args).await,
        Command::Plugin(command) => plugin::plugin(command, connection).await,
        Command::Tenant(command) => tenant::tenant(command, connection).await,
        Command::Token(command) => token::token(command, connection).await,
        Command::Secret(command) => secret::secret(command, connection).await,
        Command::Apply(args) => apply::apply(args, connection).await,
        Command::New(args) => authoring::new(args),
        Command::Build(args) => authoring::build(args),
        Command::Migrate(args) => migrate::migrate(args).await,
        Command::Job(command) => job::job(command, connection).await,
        Command::Workflow(command) => workflow::workflow(command, connection).await,
        Command::Runs(args) => run::runs(args, connection).await,
        Command::Logs(args) => run::logs(args, connection).await,
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "sandcron", &mut script);
            print::write(&script);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run::run(args, connection).await,
        Command::Replay(args) => replay::replay(args, connection).await,
        Command::Record(args) => replay::record(args, connection).await,
        Command::Schedule(command) => schedule::schedule(command, connection).await,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::CommandFactory;

    use super::output::Output;
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
