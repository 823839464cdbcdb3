//! Package repositories at scale; run through scripts/bench-scale.sh.
//!
//! For each size (package versions, 20 per package, 3 builds each, layered dependency
//! fan-out as in bench_solver), generates the same recipes into an on-disk spfs
//! repository and an in-memory one, and measures: publish time per recipe (first and
//! last tenth, and overall), `spk ls` and `spk ls NAME` (the release binary), the cold
//! first solve after the index is dropped (including its rebuild), a full
//! `spk index --rebuild`, and 200 random satisfiable solves on disk (a fresh repository
//! handle per solve, as in a new `spk env` process; and one long-lived handle) and in
//! memory. Prints one markdown table row per size.
//!
//! Usage: bench_scale --dir DIR --spk PATH SIZE...   ($PUBLISHERS concurrent publishers,
//! default 4; $BATCH packages of 20 recipes per publish call, default 50)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use spk::request::{PkgRequest, Request};
use spk::solve::{SolveOptions, Solver};
use spk::spec::Spec;
use spk::storage::{bulk, MemRepository, PackageRepository, SpfsRepository};
use spk::OptionMap;

#[path = "common/layered.rs"]
mod layered;

fn name(i: usize) -> String {
    format!("p{i:05}")
}

fn stats(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p90 = ((times.len() as f64 * 0.9).ceil() as usize).clamp(1, times.len()) - 1;
    (ms(times[times.len() / 2]), ms(times[p90]))
}

fn median_ms(mut f: impl FnMut() -> Duration, runs: usize) -> f64 {
    stats((0..runs).map(|_| f()).collect()).0
}

