//! The s3:// remote against a real S3 server (Ceph radosgw, started by
//! scripts/s3-server/start.sh; `.ci/run` starts it). Raw S3 requests (listing keys,
//! corrupting one, reading an ETag) go through curl, independently of spfs.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use spfs::storage::s3::{S3Location, S3Repository, MULTIPART_THRESHOLD, PART_SIZE};
use spfs::storage::{PayloadStore, TagStore};
use spfs::Digest;

const BUCKET: &str = "spfs-test";

/// The S3 server's endpoint, or `None` after printing why the test is skipped.
/// Under CI the server must be there.
fn endpoint(test: &str) -> Option<String> {
    match std::env::var("SPFS_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            let msg = format!(
                "SKIPPED {test}: no S3 server (set SPFS_TEST_S3_ENDPOINT; scripts/s3-server/start.sh starts one)"
            );
            if std::env::var_os("CI").is_some() {
                panic!("{msg}: CI must run the S3 tests");
            }
            println!("{msg}");
            None
        }
    }
}

/// A prefix no other test (or earlier run) uses.
fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{test}-{}-{nanos}", std::process::id())
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// spfs on `repo` with the S3 server's settings and no configuration files.
fn spfs(env: &Env, endpoint: &str, repo: &Path, args: &[&str]) -> Command {
    let mut c = env.cmd(args);
    c.env("SPFS_ROOT", repo)
        .env("XDG_CONFIG_HOME", env.path("no-config"))
        .env_remove("SPFS_CONFIG")
        .env("AWS_ENDPOINT_URL", endpoint);
    c
}

fn ok(out: Output) -> (String, String) {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

/// A raw S3 request with curl (SigV4); returns (status line + headers, body).
fn curl(endpoint: &str, method: &str, key: &str, body: Option<&[u8]>) -> (String, Vec<u8>) {
    let region = var("AWS_REGION", "us-east-1");
    let user = format!(
        "{}:{}",
        var("AWS_ACCESS_KEY_ID", ""),
        var("AWS_SECRET_ACCESS_KEY", "")
    );
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let mut c = Command::new("curl");
    c.args(["-sS", "-X", method, "--aws-sigv4"])
        .arg(format!("aws:amz:{region}:s3"))
        .args([
            "--user",
            &user,
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        ])
        .arg("-D")
        .arg(&headers)
        .arg(format!("{endpoint}/{BUCKET}/{key}"));
    if method == "HEAD" {
        c.arg("-I");
    }
    if let Some(b) = body {
        let f = dir.path().join("body");
        std::fs::write(&f, b).unwrap();
        c.arg("--data-binary").arg(format!("@{}", f.display()));
    }
    let out = c.output().expect("curl runs");
    assert!(out.status.success(), "curl: {}", stderr(&out));
    (std::fs::read_to_string(&headers).unwrap(), out.stdout)
}

/// Every key under `prefix/` in the test bucket, through a raw ListObjects.
fn list_keys(endpoint: &str, prefix: &str) -> Vec<String> {
    let query = format!("?prefix={}%2F", prefix.replace('/', "%2F"));
    let (head, body) = curl(endpoint, "GET", &query, None);
    let xml = String::from_utf8(body).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}{xml}");
    assert!(
        !xml.contains("<IsTruncated>true"),
        "listing truncated: {xml}"
    );
    xml.split("<Key>")
        .skip(1)
        .map(|s| s.split("</Key>").next().unwrap().to_string())
        .collect()
}

fn repo(endpoint: &str, prefix: &str) -> S3Repository {
    S3Repository::open(
        &S3Location {
            bucket: BUCKET.into(),
            prefix: prefix.into(),
            endpoint: Some(endpoint.into()),
            region: None,
        },
        true,
    )
    .unwrap()
}

