//! Packages stored as tags in an spfs repository (layout in docs/spk-storage.md).

use std::path::Path;
use std::sync::Arc;

use super::index::{parse_spec_blob, IndexState, IndexStore};
use super::{
    check_build_components, embedded_specs, ComponentLayers, PackageRepository, PackageVersions,
    Result, StorageError,
};
use crate::ident::{Build, BuildIdent, VersionIdent};
use crate::name::PkgName;
use crate::spec::Spec;
use crate::version::Version;
use spfs::storage::LocalRepository;

use super::remote::{
    component_tag, component_tags, layers_of, ComponentTag, EMBED_PREFIX, PKG_PREFIX, SPEC_PREFIX,
};

/// A package repository inside an spfs repository.
pub struct SpfsRepository {
    repo: LocalRepository,
    root: std::path::PathBuf,
    index: IndexStore,
}

/// What `spk index --check` found, package by package.
#[derive(Debug, Default)]
pub struct IndexReport {
    /// Each package and the state of its index.
    pub packages: Vec<(PkgName, IndexState)>,
    /// Index files of packages that no longer exist.
    pub orphans: Vec<std::path::PathBuf>,
}

impl SpfsRepository {
    /// Opens the existing spfs repository at `root` (for commands that only read).
    pub fn open(root: &Path) -> Result<Self> {
        Ok(Self {
            repo: LocalRepository::open(root)?,
            root: root.to_path_buf(),
            index: IndexStore::new(root),
        })
    }

    /// Opens (creating if needed) the spfs repository at `root` (for commands that write).
    pub fn open_or_create(root: &Path) -> Result<Self> {
        Ok(Self {
            repo: LocalRepository::open_or_create(root)?,
            root: root.to_path_buf(),
            index: IndexStore::new(root),
        })
    }

    /// The underlying spfs repository.
    pub fn spfs(&self) -> &LocalRepository {
        &self.repo
    }

