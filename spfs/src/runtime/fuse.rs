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

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BackgroundSession, BackingId, Config, Errno, FileAttr, FileHandle, FileType,
    Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, Session,
    SessionACL, TimeOrNow, WriteFlags,
};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::object::{EntryKind, Manifest, Tree};
use crate::storage::LocalRepository;

/// Timestamp (2000-01-01T00:00:00Z) reported as atime, mtime and ctime of every entry.
pub const FIXED_TIME: Duration = Duration::from_secs(946_684_800);

/// Permission bits of the root directory.
const ROOT_MODE: u32 = 0o755;
/// Everything is immutable, so the kernel may cache names and attributes for as long as
/// the mount lives.
const TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Largest single read request asked of the kernel.
const MAX_IO: u32 = 1 << 20;
/// Block size reported by `statfs`.
const BLOCK: u64 = 4096;
/// `FUSE_DEV_IOC_BACKING_CLOSE`: `_IOW(229, 2, u32)`.
const FUSE_DEV_IOC_BACKING_CLOSE: libc::c_ulong = 0x4004_e502;
/// How long the server may take to stop on its own after the lazy unmount before the
/// connection is aborted (open files keep a detached FUSE superblock alive).
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the server after aborting the connection.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// How a [`FuseMount`] serves file contents.
#[derive(Debug, Clone)]
pub struct FuseOptions {
    /// Use FUSE passthrough for file reads when the kernel and privileges allow it; silently fall back otherwise.
    pub passthrough: bool,
    /// A repository (root directory) from which a payload missing locally is fetched on
    /// its first open: verified against its digest and size, stored in the local
    /// repository, then served. A payload missing or corrupt there too fails that open
    /// with EIO and a log line.
    pub fallback: Option<PathBuf>,
}

impl Default for FuseOptions {
    fn default() -> Self {
        FuseOptions {
            passthrough: true,
            fallback: None,
        }
    }
}

/// A mounted read-only view of one manifest. Dropping it unmounts and stops the server threads.
///
/// Unmounting is lazy (`MNT_DETACH`). If files are still open through the mount afterwards
/// (including through an overlay still stacked on it), the connection is aborted after a
/// short grace period so that the server can stop; those files then fail with `ENOTCONN`.
/// Without the privilege to abort (inside a user namespace), the server keeps serving them
/// in the background until they are closed.
#[derive(Debug)]
pub struct FuseMount {
    mountpoint: PathBuf,
    /// `st_dev` of the mounted root.
    dev: u64,
    session: Option<BackgroundSession>,
    shared: Arc<Shared>,
}

impl FuseMount {
    /// Mounts `manifest` (already merged: contains no masks; ignore any Mask entries defensively) at `mountpoint`.
    /// File contents come from `repo.payload_path(digest)`. Returns once the mount is live (a stat of the mountpoint shows the root).
    pub fn mount(
        repo: &LocalRepository,
        manifest: Manifest,
        mountpoint: &Path,
        opts: &FuseOptions,
    ) -> Result<FuseMount> {
        Self::mount_table(repo, InodeTable::from_manifest(manifest), mountpoint, opts)
    }

