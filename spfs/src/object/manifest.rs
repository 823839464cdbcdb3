//! Manifests: whole directory trees with names, kinds, modes, sizes and payload digests.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::encoding::{DecodeError, Reader, Writer};

/// Deepest directory nesting accepted when decoding (Linux paths cannot go deeper).
const MAX_DEPTH: usize = 2048;

/// Directory contents keyed by raw file-name bytes, in byte order.
pub type Tree = BTreeMap<Vec<u8>, Entry>;

/// One named entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Permission bits (`0o7777` at most); zero for masks.
    pub mode: u32,
    /// What the entry is, with its content.
    pub kind: EntryKind,
}

/// The kind of an entry and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file whose bytes are the payload `digest`.
    File {
        /// Length of the content in bytes.
        size: u64,
        /// Digest of the content.
        digest: Digest,
    },
    /// A directory.
    Dir(Tree),
    /// A symbolic link; the target bytes are kept verbatim.
    Symlink(Vec<u8>),
    /// "Deleted in this layer": hides the same path in lower layers.
    Mask,
}

impl Entry {
    /// A regular file entry.
    pub fn file(mode: u32, size: u64, digest: Digest) -> Self {
        Entry {
            mode: mode & 0o7777,
            kind: EntryKind::File { size, digest },
        }
    }
    /// A directory entry.
    pub fn dir(mode: u32, tree: Tree) -> Self {
        Entry {
            mode: mode & 0o7777,
            kind: EntryKind::Dir(tree),
        }
    }
    /// A symlink entry.
    pub fn symlink(target: Vec<u8>) -> Self {
        Entry {
            mode: 0o777,
            kind: EntryKind::Symlink(target),
        }
    }
    /// A mask entry.
    pub fn mask() -> Self {
        Entry {
            mode: 0,
            kind: EntryKind::Mask,
        }
    }
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir(_))
    }
    /// Size as shown by `ls -l`: content length for files, target length for symlinks.
    pub fn size(&self) -> u64 {
        match &self.kind {
            EntryKind::File { size, .. } => *size,
            EntryKind::Symlink(t) => t.len() as u64,
            _ => 0,
        }
    }
    /// One-letter kind marker used in listings.
    pub fn kind_char(&self) -> char {
        match self.kind {
            EntryKind::File { .. } => '-',
            EntryKind::Dir(_) => 'd',
            EntryKind::Symlink(_) => 'l',
            EntryKind::Mask => 'x',
        }
    }
}

/// A whole directory tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The top-level directory's entries.
    pub root: Tree,
}

/// A regular file of a manifest, as [`Manifest::files`] yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path from the manifest root, without a leading slash.
    pub path: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Digest of the content (the payload).
    pub digest: Digest,
    /// Length of the content in bytes.
    pub size: u64,
}

/// A visited entry with its full slash-separated path.
pub struct Walked<'a> {
    /// Path from the manifest root, without a leading slash.
    pub path: Vec<u8>,
    /// The entry at that path.
    pub entry: &'a Entry,
}

impl Manifest {
    /// A manifest holding the given root directory.
    pub fn new(root: Tree) -> Self {
        Manifest { root }
    }

    /// Every entry in depth-first pre-order (a directory before its contents).
    pub fn walk(&self) -> Vec<Walked<'_>> {
        let mut out = Vec::new();
        fn rec<'a>(tree: &'a Tree, prefix: &[u8], out: &mut Vec<Walked<'a>>) {
            for (name, entry) in tree {
                let mut path = prefix.to_vec();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(name);
                out.push(Walked {
                    path: path.clone(),
                    entry,
                });
                if let EntryKind::Dir(sub) = &entry.kind {
                    rec(sub, &path, out);
                }
            }
        }
        rec(&self.root, b"", &mut out);
        out
    }

    /// Every regular file, depth-first.
    pub fn files(&self) -> impl Iterator<Item = FileEntry> + '_ {
        self.walk().into_iter().filter_map(|w| match w.entry.kind {
            EntryKind::File { size, digest } => Some(FileEntry {
                path: w.path,
                mode: w.entry.mode,
                digest,
                size,
            }),
            _ => None,
        })
    }

    /// The entry at a slash-separated path; `""` or `"/"` is not an entry.
    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        let mut tree = &self.root;
        let mut parts = path
            .split(|c| *c == b'/')
            .filter(|p| !p.is_empty())
            .peekable();
        while let Some(part) = parts.next() {
            let entry = tree.get(part)?;
            if parts.peek().is_none() {
                return Some(entry);
            }
            match &entry.kind {
                EntryKind::Dir(sub) => tree = sub,
                _ => return None,
            }
        }
        None
    }

    /// The directory listing at a path (`""` for the root).
    pub fn list(&self, path: &[u8]) -> Option<&Tree> {
        if path.iter().all(|c| *c == b'/') {
            return Some(&self.root);
        }
        match &self.get(path)?.kind {
            EntryKind::Dir(t) => Some(t),
            _ => None,
        }
    }

    /// Lays `upper` over this tree: upper entries replace lower ones, masks delete,
    /// and directories present in both are merged.
    pub fn overlay(&mut self, upper: &Manifest) {
        fn merge(lower: &mut Tree, upper: &Tree) {
            for (name, up) in upper {
                match &up.kind {
                    EntryKind::Mask => {
                        lower.remove(name);
                    }
                    EntryKind::Dir(up_tree) => match lower.get_mut(name) {
                        Some(Entry {
                            mode,
                            kind: EntryKind::Dir(low_tree),
                        }) => {
                            *mode = up.mode;
                            merge(low_tree, up_tree);
                        }
                        _ => {
                            let mut fresh = Tree::new();
                            merge(&mut fresh, up_tree);
                            lower.insert(name.clone(), Entry::dir(up.mode, fresh));
                        }
                    },
                    _ => {
                        lower.insert(name.clone(), up.clone());
                    }
                }
            }
        }
        merge(&mut self.root, &upper.root);
    }

    /// Number of entries of each kind: (files, dirs, symlinks, masks).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for w in self.walk() {
            match w.entry.kind {
                EntryKind::File { .. } => c.0 += 1,
                EntryKind::Dir(_) => c.1 += 1,
                EntryKind::Symlink(_) => c.2 += 1,
                EntryKind::Mask => c.3 += 1,
            }
        }
        c
    }

    /// Total bytes of file content.
    pub fn total_size(&self) -> u64 {
        self.files().map(|f| f.size).sum()
    }

    pub(super) fn encode_body(&self, w: &mut Writer) {
        encode_tree(&self.root, w);
    }

    pub(super) fn decode_body(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Manifest {
            root: decode_tree(r, 0)?,
        })
    }
}

