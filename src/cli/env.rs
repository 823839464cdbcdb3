//! `spk env` / `spk run` / `spk shell`: solve, stack the resolved packages' layers and
//! enter a runtime; saved environments (`--save`, `--load`); `--show` inside one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::{parse_options, CliError, Opt};
use crate::build::{BuildOptions, Builder};
use crate::option_map::host_options;
use crate::request::Request;
use crate::solve::{PackageSource, SolveError, SolveOptions, Solution, Solver};
use crate::spec::load_spec_file;
use crate::storage::SpfsRepository;
use spfs::runtime::monitor::RunOptions;
use spfs::runtime::record::Backend;
use spfs::runtime::spawn::RuntimeCommand;
use spfs::runtime::startup::Program;
use spfs::Digest;

/// The variable holding an environment's requests inside its runtime.
const REQUESTS_VAR: &str = "SPK_ENV_REQUESTS";
/// The variable holding an environment's resolved packages inside its runtime.
const SOLUTION_VAR: &str = "SPK_ENV_SOLUTION";

/// `spk env`.
#[derive(Debug, Args)]
pub struct EnvCmd {
    /// Requests: name[:comp|:{a,b}|:all][/range[/build]], or spec files of local recipes
    pub requests: Vec<String>,
    /// The command and its arguments (after --); the user's shell when omitted
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
    /// Option values, as name=value (var requests)
    #[arg(short = 'o', long = "opt", value_name = "NAME=VALUE")]
    pub options: Vec<String>,
    /// Do not add this machine's arch/os/distro options
    #[arg(long)]
    pub no_host: bool,
    /// Make /spfs writable
    #[arg(long)]
    pub edit: bool,
    /// Lower-directory backend: render or fuse
    #[arg(long, env = "SPFS_BACKEND", default_value = "render")]
    pub backend: String,
    /// Write the resolved environment to FILE (YAML) instead of entering it
    #[arg(long, value_name = "FILE", conflicts_with = "load")]
    pub save: Option<PathBuf>,
    /// Enter exactly the environment saved in FILE, without solving
    #[arg(long, value_name = "FILE")]
    pub load: Option<PathBuf>,
    /// List what the current environment holds (inside a runtime)
    #[arg(long)]
    pub show: bool,
}

/// A resolved environment as `spk env --save` writes it.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedEnv {
    /// The requests as given.
    pub requests: Vec<String>,
    /// The resolved packages with their components.
    pub packages: Vec<String>,
    /// The layers, bottom first.
    pub layers: Vec<Digest>,
    /// Links the runtime shows outside /spfs (BOSH packages at /var/vcap/packages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<(PathBuf, PathBuf)>,
}

fn solve_error(e: SolveError) -> CliError {
    match e {
        SolveError::NoSolution(x) => {
            let mut r = CliError::new(x.summary.clone());
            r.details = x.reasons.clone();
            r.help = vec![x.help.clone()];
            r
        }
        other => CliError::new(other.to_string()),
    }
}

fn describe(solution: &Solution) -> Vec<String> {
    solution
        .packages
        .iter()
        .map(|p| {
            let comps: Vec<&str> = p.components.iter().map(|c| c.as_str()).collect();
            format!("{}:{{{}}}", p.ident, comps.join(","))
        })
        .collect()
}

/// Solves the requests (spec files become requests for their recipes, built from
/// source when no published build fits) and returns the solution.
fn resolve(
    repo: &SpfsRepository,
    a: &EnvCmd,
) -> Result<(Solution, crate::option_map::OptionMap), CliError> {
    let mut options = if a.no_host {
        Default::default()
    } else {
        host_options()
    };
    options.extend(&parse_options(&a.options)?);
    let mut requests = Vec::new();
    let mut local: Vec<(crate::spec::Spec, PathBuf)> = Vec::new();
    for r in &a.requests {
        let path = Path::new(r);
        if path.is_file() && (r.ends_with(".yaml") || r.ends_with(".yml")) {
            let opts = super::commands::template_options(&a.options)?;
            let spec = load_spec_file(path, &opts)?.spec;
            requests.push(Request::parse_cli(&format!("{}/={}", spec.name(), spec.version()))?);
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            local.push((spec, dir.to_path_buf()));
        } else {
            requests.push(Request::parse_cli(r)?);
        }
    }
    spfs::signals::install();
    let solve = |from_source: bool| {
        Solver::new(
            repo,
            SolveOptions {
                options: options.clone(),
                build_from_source: from_source,
                interrupted: Some(|| spfs::signals::received().is_some()),
                ..Default::default()
            },
        )
        .solve(&requests)
    };
    // Local recipes are stored first so the solver can see them.
    for (spec, _) in &local {
        crate::storage::PackageRepository::publish_recipe(repo, spec, true)?;
    }
    let solution = match solve(false) {
        Ok(s) => s,
        Err(SolveError::NoSolution(_)) => solve(true).map_err(solve_error)?,
        Err(e) => return Err(solve_error(e)),
    };
    let needs: Vec<_> = solution
        .packages
        .iter()
        .filter(|p| p.source == PackageSource::BuildFromSource)
        .collect();
    if needs.is_empty() {
        return Ok((solution, options));
    }
    let builder = Builder::new(
        repo,
        BuildOptions {
            options: options.clone(),
            no_host: true,
            stream: true,
            ..Default::default()
        },
    );
    for p in needs {
        eprintln!("building {} from source", p.ident.version_ident());
        let recipe = (*p.spec).clone();
        if let Some((spec, dir)) = local.iter().find(|(s, _)| s.name() == recipe.name()) {
            builder
                .make_source(spec, dir)
                .map_err(super::build::build_report)?;
            builder
                .make_binary(spec)
                .map_err(super::build::build_report)?;
        } else {
            builder
                .make_binary(&recipe)
                .map_err(super::build::build_report)?;
        }
    }
    Ok((solve(false).map_err(solve_error)?, options))
}

