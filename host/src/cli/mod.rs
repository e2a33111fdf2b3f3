//! The command line: `serve` (the daemon), `exec` (one local sandboxed run,
//! no daemon) and client commands for plugins, jobs, runs, logs and
//! schedules, all over the HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

mod exec;

use crate::client::{Body, Client, encode, local_token};
use crate::config::{ConfigArgs, DEFAULT_DATA_DIR, DEFAULT_URL, LogFormat};

/// sandcron: cron for sandboxed WebAssembly jobs.
#[derive(Parser)]
#[command(name = "sandcron", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Connection {
    /// Daemon URL.
    #[arg(long, global = true, env = "SANDCRON_URL", default_value = DEFAULT_URL)]
    url: String,
    /// API token (default: the admin token in the data dir).
    #[arg(long, global = true, env = "SANDCRON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where a local daemon keeps its admin token.
    #[arg(long = "data-dir", global = true, env = "SANDCRON_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// How lists are printed.
    #[arg(long, global = true, env = "SANDCRON_OUTPUT", value_enum, default_value = "table")]
    output: Output,
}

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
        #[command(flatten)]
        connection: Connection,
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
        #[command(flatten)]
        connection: Connection,
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
}

#[derive(Args)]
struct ApplyArgs {
    /// The jobs file.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Also delete the tenant's jobs that the file does not name.
    #[arg(long)]
    prune: bool,
    /// Show what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant; prints its first token (shown only this once).
    Create {
        /// Tenant name.
        name: String,
        #[command(flatten)]
        limits: TenantLimits,
        #[command(flatten)]
        connection: Connection,
    },
    /// Change a tenant's quotas or HTTP cap.
    Set {
        /// Tenant name.
        name: String,
        #[command(flatten)]
        limits: TenantLimits,
        #[command(flatten)]
        connection: Connection,
    },
    /// List tenants.
    Ls {
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Args)]
struct TenantLimits {
    /// A quota, KEY=VALUE (repeatable): plugin_bytes, jobs, concurrent_runs,
    /// max_fuel, max_timeout, max_memory, kv_bytes, requests_per_second,
    /// queued_runs, run_bytes; VALUE `none` removes the limit.
    #[arg(long = "quota", value_name = "KEY=VALUE")]
    quotas: Vec<String>,
    /// A host pattern the tenant's jobs may reach (repeatable); caps the
    /// jobs' own http_allow.
    #[arg(long = "http-allow", value_name = "PATTERN")]
    http_allow: Vec<String>,
}

