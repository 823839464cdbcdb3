//! Verifying a repository: every object decodes and matches its digest, every payload
//! re-hashes to its name, nothing referenced is missing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::object::{EntryKind, Object, ObjectKind};
use crate::progress::Progress;
use crate::storage::LocalRepository;

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
/// tag) when `roots` is `None`.
pub fn check(
    repo: &LocalRepository,
    roots: Option<Vec<Digest>>,
    progress: &Progress,
) -> Result<CheckReport> {
    let tags = repo.all_tags()?;
    let whole = roots.is_none();
    // Each digest to visit, with its kind when a parent object names it.
    let mut pending: Vec<(Digest, Option<ObjectKind>)> = match roots {
        Some(r) => r.into_iter().map(|d| (d, None)).collect(),
        None => {
            let mut all: Vec<_> = repo
                .list_objects()?
                .into_iter()
                .map(|d| (d, None))
                .collect();
            all.extend(tags.iter().map(|(_, d)| (*d, None)));
            all
        }
    };
    let mut children: HashMap<Digest, Vec<Digest>> = HashMap::new();
    let mut seen = HashSet::new();
    let mut blobs: HashMap<Digest, Option<u64>> = HashMap::new();
    let mut report = CheckReport::default();
    while let Some((d, kind)) = pending.pop() {
        if !seen.insert(d) {
            continue;
        }
        crate::signals::check()?;
        if !repo.has_object(&d) && repo.has_payload(&d) {
            blobs.entry(d).or_insert(None);
            continue;
        }
        match repo.read_object(&d) {
            Ok(obj) => {
                report.objects += 1;
                progress.inc(1, 0);
                let mut kids = Vec::new();
                if let Object::Manifest(m) = &obj {
                    for w in m.walk() {
                        if let EntryKind::File { size, digest } = w.entry.kind {
                            blobs.insert(digest, Some(size));
                            kids.push(digest);
                        }
                    }
                } else {
                    for (c, k) in obj.children() {
                        pending.push((c, Some(k)));
                        kids.push(c);
                    }
                }
                children.insert(d, kids);
            }
            Err(Error::MissingObject(_)) => report.problems.push(problem(d, kind, "missing")),
            Err(Error::Corrupt { reason, .. }) => report.problems.push(problem(d, kind, &reason)),
            Err(e @ (Error::UnexpectedFileType { .. } | Error::FileTooLarge { .. })) => {
                report.problems.push(problem(d, kind, &e.to_string()))
            }
            Err(e) => return Err(e),
        }
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
            let r = verify_payload(repo, d, *size);
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

fn verify_payload(repo: &LocalRepository, d: &Digest, size: Option<u64>) -> Result<u64, String> {
    let mut f = match repo.open_payload(d, None) {
        Ok(f) => f,
        Err(Error::MissingPayload(_)) => return Err("missing".into()),
        Err(e) => return Err(e.to_string()),
    };
    let path = repo.payload_path(d);
    let (actual, n) =
        crate::storage::hash_stream(&mut f, None, &path).map_err(|e| format!("unreadable: {e}"))?;
    if let Some(s) = size {
        if s != n {
            return Err(format!("corrupt: {n} bytes stored, manifest says {s}"));
        }
    }
    if actual != *d {
        return Err(format!("corrupt: content hashes to {}", actual.short()));
    }
    Ok(n)
}
