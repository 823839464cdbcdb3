//! The derived on-disk copy of a stack's inode table, `renders/fuse/<key>.inodes`:
//! keyed by the stack's manifest digests, checksummed, checked entry by entry when
//! loaded, and safe to delete at any time.

use std::io;
use std::path::{Path, PathBuf};

use super::inodes::{Child, InodeTable, Node, NodeKind};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::storage::files::written_only_by;
use crate::storage::LocalRepository;

impl InodeTable {
    /// Where the cached table of the stack `manifests` (bottom first) lives.
    pub fn cache_path(repo: &LocalRepository, manifests: &[Digest]) -> PathBuf {
        repo.renders_dir()
            .join("fuse")
            .join(format!("{}.inodes", cache_key(manifests).to_hex()))
    }

    /// The cached table of the stack `manifests`, if a valid one exists. The cache is
    /// derived data: a missing, truncated or corrupt file is ignored (and logged), and
    /// so is one that neither this user nor root wrote, or that others may write.
    pub fn load_cached(repo: &LocalRepository, manifests: &[Digest]) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let path = Self::cache_path(repo, manifests);
        let euid = nix::unistd::geteuid().as_raw();
        let (file, len) = match crate::storage::files::open_file(&path) {
            Ok(Some((_, meta))) if !written_only_by(&meta, euid) && !written_only_by(&meta, 0) => {
                tracing::warn!(
                    path = %path.display(),
                    owner = meta.uid(),
                    "ignoring an inode cache that another user wrote or may write"
                );
                return None;
            }
            Ok(Some((f, meta))) if meta.len() <= MAX_CACHE_BYTES => (f, meta.len()),
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
        match read_table(file, len, &cache_key(manifests)) {
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
        tmp.write_all(&encode_table(self, &cache_key(manifests)))
            .map_err(|e| Error::io("writing", tmp.path(), e))?;
        tmp.persist(&path)
            .map_err(|e| Error::io("storing", &path, e.error))?;
        Ok(())
    }
}

/// Identifies (and versions) the inode cache format.
const CACHE_MAGIC: &[u8] = b"spfs-fuse-inodes-v2\n";

/// The key of the stack `manifests` (bottom first): it names the cache file and is
/// written in it, so a table moved to another stack's name is refused.
fn cache_key(manifests: &[Digest]) -> Digest {
    let mut h = crate::digest::Hasher::new();
    h.update(CACHE_MAGIC);
    for m in manifests {
        h.update(m.as_bytes());
    }
    h.finish()
}

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

/// `magic, stack key [32], node count u64, child count u64, names length u64, nodes,
/// children, names, blake3 of everything before`; integers little-endian. A
/// directory's `a, b` are its children's start and count, a file's its size (and
/// digest), a symlink's the target's offset and length in the names.
fn encode_table(t: &InodeTable, key: &Digest) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        CACHE_MAGIC.len()
            + 32
            + 24
            + t.nodes.len() * NODE_BYTES
            + t.children.len() * CHILD_BYTES
            + t.names.len()
            + 32,
    );
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(key.as_bytes());
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
#[cfg(test)]
fn decode_table(bytes: &[u8], key: &Digest) -> Option<InodeTable> {
    read_table(bytes, bytes.len() as u64, key)
}

/// How much of the file [`read_table`] holds in memory at once.
const READ_CHUNK: usize = 256 << 10;

/// A reader that hands out the next `n` bytes of a file of known length through a small
/// buffer, hashing the body (everything but the trailing 32-byte checksum) on the way.
struct Stream<R> {
    r: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes read from `r` so far, and how many of them are body.
    read: u64,
    body_len: u64,
    hasher: blake3::Hasher,
}

impl<R: io::Read> Stream<R> {
    fn new(r: R, body_len: u64) -> Self {
        Stream {
            r,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            read: 0,
            body_len,
            hasher: blake3::Hasher::new(),
        }
    }

    /// The next `n` bytes (`n` ≤ [`READ_CHUNK`]); `None` at a premature end or an error.
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.end - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while self.end < n {
                let got = match self.r.read(&mut self.buf[self.end..]) {
                    Ok(0) => return None,
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return None,
                };
                let body = self.body_len.saturating_sub(self.read).min(got as u64) as usize;
                self.hasher.update(&self.buf[self.end..self.end + body]);
                self.read += got as u64;
                self.end += got;
            }
        }
        let out = &self.buf[self.start..self.start + n];
        self.start += n;
        Some(out)
    }
}

