//! The CDN side of LFS downloads: the signed `302` location a resolve answers ([`cdn_redirect`]) and
//! `GET /cdn/{sha256}?X-Amz-Signature=…`, which serves the bytes (the same app; tests bind it on a second loopback
//! address so the redirect crosses hosts).

use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::bytes::serve_bytes;
use super::respond::{hub_error, query_params};
use super::view::Hub;

fn cdn_signature(secret: &str, sha: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(b":");
    h.update(sha.as_bytes());
    hex::encode(h.finalize())
}

/// `302` to `{base}/cdn/{sha}?X-Amz-…` (signed with `secret`, valid for an hour), with the metadata headers `extra`.
pub(crate) fn cdn_redirect(secret: &str, base: &str, sha: &str, extra: HeaderMap) -> Response {
    let expires = chrono::Utc::now().timestamp() + 3600;
    let loc = format!(
        "{}/cdn/{sha}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Date={expires}&X-Amz-Signature={}",
        base.trim_end_matches('/'),
        cdn_signature(secret, sha)
    );
    let mut r = Response::new(Body::from(format!("Found. Redirecting to {base}/cdn/…")));
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut().extend(extra);
    if let Ok(v) = HeaderValue::from_str(&loc) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

#[derive(Deserialize)]
pub(crate) struct Params {
    /// Empty when the path is `/cdn/`.
    #[serde(default)]
    sha: String,
}

/// `GET /cdn/{sha256}`: the object, when the signature matches.
pub(crate) async fn cdn(
    hub: Hub,
    Path(Params { sha }): Path<Params>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let params = query_params(query.as_deref());
    let sig_ok = params
        .get("X-Amz-Signature")
        .is_some_and(|s| *s == cdn_signature(&hub.st.cdn_secret, &sha));
    if !sig_ok {
        return hub_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "the request signature is missing or wrong",
        );
    }
    let Some(file) = hub.by_sha256(&sha) else {
        return hub_error(StatusCode::NOT_FOUND, "NoSuchKey", "no such object");
    };
    let mut extra = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\"")) {
        extra.insert(header::ETAG, v);
    }
    serve_bytes(&file, &headers, &method, extra).await
}
