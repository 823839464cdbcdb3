//! `spk bosh import|build RELEASE_DIR [PACKAGE...]`: BOSH releases as spk packages.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use cli_policy::outln;

use super::{Cli, CliError};
use crate::bosh::{self, BoshError, BoshOptions, Release, Row, Status};

/// `spk bosh`.
#[derive(Debug, Args)]
pub struct BoshCmd {
    /// What to do.
    #[command(subcommand)]
    pub action: BoshAction,
}

/// `spk bosh` subcommands.
#[derive(Debug, Subcommand)]
pub enum BoshAction {
    /// Check a release, fingerprint its packages and store their sources (src builds).
    Import(BoshArgs),
    /// Import, then compile every package not built yet, in dependency order.
    Build(BoshBuildArgs),
}

/// What to import.
#[derive(Debug, Args)]
pub struct BoshArgs {
    /// The BOSH release directory (holding config/final.yml and packages/)
    pub release: PathBuf,
    /// Only these packages (BOSH names) and their dependencies; all when omitted
    pub packages: Vec<String>,
    /// Text put in front of every spk package name (lowercase letters, digits, dashes)
    #[arg(long, default_value = "")]
    pub prefix: String,
}

/// What to build.
#[derive(Debug, Args)]
pub struct BoshBuildArgs {
    #[command(flatten)]
    pub import: BoshArgs,
    /// Packages compiled at once (default: the number of CPUs)
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
}

fn release_report(e: BoshError) -> CliError {
    let mut r = CliError::new(e.to_string());
    if let BoshError::Release(p) = &e {
        r.details = p.problems.iter().map(|p| p.to_string()).collect();
    }
    r.help = spfs::Help::help(&e);
    r
}

fn status_text(s: &Status, done: &str) -> String {
    match s {
        Status::Done => done.to_string(),
        Status::Unchanged => "unchanged".to_string(),
        Status::Failed { reason, .. } => format!("FAILED: {reason}"),
        Status::Skipped { because } => format!("skipped: dependency {because} failed"),
    }
}

fn table(rows: &[Row], done: &str) {
    let w_name = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(7);
    let w_ident = rows.iter().map(|r| r.ident.len()).max().unwrap_or(0).max(3);
    let deps = |r: &Row| {
        if r.dependencies.is_empty() {
            "-".to_string()
        } else {
            r.dependencies.join(",")
        }
    };
    let w_deps = rows
        .iter()
        .map(|r| deps(r).len())
        .max()
        .unwrap_or(0)
        .max(12);
    outln!(
        "{:w_name$}  {:w_ident$}  {:64}  {:w_deps$}  STATUS",
        "PACKAGE",
        "SPK",
        "FINGERPRINT",
        "DEPENDENCIES"
    );
    for r in rows {
        outln!(
            "{:w_name$}  {:w_ident$}  {:64}  {:w_deps$}  {}",
            r.name,
            r.ident,
            r.fingerprint,
            deps(r),
            status_text(&r.status, done)
        );
    }
}

/// The failures of a table as a report, or `None` when everything worked.
fn failures(rows: &[Row], stage: &str) -> Option<CliError> {
    let failed: Vec<&Row> = rows
        .iter()
        .filter(|r| matches!(r.status, Status::Failed { .. }))
        .collect();
    if failed.is_empty() {
        return None;
    }
    let ok: Vec<&str> = rows
        .iter()
        .filter(|r| matches!(r.status, Status::Done | Status::Unchanged))
        .map(|r| r.name.as_str())
        .collect();
    let mut report = CliError::new(format!(
        "{stage} failed for {} package(s): {}",
        failed.len(),
        failed
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for r in &failed {
        if let Status::Failed { reason, log } = &r.status {
            report
                .details
                .push(format!("{}: {reason}; log: {}", r.name, log.display()));
            for line in bosh::log_tail(log, 10) {
                report.details.push(format!("  | {line}"));
            }
        }
    }
    report.details.push(if ok.is_empty() {
        "no package succeeded".to_string()
    } else {
        format!("succeeded: {}", ok.join(", "))
    });
    report
        .help
        .push("fix the script, then run the command again: what succeeded is not redone".into());
    Some(report)
}

fn load(a: &BoshArgs) -> Result<Release, CliError> {
    if !a.prefix.is_empty()
        && !a
            .prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(CliError::new(format!("invalid prefix '{}'", a.prefix))
            .help("use lowercase letters, digits and dashes, e.g. --prefix bosh-"));
    }
    Release::load(&a.release, &a.packages, &a.prefix)
        .map_err(|p| release_report(BoshError::Release(p)))
}

/// Runs `spk bosh ...`; returns the exit code.
pub fn run(cli: &Cli, cmd: &BoshCmd) -> Result<i32, CliError> {
    spfs::signals::install();
    match &cmd.action {
        BoshAction::Import(a) => {
            let release = load(a)?;
            let repo = super::commands::repo_for_write(cli)?;
            let rows = bosh::import(&repo, &release).map_err(release_report)?;
            table(&rows, "imported");
            match failures(&rows, "pre_packaging") {
                Some(r) => Err(r),
                None => Ok(0),
            }
        }
        BoshAction::Build(a) => {
            let release = load(&a.import)?;
            let repo = super::commands::repo_for_write(cli)?;
            let mut opts = BoshOptions::default();
            if let Some(j) = a.jobs {
                opts.jobs = j.max(1);
            }
            let (imported, built) = bosh::build(&repo, &release, &opts).map_err(release_report)?;
            table(&built, "built");
            match failures(&imported, "pre_packaging").or_else(|| failures(&built, "packaging")) {
                Some(r) => Err(r),
                None => Ok(0),
            }
        }
    }
}
