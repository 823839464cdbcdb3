//! Kept views: image views that outlive their runtime, so that the next runtime of the
//! same stack finds the kernel's inodes and dentries of its tree already built.
//!
//! A fresh mount must create an inode for every file a walk reaches (two under an
//! image view's overlay), which holds a first `ls -lR` of a 45k-file stack at about
//! twice the time of a cached native tree. The keeper, one root process per host, holds
//! each image view a runtime mounted as a detached mount: a descriptor, in no mount
//! table, freed with the keeper. The next runtime of the same stack over the same
//! repository mounts a clone of it: the same filesystem instance, caches included.
//!
//! A view is kept [`KEEP_ENV`] seconds (default 600) after it was last handed out; the
//! keeper exits when it holds none. `spfs runtime views --drop` and `spfs clean` drop
//! views at once. If the keeper dies, the kernel frees every view it held; runtimes
//! keep their own clones.
//!
//! The keeper listens on a Unix socket (`/run/spfs/views.sock`, or [`SOCKET_ENV`]) that
//! only root may open, and each side checks that the other runs as root. One request
//! per connection: a line of text, with a mount descriptor alongside where one is
//! passed. `get ID` → `kept` with the view, or `none`; `put ID REPO` with a view →
//! `ok`; `list` → one `ID<TAB>REPO<TAB>IDLE-SECONDS` line per view; `drop [PREFIX]` →
//! `dropped N`.

use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, sockopt::PeerCredentials, ControlMessage, ControlMessageOwned,
    MsgFlags,
};

use crate::digest::Digest;
use crate::storage::LocalRepository;

/// Seconds a view is kept after its last use; `0` keeps none.
pub const KEEP_ENV: &str = "SPFS_VIEW_KEEP";
/// The keeper's socket, instead of `/run/spfs/views.sock`.
pub const SOCKET_ENV: &str = "SPFS_VIEW_KEEPER";
/// The hidden first argument that makes a binary act as the keeper.
pub const KEEPER_ARG: &str = "__spfs-view-keeper";

const DEFAULT_SOCKET: &str = "/run/spfs/views.sock";
const DEFAULT_KEEP_SECS: u64 = 600;
/// How long either side waits for the other before giving up on a request.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The descriptor a new keeper finds its first view at.
const FIRST_VIEW_FD: RawFd = 3;
/// Most views one keeper holds (one descriptor each); the least recently used go first.
const MAX_VIEWS: usize = 512;
/// Longest keep time honoured (a week).
const MAX_KEEP_SECS: u64 = 7 * 24 * 3600;

/// A view the keeper holds, as `spfs runtime views` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptView {
    /// The repository's payloads directory (device and inode, hex) and the stack's key.
    pub id: String,
    /// The repository the view serves from.
    pub repo: PathBuf,
    /// Seconds since it was last handed out.
    pub idle: u64,
}

/// Why the keeper could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// Talking to the keeper failed.
    #[error("the view keeper at {socket} did not answer: {source}")]
    Io {
        /// The keeper's socket.
        socket: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Something other than root listens at the keeper's socket.
    #[error("the view keeper at {socket} runs as uid {uid}, not root: refusing to use it")]
    NotRoot {
        /// The keeper's socket.
        socket: PathBuf,
        /// Who listens there.
        uid: u32,
    },
    /// The keeper refused the request: only root may use it.
    #[error("the view keeper at {socket} refused: only root may use it")]
    Refused {
        /// The keeper's socket.
        socket: PathBuf,
    },
    /// The keeper answered something this version does not understand.
    #[error("the view keeper at {socket} answered {answer:?}")]
    Answer {
        /// The keeper's socket.
        socket: PathBuf,
        /// Its answer.
        answer: String,
    },
}