    /// Mounts a prepared inode table at `mountpoint`, like [`FuseMount::mount`].
    pub fn mount_table(
        repo: &LocalRepository,
        table: InodeTable,
        mountpoint: &Path,
        opts: &FuseOptions,
    ) -> Result<FuseMount> {
        let fuse_err = |reason: String| Error::Fuse {
            path: mountpoint.to_path_buf(),
            reason,
        };
        let mountpoint = mountpoint
            .canonicalize()
            .map_err(|e| fuse_err(format!("the mount point is not usable: {e}")))?;
        let fuse_err = |reason: String| Error::Fuse {
            path: mountpoint.clone(),
            reason,
        };
        if !mountpoint.is_dir() {
            return Err(fuse_err("the mount point is not a directory".into()));
        }

        let fallback = match &opts.fallback {
            Some(root) => Some(LocalRepository::open(root).map_err(|e| {
                fuse_err(format!(
                    "cannot use {} to fetch missing payloads from: {e}",
                    root.display()
                ))
            })?),
            None => None,
        };
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        let shared = Arc::new(Shared::default());
        let mut fs = SpfsFs::new(repo.clone(), table, euid, egid, opts, shared.clone());
        fs.fallback = fallback;
        let probe = fs.probe_candidates();

        let dev_fuse = open_dev_fuse()?;
        // Root (also root of a user namespace) lets every user of the namespace in;
        // anyone else gets only their own requests served.
        let allow_other = euid == 0;
        let data = format!(
            "fd={},rootmode={:o},user_id={euid},group_id={egid},default_permissions,\
             max_read={MAX_IO},subtype=spfs{}",
            dev_fuse.as_raw_fd(),
            libc::S_IFDIR | ROOT_MODE,
            if allow_other { ",allow_other" } else { "" },
        );
        let flags = nix::mount::MsFlags::MS_RDONLY
            | nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV;
        nix::mount::mount(
            Some("spfs"),
            &mountpoint,
            Some("fuse"),
            flags,
            Some(data.as_str()),
        )
        .map_err(|e| {
            let hint = match e {
                nix::errno::Errno::EPERM => {
                    "; mounting needs CAP_SYS_ADMIN over the mount namespace: run as root or \
                     inside a user namespace, or use --backend render"
                }
                nix::errno::Errno::ENODEV => {
                    "; the kernel has no FUSE support: load the fuse module ('modprobe fuse') \
                     or use --backend render"
                }
                _ => "",
            };
            fuse_err(format!("mount(2) failed: {e}{hint}"))
        })?;
        tracing::debug!(mountpoint = %mountpoint.display(), "FUSE filesystem mounted");

        let mut config = Config::default();
        config.n_threads = Some(worker_threads());
        let acl = if allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        // The handshake completes inside `from_fd`; on failure the device is closed,
        // which aborts the connection, and the lazy unmount removes the mount.
        let session = match Session::from_fd(fs, dev_fuse, acl, config) {
            Ok(s) => s,
            Err(e) => {
                detach(&mountpoint);
                return Err(fuse_err(format!("FUSE handshake failed: {e}")));
            }
        };

        if opts.passthrough && shared.negotiated.load(Ordering::Relaxed) {
            match probe_passthrough(&session, &probe) {
                Ok(()) => shared.passthrough.store(true, Ordering::Relaxed),
                // Nothing local yet (payloads fetched on first open): the first open
                // tries, and falls back to userspace reads if the kernel refuses.
                Err(reason)
                    if (probe.is_empty() || reason == NO_PROBE_PAYLOAD)
                        && euid == 0
                        && in_initial_user_namespace() =>
                {
                    shared.passthrough.store(true, Ordering::Relaxed)
                }
                Err(reason) => tracing::info!(
                    "FUSE passthrough unavailable ({reason}); serving reads from userspace"
                ),
            }
        } else if opts.passthrough {
            tracing::info!(
                "the kernel does not offer FUSE passthrough; serving reads from userspace"
            );
        }

        let session = match session.spawn() {
            Ok(s) => s,
            Err(e) => {
                detach(&mountpoint);
                return Err(fuse_err(format!("starting the FUSE server failed: {e}")));
            }
        };
        let mut mount = FuseMount {
            mountpoint: mountpoint.clone(),
            dev: 0,
            session: Some(session),
            shared,
        };

        // Readiness: the root must answer through the new mount.
        match std::fs::metadata(&mount.mountpoint) {
            Ok(meta) if meta.is_dir() && meta.ino() == INodeNo::ROOT.0 => {
                mount.dev = meta.dev();
            }
            Ok(_) => {
                let err = fuse_err("the mount point does not show the served root".into());
                let _ = mount.shutdown();
                return Err(err);
            }
            Err(e) => {
                let err = fuse_err(format!("the new mount does not answer: {e}"));
                let _ = mount.shutdown();
                return Err(err);
            }
        }
        raise_readahead(mount.dev);
        tracing::debug!(
            mountpoint = %mount.mountpoint.display(),
            passthrough = mount.passthrough_active(),
            "FUSE filesystem ready"
        );
        Ok(mount)
    }

    /// Whether reads go through passthrough.
    pub fn passthrough_active(&self) -> bool {
        self.shared.passthrough.load(Ordering::Relaxed)
    }

    /// The directory the filesystem is mounted on.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts and waits for the server to stop.
    pub fn unmount(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // Only detach what is still ours: something may have been mounted on top, or the
        // mount may already be gone.
        let ours = self.dev == 0
            || std::fs::symlink_metadata(&self.mountpoint)
                .map(|m| m.dev() == self.dev)
                .unwrap_or(false);
        if ours {
            detach(&self.mountpoint);
        }
        if !wait_finished(&session, STOP_GRACE) {
            // Files still open through the detached mount (or a stacked overlay that is
            // still mounted) keep the superblock, and so the server, alive.
            tracing::debug!(
                mountpoint = %self.mountpoint.display(),
                "the FUSE filesystem is still in use after unmounting; aborting its connection"
            );
            if self.dev != 0 {
                abort_connection(self.dev);
            }
            if !wait_finished(&session, ABORT_GRACE) {
                // Aborting needs root of the initial user namespace. The mount itself is
                // gone; the server thread ends when the last open file is closed.
                tracing::warn!(
                    mountpoint = %self.mountpoint.display(),
                    "files are still open on the unmounted FUSE filesystem; it keeps serving \
                     them until they are closed"
                );
                return Ok(());
            }
        }
        match session.join() {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "FUSE server ended with an error");
                Ok(())
            }
        }
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("{e}");
        }
    }
}

fn wait_finished(session: &BackgroundSession, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if session.guard.is_finished() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn detach(mountpoint: &Path) {
    if let Err(e) = nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH) {
        tracing::debug!(mountpoint = %mountpoint.display(), error = %e, "unmounting FUSE filesystem");
    }
}

