//! The API's error answer (`{"error": "…", "code": "…"}` with a 4xx/5xx status) and the strict JSON body reader
//! every POST uses (size-limited; malformed JSON and unknown fields are a 400, never a 500).

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::engine::error::EmaError;

/// The largest request body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

/// An error answer: status, a stable machine code, and a message that names the problem and the fix.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<EmaError> for ApiError {
    fn from(e: EmaError) -> Self {
        let (status, code) = match &e {
            EmaError::Config(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            EmaError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            EmaError::Hub(_) => (StatusCode::BAD_GATEWAY, "hub_error"),
            EmaError::DiskSpace(_) => (StatusCode::INSUFFICIENT_STORAGE, "disk_space"),
            EmaError::Integrity(_) => (StatusCode::CONFLICT, "integrity"),
            EmaError::Io { .. } | EmaError::Other(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, self.code, &self.message)
    }
}

/// The JSON error body with `status`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": message, "code": code})),
    )
        .into_response()
}

/// A JSON request body read strictly: at most [`MAX_BODY`] bytes, valid JSON, the fields of `T` only.
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, _: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the request body is over {MAX_BODY} bytes; send a smaller JSON object"
                    ),
                )
            })?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "missing_body",
                "the request has no body; send a JSON object (Content-Type: application/json)",
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!("the request body is not valid JSON ({e}); send a JSON object"),
            )
        })?;
        serde_json::from_value(v).map(StrictJson).map_err(|e| {
            let code = if e.to_string().contains("unknown field") {
                "unknown_field"
            } else {
                "invalid_body"
            };
            ApiError::bad_request(
                code,
                format!("the request body does not fit this endpoint: {e}"),
            )
        })
    }
}

/// A model id from a request, validated before it reaches a path (`org/name` or `name`).
pub fn model_id(s: &str) -> Result<crate::engine::store::RepoId, ApiError> {
    crate::engine::store::RepoId::parse(s)
        .map_err(|e| ApiError::bad_request("bad_model_id", e.to_string()))
}
