//! Verifying a repository: every object decodes and matches its digest, every payload
//! re-hashes to its name, nothing referenced is missing, every tag resolves. Any store
//! the storage traits reach can be checked: the local directory or a remote.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::object::{EntryKind, Object, ObjectKind};
use crate::progress::Progress;
use crate::storage::Repository;

/// One thing found wrong.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The digest affected.
    pub digest: Digest,
    /// What kind of thing it should be, when something that refers to it says so.
    pub kind: Option<ObjectKind>,
    /// What is wrong ("missing", or why it is corrupt).
    pub issue: String,
    /// Tags whose closure includes it.
    pub tags: Vec<String>,
}

/// The outcome of a check.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Objects verified.
    pub objects: usize,
    /// Payloads verified.
    pub payloads: usize,
    /// Payload bytes re-hashed.
    pub bytes: u64,
    /// What is missing or corrupt.
    pub problems: Vec<Problem>,
}

/// Checks the closure of `roots`, or the whole repository (every object, payload and
/// tag) when `roots` is `None`. Works on any store through the storage traits (the
/// local directory, a `file://` or `s3://` remote): objects are read level by level,
/// payloads streamed and re-hashed, with as many requests in flight as the store's
/// [`Repository::parallelism`].
pub fn check(
    repo: &dyn Repository,
    roots: Option<Vec<Digest>>,
    progress: &Progress,
) -> Result<CheckReport> {
    let threads = repo.parallelism();
    if threads > rayon::current_num_threads() {
        if let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            return pool.install(|| check_in_pool(repo, roots, progress));
        }
    }
    check_in_pool(repo, roots, progress)
}

/// What one digest of the object walk turned out to be.
enum Visited {
    /// An object: its child objects (with kinds) and the payloads a manifest names.
    Object {
        children: Vec<(Digest, ObjectKind)>,
        files: Vec<(Digest, u64)>,
    },
    /// Not an object but a stored payload (a tag may point at one).
    Payload,
    /// Missing or corrupt: why.
    Problem(String),
}

fn visit(repo: &dyn Repository, d: &Digest) -> Result<Visited> {
    let bytes = match repo.read_object_bytes(d) {
        Ok(b) => b,
        Err(Error::MissingObject(_)) => {
            return Ok(if repo.has_payload(d)? {
                Visited::Payload
            } else {
                Visited::Problem("missing".into())
            })
        }
        Err(Error::Corrupt { reason, .. }) => return Ok(Visited::Problem(reason)),
        Err(e @ (Error::UnexpectedFileType { .. } | Error::FileTooLarge { .. })) => {
            return Ok(Visited::Problem(e.to_string()))
        }
        Err(e) => return Err(e),
    };
    let obj = match Object::decode(&bytes) {
        Ok(o) => o,
        Err(e) => return Ok(Visited::Problem(e.0)),
    };
    let mut files = Vec::new();
    let mut children = Vec::new();
    if let Object::Manifest(m) = &obj {
        for w in m.walk() {
            if let EntryKind::File { size, digest } = w.entry.kind {
                files.push((digest, size));
            }
        }
    } else {
        children = obj.children();
    }
    Ok(Visited::Object { children, files })
}

/// Every tag with its current target, through the tag store.
fn current_tags(repo: &dyn Repository) -> Result<Vec<(String, Digest)>> {
    let mut out = Vec::new();
    for name in repo.list_tag_names("")? {
        if let Some(e) = repo.tag_versions(&name)?.first() {
            out.push((name, e.target));
        }
    }
    Ok(out)
}