fn run_spk(spk: &Path, root: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(spk)
        .arg("--repo")
        .arg(root)
        .args(args)
        .output()
        .expect("run spk");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "spk {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// Concurrent publishers: `$PUBLISHERS`, default 4.
fn publishers() -> usize {
    std::env::var("PUBLISHERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// Packages per publish call: `$BATCH`, default 50.
fn batch_packages() -> usize {
    std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// Read and write system calls of this process so far (`/proc/self/io`).
fn syscalls() -> u64 {
    let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            matches!(k, "syscr" | "syscw").then(|| v.trim().parse::<u64>().ok())?
        })
        .sum()
}

struct Row {
    versions: usize,
    packages: usize,
    /// Per recipe in the first and last tenth: tag directories listed, read/write calls.
    work_first: (f64, f64),
    work_last: (f64, f64),
    publish_total: f64,
    per_recipe_first: f64,
    per_recipe_last: f64,
    per_recipe: f64,
    ls: f64,
    ls_name: f64,
    cold_solve: f64,
    rebuild: f64,
    fresh: (f64, f64),
    warm: (f64, f64),
    mem: (f64, f64),
    explain: f64,
}

fn measure(versions: usize, dir: &Path, spk: &Path) -> Row {
    let mut rng = fastrand::Rng::with_seed(11);
    let (packages, upper) = layered::layered(versions, name, &mut rng);
    let root = dir.join(format!("repo-{versions}"));
    let _ = std::fs::remove_dir_all(&root);
    let disk = SpfsRepository::open_or_create(&root).unwrap();
    let recipes: usize = packages.iter().map(Vec::len).sum();

    // Publish $BATCH packages (default 50: 1,000 recipes with their stub builds) per
    // call, as `spk publish --stub-builds DIR` does for a directory holding them. Besides
    // time (which the disk's flushes dominate, and other work on the machine disturbs),
    // count the work per recipe: tag directories listed and read/write system calls.
    // $PUBLISHERS processes would do the same; threads share one handle here.
    let batches: Vec<Vec<Spec>> = packages
        .chunks(batch_packages())
        .map(|c| c.concat())
        .collect();
    let slots: Vec<std::sync::Mutex<(f64, (f64, f64))>> = (0..batches.len())
        .map(|_| std::sync::Mutex::new((0.0, (0.0, 0.0))))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..publishers() {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(specs) = batches.get(i) else { break };
                let t = Instant::now();
                let (dirs0, calls0) = (spfs::storage::tag_dirs_read(), syscalls());
                bulk::publish_specs(&disk, specs, &OptionMap::new(), true, false).unwrap();
                let k = specs.len() as f64;
                *slots[i].lock().unwrap() = (
                    t.elapsed().as_secs_f64() * 1000.0 / k,
                    (
                        (spfs::storage::tag_dirs_read() - dirs0) as f64 / k,
                        // Process-wide counter: with several publishers, only the
                        // growth of this figure is meaningful.
                        (syscalls() - calls0) as f64 / k,
                    ),
                );
            });
        }
    });
    let publish_total = start.elapsed().as_secs_f64();
    let (per_package, work): (Vec<f64>, Vec<(f64, f64)>) =
        slots.into_iter().map(|m| m.into_inner().unwrap()).unzip();
    let tenth_w = (work.len() / 10).max(1);
    let avg2 = |s: &[(f64, f64)]| {
        let n = s.len() as f64;
        (
            s.iter().map(|w| w.0).sum::<f64>() / n,
            s.iter().map(|w| w.1).sum::<f64>() / n,
        )
    };
    let work_first = avg2(&work[..tenth_w]);
    let work_last = avg2(&work[work.len() - tenth_w..]);
    let tenth = (per_package.len() / 10).max(1);
    let avg = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let per_recipe_first = avg(&per_package[..tenth]);
    let per_recipe_last = avg(&per_package[per_package.len() - tenth..]);
    let per_recipe = publish_total * 1000.0 / recipes as f64;
    eprintln!(
        "{versions}: published {recipes} recipes in {publish_total:.1} s with {} publishers, {} packages per batch",
        publishers(),
        batch_packages()
    );

    let mem = MemRepository::new();
    for specs in &packages {
        bulk::publish_specs(&mem, specs, &OptionMap::new(), true, false).unwrap();
    }

    // Random satisfiable requests among the upper layers, found on the memory repository.
    let mut requests: Vec<Vec<Request>> = Vec::new();
    let n = packages.len();
    let mut tried = 0;
    while requests.len() < 200 && tried < 5000 {
        tried += 1;
        let reqs: Vec<Request> = (0..rng.usize(1..=3))
            .map(|_| {
                let mut r: PkgRequest = name(rng.usize(upper..n)).parse().unwrap();
                if rng.bool() {
                    r.range = format!(">={}.0", rng.u32(1..=3)).parse().unwrap();
                }
                Request::Pkg(r)
            })
            .collect();
        if Solver::new(&mem, SolveOptions::default())
            .solve(&reqs)
            .is_ok()
        {
            requests.push(reqs);
        }
    }

    // Let the last directory stamps settle (see docs/spk-storage.md), as they have in
    // any repository that was not written in the last two seconds.
    std::thread::sleep(Duration::from_millis(2500));

    // Cold: no index at all; the first solve builds what it touches.
    let index_dir = root.join(spk::storage::index::INDEX_DIR);
    let _ = std::fs::remove_dir_all(&index_dir);
    let cold = SpfsRepository::open(&root).unwrap();
    let t = Instant::now();
    Solver::new(&cold, SolveOptions::default())
        .solve(&requests[0])
        .expect("cold solve");
    let cold_solve = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&index_dir);
    let t = Instant::now();
    let indexed = SpfsRepository::open(&root)
        .unwrap()
        .rebuild_index()
        .unwrap();
    let rebuild = t.elapsed().as_secs_f64();
    assert_eq!(indexed, n);

    let ls = median_ms(|| run_spk(spk, &root, &["ls"]), 5);
    let ls_name = median_ms(|| run_spk(spk, &root, &["ls", &name(n / 2)]), 5);

    // Fresh handle per solve: what each new process pays (index files, page cache warm).
    let fresh: Vec<Duration> = requests
        .iter()
        .map(|r| {
            let t = Instant::now();
            let repo = SpfsRepository::open(&root).unwrap();
            Solver::new(&repo, SolveOptions::default())
                .solve(r)
                .expect("same data as in memory");
            t.elapsed()
        })
        .collect();
    // One long-lived handle: indexes stay parsed, each use re-validates their stamps.
    let warm_repo = SpfsRepository::open(&root).unwrap();
    for r in &requests {
        Solver::new(&warm_repo, SolveOptions::default())
            .solve(r)
            .unwrap();
    }
    let timed = |repo: &dyn PackageRepository| -> Vec<Duration> {
        requests
            .iter()
            .map(|r| {
                let t = Instant::now();
                Solver::new(repo, SolveOptions::default()).solve(r).unwrap();
                t.elapsed()
            })
            .collect()
    };
    let warm = timed(&warm_repo);
    let memt = timed(&mem);
    let explain = median_ms(
        || {
            let args: Vec<String> = requests[rng.usize(0..requests.len())]
                .iter()
                .map(|r| r.to_string())
                .collect();
            let mut a: Vec<&str> = vec!["explain", "--no-host"];
            a.extend(args.iter().map(String::as_str));
            run_spk(spk, &root, &a)
        },
        21,
    );
    Row {
        versions,
        packages: n,
        work_first,
        work_last,
        publish_total,
        per_recipe_first,
        per_recipe_last,
        per_recipe,
        ls,
        ls_name,
        cold_solve,
        rebuild,
        fresh: stats(fresh),
        warm: stats(warm),
        mem: stats(memt),
        explain,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = std::env::temp_dir().join("spk-bench-scale");
    let mut spk = PathBuf::from("target/release/spk");
    let mut sizes = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = PathBuf::from(args.next().expect("--dir DIR")),
            "--spk" => spk = PathBuf::from(args.next().expect("--spk PATH")),
            s => sizes.push(s.parse::<usize>().expect("sizes are numbers of versions")),
        }
    }
    if sizes.is_empty() {
        sizes = vec![10_000, 50_000, 100_000];
    }
    std::fs::create_dir_all(&dir).unwrap();
    let mut rows = Vec::new();
    for &s in &sizes {
        let row = measure(s, &dir, &spk);
        print_row(&row, rows.first());
        rows.push(row);
    }
    // Removed only at the end: ext4 without a journal scans past inodes freed in the
    // last minutes when it allocates new ones, so removing one size's repository right
    // before publishing the next would slow that publish for reasons of its own.
    for s in sizes {
        let _ = std::fs::remove_dir_all(dir.join(format!("repo-{s}")));
    }
}

