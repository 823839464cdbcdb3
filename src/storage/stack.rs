//! Several package repositories seen as one: the local repository first, then the
//! configured remotes (docs/remotes.md). Reads merge them, the first repository
//! winning where two hold the same recipe or build; writes go to the first.

use std::sync::Arc;

use super::{
    ComponentLayers, PackageRepository, PackageVersions, Result, StorageError, VersionSpecs,
};
use crate::ident::{AnyIdent, BuildIdent, VersionIdent};
use crate::name::PkgName;
use crate::spec::Spec;
use crate::version::Version;

/// Package repositories in order, each with the label users know it by.
pub struct RepositoryStack<'a> {
    repos: Vec<(String, &'a dyn PackageRepository)>,
}

impl<'a> RepositoryStack<'a> {
    /// The repositories `repos` (label, repository), asked in that order.
    pub fn new(repos: Vec<(String, &'a dyn PackageRepository)>) -> Self {
        RepositoryStack { repos }
    }

    /// The repositories, in order.
    pub fn repos(&self) -> &[(String, &'a dyn PackageRepository)] {
        &self.repos
    }

    /// The label of the first repository holding `build`, which is the one every read
    /// of that build goes to.
    pub fn origin(&self, build: &BuildIdent) -> Result<Option<&str>> {
        Ok(self.holder(build)?.map(|(label, _)| label))
    }

    fn holder(&self, build: &BuildIdent) -> Result<Option<(&str, &'a dyn PackageRepository)>> {
        for (label, repo) in &self.repos {
            let package = repo.load_package(&build.name)?;
            let found = package
                .versions
                .iter()
                .filter(|v| v.version == build.version)
                .any(|v| v.builds.iter().any(|(b, _)| b.build == build.build));
            if found {
                return Ok(Some((label, *repo)));
            }
        }
        Ok(None)
    }

    /// The labels of the repositories holding a recipe or a build of `name`, or of
    /// that version when given.
    pub fn holders(&self, name: &PkgName, version: Option<&Version>) -> Result<Vec<&str>> {
        let mut out = Vec::new();
        for (label, repo) in &self.repos {
            let held = match version {
                None => !repo.list_versions(name)?.is_empty(),
                Some(v) => repo.list_versions(name)?.iter().any(|x| x == v),
            };
            if held {
                out.push(label.as_str());
            }
        }
        Ok(out)
    }

    fn first(&self) -> Result<&'a dyn PackageRepository> {
        self.repos
            .first()
            .map(|(_, r)| *r)
            .ok_or_else(|| StorageError::Invalid("no package repository to write to".into()))
    }

    /// The first answer that is not "not found".
    fn first_found<T>(
        &self,
        what: impl Fn() -> String,
        read: impl Fn(&dyn PackageRepository) -> Result<T>,
    ) -> Result<T> {
        for (_, repo) in &self.repos {
            match read(*repo) {
                Err(StorageError::NotFound { .. }) => {}
                other => return other,
            }
        }
        Err(StorageError::NotFound { what: what() })
    }
}

impl PackageRepository for RepositoryStack<'_> {
    fn describe(&self) -> String {
        self.repos
            .iter()
            .map(|(_, r)| r.describe())
            .collect::<Vec<_>>()
            .join(", then ")
    }

    fn list_packages(&self) -> Result<Vec<PkgName>> {
        let mut out = Vec::new();
        for (_, repo) in &self.repos {
            out.extend(repo.list_packages()?);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn list_versions(&self, name: &PkgName) -> Result<Vec<Version>> {
        let mut out: Vec<Version> = Vec::new();
        for (_, repo) in &self.repos {
            for v in repo.list_versions(name)? {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn list_builds(&self, ident: &VersionIdent) -> Result<Vec<BuildIdent>> {
        let mut out: Vec<BuildIdent> = Vec::new();
        for (_, repo) in &self.repos {
            for b in repo.list_builds(ident)? {
                if !out.iter().any(|x| x.build == b.build) {
                    out.push(b);
                }
            }
        }
        Ok(out)
    }

    /// Every repository's versions merged: a version equal by value is one entry
    /// (spelled as the first repository spells it), its recipe from the first repository
    /// that has one, its builds the union, the first repository's copy of a build kept.
    fn load_package(&self, name: &PkgName) -> Result<Arc<PackageVersions>> {
        if let [(_, only)] = self.repos.as_slice() {
            return only.load_package(name);
        }
        let mut versions: Vec<VersionSpecs> = Vec::new();
        for (_, repo) in &self.repos {
            for v in &repo.load_package(name)?.versions {
                match versions.iter_mut().find(|x| x.version == v.version) {
                    None => versions.push(v.clone()),
                    Some(x) => {
                        if x.recipe.is_none() {
                            x.recipe = v.recipe.clone();
                        }
                        for (b, spec) in &v.builds {
                            if !x.builds.iter().any(|(y, _)| y.build == b.build) {
                                let ident = VersionIdent::new(name.clone(), x.version.clone())
                                    .to_build(b.build.clone());
                                x.builds.push((ident, spec.clone()));
                            }
                        }
                        x.builds.sort_by(|a, b| a.0.build.cmp(&b.0.build));
                    }
                }
            }
        }
        versions.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(Arc::new(PackageVersions {
            name: name.clone(),
            versions,
        }))
    }

    fn read_recipe(&self, ident: &VersionIdent) -> Result<Arc<Spec>> {
        self.first_found(|| format!("recipe {ident}"), |r| r.read_recipe(ident))
    }

    fn read_build(&self, ident: &BuildIdent) -> Result<Arc<Spec>> {
        self.first_found(|| format!("build {ident}"), |r| r.read_build(ident))
    }

    /// The layers as the repository holding the build (the first one) records them.
    fn read_components(&self, ident: &BuildIdent) -> Result<ComponentLayers> {
        match self.holder(ident)? {
            Some((_, repo)) => repo.read_components(ident),
            None => Err(StorageError::NotFound {
                what: format!("build {ident}"),
            }),
        }
    }

    fn publish_recipe(&self, spec: &Spec, force: bool) -> Result<()> {
        self.first()?.publish_recipe(spec, force)
    }

    fn publish_build(&self, spec: &Spec, components: &ComponentLayers) -> Result<()> {
        self.first()?.publish_build(spec, components)
    }

    fn publish_batch(
        &self,
        recipes: &[&Spec],
        builds: &[(&Spec, ComponentLayers)],
        force: bool,
    ) -> Result<()> {
        self.first()?.publish_batch(recipes, builds, force)
    }

    fn remove_recipe(&self, ident: &VersionIdent) -> Result<()> {
        self.first()?.remove_recipe(ident)
    }

    fn remove_build(&self, ident: &BuildIdent) -> Result<()> {
        self.first()?.remove_build(ident)
    }

    fn set_deprecated(&self, ident: &AnyIdent, deprecated: bool) -> Result<Vec<String>> {
        self.first()?.set_deprecated(ident, deprecated)
    }

    fn remove(&self, ident: &AnyIdent) -> Result<Vec<String>> {
        self.first()?.remove(ident)
    }

    fn embedded_in(&self, name: &PkgName) -> Result<Vec<BuildIdent>> {
        let mut out: Vec<BuildIdent> = Vec::new();
        for (_, repo) in &self.repos {
            for b in repo.embedded_in(name)? {
                if !out.contains(&b) {
                    out.push(b);
                }
            }
        }
        Ok(out)
    }
}
