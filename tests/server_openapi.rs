//! `ema start`'s OpenAPI document as a specification: it is valid OpenAPI (openapi-spec-validator), it lists
//! exactly the routes each listener serves (and every route it lists is served), schemathesis fuzzes every route
//! from it against the live binary (no 5xx, no answer outside the document), and a bounded load test on loopback
//! gets every request answered without a 5xx.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ema::engine::store::{Store, VerificationState};
use reqwest::StatusCode;
use serde_json::{Value, json};

use support::http::client;
use support::server::{EmaServer, write_config};
use support::store::one_file_metadata;

/// A store with one verified model and one watched model that is missing.
fn seeded_config(dir: &Path) -> std::path::PathBuf {
    let store = Store::new(dir.join("models"));
    store.ensure().unwrap();
    let meta = one_file_metadata(
        "org/present",
        "config.json",
        b"{}",
        VerificationState::LocalOnly,
    );
    std::fs::create_dir_all(store.model_dir(&meta.repo_id)).unwrap();
    std::fs::write(store.model_dir(&meta.repo_id).join("config.json"), b"{}").unwrap();
    store.write_metadata(&meta).unwrap();
    write_config(dir, json!({"storage": {"wanted_models": ["org/wanted"]}}))
}

/// A hub address on loopback that refuses connections (downloads the fuzz starts fail fast, nothing leaves).
fn dead_hub() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

