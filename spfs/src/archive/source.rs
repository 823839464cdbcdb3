//! A `tar://` remote as a source of closures: for the pulls of `spfs run` and `spk
//! env` ([`crate::sync::fetch_missing`]) and for `spfs check --repair`.
//!
//! An archive is a stream, not a store with random access: opening one reads its
//! tags and objects (the archive's head, up to its first payload); payloads are only
//! ever read by one pass over the whole archive, importing what was asked for and
//! verifying everything as `spfs import` does. So each fetch from an archive costs one
//! scan of it (decompressing all of it), whatever it fetches.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{import, read_archive, read_preamble};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::object::{EntryKind, Object};
use crate::progress::Progress;
use crate::storage::{LocalRepository, ObjectStore, PayloadStore, Repository, TagEntry, TagStore};
use crate::sync::SyncReport;

/// An archive opened read-only, its tags and objects in memory (objects are small).
pub struct ArchiveSource {
    path: PathBuf,
    tags: Vec<(String, Digest)>,
    objects: HashMap<Digest, Vec<u8>>,
    /// The payloads the archive's manifests name (a complete archive holds them all;
    /// a pass over it verifies that).
    payloads: HashSet<Digest>,
}

impl std::fmt::Debug for ArchiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveSource")
            .field("path", &self.path)
            .finish()
    }
}

impl ArchiveSource {
    /// Opens the archive at `path`, reading (and verifying) its tags and objects.
    pub fn open(path: &Path) -> Result<Self> {
        let pre = read_preamble(path)?;
        let mut payloads = HashSet::new();
        let mut objects = HashMap::new();
        for (d, bytes, obj) in pre.objects {
            if let Object::Manifest(m) = &obj {
                for w in m.walk() {
                    if let EntryKind::File { digest, .. } = w.entry.kind {
                        payloads.insert(digest);
                    }
                }
            }
            objects.insert(d, bytes);
        }
        Ok(ArchiveSource {
            path: path.to_path_buf(),
            tags: pre.tags,
            objects,
            payloads,
        })
    }

    /// The archive's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_only(&self) -> Error {
        Error::Remote {
            action: "writing to".into(),
            address: self.describe(),
            reason: "an archive is written only by 'spfs push' or 'spfs export'".into(),
            hint: None,
        }
    }
}

/// Imports into `local` the closures of `roots` from the archive at `path` in one
/// pass, verified as `spfs import` verifies (nothing lands unless the whole archive
/// verified), without tags.
pub fn fetch_closures(
    local: &LocalRepository,
    path: &Path,
    roots: &[Digest],
    progress: &Progress,
) -> Result<SyncReport> {
    let refs: Vec<String> = roots.iter().map(|d| d.to_string()).collect();
    let r = import(local, path, Some(&refs), progress)?;
    Ok(SyncReport {
        objects: r.objects,
        payloads: r.payloads,
        bytes: r.bytes,
        tags: 0,
    })
}

/// One pass over the archive at `path`: the payloads among `wanted` that it holds,
/// each verified and staged in a temporary file in `tmp_dir`, with its mode. Returned
/// only once the whole archive verified, so nothing of a damaged archive is used.
pub fn read_payloads(
    path: &Path,
    wanted: &HashSet<Digest>,
    tmp_dir: &Path,
    progress: &Progress,
) -> Result<HashMap<Digest, (u32, tempfile::NamedTempFile)>> {
    let mut out = HashMap::new();
    read_archive(
        path,
        |_| Ok(()),
        |digest, mode, _size, reader| {
            if !wanted.contains(digest) || out.contains_key(digest) {
                return Ok(());
            }
            let mut tmp = tempfile::Builder::new()
                .prefix(".repair-")
                .tempfile_in(tmp_dir)
                .ctx("creating a file in", tmp_dir)?;
            let n = std::io::copy(reader, tmp.as_file_mut()).map_err(|e| {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) {
                    Error::io("reading", path, e)
                } else {
                    Error::io("writing", tmp.path(), e)
                }
            })?;
            progress.inc(0, n);
            out.insert(*digest, (mode, tmp));
            Ok(())
        },
    )?;
    Ok(out)
}

impl ObjectStore for ArchiveSource {
    fn has_object(&self, digest: &Digest) -> Result<bool> {
        Ok(self.objects.contains_key(digest))
    }

    fn read_object_bytes(&self, digest: &Digest) -> Result<Vec<u8>> {
        // Verified when the archive was opened.
        self.objects
            .get(digest)
            .cloned()
            .ok_or(Error::MissingObject(*digest))
    }

    fn write_object_bytes(&self, _: &Digest, _: &[u8]) -> Result<()> {
        Err(self.read_only())
    }

    fn list_objects(&self) -> Result<Vec<Digest>> {
        Ok(self.objects.keys().copied().collect())
    }
}

impl PayloadStore for ArchiveSource {
    fn has_payload(&self, digest: &Digest) -> Result<bool> {
        Ok(self.payloads.contains(digest))
    }

    fn open_payload_stream(&self, digest: &Digest) -> Result<(Box<dyn Read + Send>, u64, u32)> {
        Err(Error::Remote {
            action: format!("reading payload {digest} from"),
            address: self.describe(),
            reason: "an archive's payloads are read in one pass over it, not one by one".into(),
            hint: Some(format!(
                "pull what is needed first: spfs pull REF --remote {}",
                self.describe()
            )),
        })
    }

    fn write_payload_stream(&self, _: &Digest, _: &mut dyn Read, _: u32) -> Result<u64> {
        Err(self.read_only())
    }

    fn list_payloads(&self) -> Result<Vec<Digest>> {
        Ok(self.payloads.iter().copied().collect())
    }
}

impl TagStore for ArchiveSource {
    fn list_tag_names(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .tags
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        Ok(names)
    }

    fn tag_versions(&self, name: &str) -> Result<Vec<TagEntry>> {
        // An archive holds the current version of each tag only.
        Ok(self
            .tags
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, target)| TagEntry {
                target: *target,
                time: 0,
                user: String::new(),
            })
            .collect())
    }

    fn set_tags(&self, _: &[(String, Digest)]) -> Result<()> {
        Err(self.read_only())
    }
}

impl Repository for ArchiveSource {
    fn describe(&self) -> String {
        format!("tar://{}", self.path.display())
    }

    fn hold_for_writing(&self) -> Result<Box<dyn std::any::Any>> {
        Err(self.read_only())
    }

    fn streamed_archive(&self) -> Option<&Path> {
        Some(&self.path)
    }
}
