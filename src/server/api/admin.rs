//! `POST /api/v1/admin/test-alerts`: raise or resolve a test alert through the engine's real alert path
//! (`engine::monitoring::test_alerts`: the alert history, `model_health_alert` on the WebSocket, the `/metrics`
//! alert gauges). State-changing, so behind the token and the Origin check like every POST. A raised test alert
//! resolves itself after `auto_resolve_seconds` (default 300, at most 3600) unless resolved before.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiContext;
use super::error::{ApiError, StrictJson};
use super::types::{AlertView, ErrorBody};
use crate::engine::monitoring::test_alerts::{
    self, DEFAULT_AUTO_RESOLVE_SECONDS, MAX_AUTO_RESOLVE_SECONDS,
};

/// `POST /api/v1/admin/test-alerts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestAlertsRequest {
    /// `raise` or `resolve`.
    #[schema(value_type = TestAlertsAction)]
    pub action: String,
    /// The run: given to `resolve` (none: every open test alert); `raise` makes a fresh one when none is given.
    #[schema(pattern = "^[A-Za-z0-9-]{1,32}$")]
    #[serde(default)]
    pub run_id: Option<String>,
    /// `raise`: resolve the alert by itself after this many seconds (default 300, 1 to 3600).
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(minimum = 1, maximum = 3600)]
    pub auto_resolve_seconds: Option<u64>,
}

/// What `test-alerts` does (documentation only: the handler reads a string and names a wrong one).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum TestAlertsAction {
    Raise,
    Resolve,
}

/// The answer: the run and the alerts raised or resolved.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestAlertsAnswer {
    pub action: String,
    /// The run (none: `resolve` of every test alert).
    pub run_id: Option<String>,
    /// The alert raised, or the alerts resolved.
    pub alerts: Vec<AlertView>,
    /// `raise`: when it resolves itself.
    pub auto_resolve_seconds: Option<u64>,
}

fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(x) if x.fract() == 0.0 && (0.0..=1e15).contains(&x) => Ok(Some(x as u64)),
        Some(x) => Err(D::Error::custom(format!(
            "auto_resolve_seconds must be a whole number of seconds, not {x}"
        ))),
    }
}

/// Raise or resolve a test alert.
#[utoipa::path(post, path = "/api/v1/admin/test-alerts", tag = "admin",
    request_body = TestAlertsRequest,
    responses(
        (status = 200, description = "the test alert raised (published on the WebSocket as model_health_alert), \
         or the test alerts resolved", body = TestAlertsAnswer),
        (status = 400, description = "malformed JSON, an unknown field or action, a bad run_id or \
         auto_resolve_seconds", body = ErrorBody),
        (status = 401, description = "a token is configured and the request has none or another", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = ErrorBody),
        (status = 413, description = "the body is over 64 KiB", body = ErrorBody),
        (status = 500, description = "the alert history could not be written", body = ErrorBody),
    ))]
pub async fn test_alerts(
    State(ctx): State<Arc<ApiContext>>,
    StrictJson(body): StrictJson<TestAlertsRequest>,
) -> Result<Json<TestAlertsAnswer>, ApiError> {
    if let Some(r) = &body.run_id {
        test_alerts::check_run_id(r)
            .map_err(|e| ApiError::bad_request("bad_run_id", e.to_string()))?;
    }
    match body.action.as_str() {
        "raise" => {
            let secs = body
                .auto_resolve_seconds
                .unwrap_or(DEFAULT_AUTO_RESOLVE_SECONDS);
            if !(1..=MAX_AUTO_RESOLVE_SECONDS).contains(&secs) {
                return Err(ApiError::bad_request(
                    "bad_auto_resolve_seconds",
                    format!(
                        "auto_resolve_seconds {secs} is outside 1..={MAX_AUTO_RESOLVE_SECONDS}"
                    ),
                ));
            }
            let run = body.run_id.unwrap_or_else(test_alerts::new_run_id);
            let engine = ctx.engine.clone();
            let r = run.clone();
            let alert = tokio::task::spawn_blocking(move || {
                test_alerts::raise(&engine.alerts(), engine.bus(), &r)
            })
            .await
            .map_err(|e| {
                ApiError::from(crate::engine::EmaError::Other(format!(
                    "the task failed: {e}"
                )))
            })??;
            // The health answer (alerts) is cached between changes: it must show this one.
            ctx.status.invalidate();
            // Resolved by itself after a bounded time, unless the caller resolved it (or a newer run took it over).
            let engine = ctx.engine.clone();
            let status = ctx.status.clone();
            let r = run.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                let _ = tokio::task::spawn_blocking(move || {
                    test_alerts::resolve(&engine.alerts(), engine.bus(), Some(&r))
                })
                .await;
                status.invalidate();
            });
            Ok(Json(TestAlertsAnswer {
                action: body.action,
                run_id: Some(run),
                alerts: vec![AlertView::from(alert)],
                auto_resolve_seconds: Some(secs),
            }))
        }
        "resolve" => {
            let engine = ctx.engine.clone();
            let run = body.run_id.clone();
            let done = tokio::task::spawn_blocking(move || {
                test_alerts::resolve(&engine.alerts(), engine.bus(), run.as_deref())
            })
            .await
            .map_err(|e| {
                ApiError::from(crate::engine::EmaError::Other(format!(
                    "the task failed: {e}"
                )))
            })??;
            ctx.status.invalidate();
            Ok(Json(TestAlertsAnswer {
                action: body.action,
                run_id: body.run_id,
                alerts: done.into_iter().map(AlertView::from).collect(),
                auto_resolve_seconds: None,
            }))
        }
        other => Err(ApiError::bad_request(
            "unknown_action",
            format!("unknown action {other:?}; use \"raise\" or \"resolve\""),
        )),
    }
}
