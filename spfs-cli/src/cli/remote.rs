//! Remotes: push, pull, and the pulls `spfs run` makes (docs/remotes.md).

use cli_policy::{outln, Report};
use spfs::config::DEFAULT_REMOTE;
use spfs::progress::human_bytes;
use spfs::storage::{LocalRepository, Repository};
use spfs::sync::{copy, fetch_missing, resolve, Remotes, SyncReport};
use spfs::{Digest, Error};

use super::progress::bar;
use super::{Cli, Result};

use cli_policy::open_remote;

/// Resolves REF (a tag, `tag~N`, a digest, or an `a+b` stack) in `repo`: the roots to
/// copy and the tags to set.
pub(super) fn roots_of(
    repo: &dyn Repository,
    reference: &str,
) -> Result<Vec<(Option<String>, Digest)>> {
    match resolve(repo, reference) {
        Ok(r) => Ok(vec![r]),
        Err(Error::UnknownReference(_) | Error::InvalidTag { .. }) if reference.contains('+') => {
            reference
                .split('+')
                .map(|part| resolve(repo, part).map_err(Report::from))
                .collect()
        }
        Err(e) => Err(e.into()),
    }
}

fn transfer(
    src: &dyn Repository,
    dst: &dyn Repository,
    refs: &[String],
    verb: &str,
) -> Result<SyncReport> {
    let mut roots = Vec::new();
    let mut tags = Vec::new();
    for r in refs {
        for (tag, d) in roots_of(src, r)
            .map_err(|e| e.help(format!("'{r}' must name something in {}", src.describe())))?
        {
            roots.push(d);
            if let Some(t) = tag {
                tags.push((t, d));
            }
        }
    }
    let started = std::time::Instant::now();
    let progress = bar(verb);
    let report = copy(src, dst, &roots, &tags, &progress);
    progress.finish();
    let report = report?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{verb}: {} object(s), {} payload(s), {} ({}/s), {} tag(s) in {:.2}s",
        report.objects,
        report.payloads,
        human_bytes(report.bytes),
        human_bytes((report.bytes as f64 / secs.max(1e-3)) as u64),
        report.tags,
        secs
    );
    Ok(report)
}

/// `spfs push REF... [--remote NAME]`.
pub fn push(cli: &Cli, refs: &[String], remote: Option<&str>) -> Result<i32> {
    if let Some(archive) = super::archive::tar_remote(remote)? {
        return super::archive::push(cli, refs, &archive, remote.unwrap_or(DEFAULT_REMOTE));
    }
    let local = cli.open_repo()?;
    let (label, dst) = open_remote(remote, true)?;
    transfer(&local, &*dst, refs, "pushed")?;
    outln!("pushed {} to {label}", refs.join(" "));
    Ok(0)
}

/// `spfs pull REF... [--remote NAME]`.
pub fn pull(cli: &Cli, refs: &[String], remote: Option<&str>) -> Result<i32> {
    if let Some(archive) = super::archive::tar_remote(remote)? {
        return super::archive::pull(cli, refs, &archive, remote.unwrap_or(DEFAULT_REMOTE));
    }
    let local = cli.repo_for_write()?;
    let (label, src) = open_remote(remote, false)?;
    transfer(&*src, &local, refs, "pulled")?;
    outln!("pulled {} from {label}", refs.join(" "));
    Ok(0)
}

/// The stack `spec` names, pulling from the configured remotes (origin first) what
/// the local repository lacks: the objects, not the tags. Parts are resolved locally
/// first, then in `lazy` (the address of the `--payloads-from` remote of a FUSE
/// runtime, opened only if something is not local), then in the remotes; every layer
/// of the stack is then in `repo`, or in `lazy`, which the
/// runtime reads without copying.
pub fn resolve_for_run(
    repo: &LocalRepository,
    spec: &str,
    lazy: Option<&str>,
) -> Result<Vec<Digest>> {
    let remotes = Remotes::configured()?;
    let opened: std::cell::OnceCell<Box<dyn Repository>> = std::cell::OnceCell::new();
    let lazy_remote = || -> Result<Option<&dyn Repository>> {
        let Some(address) = lazy else {
            return Ok(None);
        };
        if opened.get().is_none() {
            let remote =
                spfs::storage::open_remote(&spfs::config::Address::parse(address)?, false)?;
            let _ = opened.set(remote);
        }
        Ok(opened.get().map(|r| &**r))
    };
    let mut names: Vec<(Digest, String)> = Vec::new();
    let stack =
        match repo.resolve_refs(spec) {
            Ok(stack) => stack,
            Err(Error::UnknownReference(_)) => {
                let mut stack = Vec::new();
                for part in spec.split('+') {
                    if let Ok(d) = repo.resolve(part) {
                        stack.push(d);
                        continue;
                    }
                    if let Some(lazy) = lazy_remote()? {
                        match resolve(lazy, part) {
                            Ok((_, d)) => {
                                stack.push(d);
                                continue;
                            }
                            Err(Error::UnknownReference(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    match remotes.resolve(part)? {
                        Some((_, d)) => {
                            names.push((d, part.to_string()));
                            stack.push(d);
                        }
                        None => {
                            return Err(Report::from(Error::UnknownReference(part.to_string()))
                                .help(if remotes.names().is_empty() {
                                    "no remote is configured to pull it from (see 'spfs config')"
                                        .to_string()
                                } else {
                                    format!(
                                        "no configured remote has it either ({})",
                                        remotes.names().join(", ")
                                    )
                                }))
                        }
                    }
                }
                stack
            }
            Err(e) => return Err(e.into()),
        };
    let progress = bar("pulling");
    // What the lazy remote holds is read from it by the runtime, not pulled.
    let mut wanted = Vec::new();
    for d in &stack {
        if repo.has_object(d) {
            continue;
        }
        match lazy_remote()? {
            Some(lazy) if lazy.has_object(d)? => {}
            _ => wanted.push(*d),
        }
    }
    let fetched = fetch_missing(repo, &remotes, &wanted, &progress);
    progress.finish();
    for f in fetched? {
        let what: Vec<String> = f
            .digests
            .iter()
            .map(|d| {
                names
                    .iter()
                    .find(|(n, _)| n == d)
                    .map(|(_, part)| part.clone())
                    .unwrap_or_else(|| d.short())
            })
            .collect();
        eprintln!(
            "pulled {} from {}: {} object(s), {} payload(s), {}",
            what.join(", "),
            f.remote,
            f.report.objects,
            f.report.payloads,
            human_bytes(f.report.bytes)
        );
    }
    Ok(stack)
}
