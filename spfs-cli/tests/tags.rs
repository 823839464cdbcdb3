//! Tags, history and references through the `spfs` binary.

mod common;

use std::fs;
use std::process::Stdio;

use common::*;

fn layer(env: &Env, name: &str, content: &str) -> String {
    let dir = env.path(name);
    write(&dir.join("f"), content.as_bytes(), 0o644);
    env.commit(&dir, &[])
}

#[test]
fn tag_history_log_and_tilde_references() {
    let env = Env::new();
    let a = layer(&env, "a", "one");
    let b = layer(&env, "b", "two");
    let c = layer(&env, "c", "three");
    env.ok(&["tag", &a, "org/sub/name"]);
    env.ok(&["tag", &b[..8], "org/sub/name"]);
    env.ok(&["tag", &c, "org/sub/name", "org/other"]);
    assert_eq!(env.ok(&["read", "org/sub/name", "f"]), "three");
    assert_eq!(env.ok(&["read", "org/sub/name~1", "f"]), "two");
    assert_eq!(env.ok(&["read", "org/sub/name~2", "f"]), "one");
    let log = env.ok(&["log", "org/sub/name"]);
    let lines: Vec<_> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].starts_with(&format!("org/sub/name~0 {c}")),
        "{log}"
    );
    assert!(
        lines[2].starts_with(&format!("org/sub/name~2 {a}")),
        "{log}"
    );
    let err = env.fails(&["read", "org/sub/name~3", "f"]);
    assert!(err.contains("has 3 version(s)"), "{err}");
    // Retagging the same target adds no history.
    env.ok(&["tag", &c, "org/sub/name"]);
    assert_eq!(env.ok(&["log", "org/sub/name"]).lines().count(), 3);

    let tags = env.ok(&["tags"]);
    assert_eq!(tags.lines().count(), 2, "{tags}");
    let under = env.ok(&["tags", "org/sub"]);
    assert_eq!(under.lines().count(), 1);
    assert!(under.starts_with("org/sub/name "), "{under}");
}

#[test]
fn untag_one_version_or_all() {
    let env = Env::new();
    let a = layer(&env, "a", "one");
    let b = layer(&env, "b", "two");
    let c = layer(&env, "c", "three");
    for d in [&a, &b, &c] {
        env.ok(&["tag", d, "t/x"]);
    }
    env.ok(&["untag", "t/x~1"]);
    let log = env.ok(&["log", "t/x"]);
    assert!(!log.contains(&b), "{log}");
    assert_eq!(log.lines().count(), 2);
    env.ok(&["untag", "t/x"]);
    assert_eq!(env.ok(&["read", "t/x", "f"]), "one");
    env.ok(&["tag", &c, "t/x"]);
    env.ok(&["untag", "--all", "t/x"]);
    assert_eq!(env.ok(&["tags"]), "");
    let err = env.fails(&["log", "t/x"]);
    assert!(err.contains("unknown reference 't/x'"), "{err}");
    // The tags directory holds nothing for the removed namespace.
    assert!(!env.repo.join("tags/t").exists());
}