/// Seconds views are kept (`SPFS_VIEW_KEEP`, default 600); `0` turns keeping off.
pub fn keep_secs() -> u64 {
    match std::env::var(KEEP_ENV) {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(|n| n.min(MAX_KEEP_SECS))
            .unwrap_or_else(|_| {
                tracing::warn!(
                    "{KEEP_ENV}={v:?} is not a number of seconds: using {DEFAULT_KEEP_SECS}"
                );
                DEFAULT_KEEP_SECS
            }),
        Err(_) => DEFAULT_KEEP_SECS,
    }
}

/// The keeper's socket.
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// What identifies `repo` among the keeper's views: its payloads directory's device
/// and inode, so the same stack in two repositories is two views.
pub fn repo_id(repo: &LocalRepository) -> Option<String> {
    let meta = std::fs::metadata(repo.root().join("payloads")).ok()?;
    Some(format!("{:x}.{:x}", meta.dev(), meta.ino()))
}

/// The view of the stack `manifests` over `repo`, as this process's user sees it.
pub fn view_id(repo: &LocalRepository, manifests: &[Digest]) -> Option<String> {
    Some(format!(
        "{}.{}",
        repo_id(repo)?,
        super::image_key(manifests).to_hex()
    ))
}

/// The kept view `id`, if the keeper runs and holds it.
pub fn fetch(id: &str) -> Option<OwnedFd> {
    match ask(&format!("get {id}\n"), None) {
        Ok(Some((answer, fd))) if answer.trim() == "kept" => fd,
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

/// Hands the detached view `view` to the keeper as `id`. False when no keeper runs.
pub fn put(id: &str, repo: &Path, view: &OwnedFd) -> Result<bool, KeeperError> {
    let line = format!("put {id} {}\n", hex_path(repo));
    match ask(&line, Some(view.as_raw_fd()))? {
        None => Ok(false),
        Some((answer, _)) if answer.trim() == "ok" => Ok(true),
        Some((answer, _)) => Err(KeeperError::Answer {
            socket: socket_path(),
            answer,
        }),
    }
}

/// The keeper's process id and the views it holds; `None` when no keeper runs.
pub fn list() -> Result<Option<(u32, Vec<KeptView>)>, KeeperError> {
    let Some((answer, _)) = ask("list\n", None)? else {
        return Ok(None);
    };
    let mut lines = answer.lines();
    let pid = lines
        .next()
        .and_then(|l| l.strip_prefix("keeper "))
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| KeeperError::Answer {
            socket: socket_path(),
            answer: answer.clone(),
        })?;
    let views = lines
        .filter_map(|line| {
            let mut f = line.split('\t');
            let (id, repo, idle) = (f.next()?, f.next()?, f.next()?);
            Some(KeptView {
                id: id.to_string(),
                repo: unhex_path(repo)?,
                idle: idle.parse().ok()?,
            })
        })
        .collect();
    Ok(Some((pid, views)))
}

/// What the ids of `repo`'s views start with (every id starts with `""`, for `None`);
/// `None` when `repo` has no payloads, so no views.
pub fn repo_prefix(repo: Option<&LocalRepository>) -> Option<String> {
    match repo {
        Some(repo) => repo_id(repo).map(|id| format!("{id}.")),
        None => Some(String::new()),
    }
}

/// Drops the kept view `id` (one that no longer mounts, so that a new one replaces it).
pub fn drop_view(id: &str) {
    if let Err(e) = drop_prefixed(id) {
        tracing::warn!("{e}");
    }
}

/// Drops the kept views of `repo` (all of them with `None`); how many it held. The
/// keeper exits once it holds none.
pub fn drop_views(repo: Option<&LocalRepository>) -> Result<usize, KeeperError> {
    match repo_prefix(repo) {
        Some(prefix) => drop_prefixed(&prefix),
        None => Ok(0),
    }
}

/// Drops the kept views whose ids start with `prefix`; how many.
fn drop_prefixed(prefix: &str) -> Result<usize, KeeperError> {
    match ask(&format!("drop {prefix}\n"), None)? {
        None => Ok(0),
        Some((answer, _)) => answer
            .trim()
            .strip_prefix("dropped ")
            .and_then(|n| n.parse().ok())
            .ok_or(KeeperError::Answer {
                socket: socket_path(),
                answer,
            }),
    }
}

/// Drops this host's kept views of `repo` after its payloads changed under them (a
/// clean removed some, a repair replaced some): how many. Only root's views are kept,
/// so for anyone else there is nothing to drop; a keeper that does not answer is
/// logged.
pub fn forget_repo(repo: &LocalRepository) -> usize {
    if !nix::unistd::geteuid().is_root() {
        return 0;
    }
    drop_views(Some(repo)).unwrap_or_else(|e| {
        tracing::warn!(
            "kept views of {} were not dropped: {e}",
            repo.root().display()
        );
        0
    })
}

/// Starts a keeper holding `view` as `id`, in the host's mount namespace `host_ns`
/// (not the runtime's, which it would otherwise keep alive), detached from the
/// caller's session, stdio and descriptors. Call before becoming a subreaper: the
/// keeper leaves its parent at once and must not be adopted by the runtime's monitor.
pub fn spawn(view: &OwnedFd, id: &str, repo: &Path, host_ns: &OwnedFd) -> std::io::Result<()> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("spfs-view-keeper")
        .arg(KEEPER_ARG)
        .arg(id)
        .arg(hex_path(repo))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (v, ns) = (view.as_raw_fd(), host_ns.as_raw_fd());
    // SAFETY: only async-signal-safe calls (setns, dup2, fcntl, close_range via
    // syscall, sigprocmask, signal) run in the child.
    unsafe {
        cmd.pre_exec(move || {
            crate::runtime::monitor::reset_signals();
            if libc::setns(ns, libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if v == FIRST_VIEW_FD {
                libc::fcntl(v, libc::F_SETFD, 0);
            } else if libc::dup2(v, FIRST_VIEW_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Whatever else is open stays behind at exec (a leaked pipe would keep a
            // reader of the runtime's output waiting for the keeper).
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            if libc::syscall(
                libc::SYS_close_range,
                (FIRST_VIEW_FD + 1) as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.spawn()?.wait()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "the view keeper did not start ({status})"
        )));
    }
    Ok(())
}

/// Sends `line` (and `fd`) to the keeper; its answer, or `None` when no keeper runs.
fn ask(line: &str, fd: Option<RawFd>) -> Result<Option<(String, Option<OwnedFd>)>, KeeperError> {
    let socket = socket_path();
    let io = |source| KeeperError::Io {
        socket: socket.clone(),
        source,
    };
    let stream = match connect(&socket) {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let uid = peer_uid(&stream).map_err(io)?;
    if uid != 0 {
        return Err(KeeperError::NotRoot { socket, uid });
    }
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    // A keeper that refuses closes at once; its answer is still there to read.
    let closed =
        |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET));
    match send(&stream, line, fd) {
        Err(e) if !closed(&e) => return Err(io(e)),
        _ => {}
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    match receive(&stream) {
        Ok((answer, _)) if answer.starts_with("refused") => Err(KeeperError::Refused { socket }),
        // A keeper on its way out closes without answering: as good as none.
        Ok((answer, None)) if answer.is_empty() => Ok(None),
        Err(e) if closed(&e) => Ok(None),
        other => other.map(Some).map_err(io),
    }
}

/// Connects to the keeper's socket without waiting on a full backlog for longer than
/// [`IO_TIMEOUT`]; `None` when nothing listens there.
fn connect(socket: &Path) -> std::io::Result<Option<UnixStream>> {
    use nix::sys::socket::{socket as new_socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = new_socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(socket)?;
    let started = Instant::now();
    loop {
        match nix::sys::socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ECONNREFUSED) => return Ok(None),
            // A full backlog: the keeper is busy or stuck.
            Err(nix::errno::Errno::EAGAIN) if started.elapsed() < IO_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(Some(stream))
}

fn peer_uid(stream: &UnixStream) -> std::io::Result<u32> {
    Ok(getsockopt(stream, PeerCredentials)
        .map_err(std::io::Error::from)?
        .uid())
}

/// Writes `text`, with `fd` passed alongside its first bytes.
fn send(mut stream: &UnixStream, text: &str, fd: Option<RawFd>) -> std::io::Result<()> {
    let bytes = text.as_bytes();
    let fds = fd.map(|f| [f]);
    let cmsgs: Vec<ControlMessage> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(std::io::Error::from)?;
    stream.write_all(&bytes[sent..])
}

/// Reads everything up to the end of the stream, and the descriptor passed with it.
fn receive(mut stream: &UnixStream) -> std::io::Result<(String, Option<OwnedFd>)> {
    let mut buf = vec![0u8; 4096];
    // Room for more descriptors than any request carries, so none is left installed
    // and unowned by a truncated message.
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let (n, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        let mut fd = None;
        for c in msg.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // SAFETY: the kernel installed this descriptor for us.
                    let owned = unsafe { OwnedFd::from_raw_fd(f) };
                    fd.get_or_insert(owned);
                }
            }
        }
        (msg.bytes, fd)
    };
    buf.truncate(n);
    if n > 0 {
        match stream.read_to_end(&mut buf) {
            // A peer that closed without reading all we sent resets the connection
            // once its answer has been read: the answer stands.
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => {}
            other => {
                other?;
            }
        }
    }
    Ok((String::from_utf8_lossy(&buf).into_owned(), fd))
}

/// A path as one hex token (paths may hold tabs, spaces and newlines).
fn hex_path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unhex_path(s: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

/// True if this process was started as the keeper.
pub fn is_keeper() -> bool {
    std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(KEEPER_ARG))
}

/// The keeper's `main`: holds the view at descriptor 3 (the arguments name it) and
/// whatever runtimes hand over, until none is left. Started by [`spawn`].
pub fn run_keeper() -> i32 {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let (Some(id), Some(repo)) = (args.first(), args.get(1).and_then(|r| unhex_path(r))) else {
        eprintln!("error: {KEEPER_ARG} is an internal entry point of spfs runtimes");
        return 2;
    };
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { libc::fcntl(FIRST_VIEW_FD, libc::F_GETFD) } < 0 {
        eprintln!("error: {KEEPER_ARG} expects a view at descriptor {FIRST_VIEW_FD}");
        return 2;
    }
    // SAFETY: `spawn` put the view there for us, and it is open.
    let first = unsafe { OwnedFd::from_raw_fd(FIRST_VIEW_FD) };
    // Leave the parent (the runtime's monitor waits for it) and its session.
    // SAFETY: the process is single-threaded (it was just started).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(_) => return 1,
    }
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    match serve(id.clone(), repo, first) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

struct Held {
    view: OwnedFd,
    repo: PathBuf,
    used: Instant,
}

fn serve(id: String, repo: PathBuf, first: OwnedFd) -> std::io::Result<()> {
    let socket = socket_path();
    trusted_dir(&socket)?;
    // The socket and lock are the keeper's alone from the moment they exist.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(socket.with_extension("lock"))?;
    // Another keeper runs (perhaps still binding its socket, or on its way out): hand
    // it the view, or take over once it has gone.
    let _lock = loop {
        match nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(held) => break held,
            Err((file, _)) => {
                if put(&id, &repo, &first).unwrap_or(false) {
                    return Ok(());
                }
                lock = file;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    let bound = std::fs::metadata(&socket)?.ino();
    let keep = Duration::from_secs(keep_secs());
    let mut views = BTreeMap::new();
    views.insert(
        id,
        Held {
            view: first,
            repo,
            used: Instant::now(),
        },
    );
    loop {
        let now = Instant::now();
        views.retain(|_, h: &mut Held| now.duration_since(h.used) < keep);
        let Some(next) = views.values().map(|h| h.used + keep).min() else {
            break;
        };
        let wait = next.saturating_duration_since(now).as_millis().min(60_000) as u16;
        let mut fds = [nix::poll::PollFd::new(
            listener.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if let Ok(n) = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(wait.max(1))) {
            if n > 0 {
                match listener.accept() {
                    Ok((stream, _)) => answer(&stream, &mut views),
                    // Out of descriptors, say: wait rather than spin.
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
    }
    // Leave the socket to whoever bound it since, if anyone did.
    if std::fs::metadata(&socket).is_ok_and(|m| m.ino() == bound) {
        let _ = std::fs::remove_file(&socket);
    }
    Ok(())
}

/// Makes sure the socket's directory exists and nobody but this user can change what
/// is in it: owned by this user, not writable by group or others, not a symlink.
fn trusted_dir(socket: &Path) -> std::io::Result<()> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if std::fs::symlink_metadata(dir).is_err() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || !crate::storage::files::written_only_by(&meta, me) {
        return Err(std::io::Error::other(format!(
            "{} must be a directory of uid {me} that nobody else may write",
            dir.display()
        )));
    }
    Ok(())
}

/// Answers one request; a client that is not root, or is too slow, gets nothing.
fn answer(stream: &UnixStream, views: &mut BTreeMap<String, Held>) {
    if peer_uid(stream).ok() != Some(0) {
        let _ = send(stream, "refused: only root may use the view keeper\n", None);
        return;
    }
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok((request, fd)) = receive(stream) else {
        return;
    };
    let mut words = request.split_whitespace();
    let (reply, pass) = match (words.next(), words.next(), words.next(), fd) {
        (Some("get"), Some(id), None, None) => match views.get_mut(id) {
            Some(held) => {
                held.used = Instant::now();
                ("kept\n".to_string(), Some(held.view.as_raw_fd()))
            }
            None => ("none\n".to_string(), None),
        },
        (Some("put"), Some(id), Some(repo), Some(view)) => match unhex_path(repo) {
            Some(repo) => {
                if !views.contains_key(id) && views.len() == MAX_VIEWS {
                    let oldest = views.iter().min_by_key(|(_, h)| h.used).map(|(i, _)| i);
                    if let Some(oldest) = oldest.cloned() {
                        views.remove(&oldest);
                    }
                }
                // A view already kept stays: its caches may be warm.
                let held = views.entry(id.to_string()).or_insert(Held {
                    view,
                    repo,
                    used: Instant::now(),
                });
                held.used = Instant::now();
                ("ok\n".to_string(), None)
            }
            None => ("error bad repository\n".to_string(), None),
        },
        (Some("list"), None, None, None) => {
            let now = Instant::now();
            let views: String = views
                .iter()
                .map(|(id, h)| {
                    format!(
                        "{id}\t{}\t{}\n",
                        hex_path(&h.repo),
                        now.duration_since(h.used).as_secs()
                    )
                })
                .collect();
            (format!("keeper {}\n{views}", std::process::id()), None)
        }
        (Some("drop"), prefix, None, None) => {
            let before = views.len();
            views.retain(|id, _| prefix.is_some_and(|p| !id.starts_with(p)));
            (format!("dropped {}\n", before - views.len()), None)
        }
        _ => ("error unknown request\n".to_string(), None),
    };
    let _ = send(stream, &reply, pass);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_survive_the_hex_token() {
        use std::os::unix::ffi::OsStrExt;
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/a b\tc\n\xff/repo"));
        let token = hex_path(odd);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(unhex_path(&token).as_deref(), Some(odd));
        assert_eq!(unhex_path("4"), None);
        assert_eq!(unhex_path("zz"), None);
    }
}
