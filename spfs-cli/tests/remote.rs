//! Push and pull between repositories (`file://` remotes) through the binary.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

/// spfs on `repo` with `origin` at `remote` and no configuration files.
fn spfs(env: &Env, repo: &Path, remote: &Path, args: &[&str]) -> Output {
    env.cmd(args)
        .env("SPFS_ROOT", repo)
        .env("XDG_CONFIG_HOME", env.path("no-config"))
        .env_remove("SPFS_CONFIG")
        .env("SPFS_REMOTE_ORIGIN", format!("file://{}", remote.display()))
        .output()
        .unwrap()
}

fn ok(out: Output) -> (String, String) {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

#[test]
fn push_then_pull_round_trips_tags_and_content_and_skips_what_is_there() {
    let env = Env::new();
    let tree = env.path("tree");
    sample_tree(&tree);
    env.commit(&tree, &["org/sample"]);
    let remote = env.path("shared");
    let other = env.path("other");
    write(&other.join("f"), b"other", 0o644);
    env.commit(&other, &["org/other"]);

    // Pushing by address creates the remote repository.
    let addr = format!("file://{}", remote.display());
    let (out, err) = ok(env.run(&["push", "org/sample", "--remote", &addr]));
    assert!(out.contains("pushed org/sample"), "{out}");
    assert!(
        err.contains("2 object(s)") && err.contains("1 tag(s)"),
        "{err}"
    );
    let remote_tags = ok(env.run(&["--repo", remote.to_str().unwrap(), "tags"])).0;
    assert!(remote_tags.starts_with("org/sample "), "{remote_tags}");
    assert!(!remote_tags.contains("org/other"), "{remote_tags}");
    ok(env.run(&["--repo", remote.to_str().unwrap(), "check"]));
    // Nothing new: nothing sent.
    let (_, err) = ok(env.run(&["push", "org/sample", "--remote", &addr]));
    assert!(err.contains("0 object(s), 0 payload(s), 0 B"), "{err}");

    // Pull into an empty repository from the configured origin.
    let fresh = env.path("fresh");
    let (out, _) = ok(spfs(&env, &fresh, &remote, &["pull", "org/sample"]));
    assert!(out.contains("pulled org/sample from origin"), "{out}");
    let rendered = env.path("rendered");
    ok(spfs(
        &env,
        &fresh,
        &remote,
        &[
            "render",
            "org/sample",
            rendered.to_str().unwrap(),
            "--strategy",
            "copy",
        ],
    ));
    assert_same_tree(&tree, &rendered, 0o7777);
    ok(spfs(&env, &fresh, &remote, &["check"]));

    let err = env.fails(&["pull", "org/none", "--remote", &addr]);
    assert!(err.contains("unknown reference 'org/none'"), "{err}");
    let err = env.fails(&["push", "org/sample", "--remote", "nowhere"]);
    assert!(err.contains("no remote named 'nowhere'"), "{err}");
}

#[test]
fn run_pulls_what_the_stack_needs_without_its_tags() {
    if !privileged("run_pulls_what_the_stack_needs_without_its_tags") {
        return;
    }
    let env = Env::new();
    let remote = env.path("shared");
    let tree = env.path("tree");
    write(&tree.join("hello.txt"), b"from the remote\n", 0o644);
    let layer = ok(env
        .cmd(&[
            "commit",
            "layer",
            "--path",
            tree.to_str().unwrap(),
            "-t",
            "org/hello",
        ])
        .env("SPFS_ROOT", &remote)
        .output()
        .unwrap())
    .0;
    let local = env.path("local");
    let (out, err) = ok(spfs(
        &env,
        &local,
        &remote,
        &["run", "org/hello", "--", "cat", "/spfs/hello.txt"],
    ));
    assert_eq!(out, "from the remote\n");
    assert!(err.contains("pulled org/hello from origin"), "{err}");
    let tags = ok(spfs(&env, &local, &remote, &["tags"])).0;
    assert!(tags.trim().is_empty(), "tags were copied: {tags}");
    let info = ok(spfs(&env, &local, &remote, &["info", layer.trim()])).0;
    assert!(info.contains("layer"), "{info}");
    // By digest, now local: nothing is pulled again.
    let (out, err) = ok(spfs(
        &env,
        &local,
        &remote,
        &["run", layer.trim(), "--", "cat", "/spfs/hello.txt"],
    ));
    assert_eq!(out, "from the remote\n");
    assert!(!err.contains("pulled"), "{err}");
    // A reference no remote has names the remotes asked.
    let out = spfs(&env, &local, &remote, &["run", "org/none", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("unknown reference 'org/none'")
            && err.contains("no configured remote has it either (origin)"),
        "{err}"
    );
}
