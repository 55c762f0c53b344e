fn main() {
    std::process::exit(ema::cli::main());
}
