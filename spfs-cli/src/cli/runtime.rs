//! Runtime commands: run, shell, edit, reset, runtime list/info/rm/prune.

use std::ffi::OsString;

use clap::{Args, Subcommand};

use cli_policy::outln;
use spfs::runtime::edits;
use spfs::runtime::monitor::RunOptions;
use spfs::runtime::record::{self, Backend};
use spfs::runtime::spawn::RuntimeCommand;
use spfs::runtime::startup::Program;
use spfs::storage::LocalRepository;

use super::{invalid, Cli, Result};

/// Options shared by `run` and `shell`.
#[derive(Args, Clone)]
pub struct RuntimeArgs {
    /// Lower-directory backend: render (hard-link renders) or fuse (served from the
    /// repository) [default: runtime.backend of the configuration, $SPFS_BACKEND, or render]
    #[arg(long, value_name = "BACKEND")]
    backend: Option<String>,
    /// Make /spfs writable (the default for an empty stack)
    #[arg(long, conflicts_with = "no_edit")]
    edit: bool,
    /// Keep /spfs read-only even for an empty stack
    #[arg(long)]
    no_edit: bool,
    /// Size limit of the scratch tmpfs that holds edits, like 2G or 50%
    #[arg(long, value_name = "SIZE")]
    size: Option<String>,
    /// Keep the runtime's edits on disk after it exits, for --rerun
    #[arg(long)]
    keep_runtime: bool,
    /// Run again in a kept runtime, with its layers and edits
    #[arg(long, value_name = "NAME", conflicts_with = "reference")]
    rerun: Option<String>,
    /// Name the runtime (default: generated)
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// With --backend fuse: fetch payloads missing locally on first open (verified, then
    /// kept locally) from this remote, and read the stack's objects missing locally from
    /// it (verified, never stored): a configured name, an address (file:///x,
    /// s3://bucket/prefix) or a repository directory
    #[arg(long, value_name = "REMOTE")]
    payloads_from: Option<String>,
    /// Layers to stack, bottom first: REF[+REF...]; '-' or nothing for an empty /spfs
    reference: Option<String>,
}

#[derive(Subcommand)]
pub enum RuntimeCmd {
    /// List runtimes with their state
    List,
    /// Show one runtime's record
    Info {
        /// Runtime name
        name: String,
    },
    /// Remove a runtime's record and kept edits
    Rm {
        /// Runtime name
        name: String,
        /// Remove even if it appears to be running
        #[arg(long)]
        force: bool,
    },
    /// Remove the records of runtimes that are no longer running (kept ones stay)
    Prune,
    /// List the image views kept for later runtimes on this host (root's FUSE-backend
    /// runtimes; kept $SPFS_VIEW_KEEP seconds after last use, default 600)
    Views {
        /// Drop them now (those of every repository with --all-repos)
        #[arg(long)]
        drop: bool,
        /// List or drop the views of every repository, not only this one
        #[arg(long)]
        all_repos: bool,
    },
}

/// `spfs run` / `spfs shell`: never returns before the runtime ends.
pub fn run(cli: &Cli, args: &RuntimeArgs, command: &[OsString]) -> Result<i32> {
    let backend = match &args.backend {
        Some(b) => Backend::parse(b)?,
        None => Backend::parse(&spfs::config::current()?.backend.value)?,
    };
    let repo = cli.repo_for_write()?;
    if args.payloads_from.is_some() && backend != Backend::Fuse {
        return Err(invalid(
            "--payloads-from needs --backend fuse: renders need every payload locally first",
        ));
    }
    let payloads_from = match &args.payloads_from {
        Some(r) => Some(payloads_remote(r)?),
        None => None,
    };
    let stack = match &args.reference {
        Some(r) if args.rerun.is_none() => {
            super::remote::resolve_for_run(&repo, r, payloads_from.as_deref())?
        }
        _ => Vec::new(),
    };
    let edit = match (args.edit, args.no_edit) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let program = if command.is_empty() {
        Program::Shell
    } else {
        Program::Command(command.to_vec())
    };
    let mut options = RunOptions::new(stack, program);
    options.payloads_from = payloads_from;
    options.backend = backend;
    options.edit = edit;
    options.tmpfs_size = args.size.clone();
    options.keep = args.keep_runtime;
    options.rerun = args.rerun.clone();
    options.name = args.name.clone();
    Ok(RuntimeCommand::new(&repo, options).status()?)
}

