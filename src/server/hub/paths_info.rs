//! `POST /api/models/{repo}/paths-info/{rev}` with `paths=…` (form, repeated) or `{"paths": […]}` (JSON): the
//! entries for those paths that exist (the mirror's only POST).

use axum::body::Body;
use axum::extract::{OriginalUri, Path};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::api_repo::api_repo;
use super::entries::{dir_entry, directories, file_entry};
use super::paths::{MAX_FORM, form_too_large};
use super::repo::Repo;
use super::respond::{json_response, revision_not_found};
use super::view::Hub;

#[derive(Deserialize)]
pub(crate) struct Params {
    repo: String,
    /// Empty when the path ends at `…/paths-info/`.
    #[serde(default)]
    rev: String,
}

/// The endpoint: the form is read (at most [`MAX_FORM`]) before the repo is looked at.
pub(crate) async fn paths_info(
    hub: Hub,
    Path(Params { repo: id, rev }): Path<Params>,
    OriginalUri(uri): OriginalUri,
    body: Body,
) -> Response {
    let Ok(form) = axum::body::to_bytes(body, MAX_FORM).await else {
        return form_too_large();
    };
    let repo = match api_repo(&hub, &id, uri.path(), uri.query()) {
        Ok(r) => r,
        Err(answer) => return *answer,
    };
    if !repo.serves_revision(&rev) {
        return revision_not_found(&id, &rev);
    }
    entries(&hub, &repo, &form)
}

/// The entries for the paths `body` asks for.
fn entries(hub: &Hub, repo: &Repo, body: &[u8]) -> Response {
    let paths: Vec<String> = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v["paths"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => url::form_urlencoded::parse(body)
            .filter(|(k, _)| k == "paths")
            .map(|(_, v)| v.into_owned())
            .collect(),
    };
    let files = hub.files(repo);
    let dirs = directories(files.keys());
    let out: Vec<Value> = paths
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter_map(|p| match files.get(p) {
            Some(f) => Some(file_entry(p, f)),
            None => dirs.contains(p).then(|| dir_entry(repo, p)),
        })
        .collect();
    json_response(&Value::Array(out))
}
