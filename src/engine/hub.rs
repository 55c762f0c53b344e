//! The Hugging Face Hub client: model info, the (paginated) tree listing and file bytes through `resolve`.
//!
//! Everything a server says is validated before use: commits must be 40-hex, git sha1 40-hex, sha256 64-hex,
//! file names pass [`validate_repo_path`], sizes must agree between the listing and the response headers.
//! Redirects are followed by hand so the `Authorization` header only ever goes to the endpoint's own host, and a
//! plain-`http` endpoint on a non-loopback host gets no token unless `downloads.allow_token_over_http` is set.
//! Error messages never contain the token or a URL's query string (signed CDN URLs).

use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::config::DownloadsConfig;
use super::config::hub_env::HubEnv;
use super::error::{EmaError, Result};
use super::store::{RepoId, validate_repo_path};

/// Longest redirect chain followed.
const MAX_REDIRECTS: usize = 10;
const USER_AGENT: &str = concat!("ema/", env!("CARGO_PKG_VERSION"));
/// Most tree pages followed (a guard against a server that links forever).
const MAX_TREE_PAGES: usize = 10_000;

/// Is `s` exactly `n` lowercase-or-uppercase hex digits?
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A 40-hex commit sha, lowercased, or an integrity error naming `what`.
pub fn check_sha1(s: &str, what: &str) -> Result<String> {
    if is_hex(s, 40) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(EmaError::Integrity(format!(
            "the hub sent an invalid {what} {:?} (expected 40 hex digits); the endpoint is not speaking the Hub \
             protocol correctly — check HF_ENDPOINT",
            truncate(s, 80)
        )))
    }
}

/// A 64-hex sha256, lowercased, or an integrity error naming `what`.
pub fn check_sha256(s: &str, what: &str) -> Result<String> {
    if is_hex(s, 64) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(EmaError::Integrity(format!(
            "the hub sent an invalid {what} {:?} (expected 64 hex digits); the endpoint is not speaking the Hub \
             protocol correctly — check HF_ENDPOINT",
            truncate(s, 80)
        )))
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// One file of a repo at a commit, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub path: String,
    pub size: u64,
    /// git blob sha1 (40-hex, lowercase), when published.
    pub git_sha1: Option<String>,
    /// sha256 of the content for LFS files (64-hex, lowercase).
    pub sha256: Option<String>,
}

impl RemoteFile {
    pub fn is_lfs(&self) -> bool {
        self.sha256.is_some()
    }

    /// The hash the downloaded bytes must have: the sha256 for LFS files, else the git blob sha1.
    pub fn expected_hash(&self) -> Option<&str> {
        self.sha256.as_deref().or(self.git_sha1.as_deref())
    }
}

/// Model info from `/api/models/{repo}[/revision/{rev}]?blobs=true`, validated.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub id: String,
    /// The 40-hex commit the revision resolved to.
    pub commit: String,
    pub private: bool,
    /// `None` when not gated, else `"auto"` or `"manual"`.
    pub gated: Option<String>,
    pub pipeline_tag: Option<String>,
    pub library_name: Option<String>,
    pub tags: Vec<String>,
    pub parameters: Option<u64>,
    pub last_modified: Option<String>,
    /// The siblings with sizes and hashes (when the server sent them).
    pub siblings: Vec<RemoteFile>,
}

/// What a HEAD on `resolve` says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHead {
    /// `X-Repo-Commit`, validated, when sent.
    pub commit: Option<String>,
    /// `X-Linked-Etag` (LFS sha256) or `ETag` (git sha1), quotes and `W/` stripped, lowercased.
    pub etag: Option<String>,
    /// `X-Linked-Size`, else the final response's `Content-Length`.
    pub size: Option<u64>,
}

#[derive(Deserialize)]
struct RawInfo {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    gated: serde_json::Value,
    #[serde(default)]
    pipeline_tag: Option<String>,
    #[serde(default)]
    library_name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    safetensors: Option<RawSafetensors>,
    #[serde(default, rename = "lastModified")]
    last_modified: Option<String>,
    #[serde(default)]
    siblings: Vec<RawSibling>,
}

#[derive(Deserialize)]
struct RawSafetensors {
    #[serde(default)]
    total: Option<u64>,
}

#[derive(Deserialize)]
struct RawSibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "blobId")]
    blob_id: Option<String>,
    #[serde(default)]
    lfs: Option<RawSiblingLfs>,
}

