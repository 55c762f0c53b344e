//! Running the real `ema` binary: a command with the caller's hub and configuration settings removed from its
//! environment, and its outcome (exit code, stdout, stderr) as text.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use serde_json::Value;

/// The `ema` binary cargo built for these tests.
pub const EMA: &str = env!("CARGO_BIN_EXE_ema");

/// `ema` with no token, not offline, no `EMA_CONFIG` and no colour, whatever the environment running the tests.
pub fn ema_cmd() -> Command {
    let mut c = Command::new(EMA);
    c.env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("EMA_CONFIG")
        .env("NO_COLOR", "1");
    c
}

/// The home, state, configuration, data and cache directories of an operator whose whole world lies inside `d`.
pub fn isolated_env(d: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("HOME", d.join("home")),
        ("XDG_STATE_HOME", d.join("state")),
        ("XDG_CONFIG_HOME", d.join("xdg-config")),
        ("XDG_DATA_HOME", d.join("data")),
        ("XDG_CACHE_HOME", d.join("xdg-cache")),
    ]
}

/// `ema ARGS` run offline in `cwd` with the [`isolated_env`] of `d`.
pub fn ema_isolated(d: &Path, cwd: &Path, args: &[&str]) -> Run {
    let mut c = ema_cmd();
    c.current_dir(cwd).env("HF_HUB_OFFLINE", "1").args(args);
    for (k, v) in isolated_env(d) {
        c.env(k, v);
    }
    run(&mut c)
}

/// The words of a command line, split at white space (no quoting: for arguments without spaces).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// What a finished `ema` run left: its exit code (-1 when killed by a signal) and its output as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout as the one JSON document `--json` promises.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// (code, stdout, stderr).
    pub fn parts(self) -> (i32, String, String) {
        (self.code, self.stdout, self.stderr)
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Run `c` to the end with nothing on its stdin.
pub fn run(c: &mut Command) -> Run {
    c.stdin(Stdio::null()).output().expect("run ema").into()
}

/// The first line `child` prints on stdout, as JSON (`ema mirror --json` announces its endpoint this way), and
/// the rest of its stdout: keep that while the child runs if it may still print.
pub fn first_json_line(child: &mut Child) -> (Value, BufReader<ChildStdout>) {
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (v, reader)
}
