//! Archives (`spfs export`/`import`, `tar://` remotes) and `spfs check --repair`,
//! through the binary.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// spfs on `repo`, with no configuration files.
fn on(env: &Env, repo: &Path, args: &[&str]) -> Output {
    env.cmd(args)
        .env("SPFS_ROOT", repo)
        .env("XDG_CONFIG_HOME", env.path("no-config"))
        .env_remove("SPFS_CONFIG")
        .output()
        .unwrap()
}

fn ok(out: Output) -> (String, String) {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

fn failed(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.lines().any(|l| l.starts_with("error: ")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn payload(repo: &Path, content: &[u8]) -> PathBuf {
    let hex = blake3::hash(content).to_hex().to_string();
    repo.join("payloads").join(&hex[..2]).join(&hex[2..])
}

fn tag_names(env: &Env, repo: &Path) -> Vec<String> {
    let out = ok(on(env, repo, &["tags"])).0;
    out.lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn export_then_import_round_trips_and_a_truncated_archive_imports_nothing() {
    let env = Env::new();
    let tree = env.path("tree");
    sample_tree(&tree);
    env.commit(&tree, &["org/sample"]);
    let archive = env.path("out/sample.tar.zst");
    fs::create_dir_all(archive.parent().unwrap()).unwrap();
    let (out, err) = ok(env.run(&["export", "org/sample", "-o", archive.to_str().unwrap()]));
    assert!(out.contains("exported org/sample to"), "{out}");
    assert!(err.contains("1 tag(s)"), "{err}");
    // Only the finished archive beside it, no temporary.
    let beside: Vec<_> = fs::read_dir(archive.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("sample.tar.zst")]);

    let fresh = env.path("fresh");
    let (out, _) = ok(on(&env, &fresh, &["import", archive.to_str().unwrap()]));
    assert!(out.contains("imported"), "{out}");
    assert_eq!(tag_names(&env, &fresh), vec!["org/sample"]);
    let rendered = env.path("rendered");
    ok(on(
        &env,
        &fresh,
        &[
            "render",
            "org/sample",
            rendered.to_str().unwrap(),
            "--strategy",
            "copy",
        ],
    ));
    assert_same_tree(&tree, &rendered, 0o7777);
    ok(on(&env, &fresh, &["check"]));

    // Cut in the middle of the 3 MiB payload's compressed bytes.
    let bytes = fs::read(&archive).unwrap();
    let cut = env.path("cut.tar.zst");
    fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let other = env.path("other");
    ok(on(&env, &other, &["init", other.to_str().unwrap()]));
    let err = failed(on(&env, &other, &["import", cut.to_str().unwrap()]));
    assert!(
        err.contains("cut.tar.zst") && err.contains("truncated"),
        "{err}"
    );
    assert!(err.contains("\n  help: "), "{err}");
    assert!(tag_names(&env, &other).iter().all(|t| t.is_empty()));
    for area in ["objects", "payloads"] {
        let n = walk_files(&other.join(area));
        assert_eq!(n, 0, "{area} holds {n} file(s)");
    }
    assert_eq!(walk_files(&other.join("tmp")), 0);

    let err = failed(env.run(&["import", env.path("none.tar.zst").to_str().unwrap()]));
    assert!(err.contains("none.tar.zst"), "{err}");
}

fn walk_files(dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                walk_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn push_to_a_tar_remote_merges_and_pull_takes_only_the_named_closure() {
    let env = Env::new();
    let a = env.path("a");
    write(&a.join("f"), b"content of a\n", 0o644);
    env.commit(&a, &["org/a"]);
    let b = env.path("b");
    write(&b.join("g"), b"content of b\n", 0o755);
    env.commit(&b, &["org/b"]);
    let archive = env.path("remote.tar.zst");
    let addr = format!("tar://{}", archive.display());
    let (out, _) = ok(env.run(&["push", "org/a", "--remote", &addr]));
    assert!(out.contains(&format!("pushed org/a to {addr}")), "{out}");
    ok(env.run(&["push", "org/b", "--remote", &addr]));

    // A configured origin that is an archive.
    let fresh = env.path("fresh");
    let pull = |refs: &[&str]| {
        let mut args = vec!["pull"];
        args.extend_from_slice(refs);
        env.cmd(&args)
            .env("SPFS_ROOT", &fresh)
            .env("XDG_CONFIG_HOME", env.path("no-config"))
            .env_remove("SPFS_CONFIG")
            .env("SPFS_REMOTE_ORIGIN", &addr)
            .output()
            .unwrap()
    };
    let (out, _) = ok(pull(&["org/b"]));
    assert!(out.contains("pulled org/b from origin"), "{out}");
    assert_eq!(tag_names(&env, &fresh), vec!["org/b"]);
    assert!(!payload(&fresh, b"content of a\n").exists());
    let (out, _) = ok(on(&env, &fresh, &["read", "org/b", "g"]));
    assert_eq!(out, "content of b\n");
    // The first push survived the second.
    ok(pull(&["org/a"]));
    assert_eq!(tag_names(&env, &fresh), vec!["org/a", "org/b"]);
    ok(on(&env, &fresh, &["check"]));
    let err = failed(pull(&["org/none"]));
    assert!(err.contains("org/none"), "{err}");
}

#[test]
fn check_repair_restores_a_deleted_and_a_corrupt_payload_from_the_remote() {
    let env = Env::new();
    let tree = env.path("tree");
    write(&tree.join("one"), b"first payload\n", 0o644);
    write(&tree.join("two"), b"second payload\n", 0o644);
    write(&tree.join("three"), b"third payload\n", 0o644);
    env.commit(&tree, &["org/t"]);
    let remote = env.path("remote");
    let addr = format!("file://{}", remote.display());
    ok(env.run(&["push", "org/t", "--remote", &addr]));

    let gone = payload(&env.repo, b"first payload\n");
    fs::remove_file(&gone).unwrap();
    let rotten = payload(&env.repo, b"second payload\n");
    fs::set_permissions(&rotten, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&rotten, b"second PAYLOAD\n").unwrap();
    fs::set_permissions(&rotten, fs::Permissions::from_mode(0o444)).unwrap();
    failed(env.run(&["check"]));

    let (out, err) = ok(env.run(&["check", "--repair", "--remote", &addr]));
    assert_eq!(out.matches("repaired payload").count(), 2, "{out}");
    assert!(err.contains("0 problem(s) remain"), "{err}");
    ok(env.run(&["check"]));
    assert_eq!(env.ok(&["read", "org/t", "one"]), "first payload\n");
    assert_eq!(env.ok(&["read", "org/t", "two"]), "second payload\n");

    // What the remote does not hold either stays broken: exit 1, named.
    fs::remove_file(payload(&remote, b"third payload\n")).unwrap();
    let lost = payload(&env.repo, b"third payload\n");
    fs::remove_file(&lost).unwrap();
    let out = env.run(&["check", "--repair", "--remote", &addr]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let err = failed(out);
    let hex = blake3::hash(b"third payload\n").to_hex().to_string();
    assert!(
        stdout.contains(&format!("could not repair {hex}")),
        "{stdout}"
    );
    assert!(err.contains("still has 1 problem(s)"), "{err}");
}

#[test]
fn check_remote_verifies_a_file_remote_and_names_what_is_wrong() {
    let env = Env::new();
    let tree = env.path("tree");
    write(&tree.join("one"), b"first payload\n", 0o644);
    write(&tree.join("two"), b"second payload\n", 0o644);
    env.commit(&tree, &["org/t"]);
    let other = env.path("other");
    write(&other.join("o"), b"other payload\n", 0o644);
    let other_layer = env.commit(&other, &["org/other"]);
    let remote = env.path("remote");
    let addr = format!("file://{}", remote.display());
    ok(env.run(&["push", "org/t", "org/other", "--remote", &addr]));

    // A healthy remote: every object, payload and tag checked; exit 0.
    let (out, err) = ok(env.run(&["check", "--remote", &addr]));
    assert_eq!(out, "");
    // Two layers, two manifests; three payloads.
    assert!(
        err.contains("checked 4 objects and 3 payloads")
            && err.contains(&format!("in remote '{addr}'"))
            && err.contains("0 problem(s)"),
        "{err}"
    );
    // The closure of one reference only.
    let (_, err) = ok(env.run(&["check", "org/t", "--remote", &addr]));
    assert!(err.contains("checked 2 objects and 2 payloads"), "{err}");

    // A corrupt payload, and a tag whose layer is gone.
    let rotten = payload(&remote, b"second payload\n");
    fs::set_permissions(&rotten, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&rotten, b"second PAYLOAD\n").unwrap();
    let layer_file = remote
        .join("objects")
        .join(&other_layer[..2])
        .join(&other_layer[2..]);
    fs::remove_file(&layer_file).unwrap();
    let out = env.run(&["check", "--remote", &addr]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let err = failed(out);
    let rotten_hex = blake3::hash(b"second payload\n").to_hex().to_string();
    let expected_rotten = format!(
        "blob {rotten_hex}: corrupt: content hashes to {}",
        &blake3::hash(b"second PAYLOAD\n").to_hex()[..12]
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&expected_rotten) && l.ends_with("(reached by org/t)")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "object {other_layer}: missing (reached by org/other)"
        )),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        err.contains(&format!("\nerror: remote '{addr}' has 2 problem(s)")),
        "{err}"
    );
    // The local repository is not what was checked: it is fine.
    ok(env.run(&["check"]));

    let err = failed(env.run(&["check", "--remote", "tar:///nowhere/a.tar.zst"]));
    assert!(
        err.contains("is the archive /nowhere/a.tar.zst") && err.contains("spfs import"),
        "{err}"
    );
    let err = failed(env.run(&["check", "--remote", "nowhere"]));
    assert!(err.contains("no remote named 'nowhere'"), "{err}");
}

#[test]
fn run_pulls_from_a_tar_remote_only_the_closure_it_needs() {
    if !privileged("run_pulls_from_a_tar_remote_only_the_closure_it_needs") {
        return;
    }
    let env = Env::new();
    let tree = env.path("tree");
    write(&tree.join("hello.txt"), b"from the archive\n", 0o644);
    let hello = env.commit(&tree, &["org/hello"]);
    let other = env.path("other");
    write(&other.join("o.txt"), b"not wanted\n", 0o644);
    env.commit(&other, &["org/other"]);
    let archive = env.path("shared.tar.zst");
    ok(env.run(&[
        "export",
        "org/hello",
        "org/other",
        "-o",
        archive.to_str().unwrap(),
    ]));

    let local = env.path("local");
    let run = |args: &[&str]| {
        env.cmd(args)
            .env("SPFS_ROOT", &local)
            .env("XDG_CONFIG_HOME", env.path("no-config"))
            .env_remove("SPFS_CONFIG")
            .env("SPFS_REMOTE_ORIGIN", format!("tar://{}", archive.display()))
            .output()
            .unwrap()
    };
    let (out, err) = ok(run(&["run", "org/hello", "--", "cat", "/spfs/hello.txt"]));
    assert_eq!(out, "from the archive\n");
    assert!(err.contains("pulled org/hello from origin"), "{err}");
    // Only that closure arrived, and no tag.
    assert!(payload(&local, b"from the archive\n").is_file());
    assert!(!payload(&local, b"not wanted\n").exists());
    assert!(ok(run(&["tags"])).0.trim().is_empty());
    ok(run(&["check", &hello]));
    // A reference the archive lacks names the remote asked.
    let err = failed(run(&["run", "org/none", "--", "true"]));
    assert!(
        err.contains("no configured remote has it either (origin)"),
        "{err}"
    );
}

#[test]
fn check_repair_restores_from_a_tar_remote_in_one_pass() {
    let env = Env::new();
    let tree = env.path("tree");
    write(&tree.join("one"), b"first payload\n", 0o644);
    write(&tree.join("two"), b"second payload\n", 0o755);
    write(&tree.join("three"), b"third payload\n", 0o644);
    let layer = env.commit(&tree, &["org/t"]);
    let archive = env.path("backup.tar.zst");
    ok(env.run(&["export", "org/t", "-o", archive.to_str().unwrap()]));
    let addr = format!("tar://{}", archive.display());

    // A deleted payload, a corrupt one, and the layer's object gone.
    fs::remove_file(payload(&env.repo, b"first payload\n")).unwrap();
    let rotten = payload(&env.repo, b"second payload\n");
    fs::set_permissions(&rotten, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&rotten, b"second PAYLOAD\n").unwrap();
    let layer_file = env.repo.join("objects").join(&layer[..2]).join(&layer[2..]);
    fs::remove_file(&layer_file).unwrap();
    failed(env.run(&["check"]));

    let (out, err) = ok(env.run(&["check", "--repair", "--remote", &addr]));
    assert_eq!(out.matches("repaired payload").count(), 2, "{out}");
    assert_eq!(out.matches("repaired object").count(), 1, "{out}");
    assert!(err.contains("0 problem(s) remain"), "{err}");
    ok(env.run(&["check"]));
    assert_eq!(env.ok(&["read", "org/t", "one"]), "first payload\n");
    assert_eq!(env.ok(&["read", "org/t", "two"]), "second payload\n");
    // The restored payload has the mode of the committed file (without group/other
    // write bits).
    assert_eq!(
        fs::metadata(&rotten).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    let leftovers: Vec<_> = fs::read_dir(env.repo.join("tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // What the archive does not hold stays broken: exit 1, named.
    let other = env.path("other");
    write(&other.join("x"), b"never exported\n", 0o644);
    env.commit(&other, &["org/x"]);
    fs::remove_file(payload(&env.repo, b"never exported\n")).unwrap();
    let out = env.run(&["check", "--repair", "--remote", &addr]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let err = failed(out);
    let hex = blake3::hash(b"never exported\n").to_hex().to_string();
    assert!(
        stdout.contains(&format!("could not repair {hex}")),
        "{stdout}"
    );
    assert!(err.contains("still has 1 problem(s)"), "{err}");
}
