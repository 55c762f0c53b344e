//! The checks of a running `ema start` (`ema test-monitoring`, the wizard's "Monitoring configured" step): the
//! server answers, `/metrics` answers and parses, every metric the generated rules and dashboard name is
//! exported; and, on request, a test alert raised through `POST /api/v1/admin/test-alerts` is seen end to end —
//! on the WebSocket as `model_health_alert`, in the alert history (`GET /api/v1/models/health`, what `ema health`
//! lists) and in `/metrics` (`ema_alerts_open{kind="test"}`) — then resolved and seen cleared.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::exposition::Exposition;
use super::test_alerts::TEST_ALERT_PREFIX;
use super::{MEASURED_COUNT, MEASURED_ONLY, dashboard, metric_names, rules};
use crate::engine::api_check::{self, Target, short};

/// How long a test alert may take to show on the WebSocket.
const WS_WAIT: Duration = Duration::from_secs(15);
/// At most this many frames are read while waiting for it.
const WS_MAX_FRAMES: usize = 10_000;
/// Test alerts raised by the checks resolve themselves after this long if the checks cannot resolve them.
const AUTO_RESOLVE_SECONDS: u64 = 120;

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// Every check of one run.
#[derive(Debug, Clone, Serialize)]
pub struct LiveReport {
    pub url: String,
    pub checks: Vec<Check>,
    pub passed: usize,
    pub failed: usize,
    /// The test alerts' run id, when raised.
    pub test_run: Option<String>,
}

impl LiveReport {
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && !self.checks.is_empty()
    }
}

struct Run {
    checks: Vec<Check>,
}

impl Run {
    fn add(&mut self, name: &'static str, r: Result<String, String>) -> bool {
        let passed = r.is_ok();
        self.checks.push(Check {
            name,
            passed,
            detail: r.unwrap_or_else(|e| e),
        });
        passed
    }
}

/// `GET /metrics`, parsed.
async fn scrape(t: &Target) -> Result<(Exposition, usize), String> {
    let r = t
        .get(&t.client(), "/metrics")
        .send()
        .await
        .map_err(|e| format!("no answer: {}", short(&e)))?;
    let status = r.status();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r
        .text()
        .await
        .map_err(|e| format!("cannot read the answer: {}", short(&e)))?;
    if !status.is_success() {
        return Err(format!("GET /metrics answered {status}"));
    }
    if !ctype.starts_with("text/plain") && !ctype.starts_with("application/openmetrics-text") {
        return Err(format!(
            "GET /metrics answered with content type {ctype:?}, not the text exposition"
        ));
    }
    let e =
        Exposition::parse(&text).map_err(|why| format!("the exposition does not parse: {why}"))?;
    Ok((e, text.len()))
}

fn present(e: &Exposition, what: &str, wanted: Vec<String>) -> Result<String, String> {
    let mut wanted: Vec<String> = wanted.into_iter().filter(|m| m != "up").collect();
    wanted.sort();
    wanted.dedup();
    let missing = e.missing(&wanted);
    // Throughput gauges appear once a model was measured; a server that counts the measured models has them.
    let (waiting, missing): (Vec<String>, Vec<String>) = missing
        .into_iter()
        .partition(|m| MEASURED_ONLY.contains(&m.as_str()) && e.has(MEASURED_COUNT));
    if !missing.is_empty() {
        return Err(format!(
            "{} of the {} metrics {what} are not exported: {} (a server older than these files? regenerate \
             them with `ema setup-monitoring --force`, or upgrade the server)",
            missing.len(),
            wanted.len(),
            missing.join(", ")
        ));
    }
    let mut s = format!("all {} metrics {what} are exported", wanted.len());
    if !waiting.is_empty() {
        s = format!(
            "{} metrics {what} are exported; these appear once a full verification measured a model's \
             read throughput: {} ({MEASURED_COUNT} = {})",
            wanted.len() - waiting.len(),
            waiting.join(", "),
            e.sum(MEASURED_COUNT, &[]).unwrap_or(0.0)
        );
    }
    Ok(s)
}

