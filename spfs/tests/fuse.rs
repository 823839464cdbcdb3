//! The read-only FUSE filesystem, mounted for real: the served tree matches the committed
//! one, reads are byte-exact, writes fail with EROFS, overlayfs stacks on it, and nothing
//! stays mounted afterwards.
//!
//! Each test gives its own thread a private mount namespace, so mounts never leak to the
//! host even when a test fails. These tests need root; they skip otherwise, except under
//! CI where skipping is a failure.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use spfs::commit::{commit_tree, CommitOptions};
use spfs::object::{EntryKind, Manifest, Object};
use spfs::progress::Progress;
use spfs::runtime::fuse::{FuseMount, FuseOptions, InodeTable};
use spfs::runtime::image::{cached_image, image_path, new_image, ImageView};
use spfs::storage::LocalRepository;

const BIG: usize = 6 * 1024 * 1024 + 12345;

/// True when the test may run; otherwise reports the skip (or fails under CI).
fn privileged(name: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{name} needs root, and CI must not skip it");
    }
    eprintln!("SKIPPED {name}: needs root");
    false
}

/// Moves the calling thread into a private mount namespace. Threads it spawns (the FUSE
/// server) inherit it; the rest of the process does not see its mounts.
fn private_mount_ns() {
    unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("making / private");
}

/// Mount points of this thread's namespace with their filesystem types.
fn mounts() -> Vec<(String, String)> {
    let text = fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some((fields[4].to_string(), fields.get(sep + 1)?.to_string()))
        })
        .collect()
}

fn mounted_at(path: &Path) -> Option<String> {
    let path = path.to_str().unwrap();
    mounts()
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, fstype)| fstype)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn osname(bytes: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(bytes)
}

/// A source tree covering every kind of entry the store keeps.
fn sample_tree(src: &Path) {
    write(&src.join("bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    write(&src.join("etc/conf"), b"key = value\n", 0o644);
    write(&src.join("etc/secret"), b"s3cret", 0o600);
    write(&src.join("bin/setuid"), b"#!/bin/sh\n", 0o4755);
    write(&src.join("empty-file"), b"", 0o644);
    write(&src.join("data/big.bin"), &noise(BIG, 7), 0o444);
    write(&src.join(osname(b"caf\xe9.txt")), b"latin-1 name", 0o640);
    mkdir(&src.join(osname(b"\xff\xfe-dir")), 0o750);
    write(
        &src.join(osname(b"\xff\xfe-dir")).join("inside"),
        b"in a non-UTF-8 dir",
        0o644,
    );
    // A real executable: exec maps it through the mount.
    write(
        &src.join("bin/true"),
        &fs::read("/bin/true").unwrap(),
        0o755,
    );
    mkdir(&src.join("empty-dir"), 0o755);
    mkdir(&src.join("deep/a/b/c"), 0o700);
    mkdir(&src.join("share/sticky"), 0o1777);
    symlink("../etc/conf", src.join("bin/conf-link")).unwrap();
    symlink("/etc/hostname", src.join("absolute-link")).unwrap();
    symlink("no/such/target", src.join("dangling")).unwrap();
    symlink(osname(b"caf\xe9.txt"), src.join("latin-link")).unwrap();
    // A name that sorts before `.` and `..`, and a target too long to sit beside its
    // inode in one 4 KiB block of an image.
    write(&src.join("+sorts-before-dot"), b"plus", 0o644);
    symlink("t/".repeat(2000), src.join("long-link")).unwrap();
    // Enough entries that a directory listing takes several readdir calls.
    for i in 0..400 {
        write(
            &src.join(format!("many/entry-with-a-fairly-long-name-{i:04}")),
            format!("{i}").as_bytes(),
            0o644,
        );
    }
    fs::set_permissions(src, fs::Permissions::from_mode(0o755)).unwrap();
}

struct Fixture {
    tmp: tempfile::TempDir,
    src: PathBuf,
    repo: LocalRepository,
    manifest: Manifest,
}

impl Fixture {
    fn new(build: impl FnOnce(&Path)) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        build(&src);
        let repo = LocalRepository::create(&tmp.path().join("repo")).unwrap();
        let committed = commit_tree(
            &repo,
            &src,
            None,
            &CommitOptions::default(),
            &Progress::hidden(),
        )
        .unwrap();
        let digest = repo.write_object(&Object::Manifest(committed)).unwrap();
        let manifest = repo.read_manifest(&digest).unwrap();
        Fixture {
            tmp,
            src,
            repo,
            manifest,
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    fn mount(&self, at: &Path, passthrough: bool) -> FuseMount {
        let m = FuseMount::mount(
            &self.repo,
            self.manifest.clone(),
            at,
            &FuseOptions {
                passthrough,
                fallback: None,
            },
        )
        .unwrap();
        assert_eq!(mounted_at(at).as_deref(), Some("fuse.spfs"));
        if !passthrough {
            assert!(!m.passthrough_active());
        }
        eprintln!(
            "mounted at {} (passthrough requested: {passthrough}, active: {})",
            at.display(),
            m.passthrough_active()
        );
        m
    }
}

#[derive(Debug, PartialEq)]
struct Seen {
    kind: char,
    mode: u32,
    size: Option<u64>,
    nlink: u64,
    target: Option<Vec<u8>>,
}

/// Every entry under `root` by relative path, with its kind, permission bits, size (files
/// and symlinks), link count and symlink target.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            let path = root.join(&rel);
            let meta = fs::symlink_metadata(&path).unwrap();
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_file() {
                '-'
            } else {
                '?'
            };
            assert_eq!(
                entry.file_type().unwrap().is_dir(),
                ft.is_dir(),
                "{rel:?}: d_type disagrees with stat"
            );
            if ft.is_dir() {
                stack.push(rel.clone());
            }
            out.insert(
                rel.as_os_str().as_bytes().to_vec(),
                Seen {
                    kind,
                    mode: meta.mode() & 0o7777,
                    size: (!ft.is_dir()).then_some(meta.len()),
                    nlink: meta.nlink(),
                    target: ft.is_symlink().then(|| {
                        fs::read_link(&path)
                            .unwrap()
                            .as_os_str()
                            .as_bytes()
                            .to_vec()
                    }),
                },
            );
        }
    }
    out
}

