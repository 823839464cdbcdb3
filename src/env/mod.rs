//! Environments: the layers of a solved set of packages, stacked so that each package
//! sits above the packages it depends on.

use std::collections::{BTreeMap, BTreeSet};

use spfs::Digest;

use crate::name::PkgName;
use crate::request::Request;
use crate::solve::{PackageSource, Solution, SolvedPackage};
use crate::storage::{PackageRepository, StorageError};

/// Why a solution could not become a stack of layers.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A resolved package has no layer for a component it needs.
    #[error("{ident} has no layer for component '{component}'")]
    MissingComponent {
        /// The build.
        ident: String,
        /// The component.
        component: String,
    },
    /// A layer of a resolved package is not in the repository.
    #[error("the '{component}' layer of {ident} ({digest}) is missing from the repository")]
    MissingLayer {
        /// The build.
        ident: String,
        /// The component.
        component: String,
        /// The missing object.
        digest: Digest,
    },
    /// The solution wants a package built from source first.
    #[error("{ident} must be built from source before it can be entered")]
    NeedsBuild {
        /// The package version.
        ident: String,
    },
}

/// The packages of a solution in dependency order: every package after the packages
/// its install requirements name (ties keep the solver's order; cycles are broken in
/// that order too).
pub fn dependency_order(solution: &Solution) -> Vec<&SolvedPackage> {
    let names: BTreeSet<&PkgName> = solution.packages.iter().map(|p| &p.ident.name).collect();
    let deps: BTreeMap<&PkgName, BTreeSet<PkgName>> = solution
        .packages
        .iter()
        .map(|p| {
            let reqs = p
                .spec
                .requirements_for(&p.spec.resolve_components(&p.components));
            let set = reqs
                .iter()
                .filter_map(|r| match r {
                    Request::Pkg(r) if names.contains(&r.name) && r.name != p.ident.name => {
                        Some(r.name.clone())
                    }
                    _ => None,
                })
                .collect();
            (&p.ident.name, set)
        })
        .collect();
    let mut placed: BTreeSet<PkgName> = BTreeSet::new();
    let mut out: Vec<&SolvedPackage> = Vec::new();
    let mut rest: Vec<&SolvedPackage> = solution.packages.iter().collect();
    while !rest.is_empty() {
        let ready = rest
            .iter()
            .position(|p| deps[&p.ident.name].iter().all(|d| placed.contains(d)))
            .unwrap_or(0);
        let p = rest.remove(ready);
        placed.insert(p.ident.name.clone());
        out.push(p);
    }
    out
}

/// One layer of a solution's stack, with the build and component it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackLayer {
    /// The build.
    pub ident: String,
    /// The component.
    pub component: String,
    /// The layer's digest.
    pub digest: Digest,
}

/// The layers of a solution, bottom first: for each package in dependency order, the
/// layers of its requested components and their `uses` closure (reads one package's
/// component tags each). Stub builds (specs published without files) add none.
pub fn stack_layers(
    repo: &dyn PackageRepository,
    solution: &Solution,
) -> Result<Vec<StackLayer>, StackError> {
    let mut out = Vec::new();
    for p in dependency_order(solution) {
        match &p.source {
            PackageSource::Embedded { .. } => continue,
            PackageSource::BuildFromSource => {
                return Err(StackError::NeedsBuild {
                    ident: p.ident.version_ident().to_string(),
                })
            }
            PackageSource::Repository => {}
        }
        let layers = repo.read_components(&p.ident)?;
        for c in p.spec.resolve_components(&p.components) {
            let Some(d) = layers.get(&c) else {
                return Err(StackError::MissingComponent {
                    ident: p.ident.to_string(),
                    component: c.to_string(),
                });
            };
            if *d != Digest::of(b"") {
                out.push(StackLayer {
                    ident: p.ident.to_string(),
                    component: c.to_string(),
                    digest: *d,
                });
            }
        }
    }
    Ok(out)
}

/// The digests of [`stack_layers`], each layer once.
pub fn layer_digests(layers: &[StackLayer]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(layers.len());
    for l in layers {
        if !out.contains(&l.digest) {
            out.push(l.digest);
        }
    }
    out
}

/// The layers of a solution, bottom first, each once (see [`stack_layers`]).
pub fn layer_stack(
    repo: &dyn PackageRepository,
    solution: &Solution,
) -> Result<Vec<Digest>, StackError> {
    Ok(layer_digests(&stack_layers(repo, solution)?))
}

/// Checks that every layer (and the manifest it wraps) is stored, naming the package and
/// component of the first that is not. Reads one small object per layer.
pub fn check_layers(
    spfs: &spfs::storage::LocalRepository,
    layers: &[StackLayer],
) -> Result<(), StackError> {
    for l in layers {
        let missing = |digest: Digest| StackError::MissingLayer {
            ident: l.ident.clone(),
            component: l.component.clone(),
            digest,
        };
        match spfs.read_object(&l.digest) {
            Ok(spfs::object::Object::Layer(layer)) if !spfs.has_object(&layer.manifest) => {
                return Err(missing(layer.manifest))
            }
            Ok(_) => {}
            Err(_) => return Err(missing(l.digest)),
        }
    }
    Ok(())
}

/// The layer holding the payload `digest`, if any (for naming what a missing or damaged
/// payload belongs to; reads the layers' manifests, so only on an error path).
pub fn owner_of_payload<'a>(
    spfs: &spfs::storage::LocalRepository,
    layers: &'a [StackLayer],
    digest: &Digest,
) -> Option<&'a StackLayer> {
    layers.iter().find(|l| {
        spfs.manifests_of(&[l.digest]).is_ok_and(|manifests| {
            manifests.iter().any(|m| {
                spfs.read_manifest(m)
                    .is_ok_and(|m| m.files().any(|f| f.digest == *digest))
            })
        })
    })
}
