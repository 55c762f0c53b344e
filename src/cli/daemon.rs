//! What makes `ema start` a good daemon: the configuration reloaded on SIGHUP (validated first — an invalid file
//! keeps the one in force and every problem is logged; what can change live is applied, the rest is named as
//! needing a restart), and log lines on stderr that journald keeps well: one event per line, a level prefix
//! (`<3>`/`<4>`/`<6>` when stderr is the journal, `error:`/`warning:`/`info:` otherwise), never colour.

use std::path::PathBuf;

use crate::engine::config::{self, Config, diff::changed_keys, validate};
use crate::engine::download::disk::human_bytes;
use crate::engine::events::{Event, EventBus, Severity};
use crate::server::start::ApiServer;

/// Configuration keys a reload applies while the server runs (kept in the engine, where advice reads it too).
pub use crate::engine::config::LIVE_KEYS;

/// One log line on stderr with its level prefix.
pub fn log(level: Severity, msg: &str) {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let prefix = match (journal, level) {
        (true, Severity::Critical) => "<3>",
        (true, Severity::Warning) => "<4>",
        (true, Severity::Info) => "<6>",
        (false, Severity::Critical) => "error: ",
        (false, Severity::Warning) => "warning: ",
        (false, Severity::Info) => "info: ",
    };
    // One event, one line: embedded newlines would split it in the journal.
    eprintln!("{prefix}{}", msg.replace('\n', " "));
}

/// The line an engine event is logged as (progress and per-file events are too chatty for a log: none).
pub fn event_line(e: &Event) -> Option<(Severity, String)> {
    use Severity::*;
    Some(match e {
        Event::DownloadStarted { model_id, commit } => (
            Info,
            format!(
                "download started: {model_id} at {}",
                &commit[..commit.len().min(12)]
            ),
        ),
        Event::DownloadFinished {
            model_id,
            bytes,
            seconds,
            ..
        } => (
            Info,
            format!(
                "download finished: {model_id}, {} fetched in {seconds:.1} s",
                human_bytes(*bytes)
            ),
        ),
        Event::DownloadFailed {
            model_id, error, ..
        } => (Critical, format!("download failed: {model_id}: {error}")),
        Event::Retry {
            model_id,
            path,
            attempt,
            delay_ms,
            reason,
        } => (
            Warning,
            format!("retry {attempt} of {model_id}/{path} in {delay_ms} ms: {reason}"),
        ),
        Event::DownloadPaused { model_id } => (Info, format!("download paused: {model_id}")),
        Event::DownloadResumed { model_id } => (Info, format!("download resumed: {model_id}")),
        Event::DownloadCancelled { model_id } => (Info, format!("download cancelled: {model_id}")),
        Event::HealthAlert {
            severity,
            model_id,
            message,
            ..
        } => (
            *severity,
            format!(
                "health alert{}: {message}",
                model_id
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
        ),
        Event::Log { level, message } => (*level, message.clone()),
        _ => return None,
    })
}

/// Log the engine's events until the bus closes; events missed under load are counted, not hidden.
pub fn spawn_event_log(bus: &EventBus) -> tokio::task::JoinHandle<()> {
    let mut rx = bus.subscribe();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some((level, line)) = event_line(&e) {
                        log(level, &line);
                    }
                }
                Err(RecvError::Lagged(n)) => log(
                    Severity::Warning,
                    &format!("{n} engine event(s) not logged (the log fell behind)"),
                ),
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// Reloads the configuration file in force on SIGHUP.
pub struct Reloader {
    path: Option<PathBuf>,
    /// What is in force: the configuration loaded at start with the live changes of later reloads applied.
    in_force: Config,
    /// `EMA_API_TOKEN` is set: it wins over `api.token` of any file.
    env_token: Option<String>,
}

impl Reloader {
    pub fn new(path: Option<PathBuf>, in_force: Config, env_token: Option<String>) -> Self {
        Reloader {
            path,
            in_force,
            env_token,
        }
    }

    /// Read, validate and apply the file; the lines to log. Never changes anything when the file is not valid.
    pub fn reload(&mut self, server: &ApiServer) -> Vec<(Severity, String)> {
        use Severity::*;
        let Some(path) = self.path.clone() else {
            return vec![(
                Warning,
                "reload: no configuration file is in force (built-in defaults); nothing to reload"
                    .into(),
            )];
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                return vec![(
                    Critical,
                    format!(
                        "reload refused: cannot read {}: {e}; the configuration in force is kept",
                        path.display()
                    ),
                )];
            }
        };
        let v = validate::validate_text(&text);
        if !v.is_valid() {
            let mut out = vec![(
                Critical,
                format!(
                    "reload refused: {} problem(s) in {}; the configuration in force is kept (fix them, then send \
                     SIGHUP again: systemctl reload enhanced-model-availability)",
                    v.problems.len(),
                    path.display()
                ),
            )];
            out.extend(v.problems.iter().map(|p| (Warning, p.human(&path))));
            return out;
        }
        let new = match config::load(Some(&path)) {
            Ok(l) => l.config,
            Err(e) => {
                return vec![(
                    Critical,
                    format!("reload refused: {e}; the configuration in force is kept"),
                )];
            }
        };
        let changed = changed_keys(&self.in_force, &new);
        if changed.is_empty() {
            return vec![(
                Info,
                format!("reloaded {}: nothing changed", path.display()),
            )];
        }
        let (live, restart): (Vec<String>, Vec<String>) = changed
            .into_iter()
            .partition(|k| LIVE_KEYS.contains(&k.as_str()));
        let mut out = Vec::new();
        if !live.is_empty() {
            let token = self
                .env_token
                .clone()
                .or_else(|| new.api.token.clone().filter(|t| !t.is_empty()));
            match server.update_security(
                token.as_deref(),
                &new.api.allowed_hosts,
                &new.api.allowed_origins,
            ) {
                Ok(()) => {
                    self.in_force.api.token = new.api.token.clone();
                    self.in_force.api.allowed_hosts = new.api.allowed_hosts.clone();
                    self.in_force.api.allowed_origins = new.api.allowed_origins.clone();
                    out.push((
                        Info,
                        format!(
                            "reloaded {}: applied live: {}{}",
                            path.display(),
                            live.join(", "),
                            if self.env_token.is_some() && live.iter().any(|k| k == "api.token") {
                                " (EMA_API_TOKEN is set and stays the token)"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                Err(e) => out.push((
                    Critical,
                    format!("reload: {e}; the security settings in force are kept"),
                )),
            }
        }
        if !restart.is_empty() {
            out.push((
                Warning,
                format!(
                    "changed in {} but needs a restart to take effect: {} (systemctl restart \
                     enhanced-model-availability)",
                    path.display(),
                    restart.join(", ")
                ),
            ));
        }
        out
    }
}