fn errno_of(err: &std::io::Error) -> i32 {
    err.raw_os_error().unwrap_or(0)
}

#[test]
fn serves_the_committed_tree_exactly() {
    if !privileged("serves_the_committed_tree_exactly") {
        return;
    }
    private_mount_ns();
    let fx = Fixture::new(sample_tree);
    let expected = snapshot(&fx.src);
    assert!(expected.len() > 400);
    for passthrough in [false, true] {
        let at = fx.dir(&format!("mnt-{passthrough}"));
        let m = fx.mount(&at, passthrough);
        check_served_tree(&fx, &expected, &at, true);
        m.unmount().unwrap();
        assert_eq!(mounted_at(&at), None);
    }
}

/// The image view (an EROFS image of the metadata under an overlay whose data-only
/// layer is the repository's payloads) shows what the FUSE server shows.
#[test]
fn image_view_serves_the_committed_tree_exactly() {
    if !privileged("image_view_serves_the_committed_tree_exactly") {
        return;
    }
    private_mount_ns();
    let fx = Fixture::new(sample_tree);
    let expected = snapshot(&fx.src);
    let table = InodeTable::from_manifest(fx.manifest.clone());
    let key = [Object::Manifest(fx.manifest.clone()).digest()];
    let (meta, at, probe) = (fx.dir("image"), fx.dir("view"), fx.dir("probe"));
    let uid = nix::unistd::geteuid().as_raw();
    let image = new_image(&fx.repo, &table, &key).unwrap_or_else(|e| panic!("image: {e:?}"));
    let (view, kept) = ImageView::mount(&fx.repo, &image, &meta, &at, &probe)
        .unwrap_or_else(|e| panic!("image view: {e:?}"));
    // The image needs no mount of its own once the overlay holds it as its layer.
    assert_eq!(mounted_at(&meta), None);
    assert_eq!(mounted_at(&at).as_deref(), Some("overlay"));
    check_served_tree(&fx, &expected, &at, false);
    let instance = fs::metadata(&at).unwrap().dev();
    // No setuid programs or device files through the view.
    let st = nix::sys::statvfs::statvfs(&at).unwrap();
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID));
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_NODEV));
    // Writes are refused, and the payloads stay as committed.
    let file = at.join("etc/conf");
    let err = fs::OpenOptions::new().write(true).open(&file).unwrap_err();
    assert_eq!(errno_of(&err), libc::EROFS);
    let err = fs::set_permissions(&file, fs::Permissions::from_mode(0o777)).unwrap_err();
    assert_eq!(errno_of(&err), libc::EROFS);
    view.unmount().unwrap();
    assert_eq!(mounted_at(&at), None);
    // The detached copy kept for later runtimes outlives the view, and mounts the same
    // filesystem instance again (so the same cached inodes), serving the same tree.
    let kept = kept.expect("this kernel (6.18) clones detached mounts");
    let again = fx.dir("again");
    let clone = ImageView::mount_kept(&kept, &again, &probe).unwrap();
    assert_eq!(fs::metadata(&again).unwrap().dev(), instance);
    check_served_tree(&fx, &expected, &again, false);
    clone.unmount().unwrap();
    assert_eq!(mounted_at(&again), None);
    // The image is derived: cached for the next view of the stack, written again when
    // deleted.
    let cached = cached_image(&fx.repo, &key).expect("a cached image");
    assert_eq!(cached.path(), image.path());
    // Only an image this user wrote counts: one handed to another owner is ignored.
    std::os::unix::fs::chown(image.path(), Some(uid + 1), None).unwrap();
    assert!(cached_image(&fx.repo, &key).is_none());
    // Nor does one moved to another stack's name (the checksum covers the stack).
    std::os::unix::fs::chown(image.path(), Some(uid), None).unwrap();
    let other = [key[0], key[0]];
    fs::rename(image.path(), image_path(&fx.repo, &other)).unwrap();
    assert!(cached_image(&fx.repo, &other).is_none());
    assert!(cached_image(&fx.repo, &key).is_none());
    let image = new_image(&fx.repo, &table, &key).unwrap();
    let (view, _) = ImageView::mount(&fx.repo, &image, &meta, &at, &probe).unwrap();
    check_served_tree(&fx, &expected, &at, false);
    assert_ne!(fs::metadata(&at).unwrap().dev(), instance);
    view.unmount().unwrap();
}

