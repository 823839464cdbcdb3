//! Lazy payloads: fetching a payload missing locally from a remote (`--payloads-from`,
//! any repository the storage traits reach: a directory, S3) on its first open, for
//! FUSE runtimes whose payloads are not all local.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use fuser::Errno;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::storage::{hash_stream, LocalRepository, Repository};

/// Copies the payload `digest` of `size` bytes from `remote` into `local`, verifying its
/// content against the digest on the way, and keeps the remote payload's mode (as
/// [`crate::storage::payload_mode`] allows it), as a pull does. Nothing is stored
/// unless it verifies. A payload stored meanwhile by someone else counts as fetched.
pub(super) fn fetch_payload(
    local: &LocalRepository,
    remote: &dyn Repository,
    digest: &Digest,
    size: u64,
) -> Result<()> {
    let started = std::time::Instant::now();
    let (mut src, remote_size, remote_mode) =
        remote.open_payload_stream(digest).map_err(|e| match e {
            Error::MissingPayload(_) => Error::MissingFallbackPayload {
                digest: *digest,
                fallback: remote.describe(),
            },
            e => e,
        })?;
    let src_path = PathBuf::from(format!("{}: payload {digest}", remote.describe()));
    if remote_size != size {
        return Err(Error::PayloadSize {
            digest: *digest,
            path: src_path.clone(),
            expected: size,
            actual: remote_size,
        });
    }
    let mode = crate::storage::payload_mode(remote_mode & 0o7777);
    let tmp_dir = local.tmp_dir();
    fs::create_dir_all(&tmp_dir).ctx("creating", &tmp_dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir).ctx("creating a file in", &tmp_dir)?;
    let (actual, copied) = hash_stream(&mut src, Some(tmp.as_file_mut()), &src_path)?;
    if actual != *digest || copied != size {
        return Err(Error::Corrupt {
            what: "payload",
            digest: *digest,
            path: src_path,
            reason: format!(
                "the fetched content ({copied} bytes) hashes to {}; expected {size} bytes",
                actual.short()
            ),
        });
    }
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .ctx("setting permissions on", tmp.path())?;
    let dest = local.payload_path(digest);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).ctx("creating", parent)?;
    }
    match tmp.persist_noclobber(&dest) {
        Ok(_) => {}
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("storing fetched payload", &dest, e.error)),
    }
    tracing::debug!(%digest, bytes = size, elapsed = ?started.elapsed(), "fetched a payload");
    Ok(())
}

/// Opens the payload of a file of `size` bytes from `repo`, fetching it from `fallback`
/// first when it is missing locally. A payload that is missing (everywhere), not a
/// regular file, or of another size (truncated or replaced) fails with EIO, and the
/// log says why.
pub(super) fn open_payload(
    repo: &LocalRepository,
    fallback: Option<&dyn Repository>,
    digest: &Digest,
    size: u64,
) -> std::result::Result<File, Errno> {
    let opened = match (repo.open_payload(digest, Some(size)), fallback) {
        (Err(Error::MissingPayload(_)), Some(remote)) => fetch_payload(repo, remote, digest, size)
            .and_then(|()| repo.open_payload(digest, Some(size))),
        (r, _) => r,
    };
    opened.map_err(|e| {
        // The error names the digest and the payload's path.
        tracing::error!(
            "cannot serve a file through FUSE (EIO): {}",
            crate::error::with_hints(&e)
        );
        Errno::EIO
    })
}
