//! BOSH releases as spk packages.
//!
//! [`Release::load`] reads a release directory and finds every problem before anything
//! runs. [`import`] stores each package's selected files (after `pre_packaging`) as the
//! `src` build of an spk package; [`build`] then compiles the packages in dependency
//! order, each `packaging` script running in a runtime that holds the package's sources
//! and exactly its direct dependencies at `/var/vcap/packages/<dep>`, and publishes what
//! it installed under `/var/vcap/packages/<name>` as the package's layer.
//!
//! Identity: a package's *identity* is the sha256 of its BOSH fingerprint and its
//! dependencies' identities. Each distinct identity of a package becomes one version
//! (`1.0.0`, `2.0.0`, ... in import order) of the spk package its name maps to
//! ([`release::spk_name`]); importing or building a known identity reuses it. Layers
//! hold their files under `/spfs/var/vcap/packages/<name>`; the runtime shows them at
//! `/var/vcap/packages/<name>` through a link (see [`runtime_links`]).

pub mod fingerprint;
pub mod glob;
pub mod release;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use spfs::commit::{commit_tree, store_layer, CommitOptions};
use spfs::progress::Progress;
use spfs::runtime::monitor::RunOptions;
use spfs::runtime::spawn::RuntimeCommand;
use spfs::runtime::startup::Program;
use spfs::Digest;

pub use release::{Package, Problem, Release, ReleaseProblems};

use crate::ident::{Build, BuildIdent, VersionIdent};
use crate::name::Component;
use crate::option_map::OptionMap;
use crate::request::Request;
use crate::spec::Spec;
use crate::storage::{ComponentLayers, PackageRepository, SpfsRepository, StorageError};
use crate::version::Version;

/// Label: the BOSH package name.
pub const LABEL_NAME: &str = "bosh.name";
/// Label: the BOSH fingerprint.
pub const LABEL_FINGERPRINT: &str = "bosh.fingerprint";
/// Label: fingerprint plus dependency identities.
pub const LABEL_IDENTITY: &str = "bosh.identity";
/// Label: the release name.
pub const LABEL_RELEASE: &str = "bosh.release";
/// Label: the direct dependencies (BOSH names, comma-separated).
pub const LABEL_DEPENDENCIES: &str = "bosh.dependencies";
/// Where a BOSH package's files live.
pub const PACKAGES_DIR: &str = "/var/vcap/packages";

/// Why an import or build could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum BoshError {
    /// The release has problems; nothing ran.
    #[error("release {}: {} problem(s) found, so nothing was imported or built", .0.dir.display(), .0.problems.len())]
    Release(ReleaseProblems),
    /// An spk package of that name exists that does not come from a BOSH release.
    #[error("package '{bosh}' maps to the spk name '{name}', which a package not imported from BOSH already uses")]
    NameTaken {
        /// The spk name.
        name: String,
        /// The BOSH name.
        bosh: String,
    },
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The store failed.
    #[error(transparent)]
    Spfs(#[from] spfs::Error),
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: String,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
}

impl spfs::Help for BoshError {
    fn help(&self) -> Vec<String> {
        match self {
            BoshError::Release(_) => {
                vec!["fix the problems listed above and run the command again".into()]
            }
            BoshError::NameTaken { .. } => {
                vec!["import with '--prefix bosh-' (or another prefix) to give BOSH packages their own names".into()]
            }
            BoshError::Storage(e) => spfs::Help::help(e),
            BoshError::Spfs(e) => spfs::Help::help(e),
            _ => Vec::new(),
        }
    }
}

fn io(action: &str, path: &Path) -> impl FnOnce(std::io::Error) -> BoshError {
    let (action, path) = (action.to_string(), path.to_path_buf());
    move |source| BoshError::Io {
        action,
        path,
        source,
    }
}

/// How to import and build.
#[derive(Debug, Clone)]
pub struct BoshOptions {
    /// Packages compiled at once (at least 1).
    pub jobs: usize,
    /// The binary that monitors runtimes (default: the current executable).
    pub monitor_exe: Option<PathBuf>,
}

impl Default for BoshOptions {
    fn default() -> Self {
        BoshOptions {
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            monitor_exe: None,
        }
    }
}

