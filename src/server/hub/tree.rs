//! `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=true`: a folder's entries, paginated with a
//! `Link: <…>; rel="next"` header.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use percent_encoding::utf8_percent_encode;
use serde::Deserialize;
use serde_json::Value;

use super::api_repo::ApiRepo;
use super::entries::{dir_entry, directories, file_entry};
use super::paths::{SEGMENT, encode_path};
use super::repo::{FileEntry, Repo};
use super::respond::{entry_not_found, json_response, query_params, revision_not_found, truthy};
use super::view::Hub;

#[derive(Deserialize)]
pub(crate) struct Params {
    /// Empty when the path ends at `…/tree/`.
    #[serde(default)]
    rev: String,
    /// The folder; empty for the repo's root.
    #[serde(default)]
    path: String,
}

/// The endpoint.
pub(crate) async fn tree(
    ApiRepo { hub, repo }: ApiRepo,
    Path(Params { rev, path }): Path<Params>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !repo.serves_revision(&rev) {
        return revision_not_found(&repo.id, &rev);
    }
    listing(
        &hub,
        &repo,
        &rev,
        &path,
        &query_params(q.as_deref()),
        &headers,
    )
}

/// The entries under `prefix` (all depths when `recursive`), sorted by path.
fn entries_under(
    repo: &Repo,
    files: &BTreeMap<String, Arc<FileEntry>>,
    dirs: &BTreeSet<String>,
    prefix: &str,
    recursive: bool,
) -> Vec<(String, Value)> {
    let under = |p: &str| -> bool {
        let rel = if prefix.is_empty() {
            Some(p)
        } else {
            p.strip_prefix(prefix).and_then(|r| r.strip_prefix('/'))
        };
        match rel {
            Some(r) if !r.is_empty() => recursive || !r.contains('/'),
            _ => false,
        }
    };
    let mut entries: Vec<(String, Value)> = Vec::new();
    for d in dirs.iter().filter(|d| under(d)) {
        entries.push((d.clone(), dir_entry(repo, d)));
    }
    for (p, f) in files.iter().filter(|(p, _)| under(p)) {
        entries.push((p.clone(), file_entry(p, f)));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// The `Link` URL of the page that starts at entry `cursor`, on the host (and scheme) the client used.
fn next_page_url(
    headers: &HeaderMap,
    repo: &Repo,
    rev: &str,
    prefix: &str,
    recursive: bool,
    cursor: usize,
) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    // Behind a TLS-terminating proxy the next link must keep the client's scheme.
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    let mut url = format!(
        "{scheme}://{host}/api/models/{}/tree/{}",
        encode_path(&repo.id),
        utf8_percent_encode(rev, SEGMENT)
    );
    if !prefix.is_empty() {
        url.push('/');
        url.push_str(&encode_path(prefix));
    }
    url.push_str(&format!(
        "?recursive={}&cursor={cursor}",
        if recursive { "true" } else { "false" }
    ));
    url
}

/// One page of the listing of `prefix`, with a `Link` to the next page when there is one.
fn listing(
    hub: &Hub,
    repo: &Repo,
    rev: &str,
    prefix: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let recursive = truthy(params.get("recursive"));
    let files = hub.files(repo);
    let dirs = directories(files.keys());
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() && !dirs.contains(prefix) {
        return entry_not_found(&repo.id, prefix);
    }
    let entries = entries_under(repo, &files, &dirs, prefix, recursive);
    let page = hub.st.opts.tree_page_size.max(1);
    let start: usize = params
        .get("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
        .min(entries.len());
    let end = (start + page).min(entries.len());
    let body: Vec<Value> = entries[start..end].iter().map(|(_, v)| v.clone()).collect();
    let mut r = json_response(&Value::Array(body));
    if end < entries.len() {
        let url = next_page_url(headers, repo, rev, prefix, recursive, end);
        if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
            r.headers_mut().insert(header::LINK, v);
        }
    }
    r
}
