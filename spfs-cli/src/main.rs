//! The `spfs` command. Its policy (error layout, exit codes, verbosity, output) is the
//! shared one of the `cli-policy` crate; everything it does is the `spfs` library's.

mod cli;

fn main() {
    if let Some(code) = spfs::runtime::spawn::monitor_entry() {
        std::process::exit(code);
    }
    std::process::exit(cli::main());
}
