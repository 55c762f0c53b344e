//! The redirect and token rules: which redirects are followed (never to a non-http URL, never an https → http
//! downgrade to a remote host, cross-host only for bytes), and where the token may go (only the endpoint's own
//! origin, never plain http to a non-loopback host unless allowed).

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use url::Url;

use super::failure::{HttpFailure, redact_url};
use super::headers::header_str;
use crate::engine::error::EmaError;

/// Longest redirect chain followed.
pub(super) const MAX_REDIRECTS: usize = 10;

/// Is this host a loopback address or `localhost`?
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Same scheme, host (case-insensitive) and port?
pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(|h| h.to_ascii_lowercase())
            == b.host_str().map(|h| h.to_ascii_lowercase())
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Is a configured token withheld from `endpoint`: plain http to a non-loopback host, unless allowed?
pub(super) fn withholds_token(endpoint: &Url, has_token: bool, allow_over_http: bool) -> bool {
    let plain_remote = endpoint.scheme() == "http" && !is_loopback_host(endpoint);
    has_token && plain_remote && !allow_over_http
}

/// The failure of a chain of more than [`MAX_REDIRECTS`] redirects from `endpoint`.
pub(super) fn too_many_redirects(endpoint: &Url) -> HttpFailure {
    HttpFailure::Fatal(EmaError::Hub(format!(
        "more than {MAX_REDIRECTS} redirects from {endpoint}; check HF_ENDPOINT"
    )))
}

/// Where a redirect answer leads, if it is to be followed: `None` for a final answer (not a redirect, no
/// Location, or a cross-host redirect when `follow_cross_host` is off). Refuses non-http targets and
/// https → http downgrades to a non-loopback host.
pub(super) fn next_hop(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        let u = Url::parse("https://user:pw@cdn.example/x/y?X-Amz-Signature=secret#f").unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("secret") && !r.contains("pw"), "{r}");
    }
}
