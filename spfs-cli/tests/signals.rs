//! Signals through runtimes, both backends: the command starts with a clean signal
//! state, Ctrl-C on a terminal and `kill` on spfs reach it, and spfs exits with its
//! status.

mod common;

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const BACKENDS: [&str; 2] = ["render", "fuse"];

fn stack(env: &Env) {
    let dir = env.path("layer");
    write(&dir.join("f"), b"x", 0o644);
    env.commit(&dir, &["l"]);
}

/// Field `name` of /proc/self/status as seen by a command inside the runtime.
fn status_field(env: &Env, backend: &str, name: &str) -> String {
    let out = env.ok(&[
        "run",
        "--backend",
        backend,
        "l",
        "--",
        "grep",
        &format!("^{name}:"),
        "/proc/self/status",
    ]);
    out.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn commands_start_with_no_blocked_or_ignored_signals() {
    if !privileged("commands_start_with_no_blocked_or_ignored_signals") {
        return;
    }
    let env = Env::new();
    stack(&env);
    // The baseline: the same command started directly by this process.
    let native = |name: &str| {
        let out = std::process::Command::new("grep")
            .args([&format!("^{name}:"), "/proc/self/status"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().nth(1).unwrap().to_string()
    };
    assert_eq!(native("SigBlk"), "0000000000000000");
    for backend in BACKENDS {
        assert_eq!(
            status_field(&env, backend, "SigBlk"),
            native("SigBlk"),
            "{backend}"
        );
        // Signals 32 and 33 are the C library's own (thread cancel, setxid): what it
        // does with them is not the caller's signal state.
        let user = |hex: String| u64::from_str_radix(&hex, 16).unwrap() & !(0b11 << 31);
        assert_eq!(
            user(status_field(&env, backend, "SigIgn")),
            user(native("SigIgn")),
            "{backend}"
        );
        // A shell's `wait` for a background job returns (SIGCHLD is delivered).
        let start = Instant::now();
        let out = env
            .cmd(&[
                "run",
                "--backend",
                backend,
                "l",
                "--",
                "sh",
                "-c",
                "sleep 1 & wait; echo done",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "done",
            "{backend}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{backend}: wait hung"
        );
    }
}

/// Spawns `cmd` as `spfs run --backend BACKEND l -- sh -c '...; exec sleep 60'` and
/// waits until the command runs; returns spfs and the command's pid.
fn spawn_sleeper(
    env: &Env,
    backend: &str,
    mut cmd: std::process::Command,
) -> (std::process::Child, i32) {
    let pidfile = env.path(&format!("pid-{backend}"));
    let _ = fs::remove_file(&pidfile);
    cmd.args([
        "run",
        "--backend",
        backend,
        "l",
        "--",
        "sh",
        "-c",
        &format!("echo $$ > {}; exec sleep 60", pidfile.display()),
    ]);
    let child = cmd.spawn().unwrap();
    wait_until("the command writes its pid", 20, || {
        fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    });
    let pid = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (child, pid)
}

#[test]
fn kill_reaches_the_command_and_spfs_exits_with_its_status() {
    if !privileged("kill_reaches_the_command_and_spfs_exits_with_its_status") {
        return;
    }
    let env = Env::new();
    stack(&env);
    for backend in BACKENDS {
        for (sig, name) in [
            (libc::SIGTERM, "TERM"),
            (libc::SIGINT, "INT"),
            (libc::SIGHUP, "HUP"),
        ] {
            let mut cmd = env.cmd(&[]);
            cmd.stdin(Stdio::null());
            let (mut child, cmd_pid) = spawn_sleeper(&env, backend, cmd);
            let start = Instant::now();
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(child.id() as i32, sig) };
            let status = child.wait().unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{backend} SIG{name}: spfs took {:?} to end",
                start.elapsed()
            );
            assert_eq!(status.code(), Some(128 + sig), "{backend} SIG{name}");
            assert!(gone(cmd_pid), "{backend} SIG{name}: the command survived");
        }
    }
}

#[test]
fn ctrl_c_on_a_terminal_interrupts_the_command() {
    if !privileged("ctrl_c_on_a_terminal_interrupts_the_command") {
        return;
    }
    let env = Env::new();
    stack(&env);
    for backend in BACKENDS {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = pty.slave.as_raw_fd();
        let mut cmd = env.cmd(&[]);
        cmd.stdin(pty.slave.try_clone().unwrap())
            .stdout(pty.slave.try_clone().unwrap())
            .stderr(pty.slave.try_clone().unwrap());
        // SAFETY: setsid and ioctl are async-signal-safe; the new session gets the pty
        // as its controlling terminal, so ^C reaches its foreground process group.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let (mut child, cmd_pid) = spawn_sleeper(&env, backend, cmd);
        drop(pty.slave);
        let start = Instant::now();
        let mut master = fs::File::from(pty.master);
        std::io::Write::write_all(&mut master, b"\x03").unwrap();
        // Drain the terminal so the writers never block.
        let drain = std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = master.read_to_end(&mut sink);
        });
        let status = child.wait().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{backend}: ^C took {:?}",
            start.elapsed()
        );
        assert_eq!(status.code(), Some(130), "{backend}: exit status after ^C");
        assert!(gone(cmd_pid), "{backend}: the command survived ^C");
        drop(drain);
    }
}
