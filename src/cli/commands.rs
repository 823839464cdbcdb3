//! The subcommands.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use cli_policy::{out, outln};

use super::{parse_options, Cli, CliError, CliResult, Command, OptionArgs};
use crate::ident::AnyIdent;
use crate::option_map::host_options;
use crate::request::Request;
use crate::solve::{SolveCancel, SolveError, SolveOptions, Solver};
use crate::spec::{load_spec_file, LoadOptions};
use crate::storage::{bulk, PackageRepository, RemoteRepository, RepositoryStack, SpfsRepository};

/// Which repositories a command that reads packages looks in: the local repository,
/// then the configured remotes (docs/remotes.md).
#[derive(Debug, Clone, Default, Args)]
pub struct RepoSelect {
    /// Look only in the local repository, not in the configured remotes
    #[arg(short = 'l', long, conflicts_with = "remote")]
    pub local_only: bool,
    /// Look in this remote (a configured name or an address) instead of every configured
    /// one, after the local repository; repeatable
    #[arg(short = 'r', long = "remote", value_name = "NAME")]
    pub remote: Vec<String>,
}

/// `spk ls`.
#[derive(Debug, Args)]
pub struct Ls {
    /// NAME or NAME/VERSION.
    pub package: Option<String>,
    #[command(flatten)]
    pub repos: RepoSelect,
}

/// `spk search`.
#[derive(Debug, Args)]
pub struct Search {
    /// Text to look for in package names.
    pub term: String,
    #[command(flatten)]
    pub repos: RepoSelect,
}

/// `spk info`.
#[derive(Debug, Args)]
pub struct Info {
    /// NAME (newest version), NAME/VERSION (recipe) or NAME/VERSION/BUILD.
    pub package: String,
    #[command(flatten)]
    pub repos: RepoSelect,
}

/// `spk deprecate` / `spk undeprecate`.
#[derive(Debug, Args)]
pub struct Deprecate {
    /// NAME/VERSION (recipe and every build) or NAME/VERSION/BUILD.
    #[arg(required = true)]
    pub packages: Vec<String>,
}

/// `spk remove`.
#[derive(Debug, Args)]
pub struct Remove {
    /// NAME/VERSION (recipe and every build) or NAME/VERSION/BUILD.
    #[arg(required = true)]
    pub packages: Vec<String>,
}

