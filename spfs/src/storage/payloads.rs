//! Payloads: file content stored once per digest, read-only.

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::LocalRepository;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};

/// Files up to this size are read into memory once; larger ones are streamed.
const SMALL_FILE: u64 = 1 << 20;
const CHUNK: usize = 1 << 20;

/// The mode a payload inode carries for content committed with `mode`: the same
/// permission bits without any write bit, so no hard link can modify the store.
pub fn payload_mode(mode: u32) -> u32 {
    mode & 0o7555
}

impl LocalRepository {
    /// File holding a payload.
    pub fn payload_path(&self, digest: &Digest) -> PathBuf {
        self.sharded("payloads", digest)
    }

    /// True if the payload is stored.
    pub fn has_payload(&self, digest: &Digest) -> bool {
        self.payload_path(digest).exists()
    }

    /// Stores bytes as a payload (mode 0444) and returns their digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let path = self.payload_path(&digest);
        if !path.exists() {
            self.write_atomic(&path, bytes, 0o444)?;
        }
        Ok(digest)
    }

    /// Reads a whole payload into memory, verifying it.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.payload_path(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingPayload(*digest))
            }
            Err(e) => return Err(Error::io("reading payload", &path, e)),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::Corrupt {
                what: "payload",
                digest: *digest,
                path,
                reason: format!("content hashes to {}", actual.short()),
            });
        }
        Ok(bytes)
    }

    /// Opens a payload for reading.
    pub fn open_payload(&self, digest: &Digest) -> Result<fs::File> {
        let path = self.payload_path(digest);
        fs::File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingPayload(*digest)
            } else {
                Error::io("opening payload", &path, e)
            }
        })
    }

    /// Hashes the file at `src` and stores its content if the store lacks it.
    /// Returns the digest and size of exactly the bytes stored.
    pub fn store_file(&self, src: &Path, mode: u32) -> Result<(Digest, u64)> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(src)
            .ctx("reading", src)?;
        let len = file.metadata().ctx("reading", src)?.len();
        if len <= SMALL_FILE {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf).ctx("reading", src)?;
            let digest = Digest::of(&buf);
            let dest = self.payload_path(&digest);
            if !dest.exists() {
                self.write_atomic(&dest, &buf, payload_mode(mode))?;
                tracing::debug!(%digest, path = %src.display(), "stored payload");
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
        let tmp_dir = self.tmp_dir();
        let mut tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).ctx("creating a file in", &tmp_dir)?;
        let (digest, size) = hash_stream(&mut file, Some(tmp.as_file_mut()), src)?;
        self.persist(tmp, &self.payload_path(&digest), payload_mode(mode))?;
        tracing::debug!(%digest, path = %src.display(), "stored payload");
        Ok((digest, size))
    }

    /// A file with the payload's content whose inode mode is `payload_mode(mode)`,
    /// suitable as a hard-link source for a render: the payload itself when its mode
    /// matches, otherwise a read-only per-mode copy kept under `renders/proxies/`.
    pub fn payload_for_mode(&self, digest: &Digest, mode: u32) -> Result<PathBuf> {
        let want = payload_mode(mode);
        let path = self.payload_path(digest);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingPayload(*digest))
            }
            Err(e) => return Err(Error::io("reading payload", &path, e)),
        };
        if meta.mode() & 0o7777 == want {
            return Ok(path);
        }
        let hex = digest.to_hex();
        let proxy = self
            .renders_dir()
            .join("proxies")
            .join(&hex[..2])
            .join(format!("{}.{:o}", &hex[2..], want));
        if proxy.exists() {
            return Ok(proxy);
        }
        let tmp_dir = self.tmp_dir();
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).ctx("creating a file in", &tmp_dir)?;
        fs::copy(&path, tmp.path()).ctx("copying payload to", tmp.path())?;
        self.persist(tmp, &proxy, want)?;
        Ok(proxy)
    }
}

impl LocalRepository {
    /// Stores the file at `src`, which the caller gives up, by linking it into the store
    /// when its content is new instead of copying it (a copy only across filesystems).
    /// The file's inode becomes read-only and loses overlayfs attributes.
    pub fn take_file(&self, src: &Path, mode: u32) -> Result<(Digest, u64)> {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(src)
            .ctx("reading", src)?;
        let (digest, size) = hash_stream(&mut file, None, src)?;
        let dest = self.payload_path(&digest);
        if dest.exists() {
            return Ok((digest, size));
        }
        drop(file);
        strip_overlay_xattrs(src);
        set_mode(src, payload_mode(mode))?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).ctx("creating", parent)?;
        }
        // A link never replaces an existing payload: a concurrent writer of the same
        // content wins and this one is a no-op.
        match fs::hard_link(src, &dest) {
            Ok(()) => Ok((digest, size)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((digest, size)),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => self.store_file(src, mode),
            Err(e) => Err(Error::io("storing payload from", src, e)),
        }
    }
}

/// Removes the `trusted.overlay.*` and `user.overlay.*` attributes overlayfs leaves on
/// files of an upper dir, so they mean nothing once the file is a payload.
fn strip_overlay_xattrs(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(cpath) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated path and a buffer of the given length.
    let n = unsafe { libc::llistxattr(cpath.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return;
    }
    for name in buf[..n as usize].split(|b| *b == 0) {
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            if let Ok(cname) = std::ffi::CString::new(name) {
                // SAFETY: both strings are NUL-terminated.
                unsafe { libc::lremovexattr(cpath.as_ptr(), cname.as_ptr()) };
            }
        }
    }
}

/// Sets exact permission bits on a path.
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).ctx("setting permissions on", path)
}

/// Hashes everything `reader` yields (named `src` in errors), copying it into `sink`
/// when given. Stops early on an interrupt.
pub fn hash_stream(
    reader: &mut impl Read,
    mut sink: Option<&mut fs::File>,
    src: &Path,
) -> Result<(Digest, u64)> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        crate::signals::check()?;
        let n = reader.read(&mut buf).ctx("reading", src)?;
        if n == 0 {
            return Ok((hasher.finish(), size));
        }
        size += n as u64;
        hasher.update(&buf[..n]);
        if let Some(out) = sink.as_mut() {
            out.write_all(&buf[..n]).map_err(|e| {
                Error::io(
                    format!("storing content of {} in the repository's", src.display()),
                    "tmp/",
                    e,
                )
            })?;
        }
    }
}
