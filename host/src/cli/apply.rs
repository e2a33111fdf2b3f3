//! `sandcron apply`: make the tenant's jobs match a TOML file.

use super::*;

#[derive(Args)]
pub(super) struct ApplyArgs {
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

pub(super) async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
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
            "create" => out!("+ create    {name}"),
            "unchanged" => out!("= unchanged {name}"),
            _ => out!("~ update    {name} ({})", fields.join(", ")),
        }
    }
    for name in &doomed {
        out!("- delete    {name}");
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
    for name in &doomed {
        client
            .call(Method::DELETE, &format!("/v1/jobs/{}", encode(name)), Body::None)
            .await?;
    }
    let count = |kind: &str| plan.iter().filter(|(_, change, _)| change == kind).count();
    out!(
        "applied: {} created, {} updated, {} unchanged, {} deleted",
        count("create"),
        count("update"),
        count("unchanged"),
        doomed.len()
    );
    Ok(ExitCode::SUCCESS)
}
