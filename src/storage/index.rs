//! The package index of an [`SpfsRepository`](super::SpfsRepository): one file per
//! package under `<repo>/spk-index/`, summarizing the spec tags of that package so a
//! solve reads one file instead of every tag and spec. Design in docs/spk-storage.md.
//!
//! The tags stay the source of truth. Every index records the stamp (inode, size, times)
//! of the directories and tag files it was built from; before an index is used the
//! directory stamps are compared with the tags tree (one `stat` per version), and what
//! changed is read again. A directory stamp taken within [`RACY_NS`] of the moment it was
//! read (by the filesystem's clock) could hide a later change made in the same timestamp
//! tick, so such a directory is always read again until a later refresh records a
//! settled stamp.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use spfs::storage::{LocalRepository, TagStamp};

use super::{IndexedSpec, PackageVersions, Result, SpecSummary, StorageError, VersionSpecs};
use crate::ident::{Build, VersionIdent};
use crate::name::PkgName;
use crate::spec::{parse_rendered, LoadOptions, Spec};
use crate::version::Version;

/// Directory of the index, under the spfs repository root.
pub const INDEX_DIR: &str = "spk-index";
/// Version of the index file format; files of another version are rebuilt.
pub const INDEX_FORMAT: u32 = 4;
/// File name suffix of an index file: `<name>.index`.
pub const INDEX_SUFFIX: &str = ".index";
/// A directory stamp this close to the time it was read is not trusted.
pub const RACY_NS: i128 = 2_000_000_000;

const SPEC_PREFIX: &str = "spk/spec";
/// The largest spec blob read back (a spec is a few KiB; this bounds a damaged store).
const MAX_SPEC_BYTES: u64 = 16 << 20;

/// A tag's target and the spec it holds.
#[derive(Debug, Clone)]
struct Entry {
    stamp: TagStamp,
    digest: String,
    spec: IndexedSpec,
    /// The text to store for a spec read from its tag (JSON, or YAML when the flag is
    /// set); a spec read from an index file keeps its text in `spec`.
    text: Option<(Arc<str>, bool)>,
}

impl Entry {
    fn new(stamp: TagStamp, digest: String, spec: Spec) -> Self {
        let json = serde_json::to_string(&spec)
            .ok()
            .filter(|t| serde_json::from_str::<Spec>(t).is_ok_and(|back| back == spec));
        let text = match json {
            Some(t) => (Arc::from(t), false),
            None => (Arc::from(spec.to_yaml()), true),
        };
        Entry {
            stamp,
            digest,
            spec: IndexedSpec::new(Arc::new(spec)),
            text: Some(text),
        }
    }

    /// The spec's text as it is stored, and whether it is YAML.
    fn stored_text(&self) -> (std::borrow::Cow<'_, str>, bool) {
        if let Some((t, yaml)) = &self.text {
            return (std::borrow::Cow::Borrowed(t), *yaml);
        }
        if let Some((t, yaml)) = self.spec.text() {
            return (std::borrow::Cow::Borrowed(t), yaml);
        }
        let yaml = self.spec.spec().map(|s| s.to_yaml()).unwrap_or_default();
        (std::borrow::Cow::Owned(yaml), true)
    }
}

/// A directory's stamp, and whether it was too fresh to be trusted when taken.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct DirRecord {
    stamp: TagStamp,
    racy: bool,
}

impl DirRecord {
    fn new(stamp: TagStamp, clock: i128) -> Self {
        let newest = stamp.mtime_ns.max(stamp.ctime_ns);
        DirRecord {
            stamp,
            racy: newest > clock - RACY_NS,
        }
    }

    fn settled(&self, now: Option<TagStamp>) -> bool {
        !self.racy && now == Some(self.stamp)
    }
}

#[derive(Debug, Clone)]
struct VersionRecord {
    dir: DirRecord,
    builds: BTreeMap<String, Entry>,
}

