//! The hub's endpoints as calls: model info, the paginated tree listing, and a file's metadata (HEAD) and bytes
//! (GET, through ema's own HTTP/1.1 reader for plain http) on `resolve`, with the URLs they are built from.

use reqwest::Method;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use url::Url;

use super::client::{HubClient, USER_AGENT};
use super::failure::{HttpFailure, Subject, redact_url, unreachable};
use super::headers::next_link;
use super::listing::{
    FileHead, ModelInfo, RawInfo, RawTreeEntry, RemoteFile, parse_head, parse_info,
    parse_tree_entry,
};
use super::redirect::{MAX_REDIRECTS, next_hop, same_origin, too_many_redirects};
use crate::engine::error::{EmaError, Result};
use crate::engine::store::RepoId;

/// Most tree pages followed (a guard against a server that links forever).
const MAX_TREE_PAGES: usize = 10_000;

/// A file response from either transport: ema's HTTP/1.1 reader (plain http) or the general client.
pub struct FileResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub content_length: Option<u64>,
    pub body: FileBody,
}

pub enum FileBody {
    /// Read straight into the caller's buffers.
    Direct(crate::engine::http1::RawBody),
    /// Chunks from the general client.
    Client(reqwest::Response),
}

impl FileResponse {
    fn client(r: reqwest::Response) -> FileResponse {
        FileResponse {
            status: r.status(),
            headers: r.headers().clone(),
            content_length: r.content_length(),
            body: FileBody::Client(r),
        }
    }
}

