//! Differences between two trees.

use crate::object::{Entry, EntryKind, Manifest, Tree};

/// One difference between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Present only in the second tree.
    Added(Vec<u8>, Entry),
    /// Present only in the first tree.
    Removed(Vec<u8>, Entry),
    /// Present in both with different kind, mode or content.
    Changed(Vec<u8>, Entry, Entry),
}

impl Change {
    /// The path the change concerns.
    pub fn path(&self) -> &[u8] {
        match self {
            Change::Added(p, _) | Change::Removed(p, _) | Change::Changed(p, _, _) => p,
        }
    }
}

/// Changes that turn `a` into `b`, in path order. A directory added or removed is
/// listed with everything under it.
pub fn diff(a: &Manifest, b: &Manifest) -> Vec<Change> {
    let mut out = Vec::new();
    diff_trees(&a.root, &b.root, b"", &mut out);
    out
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn all(tree: &Tree, prefix: &[u8], added: bool, out: &mut Vec<Change>) {
    for (name, e) in tree {
        let path = join(prefix, name);
        out.push(if added {
            Change::Added(path.clone(), e.clone())
        } else {
            Change::Removed(path.clone(), e.clone())
        });
        if let EntryKind::Dir(sub) = &e.kind {
            all(sub, &path, added, out);
        }
    }
}

fn shallow(e: &Entry) -> Entry {
    match &e.kind {
        EntryKind::Dir(_) => Entry::dir(e.mode, Tree::new()),
        _ => e.clone(),
    }
}

fn diff_trees(a: &Tree, b: &Tree, prefix: &[u8], out: &mut Vec<Change>) {
    let mut names: Vec<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let path = join(prefix, name);
        match (a.get(name), b.get(name)) {
            (Some(x), None) => {
                out.push(Change::Removed(path.clone(), shallow(x)));
                if let EntryKind::Dir(sub) = &x.kind {
                    all(sub, &path, false, out);
                }
            }
            (None, Some(y)) => {
                out.push(Change::Added(path.clone(), shallow(y)));
                if let EntryKind::Dir(sub) = &y.kind {
                    all(sub, &path, true, out);
                }
            }
            (Some(x), Some(y)) => match (&x.kind, &y.kind) {
                (EntryKind::Dir(sa), EntryKind::Dir(sb)) => {
                    if x.mode != y.mode {
                        out.push(Change::Changed(path.clone(), shallow(x), shallow(y)));
                    }
                    diff_trees(sa, sb, &path, out);
                }
                _ if x != y => out.push(Change::Changed(path, shallow(x), shallow(y))),
                _ => {}
            },
            (None, None) => {}
        }
    }
}
