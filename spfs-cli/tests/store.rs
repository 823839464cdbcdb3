//! Committing, rendering, listing, reading and checking through the `spfs` binary.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;

#[test]
fn commit_then_copy_render_reproduces_the_tree_exactly() {
    let env = Env::new();
    let src = env.path("src");
    sample_tree(&src);
    env.commit(&src, &["test/sample"]);
    let out = env.path("out");
    env.ok(&[
        "render",
        "test/sample",
        out.to_str().unwrap(),
        "--strategy",
        "copy",
    ]);
    assert_same_tree(&src, &out, 0o7777);
}

#[test]
fn hardlink_render_shares_read_only_payloads() {
    let env = Env::new();
    let src = env.path("src");
    sample_tree(&src);
    env.commit(&src, &["test/sample"]);
    let out = env.path("out");
    env.ok(&["render", "test/sample", out.to_str().unwrap()]);
    // Same content and modes, minus write bits, which the store never hands out.
    assert_same_tree(&src, &out, 0o7555);
    let tool = fs::metadata(out.join("bin/tool")).unwrap();
    assert!(tool.nlink() >= 2, "render is not hard-linked to the store");
    // No file of the render is writable (the payloads of files committed with an
    // owner write bit carry it, so those are linked to read-only per-mode copies).
    let files = walk_files(&out);
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        let m = fs::symlink_metadata(f).unwrap();
        assert_eq!(m.mode() & 0o222, 0, "{} is writable", f.display());
        assert!(m.nlink() >= 2, "{} is not a hard link", f.display());
    }
    // Writing through the render is refused even to an ordinary user owning its files
    // (needs root to hand them over); the store is unchanged.
    if nix::unistd::geteuid().is_root() {
        chown_r(&out, 60125, 60125);
        fs::set_permissions(
            env.tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    for f in files.iter().filter(|_| nix::unistd::geteuid().is_root()) {
        let w = std::process::Command::new("setpriv")
            .args([
                "--reuid=60125",
                "--regid=60125",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .args([r#"echo changed >> "$1""#, "sh"])
            .arg(f)
            .output()
            .unwrap();
        assert!(!w.status.success(), "{} was writable", f.display());
    }
    env.ok(&["check"]);
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            out.extend(walk_files(&p));
        } else if m.is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn identical_content_is_stored_once() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..20 {
        write(&src.join(format!("d{}/f{i}", i % 4)), b"identical", 0o644);
    }
    write(&src.join("other"), b"different", 0o644);
    env.commit(&src, &[]);
    let payloads: usize = fs::read_dir(env.repo.join("payloads"))
        .unwrap()
        .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(payloads, 2);
}

#[test]
fn recommit_of_unchanged_tree_gives_same_digest() {
    let env = Env::new();
    let src = env.path("src");
    sample_tree(&src);
    let a = env.commit(&src, &[]);
    let b = env.commit(&src, &[]);
    assert_eq!(a, b);
    assert_eq!(a.len(), 64);
}

#[test]
fn special_files_are_refused_or_skipped() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("ok.txt"), b"ok", 0o644);
    nix::unistd::mkfifo(
        &src.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let err = env.fails(&["commit", "layer", "--path", src.to_str().unwrap()]);
    assert!(
        err.contains("pipe") && err.contains("fifo") && err.contains("--skip-special"),
        "{err}"
    );
    let out = env.run(&[
        "commit",
        "layer",
        "--path",
        src.to_str().unwrap(),
        "--skip-special",
        "-t",
        "t/skip",
    ]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("skipping fifo"), "{}", stderr(&out));
    let listing = env.ok(&["ls", "t/skip"]);
    assert_eq!(listing, "ok.txt\n");
}

#[test]
fn commit_platform_stacks_layers() {
    let env = Env::new();
    let (a, b) = (env.path("a"), env.path("b"));
    write(&a.join("shared"), b"from a", 0o644);
    write(&a.join("only-a"), b"a", 0o644);
    write(&b.join("shared"), b"from b", 0o644);
    env.commit(&a, &["layers/a"]);
    env.commit(&b, &["layers/b"]);
    let p = env.ok(&[
        "commit",
        "platform",
        "--ref",
        "layers/a+layers/b",
        "-t",
        "plat/ab",
    ]);
    let info = env.ok(&["info", "plat/ab"]);
    assert!(info.contains("kind:        platform"), "{info}");
    assert!(info.contains(p.trim()), "{info}");
    assert_eq!(env.ok(&["read", "plat/ab", "shared"]), "from b");
    assert_eq!(env.ok(&["read", "plat/ab", "only-a"]), "a");
    assert_eq!(env.ok(&["read", "layers/b+layers/a", "shared"]), "from a");
}

#[test]
fn ls_read_info_and_diff() {
    let env = Env::new();
    let src = env.path("src");
    sample_tree(&src);
    let layer = env.commit(&src, &["t/one"]);
    assert_eq!(env.ok(&["ls", "t/one", "etc"]), "config.yaml\nsecret\n");
    let long = env.ok(&["ls", "-l", "t/one", "bin"]);
    assert!(long.contains("-rwxr-xr-x"), "{long}");
    assert!(long.contains("config-link -> ../etc/config.yaml"), "{long}");
    let rec = env.ok(&["ls", "-R", "t/one", "lib"]);
    assert_eq!(rec, "a/\na/b/\na/b/c/\na/b/c/deep.txt\n");
    assert_eq!(
        env.ok(&["read", "t/one", "bin/tool"]),
        "#!/bin/sh\necho tool\n"
    );
    let info = env.ok(&["info", &layer[..10]]);
    assert!(info.contains("kind:        layer"), "{info}");
    assert!(info.contains("tags:        t/one"), "{info}");
    assert!(info.contains("manifest:"), "{info}");
    assert!(info.contains("files"), "{info}");

    // Change one file's content, one mode, add and remove files.
    write(&src.join("etc/config.yaml"), b"key: other\n", 0o644);
    fs::set_permissions(
        src.join("etc/secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    write(&src.join("new.txt"), b"new", 0o644);
    fs::remove_file(src.join("share/dup1")).unwrap();
    env.commit(&src, &["t/one"]);
    let d = env.ok(&["diff", "t/one~1", "t/one"]);
    assert!(d.contains("+ -rw-r--r-- new.txt"), "{d}");
    assert!(d.contains("- -rw-r--r-- share/dup1"), "{d}");
    assert!(
        d.contains("~ -rw------- -> -rw-r----- etc/secret (mode)"),
        "{d}"
    );
    assert!(d.contains("etc/config.yaml (content)"), "{d}");
    assert_eq!(d.lines().count(), 4, "{d}");
}

#[test]
fn check_reports_corrupt_and_missing_with_tags() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.txt"), b"alpha", 0o644);
    write(&src.join("b.txt"), b"bravo", 0o644);
    env.commit(&src, &["t/corrupt"]);
    env.ok(&["check"]);
    env.ok(&["check", "t/corrupt"]);
    let a = env.repo.join(format!(
        "payloads/{}",
        shard(&blake3::hash(b"alpha").to_hex())
    ));
    let b = env.repo.join(format!(
        "payloads/{}",
        shard(&blake3::hash(b"bravo").to_hex())
    ));
    // Truncate one payload, delete another.
    fs::set_permissions(&a, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&a, b"alp").unwrap();
    fs::remove_file(&b).unwrap();
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&blake3::hash(b"alpha").to_hex().to_string()),
        "{stdout}"
    );
    assert!(stdout.contains("corrupt"), "{stdout}");
    assert!(stdout.contains("missing"), "{stdout}");
    assert!(stdout.contains("reached by t/corrupt"), "{stdout}");
    // Reading the damaged file fails cleanly.
    let err = env.fails(&["render", "t/corrupt", env.path("r").to_str().unwrap()]);
    assert!(err.contains("missing") || err.contains("corrupt"), "{err}");
}

#[test]
fn corrupt_object_file_is_a_clear_error() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.txt"), b"alpha", 0o644);
    let layer = env.commit(&src, &["t/obj"]);
    let path = env.repo.join(format!("objects/{}", shard(&layer)));
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&path, b"SPFS garbage").unwrap();
    let err = env.fails(&["ls", "t/obj"]);
    assert!(
        err.contains("corrupt object") && err.contains(&layer),
        "{err}"
    );
    assert!(err.contains("spfs check"), "{err}");
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
}

fn shard(hex: &str) -> String {
    format!("{}/{}", &hex[..2], &hex[2..])
}
