//! The API's request and response bodies as types: what the handlers read and answer, and what the OpenAPI
//! document (`openapi.rs`) is generated from. Field order is the JSON's order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::engine::jobs::JobView;

/// The JSON error body of every 4xx / 5xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and how to fix it.
    pub error: String,
    /// A stable machine code (`malformed_json`, `unknown_field`, `bad_model_id`, `unknown_action`, …).
    pub code: String,
}

/// `POST /api/v1/models/download`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadRequest {
    /// `org/name` or `name`.
    // `RepoId::parse`'s rules: `org/name` or `name`, each part 1–96 of letters, digits, `-`, `_`, `.`, neither
    // starting nor ending with `-` or `.`, without `--` or `..`.
    #[schema(
        pattern = r"^(?!.*--)(?!.*\.\.)(?![-.])(?!.*[-.]/)(?!.*/[-.])(?!.*[-.]$)[A-Za-z0-9._-]{1,96}(/[A-Za-z0-9._-]{1,96})?$"
    )]
    pub model_id: String,
}

/// `POST /api/v1/models/download/manage`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManageRequest {
    /// `org/name` or `name`.
    // `RepoId::parse`'s rules: `org/name` or `name`, each part 1–96 of letters, digits, `-`, `_`, `.`, neither
    // starting nor ending with `-` or `.`, without `--` or `..`.
    #[schema(
        pattern = r"^(?!.*--)(?!.*\.\.)(?![-.])(?!.*[-.]/)(?!.*/[-.])(?!.*[-.]$)[A-Za-z0-9._-]{1,96}(/[A-Za-z0-9._-]{1,96})?$"
    )]
    pub model_id: String,
    /// `start`, `pause`, `resume` or `cancel`.
    #[schema(value_type = ManageAction)]
    pub action: String,
    /// Whole-download retries after a failure (default 3, at most 20).
    #[serde(default, deserialize_with = "integral")]
    #[schema(maximum = 20)]
    pub max_retries: Option<u32>,
}

/// What `download/manage` does (documentation only: the handler reads a string and names a wrong one).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum ManageAction {
    Start,
    Pause,
    Resume,
    Cancel,
}

/// One model in the legacy status map.
#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyModelStatus {
    pub available: bool,
    /// available, downloading, queued, paused, incomplete, corrupted or missing.
    pub status: String,
    pub size_bytes: u64,
    pub commit: Option<String>,
}

/// The legacy status map: every model in the store and on the watch list, by id.
pub type LegacyStatus = BTreeMap<String, LegacyModelStatus>;

/// The legacy download's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadStarted {
    /// `started` (202) or `already_downloading` (200).
    pub status: String,
    pub model_id: String,
    pub job_id: String,
}

/// One model's quick health check.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuickHealth {
    /// healthy, degraded, corrupted, incomplete, missing or unknown.
    pub state: String,
    pub reason: String,
    pub healthy: bool,
}

/// An alert of the health monitor.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    pub id: String,
    pub kind: String,
    /// info, warning or critical.
    pub severity: String,
    pub model_id: Option<String>,
    pub message: String,
    pub suggested_action: Option<String>,
    pub first_at: String,
    pub last_at: String,
    pub count: u64,
    pub acknowledged: bool,
    pub resolved: bool,
}

/// Storage use against the budget.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageView {
    pub used_bytes: u64,
    pub budget_bytes: u64,
    pub percent_of_budget: f64,
    pub disk_available_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    /// `storage.cleanup_threshold_percent`: use above it raises an alert.
    pub threshold_percent: u8,
    #[schema(value_type = String)]
    pub models_directory: std::path::PathBuf,
}

/// `GET /api/v1/models/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsHealth {
    /// `healthy` when every model is, else `degraded`.
    pub status: String,
    pub models: BTreeMap<String, QuickHealth>,
    /// Models by health state.
    pub summary: BTreeMap<String, u64>,
    /// The 20 most recent alerts.
    pub alerts: Vec<AlertView>,
    pub storage: StorageView,
    pub monitoring_enabled: bool,
}

/// The last health check of a model the monitor recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    pub state: String,
    pub reason: String,
    pub checked_at: String,
    /// quick or full.
    pub mode: String,
}

/// A model's download in flight or persisted.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadView {
    pub state: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub rate_bytes_per_sec: f64,
    pub eta_seconds: Option<f64>,
    pub error: Option<String>,
}

/// One model in the detailed status.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetailedModel {
    pub is_available: bool,
    /// available, downloading, queued, paused, incomplete, corrupted or missing.
    pub status: String,
    pub commit: Option<String>,
    pub requested_revision: Option<String>,
    pub size_bytes: u64,
    pub present_bytes: u64,
    pub files_total: u64,
    pub files_present: u64,
    /// verified, local_only, unverified or failed (null: no metadata).
    pub verification: Option<String>,
    pub last_verified_at: Option<String>,
    pub pipeline_tag: Option<String>,
    pub health: Option<HealthView>,
    pub download: Option<DownloadView>,
    /// True for a model on the watch list that is not in the store.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub watched: bool,
}

/// Counts over the detailed status.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetailedSummary {
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
}

/// `GET /api/v1/models/status/detailed`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetailedStatus {
    pub models: BTreeMap<String, DetailedModel>,
    pub summary: DetailedSummary,
}

/// The answer of `POST /api/v1/models/download/manage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManageAnswer {
    pub model_id: String,
    pub action: String,
    /// The job acted on (null: a cancel with no job).
    pub job_id: Option<String>,
    /// True when this request created the job.
    pub created: bool,
    pub job: Option<JobView>,
}

/// `GET /api/v1/downloads`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub downloads: Vec<JobView>,
}

/// `GET /api/v1/admin/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminHealth {
    /// Always `ok` when the server answers.
    pub status: String,
    pub version: String,
    pub uptime_seconds: f64,
    pub active_downloads: u64,
}

/// An optional whole number that JSON may write as `3` or `3.0` (JSON Schema's `integer` allows both).
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(x) if x.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&x) => {
            Ok(Some(x as u32))
        }
        Some(x) => Err(D::Error::custom(format!(
            "max_retries must be a whole number from 0 up, not {x}"
        ))),
    }
}

impl From<crate::engine::health::Alert> for AlertView {
    fn from(a: crate::engine::health::Alert) -> Self {
        AlertView {
            id: a.id,
            kind: a.kind,
            severity: wire_name(&a.severity),
            model_id: a.model_id,
            message: a.message,
            suggested_action: a.suggested_action,
            first_at: a.first_at,
            last_at: a.last_at,
            count: a.count,
            acknowledged: a.acknowledged,
            resolved: a.resolved,
        }
    }
}

/// A serde enum's wire name (`"local_only"`), for the string fields above.
pub fn wire_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
