//! `spk env` / `spk run` / `spk shell`: solve, stack the resolved packages' layers and
//! enter a runtime; saved environments (`--save`, `--load`); `--show` inside one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::commands::{open_view, RepoSelect, View};
use super::{Cli, CliError, OptionArgs};
use crate::build::{BuildOptions, Builder};
use crate::request::Request;
use crate::solve::{PackageSource, Solution, SolveError, SolveOptions, Solver};
use crate::spec::load_spec_file;
use crate::storage::SpfsRepository;
use spfs::runtime::monitor::RunOptions;
use spfs::runtime::record::Backend;
use spfs::runtime::spawn::RuntimeCommand;
use spfs::runtime::startup::Program;
use spfs::Digest;

/// `spk env`.
#[derive(Debug, Args)]
pub struct EnvCmd {
    /// Requests: name[:comp|:{a,b}|:all][/range[/build]], or spec files of local recipes
    pub requests: Vec<String>,
    /// The command and its arguments (after --); the user's shell when omitted
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
    #[command(flatten)]
    pub options: OptionArgs,
    /// Make /spfs writable
    #[arg(long)]
    pub edit: bool,
    /// Lower-directory backend: render or fuse (fuse reads layers that one remote
    /// holds from it as files are opened, instead of pulling them first)
    #[arg(long, env = "SPFS_BACKEND", default_value = "render")]
    pub backend: String,
    /// Size limit of the scratch tmpfs that holds edits, like 2G or 50%
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// Keep the runtime's edits on disk after it exits (for spfs run --rerun)
    #[arg(long)]
    pub keep_runtime: bool,
    /// Write the resolved environment to FILE (YAML) instead of entering it
    #[arg(long, value_name = "FILE", conflicts_with = "load")]
    pub save: Option<PathBuf>,
    /// Enter exactly the environment saved in FILE, without solving
    #[arg(long, value_name = "FILE")]
    pub load: Option<PathBuf>,
    /// List what the current environment holds (inside a runtime)
    #[arg(long)]
    pub show: bool,
    #[command(flatten)]
    pub repos: RepoSelect,
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
    cli: &Cli,
    view: &View,
    a: &EnvCmd,
) -> Result<(Solution, crate::option_map::OptionMap), CliError> {
    let stack = view.stack();
    let repo = &stack;
    let options = a.options.option_map()?;
    let mut requests = Vec::new();
    let mut local: Vec<(crate::spec::Spec, PathBuf)> = Vec::new();
    for r in &a.requests {
        let path = Path::new(r);
        if path.is_file() && (r.ends_with(".yaml") || r.ends_with(".yml")) {
            let opts = super::commands::template_options(&a.options.values)?;
            let spec = load_spec_file(path, &opts)?.spec;
            requests.push(Request::parse_cli(&format!(
                "{}/={}",
                spec.name(),
                spec.version()
            ))?);
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            local.push((spec, dir.to_path_buf()));
        } else {
            requests.push(Request::parse_cli(r)?);
        }
    }
    spfs::signals::install();
    let solve = |from_source: bool| {
        let (spinner, progress) = super::progress::SolveSpinner::new();
        let result = Solver::new(
            repo,
            SolveOptions {
                options: options.clone(),
                build_from_source: from_source,
                cancel: Some(crate::solve::SolveCancel::new(|| {
                    spfs::signals::received().is_some()
                })),
                progress,
                ..Default::default()
            },
        )
        .solve(&requests);
        drop(spinner);
        result
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
    // Builds go into the local repository; their environments come from the same
    // repositories as this one's.
    let target = super::commands::repo_for_write(cli)?;
    let fetch = |layers: &[Digest]| pull_layers(&target, view, layers);
    let builder = Builder::new(
        &target,
        BuildOptions {
            options: options.clone(),
            no_host: true,
            stream: true,
            ..Default::default()
        },
    )
    .with_packages(repo, &fetch);
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
pub fn env(cli: &Cli, a: &EnvCmd, shell: bool) -> Result<i32, CliError> {
    if a.show {
        return show(cli);
    }
    // Only local recipes (spec files) are written; a plain environment only reads
    // (and pulls the layers it lacks from the remotes in view).
    let writes = a.requests.iter().any(|r| Path::new(r).is_file());
    let mut view = open_view(cli, &a.repos, writes)?;
    let backend = Backend::parse(&a.backend)?;
    let mut named = Vec::new();
    let mut lazy = None;
    let (layers, requests, packages, links) = match &a.load {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                CliError::new(format!("cannot read {}: {e}", file.display()))
                    .help("give a file written by 'spk env --save FILE ...'")
            })?;
            let saved: SavedEnv = serde_yaml::from_str(&text).map_err(|e| {
                CliError::new(format!(
                    "{} is not a saved environment: {e}",
                    file.display()
                ))
                .help("give a file written by 'spk env --save FILE ...'")
            })?;
            view.ensure_local(cli)?;
            let repo = view.local(cli)?;
            match pull_layers(repo, &view, &saved.layers) {
                Ok(()) | Err(spfs::Error::NotInRemotes { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let missing: Vec<String> = saved
                .layers
                .iter()
                .filter(|d| !repo.spfs().has_object(d))
                .map(|d| d.to_string())
                .collect();
            if !missing.is_empty() {
                let mut r = CliError::new(format!(
                    "{} of the {} layers of {} are not in the repository at {}{}",
                    missing.len(),
                    saved.layers.len(),
                    file.display(),
                    repo.spfs().root().display(),
                    if view.remotes.is_empty() {
                        String::new()
                    } else {
                        " nor in any remote".to_string()
                    }
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
            let (solution, _) = resolve(cli, &view, a)?;
            named = crate::env::stack_layers(&view.stack(), &solution).map_err(stack_error)?;
            let layers = crate::env::layer_digests(&named);
            if a.save.is_none() || view.remotes.is_empty() {
                // Entering: the layers must be local, resolved against the local
                // repository after the pull. (A saved environment may leave them in
                // the remotes.)
                view.ensure_local(cli)?;
                let repo = view.local(cli)?;
                if a.save.is_none() && backend == Backend::Fuse {
                    lazy = lazy_source(repo, &view, &layers)?;
                }
                if lazy.is_none() {
                    pull_layers(repo, &view, &layers).map_err(|e| pull_error(e, &named))?;
                    crate::env::check_layers(repo.spfs(), &named).map_err(stack_error)?;
                }
            }
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
        std::fs::write(file, text)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", file.display())))?;
        eprintln!("saved the environment to {}", file.display());
        return Ok(0);
    }
    let repo = view.local(cli)?;
    let program = if a.command.is_empty() || shell {
        Program::Shell
    } else {
        Program::Command(a.command.clone())
    };
    let mut run = RunOptions::new(layers.clone(), program);
    run.backend = backend;
    run.payloads_from = lazy;
    run.tmpfs_size = a.size.clone();
    run.keep = a.keep_runtime;
    run.edit = Some(a.edit || requests.iter().any(|r| r.contains("@build")));
    // The solve is recorded on the runtime, for `spk env --show` and `spk install`.
    let name = spfs::runtime::record::new_name();
    run.name = Some(name.clone());
    let saved = SavedEnv {
        requests: requests.clone(),
        packages: packages.clone(),
        layers,
        links: links.clone(),
    };
    write_recorded(repo, &name, &saved)?;
    run.links = links;
    let mut cmd = RuntimeCommand::new(repo.spfs(), run);
    cmd.env("SPK_ACTIVE_PREFIX", "/spfs");
    let status = cmd.status();
    if let Err(e) = status {
        // The runtime never started: its recorded solve goes too.
        let _ = std::fs::remove_dir_all(spfs::runtime::record::runtime_dir(repo.spfs(), &name));
        let mut report = CliError::from(e);
        // Name the package a missing or damaged payload belongs to.
        let digest = report
            .message
            .split(|c: char| !c.is_ascii_hexdigit())
            .find(|w| w.len() == 64)
            .and_then(|w| Digest::parse(w).ok());
        if let Some(owner) =
            digest.and_then(|d| crate::env::owner_of_payload(repo.spfs(), &named, &d))
        {
            report.details.push(format!(
                "it belongs to the '{}' component of {}",
                owner.component, owner.ident
            ));
            report.help.insert(
                0,
                format!("pull {} again (spk pull), or rebuild it", owner.ident),
            );
        }
        return Err(report);
    }
    Ok(status?)
}

/// Where the solve of runtime `name` is recorded.
fn recorded_path(repo: &SpfsRepository, name: &str) -> PathBuf {
    spfs::runtime::record::runtime_dir(repo.spfs(), name).join("spk-env.yaml")
}

fn write_recorded(repo: &SpfsRepository, name: &str, env: &SavedEnv) -> Result<(), CliError> {
    let path = recorded_path(repo, name);
    let text = serde_yaml::to_string(env).map_err(|e| CliError::new(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}

/// The environment the current runtime was entered with.
fn current_env(repo: &SpfsRepository) -> Result<(String, SavedEnv), CliError> {
    let not_inside = || {
        CliError::new("not inside an spk environment")
            .help("enter one with 'spk env REQUEST...' first")
    };
    let name = std::env::var("SPFS_RUNTIME").map_err(|_| not_inside())?;
    let text = std::fs::read_to_string(recorded_path(repo, &name)).map_err(|_| not_inside())?;
    let env: SavedEnv = serde_yaml::from_str(&text).map_err(|e| {
        CliError::new(format!(
            "the recorded environment of runtime {name} is unreadable: {e}"
        ))
    })?;
    Ok((name, env))
}

fn show(cli: &Cli) -> Result<i32, CliError> {
    let repo = super::commands::open_repo(cli)?;
    let (_, env) = current_env(&repo)?;
    cli_policy::outln!("requests: {}", env.requests.join(" "));
    for p in &env.packages {
        cli_policy::outln!("{p}");
    }
    Ok(0)
}

/// `spk install`.
#[derive(Debug, Args)]
pub struct Install {
    /// Requests to add to the current environment
    #[arg(required = true)]
    pub requests: Vec<String>,
    #[command(flatten)]
    pub options: OptionArgs,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,
    #[command(flatten)]
    pub repos: RepoSelect,
}

/// `spk install`: re-solves the current environment's requests plus new ones and swaps
/// the runtime's stack in place.
pub fn install(cli: &Cli, a: &Install) -> Result<i32, CliError> {
    let view = open_view(cli, &a.repos, false)?;
    let repo = view.local(cli)?;
    let (name, current) = current_env(repo)?;
    let mut requests = current.requests.clone();
    requests.extend(a.requests.iter().cloned());
    let cmd = EnvCmd {
        requests: requests.clone(),
        command: Vec::new(),
        options: a.options.clone(),
        edit: false,
        backend: "render".into(),
        size: None,
        keep_runtime: false,
        save: None,
        load: None,
        show: false,
        repos: a.repos.clone(),
    };
    let (solution, _) = resolve(cli, &view, &cmd)?;
    let stack = crate::env::stack_layers(&view.stack(), &solution).map_err(stack_error)?;
    let layers = crate::env::layer_digests(&stack);
    let packages = describe(&solution);
    let added: Vec<&String> = packages
        .iter()
        .filter(|p| !current.packages.contains(p))
        .collect();
    let removed: Vec<&String> = current
        .packages
        .iter()
        .filter(|p| !packages.contains(p))
        .collect();
    if added.is_empty() && removed.is_empty() {
        eprintln!("the environment already holds what was asked for");
        return Ok(0);
    }
    for p in &removed {
        eprintln!("  - {p}");
    }
    for p in &added {
        eprintln!("  + {p}");
    }
    if !a.yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(CliError::new(
                "spk install changes the running environment and needs confirmation",
            )
            .help("pass --yes to confirm without a terminal"));
        }
        eprint!("change the environment? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing changed");
            return Ok(1);
        }
    }
    pull_layers(repo, &view, &layers).map_err(|e| pull_error(e, &stack))?;
    crate::env::check_layers(repo.spfs(), &stack).map_err(stack_error)?;
    let rec = spfs::runtime::record::load(repo.spfs(), &name)?;
    spfs::runtime::edits::set_stack(repo.spfs(), &rec, layers.clone())?;
    write_recorded(
        repo,
        &name,
        &SavedEnv {
            requests,
            packages,
            layers,
            // Links outside /spfs are fixed when the runtime starts.
            links: current.links.clone(),
        },
    )?;
    eprintln!("/spfs now holds the new environment; start a new shell (or re-source the startup scripts) for its activation");
    Ok(0)
}

/// For a FUSE runtime: the address of the first remote in view that holds every layer
/// the local repository lacks, which the runtime then reads as files are opened (each
/// payload fetched once, verified and kept locally) instead of pulling the whole stack
/// first. `None` when everything is local or no one remote holds all of it (then the
/// layers are pulled). One existence check per missing layer and remote.
fn lazy_source(
    repo: &SpfsRepository,
    view: &View,
    layers: &[Digest],
) -> Result<Option<String>, CliError> {
    let missing = spfs::sync::missing(repo.spfs(), layers)?;
    if missing.is_empty() {
        return Ok(None);
    }
    let holds_all = |r: &crate::storage::RemoteRepository| -> spfs::Result<bool> {
        for d in &missing {
            if !r.store().has_object(d)? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    for r in &view.remotes {
        if holds_all(r)? {
            let address = spfs::config::current()?.remote(Some(r.label()))?;
            eprintln!(
                "reading {} layer(s) from {} as files are opened",
                missing.len(),
                r.label()
            );
            return Ok(Some(address.to_full_string()));
        }
    }
    Ok(None)
}

/// Pulls into the local repository the layers it lacks from the remotes in view
/// (objects only, no tags), with progress on a terminal.
pub(super) fn pull_layers(
    repo: &SpfsRepository,
    view: &View,
    layers: &[Digest],
) -> spfs::Result<()> {
    if view.remotes.is_empty() || spfs::sync::missing(repo.spfs(), layers)?.is_empty() {
        return Ok(());
    }
    let progress = super::progress::transfer_bar("pulling layers");
    let fetched = spfs::sync::fetch_missing(repo.spfs(), &view.spfs_remotes(), layers, &progress);
    progress.finish();
    for f in fetched? {
        eprintln!(
            "pulled {} layer(s) from {}: {} object(s), {} payload(s), {}",
            f.digests.len(),
            f.remote,
            f.report.objects,
            f.report.payloads,
            spfs::progress::human_bytes(f.report.bytes)
        );
    }
    Ok(())
}

/// A failed pull, naming the packages whose layers no repository has.
fn pull_error(e: spfs::Error, layers: &[crate::env::StackLayer]) -> CliError {
    let spfs::Error::NotInRemotes { digests, .. } = &e else {
        return e.into();
    };
    let details: Vec<String> = layers
        .iter()
        .filter(|l| digests.contains(&l.digest))
        .map(|l| {
            format!(
                "the '{}' layer of {} ({})",
                l.component,
                l.ident,
                l.digest.short()
            )
        })
        .collect();
    let mut report = CliError::from(e);
    report.details = details;
    report
}

fn stack_error(e: crate::env::StackError) -> CliError {
    let help = match &e {
        crate::env::StackError::MissingLayer { ident, .. } => {
            format!("pull {ident} again (spk pull), or rebuild it with 'spk make-binary'")
        }
        crate::env::StackError::NeedsBuild { ident } => {
            format!("build it first: spk make-binary {ident}")
        }
        _ => "build or pull the package again".to_string(),
    };
    CliError::new(e.to_string()).help(help)
}
