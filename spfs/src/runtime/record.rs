//! Runtime records: one small file per runtime under `runtimes/`, so that other
//! commands (and garbage collection) can see what a live runtime uses.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::storage::LocalRepository;

/// Which lower-directory backend a runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Backend {
    /// Hard-link renders from the render cache, one overlay lower dir per layer.
    Render,
    /// One read-only FUSE mount serving the merged stack from the repository.
    Fuse,
}

impl Backend {
    /// The backend's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Render => "render",
            Backend::Fuse => "fuse",
        }
    }
    /// Parses a backend name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "render" => Ok(Backend::Render),
            "fuse" => Ok(Backend::Fuse),
            other => Err(Error::UnknownBackend(other.to_string())),
        }
    }
}

/// What is known about one runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeRecord {
    /// Unique name (`SPFS_RUNTIME` inside the runtime).
    pub name: String,
    /// Process id of the monitor that owns the mounts.
    pub pid: u32,
    /// Start time of the monitor process (guards against pid reuse).
    pub started: u64,
    /// Host the runtime runs on.
    pub host: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Lower-directory backend.
    pub backend: Backend,
    /// Whether /spfs is writable.
    pub editable: bool,
    /// Whether the upper dir outlives the runtime (for `--rerun`).
    pub keep: bool,
    /// The overlay upper directory.
    pub upper: PathBuf,
    /// The overlay work directory.
    pub work: PathBuf,
    /// Layers (or manifests) of the stack, bottom first.
    pub stack: Vec<Digest>,
    /// Incremented by the monitor each time it re-applies the record.
    pub generation: u64,
    /// FUSE runtimes with lazy payloads: the remote (an address) payloads and the
    /// objects of the stack missing locally are read from (`--payloads-from`).
    pub payloads_from: Option<String>,
}

impl RuntimeRecord {
    fn encode(&self) -> String {
        let stack: Vec<String> = self.stack.iter().map(|d| d.to_string()).collect();
        format!(
            "name={}\npid={}\nstarted={}\nhost={}\ncreated={}\nbackend={}\neditable={}\nkeep={}\nupper={}\nwork={}\nstack={}\ngeneration={}\n",
            self.name,
            self.pid,
            self.started,
            self.host,
            self.created,
            self.backend.name(),
            self.editable,
            self.keep,
            self.upper.display(),
            self.work.display(),
            stack.join(","),
            self.generation
        ) + &match &self.payloads_from {
            Some(a) => format!("payloads_from={a}\n"),
            None => String::new(),
        }
    }

    fn decode(text: &str, path: &Path) -> Result<Self> {
        let map: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let bad = |field: &str| Error::CorruptRuntimeRecord {
            path: path.to_path_buf(),
            field: field.to_string(),
        };
        let get = |k: &str| map.get(k).copied().ok_or_else(|| bad(k));
        let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().map_err(|_| bad(k)));
        let flag = |k: &str| get(k).map(|v| v == "true");
        let stack = get("stack")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Digest::parse(s).map_err(|_| bad("stack")))
            .collect::<Result<Vec<_>>>()?;
        Ok(RuntimeRecord {
            name: get("name")?.to_string(),
            pid: num("pid")? as u32,
            started: num("started")?,
            host: get("host")?.to_string(),
            created: num("created")?,
            backend: Backend::parse(get("backend")?)?,
            editable: flag("editable")?,
            keep: flag("keep")?,
            upper: PathBuf::from(get("upper")?),
            work: PathBuf::from(get("work")?),
            stack,
            generation: num("generation")?,
            payloads_from: map.get("payloads_from").map(|a| a.to_string()),
        })
    }

    /// True if the monitor process is still running in the recorded namespace.
    /// Runtimes of other hosts are assumed alive.
    pub fn is_alive(&self) -> bool {
        if self.host != hostname() {
            return true;
        }
        self.pid != 0 && super::namespace::process_running(self.pid, self.started)
    }

    /// Whether the runtime is running, kept for `--rerun`, or dead (its record is
    /// litter that `spfs runtime prune` removes).
    pub fn state(&self) -> RuntimeState {
        if self.is_alive() {
            RuntimeState::Running
        } else if self.keep {
            RuntimeState::Kept
        } else {
            RuntimeState::Dead
        }
    }
}

/// The life-cycle state of a runtime record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeState {
    /// Its monitor is alive.
    Running,
    /// Its monitor has ended and its edits are kept on disk.
    Kept,
    /// Its monitor has ended and nothing of it is kept.
    Dead,
}

impl RuntimeState {
    /// The state as `spfs runtime list` shows it.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeState::Running => "running",
            RuntimeState::Kept => "kept",
            RuntimeState::Dead => "dead",
        }
    }
}

