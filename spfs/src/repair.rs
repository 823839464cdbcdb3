//! `spfs check --repair`: fetching missing or corrupt objects and payloads again from
//! another repository.
//!
//! Each round checks (the closure of the roots, or the whole repository), then fetches
//! every digest found missing or corrupt from the source: the content is verified
//! against its digest in a temporary file and renamed over whatever was there, so a
//! reader sees the corrupt file or the good one, never a mixture. A restored object
//! may reveal missing children, so rounds repeat until a check passes or a round
//! repairs nothing.

use std::io::Write;

use crate::check::{check, CheckReport, Problem};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::object::Object;
use crate::progress::Progress;
use crate::storage::{payload_mode, LocalRepository, Repository};

/// Rounds at most: one per object level (platform, layer, manifest, payload) and spare.
const MAX_ROUNDS: usize = 8;

/// What a repair did.
#[derive(Debug, Default)]
pub struct RepairReport {
    /// Digests restored, with what they were ("object" or "payload") and what was wrong.
    pub repaired: Vec<(Digest, &'static str, String)>,
    /// Digests that could not be restored, with why.
    pub failed: Vec<(Digest, String)>,
    /// Bytes fetched.
    pub bytes: u64,
    /// The final check: what is still wrong is in its `problems`.
    pub check: CheckReport,
}

/// Checks `repo` (the closure of `roots`, or everything) and restores what is missing
/// or corrupt from `source`.
pub fn repair(
    repo: &LocalRepository,
    roots: Option<Vec<Digest>>,
    source: &dyn Repository,
    progress: &Progress,
) -> Result<RepairReport> {
    let _guard = repo.write_guard()?;
    let mut report = RepairReport::default();
    let mut given_up = std::collections::HashSet::new();
    for _ in 0..MAX_ROUNDS {
        let found = check(repo, roots.clone(), progress)?;
        let todo: Vec<&Problem> = found
            .problems
            .iter()
            .filter(|p| !given_up.contains(&p.digest))
            .collect();
        if todo.is_empty() {
            report.check = found;
            forget_kept_views(repo, &report);
            return Ok(report);
        }
        // From an archive, the payloads wanted come in one pass over it.
        let mut from_archive = match source.streamed_archive() {
            Some(path) => {
                let mut wanted = std::collections::HashSet::new();
                for p in &todo {
                    if !source.has_object(&p.digest)? && source.has_payload(&p.digest)? {
                        wanted.insert(p.digest);
                    }
                }
                if wanted.is_empty() {
                    Default::default()
                } else {
                    crate::archive::read_payloads(path, &wanted, &repo.tmp_dir(), progress)?
                }
            }
            None => Default::default(),
        };
        for p in todo {
            crate::signals::check()?;
            let restored = match from_archive.remove(&p.digest) {
                Some((mode, tmp)) => {
                    let n = tmp.as_file().metadata().map(|m| m.len()).unwrap_or(0);
                    replace(tmp, &repo.payload_path(&p.digest), payload_mode(mode))
                        .map(|()| ("payload", n))
                        .map_err(|e| e.to_string())
                }
                None => restore(repo, source, &p.digest),
            };
            match restored {
                Ok((what, n)) => {
                    report.bytes += n;
                    progress.inc(1, n);
                    report.repaired.push((p.digest, what, p.issue.clone()));
                }
                Err(why) => {
                    given_up.insert(p.digest);
                    report.failed.push((p.digest, why));
                }
            }
        }
    }
    report.check = check(repo, roots, progress)?;
    forget_kept_views(repo, &report);
    Ok(report)
}

/// A kept image view may hold a replaced payload's old file: drop the repository's.
fn forget_kept_views(repo: &LocalRepository, report: &RepairReport) {
    if report
        .repaired
        .iter()
        .any(|(_, what, _)| *what == "payload")
    {
        crate::runtime::image::keeper::forget_repo(repo);
    }
}

/// Fetches `digest` from `source` into `repo`, replacing what is there. Returns what
/// it was and the bytes fetched, or why it could not.
fn restore(
    repo: &LocalRepository,
    source: &dyn Repository,
    digest: &Digest,
) -> Result<(&'static str, u64), String> {
    let text = |e: Error| e.to_string();
    if source.has_object(digest).map_err(text)? {
        let bytes = source.read_object_bytes(digest).map_err(text)?;
        Object::decode(&bytes).map_err(|e| {
            format!(
                "the copy in {} does not decode either: {}",
                source.describe(),
                e.0
            )
        })?;
        let mut tmp = temp(repo).map_err(text)?;
        let path = repo.object_path(digest);
        tmp.write_all(&bytes)
            .ctx("writing", tmp.path())
            .map_err(text)?;
        replace(tmp, &path, 0o444).map_err(text)?;
        return Ok(("object", bytes.len() as u64));
    }
    if source.has_payload(digest).map_err(text)? {
        if source.streamed_archive().is_some() {
            // Payloads of an archive were all read in one pass (see `repair`).
            return Err(format!(
                "{} names it but does not hold it (the archive is incomplete)",
                source.describe()
            ));
        }
        let (mut reader, _, mode) = source.open_payload_stream(digest).map_err(text)?;
        let mut tmp = temp(repo).map_err(text)?;
        let path = repo.payload_path(digest);
        let (actual, n) = crate::storage::hash_stream(
            &mut reader,
            Some(tmp.as_file_mut()),
            std::path::Path::new(&source.describe()),
        )
        .map_err(text)?;
        if actual != *digest {
            return Err(format!(
                "the copy in {} is corrupt too (it hashes to {})",
                source.describe(),
                actual.short()
            ));
        }
        replace(tmp, &path, payload_mode(mode)).map_err(text)?;
        return Ok(("payload", n));
    }
    Err(format!("{} does not hold it", source.describe()))
}

fn temp(repo: &LocalRepository) -> Result<tempfile::NamedTempFile> {
    let dir = repo.tmp_dir();
    tempfile::Builder::new()
        .prefix(".repair-")
        .tempfile_in(&dir)
        .ctx("creating a file in", &dir)
}

/// Renames a verified temporary file over `path` (atomically replacing a corrupt one).
fn replace(tmp: tempfile::NamedTempFile, path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file().sync_all().ctx("writing", tmp.path())?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .ctx("setting permissions on", tmp.path())?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).ctx("creating", parent)?;
    }
    tmp.persist(path)
        .map_err(|e| Error::io("replacing", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::commit::{commit_layer, CommitOptions};

    #[test]
    fn a_deleted_and_a_corrupt_payload_and_a_missing_object_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalRepository::create(&dir.path().join("local")).unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(&tree).unwrap();
        fs::write(tree.join("a"), b"alpha content").unwrap();
        fs::write(tree.join("b"), b"beta content").unwrap();
        fs::write(tree.join("c"), b"only here").unwrap();
        let layer = commit_layer(
            &local,
            &tree,
            &CommitOptions::default(),
            &[],
            &Progress::hidden(),
        )
        .unwrap();
        local.push_tag("org/a", &layer).unwrap();
        // The remote holds a copy of everything but "only here".
        let remote = LocalRepository::create(&dir.path().join("remote")).unwrap();
        crate::sync::copy(&local, &remote, &[layer], &[], &Progress::hidden()).unwrap();
        fs::remove_file(remote.payload_path(&Digest::of(b"only here"))).unwrap();

        let (a, b, c) = (
            Digest::of(b"alpha content"),
            Digest::of(b"beta content"),
            Digest::of(b"only here"),
        );
        fs::remove_file(local.payload_path(&a)).unwrap();
        let bp = local.payload_path(&b);
        fs::remove_file(&bp).unwrap();
        fs::write(&bp, b"beta CONTENT").unwrap();
        fs::remove_file(local.payload_path(&c)).unwrap();
        let manifest = local.read_layer(&layer).unwrap().manifest;
        fs::remove_file(local.object_path(&manifest)).unwrap();

        let r = repair(&local, None, &remote, &Progress::hidden()).unwrap();
        let mut repaired: Vec<Digest> = r.repaired.iter().map(|(d, _, _)| *d).collect();
        repaired.sort();
        let mut expected = vec![a, b, manifest];
        expected.sort();
        assert_eq!(repaired, expected);
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.failed[0].0, c);
        assert!(r.failed[0].1.contains("does not hold it"), "{:?}", r.failed);
        // Only the one nobody holds remains.
        let left: Vec<Digest> = r.check.problems.iter().map(|p| p.digest).collect();
        assert_eq!(left, vec![c]);
        assert_eq!(local.read_blob(&a).unwrap(), b"alpha content");
        assert_eq!(local.read_blob(&b).unwrap(), b"beta content");
        use std::os::unix::fs::MetadataExt;
        // The repaired payload has the mode a payload of the committed file has.
        let committed = fs::metadata(tree.join("b")).unwrap().mode() & 0o7777;
        assert_eq!(
            fs::metadata(&bp).unwrap().mode() & 0o7777,
            crate::storage::payload_mode(committed)
        );
        let left: Vec<_> = fs::read_dir(local.tmp_dir()).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
