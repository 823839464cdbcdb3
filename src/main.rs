//! The `spk` command.

fn main() {
    if let Some(code) = spfs::runtime::spawn::monitor_entry() {
        std::process::exit(code);
    }
    std::process::exit(spk::cli::main());
}
