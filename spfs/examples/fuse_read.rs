//! Read throughput and metadata walk through the FUSE mount, against the same payload
//! files read natively, all in one process with a warm page cache.
//!
//! Run as root (it mounts in a private mount namespace of its own):
//!
//! ```text
//! cargo run --release -p spfs --example fuse_read -- [--files 3] [--mib 100] [--small 20000] [--dir DIR]
//! ```

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use spfs::commit::{commit_tree, CommitOptions};
use spfs::object::Manifest;
use spfs::progress::Progress;
use spfs::runtime::fuse::{FuseMount, FuseOptions};
use spfs::storage::LocalRepository;

#[derive(Parser)]
struct Args {
    /// Number of large files.
    #[arg(long, default_value_t = 3)]
    files: usize,
    /// Size of each large file in MiB.
    #[arg(long, default_value_t = 100)]
    mib: usize,
    /// Number of small files for the metadata walk.
    #[arg(long, default_value_t = 20_000)]
    small: usize,
    /// Scratch directory (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Read buffer size in KiB.
    #[arg(long, default_value_t = 1024)]
    buf_kib: usize,
    /// Repetitions of each measurement; the best is kept.
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("fuse_read: run as root (it mounts FUSE in a private mount namespace)");
        std::process::exit(2);
    }
    // Before any thread exists.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare");
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("making / private");

    let tmp = match &args.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("scratch directory");
    let src = tmp.path().join("src");
    println!(
        "generating {} x {} MiB and {} small files in {}",
        args.files,
        args.mib,
        args.small,
        src.display()
    );
    generate(&src, &args);
    let repo = LocalRepository::create(&tmp.path().join("repo")).unwrap();
    let manifest = commit_tree(
        &repo,
        &src,
        None,
        &CommitOptions::default(),
        &Progress::hidden(),
    )
    .unwrap();
    let big: Vec<PathBuf> = (0..args.files)
        .map(|i| PathBuf::from(format!("big/file-{i}")))
        .collect();
    let payloads: Vec<PathBuf> = big
        .iter()
        .map(|rel| {
            let entry = manifest.get(rel.as_os_str().as_encoded_bytes()).unwrap();
            match entry.kind {
                spfs::object::EntryKind::File { digest, .. } => repo.payload_path(&digest),
                _ => unreachable!("generated as files"),
            }
        })
        .collect();
    let total = (args.files * args.mib) as f64 * 1024.0 * 1024.0;
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();

    // Native: the payload files themselves, page cache warm.
    read_all(&payloads, args.buf_kib);
    let native = best(args.reps, || read_all(&payloads, args.buf_kib));

    let mut rows = Vec::new();
    for passthrough in [false, true] {
        // First read of each file through a fresh mount: nothing of it in the FUSE
        // inode's cache yet (the payload itself is cached).
        let mut active = false;
        let first = best(args.reps, || {
            let m = mount(&repo, &manifest, &mnt, passthrough);
            active = m.passthrough_active();
            let paths: Vec<PathBuf> = big.iter().map(|r| mnt.join(r)).collect();
            let t = read_all(&paths, args.buf_kib);
            m.unmount().unwrap();
            t
        });
        // Re-reads on one mount: the kernel serves them from its cache.
        let m = mount(&repo, &manifest, &mnt, passthrough);
        let paths: Vec<PathBuf> = big.iter().map(|r| mnt.join(r)).collect();
        read_all(&paths, args.buf_kib);
        let warm = best(args.reps, || read_all(&paths, args.buf_kib));
        m.unmount().unwrap();
        let label = if passthrough {
            format!("passthrough {}", if active { "on" } else { "(refused)" })
        } else {
            "passthrough off".to_string()
        };
        rows.push((label, first, warm));
    }

    println!();
    println!(
        "sequential read, {} MiB total, {} KiB buffer:",
        total as u64 >> 20,
        args.buf_kib
    );
    println!(
        "  {:<28} {:>10.0} MB/s   (baseline)",
        "native payload files",
        mbps(total, native)
    );
    for (label, first, warm) in &rows {
        println!(
            "  {:<28} {:>10.0} MB/s   {:.2}x native",
            format!("FUSE {label}, first read"),
            mbps(total, *first),
            native.as_secs_f64() / first.as_secs_f64()
        );
        println!(
            "  {:<28} {:>10.0} MB/s   {:.2}x native",
            format!("FUSE {label}, re-read"),
            mbps(total, *warm),
            native.as_secs_f64() / warm.as_secs_f64()
        );
    }

    // Metadata: readdir + lstat of every entry, like `find -ls`.
    let native_count = walk(&src);
    let native_walk = best(args.reps, || {
        let t = Instant::now();
        walk(&src);
        t.elapsed()
    });
    let mut cold_walk = Duration::MAX;
    let mut fuse_count = 0;
    for _ in 0..args.reps {
        let m = mount(&repo, &manifest, &mnt, false);
        let t = Instant::now();
        fuse_count = walk(&mnt);
        cold_walk = cold_walk.min(t.elapsed());
        m.unmount().unwrap();
    }
    let m = mount(&repo, &manifest, &mnt, false);
    walk(&mnt);
    let warm_walk = best(args.reps, || {
        let t = Instant::now();
        walk(&mnt);
        t.elapsed()
    });
    m.unmount().unwrap();
    assert_eq!(native_count, fuse_count, "the walks saw different trees");

    println!();
    println!("metadata walk (readdir + lstat), {native_count} entries:");
    println!(
        "  {:<28} {:>10.1} ms     (baseline)",
        "native source tree",
        ms(native_walk)
    );
    println!(
        "  {:<28} {:>10.1} ms     {:.2}x native time",
        "FUSE, fresh mount",
        ms(cold_walk),
        cold_walk.as_secs_f64() / native_walk.as_secs_f64()
    );
    println!(
        "  {:<28} {:>10.1} ms     {:.2}x native time",
        "FUSE, cached",
        ms(warm_walk),
        warm_walk.as_secs_f64() / native_walk.as_secs_f64()
    );
}

