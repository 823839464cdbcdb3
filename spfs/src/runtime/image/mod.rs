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

/// The image of `table` (the stack `manifests`) owned by `uid:gid`: the cached one, or
/// a new one written beside it and moved into place.
pub fn ensure_image(
    repo: &LocalRepository,
    table: &InodeTable,
    manifests: &[Digest],
    uid: u32,
    gid: u32,
) -> Result<PathBuf> {
    let path = image_path(repo, manifests, uid, gid);
    if path.is_file() {
        return Ok(path);
    }
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
    let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
    write_image(table, stamp, &redirect, &mut out).ctx("writing", tmp.path())?;
    out.flush().ctx("writing", tmp.path())?;
    drop(out);
    tmp.persist(&path)
        .map_err(|e| Error::io("storing", &path, e.error))?;
    Ok(path)
}

impl ImageView {
    /// Serves `table` (the stack `manifests`) at `view`, mounting its image at `meta`
    /// (both existing directories). Every payload of the table must be local.
    pub fn mount(
        repo: &LocalRepository,
        table: &InodeTable,
        manifests: &[Digest],
        meta: &Path,
        view: &Path,
    ) -> std::result::Result<ImageView, Unavailable> {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let image = ensure_image(repo, table, manifests, uid, gid).map_err(Unavailable::Failed)?;
        match mounts::mount_image(&image, meta) {
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

#[cfg(test)]
mod tests;
