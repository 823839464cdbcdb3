//! Materializing manifests as directories.
//!
//! Objects are read through the storage traits ([`crate::storage::ObjectStore`]); what
//! only a store on this host has, payload files to hard-link and the render cache,
//! comes through [`LocalFiles`].

use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::commit::os;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::object::{EntryKind, Manifest};
use crate::progress::Progress;
use crate::storage::{LocalFiles, LocalRepository};

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
    let files = match strategy {
        RenderStrategy::HardLink => Files::ReadOnlyLinks,
        RenderStrategy::Copy => Files::Copy,
    };
    render_tree(repo, manifest, dest, files, masks, progress)
}

/// How [`render_tree`] makes files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Files {
    /// Independent copies with exact modes.
    Copy,
    /// Hard links to inodes without any write bit (payloads or read-only proxies).
    ReadOnlyLinks,
    /// Runtime renders: hard links to inodes with the committed mode (payloads or
    /// per-mode proxies); files whose committed mode has group or other write bits
    /// are copies of their own, made only in private renders.
    RuntimeLinks,
}

/// [`render_to`] with files made as `files` says.
fn render_tree(
    repo: &dyn LocalFiles,
    manifest: &Manifest,
    dest: &Path,
    files_as: Files,
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
            render_file(repo, path, digest, *size, *mode, files_as)?;
            progress.inc(1, 0);
            Ok(())
        })?;
    for (path, mode) in dirs.iter().rev() {
        crate::storage::set_mode(path, *mode)?;
    }
    Ok(())
}

/// Group and other write bits.
const SHARED_WRITE: u32 = 0o022;

