//! `spk index`: the package index for admins (docs/spk-storage.md).

use clap::Args;

use cli_policy::outln;

use super::commands::open_repo;
use super::{Cli, CliError, CliResult};
use crate::storage::IndexState;

/// `spk index`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("action").required(true))]
pub struct IndexCmd {
    /// Rebuild every package's index from the tags (they are rebuilt on demand anyway).
    #[arg(long, group = "action")]
    pub rebuild: bool,
    /// Compare every package's index with the tags; fails if an index that looks
    /// current disagrees with them.
    #[arg(long, group = "action")]
    pub check: bool,
}

pub fn index(cli: &Cli, a: &IndexCmd) -> CliResult {
    let repo = open_repo(cli)?;
    if a.rebuild {
        let start = std::time::Instant::now();
        let n = repo.rebuild_index()?;
        outln!(
            "indexed {n} packages in {:.2} s",
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let report = repo.check_index()?;
    let (mut fresh, mut missing, mut stale) = (0, 0, 0);
    let mut problems = Vec::new();
    for (name, state) in &report.packages {
        match state {
            IndexState::Fresh => fresh += 1,
            IndexState::Missing => missing += 1,
            IndexState::Stale => stale += 1,
            IndexState::Unreadable(e) => {
                outln!("{name}: unreadable index ({e}); rebuilt on next read");
                stale += 1;
            }
            IndexState::Wrong(diffs) => {
                for d in diffs {
                    problems.push(d.clone());
                }
            }
        }
    }
    outln!(
        "{} packages: {fresh} indexed and current, {stale} stale or unreadable (refreshed on next read), {missing} not indexed yet",
        report.packages.len()
    );
    for o in &report.orphans {
        outln!("index of a removed package: {}", o.display());
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError {
        message: format!(
            "{} index entries disagree with the tags although the index looks current",
            problems.len()
        ),
        details: problems,
        help: vec!["run 'spk index --rebuild' to rebuild every index from the tags".into()],
    })
}
