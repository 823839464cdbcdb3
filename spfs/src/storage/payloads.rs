//! Payloads: file content stored once per digest, read-only.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::files::{self, Expect};
use super::LocalRepository;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};

const CHUNK: usize = 1 << 20;

/// The mode a payload inode carries for content committed with `mode`: the same
/// permission bits without the group and other write bits. The owner's write bit is
/// kept, so that runtime renders (which hard-link payloads) show committed modes
/// exactly; what protects a payload is described in docs/repository-layout.md.
pub fn payload_mode(mode: u32) -> u32 {
    mode & 0o7755
}

/// `mode` without any write bit: the inode mode of files that hard-link renders put
/// outside the repository (`spfs render --strategy hardlink`).
pub fn read_only_mode(mode: u32) -> u32 {
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

    /// Stores bytes as a payload (mode 0444) and returns their digest; an existing
    /// payload's modification time is refreshed instead.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let path = self.payload_path(&digest);
        let guard = self.write_guard()?;
        if !super::touch(&path)? {
            self.write_atomic(&path, bytes, 0o444)?;
        }
        guard.note_fresh(digest);
        Ok(digest)
    }

    /// Reads a whole payload into memory, verifying it.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.payload_path(digest);
        let Some((file, meta)) = files::open_file(&path)? else {
            return Err(Error::MissingPayload(*digest));
        };
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // A regular file: its size bounds the read (plus one byte to notice growth).
        file.take(meta.len().saturating_add(1))
            .read_to_end(&mut bytes)
            .ctx("reading payload", &path)?;
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

    /// Opens a payload for reading. When the manifest's `size` for it is given, a
    /// payload of another size (truncated or replaced) is refused with
    /// [`Error::PayloadSize`].
    pub fn open_payload(&self, digest: &Digest, size: Option<u64>) -> Result<fs::File> {
        let path = self.payload_path(digest);
        let Some((file, meta)) = files::open_file(&path)? else {
            return Err(Error::MissingPayload(*digest));
        };
        check_size(digest, &path, size, meta.len())?;
        Ok(file)
    }

    /// The payload's file after checking, without opening it, that it is a regular
    /// file of the manifest's `size`: what a hard link may point at.
    pub fn checked_payload_path(&self, digest: &Digest, size: u64) -> Result<(PathBuf, u32)> {
        let path = self.payload_path(digest);
        let Some(meta) = files::stat(&path, Expect::File)? else {
            return Err(Error::MissingPayload(*digest));
        };
        check_size(digest, &path, Some(size), meta.len())?;
        Ok((path, meta.mode()))
    }

    /// A file with the payload's content whose inode mode is exactly `want`, suitable
    /// as a hard-link source for a render: the payload itself when its mode matches,
    /// otherwise a per-mode copy kept under `renders/proxies/` (derived data). `want`
    /// never carries group or other write bits. The payload must be a regular file of
    /// `size` bytes.
    pub fn payload_for_mode(&self, digest: &Digest, want: u32, size: u64) -> Result<PathBuf> {
        let want = payload_mode(want);
        let (path, have) = self.checked_payload_path(digest, size)?;
        if have & 0o7777 == want {
            return Ok(path);
        }
        let hex = digest.to_hex();
        let proxy = self
            .renders_dir()
            .join("proxies")
            .join(&hex[..2])
            .join(format!("{}.{:o}", &hex[2..], want));
        match fs::symlink_metadata(&proxy) {
            Ok(m) if m.is_file() && m.len() == size => return Ok(proxy),
            // Derived data: a proxy of the wrong size or kind is rebuilt.
            Ok(m) => {
                tracing::warn!(
                    proxy = %proxy.display(),
                    kind = files::kind_name(m.file_type()),
                    size = m.len(),
                    expected = size,
                    "replacing a damaged payload proxy"
                );
                if m.is_dir() {
                    fs::remove_dir_all(&proxy).ctx("removing", &proxy)?;
                } else {
                    fs::remove_file(&proxy).ctx("removing", &proxy)?;
                }
            }
            Err(_) => {}
        }
        let mut src = self.open_payload(digest, Some(size))?;
        let tmp_dir = self.tmp_dir();
        let mut tmp =
            tempfile::NamedTempFile::new_in(&tmp_dir).ctx("creating a file in", &tmp_dir)?;
        let copied =
            std::io::copy(&mut src, tmp.as_file_mut()).ctx("copying payload to", tmp.path())?;
        check_size(digest, &path, Some(size), copied)?;
        self.persist(tmp, &proxy, want)?;
        Ok(proxy)
    }
}

/// Removes the `trusted.overlay.*` and `user.overlay.*` attributes overlayfs leaves on
/// files of an upper dir, so they mean nothing once the file is a payload.
pub(crate) fn strip_overlay_xattrs(path: &Path) {
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

fn check_size(digest: &Digest, path: &Path, expected: Option<u64>, actual: u64) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => Err(Error::PayloadSize {
            digest: *digest,
            path: path.to_path_buf(),
            expected,
            actual,
        }),
        _ => Ok(()),
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
    sink: Option<&mut fs::File>,
    src: &Path,
) -> Result<(Digest, u64)> {
    // One buffer per thread, reused: allocating and zeroing a fresh megabyte for each
    // of thousands of small files costs more than hashing them.
    let mut buf = BUFFER.take();
    if buf.len() < CHUNK {
        buf = vec![0u8; CHUNK];
    }
    let result = hash_into(reader, sink, src, &mut buf);
    BUFFER.set(buf);
    result
}

thread_local! {
    static BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

fn hash_into(
    reader: &mut impl Read,
    mut sink: Option<&mut fs::File>,
    src: &Path,
    buf: &mut [u8],
) -> Result<(Digest, u64)> {
    let mut hasher = Hasher::new();
    let mut size = 0u64;
    loop {
        crate::signals::check()?;
        let n = reader.read(buf).ctx("reading", src)?;
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