/// Percent-encode one path segment (everything but unreserved characters).
pub fn encode_segment(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// Encode a repo path: each `/`-separated segment on its own.
pub fn encode_path(p: &str) -> String {
    p.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

impl HubClient {
    /// `GET /api/models/{repo}[/revision/{rev}]?blobs=true`.
    pub async fn model_info(
        &self,
        repo: &RepoId,
        revision: Option<&str>,
    ) -> std::result::Result<ModelInfo, HttpFailure> {
        let path = match revision {
            Some(r) => format!(
                "/api/models/{}/revision/{}?blobs=true",
                repo.as_str(),
                encode_segment(r)
            ),
            None => format!("/api/models/{}?blobs=true", repo.as_str()),
        };
        let url = self.url(&path).map_err(HttpFailure::Fatal)?;
        let subject = match revision {
            Some(r) => Subject::Revision(r),
            None => Subject::Repo,
        };
        let (raw, _): (RawInfo, _) = self.get_json(repo, subject, url).await?;
        parse_info(repo, raw).map_err(HttpFailure::Fatal)
    }

    /// The recursive tree listing at `commit`, following `Link: <…>; rel="next"` pages.
    pub async fn list_tree(
        &self,
        repo: &RepoId,
        commit: &str,
    ) -> std::result::Result<Vec<RemoteFile>, HttpFailure> {
        let mut url = self
            .url(&format!(
                "/api/models/{}/tree/{}?recursive=true&expand=false",
                repo.as_str(),
                encode_segment(commit)
            ))
            .map_err(HttpFailure::Fatal)?;
        let mut out = Vec::new();
        for _ in 0..MAX_TREE_PAGES {
            let (entries, headers): (Vec<RawTreeEntry>, _) = self
                .get_json(repo, Subject::Revision(commit), url.clone())
                .await?;
            for e in entries {
                if e.kind != "file" {
                    continue;
                }
                out.push(parse_tree_entry(e).map_err(HttpFailure::Fatal)?);
            }
            match next_link(&headers, &url) {
                Some(next) => {
                    if !same_origin(&next, &self.endpoint) {
                        return Err(HttpFailure::Fatal(EmaError::Hub(format!(
                            "the tree listing of {repo} links its next page to another host ({}); refusing",
                            redact_url(&next)
                        ))));
                    }
                    url = next;
                }
                None => return Ok(out),
            }
        }
        Err(HttpFailure::Fatal(EmaError::Hub(format!(
            "the tree listing of {repo} has more than {MAX_TREE_PAGES} pages; refusing"
        ))))
    }

    /// The `resolve` URL of one file.
    pub fn resolve_url(&self, repo: &RepoId, revision: &str, path: &str) -> Result<Url> {
        self.url(&format!(
            "/{}/resolve/{}/{}",
            repo.as_str(),
            encode_segment(revision),
            encode_path(path)
        ))
    }

    /// The `resolve` URL of a file and the headers every request for it carries (no content encoding: the bytes
    /// must be the file's own).
    fn resolve_request(
        &self,
        repo: &RepoId,
        revision: &str,
        path: &str,
    ) -> std::result::Result<(Url, HeaderMap), HttpFailure> {
        let url = self
            .resolve_url(repo, revision, path)
            .map_err(HttpFailure::Fatal)?;
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        Ok((url, h))
    }

    /// `HEAD` on `resolve`: metadata from the first response that is not a same-host redirect.
    pub async fn head_file(
        &self,
        repo: &RepoId,
        revision: &str,
        path: &str,
    ) -> std::result::Result<FileHead, HttpFailure> {
        let (url, h) = self.resolve_request(repo, revision, path)?;
        let resp = self.send(Method::HEAD, url.clone(), &h, false).await?;
        let status = resp.status();
        if !(status.is_success() || status.is_redirection()) {
            return Err(self.status_failure(
                repo,
                Subject::File { revision, path },
                &url,
                status,
                resp.headers(),
            ));
        }
        parse_head(resp.headers(), status.is_redirection()).map_err(HttpFailure::Fatal)
    }

    /// `GET` on `resolve` for bytes, following every redirect; `range_start` > 0 (or `range_end`) sends a Range.
    /// The response is returned whatever its status; the caller checks 200/206/416.
    pub async fn get_file(
        &self,
        repo: &RepoId,
        revision: &str,
        path: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> std::result::Result<(FileResponse, Url), HttpFailure> {
        let (url, mut h) = self.resolve_request(repo, revision, path)?;
        if let Some((start, end)) = range {
            let v = match end {
                Some(e) => format!("bytes={start}-{e}"),
                None => format!("bytes={start}-"),
            };
            h.insert(
                header::RANGE,
                HeaderValue::from_str(&v).expect("a range header is ASCII"),
            );
        }
        // Plain-http hops go through ema's own reader (same redirect and token rules as `send`); an https hop, or a
        // body without a declared length, goes to the general client from there on.
        let mut cur = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            if !self.zero_copy_http || cur.scheme() != "http" {
                let resp = self.send(Method::GET, cur, &h, true).await?;
                return Ok((FileResponse::client(resp), url));
            }
            let mut hh = h.clone();
            hh.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
            if self.may_send_token(&cur)
                && let Some(t) = &self.token
                && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {t}"))
            {
                v.set_sensitive(true);
                hh.insert(header::AUTHORIZATION, v);
            }
            let r = crate::engine::http1::get(&cur, &hh, self.connect, self.stall)
                .await
                .map_err(|e| {
                    let dns = matches!(e, crate::engine::http1::RawError::Resolve(_));
                    unreachable(&cur, e.to_string(), dns)
                })?;
            if let Some(next) = next_hop(&cur, r.status, &r.headers, true)? {
                cur = next;
                continue;
            }
            if r.status.is_success() && r.content_length().is_none() {
                let resp = self.send(Method::GET, cur, &h, true).await?;
                return Ok((FileResponse::client(resp), url));
            }
            return Ok((
                FileResponse {
                    status: r.status,
                    content_length: r.content_length(),
                    headers: r.headers,
                    body: FileBody::Direct(r.body),
                },
                url,
            ));
        }
        Err(too_many_redirects(&self.endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        assert_eq!(encode_segment("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_path("a b/c#d.txt"), "a%20b/c%23d.txt");
    }
}
