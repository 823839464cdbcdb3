//! BOSH releases: reading, fingerprints (checked against tests/fixtures/bosh/expected.txt,
//! written by the independent tests/fixtures/bosh/fingerprints.py), every release error,
//! import, and (as root) compiling a 3-level C chain and entering it with `spk env`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use spk::bosh::release::FileKind;
use spk::bosh::Release;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bosh")
}

/// A writable copy of the fixture release.
fn release_copy(tmp: &Path) -> PathBuf {
    let dest = tmp.join("release");
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixture().join("release"))
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success());
    dest
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn privileged(test: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root");
    false
}

struct Env {
    repo: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Env {
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

    /// Runs and returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.spk(args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let (ok, out, err) = self.run(args);
        assert!(ok, "spk {args:?} failed:\n{out}{err}");
        (out, err)
    }
}

/// (package, fingerprint, files) from the independent computation.
fn expected() -> Vec<(String, String, Vec<String>)> {
    fs::read_to_string(fixture().join("expected.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut parts = l.split(' ');
            let name = parts.next().unwrap().to_string();
            let fp = parts.next().unwrap().to_string();
            let files = parts
                .next()
                .unwrap()
                .split(',')
                .map(str::to_string)
                .collect();
            (name, fp, files)
        })
        .collect()
}

fn status_of<'a>(table: &'a str, package: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(package))
        .unwrap_or_else(|| panic!("no row for {package} in:\n{table}"))
}

#[test]
fn fixture_fingerprints_and_selection_match_independent_values() {
    let release = Release::load(&fixture().join("release"), &[], "").unwrap();
    assert_eq!(release.name, "fixture");
    for (name, fp, files) in expected() {
        let p = &release.packages[&name];
        let got: Vec<&str> = p.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(got, files, "files of {name}");
        assert_eq!(p.fingerprint, fp, "fingerprint of {name}");
    }
    // The lock's fingerprint is taken as is.
    assert_eq!(
        release.packages["vendored"].fingerprint,
        "5c8e0d7a1f2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5"
    );
    assert!(release.packages["vendored"].locked);
    // Dependencies first.
    let pos = |n: &str| release.order.iter().position(|x| x == n).unwrap();
    assert!(pos("libbase") < pos("libmid") && pos("libmid") < pos("app_1.0"));
    assert_eq!(release.packages["app_1.0"].spk_name.as_str(), "app-1-0");
    // The symlink is kept as a link, the script's execute bit is seen.
    let app = &release.packages["app_1.0"];
    let file = |rel: &str| &app.files.iter().find(|f| f.rel == rel).unwrap().kind;
    assert_eq!(file("app/current"), &FileKind::Symlink("main.c".into()));
    assert_eq!(file("app/run.sh"), &FileKind::File { executable: true });
    assert_eq!(file("app/main.c"), &FileKind::File { executable: false });
    assert!(app
        .files
        .iter()
        .any(|f| f.source.ends_with("blobs/data/blob.txt")));
    // Selecting one package brings its dependencies only.
    let some = Release::load(&fixture().join("release"), &["libmid".into()], "bosh-").unwrap();
    assert_eq!(some.order, ["libbase", "libmid"]);
    assert_eq!(some.packages["libmid"].spk_name.as_str(), "bosh-libmid");
}

#[test]
fn a_file_in_src_wins_over_the_same_path_in_blobs_and_files_behind_symlinked_dirs_are_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let rel = release_copy(tmp.path());
    write(&rel.join("src/data/blob.txt"), "from src\n");
    std::os::unix::fs::symlink("../libbase", rel.join("src/app/linkdir")).unwrap();
    write(
        &rel.join("packages/app_1.0/spec"),
        "name: app_1.0\ndependencies: [libmid]\nfiles:\n- app/**/*\n- data/blob.txt\n",
    );
    let release = Release::load(&rel, &["app_1.0".into()], "").unwrap();
    let app = &release.packages["app_1.0"];
    let blob = app.files.iter().find(|f| f.rel == "data/blob.txt").unwrap();
    assert!(
        blob.source.starts_with(rel.join("src")),
        "{:?}",
        blob.source
    );
    let names: Vec<&str> = app.files.iter().map(|f| f.rel.as_str()).collect();
    // The symlinked directory itself is packaged as a link; nothing below it.
    assert!(names.contains(&"app/linkdir"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("app/linkdir/")),
        "{names:?}"
    );
}

