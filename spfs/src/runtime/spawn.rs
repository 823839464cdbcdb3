//! Starting a runtime as a child of any process, threaded or not.
//!
//! Entering a mount namespace needs a single-threaded process, so a runtime is started
//! by re-executing a binary (by default the current one) through a hidden entry point:
//! the binary's `main` calls [`monitor_entry`] first, which turns that fresh process
//! into the runtime's monitor. The caller gets a [`RuntimeChild`] whose
//! [`wait`](RuntimeChild::wait) forwards interrupting signals and returns the command's
//! exit status, or the runtime's setup error as an [`Error`].
//!
//! Guarantees, the same as for a runtime entered directly: a private namespace, no
//! mount left behind, SIGINT/SIGTERM/SIGHUP/SIGQUIT forwarded (after
//! [`crate::signals::install`]), and if the spawning thread dies the monitor is killed,
//! and with it the command and every mount of the runtime.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::monitor::{self, RunOptions};
use crate::error::{Error, Result};
use crate::storage::LocalRepository;

/// The hidden first argument that makes a binary act as a runtime monitor.
pub const MONITOR_ARG: &str = "__spfs-runtime-monitor";

/// The environment variable carrying the monitor's request (removed on entry).
const REQUEST_VAR: &str = "SPFS_RUNTIME_REQUEST";

/// What the parent asks of the monitor.
#[derive(Serialize, Deserialize)]
struct Request {
    repo: PathBuf,
    options: RunOptions,
    status_fd: RawFd,
}

/// What the monitor reports back through the status pipe.
#[derive(Serialize, Deserialize)]
enum Outcome {
    /// The command ran; its exit status (128+N when killed by signal N).
    Exited(i32),
    /// The runtime could not be set up or torn down.
    Failed {
        message: String,
        #[serde(default)]
        help: Vec<String>,
        interrupted: bool,
    },
}

/// True if this process was started as a runtime monitor (so `main` can set up its
/// logging before calling [`monitor_entry`]).
pub fn is_monitor() -> bool {
    std::env::args_os().nth(1).as_deref() == Some(OsStr::new(MONITOR_ARG))
}

/// Runs the monitor if this process was started as one, returning its exit code.
///
/// Call it first thing in `main`, before any thread exists:
/// `if let Some(code) = spfs::runtime::spawn::monitor_entry() { std::process::exit(code) }`.
pub fn monitor_entry() -> Option<i32> {
    if super::image::keeper::is_keeper() {
        return Some(super::image::keeper::run_keeper());
    }
    if !is_monitor() {
        return None;
    }
    Some(run_monitor())
}

fn run_monitor() -> i32 {
    let Some(raw) = std::env::var_os(REQUEST_VAR) else {
        eprintln!("error: {MONITOR_ARG} is an internal entry point of spfs runtimes");
        eprintln!("  help: start runtimes with 'spfs run' or 'spk env'");
        return 2;
    };
    // Single-threaded here, so changing the environment is sound.
    std::env::remove_var(REQUEST_VAR);
    let request: Request = match serde_json::from_slice(raw.as_encoded_bytes()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: malformed runtime request: {e}");
            return 2;
        }
    };
    // SAFETY: the parent handed this descriptor over for our exclusive use.
    let status = unsafe { OwnedFd::from_raw_fd(request.status_fd) };
    // The command must not inherit the status pipe.
    let _ = nix::fcntl::fcntl(
        &status,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    crate::signals::install();
    // Root's FUSE-backend runtimes may start a keeper of image views in this mount
    // namespace, unless it is another runtime's (a nested runtime), which the keeper
    // would keep alive. Other runtimes skip the check (a read of the mount table).
    let may_keep =
        request.options.backend == super::record::Backend::Fuse && nix::unistd::geteuid().is_root();
    let host_ns = (may_keep && !monitor::inside_a_runtime())
        .then(|| {
            std::fs::File::open("/proc/self/ns/mnt")
                .ok()
                .map(OwnedFd::from)
        })
        .flatten();
    let result = monitor::prepare().and_then(|privilege| {
        let repo = LocalRepository::open(&request.repo)?;
        monitor::run(&repo, privilege, request.options, host_ns)
    });
    let (outcome, code) = match result {
        Ok(code) => (Outcome::Exited(code), code),
        Err(e) => (
            Outcome::Failed {
                interrupted: matches!(e, Error::Interrupted),
                message: e.to_string(),
                help: crate::error::Help::help(&e),
            },
            1,
        ),
    };
    let text = serde_json::to_vec(&outcome).unwrap_or_default();
    let _ = nix::unistd::write(&status, &text);
    code
}

/// A runtime to start: the repository, the [`RunOptions`], and how to start the monitor
/// (its binary, environment and stdio, all inherited by the command).
pub struct RuntimeCommand {
    repo: PathBuf,
    options: RunOptions,
    monitor_exe: PathBuf,
    envs: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
}

