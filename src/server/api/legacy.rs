//! The legacy endpoints, shaped as the migration guide's legacy client reads them: `GET /api/v1/models/status`
//! (`{"<id>": {"available": bool, …}}`), `POST /api/v1/models/download` (`{"model_id"}`) and
//! `GET /api/v1/models/health` (the two GETs answered from the status cache). Each handler carries its OpenAPI description (`#[utoipa::path]`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::ApiContext;
use super::error::{ApiError, StrictJson, model_id};
use super::types::{DownloadRequest, DownloadStarted, ErrorBody, LegacyModelStatus, ModelsHealth};

/// Every model in the store and on the watch list.
#[utoipa::path(get, path = "/api/v1/models/status", tag = "legacy",
    responses(
        (status = 200, description = "every model in the store and on the watch list, by id",
         body = BTreeMap<String, LegacyModelStatus>),
        (status = 401, description = "a token is configured and the request has none or another", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = ErrorBody),
        (status = 500, description = "the store could not be read", body = ErrorBody),
    ))]
pub async fn status(State(ctx): State<Arc<ApiContext>>) -> Response {
    ctx.status.status().await.legacy.response()
}

/// A quick health check of every model, the recent alerts and the storage use.
#[utoipa::path(get, path = "/api/v1/models/health", tag = "legacy",
    responses(
        (status = 200, description = "quick check of every model", body = ModelsHealth),
        (status = 401, description = "a token is configured and the request has none or another", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = ErrorBody),
        (status = 500, description = "the store could not be read", body = ErrorBody),
    ))]
pub async fn models_health(State(ctx): State<Arc<ApiContext>>) -> Response {
    ctx.status.health().await.response()
}

/// Start (or join) the model's download job: `202` with the job when it started, `200` when one was running.
#[utoipa::path(post, path = "/api/v1/models/download", tag = "legacy",
    request_body = DownloadRequest,
    responses(
        (status = 202, description = "a download job started", body = DownloadStarted),
        (status = 200, description = "the model's job was already running; the caller shares it", body = DownloadStarted),
        (status = 400, description = "malformed JSON, an unknown field or a bad model id", body = ErrorBody),
        (status = 401, description = "a token is configured and the request has none or another", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = ErrorBody),
        (status = 413, description = "the body is over 64 KiB", body = ErrorBody),
    ))]
pub async fn download(
    State(ctx): State<Arc<ApiContext>>,
    StrictJson(body): StrictJson<DownloadRequest>,
) -> std::result::Result<Response, ApiError> {
    let repo = model_id(&body.model_id)?;
    let started = ctx.jobs.start(&repo, 0)?;
    ctx.status.invalidate();
    let (status, word) = if started.created {
        (StatusCode::ACCEPTED, "started")
    } else {
        (StatusCode::OK, "already_downloading")
    };
    let answer = DownloadStarted {
        status: word.to_string(),
        model_id: repo.to_string(),
        job_id: started.job.job_id,
    };
    Ok((status, Json(answer)).into_response())
}