/// Aborts the FUSE connection of the superblock `dev` through fusectl, mounting a private
/// instance of it when none is visible. Best effort.
fn abort_connection(dev: u64) {
    // fusectl names a connection by the kernel-internal device number.
    let name = ((libc::major(dev) << 20) | libc::minor(dev)).to_string();
    let write_abort = |dir: &Path| std::fs::write(dir.join(&name).join("abort"), b"1");
    if write_abort(Path::new("/sys/fs/fuse/connections")).is_ok() {
        return;
    }
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let mounted = nix::mount::mount(
        Some("fusectl"),
        tmp.path(),
        Some("fusectl"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    if mounted.is_ok() {
        if let Err(e) = write_abort(tmp.path()) {
            tracing::debug!(error = %e, "aborting FUSE connection {name}");
        }
        let _ = nix::mount::umount2(tmp.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Raises the mount's readahead window from the kernel's 128 KiB to [`MAX_IO`], so that
/// sequential reads arrive as 1 MiB requests (a measured 1.5x for reads that are not
/// passed through). Best effort: sysfs is writable only by root of the initial namespace.
fn raise_readahead(dev: u64) {
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    if let Err(e) = std::fs::write(&path, (MAX_IO / 1024).to_string()) {
        tracing::debug!(%path, error = %e, "keeping the default FUSE readahead");
    }
}

fn open_dev_fuse() -> Result<OwnedFd> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse");
    let reason = match opened {
        Ok(f) => return Ok(f.into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            "/dev/fuse does not exist: load the fuse module ('modprobe fuse') or use \
             --backend render"
                .to_string()
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            "/dev/fuse is not readable and writable by this user: an administrator can make \
             it mode 0666 (distributions do), or use --backend render"
                .to_string()
        }
        Err(e) => format!("cannot open /dev/fuse: {e}; use --backend render"),
    };
    Err(Error::FuseUnavailable(reason))
}

fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

/// Registers one payload as a passthrough backing file and releases it again: proves the
/// kernel accepts passthrough from this process for files of this repository.
fn probe_passthrough<FS: Filesystem>(
    session: &Session<FS>,
    candidates: &[PathBuf],
) -> std::result::Result<(), String> {
    let Some(file) = candidates
        .iter()
        .find_map(|p| crate::storage::files::open_file(p).ok().flatten())
        .map(|(f, _)| f)
    else {
        return Err(NO_PROBE_PAYLOAD.into());
    };
    let id = BackingId::create_raw(session, &file).map_err(|e| e.to_string())?;
    let fd = std::os::fd::AsFd::as_fd(session).as_raw_fd();
    // SAFETY: the ioctl reads one u32 from a valid pointer; `fd` is the open FUSE device.
    let rc = unsafe { libc::ioctl(fd, FUSE_DEV_IOC_BACKING_CLOSE, &id as *const u32) };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "closing probe backing id");
    }
    Ok(())
}

const NO_PROBE_PAYLOAD: &str = "no payload to serve";

/// True outside any user namespace: the only place passthrough files are accepted.
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// State the mount handle shares with the server threads.
#[derive(Debug, Default)]
struct Shared {
    /// The kernel accepted `FUSE_PASSTHROUGH` in the handshake.
    negotiated: AtomicBool,
    /// New opens use passthrough.
    passthrough: AtomicBool,
}

/// One inode of the served tree.
#[derive(Debug, Clone)]
struct Node {
    parent: u64,
    perm: u16,
    kind: NodeKind,
}

#[derive(Debug, Clone)]
enum NodeKind {
    /// Children are `InodeTable::children[start..start + len]`, sorted by name bytes.
    Dir {
        start: u64,
        len: u64,
        subdirs: u32,
    },
    File {
        size: u64,
        digest: Digest,
    },
    /// The target is `InodeTable::names[off..off + len]`.
    Symlink {
        off: u64,
        len: u64,
    },
}

/// One directory entry: its name in `InodeTable::names` and its inode.
#[derive(Debug, Clone, Copy)]
struct Child {
    name_off: u64,
    name_len: u64,
    ino: u64,
}

/// The inode table a [`FuseMount`] serves: built from a merged manifest, or loaded from
/// the derived cache under `renders/fuse/` (see [`InodeTable::load_cached`]). Flat
/// arrays: a 50,000-entry table is three allocations, quick to load and to free.
/// Index = inode number; root = 1; index 0 unused.
#[derive(Debug)]
pub struct InodeTable {
    nodes: Vec<Node>,
    children: Vec<Child>,
    names: Vec<u8>,
}

impl InodeTable {
    /// The table of a merged manifest (masks are skipped).
    pub fn from_manifest(manifest: Manifest) -> Self {
        build_table(manifest)
    }

    /// Number of entries, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Always false: the root is always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every file's payload and size (a payload may repeat).
    pub fn payloads(&self) -> impl Iterator<Item = (&Digest, u64)> {
        self.nodes.iter().filter_map(|n| match &n.kind {
            NodeKind::File { size, digest } => Some((digest, *size)),
            _ => None,
        })
    }

    /// Where the cached table of the stack `manifests` (bottom first) lives.
    pub fn cache_path(repo: &LocalRepository, manifests: &[Digest]) -> PathBuf {
        let mut h = crate::digest::Hasher::new();
        h.update(CACHE_MAGIC);
        for m in manifests {
            h.update(m.as_bytes());
        }
        repo.renders_dir()
            .join("fuse")
            .join(format!("{}.inodes", h.finish().to_hex()))
    }

    /// The cached table of the stack `manifests`, if a valid one exists. The cache is
    /// derived data: a missing, truncated or corrupt file is ignored (and logged).
    pub fn load_cached(repo: &LocalRepository, manifests: &[Digest]) -> Option<Self> {
        let path = Self::cache_path(repo, manifests);
        let bytes = match crate::storage::files::open_file(&path) {
            Ok(Some((mut f, meta))) if meta.len() <= MAX_CACHE_BYTES => {
                let mut buf = Vec::with_capacity(meta.len() as usize);
                io::Read::read_to_end(&mut f, &mut buf).ok()?;
                buf
            }
            Ok(Some(_)) => {
                tracing::warn!(path = %path.display(), "ignoring an oversized inode cache");
                return None;
            }
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no inode cache");
                return None;
            }
        };
        match decode_table(&bytes) {
            Some(table) => Some(table),
            None => {
                tracing::warn!(
                    path = %path.display(),
                    "ignoring a corrupt inode cache (it is rebuilt from the repository)"
                );
                None
            }
        }
    }

    /// Stores the table as the cache of the stack `manifests`. Best effort: the
    /// caller logs a failure and goes on.
    pub fn store_cached(&self, repo: &LocalRepository, manifests: &[Digest]) -> Result<()> {
        use std::io::Write;
        let path = Self::cache_path(repo, manifests);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| Error::io("creating a file in", dir, e))?;
        tmp.write_all(&encode_table(self))
            .map_err(|e| Error::io("writing", tmp.path(), e))?;
        tmp.persist(&path)
            .map_err(|e| Error::io("storing", &path, e.error))?;
        Ok(())
    }
}