#[test]
fn push_then_pull_through_s3_round_trips_and_skips_what_is_there() {
    let Some(ep) = endpoint("push_then_pull_through_s3_round_trips_and_skips_what_is_there") else {
        return;
    };
    let env = Env::new();
    let tree = env.path("tree");
    sample_tree(&tree);
    env.commit(&tree, &["org/sample"]);
    let prefix = unique_prefix("roundtrip");
    let addr = format!("s3://{BUCKET}/{prefix}");

    let (out, err) = ok(spfs(
        &env,
        &ep,
        &env.repo,
        &["push", "org/sample", "--remote", &addr],
    )
    .output()
    .unwrap());
    assert!(out.contains("pushed org/sample"), "{out}");
    assert!(
        err.contains("2 object(s)") && err.contains("1 tag(s)"),
        "{err}"
    );
    // The documented layout, seen by a plain S3 client.
    let keys = list_keys(&ep, &prefix);
    assert!(keys.contains(&format!("{prefix}/VERSION")), "{keys:?}");
    assert!(
        keys.contains(&format!("{prefix}/tags/org/sample/.00000000000000000000")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("{prefix}/payloads/"))),
        "{keys:?}"
    );

    // Nothing new: nothing sent.
    let (_, err) = ok(spfs(
        &env,
        &ep,
        &env.repo,
        &["push", "org/sample", "--remote", &addr],
    )
    .output()
    .unwrap());
    assert!(err.contains("0 object(s), 0 payload(s), 0 B"), "{err}");
    assert!(err.contains("0 tag(s)"), "{err}");
    // A new layer sharing all but one file with it: only that file's content goes up
    // (the others are found on the server).
    let grown = env.path("grown");
    sample_tree(&grown);
    write(&grown.join("new.txt"), b"only in the grown tree\n", 0o644);
    env.commit(&grown, &["org/grown"]);
    let (_, err) = ok(spfs(
        &env,
        &ep,
        &env.repo,
        &["push", "org/grown", "--remote", &addr],
    )
    .output()
    .unwrap());
    assert!(err.contains("2 object(s), 1 payload(s)"), "{err}");

    // Pull into an empty repository from the configured origin.
    let fresh = env.path("fresh");
    let (out, _) = ok(spfs(&env, &ep, &fresh, &["pull", "org/sample"])
        .env("SPFS_REMOTE_ORIGIN", &addr)
        .output()
        .unwrap());
    assert!(out.contains("pulled org/sample from origin"), "{out}");
    let rendered = env.path("rendered");
    ok(spfs(
        &env,
        &ep,
        &fresh,
        &[
            "render",
            "org/sample",
            rendered.to_str().unwrap(),
            "--strategy",
            "copy",
        ],
    )
    .output()
    .unwrap());
    assert_same_tree(&tree, &rendered, 0o7777);
    ok(spfs(&env, &ep, &fresh, &["check"]).output().unwrap());

    // A sibling prefix that starts with the same characters is another repository.
    let sibling = format!("{prefix}x");
    let other = env.path("other");
    write(&other.join("f"), b"other", 0o644);
    env.commit(&other, &["org/other"]);
    ok(spfs(
        &env,
        &ep,
        &env.repo,
        &[
            "push",
            "org/other",
            "--remote",
            &format!("s3://{BUCKET}/{sibling}"),
        ],
    )
    .output()
    .unwrap());
    let ours = repo(&ep, &prefix);
    assert_eq!(
        ours.list_tag_names("").unwrap(),
        vec!["org/grown", "org/sample"]
    );
    assert_eq!(
        ours.list_tag_names("org/sample").unwrap(),
        vec!["org/sample"]
    );
    assert_eq!(
        ours.list_tag_names("or").unwrap(),
        vec!["org/grown", "org/sample"]
    );
    assert!(ours.list_tag_names("org/samp").unwrap().is_empty());
    assert_eq!(
        repo(&ep, &sibling).list_tag_names("").unwrap(),
        vec!["org/other"]
    );
    let out = spfs(&env, &ep, &fresh, &["pull", "org/other", "--remote", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown reference 'org/other'"),
        "{}",
        stderr(&out)
    );

    // A prefix holding no repository is not one.
    let out = spfs(
        &env,
        &ep,
        &fresh,
        &[
            "pull",
            "org/sample",
            "--remote",
            &format!("s3://{BUCKET}/{prefix}-none"),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: opening s3://{BUCKET}/{prefix}-none: no spfs repository there"
        )),
        "{err}"
    );
    assert!(err.contains("help: "), "{err}");
}

