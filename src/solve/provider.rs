//! The PubGrub dependency provider: packages, candidates and their dependencies.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pubgrub::{
    Dependencies, DependencyConstraints, DependencyProvider, PackageResolutionStatistics, Ranges,
};

use super::{PackageSource, Solution, SolveError, SolveOptions, SolvedPackage};
use crate::ident::{Build, BuildIdent, VersionIdent};
use crate::name::{Component, PkgName};
use crate::option_map::OptionMap;
use crate::request::{Inclusion, PkgRequest, Request, VarRequest};
use crate::spec::Spec;
use crate::storage::{
    embedded_specs, IndexedSpec, PackageRepository, PackageVersions, StorageError,
};
use crate::version::CompatRule;

/// Index of a candidate in its package's list; 0 means "not in the environment".
pub type Idx = u32;
/// A set of candidate indices.
pub type Set = Ranges<Idx>;

/// A PubGrub package.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SolverPkg {
    /// The user's requests.
    Root,
    /// A package (which build, or absent).
    Pkg(PkgName),
    /// One component of a package; always the same build as the package.
    Comp(PkgName, Component),
}

impl SolverPkg {
    /// The package name, if not the root.
    pub fn name(&self) -> Option<&PkgName> {
        match self {
            SolverPkg::Root => None,
            SolverPkg::Pkg(n) | SolverPkg::Comp(n, _) => Some(n),
        }
    }
}

impl fmt::Display for SolverPkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SolverPkg::Root => f.write_str("your request"),
            SolverPkg::Pkg(n) => write!(f, "{n}"),
            SolverPkg::Comp(n, c) => write!(f, "{n}:{c}"),
        }
    }
}

/// Why a build cannot be part of a solve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// The build was made with another value of an option the solve sets.
    BuiltWith {
        /// The build.
        build: BuildIdent,
        /// The option.
        option: String,
        /// The value it was built with.
        built: String,
        /// The value the solve asks for.
        requested: String,
    },
    /// The build (or the request, when `by` is `None`) requires a value of a global
    /// option other than the one the solve sets.
    RequiresOption {
        /// The build that requires it.
        by: Option<BuildIdent>,
        /// The option.
        option: String,
        /// The value required.
        required: String,
        /// The value the solve asks for.
        requested: String,
    },
    /// A component was asked for that the build does not have.
    NoComponent {
        /// The build.
        build: BuildIdent,
        /// The component asked for.
        component: Component,
        /// The components it has.
        known: Vec<Component>,
    },
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::BuiltWith {
                build,
                option,
                built,
                requested,
            } => write!(
                f,
                "{build} was built with {option}={built}, but {option}={requested} is requested"
            ),
            Unusable::RequiresOption {
                by,
                option,
                required,
                requested,
            } => {
                match by {
                    Some(build) => write!(f, "{build} requires")?,
                    None => f.write_str("your request requires")?,
                }
                write!(
                    f,
                    " option {option}={required}, but {option}={requested} is requested"
                )
            }
            Unusable::NoComponent {
                build,
                component,
                known,
            } => {
                let known: Vec<&str> = known.iter().map(|c| c.as_str()).collect();
                write!(
                    f,
                    "{build} has no component '{component}' (it has: {})",
                    known.join(", ")
                )
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub ident: BuildIdent,
    /// The spec: its summary is always at hand, the whole spec is parsed when used.
    pub spec: IndexedSpec,
    /// Where the build would come from.
    pub source: PackageSource,
    /// Why the solve's options rule this build out, if they do.
    pub unusable: Option<Unusable>,
    pub components: BTreeSet<Component>,
}

impl Candidate {
    /// A published `/src` build: it holds sources, and is used only when asked for
    /// exactly.
    fn is_published_source(&self) -> bool {
        self.source == PackageSource::Repository && self.ident.build == Build::Source
    }

    fn is_embedded(&self) -> bool {
        matches!(self.source, PackageSource::Embedded { .. })
    }
}

