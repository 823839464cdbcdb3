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

/// The layers of a solution, bottom first: for each package in dependency order, the
/// layers of its requested components and their `uses` closure, each layer once.
pub fn layer_stack(
    repo: &dyn PackageRepository,
    solution: &Solution,
) -> Result<Vec<Digest>, StackError> {
    let mut out: Vec<Digest> = Vec::new();
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
            // Stub builds (specs published without files) point at the empty blob.
            if *d == Digest::of(b"") {
                continue;
            }
            if !out.contains(d) {
                out.push(*d);
            }
        }
    }
    Ok(out)
}
