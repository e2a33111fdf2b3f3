//! `sandcron apply`: make the tenant's jobs and workflows match a TOML
//! file, pushing the plugins it lists (`[[plugin]]`) first when their bytes
//! changed, and writing the workflows (`[[workflow]]`) after the jobs their
//! steps name.

mod workflows;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::connection::Connection;
use super::print::out;
use crate::client::{Body, Client, ClientError, encode};
use workflows::WorkflowChange;

/// `sandcron apply`'s arguments.
#[derive(Args)]
pub(super) struct ApplyArgs {
    /// The jobs file.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Also delete the tenant's jobs and workflows that the file does not name.
    #[arg(long)]
    prune: bool,
    /// Show what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// A `[[plugin]]` table: push the component at `path` (relative to the
/// jobs file) as `name` when its bytes are not the newest version's.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginEntry {
    name: String,
    path: PathBuf,
}

/// What a jobs file asks for.
struct JobsFile {
    plugins: Vec<PluginEntry>,
    jobs: Vec<Value>,
    workflows: Vec<Value>,
}

/// The `[[plugin]]`, `[[job]]` and `[[workflow]]` tables of a jobs file,
/// the jobs and workflows as JSON specs, the plugins' paths made relative
/// to the file's directory.
fn read_jobs_file(path: &std::path::Path) -> anyhow::Result<JobsFile> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Tables {
        #[serde(default)]
        plugin: Vec<PluginEntry>,
        #[serde(default)]
        job: Vec<toml::Table>,
        #[serde(default)]
        workflow: Vec<toml::Table>,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: Tables = toml::from_str(&text).with_context(|| format!("{} is not a jobs file", path.display()))?;
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let mut plugin_names = std::collections::HashSet::new();
    let mut plugins = Vec::new();
    for mut entry in file.plugin {
        if !plugin_names.insert(entry.name.clone()) {
            bail!("{}: the plugin name {:?} appears twice", path.display(), entry.name);
        }
        entry.path = base.join(&entry.path);
        plugins.push(entry);
    }
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
    let mut workflow_names = std::collections::HashSet::new();
    let mut workflows = Vec::new();
    for (index, table) in file.workflow.into_iter().enumerate() {
        let spec = serde_json::to_value(&table)?;
        let Some(name) = spec["name"].as_str() else {
            bail!("{}: workflow {} has no name", path.display(), index + 1);
        };
        if !workflow_names.insert(name.to_string()) {
            bail!("{}: the workflow name {name:?} appears twice", path.display());
        }
        workflows.push(spec);
    }
    Ok(JobsFile {
        plugins,
        jobs,
        workflows,
    })
}

/// A plugin of the file and what applying does with it.
struct PluginPlan {
    name: String,
    bytes: Vec<u8>,
    change: PluginChange,
}

#[derive(PartialEq)]
enum PluginChange {
    /// No version yet.
    Create,
    /// Other bytes than the newest version's.
    NewVersion,
    Unchanged,
}

/// The bytes of a `[[plugin]]`'s component: a `.wasm` file, or a plugin
/// project directory, built first (as `sandcron build` would).
fn plugin_bytes(entry: &PluginEntry) -> anyhow::Result<Vec<u8>> {
    let path = if entry.path.is_dir() {
        eprintln!("building plugin {} from {}", entry.name, entry.path.display());
        let built = tokio::task::block_in_place(|| super::authoring::build_project(&entry.path, None));
        built.with_context(|| format!("plugin {:?}: building {}", entry.name, entry.path.display()))?
    } else {
        entry.path.clone()
    };
    std::fs::read(&path).with_context(|| format!("plugin {:?}: reading {}", entry.name, path.display()))
}

/// Compares each plugin's bytes with its newest version on the daemon.
async fn plan_plugins(client: &Client, entries: &[PluginEntry]) -> anyhow::Result<Vec<PluginPlan>> {
    let mut plans = Vec::new();
    for entry in entries {
        let bytes = plugin_bytes(entry)?;
        let digest = format!("sha256:{}", crate::plugin::digest(&bytes));
        let path = format!("/v1/plugins/{}", encode(&entry.name));
        let change = match client.get(&path).await {
            Ok(plugin) => {
                let newest = plugin["versions"].as_array().and_then(|versions| versions.last());
                match newest.map(|version| version["digest"] == digest.as_str()) {
                    Some(true) => PluginChange::Unchanged,
                    Some(false) => PluginChange::NewVersion,
                    None => PluginChange::Create,
                }
            }
            Err(error) if error.is_code("plugin_not_found") => PluginChange::Create,
            Err(error) => return Err(anyhow::Error::new(error).context(format!("plugin {:?}", entry.name))),
        };
        plans.push(PluginPlan {
            name: entry.name.clone(),
            bytes,
            change,
        });
    }
    Ok(plans)
}

