//! Packages read from any spfs store (a remote: a shared directory today, object
//! storage through the same trait), laid out as in docs/spk-storage.md.
//!
//! Everything goes through the spfs storage traits: tags through
//! [`TagStore`](spfs::storage::TagStore) (listing only the prefix of the package asked
//! about, never the whole store), spec blobs through
//! [`PayloadStore`](spfs::storage::PayloadStore). What was read is kept for the life of
//! the value, so one solve reads each package once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use spfs::storage::Repository;

use super::index::parse_spec_blob;
use super::{
    ComponentLayers, IndexedSpec, PackageRepository, PackageVersions, Result, StorageError,
    VersionSpecs,
};
use crate::ident::{AnyIdent, Build, BuildIdent, VersionIdent};
use crate::name::{Component, PkgName};
use crate::spec::Spec;
use crate::version::Version;

pub(super) const SPEC_PREFIX: &str = "spk/spec";
/// Where the first layout kept component tags (`spk/pkg/NAME/VERSION/BUILD/COMPONENT`):
/// still read, copied and removed, never written.
pub(super) const PKG_PREFIX: &str = "spk/pkg";
pub(super) const EMBED_PREFIX: &str = "spk/embedded";

/// The tag of a build's component layer: beside the build's spec tag, named
/// `BUILD.COMPONENT` (docs/spk-storage.md).
pub(super) fn component_tag(name: &PkgName, v: &str, build: &Build, c: &Component) -> String {
    format!("{SPEC_PREFIX}/{name}/{v}/{build}.{c}")
}

