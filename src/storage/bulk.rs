//! Publishing many packages at once: a directory of spec files, or recipes built in code,
//! published with stub builds (spec only, empty layers) for tests, demos and benchmarks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ComponentLayers, PackageRepository, StorageError};
use crate::ident::BuildIdent;
use crate::option_map::OptionMap;
use crate::request::Request;
use crate::spec::{load_spec_file, LoadOptions, Spec, SpecError};
use crate::version::CompatRule;

/// Why a fixture could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// A spec file failed to load.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The repository refused it.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A build could not be derived from its recipe.
    #[error("{ident}: {message}")]
    Build {
        /// The recipe.
        ident: String,
        /// Why.
        message: String,
    },
    /// Two of the specs being published name the same package.
    #[error("{ident} is defined twice: in {first} and in {second}; nothing was published")]
    Duplicate {
        /// The package.
        ident: String,
        /// Where it was first defined.
        first: String,
        /// Where it was defined again.
        second: String,
    },
    /// The directory could not be listed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl spfs::Help for BulkError {
    fn help(&self) -> Vec<String> {
        match self {
            BulkError::Spec(e) => e.help(),
            BulkError::Storage(e) => e.help(),
            BulkError::Duplicate { .. } => {
                vec!["keep one spec per package version, or publish the directories apart".into()]
            }
            BulkError::Build { .. } | BulkError::Io { .. } => Vec::new(),
        }
    }
}

/// What a publish of many specs did.
#[derive(Debug, Default, Clone)]
pub struct Published {
    /// Recipes published, as `name/version`.
    pub recipes: Vec<String>,
    /// Stub builds published.
    pub builds: Vec<BuildIdent>,
}

