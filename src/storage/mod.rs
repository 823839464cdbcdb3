//! Package repositories: where recipes, build specs and component layers are kept.
//!
//! [`PackageRepository`] is the interface; [`MemRepository`] keeps everything in memory
//! (tests, benchmarks) and [`SpfsRepository`] stores packages as tags in an spfs
//! repository (layout in docs/spk-storage.md). [`RemoteRepository`] reads the same
//! layout from any spfs store through the storage traits, and [`RepositoryStack`] shows
//! several repositories as one (the local repository first, then remotes), telling
//! which one each package came from.

pub mod bulk;
pub mod index;
mod memory;
mod remote;
mod spfs_repo;
mod stack;

pub use index::IndexState;
pub use memory::MemRepository;
pub use remote::{package_tags, RemoteRepository};
pub use spfs_repo::SpfsRepository;
pub use stack::RepositoryStack;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ident::{AnyIdent, BuildIdent, VersionIdent};
use crate::name::{Component, PkgName};
use crate::spec::Spec;
use crate::version::Version;

pub use spfs::Digest;

/// The layer of each component of a build.
pub type ComponentLayers = BTreeMap<Component, Digest>;

/// Every version of one package with its recipe and build specs, ascending by version:
/// what a solve or `spk ls NAME` needs, read in one go.
#[derive(Debug, Clone)]
pub struct PackageVersions {
    /// The package.
    pub name: PkgName,
    /// Versions with a recipe or at least one build, ascending.
    pub versions: Vec<VersionSpecs>,
}

/// One version of a package in [`PackageVersions`].
#[derive(Debug, Clone)]
pub struct VersionSpecs {
    /// The version, as stored.
    pub version: Version,
    /// The recipe, if one is published.
    pub recipe: Option<IndexedSpec>,
    /// The builds with their pinned specs, sorted by build.
    pub builds: Vec<(BuildIdent, IndexedSpec)>,
}

/// What a solve needs of every candidate build, without the whole spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecSummary {
    /// `deprecated: true`.
    pub deprecated: bool,
    /// The version compatibility rule.
    pub compat: crate::version::Compat,
    /// The resolved option values ([`Spec::option_values`]).
    pub options: crate::option_map::OptionMap,
    /// The component names ([`Spec::component_names`]).
    pub components: std::collections::BTreeSet<Component>,
}

impl SpecSummary {
    /// The summary of a spec.
    pub fn of(spec: &Spec) -> Self {
        SpecSummary {
            deprecated: spec.deprecated,
            compat: spec.compat.clone(),
            options: spec.option_values(),
            components: spec.component_names(),
        }
    }
}

/// A spec and its summary; the spec itself may be parsed only when first asked for.
#[derive(Debug, Clone)]
pub struct IndexedSpec {
    /// What a solve needs of every candidate.
    pub summary: Arc<SpecSummary>,
    spec: Arc<LazySpec>,
}

#[derive(Debug)]
struct LazySpec {
    parsed: std::sync::OnceLock<Arc<Spec>>,
    source: Option<SpecText>,
}

/// Where an unparsed spec's text is: `text[range]`, JSON (or YAML when `yaml`); `what`
/// names it in messages.
#[derive(Debug)]
struct SpecText {
    text: Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
    yaml: bool,
    what: String,
}

impl IndexedSpec {
    /// A spec already parsed.
    pub fn new(spec: Arc<Spec>) -> Self {
        IndexedSpec {
            summary: Arc::new(SpecSummary::of(&spec)),
            spec: Arc::new(LazySpec {
                parsed: std::sync::OnceLock::from(spec),
                source: None,
            }),
        }
    }

    /// A spec kept as text (JSON, or YAML when `yaml`): the bytes `range` of `text`,
    /// parsed on first use.
    pub(crate) fn lazy(
        summary: Arc<SpecSummary>,
        text: Arc<Vec<u8>>,
        range: std::ops::Range<usize>,
        yaml: bool,
        what: String,
    ) -> Self {
        IndexedSpec {
            summary,
            spec: Arc::new(LazySpec {
                parsed: std::sync::OnceLock::new(),
                source: Some(SpecText {
                    text,
                    range,
                    yaml,
                    what,
                }),
            }),
        }
    }

    /// The spec's text as kept (JSON, or YAML when the flag is set), if it was kept.
    pub(crate) fn text(&self) -> Option<(&str, bool)> {
        self.spec.source.as_ref().and_then(|s| {
            let t = std::str::from_utf8(s.text.get(s.range.clone())?).ok()?;
            Some((t, s.yaml))
        })
    }

