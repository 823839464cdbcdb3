//! Image views: a stack served by the kernel with no render and no server process.
//!
//! The merged tree of a FUSE runtime's stack, when every payload is local and the
//! runtime runs as root, is written once as an EROFS image holding metadata only
//! (`renders/fuse/<key>.erofs`, derived: deleted at any time and rebuilt; only an
//! image the runtime's own user wrote is used). The runtime
//! mounts that image and stacks a read-only overlayfs on it whose data-only layer is
//! the repository's `payloads/` directory: every file of the image is a metacopy whose
//! redirect names its payload, so walks and stats are answered by the kernel from the
//! image and reads go straight to the payload file.
//!
//! What the view shows is what the FUSE server shows: the manifest's kinds, permission
//! bits, sizes and symlink targets, the mounting user as owner, [`FIXED_TIME`] as every
//! timestamp, nothing writable.
//!
//! Views outlive their runtime in the [`keeper`], so that later runtimes of the stack
//! mount the same filesystem instance, its caches warm.
//!
//! [`FIXED_TIME`]: crate::runtime::fuse::FIXED_TIME

mod erofs;
pub mod keeper;

use std::io::{BufWriter, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use erofs::{write_image, Stamp};

use super::fuse::{InodeTable, FIXED_TIME};
use super::mounts;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::storage::LocalRepository;

/// Identifies (and versions) the image format in the cache key.
const IMAGE_MAGIC: &[u8] = b"spfs-erofs-image-v4\n";
/// Set to `0` to serve FUSE-backend runtimes from the FUSE server even as root.
pub const DISABLE_ENV: &str = "SPFS_FUSE_IMAGE";

/// A mounted image view: the overlay over the image at `view`. Dropping it detaches
/// the view.
#[derive(Debug)]
pub struct ImageView {
    view: PathBuf,
    /// Unmounted (or left to the dying mount namespace) already.
    done: bool,
}

/// An image file, open: checked against its owner and its stack, and mounted through
/// this descriptor, so what was checked is what the kernel reads.
#[derive(Debug)]
pub struct Image {
    file: std::fs::File,
    path: PathBuf,
}

impl Image {
    /// Where the image lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
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

impl Unavailable {
    /// A mount that failed: `Kernel(what)` when the kernel lacks the feature.
    fn from_mount(e: mounts::MountApiError, what: &str) -> Self {
        match e {
            mounts::MountApiError::Unsupported => Unavailable::Kernel(what.into()),
            mounts::MountApiError::Failed(e) => Unavailable::Failed(e),
        }
    }
}

/// True when image views may be used: allowed by the environment (`SPFS_FUSE_IMAGE` is
/// not `0`) and on a kernel that has file-backed EROFS mounts (Linux 6.12; overlayfs
/// data-only layers through `datadir+` came in 6.8).
pub fn enabled() -> bool {
    let allowed = std::env::var(DISABLE_ENV)
        .map(|v| v.trim() != "0")
        .unwrap_or(true);
    allowed && kernel_at_least(6, 12)
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let num = |p: Option<&str>| p.and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
    (num(parts.next()), num(parts.next())) >= (major, minor)
}

/// The key of the stack `manifests` (bottom first) as served to this process's user:
/// it names the image and is part of its checksum, so an image moved to another
/// stack's name fails.
fn image_key(manifests: &[Digest]) -> Digest {
    let mut h = crate::digest::Hasher::new();
    h.update(IMAGE_MAGIC);
    h.update(&nix::unistd::geteuid().as_raw().to_le_bytes());
    h.update(&nix::unistd::getegid().as_raw().to_le_bytes());
    for m in manifests {
        h.update(m.as_bytes());
    }
    h.finish()
}

/// Where the image of the stack `manifests` (bottom first) for this process's user
/// lives.
pub fn image_path(repo: &LocalRepository, manifests: &[Digest]) -> PathBuf {
    repo.renders_dir()
        .join("fuse")
        .join(format!("{}.erofs", image_key(manifests).to_hex()))
}

/// The image of the stack `manifests` for this process's user, if one is cached,
/// belongs to that user (nobody else may have written it) and matches its checksum. A
/// damaged or foreign one is logged and ignored.
pub fn cached_image(repo: &LocalRepository, manifests: &[Digest]) -> Option<Image> {
    let path = image_path(repo, manifests);
    let (mut file, meta) = match crate::storage::files::open_file(&path) {
        Ok(Some(found)) => found,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!("rewriting an unreadable image: {e}");
            return None;
        }
    };
    if !crate::storage::files::written_only_by(&meta, nix::unistd::geteuid().as_raw()) {
        tracing::warn!(
            path = %path.display(),
            owner = meta.uid(),
            mode = format!("{:o}", meta.mode() & 0o7777),
            "ignoring an image that another user wrote or may write"
        );
        return None;
    }
    match checked(&mut file, meta.len(), &image_key(manifests), &path) {
        Ok(true) => Some(Image { file, path }),
        Ok(false) => {
            tracing::warn!(path = %path.display(), "rewriting a damaged image (derived data)");
            None
        }
        Err(e) => {
            tracing::warn!("rewriting an unreadable image: {e}");
            None
        }
    }
}

/// Writes the image of `table` (the stack `manifests`) for this process's user beside
/// its place and moves it there, once every payload is checked to be there with its
/// size.
pub fn new_image(
    repo: &LocalRepository,
    table: &InodeTable,
    manifests: &[Digest],
) -> std::result::Result<Image, Unavailable> {
    let payloads: Vec<(&Digest, u64)> = table.payloads().collect();
    let bad = payloads.par_iter().find_any(|(digest, size)| {
        std::fs::metadata(repo.payload_path(digest)).map_or(true, |m| m.len() != *size)
    });
    if let Some((digest, _)) = bad {
        return Err(Unavailable::Payload(**digest));
    }
    let path = image_path(repo, manifests);
    let file =
        write_new_image(repo, table, &path, &image_key(manifests)).map_err(Unavailable::Failed)?;
    Ok(Image { file, path })
}

/// Writes the image into a new file beside `path`, then moves it there; returns the
/// file, still open.
fn write_new_image(
    repo: &LocalRepository,
    table: &InodeTable,
    path: &Path,
    key: &Digest,
) -> Result<std::fs::File> {
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
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        mtime: FIXED_TIME.as_secs(),
    };
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, tmp.as_file()),
        hasher: crate::digest::Hasher::new(),
    };
    write_image(table, stamp, &redirect, &mut out).ctx("writing", tmp.path())?;
    let trailer = seal(key, out.hasher.finish());
    out.inner
        .write_all(trailer.as_bytes())
        .and_then(|()| out.inner.flush())
        .ctx("writing", tmp.path())?;
    drop(out);
    tmp.persist(path)
        .map_err(|e| Error::io("storing", path, e.error))
}

