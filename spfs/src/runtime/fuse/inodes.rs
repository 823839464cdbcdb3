//! The served tree as an inode table: flat arrays indexed by inode number, built
//! breadth first from a merged manifest, with the lookups the handlers need.

use std::collections::VecDeque;

use fuser::INodeNo;

use super::ROOT_MODE;
use crate::digest::Digest;
use crate::object::{EntryKind, Manifest, Tree};

/// One inode of the served tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) parent: u64,
    pub(crate) perm: u16,
    pub(crate) kind: NodeKind,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
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
pub(super) struct Child {
    pub(super) name_off: u64,
    pub(super) name_len: u64,
    pub(super) ino: u64,
}

/// The inode table a [`FuseMount`](super::FuseMount) serves: built from a merged manifest, or loaded from
/// the derived cache under `renders/fuse/` (see [`InodeTable::load_cached`]). Flat
/// arrays: a 50,000-entry table is three allocations, quick to load and to free.
/// Index = inode number; root = 1; index 0 unused.
#[derive(Debug)]
pub struct InodeTable {
    pub(crate) nodes: Vec<Node>,
    pub(super) children: Vec<Child>,
    pub(super) names: Vec<u8>,
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

    /// The node of inode `ino`, if there is one.
    pub(super) fn node(&self, ino: INodeNo) -> Option<&Node> {
        if ino.0 == 0 {
            return None;
        }
        self.nodes.get(ino.0 as usize)
    }

    /// The bytes `names[off..off + len]` (an entry name or a symlink target).
    pub(crate) fn name(&self, off: u64, len: u64) -> &[u8] {
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

    /// The inode named `name` in the directory `parent` (inode `parent_ino`).
    pub(super) fn child(&self, parent: &Node, parent_ino: u64, name: &[u8]) -> Option<u64> {
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
    pub(crate) fn dir_entries<'a>(
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
/// A small merged manifest for the tests of this module: a directory with a file, a
/// mask and an empty subdirectory, a symlink with a non-UTF-8 name, a setuid file.
#[cfg(test)]
pub(super) fn sample_manifest() -> Manifest {
    use crate::object::Entry;
    let mut sub = Tree::new();
    sub.insert(b"f".to_vec(), Entry::file(0o644, 3, sample_digest(1)));
    sub.insert(b"gone".to_vec(), Entry::mask());
    sub.insert(b"inner".to_vec(), Entry::dir(0o700, Tree::new()));
    let mut root = Tree::new();
    root.insert(b"a".to_vec(), Entry::dir(0o755, sub));
    root.insert(b"b\xff".to_vec(), Entry::symlink(b"a/f".to_vec()));
    root.insert(b"c".to_vec(), Entry::file(0o4755, 9, sample_digest(2)));
    Manifest::new(root)
}

/// A distinct digest per `n`, for tests.
#[cfg(test)]
pub(super) fn sample_digest(n: u8) -> Digest {
    Digest::of(&[n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_table_has_parents_and_no_masks() {
        let t = InodeTable::from_manifest(sample_manifest());
        // placeholder, root, a, b\xff, c, a/f, a/inner
        assert_eq!(t.nodes.len(), 7);
        assert_eq!(t.len(), 6);
        let root = &t.nodes[1];
        let a = t.child(root, 1, b"a").unwrap();
        assert_eq!(t.child(root, 1, b".."), Some(1));
        assert_eq!(t.child(root, 1, b"b\xff"), Some(3));
        let a_node = &t.nodes[a as usize];
        assert_eq!(t.child(a_node, a, b"gone"), None);
        assert_eq!(t.child(a_node, a, b".."), Some(1));
        let inner = t.child(a_node, a, b"inner").unwrap();
        assert_eq!(t.nodes[inner as usize].parent, a);
        let mut payloads: Vec<_> = t.payloads().map(|(d, s)| (*d, s)).collect();
        payloads.sort_by_key(|p| p.1);
        assert_eq!(payloads, [(sample_digest(1), 3), (sample_digest(2), 9)]);
    }

    #[test]
    fn directory_offsets_resume_where_they_stopped() {
        let t = InodeTable::from_manifest(sample_manifest());
        let all: Vec<_> = t
            .dir_entries(1, &t.nodes[1], 0)
            .unwrap()
            .map(|(ino, next, name)| (ino, next, name.to_vec()))
            .collect();
        let names: Vec<&[u8]> = all.iter().map(|e| e.2.as_slice()).collect();
        assert_eq!(names, [&b"."[..], b"..", b"a", b"b\xff", b"c"]);
        for (i, (_, next, _)) in all.iter().enumerate() {
            assert_eq!(*next, i as u64 + 1);
            let rest: Vec<_> = t.dir_entries(1, &t.nodes[1], *next).unwrap().collect();
            assert_eq!(rest.len(), all.len() - i - 1);
        }
        assert_eq!(t.dir_entries(1, &t.nodes[1], u64::MAX).unwrap().count(), 0);
        assert!(t.dir_entries(5, &t.nodes[5], 0).is_none());
    }

    #[test]
    fn unknown_inodes_are_not_found() {
        let t = InodeTable::from_manifest(sample_manifest());
        assert!(t.node(INodeNo(0)).is_none());
        assert!(t.node(INodeNo(7)).is_none());
        assert!(t.node(INodeNo(u64::MAX)).is_none());
    }
}
