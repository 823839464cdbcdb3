//! Commands that write: commit, tag, untag, render; and check.

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};

use cli_policy::{outln, Report};
use spfs::commit::{commit_layer, store_platform, CommitOptions};
use spfs::progress::human_bytes;
use spfs::render::{render_to, Masks, RenderStrategy};
use spfs::storage::{LocalRepository, Repository};
use spfs::{Digest, Error};

use super::progress::bar;
use super::{invalid, Cli, Result};

#[derive(Subcommand)]
pub enum CommitCmd {
    /// Store a directory as a layer
    Layer {
        /// The directory to store [default: the current runtime's edits]
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// Tag the new layer (repeatable)
        #[arg(short, long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Annotate the layer with KEY=VALUE (repeatable)
        #[arg(long = "annotation", value_name = "KEY=VALUE")]
        annotations: Vec<String>,
        /// Skip sockets, fifos and devices with a warning instead of failing
        #[arg(long)]
        skip_special: bool,
    },
    /// Store a stack of references (bottom first, joined by '+') as a platform
    Platform {
        /// The layers, like base+tools+app [default: the current runtime's layers and edits]
        #[arg(long = "ref", value_name = "REFS")]
        reference: Option<String>,
        /// Tag the new platform (repeatable)
        #[arg(short, long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Strategy {
    /// Hard links to the store's read-only payloads
    Hardlink,
    /// Independent copies with exact modes
    Copy,
}

pub fn commit(cli: &Cli, cmd: &CommitCmd) -> Result<i32> {
    let repo = cli.repo_for_write()?;
    // From the first look at stored content to the tag: `spfs clean` waits.
    let _guard = repo.write_guard()?;
    match cmd {
        CommitCmd::Layer {
            path,
            tags,
            annotations,
            skip_special,
        } => {
            for t in tags {
                spfs::storage::validate_tag_name(t)?;
            }
            let annotations = annotations
                .iter()
                .map(|a| {
                    a.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| invalid(format!("annotation '{a}' is not KEY=VALUE")))
                })
                .collect::<Result<Vec<_>>>()?;
            let opts = CommitOptions {
                skip_special: *skip_special,
                overlay_upper: false,
                hash_only: false,
                lower_modes_stripped: false,
                take_files: false,
            };
            let progress = bar("committing");
            let started = std::time::Instant::now();
            let layer = match path {
                Some(path) => commit_layer(&repo, path, &opts, &annotations, &progress),
                None => spfs::runtime::record::current(&repo).and_then(|rt| {
                    spfs::runtime::edits::commit_layer(&repo, &rt, &annotations, &progress)
                }),
            };
            progress.finish();
            let layer = layer?;
            finish_commit(&repo, "layer", &layer, tags)?;
            let manifest = repo.read_manifest(&layer)?;
            let (files, dirs, links, _) = manifest.counts();
            eprintln!(
                "committed layer {} ({files} files, {dirs} dirs, {links} symlinks, {}) in {:.2?}",
                layer.short(),
                human_bytes(manifest.total_size()),
                started.elapsed()
            );
            Ok(0)
        }
        CommitCmd::Platform { reference, tags } => {
            for t in tags {
                spfs::storage::validate_tag_name(t)?;
            }
            let digest = match reference {
                Some(reference) => store_platform(&repo, &repo.resolve_refs(reference)?)?,
                None => {
                    let rt = spfs::runtime::record::current(&repo)?;
                    let progress = bar("committing");
                    let d = spfs::runtime::edits::commit_platform(&repo, &rt, &progress);
                    progress.finish();
                    d?
                }
            };
            finish_commit(&repo, "platform", &digest, tags)?;
            Ok(0)
        }
    }
}

fn finish_commit(
    repo: &LocalRepository,
    kind: &str,
    digest: &Digest,
    tags: &[String],
) -> Result<()> {
    let pairs: Vec<_> = tags.iter().map(|t| (t.clone(), *digest)).collect();
    if pairs.is_empty() {
        repo.sync()?;
    } else {
        repo.push_tags(&pairs)?;
        for t in tags {
            eprintln!("tagged {kind} {} as {t}", digest.short());
        }
    }
    outln!("{digest}");
    Ok(())
}

pub fn tag(repo: &LocalRepository, reference: &str, names: &[String]) -> Result<i32> {
    let _guard = repo.write_guard()?;
    let digests = repo.resolve_refs(reference)?;
    let target = match digests.as_slice() {
        [one] => *one,
        [] => return Err(invalid("nothing to tag: the reference is empty")),
        // Tagging a stack records it as a platform.
        _ => store_platform(repo, &digests)?,
    };
    let pairs: Vec<_> = names.iter().map(|n| (n.clone(), target)).collect();
    repo.push_tags(&pairs)?;
    for n in names {
        eprintln!("tagged {} as {n}", target.short());
    }
    Ok(0)
}

pub fn untag(repo: &LocalRepository, name: &str, all: bool) -> Result<i32> {
    if all {
        if name.contains('~') {
            return Err(invalid(format!(
                "'{name}': --all removes a whole tag, not one version"
            ))
            .help("give NAME without ~N"));
        }
        repo.remove_tag(name)?;
        eprintln!("removed tag {name} and its history");
        return Ok(0);
    }
    let (base, version) = spfs::storage::parse_tag_version(name)?;
    repo.remove_tag_version(base, version)?;
    eprintln!("removed {base}~{version}");
    Ok(0)
}

