//! A picture of a solve in Graphviz DOT: the chosen packages with their versions and
//! requirement edges, or for a failure the requests and which of them conflict (red).

use std::fmt::Write;
use std::time::Duration;

use super::{Explanation, PackageSource, Solution, SolveOptions, Solver};
use crate::option_map::OptionMap;
use crate::request::Request;
use crate::storage::PackageRepository;

/// Quotes a DOT string.
fn q(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

const HEADER: &str = "digraph spk {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n  edge [fontname=\"sans-serif\", fontsize=10];\n  \"requests\" [shape=ellipse];\n";

fn request_text(r: &Request) -> String {
    match r {
        Request::Pkg(p) => p.to_short_string(),
        other => other.to_string(),
    }
}

/// The solution: one node per package (version, build, components), an edge from the
/// requests to each requested package and from each package to those it requires.
pub fn solution_dot(requests: &[Request], solution: &Solution) -> String {
    let mut out = String::from(HEADER);
    for p in &solution.packages {
        let comps: Vec<&str> = p.components.iter().map(|c| c.as_str()).collect();
        let mut label = format!(
            "{}\n{}/{}\n[{}]",
            p.ident.name,
            p.ident.version,
            p.ident.build,
            comps.join(",")
        );
        let style = match &p.source {
            PackageSource::Repository => "solid",
            PackageSource::BuildFromSource => {
                label.push_str("\n(build from source)");
                "dashed"
            }
            PackageSource::Embedded { .. } => "dotted",
        };
        let _ = writeln!(
            out,
            "  {} [label={}, style={style}];",
            q(p.ident.name.as_str()),
            q(&label)
        );
    }
    for r in requests {
        if let Request::Pkg(p) = r {
            let _ = writeln!(
                out,
                "  \"requests\" -> {} [label={}];",
                q(p.name.as_str()),
                q(&request_text(r))
            );
        }
    }
    for p in &solution.packages {
        if let PackageSource::Embedded { parent } = &p.source {
            let _ = writeln!(
                out,
                "  {} -> {} [label=\"embeds\", style=dotted];",
                q(parent.name.as_str()),
                q(p.ident.name.as_str())
            );
        }
        let reqs = p
            .spec
            .requirements_for(&p.spec.resolve_components(&p.components));
        for r in &reqs {
            if let Request::Pkg(dep) = r {
                if solution.get(dep.name.as_str()).is_some() && dep.name != p.ident.name {
                    let _ = writeln!(
                        out,
                        "  {} -> {} [label={}];",
                        q(p.ident.name.as_str()),
                        q(dep.name.as_str()),
                        q(&request_text(r))
                    );
                }
            }
        }
    }
    out.push_str("}\n");
    out
}

/// A failed solve: the requests, each request that cannot be met even alone in red,
/// a red edge between every two requests that can each be met but not together, and
/// the solver's explanation as a note.
pub fn failure_dot(
    repo: &dyn PackageRepository,
    requests: &[Request],
    options: &OptionMap,
    explanation: &Explanation,
) -> String {
    let solves = |subset: &[Request]| {
        Solver::new(
            repo,
            SolveOptions {
                options: options.clone(),
                timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            },
        )
        .solve(subset)
        .is_ok()
    };
    let mut out = String::from(HEADER);
    let pkgs: Vec<&Request> = requests.iter().take(12).collect();
    let alone: Vec<bool> = pkgs.iter().map(|r| solves(&[(*r).clone()])).collect();
    for (i, r) in pkgs.iter().enumerate() {
        let color = if alone[i] { "black" } else { "red" };
        let _ = writeln!(
            out,
            "  \"r{i}\" [label={}, color={color}, fontcolor={color}];",
            q(&request_text(r))
        );
        let _ = writeln!(out, "  \"requests\" -> \"r{i}\" [color={color}];");
    }
    for i in 0..pkgs.len() {
        for j in i + 1..pkgs.len() {
            if alone[i] && alone[j] && !solves(&[pkgs[i].clone(), pkgs[j].clone()]) {
                let _ = writeln!(out, "  \"r{i}\" -> \"r{j}\" [label=\"conflict\", color=red, fontcolor=red, dir=none, style=bold];");
            }
        }
    }
    let mut why = explanation.summary.clone();
    for r in &explanation.reasons {
        why.push_str("\n- ");
        why.push_str(r);
    }
    let _ = writeln!(
        out,
        "  \"why\" [shape=note, color=red, fontcolor=red, label={}];",
        q(&why)
    );
    out.push_str("}\n");
    out
}
