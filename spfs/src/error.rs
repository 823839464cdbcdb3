//! Errors of the spfs library. Each error's message (its `Display`) names what failed
//! and on which input; what to do about it comes from [`Help::help`], one hint a line,
//! so that front ends can lay both out the same way.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::digest::Digest;

/// Result type of the spfs library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in spfs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A string that should be a full digest is not.
    #[error("'{0}' is not a digest: expected 64 hex characters")]
    InvalidDigest(String),

    /// A reference names nothing in the repository.
    #[error("unknown reference '{0}': no tag or object matches")]
    UnknownReference(String),

    /// A digest prefix matches several objects.
    #[error("ambiguous reference '{prefix}': it matches {} objects ({})", candidates.len(), candidates.iter().map(|d| d.short()).collect::<Vec<_>>().join(", "))]
    AmbiguousReference {
        /// The prefix given.
        prefix: String,
        /// What it matched.
        candidates: Vec<Digest>,
    },

    /// A reference string is malformed.
    #[error("invalid reference '{reference}': {reason}")]
    InvalidReference {
        /// The reference given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A tag name is malformed.
    #[error("invalid tag name '{name}': {reason}")]
    InvalidTag {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A tag has fewer history entries than asked for.
    #[error("tag '{name}' has {available} version(s): '{name}~{requested}' does not exist")]
    TagHistoryTooShort {
        /// The tag.
        name: String,
        /// The `~N` asked for.
        requested: usize,
        /// How many entries exist.
        available: usize,
    },

    /// An object is referenced but not stored.
    #[error("object {0} is missing from the repository")]
    MissingObject(Digest),

    /// A payload is referenced but not stored.
    #[error("payload {0} is missing from the repository")]
    MissingPayload(Digest),

    /// Objects the local repository lacks that no remote tried holds either.
    #[error("{} object(s) are neither in the local repository nor in any remote tried: {}", digests.len(), digests.iter().map(|d| d.short()).collect::<Vec<_>>().join(", "))]
    NotInRemotes {
        /// The objects that were not found.
        digests: Vec<Digest>,
        /// The remotes that were asked, in order.
        tried: Vec<String>,
    },

    /// A stored object or payload does not decode or does not match its digest.
    #[error("corrupt {what} {digest} at {}: {reason}", path.display())]
    Corrupt {
        /// "object" or "payload".
        what: &'static str,
        /// The digest it is stored under.
        digest: Digest,
        /// Its file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// An spfs archive (`spfs export`/`import`, `tar://`) that cannot be used.
    #[error("archive {}: {reason}", path.display())]
    Archive {
        /// The archive file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An object was found but is not of the kind the operation needs.
    #[error("{reference} is a {actual}, not {expected}")]
    WrongKind {
        /// The reference given.
        reference: String,
        /// The kind found.
        actual: &'static str,
        /// What the operation wanted.
        expected: &'static str,
    },

    /// No repository exists at the given path.
    #[error("no spfs repository at {}", .0.display())]
    NoRepository(PathBuf),

    /// The repository was written by an incompatible version.
    #[error("repository {} has format version {found}, this build supports version {supported}", path.display())]
    UnsupportedRepository {
        /// The repository root.
        path: PathBuf,
        /// The VERSION it declares.
        found: String,
        /// The version this build writes.
        supported: u32,
    },

    /// A populated directory without a `VERSION` file was given as a repository.
    #[error("{} is not empty but has no VERSION file, so it is not an spfs repository (or its VERSION was deleted); spfs will not write into it", .0.display())]
    UnversionedRepository(PathBuf),

    /// A repository path holds a file of the wrong type (a FIFO, device, link...).
    #[error("{} is a {found}, but the repository only accepts a {expected} there: the repository is damaged or tampered with", path.display())]
    UnexpectedFileType {
        /// The offending path.
        path: PathBuf,
        /// What is there ("fifo", "symbolic link", "character device", ...).
        found: &'static str,
        /// What the repository expects ("regular file" or "directory").
        expected: &'static str,
    },

    /// A repository file is larger than its format allows.
    #[error("{} holds {size} bytes, more than the {limit} bytes its format allows: the repository is damaged", path.display())]
    FileTooLarge {
        /// The offending file.
        path: PathBuf,
        /// Its size (or how much was read before giving up).
        size: u64,
        /// The most the format allows.
        limit: u64,
    },

    /// A payload's size differs from what the manifest records: it was truncated or
    /// replaced.
    #[error("corrupt payload {digest} at {}: it holds {actual} bytes but the manifest records {expected} (truncated or replaced)", path.display())]
    PayloadSize {
        /// The payload's digest.
        digest: Digest,
        /// Its file.
        path: PathBuf,
        /// The size the manifest records.
        expected: u64,
        /// The size found.
        actual: u64,
    },

    /// A commit failed; says what, if anything, it left in the repository.
    #[error("{source} ({})", commit_remains(*remains))]
    CommitFailed {
        /// Why it failed.
        source: Box<Error>,
        /// Payloads and objects (count, bytes) that had already been published when it
        /// failed, if any.
        remains: Option<(usize, u64)>,
    },

    /// A runtime started by [`crate::runtime::spawn`] failed to set up or tear down;
    /// its monitor's report.
    #[error("{message}")]
    Spawned {
        /// What failed.
        message: String,
        /// What to do about it.
        help: Vec<String>,
    },

    /// A file of a kind the store cannot hold.
    #[error("cannot commit {}: it is a {kind}", path.display())]
    SpecialFile {
        /// The offending path.
        path: PathBuf,
        /// "socket", "fifo", "block device" or "character device".
        kind: &'static str,
    },

    /// A path inside a manifest does not exist.
    #[error("no such path '{path}' in {reference}")]
    NoSuchPath {
        /// The path asked for.
        path: String,
        /// The reference searched.
        reference: String,
    },

    /// A path given to the kernel contains a NUL byte.
    #[error("path {} contains a NUL byte", .0.display())]
    NulInPath(PathBuf),

    /// A directory was expected: a directory to commit, or a repository root.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
        /// What the directory was for.
        purpose: DirectoryPurpose,
    },

    /// A render's destination already holds files.
    #[error("{} is not empty", .0.display())]
    RenderTargetNotEmpty(PathBuf),

    /// A platform was asked for with nothing in it.
    #[error("a platform needs at least one layer")]
    EmptyPlatform,

    /// Platforms nest deeper than the walk allows.
    #[error("platforms nest more than {0} deep")]
    PlatformTooDeep(usize),

    /// A tag file line does not parse.
    #[error("corrupt tag file {} line {line}: expected '<digest> <time> <user>'", path.display())]
    CorruptTagFile {
        /// The tag file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },

    /// A duration (`15m`, `7d`) does not parse.
    #[error("'{0}' is not a duration")]
    InvalidDuration(String),

    /// A runtime backend name is not one of those known.
    #[error("unknown runtime backend '{0}'")]
    UnknownBackend(String),

    /// A remote address does not parse.
    #[error("'{input}' is not a remote address: {problem}")]
    InvalidAddress {
        /// The text given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },

    /// A configured remote could not be opened.
    #[error("remote '{name}' cannot be opened: {reason}")]
    RemoteUnavailable {
        /// The remote's name.
        name: String,
        /// Why it could not be opened.
        reason: String,
    },

    /// A remote name is neither configured nor an address.
    #[error(
        "no remote named '{name}' is configured{}",
        configured_list(configured)
    )]
    UnknownRemote {
        /// The name given.
        name: String,
        /// The names that are configured.
        configured: Vec<String>,
    },

    /// `SPFS_CONFIG` names something that is not a file.
    #[error("SPFS_CONFIG names {}, which is not a file", .0.display())]
    ConfigNotAFile(PathBuf),

    /// A configuration file is malformed (not TOML, unknown section or key, wrong type).
    #[error("configuration file {}: {problem}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        problem: String,
    },

    /// A configuration value (from a file or an environment variable) is invalid.
    #[error("{}: {source}", config_origin(origin, key))]
    ConfigValue {
        /// Where the value comes from.
        origin: crate::config::Source,
        /// Its key in a file (`remote.origin.address`); `None` for variables.
        key: Option<String>,
        /// What is wrong with the value.
        source: Box<Error>,
    },

    /// A runtime name is not allowed.
    #[error("invalid runtime name '{name}': {reason}")]
    InvalidRuntimeName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A runtime of this name exists already.
    #[error("a runtime named '{0}' already exists")]
    RuntimeExists(String),

    /// No runtime of this name exists.
    #[error("no runtime named '{0}'")]
    UnknownRuntime(String),

    /// A runtime record on disk does not decode.
    #[error("runtime record {} has no valid '{field}'", path.display())]
    CorruptRuntimeRecord {
        /// The record file.
        path: PathBuf,
        /// The missing or malformed field.
        field: String,
    },

    /// `--rerun` of a runtime that is still running.
    #[error("runtime '{name}' is still running (pid {pid})")]
    RuntimeStillRunning {
        /// The runtime.
        name: String,
        /// Its monitor's process id.
        pid: u32,
    },

    /// `--rerun` of a runtime whose edits were not kept.
    #[error("runtime '{0}' was not kept")]
    RuntimeNotKept(String),

    /// A command that works on the current runtime ran outside any.
    #[error("not inside an spfs runtime (SPFS_RUNTIME is not set)")]
    NotInRuntime,

    /// A path given for a runtime's edits is not below /spfs.
    #[error("'{0}' is not a path inside /spfs")]
    NotUnderSpfs(String),

    /// A requested link outside /spfs cannot be made.
    #[error("cannot create the runtime link {} -> {}: {reason}", link.display(), target.display())]
    InvalidLink {
        /// Where the link would be.
        link: PathBuf,
        /// What it would point to.
        target: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },

    /// Two link directories contain each other.
    #[error("runtime links in {} and {} nest", outer.display(), inner.display())]
    NestedLinkDirs {
        /// The outer directory.
        outer: PathBuf,
        /// The directory inside it.
        inner: PathBuf,
    },

    /// A mount point does not exist and this user may not create it.
    #[error("the mount point {} does not exist", .0.display())]
    MissingMountPoint(PathBuf),

    /// The private mount namespace of a runtime could not be set up.
    #[error("cannot {step}: {source}")]
    Namespace {
        /// The step that failed.
        step: NamespaceStep,
        /// The kernel's answer.
        source: io::Error,
    },

    /// overlayfs is missing from the kernel.
    #[error("overlayfs is not available in this kernel")]
    OverlayUnavailable,

    /// The kernel's FUSE device does not exist.
    #[error("/dev/fuse does not exist")]
    NoFuseDevice,

    /// A stack has more layers than one overlay mount can take.
    #[error("{layers} lower layers exceed the overlayfs limit of {limit}")]
    TooManyLayers {
        /// Layers asked for.
        layers: usize,
        /// The most one overlay accepts.
        limit: usize,
    },

    /// The legacy mount(2) option string of an overlay exceeds one page.
    #[error("{layers} layers need a {bytes}-byte overlay option string, over the {limit}-byte limit of this kernel's mount(2)")]
    OverlayOptionsTooLong {
        /// Layers asked for.
        layers: usize,
        /// Length of the option string.
        bytes: usize,
        /// The limit.
        limit: usize,
    },

    /// A mount, bind, remount or unmount failed.
    #[error("cannot {action} {}: {source}{}", target.display(), kernel_detail(kernel))]
    Mount {
        /// What was being done ("mount tmpfs (mode=0755) at", "unmount", ...).
        action: String,
        /// The mount point.
        target: PathBuf,
        /// The kernel's error.
        source: io::Error,
        /// Messages the kernel attached to the filesystem context, if any.
        kernel: Option<String>,
    },

    /// Rendering a layer for an overlay needs whiteouts (character devices 0/0) and the
    /// kernel or filesystem refused one.
    #[error("cannot create whiteout {}: {source}", path.display())]
    Whiteout {
        /// The whiteout's path.
        path: PathBuf,
        /// The kernel's error.
        source: io::Error,
    },

    /// A user's private render directory is not private: another user owns it or may
    /// enter it, or it is not a directory.
    #[error("private render directory {} {problem}", path.display())]
    PrivateRenders {
        /// The directory (`renders/v2/private/<uid>`).
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// A layer that deletes files cannot be rendered for an unprivileged runtime,
    /// because the kernel refuses overlay whiteouts to ordinary users.
    #[error("layer manifest {0} deletes files, and this kernel or filesystem refuses the overlay whiteouts that represent deletions to an ordinary user (Linux 5.8 and later allow them)")]
    WhiteoutsRefused(Digest),

    /// A payload a runtime needs is not in the repository.
    #[error("payload {digest} of /spfs/{path} is missing from the repository")]
    MissingRuntimePayload {
        /// The payload.
        digest: Digest,
        /// The file of the stack that needs it.
        path: String,
    },

    /// A payload is missing both locally and from the `--payloads-from` remote.
    #[error("payload {digest} is missing locally and from {fallback}")]
    MissingFallbackPayload {
        /// The payload.
        digest: Digest,
        /// The remote it was also looked for in.
        fallback: String,
    },

    /// An object of a stack read lazily (`--payloads-from`) is missing or corrupt in
    /// the remote; nothing of it was stored locally.
    #[error("cannot read object {digest} of the stack from {remote}: {source}")]
    RemoteStackObject {
        /// The object.
        digest: Digest,
        /// The remote it was read from.
        remote: String,
        /// What went wrong.
        source: Box<Error>,
    },

    /// A platform cannot be committed over layers that are only in the lazy remote.
    #[error(
        "cannot commit a platform: the runtime's layers are read from {remote}, not stored locally"
    )]
    StackNotLocal {
        /// The remote the layers are read from.
        remote: String,
    },

    /// The runtime's command could not be started.
    #[error("cannot start {program} in the runtime: {source}")]
    StartCommand {
        /// The program.
        program: String,
        /// Why.
        source: io::Error,
    },

    /// A system call of the runtime's monitor or of its spawner failed.
    #[error("cannot {action}: {source}")]
    Supervision {
        /// What was being done ("wait for the command", ...).
        action: String,
        /// Why.
        source: io::Error,
    },

    /// A spawned runtime's monitor ended without reporting.
    #[error("the runtime's monitor (pid {pid}) {}", monitor_end(*signal, *status))]
    MonitorLost {
        /// The monitor's process id.
        pid: u32,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// Its exit status otherwise.
        status: i32,
    },

    /// A change asked of a running runtime's monitor was not applied.
    #[error("{}", monitor_request(name, *pid, problem))]
    MonitorRequest {
        /// The runtime.
        name: String,
        /// Its monitor's process id.
        pid: u32,
        /// What went wrong.
        problem: RequestProblem,
    },

    /// The operation was interrupted by a signal; nothing partial was kept.
    #[error("interrupted; no partial objects were kept")]
    Interrupted,

    /// The kernel's FUSE device cannot be used on this machine.
    #[error("FUSE is not available: {0}")]
    FuseUnavailable(FuseDevice),

    /// Mounting or starting a FUSE filesystem failed.
    #[error("FUSE filesystem at {}: {problem}", path.display())]
    Fuse {
        /// The mount point.
        path: PathBuf,
        /// What went wrong.
        problem: FuseProblem,
    },

    /// A request to a remote store (S3) failed, or the remote is not usable.
    #[error("{action} {address}: {reason}")]
    Remote {
        /// What was being done ("reading payload 1a2b... from", "opening").
        action: String,
        /// The remote's address (`s3://bucket/prefix`) or key.
        address: String,
        /// What went wrong.
        reason: String,
        /// What to do about it.
        hint: Option<String>,
    },

    /// An I/O failure on a named path.
    #[error("{}", io_message(action, path, source))]
    Io {
        /// What was being done ("reading", "writing payload for", ...).
        action: String,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// What a directory was expected for (see [`Error::NotADirectory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryPurpose {
    /// The tree to commit.
    Commit,
    /// A repository root.
    Repository,
}

/// A step of entering a runtime's private namespace (see [`Error::Namespace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceStep {
    /// `unshare(CLONE_NEWNS)` as root.
    MountNamespace,
    /// `unshare(CLONE_NEWUSER | CLONE_NEWNS)` as an ordinary user.
    UserNamespace {
        /// The user.
        uid: u32,
    },
    /// Writing `/proc/self/{uid_map,gid_map,setgroups}`.
    MapUser {
        /// The file written.
        file: &'static str,
        /// The user.
        uid: u32,
    },
    /// Making `/` private so that no mount propagates out.
    MakeRootPrivate,
}

