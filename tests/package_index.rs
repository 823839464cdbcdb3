//! The package index of an spfs-backed package repository: it follows the tags (the
//! source of truth) whoever writes them, reads only the package asked about, survives
//! concurrent publishers, and `spk index --check/--rebuild` report and repair it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use spfs::storage::{tag_dirs_read, LocalRepository};
use spk::solve::{SolveOptions, Solver};
use spk::spec::{parse_spec, LoadOptions};
use spk::storage::{
    bulk, ComponentLayers, IndexState, MemRepository, PackageRepository, PackageVersions,
    SpfsRepository, StorageError,
};
use spk::{BuildIdent, OptionMap, PkgName, Request, Spec, Version, VersionIdent};

fn spec(text: &str) -> Spec {
    parse_spec(text, "test", &LoadOptions::default())
        .unwrap()
        .spec
}

fn recipe(name: &str, version: &str, deps: &[&str]) -> Spec {
    let mut text = format!(
        "pkg: {name}/{version}\nbuild:\n  options:\n    - var: flavor/a\n      choices: [a, b, c]\n  variants: [{{flavor: a}}, {{flavor: b}}, {{flavor: c}}]\n"
    );
    if !deps.is_empty() {
        text.push_str("install:\n  requirements:\n");
        for d in deps {
            text.push_str(&format!("    - pkg: {d}\n"));
        }
    }
    spec(&text)
}

fn publish(repo: &dyn PackageRepository, specs: &[Spec]) {
    bulk::publish_specs(repo, specs, &OptionMap::new(), true, false).unwrap();
}

fn name(n: &str) -> PkgName {
    n.parse().unwrap()
}

/// name/version/build -> deprecated, from a package's view: what the index answers.
fn summary(p: &PackageVersions) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for v in &p.versions {
        if let Some(r) = &v.recipe {
            assert_eq!(r.summary.deprecated, r.spec().unwrap().deprecated);
            out.insert(format!("{}/{}", p.name, v.version), r.summary.deprecated);
        }
        for (b, s) in &v.builds {
            let full = s.spec().unwrap();
            assert_eq!(full.build_ident().as_ref(), Some(b));
            assert_eq!(s.summary.deprecated, full.deprecated);
            out.insert(b.to_string(), s.summary.deprecated);
        }
    }
    out
}

/// The same, read tag by tag with the spfs library: the independent truth.
fn truth(root: &Path, pkg: &str) -> BTreeMap<String, bool> {
    let repo = LocalRepository::open(root).unwrap();
    let mut out = BTreeMap::new();
    for tag in repo.list_tags(&format!("spk/spec/{pkg}/")).unwrap() {
        // Component tags (`VERSION/BUILD.COMPONENT`) name layers, not specs.
        let rest = tag.trim_start_matches(&format!("spk/spec/{pkg}/"));
        if rest.split('/').nth(1).is_some_and(|b| b.contains('.')) {
            continue;
        }
        let digest = repo.resolve_tag(&tag).unwrap().unwrap();
        let text = String::from_utf8(repo.read_blob(&digest).unwrap()).unwrap();
        let s = spec(&text);
        out.insert(
            tag.trim_start_matches("spk/spec/").to_string(),
            s.deprecated,
        );
    }
    out
}

/// Writes a spec tag with the spfs library only, as another tool (or an older spk) would.
fn tag_behind_the_back(root: &Path, tag: &str, s: &Spec) {
    let repo = LocalRepository::open(root).unwrap();
    let digest = repo.write_blob(s.to_yaml().as_bytes()).unwrap();
    repo.push_tag(tag, &digest).unwrap();
}

fn index_file(root: &Path, pkg: &str) -> std::path::PathBuf {
    root.join("spk-index").join(format!("{pkg}.index"))
}