/// Identifies (and versions) the inode cache format.
const CACHE_MAGIC: &[u8] = b"spfs-fuse-inodes-v1\n";
/// Larger cache files are not read (tens of millions of entries).
const MAX_CACHE_BYTES: u64 = 4 << 30;
const TAG_DIR: u8 = 1;
const TAG_FILE: u8 = 2;
const TAG_SYMLINK: u8 = 3;
/// Bytes of one encoded node: parent u64, perm u16, tag u8, pad u8, subdirs u32,
/// a u64, b u64, digest [32].
const NODE_BYTES: usize = 64;
/// Bytes of one encoded child: name_off u64, name_len u64, ino u64.
const CHILD_BYTES: usize = 24;

/// `magic, node count u64, child count u64, names length u64, nodes, children, names,
/// blake3 of everything before`; integers little-endian. A directory's `a, b` are its
/// children's start and count, a file's its size (and digest), a symlink's the target's
/// offset and length in the names.
fn encode_table(t: &InodeTable) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        CACHE_MAGIC.len()
            + 24
            + t.nodes.len() * NODE_BYTES
            + t.children.len() * CHILD_BYTES
            + t.names.len()
            + 32,
    );
    out.extend_from_slice(CACHE_MAGIC);
    for n in [t.nodes.len(), t.children.len(), t.names.len()] {
        out.extend_from_slice(&(n as u64).to_le_bytes());
    }
    for n in &t.nodes {
        let (tag, subdirs, a, b, digest) = match &n.kind {
            NodeKind::Dir {
                start,
                len,
                subdirs,
            } => (TAG_DIR, *subdirs, *start, *len, [0u8; 32]),
            NodeKind::File { size, digest } => (TAG_FILE, 0, *size, 0, *digest.as_bytes()),
            NodeKind::Symlink { off, len } => (TAG_SYMLINK, 0, *off, *len, [0u8; 32]),
        };
        out.extend_from_slice(&n.parent.to_le_bytes());
        out.extend_from_slice(&n.perm.to_le_bytes());
        out.extend_from_slice(&[tag, 0]);
        out.extend_from_slice(&subdirs.to_le_bytes());
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
        out.extend_from_slice(&digest);
    }
    for c in &t.children {
        out.extend_from_slice(&c.name_off.to_le_bytes());
        out.extend_from_slice(&c.name_len.to_le_bytes());
        out.extend_from_slice(&c.ino.to_le_bytes());
    }
    out.extend_from_slice(&t.names);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads [`encode_table`] output back; `None` for anything inconsistent.
fn decode_table(bytes: &[u8]) -> Option<InodeTable> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let rest = body.strip_prefix(CACHE_MAGIC)?;
    if rest.len() < 24 {
        return None;
    }
    let (n_nodes, n_children, n_names) = (le64(rest, 0), le64(rest, 8), le64(rest, 16));
    let rest = &rest[24..];
    let node_bytes = n_nodes.checked_mul(NODE_BYTES as u64)?;
    let child_bytes = n_children.checked_mul(CHILD_BYTES as u64)?;
    let total = node_bytes.checked_add(child_bytes)?.checked_add(n_names)?;
    if total != rest.len() as u64 || n_nodes < 2 {
        return None;
    }
    let (node_raw, rest) = rest.split_at(node_bytes as usize);
    let (child_raw, names) = rest.split_at(child_bytes as usize);
    let in_names = |off: u64, len: u64| off.checked_add(len).is_some_and(|e| e <= n_names);

    let mut children = Vec::with_capacity(n_children as usize);
    for c in child_raw.chunks_exact(CHILD_BYTES) {
        let child = Child {
            name_off: le64(c, 0),
            name_len: le64(c, 8),
            ino: le64(c, 16),
        };
        if !in_names(child.name_off, child.name_len) || child.ino < 2 || child.ino >= n_nodes {
            return None;
        }
        children.push(child);
    }
    let mut nodes = Vec::with_capacity(n_nodes as usize);
    for r in node_raw.chunks_exact(NODE_BYTES) {
        let parent = le64(r, 0);
        let perm = u16::from_le_bytes([r[8], r[9]]);
        let subdirs = u32::from_le_bytes(r[12..16].try_into().expect("4 bytes"));
        let (a, b) = (le64(r, 16), le64(r, 24));
        let kind = match r[10] {
            TAG_DIR => {
                if a.checked_add(b).is_none_or(|e| e > n_children) {
                    return None;
                }
                // Lookups binary-search the names: they must be sorted and unique.
                let kids = &children[a as usize..(a + b) as usize];
                let name =
                    |c: &Child| &names[c.name_off as usize..(c.name_off + c.name_len) as usize];
                if kids.windows(2).any(|w| name(&w[0]) >= name(&w[1])) {
                    return None;
                }
                NodeKind::Dir {
                    start: a,
                    len: b,
                    subdirs,
                }
            }
            TAG_FILE => NodeKind::File {
                size: a,
                digest: Digest::from_bytes(r[32..64].try_into().expect("32 bytes")),
            },
            TAG_SYMLINK if in_names(a, b) => NodeKind::Symlink { off: a, len: b },
            _ => return None,
        };
        if parent >= n_nodes {
            return None;
        }
        nodes.push(Node { parent, perm, kind });
    }
    if !matches!(nodes[1].kind, NodeKind::Dir { .. }) {
        return None;
    }
    Some(InodeTable {
        nodes,
        children,
        names: names.to_vec(),
    })
}

