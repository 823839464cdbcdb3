//! The `spk` command line.

mod commands;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::option_map::OptionMap;

/// A command-line failure: one line of error, optional detail lines and a hint.
#[derive(Debug)]
pub struct CliError {
    /// What failed.
    pub message: String,
    /// Supporting facts, printed indented under the message.
    pub details: Vec<String>,
    /// What to do about it.
    pub help: Option<String>,
}

impl CliError {
    /// An error with just a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: crate::text::cap_message(&message.into()),
            details: Vec::new(),
            help: None,
        }
    }

    /// Adds a hint.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl From<crate::storage::StorageError> for CliError {
    fn from(e: crate::storage::StorageError) -> Self {
        let help = match &e {
            crate::storage::StorageError::NotFound { .. } => {
                Some("list what exists with 'spk ls'".to_string())
            }
            crate::storage::StorageError::AlreadyExists(_) => {
                Some("pass --force to replace it".to_string())
            }
            _ => None,
        };
        Self {
            message: e.to_string(),
            details: Vec::new(),
            help,
        }
    }
}

impl From<crate::spec::SpecError> for CliError {
    fn from(e: crate::spec::SpecError) -> Self {
        Self {
            help: e.help.clone(),
            message: e.to_string(),
            details: Vec::new(),
        }
    }
}

/// Result of a command.
pub type CliResult = Result<(), CliError>;

/// Package manager for spfs runtime environments.
#[derive(Debug, Parser)]
#[command(name = "spk", version, about, propagate_version = true)]
pub struct Opt {
    /// The spfs repository holding the packages.
    #[arg(long, global = true, env = "SPFS_ROOT", value_name = "PATH")]
    pub repo: Option<PathBuf>,

    /// Show more detail (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `spk` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List packages, the versions of one package, or the builds of one version.
    Ls(commands::Ls),
    /// Find packages whose name contains a term.
    Search(commands::Search),
    /// Show a recipe or a build's spec.
    #[command(alias = "view")]
    Info(commands::Info),
    /// Mark a version or build as deprecated (used only when asked for exactly).
    Deprecate(commands::Deprecate),
    /// Clear the deprecated mark of a version or build.
    Undeprecate(commands::Deprecate),
    /// Remove a version (recipe and builds) or one build.
    Remove(commands::Remove),
    /// Write a starter spec file for a new package.
    New(commands::New),
    /// Check spec files: template, YAML, schema and validation rules.
    Lint(commands::Lint),
    /// Publish recipes from spec files or directories of spec files.
    Publish(commands::Publish),
    /// Resolve requests and print the solution, or why there is none.
    Explain(commands::Explain),
}

/// Parses `-o name=value` options.
pub fn parse_options(raw: &[String]) -> Result<OptionMap, CliError> {
    let mut out = OptionMap::new();
    for item in raw {
        let Some((name, value)) = item.split_once('=') else {
            return Err(CliError::new(format!("invalid option '{item}'"))
                .help("write options as -o name=value"));
        };
        let key = name
            .trim()
            .parse()
            .map_err(|e: crate::name::NameError| CliError::new(e.to_string()))?;
        out.insert(key, value.trim());
    }
    Ok(out)
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "spk=debug,spfs=debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let opt = match Opt::try_parse() {
        Ok(o) => o,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(opt.verbose);
    match commands::run(&opt) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", e.message);
            for d in &e.details {
                eprintln!("  - {d}");
            }
            if let Some(h) = &e.help {
                eprintln!("  help: {h}");
            }
            1
        }
    }
}
