//! Shared helpers for the end-to-end tests of the `spfs` binary.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SPFS: &str = env!("CARGO_BIN_EXE_spfs");

/// A scratch directory with a repository inside it.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub repo: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.keeper_socket().exists() {
            let _ = Command::new(SPFS)
                .args(["runtime", "views", "--drop", "--all-repos"])
                .env("SPFS_VIEW_KEEPER", self.keeper_socket())
                .output();
        }
    }
}

impl Env {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        Env { tmp, repo }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(SPFS);
        c.args(args)
            .env("SPFS_ROOT", &self.repo)
            .env("SPFS_VIEW_KEEPER", self.keeper_socket())
            .env_remove("RUST_LOG");
        c
    }

    /// The socket of this scratch directory's own view keeper (root's image views kept
    /// between runtimes), dropped with the directory.
    pub fn keeper_socket(&self) -> PathBuf {
        self.path("keeper/views.sock")
    }

    /// Runs spfs and returns its output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs spfs, asserting success, and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "spfs {args:?} failed ({:?}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs spfs, asserting failure without a panic, and returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "spfs {args:?} succeeded unexpectedly"
        );
        assert_eq!(out.status.code(), Some(1), "spfs {args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "spfs {args:?} panicked: {stderr}"
        );
        assert!(stderr.starts_with("error: "), "no error line: {stderr}");
        stderr
    }

    /// Commits a directory as a layer and returns the layer digest.
    pub fn commit(&self, dir: &Path, tags: &[&str]) -> String {
        let mut args = vec!["commit", "layer", "--path", dir.to_str().unwrap()];
        for t in tags {
            args.push("-t");
            args.push(t);
        }
        self.ok(&args).trim().to_string()
    }
}

/// Writes a file with a mode, creating parent directories.
pub fn write(path: &Path, content: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree exercising every kind of entry the store holds.
pub fn sample_tree(root: &Path) {
    write(&root.join("bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    write(&root.join("etc/config.yaml"), b"key: value\n", 0o644);
    write(&root.join("etc/secret"), b"s3cret\n", 0o600);
    write(&root.join("lib/a/b/c/deep.txt"), b"deep\n", 0o444);
    write(&root.join("share/dup1"), b"same content\n", 0o644);
    write(&root.join("share/dup2"), b"same content\n", 0o640);
    fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
    fs::set_permissions(root.join("empty"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("../etc/config.yaml", root.join("bin/config-link")).unwrap();
    symlink("/does/not/exist", root.join("bin/dangling")).unwrap();
    fs::hard_link(root.join("bin/tool"), root.join("bin/tool-hardlink")).unwrap();
    let weird = std::ffi::OsStr::from_bytes(b"lat\xe9n1-\xff.txt");
    write(&root.join(weird), b"latin1 name\n", 0o644);
    write(&root.join("big.bin"), &vec![7u8; 3 << 20], 0o644);
}

use std::os::unix::ffi::OsStrExt;

/// Compares two trees entry by entry: kinds, content, symlink targets and modes.
/// `mode_mask` selects which permission bits must match.
pub fn assert_same_tree(a: &Path, b: &Path, mode_mask: u32) {
    let list = |root: &Path| -> Vec<PathBuf> {
        let mut v = Vec::new();
        fn rec(root: &Path, dir: &Path, v: &mut Vec<PathBuf>) {
            for e in fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                v.push(p.strip_prefix(root).unwrap().to_path_buf());
                if fs::symlink_metadata(&p).unwrap().is_dir() {
                    rec(root, &p, v);
                }
            }
        }
        rec(root, root, &mut v);
        v.sort();
        v
    };
    let la = list(a);
    let lb = list(b);
    assert_eq!(la, lb, "different entries");
    for rel in la {
        let (pa, pb) = (a.join(&rel), b.join(&rel));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "kind of {rel:?}");
        if ma.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&pa).unwrap(),
                fs::read_link(&pb).unwrap(),
                "target of {rel:?}"
            );
            continue;
        }
        assert_eq!(
            ma.permissions().mode() & mode_mask,
            mb.permissions().mode() & mode_mask,
            "mode of {rel:?}"
        );
        if ma.is_file() {
            assert!(
                fs::read(&pa).unwrap() == fs::read(&pb).unwrap(),
                "content of {rel:?}"
            );
        }
    }
}

/// True when running as root; otherwise explains the skip, and fails under CI, where
/// privileged tests must run.
pub fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: privileged test cannot run: not root (CI must run these tests as root)");
    }
    eprintln!("SKIPPED {test}: needs root");
    false
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Sets `mode` on a directory tree (directories and regular files).
pub fn chmod_r(dir: &Path, mode: u32) {
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            chmod_r(&p, mode);
        } else if m.is_file() {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// Gives a directory tree to `uid:gid`.
pub fn chown_r(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(dir).unwrap().is_dir() {
        for e in fs::read_dir(dir).unwrap() {
            chown_r(&e.unwrap().path(), uid, gid);
        }
    }
}

/// Polls `cond` until it holds, failing with `what` after `secs` seconds.
/// True once process `pid` has exited (gone, or a zombie not yet reaped).
pub fn gone(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.contains(") Z")
}

pub fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed().as_secs() < secs, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
