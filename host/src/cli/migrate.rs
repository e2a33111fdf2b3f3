//! `sandcron migrate`: copies a stopped sled daemon's whole state into an
//! empty PostgreSQL database through the store's subject traits, read with
//! [`SledStore`] and written with [`PgStore`]: tenants and their tokens,
//! secrets (sealed bytes as they are), plugin versions with their bytes,
//! jobs, their kv, runs with outputs and logs, workflows, their runs and the
//! joins of jobs that wait for others.
//!
//! It does not copy what is a node's own: compiled code (a daemon compiles
//! a plugin again on its first run) and the files beside the database (the
//! secrets key and the admin token), which the notes it prints name.
//! [`PgStore::connect`] wants a folder for this node's compiled code; the
//! migration compiles nothing, so it gets a temporary folder removed at the
//! end, not `<DIR>/compiled`: that would leave an empty folder in the sled
//! data dir that no daemon reads (a daemon on PostgreSQL keeps its compiled
//! code under its own data dir).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Args;

use super::print::out;
use crate::model::{Run, Tenant};
use crate::store::{
    ClusterStore, JobStore, KvStore, PgStore, PluginStore, RunFilter, RunStore, RunWrite, SecretStore, SledStore,
    StoreError, TenantStore, WorkflowStore, redacted_database_url,
};

/// Runs (and workflow runs, joins) written per call, one transaction each.
const BATCH: usize = 500;

/// Output and log bytes a batch of runs holds at most before it is written,
/// so a history of large logs is not all in memory at once.
const BATCH_BYTES: usize = 16 << 20;

/// `sandcron migrate --from-data-dir DIR --to postgres://...`.
#[derive(Args)]
pub(super) struct MigrateArgs {
    /// The data dir of a stopped daemon that ran on sled (the folder that
    /// holds `db/`).
    #[arg(long = "from-data-dir", value_name = "DIR")]
    from_data_dir: PathBuf,
    /// The empty PostgreSQL database to fill
    /// (postgres://USER:PASSWORD@HOST:PORT/DATABASE); give it through the
    /// environment when it carries a password.
    #[arg(
        long = "to",
        value_name = "DATABASE_URL",
        env = "SANDCRON_DATABASE_URL",
        hide_env_values = true
    )]
    to: String,
}

/// Copies the data dir's state into the database; prints a line per subject
/// (standard error) and a summary (standard output).
pub(super) async fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    // Both stores block: sled on the disk, PostgreSQL on its own runtime.
    tokio::task::spawn_blocking(move || run(&args))
        .await
        .context("the migration stopped")??;
    Ok(ExitCode::SUCCESS)
}

/// Everything the migration did, by subject.
#[derive(Debug, Default)]
struct Totals {
    tenants: usize,
    tokens: usize,
    revoked: usize,
    secrets: usize,
    plugins: usize,
    plugin_versions: usize,
    jobs: usize,
    kv_keys: usize,
    runs: usize,
    unfinished: usize,
    workflows: usize,
    workflow_runs: usize,
    joins: usize,
}

impl Totals {
    /// The line printed last: what moved.
    fn summary(&self) -> String {
        format!(
            "migrated {}, {}, {}, {}, {}, {}, {}, {}",
            counted(self.tenants, "tenant"),
            counted(self.plugin_versions, "plugin version"),
            counted(self.jobs, "job"),
            counted(self.runs, "run"),
            counted(self.kv_keys, "kv key"),
            counted(self.secrets, "secret"),
            counted(self.workflows, "workflow"),
            counted(self.workflow_runs, "workflow run"),
        )
    }
}

