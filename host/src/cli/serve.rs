//! `sandcron serve`: the daemon from its settings, a warning for each
//! secret given as a flag, and the log output every command shares.

use std::process::ExitCode;

use clap::ArgMatches;
use clap::parser::ValueSource;

use crate::config::{ConfigArgs, LogFormat};

/// Runs the daemon until it is stopped.
pub(super) async fn serve(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = args.resolve()?;
    crate::daemon::serve(config).await?;
    Ok(ExitCode::SUCCESS)
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
    ("database_url", "--database-url", "SANDCRON_DATABASE_URL"),
];

/// Warns of each secret given as a flag: a process's arguments can be read
/// by every local user (`ps`, `/proc/<pid>/cmdline`). The SMTP and
/// database URLs count only when they carry a password.
pub(super) fn warn_of_secrets_in_flags(serve: &ArgMatches) {
    for (id, flag, instead) in SECRET_FLAGS {
        if serve.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        if *id == "smtp_url" || *id == "database_url" {
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
pub(super) fn forget_client_data_dir(args: &mut ConfigArgs, serve: &ArgMatches) {
    if serve.value_source("data_dir") == Some(ValueSource::DefaultValue) {
        args.settings.data_dir = None;
    }
}

/// Logs to standard error, filtered by `SANDCRON_LOG`: the daemon's at
/// `info`, a client command's at `warn`.
pub(super) fn init_tracing(format: LogFormat, daemon: bool) {
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
