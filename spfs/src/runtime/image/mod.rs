//! Image views: a stack served by the kernel with no render and no server process.
//!
//! The merged tree of a FUSE runtime's stack, when every payload is local and the
//! runtime runs as root, is written once as an EROFS image holding metadata only
//! (`renders/fuse/<key>.erofs`, derived: deleted at any time and rebuilt). The runtime
//! mounts that image and stacks a read-only overlayfs on it whose data-only layer is
//! the repository's `payloads/` directory: every file of the image is a metacopy whose
//! redirect names its payload, so walks and stats are answered by the kernel from the
//! image and reads go straight to the payload file.
//!
//! What the view shows is what the FUSE server shows: the manifest's kinds, permission
//! bits, sizes and symlink targets, the mounting user as owner, [`FIXED_TIME`] as every
//! timestamp, nothing writable.
//!
//! [`FIXED_TIME`]: crate::runtime::fuse::FIXED_TIME

mod erofs;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use erofs::{write_image, Stamp};

use super::fuse::{InodeTable, FIXED_TIME};
use super::mounts;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::storage::LocalRepository;

/// Identifies (and versions) the image format in the cache key.
const IMAGE_MAGIC: &[u8] = b"spfs-erofs-image-v1\n";
/// Set to `0` to serve FUSE-backend runtimes from the FUSE server even as root.
pub const DISABLE_ENV: &str = "SPFS_FUSE_IMAGE";

/// A mounted image view: the image at `meta`, the overlay over it at `view`.
#[derive(Debug)]
pub struct ImageView {
    meta: PathBuf,
    view: PathBuf,
}

/// Why an image view could not be set up; the caller serves the stack from the FUSE
/// server instead.
#[derive(Debug)]
pub enum Unavailable {
    /// This kernel lacks EROFS images backed by files, or overlayfs data-only layers.
    Kernel(String),
    /// A payload of the stack is missing or not the size its manifest says: the FUSE
    /// server serves the stack, failing opens of that file with EIO.
    Payload(Digest),
    /// Anything else: writing the image, mounting.
    Failed(Error),
}

/// True when image views are allowed by the environment (`SPFS_FUSE_IMAGE` is not `0`).
pub fn enabled() -> bool {
    std::env::var(DISABLE_ENV)
        .map(|v| v.trim() != "0")
        .unwrap_or(true)
}

/// Where the image of the stack `manifests` (bottom first), owned by `uid:gid`, lives.
pub fn image_path(repo: &LocalRepository, manifests: &[Digest], uid: u32, gid: u32) -> PathBuf {
    let mut h = crate::digest::Hasher::new();
    h.update(IMAGE_MAGIC);
    h.update(&uid.to_le_bytes());
    h.update(&gid.to_le_bytes());
    for m in manifests {
        h.update(m.as_bytes());
    }
    repo.renders_dir()
        .join("fuse")
        .join(format!("{}.erofs", h.finish().to_hex()))
}

/// The image of the stack `manifests` owned by `uid:gid`, if one is cached and matches
/// its checksum (a damaged one is logged and ignored).
pub fn cached_image(
    repo: &LocalRepository,
    manifests: &[Digest],
    uid: u32,
    gid: u32,
) -> Option<PathBuf> {
    let path = image_path(repo, manifests, uid, gid);
    match checked(&path) {
        Ok(true) => Some(path),
        Ok(false) => {
            tracing::warn!(path = %path.display(), "rewriting a damaged image (derived data)");
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "rewriting an unreadable image");
            None
        }
    }
}

/// The image of `table` (the stack `manifests`) owned by `uid:gid`: the cached one, or
/// a new one from [`new_image`].
pub fn ensure_image(
    repo: &LocalRepository,
    table: &InodeTable,
    manifests: &[Digest],
    uid: u32,
    gid: u32,
) -> std::result::Result<PathBuf, Unavailable> {
    match cached_image(repo, manifests, uid, gid) {
        Some(path) => Ok(path),
        None => new_image(repo, table, manifests, uid, gid),
    }
}