fn print_row(r: &Row, base: Option<&Row>) {
    if base.is_none() {
        println!("| versions (packages) | publish total | per recipe: first 10% / last 10% / all | per recipe, first / last 10%: tag dirs listed, read+write calls | `spk ls` | `spk ls NAME` | cold first solve (index dropped) | `index --rebuild` | solve, fresh handle: median / p90 | solve, long-lived handle: median / p90 | in memory: median / p90 | disk fresh / memory (median) | `spk explain` (process) |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    }
    println!(
        "| {} ({}) | {:.1} s | {:.2} / {:.2} / {:.2} ms | {:.1}, {:.0} / {:.1}, {:.0} | {:.1} ms | {:.1} ms | {:.2} s | {:.1} s | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.1}× | {:.1} ms |",
        r.versions,
        r.packages,
        r.publish_total,
        r.per_recipe_first,
        r.per_recipe_last,
        r.per_recipe,
        r.work_first.0,
        r.work_first.1,
        r.work_last.0,
        r.work_last.1,
        r.ls,
        r.ls_name,
        r.cold_solve,
        r.rebuild,
        r.fresh.0,
        r.fresh.1,
        r.warm.0,
        r.warm.1,
        r.mem.0,
        r.mem.1,
        r.fresh.0 / r.mem.0,
        r.explain,
    );
    if let Some(b) = base {
        println!(
            "|   growth vs {} | {:.2}× | per recipe {:.2}× | calls per recipe {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | | {:.2}× |",
            b.versions,
            r.publish_total / b.publish_total,
            r.per_recipe / b.per_recipe,
            r.work_last.1 / b.work_last.1,
            r.ls / b.ls,
            r.ls_name / b.ls_name,
            r.cold_solve / b.cold_solve,
            r.rebuild / b.rebuild,
            r.fresh.0 / b.fresh.0,
            r.warm.0 / b.warm.0,
            r.mem.0 / b.mem.0,
            r.explain / b.explain,
        );
    }
}