#[derive(Deserialize)]
struct RawSiblingLfs {
    sha256: String,
    size: u64,
}

#[derive(Deserialize)]
struct RawTreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    lfs: Option<RawTreeLfs>,
}

#[derive(Deserialize)]
struct RawTreeLfs {
    oid: String,
    size: u64,
}

/// The Hub client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HubClient {
    http: reqwest::Client,
    endpoint: Url,
    token: Option<String>,
    /// Why the token is withheld from the endpoint, if it is (plain http to a non-loopback host).
    token_withheld: bool,
    stall: Duration,
    connect: Duration,
    /// Plain-http file bodies through [`crate::engine::http1`] (downloads.zero_copy_http).
    zero_copy_http: bool,
}

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

/// Is this host a loopback address or `localhost`?
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A URL for messages: scheme, host, port and path, never the query string or userinfo.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(|h| h.to_ascii_lowercase())
            == b.host_str().map(|h| h.to_ascii_lowercase())
        && a.port_or_known_default() == b.port_or_known_default()
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

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Strip `W/` and quotes from an ETag value.
pub fn clean_etag(v: &str) -> String {
    v.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase()
}

/// Seconds to wait from `Retry-After` (seconds or an HTTP date) or `RateLimit: …;t=N`.
pub fn retry_after_seconds(h: &HeaderMap) -> Option<f64> {
    if let Some(v) = header_str(h, "retry-after") {
        if let Ok(n) = v.parse::<f64>()
            && n.is_finite()
            && n >= 0.0
        {
            return Some(n);
        }
        if let Ok(t) = httpdate::parse_http_date(v) {
            let now = std::time::SystemTime::now();
            return Some(
                t.duration_since(now)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
            );
        }
    }
    if let Some(v) = header_str(h, "ratelimit") {
        for part in v.split([';', ',']) {
            if let Some(t) = part.trim().strip_prefix("t=")
                && let Ok(n) = t.trim().parse::<f64>()
                && n.is_finite()
                && n >= 0.0
            {
                return Some(n);
            }
        }
    }
    None
}

/// A failed HTTP exchange, classified for the retry logic.
#[derive(Debug)]
pub enum HttpFailure {
    /// Worth retrying (network error, 408, 429, 5xx, stall), with the server's requested wait if any.
    Transient {
        message: String,
        retry_after: Option<f64>,
    },
    /// Nothing answered: the connection was refused, or connecting timed out. Mid-transfer this is retried like
    /// any network error; for the metadata that starts a download it gets only a few quick retries (a mirror
    /// restarting), since a wrong or stopped endpoint will not come back by waiting minutes.
    Unreachable { message: String },
    /// Not worth retrying; the final error.
    Fatal(EmaError),
}

impl HttpFailure {
    pub fn into_error(self) -> EmaError {
        match self {
            HttpFailure::Transient { message, .. } | HttpFailure::Unreachable { message } => {
                EmaError::Hub(message)
            }
            HttpFailure::Fatal(e) => e,
        }
    }
}

/// What a request is for, to word a 404 or 401.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Repo,
    Revision(&'a str),
    File { revision: &'a str, path: &'a str },
}

