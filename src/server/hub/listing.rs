//! `GET /api/models?search=&author=&pipeline_tag=&limit=`: the served models, like the Hub's `list_models`.

use axum::extract::RawQuery;
use axum::response::Response;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::respond::{json_response, query_params};
use super::view::Hub;

/// The listing; it first picks up every model that appeared, changed or went away on disk.
pub(crate) async fn list_models(hub: Hub, RawQuery(query): RawQuery) -> Response {
    hub.st.repos.refresh_all().await;
    let params = query_params(query.as_deref());
    let search = params.get("search").map(|s| s.to_lowercase());
    let limit: usize = params
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let mut repos = hub.all_repos();
    repos.sort_by(|a, b| a.id.cmp(&b.id));
    repos.dedup_by(|a, b| a.id == b.id);
    let out: Vec<Value> = repos
        .iter()
        .filter(|r| search.as_ref().is_none_or(|s| r.id.to_lowercase().contains(s)))
        .filter(|r| {
            params
                .get("author")
                .is_none_or(|a| r.id.split_once('/').is_some_and(|(o, _)| o == a))
        })
        .filter(|r| {
            params
                .get("pipeline_tag")
                .is_none_or(|p| r.pipeline_tag.as_deref() == Some(p.as_str()))
        })
        .take(limit)
        .map(|r| {
            json!({
                "_id": hex::encode(&Sha1::digest(r.id.as_bytes())[..12]),
                "id": r.id,
                "modelId": r.id,
                "sha": r.commit,
                "private": false,
                "gated": if hub.st.opts.gated_repos.contains(&r.id) { json!("manual") } else { json!(false) },
                "downloads": 0,
                "likes": 0,
                "tags": r.tags,
                "pipeline_tag": r.pipeline_tag,
                "library_name": r.library_name,
                "lastModified": r.last_modified,
                "createdAt": r.last_modified,
            })
        })
        .collect();
    json_response(&Value::Array(out))
}