impl TenantLimits {
    /// The request fields these flags set.
    fn body(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
        let mut body = serde_json::Map::new();
        if !self.quotas.is_empty() {
            let mut quotas = serde_json::Map::new();
            for pair in &self.quotas {
                let Some((key, value)) = pair.split_once('=') else {
                    bail!("--quota {pair:?}: expected KEY=VALUE");
                };
                let value = match value.trim() {
                    "none" | "null" => Value::Null,
                    text => text.parse::<u64>().map_or_else(|_| json!(text), |number| json!(number)),
                };
                quotas.insert(key.trim().to_string(), value);
            }
            body.insert("quotas".into(), Value::Object(quotas));
        }
        if !self.http_allow.is_empty() {
            body.insert("http_allow".into(), json!(self.http_allow));
        }
        Ok(body)
    }
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Set NAME to the value read from standard input (or --value).
    Set {
        /// Secret name.
        name: String,
        /// The value (it would stay in your shell history; prefer stdin).
        #[arg(long)]
        value: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// List secret names and dates.
    Ls {
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a secret.
    Rm {
        /// Secret name.
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for TENANT; prints it (shown only this once).
    Create {
        /// Tenant name.
        tenant: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// List a tenant's tokens (ids and dates; secrets are never shown again).
    Ls {
        /// Tenant name.
        tenant: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Revoke a token by id.
    Revoke {
        /// Tenant name.
        tenant: String,
        /// Token id (from `token ls`).
        id: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Upload a component as the next version of NAME.
    Push {
        /// The component file.
        file: PathBuf,
        /// Plugin name (default: the file name without .wasm).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// List plugins.
    Ls {
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete every version of a plugin.
    Rm {
        /// Plugin name.
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Subcommand)]
enum JobCommand {
    /// Create a job.
    Create(JobCreateArgs),
    /// List jobs.
    Ls {
        /// Only jobs with this label (key=value); repeatable.
        #[arg(long)]
        label: Vec<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Show a job.
    Get(JobRef),
    /// Delete a job.
    Rm(JobRef),
    /// Pause a job.
    Pause(JobRef),
    /// Resume a job.
    Resume(JobRef),
    /// Run a job now.
    Run {
        /// Job id or name.
        job: String,
        /// Input for this run (JSON).
        #[arg(long)]
        input: Option<String>,
        /// Wait this long for the run to finish ("30s").
        #[arg(long)]
        wait: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Args)]
struct JobRef {
    /// Job id or name.
    job: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Args)]
struct JobCreateArgs {
    /// A JSON file with the job (other flags override its fields).
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Job name.
    #[arg(long)]
    name: Option<String>,
    /// Plugin (`name` or `name@3`).
    #[arg(long)]
    plugin: Option<String>,
    /// Cron line.
    #[arg(long, conflicts_with_all = ["every", "after", "at"])]
    cron: Option<String>,
    /// Time zone of the cron line.
    #[arg(long, requires = "cron")]
    tz: Option<String>,
    /// Fixed rate ("30s").
    #[arg(long)]
    every: Option<String>,
    /// Fixed delay after the previous run ("1m").
    #[arg(long)]
    after: Option<String>,
    /// Once, at an RFC 3339 instant.
    #[arg(long)]
    at: Option<String>,
    /// Input (JSON).
    #[arg(long)]
    input: Option<String>,
    /// Label key=value; repeatable.
    #[arg(long)]
    label: Vec<String>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Args)]
struct RunsArgs {
    /// Only this job's runs (id or name).
    #[arg(long)]
    job: Option<String>,
    /// Only runs in this status.
    #[arg(long)]
    status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON instead of a table (as --output json).
    #[arg(long)]
    json: bool,
    /// Then keep printing runs as they are queued, start and finish.
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    connection: Connection,
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
        /// Fixed rate instead of cron.
        #[arg(long)]
        every: Option<String>,
        /// Start after this instant (RFC 3339, default now).
        #[arg(long)]
        from: Option<String>,
        /// How many fires.
        #[arg(long, default_value_t = 10)]
        count: usize,
        #[command(flatten)]
        connection: Connection,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    crate::daemon::tune_allocator();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.format(&mut <Cli as clap::CommandFactory>::command()).exit(),
    };
    let log_format = match &cli.command {
        Command::Serve(args) => args.log_format.unwrap_or(LogFormat::Pretty),
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
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
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

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            let config = args.resolve()?;
            crate::daemon::serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec(args) => exec::exec(args).await,
        Command::Plugin(command) => plugin(command).await,
        Command::Tenant(command) => tenant(command).await,
        Command::Token(command) => token(command).await,
        Command::Secret(command) => secret(command).await,
        Command::Apply(args) => apply(args).await,
        Command::Job(command) => job(command).await,
        Command::Runs(args) => runs(args).await,
        Command::Logs {
            run,
            follow,
            connection,
        } => logs(&connection.client(), &run, follow).await,
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "sandcron", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { run, connection } => {
            print_json(&connection.client().get(&format!("/v1/runs/{}", encode(&run))).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schedule(ScheduleCommand::Preview {
            expression,
            tz,
            every,
            from,
            count,
            connection,
        }) => {
            let schedule = match (expression, every) {
                (Some(cron), None) => json!({"cron": cron, "timezone": tz.unwrap_or_else(|| "UTC".to_string())}),
                (None, Some(every)) => json!({"every": every}),
                _ => bail!("give a cron expression or --every"),
            };
            let mut body = json!({"schedule": schedule, "count": count});
            if let Some(from) = from {
                body["from"] = json!(from);
            }
            let answer = connection.client().post("/v1/schedules/preview", body).await?;
            for fire in answer["fires"].as_array().into_iter().flatten() {
                println!("{}", fire.as_str().unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An upload: with a progress bar on a terminal when it is over 1 MiB.
fn upload_body(bytes: Vec<u8>) -> Body {
    if bytes.len() < 1 << 20 || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return Body::Bytes(bytes);
    }
    let bar = indicatif::ProgressBar::new(bytes.len() as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("uploading {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
    {
        bar.set_style(style);
    }
    let chunks: Vec<bytes::Bytes> = bytes.chunks(64 << 10).map(bytes::Bytes::copy_from_slice).collect();
    let sent = chunks.into_iter().map(move |chunk| {
        bar.inc(chunk.len() as u64);
        if bar.length().is_some_and(|length| bar.position() >= length) {
            bar.finish_and_clear();
        }
        Ok::<_, std::io::Error>(chunk)
    });
    Body::Stream(reqwest::Body::wrap_stream(futures_util::stream::iter(sent)))
}

fn print_plugins(answer: &Value) {
    println!("{:<24} {:>7} {:>10}  DIGEST", "NAME", "LATEST", "SIZE");
    for plugin in answer["plugins"].as_array().into_iter().flatten() {
        let latest = plugin["versions"]
            .as_array()
            .and_then(|versions| versions.last())
            .cloned()
            .unwrap_or_default();
        println!(
            "{:<24} {:>7} {:>10}  {}",
            plugin["name"].as_str().unwrap_or_default(),
            plugin["latest"].to_string(),
            latest["size"].to_string(),
            latest["digest"].as_str().unwrap_or_default()
        );
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn parse_json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{flag}: {text:?} is not JSON"))
}

async fn plugin(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Push { file, name, connection } => {
            let name = match name {
                Some(name) => name,
                None => file
                    .file_stem()
                    .and_then(|stem| stem.to_str())
                    .map(str::to_string)
                    .context("give --name; the file name is not usable")?,
            };
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let answer = connection
                .client()
                .call(
                    Method::POST,
                    &format!("/v1/plugins?name={}", encode(&name)),
                    upload_body(bytes),
                )
                .await?;
            let version = answer.json()?;
            let verb = if answer.status == reqwest::StatusCode::CREATED {
                "uploaded"
            } else {
                "unchanged"
            };
            println!(
                "{verb} {} {}",
                version["reference"].as_str().unwrap_or_default(),
                version["digest"].as_str().unwrap_or_default()
            );
        }
        PluginCommand::Ls { connection } => {
            let answer = connection.client().get("/v1/plugins").await?;
            connection.show(&answer, print_plugins);
        }
        PluginCommand::Rm { name, connection } => {
            connection
                .client()
                .call(Method::DELETE, &format!("/v1/plugins/{}", encode(&name)), Body::None)
                .await?;
            println!("deleted {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn tenant(command: TenantCommand) -> anyhow::Result<ExitCode> {
    match command {
        TenantCommand::Create {
            name,
            limits,
            connection,
        } => {
            let mut body = limits.body()?;
            body.insert("name".into(), json!(name));
            let answer = connection.client().post("/v1/tenants", Value::Object(body)).await?;
            println!("created tenant {name}");
            println!(
                "token (shown only now): {}",
                answer["token"].as_str().unwrap_or_default()
            );
        }
        TenantCommand::Set {
            name,
            limits,
            connection,
        } => {
            let path = format!("/v1/tenants/{}", encode(&name));
            let body = Body::Json(Value::Object(limits.body()?));
            let answer = connection.client().call(Method::PATCH, &path, body).await?.json()?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        TenantCommand::Ls { connection } => {
            let answer = connection.client().get("/v1/tenants").await?;
            connection.show(&answer, |answer| {
                println!("{:<32} CREATED", "NAME");
                for tenant in answer["tenants"].as_array().into_iter().flatten() {
                    println!(
                        "{:<32} {}",
                        tenant["name"].as_str().unwrap_or_default(),
                        tenant["created_at"].as_str().unwrap_or_default()
                    );
                }
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create { tenant, connection } => {
            let path = format!("/v1/tenants/{}/tokens", encode(&tenant));
            let answer = connection.client().post(&path, json!({})).await?;
            println!("token {} for {tenant}", answer["id"].as_str().unwrap_or_default());
            println!(
                "token (shown only now): {}",
                answer["token"].as_str().unwrap_or_default()
            );
        }
        TokenCommand::Ls { tenant, connection } => {
            let answer = connection
                .client()
                .get(&format!("/v1/tenants/{}/tokens", encode(&tenant)))
                .await?;
            connection.show(&answer, |answer| {
                println!("{:<28} {:<32} REVOKED", "ID", "CREATED");
                for token in answer["tokens"].as_array().into_iter().flatten() {
                    println!(
                        "{:<28} {:<32} {}",
                        token["id"].as_str().unwrap_or_default(),
                        token["created_at"].as_str().unwrap_or_default(),
                        token["revoked_at"].as_str().unwrap_or("-")
                    );
                }
            });
        }
        TokenCommand::Revoke { tenant, id, connection } => {
            let path = format!("/v1/tenants/{}/tokens/{}", encode(&tenant), encode(&id));
            connection.client().call(Method::DELETE, &path, Body::None).await?;
            println!("revoked token {id} of {tenant}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `[[job]]` tables of a jobs file, as JSON specs.
fn jobs_in_file(path: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct JobsFile {
        #[serde(default)]
        job: Vec<toml::Table>,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: JobsFile = toml::from_str(&text).with_context(|| format!("{} is not a jobs file", path.display()))?;
    let mut names = std::collections::HashSet::new();
    let mut jobs = Vec::new();
    for (index, table) in file.job.into_iter().enumerate() {
        let spec = serde_json::to_value(&table)?;
        let Some(name) = spec["name"].as_str() else {
            bail!("{}: job {} has no name", path.display(), index + 1);
        };
        if !names.insert(name.to_string()) {
            bail!("{}: the job name {name:?} appears twice", path.display());
        }
        jobs.push(spec);
    }
    Ok(jobs)
}

async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let jobs = jobs_in_file(&args.file)?;
    let client = args.connection.client();
    // Check every job first: a bad one stops the apply before anything changes.
    let mut plan = Vec::new();
    for spec in &jobs {
        let name = spec["name"].as_str().unwrap_or_default();
        let path = format!("/v1/jobs/{}?dry_run=true", encode(name));
        let answer = client
            .call(Method::PUT, &path, Body::Json(spec.clone()))
            .await
            .with_context(|| format!("job {name:?}"))?
            .json()?;
        let change = answer["change"].as_str().unwrap_or("update").to_string();
        let fields: Vec<String> = answer["changed_fields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|field| field.as_str().map(str::to_string))
            .collect();
        plan.push((name.to_string(), change, fields));
    }
    let mut doomed = Vec::new();
    if args.prune {
        let listed = client.get("/v1/jobs").await?;
        for job in listed["jobs"].as_array().into_iter().flatten() {
            let name = job["name"].as_str().unwrap_or_default();
            if !plan.iter().any(|(planned, _, _)| planned == name) {
                doomed.push(name.to_string());
            }
        }
    }
    for (name, change, fields) in &plan {
        match change.as_str() {
            "create" => println!("+ create    {name}"),
            "unchanged" => println!("= unchanged {name}"),
            _ => println!("~ update    {name} ({})", fields.join(", ")),
        }
    }
    for name in &doomed {
        println!("- delete    {name}");
    }
    if args.dry_run {
        println!("dry run: nothing changed");
        return Ok(ExitCode::SUCCESS);
    }
    for (spec, (name, change, _)) in jobs.iter().zip(&plan) {
        if change != "unchanged" {
            let path = format!("/v1/jobs/{}", encode(name));
            client.call(Method::PUT, &path, Body::Json(spec.clone())).await?;
        }
    }
    for name in &doomed {
        client
            .call(Method::DELETE, &format!("/v1/jobs/{}", encode(name)), Body::None)
            .await?;
    }
    let count = |kind: &str| plan.iter().filter(|(_, change, _)| change == kind).count();
    println!(
        "applied: {} created, {} updated, {} unchanged, {} deleted",
        count("create"),
        count("update"),
        count("unchanged"),
        doomed.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn secret(command: SecretCommand) -> anyhow::Result<ExitCode> {
    match command {
        SecretCommand::Set {
            name,
            value,
            connection,
        } => {
            let value = match value {
                Some(value) => value,
                None => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                        .context("reading the secret from standard input")?;
                    text.strip_suffix('\n')
                        .map(|text| text.strip_suffix('\r').unwrap_or(text))
                        .unwrap_or(&text)
                        .to_string()
                }
            };
            let path = format!("/v1/secrets/{}", encode(&name));
            connection
                .client()
                .call(Method::PUT, &path, Body::Json(json!({"value": value})))
                .await?;
            println!("set secret {name}");
        }
        SecretCommand::Ls { connection } => {
            let answer = connection.client().get("/v1/secrets").await?;
            connection.show(&answer, |answer| {
                println!("{:<40} {:<32} UPDATED", "NAME", "CREATED");
                for secret in answer["secrets"].as_array().into_iter().flatten() {
                    println!(
                        "{:<40} {:<32} {}",
                        secret["name"].as_str().unwrap_or_default(),
                        secret["created_at"].as_str().unwrap_or_default(),
                        secret["updated_at"].as_str().unwrap_or_default()
                    );
                }
            });
        }
        SecretCommand::Rm { name, connection } => {
            let path = format!("/v1/secrets/{}", encode(&name));
            connection.client().call(Method::DELETE, &path, Body::None).await?;
            println!("deleted secret {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn job_body(args: &JobCreateArgs) -> anyhow::Result<Value> {
    let mut body = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            parse_json_arg("--file", &text)?
        }
        None => json!({}),
    };
    if let Some(name) = &args.name {
        body["name"] = json!(name);
    }
    if let Some(plugin) = &args.plugin {
        body["plugin"] = json!(plugin);
    }
    if let Some(cron) = &args.cron {
        body["schedule"] = json!({"cron": cron, "timezone": args.tz.clone().unwrap_or_else(|| "UTC".to_string())});
    } else if let Some(every) = &args.every {
        body["schedule"] = json!({"every": every});
    } else if let Some(after) = &args.after {
        body["schedule"] = json!({"after": after});
    } else if let Some(at) = &args.at {
        body["schedule"] = json!({"at": at});
    }
    if let Some(input) = &args.input {
        body["input"] = parse_json_arg("--input", input)?;
    }
    for label in &args.label {
        let (key, value) = label
            .split_once('=')
            .with_context(|| format!("--label {label:?}: expected key=value"))?;
        body["labels"][key] = json!(value);
    }
    Ok(body)
}

async fn job(command: JobCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobCommand::Create(args) => {
            let body = job_body(&args)?;
            print_json(&args.connection.client().post("/v1/jobs", body).await?);
        }
        JobCommand::Ls { label, connection } => {
            let query: Vec<String> = label.iter().map(|label| format!("label={}", encode(label))).collect();
            let answer = connection
                .client()
                .get(&format!("/v1/jobs?{}", query.join("&")))
                .await?;
            connection.show(&answer, |answer| {
                println!(
                    "{:<26} {:<24} {:<16} {:<8} {:<32} NEXT FIRE",
                    "ID", "NAME", "PLUGIN", "STATE", "SCHEDULE"
                );
                for job in answer["jobs"].as_array().into_iter().flatten() {
                    println!(
                        "{:<26} {:<24} {:<16} {:<8} {:<32} {}",
                        job["id"].as_str().unwrap_or_default(),
                        job["name"].as_str().unwrap_or_default(),
                        job["plugin"].as_str().unwrap_or_default(),
                        job["state"].as_str().unwrap_or_default(),
                        describe_schedule(&job["schedule"]),
                        job["next_fire_at"].as_str().unwrap_or("-"),
                    );
                }
            });
        }
        JobCommand::Get(JobRef { job, connection }) => {
            print_json(&connection.client().get(&format!("/v1/jobs/{}", encode(&job))).await?);
        }
        JobCommand::Rm(JobRef { job, connection }) => {
            connection
                .client()
                .call(Method::DELETE, &format!("/v1/jobs/{}", encode(&job)), Body::None)
                .await?;
            println!("deleted {job}");
        }
        JobCommand::Pause(JobRef { job, connection }) => {
            connection
                .client()
                .post(&format!("/v1/jobs/{}/pause", encode(&job)), Value::Null)
                .await?;
            println!("paused {job}");
        }
        JobCommand::Resume(JobRef { job, connection }) => {
            connection
                .client()
                .post(&format!("/v1/jobs/{}/resume", encode(&job)), Value::Null)
                .await?;
            println!("resumed {job}");
        }
        JobCommand::Run {
            job,
            input,
            wait,
            connection,
        } => {
            let body = match input {
                Some(text) => json!({"input": parse_json_arg("--input", &text)?}),
                None => json!({}),
            };
            let wait = wait.map(|wait| format!("?wait={}", encode(&wait))).unwrap_or_default();
            let run = connection
                .client()
                .post(&format!("/v1/jobs/{}/run{wait}", encode(&job)), body)
                .await?;
            print_json(&run);
            if run["status"] == "failed" {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// "cron 0 8 * * MON-FRI (Europe/Berlin)", "every 30s", "on demand".
fn describe_schedule(schedule: &Value) -> String {
    let Some(fields) = schedule.as_object() else {
        return "on demand".to_string();
    };
    match (fields.get("cron"), fields.get("timezone")) {
        (Some(cron), Some(zone)) => format!(
            "cron {} ({})",
            cron.as_str().unwrap_or_default(),
            zone.as_str().unwrap_or_default()
        ),
        _ => fields
            .iter()
            .map(|(kind, value)| format!("{kind} {}", value.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

async fn runs(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(job) = &args.job {
        query.push(format!("job={}", encode(job)));
    }
    if let Some(status) = &args.status {
        query.push(format!("status={}", encode(status)));
    }
    let answer = args
        .connection
        .client()
        .get(&format!("/v1/runs?{}", query.join("&")))
        .await?;
    let json = args.json || args.connection.output == Output::Json;
    if json {
        print_json(&answer);
    } else {
        print_runs(&answer);
    }
    if args.follow {
        follow_runs(&args, json).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints run events as they come, reconnecting (and resuming where it
/// left off) when the stream drops; runs until interrupted.
async fn follow_runs(args: &RunsArgs, json: bool) -> anyhow::Result<()> {
    let client = args.connection.client();
    let mut path = "/v1/events?types=run".to_string();
    if let Some(job) = &args.job {
        path.push_str(&format!("&job={}", encode(job)));
    }
    let mut last_id: Option<u64> = None;
    loop {
        let mut response = match client.stream(&path, last_id).await {
            Ok(response) => response,
            Err(error @ crate::client::ClientError::Api { .. }) => return Err(error.into()),
            Err(error) => {
                eprintln!("{error}; reconnecting");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let Some(data) = frame.lines().find_map(|line| line.strip_prefix("data: ")) else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                last_id = event["id"].as_u64().or(last_id);
                let run = &event["data"];
                if args.status.as_deref().is_some_and(|status| run["status"] != status) {
                    continue;
                }
                if json {
                    println!("{event}");
                } else if event["kind"].is_string() {
                    println!(
                        "{:<24} {:<13} {:<20} {:<26} {:<10} {:>9} {}",
                        event["at"].as_str().map_or("-", |at| at.get(..23).unwrap_or(at)),
                        event["kind"].as_str().unwrap_or_default(),
                        run["job_name"].as_str().unwrap_or_default(),
                        run["run_id"].as_str().unwrap_or_default(),
                        run["status"].as_str().unwrap_or_default(),
                        run["duration_ms"]
                            .as_u64()
                            .map_or("-".to_string(), |ms| format!("{ms}ms")),
                        run["error"]["kind"].as_str().unwrap_or(""),
                    );
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Prints a run's log; with `follow`, the log so far and what comes next
/// until the run finishes.
async fn logs(client: &Client, run: &str, follow: bool) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let path = format!("/v1/runs/{}/logs", encode(run));
    let mut printed = 0;
    loop {
        // The status first: a log read after a finished status is complete.
        let finished = !follow || client.get(&format!("/v1/runs/{}", encode(run))).await?["finished_at"].is_string();
        let log = client.call(Method::GET, &path, Body::None).await?.body;
        if log.len() > printed {
            std::io::stdout().write_all(&log[printed..])?;
            std::io::stdout().flush()?;
            printed = log.len();
        }
        if finished {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

fn print_runs(answer: &Value) {
    println!(
        "{:<26} {:<20} {:<10} {:<9} {:>9} {:<20} ERROR",
        "ID", "JOB", "STATUS", "TRIGGER", "DURATION", "STARTED"
    );
    for run in answer["runs"].as_array().into_iter().flatten() {
        let duration = run["duration_ms"]
            .as_u64()
            .map(|ms| format!("{ms}ms"))
            .unwrap_or_else(|| "-".to_string());
        let error = run["error"]["kind"].as_str().unwrap_or("");
        println!(
            "{:<26} {:<20} {:<10} {:<9} {:>9} {:<20} {}",
            run["id"].as_str().unwrap_or_default(),
            run["job_name"].as_str().unwrap_or_default(),
            run["status"].as_str().unwrap_or_default(),
            run["trigger"].as_str().unwrap_or_default(),
            duration,
            run["started_at"]
                .as_str()
                .map(|at| at.get(..19).unwrap_or(at))
                .unwrap_or("-"),
            error,
        );
    }
}
