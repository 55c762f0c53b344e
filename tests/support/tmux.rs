//! A real terminal for end-to-end tests: a tmux server of the test's own (its own socket), keys sent, the screen
//! captured and waited on with a bound; tests skip, with the reason printed, when tmux is not installed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A temp dir for a terminal test, or `None` (the reason printed) when tmux is not installed.
pub fn tmux_test_dir() -> Option<tempfile::TempDir> {
    if !have_tmux() {
        eprintln!("SKIPPED: tmux is not installed (scripts/test.sh installs it)");
        return None;
    }
    Some(tempfile::tempdir().unwrap())
}

/// A tmux server of our own (its own socket), killed on drop.
pub struct Tmux {
    /// The tmux socket name (`tmux -L`), for commands the helpers do not cover.
    pub socket: String,
}

impl Tmux {
    pub fn start(cmd: &str, w: u16, h: u16) -> Tmux {
        let socket = format!("ema-e2e-{}-{}", std::process::id(), rand_suffix());
        let st = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "e2e",
            ])
            .args(["-x", &w.to_string(), "-y", &h.to_string()])
            .arg(cmd)
            .status()
            .expect("run tmux");
        assert!(st.success(), "tmux new-session failed");
        Tmux { socket }
    }

    pub fn keys(&self, keys: &[&str]) {
        let st = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "e2e"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(st.success());
    }

    /// Press `q` and wait for the console to exit with status 0 (the session's command echoes `EMA_EXIT=$?`).
    pub fn quit(&self, timeout: Duration) {
        self.keys(&["q"]);
        self.wait_for("a clean exit", timeout, |s| s.contains("EMA_EXIT=0"));
    }

    pub fn capture(&self) -> String {
        self.capture_with(&[])
    }

    /// With `-e`: the escape sequences of colours and attributes too.
    pub fn capture_with(&self, extra: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "e2e"])
            .args(extra)
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Poll the screen until `pred` holds (bounded); returns the screen.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.capture();
            if pred(&s) {
                if std::env::var_os("EMA_E2E_SHOW").is_some() {
                    eprintln!("--- {what}:\n{s}");
                }
                return s;
            }
            if start.elapsed() > timeout {
                panic!("timed out after {timeout:?} waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
