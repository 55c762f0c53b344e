//! `ema health`: a quick check of every model, storage use, the monitor's settings and the alert history.

use super::args::HealthArgs;
use super::check::run_quick;
use super::common::{human_bytes, open_models};
use super::report::{exit_for, print_table, summary_line};
use crate::cli::Ctx;
use crate::engine::error::{EmaError, Result, exit};
use crate::engine::health::{self, AlertStore, HealthSnapshot};
use crate::engine::integrity::verify;

pub fn health_cmd(a: HealthArgs, ctx: &Ctx) -> Result<i32> {
    let (loaded, dir, store) = open_models(ctx, a.models_dir.as_deref())?;
    let alerts = AlertStore::new(&store);
    if let Some(id) = &a.acknowledge {
        let n = alerts.acknowledge(id)?;
        if n == 0 && id != "all" {
            return Err(EmaError::NotFound(format!(
                "no unacknowledged alert with id {id}; `ema health` lists them"
            )));
        }
        if ctx.out.json {
            ctx.out.json(&serde_json::json!({"acknowledged": n}));
        } else {
            println!("acknowledged {n} alert{}", if n == 1 { "" } else { "s" });
        }
        return Ok(exit::OK);
    }
    let (models, secs) = run_quick(&store)?;
    let snap = HealthSnapshot::load(&store);
    let recent = alerts.recent(a.alerts)?;
    let usage = health::storage_usage(&store, &loaded.config);
    let monitor_enabled = health::HealthMonitor::enabled(&loaded.config);
    if ctx.out.json {
        let models_json: Vec<serde_json::Value> = models
            .iter()
            .map(|m| {
                let last = snap
                    .models
                    .get(&m.model_id)
                    .filter(|s| s.mode == verify::CheckMode::Full);
                serde_json::json!({
                    "model_id": m.model_id,
                    "state": m.state,
                    "reason": m.reason,
                    "issues": m.issues,
                    "total_bytes": m.total_bytes,
                    "verification": m.verification,
                    "last_full_check": last.map(|l| serde_json::json!({
                        "state": l.state, "reason": l.reason, "checked_at": l.checked_at,
                        "read_bytes_per_sec": l.read_bytes_per_sec,
                        "load_time_estimate_seconds": l.load_time_estimate_seconds,
                    })),
                })
            })
            .collect();
        ctx.out.json(&serde_json::json!({
            "models_directory": dir,
            "checked_in_ms": secs * 1e3,
            "summary": verify::count_states(&models),
            "models": models_json,
            "alerts": recent,
            "storage": usage,
            "monitoring_enabled": monitor_enabled,
        }));
    } else {
        print_table(ctx, &models);
        println!();
        println!("{}", summary_line(&models));
        println!(
            "storage: {} used of a {} budget ({:.0}%, alert at {}%){}",
            human_bytes(usage.used_bytes),
            human_bytes(usage.budget_bytes),
            usage.percent_of_budget,
            usage.threshold_percent,
            match (usage.percent_of_disk, usage.disk_available_bytes) {
                (Some(p), Some(av)) => format!("; disk {p:.0}% full, {} free", human_bytes(av)),
                _ => String::new(),
            }
        );
        println!(
            "health monitoring: {}",
            if monitor_enabled {
                "enabled in the configuration (runs inside the engine of long-running faces)"
            } else {
                "disabled in the configuration"
            }
        );
        if recent.is_empty() {
            println!("alerts: none");
        } else {
            println!("recent alerts (newest first):");
            for al in &recent {
                println!(
                    "  [{}] {:<8} {}{}{} (x{}, last {}){}",
                    al.id,
                    format!("{:?}", al.severity).to_lowercase(),
                    al.message,
                    if al.acknowledged {
                        " [acknowledged]"
                    } else {
                        ""
                    },
                    if al.resolved { " [resolved]" } else { "" },
                    al.count,
                    al.last_at,
                    al.suggested_action
                        .as_ref()
                        .map(|s| format!("\n      → {s}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(exit_for(&models))
}