pub struct Provider<'a> {
    repo: &'a dyn PackageRepository,
    root_requests: Vec<Request>,
    /// The solve's settings; `settings.options` includes the requests' var values.
    settings: SolveOptions,
    deadline: Option<(Instant, Duration)>,
    candidates: RefCell<HashMap<PkgName, Rc<Vec<Candidate>>>>,
    /// What the repository returned for each package this solve looked at: read once.
    packages: RefCell<HashMap<PkgName, Arc<PackageVersions>>>,
    set_cache: RefCell<HashMap<(PkgRequest, CompatRule), Set>>,
    /// Request text of each dependency: (dependent, its candidate, dependency) -> text.
    pub(super) dep_text: RefCell<HashMap<(SolverPkg, Idx, SolverPkg), String>>,
}

fn singleton(i: Idx) -> Set {
    Ranges::singleton(i)
}

fn from_indices(indices: impl IntoIterator<Item = Idx>) -> Set {
    let mut out = Ranges::empty();
    let mut run: Option<(Idx, Idx)> = None;
    for i in indices {
        run = match run {
            Some((a, b)) if b + 1 == i => Some((a, i)),
            Some((a, b)) => {
                out = out.union(&Ranges::between(a, b + 1));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some((a, b)) = run {
        out = out.union(&Ranges::between(a, b + 1));
    }
    out
}

/// The indices of a set, limited to `1..=n` (and 0 when `with_absent`).
pub fn indices(set: &Set, n: usize, with_absent: bool) -> Vec<Idx> {
    let mut out = Vec::new();
    for (lo, hi) in set.iter() {
        let start = match lo {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x + 1,
            Bound::Unbounded => 0,
        };
        let end = match hi {
            Bound::Included(x) => (*x).min(n as Idx),
            Bound::Excluded(x) => x.saturating_sub(1).min(n as Idx),
            Bound::Unbounded => n as Idx,
        };
        let start = if with_absent { start } else { start.max(1) };
        if start <= end {
            out.extend(start..=end);
        }
    }
    out
}

impl<'a> Provider<'a> {
    pub fn new(
        repo: &'a dyn PackageRepository,
        root_requests: Vec<Request>,
        settings: SolveOptions,
    ) -> Self {
        let deadline = settings.timeout.map(|t| (Instant::now() + t, t));
        Self {
            repo,
            root_requests,
            settings,
            deadline,
            candidates: RefCell::new(HashMap::new()),
            packages: RefCell::new(HashMap::new()),
            set_cache: RefCell::new(HashMap::new()),
            dep_text: RefCell::new(HashMap::new()),
        }
    }

    /// Every version of a package with its specs, read from the repository once per solve.
    fn package(&self, name: &PkgName) -> Result<Arc<PackageVersions>, StorageError> {
        if let Some(p) = self.packages.borrow().get(name) {
            return Ok(p.clone());
        }
        let p = self.repo.load_package(name)?;
        self.packages.borrow_mut().insert(name.clone(), p.clone());
        Ok(p)
    }

    /// The candidates of a package, best first (index 1 is `[0]`).
    pub fn candidates(&self, name: &PkgName) -> Result<Rc<Vec<Candidate>>, StorageError> {
        if let Some(c) = self.candidates.borrow().get(name) {
            return Ok(c.clone());
        }
        let list = Rc::new(self.load_candidates(name)?);
        self.candidates
            .borrow_mut()
            .insert(name.clone(), list.clone());
        Ok(list)
    }

    fn unusable_reason(&self, ident: &BuildIdent, values: &OptionMap) -> Option<Unusable> {
        for (name, value) in values.iter() {
            if let Some(wanted) = self.settings.options.value_for(&ident.name, name.as_str()) {
                if !value.is_empty() && wanted != value {
                    return Some(Unusable::BuiltWith {
                        build: ident.clone(),
                        option: name.to_string(),
                        built: value.to_string(),
                        requested: wanted.to_string(),
                    });
                }
            }
        }
        None
    }

    fn load_candidates(&self, name: &PkgName) -> Result<Vec<Candidate>, StorageError> {
        let mut out = Vec::new();
        // One read per package and solve: the repository's index when it has one.
        let package = self.package(name)?;
        for entry in package.versions.iter().rev() {
            let vi = VersionIdent::new(name.clone(), entry.version.clone());
            let mut binaries = Vec::new();
            let mut sources = Vec::new();
            for (b, spec) in &entry.builds {
                let cand = Candidate {
                    unusable: self.unusable_reason(b, &spec.summary.options),
                    components: spec.summary.components.clone(),
                    ident: b.clone(),
                    spec: spec.clone(),
                    source: PackageSource::Repository,
                };
                if cand.is_published_source() {
                    sources.push(cand);
                } else {
                    binaries.push(cand);
                }
            }
            // Builds matching more of the requested options first, then by id for stability.
            let score = |c: &Candidate| {
                c.spec
                    .summary
                    .options
                    .iter()
                    .filter(|(k, v)| {
                        self.settings.options.value_for(&c.ident.name, k.as_str()) == Some(*v)
                    })
                    .count()
            };
            binaries.sort_by_key(|c| (Reverse(score(c)), c.ident.build.clone()));
            out.extend(binaries);
            out.extend(sources);
            if self.settings.build_from_source {
                if let Some(recipe) = entry.recipe.clone() {
                    if !recipe.summary.deprecated {
                        out.push(Candidate {
                            ident: vi.to_build(Build::Source),
                            components: recipe.summary.components.clone(),
                            spec: recipe,
                            source: PackageSource::BuildFromSource,
                            unusable: None,
                        });
                    }
                }
            }
        }
        for parent in self.repo.embedded_in(name)? {
            let parents = self.package(&parent.name)?;
            let Some(spec) = parents
                .versions
                .iter()
                .flat_map(|v| v.builds.iter())
                .find(|(b, _)| *b == parent)
                .map(|(_, s)| s.spec())
            else {
                continue;
            };
            let spec = spec?;
            for e in embedded_specs(&spec) {
                if e.name() != name {
                    continue;
                }
                let mut emb = e.clone();
                emb.pkg.build = Some(Build::Embedded);
                let ident = e.ident().to_build(Build::Embedded);
                out.push(Candidate {
                    components: emb.component_names(),
                    unusable: self.unusable_reason(&ident, &emb.option_values()),
                    ident,
                    spec: IndexedSpec::new(Arc::new(emb)),
                    source: PackageSource::Embedded {
                        parent: parent.clone(),
                    },
                });
            }
        }
        Ok(out)
    }

    /// The candidates a package request admits, with its default compatibility rule.
    fn request_set(&self, req: &PkgRequest, rule: CompatRule) -> Result<Set, StorageError> {
        let key = (req.clone(), rule);
        if let Some(s) = self.set_cache.borrow().get(&key) {
            return Ok(s.clone());
        }
        let cands = self.candidates(&req.name)?;
        let set = from_indices(cands.iter().enumerate().filter_map(|(i, c)| {
            let exact = req.build.as_ref() == Some(&c.ident.build);
            let ok = match &req.build {
                Some(b) if *b != c.ident.build => false,
                _ => {
                    (exact || (!c.spec.summary.deprecated && !c.is_published_source()))
                        && req.allows_version(&c.ident.version, &c.spec.summary.compat, rule)
                }
            };
            ok.then_some(i as Idx + 1)
        }));
        self.set_cache.borrow_mut().insert(key, set.clone());
        Ok(set)
    }

    fn var_set(&self, name: &PkgName, var: &VarRequest) -> Result<Set, StorageError> {
        let cands = self.candidates(name)?;
        let Some(value) = &var.value else {
            return Ok(Ranges::full());
        };
        let base = var.var.base_name();
        Ok(from_indices(cands.iter().enumerate().filter_map(|(i, c)| {
            let have = &c.spec.summary.options;
            let ok = match have.get_str(base) {
                Some(v) => v.is_empty() || v == value || c.source == PackageSource::BuildFromSource,
                None => true,
            };
            ok.then_some(i as Idx + 1)
        }))
        .union(&singleton(0)))
    }

    /// Adds the dependencies of `requests` to `deps`, recording their text for
    /// explanations; `by` is the build whose requests they are.
    fn add_requests(
        &self,
        from: (&SolverPkg, Idx),
        by: Option<&BuildIdent>,
        requests: &[Request],
        rule: CompatRule,
        deps: &mut Vec<(SolverPkg, Set)>,
    ) -> Result<Option<Unusable>, StorageError> {
        for r in requests {
            match r {
                Request::Pkg(p) => {
                    if p.needs_pin() {
                        continue;
                    }
                    let set = self.request_set(p, rule)?;
                    if p.include == Inclusion::IfAlreadyPresent {
                        let dep = SolverPkg::Pkg(p.name.clone());
                        self.note(from, &dep, format!("{p} (if present)"));
                        deps.push((dep, set.union(&singleton(0))));
                        continue;
                    }
                    let comps = p.components_or_default();
                    for c in comps {
                        let dep = SolverPkg::Comp(p.name.clone(), c);
                        self.note(from, &dep, p.to_string());
                        deps.push((dep, set.clone()));
                    }
                }
                Request::Var(v) => {
                    let Some(value) = &v.value else { continue };
                    match v.var.namespace() {
                        Some(ns) => {
                            let name: PkgName = match ns.parse() {
                                Ok(n) => n,
                                Err(_) => continue,
                            };
                            let dep = SolverPkg::Pkg(name.clone());
                            self.note(from, &dep, format!("{}/{value}", v.var));
                            deps.push((dep, self.var_set(&name, v)?));
                        }
                        None => {
                            if let Some(wanted) = self.settings.options.get(&v.var) {
                                if wanted != value {
                                    return Ok(Some(Unusable::RequiresOption {
                                        by: by.cloned(),
                                        option: v.var.to_string(),
                                        required: value.to_string(),
                                        requested: wanted.to_string(),
                                    }));
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    fn note(&self, from: (&SolverPkg, Idx), dep: &SolverPkg, text: String) {
        self.dep_text
            .borrow_mut()
            .entry((from.0.clone(), from.1, dep.clone()))
            .or_insert(text);
    }

    fn index_of(&self, ident: &BuildIdent) -> Result<Option<Idx>, StorageError> {
        let cands = self.candidates(&ident.name)?;
        Ok(cands
            .iter()
            .position(|c| &c.ident == ident && c.source != PackageSource::BuildFromSource)
            .map(|i| i as Idx + 1))
    }

    fn embedded_deps(
        &self,
        from: (&SolverPkg, Idx),
        parent: &BuildIdent,
        specs: &[&Spec],
        deps: &mut Vec<(SolverPkg, Set)>,
    ) -> Result<(), StorageError> {
        for e in specs {
            let cands = self.candidates(e.name())?;
            let idx = cands.iter().position(|c| {
                matches!(&c.source, PackageSource::Embedded { parent: p } if p == parent)
                    && c.ident.version == *e.version()
            });
            if let Some(i) = idx {
                let dep = SolverPkg::Pkg(e.name().clone());
                self.note(
                    from,
                    &dep,
                    format!("{}/{} (embedded)", e.name(), e.version()),
                );
                deps.push((dep, singleton(i as Idx + 1)));
            }
        }
        Ok(())
    }

    fn merge(deps: Vec<(SolverPkg, Set)>) -> DependencyConstraints<SolverPkg, Set> {
        let mut merged: Vec<(SolverPkg, Set)> = Vec::new();
        for (p, s) in deps {
            match merged.iter_mut().find(|(q, _)| *q == p) {
                Some((_, existing)) => *existing = existing.intersection(&s),
                None => merged.push((p, s)),
            }
        }
        merged.into_iter().collect()
    }

    /// Human text for a set of candidates of `pkg`.
    pub fn describe_set(&self, pkg: &SolverPkg, set: &Set) -> String {
        let Some(name) = pkg.name() else {
            return "your request".into();
        };
        let label = pkg.to_string();
        let Ok(cands) = self.candidates(name) else {
            return label;
        };
        let idx = indices(set, cands.len(), false);
        if idx.is_empty() {
            return if set.contains(&0) {
                format!("no {label}")
            } else {
                format!("{label} (no version)")
            };
        }
        let all_versions = cands
            .iter()
            .all(|c| c.ident.version == cands[0].ident.version);
        if idx.len() == cands.len() && !all_versions {
            return label;
        }
        let mut versions: Vec<&crate::version::Version> = Vec::new();
        for i in &idx {
            let v = &cands[*i as usize - 1].ident.version;
            if !versions.contains(&v) {
                versions.push(v);
            }
        }
        if versions.len() == 1 {
            let all_builds = cands
                .iter()
                .filter(|c| &c.ident.version == versions[0])
                .count();
            if idx.len() == 1 && all_builds > 1 {
                let c = &cands[idx[0] as usize - 1];
                return format!("{label}/{}/{}", c.ident.version, c.ident.build);
            }
            return format!("{label}/{}", versions[0]);
        }
        versions.sort();
        if versions.len() <= 3 {
            let v: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
            return format!("{label}/{}", v.join(" or "));
        }
        format!(
            "{label}/{} to {} ({} versions)",
            versions[0],
            versions[versions.len() - 1],
            versions.len()
        )
    }

    /// The recorded request text of a dependency from any candidate of `from` in `set`.
    pub fn dep_text(&self, from: &SolverPkg, set: &Set, dep: &SolverPkg) -> Option<String> {
        let texts = self.dep_text.borrow();
        if *from == SolverPkg::Root {
            return texts.get(&(SolverPkg::Root, 1, dep.clone())).cloned();
        }
        let n = from
            .name()
            .and_then(|n| self.candidates(n).ok())
            .map(|c| c.len())
            .unwrap_or(0);
        indices(set, n, false)
            .into_iter()
            .find_map(|i| texts.get(&(from.clone(), i, dep.clone())).cloned())
    }

    /// Reasons why candidates in `set` of `name` cannot be used by this solve.
    pub fn unusable_reasons(&self, name: &PkgName, set: &Set) -> Vec<Unusable> {
        let Ok(cands) = self.candidates(name) else {
            return Vec::new();
        };
        indices(set, cands.len(), false)
            .into_iter()
            .filter_map(|i| cands[i as usize - 1].unusable.clone())
            .collect()
    }

    /// Position of the first top-level request naming `name`, for ordering explanations.
    pub fn request_position(&self, pkg: &SolverPkg) -> usize {
        let Some(name) = pkg.name() else { return 0 };
        self.root_requests
            .iter()
            .position(|r| matches!(r, Request::Pkg(p) if &p.name == name))
            .map(|i| i + 1)
            .unwrap_or(usize::MAX)
    }

    /// Components that no candidate in `set` of `name` has.
    pub fn missing_component(&self, name: &PkgName, set: &Set, comp: &Component) -> Option<String> {
        let cands = self.candidates(name).ok()?;
        let idx = indices(set, cands.len(), false);
        if idx.is_empty()
            || idx
                .iter()
                .any(|i| cands[*i as usize - 1].components.contains(comp))
        {
            return None;
        }
        let mut known: Vec<&str> = idx
            .iter()
            .flat_map(|i| cands[*i as usize - 1].components.iter().map(|c| c.as_str()))
            .collect();
        known.sort();
        known.dedup();
        Some(format!(
            "no build of {name} has a component '{comp}' (components: {})",
            known.join(", ")
        ))
    }

    /// All versions of a package, for explanations.
    /// Versions of `name` that have a recipe in the repository, newest first (they may
    /// have no builds).
    pub fn recipe_versions(&self, name: &PkgName) -> Vec<String> {
        let Ok(package) = self.package(name) else {
            return Vec::new();
        };
        package
            .versions
            .iter()
            .rev()
            .filter(|v| v.recipe.is_some())
            .map(|v| v.version.to_string())
            .collect()
    }

    pub fn known_versions(&self, name: &PkgName) -> Vec<String> {
        let Ok(cands) = self.candidates(name) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for c in cands.iter() {
            let v = c.ident.version.to_string();
            if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    }

    pub fn solution(
        &self,
        selected: pubgrub::SelectedDependencies<SolverPkg, Idx>,
    ) -> Result<Solution, SolveError> {
        let mut packages: Vec<SolvedPackage> = Vec::new();
        let mut comps: HashMap<PkgName, BTreeSet<Component>> = HashMap::new();
        for (p, i) in selected.iter() {
            if let SolverPkg::Comp(n, c) = p {
                if *i > 0 {
                    comps.entry(n.clone()).or_default().insert(c.clone());
                }
            }
        }
        for (p, i) in selected.iter() {
            let SolverPkg::Pkg(name) = p else { continue };
            if *i == 0 {
                continue;
            }
            let cands = self.candidates(name)?;
            let c = &cands[*i as usize - 1];
            let spec = c.spec.spec()?;
            let requested = comps.remove(name).unwrap_or_default();
            let components = if c.is_embedded() {
                requested
            } else {
                spec.resolve_components(&requested)
            };
            packages.push(SolvedPackage {
                ident: c.ident.clone(),
                spec,
                components,
                source: c.source.clone(),
            });
        }
        packages.sort_by(|a, b| a.ident.name.cmp(&b.ident.name));
        Ok(Solution { packages })
    }
}

impl DependencyProvider for Provider<'_> {
    type P = SolverPkg;
    type V = Idx;
    type VS = Set;
    type Priority = (u8, u32, Reverse<usize>);
    type M = Unusable;
    type Err = SolveError;

    fn prioritize(
        &self,
        package: &SolverPkg,
        range: &Set,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        let Some(name) = package.name() else {
            return (u8::MAX, 0, Reverse(0));
        };
        if range.contains(&0) {
            return (0, 0, Reverse(0));
        }
        let Ok(cands) = self.candidates(name) else {
            return (u8::MAX, 0, Reverse(0));
        };
        let idx = indices(range, cands.len(), false);
        let only_embedded = idx.iter().all(|i| cands[*i as usize - 1].is_embedded());
        let class = match (package, only_embedded) {
            (_, true) => 1,
            (SolverPkg::Comp(..), _) => 3,
            _ => 2,
        };
        (class, stats.conflict_count(), Reverse(idx.len()))
    }

    fn choose_version(&self, package: &SolverPkg, range: &Set) -> Result<Option<Idx>, SolveError> {
        let name = match package {
            SolverPkg::Root => return Ok(Some(1)),
            SolverPkg::Pkg(n) | SolverPkg::Comp(n, _) => n,
        };
        if let Some(progress) = &self.settings.progress {
            (progress.0)(name.as_str());
        }
        if matches!(package, SolverPkg::Pkg(_)) && range.contains(&0) {
            return Ok(Some(0));
        }
        let cands = self.candidates(name)?;
        let mut embedded = None;
        for i in indices(range, cands.len(), false) {
            let c = &cands[i as usize - 1];
            if c.unusable.is_some() {
                continue;
            }
            if let SolverPkg::Comp(_, comp) = package {
                if *comp != Component::All && !c.components.contains(comp) && !c.is_embedded() {
                    continue;
                }
            }
            if c.is_embedded() {
                embedded.get_or_insert(i);
                continue;
            }
            return Ok(Some(i));
        }
        Ok(embedded)
    }

    fn get_dependencies(
        &self,
        package: &SolverPkg,
        version: &Idx,
    ) -> Result<Dependencies<SolverPkg, Set, Unusable>, SolveError> {
        let i = *version;
        let mut deps = Vec::new();
        match package {
            SolverPkg::Root => {
                let requests = self.root_requests.clone();
                if let Some(reason) =
                    self.add_requests((package, 1), None, &requests, CompatRule::Api, &mut deps)?
                {
                    return Ok(Dependencies::Unavailable(reason));
                }
            }
            SolverPkg::Pkg(name) => {
                if i == 0 {
                    return Ok(Dependencies::Available(DependencyConstraints::default()));
                }
                let cands = self.candidates(name)?;
                let c = cands[i as usize - 1].clone();
                let spec = c.spec.spec()?;
                if let Some(reason) = &c.unusable {
                    return Ok(Dependencies::Unavailable(reason.clone()));
                }
                match &c.source {
                    PackageSource::Embedded { parent } => {
                        if let Some(pi) = self.index_of(parent)? {
                            let dep = SolverPkg::Pkg(parent.name.clone());
                            self.note((package, i), &dep, format!("{parent} (which embeds it)"));
                            deps.push((dep, singleton(pi)));
                        }
                    }
                    _ => {
                        if let Some(reason) = self.add_requests(
                            (package, i),
                            Some(&c.ident),
                            &spec.install.requirements,
                            CompatRule::Binary,
                            &mut deps,
                        )? {
                            return Ok(Dependencies::Unavailable(reason));
                        }
                        let specs: Vec<&Spec> = spec.install.embedded.iter().collect();
                        self.embedded_deps((package, i), &c.ident, &specs, &mut deps)?;
                    }
                }
            }
            SolverPkg::Comp(name, comp) => {
                let cands = self.candidates(name)?;
                let c = cands[i as usize - 1].clone();
                deps.push((SolverPkg::Pkg(name.clone()), singleton(i)));
                if c.is_embedded() {
                    return Ok(Dependencies::Available(Self::merge(deps)));
                }
                if *comp == Component::All {
                    for other in &c.components {
                        deps.push((SolverPkg::Comp(name.clone(), other.clone()), singleton(i)));
                    }
                    return Ok(Dependencies::Available(Self::merge(deps)));
                }
                let full = c.spec.spec()?;
                let Some(spec) = full.components().into_iter().find(|s| &s.name == comp) else {
                    return Ok(Dependencies::Unavailable(Unusable::NoComponent {
                        build: c.ident.clone(),
                        component: comp.clone(),
                        known: c.components.iter().cloned().collect(),
                    }));
                };
                for u in &spec.uses {
                    deps.push((SolverPkg::Comp(name.clone(), u.clone()), singleton(i)));
                }
                if let Some(reason) = self.add_requests(
                    (package, i),
                    Some(&c.ident),
                    &spec.requirements,
                    CompatRule::Binary,
                    &mut deps,
                )? {
                    return Ok(Dependencies::Unavailable(reason));
                }
                let specs: Vec<&Spec> = spec.embedded.iter().collect();
                self.embedded_deps((package, i), &c.ident, &specs, &mut deps)?;
            }
        }
        Ok(Dependencies::Available(Self::merge(deps)))
    }

    fn should_cancel(&self) -> Result<(), SolveError> {
        if let Some((deadline, limit)) = self.deadline {
            if Instant::now() > deadline {
                return Err(SolveError::TimedOut(limit));
            }
        }
        if self.settings.cancel.as_ref().is_some_and(|c| c.requested()) {
            return Err(SolveError::Interrupted);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_sets_round_trip() {
        let s = from_indices([1, 2, 3, 5, 8, 9]);
        assert_eq!(indices(&s, 10, false), vec![1, 2, 3, 5, 8, 9]);
        assert!(!s.contains(&4));
        let with_absent = s.union(&singleton(0));
        assert_eq!(indices(&with_absent, 10, true), vec![0, 1, 2, 3, 5, 8, 9]);
        assert_eq!(indices(&Ranges::full(), 3, false), vec![1, 2, 3]);
    }
}
