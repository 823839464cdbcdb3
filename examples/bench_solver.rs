//! Solver benchmark on generated in-memory repositories; run through scripts/bench-solver.sh.
//!
//! (a) 1,000 packages x 20 versions x 3 builds with layered dependency fan-out, 200 random
//!     satisfiable requests; (b) a deep backtracking case; (c) an unsatisfiable request
//!     whose explanation is produced. Prints median and 90th percentile per case.

use std::time::{Duration, Instant};

use spk::request::{PkgRequest, Request};
use spk::solve::{SolveError, SolveOptions, Solver};
use spk::spec::{Opt, Spec, VarOpt};
use spk::storage::{fixtures, MemRepository, PackageRepository};
use spk::{OptionMap, Version, VersionIdent};

fn name(i: usize) -> String {
    format!("p{i:04}")
}

fn recipe(pkg: &str, version: &str, deps: &[(String, String)], flavors: bool) -> Spec {
    let mut s = Spec::new(VersionIdent::new(
        pkg.parse().unwrap(),
        version.parse::<Version>().unwrap(),
    ));
    for (d, range) in deps {
        let mut r: PkgRequest = d.parse().unwrap();
        r.range = range.parse().unwrap();
        s.install.requirements.push(Request::Pkg(r));
    }
    if flavors {
        s.build.options.push(Opt::Var(VarOpt {
            var: "flavor".parse().unwrap(),
            default: Some("a".into()),
            choices: vec!["a".into(), "b".into(), "c".into()],
            inheritance: Default::default(),
            description: None,
            static_value: None,
        }));
    }
    s
}

fn publish(repo: &MemRepository, spec: &Spec, builds: &[&str]) {
    repo.publish_recipe(spec, true).unwrap();
    for flavor in builds {
        let mut o = OptionMap::new();
        if !flavor.is_empty() {
            o.insert("flavor".parse().unwrap(), *flavor);
        }
        let b = spec.to_build_spec(&o, &[]).unwrap();
        repo.publish_build(&b, &fixtures::stub_layers(&b)).unwrap();
    }
}

/// Case (a): layered packages. Layer sizes 400/300/200/100; a package depends on 0-4
/// packages of lower layers, with caret, tilde, minimum or binary-compatible ranges whose
/// major depends on the depending version's major, so versions really constrain each other.
fn large_repo(rng: &mut fastrand::Rng) -> (MemRepository, usize) {
    let repo = MemRepository::new();
    let layers = [(0usize, 400usize), (400, 700), (700, 900), (900, 1000)];
    let mut count = 0;
    for (li, (start, end)) in layers.iter().enumerate() {
        for i in *start..*end {
            let fanout = if li == 0 { 0 } else { rng.usize(1..=4) };
            let deps: Vec<usize> = (0..fanout).map(|_| rng.usize(0..*start)).collect();
            for major in 1..=4u32 {
                for minor in 0..5u32 {
                    let dep_ranges: Vec<(String, String)> = deps
                        .iter()
                        .enumerate()
                        .map(|(k, d)| {
                            let dm = (major + k as u32 + *d as u32) % 4 + 1;
                            let range = match (d + k) % 4 {
                                0 => format!("^{dm}.0"),
                                1 => format!(">={dm}.1"),
                                2 => format!("~{dm}.{}", minor % 3),
                                _ => format!("{dm}.0"),
                            };
                            (name(*d), range)
                        })
                        .collect();
                    let spec = recipe(&name(i), &format!("{major}.{minor}.0"), &dep_ranges, true);
                    publish(&repo, &spec, &["a", "b", "c"]);
                    count += 3;
                }
            }
        }
    }
    (repo, count)
}

/// Case (b): 30 packages x 20 versions; version k of each needs `shared/^k`, while `final`
/// needs `shared/^1`: every package must be walked down to its oldest version.
fn backtracking_repo(unsat: bool) -> (MemRepository, Vec<Request>) {
    let repo = MemRepository::new();
    for k in 1..=20 {
        publish(
            &repo,
            &recipe("shared", &format!("{k}.0.0"), &[], false),
            &[""],
        );
    }
    let mut requests = Vec::new();
    for c in 0..30 {
        let pkg = format!("c{c:02}");
        for k in 1..=20u32 {
            // In the unsatisfiable variant, package c29 never accepts shared 1.
            let need = if unsat && c == 29 { k.max(2) } else { k };
            let spec = recipe(
                &pkg,
                &format!("{k}.0.0"),
                &[("shared".into(), format!("^{need}"))],
                false,
            );
            publish(&repo, &spec, &[""]);
        }
        requests.push(Request::Pkg(pkg.parse().unwrap()));
    }
    publish(
        &repo,
        &recipe("final", "1.0.0", &[("shared".into(), "^1".into())], false),
        &[""],
    );
    requests.push(Request::Pkg("final".parse().unwrap()));
    (repo, requests)
}

