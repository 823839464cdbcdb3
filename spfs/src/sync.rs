//! Copying closures between repositories: push, pull, and the pulls `spfs run` makes.
//!
//! What the destination already has is skipped (an object it holds is taken to come
//! with its closure: every store writes bottom-up). Payloads go first, in parallel,
//! then objects bottom-up (manifests, layers, platforms), then tags. Every payload
//! and object is re-hashed as it arrives and lands under its final name only when
//! complete, so an interrupted transfer resumes without re-sending what arrived.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::object::{Object, ObjectKind};
use crate::progress::Progress;
use crate::storage::Repository;

mod fetch;
pub use fetch::{fetch_missing, missing, Fetched, Remotes};

/// A digest the destination lacks: an object (decoded, with its bytes) or a payload.
type Found = (Digest, Option<(Object, Vec<u8>)>);

/// What a transfer copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Objects copied.
    pub objects: usize,
    /// Payloads copied.
    pub payloads: usize,
    /// Payload and object bytes copied.
    pub bytes: u64,
    /// Tags set on the destination.
    pub tags: usize,
}

/// Resolves a reference in `repo` through the seam: `name`, `name~N`, or a full
/// digest. Returns the tag name (for a tag) and the digest.
pub fn resolve(repo: &dyn Repository, reference: &str) -> Result<(Option<String>, Digest)> {
    if let Ok(d) = Digest::parse(reference) {
        if repo.has_object(&d)? || repo.has_payload(&d)? {
            return Ok((None, d));
        }
        return Err(Error::UnknownReference(reference.into()));
    }
    let (name, n) = crate::storage::parse_tag_version(reference)?;
    crate::storage::validate_tag_name(name)?;
    let history = repo.tag_versions(name)?;
    if history.is_empty() {
        return Err(Error::UnknownReference(reference.into()));
    }
    let entry = history.get(n).ok_or(Error::TagHistoryTooShort {
        name: name.into(),
        requested: n,
        available: history.len(),
    })?;
    // Only the current version of a tag is copied as a tag.
    Ok(((n == 0).then(|| name.to_string()), entry.target))
}

/// Copies the closures of `roots` from `src` to `dst`, then sets `tags` (name,
/// target) on `dst`.
pub fn copy(
    src: &dyn Repository,
    dst: &dyn Repository,
    roots: &[Digest],
    tags: &[(String, Digest)],
    progress: &Progress,
) -> Result<SyncReport> {
    // Enough threads to keep the slower side busy: requests to a remote mostly wait.
    let threads = src.parallelism().max(dst.parallelism());
    if threads > rayon::current_num_threads() {
        if let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            return pool.install(|| copy_in_pool(src, dst, roots, tags, progress));
        }
    }
    copy_in_pool(src, dst, roots, tags, progress)
}

fn copy_in_pool(
    src: &dyn Repository,
    dst: &dyn Repository,
    roots: &[Digest],
    tags: &[(String, Digest)],
    progress: &Progress,
) -> Result<SyncReport> {
    // From the first look at what dst holds until the tags are set.
    let _hold = dst.hold_for_writing()?;
    // Walk the source from the roots, level by level, skipping what dst holds.
    let empty = Digest::of(b"");
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut objects: Vec<(Digest, ObjectKind, Vec<u8>)> = Vec::new();
    let mut payloads: HashSet<Digest> = HashSet::new();
    let mut frontier: Vec<Digest> = roots.iter().copied().filter(|d| seen.insert(*d)).collect();
    while !frontier.is_empty() {
        crate::signals::check()?;
        let read = frontier
            .par_iter()
            .map(|d| -> Result<Option<Found>> {
                if dst.has_object(d)? {
                    return Ok(None);
                }
                if src.has_object(d)? {
                    let bytes = src.read_object_bytes(d)?;
                    let obj = Object::decode(&bytes).map_err(|e| Error::Corrupt {
                        what: "object",
                        digest: *d,
                        path: src.describe().into(),
                        reason: e.0,
                    })?;
                    return Ok(Some((*d, Some((obj, bytes)))));
                }
                if src.has_payload(d)? {
                    return Ok(Some((*d, None)));
                }
                if *d == empty {
                    // The empty blob needs no storing (stub builds point at it).
                    return Ok(None);
                }
                Err(Error::MissingObject(*d))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut next = Vec::new();
        for (d, found) in read.into_iter().flatten() {
            match found {
                None => {
                    payloads.insert(d);
                }
                Some((obj, bytes)) => {
                    for (child, kind) in obj.children() {
                        if kind == ObjectKind::Blob {
                            payloads.insert(child);
                        } else if seen.insert(child) {
                            next.push(child);
                        }
                    }
                    objects.push((d, obj.kind(), bytes));
                }
            }
        }
        frontier = next;
    }

    let n_objects = AtomicUsize::new(0);
    let n_payloads = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    // Payloads first.
    let payloads: Vec<Digest> = payloads.into_iter().collect();
    payloads.par_iter().try_for_each(|d| -> Result<()> {
        crate::signals::check()?;
        if (!dst.write_finds_existing() && dst.has_payload(d)?)
            || (*d == empty && !src.has_payload(d)?)
        {
            return Ok(());
        }
        let (mut reader, _, mode) = src.open_payload_stream(d)?;
        let n = dst
            .write_payload_stream(d, &mut reader, mode)
            .map_err(|e| match e {
                // What arrived is wrong: the source holds a corrupt copy.
                Error::Corrupt {
                    what,
                    digest,
                    reason,
                    ..
                } => Error::Corrupt {
                    what,
                    digest,
                    path: src.describe().into(),
                    reason: format!("{reason} when copied from there (nothing was stored)"),
                },
                other => other,
            })?;
        if n > 0 {
            n_payloads.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(n, Ordering::Relaxed);
        }
        progress.inc(1, n);
        Ok(())
    })?;
    // Objects bottom-up: a stored object always has its children.
    for kind in [
        ObjectKind::Manifest,
        ObjectKind::Layer,
        ObjectKind::Platform,
    ] {
        let batch: Vec<_> = objects.iter().filter(|(_, k, _)| *k == kind).collect();
        batch.par_iter().try_for_each(|(d, _, b)| -> Result<()> {
            crate::signals::check()?;
            dst.write_object_bytes(d, b)?;
            n_objects.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
            progress.inc(1, b.len() as u64);
            Ok(())
        })?;
    }
    // Tags last.
    let changed: Vec<(String, Digest)> = tags
        .iter()
        .filter(|(name, target)| {
            dst.tag_versions(name)
                .map(|h| h.first().map(|e| e.target) != Some(*target))
                .unwrap_or(true)
        })
        .cloned()
        .collect();
    if !changed.is_empty() {
        dst.set_tags(&changed)?;
    }
    Ok(SyncReport {
        objects: n_objects.into_inner(),
        payloads: n_payloads.into_inner(),
        bytes: bytes.into_inner(),
        tags: changed.len(),
    })
}

#[cfg(test)]
mod tests;