#[test]
fn a_corrupt_payload_on_the_server_is_refused_on_pull() {
    let Some(ep) = endpoint("a_corrupt_payload_on_the_server_is_refused_on_pull") else {
        return;
    };
    let env = Env::new();
    let tree = env.path("tree");
    write(&tree.join("a.txt"), b"precious content\n", 0o644);
    write(&tree.join("b.txt"), b"other content\n", 0o644);
    env.commit(&tree, &["org/c"]);
    let prefix = unique_prefix("corrupt");
    let addr = format!("s3://{BUCKET}/{prefix}");
    ok(
        spfs(&env, &ep, &env.repo, &["push", "org/c", "--remote", &addr])
            .output()
            .unwrap(),
    );

    // Replace one payload's bytes on the server behind spfs's back.
    let digest = blake3::hash(b"precious content\n").to_hex().to_string();
    let key = format!("{prefix}/payloads/{digest}");
    let (head, _) = curl(&ep, "PUT", &key, Some(b"tampered content\n"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let fresh = env.path("fresh");
    let out = spfs(&env, &ep, &fresh, &["pull", "org/c", "--remote", &addr])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!(
            "error: corrupt payload {digest} at {addr}: arrived hashing to"
        )),
        "{err}"
    );
    // Nothing of it was stored, and the tag was not set.
    let payload = fresh.join("payloads").join(&digest[..2]).join(&digest[2..]);
    assert!(!payload.exists());
    let out = spfs(&env, &ep, &fresh, &["tags"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("org/c"));
}

#[test]
fn concurrent_pushers_to_one_tag_keep_every_version() {
    let Some(ep) = endpoint("concurrent_pushers_to_one_tag_keep_every_version") else {
        return;
    };
    let env = Env::new();
    let prefix = unique_prefix("race");
    let addr = format!("s3://{BUCKET}/{prefix}");
    const PUSHERS: usize = 6;
    // Each pusher has its own repository whose 'race/tag' points at another layer.
    let mut layers = BTreeSet::new();
    let mut repos = Vec::new();
    for i in 0..PUSHERS {
        let r = env.path(&format!("repo{i}"));
        let tree = env.path(&format!("tree{i}"));
        write(&tree.join("who"), format!("pusher {i}\n").as_bytes(), 0o644);
        let layer = String::from_utf8(
            spfs(
                &env,
                &ep,
                &r,
                &[
                    "commit",
                    "layer",
                    "--path",
                    tree.to_str().unwrap(),
                    "-t",
                    "race/tag",
                ],
            )
            .output()
            .unwrap()
            .stdout,
        )
        .unwrap()
        .trim()
        .to_string();
        assert_eq!(layer.len(), 64, "{layer}");
        layers.insert(layer);
        repos.push(r);
    }
    let children: Vec<_> = repos
        .iter()
        .map(|r| {
            spfs(&env, &ep, r, &["push", "race/tag", "--remote", &addr])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        ok(c.wait_with_output().unwrap());
    }
    let remote = repo(&ep, &prefix);
    let history = remote.tag_versions("race/tag").unwrap();
    let targets: BTreeSet<String> = history.iter().map(|e| e.target.to_string()).collect();
    assert_eq!(history.len(), PUSHERS, "{history:?}");
    assert_eq!(targets, layers);
    // One key per version, numbered without gaps.
    let keys = list_keys(&ep, &format!("{prefix}/tags/race/tag"));
    let expected: Vec<String> = (0..PUSHERS)
        .map(|n| format!("{prefix}/tags/race/tag/.{n:020}"))
        .collect();
    assert_eq!(keys, expected);
    // The current version is readable and pulls.
    let fresh = env.path("fresh");
    ok(
        spfs(&env, &ep, &fresh, &["pull", "race/tag", "--remote", &addr])
            .output()
            .unwrap(),
    );
    let local = spfs::storage::LocalRepository::open(&fresh).unwrap();
    assert_eq!(
        local.resolve_tag("race/tag").unwrap(),
        Some(history[0].target)
    );

    // Many writers on many threads, each with its own connection pool, racing on one
    // tag: every write lands as its own version.
    const THREADS: usize = 8;
    const ROUNDS: usize = 5;
    let target = history[0].target;
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let r = repo(&ep, &prefix);
                for _ in 0..ROUNDS {
                    r.set_tags(&[("race/many".to_string(), target)]).unwrap();
                }
            });
        }
    });
    assert_eq!(
        remote.tag_versions("race/many").unwrap().len(),
        THREADS * ROUNDS
    );
}

