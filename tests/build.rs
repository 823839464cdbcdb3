//! `spk build` / `make-source` / `make-binary` / `test` end to end: real compilers,
//! real git repositories, a tar served over HTTP, runtimes entered as root.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use common::*;

fn spec_path(name: &str) -> String {
    examples()
        .join(name)
        .join(format!("{name}.spk.yaml"))
        .display()
        .to_string()
}

fn text(files: &[(String, Vec<u8>)], path: &str) -> String {
    let (_, bytes) = files.iter().find(|(p, _)| p == path).unwrap_or_else(|| {
        panic!(
            "{path} not in {:?}",
            files.iter().map(|f| &f.0).collect::<Vec<_>>()
        )
    });
    String::from_utf8_lossy(bytes).into_owned()
}

fn paths(files: &[(String, Vec<u8>)]) -> Vec<&str> {
    files.iter().map(|(p, _)| p.as_str()).collect()
}

#[test]
fn the_example_chain_builds_tests_and_runs() {
    if !privileged("the_example_chain_builds_tests_and_runs") {
        return;
    }
    let env = Env::new();
    let lib_out = env.ok(&["build", &spec_path("hello-lib")]);
    let lib = built(&lib_out);
    assert_eq!(lib.len(), 1, "{lib_out}");
    let lib = &lib[0];
    let tool_out = env.ok(&["build", &spec_path("hello-tool")]);
    let tool = built(&tool_out)[0].clone();

    // Components split by the spec's patterns; metadata in every component.
    let meta = format!("spk/pkg/{lib}");
    let lib_files = env.component_files(lib, "lib");
    assert!(
        paths(&lib_files).contains(&"lib/libhello.so"),
        "{:?}",
        paths(&lib_files)
    );
    assert!(!paths(&lib_files).iter().any(|p| p.starts_with("include/")));
    let headers = env.component_files(lib, "headers");
    assert_eq!(
        text(&headers, "include/hello.h"),
        fs::read_to_string(examples().join("hello-lib/src/hello.h")).unwrap()
    );
    for comp in ["lib", "headers", "run", "build"] {
        let files = env.component_files(lib, comp);
        for m in [
            "spec.yaml",
            "options.json",
            "build.sh",
            "lib.cmpt",
            "headers.cmpt",
            "build.log",
        ] {
            assert!(
                paths(&files).contains(&format!("{meta}/{m}").as_str()),
                "{comp} lacks {m}: {:?}",
                paths(&files)
            );
        }
    }
    let build_files = env.component_files(lib, "build");
    // Nothing of the sources (hello.o was built in the source dir) is captured.
    assert!(!paths(&build_files)
        .iter()
        .any(|p| p.contains("/src/") || p.ends_with(".o")));
    assert!(text(&build_files, &format!("{meta}/build.sh")).contains("cc -shared"));
    assert!(text(&build_files, &format!("{meta}/build.log")).contains("+ cc -shared"));
    // Activation scripts named by priority.
    let sh = text(&build_files, "etc/spfs/startup.d/20_spk_hello-lib.sh");
    assert!(sh.contains("LD_LIBRARY_PATH='/spfs/lib:'"), "{sh}");
    assert!(paths(&build_files).contains(&"etc/spfs/startup.d/20_spk_hello-lib.csh"));

    // The tool's requirement is pinned from its build environment (x.x of 1.2.0).
    let tool_meta = format!("spk/pkg/{tool}/spec.yaml");
    let spec = text(&env.component_files(&tool, "run"), &tool_meta);
    assert!(spec.contains("pkg: hello-lib/1.2\n"), "{spec}");
    let about = text(
        &env.component_files(&tool, "lib"),
        "share/hello-tool/about.txt",
    );
    assert_eq!(about, "built against hello-lib 1.2.0\n");
    // `bin` holds only the program; `lib` the shared data.
    let bin = env.component_files(&tool, "bin");
    assert!(paths(&bin).contains(&"bin/hello-tool"));
    assert!(!paths(&bin).iter().any(|p| p.starts_with("share/")));

    // Tests of all stages pass.
    let out = env.spk(&["test", &spec_path("hello-lib")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok(&["test", &spec_path("hello-tool")]);

    // The environment runs the compiled, linked program with its activation applied.
    let out = env.ok(&["env", "hello-tool", "--", "hello-tool", "spfs"]);
    assert_eq!(out, "hello, spfs (from spk's $PREFIX, with 'quotes')\n");
    assert_eq!(runtime_mounts(), Vec::<String>::new());
}

#[test]
fn variants_build_separately_and_tests_follow_selectors() {
    if !privileged("variants_build_separately_and_tests_follow_selectors") {
        return;
    }
    let env = Env::new();
    let out = env.ok(&["build", &spec_path("greet-config")]);
    let builds = built(&out);
    assert_eq!(builds.len(), 2, "{out}");
    let mut confs: Vec<String> = builds
        .iter()
        .map(|b| text(&env.component_files(b, "run"), "etc/greet/greet.conf"))
        .collect();
    confs.sort();
    assert_eq!(
        confs,
        vec!["greeting=hello\ndebug=off\n", "greeting=hello\ndebug=on\n"]
    );
    // Each install test runs only for its selected variant: 2 sources + 2 build + 2 install.
    let out = env.spk(&["test", &spec_path("greet-config")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("6 test(s) passed"), "{err}");
    let only_install = env.spk(&["test", &format!("{}@install", spec_path("greet-config"))]);
    assert!(String::from_utf8_lossy(&only_install.stderr).contains("2 test(s) passed"));
    // One variant on request.
    let out = env.ok(&["make-binary", "greet-config/2.0.0", "--variant", "1"]);
    assert_eq!(built(&out).len(), 1);
}

#[test]
fn a_failing_test_names_the_test_and_stage() {
    if !privileged("a_failing_test_names_the_test_and_stage") {
        return;
    }
    let env = Env::new();
    let spec = env.spec(
        "pkg/t.spk.yaml",
        "pkg: failing-test/1.0.0\nbuild:\n  script: [mkdir -p $PREFIX/share, echo x > $PREFIX/share/x]\ntests:\n  - stage: install\n    script: [test -f /spfs/share/x, 'echo checking-y', test -f /spfs/share/y]\n",
    );
    env.ok(&["build", spec.to_str().unwrap()]);
    let err = env.fail(&["test", spec.to_str().unwrap()]);
    assert!(
        err.contains(
            "test 1 (install stage, variant 0) of failing-test/1.0.0 failed with exit status 1"
        ),
        "{err}"
    );
    assert!(err.contains("checking-y"), "{err}");
}

#[test]
fn a_failed_build_publishes_nothing_and_says_how_to_debug() {
    if !privileged("a_failed_build_publishes_nothing_and_says_how_to_debug") {
        return;
    }
    let env = Env::new();
    let spec = env.spec(
        "pkg/f.spk.yaml",
        "pkg: broken/1.0.0\nbuild:\n  script:\n    - mkdir -p $PREFIX/bin\n    - echo half > $PREFIX/bin/half\n    - echo the-last-words\n    - exit 3\n",
    );
    let err = env.fail(&["build", spec.to_str().unwrap()]);
    assert!(err.contains("the build script of broken/1.0.0/"), "{err}");
    assert!(err.contains("failed with exit status 3"), "{err}");
    assert!(err.contains("the-last-words"), "{err}");
    assert!(
        err.contains("spk make-binary broken/1.0.0 --variant 0 -i"),
        "{err}"
    );
    let log = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("help: the whole output is in "))
        .expect("log path");
    assert!(fs::read_to_string(log).unwrap().contains("the-last-words"));
    // Only the source build exists; no scratch space and no mount remain.
    let ls = env.ok(&["ls", "broken/1.0.0"]);
    assert_eq!(ls.lines().count(), 1, "{ls}");
    assert!(ls.contains("broken/1.0.0/src"), "{ls}");
    let tmp = env.repo.join("tmp");
    let leftovers: Vec<_> = fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(runtime_mounts(), Vec::<String>::new());
}

#[test]
fn validation_rules_name_the_rule_and_the_paths() {
    if !privileged("validation_rules_name_the_rule_and_the_paths") {
        return;
    }
    let env = Env::new();
    let empty = env.spec(
        "e/e.spk.yaml",
        "pkg: empty-pkg/1.0.0\nbuild:\n  script: [echo nothing]\n",
    );
    let err = env.fail(&["build", empty.to_str().unwrap()]);
    assert!(err.contains("breaks validation rule EmptyPackage"), "{err}");
    assert!(err.contains("allow: EmptyPackage"), "{err}");
    let allowed = env.spec(
        "e2/e.spk.yaml",
        "pkg: empty-ok/1.0.0\nbuild:\n  script: [echo nothing]\n  validation:\n    rules: [{allow: EmptyPackage}]\n",
    );
    env.ok(&["build", allowed.to_str().unwrap()]);

    // A build that overwrites a file of its build environment.
    let base = env.spec("b/b.spk.yaml", "pkg: base-pkg/1.0.0\nbuild:\n  script: [mkdir -p $PREFIX/etc, echo base > $PREFIX/etc/base.conf]\n");
    env.ok(&["build", base.to_str().unwrap()]);
    let alter = env.spec(
        "a/a.spk.yaml",
        "pkg: alter-pkg/1.0.0\nbuild:\n  options: [{pkg: base-pkg}]\n  script: [echo mine > $PREFIX/etc/base.conf, mkdir -p $PREFIX/share, echo x > $PREFIX/share/x]\n",
    );
    let err = env.fail(&["build", alter.to_str().unwrap()]);
    assert!(
        err.contains("breaks validation rule AlterExistingFiles"),
        "{err}"
    );
    assert!(err.contains("/spfs/etc/base.conf"), "{err}");
    // Every file must be in a component when CollectAllFiles is required.
    let orphan = env.spec(
        "o/o.spk.yaml",
        "pkg: orphan-pkg/1.0.0\nbuild:\n  script: [mkdir -p $PREFIX/a $PREFIX/b, echo 1 > $PREFIX/a/1, echo 2 > $PREFIX/b/2]\n  validation:\n    rules: [{require: CollectAllFiles}]\ninstall:\n  components:\n    - {name: run, files: [/a/]}\n    - {name: build, files: [/a/]}\n",
    );
    let err = env.fail(&["build", orphan.to_str().unwrap()]);
    assert!(
        err.contains("CollectAllFiles") && err.contains("/spfs/b/2"),
        "{err}"
    );
}

#[test]
fn path_sources_follow_gitignore_unless_excludes_are_given() {
    let env = Env::new();
    let dir = env.path("proj");
    write(&dir.join("keep.c"), b"int x;\n", 0o644);
    write(&dir.join("build/out.o"), b"obj", 0o644);
    write(&dir.join(".gitignore"), b"build/\n*.tmp\n", 0o644);
    write(&dir.join("scratch.tmp"), b"t", 0o644);
    write(&dir.join(".git/HEAD"), b"ref", 0o644);
    write(&dir.join("tool.sh"), b"#!/bin/sh\n", 0o755);
    std::os::unix::fs::symlink("keep.c", dir.join("link.c")).unwrap();
    let spec = env.spec(
        "proj/p.spk.yaml",
        "pkg: path-src/1.0.0\nsources:\n  - path: .\n  - path: .\n    subdir: explicit\n    exclude: ['*.o']\n",
    );
    let out = env.ok(&["make-source", spec.to_str().unwrap()]);
    assert!(out.contains("path-src/1.0.0/src"), "{out}");
    let files = env.component_files("path-src/1.0.0/src", "src");
    let got: Vec<&str> = paths(&files);
    let root = "spk/pkg/path-src/1.0.0/src";
    for want in [
        "keep.c",
        ".gitignore",
        "tool.sh",
        "p.spk.yaml",
        "explicit/keep.c",
        "explicit/scratch.tmp",
        "explicit/.git/HEAD",
    ] {
        assert!(
            got.contains(&format!("{root}/{want}").as_str()),
            "missing {want}: {got:?}"
        );
    }
    for gone in [
        "build/out.o",
        "scratch.tmp",
        ".git/HEAD",
        "explicit/build/out.o",
    ] {
        assert!(
            !got.contains(&format!("{root}/{gone}").as_str()),
            "{gone} collected: {got:?}"
        );
    }
    // Modes and symlinks survive.
    let m = env.spfs();
    let layer = m
        .resolve_tag("spk/spec/path-src/1.0.0/src.src")
        .unwrap()
        .unwrap();
    let manifest = m
        .merge_manifests(&m.manifests_of(&[layer]).unwrap())
        .unwrap();
    let tool = manifest.get(format!("{root}/tool.sh").as_bytes()).unwrap();
    assert_eq!(tool.mode & 0o777, 0o755);
    let link = manifest.get(format!("{root}/link.c").as_bytes()).unwrap();
    assert_eq!(
        link.kind,
        spfs::object::EntryKind::Symlink(b"keep.c".to_vec())
    );
}

#[test]
fn git_sources_check_out_tags_branches_and_commits() {
    let env = Env::new();
    let repo = env.path("upstream");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    write(&repo.join("version.txt"), b"one\n", 0o644);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    git(&repo, &["tag", "v1"]);
    let first = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    write(&repo.join("version.txt"), b"two\n", 0o644);
    git(&repo, &["commit", "-q", "-am", "two"]);
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    write(&repo.join("version.txt"), b"feature\n", 0o644);
    git(&repo, &["commit", "-q", "-am", "feature"]);
    git(&repo, &["checkout", "-q", "main"]);
    let spec = env.spec(
        "pkg/g.spk.yaml",
        &format!(
            "pkg: git-src/1.0.0\nsources:\n  - {{git: ../upstream, ref: v1, subdir: tag}}\n  - {{git: ../upstream, ref: feature, subdir: branch}}\n  - {{git: {}, ref: {first}, subdir: sha}}\n  - {{git: ../upstream, subdir: head}}\n",
            repo.display()
        ),
    );
    env.ok(&["make-source", spec.to_str().unwrap()]);
    let files = env.component_files("git-src/1.0.0/src", "src");
    let root = "spk/pkg/git-src/1.0.0/src";
    assert_eq!(text(&files, &format!("{root}/tag/version.txt")), "one\n");
    assert_eq!(
        text(&files, &format!("{root}/branch/version.txt")),
        "feature\n"
    );
    assert_eq!(text(&files, &format!("{root}/sha/version.txt")), "one\n");
    assert_eq!(text(&files, &format!("{root}/head/version.txt")), "two\n");
    // A ref that does not exist is a clear error naming the source.
    let bad = env.spec(
        "bad/g.spk.yaml",
        &format!(
            "pkg: git-bad/1.0.0\nsources:\n  - {{git: {}, ref: nope}}\n",
            repo.display()
        ),
    );
    let err = env.fail(&["make-source", bad.to_str().unwrap()]);
    assert!(err.contains("source 1 (git) failed"), "{err}");
}

/// Serves `body` for every request on 127.0.0.1 until `count` requests were answered.
fn serve(body: Vec<u8>, count: usize) -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    (port, handle)
}

#[test]
fn tar_sources_from_http_and_local_files_in_every_compression() {
    let env = Env::new();
    let tree = env.path("tree/pkg-1.0");
    write(&tree.join("README"), b"from a tarball\n", 0o644);
    write(&tree.join("bin/run.sh"), b"#!/bin/sh\n", 0o755);
    let mut sources = String::new();
    for (flag, ext) in [
        ("-z", "gz"),
        ("-j", "bz2"),
        ("-J", "xz"),
        ("--zstd", "zst"),
        ("", "plain"),
    ] {
        let file = env.path(&format!("pkg/a.tar.{ext}"));
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mut c = Command::new("tar");
        c.arg("-C").arg(env.path("tree")).arg("-c");
        if !flag.is_empty() {
            c.arg(flag);
        }
        let st = c.arg("-f").arg(&file).arg("pkg-1.0").status().unwrap();
        assert!(st.success());
        sources.push_str(&format!("  - {{tar: ./a.tar.{ext}, subdir: {ext}}}\n"));
    }
    let (port, server) = serve(fs::read(env.path("pkg/a.tar.gz")).unwrap(), 1);
    sources.push_str(&format!(
        "  - {{tar: 'http://127.0.0.1:{port}/a.tar.gz', subdir: http}}\n"
    ));
    let spec = env.spec(
        "pkg/t.spk.yaml",
        &format!("pkg: tar-src/1.0.0\nsources:\n{sources}"),
    );
    env.ok(&["make-source", spec.to_str().unwrap()]);
    server.join().unwrap();
    let files = env.component_files("tar-src/1.0.0/src", "src");
    for sub in ["gz", "bz2", "xz", "zst", "plain", "http"] {
        assert_eq!(
            text(
                &files,
                &format!("spk/pkg/tar-src/1.0.0/src/{sub}/pkg-1.0/README")
            ),
            "from a tarball\n",
            "{sub}"
        );
    }
}

#[test]
fn source_scripts_run_in_order_and_may_not_write_elsewhere() {
    if !privileged("source_scripts_run_in_order_and_may_not_write_elsewhere") {
        return;
    }
    let env = Env::new();
    // The second script runs in its subdir, where the first one's file is one level up.
    let spec2 = env.spec(
        "s2/s.spk.yaml",
        "pkg: script-src/1.0.0\nsources:\n  - script: [echo first > a.txt]\n  - script: ['cat ../a.txt > b.txt', 'pwd >> b.txt']\n    subdir: sub\n",
    );
    env.ok(&["make-source", spec2.to_str().unwrap()]);
    let files = env.component_files("script-src/1.0.0/src", "src");
    assert_eq!(
        text(&files, "spk/pkg/script-src/1.0.0/src/sub/b.txt"),
        "first\n/spfs/spk/pkg/script-src/1.0.0/src/sub\n"
    );
    let outside = env.spec("o/s.spk.yaml", "pkg: sneaky-src/1.0.0\nsources:\n  - script: [echo x > a, mkdir -p /spfs/etc, echo y > /spfs/etc/evil]\n");
    let err = env.fail(&["make-source", outside.to_str().unwrap()]);
    assert!(
        err.contains("wrote outside /spfs/spk/pkg/sneaky-src/1.0.0/src: /spfs/etc"),
        "{err}"
    );
    let nothing = env.spec(
        "n/s.spk.yaml",
        "pkg: nothing-src/1.0.0\nsources:\n  - script: ['true']\n",
    );
    let err = env.fail(&["make-source", nothing.to_str().unwrap()]);
    assert!(err.contains("no sources were collected"), "{err}");
    assert!(!Path::new("/spfs/etc/evil").exists());
}

#[test]
fn requirements_are_pinned_and_inherited_from_the_build_environment() {
    if !privileged("requirements_are_pinned_and_inherited_from_the_build_environment") {
        return;
    }
    let env = Env::new();
    let dep = env.spec(
        "dep/d.spk.yaml",
        "pkg: abi-lib/2.3.4\nbuild:\n  options:\n    - var: abi/cp3\n      inheritance: Strong\n      description: the ABI everything built against it must share\n  script: [mkdir -p $PREFIX/lib, echo so > $PREFIX/lib/abi.so]\n",
    );
    env.ok(&["build", "--no-host", dep.to_str().unwrap()]);
    let user = env.spec(
        "user/u.spk.yaml",
        "pkg: abi-user/1.0.0\nbuild:\n  options: [{pkg: abi-lib}]\n  script: [mkdir -p $PREFIX/bin, echo x > $PREFIX/bin/x]\ninstall:\n  requirements:\n    - {pkg: abi-lib, fromBuildEnv: x.x.x}\n    - {pkg: not-in-env, fromBuildEnv: x.x, ifPresentInBuildEnv: true}\n",
    );
    let out = env.ok(&["build", "--no-host", user.to_str().unwrap()]);
    let build = &built(&out)[0];
    let spec = text(
        &env.component_files(build, "run"),
        &format!("spk/pkg/{build}/spec.yaml"),
    );
    // x.x.x of 2.3.4; the absent optional pin dropped; the strong var inherited.
    assert!(spec.contains("- pkg: abi-lib/2.3.4\n"), "{spec}");
    assert!(!spec.contains("not-in-env"), "{spec}");
    assert!(spec.contains("var: abi-lib.abi/cp3"), "{spec}");
    assert!(spec.contains("static: cp3"), "{spec}");
    // Without ifPresentInBuildEnv, a pin whose package is absent fails the build.
    let strict = env.spec(
        "strict/s.spk.yaml",
        "pkg: abi-strict/1.0.0\nbuild:\n  script: [mkdir -p $PREFIX/bin, echo x > $PREFIX/bin/x]\ninstall:\n  requirements:\n    - {pkg: not-in-env, fromBuildEnv: x.x}\n",
    );
    let err = env.fail(&["build", "--no-host", strict.to_str().unwrap()]);
    assert!(
        err.contains("not-in-env") && err.contains("not in the build environment"),
        "{err}"
    );
}

#[test]
fn an_interrupted_build_publishes_nothing_and_leaves_nothing() {
    if !privileged("an_interrupted_build_publishes_nothing_and_leaves_nothing") {
        return;
    }
    let env = Env::new();
    let marker = env.path("started");
    let spec = env.spec(
        "slow/s.spk.yaml",
        &format!(
            "pkg: slow-build/1.0.0\nbuild:\n  script: [mkdir -p $PREFIX/bin, echo x > $PREFIX/bin/x, touch {}, sleep 60]\n",
            marker.display()
        ),
    );
    let child = env
        .cmd(&["build", "--no-host", spec.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !marker.exists() {
        assert!(
            start.elapsed().as_secs() < 30,
            "the build script never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted; nothing was published"), "{err}");
    assert!(
        start.elapsed().as_secs() < 30,
        "the build kept running after the interrupt"
    );
    let ls = env.ok(&["ls", "slow-build/1.0.0"]);
    assert_eq!(ls.lines().count(), 1, "{ls}");
    assert!(ls.starts_with("slow-build/1.0.0/src "), "{ls}");
    let leftovers: Vec<_> = fs::read_dir(env.repo.join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(runtime_mounts(), Vec::<String>::new());
}

#[test]
fn removing_a_package_then_cleaning_frees_its_space() {
    if !privileged("removing_a_package_then_cleaning_frees_its_space") {
        return;
    }
    let env = Env::new();
    let spec = env.spec(
        "bulky/bulky.spk.yaml",
        "pkg: bulky/1.0.0\napi: v0/package\nbuild:\n  script:\n    - mkdir -p \"$PREFIX/share\"\n    - head -c 300000 /dev/urandom > \"$PREFIX/share/bulky.bin\"\n",
    );
    let out = env.ok(&["build", spec.to_str().unwrap()]);
    let build = built(&out).pop().expect("one build");
    let files = env.component_files(&build, "run");
    let (_, bytes) = files
        .iter()
        .find(|(p, _)| p == "share/bulky.bin")
        .expect("the payload is in the run component");
    let payload = spfs::Digest::of(bytes);
    assert!(env.spfs().has_payload(&payload));
    let spfs = |args: &[&str]| {
        let out = Command::new(spfs_bin())
            .args(args)
            .env("SPFS_ROOT", &env.repo)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spfs {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // Still published: nothing of it goes.
    spfs(&["clean", "-y", "--grace", "0"]);
    assert!(env.spfs().has_payload(&payload));
    env.ok(&["remove", "bulky/1.0.0"]);
    let report = spfs(&["clean", "-y", "--grace", "0"]);
    assert!(!env.spfs().has_payload(&payload), "{report}");
    // At least the 300000-byte payload was freed ("293.0 KiB" or more).
    let freed = report
        .split(", ")
        .nth(2)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        report.contains("KiB") && freed >= 293.0 || report.contains("MiB"),
        "{report}"
    );
    spfs(&["check"]);
}