/// What happened to a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Stored (import) or compiled and published (build) now.
    Done,
    /// Already in the repository with the same identity: nothing ran.
    Unchanged,
    /// Its script failed: nothing was published for it.
    Failed {
        /// What failed and how.
        reason: String,
        /// The kept log.
        log: PathBuf,
    },
    /// Not attempted because a dependency failed.
    Skipped {
        /// The failed dependency.
        because: String,
    },
}

/// One line of the import or build table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The BOSH name.
    pub name: String,
    /// The spk package (version, and build once compiled).
    pub ident: String,
    /// The BOSH fingerprint.
    pub fingerprint: String,
    /// Direct dependencies (BOSH names).
    pub dependencies: Vec<String>,
    /// What happened.
    pub status: Status,
}

/// What [`import`] decided per package.
#[derive(Debug, Clone)]
struct Planned {
    version: Version,
    identity: String,
    /// The `src` build is already stored.
    stored: bool,
}

/// The links that show each BOSH package of `specs` at `/var/vcap/packages/<name>`.
pub fn runtime_links<'a>(specs: impl IntoIterator<Item = &'a Spec>) -> Vec<(PathBuf, PathBuf)> {
    let mut out: Vec<(PathBuf, PathBuf)> = Vec::new();
    for s in specs {
        let Some(name) = s.meta.labels.get(LABEL_NAME) else {
            continue;
        };
        // Names come from a repository: only plain path components are honoured.
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            tracing::warn!(
                "{} has an unusable {LABEL_NAME} label '{name}'; not linking it",
                s.ident()
            );
            continue;
        }
        let link = Path::new(PACKAGES_DIR).join(name);
        if out.iter().any(|(l, _)| l == &link) {
            continue;
        }
        out.push((link, Path::new("/spfs").join(&PACKAGES_DIR[1..]).join(name)));
    }
    out
}

