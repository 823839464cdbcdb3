//! Tar archives of closures: `spfs export`, `spfs import`, and `tar://` remotes
//! (docs/remotes.md, "Archives").
//!
//! An archive is a zstd-compressed tar stream whose entries come in this order:
//!
//! 1. `spfs-archive.json`: `{"format": "spfs-archive", "version": 1}`;
//! 2. `tags.json`: `[{"name": "org/a", "target": "<hex>"}, ...]` (current versions);
//! 3. `objects/<hex>`: each encoded object of the closure;
//! 4. `payloads/<hex>`: each payload, its permission bits as the entry's mode;
//! 5. `end.json`: `{"objects": N, "payloads": M, "tags": K}`, the counts above. Its
//!    presence, last and with matching counts, is what proves the archive complete.
//!
//! Objects come before payloads so that a reader knows, before any payload arrives,
//! which payloads it needs (a pull of some references skips the others unwritten).
//! Writing and reading both stream: payloads are never held in memory, objects are.
//!
//! Import verifies everything before anything lands under its final name: every
//! object and payload is re-hashed, the closure must be complete, and payloads are
//! staged in the repository's `tmp/` until `end.json` has been read. Only then are
//! payloads moved into place, then objects bottom-up, then tags.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, IoContext, Result};
use crate::object::{Object, ObjectKind};
use crate::progress::Progress;
use crate::storage::{files::MAX_OBJECT_BYTES, payload_mode, LocalRepository, Repository};

/// The `format` field of `spfs-archive.json`.
pub const FORMAT: &str = "spfs-archive";
/// The archive layout version this build writes and reads.
pub const VERSION: u32 = 1;

const HEADER_ENTRY: &str = "spfs-archive.json";
const TAGS_ENTRY: &str = "tags.json";
const END_ENTRY: &str = "end.json";
/// Bound on the JSON entries (tags of a large repository fit easily).
const MAX_JSON_BYTES: u64 = 256 << 20;
/// zstd level: fast, with most of the gain.
const ZSTD_LEVEL: i32 = 3;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct TagRecord {
    name: String,
    target: String,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct End {
    objects: usize,
    payloads: usize,
    tags: usize,
}

/// What an export wrote (new to the archive, when merging) or an import stored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Objects written to the archive, or stored by an import.
    pub objects: usize,
    /// Payloads written to the archive, or stored by an import.
    pub payloads: usize,
    /// Object and payload bytes written or stored.
    pub bytes: u64,
    /// Tags written to the archive, or set by an import.
    pub tags: usize,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Archive {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The closure of `roots` in `src`: objects (digest, kind, bytes) top-down, and the
/// payloads they need.
#[allow(clippy::type_complexity)]
fn closure(
    src: &dyn Repository,
    roots: &[Digest],
) -> Result<(Vec<(Digest, ObjectKind, Vec<u8>)>, Vec<Digest>)> {
    let mut seen = HashSet::new();
    let mut objects = Vec::new();
    let mut payloads = Vec::new();
    let mut payload_seen = HashSet::new();
    let mut frontier: Vec<Digest> = roots.iter().copied().filter(|d| seen.insert(*d)).collect();
    let empty = Digest::of(b"");
    while let Some(d) = frontier.pop() {
        crate::signals::check()?;
        if src.has_object(&d)? {
            let bytes = src.read_object_bytes(&d)?;
            let obj = Object::decode(&bytes).map_err(|e| Error::Corrupt {
                what: "object",
                digest: d,
                path: src.describe().into(),
                reason: e.0,
            })?;
            for (child, kind) in obj.children() {
                if kind == ObjectKind::Blob {
                    if payload_seen.insert(child) {
                        payloads.push(child);
                    }
                } else if seen.insert(child) {
                    frontier.push(child);
                }
            }
            objects.push((d, obj.kind(), bytes));
        } else if src.has_payload(&d)? {
            if payload_seen.insert(d) {
                payloads.push(d);
            }
        } else if d != empty {
            return Err(Error::MissingObject(d));
        }
    }
    Ok((objects, payloads))
}

/// A reader that hashes what passes and, at its end, insists on the expected size
/// and digest.
struct Verifying<R> {
    inner: R,
    hasher: Hasher,
    seen: u64,
    size: u64,
    digest: Digest,
    source: PathBuf,
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen += n as u64;
        self.hasher.update(&buf[..n]);
        if n == 0 && !buf.is_empty() {
            let actual = self.hasher.finish();
            if self.seen != self.size || actual != self.digest {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "payload {} in {} holds {} bytes hashing to {} (expected {} bytes)",
                        self.digest,
                        self.source.display(),
                        self.seen,
                        actual.short(),
                        self.size
                    ),
                ));
            }
        }
        Ok(n)
    }
}

