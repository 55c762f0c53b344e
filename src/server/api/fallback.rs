//! `POST /api/v1/models/fallback/suggest` (`{"requested_model", "requirements"}`): the engine's scored fallback
//! ([`crate::engine::fallback`]) for a model a client asked for, answered with the engine's report (operator rules,
//! the score's terms, what was refused, the mock when nothing real qualifies). The body types here describe it for
//! the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::ApiContext;
use super::error::{ApiError, StrictJson, model_id};
use super::types::ErrorBody;
use crate::engine::fallback::{Face, Report, Request, Requirements, UsageHints};

/// The request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestRequest {
    /// The model the client wanted (`org/name` or `name`).
    #[schema(
        pattern = r"^(?!.*--)(?!.*\.\.)(?![-.])(?!.*[-.]/)(?!.*/[-.])(?!.*[-.]$)[A-Za-z0-9._-]{1,96}(/[A-Za-z0-9._-]{1,96})?$"
    )]
    pub requested_model: String,
    /// What a substitute must meet (all optional).
    #[serde(default)]
    pub requirements: Option<SuggestRequirements>,
}

/// What a substitute must meet (read strictly here: JSON types and names as documented; the engine then checks
/// the values).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestRequirements {
    pub quality: Option<QualityDoc>,
    /// The largest substitute, in GB (> 0).
    #[schema(exclusive_minimum = 0.0)]
    pub max_size_gb: Option<f64>,
    /// The task the substitute must have (e.g. `text-generation`).
    #[schema(pattern = r"\S")]
    pub task: Option<String>,
    /// The library the substitute must use (e.g. `transformers`).
    #[schema(pattern = r"\S")]
    pub library: Option<String>,
}

/// A substitute's quality class.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Quality)]
pub enum QualityDoc {
    High,
    Medium,
    Low,
}

/// A real model offered (or scored under the threshold).
#[derive(Debug, Serialize, ToSchema)]
pub struct OfferDoc {
    pub model_id: String,
    pub score: f64,
    /// `rule` or `scored`.
    pub via: String,
    /// The operator rule's pattern, for rule suggestions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub path: String,
    pub task: Option<String>,
    pub size_bytes: u64,
    /// Every term of the score: `term`, `weight`, `value`, `contribution`, `detail`.
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<Value>,
    pub mock: bool,
}

/// A model considered and not offered.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusalDoc {
    pub model_id: String,
    pub reason: String,
}

/// The answer: the engine's fallback report.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuggestReport {
    pub requested: String,
    /// available, downloading, queued, paused, incomplete, corrupted or missing.
    pub requested_status: String,
    /// store, hub, cached_lookup, watch_list or nothing.
    pub facts_from: String,
    /// Facts of the requested model that are unknown.
    pub unknown: Vec<String>,
    #[schema(value_type = Object)]
    pub requested_facts: Value,
    #[schema(value_type = Object)]
    pub requirements: Value,
    pub threshold: f64,
    /// False when the scored fallback is off (operator rules only).
    pub scoring: bool,
    pub suggestions: Vec<OfferDoc>,
    pub below_threshold: Vec<OfferDoc>,
    pub refused: Vec<RefusalDoc>,
    pub task_mismatches: u64,
    /// The explicit stand-in when nothing real qualifies (`mock`, `model_id`, `path`, `reason`).
    #[schema(value_type = Option<Object>)]
    pub mock: Option<Value>,
}

/// The requirements as the engine reads them: the fields given, by name.
fn requirements_json(r: Option<SuggestRequirements>) -> Value {
    let Some(r) = r else { return Value::Null };
    let mut m = serde_json::Map::new();
    if let Some(q) = r.quality {
        let q = match q {
            QualityDoc::High => "high",
            QualityDoc::Medium => "medium",
            QualityDoc::Low => "low",
        };
        m.insert("quality".into(), q.into());
    }
    if let Some(g) = r.max_size_gb {
        m.insert("max_size_gb".into(), g.into());
    }
    if let Some(t) = r.task {
        m.insert("task".into(), t.into());
    }
    if let Some(l) = r.library {
        m.insert("library".into(), l.into());
    }
    Value::Object(m)
}

/// Substitutes for a model that a client asked for.
#[utoipa::path(post, path = "/api/v1/models/fallback/suggest", tag = "enhanced",
    request_body = SuggestRequest,
    responses(
        (status = 200, description = "the fallback report: suggestions best first, with their reasons",
         body = SuggestReport),
        (status = 400, description = "malformed JSON, an unknown field or requirement, a bad model id",
         body = ErrorBody),
        (status = 401, description = "a token is configured and the request has none or another", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed", body = ErrorBody),
        (status = 413, description = "the body is over 64 KiB", body = ErrorBody),
    ))]
pub async fn suggest(
    State(ctx): State<Arc<ApiContext>>,
    StrictJson(body): StrictJson<SuggestRequest>,
) -> Result<Json<Report>, ApiError> {
    let repo = model_id(&body.requested_model)?;
    let requirements = Requirements::from_json(&requirements_json(body.requirements))?;
    let report = ctx
        .engine
        .suggest(&Request {
            model_id: repo,
            requirements,
            face: Face::Server,
            usage: UsageHints::default(),
        })
        .await?;
    Ok(Json(report))
}
