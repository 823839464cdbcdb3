//! The repository seam: what any store (the local directory, a remote) offers, so
//! that moving data between stores (push, pull) is written once.
//!
//! Kept to what transfers need: raw object bytes, payload streams and tags. Every
//! write verifies the digest of what arrives and lands under its final name only
//! when complete.

use std::io::Read;
use std::path::PathBuf;

use super::{LocalRepository, TagEntry};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::object::{Manifest, Object};

/// Encoded objects, by digest.
pub trait ObjectStore: Send + Sync {
    /// True if the object is stored.
    fn has_object(&self, digest: &Digest) -> Result<bool>;
    /// The object's encoded bytes, verified against its digest.
    fn read_object_bytes(&self, digest: &Digest) -> Result<Vec<u8>>;
    /// Stores encoded bytes under `digest`, refusing bytes that hash otherwise or do
    /// not decode.
    fn write_object_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<()>;
    /// Every stored object's digest (a whole-store listing: for `spfs check`, never
    /// per request).
    fn list_objects(&self) -> Result<Vec<Digest>>;

    /// Reads, verifies and decodes an object.
    fn read_object(&self, digest: &Digest) -> Result<Object> {
        let bytes = self.read_object_bytes(digest)?;
        Object::decode(&bytes).map_err(|e| Error::Corrupt {
            what: "object",
            digest: *digest,
            path: format!("object {digest}").into(),
            reason: e.0,
        })
    }

    /// Reads a manifest; a layer's manifest is followed.
    fn read_manifest(&self, digest: &Digest) -> Result<Manifest> {
        manifest_via(&|d| self.read_object(d), digest)
    }
}

/// What only a store on this host's filesystem offers, and renders need: payloads as
/// files to hard-link or copy, and the render cache. A render reads its objects through
/// [`ObjectStore`] like anything else; a remote has no such files (its payloads reach a
/// render by a pull first, or lazily through FUSE).
pub trait LocalFiles: ObjectStore {
    /// A regular file of `size` bytes with the payload's content whose inode mode is
    /// exactly `mode` (see [`LocalRepository::payload_for_mode`]): what a render links.
    fn payload_link_source(&self, digest: &Digest, mode: u32, size: u64) -> Result<PathBuf>;
    /// The payload's file opened for copying; refused unless it holds `size` bytes.
    fn open_payload_file(&self, digest: &Digest, size: u64) -> Result<std::fs::File>;
    /// Where the payload's file is (for messages).
    fn payload_file(&self, digest: &Digest) -> PathBuf;
    /// The render cache (`renders/`), where cached renders and proxies live.
    fn render_cache(&self) -> PathBuf;
}

impl LocalFiles for LocalRepository {
    fn payload_link_source(&self, digest: &Digest, mode: u32, size: u64) -> Result<PathBuf> {
        self.payload_for_mode(digest, mode, size)
    }

    fn open_payload_file(&self, digest: &Digest, size: u64) -> Result<std::fs::File> {
        self.open_payload(digest, Some(size))
    }

    fn payload_file(&self, digest: &Digest) -> PathBuf {
        self.payload_path(digest)
    }

    fn render_cache(&self) -> PathBuf {
        self.renders_dir()
    }
}

/// File contents, by digest.
pub trait PayloadStore: Send + Sync {
    /// True if the payload is stored.
    fn has_payload(&self, digest: &Digest) -> Result<bool>;
    /// A reader of the payload's content, its size, and its permission bits.
    fn open_payload_stream(&self, digest: &Digest) -> Result<(Box<dyn Read + Send>, u64, u32)>;
    /// Stores what `reader` yields as the payload `digest` with `mode` (as
    /// [`crate::storage::payload_mode`] gives it); the content must hash to `digest`. Returns the bytes stored.
    fn write_payload_stream(
        &self,
        digest: &Digest,
        reader: &mut dyn Read,
        mode: u32,
    ) -> Result<u64>;
    /// Every stored payload's digest (a whole-store listing: for `spfs check`, never
    /// per request).
    fn list_payloads(&self) -> Result<Vec<Digest>>;

