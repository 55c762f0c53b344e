//! The hub client itself: one HTTP client with the timeouts of the configuration and the token, requests sent
//! with redirects followed by hand under the redirect and token rules, JSON answers, and a failed status worded
//! for what was asked.

use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use super::failure::{
    HttpFailure, Subject, describe_reqwest, is_name_resolution_failure, redact_url, unreachable,
};
use super::headers::{header_str, retry_after_seconds, truncate};
use super::redirect::{MAX_REDIRECTS, next_hop, same_origin, too_many_redirects, withholds_token};
use crate::engine::config::DownloadsConfig;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::{EmaError, Result};
use crate::engine::store::RepoId;

pub(super) const USER_AGENT: &str = concat!("ema/", env!("CARGO_PKG_VERSION"));

/// The Hub client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HubClient {
    pub(super) http: reqwest::Client,
    pub(super) endpoint: Url,
    pub(super) token: Option<String>,
    /// Why the token is withheld from the endpoint, if it is (plain http to a non-loopback host).
    pub(super) token_withheld: bool,
    pub(super) stall: Duration,
    pub(super) connect: Duration,
    /// Plain-http file bodies through [`crate::engine::http1`] (downloads.zero_copy_http).
    pub(super) zero_copy_http: bool,
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
        let token_withheld =
            withholds_token(&endpoint, env.token.is_some(), cfg.allow_token_over_http);
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

    pub(super) fn url(&self, path: &str) -> Result<Url> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}"))
            .map_err(|e| EmaError::Other(format!("cannot build a hub URL for {path}: {e}")))
    }

    pub(super) fn may_send_token(&self, url: &Url) -> bool {
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
            match next_hop(&url, resp.status(), resp.headers(), follow_cross_host)? {
                Some(next) => url = next,
                None => return Ok(resp),
            }
        }
        Err(too_many_redirects(&self.endpoint))
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

    pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
