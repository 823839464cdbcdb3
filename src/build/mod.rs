//! The build pipeline: `make-source` collects a recipe's sources into a `src` build,
//! `make-binary` runs the build script of each variant in a fresh runtime over the
//! sources and the build environment, captures what it installed under /spfs as one
//! layer per component, validates it and publishes it; `test` runs the recipe's tests
//! at the sources, build and install stages.
//!
//! Every runtime is started through the spfs library's spawnable runtime, so one process
//! runs many of them. Writable upper dirs live on disk next to the repository's payloads,
//! and capture links new files into the store instead of copying them.

pub mod activation;
mod capture;
pub mod environment;
mod error;
mod sources;
mod testing;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spfs::commit::{commit_tree, store_layer, CommitOptions};
use spfs::object::{EntryKind, Manifest};
use spfs::progress::Progress;
use spfs::runtime::monitor::RunOptions;
use spfs::runtime::spawn::RuntimeCommand;
use spfs::runtime::startup::Program;
use spfs::Digest;

pub use error::{BuildError, Result};
pub use testing::TestOutcome;

use crate::ident::{Build, BuildIdent};
use crate::name::Component;
use crate::option_map::OptionMap;
use crate::request::{PkgRequest, Request, VarRequest};
use crate::solve::{Solution, SolveOptions, Solver};
use crate::spec::{SourceSpec, Spec, ValidationRuleName};
use crate::storage::{ComponentLayers, PackageRepository, SpfsRepository};

/// How to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Option values from the command line (`-o name=value`).
    pub options: OptionMap,
    /// Build only this variant (0-based index into `build.variants`).
    pub variant: Option<usize>,
    /// Run the script in the current directory instead of the source package.
    pub here: Option<PathBuf>,
    /// Open an interactive shell in the build environment instead of the script.
    pub interactive: bool,
    /// Keep the scratch directory of a failed build.
    pub keep_runtime: bool,
    /// Leave out the host options (`os`, `arch`, `distro`, ...).
    pub no_host: bool,
    /// The binary that monitors runtimes (default: the current executable).
    pub monitor_exe: Option<PathBuf>,
    /// Show build output on stderr as it happens (it is always saved to the log).
    pub stream: bool,
}

/// One published build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The build.
    pub ident: BuildIdent,
    /// Its component layers.
    pub components: ComponentLayers,
    /// Where its output was saved.
    pub log: PathBuf,
}

/// Fetches into the local repository the layers of a stack it lacks.
pub type FetchLayers<'a> = dyn Fn(&[Digest]) -> spfs::Result<()> + 'a;

/// Builds packages into a repository.
pub struct Builder<'a> {
    repo: &'a SpfsRepository,
    /// Where build and test environments are solved from and their layers named:
    /// `repo`, or a stack of it and remotes ([`Builder::with_packages`]).
    packages: &'a dyn PackageRepository,
    /// Brings the layers of an environment into `repo` before it mounts.
    fetch: Option<&'a FetchLayers<'a>>,
    opts: BuildOptions,
}

/// The directory where source packages live inside a runtime.
pub fn source_dir(spec: &Spec) -> String {
    format!("/spfs/spk/pkg/{}/{}/src", spec.name(), spec.version())
}

/// The metadata directory of a build inside a runtime, relative to /spfs.
fn metadata_dir(ident: &BuildIdent) -> String {
    format!("spk/pkg/{}/{}/{}", ident.name, ident.version, ident.build)
}

impl<'a> Builder<'a> {
    /// A builder over `repo`.
    pub fn new(repo: &'a SpfsRepository, opts: BuildOptions) -> Self {
        Builder {
            repo,
            packages: repo,
            fetch: None,
            opts,
        }
    }

    /// Solves build and test environments from `packages` (the local repository and
    /// remotes, as `spk env` does) instead of the local repository alone; `fetch`
    /// pulls the layers of each environment that the local repository lacks before
    /// the environment mounts. What is built still goes into the local repository.
    pub fn with_packages(
        mut self,
        packages: &'a dyn PackageRepository,
        fetch: &'a FetchLayers<'a>,
    ) -> Self {
        self.packages = packages;
        self.fetch = Some(fetch);
        self
    }