    /// A small payload's whole content (a spec, a note), verified against its digest;
    /// refused when it holds more than `limit` bytes.
    fn read_payload_bytes(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let (reader, size, _) = self.open_payload_stream(digest)?;
        let where_ = || std::path::PathBuf::from(format!("payload {digest}"));
        if size > limit {
            return Err(Error::FileTooLarge {
                path: where_(),
                size,
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .ctx("reading", &where_())?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::Corrupt {
                what: "payload",
                digest: *digest,
                path: where_(),
                reason: format!("content hashes to {}", actual.short()),
            });
        }
        Ok(bytes)
    }

    /// True when [`PayloadStore::write_payload_stream`] notices a stored payload by
    /// itself, at no more cost than [`PayloadStore::has_payload`] (returning 0), so a
    /// transfer need not ask first: an S3 create-only PUT answers 412 for it.
    fn write_finds_existing(&self) -> bool {
        false
    }
}

/// One level of the tags tree: what [`TagStore::list_tag_dir`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagLevel {
    /// Names of the directories directly under the level, sorted.
    pub dirs: Vec<String>,
    /// Names of the tags directly in the level, sorted.
    pub tags: Vec<String>,
}

/// Tags with history.
pub trait TagStore: Send + Sync {
    /// Names of all tags under a prefix (all for `""`).
    fn list_tag_names(&self, prefix: &str) -> Result<Vec<String>>;
    /// A tag's history, newest first (empty if unknown).
    fn tag_versions(&self, name: &str) -> Result<Vec<TagEntry>>;
    /// Points tags at targets, which must be stored.
    fn set_tags(&self, tags: &[(String, Digest)]) -> Result<()>;

    /// One level of the tags tree under `dir` (`""` for the top): the tags directly in
    /// it and its subdirectories, by last segment. Empty if nothing lives under `dir`.
    ///
    /// The default derives it from [`list_tag_names`](Self::list_tag_names), which
    /// reads everything under `dir`; stores that can list one level (a directory, an
    /// object store listing with a `/` delimiter) should override it.
    fn list_tag_dir(&self, dir: &str) -> Result<TagLevel> {
        let dir = dir.trim_matches('/');
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out = TagLevel::default();
        for name in self.list_tag_names(&prefix)? {
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            match rest.split_once('/') {
                Some((d, _)) => out.dirs.push(d.to_string()),
                None if !rest.is_empty() => out.tags.push(rest.to_string()),
                None => {}
            }
        }
        out.dirs.sort();
        out.dirs.dedup();
        out.tags.sort();
        Ok(out)
    }
}

/// A whole repository.
pub trait Repository: ObjectStore + PayloadStore + TagStore {
    /// How the repository is named to users (a path or an address).
    fn describe(&self) -> String;
    /// Keeps the store's garbage collection from removing what a transfer relies on
    /// until the returned value is dropped (docs/gc.md).
    fn hold_for_writing(&self) -> Result<Box<dyn std::any::Any>>;
    /// Requests worth keeping in flight at once during a transfer: the CPU count
    /// for a local disk, more for a remote where each request mostly waits.
    fn parallelism(&self) -> usize {
        rayon::current_num_threads()
    }
    /// The file of an archive (`tar://`), whose payloads are read only by a pass over
    /// all of it: transfers from it go through [`crate::archive::fetch_closures`] and
    /// [`crate::archive::read_payloads`], not payload by payload. `None` for stores.
    fn streamed_archive(&self) -> Option<&std::path::Path> {
        None
    }
}

impl ObjectStore for LocalRepository {
    fn has_object(&self, digest: &Digest) -> Result<bool> {
        Ok(LocalRepository::has_object(self, digest))
    }

