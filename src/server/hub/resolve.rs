//! `HEAD|GET /{repo}/resolve/{rev}/{path}`: a file with the Hub's metadata headers (`X-Repo-Commit`, `ETag`,
//! `X-Linked-Etag`, `X-Linked-Size`), after the renamed-repo `307`, the gated-repo `401`/`403` and the revision
//! check; LFS files answer a `302` to the CDN when [`MirrorOptions::cdn_base`] is set, other files their bytes.
//!
//! [`MirrorOptions::cdn_base`]: crate::server::options::MirrorOptions::cdn_base

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use percent_encoding::utf8_percent_encode;
use serde::Deserialize;

use super::bytes::serve_bytes;
use super::cdn::cdn_redirect;
use super::paths::{SEGMENT, encode_path};
use super::repo::{FileEntry, Repo};
use super::respond::{
    entry_not_found, hub_error, relative_redirect, repo_not_found, revision_not_found,
};
use super::view::Hub;

#[derive(Deserialize)]
pub(crate) struct Params {
    repo: String,
    rev: String,
    /// Empty when the path ends at `…/resolve/{rev}/`.
    #[serde(default)]
    path: String,
}

/// The endpoint.
pub(crate) async fn resolve(
    hub: Hub,
    Path(Params {
        repo: id,
        rev,
        path,
    }): Path<Params>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Some(new) = hub.st.opts.aliases.get(&id) {
        let loc = format!(
            "/{}/resolve/{}/{}",
            encode_path(new),
            utf8_percent_encode(&rev, SEGMENT),
            encode_path(&path)
        );
        return relative_redirect(&loc, query.as_deref());
    }
    let Some(repo) = hub.repo(&id) else {
        return repo_not_found(&id);
    };
    if let Some(refusal) = gate(&hub, &id, &headers) {
        return refusal;
    }
    if !repo.serves_revision(&rev) {
        return revision_not_found(&id, &rev);
    }
    let Some(file) = hub.file(&repo, &path) else {
        return entry_not_found(&id, &path);
    };
    let extra = metadata_headers(&repo, &file);
    if file.lfs
        && let Some(base) = &hub.st.opts.cdn_base
        && let Some(sha) = file.published_sha256()
    {
        return cdn_redirect(&hub.st.cdn_secret, base, sha, extra);
    }
    serve_bytes(&file, &headers, &method, extra).await
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    Some(t.trim().to_string())
}

/// A gated repo without an accepted token: `401` without a token, `403` with another one.
fn gate(hub: &Hub, id: &str, headers: &HeaderMap) -> Option<Response> {
    if !hub.st.opts.gated_repos.contains(id) {
        return None;
    }
    match bearer(headers) {
        None => Some(hub_error(
            StatusCode::UNAUTHORIZED,
            "GatedRepo",
            &format!(
                "Access to model {id} is restricted. You must be authenticated to access it: set HF_TOKEN."
            ),
        )),
        Some(t) if !hub.st.opts.accepted_tokens.iter().any(|a| a == &t) => Some(hub_error(
            StatusCode::FORBIDDEN,
            "GatedRepo",
            &format!(
                "Access to model {id} is restricted and your token is not in the authorized list. \
                 Accept the model's terms to access it."
            ),
        )),
        Some(_) => None,
    }
}

/// `X-Repo-Commit`, `ETag`, and for LFS files `X-Linked-Etag` and `X-Linked-Size`.
fn metadata_headers(repo: &Repo, file: &FileEntry) -> HeaderMap {
    let mut extra = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&repo.commit) {
        extra.insert("x-repo-commit", v);
    }
    if file.lfs {
        if let Some(sha) = file.published_sha256()
            && let Ok(v) = HeaderValue::from_str(sha)
        {
            extra.insert("x-linked-etag", v);
        }
        extra.insert("x-linked-size", HeaderValue::from(file.size));
    }
    if let Ok(v) = HeaderValue::from_str(&file.etag()) {
        extra.insert(header::ETAG, v);
    }
    extra
}