/// Computes identities and finds or allocates each package's version; fails before
/// anything runs when a name is taken by a non-BOSH package.
fn plan(repo: &SpfsRepository, release: &Release) -> Result<BTreeMap<String, Planned>, BoshError> {
    let mut out: BTreeMap<String, Planned> = BTreeMap::new();
    for name in &release.order {
        let p = &release.packages[name];
        let deps: Vec<(String, String)> = p
            .dependencies
            .iter()
            .map(|d| (d.clone(), out[d].identity.clone()))
            .collect();
        let identity = fingerprint::identity(&p.fingerprint, &deps);
        let mut found = None;
        let mut top = 0u64;
        let versions = match repo.list_versions(&p.spk_name) {
            Ok(v) => v,
            Err(StorageError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        for v in versions {
            let vi = VersionIdent::new(p.spk_name.clone(), v.clone());
            let recipe = match repo.read_recipe(&vi) {
                Ok(r) => r,
                Err(StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let Some(id) = recipe.meta.labels.get(LABEL_IDENTITY) else {
                return Err(BoshError::NameTaken {
                    name: p.spk_name.to_string(),
                    bosh: name.clone(),
                });
            };
            top = top.max(
                v.to_string()
                    .split('.')
                    .next()
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(0),
            );
            if *id == identity {
                found = Some(v);
            }
        }
        let (version, stored) = match found {
            Some(v) => {
                let src = VersionIdent::new(p.spk_name.clone(), v.clone()).to_build(Build::Source);
                let stored = repo
                    .read_components(&src)
                    .is_ok_and(|c| c.contains_key(&Component::Source));
                (v, stored)
            }
            None => (
                format!("{}.0.0", top + 1).parse().expect("a valid version"),
                false,
            ),
        };
        out.insert(
            name.clone(),
            Planned {
                version,
                identity,
                stored,
            },
        );
    }
    Ok(out)
}

fn recipe(release: &Release, p: &Package, planned: &BTreeMap<String, Planned>) -> Spec {
    let me = &planned[&p.name];
    let mut spec = Spec::new(VersionIdent::new(p.spk_name.clone(), me.version.clone()));
    spec.sources.clear();
    spec.meta.description = Some(format!(
        "BOSH package {} of release {}",
        p.name, release.name
    ));
    let labels = &mut spec.meta.labels;
    labels.insert(LABEL_NAME.into(), p.name.clone());
    labels.insert(LABEL_FINGERPRINT.into(), p.fingerprint.clone());
    labels.insert(LABEL_IDENTITY.into(), me.identity.clone());
    labels.insert(LABEL_RELEASE.into(), release.name.clone());
    if !p.dependencies.is_empty() {
        labels.insert(LABEL_DEPENDENCIES.into(), p.dependencies.join(","));
    }
    for d in &p.dependencies {
        let dep = &release.packages[d];
        let text = format!("{}/={}", dep.spk_name, planned[d].version);
        if let Ok(r) = Request::parse_cli(&text) {
            spec.install.requirements.push(r);
        }
    }
    spec.build.script = crate::spec::Script(vec![
        format!(
            "echo '{} is a BOSH package: build it with spk bosh build RELEASE_DIR {}' >&2",
            p.spk_name, p.name
        ),
        "exit 1".into(),
    ]);
    spec
}

fn log_dir(repo: &SpfsRepository, vi: &VersionIdent) -> PathBuf {
    repo.spfs()
        .root()
        .join("logs")
        .join("spk")
        .join(vi.name.as_str())
        .join(vi.version.to_string())
}

fn scratch(repo: &SpfsRepository) -> Result<tempfile::TempDir, BoshError> {
    let tmp = repo.spfs().tmp_dir();
    fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
    tempfile::Builder::new()
        .prefix("spk-bosh-")
        .tempdir_in(&tmp)
        .map_err(io("create a scratch directory in", &tmp))
}

/// The last lines of a log, for error reports.
pub fn log_tail(log: &Path, lines: usize) -> Vec<String> {
    let Ok(mut f) = fs::File::open(log) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(8192)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Copies the package's selected files and its `packaging` into `stage`.
fn stage_files(p: &Package, stage: &Path) -> Result<(), BoshError> {
    fs::create_dir_all(stage).map_err(io("create", stage))?;
    for f in &p.files {
        let dest = stage.join(&f.rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        match &f.kind {
            release::FileKind::Symlink(target) => {
                std::os::unix::fs::symlink(target, &dest).map_err(io("create the link", &dest))?
            }
            release::FileKind::File { .. } => {
                fs::copy(&f.source, &dest).map_err(io("copy", &f.source))?;
            }
        }
    }
    let packaging = p.dir.join("packaging");
    fs::copy(&packaging, stage.join("packaging")).map_err(io("copy", &packaging))?;
    Ok(())
}

/// Stores one package's sources; `Ok(Err(status))` when its pre_packaging failed.
fn import_one(
    repo: &SpfsRepository,
    release: &Release,
    p: &Package,
    planned: &BTreeMap<String, Planned>,
) -> Result<Status, BoshError> {
    let spec = recipe(release, p, planned);
    let vi = spec.ident().clone();
    let scratch = scratch(repo)?;
    let rel_src = format!("spk/pkg/{}/{}/src", vi.name, vi.version);
    let stage = scratch.path().join("upper").join(&rel_src);
    stage_files(p, &stage)?;
    if p.pre_packaging {
        let log = log_dir(repo, &vi).join("pre_packaging.log");
        if let Some(parent) = log.parent() {
            fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        let out = fs::File::create(&log).map_err(io("create", &log))?;
        let err = out.try_clone().map_err(io("open", &log))?;
        let script = p.dir.join("pre_packaging");
        let status = std::process::Command::new("bash")
            .arg("-x")
            .arg(&script)
            .current_dir(&stage)
            .env("BUILD_DIR", &stage)
            .env("RELEASE_DIR", &release.dir)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(io("run", &script))?;
        spfs::signals::check().map_err(|_| BoshError::Interrupted)?;
        if !status.success() {
            return Ok(Status::Failed {
                reason: format!(
                    "pre_packaging exited with {}",
                    status
                        .code()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "a signal".into())
                ),
                log,
            });
        }
    }
    let manifest = commit_tree(
        repo.spfs(),
        &scratch.path().join("upper"),
        None,
        &CommitOptions {
            take_files: true,
            ..Default::default()
        },
        &Progress::hidden(),
    )?;
    let ident = vi.to_build(Build::Source);
    let layer = store_layer(
        repo.spfs(),
        manifest,
        &[
            ("spk:build".into(), ident.to_string()),
            ("spk:component".into(), "src".into()),
        ],
    )?;
    // Publishing flushes the store (one syncfs) before it writes each tag.
    spfs::signals::check().map_err(|_| BoshError::Interrupted)?;
    repo.publish_recipe(&spec, true)?;
    let mut src = spec.clone();
    src.pkg.build = Some(Build::Source);
    let components: ComponentLayers = [(Component::Source, layer)].into_iter().collect();
    repo.publish_build(&src, &components)?;
    Ok(Status::Done)
}

fn dependency_failure(p: &Package, statuses: &BTreeMap<String, Status>) -> Option<String> {
    p.dependencies.iter().find_map(|d| match statuses.get(d) {
        Some(Status::Failed { .. }) => Some(d.clone()),
        Some(Status::Skipped { because }) => Some(format!("{d} (via {because})")),
        _ => None,
    })
}

/// Stores the sources of every package of `release` (in dependency order); a failed
/// `pre_packaging` stops that package and its dependents only.
pub fn import(repo: &SpfsRepository, release: &Release) -> Result<Vec<Row>, BoshError> {
    Ok(import_planned(repo, release)?.0)
}

fn import_planned(
    repo: &SpfsRepository,
    release: &Release,
) -> Result<(Vec<Row>, BTreeMap<String, Planned>), BoshError> {
    let planned = plan(repo, release)?;
    let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
    let mut rows = Vec::new();
    for name in &release.order {
        spfs::signals::check().map_err(|_| BoshError::Interrupted)?;
        let p = &release.packages[name];
        let me = &planned[name];
        let status = if let Some(because) = dependency_failure(p, &statuses) {
            Status::Skipped { because }
        } else if me.stored {
            Status::Unchanged
        } else {
            import_one(repo, release, p, &planned)?
        };
        statuses.insert(name.clone(), status.clone());
        rows.push(Row {
            name: name.clone(),
            ident: format!("{}/{}", p.spk_name, me.version),
            fingerprint: p.fingerprint.clone(),
            dependencies: p.dependencies.clone(),
            status,
        });
    }
    Ok((rows, planned))
}

/// The published binary build of a version, with its run layer.
fn existing_build(
    repo: &SpfsRepository,
    vi: &VersionIdent,
) -> Result<Option<(BuildIdent, Digest)>, BoshError> {
    let builds = match repo.list_builds(vi) {
        Ok(b) => b,
        Err(StorageError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    for b in builds {
        if b.build == Build::Source {
            continue;
        }
        if let Ok(c) = repo.read_components(&b) {
            if let Some(d) = c.get(&Component::Run) {
                return Ok(Some((b, *d)));
            }
        }
    }
    Ok(None)
}

struct CompileJob<'a> {
    package: &'a Package,
    recipe: Spec,
    /// (BOSH name, run layer) of each direct dependency.
    deps: Vec<(String, Digest)>,
}

enum Compiled {
    Built(BuildIdent, Digest),
    Failed { reason: String, log: PathBuf },
}

fn compile_one(
    repo: &SpfsRepository,
    opts: &BoshOptions,
    job: &CompileJob<'_>,
) -> Result<Compiled, BoshError> {
    let p = job.package;
    let vi = job.recipe.ident().clone();
    let src_ident = vi.to_build(Build::Source);
    let src_layer = repo
        .read_components(&src_ident)?
        .get(&Component::Source)
        .copied()
        .ok_or_else(|| StorageError::NotFound {
            what: format!("the src layer of {src_ident}"),
        })?;
    let spec = job
        .recipe
        .to_build_spec(&OptionMap::new(), &[])
        .map_err(|e| BoshError::Io {
            action: format!("make the build spec ({})", e.message),
            path: PathBuf::from(vi.to_string()),
            source: std::io::Error::other("invalid spec"),
        })?;
    let ident = spec.build_ident().expect("build specs have a build");
    let scratch = scratch(repo)?;
    let upper = scratch.path().join("upper");
    let install_rel = format!("{}/{}", &PACKAGES_DIR[1..], p.name);
    let install_upper = upper.join(&install_rel);
    fs::create_dir_all(&install_upper).map_err(io("create", &install_upper))?;
    let compile_target = format!("/spfs/spk/pkg/{}/{}/src", vi.name, vi.version);
    let mut stack = vec![src_layer];
    stack.extend(job.deps.iter().map(|(_, d)| *d));
    let mut run = RunOptions::new(
        stack,
        Program::Command(vec!["bash".into(), "-x".into(), "packaging".into()]),
    );
    run.edit = Some(true);
    run.upper_dir = Some(scratch.path().to_path_buf());
    run.cwd = Some(PathBuf::from(&compile_target));
    let spfs_dir = |n: &str| Path::new("/spfs").join(&PACKAGES_DIR[1..]).join(n);
    run.links = std::iter::once(&p.name)
        .chain(job.deps.iter().map(|(n, _)| n))
        .map(|n| (Path::new(PACKAGES_DIR).join(n), spfs_dir(n)))
        .collect();
    let mut cmd = RuntimeCommand::new(repo.spfs(), run);
    if let Some(exe) = &opts.monitor_exe {
        cmd.monitor_exe(exe);
    }
    for k in crate::build::environment::stale_spk_vars() {
        cmd.env_remove(k);
    }
    cmd.env("BOSH_COMPILE_TARGET", &compile_target)
        .env("BOSH_INSTALL_TARGET", Path::new(PACKAGES_DIR).join(&p.name))
        .env("BOSH_PACKAGE_NAME", &p.name)
        .env("BOSH_PACKAGE_VERSION", &p.fingerprint);
    let log = log_dir(repo, &vi).join(format!("{}.log", ident.build));
    if let Some(parent) = log.parent() {
        fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let out = fs::File::create(&log).map_err(io("create", &log))?;
    let err = out.try_clone().map_err(io("open", &log))?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    let code = cmd.status()?;
    spfs::signals::check().map_err(|_| BoshError::Interrupted)?;
    if code != 0 {
        return Ok(Compiled::Failed {
            reason: format!("packaging exited with {code}"),
            log,
        });
    }
    // Capture only what was installed into the package's own directory.
    let capture = scratch.path().join("capture");
    let dest = capture.join(&install_rel);
    fs::create_dir_all(dest.parent().expect("has a parent")).map_err(io("create", &capture))?;
    let installed = fs::symlink_metadata(&install_upper).is_ok_and(|m| m.is_dir());
    if installed {
        fs::rename(&install_upper, &dest).map_err(io("move", &install_upper))?;
    } else {
        fs::create_dir_all(&dest).map_err(io("create", &dest))?;
    }
    let meta = capture.join(format!(
        "spk/pkg/{}/{}/{}",
        vi.name, vi.version, ident.build
    ));
    fs::create_dir_all(&meta).map_err(io("create", &meta))?;
    fs::write(meta.join("spec.yaml"), spec.to_yaml()).map_err(io("write", &meta))?;
    let _ = fs::copy(&log, meta.join("build.log"));
    let manifest = commit_tree(
        repo.spfs(),
        &capture,
        None,
        &CommitOptions {
            take_files: true,
            ..Default::default()
        },
        &Progress::hidden(),
    )?;
    let layer = store_layer(
        repo.spfs(),
        manifest,
        &[
            ("spk:build".into(), ident.to_string()),
            ("spk:component".into(), "run".into()),
        ],
    )?;
    // Publishing flushes the store (one syncfs) before it writes each tag.
    spfs::signals::check().map_err(|_| BoshError::Interrupted)?;
    let components: ComponentLayers = spec
        .component_names()
        .into_iter()
        .map(|c| (c, layer))
        .collect();
    repo.publish_build(&spec, &components)?;
    Ok(Compiled::Built(ident, layer))
}

/// Imports `release`, then compiles every package whose identity has no build yet, in
/// dependency order, up to `opts.jobs` at once. Returns the import and build tables.
pub fn build(
    repo: &SpfsRepository,
    release: &Release,
    opts: &BoshOptions,
) -> Result<(Vec<Row>, Vec<Row>), BoshError> {
    let (imported, planned) = import_planned(repo, release)?;
    let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
    let mut layers: BTreeMap<String, Digest> = BTreeMap::new();
    let mut idents: BTreeMap<String, String> = BTreeMap::new();
    for row in &imported {
        match &row.status {
            Status::Failed { .. } | Status::Skipped { .. } => {
                statuses.insert(row.name.clone(), row.status.clone());
            }
            _ => {}
        }
    }
    let mut pending: Vec<&String> = release
        .order
        .iter()
        .filter(|n| !statuses.contains_key(*n))
        .collect();
    let jobs = opts.jobs.max(1);
    let mut first_error: Option<BoshError> = None;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(String, Result<Compiled, BoshError>)>();
        let mut running: BTreeSet<String> = BTreeSet::new();
        loop {
            // Settle what can be decided without compiling, then start what is ready.
            let mut i = 0;
            while i < pending.len() {
                if first_error.is_some() || spfs::signals::check().is_err() {
                    break;
                }
                let name = pending[i];
                let p = &release.packages[name];
                if let Some(because) = dependency_failure(p, &statuses) {
                    statuses.insert(name.clone(), Status::Skipped { because });
                    pending.remove(i);
                    continue;
                }
                if !p.dependencies.iter().all(|d| layers.contains_key(d)) {
                    i += 1;
                    continue;
                }
                let vi = VersionIdent::new(p.spk_name.clone(), planned[name].version.clone());
                match existing_build(repo, &vi) {
                    Ok(Some((b, d))) => {
                        layers.insert(name.clone(), d);
                        idents.insert(name.clone(), b.to_string());
                        statuses.insert(name.clone(), Status::Unchanged);
                        pending.remove(i);
                        i = 0;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        first_error = Some(e);
                        break;
                    }
                }
                if running.len() >= jobs {
                    i += 1;
                    continue;
                }
                let job = CompileJob {
                    package: p,
                    recipe: recipe(release, p, &planned),
                    deps: p
                        .dependencies
                        .iter()
                        .map(|d| (d.clone(), layers[d]))
                        .collect(),
                };
                running.insert(name.clone());
                pending.remove(i);
                let tx = tx.clone();
                let name = name.clone();
                tracing::info!("compiling {name}");
                eprintln!("compiling {name} ({})", vi);
                s.spawn(move || {
                    let r = compile_one(repo, opts, &job);
                    let _ = tx.send((name, r));
                });
            }
            if running.is_empty() {
                break;
            }
            let Ok((name, result)) = rx.recv() else { break };
            running.remove(&name);
            match result {
                Ok(Compiled::Built(ident, layer)) => {
                    layers.insert(name.clone(), layer);
                    idents.insert(name.clone(), ident.to_string());
                    statuses.insert(name, Status::Done);
                }
                Ok(Compiled::Failed { reason, log }) => {
                    statuses.insert(name, Status::Failed { reason, log });
                }
                Err(e) => {
                    statuses.insert(
                        name,
                        Status::Failed {
                            reason: e.to_string(),
                            log: PathBuf::new(),
                        },
                    );
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    spfs::signals::check().map_err(|_| BoshError::Interrupted)?;
    let rows = release
        .order
        .iter()
        .map(|name| {
            let p = &release.packages[name];
            Row {
                name: name.clone(),
                ident: idents
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| format!("{}/{}", p.spk_name, planned[name].version)),
                fingerprint: p.fingerprint.clone(),
                dependencies: p.dependencies.clone(),
                status: statuses.get(name).cloned().unwrap_or(Status::Skipped {
                    because: "interrupted".into(),
                }),
            }
        })
        .collect();
    Ok((imported, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, bosh: Option<&str>) -> Spec {
        let mut s = Spec::new(VersionIdent::new(
            name.parse().unwrap(),
            "1.0.0".parse().unwrap(),
        ));
        if let Some(b) = bosh {
            s.meta.labels.insert(LABEL_NAME.into(), b.into());
        }
        s
    }

    #[test]
    fn links_come_from_bosh_labels_only_and_unsafe_names_are_ignored() {
        let specs = [
            spec("ruby-1-9-3", Some("ruby_1.9.3")),
            spec("plain", None),
            spec("evil", Some("../etc")),
            spec("dots", Some("..")),
            spec("again", Some("ruby_1.9.3")),
        ];
        let links = runtime_links(specs.iter());
        assert_eq!(
            links,
            [(
                PathBuf::from("/var/vcap/packages/ruby_1.9.3"),
                PathBuf::from("/spfs/var/vcap/packages/ruby_1.9.3")
            )]
        );
    }
}
