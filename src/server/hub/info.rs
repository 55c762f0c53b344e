//! `GET /api/models/{repo}` and `GET /api/models/{repo}/revision/{rev}` (`?blobs=true` adds sizes and hashes): the
//! model info.

use axum::extract::{Path, RawQuery};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::api_repo::ApiRepo;
use super::repo::Repo;
use super::respond::{json_response, query_params, revision_not_found, truthy};
use super::view::Hub;

#[derive(Deserialize)]
pub(crate) struct RevParam {
    /// Empty when the path ends at `…/revision/`.
    #[serde(default)]
    rev: String,
}

/// `GET /api/models/{repo}`.
pub(crate) async fn model_info(ApiRepo { hub, repo }: ApiRepo, RawQuery(q): RawQuery) -> Response {
    info(&hub, &repo, truthy(query_params(q.as_deref()).get("blobs")))
}

/// `GET /api/models/{repo}/revision/{rev}`.
pub(crate) async fn revision_info(
    ApiRepo { hub, repo }: ApiRepo,
    Path(RevParam { rev }): Path<RevParam>,
    RawQuery(q): RawQuery,
) -> Response {
    if !repo.serves_revision(&rev) {
        return revision_not_found(&repo.id, &rev);
    }
    info(&hub, &repo, truthy(query_params(q.as_deref()).get("blobs")))
}

fn info(hub: &Hub, repo: &Repo, blobs: bool) -> Response {
    let gated = hub.st.opts.gated_repos.contains(&repo.id);
    let files = hub.files(repo);
    let siblings: Vec<Value> = files
        .iter()
        .map(|(path, f)| {
            let mut s = json!({ "rfilename": path });
            if blobs {
                s["size"] = json!(f.listed_size.unwrap_or(f.size));
                s["blobId"] = json!(f.oid);
                if f.lfs {
                    s["lfs"] = json!({
                        "sha256": f.published_sha256(),
                        "size": f.listed_size.unwrap_or(f.size),
                        "pointerSize": f.pointer_size(),
                    });
                }
            }
            s
        })
        .collect();
    let mut v = json!({
        "_id": hex::encode(&Sha1::digest(repo.id.as_bytes())[..12]),
        "id": repo.id,
        "modelId": repo.id,
        "author": repo.id.split_once('/').map(|(o, _)| o),
        "sha": repo.commit,
        "lastModified": repo.last_modified,
        "createdAt": repo.last_modified,
        "private": false,
        "disabled": false,
        "gated": if gated { json!("manual") } else { json!(false) },
        "downloads": 0,
        "likes": 0,
        "tags": repo.tags,
        "pipeline_tag": repo.pipeline_tag,
        "library_name": repo.library_name,
        "siblings": siblings,
        "spaces": [],
    });
    if let Some(c) = &repo.card_data {
        v["cardData"] = c.clone();
    }
    if let Some(c) = &repo.config {
        v["config"] = c.clone();
    }
    if !repo.safetensors.is_empty() {
        v["safetensors"] = json!({
            "parameters": repo.safetensors,
            "total": repo.safetensors.values().sum::<u64>(),
        });
    }
    if blobs {
        v["usedStorage"] = json!(files.values().map(|f| f.size).sum::<u64>());
    }
    json_response(&v)
}
