//! "Services stopped", checked rather than taken on trust: where systemd runs, the legacy unit is not active
//! (`systemctl show`); and everywhere, nothing listens on the legacy API port (from `/proc/net/tcp` and
//! `/proc/net/tcp6`) and no other process has a file open or mapped under the legacy models directory (`/proc/*/fd`
//! links and `/proc/*/maps`). Whatever holds them is named (unit, pid and command). ema stops nothing itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::migration::context::{MigrationContext, StepOutcome};

/// A process holding something the migration needs free.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Holder {
    /// None when the socket's owner could not be found (another user's process, without the right to look).
    pub pid: Option<u32>,
    pub command: String,
    /// `listening on port 8000`, `open: <path>`, `mapped: <path>`.
    pub what: String,
}

pub(super) fn services_stopped(ctx: &MigrationContext) -> StepOutcome {
    if ctx.plan.mode == crate::engine::migration::Mode::SideBySide {
        return StepOutcome::not_applicable(
            format!(
                "not applicable side by side: the legacy system keeps running (port {}, {}) while ema records its \
                 models where they lie",
                ctx.plan.legacy_api_port,
                ctx.plan.models_dir.display()
            ),
            vec![],
        );
    }
    let port = ctx.plan.legacy_api_port;
    let dir = &ctx.plan.models_dir;
    let unit = &ctx.plan.legacy_unit;
    let mut log = Vec::new();
    let mut unit_running = None;
    match crate::engine::migration::systemd::ask(unit) {
        Ok(s) if !s.exists() => log.push(format!(
            "systemd: no unit {unit} on this machine (name the legacy unit with `ema migrate plan --legacy-unit \
             NAME`); checked by ports and processes"
        )),
        Ok(s) if s.running() => {
            log.push(format!("systemd: {unit} is {}", s.describe()));
            unit_running = Some(s);
        }
        Ok(s) => log.push(format!("systemd: {unit} is {}", s.describe())),
        Err(why) => log.push(why),
    }
    let (mut holders, hidden_sockets) = match listeners_on(port) {
        Ok(h) => h,
        Err(e) => {
            return StepOutcome::fail(
                format!(
                    "cannot read /proc/net/tcp: {e}; check by hand that nothing serves port {port}"
                ),
                vec![],
            );
        }
    };
    let (open, unreadable) = open_under(dir, std::process::id());
    holders.extend(open);
    log.push(format!(
        "checked: listeners on port {port} (/proc/net/tcp, tcp6); open and mapped files under {} (/proc/*/fd, \
         /proc/*/maps)",
        dir.display()
    ));
    if unreadable > 0 {
        log.push(format!(
            "{unreadable} process(es) could not be inspected (another user's; run as root to see them)"
        ));
    }
    if hidden_sockets > 0 {
        log.push(format!(
            "{hidden_sockets} listening socket(s) on port {port} belong to a process that could not be inspected"
        ));
    }
    for h in &holders {
        log.push(format!(
            "{} ({}) {}",
            h.pid
                .map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "an unknown process".into()),
            h.command,
            h.what
        ));
    }
    if let Some(s) = unit_running {
        return StepOutcome::fail(
            format!(
                "the legacy unit {unit} is {} (systemd); stop it with `systemctl stop {unit}` (and `systemctl \
                 disable {unit}` so it stays stopped after a reboot), then run this step again",
                s.describe()
            ),
            log,
        );
    }
    if holders.is_empty() {
        StepOutcome::pass(
            format!(
                "nothing listens on port {port} and no other process has files open under {}",
                dir.display()
            ),
            log,
        )
    } else {
        let first = &holders[0];
        StepOutcome::fail(
            format!(
                "the legacy system still runs: {} — {} ({}); stop it (e.g. `systemctl stop {unit}`), then run this \
                 step again",
                holders.len(),
                first
                    .pid
                    .map(|p| format!("pid {p}"))
                    .unwrap_or_else(|| "a process".into()),
                first.what
            ),
            log,
        )
    }
}

