//! Packages in remotes (docs/remotes.md): `spk ls`, `search`, `explain` and `env` see the
//! local repository and the remotes configured through `SPFS_CONFIG`, local first, and
//! say where each package came from; `spk env` pulls the layers it lacks, without tags.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// A local repository (`local`) and a remote repository (`remote/repo`, holding what
/// `remote` publishes or builds), with a configuration file naming the remote `origin`.
struct Setup {
    local: Env,
    remote: Env,
    config: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let local = Env::new();
        let remote = Env::new();
        let config = local.path("spfs.toml");
        std::fs::write(
            &config,
            format!(
                "[remote.origin]\naddress = \"file://{}\"\n",
                remote.repo.display()
            ),
        )
        .unwrap();
        Setup {
            local,
            remote,
            config,
        }
    }

    /// Adds a configured remote `name` at `address`.
    fn add_remote(&self, name: &str, address: &str) {
        let mut text = std::fs::read_to_string(&self.config).unwrap();
        text.push_str(&format!("[remote.{name}]\naddress = \"{address}\"\n"));
        std::fs::write(&self.config, text).unwrap();
    }

    /// spk on the local repository with the configured remotes.
    fn spk(&self, args: &[&str]) -> Output {
        self.local
            .cmd(args)
            .env("SPFS_CONFIG", &self.config)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.spk(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "spk {args:?}: {err}");
        (String::from_utf8(out.stdout).unwrap(), err)
    }

    fn fail(&self, args: &[&str]) -> String {
        let out = self.spk(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "spk {args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        err
    }

    /// The spk tags of the local repository.
    fn local_spk_tags(&self) -> Vec<String> {
        self.local.spfs().list_tags("spk").unwrap()
    }
}

/// A recipe whose stub build (no files) is published with it.
fn stub(env: &Env, name: &str, version: &str) {
    let spec = env.spec(
        &format!("specs/{name}-{version}.spk.yaml"),
        &format!("pkg: {name}/{version}\n"),
    );
    env.ok(&["publish", "--stub-builds", spec.to_str().unwrap()]);
}

