//! Garbage collection: `spfs clean` (docs/gc.md).
//!
//! Mark and sweep in two phases. Phase one, without any lock: prune tag histories,
//! list every object and payload with its modification time, and mark what tags, live
//! or kept runtimes and young objects (newer than the grace period) reach. Phase two,
//! holding the collection lock exclusively (no writer is between relying on content
//! and publishing what refers to it): mark again from tags and runtimes as they are
//! now and from objects that appeared or were refreshed since, then delete what is
//! still unmarked and old. Any error while marking aborts before anything is deleted.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;

use crate::digest::{is_hex, Digest};
use crate::error::{Error, IoContext, Result};
use crate::object::Object;
use crate::runtime::record::{self, RuntimeState};
use crate::storage::{LocalRepository, TagEntry};

/// Which tag history versions to drop before marking. Keep rules win over prune
/// rules; the current version (index 0) is never pruned.
#[derive(Debug, Clone, Default)]
pub struct PruneRules {
    /// Drop versions whose target a newer version also points at.
    pub prune_repeated: bool,
    /// Drop versions older than this.
    pub prune_if_older_than: Option<Duration>,
    /// Keep versions newer than this.
    pub keep_if_newer_than: Option<Duration>,
    /// Drop versions at index N and beyond.
    pub prune_if_more_than: Option<usize>,
    /// Keep versions at indexes below N.
    pub keep_if_less_than: Option<usize>,
}

impl PruneRules {
    /// True if any rule can prune something.
    pub fn any(&self) -> bool {
        self.prune_repeated
            || self.prune_if_older_than.is_some()
            || self.prune_if_more_than.is_some()
    }

    /// Whether version `index` of `history` (newest first) goes, at time `now`.
    pub fn prunes(&self, index: usize, entry: &TagEntry, history: &[TagEntry], now: u64) -> bool {
        if index == 0 {
            return false;
        }
        let age = now.saturating_sub(entry.time);
        if self.keep_if_newer_than.is_some_and(|d| age < d.as_secs())
            || self.keep_if_less_than.is_some_and(|n| index < n)
        {
            return false;
        }
        (self.prune_repeated && history[..index].iter().any(|e| e.target == entry.target))
            || self.prune_if_older_than.is_some_and(|d| age > d.as_secs())
            || self.prune_if_more_than.is_some_and(|n| index >= n)
    }
}

/// How to clean.
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// Objects, payloads and renders younger than this are kept.
    pub grace: Duration,
    /// Report what would be removed; change nothing.
    pub dry_run: bool,
    /// Tag history pruning.
    pub prune: PruneRules,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            grace: Duration::from_secs(15 * 60),
            dry_run: false,
            prune: PruneRules::default(),
        }
    }
}

/// What a clean removed (or, for a dry run, would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanReport {
    /// Tag history versions pruned.
    pub tag_versions: usize,
    /// Objects and payloads marked reachable (or young).
    pub kept: usize,
    /// Objects removed.
    pub objects: usize,
    /// Payloads removed.
    pub payloads: usize,
    /// Cached renders removed.
    pub renders: usize,
    /// Per-mode payload proxies removed.
    pub proxies: usize,
    /// Stale temporary files and directories removed.
    pub temporaries: usize,
    /// Bytes of objects, payloads and proxies removed.
    pub bytes: u64,
    /// Digests referenced but missing (nothing to protect; `spfs check` reports them).
    pub missing: usize,
    /// Kept image views of the repository dropped (they could hold removed payloads'
    /// space until they expire).
    pub views: usize,
}

/// A file's modification time in nanoseconds since the epoch.
fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec())
}

/// A stored file: digest, modification time (nanoseconds), size.
type Listing = HashMap<Digest, (i64, u64)>;