    fn read_spec_tag(&self, tag: &str, what: &str) -> Result<Option<Arc<Spec>>> {
        let Some(digest) = self.repo.resolve_tag(tag)? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(parse_spec_blob(
            &self.repo, &digest, tag, what,
        )?)))
    }

    /// Reads the spec tag of `ident`'s version (with `/build` appended when given): the
    /// version as written first (one tag file), then as stored if it is written
    /// differently (`1.0` finds `1.0.0`).
    fn read_version_spec(
        &self,
        ident: &VersionIdent,
        build: Option<&Build>,
        what: &str,
    ) -> Result<Option<Arc<Spec>>> {
        let tag = |v: &str| match build {
            Some(b) => format!("{SPEC_PREFIX}/{}/{v}/{b}", ident.name),
            None => format!("{SPEC_PREFIX}/{}/{v}", ident.name),
        };
        let written = ident.version.to_string();
        if let Some(spec) = self.read_spec_tag(&tag(&written), what)? {
            return Ok(Some(spec));
        }
        match self.stored_version(&ident.name, &ident.version)? {
            Some(v) if v.to_string() != written => self.read_spec_tag(&tag(&v.to_string()), what),
            _ => Ok(None),
        }
    }

    /// Every component tag of a build stored under version segment `v`: those beside
    /// the build's spec tag first, then any of the first layout.
    fn component_tags(&self, ident: &BuildIdent, v: &str) -> Result<Vec<ComponentTag>> {
        let (name, build) = (&ident.name, &ident.build);
        let mut tags = component_tags(&self.repo, name, v, build, false)?;
        tags.extend(component_tags(&self.repo, name, v, build, true)?);
        Ok(tags)
    }

    /// Rebuilds the package index of every package (`spk index --rebuild`) and removes
    /// index files of packages that are gone. Returns how many packages were indexed.
    pub fn rebuild_index(&self) -> Result<usize> {
        self.index.forget();
        let names = self.list_packages()?;
        let count = std::sync::atomic::AtomicUsize::new(0);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let first_error = std::sync::Mutex::new(None);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    match self.index.rebuild(&self.repo, name) {
                        Ok(true) => {
                            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().ok().flatten() {
            return Err(e);
        }
        for orphan in self.index.orphans(&names) {
            let _ = std::fs::remove_file(orphan);
        }
        Ok(count.into_inner())
    }

    /// Compares every package's index with its tags (`spk index --check`).
    pub fn check_index(&self) -> Result<IndexReport> {
        let names = self.list_packages()?;
        let mut report = IndexReport::default();
        for name in &names {
            report
                .packages
                .push((name.clone(), self.index.check(&self.repo, name)?));
        }
        report.orphans = self.index.orphans(&names);
        Ok(report)
    }

    /// Drops what this process has read of the index (the next read validates the files
    /// again); for benchmarks and tests.
    pub fn forget_index_cache(&self) {
        self.index.forget();
    }

    /// The version as written in existing tags, so `1.0` finds `1.0.0`.
    fn stored_version(&self, name: &PkgName, version: &Version) -> Result<Option<Version>> {
        Ok(self.list_versions(name)?.into_iter().find(|v| v == version))
    }

    fn version_segment(&self, ident: &VersionIdent) -> Result<String> {
        Ok(self
            .stored_version(&ident.name, &ident.version)?
            .unwrap_or_else(|| ident.version.clone())
            .to_string())
    }
}

/// What one publish batch has learned of the stored layout: each version's tag segment
/// (looked up once per version, and shared by every spec of that version in the batch,
/// even before its tags exist) and which versions may have builds at all.
#[derive(Default)]
struct BatchNames {
    segments: std::collections::HashMap<PkgName, Vec<(Version, String)>>,
    /// Per package, the versions with a directory of build tags.
    version_dirs: std::collections::HashMap<PkgName, std::collections::HashSet<String>>,
    with_legacy: std::collections::HashMap<(PkgName, String), bool>,
}

impl BatchNames {
    fn segment(&mut self, repo: &SpfsRepository, ident: &VersionIdent) -> Result<String> {
        if !self.segments.contains_key(&ident.name) {
            let (tags, dirs) = repo
                .repo
                .tag_dir_names(&format!("{SPEC_PREFIX}/{}", ident.name))?
                .unwrap_or_default();
            let known = super::versions_in_level(&tags, &dirs)
                .into_iter()
                .map(|v| {
                    let s = v.to_string();
                    (v, s)
                })
                .collect();
            self.segments.insert(ident.name.clone(), known);
            self.version_dirs
                .insert(ident.name.clone(), dirs.into_iter().collect());
        }
        let known = self.segments.entry(ident.name.clone()).or_default();
        if let Some((_, s)) = known.iter().find(|(v, _)| *v == ident.version) {
            return Ok(s.clone());
        }
        let s = ident.version.to_string();
        known.push((ident.version.clone(), s.clone()));
        Ok(s)
    }

    /// False when no build of the version has tags (neither its directory under
    /// `spk/spec` nor one of the first layout under `spk/pkg` exists), so no stale
    /// component can need removing. Call after [`Self::segment`] for the version.
    fn may_have_builds(&mut self, repo: &SpfsRepository, name: &PkgName, v: &str) -> Result<bool> {
        if self.version_dirs.get(name).is_some_and(|d| d.contains(v)) {
            return Ok(true);
        }
        if let Some(b) = self.with_legacy.get(&(name.clone(), v.to_string())) {
            return Ok(*b);
        }
        let b = repo
            .repo
            .tag_dir_names(&format!("{PKG_PREFIX}/{name}/{v}"))?
            .is_some();
        self.with_legacy.insert((name.clone(), v.to_string()), b);
        Ok(b)
    }
}

impl PackageRepository for SpfsRepository {
    fn describe(&self) -> String {
        format!("spfs repository {}", self.root.display())
    }

    fn list_packages(&self) -> Result<Vec<PkgName>> {
        let Some((_, dirs)) = self.repo.tag_dir_names(SPEC_PREFIX)? else {
            return Ok(Vec::new());
        };
        Ok(dirs.iter().filter_map(|n| n.parse().ok()).collect())
    }

    fn list_versions(&self, name: &PkgName) -> Result<Vec<Version>> {
        let Some((tags, dirs)) = self.repo.tag_dir_names(&format!("{SPEC_PREFIX}/{name}"))? else {
            return Ok(Vec::new());
        };
        Ok(super::versions_in_level(&tags, &dirs))
    }

    fn list_builds(&self, ident: &VersionIdent) -> Result<Vec<BuildIdent>> {
        let v = self.version_segment(ident)?;
        let Some((tags, _)) = self
            .repo
            .tag_dir_names(&format!("{SPEC_PREFIX}/{}/{v}", ident.name))?
        else {
            return Ok(Vec::new());
        };
        Ok(tags
            .iter()
            .filter_map(|b| b.parse::<Build>().ok().map(|b| ident.to_build(b)))
            .collect())
    }

    fn load_package(&self, name: &PkgName) -> Result<Arc<PackageVersions>> {
        self.index.load(&self.repo, name)
    }

    fn read_recipe(&self, ident: &VersionIdent) -> Result<Arc<Spec>> {
        let what = format!("recipe {ident}");
        self.read_version_spec(ident, None, &what)?
            .ok_or(StorageError::NotFound { what })
    }

    fn read_build(&self, ident: &BuildIdent) -> Result<Arc<Spec>> {
        let what = format!("build {ident}");
        self.read_version_spec(&ident.version_ident(), Some(&ident.build), &what)?
            .ok_or(StorageError::NotFound { what })
    }

    fn read_components(&self, ident: &BuildIdent) -> Result<ComponentLayers> {
        let v = self.version_segment(&ident.version_ident())?;
        // Beside the spec first: a component in both layouts is read from there.
        Ok(layers_of(self.component_tags(ident, &v)?))
    }

    fn publish_recipe(&self, spec: &Spec, force: bool) -> Result<()> {
        self.publish_batch(&[spec], &[], force)
    }

    fn publish_build(&self, spec: &Spec, components: &ComponentLayers) -> Result<()> {
        self.publish_batch(&[], &[(spec, components.clone())], false)
    }

    fn publish_batch(
        &self,
        recipes: &[&Spec],
        builds: &[(&Spec, ComponentLayers)],
        force: bool,
    ) -> Result<()> {
        // Everything is checked and every spec blob written before the first tag; the
        // tags then go in one batch, in order (recipes, then for each build its layers,
        // its spec and its embedded index), after one flush of the repository. The
        // collection lock is held throughout, so the spec blobs cannot be collected
        // before the tags naming them land.
        let _guard = self.repo.write_guard()?;
        let mut batch = BatchNames::default();
        let mut tags: Vec<(String, spfs::Digest)> = Vec::new();
        for spec in recipes {
            if spec.pkg.build.is_some() {
                return Err(StorageError::Invalid(format!(
                    "'{}' is a build spec; publish it as a build",
                    spec.pkg
                )));
            }
            let v = batch.segment(self, spec.ident())?;
            let tag = format!("{SPEC_PREFIX}/{}/{v}", spec.name());
            if !force && self.repo.resolve_tag(&tag)?.is_some() {
                return Err(StorageError::AlreadyExists(format!(
                    "recipe {}",
                    spec.ident()
                )));
            }
            tags.push((tag, self.repo.write_blob(spec.to_yaml().as_bytes())?));
        }
        // Components a build no longer has go before its new tags land (its spec must
        // never name fewer components than it has tags); first-layout tags of components
        // it keeps go after (a build never lacks a layer's tag).
        let (mut dropped, mut moved) = (Vec::new(), Vec::new());
        for (spec, components) in builds {
            let ident = check_build_components(spec, components)?;
            let v = batch.segment(self, &ident.version_ident())?;
            if batch.may_have_builds(self, &ident.name, &v)? {
                for t in self.component_tags(&ident, &v)? {
                    if !components.contains_key(&t.component) {
                        dropped.push(t.tag);
                    } else if t.legacy {
                        moved.push(t.tag);
                    }
                }
            }
            tags.extend(
                components
                    .iter()
                    .map(|(c, d)| (component_tag(&ident.name, &v, &ident.build, c), *d)),
            );
            let spec_digest = self.repo.write_blob(spec.to_yaml().as_bytes())?;
            tags.push((
                format!("{SPEC_PREFIX}/{}/{v}/{}", ident.name, ident.build),
                spec_digest,
            ));
            for e in embedded_specs(spec) {
                tags.push((
                    format!(
                        "{EMBED_PREFIX}/{}/{}/{v}/{}",
                        e.name(),
                        ident.name,
                        ident.build
                    ),
                    spec_digest,
                ));
            }
        }
        for tag in dropped {
            self.repo.remove_tag(&tag)?;
        }
        self.repo.push_tags(&tags)?;
        for tag in moved {
            self.repo.remove_tag(&tag)?;
        }
        Ok(())
    }

    fn remove_recipe(&self, ident: &VersionIdent) -> Result<()> {
        let v = self.version_segment(ident)?;
        let tag = format!("{SPEC_PREFIX}/{}/{v}", ident.name);
        if self.repo.resolve_tag(&tag)?.is_none() {
            return Err(StorageError::NotFound {
                what: format!("recipe {ident}"),
            });
        }
        self.repo.remove_tag(&tag)?;
        Ok(())
    }

    fn remove_build(&self, ident: &BuildIdent) -> Result<()> {
        let v = self.version_segment(&ident.version_ident())?;
        let spec_tag = format!("{SPEC_PREFIX}/{}/{v}/{}", ident.name, ident.build);
        let Some(spec) = self.read_spec_tag(&spec_tag, &format!("build {ident}"))? else {
            return Err(StorageError::NotFound {
                what: format!("build {ident}"),
            });
        };
        // Spec first: once it is gone the build is no longer offered.
        self.repo.remove_tag(&spec_tag)?;
        for e in embedded_specs(&spec) {
            let tag = format!(
                "{EMBED_PREFIX}/{}/{}/{v}/{}",
                e.name(),
                ident.name,
                ident.build
            );
            if self.repo.resolve_tag(&tag)?.is_some() {
                self.repo.remove_tag(&tag)?;
            }
        }
        for t in self.component_tags(ident, &v)? {
            self.repo.remove_tag(&t.tag)?;
        }
        Ok(())
    }

    fn embedded_in(&self, name: &PkgName) -> Result<Vec<BuildIdent>> {
        super::remote::embedded_in(&self.repo, name)
    }
}
