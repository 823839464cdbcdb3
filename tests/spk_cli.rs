//! End-to-end tests of the `spk` binary against a temporary spfs repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Env {
    repo: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            repo: tempfile::tempdir().unwrap(),
        }
    }

    fn spk(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_spk"))
            .arg("--repo")
            .arg(self.repo.path())
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.spk(args);
        assert!(
            out.status.success(),
            "spk {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fail(&self, args: &[&str]) -> String {
        let out = self.spk(args);
        assert!(
            !out.status.success(),
            "spk {args:?} should fail:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with("error: "),
            "errors start with 'error: ':\n{err}"
        );
        err
    }
}

fn setup() -> Env {
    let env = Env::new();
    let dir = fixtures().join("repo");
    let out = env.ok(&["publish", "--stub-builds", dir.to_str().unwrap()]);
    assert!(out.contains("published python/3.7.3"), "{out}");
    assert!(out.contains("published maya/2020.0.0"), "{out}");
    env
}

#[test]
fn version_flag() {
    let out = Env::new().ok(&["--version"]);
    assert_eq!(out.trim(), format!("spk {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn ls_search_info() {
    let env = setup();
    assert_eq!(
        env.ok(&["ls"]).lines().collect::<Vec<_>>(),
        ["maya", "nuke", "python", "qt"]
    );
    assert_eq!(
        env.ok(&["ls", "python"]).lines().collect::<Vec<_>>(),
        ["python/3.7.3", "python/3.9.1"]
    );
    let builds = env.ok(&["ls", "python/3.7.3"]);
    assert_eq!(builds.lines().count(), 2, "{builds}");
    assert!(
        builds.contains("abi: cp37m") && builds.contains("abi: cp37dm"),
        "{builds}"
    );
    assert_eq!(
        env.ok(&["search", "yth"]).trim(),
        "python/3.7.3\npython/3.9.1"
    );
    assert!(env
        .fail(&["search", "zzz"])
        .contains("no package name contains 'zzz'"));
    let info = env.ok(&["info", "python"]);
    assert!(
        info.starts_with("pkg: python/3.9.1"),
        "newest version: {info}"
    );
    let info = env.ok(&["view", "maya/2020.0.0"]);
    assert!(
        info.contains("embedded:") && info.contains("qt/5.12.6"),
        "{info}"
    );
    let build = builds.split_whitespace().next().unwrap();
    let info = env.ok(&["info", build]);
    assert!(
        info.contains(&format!("pkg: {build}")) && info.contains("static: cp37"),
        "{info}"
    );
    assert!(info.contains("#   run: "), "{info}");
    let err = env.fail(&["info", "python/9.9"]);
    assert!(err.contains("recipe python/9.9 not found"), "{err}");
    assert!(env
        .fail(&["ls", "Python"])
        .contains("invalid package identifier"));
}

#[test]
fn deprecate_undeprecate_remove() {
    let env = setup();
    let out = env.ok(&["deprecate", "python/3.9.1"]);
    assert!(out.contains("deprecated python/3.9.1"), "{out}");
    assert!(env
        .ok(&["ls", "python"])
        .contains("python/3.9.1  (deprecated)"));
    // Deprecated builds are not used: nuke needs ^3.9.
    let err = env.fail(&["explain", "nuke"]);
    assert!(err.contains("python"), "{err}");
    env.ok(&["undeprecate", "python/3.9.1"]);
    assert!(env.ok(&["explain", "nuke"]).contains("python/3.9.1/"));
    let out = env.ok(&["remove", "nuke/13.0.0"]);
    assert!(out.contains("removed nuke/13.0.0"), "{out}");
    assert!(!env.ok(&["ls"]).contains("nuke"));
    let err = env.fail(&["remove", "nuke/13.0.0"]);
    assert!(err.contains("not found"), "{err}");
    assert!(env
        .fail(&["deprecate", "python"])
        .contains("names no version"));
}

#[test]
fn new_writes_a_valid_spec() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let out = env.ok(&["new", "my-tool", "--dir", dir.path().to_str().unwrap()]);
    let file = dir.path().join("my-tool.spk.yaml");
    assert!(out.contains("created"), "{out}");
    let lint = env.ok(&["lint", file.to_str().unwrap()]);
    assert!(
        lint.contains("OK") && lint.contains("my-tool/0.1.0"),
        "{lint}"
    );
    assert!(env
        .fail(&["new", "my-tool", "--dir", dir.path().to_str().unwrap()])
        .contains("already exists"));
    let err = env.fail(&["new", "My_Tool"]);
    assert!(err.contains("did you mean 'my-tool'"), "{err}");
}

#[test]
fn lint_reports_location_and_suggestion() {
    let env = Env::new();
    let lint = fixtures().join("lint");
    let good = lint.join("good.spk.yaml");
    assert!(env.ok(&["lint", good.to_str().unwrap()]).contains("OK"));
    let typo = lint.join("typo.spk.yaml");
    let err = env.fail(&["lint", typo.to_str().unwrap()]);
    let first = err.lines().next().unwrap();
    assert!(
        first.ends_with("typo.spk.yaml:5:7: unknown field 'chioces' in 'build.options[0]'"),
        "{err}"
    );
    assert!(err.contains("help: did you mean 'choices'?"), "{err}");
    let bad = lint.join("badversion.spk.yaml");
    let err = env.fail(&["lint", bad.to_str().unwrap()]);
    assert!(
        err.contains("badversion.spk.yaml:1:") && err.contains("invalid version"),
        "{err}"
    );
    let missing = env.fail(&["lint", "/nonexistent/x.yaml"]);
    assert!(missing.contains("cannot read the spec file"), "{missing}");
    // Templated corpus-style spec with a command-line option.
    let python = fixtures().join("repo/python.spk.yaml");
    assert!(env
        .ok(&["lint", python.to_str().unwrap(), "-o", "version=3.10.2"])
        .contains("python/3.10.2"));
}

#[test]
fn explain_success_and_failure() {
    let env = setup();
    let out = env.ok(&["explain", "maya", "qt", "--no-host"]);
    assert!(out.contains("maya/2020.0.0/"), "{out}");
    assert!(
        out.contains("qt/5.12.6/embedded") && out.contains("(embedded in maya/2020.0.0/"),
        "{out}"
    );
    assert!(out.contains("python/3.7.3/"), "{out}");
    let out = env.ok(&["explain", "python", "python.abi/cp37dm"]);
    assert!(
        out.contains("python/3.9.1/"),
        "python 3.9.1 has no abi option: {out}"
    );
    let out = env.ok(&["explain", "python/~3.7", "-o", "abi=cp37dm"]);
    let build = out.split_whitespace().next().unwrap();
    let info = env.ok(&["info", build]);
    assert!(info.contains("static: cp37dm"), "{info}");

    let err = env.fail(&["explain", "maya/2020", "nuke/13"]);
    let first = err.lines().next().unwrap();
    assert_eq!(
        first,
        "error: python/3.7 is required by maya/2020.0.0, but nuke/13.0.0 requires python/^3.9; no version satisfies both",
        "{err}"
    );
    assert!(err.contains("  - you asked for maya/2020"), "{err}");
    assert!(err.contains("  help: "), "{err}");
    let err = env.fail(&["explain", "nosuch"]);
    assert!(err.contains("no package named 'nosuch'"), "{err}");
    let err = env.fail(&["explain", "python/x.y"]);
    assert!(err.contains("invalid request 'python/x.y'"), "{err}");
    let err = env.fail(&["explain", "maya", "--timeout=-1"]);
    assert!(err.contains("invalid timeout"), "{err}");
}

#[test]
fn publish_errors_are_located() {
    let env = Env::new();
    let typo = fixtures().join("lint/typo.spk.yaml");
    let err = env.fail(&["publish", typo.to_str().unwrap()]);
    assert!(err.contains("typo.spk.yaml:5:7"), "{err}");
    let dir = fixtures().join("repo");
    env.ok(&["publish", dir.to_str().unwrap()]);
    let err = env.fail(&["publish", dir.to_str().unwrap()]);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    env.ok(&["publish", "--force", dir.to_str().unwrap()]);
}
