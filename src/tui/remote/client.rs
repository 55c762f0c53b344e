//! The attached console's HTTP side: the server URL checked (plain `http://HOST:PORT`, no token in it), the bearer
//! token read from `EMA_API_TOKEN` or a file, and JSON GET/POST calls whose failures say what went wrong and what
//! to do (unreachable server, wrong token, an error answer). The token is never printed, logged or put in a URL.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::engine::error::{EmaError, Result};

/// How long one REST call may take before the server counts as unresponsive.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The bearer token for the server, kept out of `Debug` output.
#[derive(Clone, Default)]
pub struct Token(Option<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Token(<redacted>)"
        } else {
            "Token(none)"
        })
    }
}

impl Token {
    pub fn none() -> Self {
        Token(None)
    }

    /// `--token-file FILE` (first line, trimmed) when given, else `EMA_API_TOKEN`, else no token.
    pub fn load(token_file: Option<&Path>, env_value: Option<String>) -> Result<Self> {
        if let Some(p) = token_file {
            let text = std::fs::read_to_string(p)
                .map_err(|e| EmaError::io("cannot read the token file", p, e))?;
            let t = text.lines().next().unwrap_or("").trim().to_string();
            if t.is_empty() {
                return Err(EmaError::Config(format!(
                    "the token file {} is empty; write the server's api.token into it",
                    p.display()
                )));
            }
            return Ok(Token(Some(t)));
        }
        Ok(Token(
            env_value
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        ))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The `Authorization` header value.
    fn header(&self) -> Option<String> {
        self.0.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// The `Sec-WebSocket-Protocol` value: `ema.v1`, plus `bearer.<base64url token>` when there is a token.
    pub fn ws_protocols(&self) -> String {
        match &self.0 {
            Some(t) => format!(
                "{}, {}{}",
                crate::server::security::WS_PROTOCOL,
                crate::server::security::WS_BEARER_PREFIX,
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t)
            ),
            None => crate::server::security::WS_PROTOCOL.to_string(),
        }
    }
}

/// Check `--attach URL`: `http://HOST[:PORT]` with nothing else; the normalized base (no trailing slash).
pub fn parse_server_url(raw: &str) -> Result<url::Url> {
    // A URL with credentials in it is not echoed: they would be printed.
    let shown = if raw.contains('@') {
        String::new()
    } else {
        format!(" {raw:?}")
    };
    let bad = |why: &str| {
        EmaError::Config(format!(
            "--attach{shown}: {why}; give the server's address as http://HOST:PORT (e.g. http://127.0.0.1:8000)"
        ))
    };
    let u = url::Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    match u.scheme() {
        "http" => {}
        "https" => {
            return Err(bad(
                "https is not supported by the attached console; forward the server's port over SSH \
                 (ssh -L 8000:127.0.0.1:8000 HOST) and attach to http://127.0.0.1:8000",
            ));
        }
        other => return Err(bad(&format!("unsupported scheme {other:?}"))),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL; put the token in EMA_API_TOKEN or --token-file FILE",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad(
            "no query or fragment expected (a token goes in EMA_API_TOKEN or --token-file FILE)",
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !matches!(u.path(), "" | "/") {
        return Err(bad("no path expected"));
    }
    Ok(u)
}

/// A REST client for one server.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    base: String,
    token: Token,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish()
    }
}