/// `spk new`.
#[derive(Debug, Args)]
pub struct New {
    /// The package name.
    pub name: String,
    /// Directory to write NAME.spk.yaml into.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// `spk lint`.
#[derive(Debug, Args)]
pub struct Lint {
    /// Spec files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Template options, as name=value.
    #[arg(short = 'o', long = "opt", value_name = "NAME=VALUE")]
    pub options: Vec<String>,
}

/// `spk publish`.
#[derive(Debug, Args)]
pub struct Publish {
    /// Spec files, or directories searched for *.yaml spec files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Template options, as name=value.
    #[arg(short = 'o', long = "opt", value_name = "NAME=VALUE")]
    pub options: Vec<String>,
    /// Replace recipes that already exist.
    #[arg(long)]
    pub force: bool,
    /// Also publish a stub build (spec only, empty layers) of each variant, for testing
    /// and demonstrating solves before real builds exist.
    #[arg(long)]
    pub stub_builds: bool,
}

/// `spk push` / `spk pull`.
#[derive(Debug, Args)]
pub struct Transfer {
    /// NAME (every version), NAME/VERSION (recipe and builds) or NAME/VERSION/BUILD.
    #[arg(required = true)]
    pub packages: Vec<String>,
    /// Remote name or address (file:///path) [default: origin]
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
}

/// `spk explain`.
#[derive(Debug, Args)]
pub struct Explain {
    /// Requests: name[:comp|:{a,b}][/range[/build]], or pkg.var/value.
    #[arg(required = true)]
    pub requests: Vec<String>,
    #[command(flatten)]
    pub options: OptionArgs,
    /// Allow building a recipe from source when no published build fits.
    #[arg(long)]
    pub build_from_source: bool,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Draw the resolve (or the conflict) to FILE.dot, or FILE.svg with Graphviz's dot
    #[arg(long, value_name = "FILE")]
    pub graph: Option<PathBuf>,
    #[command(flatten)]
    pub repos: RepoSelect,
}

fn repo_root(cli: &Cli) -> PathBuf {
    cli.repo.clone().unwrap_or_else(spfs::storage::default_root)
}

/// The configured repository, which must exist: commands that only read (or change
/// what is already there) never create one.
pub(super) fn open_repo(cli: &Cli) -> Result<SpfsRepository, CliError> {
    SpfsRepository::open(&repo_root(cli)).map_err(|e| {
        let missing = matches!(
            e,
            crate::storage::StorageError::Spfs(spfs::Error::NoRepository(_))
        );
        let report = CliError::from(e);
        if missing {
            report.help("'spk publish' creates it on first use")
        } else {
            report
        }
    })
}

/// The configured repository, created on first use (commands that publish).
pub(super) fn repo_for_write(cli: &Cli) -> Result<SpfsRepository, CliError> {
    Ok(SpfsRepository::open_or_create(&repo_root(cli))?)
}

/// The label of the local repository where several repositories are shown.
pub(super) const LOCAL_LABEL: &str = "local";

/// The repositories a reading command looks in: the local one (if it exists), then
/// remotes.
pub(super) struct View {
    /// The local repository; `None` when it does not exist yet and remotes are in view.
    pub local: Option<SpfsRepository>,
    /// The remotes, in the order they are asked.
    pub remotes: Vec<RemoteRepository>,
}

impl View {
    /// The repositories as one, local first.
    pub fn stack(&self) -> RepositoryStack<'_> {
        let mut repos: Vec<(String, &dyn PackageRepository)> = Vec::new();
        if let Some(l) = &self.local {
            repos.push((LOCAL_LABEL.to_string(), l));
        }
        for r in &self.remotes {
            repos.push((r.label().to_string(), r));
        }
        RepositoryStack::new(repos)
    }

    /// True when remotes are in view: outputs then name the repository of each
    /// package.
    pub fn names_origins(&self) -> bool {
        !self.remotes.is_empty()
    }

    /// The remotes as spfs stores, for pulls on demand.
    pub fn spfs_remotes(&self) -> spfs::sync::Remotes<'static> {
        spfs::sync::Remotes::opened(
            self.remotes
                .iter()
                .map(|r| (r.label().to_string(), r.store().clone()))
                .collect(),
        )
    }

    /// Creates the local repository if it does not exist yet (it receives pulls).
    pub fn ensure_local(&mut self, cli: &Cli) -> Result<(), CliError> {
        if self.local.is_none() {
            self.local = Some(repo_for_write(cli)?);
        }
        Ok(())
    }

    /// The local repository ([`View::ensure_local`] first when it may be missing).
    pub fn local(&self, cli: &Cli) -> Result<&SpfsRepository, CliError> {
        match &self.local {
            Some(l) => Ok(l),
            None => open_repo(cli).and(Err(CliError::new(format!(
                "no spfs repository at {}",
                repo_root(cli).display()
            )))),
        }
    }
}

