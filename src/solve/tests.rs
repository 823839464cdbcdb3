use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::spec::{parse_spec, LoadOptions};
use crate::storage::{bulk, MemRepository, PackageRepository};

fn spec(text: &str) -> Spec {
    parse_spec(text, "test", &LoadOptions::default())
        .unwrap()
        .spec
}

/// A repository from recipes (with stub builds of each variant) and explicit build specs.
fn repo(specs: &[&str]) -> MemRepository {
    let repo = MemRepository::new();
    let specs: Vec<Spec> = specs.iter().map(|s| spec(s)).collect();
    bulk::publish_specs(&repo, &specs, &OptionMap::new(), true, false).unwrap();
    repo
}

fn reqs(list: &[&str]) -> Vec<Request> {
    list.iter()
        .map(|r| Request::parse_cli(r).unwrap())
        .collect()
}

fn solve(repo: &MemRepository, list: &[&str]) -> Result<Solution, SolveError> {
    Solver::new(repo, SolveOptions::default()).solve(&reqs(list))
}

fn versions(s: &Solution) -> Vec<String> {
    s.packages
        .iter()
        .map(|p| format!("{}/{}", p.ident.name, p.ident.version))
        .collect()
}

fn explanation(r: Result<Solution, SolveError>) -> Explanation {
    match r {
        Err(SolveError::NoSolution(e)) => e,
        other => panic!("expected no solution, got {other:?}"),
    }
}

#[test]
fn picks_newest_compatible_version() {
    let r = repo(&[
        "pkg: a/1.0.0",
        "pkg: a/1.5.0",
        "pkg: a/2.0.0",
        "pkg: a/2.1.0-rc.1",
    ]);
    assert_eq!(
        versions(&solve(&r, &["a"]).unwrap()),
        ["a/2.0.0"],
        "pre-releases are excluded"
    );
    // Command-line requests use API compatibility: 1.0 admits 1.5 but not 2.0.
    assert_eq!(versions(&solve(&r, &["a/1.0"]).unwrap()), ["a/1.5.0"]);
    assert_eq!(
        versions(&solve(&r, &["a/Binary:1.0"]).unwrap()),
        ["a/1.0.0"]
    );
    assert_eq!(versions(&solve(&r, &["a/<2"]).unwrap()), ["a/1.5.0"]);
    assert_eq!(
        versions(&solve(&r, &["a/2.1.0-rc.1"]).unwrap()),
        ["a/2.1.0-rc.1"],
        "named pre-releases are allowed"
    );
}

#[test]
fn install_requirements_use_binary_compat() {
    let r = repo(&[
        "pkg: lib/1.2.0",
        "pkg: lib/1.3.0",
        "pkg: app/1.0.0\ninstall:\n  requirements:\n    - pkg: lib/1.2\n",
    ]);
    let s = solve(&r, &["app"]).unwrap();
    assert_eq!(versions(&s), ["app/1.0.0", "lib/1.2.0"]);
}

#[test]
fn conflict_is_explained_in_words() {
    let r = repo(&[
        "pkg: python/3.7.3",
        "pkg: python/3.9.1",
        "pkg: maya/2020.0.0\ninstall:\n  requirements:\n    - pkg: python/3.7\n",
        "pkg: nuke/13.0.0\ninstall:\n  requirements:\n    - pkg: python/^3.9\n",
    ]);
    let e = explanation(solve(&r, &["maya/2020", "nuke/13"]));
    assert!(
        e.summary
            .contains("python/3.7 is required by maya/2020.0.0")
            && e.summary.contains("nuke/13.0.0 requires python/^3.9")
            && e.summary.contains("no version satisfies both"),
        "{e}"
    );
    assert!(
        e.reasons.iter().any(|r| r == "you asked for maya/2020"),
        "{e}"
    );
    assert!(!e.help.is_empty());
}

#[test]
fn missing_package_and_version_are_explained() {
    let r = repo(&["pkg: a/1.0.0"]);
    let e = explanation(solve(&r, &["nope"]));
    assert!(e.summary.contains("no package named 'nope'"), "{e}");
    let e = explanation(solve(&r, &["a/3"]));
    assert!(
        e.summary.contains("no version of a matches a/3") && e.summary.contains("1.0.0"),
        "{e}"
    );
}

