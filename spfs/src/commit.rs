//! Turning a directory into objects: payloads stored in parallel, manifest built bottom-up.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::{DirectoryPurpose, Error, IoContext, Result};
use crate::object::{Entry, EntryKind, Layer, Manifest, Object, Tree};
use crate::progress::Progress;
use crate::storage::{LocalRepository, Transaction};

/// How a directory is read into the store.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Skip sockets, fifos and devices with a warning instead of failing.
    pub skip_special: bool,
    /// The directory is an overlayfs upper dir: whiteouts become masks and opaque
    /// directories mask what `lower` holds beneath them.
    pub overlay_upper: bool,
    /// Only compute digests; store nothing.
    pub hash_only: bool,
    /// The lower layers were hard-link renders, whose files show their committed mode
    /// as [`crate::storage::payload_mode`] gives it (without group and other write
    /// bits): a copied-up file still carrying exactly that mode gets its committed
    /// mode back.
    pub lower_modes_stripped: bool,
    /// The directory is disposable (a finished build's upper dir): new content is linked
    /// into the store instead of copied, and the files become payloads (the caller must
    /// not write to them again; a build's upper dir is deleted afterwards).
    pub take_files: bool,
}

/// Reads `dir` into the store and returns its manifest (not yet stored).
pub fn commit_tree(
    repo: &LocalRepository,
    dir: &Path,
    lower: Option<&Manifest>,
    opts: &CommitOptions,
    progress: &Progress,
) -> Result<Manifest> {
    let txn = Transaction::new(repo)?;
    let manifest = failed_commit(&txn, commit_tree_in(&txn, dir, lower, opts, progress))?;
    txn.publish()?;
    Ok(manifest)
}

/// Reads `dir` (with `lower` beneath it, see [`commit_tree`]) into the store and
/// records it as a layer with `annotations`; returns the layer digest. Nothing it
/// writes is visible to other processes until all of it is written: on failure it is
/// all removed (see [`Transaction`]).
pub fn commit_tree_as_layer(
    repo: &LocalRepository,
    dir: &Path,
    lower: Option<&Manifest>,
    opts: &CommitOptions,
    annotations: &[(String, String)],
    progress: &Progress,
) -> Result<Digest> {
    let txn = Transaction::new(repo)?;
    let layer = failed_commit(
        &txn,
        commit_tree_in(&txn, dir, lower, opts, progress)
            .and_then(|m| stage_layer(&txn, m, annotations)),
    )?;
    txn.publish()?;
    Ok(layer)
}

/// Says, on a commit that failed before publishing, that nothing it wrote was kept
/// (the staged files go when `txn` is dropped). An interrupt already says so.
fn failed_commit<T>(txn: &Transaction, r: Result<T>) -> Result<T> {
    match r {
        Err(e) if !matches!(e, Error::Interrupted) && txn.staged() > 0 => {
            Err(Error::CommitFailed {
                source: Box::new(e),
                remains: None,
            })
        }
        other => other,
    }
}

fn commit_tree_in(
    txn: &Transaction,
    dir: &Path,
    lower: Option<&Manifest>,
    opts: &CommitOptions,
    progress: &Progress,
) -> Result<Manifest> {
    let meta = fs::metadata(dir).ctx("reading", dir)?;
    if !meta.is_dir() {
        return Err(Error::NotADirectory {
            path: dir.to_path_buf(),
            purpose: DirectoryPurpose::Commit,
        });
    }
    tracing::debug!(dir = %dir.display(), ?opts, "committing directory");
    let root = commit_dir(txn, dir, lower.map(|m| &m.root), opts, progress)?;
    Ok(Manifest::new(root))
}

/// Reads `dir` into the store and records it as a layer with `annotations`.
pub fn commit_layer(
    repo: &LocalRepository,
    dir: &Path,
    opts: &CommitOptions,
    annotations: &[(String, String)],
    progress: &Progress,
) -> Result<Digest> {
    commit_tree_as_layer(repo, dir, None, opts, annotations, progress)
}

/// Stores a manifest and a layer wrapping it; returns the layer digest.
pub fn store_layer(
    repo: &LocalRepository,
    manifest: Manifest,
    annotations: &[(String, String)],
) -> Result<Digest> {
    // One hold across both writes: `spfs clean` cannot take the manifest between them.
    let _guard = repo.write_guard()?;
    let manifest_digest = repo.write_object(&Object::Manifest(manifest))?;
    tracing::debug!(manifest = %manifest_digest, "manifest stored");
    let mut layer = Layer::new(manifest_digest);
    for (k, v) in annotations {
        layer.annotations.insert(k.clone(), v.clone());
    }
    repo.write_object(&Object::Layer(layer))
}

