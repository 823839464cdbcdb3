//! Tags: human names pointing at digests, with append-only history.
//!
//! A tag `org/name` is the file `tags/org/name.tag`, one line per version, oldest
//! first: `<digest hex> <unix seconds> <user>`. Updates rewrite the file through a
//! renamed temporary file while holding an exclusive `flock` on `name.tag.lock`; a new
//! tag is created without a lock by a rename that fails if the name exists. A batch of
//! tags is made durable with one flush of its contents before the renames and one of
//! the changed directories after them (docs/repository-layout.md).

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::files::{self, Expect};
use super::LocalRepository;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};

const TAG_SUFFIX: &str = ".tag";
const LOCK_SUFFIX: &str = ".tag.lock";
use super::STAGE_PREFIX;

/// The most tag locks (open files) one batch holds at once.
const MAX_TAG_LOCKS: usize = if cfg!(test) { 4 } else { 256 };

/// One version of a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEntry {
    /// What the tag pointed at.
    pub target: Digest,
    /// When it was set (seconds since the Unix epoch).
    pub time: u64,
    /// Who set it.
    pub user: String,
}

/// Splits a tag version spec: `NAME` is version 0 (the current target), `NAME~N` the
/// N-th previous one.
pub fn parse_tag_version(spec: &str) -> Result<(&str, usize)> {
    match spec.rsplit_once('~') {
        Some((name, n)) => n
            .parse()
            .map(|n| (name, n))
            .map_err(|_| Error::InvalidReference {
                reference: spec.into(),
                reason: "expected a number after '~', as in 'name~1'".into(),
            }),
        None => Ok((spec, 0)),
    }
}

/// Checks a tag name: `/`-separated segments of letters, digits and `._+,=@-`, none
/// empty or starting with a dot.
pub fn validate_tag_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidTag {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    for seg in name.split('/') {
        if seg.is_empty() {
            return bad("empty path segment (leading, trailing or doubled '/')");
        }
        if seg.starts_with('.') {
            return bad("a segment may not start with '.'");
        }
        if let Some(c) = seg
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._+,=@-".contains(*c)))
        {
            return bad(&format!(
                "character '{c}' is not allowed (use letters, digits and . _ + , = @ -)"
            ));
        }
    }
    Ok(())
}

struct TagLock {
    _file: fs::File,
}

impl LocalRepository {
    fn tags_dir(&self) -> PathBuf {
        self.root().join("tags")
    }

    fn tag_file(&self, name: &str) -> PathBuf {
        self.tags_dir().join(format!("{name}{TAG_SUFFIX}"))
    }

