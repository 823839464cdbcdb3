//! The `spfs` command.

mod cli;

fn main() {
    if let Some(code) = spfs::runtime::spawn::monitor_entry() {
        std::process::exit(code);
    }
    std::process::exit(cli::main());
}
