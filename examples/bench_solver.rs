//! Solver benchmark on generated repositories; run through scripts/bench-solver.sh.
//!
//! (a) 1,000 packages x 20 versions x 3 builds with layered dependency fan-out, 200 random
//!     satisfiable requests; (b) a deep backtracking case; (c) an unsatisfiable request
//!     whose explanation is produced. Each case runs on the in-memory repository and on
//!     the same data published into an on-disk spfs repository (through its package
//!     index): with a fresh repository handle per solve, as a new `spk` process has, and
//!     with one long-lived handle. Prints median and 90th percentile per case.

use std::time::{Duration, Instant};

use spk::request::{PkgRequest, Request};
use spk::solve::{SolveError, SolveOptions, Solver};
use spk::spec::Spec;
use spk::storage::{bulk, MemRepository, PackageRepository, SpfsRepository};
use spk::OptionMap;

fn name(i: usize) -> String {
    format!("p{i:04}")
}

#[path = "common/layered.rs"]
mod layered;

use layered::recipe;

/// Publishes into every repository given.
fn publish(repos: &[&dyn PackageRepository], spec: &Spec, builds: &[&str]) {
    let builds: Vec<Spec> = builds
        .iter()
        .map(|flavor| {
            let mut o = OptionMap::new();
            if !flavor.is_empty() {
                o.insert("flavor".parse().unwrap(), *flavor);
            }
            spec.to_build_spec(&o, &[]).unwrap()
        })
        .collect();
    let batch: Vec<(&Spec, _)> = builds.iter().map(|b| (b, bulk::stub_layers(b))).collect();
    for repo in repos {
        repo.publish_batch(&[spec], &batch, true).unwrap();
    }
}

/// Case (a): 1,000 layered packages x 20 versions (see [`layered::layered`]), each version published
/// with three flavored builds. Returns the number of builds.
fn large_repo(rng: &mut fastrand::Rng, repo: &[&dyn PackageRepository]) -> usize {
    let (packages, _) = layered::layered(20_000, name, rng);
    let mut count = 0;
    for spec in packages.iter().flatten() {
        publish(repo, spec, &["a", "b", "c"]);
        count += 3;
    }
    count
}

