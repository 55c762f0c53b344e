//! A live `ema start` for the server tests: the real binary on a free loopback port, its configuration written
//! into a temporary directory, its announcement read from `--json`, stopped with SIGTERM (bounded waits).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cli::{ema_cmd, first_json_line};

/// Write `<dir>/c.json`: the store at `<dir>/models`, `extra` merged on top (section by section).
pub fn write_config(dir: &Path, extra: Value) -> PathBuf {
    let mut cfg = json!({
        "storage": {"models_directory": dir.join("models")},
        "health_monitoring": {"enabled": false},
    });
    if let Value::Object(m) = extra {
        for (section, v) in m {
            match (cfg.get_mut(&section), v) {
                (Some(Value::Object(base)), Value::Object(more)) => base.extend(more),
                (_, v) => {
                    cfg[&section] = v;
                }
            }
        }
    }
    let p = dir.join("c.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    p
}

/// A running `ema start`.
pub struct EmaServer {
    child: Option<Child>,
    /// The announcement (`{"listening": [...], ...}`).
    pub announced: Value,
    stderr: PathBuf,
    /// The rest of its stdout, kept open while it runs.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl EmaServer {
    /// `ema --config CONFIG start --json ARGS…` with `HF_ENDPOINT=hub` and `envs`; waits for its announcement.
    pub fn start(config: &Path, hub: &str, args: &[&str], envs: &[(&str, &str)]) -> EmaServer {
        let stderr = config.with_file_name(format!("stderr-{}.txt", rand_suffix()));
        let mut c = ema_cmd();
        c.arg("--config")
            .arg(config)
            .args(["start", "--json"])
            .args(args)
            .env("HF_ENDPOINT", hub)
            .env_remove("EMA_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in envs {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn ema start");
        let (announced, rest) = first_json_line(&mut child);
        EmaServer {
            child: Some(child),
            announced,
            stderr,
            _stdout: rest,
        }
    }

    /// The URL of listener `i` (0: the only one, or the legacy one of two).
    pub fn url(&self, i: usize) -> String {
        self.announced["listening"][i]["url"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The port of listener `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.url(i).rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Its process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stop with SIGTERM; (exit code, stderr). Fails the test when it does not stop within 15 s.
    pub fn stop(self) -> (i32, String) {
        self.stop_with(|| {})
    }

    /// Stop with SIGTERM, run `meanwhile` (e.g. read a notification), then wait as [`EmaServer::stop`] does.
    pub fn stop_with(mut self, meanwhile: impl FnOnce()) -> (i32, String) {
        let mut child = self.child.take().unwrap();
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        meanwhile();
        let deadline = Instant::now() + Duration::from_secs(15);
        let code = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("ema start did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (
            code,
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }
}

impl Drop for EmaServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ std::process::id() as u64
}
