//! Writes an inode table as an uncompressed EROFS image that holds metadata only.
//!
//! The format subset written (on-disk layout of the kernel's `fs/erofs/erofs_fs.h`):
//! - 4 KiB blocks; the 128-byte superblock at byte 1024; the metadata area starts at
//!   block 0, so a node id is an inode's byte offset divided by 32;
//! - 64-byte extended inodes only (64-bit sizes, 32-bit owners);
//! - directories: plain data blocks of sorted dirents (`.` and `..` included), each
//!   block its dirent array followed by the names;
//! - symlinks: the target inline after the inode, or in a data block when too long;
//! - regular files: no data. A non-empty file is one chunk-based hole whose inline
//!   `trusted.overlay.metacopy` and `trusted.overlay.redirect` xattrs send overlayfs to
//!   its contents in a data-only layer; an empty file is a plain empty inode.
//!
//! Every record (inode, xattrs, chunk map or inline target) lies within one block.
//!
//! Each file's xattr header carries the xattr name filter
//! (`EROFS_FEATURE_COMPAT_XATTR_FILTER`): one bit per xxh32 hash of a name, set where
//! no xattr of the file hashes, so a lookup of an absent name (a stat walker's SELinux
//! or ACL probe, overlayfs's checks for other `trusted.overlay.*` names) ends before
//! the entries are read.

use std::io::{self, Write};

use crate::digest::Digest;
use crate::runtime::fuse::{InodeTable, NodeKind};

const BLOCK: u64 = 4096;
const BLOCK_BITS: u8 = 12;
const SUPER_OFFSET: usize = 1024;
const MAGIC: u32 = 0xE0F5_E1E2;
/// `EROFS_FEATURE_INCOMPAT_CHUNKED_FILE`.
const INCOMPAT_CHUNKED_FILE: u32 = 0x4;
/// `EROFS_FEATURE_COMPAT_XATTR_FILTER`.
const COMPAT_XATTR_FILTER: u32 = 0x4;
/// `EROFS_XATTR_FILTER_SEED`: the xxh32 seed of a name's filter bit, plus its index.
const XATTR_FILTER_SEED: u32 = 0x25BB_E08F;
/// `EROFS_XATTR_FILTER_BITS`.
const XATTR_FILTER_BITS: u32 = 32;
const INODE_SIZE: u64 = 64;
/// First node id: the first 32-byte slot after the superblock.
const FIRST_SLOT: u64 = (SUPER_OFFSET as u64 + 128) / 32;
const LAYOUT_FLAT_PLAIN: u16 = 0;
const LAYOUT_FLAT_INLINE: u16 = 2;
const LAYOUT_CHUNK_BASED: u16 = 4;
/// Chunk format: at most 31 extra block bits (chunks of up to 8 TiB), 4-byte map entries.
const MAX_CHUNK_EXTRA_BITS: u32 = 31;
const NULL_ADDR: u32 = u32::MAX;
const XATTR_INDEX_TRUSTED: u8 = 4;
const XATTR_HEADER: usize = 12;
const DIRENT_SIZE: usize = 12;
const FT_REG_FILE: u8 = 1;
const FT_DIR: u8 = 2;
const FT_SYMLINK: u8 = 7;

/// Owner and time given to every inode.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    /// Owner of every inode.
    pub uid: u32,
    /// Group of every inode.
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: u64,
}

/// What one inode of the image is made of, decided before anything is placed.
struct Record {
    layout: u16,
    xattrs: Vec<u8>,
    /// Chunk map entries (chunk-based files).
    chunks: u32,
    chunk_bits: u16,
}

impl Record {
    /// No data, or data in blocks of its own: directories, empty files, long targets.
    const PLAIN: Record = Record {
        layout: LAYOUT_FLAT_PLAIN,
        xattrs: Vec::new(),
        chunks: 0,
        chunk_bits: 0,
    };

    /// A symlink target stored right after the inode.
    fn inline(&self) -> bool {
        self.layout == LAYOUT_FLAT_INLINE
    }

    /// Bytes the record takes in the metadata area.
    fn size(&self, kind: &NodeKind) -> u64 {
        let inline = match (self.inline(), kind) {
            (true, NodeKind::Symlink { len, .. }) => *len,
            _ => 0,
        };
        INODE_SIZE + self.xattrs.len() as u64 + 4 * self.chunks as u64 + inline
    }
}

