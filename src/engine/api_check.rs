//! Checking a running ema server from outside, as its clients do: is it up (`GET /api/v1/admin/health`), and does
//! each endpoint answer in the shape the migration guide's legacy and enhanced clients read
//! (`ema test-api-compatibility`, the wizard's "Services started" and "API endpoints responding" steps,
//! `validate-migration --check-api`). Nothing is changed on the server: the POST endpoints are sent a request they
//! must refuse (a bad model id, an unknown action) and checked for the API's `{"error", "code"}` answer.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::config::Config;
use crate::engine::error::{EmaError, Result};

/// Each request's bound.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The server to check and the token to send.
#[derive(Clone)]
pub struct Target {
    /// `http://HOST:PORT`, without a trailing `/`.
    pub base: String,
    token: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Target {
    /// `url`, else the configured `api.host:api.port` (a wildcard bind is reached on loopback); the token from
    /// `token_env` (`EMA_API_TOKEN`), else `api.token`.
    pub fn new(cfg: &Config, url: Option<&str>, token_env: Option<String>) -> Result<Target> {
        let base = match url {
            Some(u) => {
                let parsed = url::Url::parse(u).map_err(|e| {
                    EmaError::Config(format!(
                        "--url {u:?} is not a URL ({e}); give the server's address, e.g. --url http://127.0.0.1:8000"
                    ))
                })?;
                if parsed.scheme() != "http" || parsed.host_str().is_none() {
                    return Err(EmaError::Config(format!(
                        "--url {u:?}: only http://HOST:PORT is supported (ema start serves plain HTTP; put TLS in \
                         a reverse proxy and check the server behind it)"
                    )));
                }
                u.trim_end_matches('/').to_string()
            }
            None => {
                let host = match cfg.api.host.as_str() {
                    "0.0.0.0" | "" => "127.0.0.1".to_string(),
                    "::" | "[::]" => "[::1]".to_string(),
                    h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
                    h => h.to_string(),
                };
                format!("http://{host}:{}", cfg.api.port)
            }
        };
        let token = token_env
            .filter(|t| !t.is_empty())
            .or_else(|| cfg.api.token.clone().filter(|t| !t.is_empty()));
        Ok(Target { base, token })
    }

    /// Whether a token is sent (its value is never shown).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The token, for the WebSocket handshake of the engine's own checks.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub(crate) fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client")
    }

    pub(crate) fn get(&self, c: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
        self.auth(c.get(format!("{}{path}", self.base)))
    }

    pub(crate) fn post(
        &self,
        c: &reqwest::Client,
        path: &str,
        body: Value,
    ) -> reqwest::RequestBuilder {
        self.auth(c.post(format!("{}{path}", self.base)).json(&body))
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }
}

/// The server's liveness answer.
#[derive(Debug, Clone, Serialize)]
pub struct Alive {
    pub version: String,
    pub uptime_seconds: f64,
}

/// Is an ema server answering at `t` (`GET /api/v1/admin/health` → `{"status": "ok"}`)? The error says what
/// answered instead and how to start one.
pub async fn alive(t: &Target) -> std::result::Result<Alive, String> {
    let how = "start it with `ema start` (or `systemctl start enhanced-model-availability` for the packaged service)";
    let r = t
        .get(&t.client(), "/api/v1/admin/health")
        .send()
        .await
        .map_err(|e| format!("no ema server answers at {} ({}); {how}", t.base, short(&e)))?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if status.is_success() && v["status"] == "ok" {
        return Ok(Alive {
            version: v["version"].as_str().unwrap_or("?").to_string(),
            uptime_seconds: v["uptime_seconds"].as_f64().unwrap_or(0.0),
        });
    }
    Err(format!(
        "{} answers GET /api/v1/admin/health with {status} and not ema's {{\"status\": \"ok\"}}: another service \
         holds the address? {how} on the configured api.host/api.port",
        t.base
    ))
}

/// One endpoint's check.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointCheck {
    /// `legacy` or `enhanced`.
    pub set: &'static str,
    /// `GET /api/v1/models/status`.
    pub endpoint: &'static str,
    pub passed: bool,
    pub http_status: Option<u16>,
    /// What was found (the shape that matched, or what did not and why).
    pub reason: String,
    pub millis: f64,
}

/// Every check of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Compatibility {
    pub url: String,
    pub checks: Vec<EndpointCheck>,
    pub passed: usize,
    pub failed: usize,
}

impl Compatibility {
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && !self.checks.is_empty()
    }
}

type Shape = fn(u16, &Value) -> std::result::Result<String, String>;