#[test]
fn every_release_error_is_reported_at_once_and_nothing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let rel = release_copy(tmp.path());
    let pkg = |name: &str, spec: &str| {
        write(&rel.join(format!("packages/{name}/spec")), spec);
        write(&rel.join(format!("packages/{name}/packaging")), "true\n");
    };
    pkg("cyc_a", "name: cyc_a\ndependencies: [cyc_b]\n");
    pkg("cyc_b", "name: cyc_b\ndependencies: [cyc_c]\n");
    pkg("cyc_c", "name: cyc_c\ndependencies: [cyc_a]\n");
    pkg("lonely", "name: lonely\ndependencies: [ghost]\n");
    pkg("nomatch", "name: nomatch\nfiles:\n- nothing/**/*.c\n");
    write(&rel.join("src/packaging"), "oops\n");
    pkg("clash", "name: clash\nfiles:\n- packag?ng\n");
    pkg("badyaml", "name: badyaml\nfiles: [a, b\n  c: d\n");
    pkg("badtypes", "name: badtypes\nfiles: 3\n");
    write(
        &rel.join("packages/nopackaging/spec"),
        "name: nopackaging\n",
    );
    pkg("needsblob", "name: needsblob\nfiles:\n- data/missing.bin\n");
    let mut blobs = fs::read_to_string(rel.join("config/blobs.yml")).unwrap();
    blobs.push_str("data/missing.bin:\n  size: 3\n  sha: sha256:abcd\n");
    fs::write(rel.join("config/blobs.yml"), blobs).unwrap();
    // Same size, other content: the sha no longer matches.
    fs::write(rel.join("blobs/data/blob.txt"), "blob payload: 43\n").unwrap();
    // The pre_packaging of app_1.0 would leave a mark if it ran.
    let mark = tmp.path().join("ran");
    write(
        &rel.join("packages/app_1.0/pre_packaging"),
        &format!("touch {}\n", mark.display()),
    );

    let problems = Release::load(&rel, &[], "").unwrap_err().problems;
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let has = |needle: &str| {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "no problem mentions {needle:?}:\n{}",
            text.join("\n")
        )
    };
    has("package 'cyc_a', packages/cyc_a/spec: circular dependency: cyc_a -> cyc_b -> cyc_c -> cyc_a");
    has("package 'lonely', packages/lonely/spec: Expected to find package 'ghost' since it's a dependency of package 'lonely'");
    has("package 'nomatch', packages/nomatch/spec: Missing files for pattern 'nothing/**/*.c'");
    has("package 'clash', packages/clash/spec: selects a file named 'packaging'");
    has("package 'badyaml', packages/badyaml/spec: is not a valid package spec");
    has("package 'badtypes', packages/badtypes/spec: is not a valid package spec: files: invalid type");
    has("package 'nopackaging', packages/nopackaging/packaging: is missing");
    has("package 'needsblob', blobs/data/missing.bin: is listed in config/blobs.yml but missing from blobs/");
    has("package 'app_1.0', blobs/data/blob.txt: has sha256");
    assert_eq!(problems.len(), 9, "{}", text.join("\n"));

    // The command reports them all, with the release, and stores nothing.
    let env = Env::new();
    let (ok, out, err) = env.run(&["bosh", "import", rel.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.starts_with(&format!("error: release {}: 9 problem(s)", rel.display())),
        "{err}"
    );
    assert!(err.contains("cyc_a -> cyc_b -> cyc_c -> cyc_a"), "{err}");
    assert!(!mark.exists(), "pre_packaging ran despite errors");
    let (_, ls, _) = env.run(&["ls"]);
    assert!(ls.trim().is_empty(), "{ls}");
}

