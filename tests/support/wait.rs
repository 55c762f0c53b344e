//! Bounded waiting: poll a condition until it holds or a deadline passes (no test waits forever).

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Poll `f` every 50 ms for up to `timeout`; whether it came true.
pub fn until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The exit status of `child` once it has exited, or `None` when it still runs after `timeout`.
pub fn exit_of(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    until(timeout, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status
}
