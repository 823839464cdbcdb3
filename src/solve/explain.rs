//! Turning PubGrub's derivation tree into sentences a person can act on.

use pubgrub::{DerivationTree, External};

use super::provider::{indices, Provider, Set, SolverPkg, Unusable};
use super::Explanation;

type Tree = DerivationTree<SolverPkg, Set, Unusable>;

fn leaves<'t>(tree: &'t Tree, out: &mut Vec<&'t External<SolverPkg, Set, Unusable>>) {
    match tree {
        DerivationTree::External(e) => out.push(e),
        DerivationTree::Derived(d) => {
            leaves(&d.cause1, out);
            leaves(&d.cause2, out);
        }
    }
}

/// A dependency edge of the tree that comes from a request (not from the link between a
/// component and its package).
struct Edge {
    from: SolverPkg,
    from_set: Set,
    dep: SolverPkg,
    dep_set: Set,
}

impl Edge {
    fn structural(&self) -> bool {
        matches!((&self.from, &self.dep), (SolverPkg::Comp(a, _), SolverPkg::Pkg(b)) | (SolverPkg::Comp(a, _), SolverPkg::Comp(b, _)) if a == b)
    }
}

fn who(p: &Provider, pkg: &SolverPkg, set: &Set) -> String {
    match pkg {
        SolverPkg::Root => "you".to_string(),
        _ => p.describe_set(pkg, set),
    }
}

fn dep_text(p: &Provider, e: &Edge) -> String {
    p.dep_text(&e.from, &e.from_set, &e.dep)
        .unwrap_or_else(|| p.describe_set(&e.dep, &e.dep_set))
}

fn sentence(p: &Provider, e: &Edge) -> String {
    let text = dep_text(p, e);
    match &e.from {
        SolverPkg::Root => format!("you asked for {text}"),
        _ => format!("{} requires {text}", who(p, &e.from, &e.from_set)),
    }
}