/// Opens the local repository (created first when `create`) and the remotes `select`
/// asks for: every configured remote, `origin` first, unless `--local-only` or
/// `--remote`. A configured remote that cannot be opened is skipped with a warning; one
/// named with `--remote` must open. A missing local repository is an error only when
/// no remote is in view.
pub(super) fn open_view(cli: &Cli, select: &RepoSelect, create: bool) -> Result<View, CliError> {
    let named = !select.remote.is_empty();
    let names: Vec<String> = if select.local_only {
        Vec::new()
    } else if named {
        select.remote.clone()
    } else {
        spfs::config::current()?.remote_names()
    };
    let mut remotes = Vec::new();
    for name in &names {
        match cli_policy::open_remote(Some(name), false) {
            Ok((label, store)) => remotes.push(RemoteRepository::new(label, store.into())),
            Err(e) if !named => {
                eprintln!("warning: remote '{name}' is skipped: {}", e.message);
            }
            Err(e) => return Err(e),
        }
    }
    let local = if create {
        Some(repo_for_write(cli)?)
    } else {
        match open_repo(cli) {
            Ok(r) => Some(r),
            Err(_) if !remotes.is_empty() && !repo_root(cli).exists() => None,
            Err(e) => return Err(e),
        }
    };
    Ok(View { local, remotes })
}

pub(super) fn parse_ident(s: &str) -> Result<AnyIdent, CliError> {
    Ok(s.parse::<AnyIdent>()?)
}

/// Dispatches a parsed command line.
pub fn run(cli: &Cli) -> Result<i32, CliError> {
    if cli.repo.is_none() {
        // The repository comes from the configuration: report a broken one.
        spfs::config::current()?;
    }
    match &cli.command {
        Command::Ls(a) => ls(cli, a),
        Command::Search(a) => search(cli, a),
        Command::Info(a) => info(cli, a),
        Command::Deprecate(a) => deprecate(cli, a, true),
        Command::Undeprecate(a) => deprecate(cli, a, false),
        Command::Remove(a) => remove(cli, a),
        Command::Push(a) => transfer(cli, a, true),
        Command::Pull(a) => transfer(cli, a, false),
        Command::New(a) => new(a),
        Command::Lint(a) => lint(a),
        Command::Publish(a) => publish(cli, a),
        Command::Explain(a) => explain(cli, a),
        Command::MakeSource(a) => super::build::make_source(cli, a),
        Command::MakeBinary(a) => super::build::make_binary(cli, a),
        Command::Build(a) => super::build::build(cli, a),
        Command::Test(a) => super::build::test(cli, a),
        Command::Env(a) => return super::env::env(cli, a, false),
        Command::Shell(a) => return super::env::env(cli, a, true),
        Command::Install(a) => return super::env::install(cli, a),
        Command::Bosh(a) => return super::bosh::run(cli, a),
        Command::Index(a) => super::index::index(cli, a),
    }
    .map(|()| cli_policy::exit::OK)
}

/// `  (in local, origin)` when remotes are in view, else nothing.
fn found_in(view: &View, labels: &[&str]) -> String {
    if view.names_origins() && !labels.is_empty() {
        format!("  (in {})", labels.join(", "))
    } else {
        String::new()
    }
}

