//! Entering a private mount namespace (through a user namespace when not root).

use std::fs;

use nix::sched::{unshare, CloneFlags};

use crate::error::{Error, NamespaceStep, Result};

/// How the runtime obtained the right to mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Running as root: a plain private mount namespace.
    Root,
    /// An ordinary user: a user namespace mapping the user to itself owns the mount
    /// namespace. The command keeps the user's identity and no capabilities.
    UserNamespace,
}

/// Moves the calling process into a new, private mount namespace. Must be called
/// while the process has a single thread.
pub fn enter_private_namespace() -> Result<Privilege> {
    let privilege = if nix::unistd::geteuid().is_root() {
        unshare(CloneFlags::CLONE_NEWNS).map_err(|e| Error::Namespace {
            step: NamespaceStep::MountNamespace,
            source: e.into(),
        })?;
        Privilege::Root
    } else {
        let uid = nix::unistd::geteuid();
        let gid = nix::unistd::getegid();
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(|e| {
            Error::Namespace {
                step: NamespaceStep::UserNamespace { uid: uid.as_raw() },
                source: e.into(),
            }
        })?;
        let write = |file: &'static str, text: String| -> Result<()> {
            fs::write(file, text).map_err(|e| Error::Namespace {
                step: NamespaceStep::MapUser {
                    file,
                    uid: uid.as_raw(),
                },
                source: e,
            })
        };
        write("/proc/self/setgroups", "deny".into())?;
        write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
        write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
        Privilege::UserNamespace
    };
    // Nothing mounted from here on may propagate back to the parent namespace.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| Error::Namespace {
        step: NamespaceStep::MakeRootPrivate,
        source: e.into(),
    })?;
    Ok(privilege)
}

/// True if the kernel lists overlayfs as available.
pub fn overlay_available() -> bool {
    fs::read_to_string("/proc/filesystems")
        .map(|t| {
            t.lines()
                .any(|l| l.split_whitespace().last() == Some("overlay"))
        })
        .unwrap_or(false)
}

/// When a process started (clock ticks since boot), which with its pid identifies it
/// even after the pid is reused. Readable for any process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    stat_fields(pid).and_then(|(_, start)| start)
}

/// True if process `pid`, started at `started`, exists and has not exited (a zombie
/// waiting to be reaped has exited).
pub fn process_running(pid: u32, started: u64) -> bool {
    matches!(stat_fields(pid), Some((state, Some(start))) if start == started && state != 'Z' && state != 'X')
}

/// The state letter and start time of a process, from /proc/PID/stat.
fn stat_fields(pid: u32) -> Option<(char, Option<u64>)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18).and_then(|s| s.parse().ok())))
}
