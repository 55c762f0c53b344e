//! Bounded waiting: poll a condition until it holds or a deadline passes (no test waits forever).

use std::time::{Duration, Instant};

/// Poll `f` every 50 ms for up to `secs` seconds; whether it came true.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