fn ls(cli: &Cli, a: &Ls) -> CliResult {
    let view = open_view(cli, &a.repos, false)?;
    let repo = view.stack();
    let Some(pkg) = &a.package else {
        if !view.names_origins() {
            for name in repo.list_packages()? {
                outln!("{name}");
            }
            return Ok(());
        }
        let mut names: Vec<(crate::PkgName, Vec<&str>)> = Vec::new();
        for (label, r) in repo.repos() {
            for name in r.list_packages()? {
                match names.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, labels)) => labels.push(label),
                    None => names.push((name, vec![label.as_str()])),
                }
            }
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, labels) in names {
            outln!("{name}{}", found_in(&view, &labels));
        }
        return Ok(());
    };
    let ident = parse_ident(pkg)?;
    match ident.version_ident() {
        None => {
            let package = repo.load_package(&ident.name)?;
            if package.versions.is_empty() {
                return Err(CliError::new(format!("no package named '{}'", ident.name))
                    .help("find packages with 'spk search TERM'"));
            }
            for v in &package.versions {
                let vi = crate::ident::VersionIdent::new(ident.name.clone(), v.version.clone());
                let deprecated = v.recipe.as_ref().is_some_and(|r| r.summary.deprecated);
                let labels = if view.names_origins() {
                    repo.holders(&ident.name, Some(&v.version))?
                } else {
                    Vec::new()
                };
                outln!(
                    "{}{}{}",
                    vi,
                    if deprecated { "  (deprecated)" } else { "" },
                    found_in(&view, &labels)
                );
            }
        }
        Some(vi) => {
            let builds = repo.list_builds(&vi)?;
            if builds.is_empty() && repo.read_recipe(&vi).is_err() {
                return Err(CliError::new(format!("no package {vi}"))
                    .help(format!("see the versions with 'spk ls {}'", vi.name)));
            }
            if builds.is_empty() {
                let labels = if view.names_origins() {
                    repo.holders(&vi.name, Some(&vi.version))?
                } else {
                    Vec::new()
                };
                outln!("{vi}  (recipe only, no builds){}", found_in(&view, &labels));
            }
            for b in builds {
                let spec = repo.read_build(&b)?;
                let origin: Vec<&str> = repo.origin(&b)?.into_iter().collect();
                outln!(
                    "{b}  {}{}{}",
                    spec.option_values(),
                    if spec.deprecated {
                        "  (deprecated)"
                    } else {
                        ""
                    },
                    found_in(&view, &origin)
                );
            }
        }
    }
    Ok(())
}

fn search(cli: &Cli, a: &Search) -> CliResult {
    let view = open_view(cli, &a.repos, false)?;
    let repo = view.stack();
    let found = repo.search(&a.term)?;
    if found.is_empty() {
        return Err(
            CliError::new(format!("no package name contains '{}'", a.term))
                .help("list every package with 'spk ls'"),
        );
    }
    for vi in found {
        let labels = if view.names_origins() {
            repo.holders(&vi.name, Some(&vi.version))?
        } else {
            Vec::new()
        };
        outln!("{vi}{}", found_in(&view, &labels));
    }
    Ok(())
}

fn info(cli: &Cli, a: &Info) -> CliResult {
    let view = open_view(cli, &a.repos, false)?;
    let repo = view.stack();
    let ident = parse_ident(&a.package)?;
    if let Some(b) = ident.build_ident() {
        let spec = repo.read_build(&b)?;
        out!("{}", spec.to_yaml());
        outln!("# components:");
        for (c, d) in repo.read_components(&b)? {
            outln!("#   {c}: {d}");
        }
        if view.names_origins() {
            if let Some(label) = repo.origin(&b)? {
                outln!("# repository: {label}");
            }
        }
        return Ok(());
    }
    let vi = match ident.version_ident() {
        Some(v) => v,
        None => {
            let newest = repo.list_versions(&ident.name)?.pop().ok_or_else(|| {
                CliError::new(format!("no package named '{}'", ident.name))
                    .help("find packages with 'spk search TERM'")
            })?;
            crate::ident::VersionIdent::new(ident.name.clone(), newest)
        }
    };
    let spec = repo.read_recipe(&vi)?;
    out!("{}", spec.to_yaml());
    if view.names_origins() {
        outln!(
            "# in: {}",
            repo.holders(&vi.name, Some(&vi.version))?.join(", ")
        );
    }
    Ok(())
}

fn deprecate(cli: &Cli, a: &Deprecate, value: bool) -> CliResult {
    let repo = open_repo(cli)?;
    for p in &a.packages {
        let ident = parse_ident(p)?;
        for changed in repo.set_deprecated(&ident, value)? {
            outln!(
                "{} {changed}",
                if value { "deprecated" } else { "undeprecated" }
            );
        }
    }
    Ok(())
}

fn remove(cli: &Cli, a: &Remove) -> CliResult {
    let repo = open_repo(cli)?;
    for p in &a.packages {
        let ident = parse_ident(p)?;
        for removed in repo.remove(&ident)? {
            outln!("removed {removed}");
        }
    }
    Ok(())
}