fn append_bytes<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    out: &Path,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o444);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_path(name).ctx("writing", out)?;
    header.set_cksum();
    builder.append(&header, bytes).ctx("writing", out)
}

fn append_json<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    value: &impl Serialize,
    out: &Path,
) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| bad(out, e.to_string()))?;
    append_bytes(builder, name, &bytes, out)
}

/// Appends a payload entry, streaming `reader` (which must yield `size` bytes hashing
/// to `digest`).
fn append_payload<W: Write>(
    builder: &mut tar::Builder<W>,
    digest: &Digest,
    mode: u32,
    size: u64,
    reader: impl Read,
    source: &Path,
    out: &Path,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(payload_mode(mode) & 0o7777);
    header.set_entry_type(tar::EntryType::Regular);
    header
        .set_path(format!("payloads/{}", digest.to_hex()))
        .ctx("writing", out)?;
    header.set_cksum();
    let verifying = Verifying {
        inner: reader.take(size.saturating_add(1)),
        hasher: Hasher::new(),
        seen: 0,
        size,
        digest: *digest,
        source: source.to_path_buf(),
    };
    builder.append(&header, verifying).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidData {
            Error::Corrupt {
                what: "payload",
                digest: *digest,
                path: source.to_path_buf(),
                reason: e.to_string(),
            }
        } else {
            Error::io("writing", out, e)
        }
    })
}

/// Writes the closures of `roots` in `src`, with `tags` (name, target), to the
/// archive `out`. With `merge`, what an existing archive at `out` holds is kept (its
/// tags unless `tags` names them again). The archive is written under a temporary
/// name beside `out` and renamed over it when complete.
pub fn export(
    src: &dyn Repository,
    roots: &[Digest],
    tags: &[(String, Digest)],
    out: &Path,
    merge: bool,
    progress: &Progress,
) -> Result<ArchiveReport> {
    let (new_objects, new_payloads) = closure(src, roots)?;
    // What the archive already holds, when merging.
    let old = if merge && out.exists() {
        Some(read_preamble(out)?)
    } else {
        None
    };
    let mut all_tags: Vec<(String, Digest)> = Vec::new();
    if let Some(old) = &old {
        for (name, target) in &old.tags {
            if !tags.iter().any(|(n, _)| n == name) {
                all_tags.push((name.clone(), *target));
            }
        }
    }
    for (name, target) in tags {
        crate::storage::validate_tag_name(name)?;
        if let Some(slot) = all_tags.iter_mut().find(|(n, _)| n == name) {
            slot.1 = *target;
        } else {
            all_tags.push((name.clone(), *target));
        }
    }
    // (digest, bytes, new to the archive)
    let mut object_list: Vec<(Digest, Vec<u8>, bool)> = Vec::new();
    let mut object_set = HashSet::new();
    if let Some(old) = &old {
        for (d, bytes, _) in &old.objects {
            if object_set.insert(*d) {
                object_list.push((*d, bytes.clone(), false));
            }
        }
    }
    // Bottom-up (the closure walk found them top-down).
    for (d, _, bytes) in new_objects.iter().rev() {
        if object_set.insert(*d) {
            object_list.push((*d, bytes.clone(), true));
        }
    }

    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".partial")
        .tempfile_in(&parent)
        .ctx("creating a temporary archive in", &parent)?;
    let file = tmp.as_file().try_clone().ctx("writing", tmp.path())?;
    let mut encoder = zstd::stream::write::Encoder::new(BufWriter::new(file), ZSTD_LEVEL)
        .ctx("compressing", out)?;
    encoder.include_checksum(true).ctx("compressing", out)?;
    let mut builder = tar::Builder::new(encoder);
    let mut report = ArchiveReport::default();

    append_json(
        &mut builder,
        HEADER_ENTRY,
        &Header {
            format: FORMAT.into(),
            version: VERSION,
        },
        out,
    )?;
    let records: Vec<TagRecord> = all_tags
        .iter()
        .map(|(name, target)| TagRecord {
            name: name.clone(),
            target: target.to_hex(),
        })
        .collect();
    append_json(&mut builder, TAGS_ENTRY, &records, out)?;
    // The report counts what is new to the archive.
    report.tags = tags
        .iter()
        .filter(|(name, target)| {
            old.as_ref()
                .is_none_or(|o| !o.tags.iter().any(|(n, t)| n == name && t == target))
        })
        .count();
    for (d, bytes, new) in &object_list {
        crate::signals::check()?;
        append_bytes(&mut builder, &format!("objects/{}", d.to_hex()), bytes, out)?;
        if *new {
            report.objects += 1;
            report.bytes += bytes.len() as u64;
        }
        progress.inc(1, bytes.len() as u64);
    }
    // Payloads: the old archive's, streamed across, then those it lacked.
    let mut payload_set: HashSet<Digest> = HashSet::new();
    if old.is_some() {
        read_archive(
            out,
            |_| Ok(()),
            |digest, mode, size, reader| {
                crate::signals::check()?;
                if payload_set.insert(*digest) {
                    append_payload(&mut builder, digest, mode, size, reader, out, out)?;
                    progress.inc(1, size);
                }
                Ok(())
            },
        )?;
    }
    let empty = Digest::of(b"");
    for d in &new_payloads {
        crate::signals::check()?;
        if payload_set.contains(d) || (*d == empty && !src.has_payload(d)?) {
            continue;
        }
        let (reader, size, mode) = src.open_payload_stream(d)?;
        let source = PathBuf::from(src.describe());
        append_payload(&mut builder, d, mode, size, reader, &source, out)?;
        payload_set.insert(*d);
        report.payloads += 1;
        report.bytes += size;
        progress.inc(1, size);
    }
    append_json(
        &mut builder,
        END_ENTRY,
        &End {
            objects: object_list.len(),
            payloads: payload_set.len(),
            tags: records.len(),
        },
        out,
    )?;
    let encoder = builder.into_inner().ctx("writing", out)?;
    let writer = encoder.finish().ctx("writing", out)?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::io("writing", out, e.into_error()))?;
    file.sync_all().ctx("writing", out)?;
    drop(file);
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
            .ctx("setting permissions on", tmp.path())?;
    }
    tmp.persist(out)
        .map_err(|e| Error::io("renaming the finished archive to", out, e.error))?;
    Ok(report)
}