impl ApiClient {
    pub fn new(server: &url::Url, token: Token) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| EmaError::Other(format!("cannot set up the HTTP client: {e}")))?;
        Ok(ApiClient {
            http,
            base: server.as_str().trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The server's base URL (`http://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> &Token {
        &self.token
    }

    /// `ws://host:port/ws`.
    pub fn ws_url(&self) -> String {
        format!(
            "ws{}/ws",
            self.base.strip_prefix("http").unwrap_or(&self.base)
        )
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let mut rq = self.http.get(format!("{}{path}", self.base));
        if let Some(h) = self.token.header() {
            rq = rq.header(reqwest::header::AUTHORIZATION, h);
        }
        self.answer(path, rq.send().await).await
    }

    /// `GET path`, where a 503 answer with error code `off` means "switched off on the server": `Ok(None)`.
    pub async fn get_unless_off(&self, path: &str, off: &str) -> Result<Option<Value>> {
        let mut rq = self.http.get(format!("{}{path}", self.base));
        if let Some(h) = self.token.header() {
            rq = rq.header(reqwest::header::AUTHORIZATION, h);
        }
        let r = rq.send().await.map_err(|e| self.unreachable(&e))?;
        if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if body["code"] == off {
                return Ok(None);
            }
            return Err(EmaError::Other(format!(
                "{path} on {} answered 503: {}",
                self.base,
                body["error"].as_str().unwrap_or("no error body")
            )));
        }
        self.answer(path, Ok(r)).await.map(Some)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let mut rq = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(h) = self.token.header() {
            rq = rq.header(reqwest::header::AUTHORIZATION, h);
        }
        self.answer(path, rq.send().await).await
    }

    async fn answer(&self, path: &str, sent: reqwest::Result<reqwest::Response>) -> Result<Value> {
        let r = sent.map_err(|e| self.unreachable(&e))?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let Some(msg) = body["error"].as_str() else {
            return Err(EmaError::NotFound(format!(
                "{path} answered {status} on {} without an error body; is it an `ema start` server of this \
                 version?",
                self.base
            )));
        };
        match status.as_u16() {
            401 => Err(EmaError::Hub(format!(
                "the server {} refused the token ({msg}); set EMA_API_TOKEN (or --token-file FILE) to the \
                 server's api.token",
                self.base
            ))),
            403 => Err(EmaError::Hub(format!(
                "the server {} refused the request ({msg}); attach with the address the server allows \
                 (api.allowed_hosts)",
                self.base
            ))),
            404 => Err(EmaError::NotFound(format!(
                "{msg} ({path} on {})",
                self.base
            ))),
            s => Err(EmaError::Other(format!(
                "{path} on {} answered {s}: {msg}",
                self.base
            ))),
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> EmaError {
        let why = if e.is_timeout() {
            "it did not answer in time".to_string()
        } else if e.is_connect() {
            "the connection was refused or timed out".to_string()
        } else {
            // The source chain names the cause (no URL with a token: tokens never go in URLs).
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(x) = src {
                s = format!("{s}: {x}");
                src = x.source();
            }
            s
        };
        EmaError::Hub(format!(
            "cannot reach the ema server at {}: {why}; is `ema start` running there (and the port right)?",
            self.base
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked() {
        assert_eq!(
            parse_server_url("http://127.0.0.1:8000/").unwrap().as_str(),
            "http://127.0.0.1:8000/"
        );
        for (bad, says) in [
            ("127.0.0.1:8000", "http://HOST:PORT"),
            ("https://h:1", "ssh -L"),
            ("ftp://h:1", "unsupported scheme"),
            ("http://u:p@h:1", "EMA_API_TOKEN"),
            ("http://h:1/?token=x", "no query"),
            ("http://h:1/api", "no path"),
        ] {
            let e = parse_server_url(bad).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
            assert!(!e.to_string().contains("u:p"), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn the_token_comes_from_the_file_or_the_environment_and_is_never_shown() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("t");
        std::fs::write(&f, "s3cret\n").unwrap();
        let t = Token::load(Some(&f), Some("other".into())).unwrap();
        assert_eq!(t.header().unwrap(), "Bearer s3cret");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(t.ws_protocols(), "ema.v1, bearer.czNjcmV0");
        std::fs::write(&f, "\n").unwrap();
        assert!(
            Token::load(Some(&f), None)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(!Token::load(None, Some("  ".into())).unwrap().is_set());
        assert_eq!(
            Token::load(None, Some("e".into()))
                .unwrap()
                .header()
                .unwrap(),
            "Bearer e"
        );
        let c = ApiClient::new(&parse_server_url("http://127.0.0.1:1").unwrap(), t).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.ws_url(), "ws://127.0.0.1:1/ws");
    }
}