    fn read_object_bytes(&self, digest: &Digest) -> Result<Vec<u8>> {
        LocalRepository::read_object_bytes(self, digest)
    }

    fn write_object_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let actual = Digest::of(bytes);
        let object = Object::decode(bytes).ok();
        if actual != *digest || object.is_none() {
            return Err(Error::Corrupt {
                what: "object",
                digest: *digest,
                path: self.object_path(digest),
                reason: if actual != *digest {
                    format!("arrived hashing to {}", actual.short())
                } else {
                    "arrived in a form that does not decode".into()
                },
            });
        }
        let _guard = self.write_guard()?;
        let path = self.object_path(digest);
        if !super::touch(&path)? {
            self.write_atomic(&path, bytes, 0o444)?;
        }
        Ok(())
    }

    fn list_objects(&self) -> Result<Vec<Digest>> {
        LocalRepository::list_objects(self)
    }

    fn read_object(&self, digest: &Digest) -> Result<Object> {
        // Names the object's file in errors.
        LocalRepository::read_object(self, digest)
    }
}

impl PayloadStore for LocalRepository {
    fn has_payload(&self, digest: &Digest) -> Result<bool> {
        Ok(LocalRepository::has_payload(self, digest))
    }

    fn open_payload_stream(&self, digest: &Digest) -> Result<(Box<dyn Read + Send>, u64, u32)> {
        use std::os::unix::fs::MetadataExt;
        let file = self.open_payload(digest, None)?;
        let meta = file.metadata().ctx("reading", &self.payload_path(digest))?;
        Ok((Box::new(file), meta.len(), meta.mode() & 0o7777))
    }

    fn write_payload_stream(
        &self,
        digest: &Digest,
        reader: &mut dyn Read,
        mode: u32,
    ) -> Result<u64> {
        let _guard = self.write_guard()?;
        let path = self.payload_path(digest);
        if super::touch(&path)? {
            return Ok(0);
        }
        // Staged beside its final name, renamed there only once it hashed right.
        let mut tmp = self.stage_beside(&path)?;
        let mut reader = reader;
        let (actual, size) = super::hash_stream(&mut reader, Some(tmp.as_file_mut()), &path)?;
        if actual != *digest {
            return Err(Error::Corrupt {
                what: "payload",
                digest: *digest,
                path,
                reason: format!("arrived hashing to {}", actual.short()),
            });
        }
        self.persist(tmp, &path, super::payload_mode(mode))?;
        Ok(size)
    }

    fn list_payloads(&self) -> Result<Vec<Digest>> {
        LocalRepository::list_payloads(self)
    }
}

impl TagStore for LocalRepository {
    fn list_tag_names(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_tags(prefix)
    }

    fn tag_versions(&self, name: &str) -> Result<Vec<TagEntry>> {
        self.tag_history(name)
    }

    fn set_tags(&self, tags: &[(String, Digest)]) -> Result<()> {
        self.push_tags(tags)
    }

    fn list_tag_dir(&self, dir: &str) -> Result<TagLevel> {
        Ok(match self.tag_dir(dir)? {
            Some(d) => TagLevel {
                dirs: d.dirs,
                tags: d.tags.into_iter().map(|(t, _)| t).collect(),
            },
            None => TagLevel::default(),
        })
    }
}

impl Repository for LocalRepository {
    fn describe(&self) -> String {
        self.root().display().to_string()
    }

    fn hold_for_writing(&self) -> Result<Box<dyn std::any::Any>> {
        Ok(Box::new(self.write_guard()?))
    }
}

/// The manifest `digest` names (a layer's manifest is followed), with objects read by
/// `read`.
pub(crate) fn manifest_via(
    read: &dyn Fn(&Digest) -> Result<Object>,
    digest: &Digest,
) -> Result<Manifest> {
    match read(digest)? {
        Object::Manifest(m) => Ok(m),
        Object::Layer(l) => manifest_via(read, &l.manifest),
        Object::Platform(_) => Err(Error::WrongKind {
            reference: digest.to_string(),
            actual: "platform",
            expected: "a manifest or layer",
        }),
    }
}