/// Writes `table` as an image to `out`; `redirect` gives the path of a file's contents
/// in the data-only layer (absolute: `/ab/cdef…`). Returns the bytes written.
pub fn write_image(
    table: &InodeTable,
    stamp: Stamp,
    redirect: &dyn Fn(&Digest) -> String,
    out: &mut dyn Write,
) -> io::Result<u64> {
    let n = table.nodes.len();
    // Pass 1: what each inode holds, and where it goes in the metadata area. Both are
    // indexed by inode number (0 unused, as in the table).
    let mut records = vec![Record::PLAIN];
    let mut offsets = vec![0u64; n];
    let mut cur = FIRST_SLOT * 32;
    for (node, offset) in table.nodes.iter().zip(offsets.iter_mut()).skip(1) {
        let record = match &node.kind {
            NodeKind::Dir { .. } | NodeKind::File { size: 0, .. } => Record::PLAIN,
            NodeKind::File { size, digest } => {
                let (chunk_bits, chunks) = one_chunk(*size);
                Record {
                    layout: LAYOUT_CHUNK_BASED,
                    xattrs: overlay_xattrs(redirect(digest).as_bytes()),
                    chunks,
                    chunk_bits,
                }
            }
            NodeKind::Symlink { len, .. } if INODE_SIZE + len <= BLOCK => Record {
                layout: LAYOUT_FLAT_INLINE,
                ..Record::PLAIN
            },
            NodeKind::Symlink { .. } => Record::PLAIN,
        };
        let size = record.size(&node.kind);
        let mut at = cur.next_multiple_of(32);
        if at % BLOCK + size > BLOCK {
            at = at.next_multiple_of(BLOCK);
        }
        *offset = at;
        cur = at + size;
        records.push(record);
    }
    let meta_end = cur.next_multiple_of(BLOCK);

    // Pass 2: the data blocks of directories and long symlink targets.
    let mut next_block = meta_end / BLOCK;
    let mut data: Vec<u8> = Vec::new();
    let mut placed = vec![(0u32, 0u64); n]; // (first block, i_size) of data-holding inodes
    for ino in 1..n {
        let node = &table.nodes[ino];
        match &node.kind {
            NodeKind::Dir { .. } => {
                let (bytes, size) = dir_blocks(table, ino as u64, &offsets);
                let blocks = bytes.len() as u64 / BLOCK;
                placed[ino] = (block_addr(next_block)?, size);
                next_block += blocks;
                data.extend_from_slice(&bytes);
            }
            NodeKind::Symlink { off, len } if !records[ino].inline() => {
                let blocks = len.div_ceil(BLOCK);
                placed[ino] = (block_addr(next_block)?, *len);
                next_block += blocks;
                let start = data.len();
                data.extend_from_slice(table.name(*off, *len));
                data.resize(start + (blocks * BLOCK) as usize, 0);
            }
            _ => {}
        }
    }

    // The metadata area: superblock, then every inode.
    let mut meta = vec![0u8; meta_end as usize];
    let root_nid = offsets[1] / 32;
    let sb = &mut meta[SUPER_OFFSET..SUPER_OFFSET + 128];
    put32(sb, 0, MAGIC);
    sb[12] = BLOCK_BITS;
    put16(sb, 14, root_nid as u16);
    put64(sb, 16, (n - 1) as u64);
    put64(sb, 24, stamp.mtime);
    put32(sb, 36, block_addr(next_block)?);
    put32(sb, 8, COMPAT_XATTR_FILTER);
    put32(sb, 80, INCOMPAT_CHUNKED_FILE);
    for ino in 1..n {
        let node = &table.nodes[ino];
        let record = &records[ino];
        let at = offsets[ino] as usize;
        let (mode, size, nlink, i_u) = match &node.kind {
            NodeKind::Dir { subdirs, .. } => (
                libc::S_IFDIR as u16 | node.perm,
                placed[ino].1,
                2 + subdirs,
                placed[ino].0,
            ),
            NodeKind::File { size, .. } => (
                libc::S_IFREG as u16 | node.perm,
                *size,
                1,
                // Chunk info: extra block bits per chunk; a plain empty file: no blocks.
                record.chunk_bits as u32,
            ),
            NodeKind::Symlink { len, .. } => (
                libc::S_IFLNK as u16 | node.perm,
                *len,
                1,
                if record.inline() { 0 } else { placed[ino].0 },
            ),
        };
        let inode = &mut meta[at..at + INODE_SIZE as usize];
        put16(inode, 0, 1 | (record.layout << 1));
        let icount = if record.xattrs.is_empty() {
            0
        } else {
            ((record.xattrs.len() - XATTR_HEADER) / 4 + 1) as u16
        };
        put16(inode, 2, icount);
        put16(inode, 4, mode);
        put64(inode, 8, size);
        put32(inode, 16, i_u);
        put32(inode, 20, ino as u32);
        put32(inode, 24, stamp.uid);
        put32(inode, 28, stamp.gid);
        put64(inode, 32, stamp.mtime);
        put32(inode, 44, nlink);
        let mut pos = at + INODE_SIZE as usize;
        meta[pos..pos + record.xattrs.len()].copy_from_slice(&record.xattrs);
        pos += record.xattrs.len();
        for _ in 0..record.chunks {
            put32(&mut meta[pos..], 0, NULL_ADDR);
            pos += 4;
        }
        if let (true, NodeKind::Symlink { off, len }) = (record.inline(), &node.kind) {
            meta[pos..pos + *len as usize].copy_from_slice(table.name(*off, *len));
        }
    }
    out.write_all(&meta)?;
    out.write_all(&data)?;
    Ok(meta.len() as u64 + data.len() as u64)
}