#[test]
fn index_sees_tags_written_behind_its_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = SpfsRepository::open_or_create(root).unwrap();
    publish(
        &repo,
        &[
            recipe("lib", "1.0.0", &[]),
            recipe("app", "1.0.0", &["lib"]),
        ],
    );
    let lib = name("lib");
    assert_eq!(
        summary(&repo.load_package(&lib).unwrap()),
        truth(root, "lib")
    );
    assert!(
        index_file(root, "lib").is_file(),
        "the first read saves the index"
    );

    // Right after a write, directory stamps are too fresh to trust: a change made in the
    // same timestamp tick is still seen.
    let mut v2 = recipe("lib", "2.0.0", &[]);
    tag_behind_the_back(root, "spk/spec/lib/2.0.0", &v2);
    let seen = repo.load_package(&lib).unwrap();
    assert_eq!(seen.versions.len(), 2);
    assert_eq!(summary(&seen), truth(root, "lib"));

    // Once the stamps have settled, reads validate with stat alone...
    std::thread::sleep(std::time::Duration::from_millis(2200));
    repo.load_package(&lib).unwrap(); // records settled stamps
    let fresh = SpfsRepository::open(root).unwrap();
    let before = tag_dirs_read();
    let again = fresh.load_package(&lib).unwrap();
    assert_eq!(
        tag_dirs_read() - before,
        0,
        "a current index lists no directory"
    );
    assert_eq!(summary(&again), truth(root, "lib"));

    // ... and still see every kind of change made behind their back. A new build in an
    // existing version changes only that version's directory:
    let build = recipe("lib", "1.0.0", &[])
        .to_build_spec(&OptionMap::new(), &[])
        .unwrap();
    let mut odd = build.clone();
    odd.pkg.build = Some("ZZZZZZZZ".parse().unwrap());
    tag_behind_the_back(root, "spk/spec/lib/1.0.0/ZZZZZZZZ", &odd);
    for reader in [&repo, &fresh, &SpfsRepository::open(root).unwrap()] {
        let got = summary(&reader.load_package(&lib).unwrap());
        assert_eq!(got, truth(root, "lib"));
        assert!(got.contains_key("lib/1.0.0/ZZZZZZZZ"));
    }
    // A rewritten (deprecated) recipe changes only the package directory, and a removed
    // build only its version directory.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    repo.load_package(&lib).unwrap();
    fresh.load_package(&lib).unwrap();
    v2.deprecated = true;
    tag_behind_the_back(root, "spk/spec/lib/2.0.0", &v2);
    for reader in [&repo, &fresh, &SpfsRepository::open(root).unwrap()] {
        let got = summary(&reader.load_package(&lib).unwrap());
        assert_eq!(got.get("lib/2.0.0"), Some(&true));
        assert_eq!(got, truth(root, "lib"));
    }
    let spfs_repo = LocalRepository::open(root).unwrap();
    let a_build = spfs_repo.list_tags("spk/spec/lib/1.0.0/").unwrap()[0].clone();
    spfs_repo.remove_tag(&a_build).unwrap();
    for reader in [&repo, &fresh, &SpfsRepository::open(root).unwrap()] {
        let got = summary(&reader.load_package(&lib).unwrap());
        assert_eq!(got, truth(root, "lib"));
        assert!(!got.contains_key(a_build.trim_start_matches("spk/spec/")));
    }

    // A package whose tags are all gone reads as empty, even with an index file left.
    for tag in spfs_repo.list_tags("spk/spec/lib/").unwrap() {
        spfs_repo.remove_tag(&tag).unwrap();
    }
    assert!(repo.load_package(&lib).unwrap().versions.is_empty());
    assert!(repo.list_versions(&lib).unwrap().is_empty());
}

#[test]
fn reading_one_package_reads_only_its_directories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = SpfsRepository::open_or_create(root).unwrap();
    let mut specs = Vec::new();
    for i in 0..40 {
        specs.push(recipe(&format!("other{i}"), "1.0.0", &[]));
    }
    for v in ["1.0.0", "1.1.0", "2.0.0"] {
        specs.push(recipe("wanted", v, &[]));
    }
    publish(&repo, &specs);
    let wanted = name("wanted");

    let cold = SpfsRepository::open(root).unwrap();
    let before = tag_dirs_read();
    let p = cold.load_package(&wanted).unwrap();
    // The package directory and its three version directories.
    assert_eq!(tag_dirs_read() - before, 4);
    assert_eq!(p.versions.len(), 3);
    assert!(p.versions.iter().all(|v| v.builds.len() == 3));

    let before = tag_dirs_read();
    let b = p.versions[0].builds[0].0.clone();
    cold.read_build(&b).unwrap();
    cold.read_recipe(&b.version_ident()).unwrap();
    assert_eq!(tag_dirs_read() - before, 0, "one spec is one tag file");

    let before = tag_dirs_read();
    assert_eq!(
        cold.list_builds(&VersionIdent::new(wanted.clone(), "2.0.0".parse().unwrap()))
            .unwrap()
            .len(),
        3
    );
    // The package directory (to find how 2.0.0 is written) and the version directory.
    assert_eq!(tag_dirs_read() - before, 2);
}