/// The checks of the server at `t`; with `test_alerts`, a test alert is raised, looked for and resolved.
pub async fn check(t: &Target, test_alerts: bool) -> LiveReport {
    let mut run = Run { checks: Vec::new() };
    let alive = api_check::alive(t)
        .await
        .map(|a| format!("ema {} up {:.0} s", a.version, a.uptime_seconds));
    let mut test_run = None;
    if run.add("server answers", alive) {
        let scraped = scrape(t).await;
        let parsed = scraped.as_ref().map(|(e, n)| {
            format!(
                "{} families, {} samples, {} bytes",
                e.families.len(),
                e.samples.len(),
                n
            )
        });
        if run.add("/metrics answers and parses", parsed.map_err(|e| e.clone()))
            && let Ok((e, _)) = &scraped
        {
            let rule_metrics: Vec<String> = rules::RULES.iter().flat_map(|r| r.metrics()).collect();
            run.add(
                "alert rules' metrics exported",
                present(e, "the alert rules name", rule_metrics),
            );
            let dash: Vec<String> = dashboard::queries()
                .into_iter()
                .flat_map(metric_names)
                .collect();
            run.add(
                "dashboard's metrics exported",
                present(e, "the dashboard names", dash),
            );
        }
        if test_alerts {
            test_run = alert_path(t, &mut run).await;
        }
    }
    let passed = run.checks.iter().filter(|c| c.passed).count();
    LiveReport {
        url: t.base.clone(),
        failed: run.checks.len() - passed,
        passed,
        checks: run.checks,
        test_run,
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `/ws` with `ema.v1` and the token as a `bearer.` entry, its snapshot read.
async fn open_ws(t: &Target) -> Result<Ws, String> {
    use base64::Engine as _;
    let url = format!("{}/ws", t.base.replacen("http", "ws", 1));
    let mut rq = url
        .into_client_request()
        .map_err(|e| format!("bad WebSocket address: {e}"))?;
    let mut protocols = "ema.v1".to_string();
    if let Some(tok) = t.token() {
        protocols.push_str(&format!(
            ", bearer.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok)
        ));
    }
    let hv = HeaderValue::from_str(&protocols)
        .map_err(|_| "the token has characters a header cannot carry".to_string())?;
    rq.headers_mut().insert("Sec-WebSocket-Protocol", hv);
    let (mut ws, _) = tokio::time::timeout(WS_WAIT, tokio_tungstenite::connect_async(rq))
        .await
        .map_err(|_| "the WebSocket handshake did not finish in time".to_string())?
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                format!("/ws answered {}", r.status())
            }
            e => format!("cannot open /ws: {e}"),
        })?;
    // The snapshot comes first.
    let first = next_json(&mut ws, Instant::now() + WS_WAIT).await?;
    if first["type"] != "snapshot" {
        return Err(format!(
            "the first frame is {:?}, not the snapshot",
            first["type"]
        ));
    }
    Ok(ws)
}