/// Checks the tree served at `at` against the snapshot of the committed source:
/// entries, kinds, modes, sizes, link counts, targets, owners, contents, resolution.
/// `exact_blocks`: `st_blocks` is the size in 512-byte units (the FUSE server's answer).
fn check_served_tree(
    fx: &Fixture,
    expected: &BTreeMap<Vec<u8>, Seen>,
    at: &Path,
    exact_blocks: bool,
) {
    let root = fs::metadata(at).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.mode() & 0o7777, 0o755);
    assert_eq!(root.uid(), nix::unistd::geteuid().as_raw());
    assert_eq!(root.gid(), nix::unistd::getegid().as_raw());

    let seen = snapshot(at);
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    let extra: Vec<_> = seen.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (path, want) in expected {
        assert_eq!(&seen[path], want, "{}", String::from_utf8_lossy(path));
    }

    for (path, entry) in &seen {
        let rel = Path::new(osname(path));
        let meta = fs::symlink_metadata(at.join(rel)).unwrap();
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
        assert!(meta.mtime() > 315_532_800, "timestamps are before 1980");
        if entry.kind == '-' {
            let got = fs::read(at.join(rel)).unwrap();
            let want = fs::read(fx.src.join(rel)).unwrap();
            assert!(got == want, "{rel:?}: content differs");
            if exact_blocks {
                assert_eq!(meta.blocks(), meta.len().div_ceil(512));
            }
        }
    }

    // Programs run from the mount.
    let status = std::process::Command::new(at.join("bin/true"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = std::process::Command::new(at.join("bin/tool"))
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"tool\n");

    // Paths through symlinks and `..` resolve inside the mount.
    assert_eq!(
        fs::read(at.join("bin/conf-link")).unwrap(),
        b"key = value\n"
    );
    assert_eq!(
        fs::read(at.join("bin/../etc/conf")).unwrap(),
        b"key = value\n"
    );
    assert_eq!(fs::read(at.join("latin-link")).unwrap(), b"latin-1 name");
    let err = fs::metadata(at.join("no-such-name")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = fs::metadata(at.join("etc/conf/below-a-file")).unwrap_err();
    assert_eq!(errno_of(&err), libc::ENOTDIR);

    // statfs describes the served tree.
    let st = nix::sys::statvfs::statvfs(at).unwrap();
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    assert_eq!(
        (st.files() - st.files_free()) as usize,
        expected.len() + 1,
        "inodes in use, root included"
    );
}

/// (name, d_ino, d_type is dir, d_type is symlink) of every entry of `dir`.
fn listing(dir: &Path) -> Vec<(Vec<u8>, u64, bool, bool)> {
    use std::os::unix::fs::DirEntryExt;
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            (
                e.file_name().as_bytes().to_vec(),
                e.ino(),
                ft.is_dir(),
                ft.is_symlink(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Checks a listing against `lstat` of each entry and against the source tree.
fn check_listing(src: &Path, dir: &Path, seen: &[(Vec<u8>, u64, bool, bool)]) {
    let expected = fs::read_dir(src).unwrap().count();
    assert_eq!(seen.len(), expected, "{dir:?}: entry count");
    for (name, ino, is_dir, is_link) in seen {
        assert_ne!(
            *ino, 0,
            "{dir:?}/{name:?}: d_ino 0 (readdir users skip such entries)"
        );
        let meta = fs::symlink_metadata(dir.join(osname(name))).unwrap();
        let want = fs::symlink_metadata(src.join(osname(name))).unwrap();
        assert_eq!(meta.ino(), *ino, "{name:?}: d_ino differs from st_ino");
        assert_eq!(meta.is_dir(), *is_dir, "{name:?}: d_type");
        assert_eq!(meta.file_type().is_symlink(), *is_link, "{name:?}: d_type");
        assert_eq!(meta.mode() & 0o7777, want.mode() & 0o7777, "{name:?}: mode");
        if !is_dir {
            assert_eq!(meta.len(), want.len(), "{name:?}: size");
        }
    }
}

#[test]
fn listings_show_inode_numbers_and_types_whether_or_not_they_carry_attributes() {
    if !privileged("listings_show_inode_numbers_and_types_whether_or_not_they_carry_attributes") {
        return;
    }
    private_mount_ns();
    let fx = Fixture::new(sample_tree);
    let at = fx.dir("mnt");
    let m = fx.mount(&at, false);
    // A thread that has looked nothing up: files are listed without attributes (the
    // kernel instantiates no inode for them) and looked up when stat'ed afterwards.
    let (src, mnt) = (fx.src.clone(), at.clone());
    std::thread::spawn(move || {
        for sub in ["many", "bin", ""] {
            let seen = listing(&mnt.join(sub));
            check_listing(&src.join(sub), &mnt.join(sub), &seen);
        }
    })
    .join()
    .unwrap();
    // A thread that stats files first: its listings carry every attribute.
    let (src, mnt) = (fx.src.clone(), at.clone());
    std::thread::spawn(move || {
        fs::metadata(mnt.join("etc/conf")).unwrap();
        for sub in ["etc", "data", "deep/a"] {
            let seen = listing(&mnt.join(sub));
            check_listing(&src.join(sub), &mnt.join(sub), &seen);
        }
    })
    .join()
    .unwrap();
    // A fresh thread again, over listings the kernel cached for the one above and
    // listings it did not cache.
    let (src, mnt) = (fx.src.clone(), at.clone());
    std::thread::spawn(move || {
        for sub in ["etc", "many", "deep/a"] {
            let seen = listing(&mnt.join(sub));
            check_listing(&src.join(sub), &mnt.join(sub), &seen);
        }
    })
    .join()
    .unwrap();
    m.unmount().unwrap();
}

#[test]
fn large_files_read_sequentially_at_random_offsets_and_concurrently() {
    if !privileged("large_files_read_sequentially_at_random_offsets_and_concurrently") {
        return;
    }
    private_mount_ns();
    let fx = Fixture::new(|src| {
        write(&src.join("big.bin"), &noise(BIG, 7), 0o644);
        for i in 0..4u64 {
            write(
                &src.join(format!("mid-{i}")),
                &noise(300_000 + i as usize * 4099, 100 + i),
                0o644,
            );
        }
    });
    let want = fs::read(fx.src.join("big.bin")).unwrap();
    for passthrough in [false, true] {
        let at = fx.dir(&format!("mnt-{passthrough}"));
        let m = fx.mount(&at, passthrough);
        let path = at.join("big.bin");

        // Sequential reads with several buffer sizes, first read of each through a fresh open.
        for bufsize in [4096usize, 65536, 1 << 20, 3 * 1024 * 1024 + 7] {
            let mut f = fs::File::open(&path).unwrap();
            let mut got = Vec::with_capacity(want.len());
            let mut buf = vec![0u8; bufsize];
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert!(
                got == want,
                "sequential read with {bufsize}-byte buffer differs"
            );
        }

        // Random offsets and lengths, including the tail and past the end.
        let f = fs::File::open(&path).unwrap();
        let mut rng = Rng(42);
        for _ in 0..300 {
            let off = rng.below(want.len() as u64 + 10_000) as usize;
            let len = 1 + rng.below(300_000) as usize;
            let mut buf = vec![0u8; len];
            let n = f.read_at(&mut buf, off as u64).unwrap();
            let end = (off + len).min(want.len());
            let expect = if off >= want.len() {
                &[][..]
            } else {
                &want[off..end]
            };
            assert_eq!(n, expect.len(), "read_at({off}, {len}) length");
            assert!(buf[..n] == *expect, "read_at({off}, {len}) differs");
        }
        drop(f);

        // Several readers at once: the same inode from several opens, and different files.
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let at = &at;
                let fx = &fx;
                let want = &want;
                s.spawn(move || {
                    for round in 0..3 {
                        let got = fs::read(at.join("big.bin")).unwrap();
                        assert!(got == *want, "thread {t} round {round}: big.bin differs");
                        let name = format!("mid-{t}");
                        let got = fs::read(at.join(&name)).unwrap();
                        assert!(got == fs::read(fx.src.join(&name)).unwrap());
                    }
                });
            }
        });
        m.unmount().unwrap();
        assert_eq!(mounted_at(&at), None);
    }
}

#[test]
fn writes_are_refused_with_erofs() {
    if !privileged("writes_are_refused_with_erofs") {
        return;
    }
    private_mount_ns();
    let fx = Fixture::new(sample_tree);
    let at = fx.dir("mnt");
    let m = fx.mount(&at, true);
    let file = at.join("etc/conf");

    let erofs = |what: &str, res: std::io::Result<()>| {
        let err = res.expect_err(what);
        assert_eq!(errno_of(&err), libc::EROFS, "{what}: {err}");
    };
    erofs(
        "open for writing",
        fs::OpenOptions::new().write(true).open(&file).map(drop),
    );
    erofs(
        "open read-write",
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .map(drop),
    );
    erofs(
        "truncate on open",
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&file)
            .map(drop),
    );
    erofs("create", fs::write(at.join("new-file"), b"x"));
    erofs(
        "exclusive create",
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(at.join("etc/new"))
            .map(drop),
    );
    erofs("mkdir", fs::create_dir(at.join("new-dir")));
    erofs("unlink", fs::remove_file(&file));
    erofs("rmdir", fs::remove_dir(at.join("empty-dir")));
    erofs("rename", fs::rename(&file, at.join("etc/renamed")));
    erofs("symlink", symlink("x", at.join("new-link")));
    erofs("hard link", fs::hard_link(&file, at.join("etc/linked")));
    erofs(
        "chmod",
        fs::set_permissions(&file, fs::Permissions::from_mode(0o777)),
    );
    erofs(
        "utimes",
        fs::File::open(&file)
            .unwrap()
            .set_modified(std::time::SystemTime::now()),
    );

    // The kernel refuses these itself on the read-only mount (the server has no
    // handlers for them).
    let cfile = CString::new(file.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    let rc = unsafe { libc::truncate(cfile.as_ptr(), 0) };
    assert_eq!(rc, -1);
    assert_eq!(
        errno_of(&std::io::Error::last_os_error()),
        libc::EROFS,
        "truncate"
    );
    // SAFETY: as above.
    let rc = unsafe { libc::access(cfile.as_ptr(), libc::W_OK) };
    assert_eq!(rc, -1);
    assert_eq!(
        errno_of(&std::io::Error::last_os_error()),
        libc::EROFS,
        "access(W_OK)"
    );
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::access(cfile.as_ptr(), libc::R_OK) },
        0,
        "access(R_OK)"
    );
    let cname = CString::new("user.x").unwrap();
    // SAFETY: valid C strings.
    let rc = unsafe { libc::lremovexattr(cfile.as_ptr(), cname.as_ptr()) };
    assert_eq!(rc, -1);
    assert_eq!(
        errno_of(&std::io::Error::last_os_error()),
        libc::EROFS,
        "removexattr"
    );

    // Extended attributes: none, and asking does not break anything.
    let cpath = CString::new(file.as_os_str().as_bytes()).unwrap();
    let name = CString::new("trusted.overlay.opaque").unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let err = std::io::Error::last_os_error();
    assert_eq!(rc, -1);
    assert!(
        matches!(errno_of(&err), libc::ENODATA | libc::EOPNOTSUPP),
        "getxattr: {err}"
    );
    let value = CString::new("y").unwrap();
    // SAFETY: as above.
    let rc = unsafe { libc::lsetxattr(cpath.as_ptr(), name.as_ptr(), value.as_ptr().cast(), 1, 0) };
    assert_eq!(rc, -1);
    assert_eq!(
        errno_of(&std::io::Error::last_os_error()),
        libc::EROFS,
        "setxattr"
    );

    // Still intact and readable afterwards.
    assert_eq!(fs::read(&file).unwrap(), b"key = value\n");
    m.unmount().unwrap();
    assert_eq!(fs::read(fx.src.join("etc/conf")).unwrap(), b"key = value\n");
}

