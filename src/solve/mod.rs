//! Resolving requests into one consistent set of builds, with PubGrub.
//!
//! See docs/spk-solver.md for how packages, components and options map onto PubGrub.

mod explain;
pub mod graph;
mod provider;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::ident::BuildIdent;
use crate::name::Component;
use crate::option_map::OptionMap;
use crate::request::Request;
use crate::spec::Spec;
use crate::storage::{PackageRepository, StorageError};

use provider::{Provider, SolverPkg};

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
    /// Polled during the solve; when it answers true the solve stops with
    /// [`SolveError::Interrupted`].
    pub cancel: Option<SolveCancel>,
    /// Told the name of each package the solver tries (for a progress display).
    pub progress: Option<SolveProgress>,
}

/// A check polled during a solve: true stops it (a signal check, a flag set by another
/// thread).
#[derive(Clone)]
pub struct SolveCancel(Arc<dyn Fn() -> bool + Send + Sync>);

impl SolveCancel {
    /// Stops the solve once `check` answers true.
    pub fn new(check: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        SolveCancel(Arc::new(check))
    }

    /// Stops the solve once `flag` is set.
    pub fn flag(flag: Arc<AtomicBool>) -> Self {
        SolveCancel::new(move || flag.load(Ordering::Relaxed))
    }

    /// Whether the solve should stop now.
    pub fn requested(&self) -> bool {
        (self.0)()
    }
}

impl fmt::Debug for SolveCancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SolveCancel")
    }
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
            // The provider's own errors: storage failures, the timeout, a cancel.
            Err(pubgrub::PubGrubError::ErrorInShouldCancel(e))
            | Err(pubgrub::PubGrubError::ErrorRetrievingDependencies { source: e, .. })
            | Err(pubgrub::PubGrubError::ErrorChoosingVersion { source: e, .. }) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
