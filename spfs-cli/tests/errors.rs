//! Bad input: each case gives a one-line error naming the thing and the fix, a
//! non-zero exit, no panic, and leaves the repository valid.

mod common;

use std::fs;
use std::process::Stdio;

use common::*;

#[test]
fn unknown_reference() {
    let env = Env::new();
    env.ok(&["init"]);
    let err = env.fails(&["ls", "no/such/tag"]);
    assert_eq!(
        err,
        "error: unknown reference 'no/such/tag': no tag or object matches\n  help: list tags with 'spfs tags'\n"
    );
    let err = env.fails(&["info", &"ab".repeat(32)]);
    assert!(err.contains("unknown reference"), "{err}");
    assert_eq!(err.lines().count(), 2, "one error line and one hint: {err}");
}

#[test]
fn ambiguous_and_short_prefixes() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"x", 0o644);
    let layer = env.commit(&src, &[]);
    // Plant a second object sharing the first 10 characters.
    let shard = env.repo.join("objects").join(&layer[..2]);
    let twin = format!("{}{}", &layer[2..10], "0".repeat(54));
    fs::write(shard.join(&twin), b"x").unwrap();
    let err = env.fails(&["info", &layer[..8]]);
    assert!(
        err.contains("ambiguous reference") && err.contains("more characters"),
        "{err}"
    );
    env.ok(&["info", &layer[..20]]);
    let err = env.fails(&["info", &layer[..4]]);
    assert!(err.contains("at least 6"), "{err}");
}

#[test]
fn missing_repository_for_read_commands_created_for_writes() {
    let env = Env::new();
    let err = env.fails(&["tags"]);
    assert!(
        err.contains("no spfs repository") && err.contains("spfs init"),
        "{err}"
    );
    assert!(!env.repo.exists());
    let src = env.path("src");
    write(&src.join("f"), b"x", 0o644);
    env.commit(&src, &["first/use"]);
    assert!(env.repo.join("VERSION").exists());
    // --repo wins over SPFS_ROOT.
    let other = env.path("other");
    let out = env
        .cmd(&["--repo", other.to_str().unwrap(), "init"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(fs::read_to_string(other.join("VERSION")).unwrap(), "1\n");
    let err = env.fails(&["--repo", other.to_str().unwrap(), "ls", "first/use"]);
    assert!(err.contains("unknown reference"), "{err}");
}

#[test]
fn newer_repository_format_is_refused() {
    let env = Env::new();
    env.ok(&["init"]);
    fs::write(env.repo.join("VERSION"), "99\n").unwrap();
    let err = env.fails(&["tags"]);
    assert!(err.contains("format version 99"), "{err}");
}

#[test]
fn bad_commit_inputs() {
    let env = Env::new();
    let err = env.fails(&[
        "commit",
        "layer",
        "--path",
        env.path("nope").to_str().unwrap(),
    ]);
    assert!(err.contains("nope"), "{err}");
    let file = env.path("file");
    fs::write(&file, b"x").unwrap();
    let err = env.fails(&["commit", "layer", "--path", file.to_str().unwrap()]);
    assert!(err.contains("not a directory"), "{err}");
    let err = env.fails(&["commit", "platform", "--ref", "-", "-t", "p/x"]);
    assert!(err.contains("at least one layer"), "{err}");
    let err = env.fails(&["read", "-", "x"]);
    assert!(err.contains("no such path"), "{err}");
}

#[test]
fn unreadable_source_file_is_named() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("readable"), b"ok", 0o644);
    write(&src.join("locked"), b"secret", 0o000);
    env.ok(&["init"]);
    // Root reads anything, so drop to an unprivileged user where needed.
    let mut cmd = if nix::unistd::geteuid().is_root() {
        chmod_r(env.tmp.path(), 0o777);
        fs::set_permissions(
            src.join("locked"),
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", SPFS]);
        c
    } else {
        std::process::Command::new(SPFS)
    };
    let out = cmd
        .args(["commit", "layer", "--path", src.to_str().unwrap()])
        .env("SPFS_ROOT", &env.repo)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("locked") && err.contains("ermission denied"),
        "{err}"
    );
    env.ok(&["check"]);
}