#[test]
fn missing_payload_fails_the_open_with_eio() {
    if !privileged("missing_payload_fails_the_open_with_eio") {
        return;
    }
    private_mount_ns();
    let fx = Fixture::new(|src| {
        write(&src.join("kept"), b"kept", 0o644);
        write(&src.join("lost"), b"this payload goes missing", 0o644);
    });
    let EntryKind::File { digest, .. } = fx.manifest.root[&b"lost".to_vec()].kind else {
        panic!("lost is not a file");
    };
    fs::remove_file(fx.repo.payload_path(&digest)).unwrap();
    for passthrough in [false, true] {
        let at = fx.dir(&format!("mnt-{passthrough}"));
        let m = fx.mount(&at, passthrough);
        // Listing and stat still work; only the content is unavailable.
        assert_eq!(fs::metadata(at.join("lost")).unwrap().len(), 25);
        let err = fs::read(at.join("lost")).unwrap_err();
        assert_eq!(errno_of(&err), libc::EIO, "{err}");
        assert_eq!(fs::read(at.join("kept")).unwrap(), b"kept");
        m.unmount().unwrap();
    }
}

#[test]
fn truncated_payload_fails_the_open_with_eio() {
    if !privileged("truncated_payload_fails_the_open_with_eio") {
        return;
    }
    private_mount_ns();
    let fx = Fixture::new(|src| {
        write(&src.join("kept"), b"kept", 0o644);
        write(&src.join("short"), &noise(2_000_000, 7), 0o644);
    });
    let EntryKind::File { digest, .. } = fx.manifest.root[&b"short".to_vec()].kind else {
        panic!("short is not a file");
    };
    let payload = fx.repo.payload_path(&digest);
    fs::set_permissions(&payload, fs::Permissions::from_mode(0o644)).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&payload)
        .unwrap()
        .set_len(1_000_000)
        .unwrap();
    for passthrough in [false, true] {
        let at = fx.dir(&format!("mnt-{passthrough}"));
        let m = fx.mount(&at, passthrough);
        // stat shows the manifest's size; the content is refused instead of cut short.
        assert_eq!(fs::metadata(at.join("short")).unwrap().len(), 2_000_000);
        let err = fs::read(at.join("short")).unwrap_err();
        assert_eq!(errno_of(&err), libc::EIO, "{err}");
        assert_eq!(fs::read(at.join("kept")).unwrap(), b"kept");
        m.unmount().unwrap();
    }
}

