//! `ema setup-monitoring` and `ema test-monitoring` against a live `ema start` on loopback: the generated files pass
//! promtool (`check config`, `check rules`, `test rules` — Debian's `prometheus` package, which scripts/test.sh
//! installs), every metric the rules and the dashboard name is exported by the server; a test alert is followed
//! through the WebSocket (a real client), `ema health` and `/metrics`, then cleared; bad input is refused.

mod support;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use support::cli::{ema_cmd, run};
use support::http::client;
use support::server::{EmaServer, write_config};
use support::wait::wait_for;

const TOKEN: &str = "monitoring-test-token-0123456789";

fn promtool(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package `prometheus`; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `ema_…` metric names in a query (outside quoted label values).
fn ema_metrics(expr: &str) -> Vec<String> {
    let mut inq = false;
    let unquoted: String = expr
        .chars()
        .map(|c| {
            if c == '"' {
                inq = !inq;
                ' '
            } else if inq {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut out = Vec::new();
    for (i, _) in unquoted.match_indices("ema_") {
        let before = unquoted[..i].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = unquoted[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.push(name);
    }
    out
}

/// Whether the exposition exports `metric` (a family's TYPE line, or a sample; histogram and counter suffixes).
fn exported(text: &str, metric: &str) -> bool {
    let declared = |f: &str| text.lines().any(|l| l.starts_with(&format!("# TYPE {f} ")));
    let sampled = |f: &str| {
        text.lines()
            .any(|l| l.starts_with(&format!("{f} ")) || l.starts_with(&format!("{f}{{")))
    };
    declared(metric)
        || sampled(metric)
        || ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .any(|s| metric.strip_suffix(s).is_some_and(declared))
}

async fn metrics_text(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A crafted read-throughput history (the health monitor's own file): one model measured three times, the last at
/// half its baseline, so the throughput gauges have real values to export.
fn throughput_history(store: &Path) {
    std::fs::create_dir_all(store.join(".ema")).unwrap();
    std::fs::write(
        store.join(".ema/perf_baseline.json"),
        json!({"models": {"org/m": [2.0e8, 2.2e8, 1.1e8]}}).to_string(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_files_pass_promtool_and_name_only_metrics_the_live_server_exports() {
    let dir = tempfile::tempdir().unwrap();
    throughput_history(&dir.path().join("models"));
    let cfg = write_config(dir.path(), json!({"api": {"token": TOKEN}}));
    let srv = EmaServer::start(&cfg, "http://127.0.0.1:9", &["--port", "0"], &[]);
    let base = srv.url(0);
    let out = dir.path().join("mon");
    let r = run(ema_cmd()
        .arg("--config")
        .arg(&cfg)
        .args(["--json", "setup-monitoring", "--url", &base, "--out"])
        .arg(&out));
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["files"].as_array().unwrap().len(), 4, "{v}");
    assert!(!r.stdout.contains(TOKEN));

    // The token is never written; prometheus.yml reads it from a file the operator fills.
    let prom = std::fs::read_to_string(out.join("prometheus.yml")).unwrap();
    for f in [
        "prometheus.yml",
        "ema-alerts.yml",
        "ema-alerts.test.yml",
        "ema-dashboard.json",
    ] {
        assert!(
            !std::fs::read_to_string(out.join(f))
                .unwrap()
                .contains(TOKEN),
            "{f}"
        );
    }
    let port = base.rsplit(':').next().unwrap();
    assert!(prom.contains(&format!("\"127.0.0.1:{port}\"")), "{prom}");
    assert!(prom.contains("credentials_file: ema-api-token"), "{prom}");
    std::fs::write(out.join("ema-api-token"), TOKEN).unwrap();
    promtool(&out, &["check", "config", "prometheus.yml"]);
    promtool(&out, &["check", "rules", "ema-alerts.yml"]);
    promtool(&out, &["test", "rules", "ema-alerts.test.yml"]);

    // Every metric a rule or a panel names is exported by the live server (scraped twice, as Prometheus does: the
    // HTTP metrics appear once the server has answered a request).
    let _ = metrics_text(&base).await;
    let text = metrics_text(&base).await;
    support::http::promtool_check_metrics(&text);
    assert!(
        text.contains("ema_verification_measured_models 1\n"),
        "{text}"
    );
    assert!(
        text.contains("ema_verification_throughput_ratio 0.5\n"),
        "{text}"
    );
    assert!(
        text.contains("ema_store_cleanup_threshold_ratio 0.9\n"),
        "{text}"
    );
    let rules = std::fs::read_to_string(out.join("ema-alerts.yml")).unwrap();
    let exprs: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .collect();
    assert_eq!(exprs.len(), 6, "{rules}");
    assert!(rules.contains("up{job=\\\"ema\\\"} == 0"), "{rules}");
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ema-dashboard.json")).unwrap())
            .unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{dash}");
    let mut panel_exprs = Vec::new();
    for p in panels {
        assert!(p["title"].is_string() && p["gridPos"].is_object(), "{p}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{p}");
        for t in targets {
            panel_exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    let mut named = 0;
    for e in exprs.iter().map(|s| s.to_string()).chain(panel_exprs) {
        let ms = ema_metrics(&e);
        for m in ms {
            named += 1;
            assert!(
                exported(&text, &m),
                "{m} (in {e}) is not in /metrics:\n{text}"
            );
        }
    }
    assert!(named >= 15, "{named}");

    // test-monitoring's own checks agree.
    let r = run(ema_cmd().arg("--config").arg(&cfg).args([
        "--json",
        "test-monitoring",
        "--url",
        &base,
    ]));
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["failed"], 0);

    // Unchanged files are left alone; an edited one is not overwritten without --force.
    std::fs::write(out.join("ema-alerts.yml"), "edited\n").unwrap();
    let r = run(ema_cmd()
        .arg("--config")
        .arg(&cfg)
        .args(["setup-monitoring", "--alerting", "--url", &base, "--out"])
        .arg(&out));
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("--force") && r.stderr.contains("ema-alerts.yml"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(out.join("ema-alerts.yml")).unwrap(),
        "edited\n"
    );
    let r = run(ema_cmd()
        .arg("--config")
        .arg(&cfg)
        .args([
            "setup-monitoring",
            "--alerting",
            "--force",
            "--url",
            &base,
            "--out",
        ])
        .arg(&out));
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("replaced") && r.stdout.contains("unchanged"),
        "{}",
        r.stdout
    );
    promtool(&out, &["test", "rules", "ema-alerts.test.yml"]);

    let (code, stderr) = srv.stop();
    assert_eq!(code, 0, "{stderr}");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(base: &str) -> Ws {
    let mut rq = format!("{}/ws", base.replace("http", "ws"))
        .into_client_request()
        .unwrap();
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(TOKEN);
    rq.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("ema.v1, bearer.{b}").parse().unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(rq).await.unwrap();
    ws
}

/// Frames until one satisfies `pred` (bounded: 30 s, 10,000 frames).
async fn ws_until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..10_000 {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a WebSocket frame within 30 s")
            .expect("the WebSocket is open")
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
    panic!("no such frame among 10,000");
}

fn health_alerts(cfg: &Path) -> Vec<Value> {
    let r = run(ema_cmd()
        .arg("--config")
        .arg(cfg)
        .args(["--json", "health"]));
    r.json()["alerts"].as_array().unwrap().clone()
}

async fn post_test_alerts(base: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut rq = client()
        .post(format!("{base}/api/v1/admin/test-alerts"))
        .json(&body);
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    let r = rq.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_alerts_reach_every_face_and_are_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({"api": {"token": TOKEN}}));
    let srv = EmaServer::start(&cfg, "http://127.0.0.1:9", &["--port", "0"], &[]);
    let base = srv.url(0);
    let mut ws = ws_connect(&base).await;
    let snap = ws_until(&mut ws, |_| true).await;
    assert_eq!(snap["type"], "snapshot");

    // The command: every check passes; its test alert went out on our WebSocket and was resolved.
    let c2 = cfg.clone();
    let b2 = base.clone();
    let r = tokio::task::spawn_blocking(move || {
        run(ema_cmd().arg("--config").arg(&c2).args([
            "--json",
            "test-monitoring",
            "--generate-test-alerts",
            "--url",
            &b2,
        ]))
    })
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(!r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN));
    let v = r.json();
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "test alert raised",
        "test alert on the WebSocket",
        "test alert in the alert history (ema health)",
        "test alert in /metrics",
        "test alert cleared",
    ] {
        assert!(names.contains(&n), "{n}: {v}");
    }
    assert_eq!(v["failed"], 0, "{v}");
    let run_id = v["test_run"].as_str().unwrap().to_string();
    let want = format!("TEST ALERT {run_id}:");
    let a = ws_until(&mut ws, |f| f["type"] == "model_health_alert").await;
    assert!(a["message"].as_str().unwrap().starts_with(&want), "{a}");
    assert_eq!(a["severity"], "warning");
    let resolved = format!("resolved: {want}");
    ws_until(&mut ws, |f| {
        f["type"] == "log"
            && f["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&resolved))
    })
    .await;
    let hist = health_alerts(&cfg);
    let t = hist
        .iter()
        .find(|a| a["kind"] == "test")
        .expect("the test alert in ema health");
    assert!(t["message"].as_str().unwrap().starts_with(&want), "{t}");
    assert_eq!(t["resolved"], true);

    // By hand: raised, seen open in `ema health` and /metrics, resolved, seen cleared.
    let (s, v) = post_test_alerts(
        &base,
        Some(TOKEN),
        json!({"action": "raise", "run_id": "by-hand-1"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["alerts"][0]["kind"], "test");
    let a = ws_until(&mut ws, |f| f["type"] == "model_health_alert").await;
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .starts_with("TEST ALERT by-hand-1:"),
        "{a}"
    );
    let hist = health_alerts(&cfg);
    let t = hist.iter().find(|a| a["kind"] == "test").unwrap();
    assert!(
        t["message"]
            .as_str()
            .unwrap()
            .starts_with("TEST ALERT by-hand-1:")
    );
    assert_eq!(t["resolved"], false);
    let text = metrics_text(&base).await;
    assert!(
        text.contains("ema_alerts_open{kind=\"test\",severity=\"warning\"} 1\n"),
        "{text}"
    );
    let raised: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ema_alerts_raised_total{severity=\"warning\"} "))
        .expect("ema_alerts_raised_total")
        .parse()
        .unwrap();
    assert!(raised >= 1.0, "{text}");
    let (s, v) = post_test_alerts(
        &base,
        Some(TOKEN),
        json!({"action": "resolve", "run_id": "by-hand-1"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["alerts"].as_array().unwrap().len(), 1);
    let text = metrics_text(&base).await;
    assert!(
        text.contains("ema_alerts_open{kind=\"test\",severity=\"warning\"} 0\n"),
        "{text}"
    );
    assert!(
        health_alerts(&cfg)
            .iter()
            .all(|a| a["kind"] != "test" || a["resolved"] == true)
    );

    // Left alone, a test alert resolves itself after its bounded time.
    let (s, _) = post_test_alerts(
        &base,
        Some(TOKEN),
        json!({"action": "raise", "run_id": "auto-1", "auto_resolve_seconds": 1}),
    )
    .await;
    assert_eq!(s, 200);
    let b3 = base.clone();
    let cleared = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        wait_for(30, || {
            rt.block_on(metrics_text(&b3))
                .contains("ema_alerts_open{kind=\"test\",severity=\"warning\"} 0\n")
        })
    })
    .await
    .unwrap();
    assert!(cleared, "the test alert did not resolve itself");

    // State-changing: the token, the Origin check and the input are enforced.
    let (s, v) = post_test_alerts(&base, None, json!({"action": "raise"})).await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = post_test_alerts(&base, Some(TOKEN), json!({"action": "explode"})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (400, Some("unknown_action")),
        "{v}"
    );
    let (s, v) = post_test_alerts(
        &base,
        Some(TOKEN),
        json!({"action": "raise", "run_id": "a b"}),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("bad_run_id")), "{v}");
    let (s, _) = post_test_alerts(
        &base,
        Some(TOKEN),
        json!({"action": "raise", "auto_resolve_seconds": 100000}),
    )
    .await;
    assert_eq!(s, 400);
    let r = client()
        .post(format!("{base}/api/v1/admin/test-alerts"))
        .bearer_auth(TOKEN)
        .header("Origin", "http://evil.example")
        .json(&json!({"action": "raise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // The route is in the OpenAPI document.
    let doc: Value = client()
        .get(format!("{base}/api/v1/openapi.json"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["paths"]["/api/v1/admin/test-alerts"]["post"].is_object(),
        "{doc}"
    );

    let (code, stderr) = srv.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(TOKEN));
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({}));
    let setup = |args: &[&str]| {
        run(ema_cmd()
            .arg("--config")
            .arg(&cfg)
            .arg("setup-monitoring")
            .args(args))
    };
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    for bad in ["ftp://example.org:21", "not a url"] {
        let r = setup(&["--url", bad, "--out", o]);
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains("--url"), "{}", r.stderr);
        assert!(!out.exists());
    }
    // --out naming a file, and a directory that cannot be created.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let r = setup(&["--out", file.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is a file"), "{}", r.stderr);
    let under = file.join("sub");
    let r = setup(&["--out", under.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&under.display().to_string()),
        "{}",
        r.stderr
    );

    // test-monitoring: no server answers → 1 saying so; a bad --url → 2.
    let r = run(ema_cmd().arg("--config").arg(&cfg).args([
        "test-monitoring",
        "--url",
        "http://127.0.0.1:9",
    ]));
    assert_eq!(r.code, 1, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("FAIL") && r.stdout.contains("no ema server answers"),
        "{}",
        r.stdout
    );
    let r = run(ema_cmd()
        .arg("--config")
        .arg(&cfg)
        .args(["test-monitoring", "--url", "nope"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--url"), "{}", r.stderr);
}

/// A child process killed when the test ends, whichever way.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Poll Prometheus' alerts API until `pred` holds for the `EmaTestAlert` entries (bounded: 60 s).
async fn prometheus_alerts_until(prom: &str, what: &str, pred: impl Fn(&[Value]) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client().get(format!("{prom}/api/v1/alerts")).send().await
            && let Ok(v) = r.json::<Value>().await
            && let Some(list) = v["data"]["alerts"].as_array()
        {
            let ours: Vec<Value> = list
                .iter()
                .filter(|a| a["labels"]["alertname"] == "EmaTestAlert")
                .cloned()
                .collect();
            if pred(&ours) {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus: {what} not seen within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_loads_the_generated_files_and_fires_the_test_alert() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({"api": {"token": TOKEN}}));
    let srv = EmaServer::start(&cfg, "http://127.0.0.1:9", &["--port", "0"], &[]);
    let base = srv.url(0);
    let out = dir.path().join("mon");
    let r = run(ema_cmd()
        .arg("--config")
        .arg(&cfg)
        .args([
            "setup-monitoring",
            "--prometheus",
            "--alerting",
            "--url",
            &base,
            "--out",
        ])
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(out.join("ema-api-token"), TOKEN).unwrap();
    // The generated configuration as written, its intervals shortened so the test does not wait 15 s per step.
    let prom_yml = std::fs::read_to_string(out.join("prometheus.yml"))
        .unwrap()
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    std::fs::write(out.join("prometheus.yml"), prom_yml).unwrap();
    let prom_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prom = std::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            out.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (Debian package `prometheus`; scripts/test.sh installs it)");
    let prom = Reaped(prom);
    let prom_url = format!("http://127.0.0.1:{prom_port}");

    // Scraped with the token from the credentials file; no test alert yet.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let q = format!("{prom_url}/api/v1/query?query=up{{job=\"ema\"}}");
        if let Ok(r) = client().get(&q).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["data"]["result"][0]["value"][1] == "1"
        {
            break;
        }
        if std::time::Instant::now() > deadline {
            let log =
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus did not scrape ema within 60 s:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    prometheus_alerts_until(&prom_url, "no EmaTestAlert", |a| a.is_empty()).await;

    // A test alert raised on ema fires EmaTestAlert in Prometheus; resolved, it goes away.
    let (s, v) = post_test_alerts(
        &base,
        Some(TOKEN),
        json!({"action": "raise", "run_id": "prom-1"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    prometheus_alerts_until(&prom_url, "EmaTestAlert firing", |a| {
        a.iter()
            .any(|x| x["state"] == "firing" && x["labels"]["severity"] == "info")
    })
    .await;
    let (s, _) = post_test_alerts(
        &base,
        Some(TOKEN),
        json!({"action": "resolve", "run_id": "prom-1"}),
    )
    .await;
    assert_eq!(s, 200);
    prometheus_alerts_until(&prom_url, "EmaTestAlert gone", |a| a.is_empty()).await;

    drop(prom);
    let (code, stderr) = srv.stop();
    assert_eq!(code, 0, "{stderr}");
}
