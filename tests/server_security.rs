//! `ema start`'s security layer and its surfaces against the live binary: a public bind without a token is
//! refused (exit 2); the Bearer token on every route but admin/health and /metrics, also for the WebSocket as a
//! subprotocol entry; the Host and Origin allow-lists; the token never printed. Then the guide's Python clients
//! (`requests`) unchanged but for the port, split legacy/enhanced ports and legacy-only.

mod support;

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use support::cli::{ema_cmd, run};
use support::http::client;
use support::hub::Hub;
use support::server::{EmaServer, write_config};
use support::store::sample_hub;

const TOKEN: &str = "s3cret-Token_for-tests";

async fn status_code(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[test]
fn a_public_bind_without_a_token_is_refused_naming_both_ways_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({}));
    let r = run(ema_cmd()
        .arg("--config")
        .arg(&cfg)
        .args(["start", "--host", "0.0.0.0", "--port", "0"])
        .env_remove("EMA_API_TOKEN"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("api.token") && r.stderr.contains("EMA_API_TOKEN"),
        "{}",
        r.stderr
    );
    assert!(
        !dir.path().join("models").exists(),
        "nothing may be created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_host_and_origin_are_enforced_and_the_token_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        json!({"api": {"allowed_hosts": ["models.internal"], "allowed_origins": ["http://dash.example:3000"]}}),
    );
    let srv = EmaServer::start(
        &cfg,
        "http://127.0.0.1:9",
        &["--port", "0"],
        &[("EMA_API_TOKEN", TOKEN)],
    );
    assert_eq!(srv.announced["token_required"], true);
    assert!(!srv.announced.to_string().contains(TOKEN));
    let base = srv.url(0);
    let port = srv.port(0);
    let c = client();
    let status = format!("{base}/api/v1/models/status");

    let (s, v) = status_code(c.get(&status)).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("token_required")));
    let (s, v) = status_code(c.get(&status).bearer_auth("wrong")).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("bad_token")));
    assert!(!v.to_string().contains(TOKEN));
    assert_eq!(status_code(c.get(&status).bearer_auth(TOKEN)).await.0, 200);
    for open in ["/api/v1/admin/health", "/metrics"] {
        assert_eq!(
            c.get(format!("{base}{open}"))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{open}"
        );
    }
    let (s, _) = status_code(
        c.post(format!("{base}/api/v1/models/download"))
            .json(&json!({"model_id": "a/b"})),
    )
    .await;
    assert_eq!(s, 401, "state-changing routes need the token too");
    assert_eq!(
        status_code(c.get(format!("{base}/api/models"))).await.0,
        401,
        "the mirror too"
    );

    // Host allow-list (DNS rebinding): 403 even with the token; the listed name and loopback names pass.
    let (s, v) = status_code(
        c.get(&status)
            .bearer_auth(TOKEN)
            .header("host", format!("evil.example:{port}")),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (403, Some("host_not_allowed")));
    for host in ["models.internal", "localhost", "127.0.0.1"] {
        let h = format!("{host}:{port}");
        assert_eq!(
            status_code(c.get(&status).bearer_auth(TOKEN).header("host", h))
                .await
                .0,
            200,
            "{host}"
        );
    }

    // Origin allow-list for state-changing requests: a page elsewhere cannot drive the API.
    let dl = format!("{base}/api/v1/models/download/manage");
    let body = json!({"model_id": "a/b", "action": "cancel"});
    let (s, v) = status_code(
        c.post(&dl)
            .bearer_auth(TOKEN)
            .header("origin", "http://evil.example")
            .json(&body),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (403, Some("origin_not_allowed")));
    let own = format!("http://127.0.0.1:{port}");
    assert_eq!(
        status_code(
            c.post(&dl)
                .bearer_auth(TOKEN)
                .header("origin", own)
                .json(&body)
        )
        .await
        .0,
        404
    );
    let r = c
        .post(&dl)
        .bearer_auth(TOKEN)
        .header("origin", "http://dash.example:3000")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "listed origin passes (no download of a/b to cancel)"
    );
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://dash.example:3000"
    );
    // Preflight: only a listed origin gets CORS headers, never a wildcard.
    let r = c
        .request(reqwest::Method::OPTIONS, &dl)
        .header("origin", "http://dash.example:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://dash.example:3000"
    );
    let r = c
        .request(reqwest::Method::OPTIONS, &dl)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // The WebSocket: token as a subprotocol entry beside ema.v1 (echoed); refused without it or from elsewhere.
    let ws_url = format!("{}/ws", base.replace("http", "ws"));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(TOKEN);
    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("ema.v1, bearer.{b64}").parse().unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "ema.v1");
    let first = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut ws))
        .await
        .unwrap();
    let snap: Value = serde_json::from_str(first.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(snap["type"], "snapshot");
    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "ema.v1".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("401"), "{err}");
    let mut req = ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("ema.v1, bearer.{b64}").parse().unwrap(),
    );
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("403"), "{err}");

    let (code, stderr) = srv.stop();
    assert_eq!(code, 0);
    assert!(!stderr.contains(TOKEN), "{stderr}");
}

