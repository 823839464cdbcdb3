//! What runtime views show and what they protect: modes in /spfs for both backends, as
//! root and as an ordinary user, and that nothing done inside a runtime reaches the
//! repository's payloads or its shared renders.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// A throw-away identity with no account: the kernel needs only the numbers.
const USER: u32 = 60124;
/// Another user of the machine, who owns nothing in the repository.
const OTHER: u32 = 60125;

/// Every regular file under `dir` (payloads, renders, proxies): path → (inode, mode, content).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    fn rec(dir: &Path, out: &mut BTreeMap<PathBuf, (u64, u32, Vec<u8>)>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                rec(&p, out);
            } else if m.is_file() {
                out.insert(p.clone(), (m.ino(), m.mode(), fs::read(&p).unwrap()));
            }
        }
    }
    rec(&dir.join("payloads"), &mut out);
    rec(&dir.join("renders"), &mut out);
    out
}

/// Tries every way of changing a file of the view it can reach; prints nothing itself.
const ATTACKS: &str = r#"
for f in /spfs/d/rw /spfs/d/x /spfs/d/priv /spfs/d/ro /spfs/d/grp /spfs/d/all /spfs/d/exe /spfs/d/tmp/f; do
  echo attacked >> $f
  echo attacked 1<> $f
  printf 'overwritten' | dd of=$f conv=notrunc status=none
  truncate -s 0 $f
  chmod 0777 $f
  touch -d 2001-01-01 $f
  ln $f /tmp/spfs-views-link && echo attacked >> /tmp/spfs-views-link; rm -f /tmp/spfs-views-link
  ln $f /spfs/d/hardlink && echo attacked >> /spfs/d/hardlink
  cp /dev/null $f
  mv $f $f.moved && echo attacked > $f.moved
  rm -f $f
done
true
"#;

