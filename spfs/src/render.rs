//! Materializing manifests as directories.
//!
//! Objects are read through the storage traits ([`crate::storage::ObjectStore`]); what
//! only a store on this host has, payload files to hard-link and the render cache,
//! comes through [`LocalFiles`].

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::commit::os;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::object::{EntryKind, Manifest};
use crate::progress::Progress;
use crate::storage::LocalFiles;

/// How file content reaches a render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RenderStrategy {
    /// Hard links to read-only inodes with the payloads' content (copies where links
    /// are impossible). Files carry their committed mode without write bits: the
    /// payload itself is linked when it is stored without write bits, otherwise a
    /// read-only per-mode copy kept under `renders/proxies/` (made once, then linked).
    #[default]
    HardLink,
    /// Independent copies with exactly the committed modes.
    Copy,
}

/// What a render does with masks (paths deleted by a layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masks {
    /// Leave them out: the render is a plain directory tree.
    Skip,
    /// Write overlayfs whiteouts, so the render can be an overlay lower directory.
    AsWhiteouts,
}

/// Writes `manifest` into `dest`, which must be missing or an empty directory.
/// Masks are skipped with [`Masks::Skip`], or become overlayfs whiteouts (character
/// devices 0/0) with [`Masks::AsWhiteouts`].
pub fn render_to(
    repo: &dyn LocalFiles,
    manifest: &Manifest,
    dest: &Path,
    strategy: RenderStrategy,
    masks: Masks,
    progress: &Progress,
) -> Result<()> {
    let links = match strategy {
        RenderStrategy::HardLink => Some(crate::storage::read_only_mode as fn(u32) -> u32),
        RenderStrategy::Copy => None,
    };
    render_tree(repo, manifest, dest, links, masks, progress)
}

/// [`render_to`] with hard links to inodes of mode `links(committed mode)` (or
/// independent copies with exact modes when `links` is `None`).
fn render_tree(
    repo: &dyn LocalFiles,
    manifest: &Manifest,
    dest: &Path,
    links: Option<fn(u32) -> u32>,
    masks: Masks,
    progress: &Progress,
) -> Result<()> {
    let whiteouts = masks == Masks::AsWhiteouts;
    if dest.exists() {
        let mut rd = fs::read_dir(dest).ctx("reading", dest)?;
        if rd.next().is_some() {
            return Err(Error::RenderTargetNotEmpty(dest.to_path_buf()));
        }
    } else {
        fs::create_dir_all(dest).ctx("creating", dest)?;
    }
    let walked = manifest.walk();
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for w in &walked {
        let path = dest.join(os(&w.path));
        match &w.entry.kind {
            EntryKind::Dir(_) => {
                fs::create_dir(&path).ctx("creating", &path)?;
                crate::storage::set_mode(&path, 0o700)?;
                dirs.push((path, w.entry.mode));
            }
            EntryKind::File { digest, size } => files.push((path, *digest, *size, w.entry.mode)),
            EntryKind::Symlink(target) => {
                symlink(os(target), &path).ctx("creating symlink", &path)?;
            }
            EntryKind::Mask => {
                if whiteouts {
                    make_whiteout(&path)?;
                }
            }
        }
    }
    files
        .par_iter()
        .try_for_each(|(path, digest, size, mode)| -> Result<()> {
            crate::signals::check()?;
            render_file(repo, path, digest, *size, *mode, links)?;
            progress.inc(1, 0);
            Ok(())
        })?;
    for (path, mode) in dirs.iter().rev() {
        crate::storage::set_mode(path, *mode)?;
    }
    Ok(())
}

/// Links or copies one payload to `path`. The payload must be a regular file of the
/// manifest's `size` (checked with a stat before linking, an fstat before copying).
fn render_file(
    repo: &dyn LocalFiles,
    path: &Path,
    digest: &Digest,
    size: u64,
    mode: u32,
    links: Option<fn(u32) -> u32>,
) -> Result<()> {
    if let Some(link_mode) = links {
        let src = repo.payload_link_source(digest, link_mode(mode), size)?;
        match fs::hard_link(&src, path) {
            Ok(()) => return Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EXDEV) | Some(libc::EPERM) | Some(libc::EMLINK) | Some(libc::EACCES)
                ) => {}
            Err(e) => return Err(Error::io("linking", path, e)),
        }
    }
    let mut src = repo.open_payload_file(digest, size)?;
    let mut dest = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .ctx("writing", path)?;
    let copied = std::io::copy(&mut src, &mut dest).ctx("writing", path)?;
    if copied != size {
        // The payload changed size while it was copied.
        return Err(Error::PayloadSize {
            digest: *digest,
            path: repo.payload_file(digest),
            expected: size,
            actual: copied,
        });
    }
    let mode = match links {
        Some(link_mode) => crate::storage::payload_mode(link_mode(mode)),
        None => mode,
    };
    crate::storage::set_mode(path, mode)
}

