//! Packages stored as tags in an spfs repository (layout in docs/spk-storage.md).

use std::path::Path;
use std::sync::Arc;

use super::{
    check_build_components, embedded_specs, ComponentLayers, PackageRepository, Result,
    StorageError,
};
use crate::ident::{AnyIdent, Build, BuildIdent, VersionIdent};
use crate::name::{Component, PkgName};
use crate::spec::{parse_rendered, LoadOptions, Spec};
use crate::version::Version;
use spfs::storage::LocalRepository;

const SPEC_PREFIX: &str = "spk/spec";
const PKG_PREFIX: &str = "spk/pkg";
const EMBED_PREFIX: &str = "spk/embedded";

/// A package repository inside an spfs repository.
pub struct SpfsRepository {
    repo: LocalRepository,
    root: std::path::PathBuf,
}

impl SpfsRepository {
    /// Opens the existing spfs repository at `root` (for commands that only read).
    pub fn open(root: &Path) -> Result<Self> {
        Ok(Self {
            repo: LocalRepository::open(root)?,
            root: root.to_path_buf(),
        })
    }

    /// Opens (creating if needed) the spfs repository at `root` (for commands that write).
    pub fn open_or_create(root: &Path) -> Result<Self> {
        Ok(Self {
            repo: LocalRepository::open_or_create(root)?,
            root: root.to_path_buf(),
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
        let bytes = self.repo.read_blob(&digest)?;
        let text = String::from_utf8(bytes).map_err(|_| StorageError::Corrupt {
            what: what.to_string(),
            message: "not UTF-8".into(),
        })?;
        let loaded = parse_rendered(&text, tag, &LoadOptions::default()).map_err(|e| {
            StorageError::Corrupt {
                what: what.to_string(),
                message: e.to_string(),
            }
        })?;
        Ok(Some(Arc::new(loaded.spec)))
    }

    fn write_spec_tag(&self, tag: &str, spec: &Spec) -> Result<()> {
        let digest = self.repo.write_blob(spec.to_yaml().as_bytes())?;
        self.repo.push_tag(tag, &digest)?;
        Ok(())
    }

    /// The version as written in existing tags, so `1.0` finds `1.0.0`.
    fn stored_version(&self, name: &PkgName, version: &Version) -> Result<Option<Version>> {
        Ok(self.list_versions(name)?.into_iter().find(|v| v == version))
    }

    /// The spfs tags holding a package, a version (recipe and builds) or one build:
    /// spec tags and component layer tags, as this repository spells them.
    pub fn package_tags(&self, ident: &AnyIdent) -> Result<Vec<String>> {
        let base = match &ident.version {
            None => ident.name.to_string(),
            Some(version) => {
                let v = self.version_segment(&VersionIdent {
                    name: ident.name.clone(),
                    version: version.clone(),
                })?;
                match &ident.build {
                    None => format!("{}/{v}", ident.name),
                    Some(b) => format!("{}/{v}/{b}", ident.name),
                }
            }
        };
        let mut out = self.repo.list_tags(&format!("{SPEC_PREFIX}/{base}/"))?;
        out.extend(self.repo.list_tags(&format!("{PKG_PREFIX}/{base}/"))?);
        Ok(out)
    }

    fn version_segment(&self, ident: &VersionIdent) -> Result<String> {
        Ok(self
            .stored_version(&ident.name, &ident.version)?
            .unwrap_or_else(|| ident.version.clone())
            .to_string())
    }
}

fn segments(tag: &str, prefix: &str) -> Vec<String> {
    tag.strip_prefix(prefix)
        .unwrap_or(tag)
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect()
}

impl PackageRepository for SpfsRepository {
    fn describe(&self) -> String {
        format!("spfs repository {}", self.root.display())
    }

    fn list_packages(&self) -> Result<Vec<PkgName>> {
        let mut names: Vec<PkgName> = self
            .repo
            .list_tags(&format!("{SPEC_PREFIX}/"))?
            .iter()
            .filter_map(|t| {
                segments(t, SPEC_PREFIX)
                    .first()
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn list_versions(&self, name: &PkgName) -> Result<Vec<Version>> {
        let mut versions: Vec<Version> = self
            .repo
            .list_tags(&format!("{SPEC_PREFIX}/{name}/"))?
            .iter()
            .filter_map(|t| {
                let s = segments(t, SPEC_PREFIX);
                (s.first().map(String::as_str) == Some(name.as_str()))
                    .then(|| s.get(1).and_then(|v| v.parse().ok()))
                    .flatten()
            })
            .collect();
        versions.sort();
        versions.dedup_by(|a, b| a.is_identical(b));
        Ok(versions)
    }

    fn list_builds(&self, ident: &VersionIdent) -> Result<Vec<BuildIdent>> {
        let v = self.version_segment(ident)?;
        Ok(self
            .repo
            .list_tags(&format!("{SPEC_PREFIX}/{}/{v}/", ident.name))?
            .iter()
            .filter_map(|t| {
                let s = segments(t, SPEC_PREFIX);
                if s.len() != 3 || s[0] != ident.name.as_str() || s[1] != v {
                    return None;
                }
                s[2].parse::<Build>().ok().map(|b| ident.to_build(b))
            })
            .collect())
    }

    fn read_recipe(&self, ident: &VersionIdent) -> Result<Arc<Spec>> {
        let v = self.version_segment(ident)?;
        self.read_spec_tag(
            &format!("{SPEC_PREFIX}/{}/{v}", ident.name),
            &format!("recipe {ident}"),
        )?
        .ok_or_else(|| StorageError::NotFound {
            what: format!("recipe {ident}"),
        })
    }

    fn read_build(&self, ident: &BuildIdent) -> Result<Arc<Spec>> {
        let v = self.version_segment(&ident.version_ident())?;
        self.read_spec_tag(
            &format!("{SPEC_PREFIX}/{}/{v}/{}", ident.name, ident.build),
            &format!("build {ident}"),
        )?
        .ok_or_else(|| StorageError::NotFound {
            what: format!("build {ident}"),
        })
    }

    fn read_components(&self, ident: &BuildIdent) -> Result<ComponentLayers> {
        let v = self.version_segment(&ident.version_ident())?;
        let prefix = format!("{PKG_PREFIX}/{}/{v}/{}", ident.name, ident.build);
        let mut out = ComponentLayers::new();
        for tag in self.repo.list_tags(&format!("{prefix}/"))? {
            let s = segments(&tag, PKG_PREFIX);
            if s.len() != 4
                || s[0] != ident.name.as_str()
                || s[1] != v
                || s[2] != ident.build.to_string()
            {
                continue;
            }
            if let (Ok(c), Some(d)) = (s[3].parse::<Component>(), self.repo.resolve_tag(&tag)?) {
                out.insert(c, d);
            }
        }
        Ok(out)
    }

    fn publish_recipe(&self, spec: &Spec, force: bool) -> Result<()> {
        if spec.pkg.build.is_some() {
            return Err(StorageError::Invalid(format!(
                "'{}' is a build spec; publish it as a build",
                spec.pkg
            )));
        }
        let v = self.version_segment(spec.ident())?;
        let tag = format!("{SPEC_PREFIX}/{}/{v}", spec.name());
        if !force && self.repo.resolve_tag(&tag)?.is_some() {
            return Err(StorageError::AlreadyExists(format!(
                "recipe {}",
                spec.ident()
            )));
        }
        self.write_spec_tag(&tag, spec)
    }

    fn publish_build(&self, spec: &Spec, components: &ComponentLayers) -> Result<()> {
        let ident = check_build_components(spec, components)?;
        let v = self.version_segment(&ident.version_ident())?;
        // Layers first, then the spec: a build is visible only once complete.
        let old = self.read_components(&ident).unwrap_or_default();
        for c in old.keys().filter(|c| !components.contains_key(*c)) {
            self.repo.remove_tag(&format!(
                "{PKG_PREFIX}/{}/{v}/{}/{c}",
                ident.name, ident.build
            ))?;
        }
        for (c, d) in components {
            self.repo.push_tag(
                &format!("{PKG_PREFIX}/{}/{v}/{}/{c}", ident.name, ident.build),
                d,
            )?;
        }
        let spec_tag = format!("{SPEC_PREFIX}/{}/{v}/{}", ident.name, ident.build);
        self.write_spec_tag(&spec_tag, spec)?;
        if let Some(target) = self.repo.resolve_tag(&spec_tag)? {
            for e in embedded_specs(spec) {
                self.repo.push_tag(
                    &format!(
                        "{EMBED_PREFIX}/{}/{}/{v}/{}",
                        e.name(),
                        ident.name,
                        ident.build
                    ),
                    &target,
                )?;
            }
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
        for c in self.read_components(ident)?.keys() {
            self.repo.remove_tag(&format!(
                "{PKG_PREFIX}/{}/{v}/{}/{c}",
                ident.name, ident.build
            ))?;
        }
        Ok(())
    }

    fn embedded_in(&self, name: &PkgName) -> Result<Vec<BuildIdent>> {
        let mut out = Vec::new();
        for tag in self.repo.list_tags(&format!("{EMBED_PREFIX}/{name}/"))? {
            let s = segments(&tag, EMBED_PREFIX);
            if s.len() != 4 || s[0] != name.as_str() {
                continue;
            }
            if let Ok(ident) = format!("{}/{}/{}", s[1], s[2], s[3]).parse::<BuildIdent>() {
                out.push(ident);
            }
        }
        Ok(out)
    }
}
