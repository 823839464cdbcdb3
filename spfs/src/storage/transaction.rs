//! A commit's writes, kept private until the commit succeeds.
//!
//! A commit stores new payloads and objects as temporary files under `tmp/` and
//! renames them into their final names only in [`Transaction::publish`], once every
//! file of the tree was read. Until then no other process can see, and so none can
//! reference, anything the commit wrote: a commit that fails (disk full, unreadable
//! file, interrupt) removes all of it, safely, even while other processes commit the
//! same content. Content another writer published meanwhile is simply not published
//! twice.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::TempPath;

use super::files;
use super::payloads::{hash_stream, payload_mode};
use super::LocalRepository;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::object::Object;

/// Files up to this size are read into memory once; larger ones are streamed.
const SMALL_FILE: u64 = 1 << 20;

struct Staged {
    tmp: TempPath,
    size: u64,
}

/// New payloads and objects of one commit, not yet visible under their final names.
/// Dropping it without [`Transaction::publish`] removes them.
pub struct Transaction<'r> {
    repo: &'r LocalRepository,
    payloads: Mutex<HashMap<Digest, Staged>>,
    /// In the order written, so that an object is published after what it refers to.
    objects: Mutex<Vec<(Digest, Staged)>>,
    /// Keeps `spfs clean` from deleting what this commit relies on (docs/gc.md).
    _guard: super::gc_lock::WriteGuard,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("repo", &self.repo.root())
            .field("staged", &self.staged())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'r> Transaction<'r> {
    /// Starts a transaction on `repo`.
    /// Holds the repository's collection lock shared until it is published or
    /// dropped, so that `spfs clean` deletes nothing it relies on meanwhile.
    pub fn new(repo: &'r LocalRepository) -> Result<Self> {
        Ok(Transaction {
            repo,
            payloads: Mutex::new(HashMap::new()),
            objects: Mutex::new(Vec::new()),
            _guard: repo.write_guard()?,
        })
    }

    /// How many files are staged.
    pub fn staged(&self) -> usize {
        lock(&self.payloads).len() + lock(&self.objects).len()
    }

    fn has_payload(&self, digest: &Digest) -> bool {
        self.repo.has_payload(digest) || lock(&self.payloads).contains_key(digest)
    }

    /// A temporary file under `tmp/`, named so that it is recognisable as a commit's.
    fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        let tmp_dir = self.repo.tmp_dir();
        tempfile::Builder::new()
            .prefix(".commit-")
            .tempfile_in(&tmp_dir)
            .ctx("creating a file in", &tmp_dir)
    }

    /// Finishes a staged temporary file: read-only `mode`, descriptor closed.
    fn stage(tmp: tempfile::NamedTempFile, mode: u32, size: u64) -> Result<Staged> {
        crate::signals::check()?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .ctx("setting permissions on", tmp.path())?;
        Ok(Staged {
            tmp: tmp.into_temp_path(),
            size,
        })
    }

    fn stage_payload(&self, digest: Digest, staged: Staged) {
        // Another thread may have staged the same content meanwhile: keep one.
        lock(&self.payloads).entry(digest).or_insert(staged);
    }

    /// Hashes the file at `src` and stages its content if the store lacks it.
    /// Returns the digest and size of exactly the bytes stored.
    pub fn store_file(&self, src: &Path, mode: u32) -> Result<(Digest, u64)> {
        let mut file = open_source(src)?;
        let len = file.metadata().ctx("reading", src)?.len();
        if len <= SMALL_FILE {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf).ctx("reading", src)?;
            let digest = Digest::of(&buf);
            if !self.has_payload(&digest) {
                let mut tmp = self.temp_file()?;
                std::io::Write::write_all(tmp.as_file_mut(), &buf).map_err(|e| {
                    Error::io(
                        format!("storing content of {} in the repository's", src.display()),
                        "tmp/",
                        e,
                    )
                })?;
                let staged = Self::stage(tmp, payload_mode(mode), buf.len() as u64)?;
                self.stage_payload(digest, staged);
                tracing::debug!(%digest, path = %src.display(), "staged payload");
            }
            return Ok((digest, buf.len() as u64));
        }
        // Large file: hash first; only copy if the store lacks the content.
        let (digest, size) = hash_stream(&mut file, None, src)?;
        if self.has_payload(&digest) {
            return Ok((digest, size));
        }
        // Copy while hashing again: what is stored is named by what was copied, even
        // if the source changed in between.
        file.rewind().ctx("reading", src)?;
        let mut tmp = self.temp_file()?;
        let (digest, size) = hash_stream(&mut file, Some(tmp.as_file_mut()), src)?;
        let staged = Self::stage(tmp, payload_mode(mode), size)?;
        self.stage_payload(digest, staged);
        tracing::debug!(%digest, path = %src.display(), "staged payload");
        Ok((digest, size))
    }

    /// Stores the file at `src`, which the caller gives up, by staging a hard link to it
    /// when its content is new instead of a copy (a copy only across filesystems). The
    /// file's inode gets the payload mode ([`payload_mode`]: no group or other write
    /// bits) and loses overlayfs attributes; the caller must not write to it again.
    pub fn take_file(&self, src: &Path, mode: u32) -> Result<(Digest, u64)> {
        let mut file = open_source(src)?;
        let (digest, size) = hash_stream(&mut file, None, src)?;
        drop(file);
        if self.has_payload(&digest) {
            return Ok((digest, size));
        }
        super::payloads::strip_overlay_xattrs(src);
        super::set_mode(src, payload_mode(mode))?;
        let tmp_dir = self.repo.tmp_dir();
        let linked = tempfile::Builder::new()
            .prefix(".commit-")
            .make_in(&tmp_dir, |path| fs::hard_link(src, path));
        match linked {
            Ok(tmp) => {
                self.stage_payload(
                    digest,
                    Staged {
                        tmp: tmp.into_temp_path(),
                        size,
                    },
                );
                tracing::debug!(%digest, path = %src.display(), "staged payload by link");
                Ok((digest, size))
            }
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => self.store_file(src, mode),
            Err(e) => Err(Error::io("linking into", &tmp_dir, e)),
        }
    }

    /// Stages an object and returns its digest; an object already stored is not, but
    /// its modification time is refreshed: it may be this commit's result, and
    /// `spfs clean` keeps young objects (docs/gc.md).
    pub fn write_object(&self, object: &Object) -> Result<Digest> {
        let bytes = object.encode();
        let digest = Digest::of(&bytes);
        if lock(&self.objects).iter().any(|(d, _)| *d == digest)
            || super::gc_lock::touch(&self.repo.object_path(&digest))?
        {
            return Ok(digest);
        }
        let mut tmp = self.temp_file()?;
        std::io::Write::write_all(tmp.as_file_mut(), &bytes).ctx("writing", tmp.path())?;
        let staged = Self::stage(tmp, 0o444, bytes.len() as u64)?;
        lock(&self.objects).push((digest, staged));
        Ok(digest)
    }

    /// Renames everything staged into place: payloads first (in parallel), then
    /// objects in the order they were written. Not interruptible (it only renames).
    /// On failure, the error says what had already been published
    /// ([`Error::CommitFailed`]); what was not is removed.
    pub fn publish(self) -> Result<()> {
        use rayon::prelude::*;
        use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
        let payloads: Vec<_> = std::mem::take(&mut *lock(&self.payloads))
            .into_iter()
            .collect();
        let objects = std::mem::take(&mut *lock(&self.objects));
        let count = AtomicUsize::new(0);
        let bytes = AtomicU64::new(0);
        let publish = |path: PathBuf, staged: Staged| -> Result<()> {
            if publish_one(staged.tmp, &path)? {
                count.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(staged.size, Ordering::Relaxed);
            }
            Ok(())
        };
        let result = payloads
            .into_par_iter()
            .try_for_each(|(d, s)| publish(self.repo.payload_path(&d), s))
            .and_then(|()| {
                objects
                    .into_iter()
                    .try_for_each(|(d, s)| publish(self.repo.object_path(&d), s))
            });
        result.map_err(|e| {
            let n = count.load(Ordering::Relaxed);
            Error::CommitFailed {
                source: Box::new(e),
                remains: (n > 0).then(|| (n, bytes.load(Ordering::Relaxed))),
            }
        })
    }
}

