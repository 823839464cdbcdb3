fn main() {
    println!("spk {}", env!("CARGO_PKG_VERSION"));
}