impl fmt::Display for NamespaceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespaceStep::MountNamespace => f.write_str("create a mount namespace"),
            NamespaceStep::UserNamespace { uid } => {
                write!(f, "create a user namespace as uid {uid}")
            }
            NamespaceStep::MapUser { file, uid } => {
                write!(f, "write {file} to map uid {uid} into the user namespace")
            }
            NamespaceStep::MakeRootPrivate => f.write_str("make / private in the new namespace"),
        }
    }
}

/// Why a request to a runtime's monitor failed (see [`Error::MonitorRequest`]).
#[derive(Debug)]
pub enum RequestProblem {
    /// The monitor process is gone.
    NotRunning,
    /// The monitor could not be signalled.
    Signal(io::Error),
    /// The monitor did not answer in time.
    TimedOut(std::time::Duration),
    /// The monitor answered but could not switch to the new stack.
    StackKept,
}

fn monitor_request(name: &str, pid: u32, problem: &RequestProblem) -> String {
    match problem {
        RequestProblem::NotRunning => {
            format!("the monitor of runtime '{name}' (pid {pid}) is not running")
        }
        RequestProblem::Signal(e) => {
            format!("cannot signal the monitor of runtime '{name}' (pid {pid}): {e}")
        }
        RequestProblem::TimedOut(t) => format!(
            "the monitor of runtime '{name}' did not apply the change within {} s",
            t.as_secs()
        ),
        RequestProblem::StackKept => format!(
            "the monitor of runtime '{name}' could not switch to the new stack and kept the old one"
        ),
    }
}