/// Spec files (`*.yaml`, `*.yml`) under `path` (a file or a directory, recursively), sorted.
pub fn spec_files(path: &Path) -> Result<Vec<PathBuf>, BulkError> {
    let mut out = Vec::new();
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(out);
    }
    let entries = std::fs::read_dir(path).map_err(|source| BulkError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            out.extend(spec_files(&p)?);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Publishes every spec under `paths`; with `stub_builds`, also one stub build per variant.
/// All or nothing: every file is loaded and checked (including duplicates and, without
/// `force`, recipes that already exist) before anything is written.
pub fn publish_paths(
    repo: &dyn PackageRepository,
    paths: &[PathBuf],
    opts: &LoadOptions,
    stub_builds: bool,
    force: bool,
) -> Result<Published, BulkError> {
    let mut specs = Vec::new();
    let mut origins = Vec::new();
    for p in paths {
        for f in spec_files(p)? {
            specs.push(load_spec_file(&f, opts)?.spec);
            origins.push(f.display().to_string());
        }
    }
    publish_all(
        repo,
        &specs,
        &origins,
        &opts.template.opt,
        stub_builds,
        force,
    )
}

/// Publishes recipes and, with `stub_builds`, a stub build of each variant; all or
/// nothing, like [`publish_paths`].
pub fn publish_specs(
    repo: &dyn PackageRepository,
    specs: &[Spec],
    options: &OptionMap,
    stub_builds: bool,
    force: bool,
) -> Result<Published, BulkError> {
    let origins: Vec<String> = (1..=specs.len()).map(|i| format!("spec #{i}")).collect();
    publish_all(repo, specs, &origins, options, stub_builds, force)
}

/// What a publish replaced or added, to undo it if a later write fails.
enum Undo {
    Recipe(crate::ident::VersionIdent, Option<Arc<Spec>>),
    Build(BuildIdent, Option<(Arc<Spec>, ComponentLayers)>),
}

fn publish_all(
    repo: &dyn PackageRepository,
    specs: &[Spec],
    origins: &[String],
    options: &OptionMap,
    stub_builds: bool,
    force: bool,
) -> Result<Published, BulkError> {
    // 1. Check everything before writing anything.
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (spec, origin) in specs.iter().zip(origins) {
        let key = spec.pkg.to_string();
        if let Some(first) = seen.insert(key.clone(), origin) {
            return Err(BulkError::Duplicate {
                ident: key,
                first: first.to_string(),
                second: origin.clone(),
            });
        }
    }
    let recipes: Vec<&Spec> = specs.iter().filter(|s| s.pkg.build.is_none()).collect();
    if !force {
        for r in &recipes {
            match repo.read_recipe(r.ident()) {
                Ok(_) => return Err(StorageError::AlreadyExists(r.ident().to_string()).into()),
                Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut builds: Vec<Spec> = specs
        .iter()
        .filter(|s| s.pkg.build.is_some())
        .cloned()
        .collect();
    if stub_builds {
        let lookup = Recipes::new(repo, &recipes);
        for r in &recipes {
            builds.extend(plan_stub_builds(&lookup, r, options)?);
        }
    }
    // 2. Write in one batch, undoing what was written if a write fails.
    let mut undo: Vec<Undo> = Vec::new();
    let mut out = Published::default();
    let result = (|| -> Result<(), BulkError> {
        for r in &recipes {
            let ident = r.ident();
            let old = match repo.read_recipe(ident) {
                Ok(old) => Some(old),
                Err(StorageError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            undo.push(Undo::Recipe(ident.clone(), old));
            out.recipes.push(ident.to_string());
        }
        let mut batch = Vec::new();
        for b in &builds {
            let Some(ident) = b.build_ident() else {
                continue;
            };
            let old = match repo.read_build(&ident) {
                Ok(spec) => Some((spec, repo.read_components(&ident)?)),
                Err(StorageError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            batch.push((b, stub_layers(b)));
            undo.push(Undo::Build(ident.clone(), old));
            out.builds.push(ident);
        }
        repo.publish_batch(&recipes, &batch, force)?;
        Ok(())
    })();
    if let Err(e) = result {
        for u in undo.into_iter().rev() {
            // Best effort: the original error is what the caller needs to see.
            let _ = match u {
                Undo::Recipe(_, Some(old)) => repo.publish_recipe(&old, true),
                Undo::Recipe(ident, None) => repo.remove_recipe(&ident),
                Undo::Build(_, Some((spec, layers))) => repo.publish_build(&spec, &layers),
                Undo::Build(ident, None) => repo.remove_build(&ident),
            };
        }
        return Err(e);
    }
    Ok(out)
}

/// Recipes in a repository plus those about to be published.
struct Recipes<'a> {
    repo: &'a dyn PackageRepository,
    /// The recipes about to be published, by package name.
    pending: HashMap<&'a crate::name::PkgName, Vec<&'a Spec>>,
    /// What was read from the repository (many recipes share their dependencies).
    versions_read: std::cell::RefCell<HashMap<crate::name::PkgName, Vec<crate::version::Version>>>,
    recipes_read: std::cell::RefCell<HashMap<crate::ident::VersionIdent, Arc<Spec>>>,
}

impl<'a> Recipes<'a> {
    fn new(repo: &'a dyn PackageRepository, pending: &[&'a Spec]) -> Self {
        let mut by_name: HashMap<_, Vec<&Spec>> = HashMap::new();
        for s in pending {
            by_name.entry(s.name()).or_default().push(*s);
        }
        Recipes {
            repo,
            pending: by_name,
            versions_read: Default::default(),
            recipes_read: Default::default(),
        }
    }

    fn versions(
        &self,
        name: &crate::name::PkgName,
    ) -> Result<Vec<crate::version::Version>, StorageError> {
        let stored = self.versions_read.borrow().get(name).cloned();
        let mut versions = match stored {
            Some(v) => v,
            None => {
                let v = self.repo.list_versions(name)?;
                self.versions_read
                    .borrow_mut()
                    .insert(name.clone(), v.clone());
                v
            }
        };
        if let Some(pending) = self.pending.get(name) {
            versions.extend(pending.iter().map(|s| s.ident().version.clone()));
        }
        versions.sort();
        versions.dedup_by(|a, b| a.is_identical(b));
        Ok(versions)
    }

    fn recipe(&self, ident: &crate::ident::VersionIdent) -> Result<Arc<Spec>, StorageError> {
        let pending = self.pending.get(&ident.name);
        match pending.and_then(|p| p.iter().find(|s| s.ident() == ident)) {
            Some(s) => Ok(Arc::new((*s).clone())),
            None => {
                if let Some(r) = self.recipes_read.borrow().get(ident) {
                    return Ok(r.clone());
                }
                let r = self.repo.read_recipe(ident)?;
                self.recipes_read
                    .borrow_mut()
                    .insert(ident.clone(), r.clone());
                Ok(r)
            }
        }
    }
}

/// Empty layers for every component of a spec.
pub fn stub_layers(spec: &Spec) -> ComponentLayers {
    spec.component_names()
        .into_iter()
        .map(|c| (c, spfs::Digest::of(b"")))
        .collect()
}

/// Publishes a stub build of each variant of `recipe`.
pub fn publish_stub_builds(
    repo: &dyn PackageRepository,
    recipe: &Spec,
    options: &OptionMap,
) -> Result<Vec<BuildIdent>, BulkError> {
    let lookup = Recipes::new(repo, &[]);
    let mut out = Vec::new();
    for build in plan_stub_builds(&lookup, recipe, options)? {
        repo.publish_build(&build, &stub_layers(&build))?;
        out.extend(build.build_ident());
    }
    Ok(out)
}

/// The stub build spec of each variant of `recipe`.
fn plan_stub_builds(
    recipes: &Recipes,
    recipe: &Spec,
    options: &OptionMap,
) -> Result<Vec<Spec>, BulkError> {
    let variants = recipe
        .variant_options(options)
        .map_err(|p| BulkError::Build {
            ident: recipe.ident().to_string(),
            message: p.message,
        })?;
    variants
        .iter()
        .map(|opts| stub_build_in(recipes, recipe, opts))
        .collect()
}

/// The spec a build of `recipe` with resolved `options` would have, pinning against the
/// newest matching recipes in `repo` as its build environment.
pub fn stub_build(
    repo: &dyn PackageRepository,
    recipe: &Spec,
    options: &OptionMap,
) -> Result<Spec, BulkError> {
    stub_build_in(&Recipes::new(repo, &[]), recipe, options)
}

fn stub_build_in(repo: &Recipes, recipe: &Spec, options: &OptionMap) -> Result<Spec, BulkError> {
    let err = |message: String| BulkError::Build {
        ident: recipe.ident().to_string(),
        message,
    };
    let mut env: Vec<Arc<Spec>> = Vec::new();
    let requests = recipe.build_requests(options).map_err(|p| err(p.message))?;
    for req in requests {
        let versions = repo.versions(&req.name)?;
        let mut found = None;
        for v in versions.iter().rev() {
            let ident = crate::ident::VersionIdent::new(req.name.clone(), v.clone());
            let spec = match repo.recipe(&ident) {
                Ok(s) => s,
                Err(StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            if req.allows_version(v, &spec.compat, CompatRule::Api) {
                found = Some(spec);
                break;
            }
        }
        let spec = match found {
            Some(s) => s,
            None => match req.range.pinned_version() {
                Some(v) => Arc::new(Spec::new(crate::ident::VersionIdent::new(
                    req.name.clone(),
                    v.clone(),
                ))),
                None => continue,
            },
        };
        env.push(spec);
    }
    // Pins that name packages absent from the build environment cannot be filled in;
    // keep them as plain requests so stub builds still publish.
    let mut recipe = recipe.clone();
    let names: Vec<_> = env.iter().map(|s| s.name().clone()).collect();
    let unpin = |r: &mut Request| match r {
        Request::Pkg(p) if p.needs_pin() && !names.contains(&p.name) => p.pin = None,
        Request::Var(v)
            if v.pin
                && v.var
                    .namespace()
                    .is_some_and(|ns| !names.iter().any(|n| n.as_str() == ns)) =>
        {
            v.pin = false;
            v.value = Some(String::new());
        }
        _ => {}
    };
    recipe.install.requirements.iter_mut().for_each(unpin);
    for c in &mut recipe.install.components {
        c.requirements.iter_mut().for_each(unpin);
    }
    recipe
        .install
        .requirements
        .retain(|r| !matches!(r, Request::Var(v) if v.value.as_deref() == Some("")));
    recipe
        .to_build_spec(options, &env)
        .map_err(|p| err(p.message))
}
