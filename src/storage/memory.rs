//! A package repository held in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::{
    check_build_components, embedded_specs, ComponentLayers, IndexedSpec, PackageRepository,
    PackageVersions, Result, StorageError, VersionSpecs,
};
use crate::ident::{Build, BuildIdent, VersionIdent};
use crate::name::PkgName;
use crate::spec::Spec;
use crate::version::Version;

#[derive(Default)]
struct VersionEntry {
    recipe: Option<Arc<Spec>>,
    builds: BTreeMap<Build, (Arc<Spec>, ComponentLayers)>,
}

/// A repository in memory, for tests and benchmarks.
#[derive(Default)]
pub struct MemRepository {
    packages: RwLock<BTreeMap<PkgName, BTreeMap<Version, VersionEntry>>>,
    embedded: RwLock<BTreeMap<PkgName, std::collections::BTreeSet<BuildIdent>>>,
    /// [`PackageRepository::load_package`] answers, dropped when the package changes.
    views: RwLock<std::collections::HashMap<PkgName, Arc<PackageVersions>>>,
}

impl MemRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }
}

fn not_found(what: impl std::fmt::Display) -> StorageError {
    StorageError::NotFound {
        what: what.to_string(),
    }
}

impl PackageRepository for MemRepository {
    fn describe(&self) -> String {
        "in-memory repository".into()
    }

    fn list_packages(&self) -> Result<Vec<PkgName>> {
        let p = self.packages.read().expect("lock");
        Ok(p.iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn list_versions(&self, name: &PkgName) -> Result<Vec<Version>> {
        let p = self.packages.read().expect("lock");
        Ok(p.get(name)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default())
    }

    fn list_builds(&self, ident: &VersionIdent) -> Result<Vec<BuildIdent>> {
        let p = self.packages.read().expect("lock");
        Ok(p.get(&ident.name)
            .and_then(|v| v.get(&ident.version))
            .map(|e| {
                e.builds
                    .values()
                    .filter_map(|(s, _)| s.build_ident())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn read_recipe(&self, ident: &VersionIdent) -> Result<Arc<Spec>> {
        let p = self.packages.read().expect("lock");
        p.get(&ident.name)
            .and_then(|v| v.get(&ident.version))
            .and_then(|e| e.recipe.clone())
            .ok_or_else(|| not_found(format!("recipe {ident}")))
    }

    fn load_package(&self, name: &PkgName) -> Result<Arc<PackageVersions>> {
        if let Some(v) = self.views.read().expect("lock").get(name) {
            return Ok(v.clone());
        }
        let p = self.packages.read().expect("lock");
        let versions = p
            .get(name)
            .map(|versions| {
                versions
                    .iter()
                    .map(|(version, e)| VersionSpecs {
                        version: version.clone(),
                        recipe: e.recipe.clone().map(IndexedSpec::new),
                        builds: e
                            .builds
                            .values()
                            .filter_map(|(s, _)| {
                                Some((s.build_ident()?, IndexedSpec::new(s.clone())))
                            })
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let view = Arc::new(PackageVersions {
            name: name.clone(),
            versions,
        });
        // Taken while the package map is still read-locked: no write slips in between.
        self.views
            .write()
            .expect("lock")
            .insert(name.clone(), view.clone());
        Ok(view)
    }

    fn read_build(&self, ident: &BuildIdent) -> Result<Arc<Spec>> {
        let p = self.packages.read().expect("lock");
        p.get(&ident.name)
            .and_then(|v| v.get(&ident.version))
            .and_then(|e| e.builds.get(&ident.build))
            .map(|(s, _)| s.clone())
            .ok_or_else(|| not_found(format!("build {ident}")))
    }

    fn read_components(&self, ident: &BuildIdent) -> Result<ComponentLayers> {
        let p = self.packages.read().expect("lock");
        p.get(&ident.name)
            .and_then(|v| v.get(&ident.version))
            .and_then(|e| e.builds.get(&ident.build))
            .map(|(_, c)| c.clone())
            .ok_or_else(|| not_found(format!("build {ident}")))
    }

    fn publish_recipe(&self, spec: &Spec, force: bool) -> Result<()> {
        if spec.pkg.build.is_some() {
            return Err(StorageError::Invalid(format!(
                "'{}' is a build spec; publish it as a build",
                spec.pkg
            )));
        }
        let mut p = self.packages.write().expect("lock");
        self.forget(spec.name());
        let entry = p
            .entry(spec.name().clone())
            .or_default()
            .entry(spec.version().clone())
            .or_default();
        if entry.recipe.is_some() && !force {
            return Err(StorageError::AlreadyExists(format!(
                "recipe {}",
                spec.ident()
            )));
        }
        entry.recipe = Some(Arc::new(spec.clone()));
        Ok(())
    }

    fn publish_build(&self, spec: &Spec, components: &ComponentLayers) -> Result<()> {
        let ident = check_build_components(spec, components)?;
        self.unindex(&ident);
        {
            let mut idx = self.embedded.write().expect("lock");
            for e in embedded_specs(spec) {
                idx.entry(e.name().clone())
                    .or_default()
                    .insert(ident.clone());
            }
        }
        let mut p = self.packages.write().expect("lock");
        self.forget(&ident.name);
        p.entry(ident.name.clone())
            .or_default()
            .entry(ident.version.clone())
            .or_default()
            .builds
            .insert(
                ident.build.clone(),
                (Arc::new(spec.clone()), components.clone()),
            );
        Ok(())
    }

    fn remove_recipe(&self, ident: &VersionIdent) -> Result<()> {
        let mut p = self.packages.write().expect("lock");
        self.forget(&ident.name);
        let versions = p
            .get_mut(&ident.name)
            .ok_or_else(|| not_found(format!("recipe {ident}")))?;
        let entry = versions
            .get_mut(&ident.version)
            .ok_or_else(|| not_found(format!("recipe {ident}")))?;
        entry
            .recipe
            .take()
            .ok_or_else(|| not_found(format!("recipe {ident}")))?;
        if entry.builds.is_empty() {
            versions.remove(&ident.version);
        }
        Ok(())
    }

    fn remove_build(&self, ident: &BuildIdent) -> Result<()> {
        self.unindex(ident);
        let mut p = self.packages.write().expect("lock");
        self.forget(&ident.name);
        let versions = p
            .get_mut(&ident.name)
            .ok_or_else(|| not_found(format!("build {ident}")))?;
        let entry = versions
            .get_mut(&ident.version)
            .ok_or_else(|| not_found(format!("build {ident}")))?;
        entry
            .builds
            .remove(&ident.build)
            .ok_or_else(|| not_found(format!("build {ident}")))?;
        if entry.builds.is_empty() && entry.recipe.is_none() {
            versions.remove(&ident.version);
        }
        Ok(())
    }

    fn embedded_in(&self, name: &PkgName) -> Result<Vec<BuildIdent>> {
        let idx = self.embedded.read().expect("lock");
        Ok(idx
            .get(name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }
}

impl MemRepository {
    fn forget(&self, name: &PkgName) {
        self.views.write().expect("lock").remove(name);
    }

    fn unindex(&self, ident: &BuildIdent) {
        let mut idx = self.embedded.write().expect("lock");
        for set in idx.values_mut() {
            set.remove(ident);
        }
    }
}