impl HubClient {
    /// A client for `env.endpoint` with the timeouts of `cfg`. No total deadline is ever set: a slow, steady
    /// transfer may take as long as it needs; a connection silent for `stall_timeout_seconds` is dropped.
    pub fn new(env: &HubEnv, cfg: &DownloadsConfig) -> Result<Self> {
        let endpoint = Url::parse(&env.endpoint).map_err(|e| {
            EmaError::Config(format!(
                "HF_ENDPOINT {:?} is not a valid URL ({e}); set it to e.g. https://huggingface.co",
                env.endpoint
            ))
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
            return Err(EmaError::Config(format!(
                "HF_ENDPOINT {:?} must be an http or https URL with a host",
                env.endpoint
            )));
        }
        let stall = Duration::from_secs_f64(cfg.stall_timeout_seconds.max(0.05));
        let connect = Duration::from_secs_f64(cfg.connect_timeout_seconds.max(0.05));
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect)
            .read_timeout(stall)
            .default_headers(headers)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(|e| {
                EmaError::Other(format!("cannot build the HTTP client: {}", e.without_url()))
            })?;
        let plain_remote = endpoint.scheme() == "http" && !is_loopback_host(&endpoint);
        let token_withheld = env.token.is_some() && plain_remote && !cfg.allow_token_over_http;
        Ok(HubClient {
            http,
            endpoint,
            token: env.token.clone(),
            token_withheld,
            stall,
            connect,
            zero_copy_http: cfg.zero_copy_http,
        })
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The per-read stall timeout.
    pub fn stall_timeout(&self) -> Duration {
        self.stall
    }

    /// True when a token is configured but withheld because the endpoint is plain http on a non-loopback host.
    pub fn token_withheld(&self) -> bool {
        self.token_withheld
    }

    fn url(&self, path: &str) -> Result<Url> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}"))
            .map_err(|e| EmaError::Other(format!("cannot build a hub URL for {path}: {e}")))
    }

    fn may_send_token(&self, url: &Url) -> bool {
        self.token.is_some() && !self.token_withheld && same_origin(url, &self.endpoint)
    }

    /// Send one request, following redirects by hand. `follow_cross_host`: follow redirects to another host too
    /// (for bytes); otherwise stop there and return the redirect response itself (for HEAD metadata, which lives
    /// on the first response). Returns the response; its status may be anything.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        extra: &HeaderMap,
        follow_cross_host: bool,
    ) -> std::result::Result<reqwest::Response, HttpFailure> {
        let mut url = url;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .headers(extra.clone());
            if self.may_send_token(&url)
                && let Some(t) = &self.token
            {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.map_err(|e| {
                unreachable(&url, describe_reqwest(&e), is_name_resolution_failure(&e))
            })?;
            match self.next_hop(&url, resp.status(), resp.headers(), follow_cross_host)? {
                Some(next) => url = next,
                None => return Ok(resp),
            }
        }
        Err(self.too_many_redirects())
    }

    fn too_many_redirects(&self) -> HttpFailure {
        HttpFailure::Fatal(EmaError::Hub(format!(
            "more than {MAX_REDIRECTS} redirects from {}; check HF_ENDPOINT",
            self.endpoint
        )))
    }

    /// Where a redirect answer leads, if it is to be followed: `None` for a final answer (not a redirect, no
    /// Location, or a cross-host redirect when `follow_cross_host` is off). Refuses non-http targets and
    /// https → http downgrades to a non-loopback host.
    fn next_hop(
        &self,
        url: &Url,
        status: StatusCode,
        headers: &HeaderMap,
        follow_cross_host: bool,
    ) -> std::result::Result<Option<Url>, HttpFailure> {
        if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let Some(loc) = header_str(headers, "location") else {
            return Ok(None);
        };
        let next = url.join(loc).map_err(|_| {
            HttpFailure::Fatal(EmaError::Hub(format!(
                "{} answered a redirect with an invalid Location; check HF_ENDPOINT",
                redact_url(url)
            )))
        })?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(HttpFailure::Fatal(EmaError::Hub(format!(
                "{} redirected to a non-http URL; refusing",
                redact_url(url)
            ))));
        }
        if url.scheme() == "https" && next.scheme() == "http" && !is_loopback_host(&next) {
            return Err(HttpFailure::Fatal(EmaError::Hub(format!(
                "{} redirected from https to plain http ({}); refusing the downgrade",
                redact_url(url),
                redact_url(&next)
            ))));
        }
        if !follow_cross_host && !same_origin(&next, url) {
            return Ok(None);
        }
        Ok(Some(next))
    }

    /// Turn a non-success status into an [`HttpFailure`] worded for `subject`.
    pub fn status_failure(
        &self,
        repo: &RepoId,
        subject: Subject<'_>,
        url: &Url,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> HttpFailure {
        let code = header_str(headers, "x-error-code")
            .unwrap_or("")
            .to_string();
        let server_msg = header_str(headers, "x-error-message")
            .map(|m| format!(" (server says: {})", truncate(m, 200)))
            .unwrap_or_default();
        let where_ = redact_url(url);
        match status.as_u16() {
            401 | 403 => {
                let token_hint = if self.token_withheld {
                    " A token is configured but was withheld because the endpoint is plain http on a non-loopback \
                     host; use https or set downloads.allow_token_over_http."
                        .to_string()
                } else if self.token.is_some() {
                    " The token in use was refused: check it is valid and that its account accepted the model's \
                     terms."
                        .to_string()
                } else {
                    String::new()
                };
                HttpFailure::Fatal(EmaError::Hub(format!(
                    "{repo} is gated or private: {where_} answered {status}{server_msg}. Set HF_TOKEN to a token \
                     with access, and accept the model's terms at {}/{repo}.{token_hint}",
                    self.endpoint.as_str().trim_end_matches('/')
                )))
            }
            404 => {
                let msg = match (code.as_str(), subject) {
                    ("RevisionNotFound", _) | ("", Subject::Revision(_)) => {
                        let rev = match subject {
                            Subject::Revision(r) | Subject::File { revision: r, .. } => r,
                            Subject::Repo => "main",
                        };
                        format!(
                            "revision {rev:?} not found in {repo}{server_msg}; check the branch, tag or commit sha"
                        )
                    }
                    ("EntryNotFound", Subject::File { revision, path })
                    | ("", Subject::File { revision, path }) => {
                        format!(
                            "file {path:?} not found in {repo} at revision {revision}{server_msg}; the listing and \
                             the files disagree, retry later or report it to the repo owner"
                        )
                    }
                    _ => format!(
                        "repo {repo} not found at {}{server_msg}; check the spelling, or set HF_TOKEN if it is \
                         private",
                        self.endpoint.as_str().trim_end_matches('/')
                    ),
                };
                HttpFailure::Fatal(EmaError::NotFound(msg))
            }
            408 | 429 | 500..=599 => HttpFailure::Transient {
                message: format!("{where_} answered {status}{server_msg}"),
                retry_after: retry_after_seconds(headers),
            },
            _ => HttpFailure::Fatal(EmaError::Hub(format!(
                "{where_} answered {status}{server_msg}; not retrying"
            ))),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        repo: &RepoId,
        subject: Subject<'_>,
        url: Url,
    ) -> std::result::Result<(T, HeaderMap), HttpFailure> {
        let resp = self
            .send(Method::GET, url.clone(), &HeaderMap::new(), false)
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if !status.is_success() {
            return Err(self.status_failure(repo, subject, &url, status, &headers));
        }
        let bytes = resp.bytes().await.map_err(|e| HttpFailure::Transient {
            message: format!(
                "reading {} failed: {}",
                redact_url(&url),
                describe_reqwest(&e)
            ),
            retry_after: None,
        })?;
        let v = serde_json::from_slice(&bytes).map_err(|e| {
            HttpFailure::Fatal(EmaError::Hub(format!(
                "{} answered JSON ema cannot read ({e}); check HF_ENDPOINT points at a Hugging Face Hub",
                redact_url(&url)
            )))
        })?;
        Ok((v, headers))
    }

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

    /// `HEAD` on `resolve`: metadata from the first response that is not a same-host redirect.
    pub async fn head_file(
        &self,
        repo: &RepoId,
        revision: &str,
        path: &str,
    ) -> std::result::Result<FileHead, HttpFailure> {
        let url = self
            .resolve_url(repo, revision, path)
            .map_err(HttpFailure::Fatal)?;
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
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
        let url = self
            .resolve_url(repo, revision, path)
            .map_err(HttpFailure::Fatal)?;
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
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
            if let Some(next) = self.next_hop(&cur, r.status, &r.headers, true)? {
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
        Err(self.too_many_redirects())
    }
}

/// A request that reached no server. A host name that does not resolve will not resolve in 30 s either (no network,
/// or a typo in HF_ENDPOINT): that fails at once instead of backing off for minutes; anything else is retried.
fn unreachable(url: &Url, detail: String, dns: bool) -> HttpFailure {
    let message = format!("cannot reach {}: {detail}", redact_url(url));
    if dns {
        HttpFailure::Fatal(EmaError::Hub(format!(
            "{message}; check HF_ENDPOINT and the network (or set HF_HUB_OFFLINE=1 to work with local models only)"
        )))
    } else {
        HttpFailure::Unreachable { message }
    }
}

/// Whether a request failed because the host name did not resolve (DNS), rather than a refused or cut connection.
fn is_name_resolution_failure(e: &reqwest::Error) -> bool {
    if !e.is_connect() {
        return false;
    }
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if text.contains("failed to lookup address")
            || text.contains("Name or service not known")
            || text.contains("No address associated with hostname")
            || text.contains("Temporary failure in name resolution")
        {
            return true;
        }
        src = s.source();
    }
    false
}

/// A reqwest error without its URL (signed query strings must not reach logs).
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the response body was cut"
    } else {
        "request failed"
    };
    // Walk the source chain for the root cause, which names the OS error; none of these carry the URL.
    let mut root = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        root = s.to_string();
        src = s.source();
    }
    if root.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", truncate(&root, 200))
    }
}

