//! The machine: system requirements (disk and memory from the OS), the installed binary, and the system summary
//! a backup keeps.

use std::io::Read;

use crate::engine::inventory;
use crate::engine::migration::context::{MigrationContext, StepOutcome};
use crate::engine::store::now_rfc3339;

pub(super) const GB: u64 = 1_000_000_000;

/// Free disk space at the models directory and memory against the minimums and recommendations.
pub(super) fn system_requirements(ctx: &MigrationContext) -> StepOutcome {
    let mut log = Vec::new();
    let mut ok = true;
    let mut warnings = 0;
    match inventory::disk_space(ctx.store.root()) {
        Ok(d) => {
            let free = d.available_bytes as f64 / GB as f64;
            log.push(format!(
                "disk: {free:.1} GB free at {} (minimum 50 GB, recommended 200 GB)",
                ctx.store.root().display()
            ));
            if d.available_bytes < 50 * GB {
                ok = false;
                log.push("disk: below the 50 GB minimum; free space or move the store".into());
            } else if d.available_bytes < 200 * GB {
                warnings += 1;
            }
        }
        Err(e) => {
            ok = false;
            log.push(format!("disk: {e}"));
        }
    }
    match mem_total_bytes() {
        Some(m) => {
            log.push(format!(
                "memory: {:.1} GB (minimum 8 GB, recommended 16 GB)",
                m as f64 / (1u64 << 30) as f64
            ));
            if m < 8 * (1 << 30) - (512 << 20) {
                ok = false;
                log.push("memory: below the 8 GB minimum".into());
            } else if m < 16 * (1 << 30) - (512 << 20) {
                warnings += 1;
            }
        }
        None => log.push("memory: cannot read /proc/meminfo; check by hand".into()),
    }
    log.push("network: shown live in the console's status bar (hub online/offline)".into());
    if ok {
        StepOutcome::ok(
            if warnings > 0 {
                format!("minimums met; {warnings} below the recommendation")
            } else {
                "minimums and recommendations met".to_string()
            },
            log,
        )
    } else {
        StepOutcome::fail("below the minimum requirements (see the log)", log)
    }
}

/// The running binary's version and path.
pub(super) fn installed() -> StepOutcome {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("(unknown: {e})"));
    StepOutcome::ok(
        format!("ema {} at {exe}", env!("CARGO_PKG_VERSION")),
        vec![format!("binary: {exe}")],
    )
}

pub(super) fn system_info(ctx: &MigrationContext) -> String {
    let kernel = std::fs::read_to_string("/proc/version").unwrap_or_default();
    let disk = inventory::disk_space(ctx.store.root())
        .map(|d| {
            format!(
                "{:.1} GB free of {:.1} GB",
                d.available_bytes as f64 / GB as f64,
                d.total_bytes as f64 / GB as f64
            )
        })
        .unwrap_or_else(|e| e.to_string());
    let mem = mem_total_bytes()
        .map(|m| format!("{:.1} GB", m as f64 / (1u64 << 30) as f64))
        .unwrap_or_else(|| "unknown".into());
    format!(
        "=== System Info ===\n{}\n=== ema ===\n{}\n=== Disk (models directory) ===\n{disk}\n=== Memory ===\n{mem}\n\
         === Taken at ===\n{}\n",
        kernel.trim(),
        env!("CARGO_PKG_VERSION"),
        now_rfc3339()
    )
}

fn mem_total_bytes() -> Option<u64> {
    let mut s = String::new();
    std::fs::File::open("/proc/meminfo")
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