const KIND_FILE: u8 = 1;
const KIND_DIR: u8 = 2;
const KIND_SYMLINK: u8 = 3;
const KIND_MASK: u8 = 4;

fn encode_tree(tree: &Tree, w: &mut Writer) {
    w.u32(tree.len() as u32);
    for (name, entry) in tree {
        w.u16(name.len() as u16);
        w.raw(name);
        match &entry.kind {
            EntryKind::File { size, digest } => {
                w.u8(KIND_FILE);
                w.u32(entry.mode);
                w.u64(*size);
                w.digest(digest);
            }
            EntryKind::Dir(sub) => {
                w.u8(KIND_DIR);
                w.u32(entry.mode);
                encode_tree(sub, w);
            }
            EntryKind::Symlink(target) => {
                w.u8(KIND_SYMLINK);
                w.u32(entry.mode);
                w.u32(target.len() as u32);
                w.raw(target);
            }
            EntryKind::Mask => w.u8(KIND_MASK),
        }
    }
}

/// Checks that a file name is one path component the kernel would accept.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != b"."
        && name != b".."
        && !name.iter().any(|c| *c == b'/' || *c == 0)
}

fn decode_tree(r: &mut Reader, depth: usize) -> Result<Tree, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("directories nested too deeply".into()));
    }
    let count = r.u32()? as usize;
    // Each entry takes at least 4 bytes: a bound that stops absurd counts early.
    if count > r.remaining() / 4 + 1 {
        return Err(DecodeError(format!(
            "entry count {count} exceeds the object size"
        )));
    }
    let mut tree = Tree::new();
    let mut previous: Option<Vec<u8>> = None;
    for _ in 0..count {
        let at = r.offset();
        let len = r.u16()? as usize;
        let name = r.take(len)?.to_vec();
        if !valid_name(&name) {
            return Err(DecodeError(format!("invalid entry name at offset {at}")));
        }
        if previous.as_ref().is_some_and(|p| *p >= name) {
            return Err(DecodeError(format!(
                "entries not in canonical order at offset {at}"
            )));
        }
        let entry = match r.u8()? {
            KIND_FILE => {
                let mode = r.u32()?;
                let size = r.u64()?;
                let digest = r.digest()?;
                Entry {
                    mode,
                    kind: EntryKind::File { size, digest },
                }
            }
            KIND_DIR => {
                let mode = r.u32()?;
                Entry {
                    mode,
                    kind: EntryKind::Dir(decode_tree(r, depth + 1)?),
                }
            }
            KIND_SYMLINK => {
                let mode = r.u32()?;
                let len = r.u32()? as usize;
                Entry {
                    mode,
                    kind: EntryKind::Symlink(r.take(len)?.to_vec()),
                }
            }
            KIND_MASK => Entry::mask(),
            k => {
                return Err(DecodeError(format!(
                    "unknown entry kind {k} at offset {at}"
                )))
            }
        };
        if entry.mode > 0o7777 {
            return Err(DecodeError(format!(
                "invalid mode {:o} at offset {at}",
                entry.mode
            )));
        }
        previous = Some(name.clone());
        tree.insert(name, entry);
    }
    Ok(tree)
}
