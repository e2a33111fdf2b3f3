//! Writing plugins: `sandcron new` writes a project (a hello job with its
//! SDK and the contract) in Rust, Python or JavaScript, and `sandcron build`
//! builds one into a component, installing the pinned toolchain on first
//! use, and checks its imports against what the daemon links.

mod compile;
mod error;
mod imports;
mod lang;
mod marker;
mod project;
mod templates;
mod toolchains;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::cli::print::out;

pub use error::AuthoringError;
pub use lang::Lang;

/// `sandcron new`.
#[derive(Args)]
pub struct NewArgs {
    /// The project's name, also its plugin's: a-z, 0-9, '-' and '_'.
    name: String,
    /// The language.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The folder to write it in (default: ./NAME); must be new or empty.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// `sandcron build`.
#[derive(Args)]
pub struct BuildArgs {
    /// The project folder.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where toolchains are installed (default: $XDG_CACHE_HOME/sandcron,
    /// else ~/.cache/sandcron).
    #[arg(long, env = "SANDCRON_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

/// Writes a new project and says how to build it.
pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    project::check_project_name(&args.name)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    templates::write(&dir, &templates::render(args.lang, &args.name))?;
    // Where `build` will put the component (cargo's target folder may be
    // elsewhere: `build` prints the path it wrote).
    let component = match args.lang {
        Lang::Rust => dir
            .join("target/wasm32-wasip2/release")
            .join(format!("{}.wasm", args.name.replace('-', "_"))),
        Lang::Python | Lang::Js => dir.join("build").join(format!("{}.wasm", args.name)),
    };
    let shown = dir.display();
    out!("created {shown}: a {} plugin project ({})", args.lang, args.name);
    out!("build it, upload it and make a job of it:");
    out!("  sandcron build {shown}");
    out!("  sandcron plugin push {} --name {}", component.display(), args.name);
    out!(
        "  sandcron job create --name {0} --plugin {0} --input '{{\"name\": \"Ada\"}}'",
        args.name
    );
    Ok(ExitCode::SUCCESS)
}

/// Builds the project and prints the component's path as the last line.
pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let component = build_project(&args.dir, args.cache_dir.as_deref())?;
    out!("{}", component.display());
    Ok(ExitCode::SUCCESS)
}

/// Builds the plugin project in `dir` (toolchains in `cache_dir`, else the
/// default cache) and checks its imports; the component's path. Progress
/// goes to standard error.
pub fn build_project(dir: &Path, cache_dir_flag: Option<&Path>) -> Result<PathBuf, AuthoringError> {
    let started = Instant::now();
    let project = project::detect(dir)?;
    let cache = || {
        let xdg = std::env::var_os("XDG_CACHE_HOME");
        let home = std::env::var_os("HOME");
        toolchains::cache_dir(cache_dir_flag, xdg.as_deref(), home.as_deref())
    };
    let component = match project.lang {
        Lang::Rust => compile::rust(&project)?,
        Lang::Python => compile::python(&project, &cache()?)?,
        Lang::Js => compile::js(&project, &cache()?)?,
    };
    imports::check(&component)?;
    let size = std::fs::metadata(&component)
        .map(|metadata| metadata.len())
        .unwrap_or(0);
    eprintln!(
        "built {} ({:.2} MB in {:.1} s); the daemon links all of its imports",
        project.name,
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(component)
}