/// Flattens a manifest into an inode table (breadth first, so each directory's
/// children are contiguous).
fn build_table(manifest: Manifest) -> InodeTable {
    let placeholder = Node {
        parent: 0,
        perm: 0,
        kind: NodeKind::Symlink { off: 0, len: 0 },
    };
    let root = Node {
        parent: INodeNo::ROOT.0,
        perm: ROOT_MODE as u16,
        kind: NodeKind::Dir {
            start: 0,
            len: 0,
            subdirs: 0,
        },
    };
    let mut t = InodeTable {
        nodes: vec![placeholder, root],
        children: Vec::new(),
        names: Vec::new(),
    };
    let mut queue: VecDeque<(u64, Tree)> = VecDeque::new();
    queue.push_back((INodeNo::ROOT.0, manifest.root));
    while let Some((dir_ino, tree)) = queue.pop_front() {
        let start = t.children.len() as u64;
        let mut subdirs = 0;
        for (name, entry) in tree {
            let perm = (entry.mode & 0o7777) as u16;
            let ino = t.nodes.len() as u64;
            let kind = match entry.kind {
                EntryKind::Mask => continue,
                EntryKind::File { size, digest } => NodeKind::File { size, digest },
                EntryKind::Symlink(target) => {
                    let off = t.names.len() as u64;
                    t.names.extend_from_slice(&target);
                    NodeKind::Symlink {
                        off,
                        len: target.len() as u64,
                    }
                }
                EntryKind::Dir(sub) => {
                    subdirs += 1;
                    queue.push_back((ino, sub));
                    NodeKind::Dir {
                        start: 0,
                        len: 0,
                        subdirs: 0,
                    }
                }
            };
            t.nodes.push(Node {
                parent: dir_ino,
                perm,
                kind,
            });
            let name_off = t.names.len() as u64;
            t.names.extend_from_slice(&name);
            t.children.push(Child {
                name_off,
                name_len: name.len() as u64,
                ino,
            });
        }
        let len = t.children.len() as u64 - start;
        t.nodes[dir_ino as usize].kind = NodeKind::Dir {
            start,
            len,
            subdirs,
        };
    }
    t
}

/// Passthrough backing files, one per inode while any handle on it is open.
#[derive(Debug, Default)]
struct Backing {
    by_ino: HashMap<u64, (BackingId, usize)>,
    by_fh: HashMap<u64, u64>,
}