/// "1 job", "3 jobs".
fn counted(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn run(args: &MigrateArgs) -> anyhow::Result<()> {
    let database = redacted_database_url(&args.to);
    let source = open_source(&args.from_data_dir)?;
    // Declared before the target, so it is removed after the store is gone.
    let scratch = ScratchDir::new()?;
    let target = match PgStore::connect(&args.to, scratch.path(), "") {
        Ok(store) => store,
        Err(StoreError::Locked(message)) => bail!("{message}"),
        Err(error) => return Err(error).with_context(|| format!("opening the database at {database}")),
    };
    // A node renews its lease several times a second: one seen lately runs.
    let nodes = target.nodes().context("looking for running nodes")?;
    if let Some(running) = nodes
        .iter()
        .find(|node| chrono::Utc::now() - node.last_seen < chrono::Duration::seconds(5))
    {
        bail!(
            "a sandcron node ({}) is running on the database at {database}: stop every node first",
            running.id
        );
    }
    let names = source.tenant_names().context("reading the tenants of the data dir")?;
    let held = held_state(&target, &names).context("looking into the database")?;
    if !held.is_empty() {
        bail!(
            "the database at {database} already holds sandcron state ({}); migrate only into an empty database. Nothing was written",
            held.join("; ")
        );
    }
    eprintln!("migrating {} to {database}", args.from_data_dir.display());
    let totals = copy(&source, &target, &names).with_context(|| {
        format!(
            "the migration stopped part way, so the database at {database} holds part of the state: drop and create it again (or empty it) before migrating again"
        )
    })?;
    print_notes(&args.from_data_dir);
    out!("{}", totals.summary());
    Ok(())
}

/// The sled database in `dir`, refused when there is none or a daemon
/// holds it.
fn open_source(dir: &Path) -> anyhow::Result<SledStore> {
    let path = dir.join("db");
    if !path.is_dir() {
        bail!(
            "{} holds no sandcron database (there is no {}): give --from-data-dir the data dir of a daemon that ran on sled",
            dir.display(),
            path.display()
        );
    }
    match SledStore::open(&path) {
        Ok(store) => Ok(store),
        // sled's own message carries a dump of the I/O error; this one says what to do.
        Err(StoreError::Locked(_)) => bail!(
            "the database {} is locked by a running process (a sandcron daemon on this data dir?): stop the daemon first",
            path.display()
        ),
        Err(error) => Err(error).with_context(|| format!("opening {}", path.display())),
    }
}

/// What the database already holds, per tenant (empty when nothing): any
/// tenant record, and the jobs, plugin versions, workflows, secrets and runs
/// of the data dir's tenants and of the database's own.
fn held_state(target: &PgStore, names: &[String]) -> anyhow::Result<Vec<String>> {
    let mut held = Vec::new();
    let records: Vec<String> = target.list_tenants()?.into_iter().map(|tenant| tenant.name).collect();
    if !records.is_empty() {
        held.push(format!("tenants {}", records.join(", ")));
    }
    let mut every: BTreeSet<String> = names.iter().cloned().collect();
    every.extend(target.tenant_names()?);
    for name in &every {
        let mut found = Vec::new();
        for (count, noun) in [
            (target.list_jobs(name)?.len(), "job"),
            (target.list_plugin_versions(name)?.len(), "plugin version"),
            (target.list_workflows(name)?.len(), "workflow"),
            (target.list_secrets(name)?.len(), "secret"),
        ] {
            if count > 0 {
                found.push(counted(count, noun));
            }
        }
        let one = RunFilter {
            limit: 1,
            ..RunFilter::default()
        };
        if !target.list_runs(name, &one)?.is_empty() {
            found.push("runs".to_string());
        }
        if !found.is_empty() {
            held.push(format!("tenant {name}: {}", found.join(", ")));
        }
    }
    Ok(held)
}

/// Copies every subject, one after the other, with a line for each.
fn copy(source: &SledStore, target: &PgStore, names: &[String]) -> anyhow::Result<Totals> {
    let mut totals = Totals::default();
    copy_tenants(source, target, names, &mut totals).context("copying the tenants")?;
    eprintln!(
        "tenants: {} ({}, {} revoked)",
        totals.tenants,
        counted(totals.tokens, "token"),
        totals.revoked
    );
    for name in names {
        for secret in source.list_secrets(name)? {
            target
                .put_secret(&secret)
                .with_context(|| format!("copying secret {} of tenant {name}", secret.name))?;
            totals.secrets += 1;
        }
    }
    eprintln!("secrets: {}", totals.secrets);
    for name in names {
        copy_plugins(source, target, name, &mut totals)
            .with_context(|| format!("copying the plugins of tenant {name}"))?;
    }
    eprintln!(
        "plugins: {} of {}",
        counted(totals.plugin_versions, "version"),
        counted(totals.plugins, "plugin")
    );
    let mut jobs = Vec::new();
    for name in names {
        for job in source.list_jobs(name)? {
            target
                .insert_job(&job)
                .with_context(|| format!("copying job {} of tenant {name}", job.name))?;
            jobs.push((job.tenant, job.id));
        }
    }
    totals.jobs = jobs.len();
    eprintln!("jobs: {}", totals.jobs);
    for (tenant, job_id) in &jobs {
        for key in source.kv_keys(tenant, job_id, "", usize::MAX)? {
            if let Some(value) = source.kv_get(tenant, job_id, &key)? {
                target
                    .kv_set(tenant, job_id, &key, &value)
                    .with_context(|| format!("copying kv key {key:?} of job {job_id} of tenant {tenant}"))?;
                totals.kv_keys += 1;
            }
        }
    }
    eprintln!("kv: {}", counted(totals.kv_keys, "key"));
    for name in names {
        copy_runs(source, target, name, &mut totals).with_context(|| format!("copying the runs of tenant {name}"))?;
    }
    eprintln!("runs: {} ({} queued or running)", totals.runs, totals.unfinished);
    for name in names {
        for workflow in source.list_workflows(name)? {
            target
                .put_workflow(&workflow)
                .with_context(|| format!("copying workflow {} of tenant {name}", workflow.name))?;
            totals.workflows += 1;
        }
    }
    eprintln!("workflows: {}", totals.workflows);
    for name in names {
        copy_workflow_runs(source, target, name, &mut totals)
            .with_context(|| format!("copying the workflow runs of tenant {name}"))?;
    }
    eprintln!("workflow runs: {}", totals.workflow_runs);
    let mut joins = Vec::new();
    for (tenant, job_id) in &jobs {
        joins.extend(source.join(tenant, job_id)?);
    }
    for batch in joins.chunks(BATCH) {
        let writes: Vec<RunWrite<'_>> = batch.iter().map(RunWrite::Join).collect();
        target.write_runs(&writes).context("copying the joins of jobs")?;
    }
    totals.joins = joins.len();
    eprintln!("joins: {}", totals.joins);
    Ok(totals)
}

/// Tenants with their tokens (revoked ones stay revoked): a tenant with a
/// record is inserted with its first token and given the rest; one without
/// (the default tenant, which exists before any record of it) only gets
/// its tokens.
fn copy_tenants(source: &SledStore, target: &PgStore, names: &[String], totals: &mut Totals) -> anyhow::Result<()> {
    let records: HashMap<String, Tenant> = source
        .list_tenants()?
        .into_iter()
        .map(|tenant| (tenant.name.clone(), tenant))
        .collect();
    for name in names {
        let tokens = source.list_tokens(name)?;
        let rest = match (records.get(name), tokens.split_first()) {
            (Some(tenant), Some((first, rest))) => {
                target.insert_tenant(tenant, first)?;
                rest
            }
            (Some(tenant), None) => {
                target.put_tenant(tenant)?;
                &[][..]
            }
            (None, _) => &tokens[..],
        };
        for token in rest {
            target.insert_token(token)?;
        }
        totals.tenants += 1;
        totals.tokens += tokens.len();
        totals.revoked += tokens.iter().filter(|token| token.revoked_at.is_some()).count();
    }
    Ok(())
}

/// A tenant's plugin versions in order, each with its bytes and upload
/// time, checked to keep its number (jobs name `plugin@version`).
fn copy_plugins(source: &SledStore, target: &PgStore, tenant: &str, totals: &mut Totals) -> anyhow::Result<()> {
    let mut names = BTreeSet::new();
    for version in source.list_plugin_versions(tenant)? {
        let reference = version.reference();
        let bytes = source.plugin_bytes(&version.digest)?.ok_or_else(|| {
            anyhow!(
                "plugin {reference}: its bytes (sha256 {}) are missing from the data dir",
                version.digest
            )
        })?;
        let added = target
            .add_plugin_version(tenant, &version.name, &version.digest, &bytes, version.created_at)
            .with_context(|| format!("copying plugin {reference}"))?;
        if !added.created || added.version.version != version.version {
            bail!(
                "plugin {reference} became {} in the database (its versions in the data dir are not numbered 1, 2, 3, ... with distinct bytes), so jobs naming it would run other code",
                added.version.reference()
            );
        }
        names.insert(version.name);
        totals.plugin_versions += 1;
    }
    totals.plugins += names.len();
    Ok(())
}

/// A run to write with its output and log (empty until it finished).
struct RunToWrite {
    run: Run,
    output: Vec<u8>,
    log: Vec<u8>,
    tape: Vec<u8>,
}

/// A tenant's runs, newest first a page at a time: finished ones with
/// their output, log and tape, queued and running ones as they are (the daemon
/// that starts on the database recovers them as it would have).
fn copy_runs(source: &SledStore, target: &PgStore, tenant: &str, totals: &mut Totals) -> anyhow::Result<()> {
    let mut before: Option<String> = None;
    let mut pending: Vec<RunToWrite> = Vec::new();
    let mut pending_bytes = 0;
    loop {
        let filter = RunFilter {
            before: before.take(),
            limit: BATCH,
            ..RunFilter::default()
        };
        let page = source.list_runs(tenant, &filter)?;
        let full = page.len() == BATCH;
        before = page.last().map(|run| run.id.clone());
        for run in page {
            let (output, log, tape) = if run.status.is_finished() {
                (
                    source.run_output(tenant, &run.id)?.unwrap_or_default(),
                    source.run_log(tenant, &run.id)?.unwrap_or_default(),
                    source.run_tape(tenant, &run.id)?.unwrap_or_default(),
                )
            } else {
                totals.unfinished += 1;
                (Vec::new(), Vec::new(), Vec::new())
            };
            pending_bytes += output.len() + log.len() + tape.len();
            pending.push(RunToWrite { run, output, log, tape });
            if pending.len() >= BATCH || pending_bytes >= BATCH_BYTES {
                write_runs(target, &pending)?;
                totals.runs += pending.len();
                pending.clear();
                pending_bytes = 0;
            }
        }
        if !full || before.is_none() {
            break;
        }
    }
    write_runs(target, &pending)?;
    totals.runs += pending.len();
    Ok(())
}

/// Writes runs in one call (one transaction).
fn write_runs(target: &PgStore, runs: &[RunToWrite]) -> anyhow::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let writes: Vec<RunWrite<'_>> = runs
        .iter()
        .map(|entry| {
            if entry.run.status.is_finished() {
                RunWrite::Finished {
                    run: &entry.run,
                    output: &entry.output,
                    log: &entry.log,
                    tape: &entry.tape,
                    next: None,
                }
            } else {
                RunWrite::Queued(&entry.run)
            }
        })
        .collect();
    target.write_runs(&writes)?;
    Ok(())
}