/// Parses a duration like `15m`, `30s`, `12h`, `7d`, `2w` or `0`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let bad = || Error::InvalidDuration(text.to_string());
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "" if n == 0 => 0,
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).map(Duration::from_secs).ok_or_else(bad)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Threads for clean's file-system work: it waits on metadata I/O (stat, open,
/// unlink) far more than it computes, so more requests in flight than cores help.
const IO_THREADS: usize = 16;

/// Cleans `repo`: see the module documentation and docs/gc.md.
pub fn clean(repo: &LocalRepository, opts: &CleanOptions) -> Result<CleanReport> {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(IO_THREADS)
        .build()
    {
        Ok(pool) => pool.install(|| clean_in_pool(repo, opts)),
        Err(_) => clean_in_pool(repo, opts),
    }
    .map(|mut report| {
        if !opts.dry_run && report.payloads > 0 {
            report.views = crate::runtime::image::keeper::forget_repo(repo);
        }
        report
    })
}

fn clean_in_pool(repo: &LocalRepository, opts: &CleanOptions) -> Result<CleanReport> {
    let mut report = CleanReport::default();
    let started = now_secs();
    // A file is young if modified at or after the cutoff (nanoseconds).
    let cutoff = SystemTime::now()
        .checked_sub(opts.grace)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);

    // Phase one: prune, list, mark.
    let mut pruned: HashSet<(String, Digest, u64)> = HashSet::new();
    if opts.prune.any() {
        for name in repo.list_tags("")? {
            let rule = |i: usize, e: &TagEntry, h: &[TagEntry]| opts.prune.prunes(i, e, h, started);
            if opts.dry_run {
                let history = repo.tag_history(&name)?;
                for (i, e) in history.iter().enumerate() {
                    if rule(i, e, &history) {
                        pruned.insert((name.clone(), e.target, e.time));
                    }
                }
            } else {
                report.tag_versions += repo.prune_tag_history(&name, &rule)?;
            }
        }
        report.tag_versions += pruned.len();
    }
    // Names first (directory entries only); a file's time and size are read only
    // for what marking from tags and runtimes left unmarked: on a store that is
    // mostly reachable, most objects are never stat'ed.
    let Area {
        digests: objects,
        mut stages,
    } = list_area(repo, "objects")?;
    let mut marker = Marker::new(repo);
    let mut roots = tag_roots(repo, &pruned)?;
    roots.extend(runtime_roots(repo)?);
    marker.mark(roots)?;
    let unmarked = stat_area(repo, "objects", unmarked_of(&objects, &marker.marked))?;
    marker.mark(
        unmarked
            .iter()
            .filter(|(_, (mtime, _))| *mtime >= cutoff)
            .map(|(d, _)| *d)
            .collect(),
    )?;
    drop(unmarked);
    let candidates: HashSet<Digest> = unmarked_of(&objects, &marker.marked).collect();
    drop(objects);

    // Phase two: under the exclusive lock, mark what changed meanwhile, then sweep.
    let _guard = if opts.dry_run {
        None
    } else {
        Some(repo.collect_guard()?)
    };
    let mut roots = tag_roots(repo, &pruned)?;
    roots.extend(runtime_roots(repo)?);
    marker.mark(roots)?;
    let objects_now = list_area(repo, "objects")?.digests;
    let unmarked_now = stat_area(repo, "objects", unmarked_of(&objects_now, &marker.marked))?;
    drop(objects_now);
    marker.mark(
        unmarked_now
            .iter()
            .filter(|(d, (mtime, _))| *mtime >= cutoff || !candidates.contains(*d))
            .map(|(d, _)| *d)
            .collect(),
    )?;
    report.missing = marker.missing.len();
    report.kept = marker.marked.len();

    let doomed_objects: Vec<(PathBuf, u64)> = sorted_paths(
        unmarked_now
            .iter()
            .filter(|(d, (mtime, _))| !marker.marked.contains(*d) && *mtime < cutoff)
            .map(|(d, (_, size))| (repo.object_path(d), *size)),
    );
    drop(unmarked_now);
    // Payloads: listed and their times read now, under the lock.
    let Area {
        digests: payloads,
        stages: payload_stages,
    } = list_area(repo, "payloads")?;
    stages.extend(payload_stages);
    let unmarked_payloads = stat_area(repo, "payloads", unmarked_of(&payloads, &marker.marked))?;
    drop(payloads);
    let doomed_payloads: Vec<(PathBuf, u64)> = sorted_paths(
        unmarked_payloads
            .iter()
            .filter(|(_, (mtime, _))| *mtime < cutoff)
            .map(|(d, (_, size))| (repo.payload_path(d), *size)),
    );
    drop(unmarked_payloads);
    let (renders, proxies, mut temporaries) = derived_litter(repo, &marker.marked, cutoff)?;
    // Contents staged beside their final name by a writer that was killed.
    let stale = temporary_cutoff(cutoff);
    temporaries.extend(
        stages
            .into_iter()
            .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| mtime_ns(&m) < stale)),
    );

    if opts.dry_run {
        report.objects = doomed_objects.len();
        report.payloads = doomed_payloads.len();
        report.bytes = doomed_objects
            .iter()
            .chain(&doomed_payloads)
            .chain(&proxies)
            .map(|(_, s)| s)
            .sum();
        report.renders = renders.len();
        report.proxies = proxies.len();
        report.temporaries = temporaries.len();
        return Ok(report);
    }

    // Objects first, all of them (not interruptible): an object that survives a
    // failed or interrupted sweep still has all its children.
    let (n, bytes, failed) = remove_files(&doomed_objects, false, None)?;
    report.objects = n;
    report.bytes += bytes;
    if let Some(e) = failed {
        return Err(e);
    }
    // Payloads: their times were read under the lock, just now.
    let (n, bytes, failed) = remove_files(&doomed_payloads, true, None)?;
    report.payloads = n;
    report.bytes += bytes;
    if let Some(e) = failed {
        return Err(e);
    }
    for dir in &renders {
        crate::signals::check()?;
        remove_tree(dir)?;
        let marker = PathBuf::from(format!("{}.whiteouts", dir.display()));
        let _ = fs::remove_file(marker);
        report.renders += 1;
    }
    let (n, bytes, failed) = remove_files(&proxies, true, Some(cutoff))?;
    report.proxies = n;
    report.bytes += bytes;
    if let Some(e) = failed {
        return Err(e);
    }
    for path in &temporaries {
        crate::signals::check()?;
        remove_tree(path)?;
        report.temporaries += 1;
    }
    Ok(report)
}