/// Removes the records of runtimes that are dead (not running, not kept); returns
/// how many were removed.
pub fn prune(repo: &LocalRepository) -> Result<usize> {
    let mut n = 0;
    for r in list(repo)? {
        if r.state() == RuntimeState::Dead {
            remove(repo, &r.name)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Checks a name given to a new runtime: one tag segment (letters, digits and
/// `. _ + , = @ -`, not starting with `.`), as it names a file under `runtimes/`.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.contains('/') {
        Some("'/' is not allowed (use letters, digits and . _ + , = @ -)".to_string())
    } else {
        match crate::storage::validate_tag_name(name) {
            Ok(()) => None,
            Err(Error::InvalidTag { reason, .. }) => Some(reason),
            Err(e) => return Err(e),
        }
    };
    match reason {
        Some(reason) => Err(Error::InvalidRuntimeName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn record_path(repo: &LocalRepository, name: &str) -> PathBuf {
    repo.runtimes_dir().join(format!("{name}.runtime"))
}

/// Directory for a runtime's persistent files (kept upper dirs).
pub fn runtime_dir(repo: &LocalRepository, name: &str) -> PathBuf {
    repo.runtimes_dir().join(name)
}

/// Writes (or replaces) a runtime's record atomically.
pub fn save(repo: &LocalRepository, record: &RuntimeRecord) -> Result<()> {
    let path = record_path(repo, &record.name);
    let tmp_dir = repo.tmp_dir();
    let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir).ctx("creating a file in", &tmp_dir)?;
    tmp.as_file_mut()
        .write_all(record.encode().as_bytes())
        .ctx("writing", &path)?;
    tmp.persist(&path)
        .map_err(|e| Error::io("writing", &path, e.error))?;
    Ok(())
}

/// Reads a runtime's record.
pub fn load(repo: &LocalRepository, name: &str) -> Result<RuntimeRecord> {
    let path = record_path(repo, name);
    match crate::storage::files::read_text_bounded(&path, crate::storage::files::MAX_RECORD_BYTES)?
    {
        Some(text) => RuntimeRecord::decode(&text, &path),
        None => Err(Error::UnknownRuntime(name.to_string())),
    }
}

/// The record of the runtime this process runs in (named by `SPFS_RUNTIME`).
pub fn current(repo: &LocalRepository) -> Result<RuntimeRecord> {
    let name = std::env::var("SPFS_RUNTIME")
        .ok()
        .filter(|n| !n.is_empty())
        .ok_or(Error::NotInRuntime)?;
    load(repo, &name)
}

/// The names of every runtime record, from the directory's entries.
pub fn names(repo: &LocalRepository) -> Result<Vec<String>> {
    let dir = repo.runtimes_dir();
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).ctx("listing", &dir)? {
        let entry = entry.ctx("listing", &dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".runtime") {
            out.push(stem.to_string());
        }
    }
    Ok(out)
}

/// Every runtime record, sorted by creation time.
pub fn list(repo: &LocalRepository) -> Result<Vec<RuntimeRecord>> {
    let mut out = Vec::new();
    for stem in names(repo)? {
        match load(repo, &stem) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!("skipping unreadable runtime record: {e}"),
        }
    }
    out.sort_by_key(|r| (r.created, r.name.clone()));
    Ok(out)
}

/// Removes a runtime's record and any persistent files it kept.
pub fn remove(repo: &LocalRepository, name: &str) -> Result<()> {
    let path = record_path(repo, name);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("removing", &path, e)),
    }
    let dir = runtime_dir(repo, name);
    if dir.exists() {
        fs::remove_dir_all(&dir).ctx("removing", &dir)?;
    }
    Ok(())
}

/// A fresh, unique runtime name.
pub fn new_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{nanos}-{}-{}", std::process::id(), hostname());
    format!("rt-{}", &Digest::of(seed.as_bytes()).to_hex()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names_are_one_tag_segment() {
        for ok in ["rt-1", "build_2.x", "a+b,c=d@e"] {
            validate_name(ok).unwrap();
        }
        for (bad, why) in [
            ("a/b", "'/' is not allowed"),
            ("", "it is empty"),
            (".hidden", "may not start with '.'"),
            ("sp ace", "character ' ' is not allowed"),
        ] {
            match validate_name(bad) {
                Err(Error::InvalidRuntimeName { name, reason }) => {
                    assert_eq!(name, bad);
                    assert!(reason.contains(why), "{bad}: {reason}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_backend_is_typed_with_its_choices_as_help() {
        let e = Backend::parse("nfs").unwrap_err();
        assert!(matches!(&e, Error::UnknownBackend(b) if b == "nfs"));
        assert_eq!(e.to_string(), "unknown runtime backend 'nfs'");
        assert_eq!(crate::error::Help::help(&e), ["use 'render' or 'fuse'"]);
    }
}