/// A tenant's workflow runs (of every workflow, deleted ones' included),
/// a page at a time.
fn copy_workflow_runs(source: &SledStore, target: &PgStore, tenant: &str, totals: &mut Totals) -> anyhow::Result<()> {
    let mut before: Option<String> = None;
    loop {
        let page = source.list_workflow_runs(tenant, None, before.as_deref(), BATCH)?;
        let writes: Vec<RunWrite<'_>> = page.iter().map(RunWrite::Workflow).collect();
        if !writes.is_empty() {
            target.write_runs(&writes)?;
        }
        totals.workflow_runs += page.len();
        match page.last() {
            Some(last) if page.len() == BATCH => before = Some(last.id.clone()),
            _ => return Ok(()),
        }
    }
}

/// What the daemon on the database needs that is not in it: the secrets
/// key and the admin token of the data dir, and compiled code made again.
fn print_notes(dir: &Path) {
    let key_file = dir.join(crate::config::SECRETS_KEY_FILE);
    if key_file.is_file() {
        eprintln!(
            "note: secrets (and webhook signatures) need the same secrets key: copy {} into the data dir of the daemon on this database, or give it the same --secrets-key",
            key_file.display()
        );
    } else {
        eprintln!(
            "note: secrets (and webhook signatures) need the same secrets key: give the daemon on this database the --secrets-key or --secrets-key-file the old one had"
        );
    }
    let token_file = dir.join(crate::config::ADMIN_TOKEN_FILE);
    if token_file.is_file() {
        eprintln!(
            "note: the admin token stays in {}: copy it into the new data dir too, or give the daemon --admin-token (SANDCRON_ADMIN_TOKEN)",
            token_file.display()
        );
    }
    eprintln!("note: compiled code is not copied; each node compiles a plugin again on its first run");
}

/// A private folder of the system's temporary dir, removed with its
/// contents when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> anyhow::Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!("sandcron-migrate-{}", crate::model::new_id()));
        crate::permissions::create_private_dir(&path)
            .with_context(|| format!("creating a temporary folder {}", path.display()))?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_each_subject_in_words() {
        let totals = Totals {
            tenants: 2,
            plugin_versions: 3,
            jobs: 4,
            runs: 120,
            kv_keys: 3,
            secrets: 1,
            workflows: 1,
            workflow_runs: 2,
            ..Totals::default()
        };
        assert_eq!(
            totals.summary(),
            "migrated 2 tenants, 3 plugin versions, 4 jobs, 120 runs, 3 kv keys, 1 secret, 1 workflow, 2 workflow runs"
        );
        assert_eq!(
            Totals::default().summary(),
            "migrated 0 tenants, 0 plugin versions, 0 jobs, 0 runs, 0 kv keys, 0 secrets, 0 workflows, 0 workflow runs"
        );
    }
}
