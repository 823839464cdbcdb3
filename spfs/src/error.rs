//! Errors of the spfs library. Each error's message (its `Display`) names what failed
//! and on which input; what to do about it comes from [`Help::help`], one hint a line,
//! so that front ends can lay both out the same way.

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

    /// Input that the operation cannot accept. A hint may follow the message after
    /// `"; "`: it is shown by [`Help::help`], not by `Display`.
    #[error("{}", split_hint(.0).0)]
    InvalidInput(String),

    /// A runtime could not be set up, entered or changed. A hint may follow the message
    /// after `"; "`: it is shown by [`Help::help`], not by `Display`.
    #[error("{}", split_hint(.0).0)]
    Runtime(String),

    /// The operation was interrupted by a signal; nothing partial was kept.
    #[error("interrupted; no partial objects were kept")]
    Interrupted,

    /// The kernel's FUSE device cannot be used on this machine.
    #[error("FUSE is not available: {}", split_hint(.0).0)]
    FuseUnavailable(String),

    /// Mounting, serving or unmounting a FUSE filesystem failed.
    #[error("FUSE filesystem at {}: {}", path.display(), split_hint(reason).0)]
    Fuse {
        /// The mount point.
        path: PathBuf,
        /// What went wrong and what to do.
        reason: String,
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

/// Splits a free-text message at its first `"; "` into what failed and what to do.
/// Errors that carry free text (such as [`Error::InvalidInput`]) use it to keep the
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
            Error::InvalidInput(text) | Error::Runtime(text) | Error::FuseUnavailable(text) => {
                match split_hint(text).1 {
                    Some(hint) => hint.into(),
                    None => return Vec::new(),
                }
            }
            Error::Fuse { reason, .. } => match split_hint(reason).1 {
                Some(hint) => hint.into(),
                None => return Vec::new(),
            },
            Error::Interrupted => return Vec::new(),
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