/// The guide's legacy and enhanced client snippets, verbatim but for the port, with Python `requests`.
const LEGACY_CLIENT: &str = r#"
import requests

# Legacy API usage
response = requests.get('http://localhost:8000/api/v1/models/status')
models = response.json()

for model_id, status in models.items():
    if not status['available']:
        # Start download
        requests.post(f'http://localhost:8000/api/v1/models/download',
                     json={'model_id': model_id})
"#;

const ENHANCED_CLIENT: &str = r#"
import requests

# Enhanced API usage with backward compatibility
response = requests.get('http://localhost:8000/api/v1/models/status/detailed')
data = response.json()

for model_id, status in data['models'].items():
    if not status['is_available']:
        # Start download with retry logic
        requests.post('http://localhost:8000/api/v1/models/download/manage',
                     json={
                         'model_id': model_id,
                         'action': 'start',
                         'max_retries': 3
                     })

        # Get suggestions if download fails
        suggestions = requests.post('http://localhost:8000/api/v1/models/fallback/suggest',
                                  json={
                                      'requested_model': model_id,
                                      'requirements': {'quality': 'high'}
                                  })
"#;

fn python(snippet: &str, port: u16) {
    let code = snippet.replace("localhost:8000", &format!("localhost:{port}"));
    let out = std::process::Command::new("python3")
        .args(["-c", &code])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn wait_available(url: &str, ids: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let v: Value = client()
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ids.iter().all(|id| v[id]["available"] == true) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not available in time: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_python_clients_run_unchanged_against_one_and_two_ports() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    let watched = ["ema-demo/tiny-gpt", "ema-demo/tiny-sentiment"];
    // One port, legacy client.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({"storage": {"wanted_models": watched}}));
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let port = srv.port(0);
    let p2 = port;
    tokio::task::spawn_blocking(move || python(LEGACY_CLIENT, p2))
        .await
        .unwrap();
    wait_available(&format!("{}/api/v1/models/status", srv.url(0)), &watched).await;
    srv.stop();

    // Two ports (the side-by-side path): the legacy set on one, the enhanced set on the other.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({"storage": {"wanted_models": watched}}));
    let srv = EmaServer::start(
        &cfg,
        &hub.endpoint(),
        &["--legacy-port", "0", "--enhanced-port", "0"],
        &[],
    );
    assert_eq!(srv.announced["listening"][0]["serves"], "legacy");
    assert_eq!(srv.announced["listening"][1]["serves"], "enhanced");
    let (legacy, enhanced) = (srv.url(0), srv.url(1));
    let c = client();
    assert_eq!(
        status_code(c.get(format!("{legacy}/api/v1/models/status")))
            .await
            .0,
        200
    );
    assert_eq!(
        status_code(c.get(format!("{legacy}/api/v1/models/status/detailed")))
            .await
            .0,
        404
    );
    assert_eq!(
        status_code(c.get(format!("{enhanced}/api/v1/models/status")))
            .await
            .0,
        404
    );
    let ep = srv.port(1);
    tokio::task::spawn_blocking(move || python(ENHANCED_CLIENT, ep))
        .await
        .unwrap();
    wait_available(&format!("{legacy}/api/v1/models/status"), &watched).await;
    let (_, jobs) = status_code(c.get(format!("{enhanced}/api/v1/downloads"))).await;
    assert_eq!(jobs["downloads"].as_array().unwrap().len(), 2, "{jobs}");
    assert!(
        jobs["downloads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["max_retries"] == 3)
    );
    srv.stop();

    // api.legacy_endpoints_only: the enhanced set is not served.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({"api": {"legacy_endpoints_only": true}}));
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let base = srv.url(0);
    assert_eq!(
        status_code(c.get(format!("{base}/api/v1/models/status")))
            .await
            .0,
        200
    );
    assert_eq!(
        status_code(c.get(format!("{base}/api/v1/models/status/detailed")))
            .await
            .0,
        404
    );
    srv.stop();
    hub.shutdown().await;
}
