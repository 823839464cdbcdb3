//! `spk make-source`, `make-binary`, `build` and `test`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::commands::{open_view, RepoSelect};
use super::{parse_options, Cli, CliError, CliResult, OptionArgs};
use crate::build::{BuildError, BuildOptions, Builder};
use crate::spec::{load_spec_file, Spec, TestStage};
use crate::storage::PackageRepository;

/// The report of a build error: its message, the log tail or offending paths, hints.
pub(super) fn build_report(e: BuildError) -> CliError {
    let mut r = CliError::new(e.to_string());
    r.details = e.details();
    r.help = spfs::Help::help(&e);
    r
}

/// Options shared by the build commands.
#[derive(Debug, Args, Clone)]
pub struct BuildArgs {
    #[command(flatten)]
    pub options: OptionArgs,
    /// Build only this variant (numbered from 0)
    #[arg(long, value_name = "N")]
    pub variant: Option<usize>,
    /// Where build and test environments are solved from (built packages always go
    /// into the local repository)
    #[command(flatten)]
    pub repos: RepoSelect,
}

/// `spk make-source`.
#[derive(Debug, Args)]
pub struct MakeSource {
    /// The recipe's spec file
    pub spec: PathBuf,
    /// Template options, as name=value
    #[arg(short = 'o', long = "opt", value_name = "NAME=VALUE")]
    pub options: Vec<String>,
}

/// `spk make-binary`.
#[derive(Debug, Args)]
pub struct MakeBinary {
    /// The recipe: a spec file, or NAME/VERSION of a stored recipe
    pub package: String,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Run the build script in the current directory instead of the sources
    #[arg(long)]
    pub here: bool,
    /// Open a shell in the build environment instead of running the script
    #[arg(short, long)]
    pub interactive: bool,
    /// Keep the files of a failed build for inspection
    #[arg(long)]
    pub keep_runtime: bool,
}

/// `spk build`.
#[derive(Debug, Args)]
pub struct BuildCmd {
    /// The recipe's spec file
    pub spec: PathBuf,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Run the build script in the current directory instead of the sources
    #[arg(long)]
    pub here: bool,
}

/// `spk test`.
#[derive(Debug, Args)]
pub struct Test {
    /// SPEC|NAME/VERSION, optionally @sources, @build or @install
    pub package: String,
    #[command(flatten)]
    pub build: BuildArgs,
}

fn load(opt_args: &[String], path: &Path) -> Result<Spec, CliError> {
    let opts = super::commands::template_options(opt_args)?;
    Ok(load_spec_file(path, &opts)?.spec)
}

/// A recipe named by a spec file or by NAME/VERSION of a stored recipe, with the
/// directory its sources are relative to.
fn recipe(
    repo: &dyn PackageRepository,
    opts: &[String],
    arg: &str,
) -> Result<(Spec, Option<PathBuf>), CliError> {
    let path = Path::new(arg);
    if path.is_file() {
        let spec = load(opts, path)?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .map(Path::to_path_buf);
        return Ok((spec, dir));
    }
    let ident = super::commands::parse_ident(arg)?;
    let Some(version) = ident.version_ident() else {
        return Err(
            CliError::new(format!("'{arg}' is neither a spec file nor NAME/VERSION"))
                .help("give the spec file, or the stored recipe as name/version"),
        );
    };
    let spec = repo.read_recipe(&version)?;
    Ok(((*spec).clone(), None))
}

fn options(a: &BuildArgs) -> Result<BuildOptions, CliError> {
    spfs::signals::install();
    Ok(BuildOptions {
        options: parse_options(&a.options.values)?,
        variant: a.variant,
        no_host: a.options.no_host,
        stream: true,
        ..Default::default()
    })
}

fn report(built: &[crate::build::Built]) {
    for b in built {
        let comps: Vec<&str> = b.components.keys().map(|c| c.as_str()).collect();
        cli_policy::outln!("{}  [{}]", b.ident, comps.join(","));
        if b.log.exists() {
            eprintln!("  log: {}", b.log.display());
        }
    }
}

