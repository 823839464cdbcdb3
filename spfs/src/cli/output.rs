//! How the CLI reports errors and detail.

use spfs::Error;

/// Sets up `tracing` output on stderr: `-v` levels, or `RUST_LOG` when set.
pub fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    // The FUSE protocol library logs every request at debug and benign races with the
    // kernel at error (a reply to a request the kernel dropped on unmount): keep it
    // quiet unless tracing everything.
    let default = match verbose {
        0 => "warn,fuser=off",
        1 => "info,fuser=off",
        2 => "debug,fuser=warn",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Prints an error as one `error: ...` line on stderr.
pub fn report_error(e: &Error) {
    eprintln!("error: {e}");
}

/// The exit code for an error: 130 after an interrupt, 1 otherwise.
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Interrupted => 128 + spfs::signals::received().unwrap_or(libc::SIGINT),
        _ => 1,
    }
}
