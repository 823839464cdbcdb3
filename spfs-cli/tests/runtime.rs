//! Runtimes end to end: namespaces, overlay stacks, edits, startup scripts, signals,
//! clean-up and bad input. All of these need root (or user namespaces, tested apart).

mod common;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

/// Overlay and FUSE mounts that belong to runtimes, as seen by this (parent) process.
fn runtime_mounts() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" /spfs ") || l.contains("spfs-runtime"))
        .map(String::from)
        .collect()
}

fn assert_no_leaks() {
    assert_eq!(
        runtime_mounts(),
        Vec::<String>::new(),
        "mounts leaked into the parent namespace"
    );
}

fn layer(env: &Env, name: &str, files: &[(&str, &str)]) -> String {
    let dir = env.path(&format!("layers/{name}"));
    for (p, c) in files {
        write(&dir.join(p), c.as_bytes(), 0o644);
    }
    fs::create_dir_all(&dir).unwrap();
    env.commit(&dir, &[name])
}

#[test]
fn run_shows_the_stack_and_passes_exit_code_and_io() {
    if !privileged("run_shows_the_stack_and_passes_exit_code_and_io") {
        return;
    }
    let env = Env::new();
    layer(
        &env,
        "base",
        &[("etc/a", "base-a"), ("etc/b", "base-b"), ("bin/x", "x")],
    );
    layer(&env, "top", &[("etc/a", "top-a")]);
    let mut child = env
        .cmd(&["run", "base+top", "--", "sh", "-c", "cat /spfs/etc/a /spfs/etc/b; read line; echo \"in:$line\"; echo err >&2; echo \"rt:$SPFS_RUNTIME var:$MY_VAR\"; exit 7"])
        .env("MY_VAR", "passed")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stdout.starts_with("top-abase-b"), "{stdout}");
    assert!(stdout.contains("in:hello"), "{stdout}");
    assert!(
        stdout.contains("rt:rt-") && stdout.contains("var:passed"),
        "{stdout}"
    );
    assert_eq!(stderr(&out).trim(), "err");
    assert_no_leaks();
}

#[test]
fn runtime_is_invisible_to_other_processes() {
    if !privileged("runtime_is_invisible_to_other_processes") {
        return;
    }
    let env = Env::new();
    layer(&env, "vis", &[("marker", "private")]);
    let flag = env.path("ready");
    let mut child = env
        .cmd(&[
            "run",
            "vis",
            "--",
            "sh",
            "-c",
            &format!("touch {}; sleep 30", flag.display()),
        ])
        .spawn()
        .unwrap();
    wait_until("the command starts", 20, || flag.exists());
    // While it runs, this process sees no runtime mount and no marker.
    assert_no_leaks();
    assert!(!std::path::Path::new("/spfs/marker").exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "SIGTERM should reach the command"
    );
    assert_no_leaks();
}

#[test]
fn masks_hide_lower_files_and_edits_round_trip() {
    if !privileged("masks_hide_lower_files_and_edits_round_trip") {
        return;
    }
    let env = Env::new();
    layer(
        &env,
        "base",
        &[
            ("keep", "k"),
            ("gone", "g"),
            ("dir/inner", "i"),
            ("dir/other", "o"),
            ("mod", "old"),
        ],
    );
    // Edit: add, change, delete a file and a whole directory, chmod another.
    let script = format!(
        "set -e; {SPFS} edit; echo new > /spfs/added; echo changed > /spfs/mod; rm /spfs/gone; rm -r /spfs/dir; mkdir /spfs/dir; echo fresh > /spfs/dir/fresh; chmod 600 /spfs/keep; {SPFS} diff; {SPFS} commit layer -t edits/layer; {SPFS} commit platform -t edits/platform"
    );
    let out = env.ok(&["run", "base", "--", "sh", "-c", &script]);
    assert!(out.contains("- -rw-r--r-- gone"), "{out}");
    assert!(out.contains("+ -rw-r--r-- added"), "{out}");
    assert!(out.contains("mod (content)"), "{out}");
    // What the user saw is exactly what the platform reproduces.
    let listing = "find /spfs -mindepth 1 | sort; cat /spfs/mod /spfs/added";
    let seen = env.ok(&["run", "edits/platform", "--", "sh", "-c", listing]);
    assert_eq!(
        seen,
        "/spfs/added\n/spfs/dir\n/spfs/dir/fresh\n/spfs/keep\n/spfs/mod\nchanged\nnew\n"
    );
    let stacked = env.ok(&["run", "base+edits/layer", "--", "sh", "-c", listing]);
    assert_eq!(seen, stacked);
    // Modes are stored exactly: the chmod, and the committed mode of the copied-up
    // file.
    let modes = env.ok(&["ls", "-l", "edits/platform"]);
    assert!(
        modes.contains("-rw------- ") && modes.contains(" keep"),
        "{modes}"
    );
    let m = modes.lines().find(|l| l.ends_with(" mod")).unwrap();
    assert!(m.starts_with("-rw-r--r--"), "{modes}");
    assert_no_leaks();
}