/// `spk make-source`.
pub fn make_source(cli: &Cli, a: &MakeSource) -> CliResult {
    let repo = super::commands::repo_for_write(cli)?;
    let (spec, dir) = recipe(&repo, &a.options, &a.spec.display().to_string())?;
    let dir = dir.ok_or_else(|| {
        CliError::new("make-source needs the recipe's spec file")
            .help("give the path of the .spk.yaml file")
    })?;
    spfs::signals::install();
    let b = Builder::new(
        &repo,
        BuildOptions {
            stream: true,
            ..Default::default()
        },
    );
    report(&[b.make_source(&spec, &dir).map_err(build_report)?]);
    Ok(())
}

/// `spk make-binary`.
pub fn make_binary(cli: &Cli, a: &MakeBinary) -> CliResult {
    let view = open_view(cli, &a.build.repos, true)?;
    let repo = view.local(cli)?;
    let stack = view.stack();
    let fetch = |layers: &[spfs::Digest]| super::env::pull_layers(repo, &view, layers);
    let (spec, _) = recipe(&stack, &a.build.options.values, &a.package)?;
    let mut o = options(&a.build)?;
    o.interactive = a.interactive;
    o.keep_runtime = a.keep_runtime;
    if a.here {
        o.here = Some(
            std::env::current_dir()
                .map_err(|e| CliError::new(format!("cannot read the current directory: {e}")))?,
        );
    }
    if a.interactive
        && a.build.variant.is_none()
        && !spec.build.variants.is_empty()
        && spec.build.variants.len() > 1
    {
        return Err(CliError::new("-i opens one build environment")
            .help("pick the variant with --variant N"));
    }
    let b = Builder::new(repo, o).with_packages(&stack, &fetch);
    report(&b.make_binary(&spec).map_err(build_report)?);
    Ok(())
}

/// `spk build`.
pub fn build(cli: &Cli, a: &BuildCmd) -> CliResult {
    let view = open_view(cli, &a.build.repos, true)?;
    let repo = view.local(cli)?;
    let stack = view.stack();
    let fetch = |layers: &[spfs::Digest]| super::env::pull_layers(repo, &view, layers);
    let (spec, dir) = recipe(repo, &a.build.options.values, &a.spec.display().to_string())?;
    let dir = dir.ok_or_else(|| {
        CliError::new("spk build needs the recipe's spec file")
            .help("to rebuild a stored recipe use 'spk make-binary NAME/VERSION'")
    })?;
    let mut o = options(&a.build)?;
    if a.here {
        o.here = Some(
            std::env::current_dir()
                .map_err(|e| CliError::new(format!("cannot read the current directory: {e}")))?,
        );
    }
    let b = Builder::new(repo, o).with_packages(&stack, &fetch);
    let src = b.make_source(&spec, &dir).map_err(build_report)?;
    report(std::slice::from_ref(&src));
    report(&b.make_binary(&spec).map_err(build_report)?);
    Ok(())
}

/// `spk test`.
pub fn test(cli: &Cli, a: &Test) -> CliResult {
    let view = open_view(cli, &a.build.repos, true)?;
    let repo = view.local(cli)?;
    let stack = view.stack();
    let fetch = |layers: &[spfs::Digest]| super::env::pull_layers(repo, &view, layers);
    let (target, stages) = match a.package.rsplit_once('@') {
        Some((p, "sources")) => (p, vec![TestStage::Sources]),
        Some((p, "build")) => (p, vec![TestStage::Build]),
        Some((p, "install")) => (p, vec![TestStage::Install]),
        Some((_, other)) => {
            return Err(CliError::new(format!("unknown test stage '{other}'"))
                .help("use @sources, @build or @install"))
        }
        None => (
            a.package.as_str(),
            vec![TestStage::Sources, TestStage::Build, TestStage::Install],
        ),
    };
    let (spec, _) = recipe(&stack, &a.build.options.values, target)?;
    let b = Builder::new(repo, options(&a.build)?).with_packages(&stack, &fetch);
    let ran = b.test(&spec, &stages).map_err(build_report)?;
    for t in &ran {
        cli_policy::outln!(
            "ok  test {} ({:?} stage, variant {})",
            t.index,
            t.stage,
            t.variant
        );
    }
    eprintln!("{} test(s) passed", ran.len());
    Ok(())
}
