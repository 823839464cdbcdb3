//! A runtime's edits (its writable upper directory) and requests to its monitor, from
//! inside the runtime: commit the edits, list them, reset them, switch edit mode, swap
//! the stack under them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::record::{self, RuntimeRecord};
use crate::commit::{commit_tree, commit_tree_as_layer, CommitOptions};
use crate::diff::{diff, Change};
use crate::digest::Digest;
use crate::error::{Error, IoContext, RequestProblem, Result};
use crate::object::{Manifest, Object, Platform};
use crate::progress::Progress;
use crate::storage::{LocalRepository, ReadThrough};

/// The merged tree of the runtime's layers, without its edits.
pub fn lower_manifest(repo: &LocalRepository, rec: &RuntimeRecord) -> Result<Manifest> {
    if let Some(address) = &rec.payloads_from {
        if !ReadThrough::all_local(repo, &rec.stack) {
            // The stack is read from the lazy remote, as the monitor reads it.
            let remote =
                crate::storage::open_remote(&crate::config::Address::parse(address)?, false)?;
            let source = ReadThrough::new(repo, &*remote);
            return source.merge_manifests(&source.manifests_of(&rec.stack)?);
        }
    }
    repo.merge_manifests(&repo.manifests_of(&rec.stack)?)
}

fn edits_manifest(
    repo: &LocalRepository,
    rec: &RuntimeRecord,
    lower: &Manifest,
    hash_only: bool,
    progress: &Progress,
) -> Result<Manifest> {
    commit_tree(
        repo,
        &rec.upper,
        Some(lower),
        &edits_commit_options(rec, hash_only),
        progress,
    )
}

fn edits_commit_options(rec: &RuntimeRecord, hash_only: bool) -> CommitOptions {
    CommitOptions {
        skip_special: false,
        overlay_upper: true,
        hash_only,
        lower_modes_stripped: rec.backend == super::record::Backend::Render,
        take_files: false,
    }
}

/// Stores the runtime's edits as a layer (deletions become masks).
pub fn commit_layer(
    repo: &LocalRepository,
    rec: &RuntimeRecord,
    annotations: &[(String, String)],
    progress: &Progress,
) -> Result<Digest> {
    let lower = lower_manifest(repo, rec)?;
    commit_tree_as_layer(
        repo,
        &rec.upper,
        Some(&lower),
        &edits_commit_options(rec, false),
        annotations,
        progress,
    )
}

/// Stores the runtime's whole stack plus its edits as a platform.
pub fn commit_platform(
    repo: &LocalRepository,
    rec: &RuntimeRecord,
    progress: &Progress,
) -> Result<Digest> {
    if let (Some(remote), false) = (&rec.payloads_from, ReadThrough::all_local(repo, &rec.stack)) {
        // A platform promises its layers' closures locally.
        return Err(Error::StackNotLocal {
            remote: remote.clone(),
        });
    }
    let mut layers = repo.layers_of(&rec.stack)?;
    let edits = commit_layer(repo, rec, &[], progress)?;
    if !repo.read_manifest(&edits)?.root.is_empty() {
        layers.push(edits);
    }
    repo.write_object(&Object::Platform(Platform { layers }))
}

/// What the runtime's edits change, relative to its layers.
pub fn changes(repo: &LocalRepository, rec: &RuntimeRecord) -> Result<Vec<Change>> {
    let lower = lower_manifest(repo, rec)?;
    let edits = edits_manifest(repo, rec, &lower, true, &Progress::hidden())?;
    let mut after = lower.clone();
    after.overlay(&edits);
    Ok(diff(&lower, &after))
}

/// Drops edits under the given /spfs paths (all edits when empty) and remounts /spfs.
pub fn reset(repo: &LocalRepository, rec: &RuntimeRecord, paths: &[String]) -> Result<()> {
    let targets: Vec<PathBuf> = if paths.is_empty() {
        fs::read_dir(&rec.upper)
            .ctx("reading", &rec.upper)?
            .flatten()
            .map(|e| e.path())
            .collect()
    } else {
        paths
            .iter()
            .map(|p| relative_to_spfs(p).map(|r| rec.upper.join(r)))
            .collect::<Result<_>>()?
    };
    for t in targets {
        match fs::symlink_metadata(&t) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&t).ctx("removing", &t)?,
            Ok(_) => fs::remove_file(&t).ctx("removing", &t)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", &t, e)),
        }
    }
    request(repo, rec, Signal::SIGUSR2)
}

fn relative_to_spfs(p: &str) -> Result<PathBuf> {
    let rel = p.strip_prefix("/spfs").unwrap_or(p).trim_start_matches('/');
    if rel.is_empty()
        || Path::new(rel)
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::NotUnderSpfs(p.to_string()));
    }
    Ok(PathBuf::from(rel))
}

/// Replaces the runtime's stack (bottom first) in place: the monitor prepares the new
/// layers, then swaps /spfs to them, keeping the runtime's edits on top. Processes keep
/// what they have open; paths resolve in the new view.
pub fn set_stack(repo: &LocalRepository, rec: &RuntimeRecord, stack: Vec<Digest>) -> Result<()> {
    let mut rec = rec.clone();
    rec.stack = stack;
    record::save(repo, &rec)?;
    request(repo, &rec, Signal::SIGUSR2)?;
    if record::load(repo, &rec.name)?.stack != rec.stack {
        return Err(Error::MonitorRequest {
            name: rec.name.clone(),
            pid: rec.pid,
            problem: RequestProblem::StackKept,
        });
    }
    Ok(())
}

/// Makes /spfs writable or read-only.
pub fn set_editable(repo: &LocalRepository, rec: &RuntimeRecord, editable: bool) -> Result<()> {
    let mut rec = rec.clone();
    rec.editable = editable;
    record::save(repo, &rec)?;
    request(repo, &rec, Signal::SIGUSR1)
}

/// Asks the runtime's monitor to apply its record, and waits until it has.
fn request(repo: &LocalRepository, rec: &RuntimeRecord, sig: Signal) -> Result<()> {
    if !rec.is_alive() {
        return Err(Error::MonitorRequest {
            name: rec.name.clone(),
            pid: rec.pid,
            problem: RequestProblem::NotRunning,
        });
    }
    let before = rec.generation;
    kill(Pid::from_raw(rec.pid as i32), sig).map_err(|e| Error::MonitorRequest {
        name: rec.name.clone(),
        pid: rec.pid,
        problem: RequestProblem::Signal(e.into()),
    })?;
    let start = Instant::now();
    let limit = Duration::from_secs(10);
    while start.elapsed() < limit {
        if record::load(repo, &rec.name)?.generation > before {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::MonitorRequest {
        name: rec.name.clone(),
        pid: rec.pid,
        problem: RequestProblem::TimedOut(limit),
    })
}