#[test]
fn options_choose_among_builds() {
    let r = repo(&["pkg: lib/1.0.0\nbuild:\n  options:\n    - var: debug/off\n      choices: [on, off]\n  variants: [{debug: on}, {debug: off}]\n"]);
    let solver = |value: &str| {
        let mut o = OptionMap::new();
        o.insert("debug".parse().unwrap(), value);
        Solver::new(
            &r,
            SolveOptions {
                options: o,
                ..Default::default()
            },
        )
        .solve(&reqs(&["lib"]))
        .unwrap()
    };
    for v in ["on", "off"] {
        let s = solver(v);
        assert_eq!(s.packages[0].spec.option_values().get_str("debug"), Some(v));
    }
    // Var requests: global and namespaced.
    let s = solve(&r, &["lib", "lib.debug/on"]).unwrap();
    assert_eq!(
        s.packages[0].spec.option_values().get_str("debug"),
        Some("on")
    );
    let global = vec![
        Request::Pkg("lib".parse().unwrap()),
        Request::Var("debug/off".parse().unwrap()),
    ];
    let s = Solver::new(&r, SolveOptions::default())
        .solve(&global)
        .unwrap();
    assert_eq!(
        s.packages[0].spec.option_values().get_str("debug"),
        Some("off")
    );
    let e = explanation(solve(&r, &["lib", "lib.debug/maybe"]));
    assert!(e.to_string().contains("lib"), "{e}");
    let mut o = OptionMap::new();
    o.insert("debug".parse().unwrap(), "maybe");
    let e = explanation(
        Solver::new(
            &r,
            SolveOptions {
                options: o,
                ..Default::default()
            },
        )
        .solve(&reqs(&["lib"])),
    );
    assert!(e.summary.contains("debug=maybe is requested"), "{e}");
}

#[test]
fn var_requirements_constrain_dependencies() {
    let r = repo(&[
        "pkg: python/3.7.3\nbuild:\n  options:\n    - var: abi/cp37m\n      choices: [cp37m, cp37dm]\n  variants: [{abi: cp37m}, {abi: cp37dm}]\n",
        "pkg: numpy/1.0.0\ninstall:\n  requirements:\n    - pkg: python/3.7\n    - var: python.abi/cp37dm\n",
    ]);
    let s = solve(&r, &["numpy"]).unwrap();
    assert_eq!(
        s.get("python").unwrap().spec.option_values().get_str("abi"),
        Some("cp37dm")
    );
}

#[test]
fn components_and_uses() {
    let r = repo(&[
        "pkg: dep/1.0.0",
        "pkg: docdep/1.0.0",
        "pkg: lib/1.0.0\ninstall:\n  components:\n    - name: lib\n    - name: bin\n      uses: [lib]\n      requirements:\n        - pkg: dep\n    - name: docs\n      requirements:\n        - pkg: docdep\n",
    ]);
    let s = solve(&r, &["lib:bin"]).unwrap();
    let lib = s.get("lib").unwrap();
    let names: Vec<&str> = lib.components.iter().map(|c| c.as_str()).collect();
    assert_eq!(names, ["bin", "lib"]);
    assert!(s.get("dep").is_some(), "component requirements apply");
    assert!(s.get("docdep").is_none(), "unused components add nothing");
    let s = solve(&r, &["lib:all"]).unwrap();
    assert!(s.get("docdep").is_some());
    let e = explanation(solve(&r, &["lib:nope"]));
    assert!(
        e.summary.contains("component 'nope'") && e.summary.contains("bin, build, docs, lib, run"),
        "{e}"
    );
}

#[test]
fn embedded_packages_resolve_to_the_embedding_copy() {
    let r = repo(&[
        "pkg: qt/5.13.0",
        "pkg: maya/2019.0.0\ninstall:\n  embedded:\n    - pkg: qt/5.12.6\n",
        "pkg: my-plugin/1.0.0\ninstall:\n  requirements:\n    - pkg: qt/5.12\n",
    ]);
    let s = solve(&r, &["maya", "qt"]).unwrap();
    let qt = s.get("qt").unwrap();
    assert_eq!(qt.ident.to_string(), "qt/5.12.6/embedded");
    assert!(
        matches!(&qt.source, PackageSource::Embedded { parent } if parent.name.as_str() == "maya")
    );
    // Without maya, the standalone qt is used.
    assert_eq!(
        solve(&r, &["qt"])
            .unwrap()
            .get("qt")
            .unwrap()
            .ident
            .version
            .to_string(),
        "5.13.0"
    );
    // Conflicting with the embedded version fails.
    let e = explanation(solve(&r, &["maya", "qt/=5.13.0"]));
    assert!(e.to_string().contains("qt"), "{e}");
    assert!(solve(&r, &["maya", "my-plugin"]).is_ok());
}