async fn next_json(ws: &mut Ws, deadline: Instant) -> Result<Value, String> {
    for _ in 0..WS_MAX_FRAMES {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => return Err("nothing arrived in time".into()),
            Ok(None) => return Err("the server closed the WebSocket".into()),
            Ok(Some(Err(e))) => return Err(format!("the WebSocket failed: {e}")),
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(&t).map_err(|e| format!("a frame is not JSON: {e}"));
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
    Err(format!("no text frame among {WS_MAX_FRAMES} frames"))
}

/// Frames until run `run`'s `model_health_alert`.
async fn await_alert(ws: &mut Ws, run: &str) -> Result<String, String> {
    let deadline = Instant::now() + WS_WAIT;
    let want = format!("{TEST_ALERT_PREFIX} {run}:");
    for _ in 0..WS_MAX_FRAMES {
        let v = next_json(ws, deadline)
            .await
            .map_err(|e| format!("no model_health_alert for run {run}: {e}"))?;
        if v["type"] == "model_health_alert"
            && v["message"].as_str().is_some_and(|m| m.starts_with(&want))
        {
            return Ok(format!(
                "model_health_alert, severity {}, id {}",
                v["severity"], v["id"]
            ));
        }
        if v["type"] == "lagged" {
            return Err(
                "the server says this client lagged; the alert may have been dropped".into(),
            );
        }
    }
    Err(format!(
        "no model_health_alert for run {run} among {WS_MAX_FRAMES} frames"
    ))
}

async fn post_test_alerts(t: &Target, body: Value) -> Result<Value, String> {
    let r = t
        .post(&t.client(), "/api/v1/admin/test-alerts", body)
        .send()
        .await
        .map_err(|e| format!("no answer: {}", short(&e)))?;
    let s = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if s.is_success() {
        Ok(v)
    } else {
        Err(format!(
            "POST /api/v1/admin/test-alerts answered {s}: {}{}",
            v["error"].as_str().unwrap_or(""),
            if s.as_u16() == 404 {
                " (not served here: test alerts are on the enhanced port — legacy-only or split ports? check \
                 --url — or the server predates them)"
            } else {
                ""
            }
        ))
    }
}

/// The test alert with `id` in the server's alert history: (found, resolved).
async fn in_history(t: &Target, id: &str) -> Result<bool, String> {
    let r = t
        .get(&t.client(), "/api/v1/models/health")
        .send()
        .await
        .map_err(|e| format!("no answer: {}", short(&e)))?;
    let s = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !s.is_success() {
        return Err(format!("GET /api/v1/models/health answered {s}"));
    }
    let a = v["alerts"]
        .as_array()
        .and_then(|l| l.iter().find(|a| a["id"] == id))
        .ok_or_else(|| format!("alert {id} is not among the server's recent alerts"))?;
    if a["kind"] != "test" {
        return Err(format!("alert {id} has kind {}, not \"test\"", a["kind"]));
    }
    Ok(a["resolved"].as_bool().unwrap_or(false))
}

async fn open_test_alerts(t: &Target) -> Result<f64, String> {
    let (e, _) = scrape(t).await?;
    Ok(e.sum("ema_alerts_open", &[("kind", "test")]).unwrap_or(0.0))
}

/// Raise a test alert and follow it through every face; resolve it. Returns the run id when raised.
async fn alert_path(t: &Target, run: &mut Run) -> Option<String> {
    // Listen before raising, so the event cannot be missed.
    let mut ws = open_ws(t).await;
    let raised = post_test_alerts(
        t,
        json!({"action": "raise", "auto_resolve_seconds": AUTO_RESOLVE_SECONDS}),
    )
    .await
    .and_then(|v| {
        let run_id = v["run_id"]
            .as_str()
            .ok_or("the answer has no run_id")?
            .to_string();
        let a = v["alerts"].get(0).ok_or("the answer lists no alert")?;
        let id = a["id"].as_str().ok_or("the alert has no id")?.to_string();
        let msg = a["message"].as_str().unwrap_or("");
        if !msg.starts_with(TEST_ALERT_PREFIX) {
            return Err(format!(
                "the alert's message does not start with {TEST_ALERT_PREFIX:?}: {msg:?}"
            ));
        }
        Ok((run_id, id))
    });
    let detail = raised
        .as_ref()
        .map(|(r, id)| format!("run {r}, alert {id}"))
        .map_err(|e| e.clone());
    if !run.add("test alert raised", detail) {
        return None;
    }
    let (run_id, id) = raised.expect("checked");
    let ws_seen = match &mut ws {
        Ok(ws) => await_alert(ws, &run_id).await,
        Err(e) => Err(e.clone()),
    };
    run.add("test alert on the WebSocket", ws_seen);
    run.add(
        "test alert in the alert history (ema health)",
        match in_history(t, &id).await {
            Ok(false) => Ok(format!("alert {id}, kind test, open")),
            Ok(true) => Err(format!("alert {id} is already resolved")),
            Err(e) => Err(e),
        },
    );
    run.add(
        "test alert in /metrics",
        match open_test_alerts(t).await {
            Ok(n) if n >= 1.0 => Ok(format!("ema_alerts_open{{kind=\"test\"}} = {n}")),
            Ok(n) => Err(format!(
                "ema_alerts_open{{kind=\"test\"}} = {n}, expected 1"
            )),
            Err(e) => Err(e),
        },
    );
    let resolved = post_test_alerts(t, json!({"action": "resolve", "run_id": run_id})).await;
    let cleared = match resolved {
        Err(e) => Err(e),
        Ok(_) => match (in_history(t, &id).await, open_test_alerts(t).await) {
            (Ok(true), Ok(n)) if n <= 0.0 => {
                Ok("resolved in the alert history; ema_alerts_open{kind=\"test\"} = 0".to_string())
            }
            (Ok(false), _) => Err(format!("alert {id} is still open after resolving it")),
            (Ok(true), Ok(n)) => Err(format!(
                "ema_alerts_open{{kind=\"test\"}} = {n} after resolving"
            )),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
    };
    run.add("test alert cleared", cleared);
    if let Ok(ws) = &mut ws {
        let _ = ws.close(None).await;
    }
    Some(run_id)
}