fn stats(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let median = times[times.len() / 2];
    let p90 = times[((times.len() as f64 * 0.9).ceil() as usize)
        .saturating_sub(1)
        .min(times.len() - 1)];
    (median, p90)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let mut rng = fastrand::Rng::with_seed(7);
    let t = Instant::now();
    let (repo, builds) = large_repo(&mut rng);
    let packages = repo.list_packages().unwrap().len();
    eprintln!(
        "generated case (a): {packages} packages, {builds} builds in {:.1?}",
        t.elapsed()
    );

    // (a) random requests among the upper layers; keep the satisfiable ones.
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    let mut tried = 0;
    while times.len() < 200 && tried < 2000 {
        tried += 1;
        let n = rng.usize(1..=3);
        let requests: Vec<Request> = (0..n)
            .map(|_| {
                let i = rng.usize(700..1000);
                let mut r: PkgRequest = name(i).parse().unwrap();
                if rng.bool() {
                    r.range = format!(">={}.0", rng.u32(1..=3)).parse().unwrap();
                }
                Request::Pkg(r)
            })
            .collect();
        let solver = Solver::new(&repo, SolveOptions::default());
        let start = Instant::now();
        let result = solver.solve(&requests);
        let elapsed = start.elapsed();
        if let Ok(solution) = result {
            times.push(elapsed);
            sizes.push(solution.packages.len());
        }
    }
    let (a_med, a_p90) = stats(times.clone());
    sizes.sort();
    eprintln!(
        "case (a): {} satisfiable of {tried} generated requests; solution sizes median {} max {}",
        times.len(),
        sizes[sizes.len() / 2],
        sizes[sizes.len() - 1]
    );

    // (b) deep backtracking.
    let (brepo, breqs) = backtracking_repo(false);
    let mut btimes = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let s = Solver::new(&brepo, SolveOptions::default())
            .solve(&breqs)
            .expect("case (b) is satisfiable");
        btimes.push(start.elapsed());
        assert_eq!(s.get("shared").unwrap().ident.version.to_string(), "1.0.0");
    }
    let (b_med, b_p90) = stats(btimes);

    // (c) unsatisfiable, explanation included in the timing.
    let (crepo, creqs) = backtracking_repo(true);
    let mut ctimes = Vec::new();
    let mut summary = String::new();
    for _ in 0..20 {
        let start = Instant::now();
        match Solver::new(&crepo, SolveOptions::default()).solve(&creqs) {
            Err(SolveError::NoSolution(e)) => summary = e.summary,
            other => panic!("case (c) must fail, got {other:?}"),
        }
        ctimes.push(start.elapsed());
    }
    let (c_med, c_p90) = stats(ctimes);
    eprintln!("case (c) explanation: {summary}");

    let ok = |d: Duration, limit_ms: f64| {
        if d.as_secs_f64() * 1000.0 <= limit_ms {
            "PASS"
        } else {
            "FAIL"
        }
    };
    println!("| case | runs | median | p90 | target | result |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| (a) 1,000 pkgs x 20 versions x 3 builds, random requests | {} | {} | {} | median <= 20 ms, p90 <= 100 ms | {} |",
        times.len(),
        ms(a_med),
        ms(a_p90),
        if ok(a_med, 20.0) == "PASS" && ok(a_p90, 100.0) == "PASS" { "PASS" } else { "FAIL" }
    );
    println!("| (b) deep backtracking (30 pkgs walked to their oldest version) | 20 | {} | {} | <= 1 s | {} |", ms(b_med), ms(b_p90), ok(b_p90, 1000.0));
    println!(
        "| (c) unsatisfiable, with explanation | 20 | {} | {} | <= 1 s | {} |",
        ms(c_med),
        ms(c_p90),
        ok(c_p90, 1000.0)
    );
}