/// The component tags of `build` among the tag names of one version's level, with
/// their components.
pub(super) fn components_in_level<'a>(
    tags: &'a [String],
    build: &'a Build,
) -> impl Iterator<Item = (Component, &'a str)> + 'a {
    let build = build.to_string();
    tags.iter().filter_map(move |t| {
        let c = t.strip_prefix(build.as_str())?.strip_prefix('.')?;
        Some((c.parse::<Component>().ok()?, t.as_str()))
    })
}

/// One component tag of a build.
pub(super) struct ComponentTag {
    pub component: Component,
    pub tag: String,
    pub target: spfs::Digest,
    /// Of the first layout (`spk/pkg/NAME/VERSION/BUILD/COMPONENT`).
    pub legacy: bool,
}

/// The component tags of `build` of package `name`, whose version is stored as segment
/// `v` in `store`: those beside its spec tag, or with `legacy` those of the first
/// layout. One listing of one level, then one read per component.
pub(super) fn component_tags(
    store: &dyn Repository,
    name: &PkgName,
    v: &str,
    build: &Build,
    legacy: bool,
) -> Result<Vec<ComponentTag>> {
    let dir = if legacy {
        format!("{PKG_PREFIX}/{name}/{v}/{build}")
    } else {
        format!("{SPEC_PREFIX}/{name}/{v}")
    };
    let level = store.list_tag_dir(&dir)?;
    let named: Vec<(Component, &str)> = if legacy {
        level
            .tags
            .iter()
            .filter_map(|t| Some((t.parse().ok()?, t.as_str())))
            .collect()
    } else {
        components_in_level(&level.tags, build).collect()
    };
    let mut out = Vec::new();
    for (component, leaf) in named {
        let tag = format!("{dir}/{leaf}");
        if let Some(e) = store.tag_versions(&tag)?.first() {
            out.push(ComponentTag {
                component,
                tag,
                target: e.target,
                legacy,
            });
        }
    }
    Ok(out)
}

/// The layer of each component among `tags`; where a component has several tags (both
/// layouts), the first wins.
pub(super) fn layers_of(tags: Vec<ComponentTag>) -> ComponentLayers {
    let mut out = ComponentLayers::new();
    for t in tags {
        out.entry(t.component).or_insert(t.target);
    }
    out
}

/// A package repository read through the spfs storage traits.
pub struct RemoteRepository {
    label: String,
    store: Arc<dyn Repository>,
    packages: Mutex<HashMap<PkgName, Arc<PackageVersions>>>,
}

impl RemoteRepository {
    /// The packages in `store`, named `label` to users (a remote's name).
    pub fn new(label: impl Into<String>, store: Arc<dyn Repository>) -> Self {
        RemoteRepository {
            label: label.into(),
            store,
            packages: Mutex::new(HashMap::new()),
        }
    }

    /// The name users know this repository by.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The underlying spfs store.
    pub fn store(&self) -> &Arc<dyn Repository> {
        &self.store
    }

    fn read_only(&self, what: &str) -> StorageError {
        StorageError::Invalid(format!(
            "cannot {what} in remote '{}' directly; change the local repository, then copy with 'spk push PKG --remote {}'",
            self.label, self.label
        ))
    }

    /// The version as written in the remote's tags (`1.0` finds `1.0.0`).
    fn version_segment(&self, ident: &VersionIdent) -> Result<Option<String>> {
        Ok(self
            .load_package(&ident.name)?
            .versions
            .iter()
            .find(|v| v.version == ident.version)
            .map(|v| v.version.to_string()))
    }
}

impl PackageRepository for RemoteRepository {
    fn describe(&self) -> String {
        format!("remote '{}' ({})", self.label, self.store.describe())
    }

    fn list_packages(&self) -> Result<Vec<PkgName>> {
        let level = self.store.list_tag_dir(SPEC_PREFIX)?;
        Ok(level.dirs.iter().filter_map(|n| n.parse().ok()).collect())
    }

    /// From the package when it was read already, else one listing of the first level
    /// of `spk/spec/NAME/` (no spec is read: `spk search` stays cheap).
    fn list_versions(&self, name: &PkgName) -> Result<Vec<Version>> {
        if let Some(p) = self.packages.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(p.versions.iter().map(|v| v.version.clone()).collect());
        }
        let level = self.store.list_tag_dir(&format!("{SPEC_PREFIX}/{name}"))?;
        Ok(super::versions_in_level(&level.tags, &level.dirs))
    }

    fn list_builds(&self, ident: &VersionIdent) -> Result<Vec<BuildIdent>> {
        Ok(self
            .load_package(&ident.name)?
            .versions
            .iter()
            .find(|v| v.version == ident.version)
            .map(|v| v.builds.iter().map(|(b, _)| b.clone()).collect())
            .unwrap_or_default())
    }

    /// Lists the package's spec tags (one listing of `spk/spec/NAME/`) and reads each
    /// spec once, in parallel.
    fn load_package(&self, name: &PkgName) -> Result<Arc<PackageVersions>> {
        if let Some(p) = self.packages.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(p);
        }
        let prefix = format!("{SPEC_PREFIX}/{name}/");
        let tags = self.store.list_tag_names(&prefix)?;
        let read: Vec<Option<(String, Option<Build>, IndexedSpec)>> = tags
            .par_iter()
            .map(|tag| -> Result<_> {
                let Some(rest) = tag.strip_prefix(&prefix) else {
                    return Ok(None);
                };
                let (seg, build) = match rest.split_once('/') {
                    None => (rest, None),
                    Some((seg, b)) if !b.contains('/') => match b.parse::<Build>() {
                        Ok(b) => (seg, Some(b)),
                        Err(_) => return Ok(None),
                    },
                    Some(_) => return Ok(None),
                };
                if seg.parse::<Version>().is_err() {
                    return Ok(None);
                }
                // Removed since it was listed: not part of the package any more.
                let Some(entry) = self.store.tag_versions(tag)?.into_iter().next() else {
                    return Ok(None);
                };
                let what = match &build {
                    Some(b) => format!("build {name}/{seg}/{b} in remote '{}'", self.label),
                    None => format!("recipe {name}/{seg} in remote '{}'", self.label),
                };
                let spec = parse_spec_blob(&*self.store, &entry.target, tag, &what)?;
                Ok(Some((
                    seg.to_string(),
                    build,
                    IndexedSpec::new(Arc::new(spec)),
                )))
            })
            .collect::<Result<_>>()?;
        let mut by_segment: BTreeMap<String, VersionSpecs> = BTreeMap::new();
        for (seg, build, spec) in read.into_iter().flatten() {
            let Ok(version) = seg.parse::<Version>() else {
                continue;
            };
            let entry = by_segment.entry(seg).or_insert_with(|| VersionSpecs {
                version: version.clone(),
                recipe: None,
                builds: Vec::new(),
            });
            match build {
                None => entry.recipe = Some(spec),
                Some(b) => {
                    let vi = VersionIdent::new(name.clone(), version);
                    entry.builds.push((vi.to_build(b), spec));
                }
            }
        }
        let mut versions: Vec<VersionSpecs> = by_segment.into_values().collect();
        for v in &mut versions {
            v.builds.sort_by(|a, b| a.0.build.cmp(&b.0.build));
        }
        versions.sort_by(|a, b| a.version.cmp(&b.version));
        let package = Arc::new(PackageVersions {
            name: name.clone(),
            versions,
        });
        if let Ok(mut c) = self.packages.lock() {
            c.insert(name.clone(), package.clone());
        }
        Ok(package)
    }

    fn read_recipe(&self, ident: &VersionIdent) -> Result<Arc<Spec>> {
        let package = self.load_package(&ident.name)?;
        match package
            .versions
            .iter()
            .find(|v| v.version == ident.version)
            .and_then(|v| v.recipe.as_ref())
        {
            Some(r) => r.spec(),
            None => Err(StorageError::NotFound {
                what: format!("recipe {ident} in remote '{}'", self.label),
            }),
        }
    }

    fn read_build(&self, ident: &BuildIdent) -> Result<Arc<Spec>> {
        let package = self.load_package(&ident.name)?;
        match package
            .versions
            .iter()
            .find(|v| v.version == ident.version)
            .and_then(|v| v.builds.iter().find(|(b, _)| b.build == ident.build))
        {
            Some((_, spec)) => spec.spec(),
            None => Err(StorageError::NotFound {
                what: format!("build {ident} in remote '{}'", self.label),
            }),
        }
    }

    fn read_components(&self, ident: &BuildIdent) -> Result<ComponentLayers> {
        let Some(seg) = self.version_segment(&ident.version_ident())? else {
            return Ok(ComponentLayers::new());
        };
        let (name, build) = (&ident.name, &ident.build);
        let mut tags = component_tags(&*self.store, name, &seg, build, false)?;
        // The first layout is listed only when a component the build's spec names was
        // not found beside the spec.
        let spec = self.read_build(ident)?;
        if !spec
            .component_names()
            .iter()
            .all(|c| tags.iter().any(|t| t.component == *c))
        {
            tags.extend(component_tags(&*self.store, name, &seg, build, true)?);
        }
        Ok(layers_of(tags))
    }

    fn publish_recipe(&self, _spec: &Spec, _force: bool) -> Result<()> {
        Err(self.read_only("publish"))
    }

    fn publish_build(&self, _spec: &Spec, _components: &ComponentLayers) -> Result<()> {
        Err(self.read_only("publish"))
    }

    fn remove_recipe(&self, _ident: &VersionIdent) -> Result<()> {
        Err(self.read_only("remove packages"))
    }

    fn remove_build(&self, _ident: &BuildIdent) -> Result<()> {
        Err(self.read_only("remove packages"))
    }

    fn set_deprecated(&self, _ident: &AnyIdent, _deprecated: bool) -> Result<Vec<String>> {
        Err(self.read_only("deprecate packages"))
    }

    fn embedded_in(&self, name: &PkgName) -> Result<Vec<BuildIdent>> {
        embedded_in(&*self.store, name)
    }
}

