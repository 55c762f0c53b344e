//! systemd's readiness protocol (`sd_notify`): `READY=1` once the server listens, `RELOADING=1` / `READY=1` around a
//! reload, `STOPPING=1` on shutdown, sent as one datagram to the socket named by `$NOTIFY_SOCKET` (a path, or an
//! abstract socket when it starts with `@`). Without the variable (not started by systemd with `Type=notify`)
//! nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Where notifications go: `$NOTIFY_SOCKET`, read once at start.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    /// From the environment: silent when `$NOTIFY_SOCKET` is unset or empty.
    pub fn from_env() -> Self {
        Notifier {
            socket: std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }

    /// Notifications to the socket at `path` (tests).
    pub fn to(path: &Path) -> Self {
        Notifier {
            socket: Some(path.display().to_string()),
        }
    }

    /// Whether a manager listens.
    pub fn active(&self) -> bool {
        self.socket.is_some()
    }

    /// The server listens and serves.
    pub fn ready(&self, status: &str) -> std::io::Result<()> {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}",
            std::process::id()
        ))
    }

    /// A configuration reload starts (`READY=1` follows when it is done).
    pub fn reloading(&self) -> std::io::Result<()> {
        self.send("RELOADING=1")
    }

    /// Shutting down.
    pub fn stopping(&self) -> std::io::Result<()> {
        self.send("STOPPING=1")
    }

    /// A free-form status line (`systemctl status` shows it).
    pub fn status(&self, status: &str) -> std::io::Result<()> {
        self.send(&format!("STATUS={status}"))
    }

    fn send(&self, msg: &str) -> std::io::Result<()> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        let sock = UnixDatagram::unbound()?;
        match socket.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                sock.send_to_addr(msg.as_bytes(), &addr)?;
            }
            None => {
                sock.send_to(msg.as_bytes(), socket)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = s.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn ready_and_stopping_reach_a_path_socket_and_nothing_is_sent_without_one() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        listener
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::to(&path);
        assert!(n.active());
        n.ready("listening on 127.0.0.1:8000").unwrap();
        let m = recv(&listener);
        assert!(m.starts_with("READY=1\n"), "{m}");
        assert!(m.contains("STATUS=listening on 127.0.0.1:8000"), "{m}");
        assert!(
            m.contains(&format!("MAINPID={}", std::process::id())),
            "{m}"
        );
        n.stopping().unwrap();
        assert_eq!(recv(&listener), "STOPPING=1");
        let silent = Notifier::default();
        assert!(!silent.active());
        silent.ready("x").unwrap();
    }

    #[test]
    fn an_abstract_socket_is_reached_by_its_name() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ema-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        listener
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let n = Notifier {
            socket: Some(format!("@{name}")),
        };
        n.reloading().unwrap();
        assert_eq!(recv(&listener), "RELOADING=1");
    }
}
