//! `spfs clean` through the binary: confirmation, reports, and safety under
//! concurrent writers.

mod common;

use std::fs;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn layer(env: &Env, name: &str, files: &[(&str, &str)]) -> String {
    let dir = env.path(name);
    for (f, content) in files {
        write(&dir.join(f), content.as_bytes(), 0o644);
    }
    env.commit(&dir, &[])
}

#[test]
fn clean_needs_confirmation_when_piped_and_reports_what_it_freed() {
    let env = Env::new();
    let tagged = layer(&env, "a", &[("f", "tagged content")]);
    env.ok(&["tag", &tagged, "org/kept"]);
    // 1000 bytes only the untagged layer holds.
    layer(&env, "b", &[("big", &"x".repeat(1000))]);
    let out = env
        .cmd(&["clean", "--grace", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("stdin is not a terminal"), "{stderr}");
    assert!(stderr.contains("pass -y"), "{stderr}");

    let dry = env.ok(&["clean", "--dry-run", "--grace", "0"]);
    assert!(
        dry.starts_with("would remove 2 object(s), 1 payload(s)"),
        "{dry}"
    );
    // The grace period protects the fresh commit.
    let young = env.ok(&["clean", "-y"]);
    assert!(
        young.starts_with("removed 0 object(s), 0 payload(s)"),
        "{young}"
    );

    let done = env.ok(&["clean", "-y", "--grace", "0"]);
    assert!(
        done.starts_with("removed 2 object(s), 1 payload(s)"),
        "{done}"
    );
    assert_eq!(env.ok(&["read", "org/kept", "f"]), "tagged content");
    env.ok(&["check"]);
    let bad = env.fails(&["clean", "-y", "--grace", "soon"]);
    assert!(bad.contains("'soon' is not a duration"), "{bad}");
}

#[test]
fn pruning_flags_drop_old_tag_versions_before_marking() {
    let env = Env::new();
    for i in 0..4 {
        let l = layer(&env, &format!("v{i}"), &[("f", &format!("version {i}"))]);
        env.ok(&["tag", &l, "org/t"]);
    }
    let out = env.ok(&["clean", "-y", "--grace", "0", "--prune-if-more-than", "2"]);
    assert!(out.contains("2 tag version(s)"), "{out}");
    assert!(
        out.starts_with("removed 4 object(s), 2 payload(s)"),
        "{out}"
    );
    assert_eq!(env.ok(&["log", "org/t"]).lines().count(), 2);
    assert_eq!(env.ok(&["read", "org/t~1", "f"]), "version 2");
    env.ok(&["check"]);
}

/// Committers re-committing content that clean is about to collect, taggers moving
/// and removing tags, and clean with no grace period at all, in parallel: afterwards
/// the repository checks clean and every tag resolves to readable content.
#[test]
fn concurrent_commits_tags_and_cleans_never_lose_what_a_tag_needs() {
    let env = Arc::new(Env::new());
    env.ok(&["init"]);
    let deadline = Instant::now() + Duration::from_secs(25);
    let stop = Arc::new(AtomicBool::new(false));
    let cleans = Arc::new(AtomicUsize::new(0));
    let commits = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for w in 0..3 {
        let (env, stop, commits) = (env.clone(), stop.clone(), commits.clone());
        threads.push(std::thread::spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                // Few distinct trees, so commits keep reusing content that was
                // untagged and is being collected.
                let k = round % 4;
                let dir = env.path(&format!("w{w}-{round}"));
                write(&dir.join("common"), b"shared by every tree", 0o644);
                write(&dir.join("set"), format!("set {k}").as_bytes(), 0o644);
                write(
                    &dir.join(format!("d{k}/own")),
                    format!("{w}").as_bytes(),
                    0o644,
                );
                env.commit(&dir, &[&format!("stress/w{w}")]);
                fs::remove_dir_all(&dir).unwrap();
                commits.fetch_add(1, Ordering::Relaxed);
                round += 1;
            }
        }));
    }
    {
        let (env, stop) = (env.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let src = format!("stress/w{}", round % 3);
                // Aliases come and go: what only they held becomes garbage.
                let _ = env.run(&["tag", &src, &format!("alias/a{}", round % 5)]);
                if round.is_multiple_of(3) {
                    let _ = env.run(&["untag", "--all", &format!("alias/a{}", (round + 2) % 5)]);
                    let _ = env.run(&["untag", "--all", &src]);
                }
                round += 1;
            }
        }));
    }
    {
        let (env, stop, cleans) = (env.clone(), stop.clone(), cleans.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                env.ok(&["clean", "-y", "--grace", "0"]);
                cleans.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while Instant::now() < deadline && !threads.iter().any(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a worker failed");
    }
    let (n_cleans, n_commits) = (
        cleans.load(Ordering::Relaxed),
        commits.load(Ordering::Relaxed),
    );
    assert!(
        n_cleans >= 5 && n_commits >= 20,
        "{n_cleans} cleans, {n_commits} commits"
    );
    env.ok(&["check"]);
    let tags = env.ok(&["tags"]);
    assert!(!tags.trim().is_empty());
    for line in tags.lines() {
        let t = line.split_whitespace().next().unwrap();
        let set = env.ok(&["read", t, "set"]);
        assert!(set.starts_with("set "), "{t}: {set}");
        assert_eq!(env.ok(&["read", t, "common"]), "shared by every tree");
    }
    // A final clean leaves only what the tags need, and still checks.
    env.ok(&["clean", "-y", "--grace", "0"]);
    env.ok(&["check"]);
    eprintln!("{n_cleans} cleans, {n_commits} commits");
}

#[test]
fn clean_remote_collects_a_file_remote_by_the_same_rules_and_refuses_s3() {
    let env = Env::new();
    let kept = layer(&env, "a", &[("f", "kept on the remote")]);
    env.ok(&["tag", &kept, "org/kept"]);
    let dropped = layer(&env, "b", &[("g", "dropped from the remote")]);
    env.ok(&["tag", &dropped, "org/dropped"]);
    let remote = env.path("shared");
    let addr = format!("file://{}", remote.display());
    env.ok(&["push", "org/kept", "org/dropped", "--remote", &addr]);
    let remote_payload = |content: &str| {
        let hex = blake3::hash(content.as_bytes()).to_hex().to_string();
        remote.join("payloads").join(&hex[..2]).join(&hex[2..])
    };
    // The remote drops a tag; what only it reached goes, after the grace period.
    env.ok(&[
        "--repo",
        remote.to_str().unwrap(),
        "untag",
        "--all",
        "org/dropped",
    ]);
    let out = env.ok(&["clean", "--remote", &addr, "-y"]);
    assert!(
        out.starts_with("removed 0 object(s), 0 payload(s)"),
        "{out}"
    );
    let dry = env.ok(&["clean", "--remote", &addr, "--dry-run", "--grace", "0"]);
    assert!(
        dry.starts_with("would remove 2 object(s), 1 payload(s)"),
        "{dry}"
    );
    assert!(remote_payload("dropped from the remote").exists());
    // Piped without -y it refuses, as a local clean does.
    let out = env
        .cmd(&["clean", "--remote", &addr, "--grace", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = env
        .cmd(&["clean", "--remote", &addr, "-y", "--grace", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("removed 2 object(s), 1 payload(s)"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("cleaned {} in", remote.display())),
        "{stderr}"
    );
    assert!(!remote_payload("dropped from the remote").exists());
    assert!(remote_payload("kept on the remote").exists());
    env.ok(&["check", "--remote", &addr]);
    // The local repository was not touched.
    env.ok(&["read", "org/dropped", "g"]);
    env.ok(&["check"]);

    let err = env.fails(&["clean", "--remote", "s3://bucket/prefix", "-y"]);
    assert!(err.contains("does not collect S3 remotes"), "{err}");
    let err = env.fails(&["clean", "--remote", "nowhere", "-y"]);
    assert!(err.contains("no remote named 'nowhere'"), "{err}");
}