pub fn render(
    repo: &LocalRepository,
    reference: &str,
    dir: &Path,
    strategy: Strategy,
) -> Result<i32> {
    let manifest = repo.merged_manifest(reference)?;
    let strategy = match strategy {
        Strategy::Hardlink => RenderStrategy::HardLink,
        Strategy::Copy => RenderStrategy::Copy,
    };
    let progress = bar("rendering");
    let r = render_to(repo, &manifest, dir, strategy, Masks::Skip, &progress);
    progress.finish();
    if let Err(e) = r {
        let interrupted = matches!(e, Error::Interrupted);
        let report = Report::from(e);
        if interrupted {
            return Err(report.help(format!("{} is incomplete: remove it", dir.display())));
        }
        return Err(report);
    }
    eprintln!("rendered {reference} into {}", dir.display());
    Ok(0)
}

/// `spfs check [REF]`: verifies the local repository.
pub fn check(repo: &LocalRepository, reference: Option<&str>) -> Result<i32> {
    let roots = reference.map(|r| repo.resolve_refs(r)).transpose()?;
    check_store(repo, roots, None)
}

/// `spfs check [REF] --remote NAME`: verifies a remote (`file://`, `s3://`) through
/// the storage traits, as the local repository is.
pub fn check_remote(reference: Option<&str>, remote: &str) -> Result<i32> {
    if let spfs::config::Address::Tar(path) = spfs::config::current()?.remote(Some(remote))? {
        return Err(Report::new(format!(
            "spfs check --remote verifies repositories (file://, s3://), and '{remote}' is the archive {}",
            path.display()
        ))
        .help("'spfs import FILE' verifies every object and payload of an archive before it stores anything"));
    }
    let (label, repo) = cli_policy::open_remote(Some(remote), false)?;
    let roots = match reference {
        Some(r) => Some(
            super::remote::roots_of(&*repo, r)
                .map_err(|e| e.help(format!("'{r}' must name something in {label}")))?
                .into_iter()
                .map(|(_, d)| d)
                .collect(),
        ),
        None => None,
    };
    check_store(&*repo, roots, Some(&label))
}

/// Checks `repo` and reports: problems on stdout, a summary on stderr, exit 1 with
/// the number of problems if there are any. `remote` names a remote being checked.
fn check_store(
    repo: &dyn Repository,
    roots: Option<Vec<Digest>>,
    remote: Option<&str>,
) -> Result<i32> {
    let progress = bar("checking");
    let report = spfs::check::check(repo, roots, &progress);
    progress.finish();
    let report = report?;
    for p in &report.problems {
        let tags = if p.tags.is_empty() {
            String::new()
        } else {
            format!(" (reached by {})", p.tags.join(", "))
        };
        let kind = p.kind.map(|k| k.name()).unwrap_or("object");
        outln!("{kind} {}: {}{tags}", p.digest, p.issue);
    }
    // "remote 'origin' (s3://b/p)", or "remote 's3://b/p'" when given by address.
    let named = |label: &str| match repo.describe() {
        d if d == label || format!("file://{d}") == label => format!("remote '{label}'"),
        d => format!("remote '{label}' ({d})"),
    };
    let place = remote
        .map(|l| format!(" in {}", named(l)))
        .unwrap_or_default();
    eprintln!(
        "checked {} objects and {} payloads ({}){place}: {} problem(s)",
        report.objects,
        report.payloads,
        human_bytes(report.bytes),
        report.problems.len()
    );
    if report.problems.is_empty() {
        return Ok(0);
    }
    let n = report.problems.len();
    Err(match remote {
        None => Report::new(format!(
            "the repository has {n} problem(s), listed on stdout"
        ))
        .help("restore the listed digests from another repository, or remove the tags that reach them"),
        Some(label) => Report::new(format!(
            "{} has {n} problem(s), listed on stdout",
            named(label)
        ))
        .help("restore the listed digests there from a good copy (for a file:// remote: 'spfs --repo DIR check --repair --remote OTHER'), or remove the tags that reach them"),
    })
}

/// `spfs check --repair [REF] [--remote NAME]`: restores what is missing or corrupt
/// from a remote, then reports what is still wrong.
pub fn repair(
    repo: &LocalRepository,
    reference: Option<&str>,
    remote: Option<&str>,
) -> Result<i32> {
    let roots = reference.map(|r| repo.resolve_refs(r)).transpose()?;
    let (label, source) = cli_policy::open_source(remote)?;
    let progress = bar("repairing");
    let report = spfs::repair::repair(repo, roots, &*source, &progress);
    progress.finish();
    let report = report?;
    for (d, what, issue) in &report.repaired {
        outln!("repaired {what} {d} ({issue}) from {label}");
    }
    for (d, why) in &report.failed {
        outln!("could not repair {d}: {why}");
    }
    for p in &report.check.problems {
        let kind = p.kind.map(|k| k.name()).unwrap_or("object");
        outln!("{kind} {}: {}", p.digest, p.issue);
    }
    eprintln!(
        "repaired {} digest(s) from {label} ({}); {} problem(s) remain",
        report.repaired.len(),
        human_bytes(report.bytes),
        report.check.problems.len()
    );
    if report.check.problems.is_empty() {
        Ok(0)
    } else {
        Err(Report::new(format!(
            "the repository still has {} problem(s), listed on stdout",
            report.check.problems.len()
        ))
        .help(format!("what could not be restored from {label} is listed above: repair from another remote with --remote, or remove the tags that reach them")))
    }
}
