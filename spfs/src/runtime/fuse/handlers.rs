//! The filesystem handlers: lookups, attributes and directory listings from the
//! inode table, opens and reads of payload files (through passthrough when the kernel
//! allows). Requests that would modify the tree never arrive: the mount is read-only,
//! so the kernel refuses them itself (EROFS) and the defaults are never called.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr,
    Request,
};

use super::inodes::{InodeTable, Node, NodeKind};
use super::mount::FuseOptions;
use super::{Shared, FIXED_TIME, MAX_IO};
use crate::digest::Digest;
use crate::storage::LocalRepository;

/// Everything is immutable, so the kernel may cache names and attributes for as long as
/// the mount lives.
const TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Block size reported by `statfs`.
const BLOCK: u64 = 4096;

/// Passthrough backing files, one per inode while any handle on it is open.
#[derive(Debug, Default)]
struct Backing {
    by_ino: HashMap<u64, (BackingId, usize)>,
    by_fh: HashMap<u64, u64>,
}

/// How many walkers [`StatWalkers`] remembers.
const STAT_WALKERS: usize = 16;

/// Threads seen looking up files: they stat (or open) what they list, like `ls -l`.
/// Their listings carry every entry's attributes, so the kernel needs no lookup per
/// entry. Other listings carry attributes for directories only: a kernel inode per
/// file would cost a walk such as `find -type f` several times what it costs natively,
/// and a file listed without attributes is simply looked up when someone asks for it.
/// A small ring: a forgotten walker costs one lookup per entry of its next listing.
#[derive(Debug, Default)]
struct StatWalkers {
    tids: [AtomicU32; STAT_WALKERS],
    next: AtomicUsize,
}

impl StatWalkers {
    fn contains(&self, tid: u32) -> bool {
        tid != 0 && self.tids.iter().any(|t| t.load(Ordering::Relaxed) == tid)
    }

    fn note(&self, tid: u32) {
        if tid == 0 || self.contains(tid) {
            return;
        }
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % STAT_WALKERS;
        self.tids[slot].store(tid, Ordering::Relaxed);
    }
}

/// The filesystem served to the kernel.
/// The remote that payloads missing locally are fetched from (`--payloads-from`).
pub(super) struct Fallback(pub(super) Box<dyn crate::storage::Repository>);

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fallback({})", self.0.describe())
    }
}

