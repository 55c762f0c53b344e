//! A failed HTTP exchange, classified for the retry logic ([`HttpFailure`]), what a request was for (to word a 404
//! or 401), and error wording that never leaks a token or a URL's query string.

use url::Url;

use super::headers::truncate;
use crate::engine::error::EmaError;

/// A URL for messages: scheme, host, port and path, never the query string or userinfo.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
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

/// A request that reached no server. A host name that does not resolve will not resolve in 30 s either (no network,
/// or a typo in HF_ENDPOINT): that fails at once instead of backing off for minutes; anything else is retried.
pub(super) fn unreachable(url: &Url, detail: String, dns: bool) -> HttpFailure {
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
pub(super) fn is_name_resolution_failure(e: &reqwest::Error) -> bool {
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