async fn document(base: &str, token: Option<&str>) -> Value {
    let mut rq = client().get(format!("{base}/api/v1/openapi.json"));
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    let r = rq.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

/// `(method, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

fn ops(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

const COMMON: &[(&str, &str)] = &[
    ("GET", "/api/v1/admin/health"),
    ("GET", "/api/v1/models/health"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/metrics"),
];
const LEGACY: &[(&str, &str)] = &[
    ("GET", "/api/v1/models/status"),
    ("POST", "/api/v1/models/download"),
];
const ENHANCED: &[(&str, &str)] = &[
    ("GET", "/api/v1/models/status/detailed"),
    ("POST", "/api/v1/models/download/manage"),
    ("GET", "/api/v1/downloads"),
    ("GET", "/api/v1/downloads/{job}"),
    ("GET", "/ws"),
    ("POST", "/api/v1/models/fallback/suggest"),
    ("GET", "/api/v1/models/analytics"),
    ("POST", "/api/v1/admin/test-alerts"),
];

/// The Hub mirror's routes, served (and documented) beside the enhanced set.
const HUB: &[(&str, &str)] = &[
    ("GET", "/api/models"),
    ("GET", "/api/models/{repo}"),
    ("GET", "/api/models/{repo}/revision/{rev}"),
    ("GET", "/api/models/{repo}/tree/{rev}"),
    ("GET", "/api/models/{repo}/tree/{rev}/{path}"),
    ("POST", "/api/models/{repo}/paths-info/{rev}"),
    ("GET", "/{repo}/resolve/{rev}/{path}"),
    ("GET", "/cdn/{sha}"),
];

/// The document through openapi-spec-validator (PyPI; scripts/test.sh installs it with schemathesis).
fn assert_valid_openapi(doc: &Value, dir: &Path) {
    let p = dir.join(format!("openapi-{}.json", rand_id()));
    std::fs::write(&p, serde_json::to_vec(doc).unwrap()).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('valid')",
        ])
        .arg(&p)
        .output()
        .expect("python3");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "openapi-spec-validator refused the document (install it with scripts/test.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rand_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Each operation answers something other than the API's "unknown endpoint" 404 (a real route is behind it).
async fn assert_served(base: &str, listed: &BTreeSet<(String, String)>) {
    for (method, path) in listed {
        let url = format!("{base}{}", path.replace("{job}", "job-0000"));
        let rq = match method.as_str() {
            "GET" => client().get(&url),
            "POST" => client().post(&url).json(&json!({})),
            m => panic!("unexpected method {m} in the document"),
        };
        let r = rq.send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(
            body["code"], "unknown_endpoint",
            "{method} {path} is in the document but not served"
        );
        assert_ne!(body["code"], "not_found", "{method} {path}: {body}");
        assert!(status.as_u16() < 500, "{method} {path}: {status} {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_and_lists_exactly_the_served_routes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = seeded_config(dir.path());
    let hub = dead_hub();

    // One port: everything.
    let srv = EmaServer::start(&cfg, &hub, &["--port", "0"], &[]);
    let base = srv.url(0);
    let doc = document(&base, None).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_valid_openapi(&doc, dir.path());
    let all: BTreeSet<_> = [COMMON, LEGACY, ENHANCED, HUB]
        .concat()
        .iter()
        .copied()
        .collect();
    assert_eq!(operations(&doc), ops(&all.into_iter().collect::<Vec<_>>()));
    assert_served(&base, &operations(&doc)).await;
    // Bodies are described from the handlers' types: the detailed status names `is_available`, the manage request
    // its actions, and no security scheme is claimed without a token.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["DetailedModel"]["properties"]["is_available"]["type"],
        "boolean"
    );
    assert_eq!(
        schemas["ManageAction"]["enum"],
        json!(["start", "pause", "resume", "cancel"])
    );
    assert!(doc.get("security").is_none() || doc["security"].is_null());
    // A route that is not in the document is not served.
    let r = client()
        .get(format!("{base}/api/v1/models/registry"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    srv.stop();

    // Split ports: each listener documents its own set.
    let srv = EmaServer::start(
        &cfg,
        &hub,
        &["--legacy-port", "0", "--enhanced-port", "0"],
        &[],
    );
    let legacy = document(&srv.url(0), None).await;
    let enhanced = document(&srv.url(1), None).await;
    assert_eq!(operations(&legacy), ops(&[COMMON, LEGACY].concat()));
    assert_eq!(
        operations(&enhanced),
        ops(&[COMMON, ENHANCED, HUB].concat())
    );
    assert_served(&srv.url(0), &operations(&legacy)).await;
    assert_served(&srv.url(1), &operations(&enhanced)).await;
    srv.stop();

    // With a token: the bearer scheme, required but where the server does not ask for one.
    let srv = EmaServer::start(
        &cfg,
        &hub,
        &["--port", "0"],
        &[("EMA_API_TOKEN", "t0ken-of-test")],
    );
    let r = client()
        .get(format!("{}/api/v1/openapi.json", srv.url(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let doc = document(&srv.url(0), Some("t0ken-of-test")).await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    assert_eq!(
        doc["paths"]["/api/v1/admin/health"]["get"]["security"],
        json!([{}])
    );
    assert_eq!(doc["paths"]["/metrics"]["get"]["security"], json!([{}]));
    assert!(!doc.to_string().contains("t0ken-of-test"));
    srv.stop();
}

/// schemathesis, pinned by scripts/test.sh (`st` on PATH or `python3 -m schemathesis.cli`).
fn schemathesis() -> Command {
    let on_path = Command::new("st")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        Command::new("st")
    } else {
        let mut c = Command::new("python3");
        c.args(["-m", "schemathesis.cli"]);
        c
    }
}

#[test]
fn schemathesis_fuzzes_every_route_and_finds_no_5xx_and_no_schema_violation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = seeded_config(dir.path());
    let token = "fuzz-token-1";
    let srv = EmaServer::start(
        &cfg,
        &dead_hub(),
        &["--port", "0"],
        &[("EMA_API_TOKEN", token)],
    );
    let base = srv.url(0);
    let seed = std::env::var("EMA_FUZZ_SEED").unwrap_or_else(|_| "20261201".into());
    let t = Instant::now();
    let mut child = schemathesis()
        .current_dir(dir.path())
        .args(["run", &format!("{base}/api/v1/openapi.json"), "--url", &base])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        // Every check (5xx, status codes, content types, response schemas, auth, accepted and rejected data);
        // /ws is a WebSocket handshake, tested with a WebSocket client in server_api.rs.
        .args(["--exclude-path", "/ws", "--max-examples", "40", "--seed", &seed])
        .args(["--request-timeout", "10", "--no-color"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("schemathesis (scripts/test.sh installs it: python3 -m pip install schemathesis==4.32.5)");
    // Bounded: the run is killed after 240 s.
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("schemathesis did not finish within 240 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        status.success(),
        "schemathesis found problems (seed {seed}):\n{text}"
    );
    // It really tested every operation but /ws (the API's 12 and the Hub mirror's 8), and generated cases.
    assert!(text.contains("Tested: 20"), "{text}");
    assert!(text.contains(" passed"), "{text}");
    assert!(!text.contains(token), "the token leaked into the output");
    eprintln!("schemathesis: {:.1} s", t.elapsed().as_secs_f64());
    let (code, stderr) = srv.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_load_of_concurrent_requests_is_all_answered_without_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = seeded_config(dir.path());
    let srv = EmaServer::start(&cfg, &dead_hub(), &["--port", "0"], &[]);
    let base = srv.url(0);
    // 300 clients, each with its own connection, for 3 s (at most 200 requests each).
    let clients = 300;
    let until = Instant::now() + Duration::from_secs(3);
    let paths = [
        "/api/v1/models/status/detailed",
        "/api/v1/models/status",
        "/api/v1/admin/health",
        "/metrics",
    ];
    let mut tasks = Vec::new();
    for i in 0..clients {
        let url = format!("{base}{}", paths[i % paths.len()]);
        tasks.push(tokio::spawn(async move {
            let c = client();
            let (mut ok, mut bad) = (0u32, Vec::new());
            for _ in 0..200 {
                if Instant::now() > until {
                    break;
                }
                match c.get(&url).send().await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let _ = r.bytes().await;
                        ok += 1;
                    }
                    Ok(r) => bad.push(format!("{url}: {}", r.status())),
                    Err(e) => bad.push(format!("{url}: {e}")),
                }
            }
            (ok, bad)
        }));
    }
    let (mut total, mut failures) = (0u32, Vec::new());
    for t in tasks {
        let (ok, bad) = t.await.unwrap();
        total += ok;
        failures.extend(bad);
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(total >= clients as u32, "only {total} answers");
    eprintln!("load: {total} requests answered by {clients} concurrent clients in 3 s");
    // The server still answers and counted them.
    let m = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("ema_http_requests_total"));
    let (code, stderr) = srv.stop();
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_suggest_answers_with_the_engines_scored_report() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    store.ensure().unwrap();
    // Two text-generation models: one available, one whose file is missing (incomplete).
    for (id, present) in [("org/here", true), ("org/gone", false)] {
        let mut meta = one_file_metadata(id, "config.json", b"{}", VerificationState::LocalOnly);
        meta.pipeline_tag = Some("text-generation".into());
        meta.library_name = Some("transformers".into());
        std::fs::create_dir_all(store.model_dir(&meta.repo_id)).unwrap();
        if present {
            std::fs::write(store.model_dir(&meta.repo_id).join("config.json"), b"{}").unwrap();
        }
        store.write_metadata(&meta).unwrap();
    }
    let cfg = write_config(
        dir.path(),
        json!({"fallback": {"suggestion_threshold": 0.3}}),
    );
    let srv = EmaServer::start(&cfg, &dead_hub(), &["--port", "0"], &[]);
    let url = format!("{}/api/v1/models/fallback/suggest", srv.url(0));
    let r = client()
        .post(&url)
        .json(&json!({"requested_model": "org/gone", "requirements": {"task": "text-generation"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["requested"], "org/gone");
    assert_eq!(v["requested_status"], "incomplete");
    assert_eq!(v["facts_from"], "store");
    assert_eq!(v["suggestions"][0]["model_id"], "org/here", "{v}");
    let score = v["suggestions"][0]["score"].as_f64().unwrap();
    let sum: f64 = v["suggestions"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["contribution"].as_f64().unwrap())
        .sum();
    assert!((score - sum).abs() < 1e-9 && score >= 0.3, "{v}");
    assert!(v["mock"].is_null(), "{v}");
    // Bad input: a 4xx naming the problem, never a 500.
    for (body, code) in [
        (
            json!({"requested_model": "org/gone", "requirements": {"speed": "high"}}),
            "unknown_field",
        ),
        (
            json!({"requested_model": "org/gone", "requirements": {"task": "  "}}),
            "bad_request",
        ),
        (
            json!({"requested_model": "org/gone", "requirements": {"quality": null, "max_size_gb": -1}}),
            "bad_request",
        ),
        (json!({"requested_model": "../etc"}), "bad_model_id"),
        (
            json!({"requested_model": "org/gone", "extra": 1}),
            "unknown_field",
        ),
    ] {
        let r = client().post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["code"], code, "{e}");
        assert!(!e["error"].as_str().unwrap().is_empty());
    }
    srv.stop();
}