/// Processes listening on TCP `port` (IPv4 and IPv6), and how many listening sockets had no visible owner.
pub fn listeners_on(port: u16) -> std::io::Result<(Vec<Holder>, usize)> {
    let mut inodes: BTreeSet<u64> = BTreeSet::new();
    let mut any_table = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        any_table = true;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue; // not LISTEN
            }
            let Some(p) = f[1].rsplit(':').next() else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() == Some(port)
                && let Ok(inode) = f[9].parse::<u64>()
            {
                inodes.insert(inode);
            }
        }
    }
    if !any_table {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no /proc/net/tcp or /proc/net/tcp6",
        ));
    }
    let mut owners: BTreeMap<u64, Vec<(u32, String)>> = BTreeMap::new();
    if !inodes.is_empty() {
        for (pid, fd_target) in all_fds() {
            if let Some(n) = fd_target
                .to_str()
                .and_then(|s| s.strip_prefix("socket:["))
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
                && inodes.contains(&n)
            {
                owners.entry(n).or_default().push((pid, command_of(pid)));
            }
        }
    }
    let mut out = BTreeSet::new();
    let mut hidden = 0;
    for inode in &inodes {
        match owners.get(inode) {
            Some(v) => {
                for (pid, cmd) in v {
                    out.insert(Holder {
                        pid: Some(*pid),
                        command: cmd.clone(),
                        what: format!("listening on port {port}"),
                    });
                }
            }
            None => {
                hidden += 1;
                out.insert(Holder {
                    pid: None,
                    command: "?".into(),
                    what: format!("listening on port {port}"),
                });
            }
        }
    }
    Ok((out.into_iter().collect(), hidden))
}

/// Processes other than `except` with a file open (fd) or mapped (maps) under `dir`, and how many processes could
/// not be inspected.
pub fn open_under(dir: &Path, except: u32) -> (Vec<Holder>, usize) {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut out = BTreeSet::new();
    let mut unreadable = 0;
    for pid in pids() {
        if pid == except {
            continue;
        }
        let fd_dir = PathBuf::from(format!("/proc/{pid}/fd"));
        match std::fs::read_dir(&fd_dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    if let Ok(t) = std::fs::read_link(e.path())
                        && t.starts_with(&dir)
                    {
                        out.insert(Holder {
                            pid: Some(pid),
                            command: command_of(pid),
                            what: format!("open: {}", t.display()),
                        });
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => unreadable += 1,
            Err(_) => continue, // gone meanwhile
        }
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            let mut seen = BTreeSet::new();
            for line in maps.lines() {
                // address perms offset dev inode pathname
                let Some(path) = line.splitn(6, char::is_whitespace).nth(5).map(str::trim) else {
                    continue;
                };
                let p = Path::new(path);
                if p.starts_with(&dir) && seen.insert(path.to_string()) {
                    out.insert(Holder {
                        pid: Some(pid),
                        command: command_of(pid),
                        what: format!("mapped: {path}"),
                    });
                }
            }
        }
    }
    (out.into_iter().collect(), unreadable)
}

fn pids() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Every readable (pid, fd link target).
fn all_fds() -> Vec<(u32, PathBuf)> {
    let mut v = Vec::new();
    for pid in pids() {
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for e in rd.flatten() {
                if let Ok(t) = std::fs::read_link(e.path()) {
                    v.push((pid, t));
                }
            }
        }
    }
    v
}

fn command_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_and_an_open_file_are_found_and_named() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (h, _) = listeners_on(port).unwrap();
        assert!(h.iter().any(|h| h.pid == Some(std::process::id())), "{h:?}");
        drop(l);
        let (h, _) = listeners_on(port).unwrap();
        assert!(h.is_empty(), "{h:?}");

        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("w.bin");
        std::fs::write(&f, b"x").unwrap();
        let _held = std::fs::File::open(&f).unwrap();
        let (h, _) = open_under(d.path(), 0);
        assert!(
            h.iter()
                .any(|h| h.pid == Some(std::process::id()) && h.what.contains("w.bin")),
            "{h:?}"
        );
        // Our own process is left out when asked.
        let (h, _) = open_under(d.path(), std::process::id());
        assert!(h.iter().all(|h| h.pid != Some(std::process::id())), "{h:?}");
    }
}