/// `spk env` and friends: returns the command's exit status.
pub fn env(opt: &Opt, a: &EnvCmd, shell: bool) -> Result<i32, CliError> {
    if a.show {
        return show();
    }
    let repo = super::commands::repo_for_write(opt)?;
    let backend = Backend::parse(&a.backend)?;
    let (layers, requests, packages, links) = match &a.load {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                CliError::new(format!("cannot read {}: {e}", file.display()))
                    .help("give a file written by 'spk env --save FILE ...'")
            })?;
            let saved: SavedEnv = serde_yaml::from_str(&text).map_err(|e| {
                CliError::new(format!("{} is not a saved environment: {e}", file.display()))
                    .help("give a file written by 'spk env --save FILE ...'")
            })?;
            let missing: Vec<String> = saved
                .layers
                .iter()
                .filter(|d| !repo.spfs().has_object(d))
                .map(|d| d.to_string())
                .collect();
            if !missing.is_empty() {
                let mut r = CliError::new(format!(
                    "{} of the {} layers of {} are not in the repository at {}",
                    missing.len(),
                    saved.layers.len(),
                    file.display(),
                    repo.spfs().root().display()
                ))
                .help("pull the packages it lists, or load it on a machine that has them");
                r.details = missing;
                return Err(r);
            }
            (saved.layers, saved.requests, saved.packages, saved.links)
        }
        None => {
            if a.requests.is_empty() {
                return Err(CliError::new("no requests given")
                    .help("name the packages to enter, e.g. spk env python/3 -- python3"));
            }
            let (solution, _) = resolve(&repo, a)?;
            let layers = crate::env::layer_stack(&repo, &solution)
                .map_err(|e| CliError::new(e.to_string()).help("build or pull the package again"))?;
            let links =
                crate::bosh::runtime_links(solution.packages.iter().map(|p| p.spec.as_ref()));
            (layers, a.requests.clone(), describe(&solution), links)
        }
    };
    if let Some(file) = &a.save {
        let saved = SavedEnv {
            requests,
            packages,
            layers,
            links,
        };
        let text = serde_yaml::to_string(&saved).map_err(|e| CliError::new(e.to_string()))?;
        std::fs::write(file, text).map_err(|e| {
            CliError::new(format!("cannot write {}: {e}", file.display()))
        })?;
        eprintln!("saved the environment to {}", file.display());
        return Ok(0);
    }
    let program = if a.command.is_empty() || shell {
        Program::Shell
    } else {
        Program::Command(a.command.clone())
    };
    let mut run = RunOptions::new(layers, program);
    run.backend = backend;
    run.edit = Some(a.edit || requests.iter().any(|r| r.contains("@build")));
    run.links = links;
    let mut cmd = RuntimeCommand::new(repo.spfs(), run);
    cmd.env("SPK_ACTIVE_PREFIX", "/spfs")
        .env(REQUESTS_VAR, requests.join(" "))
        .env(SOLUTION_VAR, packages.join(" "));
    Ok(cmd.status()?)
}

fn show() -> Result<i32, CliError> {
    let Ok(solution) = std::env::var(SOLUTION_VAR) else {
        return Err(CliError::new("not inside an spk environment")
            .help("enter one with 'spk env REQUEST...' first"));
    };
    let requests = std::env::var(REQUESTS_VAR).unwrap_or_default();
    cli_policy::outln!("requests: {requests}");
    for p in solution.split_whitespace() {
        cli_policy::outln!("{p}");
    }
    Ok(0)
}