#[test]
fn import_stores_sources_once_and_info_shows_the_bosh_identity() {
    let env = Env::new();
    let rel = fixture().join("release");
    let (out, _) = env.ok(&["bosh", "import", rel.to_str().unwrap()]);
    for (name, fp, _) in expected() {
        let row = status_of(&out, &name);
        assert!(row.contains(&fp), "{row}");
        assert!(row.ends_with("imported"), "{row}");
    }
    assert!(
        status_of(&out, "app_1.0").contains("app-1-0/1.0.0"),
        "{out}"
    );
    assert!(status_of(&out, "libmid").contains(" libbase "), "{out}");
    let (out, _) = env.ok(&["bosh", "import", rel.to_str().unwrap()]);
    for name in ["libbase", "libmid", "app_1.0", "vendored"] {
        assert!(status_of(&out, name).ends_with("unchanged"), "{out}");
    }
    let (info, _) = env.ok(&["info", "app-1-0"]);
    let app_fp = &expected()[2].1;
    assert!(info.contains("bosh.name: app_1.0"), "{info}");
    assert!(
        info.contains(&format!("bosh.fingerprint: {app_fp}")),
        "{info}"
    );
    assert!(info.contains("bosh.release: fixture"), "{info}");
    assert!(info.contains("libmid/=1.0.0"), "{info}");
    // The source build holds the files, the packaging script, and what pre_packaging made.
    let (src, _) = env.ok(&["info", "app-1-0/1.0.0/src"]);
    assert!(src.contains("src:"), "{src}");
}

#[test]
fn a_failing_pre_packaging_stops_the_package_and_its_dependents_and_keeps_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let rel = release_copy(tmp.path());
    write(
        &rel.join("packages/libmid/pre_packaging"),
        "echo preparing libmid\nexit 4\n",
    );
    let env = Env::new();
    let (ok, out, err) = env.run(&["bosh", "import", rel.to_str().unwrap()]);
    assert!(!ok, "{out}{err}");
    assert!(status_of(&out, "libbase").ends_with("imported"), "{out}");
    assert!(
        status_of(&out, "libmid").contains("FAILED: pre_packaging exited with 4"),
        "{out}"
    );
    assert!(
        status_of(&out, "app_1.0").contains("skipped: dependency libmid failed"),
        "{out}"
    );
    assert!(err.contains("succeeded: libbase, vendored"), "{err}");
    assert!(err.contains("| + echo preparing libmid"), "{err}");
    let log = env
        .repo
        .path()
        .join("logs/spk/libmid/1.0.0/pre_packaging.log");
    assert!(fs::read_to_string(&log)
        .unwrap()
        .contains("preparing libmid"));
    assert!(!env.spk(&["info", "libmid"]).status.success());
    assert!(!env.spk(&["info", "app-1-0"]).status.success());
}