/// The tree seen when `manifests` (bottom first, read by `read`) are laid over each
/// other.
pub(crate) fn merge_via(
    read: &dyn Fn(&Digest) -> Result<Manifest>,
    manifests: &[Digest],
) -> Result<Manifest> {
    let mut merged = Manifest::default();
    for m in manifests {
        merged.overlay(&read(m)?);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tags only, listing one level the default way (from every name under it).
    struct Plain<'a>(&'a LocalRepository);

    impl TagStore for Plain<'_> {
        fn list_tag_names(&self, prefix: &str) -> Result<Vec<String>> {
            self.0.list_tags(prefix)
        }
        fn tag_versions(&self, name: &str) -> Result<Vec<TagEntry>> {
            self.0.tag_history(name)
        }
        fn set_tags(&self, tags: &[(String, Digest)]) -> Result<()> {
            self.0.push_tags(tags)
        }
    }

    /// A reader that yields some bytes, then fails, as a dropped connection does.
    struct Broken(usize);

    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("connection reset"));
            }
            let n = self.0.min(buf.len());
            buf[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_payload_cut_off_or_corrupt_in_transfer_leaves_nothing_in_its_shard() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(dir.path()).unwrap();
        let content = vec![b'x'; 3000];
        let digest = Digest::of(&content);
        let shard = repo.payload_path(&digest).parent().unwrap().to_path_buf();
        let names = || -> Vec<String> {
            std::fs::read_dir(&shard)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        // Cut off after 1000 of its 3000 bytes.
        let err = repo
            .write_payload_stream(&digest, &mut Broken(1000), 0o644)
            .unwrap_err();
        assert!(err.to_string().contains("connection reset"), "{err}");
        assert!(!repo.has_payload(&digest));
        assert_eq!(names(), Vec::<String>::new());
        // The wrong bytes.
        let err = repo
            .write_payload_stream(&digest, &mut &b"other"[..], 0o644)
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert_eq!(names(), Vec::<String>::new());
        // The right ones land under their digest, alone in the shard.
        let n = repo
            .write_payload_stream(&digest, &mut &content[..], 0o644)
            .unwrap();
        assert_eq!(n, 3000);
        assert_eq!(names(), vec![digest.to_hex()[2..].to_string()]);
        assert_eq!(repo.read_blob(&digest).unwrap(), content);
    }

    #[test]
    fn one_level_of_tags_is_the_same_listed_directly_or_derived_from_names() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(dir.path()).unwrap();
        let d = repo.write_blob(b"spec").unwrap();
        for t in [
            "spk/spec/a/1.0",
            "spk/spec/a/1.0/B1",
            "spk/spec/b/2",
            "spk/specx",
            "top",
        ] {
            repo.push_tag(t, &d).unwrap();
        }
        let want = |dirs: &[&str], tags: &[&str]| TagLevel {
            dirs: dirs.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
        };
        for (dir, expected) in [
            ("spk/spec", want(&["a", "b"], &[])),
            ("spk/spec/a", want(&["1.0"], &["1.0"])),
            ("spk/spec/a/1.0", want(&[], &["B1"])),
            ("", want(&["spk"], &["top"])),
            ("no/such", want(&[], &[])),
        ] {
            assert_eq!(repo.list_tag_dir(dir).unwrap(), expected, "{dir}");
            assert_eq!(Plain(&repo).list_tag_dir(dir).unwrap(), expected, "{dir}");
        }
        assert_eq!(repo.read_payload_bytes(&d, 100).unwrap(), b"spec");
        assert!(matches!(
            repo.read_payload_bytes(&d, 2),
            Err(Error::FileTooLarge { .. })
        ));
    }
}
