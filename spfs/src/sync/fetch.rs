//! Pulls on demand: what a runtime's stack needs and the local repository lacks,
//! fetched from the configured remotes before the runtime mounts it (docs/remotes.md).
//!
//! Only objects are copied, never tags: a later `spfs clean` may reclaim what was
//! pulled once no runtime uses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{copy, resolve, SyncReport};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::storage::{LocalRepository, Repository};

/// Opens a remote by name.
type Opener<'a> = Box<dyn Fn(&str) -> Result<Arc<dyn Repository>> + Send + Sync + 'a>;

/// A remote as opened (or why it could not be).
type Opened = std::result::Result<Arc<dyn Repository>, String>;

/// Named remotes in the order they are asked, each opened on first use and kept.
pub struct Remotes<'a> {
    names: Vec<String>,
    open: Opener<'a>,
    opened: Mutex<HashMap<String, Opened>>,
}

impl<'a> Remotes<'a> {
    /// The remotes `names`, asked in that order; `open` opens one by name.
    pub fn new(
        names: Vec<String>,
        open: impl Fn(&str) -> Result<Arc<dyn Repository>> + Send + Sync + 'a,
    ) -> Self {
        Remotes {
            names,
            open: Box::new(open),
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// The configured remotes, `origin` first, then by name, each opened when first
    /// asked (a `tar://` one as an [`crate::archive::ArchiveSource`]).
    pub fn configured() -> Result<Remotes<'static>> {
        let cfg = crate::config::current()?;
        Ok(Remotes::new(cfg.remote_names(), move |name: &str| {
            crate::storage::open_source(&cfg.remote(Some(name))?).map(Arc::from)
        }))
    }

    /// Remotes already opened, asked in the order given.
    pub fn opened(remotes: Vec<(String, Arc<dyn Repository>)>) -> Remotes<'static> {
        let names = remotes.iter().map(|(n, _)| n.clone()).collect();
        let opened = remotes.into_iter().map(|(n, r)| (n, Ok(r))).collect();
        Remotes {
            names,
            open: Box::new(|name: &str| {
                Err(Error::UnknownRemote {
                    name: name.into(),
                    configured: Vec::new(),
                })
            }),
            opened: Mutex::new(opened),
        }
    }

    /// No remotes at all.
    pub fn none() -> Remotes<'static> {
        Remotes::new(Vec::new(), |name: &str| {
            Err(Error::UnknownRemote {
                name: name.into(),
                configured: Vec::new(),
            })
        })
    }

    /// The remotes' names, in the order they are asked.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The remote `name`, opened on first use. A remote that failed to open keeps
    /// failing with the same message (it is not retried within one process).
    pub fn get(&self, name: &str) -> Result<Arc<dyn Repository>> {
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        let entry = opened
            .entry(name.to_string())
            .or_insert_with(|| (self.open)(name).map_err(|e| e.to_string()));
        entry.clone().map_err(|reason| Error::RemoteUnavailable {
            name: name.to_string(),
            reason,
        })
    }

    /// The first remote (in order) where `reference` (a tag, `tag~N` or a digest)
    /// resolves, with its name and the digest. Remotes that cannot be opened are
    /// skipped (with a warning in the log).
    pub fn resolve(&self, reference: &str) -> Result<Option<(String, Digest)>> {
        for name in &self.names {
            let remote = match self.get(name) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("{e}");
                    continue;
                }
            };
            match resolve(&*remote, reference) {
                Ok((_, d)) => return Ok(Some((name.clone(), d))),
                Err(Error::UnknownReference(_)) => {}
                Err(e @ (Error::InvalidTag { .. } | Error::TagHistoryTooShort { .. })) => {
                    tracing::debug!("remote '{name}': {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// What [`fetch_missing`] pulled from one remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The remote's name.
    pub remote: String,
    /// The requested digests it supplied.
    pub digests: Vec<Digest>,
    /// What was copied.
    pub report: SyncReport,
}

/// The objects among `digests` that `local` does not hold, each once, in order.
pub fn missing(local: &dyn Repository, digests: &[Digest]) -> Result<Vec<Digest>> {
    let mut out: Vec<Digest> = Vec::new();
    for d in digests {
        if !out.contains(d) && !local.has_object(d)? {
            out.push(*d);
        }
    }
    Ok(out)
}

/// Pulls into `local` the closure of every object among `digests` that it lacks, each
/// from the first of `remotes` that holds it, without copying any tag. Nothing is
/// copied unless every missing object was found in some remote; otherwise
/// [`Error::NotInRemotes`] names what is missing and which remotes were asked.
/// Returns what came from each remote (none when nothing was missing).
pub fn fetch_missing(
    local: &LocalRepository,
    remotes: &Remotes<'_>,
    digests: &[Digest],
    progress: &Progress,
) -> Result<Vec<Fetched>> {
    let mut wanted = missing(local, digests)?;
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut plan: Vec<(String, Arc<dyn Repository>, Vec<Digest>)> = Vec::new();
    let mut tried = Vec::new();
    for name in remotes.names() {
        if wanted.is_empty() {
            break;
        }
        let remote = match remotes.get(name) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("{e}");
                tried.push(format!("{name} (could not be opened)"));
                continue;
            }
        };
        tried.push(name.clone());
        let mut here = Vec::new();
        let mut rest = Vec::new();
        for d in wanted {
            if remote.has_object(&d)? {
                here.push(d);
            } else {
                rest.push(d);
            }
        }
        wanted = rest;
        if !here.is_empty() {
            plan.push((name.clone(), remote, here));
        }
    }
    if !wanted.is_empty() {
        return Err(Error::NotInRemotes {
            digests: wanted,
            tried,
        });
    }
    let mut out = Vec::new();
    for (name, remote, digests) in plan {
        let report = match remote.streamed_archive() {
            // One pass over the archive for everything taken from it.
            Some(path) => crate::archive::fetch_closures(local, path, &digests, progress)?,
            None => copy(&*remote, local, &digests, &[], progress)?,
        };
        out.push(Fetched {
            remote: name,
            digests,
            report,
        });
    }
    Ok(out)
}