fn monitor_end(signal: Option<i32>, status: i32) -> String {
    match signal {
        Some(sig) => {
            format!("was killed by signal {sig}; its mounts went with its namespace")
        }
        None => format!("exited with status {status} without reporting"),
    }
}

fn kernel_detail(kernel: &Option<String>) -> String {
    match kernel {
        Some(k) if !k.is_empty() => format!(" (kernel: {k})"),
        _ => String::new(),
    }
}

fn configured_list(configured: &[String]) -> String {
    if configured.is_empty() {
        String::new()
    } else {
        format!(" (configured: {})", configured.join(", "))
    }
}

fn config_origin(origin: &crate::config::Source, key: &Option<String>) -> String {
    match (origin, key) {
        (crate::config::Source::File(path), Some(key)) => {
            format!("configuration file {}: {key}", path.display())
        }
        (origin, Some(key)) => format!("{origin}: {key}"),
        (origin, None) => origin.to_string(),
    }
}

fn commit_remains(remains: Option<(usize, u64)>) -> String {
    match remains {
        None => "nothing this commit wrote was kept".into(),
        Some((n, bytes)) => format!(
            "{n} file(s) ({bytes} bytes) this commit had already published remain in the \
             repository; no tag references them, and a future 'spfs clean' reclaims them"
        ),
    }
}

