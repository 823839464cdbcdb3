//! Command-line interface of `spfs`.

mod archive;
mod clean;
mod inspect;
mod progress;
mod remote;
mod runtime;
mod store;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use cli_policy::{outln, Report};
use spfs::storage::LocalRepository;

/// Result of a command: its exit code, or the report of its failure.
type Result<T, E = Report> = std::result::Result<T, E>;

/// A content-addressed filesystem store and isolated /spfs runtimes.
#[derive(Parser)]
#[command(name = "spfs", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Repository directory [default: $SPFS_ROOT, storage.root of the configuration, or ~/.local/share/spfs]
    #[arg(long, global = true, value_name = "PATH")]
    repo: Option<PathBuf>,

    /// Show more detail (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository (at DIR, or at the configured location)
    Init {
        /// Where to create it
        dir: Option<PathBuf>,
    },
    /// Print the version
    Version,
    /// Store a directory as a layer, or a stack of references as a platform
    #[command(subcommand)]
    Commit(store::CommitCmd),
    /// Point one or more tags at a reference
    Tag {
        /// What the tags should point at
        reference: String,
        /// Tag names, like org/name
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove a tag version (NAME or NAME~N), or a whole tag with --all
    Untag {
        /// NAME (the current version), NAME~N (one older version)
        name: String,
        /// Remove the tag and its whole history
        #[arg(long)]
        all: bool,
    },
    /// Show a tag's history, newest first
    Log {
        /// The tag name
        name: String,
    },
    /// List tags, optionally under a prefix
    Tags {
        /// Only tags under this prefix
        prefix: Option<String>,
    },
    /// List the contents of a directory in a reference
    Ls {
        /// Layer, platform or manifest reference (a+b stacks merge)
        reference: String,
        /// Directory inside it
        path: Option<String>,
        /// Long listing: mode, size and digest
        #[arg(short, long)]
        long: bool,
        /// Recurse into subdirectories
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Write one file of a reference to stdout
    Read {
        /// Layer, platform, manifest or blob reference
        reference: String,
        /// File inside it (not needed for a blob)
        path: Option<String>,
    },
    /// Describe an object: kind, digest, size, children, tags
    Info {
        /// Any reference
        reference: String,
    },
    /// Show what changed between two references, or the current runtime's edits
    Diff {
        /// The old side
        #[arg(requires = "to")]
        from: Option<String>,
        /// The new side
        to: Option<String>,
    },
    /// Materialize a reference as a directory
    Render {
        /// Layer, platform or manifest reference (a+b stacks merge)
        reference: String,
        /// Target directory (must be missing or empty)
        dir: PathBuf,
        /// hardlink: share the store's read-only files; copy: independent, exact modes
        #[arg(long, value_enum, default_value_t = store::Strategy::Hardlink)]
        strategy: store::Strategy,
    },
    /// Run a command in a new runtime: /spfs shows REF's layers, private to it
    #[command(after_help = "Example: spfs run org/python+org/tools -- python3 script.py")]
    Run {
        #[command(flatten)]
        args: runtime::RuntimeArgs,
        /// The command and its arguments (after --); the user's shell when omitted
        #[arg(last = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// Start an interactive shell in a new runtime
    Shell {
        #[command(flatten)]
        args: runtime::RuntimeArgs,
    },
    /// Make the current runtime's /spfs writable (or read-only with --off)
    Edit {
        /// Make /spfs read-only again
        #[arg(long)]
        off: bool,
    },
    /// Drop the current runtime's edits (all, or under the given paths)
    Reset {
        /// Paths inside /spfs
        paths: Vec<String>,
    },
    /// Inspect and clean up runtime records
    #[command(subcommand)]
    Runtime(runtime::RuntimeCmd),
    /// Remove what no tag, runtime or recent write needs (objects, payloads, renders)
    #[command(
        after_help = "Example: spfs clean --prune-if-older-than 30d --keep-if-less-than 5 -y"
    )]
    Clean(clean::CleanArgs),
    /// Show the effective configuration and where each value came from
    Config,
    /// Copy references (with their tags and everything they need) to a remote
    Push {
        /// Tags, digests or stacks (a+b)
        #[arg(required = true)]
        refs: Vec<String>,
        /// Remote name or address (file:///path, tar:///path.tar.zst) [default: origin]
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
    },
    /// Copy references (with their tags and everything they need) from a remote
    Pull {
        /// Tags, digests or stacks (a+b)
        #[arg(required = true)]
        refs: Vec<String>,
        /// Remote name or address (file:///path, tar:///path.tar.zst) [default: origin]
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
    },
    /// Verify objects, payloads and tags (all, or the closure of REF), locally or in a remote
    #[command(
        after_help = "Examples:\n  spfs check                       the local repository\n  spfs check --remote origin       a remote (file://, s3://)\n  spfs check --repair --remote origin   restore the local repository from origin"
    )]
    Check {
        /// Only check what this reference needs
        reference: Option<String>,
        /// Fetch missing or corrupt objects and payloads of the local repository again from a remote
        #[arg(long)]
        repair: bool,
        /// Remote name or address: the one to check, or with --repair the one to repair from [default with --repair: origin]
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
    },
    /// Write references (with their tags and everything they need) to a .tar.zst archive
    #[command(after_help = "Example: spfs export org/app org/lib -o app.tar.zst")]
    Export {
        /// Tags, digests or stacks (a+b)
        #[arg(required = true)]
        refs: Vec<String>,
        /// The archive to write (replaced when complete)
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Store everything an archive written by 'spfs export' holds, with its tags
    Import {
        /// The archive
        file: PathBuf,
    },
}