    /// Takes the tag's lock, waiting while another process holds it. The wait polls
    /// for SIGINT/SIGTERM and gives up with [`Error::Interrupted`] when one arrives.
    fn lock_tag(&self, name: &str) -> Result<TagLock> {
        let path = self.tags_dir().join(format!("{name}{LOCK_SUFFIX}"));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).ctx("creating", parent)?;
        }
        let (file, _) =
            files::open(&path, Expect::File, files::Access::CreateRw)?.ok_or_else(|| {
                Error::io(
                    "locking tag",
                    &path,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            })?;
        let started = std::time::Instant::now();
        let mut warned = false;
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            crate::signals::check()?;
            // SAFETY: flock on a descriptor we own; no memory is touched.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(TagLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
                _ => return Err(Error::io("locking tag", &path, err)),
            }
            if !warned && started.elapsed() > std::time::Duration::from_secs(2) {
                tracing::warn!(
                    "waiting for tag '{name}': another process holds {}",
                    path.display()
                );
                warned = true;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }

    /// Every version of a tag, newest first. Empty if the tag does not exist.
    pub fn tag_history(&self, name: &str) -> Result<Vec<TagEntry>> {
        validate_tag_name(name)?;
        let path = self.tag_file(name);
        let Some(text) = files::read_text_bounded(&path, files::MAX_TAG_BYTES)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let digest = parts.next().and_then(|d| Digest::parse(d).ok());
            let time = parts.next().and_then(|t| t.parse().ok());
            match (digest, time) {
                (Some(target), Some(time)) => out.push(TagEntry {
                    target,
                    time,
                    user: parts.next().unwrap_or("").to_string(),
                }),
                _ => {
                    return Err(Error::CorruptTagFile {
                        path: path.clone(),
                        line: i + 1,
                    })
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The current target of a tag, if it exists.
    pub fn resolve_tag(&self, name: &str) -> Result<Option<Digest>> {
        Ok(self.tag_history(name)?.first().map(|e| e.target))
    }

    /// Points a tag at `target`, keeping its previous targets as history.
    /// Everything written to the repository so far is flushed first.
    pub fn push_tag(&self, name: &str, target: &Digest) -> Result<()> {
        self.push_tags(&[(name.to_string(), *target)])
    }

    /// Points several tags at once. Durable as a batch: every new tag file is written
    /// (not yet flushed), the repository's filesystem is flushed once (the targets and
    /// the new tag contents), the files are renamed into place in order, and the
    /// directories that changed are flushed before this returns. After a crash a tag is
    /// either complete (old or new content) or absent, never a partial file.
    ///
    /// A tag that does not exist yet is created without a lock, by a rename that fails
    /// if another writer created it first (then it is updated under its lock like an
    /// existing tag). Existing tags are locked, all before anything is written.
    pub fn push_tags(&self, tags: &[(String, Digest)]) -> Result<()> {
        for (name, _) in tags {
            validate_tag_name(name)?;
        }
        // Under the collection lock, each target must still be stored: a concurrent
        // `spfs clean` cannot have removed it since (docs/gc.md).
        let guard = self.write_guard()?;
        // The empty blob needs no storing (stub builds point at it), and what this hold
        // stored needs no refreshing.
        let empty = Digest::of(b"");
        for (_, target) in tags
            .iter()
            .filter(|(_, t)| *t != empty && !guard.is_fresh(t))
        {
            if !super::touch(&self.object_path(target))?
                && !super::touch(&self.payload_path(target))?
            {
                return Err(Error::MissingObject(*target));
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let user = current_user();
        let entry = |target: &Digest| TagEntry {
            target: *target,
            time: now,
            user: user.clone(),
        };

        // 1. What each tag holds now, read without a lock: tags that exist are updated
        //    under their lock, the others created.
        let mut order: Vec<&str> = Vec::new();
        let mut current: std::collections::HashMap<&str, Vec<TagEntry>> =
            std::collections::HashMap::new();
        for (name, _) in tags {
            if !current.contains_key(name.as_str()) {
                current.insert(name, self.tag_history(name)?);
                order.push(name);
            }
        }
        // Every lock first (in name order, so concurrent pushers cannot deadlock), then
        // the writes: an interrupted wait writes no tag at all.
        let mut locked: Vec<&str> = order
            .iter()
            .copied()
            .filter(|n| !current[n].is_empty())
            .collect();
        if locked.len() > MAX_TAG_LOCKS {
            // A lock is an open file: a batch updating thousands of tags goes in parts
            // (in the order given), each holding at most MAX_TAG_LOCKS of them.
            drop(guard);
            return self.push_tags_in_parts(tags, &current);
        }
        locked.sort_unstable();
        let mut locks = std::collections::HashMap::new();
        for n in &locked {
            locks.insert(*n, self.lock_tag(n)?);
            // Read again under the lock: it may have changed (or gone) since.
            current.insert(n, self.tag_history(n)?);
        }
        crate::signals::check()?;

        // 2. The new content of every tag that changes, in `tmp/`, not yet flushed.
        let mut pending: std::collections::HashMap<&str, Vec<TagEntry>> =
            std::collections::HashMap::new();
        for (name, target) in tags {
            let history = pending
                .entry(name.as_str())
                .or_insert_with(|| current[name.as_str()].clone());
            if history.first().map(|e| e.target) != Some(*target) {
                history.insert(0, entry(target));
            }
        }
        // Each is staged in the directory it will live in: the rename is then within
        // one directory, and its inode is allocated near its siblings rather than all
        // of a batch contending for one temporary directory.
        let mut dirs = DirsToSync::default();
        let mut staged = Vec::new();
        for name in &order {
            let history = &pending[name];
            if history.len() == current[name].len() {
                continue; // already pointing at its target
            }
            let create = current[name].is_empty();
            let tmp = self.stage_tag_file(name, history, false, &mut dirs)?;
            staged.push((*name, create, tmp));
        }
        if staged.is_empty() {
            return Ok(());
        }

        // 3. One flush: the targets and the staged contents are on disk before any tag
        //    names them.
        self.sync()?;

        // 4. Into place, in the order given; then the directories that changed.
        for (name, create, tmp) in staged {
            let path = self.tag_file(name);
            let parent = path
                .parent()
                .map_or_else(|| self.tags_dir(), Path::to_path_buf);
            if !create {
                rename_into(tmp, &path)?;
            } else if !self.create_tag_file(tmp, &path)? {
                // Created by another writer since it was read: update it under its lock.
                let _lock = self.lock_tag(name)?;
                let mut history = self.tag_history(name)?;
                let target = pending[name][0].target;
                if history.first().map(|e| e.target) != Some(target) {
                    history.insert(0, entry(&target));
                    let tmp = self.stage_tag_file(name, &history, true, &mut dirs)?;
                    rename_into(tmp, &path)?;
                }
            }
            dirs.changed.insert(parent);
            tracing::info!(tag = %name, target = %pending[name][0].target, "tagged");
        }
        dirs.sync(self)?;
        drop(locks);
        Ok(())
    }

    /// [`Self::push_tags`] for a batch updating more than [`MAX_TAG_LOCKS`] existing
    /// tags: consecutive parts, each updating at most that many.
    fn push_tags_in_parts(
        &self,
        tags: &[(String, Digest)],
        current: &std::collections::HashMap<&str, Vec<TagEntry>>,
    ) -> Result<()> {
        let mut start = 0;
        let mut existing = std::collections::HashSet::new();
        for (i, (name, _)) in tags.iter().enumerate() {
            if current.get(name.as_str()).is_some_and(|h| !h.is_empty())
                && existing.insert(name.as_str())
                && existing.len() > MAX_TAG_LOCKS
            {
                self.push_tags(&tags[start..i])?;
                start = i;
                existing.clear();
                existing.insert(name.as_str());
            }
        }
        self.push_tags(&tags[start..])
    }

    /// Writes a tag file's new content to a temporary file beside it (named
    /// `.stage.*`, which no listing shows and `spfs clean` removes once stale), creating
    /// the tag's directory if needed; flushed only when `flush`.
    fn stage_tag_file(
        &self,
        name: &str,
        newest_first: &[TagEntry],
        flush: bool,
        dirs: &mut DirsToSync,
    ) -> Result<tempfile::TempPath> {
        let path = self.tag_file(name);
        let mut text = String::new();
        for e in newest_first.iter().rev() {
            text.push_str(&format!("{} {} {}\n", e.target, e.time, e.user));
        }
        let parent = path.parent().unwrap_or(&path);
        // An empty directory may be pruned by a concurrent removal; a few attempts.
        let mut attempt = 0;
        let mut tmp = loop {
            dirs.create(parent, &self.tags_dir())?;
            match super::local::stage_in(parent) {
                Ok(t) => break t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 8 => {
                    dirs.exist.remove(parent);
                    attempt += 1;
                }
                Err(e) => return Err(Error::io("creating a file in", parent, e)),
            }
        };
        tmp.as_file_mut()
            .write_all(text.as_bytes())
            .ctx("writing tag", &path)?;
        if flush {
            tmp.as_file().sync_all().ctx("writing tag", &path)?;
        }
        // Closed now: a large batch must not hold a descriptor per tag.
        Ok(tmp.into_temp_path())
    }

    /// Renames a staged tag file (from the same directory) to `path` unless a file
    /// exists there (false then).
    fn create_tag_file(&self, tmp: tempfile::TempPath, path: &Path) -> Result<bool> {
        match tmp.persist_noclobber(path) {
            Ok(()) => Ok(true),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io("writing tag", path, e.error)),
        }
    }

    /// Staged tag files (`.stage.*`) last modified before `cutoff_ns` (nanoseconds
    /// since the epoch): left by writers that were killed between staging and renaming.
    pub(crate) fn stale_tag_stages(&self, cutoff_ns: i128) -> Result<Vec<PathBuf>> {
        fn walk(dir: &Path, cutoff_ns: i128, out: &mut Vec<PathBuf>) -> Result<()> {
            for (name, is_dir) in read_tag_dir(dir)? {
                let path = dir.join(&name);
                if is_dir {
                    walk(&path, cutoff_ns, out)?;
                } else if name.starts_with(STAGE_PREFIX) {
                    match fs::symlink_metadata(&path) {
                        Ok(m) if TagStamp::of(&m).mtime_ns < cutoff_ns => out.push(path),
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io("reading", &path, e)),
                    }
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(&self.tags_dir(), cutoff_ns, &mut out)?;
        Ok(out)
    }

    fn write_tag_file(&self, name: &str, newest_first: &[TagEntry]) -> Result<()> {
        let path = self.tag_file(name);
        if newest_first.is_empty() {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing tag", &path, e)),
            }
            return Ok(());
        }
        let tmp = self.stage_tag_file(name, newest_first, true, &mut DirsToSync::default())?;
        tmp.persist(&path)
            .map_err(|e| Error::io("writing tag", &path, e.error))?;
        Ok(())
    }

    /// Removes a whole tag and its history.
    pub fn remove_tag(&self, name: &str) -> Result<()> {
        validate_tag_name(name)?;
        let _lock = self.lock_tag(name)?;
        if self.tag_history(name)?.is_empty() {
            return Err(Error::UnknownReference(name.to_string()));
        }
        self.write_tag_file(name, &[])?;
        self.prune_empty_tag_dirs(name);
        Ok(())
    }

    /// Removes one version (`0` is the current one) from a tag's history.
    pub fn remove_tag_version(&self, name: &str, version: usize) -> Result<()> {
        validate_tag_name(name)?;
        let _lock = self.lock_tag(name)?;
        let mut history = self.tag_history(name)?;
        if history.is_empty() {
            return Err(Error::UnknownReference(name.to_string()));
        }
        if version >= history.len() {
            return Err(Error::TagHistoryTooShort {
                name: name.to_string(),
                requested: version,
                available: history.len(),
            });
        }
        history.remove(version);
        self.write_tag_file(name, &history)?;
        if history.is_empty() {
            self.prune_empty_tag_dirs(name);
        }
        Ok(())
    }

    /// Removes, under the tag's lock, the history versions (`0` is the current one)
    /// for which `prune(index, entry)` says so; returns how many were removed.
    pub fn prune_tag_history(
        &self,
        name: &str,
        prune: &dyn Fn(usize, &TagEntry, &[TagEntry]) -> bool,
    ) -> Result<usize> {
        validate_tag_name(name)?;
        let _lock = self.lock_tag(name)?;
        let history = self.tag_history(name)?;
        let kept: Vec<TagEntry> = history
            .iter()
            .enumerate()
            .filter(|(i, e)| !prune(*i, e, &history))
            .map(|(_, e)| e.clone())
            .collect();
        let removed = history.len() - kept.len();
        if removed > 0 {
            self.write_tag_file(name, &kept)?;
            if kept.is_empty() {
                self.prune_empty_tag_dirs(name);
            }
        }
        Ok(removed)
    }

    fn prune_empty_tag_dirs(&self, name: &str) {
        let mut dir = self.tag_file(name).parent().map(Path::to_path_buf);
        let top = self.tags_dir();
        while let Some(d) = dir {
            if d == top {
                break;
            }
            let only_locks = fs::read_dir(&d)
                .map(|rd| {
                    rd.flatten()
                        .all(|e| e.file_name().to_string_lossy().ends_with(LOCK_SUFFIX))
                })
                .unwrap_or(false);
            if !only_locks {
                break;
            }
            // Lock files stay while a tag exists; an empty namespace can go.
            if let Ok(rd) = fs::read_dir(&d) {
                for e in rd.flatten() {
                    let _ = fs::remove_file(e.path());
                }
            }
            if fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
    }

    /// Names of all tags under a `/`-separated prefix (all tags for `""`), sorted.
    ///
    /// `a/b` lists the tag `a/b` and every tag under `a/b/`; a prefix of one segment
    /// without a slash also matches by name (`sp` lists `spk/...` and `spx`). Only the
    /// directories under the prefix are read, never the rest of the tags tree.
    pub fn list_tags(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.trim_matches('/');
        let mut out = Vec::new();
        let top = self.tags_dir();
        if prefix.is_empty() {
            walk_tags(&top, &top, &mut out)?;
        } else if validate_tag_name(prefix).is_err() {
            // No tag can live under a name that is not a valid tag name.
        } else if !prefix.contains('/') {
            for (name, is_dir) in read_tag_dir(&top)? {
                let stem = name.strip_suffix(TAG_SUFFIX);
                if is_dir && name.starts_with(prefix) {
                    walk_tags(&top, &top.join(&name), &mut out)?;
                } else if let Some(stem) = stem.filter(|s| !is_dir && s.starts_with(prefix)) {
                    out.push(stem.to_string());
                }
            }
        } else {
            if self.tag_file(prefix).is_file() {
                out.push(prefix.to_string());
            }
            walk_tags(&top, &top.join(prefix), &mut out)?;
        }
        out.sort();
        Ok(out)
    }

    /// One level of the tags tree under `dir` (a `/`-separated tag path, `""` for the
    /// top): the tags directly in it and its subdirectories, each with a [`TagStamp`],
    /// and the stamp of the directory itself, taken before its entries are read. `None`
    /// if no tag lives under `dir`. Reads exactly one directory.
    pub fn tag_dir(&self, dir: &str) -> Result<Option<TagDir>> {
        let dir = dir.trim_matches('/');
        if !dir.is_empty() && validate_tag_name(dir).is_err() {
            return Ok(None);
        }
        let path = if dir.is_empty() {
            self.tags_dir()
        } else {
            self.tags_dir().join(dir)
        };
        let Some(stamp) = stamp_of(&path)? else {
            return Ok(None);
        };
        let entries = match count_dir_read(fs::read_dir(&path)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("listing tags in", &path, e)),
        };
        let mut out = TagDir {
            stamp,
            tags: Vec::new(),
            dirs: Vec::new(),
        };
        for entry in entries {
            let entry = entry.ctx("listing tags in", &path)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let ft = entry.file_type().ctx("listing tags in", &path)?;
            if ft.is_dir() {
                out.dirs.push(name);
            } else if let Some(stem) = name.strip_suffix(TAG_SUFFIX) {
                // A tag removed between the listing and the stat is simply not listed.
                match entry.metadata() {
                    Ok(m) => out.tags.push((stem.to_string(), TagStamp::of(&m))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("listing tags in", &path, e)),
                }
            }
        }
        out.tags.sort_by(|a, b| a.0.cmp(&b.0));
        out.dirs.sort();
        Ok(Some(out))
    }

    /// One level of the tags tree under `dir`, names only: the tags directly in it and
    /// its subdirectories, sorted; `None` if no tag lives under `dir`. Reads exactly one
    /// directory and stats nothing.
    pub fn tag_dir_names(&self, dir: &str) -> Result<Option<(Vec<String>, Vec<String>)>> {
        let dir = dir.trim_matches('/');
        if !dir.is_empty() && validate_tag_name(dir).is_err() {
            return Ok(None);
        }
        let path = self.tags_dir().join(dir);
        let entries = match count_dir_read(fs::read_dir(&path)) {
            Ok(e) => e,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(Error::io("listing tags in", &path, e)),
        };
        let (mut tags, mut dirs) = (Vec::new(), Vec::new());
        for entry in entries {
            let entry = entry.ctx("listing tags in", &path)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if entry.file_type().ctx("listing tags in", &path)?.is_dir() {
                dirs.push(name);
            } else if let Some(stem) = name.strip_suffix(TAG_SUFFIX) {
                tags.push(stem.to_string());
            }
        }
        tags.sort();
        dirs.sort();
        Ok(Some((tags, dirs)))
    }

    /// The stamp of the tags directory `dir` (`None` if it does not exist): one `stat`.
    pub fn tag_dir_stamp(&self, dir: &str) -> Result<Option<TagStamp>> {
        let dir = dir.trim_matches('/');
        if !dir.is_empty() && validate_tag_name(dir).is_err() {
            return Ok(None);
        }
        stamp_of(&self.tags_dir().join(dir))
    }

    /// The stamps of the tags directory `dir` and of some of its subdirectories
    /// (`None` for one that does not exist), with one open of `dir` and one `stat` each.
    pub fn tag_dir_stamps(
        &self,
        dir: &str,
        children: &[&str],
    ) -> Result<(Option<TagStamp>, Vec<Option<TagStamp>>)> {
        let dir = dir.trim_matches('/');
        let none = || (None, vec![None; children.len()]);
        if !dir.is_empty() && validate_tag_name(dir).is_err() {
            return Ok(none());
        }
        let path = self.tags_dir().join(dir);
        let Some((handle, meta)) = files::open(&path, Expect::Dir, files::Access::Read)? else {
            return Ok(none());
        };
        let mut out = Vec::with_capacity(children.len());
        for child in children {
            if validate_tag_name(child).is_err() || child.contains('/') {
                out.push(None);
                continue;
            }
            match nix::sys::stat::fstatat(&handle, *child, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                    out.push(Some(TagStamp::of_stat(&st)))
                }
                Ok(_) | Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => {
                    out.push(None)
                }
                Err(e) => {
                    return Err(Error::io(
                        "reading",
                        path.join(child),
                        std::io::Error::from(e),
                    ))
                }
            }
        }
        Ok((Some(TagStamp::of(&meta)), out))
    }

    /// The current time by the clock of the filesystem holding the tags (the time a new
    /// file there is stamped with), in nanoseconds since the Unix epoch. On a network
    /// filesystem this is the server's clock, which is what tag stamps are compared to.
    pub fn tags_clock(&self) -> Result<i128> {
        let tmp_dir = self.tmp_dir();
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).ctx("creating a file in", &tmp_dir)?;
        let m = tmp
            .as_file()
            .metadata()
            .ctx("reading the time of", tmp.path())?;
        Ok(TagStamp::of(&m).mtime_ns)
    }

    /// Every tag with its current target.
    pub fn all_tags(&self) -> Result<Vec<(String, Digest)>> {
        let mut out = Vec::new();
        for name in self.list_tags("")? {
            if let Some(d) = self.resolve_tag(&name)? {
                out.push((name, d));
            }
        }
        Ok(out)
    }
}

fn walk_tags(top: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for (name, is_dir) in read_tag_dir(dir)? {
        let path = dir.join(&name);
        if is_dir {
            walk_tags(top, &path, out)?;
        } else if let Some(name) = path
            .strip_prefix(top)
            .ok()
            .and_then(|p| p.to_str())
            .and_then(|p| p.strip_suffix(TAG_SUFFIX))
        {
            out.push(name.to_string());
        }
    }
    Ok(())
}

/// The entries of one directory of the tags tree: (name, is a directory). Empty if the
/// directory does not exist.
fn read_tag_dir(dir: &Path) -> Result<Vec<(String, bool)>> {
    let entries = match count_dir_read(fs::read_dir(dir)) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing tags in", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.ctx("listing tags in", dir)?;
        let ft = entry.file_type().ctx("listing tags in", dir)?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, ft.is_dir()));
        }
    }
    Ok(out)
}