/// Links or copies one payload to `path`. The payload must be a regular file of the
/// manifest's `size` (checked with a stat before linking, an fstat before copying).
fn render_file(
    repo: &dyn LocalFiles,
    path: &Path,
    digest: &Digest,
    size: u64,
    mode: u32,
    files: Files,
) -> Result<()> {
    // The mode of the inode to link, if the file is linked.
    let link = match files {
        Files::Copy => None,
        Files::ReadOnlyLinks => Some(crate::storage::read_only_mode(mode)),
        Files::RuntimeLinks => (mode & SHARED_WRITE == 0).then_some(mode),
    };
    if let Some(link_mode) = link {
        let src = repo.payload_link_source(digest, link_mode, size)?;
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
        .mode(0o600)
        .open(path)
        .ctx("writing", path)?;
    // A file-to-file copy: `copy_file_range`, which clones where the filesystem can.
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
    crate::storage::set_mode(path, link.unwrap_or(mode))
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

/// The render cache's current format: runtime renders live under `renders/v2/`.
/// Renders directly under `renders/` were made before files with group or other write
/// bits got private renders, and may show such files without those bits: they are
/// never served (`spfs clean` reclaims them like any render of an unused manifest).
pub const RENDERS_FORMAT_DIR: &str = "v2";

/// Where shared runtime renders (and the markers of private ones) live.
pub fn shared_renders_dir(repo: &LocalRepository) -> PathBuf {
    repo.renders_dir().join(RENDERS_FORMAT_DIR)
}

/// The directory holding the private runtime renders of each user, by uid.
pub fn private_renders_root(repo: &LocalRepository) -> PathBuf {
    shared_renders_dir(repo).join("private")
}

/// True if a render of `manifest` would hold an inode or a directory that group or
/// other users may write: such a render is private to the user who makes it.
pub fn needs_private_render(manifest: &Manifest) -> bool {
    manifest.walk().iter().any(|w| {
        matches!(w.entry.kind, EntryKind::File { .. } | EntryKind::Dir(_))
            && w.entry.mode & SHARED_WRITE != 0
    })
}

/// The calling user's private render directory (`renders/v2/private/<uid>`), which
/// must be a directory owned by the user that nobody else may enter; `Ok(None)` if
/// missing.
fn private_renders_dir(repo: &LocalRepository) -> Result<Option<PathBuf>> {
    private_renders_dir_in(repo, false)
}

/// [`private_renders_dir`], created (mode 0700) if missing.
fn make_private_renders_dir(repo: &LocalRepository) -> Result<PathBuf> {
    let dir = private_renders_root(repo).join(nix::unistd::geteuid().as_raw().to_string());
    private_renders_dir_in(repo, true)?.ok_or_else(|| {
        Error::io(
            "creating",
            &dir,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })
}

fn private_renders_dir_in(repo: &LocalRepository, create: bool) -> Result<Option<PathBuf>> {
    let uid = nix::unistd::geteuid().as_raw();
    let dir = private_renders_root(repo).join(uid.to_string());
    let check = |m: &fs::Metadata| -> Result<()> {
        let problem = if !m.is_dir() {
            format!(
                "is a {}, not a directory",
                crate::storage::files::kind_name(m.file_type())
            )
        } else if m.uid() != uid {
            format!("is owned by uid {}, not by uid {uid}", m.uid())
        } else if m.mode() & 0o077 != 0 {
            format!(
                "has mode {:o}, which lets other users in",
                m.mode() & 0o7777
            )
        } else {
            return Ok(());
        };
        Err(Error::PrivateRenders {
            path: dir.clone(),
            problem,
        })
    };
    match fs::symlink_metadata(&dir) {
        Ok(m) => return check(&m).map(|()| Some(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", &dir, e)),
    }
    let root = private_renders_root(repo);
    fs::create_dir_all(&root).ctx("creating", &root)?;
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("creating", &dir, e)),
    }
    let m = fs::symlink_metadata(&dir).ctx("reading", &dir)?;
    check(&m)?;
    Ok(Some(dir))
}

/// The cached runtime render of `manifest` if it exists: one `lstat` for a shared
/// render, two more for a private one (its marker, the user's private directory).
pub fn cached_render(repo: &LocalRepository, manifest: &Digest) -> Result<Option<PathBuf>> {
    let hex = manifest.to_hex();
    let shared = shared_renders_dir(repo).join(&hex);
    match fs::symlink_metadata(&shared) {
        Ok(m) if m.is_dir() => Ok(Some(shared)),
        // A marker: the manifest's renders are private.
        Ok(m) if m.is_file() => {
            let Some(dir) = private_renders_dir(repo)? else {
                return Ok(None);
            };
            let path = dir.join(&hex);
            Ok(
                crate::storage::files::stat(&path, crate::storage::files::Expect::Dir)?
                    .map(|_| path),
            )
        }
        Ok(m) => Err(Error::UnexpectedFileType {
            path: shared,
            found: crate::storage::files::kind_name(m.file_type()),
            expected: "directory",
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", &shared, e)),
    }
}

/// The cached runtime render of a manifest, made on first use. Masks are rendered as
/// whiteouts, ready to be an overlayfs lower directory. Files and directories show
/// exactly their committed modes; runtimes only ever see a render through a read-only
/// mount or an overlay, which keep every change away from its inodes.
///
/// Most renders are shared (`renders/v2/<digest>/`) and hard-link payloads (or per-mode
/// proxies), none of which carries a group or other write bit. A manifest with a file
/// or directory whose mode has such bits is rendered privately for each user, in
/// `renders/v2/private/<uid>/<digest>/` (a directory only that user may enter), with a
/// copy of its own for each such file; `renders/v2/<digest>` is then an empty file
/// saying so. So no other user can reach, let alone write, an inode or directory a
/// render shows as writable to them.
pub fn render_cached(repo: &LocalRepository, manifest: &Digest) -> Result<PathBuf> {
    if let Some(path) = cached_render(repo, manifest)? {
        return Ok(path);
    }
    let m = repo.read_manifest(manifest)?;
    let hex = manifest.to_hex();
    let shared = shared_renders_dir(repo);
    fs::create_dir_all(&shared).ctx("creating", &shared)?;
    let private = needs_private_render(&m);
    let dir = if private {
        let marker = shared.join(&hex);
        if !marker.exists() {
            let tmp = tempfile::Builder::new()
                .prefix(".render-")
                .tempfile_in(&shared)
                .ctx("creating a file in", &shared)?;
            match tmp.persist_noclobber(&marker) {
                Ok(_) => {}
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("writing", &marker, e.error)),
            }
        }
        make_private_renders_dir(repo)?
    } else {
        shared
    };
    let final_path = dir.join(&hex);
    let tmp = tempfile::Builder::new()
        .prefix(".render-")
        .tempdir_in(&dir)
        .ctx("creating a directory in", &dir)?;
    let work = tmp.path().join("tree");
    render_tree(
        repo,
        &m,
        &work,
        Files::RuntimeLinks,
        Masks::AsWhiteouts,
        &Progress::hidden(),
    )?;
    if m.counts().3 > 0 {
        // Marks renders holding whiteouts, which only an overlay may interpret.
        let marker = whiteout_marker(&final_path);
        fs::write(&marker, b"").ctx("writing", &marker)?;
    }
    match fs::rename(&work, &final_path) {
        Ok(()) => {}
        // Another process finished the same render first: theirs is identical.
        Err(_) if final_path.is_dir() => {}
        Err(e) => return Err(Error::io("storing render", &final_path, e)),
    }
    Ok(final_path)
}

/// A file whose existence says the cached render at `render` holds whiteouts.
pub fn whiteout_marker(render: &Path) -> PathBuf {
    let mut name = render.as_os_str().to_owned();
    name.push(".whiteouts");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;
    use crate::commit::{commit_layer, CommitOptions};

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

    fn commit(repo: &LocalRepository, src: &Path, files: &[(&str, &str, u32)]) -> Digest {
        fs::create_dir_all(src).unwrap();
        for (name, content, mode) in files {
            let p = src.join(name);
            fs::write(&p, content).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
        }
        let layer = commit_layer(
            repo,
            src,
            &CommitOptions::default(),
            &[],
            &Progress::hidden(),
        )
        .unwrap();
        repo.read_layer(&layer).unwrap().manifest
    }

    #[test]
    fn runtime_renders_link_payloads_with_committed_modes_and_user_renders_stay_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(&dir.path().join("repo")).unwrap();
        let manifest = commit(&repo, &dir.path().join("src"), FILES);
        let payload = |content: &str| stat(&repo.payload_path(&Digest::of(content.as_bytes())));

        // The runtime render: exact committed modes. The file with group write bits
        // makes it private to this user: a directory only its owner may enter.
        let render = render_cached(&repo, &manifest).unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        let private = repo.renders_dir().join(format!("v2/private/{uid}"));
        assert_eq!(render, private.join(manifest.to_hex()));
        let pm = fs::symlink_metadata(&private).unwrap();
        assert_eq!((pm.mode() & 0o7777, pm.uid()), (0o700, uid));
        // The shared name is a marker saying so.
        assert!(repo
            .renders_dir()
            .join("v2")
            .join(manifest.to_hex())
            .is_file());
        let shown: Vec<u32> = FILES.iter().map(|f| stat(&render.join(f.0)).0).collect();
        assert_eq!(shown, [0o644, 0o755, 0o600, 0o444, 0o664, 0o444]);
        for (name, content, _) in &FILES[1..4] {
            assert_eq!(
                stat(&render.join(name)).1,
                payload(content).1,
                "{name} is not the payload"
            );
        }
        // The group-writable file is a copy of its own, linked from nowhere else.
        let grp = fs::symlink_metadata(render.join("grp")).unwrap();
        assert_ne!(grp.ino(), payload("grp\n").1);
        assert_eq!(grp.nlink(), 1);
        // `rw` and `rw-ro` share a payload, stored with the mode of whichever was
        // committed first: one of them links it, the other a per-mode copy.
        let rw = [stat(&render.join("rw")).1, stat(&render.join("rw-ro")).1];
        assert_ne!(rw[0], rw[1]);
        assert!(rw.contains(&payload("rw\n").1), "{rw:?}");
        // Payloads keep only the owner's write bit.
        assert_eq!(payload("grp\n").0, 0o644);
        // Found again without rendering.
        assert_eq!(
            cached_render(&repo, &manifest).unwrap(),
            Some(render.clone())
        );

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
    fn renders_without_shared_write_bits_are_shared_and_old_renders_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(&dir.path().join("repo")).unwrap();
        let plain = commit(&repo, &dir.path().join("plain"), &FILES[..4]);
        // A render of the previous format, where it used to be: ignored.
        let old = repo.renders_dir().join(plain.to_hex());
        fs::create_dir_all(&old).unwrap();
        fs::write(old.join("rw"), "stale").unwrap();
        let render = render_cached(&repo, &plain).unwrap();
        assert_eq!(render, repo.renders_dir().join("v2").join(plain.to_hex()));
        assert_eq!(fs::read_to_string(render.join("rw")).unwrap(), "rw\n");
        assert_eq!(
            stat(&render.join("x")).1,
            stat(&repo.payload_path(&Digest::of(b"x\n"))).1
        );
        assert!(!repo.renders_dir().join("v2/private").exists());

        // A directory others may write makes the render private too, exactly as
        // committed.
        let src = dir.path().join("opendir");
        fs::create_dir_all(src.join("tmp")).unwrap();
        fs::set_permissions(src.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        let open = commit(
            &repo,
            &src,
            &[("all", "all\n", 0o666), ("exe", "exe\n", 0o777)],
        );
        let render = render_cached(&repo, &open).unwrap();
        assert!(render.starts_with(repo.renders_dir().join("v2/private")));
        assert_eq!(stat(&render.join("tmp")).0, 0o1777);
        assert_eq!(stat(&render.join("all")).0, 0o666);
        assert_eq!(stat(&render.join("exe")).0, 0o777);

        // A private directory someone else could enter is refused, not used.
        let private = render.parent().unwrap().to_path_buf();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
        match cached_render(&repo, &open) {
            Err(Error::PrivateRenders { path, problem }) => {
                assert_eq!(path, private);
                assert!(problem.contains("755"), "{problem}");
            }
            other => panic!("{other:?}"),
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
