//! Loading many packages at once: a directory of spec files, or recipes built in code,
//! published with stub builds (spec only, empty layers) for tests, demos and benchmarks.

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
pub enum FixtureError {
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
    /// The directory could not be listed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl spfs::Help for FixtureError {
    fn help(&self) -> Vec<String> {
        match self {
            FixtureError::Spec(e) => e.help(),
            FixtureError::Storage(e) => e.help(),
            FixtureError::Build { .. } | FixtureError::Io { .. } => Vec::new(),
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
pub fn spec_files(path: &Path) -> Result<Vec<PathBuf>, FixtureError> {
    let mut out = Vec::new();
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(out);
    }
    let entries = std::fs::read_dir(path).map_err(|source| FixtureError::Io {
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
/// Recipes are all published before any build, so builds can pin against them.
pub fn publish_paths(
    repo: &dyn PackageRepository,
    paths: &[PathBuf],
    opts: &LoadOptions,
    stub_builds: bool,
    force: bool,
) -> Result<Published, FixtureError> {
    let mut specs = Vec::new();
    for p in paths {
        for f in spec_files(p)? {
            specs.push(load_spec_file(&f, opts)?.spec);
        }
    }
    publish_specs(repo, &specs, &opts.template.opt, stub_builds, force)
}

/// Publishes recipes and, with `stub_builds`, a stub build of each variant.
pub fn publish_specs(
    repo: &dyn PackageRepository,
    specs: &[Spec],
    options: &OptionMap,
    stub_builds: bool,
    force: bool,
) -> Result<Published, FixtureError> {
    let mut out = Published::default();
    for spec in specs {
        if spec.pkg.build.is_some() {
            repo.publish_build(spec, &stub_layers(spec))?;
            out.builds.extend(spec.build_ident());
            continue;
        }
        repo.publish_recipe(spec, force)?;
        out.recipes.push(spec.ident().to_string());
    }
    if stub_builds {
        for spec in specs.iter().filter(|s| s.pkg.build.is_none()) {
            out.builds.extend(publish_stub_builds(repo, spec, options)?);
        }
    }
    Ok(out)
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
) -> Result<Vec<BuildIdent>, FixtureError> {
    let mut out = Vec::new();
    let variants = recipe
        .variant_options(options)
        .map_err(|p| FixtureError::Build {
            ident: recipe.ident().to_string(),
            message: p.message,
        })?;
    for opts in variants {
        let build = stub_build(repo, recipe, &opts)?;
        repo.publish_build(&build, &stub_layers(&build))?;
        out.extend(build.build_ident());
    }
    Ok(out)
}

/// The spec a build of `recipe` with resolved `options` would have, pinning against the
/// newest matching recipes in `repo` as its build environment.
pub fn stub_build(
    repo: &dyn PackageRepository,
    recipe: &Spec,
    options: &OptionMap,
) -> Result<Spec, FixtureError> {
    let err = |message: String| FixtureError::Build {
        ident: recipe.ident().to_string(),
        message,
    };
    let mut env: Vec<Arc<Spec>> = Vec::new();
    let requests = recipe.build_requests(options).map_err(|p| err(p.message))?;
    for req in requests {
        let versions = repo.list_versions(&req.name)?;
        let mut found = None;
        for v in versions.iter().rev() {
            let ident = crate::ident::VersionIdent::new(req.name.clone(), v.clone());
            let spec = match repo.read_recipe(&ident) {
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