/// Builds whose spec embeds package `name`, from the `spk/embedded/NAME/` tags of any
/// store.
pub(super) fn embedded_in(store: &dyn Repository, name: &PkgName) -> Result<Vec<BuildIdent>> {
    let prefix = format!("{EMBED_PREFIX}/{name}/");
    let mut out = Vec::new();
    for tag in store.list_tag_names(&prefix)? {
        let Some(rest) = tag.strip_prefix(&prefix) else {
            continue;
        };
        if rest.split('/').count() != 3 {
            continue;
        }
        if let Ok(ident) = rest.parse::<BuildIdent>() {
            out.push(ident);
        }
    }
    Ok(out)
}

/// The version of `name` as written in the tags of `store` (`1.0` finds `1.0.0`):
/// one listing of `spk/spec/NAME/`'s first level.
fn stored_version(
    store: &dyn Repository,
    name: &PkgName,
    version: &Version,
) -> Result<Option<Version>> {
    let level = store.list_tag_dir(&format!("{SPEC_PREFIX}/{name}"))?;
    Ok(level
        .tags
        .iter()
        .chain(level.dirs.iter())
        .filter_map(|v| v.parse::<Version>().ok())
        .find(|v| v == version))
}

/// The spfs tags holding a package, a version (recipe and builds) or one build in any
/// store: spec tags and component layer tags, as that store spells them, with their
/// current targets. Reads only the package's prefixes.
pub fn package_tags(
    store: &dyn Repository,
    ident: &AnyIdent,
) -> Result<Vec<(String, spfs::Digest)>> {
    let mut names = Vec::new();
    let base = match &ident.version {
        None => ident.name.to_string(),
        Some(version) => {
            let v = stored_version(store, &ident.name, version)?
                .unwrap_or_else(|| version.clone())
                .to_string();
            // The recipe tag sits beside its version directory; a build's spec tag
            // and its component tags sit in that directory.
            let vdir = format!("{SPEC_PREFIX}/{}/{v}", ident.name);
            match &ident.build {
                None => {
                    names.push(vdir);
                    format!("{}/{v}", ident.name)
                }
                Some(b) => {
                    let level = store.list_tag_dir(&vdir)?;
                    names.extend(
                        components_in_level(&level.tags, b)
                            .map(|(_, leaf)| format!("{vdir}/{leaf}")),
                    );
                    names.push(format!("{vdir}/{b}"));
                    format!("{}/{v}/{b}", ident.name)
                }
            }
        }
    };
    names.extend(store.list_tag_names(&format!("{SPEC_PREFIX}/{base}/"))?);
    names.extend(store.list_tag_names(&format!("{PKG_PREFIX}/{base}/"))?);
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        if let Some(e) = store.tag_versions(&name)?.first() {
            out.push((name, e.target));
        }
    }
    Ok(out)
}