/// The filesystem served to the kernel.
#[derive(Debug)]
struct SpfsFs {
    repo: LocalRepository,
    nodes: Vec<Node>,
    children: Vec<Child>,
    names: Vec<u8>,
    uid: u32,
    gid: u32,
    total_bytes: u64,
    want_passthrough: bool,
    shared: Arc<Shared>,
    next_fh: AtomicU64,
    /// Read requests served from userspace and their bytes, for the debug log.
    reads: AtomicU64,
    read_bytes: AtomicU64,
    files: RwLock<HashMap<u64, Arc<File>>>,
    backing: Mutex<Backing>,
    /// Where missing payloads are fetched from, if anywhere.
    fallback: Option<LocalRepository>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl SpfsFs {
    fn new(
        repo: LocalRepository,
        table: InodeTable,
        uid: u32,
        gid: u32,
        opts: &FuseOptions,
        shared: Arc<Shared>,
    ) -> Self {
        let total_bytes = table.payloads().map(|(_, size)| size).sum();
        let InodeTable {
            nodes,
            children,
            names,
        } = table;
        SpfsFs {
            repo,
            nodes,
            children,
            names,
            uid,
            gid,
            total_bytes,
            want_passthrough: opts.passthrough,
            shared,
            next_fh: AtomicU64::new(1),
            reads: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
            files: RwLock::new(HashMap::new()),
            backing: Mutex::new(Backing::default()),
            fallback: None,
        }
    }

    /// A few payload paths to try the passthrough probe with.
    fn probe_candidates(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .filter_map(|n| match n.kind {
                NodeKind::File { digest, .. } => Some(self.repo.payload_path(&digest)),
                _ => None,
            })
            .take(8)
            .collect()
    }

    fn node(&self, ino: INodeNo) -> Option<&Node> {
        if ino.0 == 0 {
            return None;
        }
        self.nodes.get(ino.0 as usize)
    }

    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let time = UNIX_EPOCH + FIXED_TIME;
        let (kind, size, nlink) = match &node.kind {
            NodeKind::Dir { subdirs, .. } => (FileType::Directory, BLOCK, 2 + subdirs),
            NodeKind::File { size, .. } => (FileType::RegularFile, *size, 1),
            NodeKind::Symlink { len, .. } => (FileType::Symlink, *len, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind,
            perm: node.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        }
    }

    fn name(&self, off: u64, len: u64) -> &[u8] {
        &self.names[off as usize..(off + len) as usize]
    }

    fn children_of(&self, node: &Node) -> Option<&[Child]> {
        match node.kind {
            NodeKind::Dir { start, len, .. } => {
                Some(&self.children[start as usize..(start + len) as usize])
            }
            _ => None,
        }
    }

    fn child(&self, parent: &Node, parent_ino: u64, name: &[u8]) -> Option<u64> {
        match name {
            b"." => return Some(parent_ino),
            b".." => return Some(parent.parent),
            _ => {}
        }
        let children = self.children_of(parent)?;
        children
            .binary_search_by(|c| self.name(c.name_off, c.name_len).cmp(name))
            .ok()
            .map(|i| children[i].ino)
    }

    /// Directory entries from position `offset`: `.`, `..`, then the children.
    fn dir_entries<'a>(
        &'a self,
        ino: u64,
        node: &'a Node,
        offset: u64,
    ) -> Option<impl Iterator<Item = (u64, u64, &'a [u8])> + 'a> {
        let children = self.children_of(node)?;
        let dots = [(ino, &b"."[..]), (node.parent, &b".."[..])];
        Some(
            dots.into_iter()
                .chain(
                    children
                        .iter()
                        .map(|c| (c.ino, self.name(c.name_off, c.name_len))),
                )
                .enumerate()
                .skip(offset.min(usize::MAX as u64) as usize)
                .map(|(i, (child, name))| (child, i as u64 + 1, name)),
        )
    }

    /// Opens the payload of a file of `size` bytes. A payload that is missing, not a
    /// regular file, or of another size (truncated or replaced) fails with EIO, and
    /// the log says why.
    fn open_payload(&self, digest: &Digest, size: u64) -> std::result::Result<File, Errno> {
        let opened = match (self.repo.open_payload(digest, Some(size)), &self.fallback) {
            (Err(Error::MissingPayload(_)), Some(remote)) => {
                super::fallback::fetch_payload(&self.repo, remote, digest, size)
                    .and_then(|()| self.repo.open_payload(digest, Some(size)))
            }
            (r, _) => r,
        };
        opened.map_err(|e| {
            // The error names the digest and the payload's path.
            tracing::error!(
                "cannot serve a file through FUSE (EIO): {}",
                crate::error::with_hints(&e)
            );
            Errno::EIO
        })
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// Opens `ino` with a passthrough backing file. Returns the reply back when the
    /// open must be served from userspace instead.
    fn open_passthrough(
        &self,
        ino: u64,
        digest: &Digest,
        size: u64,
        reply: ReplyOpen,
    ) -> Option<ReplyOpen> {
        let flags = FopenFlags::FOPEN_NOFLUSH;
        {
            let mut b = lock(&self.backing);
            if b.by_ino.contains_key(&ino) {
                // Every open of an inode must use the same backing file.
                let fh = self.new_fh();
                b.by_fh.insert(fh, ino);
                let entry = b.by_ino.get_mut(&ino).expect("checked above");
                entry.1 += 1;
                reply.opened_passthrough(FileHandle(fh), flags, &entry.0);
                return None;
            }
        }
        if !self.shared.passthrough.load(Ordering::Relaxed) {
            return Some(reply);
        }
        let file = match self.open_payload(digest, size) {
            Ok(f) => f,
            Err(errno) => {
                reply.error(errno);
                return None;
            }
        };
        let id = match reply.open_backing(&file) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "the kernel refused a FUSE passthrough file; serving reads from userspace"
                );
                self.shared.passthrough.store(false, Ordering::Relaxed);
                return Some(reply);
            }
        };
        let mut b = lock(&self.backing);
        let fh = self.new_fh();
        b.by_fh.insert(fh, ino);
        // Another thread may have opened the same inode meanwhile: use its backing file.
        let entry = b.by_ino.entry(ino).or_insert((id, 0));
        entry.1 += 1;
        reply.opened_passthrough(FileHandle(fh), flags, &entry.0);
        None
    }

    fn release_fh(&self, fh: u64) {
        let removed = self
            .files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh);
        if removed.is_some() {
            return;
        }
        let mut b = lock(&self.backing);
        if let Some(ino) = b.by_fh.remove(&fh) {
            let last = match b.by_ino.get_mut(&ino) {
                Some(entry) => {
                    entry.1 = entry.1.saturating_sub(1);
                    entry.1 == 0
                }
                None => false,
            };
            if last {
                b.by_ino.remove(&ino);
            }
        }
    }

    fn read_into(&self, file: &File, offset: u64, want: usize, reply: ReplyData) {
        READ_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            if buf.len() < want {
                buf.resize(want, 0);
            }
            let mut done = 0;
            while done < want {
                match file.read_at(&mut buf[done..want], offset + done as u64) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::error!(error = %e, "reading a payload served through FUSE");
                        reply.error(Errno::EIO);
                        return;
                    }
                }
            }
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.read_bytes.fetch_add(done as u64, Ordering::Relaxed);
            reply.data(&buf[..done]);
        });
    }
}