#[test]
fn disk_full_keeps_repository_valid() {
    if !privileged("disk_full_keeps_repository_valid") {
        return;
    }
    let env = Env::new();
    let mnt = env.path("small");
    fs::create_dir(&mnt).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=2m"),
    )
    .unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _guard = Unmount(mnt.clone());
    let repo = mnt.join("repo");
    let small = env.path("small-src");
    write(&small.join("a"), b"fits", 0o644);
    let big = env.path("big-src");
    for i in 0..4 {
        write(
            &big.join(format!("f{i}")),
            &vec![i as u8 + 1; 1 << 20],
            0o644,
        );
    }
    let run = |args: &[&str]| env.cmd(args).env("SPFS_ROOT", &repo).output().unwrap();
    assert!(run(&[
        "commit",
        "layer",
        "--path",
        small.to_str().unwrap(),
        "-t",
        "ok/small"
    ])
    .status
    .success());
    let out = run(&[
        "commit",
        "layer",
        "--path",
        big.to_str().unwrap(),
        "-t",
        "too/big",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("disk is full") && err.contains("free space"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    // The repository is as valid as before, and holds no partial files.
    assert!(run(&["check"]).status.success());
    assert_eq!(fs::read_dir(repo.join("tmp")).unwrap().count(), 0);
    assert!(!run(&["tags"]).stdout.is_empty());
    let tags = String::from_utf8(run(&["tags"]).stdout).unwrap();
    assert!(
        tags.contains("ok/small") && !tags.contains("too/big"),
        "{tags}"
    );
}

#[test]
fn interrupt_during_commit_leaves_no_partial_object() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // Large sparse files: cheap to create, slow enough to commit to interrupt midway.
    for i in 0..3u8 {
        let f = fs::File::create(src.join(format!("big{i}"))).unwrap();
        f.set_len(768 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_at(&[i + 1], 0).unwrap();
    }
    env.ok(&["init"]);
    let mut child = env
        .cmd(&[
            "commit",
            "layer",
            "--path",
            src.to_str().unwrap(),
            "-t",
            "never/tagged",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until a payload is being copied into tmp/, then interrupt.
    let tmp = env.repo.join("tmp");
    wait_until("commit starts copying", 60, || {
        fs::read_dir(&tmp).unwrap().count() > 0
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "temporary files left behind"
    );
    assert_eq!(env.ok(&["tags"]), "");
    env.ok(&["check"]);
}

#[test]
fn progress_only_on_a_terminal_and_tracing_on_request() {
    let env = Env::new();
    let src = env.path("src");
    sample_tree(&src);
    env.ok(&["init"]);
    // Piped: no progress drawing.
    let out = env.run(&["commit", "layer", "--path", src.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!err.contains('\r') && !err.contains("\x1b["), "{err:?}");
    // On a terminal (through script(1)): the progress line appears.
    let cmdline = format!(
        "SPFS_ROOT={} {SPFS} commit layer --path {}",
        env.repo.display(),
        src.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("committing") || tty.contains("committed layer"),
        "{tty}"
    );
    // -vv and RUST_LOG give tracing detail.
    let out = env.run(&["-vv", "commit", "layer", "--path", src.to_str().unwrap()]);
    assert!(stderr(&out).contains("DEBUG"), "{}", stderr(&out));
    let out = env
        .cmd(&["commit", "layer", "--path", src.to_str().unwrap()])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(stderr(&out).contains("DEBUG"), "{}", stderr(&out));
}

/// Bytes in use on the filesystem holding `path`.
fn used_bytes(path: &std::path::Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(path).unwrap();
    (s.blocks() - s.blocks_free()) as u64 * s.fragment_size() as u64
}

/// Files under `dir`, recursively.
fn count_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            n += count_files(&e.path());
        } else {
            n += 1;
        }
    }
    n
}

#[test]
fn failed_commit_on_a_full_disk_keeps_nothing_it_wrote() {
    if !privileged("failed_commit_on_a_full_disk_keeps_nothing_it_wrote") {
        return;
    }
    let env = Env::new();
    let mnt = env.path("small");
    fs::create_dir(&mnt).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=20m"),
    )
    .unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _guard = Unmount(mnt.clone());
    let repo = mnt.join("repo");
    let run = |args: &[&str]| env.cmd(args).env("SPFS_ROOT", &repo).output().unwrap();
    // 50 MiB of distinct content: ten 5 MiB files.
    let big = env.path("big-src");
    for i in 0..10u8 {
        let content: Vec<u8> = (0..5u32 << 20)
            .map(|j| (j % 253) as u8 ^ i.wrapping_mul(37))
            .collect();
        write(&big.join(format!("f{i}")), &content, 0o644);
    }
    let small = env.path("small-src");
    write(&small.join("a"), b"fits", 0o644);
    assert!(run(&[
        "commit",
        "layer",
        "--path",
        small.to_str().unwrap(),
        "-t",
        "ok/small"
    ])
    .status
    .success());
    let payloads_before = count_files(&repo.join("payloads"));
    let used_before = used_bytes(&mnt);
    // Retried: a leak would grow with each attempt.
    for attempt in 0..3 {
        let out = run(&[
            "commit",
            "layer",
            "--path",
            big.to_str().unwrap(),
            "-t",
            "too/big",
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "attempt {attempt}: {err}");
        assert!(
            err.contains("disk is full") && err.contains("nothing this commit wrote was kept"),
            "attempt {attempt}: {err}"
        );
        assert_eq!(
            count_files(&repo.join("payloads")),
            payloads_before,
            "attempt {attempt}: payloads of the failed commit were kept"
        );
        assert_eq!(fs::read_dir(repo.join("tmp")).unwrap().count(), 0);
        let used = used_bytes(&mnt);
        assert!(
            used <= used_before + (256 << 10),
            "attempt {attempt}: {} bytes still used after the failed commit",
            used - used_before
        );
    }
    // The space is really free: a 15 MiB commit fits now (it would not next to 19 MiB
    // of leftovers).
    let medium = env.path("medium-src");
    for i in 0..3u8 {
        write(&medium.join(format!("m{i}")), &vec![i + 1; 5 << 20], 0o644);
    }
    let out = run(&[
        "commit",
        "layer",
        "--path",
        medium.to_str().unwrap(),
        "-t",
        "ok/medium",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run(&["check"]).status.success());
    let tags = String::from_utf8(run(&["tags"]).stdout).unwrap();
    let names: Vec<_> = tags.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["ok/medium", "ok/small"], "{tags}");
}

#[test]
fn a_commit_failing_while_publishing_says_exactly_what_remains() {
    let env = Env::new();
    let src = env.path("src");
    let contents: Vec<Vec<u8>> = (0..6u8).map(|i| vec![b'a' + i; 100]).collect();
    for (i, c) in contents.iter().enumerate() {
        write(&src.join(format!("f{i}")), c, 0o644);
    }
    env.ok(&["init"]);
    // A file where the shard directory of one payload belongs: its rename fails.
    let blocked = blake3::hash(&contents[3]).to_hex().to_string();
    fs::write(env.repo.join("payloads").join(&blocked[..2]), b"in the way").unwrap();
    let before = count_files(&env.repo.join("payloads")) + count_files(&env.repo.join("objects"));
    let err = env.fails(&[
        "commit",
        "layer",
        "--path",
        src.to_str().unwrap(),
        "-t",
        "t/x",
    ]);
    let after = count_files(&env.repo.join("payloads")) + count_files(&env.repo.join("objects"));
    assert!(err.contains(&blocked[..2]), "{err}");
    let kept = after - before;
    eprintln!("{kept} kept: {err}");
    if kept == 0 {
        assert!(err.contains("nothing this commit wrote was kept"), "{err}");
    } else {
        assert!(
            err.contains(&format!("{kept} file(s) ({} bytes)", kept * 100))
                && err.contains("spfs clean"),
            "{kept} kept: {err}"
        );
    }
    assert_eq!(fs::read_dir(env.repo.join("tmp")).unwrap().count(), 0);
    assert_eq!(env.ok(&["tags"]), "");
}