#[test]
fn if_already_present_constrains_but_never_adds() {
    let r = repo(&[
        "pkg: python/2.7.5",
        "pkg: python/3.7.3",
        "pkg: lib/1.0.0\ninstall:\n  requirements:\n    - pkg: python/2.7\n      include: IfAlreadyPresent\n",
    ]);
    assert_eq!(versions(&solve(&r, &["lib"]).unwrap()), ["lib/1.0.0"]);
    assert_eq!(
        versions(&solve(&r, &["lib", "python"]).unwrap()),
        ["lib/1.0.0", "python/2.7.5"]
    );
    assert!(solve(&r, &["lib", "python/3"]).is_err());
}

#[test]
fn deprecated_builds_only_when_asked_exactly() {
    let r = repo(&["pkg: a/1.0.0", "pkg: a/2.0.0"]);
    let two: crate::AnyIdent = "a/2.0.0".parse().unwrap();
    r.set_deprecated(&two, true).unwrap();
    assert_eq!(versions(&solve(&r, &["a"]).unwrap()), ["a/1.0.0"]);
    assert!(solve(&r, &["a/=2.0.0"]).is_err());
    let build = r.list_builds(&"a/2.0.0".parse().unwrap()).unwrap()[0].clone();
    let exact = format!("a/=2.0.0/{}", build.build);
    assert_eq!(
        versions(&solve(&r, &[exact.as_str()]).unwrap()),
        ["a/2.0.0"]
    );
}

#[test]
fn prerelease_policy() {
    let r = repo(&["pkg: a/1.0.0", "pkg: a/2.0.0-beta.1", "pkg: b/1.0.0\ninstall:\n  requirements:\n    - pkg: a\n      prereleasePolicy: IncludeAll\n"]);
    assert_eq!(versions(&solve(&r, &["a"]).unwrap()), ["a/1.0.0"]);
    assert_eq!(
        versions(&solve(&r, &["b"]).unwrap()),
        ["a/2.0.0-beta.1", "b/1.0.0"]
    );
}

#[test]
fn build_from_source_when_no_binary_fits() {
    let r = MemRepository::new();
    r.publish_recipe(
        &spec("pkg: a/1.0.0\nbuild:\n  options:\n    - var: debug/off\n"),
        false,
    )
    .unwrap();
    // A recipe without builds is named as such, not as a missing package (`spk ls`
    // lists it).
    match solve(&r, &["a"]) {
        Err(SolveError::NoSolution(e)) => {
            assert_eq!(
                e.summary,
                "package 'a' has recipes but no builds (recipe versions: 1.0.0)"
            );
            assert!(e.help.contains("--build-from-source"), "{}", e.help);
        }
        other => panic!("no builds and no source builds by default: {other:?}"),
    }
    let s = Solver::new(
        &r,
        SolveOptions {
            build_from_source: true,
            ..Default::default()
        },
    )
    .solve(&reqs(&["a"]))
    .unwrap();
    assert_eq!(s.packages[0].source, PackageSource::BuildFromSource);
    assert_eq!(s.packages[0].ident.to_string(), "a/1.0.0/src");
}

#[test]
fn deep_backtracking_finds_the_only_solution() {
    // b/N requires c/=N, and only c/1 exists: the solver must walk down from b/9 to b/1.
    let mut specs = vec!["pkg: c/1.0.0".to_string()];
    for n in 1..10 {
        specs.push(format!(
            "pkg: b/{n}.0.0\ninstall:\n  requirements:\n    - pkg: c/={n}.0.0\n"
        ));
    }
    let refs: Vec<&str> = specs.iter().map(|s| s.as_str()).collect();
    let r = repo(&refs);
    assert_eq!(
        versions(&solve(&r, &["b"]).unwrap()),
        ["b/1.0.0", "c/1.0.0"]
    );
}