    /// The whole spec.
    pub fn spec(&self) -> Result<Arc<Spec>> {
        if let Some(s) = self.spec.parsed.get() {
            return Ok(s.clone());
        }
        let Some(SpecText {
            text,
            range,
            yaml,
            what,
        }) = &self.spec.source
        else {
            return Err(StorageError::Invalid(
                "a spec was neither parsed nor kept".into(),
            ));
        };
        let corrupt = |message: String| StorageError::Corrupt {
            what: format!("{what} in the package index"),
            message: format!("{message}; run 'spk index --rebuild'"),
        };
        let text = text
            .get(range.clone())
            .ok_or_else(|| corrupt("its text is outside the index file".into()))
            .and_then(|t| std::str::from_utf8(t).map_err(|_| corrupt("not UTF-8".into())))?;
        let spec = if *yaml {
            crate::spec::parse_rendered(text, what, &crate::spec::LoadOptions::default())
                .map_err(|e| corrupt(e.to_string()))?
                .spec
        } else {
            serde_json::from_str::<Spec>(text).map_err(|e| corrupt(e.to_string()))?
        };
        Ok(self.spec.parsed.get_or_init(|| Arc::new(spec)).clone())
    }
}

/// A repository operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Nothing is stored under this identifier.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up.
        what: String,
    },
    /// Something is already stored under this identifier.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request does not make sense for this data. A hint may follow the message
    /// after `"; "`: it is shown by [`spfs::Help::help`], not by `Display`.
    #[error("{}", spfs::error::split_hint(.0).0)]
    Invalid(String),
    /// A stored spec could not be read back.
    #[error("stored spec {what} is unreadable: {message}")]
    Corrupt {
        /// Which spec.
        what: String,
        /// The parse error.
        message: String,
    },
    /// The spfs store failed.
    #[error(transparent)]
    Spfs(#[from] spfs::Error),
}

impl spfs::Help for StorageError {
    fn help(&self) -> Vec<String> {
        match self {
            StorageError::NotFound { .. } => vec!["list what exists with 'spk ls'".into()],
            StorageError::AlreadyExists(_) => {
                vec!["remove it first, or publish with --force to replace it".into()]
            }
            StorageError::Invalid(text) => spfs::error::split_hint(text)
                .1
                .map(str::to_string)
                .into_iter()
                .collect(),
            StorageError::Corrupt { what, .. } => {
                vec![format!("publish {what} again to replace the stored spec")]
            }
            StorageError::Spfs(e) => e.help(),
        }
    }
}

/// Result of repository operations.
pub type Result<T> = std::result::Result<T, StorageError>;

/// A store of package recipes, build specs and component layers.
pub trait PackageRepository: Send + Sync {
    /// A short description of where the packages live.
    fn describe(&self) -> String;

    /// Every package name with at least one recipe or build, sorted.
    fn list_packages(&self) -> Result<Vec<PkgName>>;

    /// Every version of a package with a recipe or a build, ascending.
    fn list_versions(&self, name: &PkgName) -> Result<Vec<Version>>;

    /// The builds of one version.
    fn list_builds(&self, ident: &VersionIdent) -> Result<Vec<BuildIdent>>;

