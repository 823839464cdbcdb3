//! `spk env` end to end: stacks of built packages, activation in priority order in bash
//! and tcsh, exit codes, saved environments, `--show`, and recipes built on demand.

mod common;

use std::fs;
use std::io::Write;
use std::process::Stdio;

use common::*;

/// Builds `name/1.0.0` installing `share/NAME.txt` and `share/common.txt` (content
/// `name`), depending on `deps`, appending `name` to CHAIN with activation priority `prio`.
fn package(env: &Env, name: &str, deps: &[&str], prio: u8) {
    let mut reqs = String::new();
    let mut opts = String::new();
    for d in deps {
        reqs.push_str(&format!("    - pkg: {d}\n"));
        opts.push_str(&format!("    - pkg: {d}\n"));
    }
    let text = format!(
        "pkg: {name}/1.0.0\nbuild:\n  options:\n{opts}    - var: unused/x\n  script:\n    - mkdir -p $PREFIX/share\n    - echo {name} > $PREFIX/share/{name}.txt\n    - echo {name} > $PREFIX/share/common.txt\n  validation:\n    rules: [{{allow: AlterExistingFiles}}, {{allow: CollectExistingFiles}}]\ninstall:\n  requirements:\n{reqs}  environment:\n    - priority: {prio}\n    - append: CHAIN\n      value: {name}\n",
        opts = opts,
        reqs = if reqs.is_empty() { "    []\n".to_string() } else { reqs },
    );
    let text = text.replace("  requirements:\n    []\n", "  requirements: []\n");
    let spec = env.spec(&format!("specs/{name}/{name}.spk.yaml"), &text);
    env.ok(&["build", "--no-host", spec.to_str().unwrap()]);
}

