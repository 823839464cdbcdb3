//! Shared helpers for the end-to-end tests of the `spk` binary.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SPK: &str = env!("CARGO_BIN_EXE_spk");

/// The project's test fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The project's example packages.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packages")
}

/// A scratch directory holding a repository (`repo/`, created on first write).
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub repo: PathBuf,
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

    /// `spk --repo REPO ARGS...`, ready to run, reading no configuration file (so no
    /// remotes) unless the test sets `SPFS_CONFIG`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(SPK);
        c.arg("--repo")
            .arg(&self.repo)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("SPFS_ROOT")
            .env_remove("SPFS_CONFIG")
            .env("XDG_CONFIG_HOME", self.path("no-config"));
        c
    }

    pub fn spk(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs spk, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.spk(args);
        assert!(
            out.status.success(),
            "spk {args:?} failed ({:?}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs spk, asserting exit code 1, the error layout and no panic; returns stderr.
    pub fn fail(&self, args: &[&str]) -> String {
        let out = self.spk(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "spk {args:?}:\n{err}");
        assert!(!err.contains("panicked"), "spk {args:?} panicked:\n{err}");
        assert!(
            err.contains("error: "),
            "spk {args:?}: no error line:\n{err}"
        );
        err
    }

    /// Writes a spec file (and its directory) and returns its path.
    pub fn spec(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        write(&p, text.as_bytes(), 0o644);
        p
    }

    /// The spfs library's view of the repository.
    pub fn spfs(&self) -> spfs::storage::LocalRepository {
        spfs::storage::LocalRepository::open(&self.repo).unwrap()
    }

    /// The files of one component layer of a build, with their contents.
    pub fn component_files(&self, build: &str, component: &str) -> Vec<(String, Vec<u8>)> {
        let repo = self.spfs();
        let parts: Vec<&str> = build.split('/').collect();
        let tag = format!(
            "spk/spec/{}/{}/{}.{component}",
            parts[0], parts[1], parts[2]
        );
        let layer = repo
            .resolve_tag(&tag)
            .unwrap()
            .unwrap_or_else(|| panic!("no tag {tag}"));
        let manifests = repo.manifests_of(&[layer]).unwrap();
        let m = repo.merge_manifests(&manifests).unwrap();
        let mut out: Vec<(String, Vec<u8>)> = m
            .files()
            .map(|f| {
                (
                    String::from_utf8_lossy(&f.path).into_owned(),
                    repo.read_blob(&f.digest).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

pub fn write(path: &Path, content: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
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

/// Overlay and FUSE mounts of runtimes visible to this process (there must be none).
pub fn runtime_mounts() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" /spfs ") || l.contains("spfs-runtime"))
        .map(String::from)
        .collect()
}

/// The build idents `spk build` printed (lines `name/version/BUILD  [components]`).
pub fn built(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.split('/').count() == 3 && !id.ends_with("/src"))
        .map(String::from)
        .collect()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `spfs` binary of the same build as `spk`, built there if missing (a test run of
/// the spk package alone may not have built it).
pub fn spfs_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let bin = Path::new(SPK).with_file_name("spfs");
        if !bin.exists() {
            let release = Path::new(SPK)
                .parent()
                .is_some_and(|d| d.ends_with("release"));
            let mut build = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
            build.args(["build", "-q", "-p", "spfs-cli", "--bin", "spfs"]);
            if release {
                build.arg("--release");
            }
            let status = build
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .unwrap();
            assert!(status.success(), "building the spfs binary failed");
        }
        assert!(bin.exists(), "no spfs binary at {}", bin.display());
        bin
    })
}