#[test]
fn invalid_tag_names_are_refused() {
    let env = Env::new();
    let a = layer(&env, "a", "one");
    for bad in ["a//b", "/abs", "a/.hidden", "sp ace", "til~de"] {
        let err = env.fails(&["tag", &a, bad]);
        assert!(
            err.contains("invalid tag name") || err.contains("invalid reference"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn concurrent_taggers_lose_no_update() {
    let env = Env::new();
    let digests: Vec<String> = (0..12)
        .map(|i| layer(&env, &format!("l{i}"), &format!("c{i}")))
        .collect();
    let children: Vec<_> = digests
        .iter()
        .map(|d| {
            env.cmd(&["tag", d, "race/tag"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let log = env.ok(&["log", "race/tag"]);
    assert_eq!(log.lines().count(), 12, "{log}");
    for d in &digests {
        assert!(log.contains(d.as_str()), "lost {d}");
    }
}

#[test]
fn concurrent_commits_of_overlapping_trees_both_succeed() {
    let env = Env::new();
    let (a, b) = (env.path("a"), env.path("b"));
    for i in 0..300 {
        let content = format!("shared content {i}").repeat(50);
        write(
            &a.join(format!("d{}/f{i}", i % 10)),
            content.as_bytes(),
            0o644,
        );
        write(
            &b.join(format!("e{}/g{i}", i % 7)),
            content.as_bytes(),
            0o644,
        );
        write(
            &b.join(format!("own{i}")),
            format!("b only {i}").as_bytes(),
            0o644,
        );
    }
    env.ok(&["init"]);
    let spawn = |dir: &std::path::Path, tag: &str| {
        env.cmd(&[
            "commit",
            "layer",
            "--path",
            dir.to_str().unwrap(),
            "-t",
            tag,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let procs = vec![
        spawn(&a, "c/a1"),
        spawn(&a, "c/a2"),
        spawn(&b, "c/b1"),
        spawn(&b, "c/b2"),
    ];
    for p in procs {
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    env.ok(&["check"]);
    assert_eq!(
        env.ok(&["info", "c/a1"]).lines().next(),
        env.ok(&["info", "c/a2"]).lines().next()
    );
    let out = env.path("out");
    env.ok(&[
        "render",
        "c/b2",
        out.to_str().unwrap(),
        "--strategy",
        "copy",
    ]);
    assert_same_tree(&b, &out, 0o7777);
    // Nothing is left half-written.
    assert_eq!(fs::read_dir(env.repo.join("tmp")).unwrap().count(), 0);
}

/// Takes the tag's lock the way another spfs process updating it would.
fn hold_tag_lock(env: &Env, name: &str) -> fs::File {
    use std::os::fd::AsRawFd;
    let path = env.repo.join("tags").join(format!("{name}.tag.lock"));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    f
}

/// Waits for a child to exit, failing after `secs` seconds.
fn wait_bounded(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed().as_secs() >= secs {
            let _ = child.kill();
            panic!("spfs did not exit within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_tag_waiting_for_a_held_lock_obeys_signals_and_writes_nothing() {
    let env = Env::new();
    let a = layer(&env, "a", "one");
    let b = layer(&env, "b", "two");
    env.ok(&["tag", &a, "org/held", "org/free"]);
    let held = env.repo.join("tags/org/held.tag");
    let free = env.repo.join("tags/org/free.tag");
    let (held_before, free_before) = (fs::read(&held).unwrap(), fs::read(&free).unwrap());
    for (sig, code) in [
        (nix::sys::signal::Signal::SIGTERM, 143),
        (nix::sys::signal::Signal::SIGINT, 130),
    ] {
        let lock = hold_tag_lock(&env, "org/held");
        // Two tags: `org/free` is not held, yet must not be written either.
        let mut child = env
            .cmd(&["tag", &b, "org/free", "org/held"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(child.try_wait().unwrap().is_none(), "spfs tag did not wait");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let status = wait_bounded(&mut child, 10);
        let out = child.wait_with_output().unwrap();
        assert_eq!(status.code(), Some(code), "{sig}: {}", stderr(&out));
        assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
        drop(lock);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(fs::read(&held).unwrap(), held_before, "{sig}: tag written");
        assert_eq!(fs::read(&free).unwrap(), free_before, "{sig}: tag written");
    }
    assert_eq!(env.ok(&["read", "org/held", "f"]), "one");
    // Without a signal the wait ends when the lock is released, and both are written.
    let lock = hold_tag_lock(&env, "org/held");
    let mut child = env
        .cmd(&["tag", &b, "org/free", "org/held"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "spfs tag did not wait");
    drop(lock);
    assert!(wait_bounded(&mut child, 10).success());
    assert_eq!(env.ok(&["read", "org/held", "f"]), "two");
    assert_eq!(env.ok(&["read", "org/free", "f"]), "two");
}