/// Bytes of the checksum after the image ([`seal`]). The kernel reads only the image's
/// blocks, so the trailer is invisible to it.
const TRAILER: u64 = 32;

/// The trailer of an image whose bytes hash to `body`, for the stack `key`.
fn seal(key: &Digest, body: Digest) -> Digest {
    Digest::of(&[key.as_bytes().as_slice(), body.as_bytes()].concat())
}

/// True if the image `file` (at `path`) of `len` bytes matches its trailer for `key`.
fn checked(file: &mut std::fs::File, len: u64, key: &Digest, path: &Path) -> Result<bool> {
    if len < TRAILER + 4096 {
        return Ok(false);
    }
    let (body, _) = crate::storage::hash_stream(&mut file.take(len - TRAILER), None, path)?;
    let mut trailer = [0u8; TRAILER as usize];
    file.read_exact(&mut trailer).ctx("reading", path)?;
    Ok(seal(key, body).as_bytes() == &trailer)
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
    /// Serves `image` at `view` (an existing directory), mounting it at `meta` (made if
    /// missing) while the view is built. Every payload the image names must be local.
    /// Fails (`Kernel`) when the kernel could not stack a runtime's writable overlay
    /// on the view (tried in `probe`). Also returns, where the kernel can clone a
    /// detached mount, a detached copy of the view to keep for later runtimes.
    pub fn mount(
        repo: &LocalRepository,
        image: &Image,
        meta: &Path,
        view: &Path,
        probe: &Path,
    ) -> std::result::Result<(ImageView, Option<OwnedFd>), Unavailable> {
        std::fs::create_dir_all(meta)
            .map_err(|e| Unavailable::Failed(Error::io("creating", meta, e)))?;
        let source = PathBuf::from(format!("/proc/self/fd/{}", image.file.as_raw_fd()));
        mounts::mount_image(&source, &image.path, meta)
            .map_err(|e| Unavailable::from_mount(e, "EROFS images backed by files"))?;
        let payloads = repo.root().join("payloads");
        let detached = std::fs::create_dir_all(&payloads)
            .map_err(|e| Unavailable::Failed(Error::io("creating", &payloads, e)))
            .and_then(|()| {
                mounts::data_view(meta, &payloads).map_err(|e| {
                    Unavailable::from_mount(e, "overlayfs data-only layers (datadir+)")
                })
            });
        // The overlay holds a private copy of its layer's mount, so the image needs no
        // mount of its own any more, and a kept view none in any runtime.
        let _ = mounts::unmount(meta);
        let detached = detached?;
        let kept = mounts::clone_detached(&detached)
            .map_err(|e| tracing::debug!("the view cannot be kept (open_tree: {e})"))
            .ok();
        Ok((ImageView::attach(detached, view, probe)?, kept))
    }

    /// Serves at `view` a clone of `kept`, a view kept from an earlier runtime: the
    /// same filesystem instance, with the kernel's caches of it.
    pub fn mount_kept(
        kept: &OwnedFd,
        view: &Path,
        probe: &Path,
    ) -> std::result::Result<ImageView, Unavailable> {
        let clone = mounts::clone_detached(kept).map_err(|e| {
            Unavailable::Failed(Error::Mount {
                action: "clone the kept view for".into(),
                target: view.to_path_buf(),
                source: e,
                kernel: None,
            })
        })?;
        ImageView::attach(clone, view, probe)
    }

    /// Attaches the detached view `mnt` at `view` and checks that an editable runtime
    /// could stack on it.
    fn attach(
        mnt: OwnedFd,
        view: &Path,
        probe: &Path,
    ) -> std::result::Result<ImageView, Unavailable> {
        mounts::attach(mnt, view).map_err(Unavailable::Failed)?;
        // From here on, dropping `mounted` detaches the view.
        let mounted = ImageView {
            view: view.to_path_buf(),
            done: false,
        };
        // An editable runtime stacks one more overlay on the view (image, view,
        // /spfs): some kernels count a file-backed EROFS as stacked already and refuse.
        mounts::probe_overlay_on(view, probe)
            .map_err(|e| Unavailable::Kernel(format!("an overlay on the view ({e})")))?;
        Ok(mounted)
    }

    /// Detaches the view.
    pub fn unmount(mut self) -> Result<()> {
        self.detach()
    }

    /// Leaves the view to a mount namespace about to die with its last process.
    pub fn abandon(mut self) {
        self.done = true;
    }

    fn detach(&mut self) -> Result<()> {
        self.done = true;
        mounts::unmount(&self.view)
    }
}

impl Drop for ImageView {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.detach();
        }
    }
}
