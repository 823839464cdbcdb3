//! The command-line policy shared by `spfs` and `spk` (documented in docs/cli.md):
//!
//! - error reports: `error: what failed, on which input`, optional `  - fact` lines, then
//!   `  help: what to do` lines taken from the error's [`Help`] hints ([`Report`]);
//! - exit codes: 0 ok, 1 error, 2 usage, 128+N after signal N, a command's own code for
//!   `run`/`env` ([`exit`]);
//! - verbosity: `-v` info, `-vv` debug, `-vvv` trace, `RUST_LOG` overrides
//!   ([`init_tracing`]);
//! - output: a closed stdout (`spfs tags | head -1`) ends the command quietly with
//!   success ([`out!`], [`outln!`], [`write_stdout`]).
//!
//! A binary's `main` is [`parse`], [`init_tracing`], then [`finish`] on its result.

use std::fmt;
use std::io::Write;

pub use spfs::Help;

/// The exit-code table.
pub mod exit {
    /// The command did what was asked.
    pub const OK: i32 = 0;
    /// The command failed; stderr has the report.
    pub const ERROR: i32 = 1;
    /// The command line is malformed (unknown flag, missing or invalid argument).
    pub const USAGE: i32 = 2;

    /// The code after signal `sig` (SIGINT: 130, SIGTERM: 143).
    pub fn signal(sig: i32) -> i32 {
        128 + sig
    }

    /// The code for a failed command: 128+N if signal N interrupted it, else [`ERROR`].
    pub fn for_error() -> i32 {
        match spfs::signals::received() {
            Some(sig) => signal(sig),
            None => ERROR,
        }
    }
}

/// A failure as shown to a person: what failed, supporting facts, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What failed, on which input (one line).
    pub message: String,
    /// Supporting facts, shown as `  - fact` lines.
    pub details: Vec<String>,
    /// What to do, shown as `  help: hint` lines.
    pub help: Vec<String>,
}

impl Report {
    /// A report with just a message.
    pub fn new(message: impl Into<String>) -> Self {
        Report {
            message: message.into(),
            details: Vec::new(),
            help: Vec::new(),
        }
    }

    /// Adds a hint.
    pub fn help(mut self, hint: impl Into<String>) -> Self {
        self.help.push(hint.into());
        self
    }

    /// Adds a supporting fact.
    pub fn detail(mut self, fact: impl Into<String>) -> Self {
        self.details.push(fact.into());
        self
    }

    /// The report as printed on stderr, ending with a newline.
    pub fn render(&self) -> String {
        let mut text = format!("error: {}\n", self.message);
        for d in &self.details {
            text.push_str(&format!("  - {d}\n"));
        }
        for h in &self.help {
            text.push_str(&format!("  help: {h}\n"));
        }
        text
    }

    /// Prints the report on stderr.
    pub fn print(&self) {
        let _ = std::io::stderr().write_all(self.render().as_bytes());
    }
}

/// Any error with hints becomes a report: its message is the error line, its hints the
/// `help:` lines.
impl<E: fmt::Display + Help> From<E> for Report {
    fn from(e: E) -> Self {
        Report {
            message: e.to_string(),
            details: Vec::new(),
            help: e.help(),
        }
    }
}

/// Parses the command line. `--help` and `--version` print to stdout and give
/// `Err(0)`; a malformed command line prints a report and gives `Err(2)`.
pub fn parse<P: clap::Parser>() -> Result<P, i32> {
    P::try_parse().map_err(|e| usage_error::<P>(&e))
}

/// Prints what clap found wrong with the command line of `P` and returns the exit code.
pub fn usage_error<P: clap::CommandFactory>(e: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            write_stdout(format_args!("{}", e.render()));
            exit::OK
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // The help of the (sub)command that lacks its command: take its usage line.
            let text = e.render().to_string();
            let usage = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Usage: "))
                .map(str::to_string)
                .unwrap_or_else(|| P::command().render_usage().to_string());
            let name = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<']))
                .collect::<Vec<_>>()
                .join(" ");
            Report::new(format!("'{name}' needs a command"))
                .help(format!("usage: {usage}"))
                .help(format!("list the commands with '{name} --help'"))
                .print();
            exit::USAGE
        }
        _ => {
            usage_report(&e.render().to_string()).print();
            exit::USAGE
        }
    }
}

/// Recasts clap's error text in the report layout: its first line is the error, the
/// tips, the usage line and the pointer to `--help` become hints.
fn usage_report(text: &str) -> Report {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid command line");
    let mut report = Report::new(first.strip_prefix("error: ").unwrap_or(first));
    for line in lines {
        let hint = if let Some(tip) = line.strip_prefix("tip: ") {
            tip.to_string()
        } else if let Some(usage) = line.strip_prefix("Usage: ") {
            format!("usage: {usage}")
        } else if let Some(rest) = line.strip_prefix("For more information, ") {
            format!("for more information, {}", rest.trim_end_matches('.'))
        } else {
            line.to_string()
        };
        report = report.help(hint);
    }
    report
}

