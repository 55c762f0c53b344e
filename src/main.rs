fn main() {
    // Behave like a Unix tool when the reader goes away (`ema status | head`): exit quietly instead of panicking
    // on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(ema::cli::main());
}