fn mount(repo: &LocalRepository, manifest: &Manifest, at: &Path, passthrough: bool) -> FuseMount {
    FuseMount::mount(
        repo,
        manifest.clone(),
        at,
        &FuseOptions {
            passthrough,
            fallback: None,
        },
    )
    .unwrap()
}

fn mbps(bytes: f64, t: Duration) -> f64 {
    bytes / t.as_secs_f64() / 1e6
}

fn ms(t: Duration) -> f64 {
    t.as_secs_f64() * 1e3
}

fn best(reps: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..reps.max(1)).map(|_| f()).min().unwrap()
}

fn read_all(paths: &[PathBuf], buf_kib: usize) -> Duration {
    let mut buf = vec![0u8; buf_kib.max(1) << 10];
    let start = Instant::now();
    let mut sum = 0u64;
    for p in paths {
        let mut f = fs::File::open(p).unwrap();
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            sum = sum.wrapping_add(buf[n - 1] as u64);
        }
    }
    std::hint::black_box(sum);
    start.elapsed()
}

fn walk(root: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            count += 1;
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    count
}

fn generate(src: &Path, args: &Args) {
    let big = src.join("big");
    fs::create_dir_all(&big).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..args.files {
        let mut f = fs::File::create(big.join(format!("file-{i}"))).unwrap();
        for _ in 0..args.mib {
            for word in chunk.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            std::io::Write::write_all(&mut f, &chunk).unwrap();
        }
    }
    // 20 top-level dirs x 10 subdirs x N files.
    let per_dir = args.small.div_ceil(200).max(1);
    let mut made = 0;
    'outer: for a in 0..20 {
        for b in 0..10 {
            let dir = src.join(format!("small/top-{a:02}/sub-{b}"));
            fs::create_dir_all(&dir).unwrap();
            for c in 0..per_dir {
                if made == args.small {
                    break 'outer;
                }
                fs::write(
                    dir.join(format!("file-{c:03}.txt")),
                    format!("{a} {b} {c}\n"),
                )
                .unwrap();
                made += 1;
            }
        }
    }
}
