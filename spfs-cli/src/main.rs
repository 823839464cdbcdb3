//! The `spfs` command. Its policy (error layout, exit codes, verbosity, output) is the
//! shared one of the `cli-policy` crate; everything it does is the `spfs` library's.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