/// Deterministic bytes that do not compress or repeat.
fn noise(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = blake3::hash(b"seed");
    while out.len() < len {
        out.extend_from_slice(block.as_bytes());
        block = blake3::hash(block.as_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_large_payload_goes_up_in_parts_and_only_when_it_hashes_right() {
    let Some(ep) = endpoint("a_large_payload_goes_up_in_parts_and_only_when_it_hashes_right")
    else {
        return;
    };
    let env = Env::new();
    let tree = env.path("tree");
    let len = MULTIPART_THRESHOLD + 2 * PART_SIZE + 12345;
    let content = noise(len);
    write(&tree.join("big.bin"), &content, 0o755);
    env.commit(&tree, &["org/big"]);
    let prefix = unique_prefix("big");
    let addr = format!("s3://{BUCKET}/{prefix}");
    ok(spfs(
        &env,
        &ep,
        &env.repo,
        &["push", "org/big", "--remote", &addr],
    )
    .output()
    .unwrap());
    // S3 gives a multipart object the ETag "<md5 of the parts' md5s>-<parts>".
    let digest = blake3::hash(&content).to_hex().to_string();
    let (head, _) = curl(&ep, "HEAD", &format!("{prefix}/payloads/{digest}"), None);
    let parts = len.div_ceil(PART_SIZE);
    let etag = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("etag:"))
        .unwrap_or_else(|| panic!("no ETag: {head}"));
    assert!(etag.trim_end().ends_with(&format!("-{parts}\"")), "{etag}");
    assert!(head.contains(&format!("{len}")), "{head}");

    let fresh = env.path("fresh");
    ok(
        spfs(&env, &ep, &fresh, &["pull", "org/big", "--remote", &addr])
            .output()
            .unwrap(),
    );
    let rendered = env.path("rendered");
    ok(spfs(
        &env,
        &ep,
        &fresh,
        &[
            "render",
            "org/big",
            rendered.to_str().unwrap(),
            "--strategy",
            "copy",
        ],
    )
    .output()
    .unwrap());
    assert_same_tree(&tree, &rendered, 0o7777);

    // Content that does not hash to the digest it is sent as: the upload is
    // abandoned and no key appears.
    let remote = repo(&ep, &prefix);
    let wrong = Digest::of(b"something else");
    let err = remote
        .write_payload_stream(&wrong, &mut &content[..], 0o644)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("corrupt payload {wrong} at {addr}/payloads/")),
        "{err}"
    );
    assert!(!remote.has_payload(&wrong).unwrap());
    let keys = list_keys(&ep, &prefix);
    assert!(
        !keys.iter().any(|k| k.contains(&wrong.to_string())),
        "{keys:?}"
    );
}

#[test]
fn an_unreachable_endpoint_fails_with_what_to_check() {
    // No server needed: nothing listens on port 9.
    let env = Env::new();
    let tree = env.path("tree");
    write(&tree.join("f"), b"x", 0o644);
    env.commit(&tree, &["org/x"]);
    let out = spfs(
        &env,
        "http://127.0.0.1:9",
        &env.repo,
        &["push", "org/x", "--remote", "s3://nowhere/p"],
    )
    .env("AWS_ACCESS_KEY_ID", "AKIDUNREACHABLE")
    .env("AWS_SECRET_ACCESS_KEY", "unreachable")
    .env("AWS_REGION", "us-east-1")
    .output()
    .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: opening s3://nowhere/p: "), "{err}");
    assert!(
        err.contains("help: check that the S3 endpoint is reachable"),
        "{err}"
    );
}

