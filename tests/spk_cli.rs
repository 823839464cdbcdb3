//! End-to-end tests of the `spk` binary against a temporary spfs repository.

mod common;

use std::process::Output;

use common::*;

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

/// Runs spk with a deadline and returns its output; a crash (signal) or hang fails.
fn spk_bounded(env: &Env, args: &[&str], limit: std::time::Duration) -> Output {
    let started = std::time::Instant::now();
    let out = env.spk(args);
    assert!(
        started.elapsed() < limit,
        "spk {args:?} took {:?}",
        started.elapsed()
    );
    assert!(
        out.status.code().is_some(),
        "spk {args:?} was killed by a signal: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn hostile_specs_fail_with_located_errors() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[u8], &str)] = &[
        // Aborted with a stack overflow (exit 134).
        (
            "macro.yaml",
            b"# {% macro m() %}{{ self::m() }}{% endmacro m %}{{ self::m() }}\npkg: a/1.0\n",
            ":1:21: template error: macro 'm' calls itself",
        ),
        // 6 s, 3.9 GB and a 100 MB message.
        (
            "range.yaml",
            b"{% for i in range(end=100000000) %}x{% endfor %}\npkg: a/1.0\n",
            ":1:13: template error: Function call 'range' failed",
        ),
        (
            "utf8.yaml",
            b"pkg: a/1.0\n\xff\n",
            ":2:1: the file is not valid UTF-8 text",
        ),
        ("empty.yaml", b"", ":1:1: the spec is empty"),
        (
            "multi.yaml",
            b"pkg: a/1.0\n---\npkg: b/1.0\n",
            ":2:1: the file holds more than one YAML document",
        ),
        (
            "int.yaml",
            b"pkg: a/1.0\nx: {{ 99999999999999999999 }}\n",
            ":2:7: template error: Failed to parse 'spec': Integer out of bounds",
        ),
        (
            "include.yaml",
            b"pkg: a/1.0\n{% include \"other.yaml\" %}\n",
            ":2:1: template error: 'include' is not supported",
        ),
        (
            "dup.yaml",
            b"pkg: a/1.0\nbuild:\n  script: [a]\n  script: [b]\n",
            ":4:3: duplicate key 'script' in 'build'",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = spk_bounded(
            &env,
            &["lint", path.to_str().unwrap()],
            std::time::Duration::from_secs(10),
        );
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8(out.stderr).unwrap();
        let first = err.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("error: {}{expected}", path.display())),
            "{name}: {err}"
        );
        assert!(err.len() < 1000, "{name}: {} bytes of error", err.len());
    }
    // YAML flow nesting: 100k levels took 20 s.
    let path = dir.path().join("nest.yaml");
    std::fs::write(
        &path,
        format!(
            "pkg: a/1.0\nmeta: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
    )
    .unwrap();
    let out = spk_bounded(
        &env,
        &["lint", path.to_str().unwrap()],
        std::time::Duration::from_secs(5),
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!(
            "error: {}:2:71: YAML collections nested more than 64 deep",
            path.display()
        )),
        "{err}"
    );
    // A 1 MB name is quoted in part.
    let path = dir.path().join("name.yaml");
    std::fs::write(&path, format!("pkg: {}/1.0\n", "N".repeat(1_000_000))).unwrap();
    let err = env.fail(&["lint", path.to_str().unwrap()]);
    assert!(err.len() < 1000, "{} bytes of error", err.len());
    assert!(err.contains("… (1000004 characters)"), "{err}");
}