fn sample_layer(env: &Env) {
    let dir = env.path("layers/views");
    write(&dir.join("d/rw"), b"rw\n", 0o644);
    write(&dir.join("d/x"), b"#!/bin/sh\necho x\n", 0o755);
    write(&dir.join("d/priv"), b"private\n", 0o600);
    write(&dir.join("d/ro"), b"read only\n", 0o444);
    write(&dir.join("d/grp"), b"group\n", 0o664);
    write(&dir.join("d/all"), b"everyone\n", 0o666);
    write(&dir.join("d/exe"), b"#!/bin/sh\necho exe\n", 0o777);
    write(&dir.join("d/tmp/f"), b"in an open directory\n", 0o644);
    fs::set_permissions(
        dir.join("d/tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    write(&dir.join("gone"), b"deleted above\n", 0o664);
    env.commit(&dir, &["views"]);
}

const STAT: &str = "stat -c '%a %n' /spfs/d/rw /spfs/d/x /spfs/d/priv /spfs/d/ro /spfs/new \
     /spfs/d/grp /spfs/d/all /spfs/d/exe /spfs/d/tmp";

/// Modes as committed (written out by hand, as given to `write` above), group and other
/// write bits included: both backends show them.
const EXACT: &str =
    "644 /spfs/d/rw\n755 /spfs/d/x\n600 /spfs/d/priv\n444 /spfs/d/ro\n640 /spfs/new\n\
     664 /spfs/d/grp\n666 /spfs/d/all\n777 /spfs/d/exe\n1777 /spfs/d/tmp\n";

/// The files of the sample layer, read back in this order.
const READ_BACK: &str = "cat /spfs/d/all /spfs/d/exe /spfs/d/grp /spfs/d/priv /spfs/d/ro /spfs/d/rw /spfs/d/x /spfs/d/tmp/f";
const CONTENT: &str = "everyone\n#!/bin/sh\necho exe\ngroup\nprivate\nread only\nrw\n#!/bin/sh\necho x\nin an open directory\n";

/// Changes the files committed writable to group or others, printing what each
/// attempt says: a read-only view refuses (`EROFS`), an editable one copies up.
const SHARED_WRITES: &str = "for f in /spfs/d/grp /spfs/d/all /spfs/d/exe /spfs/d/tmp/f; do \
     (echo changed >> $f) 2>&1 | sed 's/.*: //'; tail -n 1 $f; done; \
     (echo planted > /spfs/d/tmp/new) 2>&1 | sed 's/.*: //'";

/// Runs spfs as root, or as [`USER`] (with a private /dev/fuse node that the user may
/// open, so the FUSE backend is reachable). `image`: the `SPFS_FUSE_IMAGE` setting
/// (`0`: root's FUSE-backend runtimes use the FUSE server rather than an image view).
fn spfs_as(env: &Env, user: bool, image: &str, args: &[&str]) -> Output {
    if !user {
        return env
            .cmd(args)
            .env("SPFS_FUSE_IMAGE", image)
            .output()
            .unwrap();
    }
    let fuse_dir = env.path("dev");
    fs::create_dir_all(&fuse_dir).unwrap();
    let quoted: Vec<String> = args
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let script = format!(
        "rm -f {d}/fuse && mknod -m 666 {d}/fuse c 10 229 && mount --bind {d}/fuse /dev/fuse && \
         exec setpriv --reuid={USER} --regid={USER} --clear-groups {SPFS} {}",
        quoted.join(" "),
        d = fuse_dir.display()
    );
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("SPFS_ROOT", &env.repo)
        .env("HOME", env.tmp.path())
        .env("SPFS_FUSE_IMAGE", image)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status,
        stderr(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn views_for(user: bool) {
    let env = Env::new();
    sample_layer(&env);
    // An upper layer that adds a file and deletes one below (made by root, before the
    // repository changes hands).
    let top = env.path("layers/top");
    write(&top.join("new"), b"new\n", 0o640);
    env.commit(&top, &["top"]);
    let script =
        format!("{SPFS} edit && rm /spfs/gone && {SPFS} commit layer -t deletion >/dev/null");
    env.ok(&["run", "views+top", "--", "sh", "-c", &script]);
    fs::create_dir_all("/tmp/spfs-runtime").unwrap();
    fs::create_dir_all("/spfs").unwrap();
    if user {
        // The user renders the stack itself, whiteouts included.
        fs::remove_dir_all(env.repo.join("renders")).unwrap();
        chown_r(env.tmp.path(), USER, USER);
        fs::set_permissions(
            env.tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let who = if user { "user" } else { "root" };
    let stack = "views+top+deletion";
    // As root, the FUSE backend serves an image view unless told to use its server.
    for (backend, image) in [("render", "1"), ("fuse", "1"), ("fuse", "0")] {
        let who = format!("{who} (SPFS_FUSE_IMAGE={image})");
        let expected = EXACT;
        // The listing, then what serves the view: renders under an overlay, the FUSE
        // server (`fuse` filesystems), or, for root, an image view (overlay over EROFS).
        let listing = format!("{STAT}; ls /spfs; echo ==; cat /proc/self/mounts");
        let out = ok(
            spfs_as(
                &env,
                user,
                image,
                &[
                    "run",
                    "--backend",
                    backend,
                    stack,
                    "--",
                    "sh",
                    "-c",
                    &listing,
                ],
            ),
            &format!("{who} {backend} listing"),
        );
        let (out, mounts) = out
            .split_once("==\n")
            .expect("the listing, then the mounts");
        assert_eq!(out, format!("{expected}d\nnew\n"), "{who}, {backend}");
        // An image view is an overlay with a data-only layer (the EROFS image under it
        // is in no mount table: the overlay holds it).
        let image_view = mounts
            .lines()
            .any(|l| l.split(' ').nth(2) == Some("overlay") && l.contains("datadir+="));
        let fuse = mounts.lines().any(|l| l.contains("fuse.spfs"));
        let want = (
            backend == "fuse" && image == "1" && !user,
            backend == "fuse" && !image_view,
        );
        assert_eq!((image_view, fuse), want, "{who}, {backend}: {mounts}");

        // Render every cached render first, so the snapshot covers them.
        let before = snapshot(&env.repo);
        assert!(!before.is_empty());
        for edit in [false, true] {
            let mode = if edit { "--edit" } else { "--no-edit" };
            let script = format!("{SHARED_WRITES}\n{ATTACKS}\ncat /spfs/d/x");
            let out = spfs_as(
                &env,
                user,
                image,
                &[
                    "run",
                    "--backend",
                    backend,
                    mode,
                    stack,
                    "--",
                    "sh",
                    "-c",
                    &script,
                ],
            );
            // Inside an editable view the attacks change the view (copy-up), never the
            // repository; inside a read-only view they all fail.
            let text = String::from_utf8_lossy(&out.stdout);
            let shared_writes = if edit {
                "changed\nchanged\nchanged\nchanged\n"
            } else {
                "Read-only file system\ngroup\nRead-only file system\neveryone\n\
                 Read-only file system\necho exe\nRead-only file system\n\
                 in an open directory\nRead-only file system\n"
            };
            assert!(
                text.starts_with(shared_writes),
                "{who} {backend} {mode}: {text}"
            );
            if edit {
                assert!(
                    !text.contains("#!/bin/sh"),
                    "{who} {backend} {mode}: {text}"
                );
            } else {
                assert!(text.contains("echo x"), "{who} {backend} {mode}: {text}");
            }
            let after = snapshot(&env.repo);
            assert_eq!(
                before.keys().collect::<Vec<_>>(),
                after.keys().collect::<Vec<_>>(),
                "{who} {backend} {mode}"
            );
            for (path, was) in &before {
                assert_eq!(
                    was,
                    &after[path],
                    "{who} {backend} {mode}: {}",
                    path.display()
                );
            }
        }
        // The stack still reads as committed afterwards.
        let out = ok(
            spfs_as(
                &env,
                user,
                image,
                &[
                    "run",
                    "--backend",
                    backend,
                    stack,
                    "--",
                    "sh",
                    "-c",
                    READ_BACK,
                ],
            ),
            "reading back",
        );
        assert_eq!(out, CONTENT);

        // With exact modes the user edits files committed writable in place (copied
        // up), and a commit records the new content with the committed mode.
        let tag = format!("edited-{backend}");
        let script = format!(
            "echo more >> /spfs/d/rw && echo mine > /spfs/d/priv && cat /spfs/d/rw && \
             stat -c %a /spfs/d/rw /spfs/d/priv && {SPFS} commit layer -t {tag} >/dev/null"
        );
        let out = ok(
            spfs_as(
                &env,
                user,
                image,
                &[
                    "run",
                    "--backend",
                    backend,
                    "--edit",
                    stack,
                    "--",
                    "sh",
                    "-c",
                    &script,
                ],
            ),
            &format!("{who} editing through {backend}"),
        );
        assert_eq!(out, "rw\nmore\n644\n600\n", "{who}, {backend}");
        let modes = ok(env.run(&["ls", "-l", &tag, "d"]), "listing the edits");
        let line = |name: &str| {
            modes
                .lines()
                .find(|l| l.ends_with(&format!(" {name}")))
                .unwrap_or_else(|| panic!("{name} missing: {modes}"))
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(line("rw"), "-rw-r--r--", "{who}, {backend}: {modes}");
        assert_eq!(line("priv"), "-rw-------", "{who}, {backend}: {modes}");
        let edited = format!("{stack}+{tag}");
        let out = ok(
            spfs_as(
                &env,
                user,
                image,
                &[
                    "run",
                    "--backend",
                    backend,
                    &edited,
                    "--",
                    "sh",
                    "-c",
                    "cat /spfs/d/rw /spfs/d/priv; stat -c %a /spfs/d/rw /spfs/d/priv",
                ],
            ),
            "reading the edits back",
        );
        assert_eq!(out, "rw\nmore\nmine\n644\n600\n", "{who}, {backend}");
        // Nothing that existed before the edits changed.
        let was: Vec<_> = before
            .iter()
            .map(|(p, (ino, mode, content))| (p.clone(), *ino, *mode, content.clone()))
            .collect();
        assert_eq!(was, snapshot_of(&before), "{who}, {backend}");
    }
    others_cannot_write_the_repository(&env);
    ok(env.run(&["check"]), "check");
}

/// As a user who owns nothing in the repository, tries to write every file and to
/// create a file in every directory under `payloads/` and `renders/`, then the private
/// renders' copies of group- and other-writable files by their paths: all refused.
fn others_cannot_write_the_repository(env: &Env) {
    fs::set_permissions(
        env.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let private = env.repo.join("renders/v2/private");
    let copies: Vec<PathBuf> = fs::read_dir(&private)
        .into_iter()
        .flatten()
        .flat_map(|uid| fs::read_dir(uid.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .flat_map(|r| ["d/all", "d/exe", "d/grp", "d/tmp/f"].map(|f| r.join(f)))
        .collect();
    for c in &copies {
        let m = fs::metadata(c).unwrap();
        assert!(
            m.mode() & 0o022 != 0 || c.ends_with("tmp/f"),
            "{}",
            c.display()
        );
    }
    let before = snapshot(&env.repo);
    let listed: Vec<String> = copies
        .iter()
        .map(|p| format!("'{}'", p.display()))
        .collect();
    let script = format!(
        "for f in $(find {repo}/payloads {repo}/renders -type f 2>/dev/null); do \
           (echo attacked >> $f) 2>/dev/null && echo WROTE $f; done; \
         for d in $(find {repo}/payloads {repo}/renders -type d 2>/dev/null); do \
           (echo planted > $d/planted) 2>/dev/null && echo PLANTED $d; done; \
         for f in {copies}; do (echo attacked >> $f) 2>&1 | sed 's/.*: //'; done",
        repo = env.repo.display(),
        copies = listed.join(" ")
    );
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={OTHER}"),
            &format!("--regid={OTHER}"),
            "--clear-groups",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("WROTE") && !text.contains("PLANTED"),
        "{text}"
    );
    assert!(!copies.is_empty());
    assert_eq!(
        text,
        "Permission denied\n".repeat(copies.len()),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, snapshot(&env.repo));
}

/// The entries of `before` as they are now (payloads and renders made later are left
/// out): what a runtime might have modified.
fn snapshot_of(
    before: &BTreeMap<PathBuf, (u64, u32, Vec<u8>)>,
) -> Vec<(PathBuf, u64, u32, Vec<u8>)> {
    before
        .keys()
        .map(|p| {
            let m = fs::symlink_metadata(p).unwrap();
            (p.clone(), m.ino(), m.mode(), fs::read(p).unwrap())
        })
        .collect()
}

#[test]
fn views_show_modes_by_rule_and_never_modify_the_repository_as_root() {
    if !privileged("views_show_modes_by_rule_and_never_modify_the_repository_as_root") {
        return;
    }
    views_for(false);
}

#[test]
fn views_show_modes_by_rule_and_never_modify_the_repository_as_a_user() {
    if !privileged("views_show_modes_by_rule_and_never_modify_the_repository_as_a_user") {
        return;
    }
    views_for(true);
}

#[test]
fn fuse_fetches_missing_payloads_from_a_second_repository_on_first_open() {
    if !privileged("fuse_fetches_missing_payloads_from_a_second_repository_on_first_open") {
        return;
    }
    let env = Env::new();
    let dir = env.path("layers/lazy");
    write(&dir.join("good"), b"fetched on first open\n", 0o644);
    write(&dir.join("corrupt"), b"will be damaged remotely\n", 0o644);
    write(&dir.join("missing"), b"removed remotely\n", 0o755);
    write(&dir.join("local"), b"already local\n", 0o644);
    env.commit(&dir, &["lazy"]);
    // The remote is the full repository; the local one has its objects and tags and
    // one payload only.
    let remote = env.path("remote");
    fs::rename(&env.repo, &remote).unwrap();
    let cp = Command::new("cp")
        .args(["-a", remote.to_str().unwrap(), env.repo.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(cp.success());
    let payload = |repo: &Path, content: &[u8]| {
        let hex = blake3::hash(content).to_hex().to_string();
        repo.join("payloads").join(&hex[..2]).join(&hex[2..])
    };
    for p in fs::read_dir(env.repo.join("payloads")).unwrap() {
        fs::remove_dir_all(p.unwrap().path()).unwrap();
    }
    fs::create_dir_all(payload(&env.repo, b"already local\n").parent().unwrap()).unwrap();
    fs::copy(
        payload(&remote, b"already local\n"),
        payload(&env.repo, b"already local\n"),
    )
    .unwrap();
    let damaged = payload(&remote, b"will be damaged remotely\n");
    fs::set_permissions(
        &damaged,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    fs::write(&damaged, b"WILL BE DAMAGED REMOTELY\n").unwrap();
    fs::remove_file(payload(&remote, b"removed remotely\n")).unwrap();

    // Without a fallback the runtime refuses to start: a payload is missing.
    let err = env.fails(&["run", "--backend", "fuse", "lazy", "--", "true"]);
    assert!(err.contains("missing"), "{err}");

    let script = "cat /spfs/good /spfs/local; cat /spfs/corrupt; echo rc=$?; cat /spfs/missing; echo rc=$?; stat -c %a /spfs/missing";
    let out = Command::new("timeout")
        .args(["60", SPFS, "run", "--backend", "fuse", "--payloads-from"])
        .arg(&remote)
        .args(["lazy", "--", "sh", "-c", script])
        .env("SPFS_ROOT", &env.repo)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        text, "fetched on first open\nalready local\nrc=1\nrc=1\n755\n",
        "{err}"
    );
    assert!(err.contains("Input/output error"), "{err}");
    // One log line per failed file, naming the payload and what is wrong with it.
    let corrupt_hex = blake3::hash(b"will be damaged remotely\n")
        .to_hex()
        .to_string();
    let missing_hex = blake3::hash(b"removed remotely\n").to_hex().to_string();
    assert!(
        err.lines()
            .any(|l| l.contains(&corrupt_hex[..12]) && l.contains("hashes to")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains(&missing_hex[..12]) && l.contains("missing")),
        "{err}"
    );
    // The good payload is kept locally with the remote payload's mode (0o644, as
    // committed); nothing unverified was stored.
    let kept = payload(&env.repo, b"fetched on first open\n");
    assert_eq!(fs::read(&kept).unwrap(), b"fetched on first open\n");
    assert_eq!(fs::metadata(&kept).unwrap().mode() & 0o7777, 0o644);
    assert!(!payload(&env.repo, b"will be damaged remotely\n").exists());
    assert!(!payload(&env.repo, b"removed remotely\n").exists());
    // Next time it is served without the remote.
    let out = env.ok(&[
        "run",
        "--backend",
        "fuse",
        "lazy",
        "--",
        "cat",
        "/spfs/good",
    ]);
    assert_eq!(out, "fetched on first open\n");
    // Renders need every payload first.
    let err = env.fails(&[
        "run",
        "--payloads-from",
        remote.to_str().unwrap(),
        "lazy",
        "--",
        "true",
    ]);
    assert!(err.contains("--backend fuse"), "{err}");
}

/// Every file under `dir`, recursively (empty when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn fuse_runs_a_stack_stored_only_in_a_file_remote_without_copying_its_objects() {
    let test = "fuse_runs_a_stack_stored_only_in_a_file_remote_without_copying_its_objects";
    if !privileged(test) {
        return;
    }
    let env = Env::new();
    let base = env.path("layers/base");
    write(&base.join("etc/base.conf"), b"from the base layer\n", 0o644);
    write(&base.join("bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    env.commit(&base, &["remote/base"]);
    let top = env.path("layers/top");
    write(&top.join("etc/top.conf"), b"read on first open\n", 0o600);
    let top_layer = env.commit(&top, &["remote/top"]);
    // The stack lives only in the remote; the local repository starts empty.
    let remote = env.path("remote");
    fs::rename(&env.repo, &remote).unwrap();
    let address = format!("file://{}", remote.display());
    let hex = |content: &[u8]| blake3::hash(content).to_hex().to_string();
    let payload = |repo: &Path, content: &[u8]| {
        let h = hex(content);
        repo.join("payloads").join(&h[..2]).join(&h[2..])
    };

    let script =
        "find /spfs -mindepth 1 | sort; stat -c %a /spfs/etc/top.conf; cat /spfs/etc/top.conf";
    let out = env.run(&[
        "run",
        "--backend",
        "fuse",
        "--payloads-from",
        &address,
        "remote/base+remote/top",
        "--",
        "sh",
        "-c",
        script,
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/spfs/bin\n/spfs/bin/tool\n/spfs/etc\n/spfs/etc/base.conf\n/spfs/etc/top.conf\n\
         600\nread on first open\n",
        "{err}"
    );
    assert!(!err.contains("pulled"), "nothing is pulled: {err}");
    // The payload read is kept locally, the others were never fetched, and no object
    // of the stack was stored: an object would promise its whole closure.
    assert_eq!(
        fs::read(payload(&env.repo, b"read on first open\n")).unwrap(),
        b"read on first open\n"
    );
    assert!(!payload(&env.repo, b"from the base layer\n").exists());
    assert_eq!(
        files_under(&env.repo.join("objects")),
        Vec::<PathBuf>::new()
    );
    assert!(env.ok(&["tags"]).trim().is_empty());
    env.ok(&["check"]);
    // Entering again reads the payload locally and the tree from the inode cache.
    let out = env.ok(&[
        "run",
        "--backend",
        "fuse",
        "--payloads-from",
        &address,
        "remote/base+remote/top",
        "--",
        "cat",
        "/spfs/etc/top.conf",
        "/spfs/etc/base.conf",
    ]);
    assert_eq!(out, "read on first open\nfrom the base layer\n");
    assert_eq!(
        files_under(&env.repo.join("objects")),
        Vec::<PathBuf>::new()
    );
    // Edits over it: diff and commit layer read the stack from the remote as the
    // runtime does; a platform, which would promise its layers locally, is refused.
    let script = format!(
        "set -e; {SPFS} edit; echo changed > /spfs/etc/base.conf; {SPFS} diff; \
         {SPFS} commit layer -t lazy/edits >/dev/null; {SPFS} runtime info $SPFS_RUNTIME | grep payloads; \
         if {SPFS} commit platform -t lazy/platform 2>/tmp/platform.err; then echo committed; fi; \
         cat /tmp/platform.err"
    );
    let out = env.ok(&[
        "run",
        "--backend",
        "fuse",
        "--payloads-from",
        &address,
        "remote/base+remote/top",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.contains("etc/base.conf (content)"), "{out}");
    assert!(out.contains(&format!("payloads:   {address}")), "{out}");
    assert!(!out.contains("committed"), "{out}");
    assert!(
        out.contains("cannot commit a platform: the runtime's layers are read from"),
        "{out}"
    );
    let edits = env.ok(&["run", "lazy/edits", "--", "cat", "/spfs/etc/base.conf"]);
    assert_eq!(edits, "changed\n");
    assert!(env
        .fails(&["info", "lazy/platform"])
        .contains("lazy/platform"));
    env.ok(&["check"]);
    // Without lazy payloads the stack is not known locally (no remote is configured).
    let err = env.fails(&["run", "--backend", "fuse", "remote/top", "--", "true"]);
    assert!(err.contains("remote/top"), "{err}");

    // A corrupt object in the remote is refused before anything is mounted, naming it
    // and the remote.
    let layer_file = remote
        .join("objects")
        .join(&top_layer[..2])
        .join(&top_layer[2..]);
    fs::set_permissions(
        &layer_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let mut bytes = fs::read(&layer_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&layer_file, &bytes).unwrap();
    fs::remove_dir_all(env.repo.join("renders")).unwrap();
    let err = env.fails(&[
        "run",
        "--backend",
        "fuse",
        "--payloads-from",
        &address,
        "remote/top",
        "--",
        "echo",
        "started",
    ]);
    assert!(
        err.starts_with(&format!(
            "error: cannot read object {top_layer} of the stack from"
        )),
        "{err}"
    );
    assert!(err.contains(remote.to_str().unwrap()), "{err}");
    assert!(err.contains("hashes to"), "{err}");
    assert!(err.contains("spfs check --remote"), "{err}");
    env.ok(&["check"]);
}

#[test]
fn fuse_inode_cache_is_derived_and_rebuilt_when_damaged() {
    if !privileged("fuse_inode_cache_is_derived_and_rebuilt_when_damaged") {
        return;
    }
    let env = Env::new();
    sample_layer(&env);
    let cache_dir = env.repo.join("renders/fuse");
    // The derived files of the FUSE backend: inode tables (`.inodes`, read by the FUSE
    // server) and, as root, metadata images (`.erofs`, mounted by the kernel).
    let caches = |ext: &str| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(&cache_dir)
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        found.retain(|p| p.extension().is_some_and(|e| e == ext));
        found
    };
    let listing = "stat -c '%a %n' /spfs/d/rw /spfs/d/x; cat /spfs/d/ro";
    let expected = "644 /spfs/d/rw\n755 /spfs/d/x\nread only\n";
    assert!(caches("inodes").is_empty());
    for (ext, server) in [("inodes", "0"), ("erofs", "1")] {
        let run = || {
            let args = [
                "run",
                "--backend",
                "fuse",
                "views",
                "--",
                "sh",
                "-c",
                listing,
            ];
            // No kept views here: each runtime reads the image.
            let out = env
                .cmd(&args)
                .env("SPFS_FUSE_IMAGE", server)
                .env("SPFS_VIEW_KEEP", "0")
                .output()
                .unwrap();
            ok(out, ext)
        };
        assert_eq!(run(), expected, "{ext}");
        let cached = caches(ext);
        assert_eq!(cached.len(), 1, "{cached:?}");
        let good = fs::read(&cached[0]).unwrap();
        // Served from the cache: same view.
        assert_eq!(run(), expected, "{ext}");
        // Damaged (a flipped byte, then a truncation): ignored, rebuilt, same view.
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        fs::write(&cached[0], &bad).unwrap();
        assert_eq!(run(), expected, "{ext}");
        assert_eq!(fs::read(&cached[0]).unwrap(), good, "{ext}");
        fs::write(&cached[0], &good[..good.len() / 3]).unwrap();
        assert_eq!(run(), expected, "{ext}");
        assert_eq!(fs::read(&cached[0]).unwrap(), good, "{ext}");
        // Deleted: rebuilt too.
        fs::remove_dir_all(&cache_dir).unwrap();
        assert_eq!(run(), expected, "{ext}");
        assert_eq!(caches(ext).len(), 1, "{ext}");
    }
    // Another stack gets its own table and image.
    let top = env.path("layers/top");
    write(&top.join("d/rw"), b"top\n", 0o600);
    env.commit(&top, &["top"]);
    let out = env.ok(&[
        "run",
        "--backend",
        "fuse",
        "views+top",
        "--",
        "sh",
        "-c",
        "stat -c %a /spfs/d/rw; cat /spfs/d/rw",
    ]);
    assert_eq!(out, "600\ntop\n");
    assert_eq!(caches("inodes").len(), 2);
    assert_eq!(caches("erofs").len(), 2);
}

/// Runs `cmd`, failing the test if it is not done within a minute (a process left
/// holding its output pipe, such as a view keeper that inherited it, would hang it).
fn output_within_a_minute(mut cmd: Command, what: &str) -> String {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = pipe.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what}: its output stayed open after a minute"));
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{what} failed ({status:?}): {err}");
    out
}

/// Root's image views outlive their runtime in the keeper, so a later runtime of the
/// same stack mounts the same filesystem instance (caches warm): shown by its device
/// number, which no other live filesystem can have while the keeper holds the view.
/// The keeper leaves no mount anywhere, holds no pipe of the runtime, answers only
/// root and is used only if root, is never started by a nested runtime, drops views on
/// request, on `spfs clean`, and when idle, and its death costs later runtimes nothing
/// but a cold view.
#[test]
fn image_views_are_kept_for_later_runtimes_of_the_stack() {
    if !privileged("image_views_are_kept_for_later_runtimes_of_the_stack") {
        return;
    }
    let env = Env::new();
    sample_layer(&env);
    let socket = env.keeper_socket();
    // Kept long enough that a keeper holding the runtime's output pipe would hang the
    // run past `output_within_a_minute`'s limit.
    const KEEP: &str = "120";
    let spfs = |keep: &str, args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("SPFS_VIEW_KEEP", keep).env("SPFS_FUSE_IMAGE", "1");
        c
    };
    let probe = "stat -c %d /spfs; cat /spfs/d/rw /spfs/d/ro";
    let run = |keep: &str| {
        let out = output_within_a_minute(
            spfs(
                keep,
                &["run", "--backend", "fuse", "views", "--", "sh", "-c", probe],
            ),
            "a runtime",
        );
        let (dev, content) = out.split_once('\n').unwrap();
        assert_eq!(content, "rw\nread only\n");
        dev.parse::<u64>().unwrap()
    };
    // The keeper's pid (from `spfs runtime views`) and the views it lists.
    let keeper = || {
        let out = spfs(KEEP, &["runtime", "views"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        let pid = err
            .split_once("view keeper: pid ")
            .map(|(_, rest)| rest.split(',').next().unwrap().parse::<u32>().unwrap());
        (pid, String::from_utf8(out.stdout).unwrap())
    };
    assert_eq!(keeper(), (None, String::new()));

    let first = run(KEEP);
    let (pid, listed) = keeper();
    let pid = pid.expect("a keeper after the first runtime");
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        listed.trim_end().ends_with(env.repo.to_str().unwrap()),
        "{listed}"
    );
    // The keeper's view is the first runtime's filesystem instance...
    let held = fs::metadata(format!("/proc/{pid}/fd/3")).unwrap().dev();
    assert_eq!(first, held);
    // ...and the next runtime's.
    assert_eq!(run(KEEP), held);
    // A runtime told not to use kept views gets its own instance.
    assert_ne!(run("0"), held);
    // The keeper runs in this mount namespace, in its own session, and nothing of the
    // runtimes or their views is in any mount table here.
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
        fs::read_link("/proc/self/ns/mnt").unwrap()
    );
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(fields[3], pid.to_string(), "session of the keeper: {stat}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(env.repo.to_str().unwrap()), "{mounts}");
    assert!(!mounts.contains("spfs-runtime"), "{mounts}");

    // Only root may ask it anything: with its socket opened up to everyone, a user's
    // request is refused...
    let as_user = |args: &[&str], sock: &Path| {
        Command::new("setpriv")
            .args([
                &format!("--reuid={USER}"),
                &format!("--regid={USER}"),
                "--clear-groups",
                SPFS,
            ])
            .args(args)
            .env("SPFS_VIEW_KEEPER", sock)
            .output()
            .unwrap()
    };
    let mode = |p: &Path, m: u32| {
        fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    for (p, m) in [(env.tmp.path(), 0o711), (socket.parent().unwrap(), 0o711)] {
        mode(p, m);
    }
    mode(&socket, 0o666);
    let out = as_user(&["runtime", "views", "--all-repos"], &socket);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused: only root may use it"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    mode(&socket, 0o600);
    // ...and a keeper that is not root's is never used by root.
    let theirs = tempfile::tempdir().unwrap();
    chown_r(theirs.path(), USER, USER);
    let fake = theirs.path().join("views.sock");
    let status = Command::new("sh")
        .args([
            "-c",
            &format!(
                "exec setpriv --reuid={USER} --regid={USER} --clear-groups {SPFS} \
                 __spfs-view-keeper {id} 2f 3</dev/null",
                id = "0.0.0"
            ),
        ])
        .env("SPFS_VIEW_KEEPER", &fake)
        .env("SPFS_VIEW_KEEP", "60")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("the user's keeper to listen", 10, || fake.exists());
    let out = env
        .cmd(&["runtime", "views", "--all-repos"])
        .env("SPFS_VIEW_KEEPER", &fake)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("runs as uid {USER}, not root")),
        "{}",
        stderr(&out)
    );
    let mut c = spfs(
        KEEP,
        &[
            "run",
            "--backend",
            "fuse",
            "views",
            "--",
            "cat",
            "/spfs/d/rw",
        ],
    );
    c.env("SPFS_VIEW_KEEPER", &fake);
    assert_eq!(
        output_within_a_minute(c, "a runtime beside a user's keeper"),
        "rw\n"
    );
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline.ends_with(b"__spfs-view-keeper\x000.0.0\x002f\x00") {
            let pid: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    // A runtime inside a runtime never starts a keeper (it would start in the outer
    // runtime's namespace and keep it alive).
    let nested_socket = env.path("nested/views.sock");
    let inner = format!(
        "SPFS_VIEW_KEEPER={} {SPFS} run --backend fuse views -- cat /spfs/d/ro",
        nested_socket.display()
    );
    let out = env.ok(&["run", "--backend", "render", "-", "--", "sh", "-c", &inner]);
    assert_eq!(out, "read only\n");
    assert!(!nested_socket.exists());

    // Killed, it takes its views with it; the next runtime works and starts a new one.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the killed keeper to go", 10, || gone(pid as i32));
    run(KEEP);
    let (again, _) = keeper();
    let again = again.expect("a new keeper");
    assert_ne!(again, pid);

    // `spfs clean` that removes payloads drops the repository's views; the keeper then
    // holds none and exits, removing its socket.
    env.ok(&["untag", "--all", "views"]);
    let out = spfs(KEEP, &["clean", "-y", "--grace", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dropped 1 kept view(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait_until("the emptied keeper to exit", 10, || gone(again as i32));
    assert!(!socket.exists());

    // Idle views expire on their own.
    sample_layer(&env);
    run("5");
    let (short, _) = keeper();
    let short = short.expect("a keeper");
    wait_until("the idle keeper to exit", 30, || gone(short as i32));
    assert_eq!(keeper(), (None, String::new()));
}