fn io_message(action: &str, path: &std::path::Path, err: &io::Error) -> String {
    format!("{action} {}: {err}", path.display())
}

/// Why `/dev/fuse` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FuseDevice {
    /// The device node does not exist.
    #[error("/dev/fuse does not exist")]
    Missing,
    /// The device exists but this user may not open it.
    #[error("/dev/fuse is not readable and writable by this user")]
    NotPermitted,
    /// Opening it failed otherwise.
    #[error("cannot open /dev/fuse: {0}")]
    Open(io::Error),
}

/// What went wrong while mounting or starting a FUSE filesystem.
#[derive(Debug, thiserror::Error)]
pub enum FuseProblem {
    /// The mount point cannot be resolved.
    #[error("the mount point is not usable: {0}")]
    MountPoint(io::Error),
    /// The mount point is not a directory.
    #[error("the mount point is not a directory")]
    NotADirectory,
    /// The repository to fetch missing payloads from cannot be opened.
    #[error("cannot use {remote} to fetch missing payloads from: {source}")]
    Fallback {
        /// The remote's address.
        remote: String,
        /// Why it cannot be opened.
        source: Box<Error>,
    },
    /// mount(2) refused.
    #[error("mount(2) failed: {0}")]
    Mount(nix::errno::Errno),
    /// The kernel and the server did not agree on the protocol.
    #[error("FUSE handshake failed: {0}")]
    Handshake(io::Error),
    /// The server's threads could not be started.
    #[error("starting the FUSE server failed: {0}")]
    Server(io::Error),
    /// The mount point shows something other than the served root.
    #[error("the mount point does not show the served root")]
    NotServed,
    /// The new mount does not answer.
    #[error("the new mount does not answer: {0}")]
    NoAnswer(io::Error),
}