/// Plans the file against the daemon, prints the plan, then (unless a dry
/// run) pushes plugins, creates and updates jobs, then workflows, and
/// deletes workflows, then jobs (so no workflow names a job gone).
pub(super) async fn apply(args: ApplyArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    let JobsFile {
        plugins,
        jobs,
        workflows,
    } = read_jobs_file(&args.file)?;
    let client = connection.client();
    let plugins = plan_plugins(&client, &plugins).await?;
    for plugin in &plugins {
        match plugin.change {
            PluginChange::Create => out!("+ push      plugin {} (new)", plugin.name),
            PluginChange::NewVersion => out!("~ push      plugin {} (new version)", plugin.name),
            PluginChange::Unchanged => out!("= unchanged plugin {}", plugin.name),
        }
    }
    // Plugins go first, so the jobs naming them can be checked (a push
    // changes no job).
    if !args.dry_run {
        for plugin in plugins.iter().filter(|plugin| plugin.change != PluginChange::Unchanged) {
            let path = format!("/v1/plugins?name={}", encode(&plugin.name));
            client
                .call(Method::POST, &path, Body::Bytes(plugin.bytes.clone()))
                .await
                .with_context(|| format!("pushing plugin {:?}", plugin.name))?;
        }
    }
    // Check every job first: a bad one stops the apply before any job changes.
    let mut plan = Vec::new();
    for spec in &jobs {
        let name = spec["name"].as_str().unwrap_or_default();
        let path = format!("/v1/jobs/{}?dry_run=true", encode(name));
        let checked = client.call(Method::PUT, &path, Body::Json(spec.clone())).await;
        // In a dry run a plugin of the file may not be on the daemon yet.
        let waits_for_push = |error: &ClientError| {
            args.dry_run
                && error.is_code("unknown_plugin")
                && plugins.iter().any(|plugin| {
                    plugin.change == PluginChange::Create
                        && spec["plugin"]
                            .as_str()
                            .is_some_and(|named| named.split('@').next() == Some(plugin.name.as_str()))
                })
        };
        let answer = match checked {
            Ok(answer) => answer.json()?,
            Err(error) if waits_for_push(&error) => json!({"change": "create"}),
            Err(error) => return Err(anyhow::Error::new(error).context(format!("job {name:?}"))),
        };
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
    // The jobs the workflows' steps may name: the file's, and the daemon's
    // that the apply keeps.
    let mut known_jobs: BTreeSet<String> = plan.iter().map(|(name, _, _)| name.clone()).collect();
    if args.prune || !workflows.is_empty() {
        let listed = client.get("/v1/jobs").await?;
        for job in listed["jobs"].as_array().into_iter().flatten() {
            let name = job["name"].as_str().unwrap_or_default();
            if plan.iter().any(|(planned, _, _)| planned == name) {
                continue;
            }
            if args.prune {
                doomed.push(name.to_string());
            } else {
                known_jobs.insert(name.to_string());
            }
        }
    }
    let workflow_plan = workflows::plan(&client, &workflows, &known_jobs).await?;
    let mut doomed_workflows = Vec::new();
    if args.prune {
        let listed = client.workflows().await?;
        for workflow in listed["workflows"].as_array().into_iter().flatten() {
            let name = workflow["name"].as_str().unwrap_or_default();
            if !workflow_plan.iter().any(|planned| planned.name == name) {
                doomed_workflows.push(name.to_string());
            }
        }
    }
    for (name, change, fields) in &plan {
        match change.as_str() {
            "create" => out!("+ create    {name}"),
            "unchanged" => out!("= unchanged {name}"),
            _ => out!("~ update    {name} ({})", fields.join(", ")),
        }
    }
    for workflow in &workflow_plan {
        let name = &workflow.name;
        match &workflow.change {
            WorkflowChange::Create => out!("+ create    workflow {name}"),
            WorkflowChange::Unchanged => out!("= unchanged workflow {name}"),
            WorkflowChange::Update(fields) => out!("~ update    workflow {name} ({})", fields.join(", ")),
        }
    }
    for name in &doomed {
        out!("- delete    {name}");
    }
    for name in &doomed_workflows {
        out!("- delete    workflow {name}");
    }
    if args.dry_run {
        out!("dry run: nothing changed");
        return Ok(ExitCode::SUCCESS);
    }
    for (spec, (name, change, _)) in jobs.iter().zip(&plan) {
        if change != "unchanged" {
            let path = format!("/v1/jobs/{}", encode(name));
            client.call(Method::PUT, &path, Body::Json(spec.clone())).await?;
        }
    }
    for workflow in &workflow_plan {
        if workflow.change != WorkflowChange::Unchanged {
            client
                .put_workflow(&workflow.name, workflow.spec.clone())
                .await
                .with_context(|| format!("workflow {:?}", workflow.name))?;
        }
    }
    for name in &doomed_workflows {
        client.delete_workflow(name).await?;
    }
    for name in &doomed {
        client
            .call(Method::DELETE, &format!("/v1/jobs/{}", encode(name)), Body::None)
            .await?;
    }
    let count = |kind: &str| plan.iter().filter(|(_, change, _)| change == kind).count();
    let pushed = plugins
        .iter()
        .filter(|plugin| plugin.change != PluginChange::Unchanged)
        .count();
    out!(
        "applied: {} created, {} updated, {} unchanged, {} deleted, {pushed} plugins pushed",
        count("create"),
        count("update"),
        count("unchanged"),
        doomed.len()
    );
    if !workflow_plan.is_empty() || !doomed_workflows.is_empty() {
        let count = |wanted: fn(&WorkflowChange) -> bool| {
            workflow_plan.iter().filter(|workflow| wanted(&workflow.change)).count()
        };
        out!(
            "applied workflows: {} created, {} updated, {} unchanged, {} deleted",
            count(|change| *change == WorkflowChange::Create),
            count(|change| matches!(change, WorkflowChange::Update(_))),
            count(|change| *change == WorkflowChange::Unchanged),
            doomed_workflows.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
