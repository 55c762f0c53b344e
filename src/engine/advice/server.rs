//! The running `ema start` a configuration change concerns: does a server answer at the configured address, and
//! which process is it (`ema start` keeps no pid file: the listening socket of the port is found in
//! `/proc/net/tcp{,6}` and its owner among `/proc/*/fd`, accepted only when that process is an `ema`) — so it can
//! be told to reload (SIGHUP).

use std::time::Duration;

use serde::Serialize;

use crate::engine::config::Config;
use crate::engine::error::{EmaError, Result};

/// The server answering at the configured address.
#[derive(Debug, Clone, Serialize)]
pub struct RunningServer {
    pub url: String,
    /// Its process, when it could be identified (same user, Linux /proc).
    pub pid: Option<u32>,
}

/// The configured API address as a URL (a wildcard host is reached through loopback).
pub fn configured_url(config: &Config) -> String {
    let host = match config.api.host.as_str() {
        "0.0.0.0" | "::" | "" => "127.0.0.1".to_string(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_string(),
    };
    format!("http://{host}:{}", config.api.port)
}

/// The ema server answering `GET /api/v1/admin/health` at the configured address (within 2 s), if any.
pub async fn probe(config: &Config) -> Option<RunningServer> {
    let url = configured_url(config);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let r = client
        .get(format!("{url}/api/v1/admin/health"))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    Some(RunningServer {
        pid: listening_pid(config.api.port),
        url,
    })
}

/// Socket inodes listening on `port` (TCP, IPv4 and IPv6).
fn listening_inodes(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let p = f[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if p == Some(port) && f[9] != "0" {
                out.push(f[9].to_string());
            }
        }
    }
    out
}

/// Is process `pid` an `ema` binary?
fn is_ema(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "ema")
}

/// The `ema` process listening on `port`, if this user can see it.
pub fn listening_pid(port: u16) -> Option<u32> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| target.as_os_str() == w.as_str())
            {
                return is_ema(pid).then_some(pid);
            }
        }
    }
    None
}

/// Ask the server `pid` to reload its configuration (SIGHUP).
pub fn reload(pid: u32) -> Result<()> {
    if !is_ema(pid) {
        return Err(EmaError::Other(format!(
            "process {pid} is not an ema server; not signalled"
        )));
    }
    // SAFETY: kill(2) with a checked pid and a valid signal number has no memory effects.
    let r = unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
    if r != 0 {
        return Err(EmaError::Other(format!(
            "cannot send SIGHUP to the ema server (pid {pid}): {}; run `kill -HUP {pid}` or `systemctl reload \
             enhanced-model-availability`",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// What a running server was told about changed keys.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub url: String,
    /// A server answers at the configured address.
    pub running: bool,
    pub pid: Option<u32>,
    /// SIGHUP was sent.
    pub signalled: bool,
    /// Changed keys a reload applies.
    pub live_keys: Vec<String>,
    /// Changed keys that need a restart.
    pub restart_keys: Vec<String>,
    /// What was done and what is left to the operator, one line each.
    pub lines: Vec<String>,
}

/// The restart an operator runs (ema does not restart a server it did not start: its arguments and environment
/// are its own).
pub const RESTART_HOW: &str = "`systemctl restart enhanced-model-availability`, or stop `ema start` and start it \
                               again";

/// Tell the server at the configured address (if one runs) that `live` and `restart` keys changed in its
/// configuration file: SIGHUP when its process is known (it applies the live keys and logs the rest as needing a
/// restart), else how to reload it. `want_restart` (`--restart-if-needed`) says how to restart: ema cannot do it
/// honestly for a process it did not start.
pub async fn tell(
    config: &Config,
    live: Vec<String>,
    restart: Vec<String>,
    want_restart: bool,
) -> ServerReport {
    let mut r = ServerReport {
        url: configured_url(config),
        running: false,
        pid: None,
        signalled: false,
        live_keys: live,
        restart_keys: restart,
        lines: Vec::new(),
    };
    if r.live_keys.is_empty() && r.restart_keys.is_empty() {
        return r;
    }
    let Some(server) = probe(config).await else {
        r.lines.push(format!(
            "no ema server answers at {}: the next `ema start` reads the new values",
            r.url
        ));
        return r;
    };
    r.running = true;
    r.pid = server.pid;
    match server.pid {
        Some(pid) => match reload(pid) {
            Ok(()) => {
                r.signalled = true;
                r.lines.push(format!(
                    "sent SIGHUP to the ema server at {} (pid {pid}): it reloads its configuration file{}",
                    r.url,
                    if r.live_keys.is_empty() {
                        String::new()
                    } else {
                        format!(" and applies {} live", r.live_keys.join(", "))
                    }
                ));
            }
            Err(e) => r.lines.push(e.to_string()),
        },
        None => r.lines.push(format!(
            "an ema server answers at {} but its process is not visible to this user: reload it with `systemctl \
             reload enhanced-model-availability` or `kill -HUP <pid of ema start>`",
            r.url
        )),
    }
    if !r.restart_keys.is_empty() {
        r.lines.push(format!(
            "needs a restart to take effect: {} — {RESTART_HOW}{}",
            r.restart_keys.join(", "),
            if want_restart {
                " (--restart-if-needed: ema does not restart a server it did not start; its arguments and \
                 environment are its own)"
            } else {
                ""
            }
        ));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_nobody_listens_on_has_no_server_and_a_socket_of_a_non_ema_process_is_not_taken() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // This test binary listens: its socket is found, but it is not `ema`.
        assert!(!listening_inodes(port).is_empty() || !Path::new("/proc/net/tcp").exists());
        assert_eq!(listening_pid(port), None);
        drop(l);
        assert!(listening_inodes(port).is_empty());
        assert!(reload(std::process::id()).is_err());
    }

    use std::path::Path;

    #[test]
    fn the_configured_address_is_reached_through_loopback_for_a_wildcard() {
        let mut c = Config::default();
        c.api.host = "0.0.0.0".into();
        c.api.port = 9;
        assert_eq!(configured_url(&c), "http://127.0.0.1:9");
        c.api.host = "::1".into();
        assert_eq!(configured_url(&c), "http://[::1]:9");
    }
}
