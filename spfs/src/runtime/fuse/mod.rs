//! A read-only FUSE filesystem that serves one merged manifest straight from the
//! repository, with no render step.
//!
//! What the mounted tree looks like:
//! - entries, kinds, permission bits, sizes and symlink targets exactly as in the manifest
//!   (masks are skipped); the root directory is `0755`;
//! - every entry is owned by the effective uid/gid of the process that mounted it;
//! - every timestamp is the fixed [`FIXED_TIME`] (deterministic across mounts and late
//!   enough for tools such as zip that reject pre-1980 times);
//! - file contents are the payload files of the repository, read-only;
//! - no extended attributes (the kernel is told so once and answers `EOPNOTSUPP` itself).
//!
//! Mounting uses `mount(2)` directly (no `fusermount` helper), so the caller needs
//! `CAP_SYS_ADMIN` over its mount namespace: root, or a process holding that capability
//! in the user namespace that owns its mount namespace. Other users than the mounting one
//! are let in only when it mounts as uid 0 (`allow_other`).
//!
//! Layout: `mount` mounts, unmounts and aborts the filesystem; `inodes` is the served
//! tree as an inode table, and `inode_cache` its derived on-disk copy under
//! `renders/fuse/`; `handlers` answers the kernel's requests; `lazy_fetch` copies
//! payloads missing locally from a second repository on their first open.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

mod handlers;
mod inode_cache;
mod inodes;
mod lazy_fetch;
mod mount;

pub use inodes::InodeTable;
pub(crate) use inodes::NodeKind;
pub use mount::{FuseMount, FuseOptions};

/// Timestamp (2000-01-01T00:00:00Z) reported as atime, mtime and ctime of every entry.
pub const FIXED_TIME: Duration = Duration::from_secs(946_684_800);

/// Permission bits of the root directory.
const ROOT_MODE: u32 = 0o755;
/// Largest single read request asked of the kernel.
const MAX_IO: u32 = 1 << 20;

/// State the mount handle shares with the server threads.
#[derive(Debug, Default)]
struct Shared {
    /// The kernel accepted `FUSE_PASSTHROUGH` in the handshake.
    negotiated: AtomicBool,
    /// New opens use passthrough.
    passthrough: AtomicBool,
}
