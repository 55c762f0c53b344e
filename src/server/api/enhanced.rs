//! The enhanced endpoints: `GET /api/v1/models/status/detailed`, `POST /api/v1/models/download/manage`
//! (start / pause / resume / cancel, `max_retries`), `GET /api/v1/downloads`, `GET /api/v1/downloads/{job}` and
//! `GET /api/v1/admin/health` (the one route served without a token). Each handler carries its OpenAPI
//! description (`#[utoipa::path]`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiContext;
use super::error::{ApiError, StrictJson, model_id};
use super::types::{AdminHealth, DetailedStatus, ErrorBody, JobList, ManageAnswer, ManageRequest};
use crate::engine::jobs::{JobView, MAX_RETRIES_LIMIT};

/// `max_retries` when the request does not say.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// Every model with its files, verification, health and download.
#[utoipa::path(get, path = "/api/v1/models/status/detailed", tag = "enhanced",
    responses(
        (status = 200, description = "every model in the store and on the watch list", body = DetailedStatus),
        (status = 401, description = "a token is configured and the request has none or another", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = ErrorBody),
        (status = 500, description = "the store could not be read", body = ErrorBody),
    ))]
pub async fn detailed(State(ctx): State<Arc<ApiContext>>) -> Response {
    ctx.status.status().await.detailed.response()
}

/// Start, pause, resume or cancel a model's download job.
#[utoipa::path(post, path = "/api/v1/models/download/manage", tag = "enhanced",
    request_body = ManageRequest,
    responses(
        (status = 202, description = "a job started", body = ManageAnswer),
        (status = 200, description = "the action was applied to the model's job", body = ManageAnswer),
        (status = 400, description = "malformed JSON, an unknown field or action, a bad model id or max_retries",
         body = ErrorBody),
        (status = 401, description = "a token is configured and the request has none or another", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = ErrorBody),
        (status = 404, description = "pause or resume of a model with no job", body = ErrorBody),
        (status = 409, description = "the action does not apply to the job's state", body = ErrorBody),
        (status = 413, description = "the body is over 64 KiB", body = ErrorBody),
    ))]
pub async fn manage(
    State(ctx): State<Arc<ApiContext>>,
    StrictJson(body): StrictJson<ManageRequest>,
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
    ctx.status.invalidate();
    let answer = ManageAnswer {
        model_id: repo.to_string(),
        action: body.action,
        job_id: job.as_ref().map(|j| j.job_id.clone()),
        created,
        job,
    };
    Ok((status, Json(answer)).into_response())
}

/// Every download job, running and recently finished.
#[utoipa::path(get, path = "/api/v1/downloads", tag = "enhanced",
    responses(
        (status = 200, description = "the jobs (the last 256 finished ones kept)", body = JobList),
        (status = 401, description = "a token is configured and the request has none or another", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = ErrorBody),
    ))]
pub async fn list_jobs(State(ctx): State<Arc<ApiContext>>) -> Json<JobList> {
    Json(JobList {
        downloads: ctx.jobs.list(),
    })
}

/// One download job.
#[utoipa::path(get, path = "/api/v1/downloads/{job}", tag = "enhanced",
    params(("job" = String, Path, description = "the job id")),
    responses(
        (status = 200, description = "the job", body = JobView),
        (status = 401, description = "a token is configured and the request has none or another", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = ErrorBody),
        (status = 404, description = "no job with this id", body = ErrorBody),
    ))]
pub async fn one_job(
    State(ctx): State<Arc<ApiContext>>,
    Path(job): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    match ctx.jobs.get(&job) {
        Some(v) => Ok(Json(v)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_job",
            "no download job with this id (finished jobs are kept until 256 newer ones finished); \
             GET /api/v1/downloads lists them",
        )),
    }
}

/// Liveness for load balancers and `systemctl` checks: no model data, no token needed.
#[utoipa::path(get, path = "/api/v1/admin/health", tag = "admin", security(()),
    responses(
        (status = 200, description = "the server answers", body = AdminHealth),
        (status = 403, description = "Host not allowed", body = ErrorBody),
    ))]
pub async fn admin_health(State(ctx): State<Arc<ApiContext>>) -> Json<AdminHealth> {
    Json(AdminHealth {
        status: "ok".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_seconds: ctx.started.elapsed().as_secs_f64(),
        active_downloads: ctx.jobs.active_count() as u64,
    })
}