#[test]
fn explain_rejects_malformed_var_requests() {
    let env = setup();
    for bad in ["python.abi/", "python.abi/cp37m/extra"] {
        let out = env.spk(&["explain", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with(&format!("error: invalid request '{bad}': ")),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    // A valid option request alone resolves nothing, and says so.
    let out = env.spk(&["explain", "python.abi/cp37"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no packages resolved"),
        "{out:?}"
    );
}

#[test]
fn publish_is_all_or_nothing() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(fixtures().join("repo")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    // A second maya/2020.0.0, sorted after the others: publishing used to stop there
    // with maya, nuke and python published without their builds.
    std::fs::copy(
        fixtures().join("repo/maya.spk.yaml"),
        dir.path().join("zz-maya-again.spk.yaml"),
    )
    .unwrap();
    let err = env.fail(&["publish", "--stub-builds", dir.path().to_str().unwrap()]);
    assert!(
        err.contains("maya/2020.0.0 is defined twice")
            && err.contains("maya.spk.yaml")
            && err.contains("zz-maya-again.spk.yaml")
            && err.contains("nothing was published"),
        "{err}"
    );
    assert_eq!(env.ok(&["ls"]), "", "nothing may be published");

    // An existing recipe stops the whole publish before anything is written.
    std::fs::remove_file(dir.path().join("zz-maya-again.spk.yaml")).unwrap();
    let python = fixtures().join("repo/python.spk.yaml");
    env.ok(&["publish", python.to_str().unwrap()]);
    let err = env.fail(&["publish", "--stub-builds", dir.path().to_str().unwrap()]);
    assert!(err.contains("python/3.7.3 already exists"), "{err}");
    assert_eq!(env.ok(&["ls"]), "python\n");

    // A recipe without builds: ls, ls NAME/VERSION and explain agree on what exists.
    let out = env.ok(&["ls", "python/3.7.3"]);
    assert_eq!(out, "python/3.7.3  (recipe only, no builds)\n");
    let err = env.fail(&["explain", "python/3.7"]);
    assert!(
        err.starts_with(
            "error: package 'python' has recipes but no builds (recipe versions: 3.7.3)"
        ),
        "{err}"
    );
    assert!(err.contains("--build-from-source"), "{err}");

    env.ok(&[
        "publish",
        "--stub-builds",
        "--force",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(
        env.ok(&["ls"]).lines().collect::<Vec<_>>(),
        ["maya", "nuke", "python", "qt"]
    );
    assert!(env
        .ok(&["explain", "maya/2020", "--no-host"])
        .contains("maya/2020.0.0/"));
}

/// The edges of a DOT graph as (from, to, attributes) of `"a" -> "b" [...]` lines.
fn dot_edges(dot: &str) -> Vec<(String, String, String)> {
    dot.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (from, rest) = l.strip_prefix('"')?.split_once("\" -> \"")?;
            let (to, attrs) = rest.split_once('"')?;
            Some((from.to_string(), to.to_string(), attrs.to_string()))
        })
        .collect()
}

/// The label of node `id` in a DOT graph.
fn dot_label(dot: &str, id: &str) -> Option<String> {
    dot.lines().find_map(|l| {
        let l = l.trim().strip_prefix(&format!("\"{id}\" ["))?;
        let label = l.split("label=\"").nth(1)?;
        Some(label.split("\", ").next()?.to_string())
    })
}

#[test]
fn explain_draws_the_resolve_and_the_conflict() {
    let env = setup();
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.dot");
    env.ok(&[
        "explain",
        "maya",
        "--no-host",
        "--graph",
        ok.to_str().unwrap(),
    ]);
    let dot = std::fs::read_to_string(&ok).unwrap();
    assert!(dot.starts_with("digraph spk {"), "{dot}");
    // maya requires python/3.7 and embeds qt (tests/fixtures/repo/maya.spk.yaml).
    let edges = dot_edges(&dot);
    let pairs: Vec<(&str, &str)> = edges
        .iter()
        .map(|(a, b, _)| (a.as_str(), b.as_str()))
        .collect();
    assert!(pairs.contains(&("requests", "maya")), "{dot}");
    assert!(pairs.contains(&("maya", "python")), "{dot}");
    assert!(pairs.contains(&("maya", "qt")), "{dot}");
    let py = edges
        .iter()
        .find(|(a, b, _)| a == "maya" && b == "python")
        .unwrap();
    assert!(py.2.contains("label=\"python/3.7\""), "{dot}");
    assert!(
        dot_label(&dot, "python")
            .unwrap()
            .starts_with("python\\n3.7.3/"),
        "{dot}"
    );
    // A conflict: maya and nuke each solve alone but not together.
    let bad = dir.path().join("bad.dot");
    env.fail(&[
        "explain",
        "maya/2020",
        "nuke/13",
        "--no-host",
        "--graph",
        bad.to_str().unwrap(),
    ]);
    let dot = std::fs::read_to_string(&bad).unwrap();
    let conflict: Vec<_> = dot_edges(&dot)
        .into_iter()
        .filter(|(_, _, attrs)| attrs.contains("color=red") && attrs.contains("conflict"))
        .collect();
    assert_eq!(conflict.len(), 1, "{dot}");
    let (a, b, _) = &conflict[0];
    let mut names = vec![dot_label(&dot, a).unwrap(), dot_label(&dot, b).unwrap()];
    names.sort();
    assert_eq!(names, vec!["maya/2020", "nuke/13"], "{dot}");
    assert!(
        dot.contains("python/3.7 is required by maya/2020.0.0"),
        "{dot}"
    );
    // SVG through Graphviz when it is installed; otherwise a clear error.
    let svg = dir.path().join("ok.svg");
    let out = env.spk(&[
        "explain",
        "maya",
        "--no-host",
        "--graph",
        svg.to_str().unwrap(),
    ]);
    if std::process::Command::new("dot").arg("-V").output().is_ok() {
        assert!(out.status.success());
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    } else {
        assert!(String::from_utf8_lossy(&out.stderr).contains("install graphviz"));
    }
}

#[test]
fn push_and_pull_copy_recipes_and_builds_between_repositories() {
    let env = setup();
    let remote = env.path("shared");
    let addr = format!("file://{}", remote.display());
    let out = env.ok(&["push", "python/3.9.1", "--remote", &addr]);
    assert!(
        out.contains(&format!("pushed python/3.9.1 to {addr}")),
        "{out}"
    );
    // The remote now lists that version (recipe and builds) and nothing else.
    let remote_env = |args: &[&str]| {
        let out = std::process::Command::new(SPK)
            .arg("--repo")
            .arg(&remote)
            .args(args)
            .env_remove("SPFS_ROOT")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(remote_env(&["ls"]).trim(), "python");
    assert_eq!(remote_env(&["ls", "python"]).trim(), "python/3.9.1");
    let local_builds = env.ok(&["ls", "python/3.9.1"]);
    assert!(!local_builds.trim().is_empty());
    assert_eq!(remote_env(&["ls", "python/3.9.1"]), local_builds);

    // Pull into an empty repository: the solver then finds the builds there.
    let fresh = Env::new();
    let out = fresh.ok(&["pull", "python", "--remote", &addr]);
    assert!(out.contains("pulled python from"), "{out}");
    assert_eq!(fresh.ok(&["ls", "python/3.9.1"]), local_builds);
    assert!(fresh
        .ok(&["explain", "python/3.9.1"])
        .contains("python/3.9.1/"));

    let err = env.fail(&["push", "nosuch/1.0", "--remote", &addr]);
    assert!(
        err.contains("nosuch/1.0: not in the local repository"),
        "{err}"
    );
    // `spk publish PKG` out of habit: told to push.
    let err = env.fail(&["publish", "python/3.9.1"]);
    assert!(err.contains("spk push python/3.9.1"), "{err}");
}