/// Splits a free-text message at its first `"; "` into what failed and what to do.
/// Errors that carry free text use it to keep the
/// hint out of their `Display` and return it from [`Help::help`].
pub fn split_hint(text: &str) -> (&str, Option<&str>) {
    match text.split_once("; ") {
        Some((message, hint)) => (message, Some(hint)),
        None => (text, None),
    }
}

/// An error's message with its hints appended after `"; "`: the free-text form that
/// [`split_hint`] takes apart again, for errors nested in another error's text.
pub fn with_hints(e: &(impl std::fmt::Display + Help)) -> String {
    let mut text = e.to_string();
    for hint in e.help() {
        text.push_str("; ");
        text.push_str(&hint);
    }
    text
}

/// What to do about an error: one hint a line, for the `help:` lines of a report.
pub trait Help {
    /// Hints for the person who hit the error; empty when there is nothing to add.
    fn help(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Plain text carries no hints.
impl Help for String {}

impl Help for Error {
    fn help(&self) -> Vec<String> {
        let hint: String = match self {
            Error::InvalidDigest(_) => return Vec::new(),
            Error::UnknownReference(_) => "list tags with 'spfs tags'".into(),
            Error::AmbiguousReference { .. } => "give more characters of the digest".into(),
            Error::InvalidReference { .. } | Error::InvalidTag { .. } => return Vec::new(),
            Error::TagHistoryTooShort { name, .. } => {
                format!("see the versions with 'spfs log {name}'")
            }
            Error::MissingObject(_) | Error::MissingPayload(_) => {
                "pull it again, or run 'spfs check' to see what it affects".into()
            }
            Error::NotInRemotes { tried, .. } if tried.is_empty() => {
                "no remote is configured to pull them from: add one (see 'spfs config') or pull from an address".into()
            }
            Error::NotInRemotes { tried, .. } => format!(
                "the remotes asked were {}: push what is missing to one of them, or configure the remote that holds it",
                tried.join(", ")
            ),
            Error::Corrupt { .. } => {
                "run 'spfs check' and restore it from another repository".into()
            }
            Error::WrongKind { .. } | Error::NoSuchPath { .. } => return Vec::new(),
            Error::Archive { .. } => {
                "an import stores nothing from an archive that does not verify: export it again"
                    .into()
            }
            Error::NoRepository(path) => {
                return vec![
                    format!("create one with 'spfs init {}'", path.display()),
                    "or point --repo or SPFS_ROOT at an existing one".into(),
                ]
            }
            Error::UnsupportedRepository { .. } => "use a matching spfs release".into(),
            Error::UnversionedRepository(path) => {
                return vec![
                    format!(
                        "if it is a repository, restore its VERSION with 'spfs init {}'",
                        path.display()
                    ),
                    "otherwise point SPFS_ROOT or --repo at an empty or new directory".into(),
                ]
            }
            Error::UnexpectedFileType { .. } | Error::FileTooLarge { .. } => {
                "move the file aside, then run 'spfs check'".into()
            }
            Error::PayloadSize { .. } => {
                "run 'spfs check' and restore it from another repository".into()
            }
            Error::CommitFailed { source, .. } => return source.help(),
            Error::Spawned { help, .. } => return help.clone(),
            Error::SpecialFile { .. } => {
                "remove it, or pass --skip-special to skip such files".into()
            }
            Error::FuseUnavailable(device) => match device {
                FuseDevice::Missing => {
                    "load the fuse module ('modprobe fuse') or use --backend render".into()
                }
                FuseDevice::NotPermitted => {
                    "an administrator can make /dev/fuse mode 0666 (distributions do), or use --backend render".into()
                }
                FuseDevice::Open(_) => "use --backend render".into(),
            },
            Error::NulInPath(_) => return Vec::new(),
            Error::NotADirectory { purpose, .. } => match purpose {
                DirectoryPurpose::Commit => "give a directory to commit".into(),
                DirectoryPurpose::Repository => "point SPFS_ROOT or --repo at a directory".into(),
            },
            Error::RenderTargetNotEmpty(_) => "render into a new or empty directory".into(),
            Error::EmptyPlatform => "give a stack like A+B".into(),
            Error::PlatformTooDeep(_) => "flatten the stack".into(),
            Error::CorruptTagFile { .. } => "fix or remove the line".into(),
            Error::InvalidDuration(_) => {
                "use a number with s, m, h, d or w, like 15m or 7d".into()
            }
            Error::UnknownBackend(_) => "use 'render' or 'fuse'".into(),
            Error::InvalidAddress { .. } => {
                "use file:///PATH, tar:///PATH.tar.zst or s3://BUCKET[/PREFIX]".into()
            }
            Error::RemoteUnavailable { .. } => {
                "check its address with 'spfs config' and that it is reachable".into()
            }
            Error::UnknownRemote { name, .. } => format!(
                "add [remote.{name}] address = \"file:///...\" to a configuration file, set SPFS_REMOTE_{}, or give an address like file:///path",
                name.to_ascii_uppercase()
            ),
            Error::ConfigNotAFile(_) => "fix or unset SPFS_CONFIG".into(),
            Error::ConfigFile { .. } => "see docs/config.md for the sections and keys".into(),
            Error::ConfigValue { source, .. } => return source.help(),
            Error::InvalidRuntimeName { .. } => return Vec::new(),
            Error::RuntimeExists(name) => {
                format!("pick another name or remove it with 'spfs runtime rm {name}'")
            }
            Error::UnknownRuntime(_) => "list runtimes with 'spfs runtime list'".into(),
            Error::CorruptRuntimeRecord { .. } => "remove it with 'spfs runtime rm'".into(),
            Error::RuntimeStillRunning { .. } => "wait for it to exit".into(),
            Error::RuntimeNotKept(_) => {
                "start runtimes with --keep-runtime to rerun them".into()
            }
            Error::NotInRuntime => {
                "enter one with 'spfs run' or 'spfs shell', or give --path DIR".into()
            }
            Error::NotUnderSpfs(_) => "give paths like /spfs/bin/tool or bin/tool".into(),
            Error::InvalidLink { .. } => return Vec::new(),
            Error::NestedLinkDirs { .. } => {
                "put links in directories that do not contain each other".into()
            }
            Error::MissingMountPoint(path) => format!(
                "an administrator must create it once ('mkdir -p {}')",
                path.display()
            ),
            Error::Namespace { step, .. } => match step {
                NamespaceStep::MountNamespace => "the process needs CAP_SYS_ADMIN (it may be confined by a container or seccomp profile)".into(),
                NamespaceStep::UserNamespace { .. } => "entering a runtime without root needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0), or run as root".into(),
                NamespaceStep::MapUser { .. } | NamespaceStep::MakeRootPrivate => return Vec::new(),
            },
            Error::OverlayUnavailable => "load it with 'modprobe overlay'".into(),
            Error::NoFuseDevice => {
                "load the fuse module ('modprobe fuse') or use --backend render".into()
            }
            Error::TooManyLayers { .. } => "merge layers of the stack into fewer".into(),
            Error::OverlayOptionsTooLong { .. } => {
                "a kernel with the new mount API (Linux 6.8+) lifts it".into()
            }
            Error::Mount { source, .. } => match source.raw_os_error() {
                Some(libc::EPERM) => "mounting needs root or an unprivileged user namespace".into(),
                _ => return Vec::new(),
            },
            Error::Whiteout { .. } => "use --backend fuse, which needs no whiteouts".into(),
            Error::WhiteoutsRefused(_) => "use --backend fuse".into(),
            Error::PrivateRenders { path, .. } => format!(
                "it must be a directory of yours with mode 0700; remove it (renders are derived data, 'rm -rf {}') and run again",
                path.display()
            ),
            Error::MissingRuntimePayload { .. } => {
                "pull the layer again or run 'spfs check'".into()
            }
            Error::MissingFallbackPayload { .. } => "pull the layer again".into(),
            Error::StackNotLocal { remote } => format!(
                "pull the layers first ('spfs pull' from {remote}), or commit the edits alone with 'spfs commit layer'"
            ),
            Error::RemoteStackObject { remote, source, .. } => match **source {
                Error::MissingObject(_) => {
                    "name a remote that holds the whole stack, or 'spfs pull' it from one".into()
                }
                _ => format!("check the remote with 'spfs check --remote {remote}' and push the stack to it again"),
            },
            Error::StartCommand { .. } => "check that it exists and is executable".into(),
            Error::Supervision { .. } => return Vec::new(),
            Error::MonitorLost { signal, .. } => match signal {
                Some(_) => return Vec::new(),
                None => "see the messages above".into(),
            },
            Error::MonitorRequest { problem, .. } => match problem {
                RequestProblem::StackKept => "its error is on the runtime's terminal".into(),
                RequestProblem::NotRunning => {
                    "list runtimes with 'spfs runtime list'".into()
                }
                RequestProblem::Signal(_) | RequestProblem::TimedOut(_) => return Vec::new(),
            },
            Error::Fuse { problem, .. } => match problem {
                FuseProblem::Mount(nix::errno::Errno::EPERM) => {
                    "mounting needs CAP_SYS_ADMIN over the mount namespace: run as root or inside a user namespace, or use --backend render".into()
                }
                FuseProblem::Mount(nix::errno::Errno::ENODEV) => {
                    "the kernel has no FUSE support: load the fuse module ('modprobe fuse') or use --backend render".into()
                }
                FuseProblem::Fallback { source, .. } => return source.help(),
                _ => return Vec::new(),
            },
            Error::Interrupted => return Vec::new(),
            Error::Remote { hint, .. } => match hint {
                Some(hint) => hint.clone(),
                None => return Vec::new(),
            },
            Error::Io { source, .. } => match io_hint(source) {
                Some(hint) => hint.into(),
                None => return Vec::new(),
            },
        };
        vec![hint]
    }
}

fn io_hint(err: &io::Error) -> Option<&'static str> {
    let full =
        err.kind() == io::ErrorKind::StorageFull || err.kind() == io::ErrorKind::QuotaExceeded;
    match err.raw_os_error() {
        _ if full => Some(
            "the disk is full: free space or use another repository (nothing partial was kept)",
        ),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Some(
            "the disk is full: free space or use another repository (nothing partial was kept)",
        ),
        Some(libc::EACCES) | Some(libc::EPERM) => {
            Some("check permissions, or run as a user who may")
        }
        Some(libc::EROFS) => Some("the filesystem is read-only: use a writable repository"),
        _ => None,
    }
}

impl Error {
    /// Wraps an I/O error with the action and path it happened on.
    pub fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }
}