    /// Makes every layer of `stack` local (pulling from the remotes in view) before a
    /// runtime mounts it.
    fn fetch_layers(&self, stack: &[Digest]) -> Result<()> {
        if let Some(fetch) = self.fetch {
            fetch(stack)?;
        }
        Ok(())
    }

    fn invalid(spec: &Spec, message: impl Into<String>, help: Option<&str>) -> BuildError {
        BuildError::Invalid {
            ident: spec.ident().to_string(),
            message: message.into(),
            help: help.map(str::to_string),
        }
    }

    /// A private scratch directory on the repository's filesystem.
    fn scratch(&self) -> Result<tempfile::TempDir> {
        let tmp = self.repo.spfs().tmp_dir();
        fs::create_dir_all(&tmp).map_err(BuildError::io("create", &tmp))?;
        tempfile::Builder::new()
            .prefix("spk-build-")
            .tempdir_in(&tmp)
            .map_err(BuildError::io("create a scratch directory in", &tmp))
    }

    /// Where the output of a build is saved.
    fn log_path(&self, ident: &BuildIdent) -> PathBuf {
        self.repo
            .spfs()
            .root()
            .join("logs")
            .join("spk")
            .join(ident.name.as_str())
            .join(ident.version.to_string())
            .join(format!("{}.log", ident.build))
    }

    fn runtime(&self, options: RunOptions) -> RuntimeCommand {
        let mut cmd = RuntimeCommand::new(self.repo.spfs(), options);
        if let Some(exe) = &self.opts.monitor_exe {
            cmd.monitor_exe(exe);
        }
        for k in environment::stale_spk_vars() {
            cmd.env_remove(k);
        }
        cmd
    }