/// The starter spec written by `spk new`.
pub fn starter_spec(name: &str) -> String {
    format!(
        r#"pkg: {name}/0.1.0
api: v0/package
# compat: x.a.b

meta:
  description: What {name} is for.
  license: Apache-2.0

sources:
  # the directory holding this file
  - path: ./

build:
  options:
    - var: arch
    - var: os
    - var: debug/off
      choices: [on, off]
  script:
    - mkdir -p build
    - cd build
    - cmake .. -DCMAKE_INSTALL_PREFIX=/spfs
    - cmake --build . --target install

install:
  requirements: []
  environment:
    - append: PATH
      value: /spfs/bin
  components:
    - name: run
      files: [bin/, lib/]
    - name: build
      uses: [run]
      files: ['*']

tests:
  - stage: install
    script:
      - test -d /spfs/bin
"#
    )
}

fn new(a: &New) -> CliResult {
    let name: crate::PkgName = a.name.parse().map_err(CliError::from)?;
    let path = a.dir.join(format!("{name}.spk.yaml"));
    if path.exists() {
        return Err(CliError::new(format!("{} already exists", path.display()))
            .help("choose another name or --dir, or remove the file"));
    }
    std::fs::write(&path, starter_spec(name.as_str()))
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
    outln!("created {}", path.display());
    Ok(())
}

pub(super) fn template_options(raw: &[String]) -> Result<LoadOptions, CliError> {
    let mut opts = host_options();
    opts.extend(&parse_options(raw)?);
    Ok(LoadOptions::with_options(opts))
}

fn lint(a: &Lint) -> CliResult {
    let opts = template_options(&a.options)?;
    let mut failed = 0;
    let mut first: Option<CliError> = None;
    for f in &a.files {
        match load_spec_file(f, &opts) {
            Ok(loaded) => outln!("OK {} ({})", f.display(), loaded.spec.pkg),
            Err(e) => {
                failed += 1;
                if first.is_none() {
                    first = Some(e.into());
                } else {
                    CliError::from(e).print();
                }
            }
        }
    }
    match first {
        None => Ok(()),
        Some(mut e) if failed > 1 => {
            e.details
                .push(format!("{failed} of {} files failed", a.files.len()));
            Err(e)
        }
        Some(e) => Err(e),
    }
}

fn transfer(cli: &Cli, a: &Transfer, push: bool) -> CliResult {
    let (label, remote) = cli_policy::open_remote(a.remote.as_deref(), push)?;
    let local = if push {
        open_repo(cli)?
    } else {
        repo_for_write(cli)?
    };
    let (src, dst): (
        &dyn spfs::storage::Repository,
        &dyn spfs::storage::Repository,
    ) = if push {
        (local.spfs(), &*remote)
    } else {
        (&*remote, local.spfs())
    };
    let mut tags = Vec::new();
    for p in &a.packages {
        let ident = parse_ident(p)?;
        let found = crate::storage::package_tags(src, &ident)?;
        if found.is_empty() {
            return Err(CliError::new(format!(
                "{p}: not in {}",
                if push {
                    "the local repository".to_string()
                } else {
                    format!("remote '{label}'")
                }
            ))
            .help("list what is there with 'spk ls'"));
        }
        tags.extend(found);
    }
    let roots: Vec<spfs::Digest> = tags.iter().map(|(_, d)| *d).collect();
    let verb = if push { "pushed" } else { "pulled" };
    let progress = super::progress::transfer_bar(verb);
    let r = spfs::sync::copy(src, dst, &roots, &tags, &progress);
    progress.finish();
    let r = r?;
    let dir = if push { "to" } else { "from" };
    eprintln!(
        "{verb} {} object(s), {} payload(s), {}; {} tag(s) set",
        r.objects,
        r.payloads,
        spfs::progress::human_bytes(r.bytes),
        r.tags
    );
    for p in &a.packages {
        outln!("{verb} {p} {dir} {label}");
    }
    Ok(())
}

