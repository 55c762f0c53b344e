//! The legacy endpoints, shaped as the migration guide's legacy client reads them: `GET /api/v1/models/status`
//! (`{"<id>": {"available": bool, …}}`), `POST /api/v1/models/download` (`{"model_id"}`) and
//! `GET /api/v1/models/health`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiContext;
use super::error::{ApiError, StrictJson, model_id};
use super::views;
use crate::engine::Engine;
use crate::engine::error::{EmaError, Result};

pub fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/api/v1/models/status", get(status))
        .route("/api/v1/models/download", post(download))
}

/// Run a blocking engine read off the async threads.
pub async fn blocking(
    ctx: &ApiContext,
    f: impl FnOnce(&Engine) -> Result<Value> + Send + 'static,
) -> std::result::Result<Json<Value>, ApiError> {
    let engine = ctx.engine.clone();
    let v = tokio::task::spawn_blocking(move || f(&engine))
        .await
        .map_err(|e| EmaError::Other(format!("the request's task failed: {e}")))??;
    Ok(Json(v))
}

async fn status(State(ctx): State<Arc<ApiContext>>) -> std::result::Result<Json<Value>, ApiError> {
    blocking(&ctx, views::legacy_status).await
}

pub async fn models_health(
    State(ctx): State<Arc<ApiContext>>,
) -> std::result::Result<Json<Value>, ApiError> {
    blocking(&ctx, views::models_health).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadBody {
    model_id: String,
}

/// Start (or join) the model's download job: `202` with the job when it started, `200` when one was running.
async fn download(
    State(ctx): State<Arc<ApiContext>>,
    StrictJson(body): StrictJson<DownloadBody>,
) -> std::result::Result<Response, ApiError> {
    let repo = model_id(&body.model_id)?;
    let started = ctx.jobs.start(&repo, 0)?;
    let status = if started.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let word = if started.created {
        "started"
    } else {
        "already_downloading"
    };
    Ok((
        status,
        Json(json!({
            "status": word,
            "model_id": repo.to_string(),
            "job_id": started.job.job_id,
        })),
    )
        .into_response())
}