    /// Every version of a package with its recipe and build specs. Repositories with an
    /// index answer this without reading each spec.
    fn load_package(&self, name: &PkgName) -> Result<Arc<PackageVersions>> {
        let mut versions = Vec::new();
        for version in self.list_versions(name)? {
            let vi = VersionIdent::new(name.clone(), version.clone());
            let recipe = match self.read_recipe(&vi) {
                Ok(r) => Some(IndexedSpec::new(r)),
                Err(StorageError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            let mut builds = Vec::new();
            for b in self.list_builds(&vi)? {
                match self.read_build(&b) {
                    Ok(spec) => builds.push((b, IndexedSpec::new(spec))),
                    Err(StorageError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            builds.sort_by(|a, b| a.0.build.cmp(&b.0.build));
            versions.push(VersionSpecs {
                version,
                recipe,
                builds,
            });
        }
        Ok(Arc::new(PackageVersions {
            name: name.clone(),
            versions,
        }))
    }

    /// The recipe of a version.
    fn read_recipe(&self, ident: &VersionIdent) -> Result<Arc<Spec>>;

    /// The pinned spec of a build.
    fn read_build(&self, ident: &BuildIdent) -> Result<Arc<Spec>>;

    /// The layer of each component of a build.
    fn read_components(&self, ident: &BuildIdent) -> Result<ComponentLayers>;

    /// Stores a recipe; fails if one exists for that version unless `force`.
    fn publish_recipe(&self, spec: &Spec, force: bool) -> Result<()>;

    /// Stores a build's spec and component layers, replacing an existing build.
    fn publish_build(&self, spec: &Spec, components: &ComponentLayers) -> Result<()>;

    /// Stores several recipes and builds, in this order, as one batch: repositories
    /// that can make them durable together (one flush rather than one per tag) do.
    /// On failure some may have been written; the caller undoes them.
    fn publish_batch(
        &self,
        recipes: &[&Spec],
        builds: &[(&Spec, ComponentLayers)],
        force: bool,
    ) -> Result<()> {
        for r in recipes {
            self.publish_recipe(r, force)?;
        }
        for (b, layers) in builds {
            self.publish_build(b, layers)?;
        }
        Ok(())
    }

    /// Removes a recipe (builds are kept).
    fn remove_recipe(&self, ident: &VersionIdent) -> Result<()>;

    /// Removes a build.
    fn remove_build(&self, ident: &BuildIdent) -> Result<()>;

    /// Builds whose install section embeds package `name`.
    fn embedded_in(&self, name: &PkgName) -> Result<Vec<BuildIdent>>;

    /// Marks a version (recipe and all builds) or one build as deprecated, or clears it.
    fn set_deprecated(&self, ident: &AnyIdent, deprecated: bool) -> Result<Vec<String>> {
        let mut changed = Vec::new();
        let version = ident.version_ident().ok_or_else(|| {
            StorageError::Invalid(format!(
                "'{ident}' names no version; give name/version or name/version/build"
            ))
        })?;
        let builds = match ident.build_ident() {
            Some(b) => {
                self.read_build(&b)?;
                vec![b]
            }
            None => {
                match self.read_recipe(&version) {
                    Ok(recipe) => {
                        let mut recipe = (*recipe).clone();
                        recipe.deprecated = deprecated;
                        self.publish_recipe(&recipe, true)?;
                        changed.push(version.to_string());
                    }
                    Err(StorageError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
                self.list_builds(&version)?
            }
        };
        for b in builds {
            let mut spec = (*self.read_build(&b)?).clone();
            spec.deprecated = deprecated;
            let layers = self.read_components(&b)?;
            self.publish_build(&spec, &layers)?;
            changed.push(b.to_string());
        }
        if changed.is_empty() {
            return Err(StorageError::NotFound {
                what: format!("package {ident}"),
            });
        }
        Ok(changed)
    }

    /// Removes a version (recipe and builds) or one build; returns what was removed.
    fn remove(&self, ident: &AnyIdent) -> Result<Vec<String>> {
        let version = ident.version_ident().ok_or_else(|| {
            StorageError::Invalid(format!(
                "'{ident}' names no version; give name/version or name/version/build"
            ))
        })?;
        if let Some(b) = ident.build_ident() {
            self.remove_build(&b)?;
            return Ok(vec![b.to_string()]);
        }
        let mut removed = Vec::new();
        for b in self.list_builds(&version)? {
            self.remove_build(&b)?;
            removed.push(b.to_string());
        }
        match self.remove_recipe(&version) {
            Ok(()) => removed.push(version.to_string()),
            Err(StorageError::NotFound { .. }) if !removed.is_empty() => {}
            Err(e) => return Err(e),
        }
        Ok(removed)
    }

    /// Package versions whose name contains `term`.
    fn search(&self, term: &str) -> Result<Vec<VersionIdent>> {
        let mut out = Vec::new();
        for name in self.list_packages()? {
            if name.as_str().contains(term) {
                for v in self.list_versions(&name)? {
                    out.push(VersionIdent::new(name.clone(), v));
                }
            }
        }
        Ok(out)
    }
}

fn check_build_components(spec: &Spec, components: &ComponentLayers) -> Result<BuildIdent> {
    let ident = spec.build_ident().ok_or_else(|| {
        StorageError::Invalid(format!(
            "'{}' is a recipe, not a build; a build spec has pkg: name/version/build",
            spec.pkg
        ))
    })?;
    let known = spec.component_names();
    for c in components.keys() {
        if !known.contains(c) && *c != Component::Source {
            return Err(StorageError::Invalid(format!(
                "{ident} has no component '{c}' in its spec; known: {}",
                known
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(ident)
}

/// Every package embedded by a build spec (install-level and per component).
pub fn embedded_specs(spec: &Spec) -> Vec<&Spec> {
    spec.install
        .embedded
        .iter()
        .chain(
            spec.install
                .components
                .iter()
                .flat_map(|c| c.embedded.iter()),
        )
        .collect()
}

/// The versions one level of a package's spec tags names: a version is a tag (the
/// recipe) or a directory (its builds), or both; sorted, each once.
pub(crate) fn versions_in_level(tags: &[String], dirs: &[String]) -> Vec<Version> {
    let mut versions: Vec<Version> = tags
        .iter()
        .chain(dirs.iter())
        .filter_map(|v| v.parse().ok())
        .collect();
    versions.sort();
    versions.dedup_by(|a, b| a.is_identical(b));
    versions
}

#[cfg(test)]
mod tests;