thread_local! {
    static DIRS_READ: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count_dir_read<T>(r: std::io::Result<T>) -> std::io::Result<T> {
    DIRS_READ.with(|c| c.set(c.get() + 1));
    r
}

/// How many tag directories this thread has listed so far (diagnostics and tests: a
/// listing under a prefix must not read directories outside it).
pub fn tag_dirs_read() -> u64 {
    DIRS_READ.with(|c| c.get())
}

/// What a tag file or tag directory looked like when it was last changed. Tags are
/// rewritten by renaming a new file into place, so a changed tag has a new stamp; a
/// directory's stamp changes when an entry is added, removed or replaced, up to the
/// timestamp granularity of the filesystem (see [`LocalRepository::tags_clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TagStamp {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the Unix epoch.
    pub ctime_ns: i128,
}

impl TagStamp {
    fn of(m: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        TagStamp {
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        }
    }
}

impl TagStamp {
    fn of_stat(st: &nix::sys::stat::FileStat) -> Self {
        TagStamp {
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
            ctime_ns: st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128,
        }
    }
}

fn stamp_of(path: &Path) -> Result<Option<TagStamp>> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(Some(TagStamp::of(&m))),
        Ok(_) => Ok(None),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

/// One directory of the tags tree, as [`LocalRepository::tag_dir`] read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDir {
    /// The directory's stamp, taken before its entries were read.
    pub stamp: TagStamp,
    /// Tags directly in the directory (last segment of the name) with their stamps, sorted.
    pub tags: Vec<(String, TagStamp)>,
    /// Subdirectories (namespaces holding more tags), sorted.
    pub dirs: Vec<String>,
}