#[test]
fn two_packages_merge_with_the_dependent_on_top() {
    if !privileged("two_packages_merge_with_the_dependent_on_top") {
        return;
    }
    let env = Env::new();
    package(&env, "base", &[], 50);
    package(&env, "app", &["base"], 60);
    let out = env.ok(&["env", "--no-host", "app", "--", "sh", "-c", "cat /spfs/share/base.txt /spfs/share/app.txt /spfs/share/common.txt; echo $CHAIN $SPK_ACTIVE_PREFIX"]);
    assert_eq!(out, "base\napp\napp\nbase:app /spfs\n");
    // The command's exit status passes through; a missing command is 127.
    let st = env
        .cmd(&["env", "--no-host", "app", "--", "sh", "-c", "exit 5"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(5));
    let st = env
        .cmd(&["env", "--no-host", "app", "--", "no-such-command"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(127));
    // An unsolvable request is explained, exit 1, nothing entered.
    let err = env.fail(&["env", "--no-host", "app/2", "--", "true"]);
    assert!(err.contains("app"), "{err}");
    assert_eq!(runtime_mounts(), Vec::<String>::new());
}

#[test]
fn ten_packages_activate_in_priority_order_in_bash_and_tcsh() {
    if !privileged("ten_packages_activate_in_priority_order_in_bash_and_tcsh") {
        return;
    }
    let env = Env::new();
    // p0 <- p1 <- ... <- p9; priorities fall along the chain, so p9's script runs first.
    for i in 0..10 {
        let deps: Vec<String> = if i == 0 {
            vec![]
        } else {
            vec![format!("p{}", i - 1)]
        };
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        package(&env, &format!("p{i}"), &deps, 90 - i as u8 * 5);
    }
    let want = "p9:p8:p7:p6:p5:p4:p3:p2:p1:p0";
    let out = env.ok(&[
        "env",
        "--no-host",
        "p9",
        "--",
        "bash",
        "-c",
        "echo $CHAIN; cat /spfs/share/common.txt; ls /spfs/share | wc -l",
    ]);
    assert_eq!(out, format!("{want}\np9\n11\n"));
    // An interactive tcsh sources the .csh scripts.
    let mut child = env
        .cmd(&["shell", "--no-host", "p9"])
        .env("SHELL", "/usr/bin/tcsh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"printenv CHAIN\nexit 4\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        want,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn saved_environments_load_exactly_elsewhere_and_show_what_they_hold() {
    if !privileged("saved_environments_load_exactly_elsewhere_and_show_what_they_hold") {
        return;
    }
    let env = Env::new();
    package(&env, "base", &[], 50);
    package(&env, "app", &["base"], 60);
    let saved = env.path("app-env.yaml");
    env.ok(&["env", "--no-host", "--save", saved.to_str().unwrap(), "app"]);
    let text = fs::read_to_string(&saved).unwrap();
    assert!(text.contains("- app\n"), "{text}");
    // A copy of the repository, with a newer `app` published in the original.
    let copy = env.path("copy");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&env.repo)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    let load = |repo: &std::path::Path, cmd: &[&str]| {
        let mut c = std::process::Command::new(SPK);
        c.arg("--repo")
            .arg(repo)
            .args(["env", "--load", saved.to_str().unwrap(), "--"])
            .args(cmd);
        c.output().unwrap()
    };
    let out = load(&copy, &["cat", "/spfs/share/common.txt"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "app\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Inside, --show lists the requests and the packages.
    let out = load(&copy, &[SPK, "env", "--show"]);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.starts_with("requests: app\n"), "{shown}");
    assert!(
        shown.contains("app/1.0.0/") && shown.contains("base/1.0.0/"),
        "{shown}"
    );
    // A repository lacking a layer names what is missing.
    let layers: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("layers:"))
        .skip(1)
        .map(|l| l.trim_start_matches("- ").trim().to_string())
        .collect();
    assert!(!layers.is_empty(), "{text}");
    let victim = copy
        .join("objects")
        .join(&layers[0][..2])
        .join(&layers[0][2..]);
    fs::remove_file(&victim).unwrap_or_else(|e| panic!("{}: {e}", victim.display()));
    let out = load(&copy, &["true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("1 of the") && err.contains(&layers[0]),
        "{err}"
    );
}

#[test]
fn a_spec_file_request_is_built_then_entered() {
    if !privileged("a_spec_file_request_is_built_then_entered") {
        return;
    }
    let env = Env::new();
    let spec = env.spec(
        "local/tool.spk.yaml",
        "pkg: local-tool/0.1.0\nbuild:\n  script: [mkdir -p $PREFIX/bin, printf '#!/bin/sh\\necho local\\n' > $PREFIX/bin/local-tool, chmod +x $PREFIX/bin/local-tool]\n",
    );
    let out = env.ok(&[
        "env",
        "--no-host",
        spec.to_str().unwrap(),
        "--",
        "/spfs/bin/local-tool",
    ]);
    assert_eq!(out, "local\n");
    assert!(env.ok(&["ls", "local-tool/0.1.0"]).lines().count() == 2);
}

#[test]
fn install_inside_an_environment_swaps_its_layers_in_place() {
    if !privileged("install_inside_an_environment_swaps_its_layers_in_place") {
        return;
    }
    let env = Env::new();
    package(&env, "base", &[], 50);
    package(&env, "extra", &[], 60);
    let script = format!(
        "echo edit > /tmp/unused; ls /spfs/share; {spk} install --no-host extra < /dev/null; echo refused=$?; \
         {spk} install --no-host extra --yes 2>/dev/null; echo installed=$?; ls /spfs/share; {spk} env --show",
        spk = SPK
    );
    // Both backends: renders, and (as root) an image view swapped for a new one.
    for backend in ["render", "fuse"] {
        let out = env.ok(&[
            "env",
            "--no-host",
            "--backend",
            backend,
            "base",
            "--",
            "sh",
            "-c",
            &script,
        ]);
        assert_eq!(
            out.lines().take(8).collect::<Vec<_>>(),
            vec![
                "base.txt",
                "common.txt",
                "refused=1",
                "installed=0",
                "base.txt",
                "common.txt",
                "extra.txt",
                "requests: base extra"
            ],
            "{backend}: {out}"
        );
        assert!(out.contains("extra/1.0.0/"), "{backend}: {out}");
    }
    // Outside an environment there is nothing to install into.
    let err = env.fail(&["install", "extra", "--yes"]);
    assert!(err.contains("not inside an spk environment"), "{err}");
}

#[test]
fn missing_layers_and_payloads_name_the_package_and_component() {
    if !privileged("missing_layers_and_payloads_name_the_package_and_component") {
        return;
    }
    let env = Env::new();
    package(&env, "base", &[], 50);
    let spfs = env.spfs();
    let tags = spfs.list_tags("spk/spec/base/1.0.0").unwrap();
    let run_tag = tags
        .iter()
        .find(|t| t.ends_with(".run"))
        .expect("run tag")
        .clone();
    let layer = spfs.resolve_tag(&run_tag).unwrap().unwrap();
    let manifest = spfs
        .merge_manifests(&spfs.manifests_of(&[layer]).unwrap())
        .unwrap();
    let payload = manifest
        .files()
        .find(|f| f.path.ends_with(b"base.txt"))
        .expect("base.txt in the run layer")
        .digest;
    // A missing payload.
    let path = spfs.payload_path(&payload);
    fs::remove_file(&path).unwrap();
    let err = env.fail(&["env", "--no-host", "base", "--", "true"]);
    assert!(err.contains(&payload.to_hex()), "{err}");
    assert!(
        err.contains("it belongs to the 'run' component of base/1.0.0/"),
        "{err}"
    );
    assert!(err.contains("help: pull base/1.0.0/"), "{err}");
    // A missing layer object.
    let obj = env
        .repo
        .join("objects")
        .join(&layer.to_hex()[..2])
        .join(&layer.to_hex()[2..]);
    fs::remove_file(&obj).unwrap();
    let err = env.fail(&["env", "--no-host", "base", "--", "true"]);
    assert!(err.contains("the 'run' layer of base/1.0.0/"), "{err}");
    assert!(err.contains("is missing from the repository"), "{err}");
    assert_eq!(runtime_mounts(), Vec::<String>::new());
}

#[test]
fn runtime_flags_of_spfs_run_apply_to_environments() {
    if !privileged("runtime_flags_of_spfs_run_apply_to_environments") {
        return;
    }
    let env = Env::new();
    package(&env, "base", &[], 50);
    // --size limits the scratch space that holds edits.
    let st = env
        .cmd(&[
            "env",
            "--no-host",
            "--edit",
            "--size",
            "1M",
            "base",
            "--",
            "sh",
            "-c",
            "head -c 3000000 /dev/zero > /spfs/big",
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_ne!(
        st.code(),
        Some(0),
        "a 3 MB write fit in a 1 MiB scratch space"
    );
    // --keep-runtime keeps the edits on disk with a kept record.
    env.ok(&[
        "env",
        "--no-host",
        "--edit",
        "--keep-runtime",
        "base",
        "--",
        "sh",
        "-c",
        "echo kept > /spfs/kept.txt",
    ]);
    let runtimes = env.repo.join("runtimes");
    let kept: Vec<_> = fs::read_dir(&runtimes)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("upper/kept.txt").is_file())
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "no kept upper dir under {}",
        runtimes.display()
    );
    assert_eq!(
        fs::read_to_string(kept[0].path().join("upper/kept.txt")).unwrap(),
        "kept\n"
    );
}
