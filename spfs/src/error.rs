//! Errors of the spfs library. Each message names what failed, on which input, and
//! what to do about it.

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
    #[error("unknown reference '{0}': no tag or object matches; list tags with 'spfs tags'")]
    UnknownReference(String),

    /// A digest prefix matches several objects.
    #[error("ambiguous reference '{prefix}': it matches {} objects ({}); give more characters", candidates.len(), candidates.iter().map(|d| d.short()).collect::<Vec<_>>().join(", "))]
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
    #[error("tag '{name}' has {available} version(s); '{name}~{requested}' does not exist (see 'spfs log {name}')")]
    TagHistoryTooShort {
        /// The tag.
        name: String,
        /// The `~N` asked for.
        requested: usize,
        /// How many entries exist.
        available: usize,
    },

    /// An object is referenced but not stored.
    #[error("object {0} is missing from the repository; pull it again or run 'spfs check' to see what it affects")]
    MissingObject(Digest),

    /// A payload is referenced but not stored.
    #[error("payload {0} is missing from the repository; pull it again or run 'spfs check' to see what it affects")]
    MissingPayload(Digest),

    /// A stored object or payload does not decode or does not match its digest.
    #[error("corrupt {what} {digest} at {}: {reason}; run 'spfs check' and restore it from another repository", path.display())]
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
    #[error("no spfs repository at {}: create one with 'spfs init {}' or point SPFS_ROOT/--repo at an existing one", .0.display(), .0.display())]
    NoRepository(PathBuf),

    /// The repository was written by an incompatible version.
    #[error("repository {} has format version {found}, this build supports version {supported}; use a matching spfs release", path.display())]
    UnsupportedRepository {
        /// The repository root.
        path: PathBuf,
        /// The VERSION it declares.
        found: String,
        /// The version this build writes.
        supported: u32,
    },

    /// A populated directory without a `VERSION` file was given as a repository.
    #[error("{} is not empty but has no VERSION file, so it is not an spfs repository (or its VERSION was deleted); spfs will not write into it. If it is a repository, restore its VERSION with 'spfs init {}', otherwise point SPFS_ROOT/--repo at an empty or new directory", .0.display(), .0.display())]
    UnversionedRepository(PathBuf),

    /// A repository path holds a file of the wrong type (a FIFO, device, link...).
    #[error("{} is a {found}, but the repository only accepts a {expected} there; the repository is damaged or tampered with: move it aside, then run 'spfs check'", path.display())]
    UnexpectedFileType {
        /// The offending path.
        path: PathBuf,
        /// What is there ("fifo", "symbolic link", "character device", ...).
        found: &'static str,
        /// What the repository expects ("regular file" or "directory").
        expected: &'static str,
    },

    /// A repository file is larger than its format allows.
    #[error("{} holds {size} bytes, more than the {limit} bytes its format allows; the repository is damaged: move the file aside, then run 'spfs check'", path.display())]
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
    #[error("corrupt payload {digest} at {}: it holds {actual} bytes but the manifest records {expected} (truncated or replaced); run 'spfs check' and restore it from another repository", path.display())]
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
    #[error("{source}; {}", commit_remains(*remains))]
    CommitFailed {
        /// Why it failed.
        source: Box<Error>,
        /// Payloads and objects (count, bytes) that had already been published when it
        /// failed, if any.
        remains: Option<(usize, u64)>,
    },

    /// A file of a kind the store cannot hold.
    #[error("cannot commit {}: it is a {kind}; remove it or pass --skip-special to skip such files", path.display())]
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

    /// Input that the operation cannot accept.
    #[error("{0}")]
    InvalidInput(String),

    /// A runtime could not be set up, entered or changed.
    #[error("{0}")]
    Runtime(String),

    /// The operation was interrupted by a signal; nothing partial was kept.
    #[error("interrupted; no partial objects were kept")]
    Interrupted,

    /// The kernel's FUSE device cannot be used on this machine.
    #[error("FUSE is not available: {0}")]
    FuseUnavailable(String),

    /// Mounting, serving or unmounting a FUSE filesystem failed.
    #[error("FUSE filesystem at {}: {reason}", path.display())]
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
    let full =
        err.kind() == io::ErrorKind::StorageFull || err.kind() == io::ErrorKind::QuotaExceeded;
    let hint = match err.raw_os_error() {
        _ if full => "; the disk is full: free space or use another repository",
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "; the disk is full: free space or use another repository"
        }
        Some(libc::EACCES) | Some(libc::EPERM) => "; check permissions or run as a user who may",
        Some(libc::EROFS) => "; the filesystem is read-only",
        _ => "",
    };
    format!("{action} {}: {err}{hint}", path.display())
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
