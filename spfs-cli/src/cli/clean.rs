//! `spfs clean`: garbage collection (docs/gc.md).

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use cli_policy::{outln, Report};
use spfs::clean::{clean as run_clean, parse_duration, CleanOptions, CleanReport, PruneRules};
use spfs::progress::human_bytes;
use spfs::storage::LocalRepository;

use super::Result;

#[derive(Args)]
pub struct CleanArgs {
    /// Only report what would be removed
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation (needed when stdin is not a terminal)
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    /// Keep anything written or reused more recently than this (like 30s, 15m, 2h, 0)
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    grace: String,
    /// Drop tag versions whose target a newer version of the tag also has
    #[arg(long)]
    prune_repeated: bool,
    /// Drop tag versions older than AGE (like 30d, 12h)
    #[arg(long, value_name = "AGE")]
    prune_if_older_than: Option<String>,
    /// Keep tag versions newer than AGE, whatever the prune rules say
    #[arg(long, value_name = "AGE")]
    keep_if_newer_than: Option<String>,
    /// Drop tag versions beyond the N newest
    #[arg(long, value_name = "N")]
    prune_if_more_than: Option<usize>,
    /// Keep the N newest versions of each tag, whatever the prune rules say
    #[arg(long, value_name = "N")]
    keep_if_less_than: Option<usize>,
    /// Clean this file:// remote (a configured name or an address) instead of the local repository
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
}

/// The repository `spfs clean` collects: the local one, or with `--remote` a
/// `file://` remote (a repository directory, collected by the same rules, under its
/// own lock). S3 and archives are refused (docs/gc.md says why).
pub fn target(
    local: impl FnOnce() -> Result<LocalRepository>,
    args: &CleanArgs,
) -> Result<LocalRepository> {
    let Some(name) = args.remote.as_deref() else {
        return local();
    };
    let address = spfs::config::current()?.remote(Some(name))?;
    match &address {
        spfs::config::Address::File(path) => LocalRepository::open(path)
            .map_err(|e| Report::from(e).help(format!("remote '{name}' is {address}"))),
        spfs::config::Address::S3 { .. } => Err(Report::new(format!(
            "spfs clean does not collect S3 remotes (remote '{name}' is {address})"
        ))
        .help("writers to S3 hold no lock clean could wait for, and a reused object's time is not refreshed there, so nothing could be deleted safely: see docs/gc.md")),
        spfs::config::Address::Tar(_) => Err(Report::new(format!(
            "spfs clean does not collect archives (remote '{name}' is {address})"
        ))
        .help("write a smaller archive with 'spfs export REF... -o FILE' instead")),
    }
}

fn age(flag: &str, v: &Option<String>) -> Result<Option<std::time::Duration>> {
    v.as_deref()
        .map(|s| parse_duration(s).map_err(|e| Report::from(e).help(format!("check {flag}"))))
        .transpose()
}

pub fn clean(repo: &LocalRepository, args: &CleanArgs) -> Result<i32> {
    let opts = CleanOptions {
        grace: parse_duration(&args.grace).map_err(|e| Report::from(e).help("check --grace"))?,
        dry_run: true,
        prune: PruneRules {
            prune_repeated: args.prune_repeated,
            prune_if_older_than: age("--prune-if-older-than", &args.prune_if_older_than)?,
            keep_if_newer_than: age("--keep-if-newer-than", &args.keep_if_newer_than)?,
            prune_if_more_than: args.prune_if_more_than,
            keep_if_less_than: args.keep_if_less_than,
        },
    };
    if args.dry_run {
        let report = run_clean(repo, &opts)?;
        print_report(&report, "would remove");
        return Ok(0);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Report::new(
                "spfs clean deletes data and stdin is not a terminal to confirm on",
            )
            .help("pass -y to clean without asking, or --dry-run to see what would go"));
        }
        let preview = run_clean(repo, &opts)?;
        print_report(&preview, "would remove");
        if (
            preview.objects,
            preview.payloads,
            preview.renders,
            preview.proxies,
            preview.temporaries,
            preview.tag_versions,
        ) == (0, 0, 0, 0, 0, 0)
        {
            return Ok(0);
        }
        eprint!("remove these? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("nothing removed");
            return Ok(1);
        }
    }
    let started = std::time::Instant::now();
    let report = run_clean(
        repo,
        &CleanOptions {
            dry_run: false,
            ..opts
        },
    )?;
    print_report(&report, "removed");
    eprintln!(
        "cleaned {} in {:.2?}",
        repo.root().display(),
        started.elapsed()
    );
    Ok(0)
}

fn print_report(r: &CleanReport, verb: &str) {
    outln!(
        "{verb} {} object(s), {} payload(s), {} ({} render(s), {} proxy file(s), {} temporary file(s), {} tag version(s)); {} kept",
        r.objects,
        r.payloads,
        human_bytes(r.bytes),
        r.renders,
        r.proxies,
        r.temporaries,
        r.tag_versions,
        r.kept
    );
    if r.views > 0 {
        outln!("dropped {} kept view(s) of this repository", r.views);
    }
    if r.missing > 0 {
        eprintln!(
            "warning: {} referenced digest(s) are missing; run 'spfs check'",
            r.missing
        );
    }
}
