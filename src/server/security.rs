//! The one security layer around every route of `ema start` (what Ollama's CVEs taught): a Host allow-list
//! against DNS rebinding (403), an Origin allow-list for the WebSocket and every state-changing request (403, no
//! wildcard CORS), and a Bearer token on every route but `GET /api/v1/admin/health` and `/metrics` (401),
//! compared in constant time. Browsers pass the token to `/ws` as a `Sec-WebSocket-Protocol` entry
//! `bearer.<base64url token>` beside `ema.v1`. The token never appears in an answer or a log.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::api::error::error_response;

/// The WebSocket subprotocol the server speaks (and echoes).
pub const WS_PROTOCOL: &str = "ema.v1";
/// The prefix of the subprotocol entry that carries the token.
pub const WS_BEARER_PREFIX: &str = "bearer.";

/// What the layer enforces.
pub struct Guard {
    /// sha256 of the token (compared in constant time); `None`: no authentication.
    token_digest: Option<[u8; 32]>,
    /// Host names (lower case, without port) requests may name.
    hosts: BTreeSet<String>,
    /// Origins (`scheme://host[:port]`, lower case) besides the server's own.
    origins: BTreeSet<String>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("token", &self.token_digest.map(|_| "<redacted>"))
            .field("hosts", &self.hosts)
            .field("origins", &self.origins)
            .finish()
    }
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// The machine's host name, if it has one.
fn machine_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..n])
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_ascii_lowercase())
}

impl Guard {
    /// A guard for a server bound to `bound`, with `token` (None: open), extra `allowed_hosts` and
    /// `allowed_origins` from the configuration.
    pub fn new(
        bound: IpAddr,
        token: Option<&str>,
        allowed_hosts: &[String],
        allowed_origins: &[String],
    ) -> Guard {
        let mut hosts: BTreeSet<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !bound.is_unspecified() {
            hosts.insert(bound.to_string());
        } else if let Some(n) = machine_name() {
            hosts.insert(n);
        }
        hosts.extend(allowed_hosts.iter().map(|h| h.to_ascii_lowercase()));
        Guard {
            token_digest: token.map(|t| digest(t.as_bytes())),
            hosts,
            origins: allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether requests need the token (every route but the open ones).
    pub fn requires_token(&self) -> bool {
        self.token_digest.is_some()
    }

    fn token_ok(&self, offered: &str) -> bool {
        match &self.token_digest {
            Some(want) => bool::from(digest(offered.as_bytes()).ct_eq(want)),
            None => true,
        }
    }

    /// The host part of a Host header value (`name`, `name:port`, `[v6]:port`), lower case.
    fn host_name(value: &str) -> String {
        let v = value.trim().to_ascii_lowercase();
        if let Some(rest) = v.strip_prefix('[') {
            return rest.split(']').next().unwrap_or("").to_string();
        }
        match v.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
            _ => v,
        }
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| self.hosts.contains(&Self::host_name(h)))
    }

    /// The origin is the server's own (same host:port as the Host header) or listed.
    fn origin_allowed(&self, origin: &str, headers: &HeaderMap) -> bool {
        let o = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.origins.contains(&o) {
            return true;
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.trim().to_ascii_lowercase());
        match (o.strip_prefix("http://"), host) {
            (Some(rest), Some(h)) => rest == h,
            _ => false,
        }
    }

    /// The token the request offers: `Authorization: Bearer T`, or for `/ws` a `bearer.<base64url T>` entry of
    /// `Sec-WebSocket-Protocol`.
    fn offered_token(headers: &HeaderMap, ws: bool) -> Option<String> {
        if let Some(t) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        {
            return Some(t.trim().to_string());
        }
        if !ws {
            return None;
        }
        headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find_map(|p| p.strip_prefix(WS_BEARER_PREFIX))
            .and_then(|b| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(b.trim_end_matches('='))
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
    }
}

/// Routes served without a token.
fn open_route(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && (path == "/api/v1/admin/health" || path == "/metrics")
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = error_response(status, code, message);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// The guard in force, replaceable while the server runs (a configuration reload can change the token and the
/// allow-lists); each request sees one guard from start to end.
#[derive(Debug, Clone)]
pub struct GuardCell(Arc<std::sync::RwLock<Arc<Guard>>>);

impl GuardCell {
    pub fn new(g: Guard) -> Self {
        GuardCell(Arc::new(std::sync::RwLock::new(Arc::new(g))))
    }

    pub fn current(&self) -> Arc<Guard> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, g: Guard) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(g);
    }
}

/// The middleware (see the module comment).
pub async fn enforce(State(cell): State<GuardCell>, req: Request, next: Next) -> Response {
    let g = cell.current();
    let headers = req.headers();
    if !g.host_allowed(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            "the Host header names no address of this server; add the name to api.allowed_hosts to serve it",
        );
    }
    let path = req.uri().path().to_string();
    let ws = path == "/ws";
    let method = req.method().clone();
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let state_changing = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if let Some(o) = &origin
        && (ws || state_changing || method == Method::OPTIONS)
        && !g.origin_allowed(o, headers)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "requests from this web origin are refused; add it to api.allowed_origins to allow it",
        );
    }
    let listed = origin.as_ref().filter(|o| {
        g.origins
            .contains(&o.trim_end_matches('/').to_ascii_lowercase())
    });
    if method == Method::OPTIONS {
        // A CORS preflight from an allowed origin (never a wildcard).
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Some(o) = listed
            && let Ok(v) = HeaderValue::from_str(o)
        {
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        return r;
    }
    if g.token_digest.is_some() && !open_route(&method, &path) {
        match Guard::offered_token(headers, ws) {
            Some(t) if g.token_ok(&t) => {}
            Some(_) => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "bad_token",
                    "the bearer token is wrong; send the value of api.token (or EMA_API_TOKEN)",
                );
            }
            None => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "token_required",
                    "this server requires a token: send `Authorization: Bearer <api.token>` (for /ws, a \
                     `bearer.<base64url token>` entry in Sec-WebSocket-Protocol beside ema.v1)",
                );
            }
        }
    }
    let listed = listed.cloned();
    let mut resp = next.run(req).await;
    if let Some(o) = listed
        && let Ok(v) = HeaderValue::from_str(&o)
    {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_drop_the_port() {
        assert_eq!(Guard::host_name("LocalHost:8000"), "localhost");
        assert_eq!(Guard::host_name("[::1]:8000"), "::1");
        assert_eq!(Guard::host_name("example.com"), "example.com");
    }

    #[test]
    fn token_compare_and_ws_entry() {
        let g = Guard::new("127.0.0.1".parse().unwrap(), Some("s3cret"), &[], &[]);
        assert!(g.token_ok("s3cret"));
        assert!(!g.token_ok("s3cre"));
        let mut h = HeaderMap::new();
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("s3cret");
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(&format!("ema.v1, bearer.{b}")).unwrap(),
        );
        assert_eq!(Guard::offered_token(&h, true).as_deref(), Some("s3cret"));
        assert_eq!(Guard::offered_token(&h, false), None);
        assert!(!format!("{g:?}").contains("s3cret"));
    }
}
