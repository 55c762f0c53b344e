//! Output conventions shared by every command: human text or one JSON document on stdout; logs and progress on
//! stderr; colour only when allowed.

use std::io::IsTerminal;

use serde::Serialize;

use crate::engine::EmaError;

/// Global output settings.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    /// Colour allowed on stderr (a terminal and NO_COLOR unset).
    pub color: bool,
    /// stderr is a terminal: progress bars allowed.
    pub progress: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let tty = std::io::stderr().is_terminal();
        Output {
            json,
            color: tty && !no_color,
            progress: tty,
        }
    }

    /// Print one JSON document on stdout.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot serialize output: {e}"),
        }
    }

    /// Print one NDJSON line on stdout.
    pub fn json_line<T: Serialize + ?Sized>(&self, value: &T) {
        match serde_json::to_string(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot serialize output: {e}"),
        }
    }

    /// Report an error: on stderr in human mode; as `{"error": …}` on stdout with `--json` (and on stderr too).
    pub fn error(&self, err: &EmaError) {
        if self.json {
            self.json(&serde_json::json!({
                "error": { "kind": err.kind(), "message": err.to_string(), "exit_code": err.exit_code() }
            }));
        }
        if self.color {
            eprintln!("\x1b[1;31merror:\x1b[0m {err}");
        } else {
            eprintln!("error: {err}");
        }
    }

    pub fn warn(&self, msg: &str) {
        if self.color {
            eprintln!("\x1b[1;33mwarning:\x1b[0m {msg}");
        } else {
            eprintln!("warning: {msg}");
        }
    }
}