/// Attaches an action and a path to I/O results.
pub trait IoContext<T> {
    /// Converts an I/O error into [`Error::Io`] naming `action` and `path`.
    fn ctx(self, action: &str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_keep_hints_out_of_their_message() {
        let cases: Vec<(Error, &str, &str)> = vec![
            (
                Error::FuseUnavailable(FuseDevice::Missing),
                "FUSE is not available: /dev/fuse does not exist",
                "modprobe fuse",
            ),
            (
                Error::Fuse {
                    path: "/spfs".into(),
                    problem: FuseProblem::Mount(nix::errno::Errno::EPERM),
                },
                "FUSE filesystem at /spfs: mount(2) failed: EPERM: Operation not permitted",
                "CAP_SYS_ADMIN",
            ),
            (
                Error::Namespace {
                    step: NamespaceStep::UserNamespace { uid: 1000 },
                    source: io::Error::from_raw_os_error(libc::EPERM),
                },
                "cannot create a user namespace as uid 1000: Operation not permitted (os error 1)",
                "unprivileged user namespaces",
            ),
            (
                Error::InvalidDuration("soon".into()),
                "'soon' is not a duration",
                "like 15m or 7d",
            ),
            (
                Error::ConfigValue {
                    origin: crate::config::Source::Env("SPFS_REMOTE_X".into()),
                    key: None,
                    source: Box::new(Error::InvalidAddress {
                        input: "s3://".into(),
                        problem: "no bucket".into(),
                    }),
                },
                "$SPFS_REMOTE_X: 's3://' is not a remote address: no bucket",
                "s3://BUCKET[/PREFIX]",
            ),
            (
                Error::UnknownRemote {
                    name: "backup".into(),
                    configured: vec!["origin".into()],
                },
                "no remote named 'backup' is configured (configured: origin)",
                "SPFS_REMOTE_BACKUP",
            ),
            (
                Error::MonitorRequest {
                    name: "rt-1".into(),
                    pid: 42,
                    problem: RequestProblem::StackKept,
                },
                "the monitor of runtime 'rt-1' could not switch to the new stack and kept the old one",
                "on the runtime's terminal",
            ),
            (
                Error::Mount {
                    action: "set overlay option workdir=/w for".into(),
                    target: "/spfs".into(),
                    source: io::Error::from_raw_os_error(libc::EINVAL),
                    kernel: Some("overlay: workdir and upperdir must be separate subtrees".into()),
                },
                "cannot set overlay option workdir=/w for /spfs: Invalid argument (os error 22) (kernel: overlay: workdir and upperdir must be separate subtrees)",
                "",
            ),
        ];
        for (e, message, hint) in cases {
            assert_eq!(e.to_string(), message);
            let help = e.help();
            if hint.is_empty() {
                assert!(help.is_empty(), "{message}: {help:?}");
            } else {
                assert_eq!(help.len(), 1, "{message}: {help:?}");
                assert!(help[0].contains(hint), "{message}: {help:?}");
            }
        }
    }
}
