//! `system_info.txt` of a backup: the spec's system snapshot (kernel, ema's version, disk usage, memory), read from
//! the kernel directly rather than by running `uname`, `df` and `free`.

use std::fmt::Write as _;
use std::path::Path;

use crate::engine::download::disk::human_bytes;

/// The snapshot text for a backup of `root` written to `dest`.
pub fn system_info(root: &Path, dest: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "=== System Info ===");
    let _ = writeln!(s, "{}", uname());
    let _ = writeln!(s, "=== ema Version ===");
    let _ = writeln!(s, "ema {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(s, "=== Disk Usage ===");
    for p in [root, dest] {
        match fs4::statvfs(p) {
            Ok(st) => {
                let _ = writeln!(
                    s,
                    "{}: {} total, {} free, {} available",
                    p.display(),
                    human_bytes(st.total_space()),
                    human_bytes(st.free_space()),
                    human_bytes(st.available_space())
                );
            }
            Err(e) => {
                let _ = writeln!(s, "{}: cannot read ({e})", p.display());
            }
        }
    }
    let _ = writeln!(s, "=== Memory Info ===");
    match std::fs::read_to_string("/proc/meminfo") {
        Ok(m) => {
            for l in m
                .lines()
                .filter(|l| l.starts_with("MemTotal:") || l.starts_with("MemAvailable:"))
            {
                let _ = writeln!(s, "{l}");
            }
        }
        Err(e) => {
            let _ = writeln!(s, "cannot read /proc/meminfo ({e})");
        }
    }
    s
}

fn uname() -> String {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated C strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "uname: unavailable".into();
    }
    let f = |a: &[libc::c_char]| {
        let bytes: Vec<u8> = a
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {} {} {}",
        f(&u.sysname),
        f(&u.nodename),
        f(&u.release),
        f(&u.version),
        f(&u.machine)
    )
}