/// Removes files in parallel; returns how many and how many bytes, and the first
/// error (the others are still attempted). `interruptible` stops at SIGINT/SIGTERM;
/// `recheck_age` re-reads each file's time and keeps it if it is now at or after
/// that cutoff.
fn remove_files(
    files: &[(PathBuf, u64)],
    interruptible: bool,
    recheck_age: Option<i64>,
) -> Result<(usize, u64, Option<Error>)> {
    let count = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let first_error = std::sync::Mutex::new(None);
    let interrupted = files.par_iter().try_for_each(|(path, size)| -> Result<()> {
        if interruptible {
            crate::signals::check()?;
        }
        if let Some(cutoff) = recheck_age {
            match fs::symlink_metadata(path) {
                Ok(m) if mtime_ns(&m) >= cutoff => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert(Error::io("reading", path, e));
                    return Ok(());
                }
            }
        }
        match fs::remove_file(path) {
            Ok(()) => {
                count.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(*size, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(Error::io("removing", path, e));
            }
        }
        Ok(())
    });
    let failed = first_error.into_inner().unwrap_or_else(|e| e.into_inner());
    let (n, b) = (count.into_inner(), bytes.into_inner());
    match interrupted {
        Err(e) => {
            tracing::warn!("interrupted after removing {n} file(s) ({b} bytes)");
            Err(e)
        }
        Ok(()) => Ok((n, b, failed)),
    }
}

