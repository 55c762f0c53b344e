//! `ema start` as a specification: every endpoint through a real HTTP client against the live binary on
//! loopback, downloading from the test hub; the WebSocket during a real download; Prometheus metrics checked by
//! promtool; malformed bodies; split ports and legacy-only.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use support::http::{client, poll};
use support::hub::Hub;
use support::server::{EmaServer, write_config};
use support::store::sample_hub;

const SMALL: &str = "ema-demo/small-gpt";

async fn get(url: &str) -> (StatusCode, Value) {
    let r = client().get(url).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn post(url: &str, body: Value) -> (StatusCode, Value) {
    let r = client().post(url).json(&body).send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON text frame (bounded wait).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a WebSocket frame within 30 s")
            .expect("the WebSocket is open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_download_through_the_enhanced_api_with_websocket_events_and_metrics() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    hub.plan.set_connection_cap(Some(4_000_000));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({"storage": {"wanted_models": [SMALL]}}));
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let base = srv.url(0);

    // The snapshot comes first, then the engine's events.
    let (mut ws, resp) =
        tokio_tungstenite::connect_async(format!("{}/ws", base.replace("http", "ws")))
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let snap = next_json(&mut ws).await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["models"][SMALL]["is_available"], false);

    // Two clients asking for one model share one job; the answer comes at once.
    let manage = format!("{base}/api/v1/models/download/manage");
    let body = json!({"model_id": SMALL, "action": "start", "max_retries": 3});
    let ((s1, a), (s2, b)) = tokio::join!(post(&manage, body.clone()), post(&manage, body.clone()));
    let mut statuses = [s1.as_u16(), s2.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 202], "{a} {b}");
    assert_eq!(a["job_id"], b["job_id"]);
    let job = a["job_id"].as_str().unwrap().to_string();
    assert!(job.starts_with("job-"));
    assert_eq!(
        [a["created"].as_bool(), b["created"].as_bool()]
            .iter()
            .filter(|c| **c == Some(true))
            .count(),
        1
    );

    // Job detail while it runs: whole-model bytes, rate, ETA.
    let running = poll(&format!("{base}/api/v1/downloads/{job}"), 60, |v| {
        v["bytes_total"].as_u64().unwrap_or(0) > 50_000_000
            && v["bytes_done"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(running["model_id"], SMALL);
    assert_eq!(running["max_retries"], 3);
    assert!(running.get("eta_seconds").is_some() && running.get("retries").is_some());

    // The events the guide's browser code reads.
    let (mut progress, mut available) = (0, false);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !available {
        assert!(
            Instant::now() < deadline,
            "no availability change within 120 s"
        );
        let ev = next_json(&mut ws).await;
        match ev["type"].as_str().unwrap() {
            "model_download_progress" => {
                assert_eq!(ev["model_id"], SMALL);
                let p = ev["progress_percent"].as_f64().unwrap();
                assert!((0.0..=100.0).contains(&p), "{ev}");
                progress += 1;
            }
            "model_availability_change" if ev["new_status"] == "available" => {
                assert_eq!(ev["model_id"], SMALL);
                available = true;
            }
            _ => {}
        }
    }
    assert!(progress >= 2, "only {progress} progress events");

    let done = poll(&format!("{base}/api/v1/downloads/{job}"), 30, |v| {
        v["state"] == "completed"
    })
    .await;
    assert_eq!(done["bytes_done"], done["bytes_total"]);
    assert!(done["files_total"].as_u64().unwrap() >= 3, "{done}");
    assert_eq!(done["files_done"], done["files_total"]);
    assert_eq!(done["progress_percent"], 100.0);
    assert!(done["last_error"].is_null());
    let (_, list) = get(&format!("{base}/api/v1/downloads")).await;
    assert_eq!(list["downloads"][0]["job_id"], job.as_str());

    // Legacy and enhanced views agree.
    let (s, legacy) = get(&format!("{base}/api/v1/models/status")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(legacy[SMALL]["available"], true);
    let (_, detailed) = get(&format!("{base}/api/v1/models/status/detailed")).await;
    assert_eq!(detailed["models"][SMALL]["is_available"], true);
    assert_eq!(
        detailed["models"][SMALL]["files_present"],
        detailed["models"][SMALL]["files_total"]
    );
    let (s, health) = get(&format!("{base}/api/v1/models/health")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(health["models"][SMALL]["state"], "healthy", "{health}");
    let (s, admin) = get(&format!("{base}/api/v1/admin/health")).await;
    assert_eq!((s, admin["status"].as_str()), (StatusCode::OK, Some("ok")));

    // The same server is a Hub mirror of its store.
    let (s, models) = get(&format!("{base}/api/models")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        models.as_array().unwrap().iter().any(|m| m["id"] == SMALL),
        "{models}"
    );

    // Metrics: the bytes the download moved, and promtool's lint.
    let r = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    let bytes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ema_downloaded_bytes_total "))
        .expect("ema_downloaded_bytes_total")
        .parse()
        .unwrap();
    assert_eq!(bytes, done["bytes_total"].as_u64().unwrap(), "{text}");
    assert!(
        text.contains("ema_downloads_total{outcome=\"completed\"} 1\n"),
        "{text}"
    );
    assert!(text.contains(
        "ema_http_requests_total{route=\"/api/v1/downloads/{job}\",method=\"GET\",code=\"200\"}"
    ));
    assert!(text.contains("ema_download_duration_seconds_count 1\n"));
    support::http::promtool_check_metrics(&text);

    let (code, stderr) = srv.stop();
    assert_eq!(code, 0, "{stderr}");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel_a_job() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    hub.plan.set_connection_cap(Some(500_000));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({}));
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let base = srv.url(0);
    let manage = format!("{base}/api/v1/models/download/manage");
    let (s, started) = post(&manage, json!({"model_id": SMALL, "action": "start"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    let job = started["job_id"].as_str().unwrap().to_string();
    let job_url = format!("{base}/api/v1/downloads/{job}");
    poll(&job_url, 60, |v| v["bytes_done"].as_u64().unwrap_or(0) > 0).await;

    let (s, paused) = post(&manage, json!({"model_id": SMALL, "action": "pause"})).await;
    assert_eq!(s, StatusCode::OK, "{paused}");
    assert_eq!(paused["job"]["state"], "paused");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, a) = get(&job_url).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, b) = get(&job_url).await;
    assert_eq!(a["state"], "paused");
    assert_eq!(a["bytes_done"], b["bytes_done"], "bytes moved while paused");

    let (s, resumed) = post(&manage, json!({"model_id": SMALL, "action": "resume"})).await;
    assert_eq!(s, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["job_id"], job.as_str());
    let before = b["bytes_done"].as_u64().unwrap();
    poll(&job_url, 60, |v| {
        v["bytes_done"].as_u64().unwrap_or(0) > before
    })
    .await;

    let (s, cancelled) = post(&manage, json!({"model_id": SMALL, "action": "cancel"})).await;
    assert_eq!(s, StatusCode::OK, "{cancelled}");
    let end = poll(&job_url, 30, |v| v["state"] == "cancelled").await;
    assert!(end["finished_at"].is_string());
    let (_, st) = get(&format!("{base}/api/v1/models/status")).await;
    assert!(
        st.get(SMALL).is_none_or(|m| m["available"] == false),
        "{st}"
    );
    // Nothing left to pause.
    let (s, e) = post(&manage, json!({"model_id": SMALL, "action": "pause"})).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    srv.stop();
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_4xx_json_error_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({}));
    let srv = EmaServer::start(&cfg, "http://127.0.0.1:9", &["--port", "0"], &[]);
    let base = srv.url(0);
    let manage = format!("{base}/api/v1/models/download/manage");
    let legacy = format!("{base}/api/v1/models/download");
    let raw = |url: String, body: &'static str| async move {
        let r = client()
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    let big: &'static str =
        Box::leak(format!("{{\"model_id\": \"{}\"}}", "a".repeat(100_000)).into_boxed_str());
    let cases: Vec<(String, &'static str, u16, &str)> = vec![
        (manage.clone(), "{not json", 400, "malformed_json"),
        (manage.clone(), "", 400, "missing_body"),
        (manage.clone(), "[1,2]", 400, "invalid_body"),
        (
            manage.clone(),
            r#"{"model_id": "a/b", "action": "start", "colour": "red"}"#,
            400,
            "unknown_field",
        ),
        (
            manage.clone(),
            r#"{"model_id": "a/b", "action": "explode"}"#,
            400,
            "unknown_action",
        ),
        (
            manage.clone(),
            r#"{"model_id": "../../etc", "action": "start"}"#,
            400,
            "bad_model_id",
        ),
        (
            manage.clone(),
            r#"{"model_id": "a/b", "action": "start", "max_retries": 1000}"#,
            400,
            "bad_max_retries",
        ),
        (
            manage.clone(),
            r#"{"model_id": "a/b", "action": "start", "max_retries": -1}"#,
            400,
            "invalid_body",
        ),
        (
            manage.clone(),
            r#"{"action": "start"}"#,
            400,
            "invalid_body",
        ),
        (
            legacy.clone(),
            r#"{"model_id": "a/b/c"}"#,
            400,
            "bad_model_id",
        ),
        (legacy.clone(), r#"{"model": "a/b"}"#, 400, "unknown_field"),
        (legacy.clone(), big, 413, "body_too_large"),
    ];
    for (url, body, status, code) in cases {
        let (s, v) = raw(url.clone(), body).await;
        assert_eq!(s.as_u16(), status, "{url} {body:.60}: {v}");
        assert_eq!(v["code"], code, "{body:.60}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.len() > 10), "{v}");
    }
    let (s, v) = get(&format!("{base}/api/v1/downloads/job-nope")).await;
    assert_eq!((s.as_u16(), v["code"].as_str()), (404, Some("unknown_job")));
    let (s, v) = get(&format!("{base}/api/v1/models/nope")).await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (404, Some("unknown_endpoint"))
    );
    let (s, v) = get(&format!("{base}/api/v1/models/download")).await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // Nothing was queued or written.
    let (_, jobs) = get(&format!("{base}/api/v1/downloads")).await;
    assert_eq!(jobs["downloads"], json!([]));
    assert!(
        !dir.path()
            .join("models")
            .join(".ema")
            .join("downloads.json")
            .exists()
    );
    srv.stop();
}

/// A real Prometheus (Debian's `prometheus` package, which scripts/test.sh installs) scrapes `/metrics` and a
/// query returns the bytes a download moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_bytes_a_download_moved() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({}));
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let base = srv.url(0);
    let (s, started) = post(
        &format!("{base}/api/v1/models/download/manage"),
        json!({"model_id": "ema-demo/tiny-gpt", "action": "start"}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let job = started["job_id"].as_str().unwrap();
    let done = poll(&format!("{base}/api/v1/downloads/{job}"), 60, |v| {
        v["state"] == "completed"
    })
    .await;
    let moved = done["bytes_total"].as_u64().unwrap();

    let prom_port = support::http::free_port();
    let target = base.trim_start_matches("http://");
    let yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &yml,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ema\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let mut prom = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", yml.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (Debian package `prometheus`; scripts/test.sh installs it)");
    let query =
        format!("http://127.0.0.1:{prom_port}/api/v1/query?query=ema_downloaded_bytes_total");
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        if let Ok(r) = client().get(&query).send().await
            && let Ok(v) = r.json::<Value>().await
            && let Some(val) = v["data"]["result"][0]["value"][1].as_str()
        {
            break val.parse::<u64>().unwrap();
        }
        if Instant::now() > deadline {
            let _ = prom.kill();
            let log =
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus returned no sample within 60 s:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(seen, moved);
    srv.stop();
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_records_usage_analytics_and_serves_the_summary() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("analytics.db");
    let cfg = write_config(
        dir.path(),
        json!({"analytics": {"enabled": true, "db_url": format!("sqlite://{}", db.display())}}),
    );
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let base = srv.url(0);
    let tiny = "ema-demo/tiny-gpt";
    let (s, v) = post(
        &format!("{base}/api/v1/models/download/manage"),
        json!({"model_id": tiny, "action": "start"}),
    )
    .await;
    assert!(s.is_success(), "{v}");
    let job = v["job_id"].as_str().unwrap().to_string();
    poll(&format!("{base}/api/v1/downloads/{job}"), 60, |v| {
        v["state"] == "completed"
    })
    .await;
    let (s, v) = post(
        &format!("{base}/api/v1/models/fallback/suggest"),
        json!({"requested_model": "ema-demo/small-gpt"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // The recorder writes in batches: the summary shows the download and the request within a bounded wait.
    let url = format!("{base}/api/v1/models/analytics");
    let v = poll(&url, 30, |v| {
        v["downloads"]["completed"].as_u64().unwrap_or(0) >= 1
            && v["fallback"]["requests"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert!(v["downloads"]["bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["database"].as_str().unwrap().contains("analytics.db"),
        "{v}"
    );
    let (s, v) = get(&format!("{url}?since=7d")).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = get(&format!("{url}?since=yesterday-ish")).await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    let (code, _) = srv.stop();
    assert_eq!(code, 0);
    assert!(db.is_file());

    // Recording off: the route says so.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({"analytics": {"enabled": false}}));
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let (s, v) = get(&format!("{}/api/v1/models/analytics", srv.url(0))).await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (503, Some("analytics_off")),
        "{v}"
    );
    srv.stop();
}