/// Renames a staged file to `path` unless something is there already (the same
/// content, by construction), creating its shard directory on first use. True if
/// ours was published.
fn publish_one(tmp: TempPath, path: &Path) -> Result<bool> {
    // Published files are young for `spfs clean`, however long ago they were staged.
    super::gc_lock::touch(&tmp)?;
    let tmp = match tmp.persist_noclobber(path) {
        Ok(()) => return Ok(true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) if e.error.kind() == std::io::ErrorKind::NotFound => e.path,
        Err(e) => return Err(Error::io("storing", path, e.error)),
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).ctx("creating", parent)?;
    }
    match tmp.persist_noclobber(path) {
        Ok(()) => Ok(true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("storing", path, e.error)),
    }
}

/// Opens a file to commit: not following a link, not blocking on a FIFO, and only if
/// it is a regular file.
fn open_source(src: &Path) -> Result<fs::File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(src)
        .ctx("reading", src)?;
    let meta = file.metadata().ctx("reading", src)?;
    if !meta.is_file() {
        return Err(Error::SpecialFile {
            path: src.to_path_buf(),
            kind: files::kind_name(meta.file_type()),
        });
    }
    files::clear_nonblock(&file);
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, LocalRepository, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(&dir.path().join("repo")).unwrap();
        let src = dir.path().join("x");
        fs::write(&src, b"shared content").unwrap();
        (dir, repo, src)
    }

    fn tmp_entries(repo: &LocalRepository) -> usize {
        fs::read_dir(repo.tmp_dir()).unwrap().count()
    }

    #[test]
    fn a_dropped_transaction_leaves_nothing() {
        let (_d, repo, src) = setup();
        let txn = Transaction::new(&repo).unwrap();
        let (digest, size) = txn.store_file(&src, 0o644).unwrap();
        assert_eq!(size, 14);
        assert_eq!(digest, Digest::of(b"shared content"));
        // Staged, but invisible under its final name.
        assert_eq!(txn.staged(), 1);
        assert!(!repo.has_payload(&digest));
        drop(txn);
        assert!(!repo.has_payload(&digest));
        assert_eq!(tmp_entries(&repo), 0);
    }

    #[test]
    fn a_failing_committer_never_removes_what_a_concurrent_one_stores() {
        let (_d, repo, src) = setup();
        // Both stage the same content; the first fails (is dropped), the second
        // publishes: its payload is there.
        let failing = Transaction::new(&repo).unwrap();
        let succeeding = Transaction::new(&repo).unwrap();
        let (d1, _) = failing.store_file(&src, 0o644).unwrap();
        let (d2, _) = succeeding.store_file(&src, 0o644).unwrap();
        assert_eq!(d1, d2);
        assert_eq!(
            succeeding.staged(),
            1,
            "must not rely on unpublished content"
        );
        drop(failing);
        succeeding.publish().unwrap();
        assert_eq!(repo.read_blob(&d1).unwrap(), b"shared content");
        // The other order: the first publishes, then a later committer reuses it and
        // stages nothing; its failure cannot touch the published payload.
        let later = Transaction::new(&repo).unwrap();
        later.store_file(&src, 0o644).unwrap();
        assert_eq!(later.staged(), 0);
        drop(later);
        assert_eq!(repo.read_blob(&d1).unwrap(), b"shared content");
        assert_eq!(tmp_entries(&repo), 0);
    }

    #[test]
    fn publishing_content_another_writer_published_first_keeps_theirs() {
        let (_d, repo, src) = setup();
        let a = Transaction::new(&repo).unwrap();
        let b = Transaction::new(&repo).unwrap();
        let (d, _) = a.store_file(&src, 0o644).unwrap();
        b.store_file(&src, 0o755).unwrap();
        a.publish().unwrap();
        b.publish().unwrap();
        use std::os::unix::fs::MetadataExt;
        let mode = fs::metadata(repo.payload_path(&d)).unwrap().mode() & 0o7777;
        // 0o644 as committed by `a` (the owner write bit kept), not 0o755.
        assert_eq!(mode, 0o644, "the first publisher's payload stays");
        assert_eq!(tmp_entries(&repo), 0);
    }
}
