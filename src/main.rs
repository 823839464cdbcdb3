fn main() {
    std::process::exit(spk::cli::main());
}