#[test]
fn unmount_and_drop_leave_nothing_mounted() {
    if !privileged("unmount_and_drop_leave_nothing_mounted") {
        return;
    }
    private_mount_ns();
    let fx = Fixture::new(sample_tree);
    let at = fx.dir("mnt");
    let before = mounts();

    // Explicit unmount.
    let m = fx.mount(&at, false);
    assert_eq!(m.mountpoint(), at.canonicalize().unwrap());
    fs::read(at.join("etc/conf")).unwrap();
    m.unmount().unwrap();
    assert_eq!(mounts(), before);

    // Drop.
    {
        let _m = fx.mount(&at, true);
        fs::read(at.join("etc/conf")).unwrap();
    }
    assert_eq!(mounts(), before);

    // Unmount while a file is still open through the mount: returns promptly, and the
    // open file fails instead of hanging.
    for passthrough in [false, true] {
        let m = fx.mount(&at, passthrough);
        let open = fs::File::open(at.join("data/big.bin")).unwrap();
        let mut buf = [0u8; 16];
        open.read_at(&mut buf, 0).unwrap();
        let start = Instant::now();
        m.unmount().unwrap();
        assert!(start.elapsed() < Duration::from_secs(20));
        assert_eq!(mounts(), before);
        if !passthrough {
            // Beyond what the kernel cached: the request needs the (stopped) server.
            let err = open.read_at(&mut buf, 5 * 1024 * 1024).unwrap_err();
            assert!(
                matches!(errno_of(&err), libc::ENOTCONN | libc::EIO),
                "{err}"
            );
        }
        drop(open);
    }

    // A mount point that does not exist is an error naming it.
    let err = FuseMount::mount(
        &fx.repo,
        fx.manifest.clone(),
        &fx.tmp.path().join("no-such-dir"),
        &FuseOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    assert_eq!(mounts(), before);
}

#[test]
fn overlayfs_stacks_on_the_fuse_mount() {
    if !privileged("overlayfs_stacks_on_the_fuse_mount") {
        return;
    }
    private_mount_ns();
    let fx = Fixture::new(sample_tree);
    let before = mounts();
    for passthrough in [false, true] {
        let lower = fx.dir(&format!("lower-{passthrough}"));
        let scratch = fx.dir(&format!("scratch-{passthrough}"));
        let merged = fx.dir(&format!("merged-{passthrough}"));
        let m = fx.mount(&lower, passthrough);

        mount(
            Some("tmpfs"),
            &scratch,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("mode=0755"),
        )
        .unwrap();
        fs::create_dir(scratch.join("upper")).unwrap();
        fs::create_dir(scratch.join("work")).unwrap();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            scratch.join("upper").display(),
            scratch.join("work").display()
        );
        mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .unwrap_or_else(|e| panic!("overlay on the FUSE mount ({data}): {e}"));

        // Reads come from the lower FUSE mount.
        assert_eq!(
            fs::read(merged.join("data/big.bin")).unwrap(),
            fs::read(fx.src.join("data/big.bin")).unwrap()
        );
        assert_eq!(
            fs::read_link(merged.join("bin/conf-link")).unwrap(),
            Path::new("../etc/conf")
        );
        assert_eq!(
            fs::read_dir(merged.join("many")).unwrap().count(),
            400,
            "listing through the overlay"
        );
        let meta = fs::metadata(merged.join("bin/setuid")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o4755);

        assert!(std::process::Command::new(merged.join("bin/true"))
            .status()
            .unwrap()
            .success());

        // Writes land in the upper dir.
        fs::write(merged.join("new-file"), b"written through the overlay").unwrap();
        fs::write(merged.join("etc/conf"), b"changed\n").unwrap();
        fs::create_dir(merged.join("empty-dir/sub")).unwrap();
        fs::remove_file(merged.join("etc/secret")).unwrap();
        fs::set_permissions(merged.join("bin/tool"), fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            fs::read(merged.join("new-file")).unwrap(),
            b"written through the overlay"
        );
        assert_eq!(fs::read(merged.join("etc/conf")).unwrap(), b"changed\n");
        assert!(!merged.join("etc/secret").exists());
        assert_eq!(
            fs::read(scratch.join("upper/new-file")).unwrap(),
            b"written through the overlay"
        );

        // The lower mount and the store are untouched.
        assert!(!lower.join("new-file").exists());
        assert_eq!(fs::read(lower.join("etc/conf")).unwrap(), b"key = value\n");
        assert!(lower.join("etc/secret").exists());
        assert!(!lower.join("empty-dir/sub").exists());
        assert_eq!(
            fs::metadata(lower.join("bin/tool")).unwrap().mode() & 0o7777,
            0o755
        );
        for digest in fx.manifest.files().map(|f| f.digest) {
            fx.repo.read_blob(&digest).unwrap();
        }

        // The overlay goes first; then the FUSE mount can stop.
        umount2(&merged, MntFlags::empty()).unwrap();
        umount2(&scratch, MntFlags::empty()).unwrap();
        m.unmount().unwrap();
        assert_eq!(mounts(), before);
    }
}

