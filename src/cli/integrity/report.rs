//! Printing a check's results: the table of models, the summary line, the JSON document and the report file.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::common::human_bytes;
use crate::cli::Ctx;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::events::HealthState;
use crate::engine::integrity::repair::RepairOutcome;
use crate::engine::integrity::verify::{self, ModelHealth};
use crate::engine::store::now_rfc3339;

/// A health state, coloured when the output is a terminal.
pub(super) fn paint(ctx: &Ctx, state: HealthState) -> String {
    let s = state.as_str();
    if !ctx.out.color {
        return s.to_string();
    }
    let code = match state {
        HealthState::Healthy => "32",
        HealthState::Degraded | HealthState::Unknown => "33",
        _ => "31",
    };
    format!("\x1b[{code}m{s:<10}\x1b[0m")
}

/// One line per model: state, files, size, reason.
pub(super) fn print_table(ctx: &Ctx, models: &[ModelHealth]) {
    let w = models
        .iter()
        .map(|m| m.model_id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<w$}  {:<10}  {:>9}  {:>9}  REASON",
        "MODEL", "STATE", "FILES", "SIZE"
    );
    for m in models {
        let state = paint(ctx, m.state);
        let files = if m.files_expected > 0 {
            format!("{}/{}", m.files_ok, m.files_expected)
        } else {
            "-".to_string()
        };
        println!(
            "{:<w$}  {:<10}  {:>9}  {:>9}  {}",
            m.model_id,
            state,
            files,
            human_bytes(m.total_bytes),
            m.reason
        );
    }
}

/// `N models: a healthy, b corrupted, …`.
pub(super) fn summary_line(models: &[ModelHealth]) -> String {
    let counts = verify::count_states(models);
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    format!(
        "{} model{}: {}",
        models.len(),
        if models.len() == 1 { "" } else { "s" },
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    )
}

#[derive(Serialize)]
struct CheckDocument<'a> {
    generated_at: String,
    ema_version: &'static str,
    models_directory: PathBuf,
    mode: verify::CheckMode,
    all_healthy: bool,
    summary: std::collections::BTreeMap<&'static str, usize>,
    bytes_hashed: u64,
    seconds: f64,
    sha_ni: bool,
    threads: usize,
    #[serde(skip_serializing_if = "<[RepairOutcome]>::is_empty")]
    repairs: &'a [RepairOutcome],
    models: &'a [ModelHealth],
}

/// Exit 0 when every model is healthy, else the integrity exit code.
pub(super) fn exit_for(models: &[ModelHealth]) -> i32 {
    if models.iter().all(|m| m.is_healthy()) {
        exit::OK
    } else {
        exit::INTEGRITY
    }
}

#[allow(clippy::too_many_arguments)]
/// Print a check's results (table, summary, throughput, issues) or its JSON document, and write the report.
pub(super) fn print_check(
    ctx: &Ctx,
    dir: &Path,
    models: &[ModelHealth],
    mode: verify::CheckMode,
    secs: f64,
    hashed: u64,
    report: Option<&Path>,
    repairs: &[RepairOutcome],
) -> Result<()> {
    let doc = CheckDocument {
        repairs,
        generated_at: now_rfc3339(),
        ema_version: env!("CARGO_PKG_VERSION"),
        models_directory: dir.to_path_buf(),
        mode,
        all_healthy: models.iter().all(|m| m.is_healthy()),
        summary: verify::count_states(models),
        bytes_hashed: hashed,
        seconds: secs,
        sha_ni: crate::engine::integrity::hash::sha_ni_available(),
        threads: crate::engine::integrity::hash::default_threads(),
        models,
    };
    if let Some(p) = report {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| EmaError::io("cannot create directory", parent, e))?;
        }
        crate::engine::atomic::write_json_atomic(p, &doc)?;
    }
    if ctx.out.json {
        ctx.out.json(&doc);
        return Ok(());
    }
    for r in repairs {
        match &r.error {
            None => println!(
                "repaired {}: replaced {} file{}{} (from a verified local copy or the hub)",
                r.model_id,
                r.redownloaded.len(),
                if r.redownloaded.len() == 1 { "" } else { "s" },
                if r.strays_removed.is_empty() {
                    String::new()
                } else {
                    format!(", removed {} stray file(s)", r.strays_removed.len())
                }
            ),
            Some(e) => println!("repair of {} FAILED: {e}", r.model_id),
        }
    }
    print_table(ctx, models);
    println!();
    println!("{}", summary_line(models));
    if mode == verify::CheckMode::Full {
        let rate = if secs > 0.0 {
            hashed as f64 / secs
        } else {
            0.0
        };
        println!(
            "{} hashed in {secs:.2} s ({}/s, {} thread{}, SHA-NI {})",
            human_bytes(hashed),
            human_bytes(rate as u64),
            doc.threads,
            if doc.threads == 1 { "" } else { "s" },
            if doc.sha_ni { "on" } else { "off" }
        );
    } else {
        println!(
            "quick check (existence, size, mtime) in {:.1} ms",
            secs * 1e3
        );
    }
    if let Some(p) = report {
        let abs = std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or(p.to_path_buf());
        println!("report written to {}", abs.display());
    }
    for m in models.iter().filter(|m| !m.is_healthy()) {
        for i in m.issues.iter().filter(|i| !i.path.is_empty()) {
            println!("  {} {}: {}", m.model_id, i.path, i.detail);
        }
    }
    Ok(())
}