/// The `tracing` filter for a `-v` count, when `RUST_LOG` is not set.
pub fn verbosity_filter(verbose: u8) -> &'static str {
    // The FUSE protocol library logs every request at debug and benign races with the
    // kernel at error (a reply to a request the kernel dropped on unmount): keep it
    // quiet unless tracing everything.
    match verbose {
        0 => "warn,fuser=off",
        1 => "info,fuser=off",
        2 => "debug,fuser=warn",
        _ => "trace",
    }
}

/// Sends `tracing` output to stderr at the level of `-v` flags, or as `RUST_LOG` says.
pub fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(verbosity_filter(verbose)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Writes to stdout. A reader that went away (`| head -1`) ends the process quietly
/// with success; any other write failure ends it with a report and code 1.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    let result = std::io::stdout().lock().write_fmt(args);
    if let Err(e) = result {
        stdout_failed(e);
    }
}

/// Writes bytes to stdout, with the same rule as [`write_stdout`].
pub fn write_stdout_bytes(bytes: &[u8]) {
    let result = std::io::stdout().lock().write_all(bytes);
    if let Err(e) = result {
        stdout_failed(e);
    }
}

fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(exit::OK);
    }
    Report::new(format!("writing to stdout: {e}")).print();
    std::process::exit(exit::ERROR);
}

/// `print!` that follows the stdout rule of [`write_stdout`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that follows the stdout rule of [`write_stdout`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Ends a command: flushes stdout, prints the report of a failure, and returns the
/// exit code (the command's own on success).
pub fn finish(result: Result<i32, Report>) -> i32 {
    match result {
        Ok(code) => {
            let flushed = std::io::stdout().lock().flush();
            if let Err(e) = flushed {
                stdout_failed(e);
            }
            code
        }
        Err(report) => {
            let _ = std::io::stdout().lock().flush();
            report.print();
            exit::for_error()
        }
    }
}

/// Opens the remote a command line names (a configured name or an address; `None`:
/// the default remote, `origin`), with its label. `create` makes a missing repository
/// (a push target). A failure says which address the name stands for.
pub fn open_remote(
    name: Option<&str>,
    create: bool,
) -> Result<(String, Box<dyn spfs::storage::Repository>), Report> {
    let label = name.unwrap_or(spfs::config::DEFAULT_REMOTE).to_string();
    let address = spfs::config::current()?.remote(name)?;
    let repo = spfs::storage::open_remote(&address, create)
        .map_err(|e| Report::from(e).help(format!("remote '{label}' is {address}")))?;
    Ok((label, repo))
}

/// As [`open_remote`], for a remote only read from as a source of closures (`spfs
/// check --repair`): a `tar://` archive is accepted too.
pub fn open_source(
    name: Option<&str>,
) -> Result<(String, Box<dyn spfs::storage::Repository>), Report> {
    let label = name.unwrap_or(spfs::config::DEFAULT_REMOTE).to_string();
    let address = spfs::config::current()?.remote(name)?;
    let repo = spfs::storage::open_source(&address)
        .map_err(|e| Report::from(e).help(format!("remote '{label}' is {address}")))?;
    Ok((label, repo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Missing;

    impl fmt::Display for Missing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("no such thing 'x'")
        }
    }

    impl Help for Missing {
        fn help(&self) -> Vec<String> {
            vec!["list things with 'tool ls'".into(), "or make one".into()]
        }
    }

    #[test]
    fn report_layout() {
        let r = Report::from(Missing).detail("looked in /a");
        assert_eq!(
            r.render(),
            "error: no such thing 'x'\n  - looked in /a\n  help: list things with 'tool ls'\n  help: or make one\n"
        );
        assert_eq!(Report::new("bad").render(), "error: bad\n");
    }

    #[test]
    fn spfs_errors_keep_hints_out_of_the_message() {
        let e = spfs::Error::UnknownReference("a/b".into());
        let r = Report::from(e);
        assert_eq!(
            r.message,
            "unknown reference 'a/b': no tag or object matches"
        );
        assert_eq!(r.help, ["list tags with 'spfs tags'"]);
        let r = Report::from(spfs::Error::MissingMountPoint("/spfs".into()));
        assert_eq!(r.message, "the mount point /spfs does not exist");
        assert_eq!(
            r.help,
            ["an administrator must create it once ('mkdir -p /spfs')"]
        );
    }

    #[test]
    fn clap_errors_take_the_report_layout() {
        let text = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: spfs tags [OPTIONS] [PREFIX]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_report(text).render(),
            "error: unexpected argument '--bogus' found\n  help: to pass '--bogus' as a value, use '-- --bogus'\n  help: usage: spfs tags [OPTIONS] [PREFIX]\n  help: for more information, try '--help'\n"
        );
    }

    #[test]
    fn exit_codes_and_verbosity() {
        assert_eq!(exit::signal(2), 130);
        assert_eq!(exit::signal(15), 143);
        assert_eq!(verbosity_filter(1), "info,fuser=off");
        assert_eq!(verbosity_filter(2), "debug,fuser=warn");
        assert_eq!(verbosity_filter(3), "trace");
        assert_eq!(verbosity_filter(9), "trace");
    }
}