#[test]
fn timeout_and_interrupt() {
    let r = repo(&["pkg: a/1.0.0"]);
    let cancel = Arc::new(AtomicBool::new(true));
    let err = Solver::new(
        &r,
        SolveOptions {
            cancel: Some(SolveCancel::flag(cancel)),
            ..Default::default()
        },
    )
    .solve(&reqs(&["a"]))
    .unwrap_err();
    assert!(matches!(err, SolveError::Interrupted));
    let err = Solver::new(
        &r,
        SolveOptions {
            timeout: Some(Duration::ZERO),
            ..Default::default()
        },
    )
    .solve(&reqs(&["a"]))
    .unwrap_err();
    assert!(matches!(err, SolveError::TimedOut(_)));
}

#[test]
fn every_version_conflicting_is_summarised() {
    let mut specs = vec![
        "pkg: shared/1.0.0".to_string(),
        "pkg: shared/2.0.0".to_string(),
        "pkg: shared/3.0.0".to_string(),
    ];
    for k in 2..=3 {
        specs.push(format!(
            "pkg: app/{k}.0.0\ninstall:\n  requirements:\n    - pkg: shared/^{k}\n"
        ));
    }
    specs.push("pkg: tool/1.0.0\ninstall:\n  requirements:\n    - pkg: shared/^1\n".into());
    let refs: Vec<&str> = specs.iter().map(|s| s.as_str()).collect();
    let r = repo(&refs);
    let e = explanation(solve(&r, &["tool", "app"]));
    assert!(
        e.summary
            .contains("shared/^1 is required by tool/1.0.0, but no version of app accepts it")
            && e.summary.contains("app/2.0.0 requires shared/^2")
            && e.summary.contains("app/3.0.0 requires shared/^3"),
        "{e}"
    );
}

/// Whole explanations, pinned as a reader sees them (summary, reasons, help): each was
/// read against its scenario when it was written; a change in wording shows up here.
#[test]
fn explanations_read_in_full() {
    let r = repo(&[
        "pkg: python/3.7.3",
        "pkg: python/3.9.1",
        "pkg: maya/2020.0.0\ninstall:\n  requirements:\n    - pkg: python/3.7\n",
        "pkg: nuke/13.0.0\ninstall:\n  requirements:\n    - pkg: python/^3.9\n",
        "pkg: lib/1.0.0\ninstall:\n  components:\n    - name: bin\n",
        "pkg: shared/1.0.0",
        "pkg: shared/2.0.0",
        "pkg: tool/1.0.0\ninstall:\n  requirements:\n    - pkg: shared/^1\n    - pkg: app\n",
        "pkg: app/2.0.0\ninstall:\n  requirements:\n    - pkg: shared/^2\n",
    ]);
    let cases: &[(&[&str], &str)] = &[
        (&["maya/2020", "nuke/13"], SNAP_CONFLICT),
        (&["nope"], SNAP_MISSING),
        (&["python/4"], SNAP_NO_VERSION),
        (&["lib:nope"], SNAP_COMPONENT),
        (&["tool"], SNAP_TRANSITIVE),
    ];
    for (requests, want) in cases {
        let e = explanation(solve(&r, requests));
        let got = format!("{e}\nhelp: {}", e.help);
        if std::env::var_os("SNAPSHOT_PRINT").is_some() {
            println!("==== {requests:?}\n{got}");
            continue;
        }
        assert_eq!(&got, want, "{requests:?}");
    }
}

const SNAP_CONFLICT: &str = concat!(
    "python/3.7 is required by maya/2020.0.0, but nuke/13.0.0 requires python/^3.9; no version satisfies both\n",
    "  - nuke/13.0.0 requires python/^3.9\n",
    "  - maya/2020.0.0 requires python/3.7\n",
    "  - you asked for maya/2020\n",
    "  - you asked for nuke/13\n",
    "help: relax one of the conflicting requests, or publish a version that satisfies both",
);
const SNAP_MISSING: &str = concat!(
    "there is no package named 'nope' in the repository\n",
    "  - you asked for nope\n",
    "help: check the spelling with 'spk search', or publish the package first",
);
const SNAP_NO_VERSION: &str = concat!(
    "no version of python matches python/4 (available: 3.9.1, 3.7.3)\n",
    "  - you asked for python/4\n",
    "help: relax the requests above, or run 'spk ls NAME' to see what versions exist",
);
const SNAP_COMPONENT: &str = concat!(
    "no build of lib has a component 'nope' (components: bin, build, run)\n",
    "  - you asked for lib:nope\n",
    "help: relax the requests above, or run 'spk ls NAME' to see what versions exist",
);
const SNAP_TRANSITIVE: &str = concat!(
    "shared/^1 is required by tool/1.0.0, but app/2.0.0 requires shared/^2; no version satisfies both\n",
    "  - app/2.0.0 requires shared/^2\n",
    "  - tool/1.0.0 requires shared/^1\n",
    "  - tool/1.0.0 requires app\n",
    "  - you asked for tool\n",
    "help: relax one of the conflicting requests, or publish a version that satisfies both",
);

