//! `GET /api/v1/models/analytics[?since=DURATION|DATE]`: the usage-analytics summary `ema analytics` prints (top
//! models by requests and bytes, fallback rate and substitutes taken, download success, durations and rates, alerts,
//! dropped events), read from the configured database. 503 `analytics_off` when recording is off.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::ApiContext;
use super::error::ApiError;
use super::types::ErrorBody;
use crate::engine::analytics::{self, AnalyticsSummary};

/// The window.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// A duration back from now (`90s`, `30m`, `24h`, `7d`, `2w`) or a date (`2024-01-01`,
    /// `2024-01-01T12:00:00Z`); all time when absent.
    #[param(
        pattern = r"^([1-9][0-9]{0,5}[smhdw]|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z)?)$"
    )]
    pub since: Option<String>,
}

/// The summary (the same document as `ema analytics --json`).
#[derive(ToSchema)]
#[schema(as = AnalyticsSummary)]
#[allow(dead_code)]
pub struct SummaryDoc {
    /// The database (password redacted).
    database: String,
    schema_version: i64,
    /// Start of the window, milliseconds since the epoch (absent: all time).
    since_ms: Option<i64>,
    /// Events in the window.
    events: u64,
    #[schema(value_type = Vec<Object>)]
    top_by_requests: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    top_by_bytes: Vec<Value>,
    #[schema(value_type = Object)]
    fallback: Value,
    #[schema(value_type = Object)]
    downloads: Value,
    #[schema(value_type = Vec<Object>)]
    alerts_by_kind: Vec<Value>,
    dropped_total: u64,
}

#[utoipa::path(get, path = "/api/v1/models/analytics", tag = "enhanced",
    params(AnalyticsQuery),
    responses(
        (status = 200, description = "the usage-analytics summary of the window", body = SummaryDoc),
        (status = 400, description = "`since` is neither a duration nor a date", body = ErrorBody),
        (status = 401, description = "a token is configured and the request has none or another", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = ErrorBody),
        (status = 503, description = "usage analytics is off, or its database does not answer", body = ErrorBody),
    ))]
pub async fn summary(
    State(ctx): State<Arc<ApiContext>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AnalyticsSummary>, ApiError> {
    // Read by hand so that every malformed query gets the API's JSON error.
    let mut q = AnalyticsQuery { since: None };
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if k == "since" {
            if q.since.is_some() {
                return Err(ApiError::bad_request(
                    "bad_request",
                    "`since` is given more than once; give it once",
                ));
            }
            q.since = Some(v.into_owned());
        }
    }
    let config = ctx.engine.config();
    if !analytics::enabled(config) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "analytics_off",
            "usage analytics is off on this server (analytics.enabled and features.usage_analytics)",
        ));
    }
    let since = match q.since.as_deref() {
        Some(s) => Some(analytics::parse_since(s, analytics::record::now_ms())?),
        None => None,
    };
    let db = analytics::open(None, config).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "analytics_unavailable",
            e.to_string(),
        )
    })?;
    let s = analytics::report::summary(&db, since).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "analytics_unavailable",
            e.to_string(),
        )
    })?;
    Ok(Json(s))
}
