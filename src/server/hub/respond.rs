//! The Hub's response shapes shared by every endpoint: JSON bodies, errors with `X-Error-Code` /
//! `X-Error-Message`, relative redirects, and the query-string helpers.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

pub(crate) fn hub_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": message }).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        h.insert("x-error-code", v);
    }
    if let Ok(v) = HeaderValue::from_str(&sanitize_header(message)) {
        h.insert("x-error-message", v);
    }
    r
}

fn sanitize_header(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

pub(crate) fn repo_not_found(id: &str) -> Response {
    hub_error(
        StatusCode::NOT_FOUND,
        "RepoNotFound",
        &format!("Repository Not Found for url: model {id} does not exist on this mirror."),
    )
}

pub(crate) fn revision_not_found(id: &str, rev: &str) -> Response {
    hub_error(
        StatusCode::NOT_FOUND,
        "RevisionNotFound",
        &format!("Invalid rev id: {rev} (repo {id} serves `main` and its commit only)"),
    )
}

pub(crate) fn entry_not_found(id: &str, path: &str) -> Response {
    hub_error(
        StatusCode::NOT_FOUND,
        "EntryNotFound",
        &format!("Entry not found: {path} does not exist in {id}"),
    )
}

pub(crate) fn query_params(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(crate) fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(|s| s.as_str()), Some("true" | "1" | "True"))
}

/// A relative `307` to `loc` (a path on this host), keeping the query.
pub(crate) fn relative_redirect(loc: &str, query: Option<&str>) -> Response {
    let loc = match query {
        Some(q) => format!("{loc}?{q}"),
        None => loc.to_string(),
    };
    let mut r = Response::new(Body::from(format!("Moved to {loc}")));
    *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&loc) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(crate) fn json_response(v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `404 NotFound` for a path under `/api/models/{repo}/` that is no endpoint.
pub(crate) fn unknown_api_path() -> Response {
    hub_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "unknown API path; this mirror serves /api/models/{repo}[/revision/{rev}|/tree/{rev}]",
    )
}
