//! Resolving requests into one consistent set of builds, with PubGrub.
//!
//! See docs/spk-solver.md for how packages, components and options map onto PubGrub.

mod explain;
pub mod graph;
mod provider;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::ident::BuildIdent;
use crate::name::Component;
use crate::option_map::OptionMap;
use crate::request::Request;
use crate::spec::Spec;
use crate::storage::{PackageRepository, StorageError};

use provider::{Cancelled, Provider, SolverPkg};

/// How a package of a solution is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSource {
    /// A published build.
    Repository,
    /// The copy embedded in another package's build.
    Embedded {
        /// The build that embeds it.
        parent: BuildIdent,
    },
    /// No published build fits: build this recipe from source.
    BuildFromSource,
}

/// One package of a solution.
#[derive(Debug, Clone)]
pub struct SolvedPackage {
    /// The chosen build (`/src` for builds from source, `/embedded` for embedded copies).
    pub ident: BuildIdent,
    /// Its spec (the recipe, for builds from source).
    pub spec: Arc<Spec>,
    /// The components needed, `uses` expanded.
    pub components: BTreeSet<Component>,
    /// Where it comes from.
    pub source: PackageSource,
}

/// The result of a successful solve, in package name order.
#[derive(Debug, Clone, Default)]
pub struct Solution {
    /// The resolved packages.
    pub packages: Vec<SolvedPackage>,
}

impl Solution {
    /// The package of this name, if resolved.
    pub fn get(&self, name: &str) -> Option<&SolvedPackage> {
        self.packages.iter().find(|p| p.ident.name.as_str() == name)
    }
}

impl fmt::Display for Solution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.packages {
            let comps: Vec<&str> = p.components.iter().map(|c| c.as_str()).collect();
            write!(f, "{}  [{}]", p.ident, comps.join(","))?;
            match &p.source {
                PackageSource::Repository => {}
                PackageSource::Embedded { parent } => write!(f, "  (embedded in {parent})")?,
                PackageSource::BuildFromSource => write!(f, "  (build from source)")?,
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Why a solve failed.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// The requests cannot all be satisfied.
    #[error("{0}")]
    NoSolution(Explanation),
    /// The solve took longer than its timeout.
    #[error("the solve did not finish within {0:?}")]
    TimedOut(Duration),
    /// The solve was interrupted.
    #[error("the solve was interrupted")]
    Interrupted,
    /// The repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl spfs::Help for SolveError {
    fn help(&self) -> Vec<String> {
        match self {
            SolveError::NoSolution(e) => vec![e.help.clone()],
            SolveError::TimedOut(_) => vec!["raise --timeout, or narrow the requests".into()],
            SolveError::Interrupted => Vec::new(),
            SolveError::Storage(e) => e.help(),
        }
    }
}

/// A failed solve, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// One sentence: the conflict at the root of the failure.
    pub summary: String,
    /// The facts that lead to it, one per line.
    pub reasons: Vec<String>,
    /// What the user can do.
    pub help: String,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)?;
        for r in &self.reasons {
            write!(f, "\n  - {r}")?;
        }
        Ok(())
    }
}

/// Settings of a solve.
#[derive(Debug, Clone, Default)]
pub struct SolveOptions {
    /// Option values: builds that set one of these options to another value are not used.
    pub options: OptionMap,
    /// Offer recipes as "build from source" when no published build fits.
    pub build_from_source: bool,
    /// Give up after this long.
    pub timeout: Option<Duration>,
    /// Set to true (for example from a signal handler) to stop the solve.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Polled during the solve; returning true stops it (for example a signal check).
    pub interrupted: Option<fn() -> bool>,
    /// Told the name of each package the solver tries (for a progress display).
    pub progress: Option<SolveProgress>,
}

/// A callback told the name of each package the solver tries.
#[derive(Clone)]
pub struct SolveProgress(pub Arc<dyn Fn(&str) + Send + Sync>);

impl fmt::Debug for SolveProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SolveProgress")
    }
}

/// Resolves requests against one repository.
pub struct Solver<'a> {
    repo: &'a dyn PackageRepository,
    options: SolveOptions,
}

impl<'a> Solver<'a> {
    /// A solver over `repo`.
    pub fn new(repo: &'a dyn PackageRepository, options: SolveOptions) -> Self {
        Self { repo, options }
    }

    /// Finds one build of every package needed by `requests`.
    ///
    /// Top-level package requests use API compatibility for bare versions; install
    /// requirements use binary compatibility.
    pub fn solve(&self, requests: &[Request]) -> Result<Solution, SolveError> {
        let mut settings = self.options.clone();
        let mut top = Vec::new();
        for r in requests {
            match r {
                Request::Var(v) if v.var.namespace().is_none() => {
                    if let Some(value) = &v.value {
                        settings.options.insert(v.var.clone(), value.clone());
                    }
                }
                other => top.push(other.clone()),
            }
        }
        let provider = Provider::new(self.repo, top, settings);
        match pubgrub::resolve(&provider, SolverPkg::Root, 1u32) {
            Ok(selected) => provider.solution(selected),
            Err(pubgrub::PubGrubError::NoSolution(tree)) => {
                Err(SolveError::NoSolution(explain::explain(&provider, &tree)))
            }
            Err(pubgrub::PubGrubError::ErrorInShouldCancel(c)) => Err(match c {
                Cancelled::Timeout(t) => SolveError::TimedOut(t),
                _ => SolveError::Interrupted,
            }),
            Err(pubgrub::PubGrubError::ErrorRetrievingDependencies { source, .. })
            | Err(pubgrub::PubGrubError::ErrorChoosingVersion { source, .. }) => {
                Err(match source {
                    Cancelled::Storage(e) => SolveError::Storage(e),
                    Cancelled::Timeout(t) => SolveError::TimedOut(t),
                    Cancelled::Interrupted => SolveError::Interrupted,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