/// Reads a table of `len` bytes from `r` ([`encode_table`]'s format); `None` for
/// anything inconsistent or unreadable. Streams: the file is never held in memory
/// whole, only the decoded table is.
fn read_table(r: impl io::Read, len: u64, key: &Digest) -> Option<InodeTable> {
    let body_len = len.checked_sub(32)?;
    let mut s = Stream::new(r, body_len);
    if s.take(CACHE_MAGIC.len())? != CACHE_MAGIC || s.take(32)? != key.as_bytes() {
        return None;
    }
    let head = s.take(24)?;
    let (n_nodes, n_children, n_names) = (le64(head, 0), le64(head, 8), le64(head, 16));
    let node_bytes = n_nodes.checked_mul(NODE_BYTES as u64)?;
    let child_bytes = n_children.checked_mul(CHILD_BYTES as u64)?;
    let total = node_bytes.checked_add(child_bytes)?.checked_add(n_names)?;
    // The counts agree with the file's length before anything is allocated for them.
    if Some(total) != body_len.checked_sub(CACHE_MAGIC.len() as u64 + 32 + 24) || n_nodes < 2 {
        return None;
    }
    let in_names = |off: u64, len: u64| off.checked_add(len).is_some_and(|e| e <= n_names);

    let mut nodes = Vec::with_capacity(n_nodes as usize);
    for _ in 0..n_nodes {
        let r = s.take(NODE_BYTES)?;
        let parent = le64(r, 0);
        let perm = u16::from_le_bytes([r[8], r[9]]);
        let subdirs = u32::from_le_bytes(r[12..16].try_into().expect("4 bytes"));
        let (a, b) = (le64(r, 16), le64(r, 24));
        let kind = match r[10] {
            TAG_DIR if a.checked_add(b).is_some_and(|e| e <= n_children) => NodeKind::Dir {
                start: a,
                len: b,
                subdirs,
            },
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
    let mut children = Vec::with_capacity(n_children as usize);
    for _ in 0..n_children {
        let c = s.take(CHILD_BYTES)?;
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
    let mut names = Vec::with_capacity(n_names as usize);
    while (names.len() as u64) < n_names {
        let n = (n_names - names.len() as u64).min(READ_CHUNK as u64) as usize;
        names.extend_from_slice(s.take(n)?);
    }
    let sum = *s.hasher.finalize().as_bytes();
    if s.take(32)? != sum {
        return None;
    }

    if !matches!(nodes[1].kind, NodeKind::Dir { .. }) {
        return None;
    }
    // Lookups binary-search the names: each directory's must be sorted and unique.
    let name = |c: &Child| &names[c.name_off as usize..(c.name_off + c.name_len) as usize];
    for n in &nodes {
        if let NodeKind::Dir { start, len, .. } = n.kind {
            let kids = &children[start as usize..(start + len) as usize];
            if kids.windows(2).any(|w| name(&w[0]) >= name(&w[1])) {
                return None;
            }
        }
    }
    Some(InodeTable {
        nodes,
        children,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::super::inodes::{sample_digest as digest, sample_manifest};
    use super::*;

    #[test]
    fn inode_cache_round_trips_and_rejects_damage() {
        let repo_dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(repo_dir.path()).unwrap();
        let stack = [digest(7), digest(8)];
        assert!(InodeTable::load_cached(&repo, &stack).is_none());
        let table = InodeTable::from_manifest(sample_manifest());
        table.store_cached(&repo, &stack).unwrap();
        // Another stack (or order) has its own entry.
        assert!(InodeTable::load_cached(&repo, &[digest(8), digest(7)]).is_none());
        let t = InodeTable::load_cached(&repo, &stack).unwrap();
        let names: Vec<Vec<u8>> = t
            .dir_entries(1, &t.nodes[1], 0)
            .unwrap()
            .map(|(_, _, n)| n.to_vec())
            .collect();
        assert_eq!(names, [&b"."[..], b"..", b"a", b"b\xff", b"c"]);
        let a = t.child(&t.nodes[1], 1, b"a").unwrap();
        let f = t.child(&t.nodes[a as usize], a, b"f").unwrap();
        let node = &t.nodes[f as usize];
        assert_eq!(node.perm, 0o644);
        assert!(matches!(
            node.kind,
            NodeKind::File { size: 3, digest: d } if d == digest(1)
        ));
        let link = t.child(&t.nodes[1], 1, b"b\xff").unwrap();
        match t.nodes[link as usize].kind {
            NodeKind::Symlink { off, len } => assert_eq!(t.name(off, len), b"a/f"),
            _ => panic!("not a symlink"),
        }

        // Every single damaged byte, and every truncation, is refused.
        let path = InodeTable::cache_path(&repo, &stack);
        let good = std::fs::read(&path).unwrap();
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(decode_table(&bad, &cache_key(&stack)).is_none(), "byte {i}");
        }
        for len in [0, 10, good.len() / 2, good.len() - 1] {
            assert!(
                decode_table(&good[..len], &cache_key(&stack)).is_none(),
                "length {len}"
            );
        }
        // The whole file, read for another stack: refused.
        assert!(decode_table(&good, &cache_key(&stack)).is_some());
        assert!(decode_table(&good, &cache_key(&stack[..0])).is_none());
        std::fs::write(&path, b"garbage").unwrap();
        assert!(InodeTable::load_cached(&repo, &stack).is_none());
    }
}