/// Builds that the solve's options rule out are named with the option and both values.
#[test]
fn unusable_builds_are_explained_in_full() {
    let r = repo(&[
        "pkg: lib/1.0.0\nbuild:\n  options:\n    - var: debug/off\n      choices: [on, off]\n  variants: [{debug: off}]\n",
        "pkg: tool/1.0.0\ninstall:\n  requirements:\n    - var: debug/on\n",
    ]);
    let solve_with = |debug: &str, requests: &[&str]| {
        let mut options = OptionMap::new();
        options.insert("debug".parse().unwrap(), debug);
        Solver::new(
            &r,
            SolveOptions {
                options,
                ..Default::default()
            },
        )
        .solve(&reqs(requests))
    };
    const HELP: &str =
        "help: relax the requests above, or run 'spk ls NAME' to see what versions exist";
    for (request, debug, reason) in [
        (
            "lib",
            "on",
            "no usable build of lib: {build} was built with debug=off, but debug=on is requested",
        ),
        (
            "tool",
            "off",
            "{build} requires option debug=on, but debug=off is requested",
        ),
    ] {
        let build = solve(&r, &[request]).unwrap().packages[0].ident.to_string();
        let e = explanation(solve_with(debug, &[request]));
        assert_eq!(
            format!("{e}\nhelp: {}", e.help),
            format!(
                "{}\n  - you asked for {request}\n{HELP}",
                reason.replace("{build}", &build)
            )
        );
    }
}

/// A repository whose `embedded_in` fails: the solver must report that failure as a
/// storage error, not as an interruption or a missing package.
struct EmbeddedLookupFails(MemRepository);

impl PackageRepository for EmbeddedLookupFails {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn list_packages(&self) -> crate::storage::Result<Vec<crate::name::PkgName>> {
        self.0.list_packages()
    }
    fn list_versions(
        &self,
        name: &crate::name::PkgName,
    ) -> crate::storage::Result<Vec<crate::version::Version>> {
        self.0.list_versions(name)
    }
    fn list_builds(
        &self,
        ident: &crate::ident::VersionIdent,
    ) -> crate::storage::Result<Vec<BuildIdent>> {
        self.0.list_builds(ident)
    }
    fn read_recipe(&self, ident: &crate::ident::VersionIdent) -> crate::storage::Result<Arc<Spec>> {
        self.0.read_recipe(ident)
    }
    fn read_build(&self, ident: &BuildIdent) -> crate::storage::Result<Arc<Spec>> {
        self.0.read_build(ident)
    }
    fn read_components(
        &self,
        ident: &BuildIdent,
    ) -> crate::storage::Result<crate::storage::ComponentLayers> {
        self.0.read_components(ident)
    }
    fn publish_recipe(&self, spec: &Spec, force: bool) -> crate::storage::Result<()> {
        self.0.publish_recipe(spec, force)
    }
    fn publish_build(
        &self,
        spec: &Spec,
        components: &crate::storage::ComponentLayers,
    ) -> crate::storage::Result<()> {
        self.0.publish_build(spec, components)
    }
    fn remove_recipe(&self, ident: &crate::ident::VersionIdent) -> crate::storage::Result<()> {
        self.0.remove_recipe(ident)
    }
    fn remove_build(&self, ident: &BuildIdent) -> crate::storage::Result<()> {
        self.0.remove_build(ident)
    }
    fn embedded_in(&self, _name: &crate::name::PkgName) -> crate::storage::Result<Vec<BuildIdent>> {
        Err(StorageError::Corrupt {
            what: "embedded index".into(),
            message: "unreadable".into(),
        })
    }
}

#[test]
fn storage_failures_are_storage_errors() {
    let r = EmbeddedLookupFails(repo(&["pkg: a/1.0.0"]));
    match Solver::new(&r, SolveOptions::default()).solve(&reqs(&["a"])) {
        Err(SolveError::Storage(StorageError::Corrupt { what, .. })) => {
            assert_eq!(what, "embedded index")
        }
        other => panic!("expected the storage error, got {other:?}"),
    }
}