    /// Runs `cmd`, teeing its output into `log` (and stderr when streaming); returns
    /// the exit status and the last lines of output.
    fn run_logged(&self, mut cmd: RuntimeCommand, log: &Path) -> Result<(i32, Vec<String>)> {
        if let Some(parent) = log.parent() {
            fs::create_dir_all(parent).map_err(BuildError::io("create", parent))?;
        }
        let mut file = fs::File::create(log).map_err(BuildError::io("create", log))?;
        let (reader, writer) = std::io::pipe().map_err(BuildError::io("create a pipe for", log))?;
        let err_writer = writer
            .try_clone()
            .map_err(BuildError::io("create a pipe for", log))?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(writer)
            .stderr(err_writer);
        let child = cmd.spawn()?;
        // The pipe's write ends now live only in the runtime.
        drop(cmd);
        // Output is copied on a thread while this one waits, forwarding signals.
        let stream = self.opts.stream;
        let reader_thread = std::thread::spawn(move || {
            let mut tail: std::collections::VecDeque<String> = Default::default();
            let mut lines = std::io::BufReader::new(reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match lines.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        let _ = file.write_all(&line);
                        if stream {
                            let _ = std::io::stderr().write_all(&line);
                        }
                        if tail.len() == 15 {
                            tail.pop_front();
                        }
                        tail.push_back(String::from_utf8_lossy(&line).trim_end().to_string());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            tail
        });
        let code = child.wait();
        let tail = reader_thread.join().unwrap_or_default();
        let code = code?;
        Ok((code, tail.into_iter().collect()))
    }

    /// Solves `requests` binary-only under `options`.
    fn solve(
        &self,
        spec: &Spec,
        stage: &str,
        requests: Vec<Request>,
        options: &OptionMap,
    ) -> Result<Solution> {
        if requests.is_empty() {
            return Ok(Solution::default());
        }
        let solver = Solver::new(
            self.packages,
            SolveOptions {
                options: options.clone(),
                cancel: Some(crate::solve::SolveCancel::new(|| {
                    spfs::signals::check().is_err()
                })),
                ..Default::default()
            },
        );
        solver.solve(&requests).map_err(|source| BuildError::Solve {
            ident: spec.ident().to_string(),
            stage: stage.to_string(),
            source: Box::new(source),
        })
    }

    fn layers(&self, solution: &Solution) -> Result<Vec<Digest>> {
        Ok(crate::env::layer_stack(self.packages, solution)?)
    }

    // ---------------------------------------------------------------- make-source

    /// Stores the recipe and collects its sources into the `src` build.
    pub fn make_source(&self, recipe: &Spec, spec_dir: &Path) -> Result<Built> {
        if recipe.pkg.build.is_some() {
            return Err(Self::invalid(
                recipe,
                "is a build spec, not a recipe",
                Some("give the recipe's spec file"),
            ));
        }
        self.repo.publish_recipe(recipe, true)?;
        let ident = recipe.ident().to_build(Build::Source);
        let scratch = self.scratch()?;
        let upper = scratch.path().join("upper");
        let rel_src = format!("spk/pkg/{}/{}/src", recipe.name(), recipe.version());
        let src_root = upper.join(&rel_src);
        fs::create_dir_all(&src_root).map_err(BuildError::io("create", &src_root))?;
        let log = self.log_path(&ident);
        let ident_text = recipe.ident().to_string();
        for (i, source) in recipe.sources.iter().enumerate() {
            spfs::signals::check().map_err(|_| BuildError::Interrupted)?;
            let dest = match source.subdir() {
                Some(sub) => src_root.join(sub),
                None => src_root.clone(),
            };
            match source {
                SourceSpec::Script { script, subdir } => {
                    fs::create_dir_all(&dest).map_err(BuildError::io("create", &dest))?;
                    let file = scratch.path().join(format!("source-{}.sh", i + 1));
                    fs::write(&file, script.join("\n") + "\n")
                        .map_err(BuildError::io("write", &file))?;
                    let mut opts = RunOptions::new(
                        Vec::new(),
                        Program::Command(vec!["bash".into(), "-ex".into(), file.into()]),
                    );
                    opts.edit = Some(true);
                    opts.upper_dir = Some(scratch.path().to_path_buf());
                    let cwd = match subdir {
                        Some(s) => format!("/spfs/{rel_src}/{s}"),
                        None => format!("/spfs/{rel_src}"),
                    };
                    opts.cwd = Some(cwd.into());
                    let (code, tail) = self.run_logged(self.runtime(opts), &log)?;
                    if code != 0 {
                        return Err(self.script_failed(
                            &ident_text,
                            &format!("source {} (script)", i + 1),
                            code,
                            tail,
                            &log,
                            None,
                        ));
                    }
                }
                _ => {
                    let cx = sources::SourceContext {
                        ident: &ident_text,
                        index: i + 1,
                        spec_dir,
                        scratch: scratch.path(),
                    };
                    let excluded = sources::collect(&cx, source, &dest)?;
                    if !excluded.is_empty() {
                        tracing::info!(
                            "source {}: left out {} path(s) by ignore rules: {}",
                            i + 1,
                            excluded.len(),
                            excluded
                                .iter()
                                .take(20)
                                .map(|p| p.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                }
            }
        }
        // Nothing may have been written outside the source directory.
        let outside = paths_outside(&upper, Path::new(&rel_src));
        if !outside.is_empty() {
            return Err(Self::invalid(
                recipe,
                format!(
                    "collecting sources wrote outside {}: {}",
                    source_dir(recipe),
                    outside
                        .iter()
                        .take(10)
                        .map(|p| format!("/spfs/{p}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some("source scripts must write only into their working directory"),
            ));
        }
        if fs::read_dir(&src_root)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
        {
            return Err(Self::invalid(
                recipe,
                "no sources were collected",
                Some("check the 'sources' of the spec; the default is the spec file's directory"),
            ));
        }
        let spec = {
            let mut s = recipe.clone();
            s.pkg.build = Some(Build::Source);
            s
        };
        // Until the build is published, `spfs clean` waits (docs/gc.md).
        let _guard = self.repo.spfs().write_guard()?;
        let manifest = commit_tree(
            self.repo.spfs(),
            &upper,
            None,
            &CommitOptions {
                take_files: true,
                ..Default::default()
            },
            &Progress::hidden(),
        )?;
        let layer = store_layer(
            self.repo.spfs(),
            manifest,
            &[
                ("spk:build".into(), ident.to_string()),
                ("spk:component".into(), "src".into()),
            ],
        )?;
        self.repo.spfs().sync()?;
        let components: ComponentLayers = [(Component::Source, layer)].into_iter().collect();
        self.repo.publish_build(&spec, &components)?;
        Ok(Built {
            ident,
            components,
            log,
        })
    }

    fn script_failed(
        &self,
        ident: &str,
        what: &str,
        code: i32,
        tail: Vec<String>,
        log: &Path,
        reenter: Option<String>,
    ) -> BuildError {
        if spfs::signals::check().is_err() {
            return BuildError::Interrupted;
        }
        BuildError::ScriptFailed {
            ident: ident.to_string(),
            what: what.to_string(),
            code,
            log: Some(log.to_path_buf()),
            tail,
            reenter,
        }
    }

    // ---------------------------------------------------------------- make-binary

    /// The resolved options of each variant to build, with its index.
    pub fn variants(&self, recipe: &Spec) -> Result<Vec<(usize, OptionMap)>> {
        let mut given = if self.opts.no_host {
            OptionMap::new()
        } else {
            crate::option_map::host_options()
        };
        given.extend(&self.opts.options);
        let resolve = |o: &OptionMap| {
            recipe
                .resolve_options(o)
                .map_err(|p| Self::invalid(recipe, p.message.clone(), p.help.as_deref()))
        };
        if recipe.build.variants.is_empty() {
            return Ok(vec![(0, resolve(&given)?)]);
        }
        let picked: Vec<usize> = match self.opts.variant {
            Some(n) if n >= recipe.build.variants.len() => {
                return Err(Self::invalid(
                    recipe,
                    format!(
                        "there is no variant {n}; the recipe has {}",
                        recipe.build.variants.len()
                    ),
                    Some("variants are numbered from 0"),
                ))
            }
            Some(n) => vec![n],
            None if !self.opts.options.is_empty() => {
                // -o alone builds one variant: the options given on top of the defaults.
                return Ok(vec![(0, resolve(&given)?)]);
            }
            None => (0..recipe.build.variants.len()).collect(),
        };
        picked
            .into_iter()
            .map(|i| {
                let mut o = given.clone();
                o.extend(&recipe.build.variants[i].option_map());
                o.extend(&self.opts.options);
                Ok((i, resolve(&o)?))
            })
            .collect()
    }

    /// The requests of a build environment: each `pkg` option's `build` component
    /// (unless components are named) and each non-empty `var` option.
    fn build_env_requests(&self, recipe: &Spec, options: &OptionMap) -> Result<Vec<Request>> {
        let mut out: Vec<Request> = recipe
            .build_requests(options)
            .map_err(|p| Self::invalid(recipe, p.message, p.help.as_deref()))?
            .into_iter()
            .map(|mut r: PkgRequest| {
                if r.components.is_empty() {
                    r.components.insert(Component::Build);
                }
                Request::Pkg(r)
            })
            .collect();
        for opt in &recipe.build.options {
            if let crate::spec::Opt::Var(v) = opt {
                if let Some(value) = options.get_str(v.var.as_str()).filter(|v| !v.is_empty()) {
                    out.push(Request::Var(VarRequest {
                        var: v.var.clone(),
                        value: Some(value.to_string()),
                        pin: false,
                        description: None,
                    }));
                }
            }
        }
        Ok(out)
    }

    /// The stored `src` layer of a recipe.
    fn source_layer(&self, recipe: &Spec) -> Result<Digest> {
        let ident = recipe.ident().to_build(Build::Source);
        let layers = self.packages.read_components(&ident).map_err(|_| {
            Self::invalid(
                recipe,
                "has no source build",
                Some("collect the sources first with 'spk make-source SPEC' (or use 'spk build')"),
            )
        })?;
        layers.get(&Component::Source).copied().ok_or_else(|| {
            Self::invalid(
                recipe,
                "its source build has no src layer",
                Some("run 'spk make-source' again"),
            )
        })
    }

    /// Builds every selected variant of `recipe` from its stored source build.
    pub fn make_binary(&self, recipe: &Spec) -> Result<Vec<Built>> {
        let problems = recipe.validate();
        if let Some(p) = problems.first() {
            return Err(Self::invalid(recipe, p.message.clone(), p.help.as_deref()));
        }
        capture::check_license(recipe)?;
        let src_layer = self.source_layer(recipe)?;
        let mut out = Vec::new();
        for (index, options) in self.variants(recipe)? {
            out.push(self.build_variant(recipe, index, &options, src_layer)?);
        }
        Ok(out)
    }

    fn build_variant(
        &self,
        recipe: &Spec,
        index: usize,
        options: &OptionMap,
        src_layer: Digest,
    ) -> Result<Built> {
        let started = std::time::Instant::now();
        let requests = self.build_env_requests(recipe, options)?;
        let solution = self.solve(recipe, "build", requests, options)?;
        let recursive = solution.get(recipe.name().as_str()).is_some();
        if recursive
            && recipe
                .build
                .validation
                .is_enabled(ValidationRuleName::RecursiveBuild)
        {
            return Err(BuildError::Validation {
                ident: recipe.ident().to_string(),
                rule: "RecursiveBuild".into(),
                message: format!("{} is in its own build environment", recipe.name()),
                paths: Vec::new(),
            });
        }
        let env_specs: Vec<Arc<Spec>> = solution.packages.iter().map(|p| p.spec.clone()).collect();
        let spec = recipe
            .to_build_spec(options, &env_specs)
            .map_err(|p| Self::invalid(recipe, p.message, p.help.as_deref()))?;
        let ident = spec.build_ident().expect("build specs have a build");
        let mut stack = vec![src_layer];
        stack.extend(self.layers(&solution)?);
        self.fetch_layers(&stack)?;
        let scratch = self.scratch()?;
        let upper = scratch.path().join("upper");
        let meta_rel = metadata_dir(&ident);
        let meta = upper.join(&meta_rel);
        fs::create_dir_all(&meta).map_err(BuildError::io("create", &meta))?;
        let script = recipe.build.script.text() + "\n";
        let write = |name: &str, text: &str| -> Result<()> {
            let p = meta.join(name);
            fs::write(&p, text).map_err(BuildError::io("write", &p))
        };
        write("spec.yaml", &spec.to_yaml())?;
        let opts_json: BTreeMap<&str, &str> =
            options.iter().map(|(k, v)| (k.as_str(), v)).collect();
        write(
            "options.json",
            &serde_json::to_string_pretty(&opts_json).unwrap_or_default(),
        )?;
        write("build.sh", &script)?;
        for c in spec.component_names() {
            write(&format!("{c}.cmpt"), "")?;
        }
        let deps: Vec<&Spec> = env_specs.iter().map(|s| s.as_ref()).collect();
        let vars = environment::build_vars(&spec, options, &deps);
        let program = if self.opts.interactive {
            Program::Command(vec!["bash".into(), "--norc".into(), "-i".into()])
        } else {
            Program::Command(vec![
                "bash".into(),
                "-ex".into(),
                format!("/spfs/{meta_rel}/build.sh").into(),
            ])
        };
        let mut run = RunOptions::new(stack.clone(), program);
        run.edit = Some(true);
        run.upper_dir = Some(scratch.path().to_path_buf());
        run.cwd = Some(match &self.opts.here {
            Some(dir) => dir.clone(),
            None => PathBuf::from(source_dir(recipe)),
        });
        let mut cmd = self.runtime(run);
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        let log = self.log_path(&ident);
        let reenter = format!(
            "spk make-binary {}/{} --variant {index} -i",
            recipe.name(),
            recipe.version()
        );
        let prepared = started.elapsed();
        let (code, tail) = if self.opts.interactive {
            (cmd.status()?, Vec::new())
        } else {
            self.run_logged(cmd, &log)?
        };
        if code != 0 {
            if self.opts.keep_runtime {
                let kept = scratch.keep();
                tracing::warn!("kept the failed build's files in {}", kept.display());
            }
            return Err(self.script_failed(
                &ident.to_string(),
                "the build script",
                code,
                tail,
                &log,
                Some(reenter),
            ));
        }
        spfs::signals::check().map_err(|_| BuildError::Interrupted)?;
        let script_done = started.elapsed();
        // Activation scripts and the log join the metadata.
        let mut metadata = vec![meta_rel.clone()];
        let startup = upper.join("etc/spfs/startup.d");
        for (name, text) in activation::scripts(&spec) {
            fs::create_dir_all(&startup).map_err(BuildError::io("create", &startup))?;
            let p = startup.join(&name);
            fs::write(&p, text).map_err(BuildError::io("write", &p))?;
            metadata.push(format!("etc/spfs/startup.d/{name}"));
        }
        if log.exists() {
            let _ = fs::copy(&log, meta.join("build.log"));
        }
        // The sources are not part of the build.
        let src_upper = upper.join(source_dir(recipe).trim_start_matches("/spfs/"));
        if src_upper.exists() {
            fs::remove_dir_all(&src_upper).map_err(BuildError::io("remove", &src_upper))?;
        }
        let spfs = self.repo.spfs();
        // Until the build is published, `spfs clean` waits (docs/gc.md).
        let _guard = spfs.write_guard()?;
        let lower = spfs.merge_manifests(&spfs.manifests_of(&stack)?)?;
        let changes = commit_tree(
            spfs,
            &upper,
            Some(&lower),
            &CommitOptions {
                overlay_upper: true,
                take_files: true,
                lower_modes_stripped: true,
                ..Default::default()
            },
            &Progress::hidden(),
        )?;
        let mut changes = capture::prune_unchanged(&changes.root, Some(&lower.root));
        // The source directory's parents may remain as empty traversed directories.
        drop_empty_dirs(&mut changes);
        let own_allowed = !recipe
            .build
            .validation
            .is_enabled(ValidationRuleName::RecursiveBuild);
        let lower_without_src = {
            let mut m = lower.clone();
            remove_path(&mut m, &source_dir(recipe)["/spfs/".len()..]);
            m
        };
        capture::check_existing(&spec, &changes, &lower_without_src.root, own_allowed)?;
        let split = capture::split(&spec, &changes, &metadata)?;
        let mut components = ComponentLayers::new();
        for (name, manifest) in split.components {
            let layer = store_layer(
                spfs,
                manifest,
                &[
                    ("spk:build".into(), ident.to_string()),
                    ("spk:component".into(), name.to_string()),
                ],
            )?;
            components.insert(name, layer);
        }
        spfs.sync()?;
        let captured = started.elapsed();
        spfs::signals::check().map_err(|_| BuildError::Interrupted)?;
        self.repo.publish_build(&spec, &components)?;
        tracing::info!(
            "{ident}: prepare {:.3}s, script {:.3}s, capture {:.3}s, publish {:.3}s",
            prepared.as_secs_f64(),
            (script_done - prepared).as_secs_f64(),
            (captured - script_done).as_secs_f64(),
            (started.elapsed() - captured).as_secs_f64()
        );
        Ok(Built {
            ident,
            components,
            log,
        })
    }

    // ---------------------------------------------------------------- test

    /// Runs the recipe's tests of the given stages for each selected variant.
    pub fn test(
        &self,
        recipe: &Spec,
        stages: &[crate::spec::TestStage],
    ) -> Result<Vec<TestOutcome>> {
        testing::run(self, recipe, stages)
    }
}

/// Paths in `upper` that lie outside `inside` and are not its parent directories.
fn paths_outside(upper: &Path, inside: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(dir: &Path, rel: &Path, inside: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let r = rel.join(e.file_name());
            if r.starts_with(inside) {
                continue;
            }
            if inside.starts_with(&r) && e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), &r, inside, out);
            } else {
                out.push(r.display().to_string());
            }
        }
    }
    walk(upper, Path::new(""), inside, &mut out);
    out
}

fn drop_empty_dirs(tree: &mut spfs::object::Tree) {
    tree.retain(|_, e| match &mut e.kind {
        EntryKind::Dir(sub) => {
            let had = !sub.is_empty();
            drop_empty_dirs(sub);
            !(had && sub.is_empty())
        }
        _ => true,
    });
}

fn remove_path(m: &mut Manifest, path: &str) {
    let parts: Vec<&[u8]> = path.split('/').map(str::as_bytes).collect();
    fn rec(tree: &mut spfs::object::Tree, parts: &[&[u8]]) {
        match parts {
            [] => {}
            [last] => {
                tree.remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(EntryKind::Dir(sub)) = tree.get_mut(*first).map(|e| &mut e.kind) {
                    rec(sub, rest);
                }
            }
        }
    }
    rec(&mut m.root, &parts);
}
