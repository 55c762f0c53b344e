//! The arguments of the integrity and storage commands.

use std::path::PathBuf;

use clap::Args;

/// Where `--generate-report` writes, relative to the working directory.
pub const REPORT_PATH: &str = "reports/model_integrity_report.json";

#[derive(Debug, Args)]
pub struct GenerateMetadataArgs {
    /// Models directory (default: `storage.models_directory` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Rewrite metadata that already exists.
    #[arg(long)]
    pub force_regenerate: bool,
    /// Report a model that fails and continue with the others (default: stop with exit 1).
    #[arg(long)]
    pub ignore_errors: bool,
    /// Do not ask the hub for expected hashes (also implied by HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Models directory (default: `storage.models_directory` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Write reports/model_integrity_report.json (relative to the working directory).
    #[arg(long)]
    pub generate_report: bool,
    /// Re-download only the corrupted or missing files from the hub (resume engine), then verify again.
    #[arg(long)]
    pub repair_corrupted: bool,
    /// With repair: also delete stray files (refused when storage.shared_storage is on).
    #[arg(long)]
    pub remove_stray_files: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Models directory (default: `storage.models_directory` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Existence, size and modification time only (no hashing): milliseconds for thousands of models.
    #[arg(long)]
    pub quick: bool,
    /// Repair what the check finds (re-download bad or missing files), then verify again.
    #[arg(long)]
    pub repair_if_needed: bool,
    /// With repair: also delete stray files (refused when storage.shared_storage is on).
    #[arg(long)]
    pub remove_stray_files: bool,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Models directory (default: `storage.models_directory` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Acknowledge an alert by id (or `all`).
    #[arg(long, value_name = "ID")]
    pub acknowledge: Option<String>,
    /// How many recent alerts to show.
    #[arg(long, default_value_t = 20)]
    pub alerts: usize,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Models directory (default: `storage.models_directory` of the configuration).
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// Remove stale partial downloads and temp files in `.ema/` (older than --temp-age-hours and not locked by a
    /// running download).
    #[arg(long)]
    pub remove_temp_files: bool,
    /// Remove log files older than --log-age-days from `.ema/logs` and `<cache>/logs`.
    #[arg(long)]
    pub remove_old_logs: bool,
    /// gzip timestamped configuration backups (`*.bak*`, `*.backup*`) beside the configuration and in
    /// `<cache>/backups`.
    #[arg(long)]
    pub compress_backups: bool,
    /// Only say what would be done.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, default_value_t = 24.0, value_name = "HOURS")]
    pub temp_age_hours: f64,
    #[arg(long, default_value_t = 14.0, value_name = "DAYS")]
    pub log_age_days: f64,
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// Current models directory.
    #[arg(long, value_name = "DIR")]
    pub source: PathBuf,
    /// New models directory (created if needed; may be on another filesystem).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    /// Point `storage.models_directory` of the configuration file in force at the target.
    #[arg(long)]
    pub update_config: bool,
}