/// The solution as `spk explain` prints it; with remotes in view each
/// published build is followed by the repository it comes from, `(from origin)`.
pub(super) fn with_origins(
    view: &View,
    repo: &RepositoryStack<'_>,
    solution: &crate::solve::Solution,
) -> Result<String, CliError> {
    let text = solution.to_string();
    if !view.names_origins() {
        return Ok(text);
    }
    let mut out = String::new();
    for (line, p) in text.lines().zip(&solution.packages) {
        out.push_str(line);
        if p.source == crate::solve::PackageSource::Repository {
            if let Some(label) = repo.origin(&p.ident)? {
                out.push_str(&format!("  (from {label})"));
            }
        }
        out.push('\n');
    }
    Ok(out)
}

fn publish(cli: &Cli, a: &Publish) -> CliResult {
    for p in &a.paths {
        let text = p.to_string_lossy();
        // SPK users type `spk publish PKG/VERSION` to copy a package to a remote.
        if !p.exists() && text.parse::<AnyIdent>().is_ok() && !text.ends_with(".yaml") {
            return Err(CliError::new(format!(
                "'{text}' is not a spec file or directory; it reads as a package, and spk publish stores recipes from spec files"
            ))
            .help(format!("to copy {text} to a remote, use 'spk push {text} [--remote NAME]'")));
        }
    }
    let opts = template_options(&a.options)?;
    let repo = repo_for_write(cli)?;
    let published = bulk::publish_paths(&repo, &a.paths, &opts, a.stub_builds, a.force)?;
    for r in &published.recipes {
        outln!("published {r}");
    }
    for b in &published.builds {
        outln!("published {b}");
    }
    Ok(())
}

fn explain(cli: &Cli, a: &Explain) -> CliResult {
    let view = open_view(cli, &a.repos, false)?;
    let repo = view.stack();
    let requests = a
        .requests
        .iter()
        .map(|r| Request::parse_cli(r))
        .collect::<Result<Vec<_>, _>>()?;
    let options = a.options.option_map()?;
    let timeout = match a.timeout {
        Some(t) if !(t.is_finite() && t >= 0.0) => {
            return Err(CliError::new(format!("invalid timeout {t}"))
                .help("give a number of seconds, e.g. --timeout 10"))
        }
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    spfs::signals::install();
    let (spinner, progress) = super::progress::SolveSpinner::new();
    let solver = Solver::new(
        &repo,
        SolveOptions {
            options: options.clone(),
            build_from_source: a.build_from_source,
            timeout,
            cancel: Some(SolveCancel::new(|| spfs::signals::received().is_some())),
            progress,
        },
    );
    let result = solver.solve(&requests);
    drop(spinner);
    if let Some(path) = &a.graph {
        let dot = match &result {
            Ok(solution) => crate::solve::graph::solution_dot(&requests, solution),
            Err(SolveError::NoSolution(e)) => {
                crate::solve::graph::failure_dot(&repo, &requests, &options, e)
            }
            Err(_) => String::new(),
        };
        if !dot.is_empty() {
            super::graph::write(path, &dot)?;
            eprintln!("wrote the graph to {}", path.display());
        }
    }
    match result {
        Ok(solution) if solution.packages.is_empty() => {
            eprintln!(
                "note: no packages resolved: option requests only constrain packages that other requests bring in"
            );
            Ok(())
        }
        Ok(solution) => {
            out!("{}", with_origins(&view, &repo, &solution)?);
            Ok(())
        }
        Err(SolveError::NoSolution(e)) => Err(CliError {
            message: e.summary.clone(),
            details: e.reasons.clone(),
            help: vec![e.help.clone()],
        }),
        Err(e) => Err(e.into()),
    }
}
