//! The `spk` command line.

mod bosh;
mod build;
mod commands;
mod env;
mod graph;
mod index;
mod progress;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::option_map::{host_options, OptionMap};

/// A command-line failure: the error line, detail lines and hints, laid out by the
/// shared CLI policy (docs/cli.md). Library errors convert into it with `?`, bringing
/// their hints (`spfs::Help`).
pub use cli_policy::Report as CliError;

/// Result of a command.
pub type CliResult = Result<(), CliError>;

/// Package manager for spfs runtime environments.
#[derive(Debug, Parser)]
#[command(name = "spk", version, about, propagate_version = true)]
pub struct Cli {
    /// The spfs repository holding the packages.
    #[arg(long, global = true, env = "SPFS_ROOT", value_name = "PATH")]
    pub repo: Option<PathBuf>,

    /// Show more detail (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
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
    /// Copy packages (recipes, build specs and component layers) to a remote.
    Push(commands::Transfer),
    /// Copy packages (recipes, build specs and component layers) from a remote.
    Pull(commands::Transfer),
    /// Resolve requests and print the solution, or why there is none.
    Explain(commands::Explain),
    /// Collect a recipe's sources into its src build.
    #[command(alias = "mksrc")]
    MakeSource(build::MakeSource),
    /// Build binary packages (every variant, or one) from the stored sources.
    #[command(alias = "mkbin")]
    MakeBinary(build::MakeBinary),
    /// Collect the sources, then build every variant: make-source + make-binary.
    Build(build::BuildCmd),
    /// Run a recipe's tests (sources, build and install stages).
    Test(build::Test),
    /// Enter an environment of packages and run a command (or a shell) in it.
    #[command(alias = "run")]
    Env(env::EnvCmd),
    /// Enter an environment of packages in an interactive shell.
    Shell(env::EnvCmd),
    /// Add packages to the current environment, swapping its layers in place.
    Install(env::Install),
    /// Import and compile the packages of a BOSH release.
    Bosh(bosh::BoshCmd),
    /// Check or rebuild the package index (derived from the tags; for admins).
    Index(index::IndexCmd),
}

/// The `-o/--opt` and `--no-host` options of the commands that solve or build.
#[derive(Debug, Args, Clone, Default)]
pub struct OptionArgs {
    /// Option values, as name=value (builds made with other values are not used)
    #[arg(short = 'o', long = "opt", value_name = "NAME=VALUE")]
    pub values: Vec<String>,
    /// Do not add this machine's arch/os/distro options
    #[arg(long)]
    pub no_host: bool,
}

impl OptionArgs {
    /// The option values to solve with: this machine's (unless `--no-host`), then the
    /// `-o` values over them.
    pub fn option_map(&self) -> Result<OptionMap, CliError> {
        let mut options = if self.no_host {
            OptionMap::new()
        } else {
            host_options()
        };
        options.extend(&parse_options(&self.values)?);
        Ok(options)
    }
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
            .map_err(|e: crate::name::NameError| CliError::from(e))?;
        out.insert(key, value.trim());
    }
    Ok(out)
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli: Cli = match cli_policy::parse() {
        Ok(o) => o,
        Err(code) => return code,
    };
    cli_policy::init_tracing(cli.verbose);
    cli_policy::finish(commands::run(&cli))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options_of(args: &[&str]) -> OptionMap {
        let cli = Cli::try_parse_from(args).unwrap();
        let options = match &cli.command {
            Command::Explain(a) => &a.options,
            Command::Env(a) | Command::Shell(a) => &a.options,
            Command::Install(a) => &a.options,
            Command::Build(a) => &a.build.options,
            Command::MakeBinary(a) => &a.build.options,
            Command::Test(a) => &a.build.options,
            other => panic!("no options in {other:?}"),
        };
        options.option_map().unwrap()
    }

    #[test]
    fn opt_and_no_host_mean_the_same_in_every_command() {
        for cmd in [
            &["spk", "explain", "a"][..],
            &["spk", "env", "a"],
            &["spk", "shell", "a"],
            &["spk", "install", "a"],
            &["spk", "build", "a.yaml"],
            &["spk", "make-binary", "a/1"],
            &["spk", "test", "a.yaml"],
        ] {
            let mut args = cmd.to_vec();
            args.extend(["-o", "debug=on", "--opt", "os=plan9"]);
            let with_host = options_of(&args);
            assert_eq!(with_host.get_str("debug"), Some("on"), "{cmd:?}");
            assert_eq!(with_host.get_str("os"), Some("plan9"), "-o wins: {cmd:?}");
            assert_eq!(
                with_host.get_str("arch"),
                Some(std::env::consts::ARCH),
                "{cmd:?}"
            );
            args.push("--no-host");
            let without = options_of(&args);
            assert_eq!(without.get_str("arch"), None, "{cmd:?}");
            assert_eq!(without.get_str("debug"), Some("on"), "{cmd:?}");
        }
    }
}
