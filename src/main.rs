//! The `ema` binary: hands the command line to the headless CLI (`ema::cli::main`), which opens the console
//! when no command is given, and exits with its code.

fn main() {
    // SIGPIPE stays ignored (Rust's default): a write to a socket whose peer hung up must be an error the server or
    // client handles, never a silent death of the process (a download client closing its connection early would
    // otherwise kill `ema mirror`, or the console running `ema demo`). A reader of stdout going away
    // (`ema status | head`) is still a quiet, successful exit, like a Unix tool's.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") && stdout_reader_gone() {
            std::process::exit(0);
        }
        default(info)
    }));
    std::process::exit(ema::cli::main());
}

/// Is stdout a pipe or socket whose reading end was closed?
fn stdout_reader_gone() -> bool {
    #[cfg(unix)]
    {
        let mut p = libc::pollfd {
            fd: 1,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n == 1 && p.revents & libc::POLLERR != 0
    }
    #[cfg(not(unix))]
    false
}