impl Cli {
    fn repo_path(&self) -> PathBuf {
        self.repo
            .clone()
            .unwrap_or_else(spfs::storage::default_root)
    }

    /// The configured repository, which must already exist (commands that only read).
    fn open_repo(&self) -> Result<LocalRepository> {
        Ok(LocalRepository::open(&self.repo_path())?)
    }

    /// The configured repository, created on first use (commands that write).
    fn repo_for_write(&self) -> Result<LocalRepository> {
        Ok(LocalRepository::open_or_create(&self.repo_path())?)
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli: Cli = match cli_policy::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    cli_policy::init_tracing(cli.verbose);
    spfs::signals::install();
    cli_policy::finish(run(&cli))
}

fn run(cli: &Cli) -> Result<i32> {
    if cli.repo.is_none() {
        // The repository comes from the configuration: report a broken one.
        spfs::config::current()?;
    }
    match &cli.command {
        Command::Init { dir } => {
            let path = dir.clone().unwrap_or_else(|| cli.repo_path());
            let repo = LocalRepository::create(&path)?;
            eprintln!("initialized spfs repository in {}", repo.root().display());
            Ok(0)
        }
        Command::Version => {
            outln!("spfs {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Command::Commit(cmd) => store::commit(cli, cmd),
        Command::Tag { reference, names } => store::tag(&cli.repo_for_write()?, reference, names),
        Command::Untag { name, all } => store::untag(&cli.open_repo()?, name, *all),
        Command::Log { name } => inspect::log(&cli.open_repo()?, name),
        Command::Tags { prefix } => inspect::tags(&cli.open_repo()?, prefix.as_deref()),
        Command::Ls {
            reference,
            path,
            long,
            recursive,
        } => inspect::ls(
            &cli.open_repo()?,
            reference,
            path.as_deref(),
            *long,
            *recursive,
        ),
        Command::Read { reference, path } => {
            inspect::read(&cli.open_repo()?, reference, path.as_deref())
        }
        Command::Info { reference } => inspect::info(&cli.open_repo()?, reference),
        Command::Diff { from, to } => match (from, to) {
            (Some(a), Some(b)) => inspect::diff(&cli.open_repo()?, a, b),
            _ => inspect::runtime_diff(&cli.open_repo()?),
        },
        Command::Run { args, command } => runtime::run(cli, args, command),
        Command::Shell { args } => runtime::run(cli, args, &[]),
        Command::Edit { off } => runtime::edit(&cli.open_repo()?, *off),
        Command::Reset { paths } => runtime::reset(&cli.open_repo()?, paths),
        Command::Runtime(cmd) => runtime::runtime(|| cli.open_repo(), cmd),
        Command::Render {
            reference,
            dir,
            strategy,
        } => store::render(&cli.open_repo()?, reference, dir, *strategy),
        Command::Config => show_config(cli),
        Command::Push { refs, remote } => remote::push(cli, refs, remote.as_deref()),
        Command::Pull { refs, remote } => remote::pull(cli, refs, remote.as_deref()),
        Command::Clean(args) => clean::clean(&clean::target(|| cli.open_repo(), args)?, args),
        Command::Check {
            reference,
            repair: false,
            remote: Some(remote),
        } => store::check_remote(reference.as_deref(), remote),
        Command::Check {
            reference,
            repair: false,
            remote: None,
        } => store::check(&cli.open_repo()?, reference.as_deref()),
        Command::Check {
            reference,
            repair: true,
            remote,
        } => store::repair(&cli.open_repo()?, reference.as_deref(), remote.as_deref()),
        Command::Export { refs, output } => archive::export(cli, refs, output),
        Command::Import { file } => archive::import(cli, file),
    }
}

/// Shorthand for a report of input the command cannot accept.
fn invalid(msg: impl Into<String>) -> Report {
    Report::new(msg)
}

/// `spfs config`: each effective value with its source.
fn show_config(cli: &Cli) -> Result<i32> {
    let cfg = spfs::config::current()?;
    match &cli.repo {
        Some(r) => outln!("storage.root = {}    # from --repo", r.display()),
        None => outln!(
            "storage.root = {}    # from {}",
            cfg.root.value.display(),
            cfg.root.source
        ),
    }
    outln!(
        "runtime.backend = {}    # from {}",
        cfg.backend.value,
        cfg.backend.source
    );
    for (name, r) in &cfg.remotes {
        outln!("remote.{name}.address = {}    # from {}", r.value, r.source);
        if let spfs::config::Address::S3 {
            endpoint, region, ..
        } = &r.value
        {
            for (key, v) in [("endpoint", endpoint), ("region", region)] {
                if let Some(v) = v {
                    outln!("remote.{name}.{key} = {v}    # from {}", r.source);
                }
            }
        }
    }
    if cfg.files.is_empty() {
        eprintln!("no configuration file found (looked in /etc/spfs.toml, ~/.config/spfs/spfs.toml, $SPFS_CONFIG)");
    } else {
        let files: Vec<String> = cfg.files.iter().map(|f| f.display().to_string()).collect();
        eprintln!("configuration files read: {}", files.join(", "));
    }
    Ok(0)
}