/// Explains a failed solve.
pub fn explain(p: &Provider, tree: &Tree) -> Explanation {
    let mut ext = Vec::new();
    leaves(tree, &mut ext);
    let mut edges = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    let push = |s: String, reasons: &mut Vec<String>| {
        if !reasons.contains(&s) {
            reasons.push(s);
        }
    };
    let mut no_versions = Vec::new();
    let mut customs = Vec::new();
    for e in &ext {
        match e {
            External::FromDependencyOf(a, sa, d, sd) => {
                let edge = Edge {
                    from: a.clone(),
                    from_set: sa.clone(),
                    dep: d.clone(),
                    dep_set: sd.clone(),
                };
                let seen = edges.iter().any(|e: &Edge| {
                    e.from == edge.from && e.from_set == edge.from_set && e.dep == edge.dep
                });
                if !edge.structural() && !seen {
                    push(sentence(p, &edge), &mut reasons);
                    edges.push(edge);
                }
            }
            External::NoVersions(pkg, set) => no_versions.push((pkg.clone(), set.clone(), false)),
            External::Custom(pkg, set, msg) => {
                push(msg.to_string(), &mut reasons);
                customs.push((pkg.clone(), set.clone(), msg.clone()));
            }
            External::NotRoot(..) => {}
        }
    }

    // Two requests on the same package that no candidate satisfies together.
    let conflicts = |a: &Edge, b: &Edge| -> bool {
        let (Some(na), Some(nb)) = (a.dep.name(), b.dep.name()) else {
            return false;
        };
        if na != nb || a.from.name() == b.from.name() && a.from != SolverPkg::Root {
            return false;
        }
        let n = p.candidates(na).map(|c| c.len()).unwrap_or(0);
        let both = a.dep_set.intersection(&b.dep_set);
        !indices(&both, n, true)
            .into_iter()
            .any(|i| p.unusable_reasons(na, &Set::singleton(i)).is_empty())
    };
    let mut summary = None;
    'outer: for (i, a) in edges.iter().enumerate() {
        for b in edges.iter().skip(i + 1) {
            if a.from == b.from || !conflicts(a, b) {
                continue;
            }
            let na = a.dep.name().expect("conflicting edges have a dependency");
            // Several versions of one package may each conflict with the same request.
            let same_pkg = |x: &Edge, other: &Edge| -> Vec<&Edge> {
                edges
                    .iter()
                    .filter(|e| {
                        e.from != SolverPkg::Root
                            && e.from.name() == x.from.name()
                            && conflicts(other, e)
                    })
                    .collect()
            };
            let many_b = same_pkg(b, a);
            let many_a = same_pkg(a, b);
            let key = |e: &Edge| (e.from != SolverPkg::Root, p.request_position(&e.from));
            let (first, second, many) = if many_a.len() > 1 && many_b.len() <= 1 {
                (b, a, many_a)
            } else if many_b.len() > 1 {
                (a, b, many_b)
            } else if key(b) < key(a) {
                (b, a, vec![a])
            } else {
                (a, b, vec![b])
            };
            let ta = dep_text(p, first);
            let lead = match &first.from {
                SolverPkg::Root => format!("you asked for {ta}"),
                _ => format!(
                    "{ta} is required by {}",
                    who(p, &first.from, &first.from_set)
                ),
            };
            summary = Some((
                Cause::Conflict,
                if many.len() > 1 {
                    let pkg = second
                        .from
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default();
                    let mut examples: Vec<String> = many
                        .iter()
                        .take(3)
                        .map(|e| {
                            format!(
                                "{} requires {}",
                                who(p, &e.from, &e.from_set),
                                dep_text(p, e)
                            )
                        })
                        .collect();
                    if many.len() > 3 {
                        examples.push(format!("and {} more", many.len() - 3));
                    }
                    format!(
                    "{lead}, but no version of {pkg} accepts it ({}); no version of {na} satisfies both",
                    examples.join(", ")
                )
                } else {
                    let tb = dep_text(p, second);
                    match &first.from {
                        SolverPkg::Root => format!(
                            "{lead}, but {} requires {tb}; no version of {na} satisfies both",
                            who(p, &second.from, &second.from_set)
                        ),
                        _ => format!(
                            "{lead}, but {} requires {tb}; no version satisfies both",
                            who(p, &second.from, &second.from_set)
                        ),
                    }
                },
            ));
            break 'outer;
        }
    }

    // Requests that nothing in the repository matches.
    for e in &edges {
        let Some(name) = e.dep.name() else { continue };
        let n = p.candidates(name).map(|c| c.len()).unwrap_or(0);
        if !e.dep_set.contains(&0) && indices(&e.dep_set, n, false).is_empty() {
            no_versions.push((e.dep.clone(), e.dep_set.clone(), true));
        }
    }
    for (pkg, set, from_request) in &no_versions {
        let Some(name) = pkg.name() else { continue };
        // Sets left with no real candidate are what earlier conflicts excluded; those
        // conflicts are already explained.
        let n = p.candidates(name).map(|c| c.len()).unwrap_or(0);
        if !from_request && n > 0 && indices(set, n, false).is_empty() {
            continue;
        }
        if let SolverPkg::Comp(_, comp) = pkg {
            if let Some(line) = p.missing_component(name, set, comp) {
                push(line.clone(), &mut reasons);
                summary.get_or_insert((Cause::Other, line));
                continue;
            }
        }
        let unusable = p.unusable_reasons(name, set);
        let wanted = edges
            .iter()
            .rev()
            .find(|e| e.dep.name() == Some(name))
            .map(|e| dep_text(p, e))
            .unwrap_or_else(|| name.to_string());
        let known = p.known_versions(name);
        let (cause, line) = if !unusable.is_empty() {
            let why: Vec<String> = unusable.iter().map(|u| u.to_string()).collect();
            (
                Cause::Other,
                format!("no usable build of {wanted}: {}", why.join("; ")),
            )
        } else if known.is_empty() {
            let recipes = p.recipe_versions(name);
            if recipes.is_empty() {
                (
                    Cause::NoPackage,
                    format!("there is no package named '{name}' in the repository"),
                )
            } else {
                let shown: Vec<&str> = recipes.iter().take(8).map(|s| s.as_str()).collect();
                (
                    Cause::NoBuilds,
                    format!(
                        "package '{name}' has recipes but no builds (recipe versions: {}{})",
                        shown.join(", "),
                        if recipes.len() > 8 { ", ..." } else { "" }
                    ),
                )
            }
        } else {
            let shown: Vec<&str> = known.iter().take(8).map(|s| s.as_str()).collect();
            (
                Cause::Other,
                format!(
                    "no version of {name} matches {wanted} (available: {}{})",
                    shown.join(", "),
                    if known.len() > 8 { ", ..." } else { "" }
                ),
            )
        };
        push(line.clone(), &mut reasons);
        summary.get_or_insert((cause, line));
    }
    if let Some((_, _, msg)) = customs.first() {
        summary.get_or_insert((Cause::Other, msg.to_string()));
    }
    let (cause, summary) = summary.unwrap_or_else(|| {
        (
            Cause::Other,
            "the requests cannot be satisfied together".to_string(),
        )
    });
    reasons.retain(|r| r != &summary);
    Explanation {
        summary,
        reasons,
        help: cause.help().to_string(),
    }
}

/// What the summary of an explanation says went wrong, which decides its hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Two requests on one package that no version satisfies together.
    Conflict,
    /// A package the repository does not have at all.
    NoPackage,
    /// A package with recipes but no builds.
    NoBuilds,
    /// Anything else: versions, options or components that do not match.
    Other,
}

impl Cause {
    fn help(self) -> &'static str {
        match self {
            Cause::NoPackage => {
                "check the spelling with 'spk search', or publish the package first"
            }
            Cause::NoBuilds => {
                "publish a build of it, or pass --build-from-source to build one from its recipe"
            }
            Cause::Conflict => {
                "relax one of the conflicting requests, or publish a version that satisfies both"
            }
            Cause::Other => {
                "relax the requests above, or run 'spk ls NAME' to see what versions exist"
            }
        }
    }
}