#[test]
fn edit_mode_defaults_and_toggles() {
    if !privileged("edit_mode_defaults_and_toggles") {
        return;
    }
    let env = Env::new();
    layer(&env, "ro", &[("f", "x")]);
    // An empty stack is editable by default; a stack is read-only unless --edit.
    env.ok(&["run", "-", "--", "sh", "-c", "echo hi > /spfs/new"]);
    let out = env.run(&["run", "ro", "--", "sh", "-c", "echo hi > /spfs/new"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("Read-only"), "{}", stderr(&out));
    env.ok(&[
        "run",
        "--edit",
        "ro",
        "--",
        "sh",
        "-c",
        "echo hi > /spfs/new",
    ]);
    let script = format!(
        "{SPFS} edit && echo a > /spfs/a && {SPFS} edit --off && ! (echo b > /spfs/b) 2>/dev/null && {SPFS} edit && echo c > /spfs/c && cat /spfs/a /spfs/c"
    );
    assert_eq!(env.ok(&["run", "ro", "--", "sh", "-c", &script]), "a\nc\n");
}

#[test]
fn reset_drops_edits() {
    if !privileged("reset_drops_edits") {
        return;
    }
    let env = Env::new();
    layer(&env, "base", &[("f", "orig"), ("g", "orig-g")]);
    let script = format!(
        "set -e; {SPFS} edit; echo x > /spfs/f; echo y > /spfs/g; echo z > /spfs/h; {SPFS} reset /spfs/f; cat /spfs/f /spfs/g /spfs/h; {SPFS} reset; cat /spfs/f /spfs/g; test ! -e /spfs/h; {SPFS} diff"
    );
    let out = env.run(&["run", "base", "--", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "origy\nz\norigorig-g");
    assert!(stderr(&out).contains("no changes"), "{}", stderr(&out));
}

#[test]
fn startup_scripts_run_in_lexical_order() {
    if !privileged("startup_scripts_run_in_lexical_order") {
        return;
    }
    let env = Env::new();
    layer(
        &env,
        "startup",
        &[
            ("etc/spfs/startup.d/20_b.sh", "export ORDER=\"$ORDER b\"\n"),
            ("etc/spfs/startup.d/10_a.sh", "export ORDER=\"$ORDER a\"\n"),
            ("etc/spfs/startup.d/99_c.sh", "export ORDER=\"$ORDER c\"\n"),
            ("etc/spfs/startup.d/10_a.csh", "setenv ORDER \"csh-a\"\n"),
            ("etc/spfs/startup.d/notes.txt", "export ORDER=wrong\n"),
        ],
    );
    assert_eq!(
        env.ok(&["run", "startup", "--", "sh", "-c", "echo $ORDER"]),
        "a b c\n"
    );
    // Interactive shells: bash sources the .sh scripts through its rc file.
    let out = env
        .cmd(&["shell", "startup"])
        .env("SHELL", "/bin/bash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo \"bash:$ORDER\"\nexit 0\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("bash: a b c"),
        "{}",
        stderr(&o)
    );
    // csh/tcsh source the .csh scripts.
    if std::path::Path::new("/bin/tcsh").exists() {
        let mut child = env
            .cmd(&["shell", "startup"])
            .env("SHELL", "/bin/tcsh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"echo \"tcsh:$ORDER\"\n")
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("tcsh:csh-a"),
            "{}",
            stderr(&o)
        );
    } else if std::env::var_os("CI").is_some() {
        panic!("tcsh is not installed; CI must install it to test csh startup scripts");
    } else {
        eprintln!("SKIPPED csh part of startup_scripts_run_in_lexical_order: tcsh not installed");
    }
}

#[test]
fn large_stacks_mount() {
    if !privileged("large_stacks_mount") {
        return;
    }
    let env = Env::new();
    let mut digests = Vec::new();
    for i in 0..520 {
        let dir = env.path(&format!("many/l{i}"));
        write(&dir.join(format!("f{i}")), format!("{i}").as_bytes(), 0o644);
        write(&dir.join("top"), format!("{i}").as_bytes(), 0o644);
        digests.push(env.commit(&dir, &[]));
    }
    for n in [1usize, 50, 200, 500, 520] {
        let stack = digests[..n].join("+");
        let out = env.ok(&[
            "run",
            &stack,
            "--",
            "sh",
            "-c",
            "ls /spfs | wc -l; cat /spfs/top; cat /spfs/f0",
        ]);
        assert_eq!(out, format!("{}\n{}0", n + 1, n - 1), "stack of {n}");
    }
    assert_no_leaks();
}

#[test]
fn cleanup_after_exit_crash_and_kill() {
    if !privileged("cleanup_after_exit_crash_and_kill") {
        return;
    }
    let env = Env::new();
    layer(&env, "c", &[("f", "x")]);
    // The command crashes: its signal is reported like a shell does.
    let out = env.run(&["run", "c", "--", "sh", "-c", "kill -SEGV $$"]);
    assert_eq!(out.status.code(), Some(128 + 11));
    assert_no_leaks();
    // spfs itself is SIGKILLed: the command dies with it, nothing leaks.
    let pidfile = env.path("cmd.pid");
    let mut child = env
        .cmd(&[
            "run",
            "c",
            "--",
            "sh",
            "-c",
            &format!("echo $$ > {}; sleep 60", pidfile.display()),
        ])
        .spawn()
        .unwrap();
    wait_until("the command writes its pid", 20, || {
        fs::read_to_string(&pidfile).is_ok_and(|s| !s.trim().is_empty())
    });
    let cmd_pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until("the command dies with a killed spfs", 10, || gone(cmd_pid));
    assert_no_leaks();
    // The dead runtime's record is pruned.
    let list = env.ok(&["runtime", "list"]);
    assert!(list.contains("dead"), "{list}");
    env.ok(&["runtime", "prune"]);
    assert_eq!(env.ok(&["runtime", "list"]), "");
}

#[test]
fn orphans_are_reaped_and_a_runtime_left_in_use_is_unmounted_by_the_monitor() {
    if !privileged("orphans_are_reaped_and_a_runtime_left_in_use_is_unmounted_by_the_monitor") {
        return;
    }
    let env = Env::new();
    layer(&env, "o", &[("f", "x")]);
    for backend in ["render", "fuse"] {
        // An orphan that exits while the command runs is reaped by the monitor (its
        // subreaper): no zombie child of the monitor is left.
        let script =
            "(sleep 0.2 &); sleep 1; ps -e -o ppid=,stat= | awk -v p=$PPID '$1 == p' | sort";
        let out = env.ok(&["run", "--backend", backend, "o", "--", "sh", "-c", script]);
        // Only the command itself is left, sleeping in `ps | awk`.
        let children: Vec<&str> = out.lines().collect();
        assert_eq!(children.len(), 1, "{backend}: {out}");
        let state = children[0].split_whitespace().nth(1).unwrap_or("");
        assert!(state.starts_with('S'), "{backend}: {out}");
        // A process left running when the command exits keeps the runtime's namespace
        // alive: the monitor then unmounts /spfs and the scratch space itself, so the
        // process sees neither, and spfs exits without waiting for it.
        let pidfile = env.path(&format!("orphan-{backend}.pid"));
        let script = format!(
            "sleep 30 </dev/null >/dev/null 2>&1 & echo $! > {}",
            pidfile.display()
        );
        let start = std::time::Instant::now();
        env.ok(&["run", "--backend", backend, "o", "--", "sh", "-c", &script]);
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        let pid: i32 = fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mounts = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        let _ = Command::new("kill").arg(pid.to_string()).status();
        assert!(
            !mounts
                .lines()
                .any(|l| l.contains(" /spfs ") || l.contains("spfs-runtime")),
            "{backend}: {mounts}"
        );
        assert_no_leaks();
    }
}

#[test]
fn runtimes_are_registered_and_kept_runtimes_rerun() {
    if !privileged("runtimes_are_registered_and_kept_runtimes_rerun") {
        return;
    }
    let env = Env::new();
    layer(&env, "r", &[("f", "x")]);
    let script = format!("{SPFS} runtime list; {SPFS} runtime info $SPFS_RUNTIME");
    let out = env.ok(&["run", "r", "--name", "named-rt", "--", "sh", "-c", &script]);
    assert!(out.contains("named-rt") && out.contains("running"), "{out}");
    assert!(out.contains("running:    true"), "{out}");
    assert_eq!(
        env.ok(&["runtime", "list"]),
        "",
        "record not removed at exit"
    );
    env.ok(&[
        "run",
        "r",
        "--edit",
        "--keep-runtime",
        "--name",
        "kept",
        "--",
        "sh",
        "-c",
        "echo edit > /spfs/e",
    ]);
    assert!(env.ok(&["runtime", "list"]).contains("kept"));
    assert_eq!(
        env.ok(&[
            "run",
            "--rerun",
            "kept",
            "--",
            "sh",
            "-c",
            "cat /spfs/e /spfs/f"
        ]),
        "edit\nx"
    );
    let err = env.fails(&["run", "--rerun", "nope", "--", "true"]);
    assert!(err.contains("no runtime named 'nope'"), "{err}");
    env.ok(&["runtime", "rm", "kept"]);
    assert_eq!(env.ok(&["runtime", "list"]), "");
    assert_no_leaks();
}

#[test]
fn nested_runtime_replaces_the_view() {
    if !privileged("nested_runtime_replaces_the_view") {
        return;
    }
    let env = Env::new();
    layer(&env, "outer", &[("which", "outer")]);
    layer(&env, "inner", &[("which", "inner")]);
    let script = format!("cat /spfs/which; {SPFS} run inner -- cat /spfs/which; cat /spfs/which");
    assert_eq!(
        env.ok(&["run", "outer", "--", "sh", "-c", &script]),
        "outerinnerouter"
    );
    assert_no_leaks();
}

#[test]
fn bad_runtime_input() {
    if !privileged("bad_runtime_input") {
        return;
    }
    let env = Env::new();
    let d = layer(&env, "broken", &[("f", "will vanish")]);
    let err = env.fails(&["run", "nope/nope", "--", "true"]);
    assert!(err.contains("unknown reference 'nope/nope'"), "{err}");
    // A command that does not exist exits 127, like a shell.
    let out = env.run(&["run", "broken", "--", "no-such-command-xyz"]);
    assert_eq!(out.status.code(), Some(127));
    // Missing payloads are reported before anything is mounted.
    let payload = env.repo.join(format!("payloads/{}", {
        let h = blake3::hash(b"will vanish").to_hex().to_string();
        format!("{}/{}", &h[..2], &h[2..])
    }));
    fs::remove_file(&payload).unwrap();
    fs::remove_dir_all(env.repo.join("renders")).unwrap();
    for backend in ["render", "fuse"] {
        let err = env.fails(&["run", "--backend", backend, &d, "--", "true"]);
        assert!(
            err.contains("payload") && err.contains("missing"),
            "{backend}: {err}"
        );
    }
    let err = env.fails(&["run", "--backend", "bogus", "-", "--", "true"]);
    assert!(err.contains("unknown runtime backend"), "{err}");
    // Inside-runtime commands outside a runtime say so.
    let err = env.fails(&["diff"]);
    assert!(err.contains("not inside an spfs runtime"), "{err}");
    assert_no_leaks();
}

#[test]
fn missing_dev_fuse_is_explained() {
    if !privileged("missing_dev_fuse_is_explained") {
        return;
    }
    let env = Env::new();
    layer(&env, "f", &[("f", "x")]);
    // Hide /dev/fuse in a throw-away namespace.
    let script = format!(
        "mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 && exec {SPFS} run --backend fuse f -- true"
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("SPFS_ROOT", &env.repo)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/dev/fuse does not exist") && err.contains("--backend render"),
        "{err}"
    );
}

#[test]
fn ordinary_user_enters_through_a_user_namespace() {
    if !privileged("ordinary_user_enters_through_a_user_namespace") {
        return;
    }
    // A throw-away identity with no account: the kernel needs only the numbers.
    let (uid, gid) = (60123u32, 60123u32);
    let env = Env::new();
    layer(&env, "user", &[("f", "visible to the user")]);
    fs::create_dir_all("/tmp/spfs-runtime").unwrap();
    fs::create_dir_all("/spfs").unwrap();
    chown_r(env.tmp.path(), uid, gid);
    fs::set_permissions(
        env.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let as_user = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                SPFS,
            ])
            .args(args)
            .env("SPFS_ROOT", &env.repo)
            .env("HOME", env.tmp.path())
            .output()
            .unwrap()
    };
    let script = "cat /spfs/f; echo; id -u; touch /spfs/x 2>&1 | grep -c Read-only";
    let out = as_user(&["run", "user", "--", "sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("visible to the user\n{uid}\n1\n"),
        "{}",
        stderr(&out)
    );
    // Editing and committing from inside work for the user too.
    let script = format!("{SPFS} edit && echo mine > /spfs/mine && {SPFS} commit layer -t user/edit >/dev/null && cat /spfs/mine");
    let out = as_user(&["run", "user", "--", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mine\n");
    assert_eq!(env.ok(&["read", "user/edit", "mine"]), "mine\n");
    assert_no_leaks();
}

#[test]
fn fuse_backend_serves_the_merged_stack_with_exact_modes() {
    if !privileged("fuse_backend_serves_the_merged_stack_with_exact_modes") {
        return;
    }
    let env = Env::new();
    let base = env.path("layers/fbase");
    write(&base.join("bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    write(&base.join("etc/conf"), b"conf", 0o640);
    write(&base.join("gone"), b"g", 0o644);
    env.commit(&base, &["fbase"]);
    // A layer with a deletion, made in a runtime.
    let script = format!("{SPFS} edit && rm /spfs/gone && echo new > /spfs/new && {SPFS} commit layer -t fedits >/dev/null");
    env.ok(&[
        "run",
        "--backend",
        "fuse",
        "fbase",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let listing = "ls /spfs | tr '\\n' ' '; stat -c '%a %n' /spfs/bin/tool /spfs/etc/conf; /spfs/bin/tool; grep -c spfs /proc/self/mountinfo";
    let out = env.ok(&[
        "run",
        "--backend",
        "fuse",
        "fbase+fedits",
        "--",
        "sh",
        "-c",
        listing,
    ]);
    assert!(
        out.starts_with("bin etc new 755 /spfs/bin/tool\n640 /spfs/etc/conf\ntool\n"),
        "{out}"
    );
    // Editable over FUSE: copy-up keeps the exact mode, commit records it.
    let script = format!("{SPFS} edit && echo more >> /spfs/etc/conf && stat -c %a /spfs/etc/conf && {SPFS} commit layer -t fedits2 >/dev/null");
    assert_eq!(
        env.ok(&[
            "run",
            "--backend",
            "fuse",
            "fbase",
            "--",
            "sh",
            "-c",
            &script
        ]),
        "640\n"
    );
    let modes = env.ok(&["ls", "-l", "fedits2", "etc"]);
    assert!(modes.starts_with("-rw-r-----"), "{modes}");
    assert_no_leaks();
}

#[test]
fn scratch_size_limits_edits() {
    if !privileged("scratch_size_limits_edits") {
        return;
    }
    let env = Env::new();
    env.ok(&["init"]);
    let fill = "dd if=/dev/zero of=/spfs/big bs=1M count=8 2>&1; echo rc=$?";
    let out = env.ok(&["run", "--size", "2M", "-", "--", "sh", "-c", fill]);
    assert!(
        out.contains("No space left") && !out.contains("rc=0"),
        "{out}"
    );
    let out = env.ok(&["run", "--size", "32M", "-", "--", "sh", "-c", fill]);
    assert!(out.contains("rc=0"), "{out}");
    assert_no_leaks();
}