/// Check the legacy and / or enhanced endpoints at `t` (neither flag: both).
pub async fn compatibility(t: &Target, legacy: bool, enhanced: bool) -> Compatibility {
    let (legacy, enhanced) = if !legacy && !enhanced {
        (true, true)
    } else {
        (legacy, enhanced)
    };
    let c = t.client();
    let mut checks = Vec::new();
    let probe = "org/ema-compat-check";
    let plan: Vec<(&'static str, &'static str, reqwest::RequestBuilder, Shape)> = [
        (
            legacy,
            "legacy",
            "GET /api/v1/models/status",
            t.get(&c, "/api/v1/models/status"),
            legacy_status as Shape,
        ),
        (
            legacy,
            "legacy",
            "POST /api/v1/models/download",
            t.post(
                &c,
                "/api/v1/models/download",
                json!({"model_id": "../not/a/model"}),
            ),
            refused,
        ),
        (
            legacy,
            "legacy",
            "GET /api/v1/models/health",
            t.get(&c, "/api/v1/models/health"),
            health,
        ),
        (
            enhanced,
            "enhanced",
            "GET /api/v1/models/status/detailed",
            t.get(&c, "/api/v1/models/status/detailed"),
            detailed,
        ),
        (
            enhanced,
            "enhanced",
            "POST /api/v1/models/download/manage",
            t.post(
                &c,
                "/api/v1/models/download/manage",
                json!({"model_id": probe, "action": "compatibility-check"}),
            ),
            refused,
        ),
        (
            enhanced,
            "enhanced",
            "GET /api/v1/downloads",
            t.get(&c, "/api/v1/downloads"),
            downloads,
        ),
        (
            enhanced,
            "enhanced",
            "POST /api/v1/models/fallback/suggest",
            t.post(
                &c,
                "/api/v1/models/fallback/suggest",
                json!({"requested_model": "../not/a/model"}),
            ),
            refused,
        ),
        (
            enhanced,
            "enhanced",
            "GET /api/v1/admin/health",
            t.get(&c, "/api/v1/admin/health"),
            admin,
        ),
    ]
    .into_iter()
    .filter(|p| p.0)
    .map(|p| (p.1, p.2, p.3, p.4))
    .collect();
    for (set, endpoint, rq, shape) in plan {
        let t0 = Instant::now();
        let (status, res) = match rq.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                (Some(s), shape(s, &v))
            }
            Err(e) => (None, Err(format!("no answer: {}", short(&e)))),
        };
        checks.push(EndpointCheck {
            set,
            endpoint,
            passed: res.is_ok(),
            http_status: status,
            reason: res.unwrap_or_else(|e| e),
            millis: t0.elapsed().as_secs_f64() * 1000.0,
        });
    }
    if enhanced {
        let t0 = Instant::now();
        let res = websocket_snapshot(t).await;
        checks.push(EndpointCheck {
            set: "enhanced",
            endpoint: "GET /ws",
            passed: res.is_ok(),
            http_status: res.as_ref().ok().map(|_| 101),
            reason: res.unwrap_or_else(|e| e),
            millis: t0.elapsed().as_secs_f64() * 1000.0,
        });
    }
    let passed = checks.iter().filter(|c| c.passed).count();
    Compatibility {
        url: t.base.clone(),
        failed: checks.len() - passed,
        passed,
        checks,
    }
}

pub(crate) fn short(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s = x.to_string();
        src = x.source();
    }
    s
}

fn expect_200(status: u16, v: &Value) -> std::result::Result<(), String> {
    match status {
        200 => Ok(()),
        401 => Err("401: the server wants a token; set EMA_API_TOKEN (or api.token)".into()),
        404 => Err("404: not served here (legacy-only or split ports? check --url)".into()),
        s => Err(format!(
            "{s} instead of 200: {}",
            v["error"].as_str().unwrap_or("")
        )),
    }
}

fn legacy_status(s: u16, v: &Value) -> std::result::Result<String, String> {
    expect_200(s, v)?;
    let m = v
        .as_object()
        .ok_or("the answer is not a JSON object of models")?;
    for (id, st) in m {
        if !st["available"].is_boolean() {
            return Err(format!(
                "model {id:?} has no boolean \"available\" (the legacy client reads it)"
            ));
        }
    }
    Ok(format!("{} models, each with \"available\"", m.len()))
}

fn detailed(s: u16, v: &Value) -> std::result::Result<String, String> {
    expect_200(s, v)?;
    let m = v["models"]
        .as_object()
        .ok_or("no \"models\" object (the enhanced client reads data['models'])")?;
    for (id, st) in m {
        if !st["is_available"].is_boolean() {
            return Err(format!("model {id:?} has no boolean \"is_available\""));
        }
    }
    Ok(format!(
        "\"models\": {} models, each with \"is_available\"",
        m.len()
    ))
}

fn health(s: u16, v: &Value) -> std::result::Result<String, String> {
    expect_200(s, v)?;
    match (v["status"].as_str(), v["models"].as_object()) {
        (Some(st), Some(m)) => Ok(format!("status {st}, {} models checked", m.len())),
        _ => Err("no \"status\" string and \"models\" object".into()),
    }
}

