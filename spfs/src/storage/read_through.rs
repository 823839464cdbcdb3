//! Reading a stack whose objects are not all local, for a lazy FUSE runtime
//! (`--payloads-from`): objects missing locally are read from the remote into memory,
//! verified against their digests, and never stored locally. A stored object implies
//! that its whole closure (children and payloads) is stored, and a lazily read stack
//! has its payloads elsewhere; only payloads (which break no rule) are kept locally,
//! once they are fetched on first open.

use super::references::walk_stack_with;
use super::{LocalRepository, Repository};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::object::{Manifest, Object};

/// The local repository's objects, then the remote's, read but never copied.
pub struct ReadThrough<'a> {
    local: &'a LocalRepository,
    remote: &'a dyn Repository,
}

impl<'a> ReadThrough<'a> {
    /// Reads from `local` first, then from `remote`.
    pub fn new(local: &'a LocalRepository, remote: &'a dyn Repository) -> Self {
        ReadThrough { local, remote }
    }

    /// True if every object of `stack` is local: then so are their closures, and the
    /// local repository alone serves the stack.
    pub fn all_local(local: &LocalRepository, stack: &[Digest]) -> bool {
        stack.iter().all(|d| local.has_object(d))
    }

    /// An object, from the local repository if it holds it, otherwise read from the
    /// remote and verified (its bytes against the digest, then decoded).
    pub fn read_object(&self, digest: &Digest) -> Result<Object> {
        if self.local.has_object(digest) {
            return self.local.read_object(digest);
        }
        self.remote
            .read_object(digest)
            .map_err(|e| Error::RemoteStackObject {
                digest: *digest,
                remote: self.remote.describe(),
                source: Box::new(e),
            })
    }

    /// A manifest; a layer's manifest is followed.
    pub fn read_manifest(&self, digest: &Digest) -> Result<Manifest> {
        super::traits::manifest_via(&|d| self.read_object(d), digest)
    }

    /// The manifests of layers, platforms and manifests, bottom first, as
    /// [`LocalRepository::manifests_of`] gives them.
    pub fn manifests_of(&self, stack: &[Digest]) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        // A payload named as a layer is refused (by what is local: asking the remote
        // would cost requests on every entry).
        let is_blob = |d: &Digest| !self.local.has_object(d) && self.local.has_payload(d);
        walk_stack_with(
            &|d| self.read_object(d),
            &is_blob,
            stack,
            0,
            &mut |d, obj| {
                out.push(match obj {
                    Object::Layer(l) => l.manifest,
                    _ => *d,
                });
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The tree seen when `manifests` (bottom first) are laid over each other.
    pub fn merge_manifests(&self, manifests: &[Digest]) -> Result<Manifest> {
        super::traits::merge_via(&|d| self.read_manifest(d), manifests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Platform;
    use crate::test_fixture::fixture;

    #[test]
    fn a_remote_only_stack_is_read_without_storing_anything_locally() {
        let f = fixture();
        let a = f.layer("a", &[("x", b"bottom"), ("d/y", b"kept")]);
        let b = f.layer("b", &[("x", b"top")]);
        let platform = f
            .src
            .write_object(&Object::Platform(Platform { layers: vec![a, b] }))
            .unwrap();
        let through = ReadThrough::new(&f.dst, &f.src);
        assert!(!ReadThrough::all_local(&f.dst, &[platform]));
        let manifests = through.manifests_of(&[platform]).unwrap();
        let expected: Vec<Digest> = [a, b]
            .iter()
            .map(|l| f.src.read_layer(l).unwrap().manifest)
            .collect();
        assert_eq!(manifests, expected);
        let merged = through.merge_manifests(&manifests).unwrap();
        let files: Vec<(Vec<u8>, Digest)> = merged.files().map(|e| (e.path, e.digest)).collect();
        assert_eq!(
            files,
            [
                (b"d/y".to_vec(), Digest::of(b"kept")),
                (b"x".to_vec(), Digest::of(b"top")),
            ]
        );
        assert!(f.dst.list_objects().unwrap().is_empty());
        assert!(f.dst.list_payloads().unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_or_missing_remote_object_names_the_object_and_the_remote() {
        let f = fixture();
        let a = f.layer("a", &[("x", b"content")]);
        let through = ReadThrough::new(&f.dst, &f.src);
        let path = f.src.object_path(&a);
        crate::storage::set_mode(&path, 0o644).unwrap();
        std::fs::write(&path, b"not the layer").unwrap();
        let err = through.manifests_of(&[a]).unwrap_err();
        assert!(
            matches!(&err, Error::RemoteStackObject { digest, source, .. }
                if *digest == a && matches!(**source, Error::Corrupt { .. })),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&f.src.describe()), "{text}");
        let gone = Digest::of(b"no such object");
        let err = through.manifests_of(&[gone]).unwrap_err();
        assert!(
            matches!(&err, Error::RemoteStackObject { source, .. }
                if matches!(**source, Error::MissingObject(d) if d == gone)),
            "{err:?}"
        );
        assert!(f.dst.list_objects().unwrap().is_empty());
    }
}