pub fn edit(repo: &LocalRepository, off: bool) -> Result<i32> {
    let rec = record::current(repo)?;
    edits::set_editable(repo, &rec, !off)?;
    eprintln!(
        "/spfs is now {}",
        if off { "read-only" } else { "editable" }
    );
    Ok(0)
}

pub fn reset(repo: &LocalRepository, paths: &[String]) -> Result<i32> {
    let rec = record::current(repo)?;
    edits::reset(repo, &rec, paths)?;
    if paths.is_empty() {
        eprintln!("dropped all edits");
    } else {
        eprintln!("dropped edits under {}", paths.join(", "));
    }
    Ok(0)
}

pub fn runtime(open: impl Fn() -> Result<LocalRepository>, cmd: &RuntimeCmd) -> Result<i32> {
    match cmd {
        RuntimeCmd::Views { drop, all_repos } => {
            let repo = if *all_repos { None } else { Some(open()?) };
            views(repo.as_ref(), *drop)
        }
        RuntimeCmd::List => {
            let repo = &open()?;
            for r in record::list(repo)? {
                let state = r.state().name();
                outln!(
                    "{:<16} {:<8} {:<6} {:<8} {} layer(s)",
                    r.name,
                    state,
                    r.backend.name(),
                    if r.editable { "editable" } else { "ro" },
                    r.stack.len()
                );
            }
            Ok(0)
        }
        RuntimeCmd::Info { name } => {
            let repo = &open()?;
            let r = record::load(repo, name)?;
            outln!("name:       {}", r.name);
            outln!("running:    {}", r.is_alive());
            outln!("pid:        {}", r.pid);
            outln!("host:       {}", r.host);
            outln!("backend:    {}", r.backend.name());
            outln!("editable:   {}", r.editable);
            outln!("kept:       {}", r.keep);
            outln!("upper:      {}", r.upper.display());
            if let Some(a) = &r.payloads_from {
                outln!("payloads:   {a} (lazy)");
            }
            for d in &r.stack {
                outln!("layer:      {d}");
            }
            Ok(0)
        }
        RuntimeCmd::Rm { name, force } => {
            let repo = &open()?;
            let r = record::load(repo, name)?;
            if r.is_alive() && !force {
                return Err(
                    invalid(format!("runtime '{name}' is running (pid {})", r.pid))
                        .help("stop it first, or pass --force"),
                );
            }
            record::remove(repo, name)?;
            eprintln!("removed runtime {name}");
            Ok(0)
        }
        RuntimeCmd::Prune => {
            let repo = &open()?;
            let n = record::prune(repo)?;
            eprintln!("removed {n} dead runtime record(s)");
            Ok(0)
        }
    }
}

/// `spfs runtime views`: the image views kept on this host, of `repo` (or of every
/// repository); `drop`: drop them.
fn views(repo: Option<&LocalRepository>, drop: bool) -> Result<i32> {
    use spfs::runtime::image::keeper;
    let as_root = |e: keeper::KeeperError| invalid(e.to_string()).help("run it as root");
    if drop {
        let n = keeper::drop_views(repo).map_err(as_root)?;
        eprintln!("dropped {n} kept view(s)");
        return Ok(0);
    }
    let Some((pid, kept)) = keeper::list().map_err(as_root)? else {
        eprintln!("no view keeper runs ({})", keeper::socket_path().display());
        return Ok(0);
    };
    eprintln!(
        "view keeper: pid {pid}, {}",
        keeper::socket_path().display()
    );
    let Some(prefix) = keeper::repo_prefix(repo) else {
        return Ok(0);
    };
    for v in kept.iter().filter(|v| v.id.starts_with(&prefix)) {
        outln!("{}  idle {:>5}s  {}", v.id, v.idle, v.repo.display());
    }
    Ok(0)
}

/// The address `--payloads-from` designates: an address as given, an existing directory
/// as `file://` (made absolute), otherwise a configured remote's name.
fn payloads_remote(given: &str) -> Result<String> {
    if given.contains("://") {
        return Ok(spfs::config::Address::parse(given)?.to_full_string());
    }
    let path = std::path::Path::new(given);
    if path.is_dir() {
        let abs = std::path::absolute(path).map_err(|e| spfs::Error::io("resolving", path, e))?;
        return Ok(spfs::config::Address::File(abs).to_string());
    }
    Ok(spfs::config::current()?
        .remote(Some(given))?
        .to_full_string())
}