/// Writes the image of `table` (the stack `manifests`) owned by `uid:gid` beside its
/// place and moves it there, once every payload is checked to be there with its size.
pub fn new_image(
    repo: &LocalRepository,
    table: &InodeTable,
    manifests: &[Digest],
    uid: u32,
    gid: u32,
) -> std::result::Result<PathBuf, Unavailable> {
    let path = image_path(repo, manifests, uid, gid);
    let payloads: Vec<(&Digest, u64)> = table.payloads().collect();
    let bad = payloads.par_iter().find_any(|(digest, size)| {
        std::fs::metadata(repo.payload_path(digest)).map_or(true, |m| m.len() != *size)
    });
    if let Some((digest, _)) = bad {
        return Err(Unavailable::Payload(**digest));
    }
    write_new_image(repo, table, &path, uid, gid).map_err(Unavailable::Failed)?;
    Ok(path)
}

fn write_new_image(
    repo: &LocalRepository,
    table: &InodeTable,
    path: &Path,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).ctx("creating", dir)?;
    let tmp = tempfile::NamedTempFile::new_in(dir).ctx("creating a file in", dir)?;
    let payloads = repo.root().join("payloads");
    let redirect = |d: &Digest| {
        let p = repo.payload_path(d);
        let rel = p.strip_prefix(&payloads).unwrap_or(&p);
        format!("/{}", rel.display())
    };
    let stamp = Stamp {
        uid,
        gid,
        mtime: FIXED_TIME.as_secs(),
    };
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, tmp.as_file()),
        hasher: crate::digest::Hasher::new(),
    };
    write_image(table, stamp, &redirect, &mut out).ctx("writing", tmp.path())?;
    let digest = out.hasher.finish();
    out.inner
        .write_all(digest.as_bytes())
        .and_then(|()| out.inner.flush())
        .ctx("writing", tmp.path())?;
    drop(out);
    tmp.persist(path)
        .map_err(|e| Error::io("storing", path, e.error))?;
    Ok(())
}

/// Bytes of the checksum after the image: blake3 of everything before it. The kernel
/// reads only the image's blocks, so the trailer is invisible to it.
const TRAILER: u64 = 32;

/// True if the image at `path` matches its trailing checksum.
fn checked(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len < TRAILER + 4096 {
        return Ok(false);
    }
    let mut hasher = crate::digest::Hasher::new();
    let mut left = len - TRAILER;
    let mut buf = vec![0u8; 256 << 10];
    while left > 0 {
        let want = buf.len().min(left as usize);
        file.read_exact(&mut buf[..want])?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    let mut trailer = [0u8; TRAILER as usize];
    file.read_exact(&mut trailer)?;
    Ok(hasher.finish().as_bytes() == &trailer)
}

/// Passes writes through, hashing them.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: crate::digest::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl ImageView {
    /// Serves the image `image` at `view`, mounting it at `meta` (both existing
    /// directories). Every payload the image names must be local.
    pub fn mount(
        repo: &LocalRepository,
        image: &Path,
        meta: &Path,
        view: &Path,
    ) -> std::result::Result<ImageView, Unavailable> {
        match mounts::mount_image(image, meta) {
            Ok(()) => {}
            Err(mounts::MountApiError::Unsupported) => {
                return Err(Unavailable::Kernel("EROFS images backed by files".into()))
            }
            Err(mounts::MountApiError::Failed(e)) => return Err(Unavailable::Failed(e)),
        }
        let payloads = repo.root().join("payloads");
        if let Err(e) = std::fs::create_dir_all(&payloads) {
            let _ = mounts::unmount(meta);
            return Err(Unavailable::Failed(Error::io("creating", &payloads, e)));
        }
        match mounts::mount_data_view(meta, &payloads, view) {
            Ok(()) => Ok(ImageView {
                meta: meta.to_path_buf(),
                view: view.to_path_buf(),
            }),
            Err(e) => {
                let _ = mounts::unmount(meta);
                Err(match e {
                    mounts::MountApiError::Unsupported => {
                        Unavailable::Kernel("overlayfs data-only layers (datadir+)".into())
                    }
                    mounts::MountApiError::Failed(e) => Unavailable::Failed(e),
                })
            }
        }
    }

    /// Detaches the view, then the image.
    pub fn unmount(self) -> Result<()> {
        let first = mounts::unmount(&self.view);
        let second = mounts::unmount(&self.meta);
        first.and(second)
    }
}
