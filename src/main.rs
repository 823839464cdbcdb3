//! The `spk` command.

fn main() {
    if spfs::runtime::spawn::is_monitor() {
        // The monitor reports what its mounts and FUSE server hit on stderr.
        cli_policy::init_tracing(0);
    }
    if let Some(code) = spfs::runtime::spawn::monitor_entry() {
        std::process::exit(code);
    }
    std::process::exit(spk::cli::main());
}