impl Filesystem for SpfsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if let Err(nearest) = config.set_max_write(MAX_IO) {
            let _ = config.set_max_write(nearest);
        }
        if let Err(nearest) = config.set_max_readahead(MAX_IO) {
            let _ = config.set_max_readahead(nearest);
        }
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            let _ = config.add_capabilities(cap);
        }
        // Stack depth 1: backing files live on a plain filesystem, and overlayfs can
        // still be stacked on this mount.
        if self.want_passthrough
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.shared.negotiated.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        tracing::debug!(
            reads = self.reads.load(Ordering::Relaxed),
            bytes = self.read_bytes.load(Ordering::Relaxed),
            "FUSE server stopped"
        );
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(dir) = self.node(parent) else {
            return reply.error(Errno::ENOENT);
        };
        if !matches!(dir.kind, NodeKind::Dir { .. }) {
            return reply.error(Errno::ENOTDIR);
        }
        match self.child(dir, parent.0, name.as_bytes()) {
            Some(ino) => {
                let node = &self.nodes[ino as usize];
                reply.entry(&TTL, &self.attr(ino, node), Generation(0));
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Some(node) => reply.attr(&TTL, &self.attr(ino.0, node)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino).map(|n| &n.kind) {
            Some(NodeKind::Symlink { off, len }) => reply.data(self.name(*off, *len)),
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (digest, size) = match self.node(ino).map(|n| &n.kind) {
            Some(NodeKind::File { digest, size }) => (*digest, *size),
            Some(NodeKind::Dir { .. }) => return reply.error(Errno::EISDIR),
            Some(NodeKind::Symlink { .. }) => return reply.error(Errno::ELOOP),
            None => return reply.error(Errno::ENOENT),
        };
        if flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            return reply.error(Errno::EROFS);
        }
        let Some(reply) = self.open_passthrough(ino.0, &digest, size, reply) else {
            return;
        };
        let file = match self.open_payload(&digest, size) {
            Ok(f) => f,
            Err(errno) => return reply.error(errno),
        };
        let fh = self.new_fh();
        self.files
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, Arc::new(file));
        reply.opened(
            FileHandle(fh),
            FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH,
        );
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (file_size, digest) = match self.node(ino).map(|n| &n.kind) {
            Some(NodeKind::File { size, digest }) => (*size, *digest),
            Some(_) => return reply.error(Errno::EISDIR),
            None => return reply.error(Errno::ENOENT),
        };
        let want = (size as u64).min(file_size.saturating_sub(offset)) as usize;
        if want == 0 {
            return reply.data(&[]);
        }
        let file = self
            .files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh.0)
            .cloned();
        match file {
            Some(file) => self.read_into(&file, offset, want, reply),
            // A passthrough handle: the kernel reads the backing file itself, but serve
            // a stray request anyway.
            None => match self.open_payload(&digest, file_size) {
                Ok(file) => self.read_into(&file, offset, want, reply),
                Err(errno) => reply.error(errno),
            },
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.release_fh(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino).map(|n| &n.kind) {
            Some(NodeKind::Dir { .. }) => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Some(_) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let Some(entries) = self.dir_entries(ino.0, node, offset) else {
            return reply.error(Errno::ENOTDIR);
        };
        for (child, next, name) in entries {
            let kind = self.attr(child, &self.nodes[child as usize]).kind;
            if reply.add(INodeNo(child), next, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let Some(entries) = self.dir_entries(ino.0, node, offset) else {
            return reply.error(Errno::ENOTDIR);
        };
        for (child, next, name) in entries {
            let attr = self.attr(child, &self.nodes[child as usize]);
            let name = OsStr::from_bytes(name);
            if reply.add(INodeNo(child), next, name, &TTL, &attr, Generation(0)) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.total_bytes.div_ceil(BLOCK);
        let files = self.nodes.len() as u64 - 1;
        reply.statfs(blocks, 0, 0, files, 0, BLOCK as u32, 255, BLOCK as u32);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        // No extended attributes at all: after this answer the kernel stops asking and
        // answers EOPNOTSUPP itself (overlayfs treats that as "no overlay xattrs").
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if self.node(ino).is_none() {
            reply.error(Errno::ENOENT);
        } else if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS);
        } else {
            reply.ok();
        }
    }

    // Answered without the default implementations' warnings: ENOSYS makes the kernel
    // handle these itself from then on (local locks, generic SEEK_DATA/SEEK_HOLE, default
    // poll mask); no ioctl is supported (overlayfs copy-up asks for inode flags).

    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        reply: fuser::ReplyLock,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn bmap(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _blocksize: u32,
        _idx: u64,
        reply: fuser::ReplyBmap,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: fuser::PollNotifier,
        _events: fuser::PollEvents,
        _flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        reply.error(Errno::ENOSYS);
    }

    // Everything below modifies the tree. A read-only mount never forwards these, but
    // answer them correctly anyway.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Entry;

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn sample() -> Manifest {
        let mut sub = Tree::new();
        sub.insert(b"f".to_vec(), Entry::file(0o644, 3, digest(1)));
        sub.insert(b"gone".to_vec(), Entry::mask());
        sub.insert(b"inner".to_vec(), Entry::dir(0o700, Tree::new()));
        let mut root = Tree::new();
        root.insert(b"a".to_vec(), Entry::dir(0o755, sub));
        root.insert(b"b\xff".to_vec(), Entry::symlink(b"a/f".to_vec()));
        root.insert(b"c".to_vec(), Entry::file(0o4755, 9, digest(2)));
        Manifest::new(root)
    }

    fn fs() -> SpfsFs {
        let repo_dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(repo_dir.path()).unwrap();
        SpfsFs::new(
            repo,
            InodeTable::from_manifest(sample()),
            7,
            8,
            &FuseOptions {
                passthrough: false,
                fallback: None,
            },
            Arc::default(),
        )
    }

    #[test]
    fn inode_table_has_parents_counts_and_no_masks() {
        let fs = fs();
        // placeholder, root, a, b\xff, c, a/f, a/inner
        assert_eq!(fs.nodes.len(), 7);
        let root = &fs.nodes[1];
        let a = fs.child(root, 1, b"a").unwrap();
        assert_eq!(fs.child(root, 1, b".."), Some(1));
        assert_eq!(fs.child(root, 1, b"b\xff"), Some(3));
        let a_node = &fs.nodes[a as usize];
        assert_eq!(fs.child(a_node, a, b"gone"), None);
        assert_eq!(fs.child(a_node, a, b".."), Some(1));
        let inner = fs.child(a_node, a, b"inner").unwrap();
        assert_eq!(fs.nodes[inner as usize].parent, a);

        let attr = fs.attr(a, a_node);
        assert_eq!(
            (attr.kind, attr.perm, attr.nlink),
            (FileType::Directory, 0o755, 3)
        );
        assert_eq!((attr.uid, attr.gid), (7, 8));
        assert_eq!(fs.attr(1, root).nlink, 3);
        let c = fs.child(root, 1, b"c").unwrap();
        let attr = fs.attr(c, &fs.nodes[c as usize]);
        assert_eq!(
            (attr.kind, attr.perm, attr.size, attr.blocks),
            (FileType::RegularFile, 0o4755, 9, 1)
        );
        assert_eq!(attr.mtime, UNIX_EPOCH + FIXED_TIME);
        let attr = fs.attr(3, &fs.nodes[3]);
        assert_eq!(
            (attr.kind, attr.size, attr.perm),
            (FileType::Symlink, 3, 0o777)
        );
    }

    #[test]
    fn directory_offsets_resume_where_they_stopped() {
        let fs = fs();
        let all: Vec<_> = fs
            .dir_entries(1, &fs.nodes[1], 0)
            .unwrap()
            .map(|(ino, next, name)| (ino, next, name.to_vec()))
            .collect();
        let names: Vec<&[u8]> = all.iter().map(|e| e.2.as_slice()).collect();
        assert_eq!(names, [&b"."[..], b"..", b"a", b"b\xff", b"c"]);
        for (i, (_, next, _)) in all.iter().enumerate() {
            assert_eq!(*next, i as u64 + 1);
            let rest: Vec<_> = fs.dir_entries(1, &fs.nodes[1], *next).unwrap().collect();
            assert_eq!(rest.len(), all.len() - i - 1);
        }
        assert_eq!(
            fs.dir_entries(1, &fs.nodes[1], u64::MAX).unwrap().count(),
            0
        );
        assert!(fs.dir_entries(5, &fs.nodes[5], 0).is_none());
    }

    #[test]
    fn inode_cache_round_trips_and_rejects_damage() {
        let repo_dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(repo_dir.path()).unwrap();
        let stack = [digest(7), digest(8)];
        assert!(InodeTable::load_cached(&repo, &stack).is_none());
        let table = InodeTable::from_manifest(sample());
        table.store_cached(&repo, &stack).unwrap();
        // Another stack (or order) has its own entry.
        assert!(InodeTable::load_cached(&repo, &[digest(8), digest(7)]).is_none());
        let loaded = InodeTable::load_cached(&repo, &stack).unwrap();
        let fs = SpfsFs::new(
            repo.clone(),
            loaded,
            7,
            8,
            &FuseOptions {
                passthrough: false,
                fallback: None,
            },
            Arc::default(),
        );
        let names: Vec<Vec<u8>> = fs
            .dir_entries(1, &fs.nodes[1], 0)
            .unwrap()
            .map(|(_, _, n)| n.to_vec())
            .collect();
        assert_eq!(names, [&b"."[..], b"..", b"a", b"b\xff", b"c"]);
        let a = fs.child(&fs.nodes[1], 1, b"a").unwrap();
        let f = fs.child(&fs.nodes[a as usize], a, b"f").unwrap();
        let attr = fs.attr(f, &fs.nodes[f as usize]);
        assert_eq!((attr.perm, attr.size), (0o644, 3));
        assert!(matches!(
            fs.nodes[f as usize].kind,
            NodeKind::File { digest: d, .. } if d == digest(1)
        ));
        let link = fs.child(&fs.nodes[1], 1, b"b\xff").unwrap();
        match fs.nodes[link as usize].kind {
            NodeKind::Symlink { off, len } => assert_eq!(fs.name(off, len), b"a/f"),
            _ => panic!("not a symlink"),
        }

        // Every single damaged byte, and every truncation, is refused.
        let path = InodeTable::cache_path(&repo, &stack);
        let good = std::fs::read(&path).unwrap();
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(decode_table(&bad).is_none(), "byte {i}");
        }
        for len in [0, 10, good.len() / 2, good.len() - 1] {
            assert!(decode_table(&good[..len]).is_none(), "length {len}");
        }
        std::fs::write(&path, b"garbage").unwrap();
        assert!(InodeTable::load_cached(&repo, &stack).is_none());
    }

    #[test]
    fn unknown_inodes_are_not_found() {
        let fs = fs();
        assert!(fs.node(INodeNo(0)).is_none());
        assert!(fs.node(INodeNo(7)).is_none());
        assert!(fs.node(INodeNo(u64::MAX)).is_none());
    }
}