fn check_in_pool(
    repo: &dyn Repository,
    roots: Option<Vec<Digest>>,
    progress: &Progress,
) -> Result<CheckReport> {
    let tags = current_tags(repo)?;
    let whole = roots.is_none();
    // Each digest to visit, with its kind when a parent object names it.
    let start: Vec<Digest> = match roots {
        Some(r) => r,
        None => {
            let mut all = repo.list_objects()?;
            all.extend(tags.iter().map(|(_, d)| *d));
            all
        }
    };
    let mut seen = HashSet::new();
    let mut frontier: Vec<(Digest, Option<ObjectKind>)> = start
        .into_iter()
        .filter(|d| seen.insert(*d))
        .map(|d| (d, None))
        .collect();
    let mut children: HashMap<Digest, Vec<Digest>> = HashMap::new();
    let mut blobs: HashMap<Digest, Option<u64>> = HashMap::new();
    let mut report = CheckReport::default();
    while !frontier.is_empty() {
        crate::signals::check()?;
        let visited = frontier
            .par_iter()
            .map(|(d, _)| {
                crate::signals::check()?;
                visit(repo, d)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut next = Vec::new();
        for ((d, kind), v) in frontier.into_iter().zip(visited) {
            match v {
                Visited::Payload => {
                    blobs.entry(d).or_insert(None);
                }
                Visited::Problem(issue) => report.problems.push(problem(d, kind, &issue)),
                Visited::Object {
                    children: kids,
                    files,
                } => {
                    report.objects += 1;
                    progress.inc(1, 0);
                    let mut names = Vec::with_capacity(kids.len() + files.len());
                    for (digest, size) in files {
                        blobs.insert(digest, Some(size));
                        names.push(digest);
                    }
                    for (c, k) in kids {
                        names.push(c);
                        if seen.insert(c) {
                            next.push((c, Some(k)));
                        }
                    }
                    children.insert(d, names);
                }
            }
        }
        frontier = next;
    }
    if whole {
        for p in repo.list_payloads()? {
            blobs.entry(p).or_insert(None);
        }
    }
    let bytes = AtomicU64::new(0);
    let blob_list: Vec<_> = blobs.into_iter().collect();
    let blob_problems = blob_list
        .par_iter()
        .map(|(d, size)| -> Result<Option<Problem>> {
            crate::signals::check()?;
            let r = verify_payload(repo, d, *size)?;
            progress.inc(1, 0);
            Ok(match r {
                Ok(n) => {
                    bytes.fetch_add(n, Ordering::Relaxed);
                    None
                }
                Err(issue) => Some(problem(*d, Some(ObjectKind::Blob), &issue)),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    report.payloads = blob_list.len();
    report.bytes = bytes.into_inner();
    report.problems.extend(blob_problems.into_iter().flatten());
    // Name the tags that reach each problem.
    let bad: HashSet<Digest> = report.problems.iter().map(|p| p.digest).collect();
    if !bad.is_empty() {
        for (name, target) in &tags {
            let mut stack = vec![*target];
            let mut visited = HashSet::new();
            while let Some(d) = stack.pop() {
                if !visited.insert(d) {
                    continue;
                }
                if bad.contains(&d) {
                    for p in report.problems.iter_mut().filter(|p| p.digest == d) {
                        p.tags.push(name.clone());
                    }
                }
                if let Some(k) = children.get(&d) {
                    stack.extend(k.iter().copied());
                }
            }
        }
    }
    report.problems.sort_by_key(|p| p.digest);
    Ok(report)
}

fn problem(digest: Digest, kind: Option<ObjectKind>, issue: &str) -> Problem {
    Problem {
        digest,
        kind,
        issue: issue.to_string(),
        tags: Vec::new(),
    }
}

/// Re-hashes one payload: `Ok(Ok(bytes))` when it is right, `Ok(Err(why))` when it
/// is missing or corrupt. A store that cannot be reached at all is an error.
fn verify_payload(
    repo: &dyn Repository,
    d: &Digest,
    size: Option<u64>,
) -> Result<std::result::Result<u64, String>> {
    let (mut reader, _, _) = match repo.open_payload_stream(d) {
        Ok(r) => r,
        Err(Error::MissingPayload(_)) => return Ok(Err("missing".into())),
        Err(e @ Error::Remote { .. }) => return Err(e),
        Err(e) => return Ok(Err(e.to_string())),
    };
    let place = std::path::PathBuf::from(format!("{}: payload {d}", repo.describe()));
    let (actual, n) = match crate::storage::hash_stream(&mut reader, None, &place) {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("unreadable: {e}"))),
    };
    if let Some(s) = size {
        if s != n {
            return Ok(Err(format!("corrupt: {n} bytes stored, manifest says {s}")));
        }
    }
    if actual != *d {
        return Ok(Err(format!(
            "corrupt: content hashes to {}",
            actual.short()
        )));
    }
    Ok(Ok(n))
}