#[test]
fn index_rebuild_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = SpfsRepository::open_or_create(root).unwrap();
    publish(
        &repo,
        &[
            recipe("a", "1.0.0", &[]),
            recipe("b", "1.0.0", &["a"]),
            recipe("gone", "1.0.0", &[]),
        ],
    );
    let states = |r: &SpfsRepository| -> BTreeMap<String, IndexState> {
        r.check_index()
            .unwrap()
            .packages
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect()
    };
    assert!(states(&repo).values().all(|s| *s == IndexState::Missing));
    assert_eq!(repo.rebuild_index().unwrap(), 3);
    assert!(states(&repo)
        .values()
        .all(|s| matches!(s, IndexState::Fresh | IndexState::Stale)));

    // A publish makes the index stale (never wrong); the next read refreshes it.
    publish(&repo, &[recipe("a", "2.0.0", &[])]);
    assert_eq!(states(&repo)["a"], IndexState::Stale);
    assert_eq!(
        summary(&repo.load_package(&name("a")).unwrap()),
        truth(root, "a")
    );

    // Garbage in an index file is reported and replaced on the next read.
    std::fs::write(index_file(root, "b"), "{not json").unwrap();
    assert!(matches!(states(&repo)["b"], IndexState::Unreadable(_)));
    assert_eq!(
        summary(
            &SpfsRepository::open(root)
                .unwrap()
                .load_package(&name("b"))
                .unwrap()
        ),
        truth(root, "b")
    );

    // An index edited so that it disagrees with the tags while its stamps look current
    // is what --check exists to catch; --rebuild repairs it.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    repo.rebuild_index().unwrap();
    let path = index_file(root, "a");
    // The header names each spec tag's target as text: point the recipe's elsewhere
    // (same length, so the file stays well-formed).
    let mut bytes = std::fs::read(&path).unwrap();
    let target = repo
        .spfs()
        .resolve_tag("spk/spec/a/1.0.0")
        .unwrap()
        .unwrap()
        .to_string();
    let at = bytes
        .windows(target.len())
        .position(|w| w == target.as_bytes())
        .expect("the recipe's target is in the index");
    bytes[at..at + target.len()].copy_from_slice(spfs::Digest::of(b"x").to_string().as_bytes());
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(states(&repo)["a"], IndexState::Wrong(_)));
    let out = spk(root, &["index", "--check"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("spk index --rebuild"));

    // A removed package leaves an orphan index; --rebuild removes it.
    repo.remove(&"gone/1.0.0".parse().unwrap()).unwrap();
    assert_eq!(repo.check_index().unwrap().orphans.len(), 1);
    let out = spk(root, &["index", "--rebuild"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("indexed 2 packages"));
    let report = repo.check_index().unwrap();
    assert!(report.orphans.is_empty());
    assert!(report.packages.iter().all(|(_, s)| *s == IndexState::Fresh));
    let out = spk(root, &["index", "--check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spk(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spk"))
        .arg("--repo")
        .arg(root)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn concurrent_publishers_and_readers_in_several_processes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let specs = tempfile::tempdir().unwrap();
    // Four publishers, each with ten versions of the same package and one of its own;
    // the shared package's directory is written by all of them at once.
    let publishers = 4;
    for p in 0..publishers {
        let d = specs.path().join(format!("p{p}"));
        std::fs::create_dir_all(&d).unwrap();
        for v in 0..10 {
            std::fs::write(
                d.join(format!("shared-{v}.yaml")),
                format!(
                    "pkg: shared/{p}.{v}.0\nbuild:\n  options:\n    - var: flavor/a\n      choices: [a, b]\n  variants: [{{flavor: a}}, {{flavor: b}}]\n"
                ),
            )
            .unwrap();
        }
        std::fs::write(d.join("own.yaml"), format!("pkg: own{p}/1.0.0\n")).unwrap();
    }
    spk(
        &root,
        &[
            "publish",
            specs.path().join("p0").join("own.yaml").to_str().unwrap(),
        ],
    );
    let mut children = Vec::new();
    for p in 0..publishers {
        let dir = specs.path().join(format!("p{p}"));
        children.push(
            Command::new(env!("CARGO_BIN_EXE_spk"))
                .arg("--repo")
                .arg(&root)
                .args(["publish", "--stub-builds", "--force"])
                .arg(&dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    // Readers refresh and save the index while the publishers write.
    let mut readers = Vec::new();
    for _ in 0..2 {
        let root = root.clone();
        readers.push(std::thread::spawn(move || {
            for _ in 0..15 {
                let out = spk(&root, &["ls", "shared"]);
                let err = String::from_utf8_lossy(&out.stderr).to_string();
                assert!(
                    out.status.success() || err.contains("no package named"),
                    "{err}"
                );
            }
        }));
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for r in readers {
        r.join().unwrap();
    }
    let listed = spk(&root, &["ls", "shared"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(listed.lines().count(), 40, "{listed}");
    let repo = SpfsRepository::open(&root).unwrap();
    let got = summary(&repo.load_package(&name("shared")).unwrap());
    assert_eq!(got, truth(&root, "shared"));
    assert_eq!(got.len(), 40 * 3, "40 recipes with 2 builds each");
    let report = repo.check_index().unwrap();
    assert!(
        report.packages.iter().all(|(_, s)| matches!(
            s,
            IndexState::Fresh | IndexState::Stale | IndexState::Missing
        )),
        "{:?}",
        report.packages
    );
}

/// Counts what a solve asks the repository for.
struct Counting {
    inner: MemRepository,
    loads: Mutex<Vec<PkgName>>,
}

impl PackageRepository for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn list_packages(&self) -> spk::storage::Result<Vec<PkgName>> {
        panic!("a solve must not list every package")
    }
    fn list_versions(&self, name: &PkgName) -> spk::storage::Result<Vec<Version>> {
        self.inner.list_versions(name)
    }
    fn list_builds(&self, ident: &VersionIdent) -> spk::storage::Result<Vec<BuildIdent>> {
        self.inner.list_builds(ident)
    }
    fn load_package(&self, name: &PkgName) -> spk::storage::Result<Arc<PackageVersions>> {
        self.loads.lock().unwrap().push(name.clone());
        self.inner.load_package(name)
    }
    fn read_recipe(&self, ident: &VersionIdent) -> spk::storage::Result<Arc<Spec>> {
        self.inner.read_recipe(ident)
    }
    fn read_build(&self, ident: &BuildIdent) -> spk::storage::Result<Arc<Spec>> {
        self.inner.read_build(ident)
    }
    fn read_components(&self, ident: &BuildIdent) -> spk::storage::Result<ComponentLayers> {
        self.inner.read_components(ident)
    }
    fn publish_recipe(&self, spec: &Spec, force: bool) -> spk::storage::Result<()> {
        self.inner.publish_recipe(spec, force)
    }
    fn publish_build(&self, spec: &Spec, c: &ComponentLayers) -> spk::storage::Result<()> {
        self.inner.publish_build(spec, c)
    }
    fn remove_recipe(&self, ident: &VersionIdent) -> spk::storage::Result<()> {
        self.inner.remove_recipe(ident)
    }
    fn remove_build(&self, ident: &BuildIdent) -> spk::storage::Result<()> {
        self.inner.remove_build(ident)
    }
    fn embedded_in(&self, name: &PkgName) -> spk::storage::Result<Vec<BuildIdent>> {
        self.inner.embedded_in(name)
    }
}

#[test]
fn a_solve_loads_only_the_packages_it_touches_each_once() {
    let repo = Counting {
        inner: MemRepository::new(),
        loads: Mutex::new(Vec::new()),
    };
    let mut specs = vec![
        recipe("base", "1.0.0", &[]),
        recipe("base", "2.0.0", &[]),
        recipe("mid", "1.0.0", &["base/1"]),
        recipe("mid", "2.0.0", &["base/2"]),
        recipe("top", "1.0.0", &["mid", "base/1"]),
    ];
    for i in 0..20 {
        specs.push(recipe(&format!("unrelated{i}"), "1.0.0", &["base"]));
    }
    publish(&repo.inner, &specs);
    let solution = Solver::new(&repo, SolveOptions::default())
        .solve(&[Request::Pkg("top".parse().unwrap())])
        .unwrap();
    assert_eq!(
        solution.get("mid").unwrap().ident.version.to_string(),
        "1.0.0"
    );
    let loads = repo.loads.lock().unwrap().clone();
    let unique: BTreeSet<&str> = loads.iter().map(|n| n.as_str()).collect();
    assert_eq!(unique, BTreeSet::from(["base", "mid", "top"]));
    assert_eq!(loads.len(), 3, "each package once: {loads:?}");
}

#[test]
fn spfs_and_memory_repositories_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SpfsRepository::open_or_create(dir.path()).unwrap();
    let mem = MemRepository::new();
    let specs = [
        recipe("base", "1.0.0", &[]),
        recipe("base", "1.2.0", &[]),
        recipe("app", "3.0.0", &["base/1.0"]),
    ];
    publish(&disk, &specs);
    publish(&mem, &specs);
    for n in ["base", "app", "none"] {
        let a = disk.load_package(&name(n)).unwrap();
        let b = mem.load_package(&name(n)).unwrap();
        let versions = |p: &PackageVersions| -> Vec<(String, Vec<String>, Option<Spec>)> {
            p.versions
                .iter()
                .map(|v| {
                    (
                        v.version.to_string(),
                        v.builds.iter().map(|(b, _)| b.to_string()).collect(),
                        v.recipe.as_ref().map(|r| (*r.spec().unwrap()).clone()),
                    )
                })
                .collect()
        };
        assert_eq!(versions(&a), versions(&b), "{n}");
    }
    assert!(matches!(
        disk.read_recipe(&VersionIdent::new(name("base"), "9".parse().unwrap())),
        Err(StorageError::NotFound { .. })
    ));
}