#[test]
fn a_fuse_runtime_reads_payloads_from_s3_on_first_open() {
    let test = "a_fuse_runtime_reads_payloads_from_s3_on_first_open";
    let Some(ep) = endpoint(test) else {
        return;
    };
    if !privileged(test) {
        return;
    }
    let env = Env::new();
    let tree = env.path("tree");
    write(&tree.join("bin/tool"), b"#!/bin/sh\necho from s3\n", 0o755);
    write(&tree.join("share/note"), b"fetched lazily\n", 0o644);
    env.commit(&tree, &["org/lazy"]);
    let prefix = unique_prefix("lazy");
    let addr = format!("s3://{BUCKET}/{prefix}");
    ok(spfs(
        &env,
        &ep,
        &env.repo,
        &["push", "org/lazy", "--remote", &addr],
    )
    .output()
    .unwrap());
    // The local repository keeps its objects and tags but no payload.
    for p in std::fs::read_dir(env.repo.join("payloads")).unwrap() {
        std::fs::remove_dir_all(p.unwrap().path()).unwrap();
    }
    let payload = |content: &[u8]| {
        let hex = blake3::hash(content).to_hex().to_string();
        env.repo.join("payloads").join(&hex[..2]).join(&hex[2..])
    };
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--backend", "fuse"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "org/lazy",
            "--",
            "sh",
            "-c",
            "cat /spfs/share/note; /spfs/bin/tool; stat -c %a /spfs/bin/tool",
        ]);
        spfs(&env, &ep, &env.repo, &args).output().unwrap()
    };
    // Without the remote the runtime refuses to start.
    let out = run(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
    // With it, each file's payload comes from S3 on first open, verified and kept.
    let (text, _) = ok(run(&["--payloads-from", &addr]));
    assert_eq!(text, "fetched lazily\nfrom s3\n755\n");
    assert_eq!(
        std::fs::read(payload(b"fetched lazily\n")).unwrap(),
        b"fetched lazily\n"
    );
    assert!(payload(b"#!/bin/sh\necho from s3\n").exists());
    // Next time it needs no remote.
    let (text, _) = ok(run(&[]));
    assert_eq!(text, "fetched lazily\nfrom s3\n755\n");
    // A repository holding nothing runs the stack from S3 alone: the tag resolves
    // there, the objects are read into memory, only the payload read is kept.
    let empty = env.path("empty-repo");
    let (text, err) = ok(spfs(
        &env,
        &ep,
        &empty,
        &[
            "run",
            "--backend",
            "fuse",
            "--payloads-from",
            &addr,
            "org/lazy",
            "--",
            "cat",
            "/spfs/share/note",
        ],
    )
    .output()
    .unwrap());
    assert_eq!(text, "fetched lazily\n", "{err}");
    let hex = blake3::hash(b"fetched lazily\n").to_hex().to_string();
    assert!(empty
        .join("payloads")
        .join(&hex[..2])
        .join(&hex[2..])
        .exists());
    let objects = std::fs::read_dir(empty.join("objects"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    assert_eq!(objects, 0, "no object of the stack is stored locally");
    ok(spfs(&env, &ep, &empty, &["check"]).output().unwrap());
}

#[test]
fn check_remote_verifies_an_s3_remote_and_names_what_is_wrong() {
    let Some(ep) = endpoint("check_remote_verifies_an_s3_remote_and_names_what_is_wrong") else {
        return;
    };
    let env = Env::new();
    let tree = env.path("tree");
    write(&tree.join("a.txt"), b"checked content\n", 0o644);
    write(&tree.join("b.txt"), b"more checked content\n", 0o644);
    env.commit(&tree, &["org/c"]);
    let other = env.path("other");
    write(&other.join("o"), b"other checked content\n", 0o644);
    let other_layer = env.commit(&other, &["org/d"]);
    let prefix = unique_prefix("check");
    let addr = format!("s3://{BUCKET}/{prefix}");
    ok(spfs(
        &env,
        &ep,
        &env.repo,
        &["push", "org/c", "org/d", "--remote", &addr],
    )
    .output()
    .unwrap());
    let (out, err) = ok(spfs(&env, &ep, &env.repo, &["check", "--remote", &addr])
        .output()
        .unwrap());
    assert_eq!(out, "");
    assert!(
        err.contains("checked 4 objects and 3 payloads") && err.contains("0 problem(s)"),
        "{err}"
    );

    // Tamper with a payload (same size, other bytes) and delete a layer behind spfs's back.
    let digest = blake3::hash(b"checked content\n").to_hex().to_string();
    let (head, _) = curl(
        &ep,
        "PUT",
        &format!("{prefix}/payloads/{digest}"),
        Some(b"checked CONTENT\n"),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, _) = curl(
        &ep,
        "DELETE",
        &format!("{prefix}/objects/{other_layer}"),
        None,
    );
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");

    let out = spfs(&env, &ep, &env.repo, &["check", "--remote", &addr])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let tampered = &blake3::hash(b"checked CONTENT\n").to_hex()[..12];
    assert!(
        stdout.contains(&format!(
            "blob {digest}: corrupt: content hashes to {tampered} (reached by org/c)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("object {other_layer}: missing (reached by org/d)")),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        err.contains(&format!("\nerror: remote '{addr}' has 2 problem(s)")),
        "{err}"
    );
}