fn make_whiteout(path: &Path) -> Result<()> {
    nix::sys::stat::mknod(
        path,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .map_err(|e| Error::Whiteout {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// The cached hard-link render of a manifest under `renders/`, made on first use.
/// Masks are rendered as whiteouts, ready to be an overlayfs lower directory. Files
/// show their committed modes, owner write bit included (group and other write bits
/// are never carried by a shared inode): runtimes only ever see a render through a
/// read-only mount or an overlay, which keep every change away from its inodes.
pub fn render_cached(repo: &dyn LocalFiles, manifest: &Digest) -> Result<PathBuf> {
    let final_path = repo.render_cache().join(manifest.to_hex());
    if crate::storage::files::stat(&final_path, crate::storage::files::Expect::Dir)?.is_some() {
        return Ok(final_path);
    }
    let m = repo.read_manifest(manifest)?;
    let renders = repo.render_cache();
    let tmp = tempfile::Builder::new()
        .prefix(".render-")
        .tempdir_in(&renders)
        .ctx("creating a directory in", &renders)?;
    let work = tmp.path().join("tree");
    render_tree(
        repo,
        &m,
        &work,
        Some(crate::storage::payload_mode),
        Masks::AsWhiteouts,
        &Progress::hidden(),
    )?;
    if m.counts().3 > 0 {
        // Marks renders holding whiteouts, which only an overlay may interpret.
        let marker = whiteout_marker(repo, manifest);
        fs::write(&marker, b"").ctx("writing", &marker)?;
    }
    match fs::rename(&work, &final_path) {
        Ok(()) => {}
        // Another process finished the same render first: theirs is identical.
        Err(_) if final_path.exists() => {}
        Err(e) => return Err(Error::io("storing render", &final_path, e)),
    }
    Ok(final_path)
}

/// A file whose existence says the cached render of `manifest` holds whiteouts.
pub fn whiteout_marker(repo: &dyn LocalFiles, manifest: &Digest) -> PathBuf {
    repo.render_cache()
        .join(format!("{}.whiteouts", manifest.to_hex()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;
    use crate::commit::{commit_layer, CommitOptions};
    use crate::storage::LocalRepository;

    /// (name, content, committed mode).
    const FILES: &[(&str, &str, u32)] = &[
        ("rw", "rw\n", 0o644),
        ("x", "x\n", 0o755),
        ("priv", "priv\n", 0o600),
        ("ro", "ro\n", 0o444),
        ("grp", "grp\n", 0o664),
        // Same content as `rw`, another mode: one payload inode, so a per-mode copy.
        ("rw-ro", "rw\n", 0o444),
    ];

    fn stat(p: &Path) -> (u32, u64) {
        let m = fs::symlink_metadata(p).unwrap();
        (m.mode() & 0o7777, m.ino())
    }

    #[test]
    fn runtime_renders_link_payloads_with_committed_modes_and_user_renders_stay_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(&dir.path().join("repo")).unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(&src).unwrap();
        for (name, content, mode) in FILES {
            let p = src.join(name);
            fs::write(&p, content).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
        }
        let layer = commit_layer(
            &repo,
            &src,
            &CommitOptions::default(),
            &[],
            &Progress::hidden(),
        )
        .unwrap();
        let manifest = repo.read_layer(&layer).unwrap().manifest;
        let payload = |content: &str| stat(&repo.payload_path(&Digest::of(content.as_bytes())));

        // The runtime render: committed modes, group and other write bits excepted,
        // and the payload's own inode wherever its mode is the one to show.
        let render = render_cached(&repo, &manifest).unwrap();
        let shown: Vec<u32> = FILES.iter().map(|f| stat(&render.join(f.0)).0).collect();
        assert_eq!(shown, [0o644, 0o755, 0o600, 0o444, 0o644, 0o444]);
        for (name, content, _) in &FILES[1..5] {
            assert_eq!(
                stat(&render.join(name)).1,
                payload(content).1,
                "{name} is not the payload"
            );
        }
        // `rw` and `rw-ro` share a payload, stored with the mode of whichever was
        // committed first: one of them links it, the other a per-mode copy.
        let rw = [stat(&render.join("rw")).1, stat(&render.join("rw-ro")).1];
        assert_ne!(rw[0], rw[1]);
        assert!(rw.contains(&payload("rw\n").1), "{rw:?}");
        // Payloads keep only the owner's write bit.
        assert_eq!(payload("grp\n").0, 0o644);

        // A hard-link render for a user's directory: no write bit anywhere.
        let out = dir.path().join("out");
        render_to(
            &repo,
            &repo.read_manifest(&manifest).unwrap(),
            &out,
            RenderStrategy::HardLink,
            Masks::Skip,
            &Progress::hidden(),
        )
        .unwrap();
        let shown: Vec<u32> = FILES.iter().map(|f| stat(&out.join(f.0)).0).collect();
        assert_eq!(shown, [0o444, 0o555, 0o400, 0o444, 0o444, 0o444]);
        // Read-only payloads are linked; the others through read-only copies.
        assert_eq!(stat(&out.join("ro")).1, payload("ro\n").1);
        assert_ne!(stat(&out.join("x")).1, payload("x\n").1);
        assert_eq!(stat(&out.join("rw")).1, stat(&out.join("rw-ro")).1);
        for (name, content, _) in FILES {
            assert_eq!(fs::read_to_string(out.join(name)).unwrap(), *content);
            assert_eq!(fs::read_to_string(render.join(name)).unwrap(), *content);
        }
    }

    #[test]
    fn a_whiteout_that_cannot_be_made_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-parent/gone");
        match make_whiteout(&path) {
            Err(Error::Whiteout { path: p, source }) => {
                assert_eq!(p, path);
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
            }
            other => panic!("{other:?}"),
        }
    }
}