/// Stores a stack of objects (bottom first) as a platform of their layers: manifests
/// are wrapped in layers and nested platforms flattened. Returns the platform's digest.
pub fn store_platform(repo: &LocalRepository, stack: &[Digest]) -> Result<Digest> {
    let _guard = repo.write_guard()?;
    let layers = repo.layers_of(stack)?;
    if layers.is_empty() {
        return Err(Error::EmptyPlatform);
    }
    repo.write_object(&Object::Platform(crate::object::Platform { layers }))
}

fn stage_layer(
    txn: &Transaction,
    manifest: Manifest,
    annotations: &[(String, String)],
) -> Result<Digest> {
    let manifest_digest = txn.write_object(&Object::Manifest(manifest))?;
    let mut layer = Layer::new(manifest_digest);
    for (k, v) in annotations {
        layer.annotations.insert(k.clone(), v.clone());
    }
    txn.write_object(&Object::Layer(layer))
}

fn commit_dir(
    txn: &Transaction,
    dir: &Path,
    lower: Option<&Tree>,
    opts: &CommitOptions,
    progress: &Progress,
) -> Result<Tree> {
    crate::signals::check()?;
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).ctx("reading directory", dir)? {
        names.push(entry.ctx("reading directory", dir)?.file_name());
    }
    let entries = names
        .par_iter()
        .map(|name| {
            let lower_child = lower.and_then(|t| t.get(name.as_bytes()));
            commit_entry(txn, &dir.join(name), lower_child, opts, progress)
                .map(|e| e.map(|e| (name.as_bytes().to_vec(), e)))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut tree: Tree = entries.into_iter().flatten().collect();
    if opts.overlay_upper && is_opaque(dir) {
        if let Some(lower) = lower {
            for name in lower.keys() {
                tree.entry(name.clone()).or_insert_with(Entry::mask);
            }
        }
    }
    Ok(tree)
}

fn commit_entry(
    txn: &Transaction,
    path: &Path,
    lower: Option<&Entry>,
    opts: &CommitOptions,
    progress: &Progress,
) -> Result<Option<Entry>> {
    crate::signals::check()?;
    let meta = fs::symlink_metadata(path).ctx("reading", path)?;
    let ft = meta.file_type();
    let mut mode = meta.mode() & 0o7777;
    if ft.is_file() {
        if let Some(Entry {
            mode: lower_mode,
            kind: EntryKind::File { .. },
        }) = lower
        {
            if opts.lower_modes_stripped && mode == crate::storage::payload_mode(*lower_mode) {
                mode = *lower_mode;
            }
        }
        let (digest, size) = if opts.hash_only {
            hash_file(path)?
        } else if opts.take_files {
            txn.take_file(path, mode)?
        } else {
            txn.store_file(path, mode)?
        };
        tracing::trace!(path = %path.display(), %digest, size, "hashed file");
        progress.inc(1, size);
        return Ok(Some(Entry::file(mode, size, digest)));
    }
    if ft.is_dir() {
        let lower_tree = match lower {
            Some(Entry {
                kind: EntryKind::Dir(t),
                ..
            }) => Some(t),
            _ => None,
        };
        let tree = commit_dir(txn, path, lower_tree, opts, progress)?;
        progress.inc(1, 0);
        return Ok(Some(Entry::dir(mode, tree)));
    }
    if ft.is_symlink() {
        let target = fs::read_link(path).ctx("reading symlink", path)?;
        progress.inc(1, 0);
        return Ok(Some(Entry::symlink(target.as_os_str().as_bytes().to_vec())));
    }
    if opts.overlay_upper && ft.is_char_device() && meta.rdev() == 0 {
        return Ok(Some(Entry::mask()));
    }
    let kind = if ft.is_socket() {
        "socket"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "character device"
    };
    if opts.skip_special {
        tracing::warn!("skipping {kind} {}", path.display());
        return Ok(None);
    }
    Err(Error::SpecialFile {
        path: path.to_path_buf(),
        kind,
    })
}

/// True if overlayfs marked the directory opaque (it hides everything below it).
fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|attr| get_xattr(dir, attr).as_deref() == Some(b"y".as_slice()))
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: both strings are NUL-terminated and the buffer length is passed.
    let n = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// Converts manifest name bytes to an OS path component.
pub(crate) fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

/// The digest and size of a file's content, without storing it.
pub fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ctx("reading", path)?;
    let meta = f.metadata().ctx("reading", path)?;
    if !meta.is_file() {
        return Err(Error::SpecialFile {
            path: path.to_path_buf(),
            kind: crate::storage::files::kind_name(meta.file_type()),
        });
    }
    crate::storage::hash_stream(&mut f, None, path)
}