#[test]
fn build_compiles_the_chain_with_direct_dependencies_and_env_shows_var_vcap_packages() {
    if !privileged(
        "build_compiles_the_chain_with_direct_dependencies_and_env_shows_var_vcap_packages",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rel = release_copy(tmp.path());
    let rel_s = rel.to_str().unwrap();
    let host_before = fs::read_dir("/var/vcap/packages")
        .map(|d| d.count())
        .unwrap_or(0);
    let env = Env::new();
    let (out, err) = env.ok(&["bosh", "build", rel_s]);
    for name in ["libbase", "libmid", "app_1.0", "vendored"] {
        assert!(status_of(&out, name).ends_with("built"), "{out}");
        assert!(err.contains(&format!("compiling {name} ")), "{err}");
    }
    let run = |cmd: &str| env.ok(&["env", "app-1-0", "--", "sh", "-c", cmd]).0;
    // The binary links against libmid, which bundles libbase.
    assert_eq!(
        run("/var/vcap/packages/app_1.0/bin/app"),
        "app generated: mid_value(20)=41\n"
    );
    // Each package saw exactly itself and its direct dependencies while compiling.
    assert_eq!(
        run("cat /var/vcap/packages/app_1.0/visible.txt"),
        "app_1.0\nlibmid\n"
    );
    assert_eq!(
        run("cat /var/vcap/packages/libmid/visible.txt"),
        "libbase\nlibmid\n"
    );
    // The environment holds the package and its dependencies, at their BOSH paths.
    assert_eq!(run("ls /var/vcap/packages"), "app_1.0\nlibbase\nlibmid\n");
    assert_eq!(
        run("cat /var/vcap/packages/app_1.0/share/blob.txt"),
        "blob payload: 42\n"
    );
    let libbase_fp = &expected()[0].1;
    let (info, _) = env.ok(&[
        "env",
        "libbase",
        "--",
        "cat",
        "/var/vcap/packages/libbase/build-info",
    ]);
    assert_eq!(
        info.trim(),
        format!(
            "name=libbase version={libbase_fp} cwd=/spfs/spk/pkg/libbase/1.0.0/src target=/spfs/spk/pkg/libbase/1.0.0/src"
        )
    );
    // Only the install target is captured: no compile leftovers in the layer.
    assert_eq!(
        run("ls /spfs/var/vcap/packages/libmid"),
        "include\nlib\nvisible.txt\n"
    );
    assert_eq!(
        run("test -e /spfs/spk/pkg/libmid/1.0.0/src && echo src || echo no-src"),
        "no-src\n"
    );

    // A saved environment keeps the links.
    let saved = tmp.path().join("env.yaml");
    env.ok(&["env", "--save", saved.to_str().unwrap(), "app-1-0"]);
    let (out, _) = env.ok(&[
        "env",
        "--load",
        saved.to_str().unwrap(),
        "--",
        "/var/vcap/packages/app_1.0/bin/app",
    ]);
    assert_eq!(out, "app generated: mid_value(20)=41\n");

    // Unchanged: nothing compiles.
    let (out, err) = env.ok(&["bosh", "build", rel_s]);
    assert!(!err.contains("compiling"), "{err}");
    for name in ["libbase", "libmid", "app_1.0", "vendored"] {
        assert!(status_of(&out, name).ends_with("unchanged"), "{out}");
    }
    // One changed file rebuilds its package and its dependents only.
    fs::write(
        rel.join("src/libmid/mid.c"),
        "#include <base.h>\n#include \"deep/mid.h\"\nint mid_value(int x) { return base_value(x) + 2; }\n",
    )
    .unwrap();
    let (out, err) = env.ok(&["bosh", "build", rel_s]);
    assert!(!err.contains("compiling libbase"), "{err}");
    assert!(err.contains("compiling libmid (libmid/2.0.0)"), "{err}");
    assert!(err.contains("compiling app_1.0 (app-1-0/2.0.0)"), "{err}");
    assert!(status_of(&out, "libbase").ends_with("unchanged"), "{out}");
    assert!(status_of(&out, "app_1.0").ends_with("built"), "{out}");
    assert_eq!(
        run("/var/vcap/packages/app_1.0/bin/app"),
        "app generated: mid_value(20)=42\n"
    );
    // The host's /var/vcap/packages gained nothing.
    let host_after = fs::read_dir("/var/vcap/packages")
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(host_before, host_after);
}

#[test]
fn a_failing_packaging_stops_its_dependents_and_reports_what_built() {
    if !privileged("a_failing_packaging_stops_its_dependents_and_reports_what_built") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rel = release_copy(tmp.path());
    write(
        &rel.join("packages/libmid/packaging"),
        "echo compiling-libmid-now\nexit 3\n",
    );
    let env = Env::new();
    let (ok, out, err) = env.run(&["bosh", "build", "-j", "1", rel.to_str().unwrap()]);
    assert!(!ok, "{out}{err}");
    assert!(status_of(&out, "libbase").ends_with("built"), "{out}");
    assert!(status_of(&out, "vendored").ends_with("built"), "{out}");
    assert!(
        status_of(&out, "libmid").contains("FAILED: packaging exited with 3"),
        "{out}"
    );
    assert!(
        status_of(&out, "app_1.0").contains("skipped: dependency libmid failed"),
        "{out}"
    );
    assert!(
        err.contains("packaging failed for 1 package(s): libmid"),
        "{err}"
    );
    assert!(err.contains("succeeded: libbase, vendored"), "{err}");
    assert!(err.contains("compiling-libmid-now"), "{err}");
    let logs: Vec<PathBuf> = fs::read_dir(env.repo.path().join("logs/spk/libmid/1.0.0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        logs.iter().any(|l| fs::read_to_string(l)
            .unwrap()
            .contains("compiling-libmid-now")),
        "{logs:?}"
    );
    // Nothing was published for libmid or app beyond their sources.
    for v in ["libmid/1.0.0", "app-1-0/1.0.0"] {
        let (builds, _) = env.ok(&["ls", v]);
        let builds: Vec<&str> = builds.lines().collect();
        assert_eq!(builds.len(), 1, "{builds:?}");
        assert!(builds[0].starts_with(&format!("{v}/src ")), "{builds:?}");
    }
}