fn next_link(h: &HeaderMap, current: &Url) -> Option<Url> {
    for v in h.get_all(header::LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let t = target.trim_start_matches('<').trim_end_matches('>');
                return current.join(t).ok();
            }
        }
    }
    None
}

fn parse_head(h: &HeaderMap, is_redirect: bool) -> Result<FileHead> {
    let commit = match header_str(h, "x-repo-commit") {
        Some(c) => Some(check_sha1(c, "X-Repo-Commit")?),
        None => None,
    };
    let etag = header_str(h, "x-linked-etag")
        .or_else(|| header_str(h, "etag"))
        .map(clean_etag);
    let linked_size = header_str(h, "x-linked-size");
    let size = match linked_size {
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            EmaError::Integrity(format!(
                "the hub sent an invalid X-Linked-Size {:?}",
                truncate(s, 40)
            ))
        })?),
        // Never take the size from a redirect's own Content-Length.
        None if !is_redirect => header_str(h, "content-length").and_then(|s| s.parse().ok()),
        None => None,
    };
    Ok(FileHead { commit, etag, size })
}

fn parse_info(repo: &RepoId, raw: RawInfo) -> Result<ModelInfo> {
    let sha = raw.sha.ok_or_else(|| {
        EmaError::Hub(format!(
            "the model info of {repo} has no commit sha; check HF_ENDPOINT points at a Hugging Face Hub"
        ))
    })?;
    let commit = check_sha1(&sha, "commit sha")?;
    let gated = match raw.gated {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Bool(true) => Some("true".to_string()),
        _ => None,
    };
    let siblings = raw
        .siblings
        .into_iter()
        .map(|s| {
            let lfs = s.lfs.map(|l| (l.sha256, l.size));
            remote_file(s.rfilename, s.size, s.blob_id, lfs, "hub lists")
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ModelInfo {
        id: raw.id.unwrap_or_else(|| repo.to_string()),
        commit,
        private: raw.private,
        gated,
        pipeline_tag: raw.pipeline_tag,
        library_name: raw.library_name,
        tags: raw.tags,
        parameters: raw.safetensors.and_then(|s| s.total),
        last_modified: raw.last_modified,
        siblings,
    })
}

fn parse_tree_entry(e: RawTreeEntry) -> Result<RemoteFile> {
    let lfs = e.lfs.map(|l| (l.oid, l.size));
    let f = remote_file(e.path, e.size, e.oid, lfs, "hub's tree lists")?;
    if f.sha256.is_none() && f.git_sha1.is_none() {
        return Err(EmaError::Integrity(format!(
            "the hub's tree lists {} without any hash; ema cannot verify it, refusing",
            f.path
        )));
    }
    Ok(f)
}

/// One listed file (a `siblings` entry of the model info or a tree entry), checked before use: a safe path,
/// well-formed hashes, and one size (`lfs` is the LFS pointer's `(sha256, size)`).
fn remote_file(
    path: String,
    size: Option<u64>,
    git_sha1: Option<String>,
    lfs: Option<(String, u64)>,
    source: &str,
) -> Result<RemoteFile> {
    validate_repo_path(&path)?;
    let git_sha1 = match &git_sha1 {
        Some(h) => Some(check_sha1(h, "git blob id")?),
        None => None,
    };
    let (sha256, size) = match lfs {
        Some((sha256, lfs_size)) => {
            if let Some(sz) = size
                && sz != lfs_size
            {
                return Err(EmaError::Integrity(format!(
                    "the {source} {path} with two sizes ({sz} and lfs {lfs_size}); refusing"
                )));
            }
            (Some(check_sha256(&sha256, "lfs sha256")?), lfs_size)
        }
        None => (None, size.unwrap_or(0)),
    };
    Ok(RemoteFile {
        path,
        size,
        git_sha1,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hex_checks() {
        assert!(check_sha1(&"a".repeat(40), "x").is_ok());
        assert!(check_sha1(&"a".repeat(39), "x").is_err());
        assert!(check_sha1(&format!("../{}", "a".repeat(37)), "x").is_err());
        assert_eq!(
            check_sha256(&"AB".repeat(32), "x").unwrap(),
            "ab".repeat(32)
        );
        assert!(check_sha256(&"g".repeat(64), "x").is_err());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after_seconds(&hm(&[("retry-after", "7")])), Some(7.0));
        let future =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(100));
        let s = retry_after_seconds(&hm(&[("retry-after", &future)])).unwrap();
        assert!((90.0..=101.0).contains(&s), "{s}");
        assert_eq!(
            retry_after_seconds(&hm(&[("ratelimit", "\"api\";r=0;t=55")])),
            Some(55.0)
        );
        assert_eq!(retry_after_seconds(&hm(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn link_header_next() {
        let cur = Url::parse("http://127.0.0.1:9/api/models/a/b/tree/x?recursive=true").unwrap();
        let h = hm(&[(
            "link",
            "<http://127.0.0.1:9/api/models/a/b/tree/x?recursive=true&cursor=abc>; rel=\"next\"",
        )]);
        assert_eq!(
            next_link(&h, &cur).unwrap().as_str(),
            "http://127.0.0.1:9/api/models/a/b/tree/x?recursive=true&cursor=abc"
        );
        assert!(next_link(&hm(&[("link", "<x>; rel=\"prev\"")]), &cur).is_none());
        let rel = hm(&[("link", "</p2?c=1>; rel=\"next\"")]);
        assert_eq!(
            next_link(&rel, &cur).unwrap().as_str(),
            "http://127.0.0.1:9/p2?c=1"
        );
    }

    #[test]
    fn head_parsing() {
        let sha = "c".repeat(40);
        let h = hm(&[
            ("x-repo-commit", &sha),
            ("x-linked-etag", &format!("\"{}\"", "A".repeat(64))),
            ("x-linked-size", "123"),
            ("content-length", "9"),
        ]);
        let f = parse_head(&h, true).unwrap();
        assert_eq!(f.etag.unwrap(), "a".repeat(64));
        assert_eq!(f.size, Some(123));
        let h = hm(&[("etag", "W/\"abc\""), ("content-length", "9")]);
        assert_eq!(parse_head(&h, true).unwrap().size, None);
        assert_eq!(parse_head(&h, false).unwrap().size, Some(9));
        assert!(parse_head(&hm(&[("x-repo-commit", "../../etc")]), false).is_err());
    }

    #[test]
    fn tree_entries_validated() {
        let ok = RawTreeEntry {
            kind: "file".into(),
            path: "a/b.bin".into(),
            size: Some(5),
            oid: Some("d".repeat(40)),
            lfs: Some(RawTreeLfs {
                oid: "e".repeat(64),
                size: 5,
            }),
        };
        let f = parse_tree_entry(ok).unwrap();
        assert!(f.is_lfs());
        assert_eq!(f.expected_hash().unwrap(), "e".repeat(64));
        for (path, oid) in [("../x", "d".repeat(40)), ("ok", "zz".to_string())] {
            let bad = RawTreeEntry {
                kind: "file".into(),
                path: path.into(),
                size: Some(1),
                oid: Some(oid),
                lfs: None,
            };
            assert!(parse_tree_entry(bad).is_err());
        }
    }

    #[test]
    fn redaction_and_encoding() {
        let u = Url::parse("https://user:pw@cdn.example/x/y?X-Amz-Signature=secret#f").unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("secret") && !r.contains("pw"), "{r}");
        assert_eq!(encode_segment("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_path("a b/c#d.txt"), "a%20b/c%23d.txt");
    }

    #[test]
    fn token_only_to_own_origin_and_not_over_remote_http() {
        let cfg = DownloadsConfig::default();
        let env = |ep: &str| HubEnv {
            endpoint: ep.to_string(),
            token: Some("hf_secret".into()),
            token_source: Some("HF_TOKEN".into()),
            offline: false,
        };
        let c = HubClient::new(&env("http://127.0.0.1:8080"), &cfg).unwrap();
        assert!(c.may_send_token(&Url::parse("http://127.0.0.1:8080/x").unwrap()));
        assert!(!c.may_send_token(&Url::parse("http://127.0.0.2:8080/x").unwrap()));
        assert!(!c.may_send_token(&Url::parse("http://127.0.0.1:8081/x").unwrap()));
        let c = HubClient::new(&env("http://hub.example.com"), &cfg).unwrap();
        assert!(c.token_withheld());
        assert!(!c.may_send_token(&Url::parse("http://hub.example.com/x").unwrap()));
        let c = HubClient::new(&env("https://hub.example.com"), &cfg).unwrap();
        assert!(c.may_send_token(&Url::parse("https://hub.example.com/x").unwrap()));
    }
}
