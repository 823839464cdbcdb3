//! The `spfs` command. Its policy (error layout, exit codes, verbosity, output) is the
//! shared one of the `cli-policy` crate; everything it does is the `spfs` library's.

mod cli;

fn main() {
    if spfs::runtime::spawn::is_monitor() {
        // The monitor reports what its mounts and FUSE server hit on stderr.
        cli_policy::init_tracing(0);
    }
    if let Some(code) = spfs::runtime::spawn::monitor_entry() {
        std::process::exit(code);
    }
    std::process::exit(cli::main());
}
