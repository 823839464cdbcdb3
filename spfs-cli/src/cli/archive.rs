//! Archives: `spfs export`, `spfs import`, and push/pull to `tar://` remotes
//! (docs/remotes.md, "Archives").

use std::path::{Path, PathBuf};

use cli_policy::{outln, Report};
use spfs::archive::ArchiveReport;
use spfs::config::Address;
use spfs::progress::human_bytes;
use spfs::storage::Repository;
use spfs::Digest;

use super::progress::bar;
use super::{Cli, Result};

/// The archive path when the remote a name or address designates is a `tar://` one.
pub fn tar_remote(name: Option<&str>) -> Result<Option<PathBuf>> {
    let cfg = spfs::config::current()?;
    Ok(match cfg.remote(name)? {
        Address::Tar(path) => Some(path),
        _ => None,
    })
}

fn summary(verb: &str, r: &ArchiveReport, started: std::time::Instant) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{verb}: {} object(s), {} payload(s), {} ({}/s), {} tag(s) in {:.2}s",
        r.objects,
        r.payloads,
        human_bytes(r.bytes),
        human_bytes((r.bytes as f64 / secs.max(1e-3)) as u64),
        r.tags,
        secs
    );
}

/// Tags to set: (name, target).
type Tags = Vec<(String, Digest)>;

/// Roots and tags of REFs in `repo`.
fn roots(repo: &dyn Repository, refs: &[String]) -> Result<(Vec<Digest>, Tags)> {
    let mut roots = Vec::new();
    let mut tags = Vec::new();
    for r in refs {
        for (tag, d) in super::remote::roots_of(repo, r)
            .map_err(|e| e.help(format!("'{r}' must name something in {}", repo.describe())))?
        {
            roots.push(d);
            if let Some(t) = tag {
                tags.push((t, d));
            }
        }
    }
    Ok((roots, tags))
}

fn write_archive(cli: &Cli, refs: &[String], out: &Path, merge: bool, verb: &str) -> Result<()> {
    let local = cli.open_repo()?;
    let (roots, tags) = roots(&local, refs)?;
    let started = std::time::Instant::now();
    let progress = bar(verb);
    let r = spfs::archive::export(&local, &roots, &tags, out, merge, &progress);
    progress.finish();
    summary(verb, &r?, started);
    Ok(())
}

fn read_archive(cli: &Cli, archive: &Path, only: Option<&[String]>, verb: &str) -> Result<()> {
    let local = cli.repo_for_write()?;
    let started = std::time::Instant::now();
    let progress = bar(verb);
    let r = spfs::archive::import(&local, archive, only, &progress);
    progress.finish();
    summary(verb, &r?, started);
    Ok(())
}

/// `spfs export REF... -o FILE`.
pub fn export(cli: &Cli, refs: &[String], out: &Path) -> Result<i32> {
    write_archive(cli, refs, out, false, "exported")?;
    outln!("exported {} to {}", refs.join(" "), out.display());
    Ok(0)
}

/// `spfs import FILE`.
pub fn import(cli: &Cli, archive: &Path) -> Result<i32> {
    read_archive(cli, archive, None, "imported")?;
    outln!("imported {}", archive.display());
    Ok(0)
}

/// `spfs push REF... --remote tar:///x.tar.zst`: an export merged with what the
/// archive holds.
pub fn push(cli: &Cli, refs: &[String], archive: &Path, label: &str) -> Result<i32> {
    write_archive(cli, refs, archive, true, "pushed")?;
    outln!("pushed {} to {label}", refs.join(" "));
    Ok(0)
}

/// `spfs pull REF... --remote tar:///x.tar.zst`: an import of the closures of REFs.
pub fn pull(cli: &Cli, refs: &[String], archive: &Path, label: &str) -> Result<i32> {
    if !archive.is_file() {
        return Err(Report::new(format!(
            "remote '{label}': no archive at {}",
            archive.display()
        ))
        .help("push to it first, or check the remote's address with 'spfs config'"));
    }
    let parts: Vec<String> = refs
        .iter()
        .flat_map(|r| r.split('+').map(String::from))
        .collect();
    read_archive(cli, archive, Some(&parts), "pulled")?;
    outln!("pulled {} from {label}", refs.join(" "));
    Ok(0)
}