fn build_id(listing: &str) -> String {
    listing
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn remote_packages_are_listed_searched_and_solved_with_their_origin() {
    let s = Setup::new();
    stub(&s.remote, "hello", "1.2.0");
    stub(&s.remote, "shared", "1.0.0");
    stub(&s.local, "shared", "1.0.0");
    stub(&s.local, "localonly", "1.0.0");

    let (out, _) = s.ok(&["ls"]);
    assert_eq!(
        out,
        "hello  (in origin)\nlocalonly  (in local)\nshared  (in local, origin)\n"
    );
    assert_eq!(s.ok(&["ls", "hello"]).0, "hello/1.2.0  (in origin)\n");
    let (builds, _) = s.ok(&["ls", "hello/1.2.0"]);
    assert_eq!(builds.lines().count(), 1, "{builds}");
    let hello_build = build_id(&builds);
    assert!(hello_build.starts_with("hello/1.2.0/"), "{builds}");
    assert!(builds.trim_end().ends_with("  (in origin)"), "{builds}");
    assert_eq!(s.ok(&["search", "hel"]).0, "hello/1.2.0  (in origin)\n");
    assert_eq!(
        s.ok(&["search", "shared"]).0,
        "shared/1.0.0  (in local, origin)\n"
    );

    let (info, _) = s.ok(&["info", &hello_build]);
    assert!(info.starts_with(&format!("pkg: {hello_build}\n")), "{info}");
    assert!(info.ends_with("# repository: origin\n"), "{info}");
    assert!(s.ok(&["info", "hello"]).0.ends_with("# in: origin\n"));

    // The solver sees both; a build in both repositories is taken from the local one.
    let (out, _) = s.ok(&["explain", "--no-host", "hello", "shared"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], format!("{hello_build}  [run]  (from origin)"));
    assert!(
        lines[1].starts_with("shared/1.0.0/") && lines[1].ends_with("  [run]  (from local)"),
        "{out}"
    );

    // Reading a remote copies nothing into the local repository.
    assert!(
        !s.local_spk_tags().iter().any(|t| t.contains("hello")),
        "{:?}",
        s.local_spk_tags()
    );

    // --local-only: the remote is out of view, and nothing is labelled.
    assert_eq!(s.ok(&["ls", "--local-only"]).0, "localonly\nshared\n");
    assert_eq!(s.ok(&["ls", "-l", "shared"]).0, "shared/1.0.0\n");
    let err = s.fail(&["ls", "-l", "hello"]);
    assert!(err.contains("no package named 'hello'"), "{err}");
    let err = s.fail(&["explain", "--no-host", "--local-only", "hello"]);
    assert!(err.contains("hello"), "{err}");
    let err = s.fail(&["search", "-l", "hel"]);
    assert!(err.contains("no package name contains 'hel'"), "{err}");

    // -r picks remotes by name or address; an unknown name is an error.
    let other = Env::new();
    stub(&other, "elsewhere", "3.0.0");
    let addr = format!("file://{}", other.repo.display());
    assert_eq!(
        s.ok(&["ls", "-r", &addr]).0,
        format!("elsewhere  (in {addr})\nlocalonly  (in local)\nshared  (in local)\n")
    );
    let err = s.fail(&["ls", "-r", "nowhere"]);
    assert!(err.contains("no remote named 'nowhere'"), "{err}");

    // A configured remote that cannot be opened is skipped with a warning.
    s.add_remote("broken", "file:///no/such/spfs/repository");
    let (out, err) = s.ok(&["ls", "hello"]);
    assert_eq!(out, "hello/1.2.0  (in origin)\n");
    assert!(err.contains("warning: remote 'broken' is skipped"), "{err}");
}

#[test]
fn remotes_are_seen_before_the_local_repository_exists() {
    let s = Setup::new();
    stub(&s.remote, "hello", "1.2.0");
    assert!(!s.local.repo.exists());
    assert_eq!(s.ok(&["ls"]).0, "hello  (in origin)\n");
    assert!(s
        .ok(&["explain", "--no-host", "hello"])
        .0
        .contains("(from origin)"));
    // Reading did not create it.
    assert!(!s.local.repo.exists());
    // Local only, it is missing: the usual error.
    let err = s.fail(&["ls", "-l"]);
    assert!(err.contains("no spfs repository"), "{err}");
}

/// Builds `name/1.0.0` into `env`, installing `share/NAME.txt` (content `name`),
/// requiring `deps`.
fn package(env: &Env, name: &str, deps: &[&str]) -> String {
    let reqs: String = deps.iter().map(|d| format!("    - pkg: {d}\n")).collect();
    let text = format!(
        "pkg: {name}/1.0.0\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - echo {name} > $PREFIX/share/{name}.txt\ninstall:\n  requirements:\n{}",
        if reqs.is_empty() {
            "    []\n".to_string()
        } else {
            reqs
        }
    )
    .replace("  requirements:\n    []\n", "  requirements: []\n");
    let spec = env.spec(&format!("specs/{name}.spk.yaml"), &text);
    let out = env.ok(&["build", "--no-host", spec.to_str().unwrap()]);
    built(&out).pop().expect("one build")
}

fn spfs_cmd(repo: &Path, args: &[&str]) -> String {
    let out = Command::new(spfs_bin())
        .args(args)
        .env("SPFS_ROOT", repo)
        .env_remove("SPFS_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spfs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn env_pulls_the_layers_it_needs_from_the_remote_without_tags() {
    if !privileged("env_pulls_the_layers_it_needs_from_the_remote_without_tags") {
        return;
    }
    let s = Setup::new();
    let base = package(&s.remote, "base", &[]);
    let app = package(&s.remote, "app", &["base"]);
    let layer = |build: &str| {
        let p: Vec<&str> = build.split('/').collect();
        s.remote
            .spfs()
            .resolve_tag(&format!("spk/spec/{}/{}/{}.run", p[0], p[1], p[2]))
            .unwrap()
            .expect("a run layer")
    };
    let layers = [layer(&base), layer(&app)];
    // A local repository that exists but holds nothing of them.
    stub(&s.local, "localonly", "1.0.0");
    assert!(!layers.iter().any(|d| s.local.spfs().has_object(d)));

    let (out, err) = s.ok(&[
        "env",
        "--no-host",
        "app",
        "--",
        "sh",
        "-c",
        "cat /spfs/share/base.txt /spfs/share/app.txt",
    ]);
    assert_eq!(out, "base\napp\n");
    assert!(err.contains("pulled 2 layer(s) from origin"), "{err}");
    assert_eq!(runtime_mounts(), Vec::<String>::new());
    // The layers are local now, complete, and no tag of the packages came with them.
    let local = s.local.spfs();
    assert!(layers.iter().all(|d| local.has_object(d)));
    let tags = s.local.spfs().list_tags("").unwrap();
    assert!(
        !tags.is_empty() && tags.iter().all(|t| t.contains("/localonly/")),
        "{tags:?}"
    );
    spfs_cmd(&s.local.repo, &["check"]);

    // Entering again pulls nothing.
    let (out, err) = s.ok(&[
        "env",
        "--no-host",
        "app",
        "--",
        "cat",
        "/spfs/share/app.txt",
    ]);
    assert_eq!(out, "app\n");
    assert!(!err.contains("pulled"), "{err}");

    // Local only, the packages are not there to solve.
    let err = s.fail(&["env", "--no-host", "--local-only", "app", "--", "true"]);
    assert!(err.contains("app"), "{err}");

    // Untagged, what was pulled is reclaimed by clean.
    spfs_cmd(&s.local.repo, &["clean", "-y", "--grace", "0"]);
    assert!(!layers.iter().any(|d| s.local.spfs().has_object(d)));
    // A saved environment is pulled again when loaded.
    let saved = s.local.path("app-env.yaml");
    s.ok(&["env", "--no-host", "--save", saved.to_str().unwrap(), "app"]);
    let (out, err) = s.ok(&[
        "env",
        "--load",
        saved.to_str().unwrap(),
        "--",
        "cat",
        "/spfs/share/base.txt",
    ]);
    assert_eq!(out, "base\n");
    assert!(err.contains("pulled 2 layer(s) from origin"), "{err}");

    // A layer no repository holds is named by package, and nothing is entered.
    spfs_cmd(&s.local.repo, &["clean", "-y", "--grace", "0"]);
    let gone = layer(&app);
    std::fs::remove_file(s.remote.spfs().object_path(&gone)).unwrap();
    let err = s.fail(&["env", "--no-host", "app", "--", "true"]);
    assert!(
        err.contains("neither in the local repository nor in any remote tried"),
        "{err}"
    );
    assert!(
        err.contains(&format!("the 'run' layer of {app} ({})", gone.short())),
        "{err}"
    );
    assert!(err.contains("origin"), "{err}");
    assert!(
        !s.local.spfs().has_object(&layer(&base)),
        "nothing pulled when the stack cannot be completed"
    );
    assert_eq!(runtime_mounts(), Vec::<String>::new());
}

#[test]
fn build_solves_its_build_environment_from_the_remotes_and_pulls_its_layers() {
    if !privileged("build_solves_its_build_environment_from_the_remotes_and_pulls_its_layers") {
        return;
    }
    let s = Setup::new();
    let base = package(&s.remote, "base", &[]);
    // The component layers of base's build (build environments take its "build").
    let base_layers: Vec<_> = ["build", "run"]
        .iter()
        .map(|c| {
            s.remote
                .spfs()
                .resolve_tag(&format!("spk/spec/{base}.{c}"))
                .unwrap()
                .expect("a component layer")
        })
        .collect();
    let local_has = |d| s.local.spfs().has_object(d);
    // Built against base, copying a file of it into its own install.
    let tool = s.local.spec(
        "specs/tool.spk.yaml",
        "pkg: tool/1.0.0\nbuild:\n  options: [{pkg: base}]\n  script:\n    - mkdir -p $PREFIX/share\n    - cp /spfs/share/base.txt $PREFIX/share/tool-saw.txt\n",
    );
    let tool = tool.to_str().unwrap();

    // Local only, base is not there to build against.
    let err = s.fail(&["build", "--no-host", "--local-only", tool]);
    assert!(err.contains("base"), "{err}");
    assert!(!base_layers.iter().any(local_has));

    // With the configured remotes: solved from origin, its layer pulled before the
    // build environment mounted.
    let (out, err) = s.ok(&["build", "--no-host", tool]);
    assert!(err.contains("pulled 1 layer(s) from origin"), "{err}");
    let built_tool = built(&out).pop().expect("one build");
    let files = s.local.component_files(&built_tool, "run");
    let saw: Vec<_> = files
        .iter()
        .filter(|(path, _)| path.starts_with("share/"))
        .collect();
    assert_eq!(
        saw,
        vec![&("share/tool-saw.txt".to_string(), b"base\n".to_vec())]
    );
    assert_eq!(runtime_mounts(), Vec::<String>::new());
    // Pulled without tags: base's layer is local, none of its package tags are.
    assert!(base_layers.iter().any(local_has));
    let tags = s.local.spfs().list_tags("spk").unwrap();
    assert!(tags.iter().all(|t| !t.contains("/base/")), "{tags:?}");

    // A remote named by address with -r, into a fresh local repository; and
    // make-binary of the stored recipe.
    let fresh = Env::new();
    let addr = format!("file://{}", s.remote.repo.display());
    let run = |args: &[&str]| {
        let out = fresh
            .cmd(args)
            .env("XDG_CONFIG_HOME", fresh.path("no-config"))
            .env_remove("SPFS_CONFIG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "spk {args:?}: {err}");
        (String::from_utf8(out.stdout).unwrap(), err)
    };
    let (_, err) = run(&["build", "--no-host", "-r", &addr, tool]);
    assert!(
        err.contains(&format!("pulled 1 layer(s) from {addr}")),
        "{err}"
    );
    let (out, err) = run(&["make-binary", "--no-host", "-r", &addr, "tool/1.0.0"]);
    assert!(!err.contains("pulled"), "{err}");
    assert_eq!(built(&out).len(), 1, "{out}");
}

#[test]
fn env_with_the_fuse_backend_reads_remote_layers_as_files_are_opened() {
    if !privileged("env_with_the_fuse_backend_reads_remote_layers_as_files_are_opened") {
        return;
    }
    let s = Setup::new();
    package(&s.remote, "base", &[]);
    package(&s.remote, "app", &["base"]);
    stub(&s.local, "localonly", "1.0.0");
    // A payload is named by the BLAKE3 digest of its content (docs/object-encoding.md).
    let app_txt = spfs::Digest::of(b"app\n");
    let base_txt = spfs::Digest::of(b"base\n");
    assert!(s.remote.spfs().has_payload(&app_txt));
    assert!(!s.local.spfs().has_payload(&app_txt));

    let (out, err) = s.ok(&[
        "env",
        "--no-host",
        "--backend",
        "fuse",
        "app",
        "--",
        "cat",
        "/spfs/share/app.txt",
    ]);
    assert_eq!(out, "app\n");
    assert!(
        err.contains("reading 2 layer(s) from origin as files are opened"),
        "{err}"
    );
    assert!(!err.contains("pulled"), "{err}");
    assert_eq!(runtime_mounts(), Vec::<String>::new());
    // Only what was opened came over, and it stays for next time.
    let local = s.local.spfs();
    assert!(local.has_payload(&app_txt));
    assert!(!local.has_payload(&base_txt));

    // The render backend needs every payload first: it pulls, as before.
    let (out, err) = s.ok(&[
        "env",
        "--no-host",
        "app",
        "--",
        "cat",
        "/spfs/share/base.txt",
    ]);
    assert_eq!(out, "base\n");
    assert!(err.contains("pulled 2 layer(s) from origin"), "{err}");
}