fn downloads(s: u16, v: &Value) -> std::result::Result<String, String> {
    expect_200(s, v)?;
    let jobs = v["downloads"].as_array().ok_or("no \"downloads\" list")?;
    for j in jobs {
        for k in [
            "job_id",
            "model_id",
            "state",
            "bytes_done",
            "bytes_total",
            "progress_percent",
        ] {
            if j.get(k).is_none() {
                return Err(format!("a job has no {k:?}"));
            }
        }
    }
    Ok(format!("\"downloads\": {} jobs", jobs.len()))
}

fn admin(s: u16, v: &Value) -> std::result::Result<String, String> {
    expect_200(s, v)?;
    match v["status"].as_str() {
        Some("ok") => Ok(format!(
            "ok, version {}",
            v["version"].as_str().unwrap_or("?")
        )),
        _ => Err("no \"status\": \"ok\"".into()),
    }
}

/// A POST endpoint sent a request it must refuse: a 400 with the API's `{"error", "code"}` proves it is served
/// and validates its input, without changing anything.
fn refused(s: u16, v: &Value) -> std::result::Result<String, String> {
    if s == 400 && v["error"].is_string() && v["code"].is_string() {
        return Ok(format!(
            "served; a bad request is refused with 400 {}",
            v["code"].as_str().unwrap_or("")
        ));
    }
    expect_200(s, v)?;
    Err(format!(
        "{s} to a request it must refuse, instead of 400 {{\"error\", \"code\"}}"
    ))
}

/// The WebSocket handshake (`ema.v1`, the token as a `bearer.` entry like a browser) and its first frame, which
/// must be the `snapshot`.
async fn websocket_snapshot(t: &Target) -> std::result::Result<String, String> {
    let u = url::Url::parse(&t.base).map_err(|e| e.to_string())?;
    let host = u.host_str().ok_or("no host")?.to_string();
    let port = u.port_or_known_default().unwrap_or(80);
    let work = async {
        let mut s = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let mut protocols = "ema.v1".to_string();
        if let Some(tok) = &t.token {
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok);
            protocols.push_str(&format!(", bearer.{b}"));
        }
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocols}\r\n\r\n",
            u.host_str().unwrap_or_default().to_string()
                + &u.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed the connection during the handshake".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return Err("the handshake answer is too long".into());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "101" {
            return Err(format!("HTTP {status} instead of 101 Switching Protocols"));
        }
        let accept = base64::engine::general_purpose::STANDARD.encode(Sha1::digest(
            format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
        ));
        if !head.to_ascii_lowercase().contains(&format!(
            "sec-websocket-accept: {}",
            accept.to_ascii_lowercase()
        )) {
            return Err("the handshake's Sec-WebSocket-Accept is wrong".into());
        }
        let mut rest = buf[head_end..].to_vec();
        let text = read_text_frame(&mut s, &mut rest).await?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("the first frame is not JSON: {e}"))?;
        if v["type"] != "snapshot" || !v["models"].is_object() {
            return Err(format!(
                "the first frame is {:?}, not the snapshot",
                v["type"]
            ));
        }
        Ok(format!(
            "101, subprotocol ema.v1; a snapshot of {} models first",
            v["models"].as_object().map(|m| m.len()).unwrap_or(0)
        ))
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err("no snapshot within 10 s".into()))
}

/// One unmasked text frame from the server (the snapshot is sent whole, never fragmented).
async fn read_text_frame(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::result::Result<String, String> {
    async fn fill(
        s: &mut tokio::net::TcpStream,
        buf: &mut Vec<u8>,
        n: usize,
    ) -> std::result::Result<(), String> {
        while buf.len() < n {
            let mut chunk = vec![0u8; 64 * 1024];
            let k = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if k == 0 {
                return Err("the server closed the WebSocket before the snapshot".into());
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        Ok(())
    }
    fill(s, buf, 2).await?;
    let opcode = buf[0] & 0x0f;
    let (len, at) = match buf[1] & 0x7f {
        126 => {
            fill(s, buf, 4).await?;
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            fill(s, buf, 10).await?;
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    if opcode != 1 {
        return Err(format!("the first frame has opcode {opcode}, not text"));
    }
    if len > 256 * 1024 * 1024 {
        return Err("the first frame is over 256 MiB".into());
    }
    fill(s, buf, at + len).await?;
    String::from_utf8(buf[at..at + len].to_vec()).map_err(|_| "the first frame is not UTF-8".into())
}

/// [`alive`] and [`compatibility`] from blocking code (the wizard's steps, validate-migration): a runtime of
/// their own.
pub fn blocking<T>(f: impl std::future::Future<Output = T>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EmaError::Other(format!("cannot start a runtime for the API checks: {e}")))?;
    Ok(rt.block_on(f))
}