/// Every version of every tag, but those pruned in a dry run.
fn tag_roots(
    repo: &LocalRepository,
    pruned: &HashSet<(String, Digest, u64)>,
) -> Result<Vec<Digest>> {
    let mut out = Vec::new();
    for name in repo.list_tags("")? {
        for e in repo.tag_history(&name)? {
            if !pruned.contains(&(name.clone(), e.target, e.time)) {
                out.push(e.target);
            }
        }
    }
    Ok(out)
}

/// The stacks of running and kept runtimes. An unreadable record is an error: what
/// it protects cannot be known.
fn runtime_roots(repo: &LocalRepository) -> Result<Vec<Digest>> {
    let mut out = Vec::new();
    for name in record::names(repo)? {
        let r = record::load(repo, &name)?;
        if r.state() != RuntimeState::Dead {
            out.extend(r.stack);
        }
    }
    Ok(out)
}

/// What one area (`objects` or `payloads`) holds, from directory entries alone.
struct Area {
    /// The digests stored, one list per shard directory.
    digests: Vec<Vec<Digest>>,
    /// Files staged by writers (see [`crate::storage::STAGE_PREFIX`]), of any age.
    stages: Vec<PathBuf>,
}

/// The digests stored in an area, from directory entries alone, one shard directory per
/// task.
fn list_area(repo: &LocalRepository, area: &str) -> Result<Area> {
    let dir = repo.root().join(area);
    let mut shards = Vec::new();
    for shard in fs::read_dir(&dir).ctx("listing", &dir)? {
        let shard = shard.ctx("listing", &dir)?;
        let name = shard.file_name().to_string_lossy().into_owned();
        if name.len() == 2 && is_hex(&name) {
            shards.push((name, shard.path()));
        }
    }
    let listed = shards
        .par_iter()
        .map(|(prefix, path)| -> Result<(Vec<Digest>, Vec<PathBuf>)> {
            let mut out = Vec::new();
            let mut stages = Vec::new();
            let entries = match fs::read_dir(path) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((out, stages)),
                Err(e) => return Err(Error::io("listing", path, e)),
            };
            let mut hex = String::with_capacity(64);
            for f in entries {
                let f = f.ctx("listing", path)?;
                let name = f.file_name();
                let name = name.to_string_lossy();
                hex.clear();
                hex.push_str(prefix);
                hex.push_str(&name);
                if let Ok(d) = Digest::parse(&hex) {
                    out.push(d);
                } else if name.starts_with(crate::storage::STAGE_PREFIX) {
                    stages.push(f.path());
                }
            }
            Ok((out, stages))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut area = Area {
        digests: Vec::with_capacity(listed.len()),
        stages: Vec::new(),
    };
    for (d, s) in listed {
        area.digests.push(d);
        area.stages.extend(s);
    }
    Ok(area)
}

/// The digests of a listing that are not marked, shard by shard.
fn unmarked_of<'a>(
    listing: &'a [Vec<Digest>],
    marked: &'a HashSet<Digest>,
) -> impl Iterator<Item = Digest> + 'a {
    listing
        .iter()
        .flatten()
        .filter(move |d| !marked.contains(*d))
        .copied()
}