/// Chunk bits and chunk count that make a file of `size` bytes one chunk (two or more
/// only beyond 8 TiB).
fn one_chunk(size: u64) -> (u16, u32) {
    let bits = 64 - (size - 1).leading_zeros();
    let extra = bits
        .saturating_sub(BLOCK_BITS as u32)
        .min(MAX_CHUNK_EXTRA_BITS);
    let chunk = 1u64 << (BLOCK_BITS as u32 + extra);
    (extra as u16, size.div_ceil(chunk) as u32)
}

fn block_addr(block: u64) -> io::Result<u32> {
    u32::try_from(block).map_err(|_| io::Error::other("the image would exceed 16 TiB"))
}

/// The inline xattr body of a metacopy file: header, then `trusted.overlay.metacopy`
/// (empty) and `trusted.overlay.redirect` (`target`), each padded to 4 bytes.
fn overlay_xattrs(target: &[u8]) -> Vec<u8> {
    let xattrs = [
        (&b"overlay.metacopy"[..], &b""[..]),
        (b"overlay.redirect", target),
    ];
    let mut body = vec![0u8; XATTR_HEADER];
    let absent = xattrs.iter().fold(u32::MAX, |filter, (name, _)| {
        filter & !filter_bit(XATTR_INDEX_TRUSTED, name)
    });
    put32(&mut body, 0, absent);
    for (name, value) in xattrs {
        body.push(name.len() as u8);
        body.push(XATTR_INDEX_TRUSTED);
        body.extend_from_slice(&(value.len() as u16).to_le_bytes());
        body.extend_from_slice(name);
        body.extend_from_slice(value);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    body
}

/// The xattr name filter's bit for `name` (the part after its index's prefix, such as
/// `overlay.redirect` for `trusted.overlay.redirect`).
fn filter_bit(index: u8, name: &[u8]) -> u32 {
    let hash = xxhash_rust::xxh32::xxh32(name, XATTR_FILTER_SEED.wrapping_add(index as u32));
    1 << (hash & (XATTR_FILTER_BITS - 1))
}

/// The data blocks of directory `ino` and its `i_size` (the last block counts only
/// the bytes it uses).
fn dir_blocks(table: &InodeTable, ino: u64, offsets: &[u64]) -> (Vec<u8>, u64) {
    let node = &table.nodes[ino as usize];
    let mut entries: Vec<(&[u8], u64, u8)> = table
        .dir_entries(ino, node, 0)
        .into_iter()
        .flatten()
        .map(|(child, _, name)| {
            let ft = match table.nodes[child as usize].kind {
                NodeKind::Dir { .. } => FT_DIR,
                NodeKind::File { .. } => FT_REG_FILE,
                NodeKind::Symlink { .. } => FT_SYMLINK,
            };
            (name, offsets[child as usize] / 32, ft)
        })
        .collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    let mut used_last = 0;
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut used = 0;
        while end < entries.len() && used + DIRENT_SIZE + entries[end].0.len() <= BLOCK as usize {
            used += DIRENT_SIZE + entries[end].0.len();
            end += 1;
        }
        let block = &entries[start..end];
        let base = out.len();
        out.resize(base + BLOCK as usize, 0);
        let mut name_at = DIRENT_SIZE * block.len();
        for (i, (name, nid, ft)) in block.iter().enumerate() {
            let d = &mut out[base + i * DIRENT_SIZE..];
            put64(d, 0, *nid);
            put16(d, 8, name_at as u16);
            d[10] = *ft;
            out[base + name_at..base + name_at + name.len()].copy_from_slice(name);
            name_at += name.len();
        }
        used_last = used;
        start = end;
    }
    let size = out.len() as u64 - BLOCK + used_last as u64;
    (out, size)
}

fn put16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