/// Case (b): 30 packages x 20 versions; version k of each needs `shared/^k`, while `final`
/// needs `shared/^1`: every package must be walked down to its oldest version.
fn backtracking_repo(unsat: bool, repo: &[&dyn PackageRepository]) -> Vec<Request> {
    for k in 1..=20 {
        publish(
            repo,
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
            publish(repo, &spec, &[""]);
        }
        requests.push(Request::Pkg(pkg.parse().unwrap()));
    }
    publish(
        repo,
        &recipe("final", "1.0.0", &[("shared".into(), "^1".into())], false),
        &[""],
    );
    requests.push(Request::Pkg("final".parse().unwrap()));
    requests
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

/// Times `runs` solves of `requests` on a repository made by `open` (called per solve
/// when `fresh`, else once), checking each result with `check`.
fn time_solves(
    open: &dyn Fn() -> Box<dyn PackageRepository>,
    fresh: bool,
    requests: &[Vec<Request>],
    check: &dyn Fn(&Result<spk::solve::Solution, SolveError>),
) -> Vec<Duration> {
    let long_lived = open();
    // One untimed pass first: the package indexes exist, as in a repository in service
    // (the cold first solve is measured by scripts/bench-scale.sh), and the long-lived
    // handle has read everything once, as a running service would have.
    for r in requests {
        check(&Solver::new(long_lived.as_ref(), SolveOptions::default()).solve(r));
    }
    requests
        .iter()
        .map(|r| {
            let start = Instant::now();
            let handle = if fresh { Some(open()) } else { None };
            let repo = handle.as_deref().unwrap_or(long_lived.as_ref());
            let result = Solver::new(repo, SolveOptions::default()).solve(r);
            let elapsed = start.elapsed();
            check(&result);
            elapsed
        })
        .collect()
}

struct Case {
    label: &'static str,
    target: &'static str,
    limits: (f64, f64),
    mem: (Duration, Duration),
    fresh: (Duration, Duration),
    warm: (Duration, Duration),
    runs: usize,
}

fn main() {
    let disk_dir = tempfile::tempdir().expect("temporary directory");
    let open_disk = |name: &str| {
        let root = disk_dir.path().join(name);
        SpfsRepository::open_or_create(&root).expect("on-disk repository");
        move || -> Box<dyn PackageRepository> {
            Box::new(SpfsRepository::open(&root).expect("on-disk repository"))
        }
    };
    let mut cases = Vec::new();

    let mut rng = fastrand::Rng::with_seed(7);
    let t = Instant::now();
    let repo = MemRepository::new();
    let disk_a = open_disk("a");
    let disk = disk_a();
    let builds = large_repo(&mut rng, &[&repo, disk.as_ref()]);
    let packages = repo.list_packages().unwrap().len();
    eprintln!(
        "generated case (a): {packages} packages, {builds} builds (in memory and on disk) in {:.1?}",
        t.elapsed()
    );

    // (a) random requests among the upper layers; keep the satisfiable ones.
    let mut requests = Vec::new();
    let mut sizes = Vec::new();
    let mut tried = 0;
    while requests.len() < 200 && tried < 2000 {
        tried += 1;
        let n = rng.usize(1..=3);
        let reqs: Vec<Request> = (0..n)
            .map(|_| {
                let i = rng.usize(700..1000);
                let mut r: PkgRequest = name(i).parse().unwrap();
                if rng.bool() {
                    r.range = format!(">={}.0", rng.u32(1..=3)).parse().unwrap();
                }
                Request::Pkg(r)
            })
            .collect();
        if let Ok(solution) = Solver::new(&repo, SolveOptions::default()).solve(&reqs) {
            sizes.push(solution.packages.len());
            requests.push(reqs);
        }
    }
    sizes.sort();
    eprintln!(
        "case (a): {} satisfiable of {tried} generated requests; solution sizes median {} max {}",
        requests.len(),
        sizes[sizes.len() / 2],
        sizes[sizes.len() - 1]
    );
    // Directory stamps younger than two seconds are re-read on every use (see
    // docs/spk-storage.md); a repository in service was not all written just now.
    std::thread::sleep(Duration::from_millis(2500));
    let ok = |r: &Result<spk::solve::Solution, SolveError>| {
        r.as_ref().expect("satisfiable on every repository");
    };
    let mem_times: Vec<Duration> = requests
        .iter()
        .map(|r| {
            let start = Instant::now();
            Solver::new(&repo, SolveOptions::default())
                .solve(r)
                .unwrap();
            start.elapsed()
        })
        .collect();
    cases.push(Case {
        label: "(a) 1,000 pkgs x 20 versions x 3 builds, random requests",
        target: "median <= 20 ms, p90 <= 100 ms",
        limits: (20.0, 100.0),
        mem: stats(mem_times),
        fresh: stats(time_solves(&disk_a, true, &requests, &ok)),
        warm: stats(time_solves(&disk_a, false, &requests, &ok)),
        runs: requests.len(),
    });

    // (b) deep backtracking.
    let brepo = MemRepository::new();
    let disk_b = open_disk("b");
    let breqs = backtracking_repo(false, &[&brepo, disk_b().as_ref()]);
    // (c) unsatisfiable, explanation included in the timing.
    let crepo = MemRepository::new();
    let disk_c = open_disk("c");
    let creqs = backtracking_repo(true, &[&crepo, disk_c().as_ref()]);
    std::thread::sleep(Duration::from_millis(2500));
    let b_ok = |r: &Result<spk::solve::Solution, SolveError>| {
        let s = r.as_ref().expect("case (b) is satisfiable");
        assert_eq!(s.get("shared").unwrap().ident.version.to_string(), "1.0.0");
    };
    let summary = std::cell::RefCell::new(String::new());
    let c_fails = |r: &Result<spk::solve::Solution, SolveError>| match r {
        Err(SolveError::NoSolution(e)) => *summary.borrow_mut() = e.summary.clone(),
        other => panic!("case (c) must fail, got {other:?}"),
    };
    let twenty = |reqs: &Vec<Request>| vec![reqs.clone(); 20];
    let mem_b: &MemRepository = &brepo;
    let mem_c: &MemRepository = &crepo;
    let timed_mem =
        |repo: &MemRepository,
         reqs: &[Vec<Request>],
         check: &dyn Fn(&Result<spk::solve::Solution, SolveError>)| {
            reqs.iter()
                .map(|r| {
                    let start = Instant::now();
                    let result = Solver::new(repo, SolveOptions::default()).solve(r);
                    let elapsed = start.elapsed();
                    check(&result);
                    elapsed
                })
                .collect::<Vec<_>>()
        };
    cases.push(Case {
        label: "(b) deep backtracking (30 pkgs walked to their oldest version)",
        target: "<= 1 s",
        limits: (f64::INFINITY, 1000.0),
        mem: stats(timed_mem(mem_b, &twenty(&breqs), &b_ok)),
        fresh: stats(time_solves(&disk_b, true, &twenty(&breqs), &b_ok)),
        warm: stats(time_solves(&disk_b, false, &twenty(&breqs), &b_ok)),
        runs: 20,
    });
    cases.push(Case {
        label: "(c) unsatisfiable, with explanation",
        target: "<= 1 s",
        limits: (f64::INFINITY, 1000.0),
        mem: stats(timed_mem(mem_c, &twenty(&creqs), &c_fails)),
        fresh: stats(time_solves(&disk_c, true, &twenty(&creqs), &c_fails)),
        warm: stats(time_solves(&disk_c, false, &twenty(&creqs), &c_fails)),
        runs: 20,
    });
    eprintln!("case (c) explanation: {}", summary.borrow());

    let pass = |(med, p90): (Duration, Duration), (lm, lp): (f64, f64)| {
        if med.as_secs_f64() * 1000.0 <= lm && p90.as_secs_f64() * 1000.0 <= lp {
            "PASS"
        } else {
            "FAIL"
        }
    };
    println!("| case | repository | runs | median | p90 | vs memory (median) | target | result |");
    println!("|---|---|---|---|---|---|---|---|");
    for c in &cases {
        for (repo, t) in [
            ("in memory", c.mem),
            ("on disk, fresh handle per solve", c.fresh),
            ("on disk, long-lived handle", c.warm),
        ] {
            println!(
                "| {} | {repo} | {} | {} | {} | {:.1}× | {} | {} |",
                c.label,
                c.runs,
                ms(t.0),
                ms(t.1),
                t.0.as_secs_f64() / c.mem.0.as_secs_f64(),
                c.target,
                pass(t, c.limits)
            );
        }
    }
}