/// Renames a staged tag file over `path`.
fn rename_into(tmp: tempfile::TempPath, path: &Path) -> Result<()> {
    tmp.persist(path)
        .map_err(|e| Error::io("writing tag", path, e.error))
}

/// Above this many changed directories a batch flushes the filesystem instead.
const FSYNC_DIRS_MAX: usize = 16;

/// Directories a batch of tag writes created or changed, to flush once at the end.
#[derive(Default)]
struct DirsToSync {
    /// Directories known to exist (no need to look again).
    exist: std::collections::HashSet<PathBuf>,
    /// Directories whose entries changed.
    changed: std::collections::BTreeSet<PathBuf>,
}

impl DirsToSync {
    /// Creates `dir` and its missing parents below `top`, noting the parents that
    /// gained an entry.
    fn create(&mut self, dir: &Path, top: &Path) -> Result<()> {
        if self.exist.contains(dir) {
            return Ok(());
        }
        // Made directly (no look first): most directories a batch needs are new. True
        // when made, false when it existed.
        let mkdir = || match fs::create_dir(dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        };
        let parent = dir.parent().filter(|p| p.starts_with(top) && *p != dir);
        let made = match (mkdir(), parent) {
            (Err(e), Some(parent)) if e.kind() == std::io::ErrorKind::NotFound => {
                self.exist.remove(parent);
                self.create(parent, top)?;
                mkdir()
            }
            (other, _) => other,
        }
        .map_err(|e| Error::io("creating", dir, e))?;
        if let (true, Some(p)) = (made, dir.parent()) {
            self.changed.insert(p.to_path_buf());
        }
        self.exist.insert(dir.to_path_buf());
        Ok(())
    }