const USERNS_CHILD: &str = "SPFS_FUSE_TEST_USERNS_CHILD";

/// Runs inside `setpriv … unshare -U -r -m`: an ordinary user that is root of its own
/// user namespace mounts and reads the tree; passthrough is refused there.
fn userns_child(dir: &Path) {
    let repo = LocalRepository::open(&dir.join("repo")).unwrap();
    let digest = fs::read_to_string(dir.join("manifest-digest")).unwrap();
    let digest = repo.resolve(digest.trim()).unwrap();
    let manifest = repo.read_manifest(&digest).unwrap();
    let at = dir.join("userns-mnt");
    let before = mounts();
    let m = FuseMount::mount(
        &repo,
        manifest,
        &at,
        &FuseOptions {
            passthrough: true,
            fallback: None,
        },
    )
    .unwrap();
    assert_eq!(mounted_at(&at).as_deref(), Some("fuse.spfs"));
    assert!(
        !m.passthrough_active(),
        "passthrough needs CAP_SYS_ADMIN in the initial user namespace"
    );
    assert_eq!(fs::metadata(at.join("etc/conf")).unwrap().uid(), 0);
    assert_eq!(fs::read(at.join("etc/conf")).unwrap(), b"key = value\n");
    assert_eq!(
        fs::read(at.join("data/big.bin")).unwrap(),
        fs::read(dir.join("src/data/big.bin")).unwrap()
    );
    assert_eq!(fs::read_dir(at.join("many")).unwrap().count(), 400);
    m.unmount().unwrap();
    assert_eq!(mounts(), before);
}