/// The index of one package: what one index file holds.
#[derive(Debug, Clone)]
struct PackageIndex {
    package: String,
    /// `tags/spk/spec/<name>`: recipes (`<version>.tag`) and version directories.
    dir: DirRecord,
    /// Recipe tags by version segment.
    recipes: BTreeMap<String, Entry>,
    /// Build tags by version segment, then build.
    versions: BTreeMap<String, VersionRecord>,
    view: Option<Arc<PackageVersions>>,
}

impl PackageIndex {
    fn view(&self, name: &PkgName) -> Arc<PackageVersions> {
        if let Some(v) = &self.view {
            return v.clone();
        }
        let mut segments: Vec<(Version, &str)> = self
            .recipes
            .keys()
            .chain(self.versions.keys())
            .filter_map(|s| s.parse::<Version>().ok().map(|v| (v, s.as_str())))
            .collect();
        segments.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        segments.dedup_by(|a, b| a.1 == b.1);
        let mut versions = Vec::new();
        for (version, seg) in segments {
            let vi = VersionIdent::new(name.clone(), version.clone());
            let mut builds: Vec<_> = self
                .versions
                .get(seg)
                .map(|v| {
                    v.builds
                        .iter()
                        .filter_map(|(b, e)| {
                            b.parse::<Build>()
                                .ok()
                                .map(|b| (vi.to_build(b), e.spec.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            builds.sort_by(|a, b| a.0.build.cmp(&b.0.build));
            let recipe = self.recipes.get(seg).map(|e| e.spec.clone());
            if recipe.is_none() && builds.is_empty() {
                continue;
            }
            versions.push(VersionSpecs {
                version,
                recipe,
                builds,
            });
        }
        Arc::new(PackageVersions {
            name: name.clone(),
            versions,
        })
    }

    /// What the index says, without stamps: for comparing two indexes.
    fn content(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (v, e) in &self.recipes {
            out.insert(v.clone(), e.digest.clone());
        }
        for (v, rec) in &self.versions {
            for (b, e) in &rec.builds {
                out.insert(format!("{v}/{b}"), e.digest.clone());
            }
        }
        out
    }
}

/// The first line of an index file: everything but the spec texts, which follow it.
#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    package: String,
    dir: DirRecord,
    /// The distinct spec summaries; entries refer to them by position.
    summaries: Vec<SpecSummary>,
    recipes: BTreeMap<String, EntryRec>,
    versions: BTreeMap<String, VersionRec>,
}

#[derive(Serialize, Deserialize)]
struct VersionRec {
    dir: DirRecord,
    builds: BTreeMap<String, EntryRec>,
}

/// One spec tag in the header.
#[derive(Serialize, Deserialize)]
struct EntryRec {
    /// The tag file's stamp: inode, size, mtime and ctime (ns).
    t: (u64, u64, i128, i128),
    /// The tag's target.
    digest: String,
    /// The summary: a position in `summaries`.
    s: usize,
    /// Where the spec text is: offset and length in bytes, after the header.
    at: (usize, usize),
    /// The text is YAML (else JSON).
    yaml: bool,
}

/// What an index file starts with: a tag and the format, then the header's length
/// (u32, little-endian).
const MAGIC: &[u8; 8] = b"spkidx\x00\x04";

/// An index file: [`MAGIC`], the header's length, the header (postcard), then the
/// spec texts.
fn encode(index: &PackageIndex) -> Vec<u8> {
    struct Out<'a> {
        summaries: Vec<&'a SpecSummary>,
        body: Vec<u8>,
        /// Texts already written, by digest.
        placed: HashMap<&'a str, ((usize, usize), bool)>,
    }
    impl<'a> Out<'a> {
        fn entry(&mut self, e: &'a Entry) -> EntryRec {
            let summary: &'a SpecSummary = &e.spec.summary;
            let s = match self.summaries.iter().position(|x| *x == summary) {
                Some(i) => i,
                None => {
                    self.summaries.push(summary);
                    self.summaries.len() - 1
                }
            };
            let (at, yaml) = match self.placed.get(e.digest.as_str()) {
                Some(p) => *p,
                None => {
                    let (text, yaml) = e.stored_text();
                    let at = (self.body.len(), text.len());
                    self.body.extend_from_slice(text.as_bytes());
                    self.placed.insert(&e.digest, (at, yaml));
                    (at, yaml)
                }
            };
            EntryRec {
                t: (
                    e.stamp.ino,
                    e.stamp.size,
                    e.stamp.mtime_ns,
                    e.stamp.ctime_ns,
                ),
                digest: e.digest.clone(),
                s,
                at,
                yaml,
            }
        }
    }
    let mut out = Out {
        summaries: Vec::new(),
        body: Vec::new(),
        placed: HashMap::new(),
    };
    let recipes = index
        .recipes
        .iter()
        .map(|(k, e)| (k.clone(), out.entry(e)))
        .collect();
    let versions = index
        .versions
        .iter()
        .map(|(k, v)| {
            let builds = v
                .builds
                .iter()
                .map(|(b, e)| (b.clone(), out.entry(e)))
                .collect();
            (k.clone(), VersionRec { dir: v.dir, builds })
        })
        .collect();
    let header = Header {
        format: INDEX_FORMAT,
        package: index.package.clone(),
        dir: index.dir,
        summaries: out.summaries.iter().map(|s| (*s).clone()).collect(),
        recipes,
        versions,
    };
    let head = postcard::to_stdvec(&header).unwrap_or_default();
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + head.len() + out.body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(head.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&head);
    bytes.extend_from_slice(&out.body);
    bytes
}

/// Reads an index file written by [`encode`]: only the header is parsed, each spec text
/// when its spec is first used.
fn decode(name: &PkgName, bytes: Vec<u8>) -> std::result::Result<PackageIndex, String> {
    let start = MAGIC.len() + 4;
    if bytes.len() < start || &bytes[..MAGIC.len()] != MAGIC {
        return Err(format!("it is not an index file of format {INDEX_FORMAT}"));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[MAGIC.len()..start]);
    let end = start.saturating_add(u32::from_le_bytes(len) as usize);
    let head = bytes.get(start..end).ok_or("its header is cut short")?;
    let header: Header = postcard::from_bytes(head).map_err(|e| e.to_string())?;
    if header.format != INDEX_FORMAT || header.package != name.as_str() {
        return Err(format!(
            "it is for package '{}' in format {}, expected '{name}' in format {INDEX_FORMAT}",
            header.package, header.format
        ));
    }
    let base = end;
    let body = Arc::new(bytes);
    let summaries: Vec<Arc<SpecSummary>> = header.summaries.into_iter().map(Arc::new).collect();
    let entry = |r: EntryRec| -> std::result::Result<Entry, String> {
        let summary = summaries
            .get(r.s)
            .cloned()
            .ok_or_else(|| format!("summary {} of {} does not exist", r.s, r.digest))?;
        let start = base.saturating_add(r.at.0);
        let range = start..start.saturating_add(r.at.1);
        Ok(Entry {
            stamp: TagStamp {
                ino: r.t.0,
                size: r.t.1,
                mtime_ns: r.t.2,
                ctime_ns: r.t.3,
            },
            spec: IndexedSpec::lazy(summary, body.clone(), range, r.yaml, r.digest.clone()),
            digest: r.digest,
            text: None,
        })
    };
    let mut recipes = BTreeMap::new();
    for (k, r) in header.recipes {
        recipes.insert(k, entry(r)?);
    }
    let mut versions = BTreeMap::new();
    for (k, v) in header.versions {
        let mut builds = BTreeMap::new();
        for (b, r) in v.builds {
            builds.insert(b, entry(r)?);
        }
        versions.insert(k, VersionRecord { dir: v.dir, builds });
    }
    Ok(PackageIndex {
        package: header.package,
        dir: header.dir,
        recipes,
        versions,
        view: None,
    })
}

/// How one package's stored index compares with its tags (`spk index --check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexState {
    /// Matches the tags.
    Fresh,
    /// No index file yet; it is built on first read.
    Missing,
    /// The tags changed since it was written; it is refreshed on next read.
    Stale,
    /// The file cannot be read or is of another format; it is rebuilt on next read.
    Unreadable(String),
    /// Its stamps say it is current but its content differs from the tags. This must
    /// not happen; `spk index --rebuild` replaces it.
    Wrong(Vec<String>),
}

/// The indexes of one repository, with an in-process cache of the ones read.
pub struct IndexStore {
    dir: PathBuf,
    cache: Mutex<HashMap<PkgName, Arc<PackageIndex>>>,
}

impl IndexStore {
    /// The index kept in the spfs repository at `root`.
    pub fn new(root: &Path) -> Self {
        IndexStore {
            dir: root.join(INDEX_DIR),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn file(&self, name: &PkgName) -> PathBuf {
        self.dir.join(format!("{name}{INDEX_SUFFIX}"))
    }

    fn cached(&self, name: &PkgName) -> Option<Arc<PackageIndex>> {
        self.cache.lock().ok()?.get(name).cloned()
    }

    fn remember(&self, name: &PkgName, index: Arc<PackageIndex>) {
        if let Ok(mut c) = self.cache.lock() {
            c.insert(name.clone(), index);
        }
    }

    /// Forgets what this process read (the files stay).
    pub fn forget(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    fn read_file(&self, name: &PkgName) -> std::result::Result<Option<PackageIndex>, String> {
        let path = self.file(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        decode(name, bytes)
            .map(Some)
            .map_err(|e| format!("{} is not a valid index: {e}", path.display()))
    }

    /// Every version of `name` with its recipe and build specs, from the index, brought
    /// up to date with the tags first.
    pub fn load(&self, repo: &LocalRepository, name: &PkgName) -> Result<Arc<PackageVersions>> {
        if let Some(index) = self.cached(name) {
            if is_current(repo, name, &index)? {
                return Ok(index.view(name));
            }
            return self.refresh_and_save(repo, name, Some(&index));
        }
        let stored = match self.read_file(name) {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!("package index: {e}; rebuilding it");
                None
            }
        };
        match stored {
            Some(mut index) if is_current(repo, name, &index)? => {
                index.view = Some(index.view(name));
                let index = Arc::new(index);
                self.remember(name, index.clone());
                Ok(index.view(name))
            }
            stored => self.refresh_and_save(repo, name, stored.as_ref()),
        }
    }

    /// Brings `known` (or nothing) up to date with the tags, saves and remembers it.
    fn refresh_and_save(
        &self,
        repo: &LocalRepository,
        name: &PkgName,
        known: Option<&PackageIndex>,
    ) -> Result<Arc<PackageVersions>> {
        let Some(mut index) = refresh(repo, name, known)? else {
            return Ok(Arc::new(PackageVersions {
                name: name.clone(),
                versions: Vec::new(),
            }));
        };
        if let Err(e) = self.write(name, &index) {
            tracing::debug!("package index of {name} not saved: {e}");
        }
        index.view = Some(index.view(name));
        let index = Arc::new(index);
        self.remember(name, index.clone());
        Ok(index.view(name))
    }

    fn write(&self, name: &PkgName, index: &PackageIndex) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.as_file_mut().write_all(&encode(index))?;
        tmp.persist(self.file(name)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Rebuilds the index of `name` from its tags alone and saves it (or removes the
    /// file when the package has no tags). Returns whether the package exists.
    pub fn rebuild(&self, repo: &LocalRepository, name: &PkgName) -> Result<bool> {
        match refresh(repo, name, None)? {
            Some(index) => {
                self.write(name, &index).map_err(|e| {
                    StorageError::Invalid(format!(
                        "cannot write the package index {}: {e}; check the permissions of {}",
                        self.file(name).display(),
                        self.dir.display()
                    ))
                })?;
                Ok(true)
            }
            None => {
                let _ = std::fs::remove_file(self.file(name));
                Ok(false)
            }
        }
    }

    /// Index files of packages that are not in `names` (left by removed packages).
    pub fn orphans(&self, names: &[PkgName]) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                // `<name>.json`: an index of an earlier format.
                if file.ends_with(".json") {
                    return Some(e.path());
                }
                let stem = file.strip_suffix(INDEX_SUFFIX)?;
                (!names.iter().any(|n| n.as_str() == stem)).then(|| e.path())
            })
            .collect()
    }

    /// Compares the stored index of `name` with its tags, read afresh.
    pub fn check(&self, repo: &LocalRepository, name: &PkgName) -> Result<IndexState> {
        let stored = match self.read_file(name) {
            Ok(Some(i)) => i,
            Ok(None) => return Ok(IndexState::Missing),
            Err(e) => return Ok(IndexState::Unreadable(e)),
        };
        let current = is_current(repo, name, &stored)?;
        let truth = refresh(repo, name, None)?;
        let want = truth.map(|t| t.content()).unwrap_or_default();
        let have = stored.content();
        if want == have {
            return Ok(if current {
                IndexState::Fresh
            } else {
                IndexState::Stale
            });
        }
        if !current {
            return Ok(IndexState::Stale);
        }
        let mut diffs = Vec::new();
        for (k, d) in &want {
            match have.get(k) {
                None => diffs.push(format!("{name}/{k} is tagged but missing from the index")),
                Some(h) if h != d => {
                    diffs.push(format!("{name}/{k} is tagged {d} but the index says {h}"))
                }
                _ => {}
            }
        }
        for k in have.keys().filter(|k| !want.contains_key(*k)) {
            diffs.push(format!("{name}/{k} is in the index but not tagged"));
        }
        Ok(IndexState::Wrong(diffs))
    }
}

fn package_dir(name: &PkgName) -> String {
    format!("{SPEC_PREFIX}/{name}")
}

/// Whether `index` still describes the tags: one `stat` per directory, no reads.
fn is_current(repo: &LocalRepository, name: &PkgName, index: &PackageIndex) -> Result<bool> {
    let segments: Vec<&str> = index.versions.keys().map(String::as_str).collect();
    let (top, each) = repo.tag_dir_stamps(&package_dir(name), &segments)?;
    if !index.dir.settled(top) {
        return Ok(false);
    }
    Ok(index
        .versions
        .values()
        .zip(each)
        .all(|(v, now)| v.dir.settled(now)))
}

/// Reads what changed since `old` (everything without one). `None` if the package has
/// no spec tags.
fn refresh(
    repo: &LocalRepository,
    name: &PkgName,
    old: Option<&PackageIndex>,
) -> Result<Option<PackageIndex>> {
    // The clock first: a stamp is trusted only if it was already old when it was taken.
    let clock = repo.tags_clock().unwrap_or_else(|_| system_clock());
    let dir = package_dir(name);
    let Some(listing) = repo.tag_dir(&dir)? else {
        return Ok(None);
    };
    let mut index = PackageIndex {
        package: name.to_string(),
        dir: DirRecord::new(listing.stamp, clock),
        recipes: BTreeMap::new(),
        versions: BTreeMap::new(),
        view: None,
    };
    for (seg, stamp) in &listing.tags {
        let tag = format!("{dir}/{seg}");
        let prev = old.and_then(|o| o.recipes.get(seg));
        if let Some(e) = read_entry(repo, &tag, *stamp, prev, &format!("recipe {name}/{seg}"))? {
            index.recipes.insert(seg.clone(), e);
        }
    }
    for seg in &listing.dirs {
        let vdir = format!("{dir}/{seg}");
        let prev = old.and_then(|o| o.versions.get(seg));
        if let Some(p) = prev {
            if p.dir.settled(repo.tag_dir_stamp(&vdir)?) {
                index.versions.insert(seg.clone(), p.clone());
                continue;
            }
        }
        let Some(vlist) = repo.tag_dir(&vdir)? else {
            continue;
        };
        let mut rec = VersionRecord {
            dir: DirRecord::new(vlist.stamp, clock),
            builds: BTreeMap::new(),
        };
        // The level also holds the builds' component tags (`BUILD.COMPONENT`).
        for (build, stamp) in vlist
            .tags
            .iter()
            .filter(|(b, _)| b.parse::<Build>().is_ok())
        {
            let tag = format!("{vdir}/{build}");
            let prev_entry = prev.and_then(|p| p.builds.get(build));
            let what = format!("build {name}/{seg}/{build}");
            if let Some(e) = read_entry(repo, &tag, *stamp, prev_entry, &what)? {
                rec.builds.insert(build.clone(), e);
            }
        }
        index.versions.insert(seg.clone(), rec);
    }
    Ok(Some(index))
}

/// The entry of one spec tag, reusing `prev` when the tag file or its target is unchanged.
fn read_entry(
    repo: &LocalRepository,
    tag: &str,
    stamp: TagStamp,
    prev: Option<&Entry>,
    what: &str,
) -> Result<Option<Entry>> {
    if let Some(p) = prev.filter(|p| p.stamp == stamp) {
        return Ok(Some(p.clone()));
    }
    // Removed since it was listed: not part of the package any more.
    let Some(digest) = repo.resolve_tag(tag)? else {
        return Ok(None);
    };
    let digest_text = digest.to_string();
    if let Some(p) = prev.filter(|p| p.digest == digest_text) {
        return Ok(Some(Entry { stamp, ..p.clone() }));
    }
    let spec = parse_spec_blob(repo, &digest, tag, what)?;
    Ok(Some(Entry::new(stamp, digest_text, spec)))
}

/// Reads and parses the spec stored in blob `digest` (tagged `tag`).
pub(super) fn parse_spec_blob(
    repo: &dyn spfs::storage::PayloadStore,
    digest: &spfs::Digest,
    tag: &str,
    what: &str,
) -> Result<Spec> {
    let bytes = repo.read_payload_bytes(digest, MAX_SPEC_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|_| StorageError::Corrupt {
        what: what.to_string(),
        message: "not UTF-8".into(),
    })?;
    parse_rendered(&text, tag, &LoadOptions::default())
        .map(|l| l.spec)
        .map_err(|e| StorageError::Corrupt {
            what: what.to_string(),
            message: e.to_string(),
        })
}

fn system_clock() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(mtime_ns: i128, ctime_ns: i128) -> TagStamp {
        TagStamp {
            ino: 7,
            size: 4096,
            mtime_ns,
            ctime_ns,
        }
    }

    #[test]
    fn a_stamp_taken_within_the_racy_window_is_never_trusted() {
        let clock = 100 * 1_000_000_000;
        // Changed 1 ms before it was read: a change in the same tick could hide behind it.
        let fresh = DirRecord::new(stamp(clock - 1_000_000, clock - 1_000_000), clock);
        assert!(fresh.racy);
        assert!(!fresh.settled(Some(fresh.stamp)), "even an identical stamp");
        // The status change time counts too.
        assert!(DirRecord::new(stamp(clock - 5_000_000_000, clock), clock).racy);
        // Old enough: an identical stamp means unchanged, any difference means changed.
        let old = DirRecord::new(stamp(clock - 3_000_000_000, clock - 3_000_000_000), clock);
        assert!(!old.racy);
        assert!(old.settled(Some(old.stamp)));
        assert!(!old.settled(Some(stamp(clock - 3_000_000_000, clock))));
        assert!(!old.settled(None), "a removed directory");
    }
}
