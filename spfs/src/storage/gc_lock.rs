//! The repository's collection lock (docs/gc.md).
//!
//! Writers hold `gc.lock` shared from the moment they start relying on stored content
//! (a transaction, an object or tag write) until what they wrote is published; `spfs
//! clean` holds it exclusively while it re-checks and deletes. Writers first pass
//! through `gc.intent` (shared, released at once) and clean takes `gc.intent`
//! exclusively before waiting for `gc.lock`, so a steady stream of writers cannot
//! starve clean. Within one process the shared hold is counted, so nested writes never
//! queue behind a waiting clean.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::files::{self, Expect};
use super::LocalRepository;
use crate::digest::Digest;
use crate::error::{Error, Result};

const LOCK: &str = "gc.lock";
const INTENT: &str = "gc.intent";

/// Shared holds of this process, per repository root.
static HELD: Mutex<Option<HashMap<PathBuf, Hold>>> = Mutex::new(None);

/// One repository's shared hold: the open lock, how many guards share it, and what was
/// stored or refreshed while it lasted (small objects and blobs only).
#[derive(Debug)]
struct Hold {
    _lock: fs::File,
    guards: usize,
    fresh: HashSet<Digest>,
}

/// A shared hold on the collection lock; released when the last one is dropped.
#[derive(Debug)]
pub struct WriteGuard {
    root: PathBuf,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(map) = held.as_mut() {
            if let Some(hold) = map.get_mut(&self.root) {
                hold.guards -= 1;
                if hold.guards == 0 {
                    map.remove(&self.root);
                }
            }
        }
    }
}

/// The exclusive hold `spfs clean` takes for its final check and sweep.
#[derive(Debug)]
pub struct CollectGuard {
    _intent: fs::File,
    _lock: fs::File,
}

fn open_lock(path: &Path) -> Result<fs::File> {
    let (file, _) = files::open(path, Expect::File, files::Access::CreateRw)?.ok_or_else(|| {
        Error::io(
            "opening lock",
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })?;
    Ok(file)
}

/// Takes `flock(op)` on `file`, polling so that SIGINT/SIGTERM end the wait.
fn flock_wait(file: &fs::File, op: libc::c_int, path: &Path, what: &str) -> Result<()> {
    let started = std::time::Instant::now();
    let mut warned = false;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        crate::signals::check()?;
        // SAFETY: flock on a descriptor we own; no memory is touched.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
            _ => return Err(Error::io("locking", path, err)),
        }
        if !warned && started.elapsed() > std::time::Duration::from_secs(2) {
            tracing::warn!("waiting for {what} ({})", path.display());
            warned = true;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(20));
    }
}

impl WriteGuard {
    /// Notes that `digest` was stored or its time refreshed under this hold: until the
    /// last guard goes, clean cannot remove it, so it needs no refreshing again.
    pub(crate) fn note_fresh(&self, digest: Digest) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hold) = held.as_mut().and_then(|m| m.get_mut(&self.root)) {
            hold.fresh.insert(digest);
        }
    }

    /// True if `digest` was stored or refreshed while this process held the lock
    /// without a break.
    pub(crate) fn is_fresh(&self, digest: &Digest) -> bool {
        let held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref()
            .and_then(|m| m.get(&self.root))
            .is_some_and(|h| h.fresh.contains(digest))
    }
}

impl LocalRepository {
    /// Holds the collection lock shared: while any guard lives, `spfs clean` deletes
    /// nothing. Cheap when this process already holds one.
    pub fn write_guard(&self) -> Result<WriteGuard> {
        let root = self.root().to_path_buf();
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        let map = held.get_or_insert_with(HashMap::new);
        if let Some(hold) = map.get_mut(&root) {
            hold.guards += 1;
            return Ok(WriteGuard { root });
        }
        let intent_path = root.join(INTENT);
        let intent = open_lock(&intent_path)?;
        flock_wait(
            &intent,
            libc::LOCK_SH,
            &intent_path,
            "a running 'spfs clean' to finish",
        )?;
        let lock_path = root.join(LOCK);
        let lock = open_lock(&lock_path)?;
        flock_wait(
            &lock,
            libc::LOCK_SH,
            &lock_path,
            "a running 'spfs clean' to finish",
        )?;
        drop(intent);
        map.insert(
            root.clone(),
            Hold {
                _lock: lock,
                guards: 1,
                fresh: HashSet::new(),
            },
        );
        Ok(WriteGuard { root })
    }

    /// Takes the collection lock exclusively, waiting for writers to finish.
    pub fn collect_guard(&self) -> Result<CollectGuard> {
        let intent_path = self.root().join(INTENT);
        let intent = open_lock(&intent_path)?;
        flock_wait(
            &intent,
            libc::LOCK_EX,
            &intent_path,
            "another 'spfs clean' to finish",
        )?;
        let lock_path = self.root().join(LOCK);
        let lock = open_lock(&lock_path)?;
        flock_wait(
            &lock,
            libc::LOCK_EX,
            &lock_path,
            "processes writing to the repository to finish",
        )?;
        Ok(CollectGuard {
            _intent: intent,
            _lock: lock,
        })
    }
}

/// Sets a file's modification time to now. False if it does not exist; a file this
/// user may not touch (another owner's, read-only) counts as existing.
pub(crate) fn touch(path: &Path) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(cpath) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Ok(false);
    };
    // SAFETY: a NUL-terminated path; a null `times` means "now" for both stamps.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath.as_ptr(),
            std::ptr::null(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOENT) => Ok(false),
        Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::EROFS) => Ok(path.exists()),
        _ => Err(Error::io("refreshing the time of", path, err)),
    }
}
