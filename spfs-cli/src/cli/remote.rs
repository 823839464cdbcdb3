//! Remotes: push, pull, and the pulls `spfs run` makes (docs/remotes.md).

use cli_policy::{outln, Report};
use spfs::config::{Address, DEFAULT_REMOTE};
use spfs::progress::human_bytes;
use spfs::storage::{LocalRepository, Repository};
use spfs::sync::{copy, resolve, SyncReport};
use spfs::{Digest, Error};

use super::progress::bar;
use super::{Cli, Result};

/// Opens the remote a name or address designates (the default remote for `None`).
/// `create` makes a missing `file://` repository (a push target).
pub fn open_remote(name: Option<&str>, create: bool) -> Result<(String, Box<dyn Repository>)> {
    let cfg = spfs::config::current()?;
    let label = name.unwrap_or(DEFAULT_REMOTE).to_string();
    match cfg.remote(name)? {
        Address::File(path) => {
            let repo = if create {
                LocalRepository::open_or_create(&path)?
            } else {
                LocalRepository::open(&path)?
            };
            Ok((label, Box::new(repo)))
        }
        other => Err(Report::new(format!(
            "remote '{label}' ({other}): this kind of remote is not supported yet"
        ))
        .help("use a file:/// remote (a shared directory)")),
    }
}

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
/// the local repository lacks: the objects, not the tags.
pub fn resolve_for_run(repo: &LocalRepository, spec: &str) -> Result<Vec<Digest>> {
    match repo.resolve_refs(spec) {
        Ok(stack) => return Ok(stack),
        Err(Error::UnknownReference(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let cfg = spfs::config::current()?;
    let mut names: Vec<&String> = cfg.remotes.keys().collect();
    names.sort_by_key(|n| (n.as_str() != DEFAULT_REMOTE, n.as_str()));
    let parts: Vec<&str> = spec.split('+').collect();
    let mut stack = Vec::new();
    for part in parts {
        if let Ok(d) = repo.resolve(part) {
            stack.push(d);
            continue;
        }
        let mut found = None;
        for name in &names {
            let Ok((_, remote)) = open_remote(Some(name), false) else {
                continue;
            };
            if let Ok((_, d)) = resolve(&*remote, part) {
                let progress = bar(&format!("pulling {part} from {name}"));
                let r = copy(&*remote, repo, &[d], &[], &progress);
                progress.finish();
                let r = r?;
                eprintln!(
                    "pulled {part} from {name}: {} object(s), {} payload(s), {}",
                    r.objects,
                    r.payloads,
                    human_bytes(r.bytes)
                );
                found = Some(d);
                break;
            }
        }
        match found {
            Some(d) => stack.push(d),
            None => {
                return Err(
                    Report::from(Error::UnknownReference(part.to_string())).help(
                        if names.is_empty() {
                            "no remote is configured to pull it from (see 'spfs config')"
                                .to_string()
                        } else {
                            format!(
                                "no configured remote has it either ({})",
                                names
                                    .iter()
                                    .map(|n| n.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        },
                    ),
                )
            }
        }
    }
    Ok(stack)
}
