//! The enhanced endpoints: `GET /api/v1/models/status/detailed`, `POST /api/v1/models/download/manage`
//! (start / pause / resume / cancel, `max_retries`), `GET /api/v1/downloads`, `GET /api/v1/downloads/{job}` and
//! `GET /api/v1/admin/health` (the one route served without a token).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiContext;
use super::error::{ApiError, StrictJson, model_id};
use super::legacy::blocking;
use super::views;
use crate::engine::jobs::MAX_RETRIES_LIMIT;

/// `max_retries` when the request does not say.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

pub fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/v1/models/status/detailed", get(detailed))
        .route("/api/v1/models/download/manage", post(manage))
        .route("/api/v1/downloads", get(list_jobs))
        .route("/api/v1/downloads/{job}", get(one_job))
}

async fn detailed(State(ctx): State<Arc<ApiContext>>) -> Result<Json<Value>, ApiError> {
    blocking(&ctx, views::detailed_status).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManageBody {
    model_id: String,
    action: String,
    #[serde(default)]
    max_retries: Option<u32>,
}

async fn manage(
    State(ctx): State<Arc<ApiContext>>,
    StrictJson(body): StrictJson<ManageBody>,
) -> Result<Response, ApiError> {
    let repo = model_id(&body.model_id)?;
    let retries = body.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
    if retries > MAX_RETRIES_LIMIT {
        return Err(ApiError::bad_request(
            "bad_max_retries",
            format!(
                "max_retries {retries} is over the limit of {MAX_RETRIES_LIMIT}; ask for fewer"
            ),
        ));
    }
    let (status, job, created) = match body.action.as_str() {
        "start" => {
            let s = ctx.jobs.start(&repo, retries)?;
            let st = if s.created {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            (st, Some(s.job), s.created)
        }
        "pause" => (StatusCode::OK, Some(ctx.jobs.pause(&repo)?), false),
        "resume" => {
            let s = ctx.jobs.resume(&repo, retries)?;
            (StatusCode::OK, Some(s.job), s.created)
        }
        "cancel" => (StatusCode::OK, ctx.jobs.cancel(&repo)?, false),
        other => {
            return Err(ApiError::bad_request(
                "unknown_action",
                format!(
                    "unknown action {other:?}; use one of \"start\", \"pause\", \"resume\", \"cancel\""
                ),
            ));
        }
    };
    Ok((
        status,
        Json(json!({
            "model_id": repo.to_string(),
            "action": body.action,
            "job_id": job.as_ref().map(|j| j.job_id.clone()),
            "created": created,
            "job": job,
        })),
    )
        .into_response())
}

async fn list_jobs(State(ctx): State<Arc<ApiContext>>) -> Json<Value> {
    Json(json!({"downloads": ctx.jobs.list()}))
}

async fn one_job(
    State(ctx): State<Arc<ApiContext>>,
    Path(job): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match ctx.jobs.get(&job) {
        Some(v) => Ok(Json(serde_json::to_value(v).unwrap_or(Value::Null))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_job",
            "no download job with this id (finished jobs are kept until 256 newer ones finished); \
             GET /api/v1/downloads lists them",
        )),
    }
}

/// Liveness for load balancers and `systemctl` checks: no model data, no token needed.
pub async fn admin_health(State(ctx): State<Arc<ApiContext>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": ctx.started.elapsed().as_secs_f64(),
        "active_downloads": ctx.jobs.active_count(),
    }))
}