    /// Makes the changed directories' entries (new and renamed files, new
    /// subdirectories) durable: an `fsync` of each when they are few, else one flush
    /// of the whole filesystem (cheaper than hundreds of `fsync`s, each of which may
    /// flush the disk's cache).
    fn sync(&self, repo: &LocalRepository) -> Result<()> {
        if self.changed.len() > FSYNC_DIRS_MAX {
            return repo.sync();
        }
        for dir in &self.changed {
            let f = fs::File::open(dir).ctx("flushing", dir)?;
            f.sync_all().ctx("flushing", dir)?;
        }
        Ok(())
    }
}

pub(crate) fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            let uid = nix::unistd::getuid();
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| uid.to_string())
        })
}

#[cfg(test)]
mod tests {
    use crate::test_fixture::fixture;

    #[test]
    fn a_batch_updating_more_tags_than_it_may_lock_goes_in_parts_in_order() {
        let f = fixture();
        let repo = &f.src;
        let old = repo.write_blob(b"old").unwrap();
        let new = repo.write_blob(b"new").unwrap();
        // Ten existing tags (more than the 4 locks a batch may hold under test), one
        // new tag among them, and one existing tag pushed twice.
        let names: Vec<String> = (0..10).map(|i| format!("org/t{i}")).collect();
        let first: Vec<(String, _)> = names.iter().map(|n| (n.clone(), old)).collect();
        repo.push_tags(&first).unwrap();
        let mut batch: Vec<(String, _)> = names.iter().map(|n| (n.clone(), new)).collect();
        batch.insert(5, ("org/fresh".to_string(), new));
        batch.push(("org/t0".to_string(), old));
        repo.push_tags(&batch).unwrap();
        let targets = |n: &str| -> Vec<_> {
            repo.tag_history(n)
                .unwrap()
                .iter()
                .map(|e| e.target)
                .collect()
        };
        for n in &names[1..] {
            assert_eq!(targets(n), vec![new, old], "{n}");
        }
        assert_eq!(targets("org/t0"), vec![old, new, old]);
        assert_eq!(repo.resolve_tag("org/fresh").unwrap(), Some(new));
    }
}