impl RuntimeCommand {
    /// A runtime over `repo` with `options`, monitored by a re-execution of the current
    /// binary (whose `main` must call [`monitor_entry`]).
    pub fn new(repo: &LocalRepository, options: RunOptions) -> Self {
        RuntimeCommand {
            repo: repo.root().to_path_buf(),
            options,
            monitor_exe: PathBuf::from("/proc/self/exe"),
            envs: Vec::new(),
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }

    /// Uses another binary (one whose `main` calls [`monitor_entry`]) as the monitor.
    pub fn monitor_exe(&mut self, exe: impl AsRef<Path>) -> &mut Self {
        self.monitor_exe = exe.as_ref().to_path_buf();
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.envs.push((
            key.as_ref().to_os_string(),
            Some(value.as_ref().to_os_string()),
        ));
        self
    }

    /// Removes an environment variable for the command.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.envs.push((key.as_ref().to_os_string(), None));
        self
    }

    /// The command's standard input.
    pub fn stdin(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.stdin = Some(s.into());
        self
    }

    /// The command's standard output.
    pub fn stdout(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.stdout = Some(s.into());
        self
    }

    /// The command's standard error (also where the monitor reports problems).
    pub fn stderr(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.stderr = Some(s.into());
        self
    }

    /// Starts the monitor. The calling thread must outlive the runtime: if it dies, the
    /// monitor is killed (parent-death signal).
    pub fn spawn(&mut self) -> Result<RuntimeChild> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::Supervision {
                action: "create the runtime's status pipe".into(),
                source: e.into(),
            })?;
        let request = Request {
            repo: self.repo.clone(),
            options: self.options.clone(),
            status_fd: write.as_raw_fd(),
        };
        let encoded = serde_json::to_string(&request).map_err(|e| Error::Supervision {
            action: "encode the runtime request".into(),
            source: e.into(),
        })?;
        let mut cmd = Command::new(&self.monitor_exe);
        cmd.arg(MONITOR_ARG).env(REQUEST_VAR, encoded);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(s) = self.stdin.take() {
            cmd.stdin(s);
        }
        if let Some(s) = self.stdout.take() {
            cmd.stdout(s);
        }
        if let Some(s) = self.stderr.take() {
            cmd.stderr(s);
        }
        let parent = std::process::id() as i32;
        let fd = write.as_raw_fd();
        // SAFETY: only async-signal-safe calls (prctl, getppid, fcntl, sigprocmask,
        // _exit) run in the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(137);
                }
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        // Signals that arrive from here on are forwarded, even before the wait starts.
        let signals_seen = crate::signals::count();
        let child = cmd.spawn().map_err(|e| Error::Supervision {
            action: format!("start the runtime monitor {}", self.monitor_exe.display()),
            source: e,
        })?;
        drop(write);
        Ok(RuntimeChild {
            child,
            status: read,
            signals_seen,
        })
    }

    /// Starts the runtime and waits for it: the command's exit status.
    pub fn status(&mut self) -> Result<i32> {
        self.spawn()?.wait()
    }
}

/// A running runtime started by [`RuntimeCommand::spawn`].
pub struct RuntimeChild {
    child: std::process::Child,
    status: OwnedFd,
    /// How many interrupting signals this process had received when the child started.
    signals_seen: usize,
}

impl RuntimeChild {
    /// The monitor's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The command's standard output, when it was piped.
    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The command's standard error, when it was piped.
    pub fn stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits for the runtime to end, forwarding each interrupting signal this process
    /// receives to it; returns the command's exit status (128+N when it was killed by
    /// signal N), or why the runtime could not run.
    pub fn wait(mut self) -> Result<i32> {
        let status = self.wait_forwarding()?;
        let mut text = Vec::new();
        let _ = std::fs::File::from(self.status).read_to_end(&mut text);
        match serde_json::from_slice::<Outcome>(&text) {
            Ok(Outcome::Exited(code)) => Ok(code),
            Ok(Outcome::Failed { interrupted, .. }) if interrupted => Err(Error::Interrupted),
            Ok(Outcome::Failed { message, help, .. }) => Err(Error::Spawned { message, help }),
            Err(_) => {
                use std::os::unix::process::ExitStatusExt;
                Err(Error::MonitorLost {
                    pid: self.child.id(),
                    signal: status.signal(),
                    status: status.code().unwrap_or(-1),
                })
            }
        }
    }

    fn wait_forwarding(&mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
        let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw) });
        let mut seen = self.signals_seen;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| Error::Supervision {
                action: "wait for the runtime".into(),
                source: e,
            })? {
                return Ok(status);
            }
            let now = crate::signals::count();
            if now != seen {
                seen = now;
                if let Some(sig) = crate::signals::received() {
                    // SAFETY: kill on our own child's pid, which we have not reaped.
                    unsafe { libc::kill(pid, sig) };
                }
            }
            match &pidfd {
                Some(fd) => {
                    let mut pfd = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd; EINTR (a signal) just loops.
                    unsafe { libc::poll(&mut pfd, 1, 50) };
                }
                None => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    }
}