/// Hands a whole directory tree to `uid` (without following symlinks).
fn chown_tree(root: &Path, uid: u32) {
    let owner = Some(nix::unistd::Uid::from_raw(uid));
    let group = Some(nix::unistd::Gid::from_raw(uid));
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &path,
            owner,
            group,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
}

#[test]
fn mounts_in_a_user_namespace_as_an_ordinary_user() {
    if let Some(dir) = std::env::var_os(USERNS_CHILD) {
        userns_child(Path::new(&dir));
        return;
    }
    if !privileged("mounts_in_a_user_namespace_as_an_ordinary_user") {
        return;
    }
    private_mount_ns();
    let fx = Fixture::new(sample_tree);
    let digest = fx
        .repo
        .write_object(&Object::Manifest(fx.manifest.clone()))
        .unwrap();
    fs::write(fx.tmp.path().join("manifest-digest"), digest.to_string()).unwrap();
    fx.dir("userns-mnt");
    chown_tree(fx.tmp.path(), 65534);

    // Users need read-write access to /dev/fuse; give it to them inside this test's mount
    // namespace only when the machine does not already.
    let dev_mode = fs::metadata("/dev/fuse").unwrap().mode();
    if dev_mode & 0o006 != 0o006 {
        let node = fx.tmp.path().join("fuse-dev");
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(10, 229),
        )
        .unwrap();
        fs::set_permissions(&node, fs::Permissions::from_mode(0o666)).unwrap();
        mount(
            Some(&node),
            "/dev/fuse",
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
    }

    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["unshare", "--user", "--map-root-user", "--mount", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "mounts_in_a_user_namespace_as_an_ordinary_user",
            "--nocapture",
        ])
        .env(USERNS_CHILD, fx.tmp.path())
        .output()
        .expect("running setpriv and unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "user-namespace child failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
}