/// Modification time and size of each digest's file in `area`, read in parallel; a
/// file that vanished meanwhile is left out.
fn stat_area(
    repo: &LocalRepository,
    area: &str,
    digests: impl Iterator<Item = Digest>,
) -> Result<Listing> {
    let digests: Vec<Digest> = digests.collect();
    let path_of = |d: &Digest| {
        if area == "objects" {
            repo.object_path(d)
        } else {
            repo.payload_path(d)
        }
    };
    let stats = digests
        .par_iter()
        .map(|d| -> Result<Option<(Digest, (i64, u64))>> {
            let path = path_of(d);
            match fs::symlink_metadata(&path) {
                Ok(m) => Ok(Some((*d, (mtime_ns(&m), m.len())))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io("reading", &path, e)),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(stats.into_iter().flatten().collect())
}

/// Paths sorted, so that parallel removal works through one shard directory at a
/// time in each thread instead of all threads contending for every directory.
fn sorted_paths(items: impl Iterator<Item = (PathBuf, u64)>) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<_> = items.collect();
    v.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

/// An object's children: objects, and payloads (which have none).
type Children = (Vec<Digest>, Vec<Digest>);

/// Marks the closure of roots, reading objects level by level in parallel.
struct Marker<'r> {
    repo: &'r LocalRepository,
    marked: HashSet<Digest>,
    missing: HashSet<Digest>,
}

impl<'r> Marker<'r> {
    fn new(repo: &'r LocalRepository) -> Self {
        Marker {
            repo,
            marked: HashSet::new(),
            missing: HashSet::new(),
        }
    }

    fn mark(&mut self, roots: Vec<Digest>) -> Result<()> {
        let mut frontier: Vec<Digest> = roots
            .into_iter()
            .filter(|d| self.marked.insert(*d))
            .collect();
        while !frontier.is_empty() {
            crate::signals::check()?;
            let repo = self.repo;
            let read = frontier
                .par_iter()
                .map(|d| -> Result<(Digest, Option<Children>)> {
                    match repo.read_object(d) {
                        // Payloads have no children: marked without reading.
                        Ok(Object::Manifest(m)) => Ok((
                            *d,
                            Some((Vec::new(), m.files().map(|f| f.digest).collect())),
                        )),
                        Ok(o) => Ok((
                            *d,
                            Some((
                                o.children().into_iter().map(|(c, _)| c).collect(),
                                Vec::new(),
                            )),
                        )),
                        Err(Error::MissingObject(_)) => Ok((*d, None)),
                        Err(e) => Err(e),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let mut next = Vec::new();
            for (d, children) in read {
                match children {
                    None => {
                        if !self.repo.has_payload(&d) {
                            self.missing.insert(d);
                        }
                    }
                    Some((objects, payloads)) => {
                        next.extend(objects.into_iter().filter(|c| self.marked.insert(*c)));
                        self.marked.extend(payloads);
                    }
                }
            }
            frontier = next;
        }
        Ok(())
    }
}

/// Temporary files and render directories are removed only when at least this old,
/// whatever the grace period: writers that do not take the collection lock (tag and
/// runtime record updates, renders) keep theirs for milliseconds.
const TEMPORARY_AGE: Duration = Duration::from_secs(3600);

/// An entry's metadata; `None` if it vanished since it was listed.
fn meta_of(entry: &fs::DirEntry) -> Result<Option<fs::Metadata>> {
    match entry.metadata() {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", entry.path(), e)),
    }
}

/// Temporary files last modified before this time (ns) are stale: older than
/// [`TEMPORARY_AGE`] and than the clean's own cutoff.
fn temporary_cutoff(cutoff: i64) -> i64 {
    SystemTime::now()
        .checked_sub(TEMPORARY_AGE)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
        .min(cutoff)
}

/// Renders of unmarked manifests and proxies of unmarked payloads older than the
/// cutoff, and temporary files older than [`TEMPORARY_AGE`] and the cutoff.
#[allow(clippy::type_complexity)]
fn derived_litter(
    repo: &LocalRepository,
    marked: &HashSet<Digest>,
    cutoff: i64,
) -> Result<(Vec<PathBuf>, Vec<(PathBuf, u64)>, Vec<PathBuf>)> {
    let old = |m: &fs::Metadata| mtime_ns(m) < cutoff;
    let temporary_cutoff = temporary_cutoff(cutoff);
    let stale = |m: &fs::Metadata| mtime_ns(m) < temporary_cutoff;
    let mut renders = Vec::new();
    let mut temporaries = Vec::new();
    let dir = repo.renders_dir();
    // Renders of the current format (shared ones, markers of private ones), those of
    // each user's private directory, and those of the previous format (directly in
    // `renders/`, never served any more).
    let mut render_dirs = vec![dir.clone(), crate::render::shared_renders_dir(repo)];
    let private = crate::render::private_renders_root(repo);
    match fs::read_dir(&private) {
        Ok(rd) => {
            for entry in rd {
                let entry = entry.ctx("listing", &private)?;
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    render_dirs.push(entry.path());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("listing", &private, e)),
    }
    for rdir in &render_dirs {
        let listing = match fs::read_dir(rdir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // Another user's private renders: theirs to reclaim (or root's).
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && rdir != &dir => {
                tracing::debug!(dir = %rdir.display(), "skipping private renders");
                continue;
            }
            Err(e) => return Err(Error::io("listing", rdir, e)),
        };
        for entry in listing {
            let entry = entry.ctx("listing", rdir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(meta) = meta_of(&entry)? else {
                continue;
            };
            if name.starts_with(".render-") {
                if stale(&meta) {
                    temporaries.push(entry.path());
                }
            } else if let Ok(d) = Digest::parse(&name) {
                if !marked.contains(&d) && old(&meta) {
                    if meta.is_dir() {
                        renders.push(entry.path());
                    } else {
                        // The marker of a manifest rendered privately.
                        temporaries.push(entry.path());
                    }
                }
            } else if let Some(d) = name
                .strip_suffix(".whiteouts")
                .and_then(|h| Digest::parse(h).ok())
            {
                // A marker whose render is gone.
                if !rdir.join(d.to_hex()).exists() && old(&meta) {
                    temporaries.push(entry.path());
                }
            }
        }
    }
    // Tag contents staged beside their tag by a writer that was killed before renaming.
    temporaries.extend(repo.stale_tag_stages(i128::from(temporary_cutoff))?);
    let mut proxies = Vec::new();
    let pdir = dir.join("proxies");
    if pdir.is_dir() {
        for shard in fs::read_dir(&pdir).ctx("listing", &pdir)? {
            let shard = shard.ctx("listing", &pdir)?;
            let sname = shard.file_name().to_string_lossy().into_owned();
            let spath = shard.path();
            if !spath.is_dir() {
                continue;
            }
            for f in fs::read_dir(&spath).ctx("listing", &spath)? {
                let f = f.ctx("listing", &spath)?;
                let name = f.file_name().to_string_lossy().into_owned();
                let digest = name
                    .split_once('.')
                    .and_then(|(h, _)| Digest::parse(&format!("{sname}{h}")).ok());
                let Some(meta) = meta_of(&f)? else {
                    continue;
                };
                let unused = digest.map(|d| !marked.contains(&d)).unwrap_or(true);
                if unused && old(&meta) {
                    proxies.push((f.path(), meta.len()));
                }
            }
        }
    }
    let tdir = repo.tmp_dir();
    for entry in fs::read_dir(&tdir).ctx("listing", &tdir)? {
        let entry = entry.ctx("listing", &tdir)?;
        if let Some(meta) = meta_of(&entry)? {
            if stale(&meta) {
                temporaries.push(entry.path());
            }
        }
    }
    Ok((renders, proxies, temporaries))
}

/// Removes a file or a directory tree, making read-only directories writable first.
fn remove_tree(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("removing", path, e)),
    };
    if !meta.is_dir() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("removing", path, e))
            }
            _ => Ok(()),
        };
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    crate::storage::set_mode(path, 0o700)?;
    for entry in fs::read_dir(path).ctx("listing", path)? {
        let entry = entry.ctx("listing", path)?;
        remove_tree(&entry.path())?;
    }
    match fs::remove_dir(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("removing", path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