/// Tags and objects of an archive, all verified.
struct Preamble {
    tags: Vec<(String, Digest)>,
    /// Digest, encoded bytes, decoded object, in archive order.
    objects: Vec<(Digest, Vec<u8>, Object)>,
}

/// Reads an archive's tags and objects and stops at its first payload.
fn read_preamble(path: &Path) -> Result<Preamble> {
    let mut found = None;
    let r = read_archive_until(path, |p| {
        found = Some(Preamble {
            tags: p.tags.clone(),
            objects: p.objects.clone(),
        });
        Ok(false)
    });
    match (r, found) {
        (Ok(_), Some(p)) => Ok(p),
        (Err(e), _) => Err(e),
        (Ok(_), None) => Err(bad(path, "it ends before its payloads")),
    }
}

/// Reads a whole archive, verifying it: `on_preamble` sees the tags and objects
/// before any payload; `on_payload` gets each payload (digest, mode, size, content)
/// and may read its content or not. Content it reads is verified before the next
/// entry is looked at (a mismatch is an error).
fn read_archive(
    path: &Path,
    mut on_preamble: impl FnMut(&Preamble) -> Result<()>,
    on_payload: impl FnMut(&Digest, u32, u64, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    read_archive_full(
        path,
        |p| {
            on_preamble(p)?;
            Ok(true)
        },
        on_payload,
    )
}

fn read_archive_until(
    path: &Path,
    on_preamble: impl FnMut(&Preamble) -> Result<bool>,
) -> Result<()> {
    read_archive_full(path, on_preamble, |_, _, _, _| Ok(()))
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Stage {
    Header,
    Tags,
    Objects,
    Payloads,
    Done,
}

fn read_archive_full(
    path: &Path,
    mut on_preamble: impl FnMut(&Preamble) -> Result<bool>,
    mut on_payload: impl FnMut(&Digest, u32, u64, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let file = fs::File::open(path).ctx("opening archive", path)?;
    let decoder = zstd::stream::read::Decoder::with_buffer(BufReader::new(file))
        .map_err(|e| bad(path, format!("it is not zstd-compressed: {e}")))?;
    read_tar(path, decoder, &mut on_preamble, &mut on_payload)
}

/// The tar layer of [`read_archive_full`], on any decompressed stream.
#[allow(clippy::type_complexity)]
fn read_tar(
    path: &Path,
    stream: impl Read,
    on_preamble: &mut dyn FnMut(&Preamble) -> Result<bool>,
    on_payload: &mut dyn FnMut(&Digest, u32, u64, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let damaged = |e: io::Error| {
        if e.kind() == io::ErrorKind::Interrupted {
            return Error::Interrupted;
        }
        bad(path, format!("it is truncated or damaged ({e})"))
    };
    let mut archive = tar::Archive::new(stream);
    let mut stage = Stage::Header;
    let mut preamble = Preamble {
        tags: Vec::new(),
        objects: Vec::new(),
    };
    let mut payloads = 0usize;
    let mut object_set = HashSet::new();
    let mut payload_set = HashSet::new();
    let entries = archive.entries().map_err(damaged)?;
    for entry in entries {
        crate::signals::check()?;
        let mut entry = entry.map_err(damaged)?;
        let name = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .into_owned();
        let size = entry.size();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(bad(path, format!("entry '{name}' is not a regular file")));
        }
        if stage == Stage::Done {
            return Err(bad(path, format!("entry '{name}' follows {END_ENTRY}")));
        }
        let read_small = |entry: &mut dyn Read, limit: u64| -> Result<Vec<u8>> {
            if size > limit {
                return Err(bad(
                    path,
                    format!("entry '{name}' holds {size} bytes, more than the {limit} allowed"),
                ));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry.take(limit).read_to_end(&mut bytes).map_err(damaged)?;
            if bytes.len() as u64 != size {
                return Err(bad(path, format!("entry '{name}' is cut short")));
            }
            Ok(bytes)
        };
        let json_err = |e: serde_json::Error| bad(path, format!("entry '{name}' is invalid: {e}"));
        match (stage, name.as_str()) {
            (Stage::Header, HEADER_ENTRY) => {
                let h: Header = serde_json::from_slice(&read_small(&mut entry, MAX_JSON_BYTES)?)
                    .map_err(json_err)?;
                if h.format != FORMAT {
                    return Err(bad(
                        path,
                        format!("its format is '{}', not '{FORMAT}'", h.format),
                    ));
                }
                if h.version != VERSION {
                    return Err(bad(
                        path,
                        format!(
                            "it has layout version {}, this build reads version {VERSION}; use a matching spfs release",
                            h.version
                        ),
                    ));
                }
                stage = Stage::Tags;
            }
            (Stage::Header, _) => {
                return Err(bad(
                    path,
                    format!("it does not start with {HEADER_ENTRY}: not an spfs archive"),
                ))
            }
            (Stage::Tags, TAGS_ENTRY) => {
                let records: Vec<TagRecord> =
                    serde_json::from_slice(&read_small(&mut entry, MAX_JSON_BYTES)?)
                        .map_err(json_err)?;
                for r in records {
                    crate::storage::validate_tag_name(&r.name)
                        .map_err(|e| bad(path, format!("tag '{}': {e}", r.name)))?;
                    let target = Digest::parse(&r.target)
                        .map_err(|e| bad(path, format!("tag '{}': {e}", r.name)))?;
                    preamble.tags.push((r.name, target));
                }
                stage = Stage::Objects;
            }
            (Stage::Tags, _) => return Err(bad(path, format!("{TAGS_ENTRY} is missing"))),
            (Stage::Objects, n) if n.starts_with("objects/") => {
                let d = Digest::parse(&n["objects/".len()..])
                    .map_err(|_| bad(path, format!("entry '{n}' is not named by a digest")))?;
                let bytes = read_small(&mut entry, MAX_OBJECT_BYTES)?;
                let actual = Digest::of(&bytes);
                if actual != d {
                    return Err(bad(
                        path,
                        format!("object {d} is corrupt: it hashes to {}", actual.short()),
                    ));
                }
                let obj = Object::decode(&bytes)
                    .map_err(|e| bad(path, format!("object {d} does not decode: {}", e.0)))?;
                if object_set.insert(d) {
                    preamble.objects.push((d, bytes, obj));
                }
            }
            (Stage::Objects | Stage::Payloads, n)
                if n.starts_with("payloads/") || n == END_ENTRY =>
            {
                if stage == Stage::Objects {
                    stage = Stage::Payloads;
                    if !on_preamble(&preamble)? {
                        return Ok(());
                    }
                }
                if n == END_ENTRY {
                    let end: End = serde_json::from_slice(&read_small(&mut entry, MAX_JSON_BYTES)?)
                        .map_err(json_err)?;
                    let counted = End {
                        objects: preamble.objects.len(),
                        payloads,
                        tags: preamble.tags.len(),
                    };
                    if end != counted {
                        return Err(bad(
                            path,
                            format!(
                                "{END_ENTRY} records {end:?} but the archive holds {counted:?}"
                            ),
                        ));
                    }
                    stage = Stage::Done;
                    continue;
                }
                let d = Digest::parse(&n["payloads/".len()..])
                    .map_err(|_| bad(path, format!("entry '{n}' is not named by a digest")))?;
                if !payload_set.insert(d) {
                    return Err(bad(path, format!("payload {d} appears twice")));
                }
                payloads += 1;
                let mode = entry.header().mode().map_err(damaged)?;
                let mut verifying = Verifying {
                    inner: &mut entry,
                    hasher: Hasher::new(),
                    seen: 0,
                    size,
                    digest: d,
                    source: path.to_path_buf(),
                };
                on_payload(&d, mode, size, &mut verifying).map_err(|e| match e {
                    Error::Io { source, .. } if source.kind() == io::ErrorKind::InvalidData => {
                        bad(path, source.to_string())
                    }
                    Error::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof => {
                        damaged(source)
                    }
                    e => e,
                })?;
                // Whatever the callback left unread is hashed too.
                io::copy(&mut verifying, &mut io::sink()).map_err(|e| {
                    if e.kind() == io::ErrorKind::InvalidData {
                        bad(path, e.to_string())
                    } else {
                        damaged(e)
                    }
                })?;
            }
            (_, n) => return Err(bad(path, format!("unexpected entry '{n}'"))),
        }
    }
    if stage != Stage::Done {
        return Err(bad(
            path,
            format!("it is truncated: {END_ENTRY} is missing"),
        ));
    }
    // The rest of the stream (tar's end blocks, zstd's frame end and checksum).
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(damaged)?;
    Ok(())
}

/// Stores into `dst` what the archive at `path` holds: everything, or with `only`
/// the closures of those references (tag names of the archive, or digests), whose
/// tags are then set. Nothing lands under its final name unless the whole archive
/// verified.
pub fn import(
    dst: &LocalRepository,
    path: &Path,
    only: Option<&[String]>,
    progress: &Progress,
) -> Result<ArchiveReport> {
    let _hold = dst.hold_for_writing()?;
    let empty = Digest::of(b"");
    let mut wanted_objects: Vec<(Digest, ObjectKind, Vec<u8>)> = Vec::new();
    // Shared by the two callbacks below (the preamble fills it, payloads read it).
    let wanted = std::cell::RefCell::new(HashSet::<Digest>::new());
    let mut tags: Vec<(String, Digest)> = Vec::new();
    let mut staged: Vec<(Digest, tempfile::TempPath)> = Vec::new();
    // Roots that are no object of the archive: payloads of it, or unknown.
    let mut root_payloads: HashSet<Digest> = HashSet::new();
    let tmp_dir = dst.tmp_dir();
    let mut report = ArchiveReport::default();
    read_archive(
        path,
        |pre| {
            let mut wanted_payloads = wanted.borrow_mut();
            let by_digest: HashMap<Digest, &Object> =
                pre.objects.iter().map(|(d, _, o)| (*d, o)).collect();
            let roots: Vec<Digest> = match only {
                None => {
                    tags = pre.tags.clone();
                    let mut all: Vec<Digest> = pre.objects.iter().map(|(d, _, _)| *d).collect();
                    all.extend(pre.tags.iter().map(|(_, d)| *d));
                    all
                }
                Some(refs) => {
                    let mut roots = Vec::new();
                    for r in refs {
                        if let Some((name, target)) = pre.tags.iter().find(|(n, _)| n == r) {
                            tags.push((name.clone(), *target));
                            roots.push(*target);
                        } else if let Ok(d) = Digest::parse(r) {
                            roots.push(d);
                        } else {
                            return Err(Error::UnknownReference(r.clone()));
                        }
                    }
                    roots
                }
            };
            // The closure of the roots, which must be complete in the archive or
            // already in dst.
            let mut seen = HashSet::new();
            let mut stack: Vec<Digest> = roots;
            let mut payload_roots = Vec::new();
            while let Some(d) = stack.pop() {
                if !seen.insert(d) {
                    continue;
                }
                let Some(obj) = by_digest.get(&d) else {
                    payload_roots.push(d);
                    continue;
                };
                for (child, kind) in obj.children() {
                    if kind == ObjectKind::Blob {
                        wanted_payloads.insert(child);
                    } else if by_digest.contains_key(&child) {
                        stack.push(child);
                    } else if !dst.has_object(&child) {
                        return Err(bad(
                            path,
                            format!(
                                "it is not self-contained: object {d} refers to {child}, which it does not hold"
                            ),
                        ));
                    }
                }
            }
            // A root that is no object of the archive must be a payload of it (or
            // something dst holds); the payload list tells, below.
            wanted_payloads.extend(payload_roots.iter().copied());
            root_payloads.extend(payload_roots);
            for (d, bytes, obj) in &pre.objects {
                if seen.contains(d) {
                    wanted_objects.push((*d, obj.kind(), bytes.clone()));
                }
            }
            Ok(())
        },
        |digest, mode, _size, reader| {
            if !(only.is_none() || wanted.borrow().contains(digest)) || dst.has_payload(digest) {
                return Ok(());
            }
            let mut tmp = tempfile::Builder::new()
                .prefix(".import-")
                .tempfile_in(&tmp_dir)
                .ctx("creating a file in", &tmp_dir)?;
            let n = io::copy(reader, tmp.as_file_mut()).map_err(|e| {
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ) {
                    Error::io("reading", path, e)
                } else {
                    Error::io("writing", tmp.path(), e)
                }
            })?;
            {
                use std::os::unix::fs::PermissionsExt;
                tmp.as_file()
                    .set_permissions(fs::Permissions::from_mode(payload_mode(mode)))
                    .ctx("setting permissions on", tmp.path())?;
            }
            progress.inc(1, n);
            report.bytes += n;
            staged.push((*digest, tmp.into_temp_path()));
            Ok(())
        },
    )?;
    let wanted_payloads = wanted.into_inner();
    // Every needed payload arrived (or dst has it).
    let staged_set: HashSet<Digest> = staged.iter().map(|(d, _)| *d).collect();
    let wanted_object_set: HashSet<Digest> = wanted_objects.iter().map(|(d, _, _)| *d).collect();
    for d in &wanted_payloads {
        if !staged_set.contains(d)
            && !wanted_object_set.contains(d)
            && *d != empty
            && !dst.has_payload(d)
            && !dst.has_object(d)
        {
            return Err(if root_payloads.contains(d) {
                Error::UnknownReference(d.to_string())
            } else {
                bad(
                    path,
                    format!("it is not self-contained: payload {d} is missing"),
                )
            });
        }
    }
    // Payloads first, then objects bottom-up, then tags.
    for (d, tmp) in staged {
        crate::signals::check()?;
        let final_path = dst.payload_path(&d);
        if crate::storage::touch(&final_path)? {
            continue;
        }
        if let Some(parent) = final_path.parent() {
            fs::create_dir_all(parent).ctx("creating", parent)?;
        }
        match tmp.persist_noclobber(&final_path) {
            Ok(()) => report.payloads += 1,
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("storing", &final_path, e.error)),
        }
    }
    for kind in [
        ObjectKind::Manifest,
        ObjectKind::Layer,
        ObjectKind::Platform,
    ] {
        for (d, _, bytes) in wanted_objects.iter().filter(|(_, k, _)| *k == kind) {
            crate::signals::check()?;
            if !dst.has_object(d) {
                report.objects += 1;
                report.bytes += bytes.len() as u64;
                progress.inc(1, bytes.len() as u64);
            }
            crate::storage::ObjectStore::write_object_bytes(dst, d, bytes)?;
        }
    }
    let changed: Vec<(String, Digest)> = tags
        .into_iter()
        .filter(|(name, target)| {
            dst.tag_history(name)
                .map(|h| h.first().map(|e| e.target) != Some(*target))
                .unwrap_or(true)
        })
        .collect();
    if !changed.is_empty() {
        dst.push_tags(&changed)?;
    }
    report.tags = changed.len();
    Ok(report)
}

/// The tag names and targets an archive holds (reading only its preamble).
pub fn list_tags(path: &Path) -> Result<Vec<(String, Digest)>> {
    Ok(read_preamble(path)?.tags)
}

mod source;
pub use source::{fetch_closures, read_payloads, ArchiveSource};

#[cfg(test)]
mod tests;