#[derive(Debug)]
pub(super) struct SpfsFs {
    repo: LocalRepository,
    table: InodeTable,
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
    stat_walkers: StatWalkers,
    /// Where missing payloads are fetched from, if anywhere.
    pub(super) fallback: Option<Fallback>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl SpfsFs {
    pub(super) fn new(
        repo: LocalRepository,
        table: InodeTable,
        uid: u32,
        gid: u32,
        opts: &FuseOptions,
        shared: Arc<Shared>,
    ) -> Self {
        let total_bytes = table.payloads().map(|(_, size)| size).sum();
        SpfsFs {
            repo,
            table,
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
            stat_walkers: StatWalkers::default(),
            fallback: None,
        }
    }

    /// A few payload paths to try the passthrough probe with.
    pub(super) fn probe_candidates(&self) -> Vec<PathBuf> {
        self.table
            .nodes
            .iter()
            .filter_map(|n| match n.kind {
                NodeKind::File { digest, .. } => Some(self.repo.payload_path(&digest)),
                _ => None,
            })
            .take(8)
            .collect()
    }

    /// The entries of directory `ino` after `offset`: (child, next offset, name).
    fn listing(
        &self,
        ino: INodeNo,
        offset: u64,
    ) -> Result<impl Iterator<Item = (u64, u64, &[u8])> + '_, Errno> {
        let node = self.table.node(ino).ok_or(Errno::ENOENT)?;
        self.table
            .dir_entries(ino.0, node, offset)
            .ok_or(Errno::ENOTDIR)
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

    /// Opens the payload of a file of `size` bytes, fetching it first when it is
    /// missing locally and a fallback repository is set; EIO (logged) otherwise.
    fn open_payload(&self, digest: &Digest, size: u64) -> std::result::Result<File, Errno> {
        super::lazy_fetch::open_payload(
            &self.repo,
            self.fallback.as_ref().map(|f| &*f.0),
            digest,
            size,
        )
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

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(dir) = self.table.node(parent) else {
            return reply.error(Errno::ENOENT);
        };
        if !matches!(dir.kind, NodeKind::Dir { .. }) {
            return reply.error(Errno::ENOTDIR);
        }
        match self.table.child(dir, parent.0, name.as_bytes()) {
            Some(ino) => {
                let node = &self.table.nodes[ino as usize];
                if !matches!(node.kind, NodeKind::Dir { .. }) {
                    self.stat_walkers.note(req.pid());
                }
                reply.entry(&TTL, &self.attr(ino, node), Generation(0));
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.table.node(ino) {
            Some(node) => reply.attr(&TTL, &self.attr(ino.0, node)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.table.node(ino).map(|n| &n.kind) {
            Some(NodeKind::Symlink { off, len }) => reply.data(self.table.name(*off, *len)),
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (digest, size) = match self.table.node(ino).map(|n| &n.kind) {
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
        let (file_size, digest) = match self.table.node(ino).map(|n| &n.kind) {
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

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // The kernel caches the listings of opens that ask for it, and serves later
        // listings of those opens from that cache. Only listings with every attribute
        // are worth keeping: a cached listing without them would cost each later
        // `ls -l` of the directory a lookup per file. Every open keeps what is cached.
        let flags = if self.stat_walkers.contains(req.pid()) {
            FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::FOPEN_KEEP_CACHE
        };
        match self.table.node(ino).map(|n| &n.kind) {
            Some(NodeKind::Dir { .. }) => reply.opened(FileHandle(0), flags),
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
        let entries = match self.listing(ino, offset) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        for (child, next, name) in entries {
            let kind = self.attr(child, &self.table.nodes[child as usize]).kind;
            if reply.add(INodeNo(child), next, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let entries = match self.listing(ino, offset) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        let all = self.stat_walkers.contains(req.pid());
        for (child, next, name) in entries {
            let node = &self.table.nodes[child as usize];
            let attr = self.attr(child, node);
            // Node id 0: listed (with its inode number) but no attributes (see StatWalkers).
            let id = if all || matches!(node.kind, NodeKind::Dir { .. }) {
                child
            } else {
                0
            };
            let name = OsStr::from_bytes(name);
            if reply.add(INodeNo(id), next, name, &TTL, &attr, Generation(0)) {
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
        let files = self.table.nodes.len() as u64 - 1;
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
}

#[cfg(test)]
mod tests {
    use super::super::inodes::sample_manifest;
    use super::*;

    fn fs() -> SpfsFs {
        let repo_dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(repo_dir.path()).unwrap();
        SpfsFs::new(
            repo,
            InodeTable::from_manifest(sample_manifest()),
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
    fn stat_walkers_remember_the_latest_threads() {
        let w = StatWalkers::default();
        assert!(!w.contains(0) && !w.contains(5));
        w.note(0);
        assert!(!w.contains(0), "thread id 0 (unknown) is never a walker");
        w.note(5);
        w.note(5);
        assert!(w.contains(5));
        for tid in 100..100 + STAT_WALKERS as u32 - 1 {
            w.note(tid);
        }
        // Noting 5 twice took one slot: all of them still fit.
        assert!(w.contains(5) && w.contains(100 + STAT_WALKERS as u32 - 2));
        w.note(1000);
        assert!(!w.contains(5), "the oldest walker makes room");
        assert!(w.contains(1000) && w.contains(100));
    }

    #[test]
    fn attributes_show_exact_modes_counts_and_owner() {
        let fs = fs();
        let t = &fs.table;
        let root = &t.nodes[1];
        let a = t.child(root, 1, b"a").unwrap();
        let a_node = &t.nodes[a as usize];
        let attr = fs.attr(a, a_node);
        assert_eq!(
            (attr.kind, attr.perm, attr.nlink),
            (FileType::Directory, 0o755, 3)
        );
        assert_eq!((attr.uid, attr.gid), (7, 8));
        assert_eq!(fs.attr(1, root).nlink, 3);
        let c = t.child(root, 1, b"c").unwrap();
        let attr = fs.attr(c, &t.nodes[c as usize]);
        assert_eq!(
            (attr.kind, attr.perm, attr.size, attr.blocks),
            (FileType::RegularFile, 0o4755, 9, 1)
        );
        assert_eq!(attr.mtime, UNIX_EPOCH + FIXED_TIME);
        let attr = fs.attr(3, &t.nodes[3]);
        assert_eq!(
            (attr.kind, attr.size, attr.perm),
            (FileType::Symlink, 3, 0o777)
        );
    }
}
