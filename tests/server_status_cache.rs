//! `ema start`'s status answers come from a snapshot kept between changes (src/server/api/cache.rs): changes made
//! behind the server's back (a model added, damaged, found corrupted by another `ema`, removed) show in
//! `GET /api/v1/models/status/detailed`, the legacy status and the health answer within a bounded poll, and a burst
//! of requests walks the store a bounded number of times, not once per request (`ema_status_builds_total`).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use ema::engine::store::{RepoId, Store, VerificationState};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use support::cli::{ema_cmd, run};
use support::http::client;
use support::server::{EmaServer, write_config};
use support::store::one_file_metadata;

/// A model with one file `config.json` holding `content`, its sha256 recorded (so a full verification can find it
/// corrupted).
fn add_model(store: &Store, id: &str, content: &[u8]) {
    let mut meta = one_file_metadata(id, "config.json", content, VerificationState::LocalOnly);
    meta.files[0].sha256 = Some(hex::encode(Sha256::digest(content)));
    std::fs::create_dir_all(store.model_dir(&meta.repo_id)).unwrap();
    std::fs::write(store.model_dir(&meta.repo_id).join("config.json"), content).unwrap();
    store.write_metadata(&meta).unwrap();
}

async fn get(url: &str) -> Value {
    let r = client().get(url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// Poll `GET url` until `pred` holds (every 100 ms, at most 60 s: the cache's 30 s limit with room to spare).
async fn poll(url: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get(url).await;
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within 60 s; last: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn builds(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("ema_status_builds_total "))
        .expect("ema_status_builds_total")
        .parse()
        .unwrap()
}

fn dead_hub() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn verify_all(cfg: &Path) {
    // Exit 3 when a model has a problem: what matters here is what it recorded.
    let r = run(ema_cmd()
        .arg("--config")
        .arg(cfg)
        .args(["verify-all-models", "--json"]));
    assert!(r.code == 0 || r.code == 3, "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_answers_follow_changes_made_behind_the_servers_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    store.ensure().unwrap();
    add_model(&store, "org/first", br#"{"model_type": "gpt2"}"#);
    let cfg = write_config(dir.path(), json!({}));
    let srv = EmaServer::start(&cfg, &dead_hub(), &["--port", "0"], &[]);
    let base = srv.url(0);
    let detailed = format!("{base}/api/v1/models/status/detailed");
    let legacy = format!("{base}/api/v1/models/status");
    let health = format!("{base}/api/v1/models/health");

    let d = get(&detailed).await;
    assert_eq!(d["models"]["org/first"]["is_available"], true, "{d}");
    assert_eq!(d["summary"]["total"], 1);

    // Added by hand (or by another ema): listed.
    add_model(&store, "org/second", br#"{"model_type": "bert"}"#);
    poll(&detailed, "the added model", |v| {
        v["models"]["org/second"]["is_available"] == true && v["summary"]["total"] == 2
    })
    .await;
    poll(&legacy, "the added model (legacy)", |v| {
        v["org/second"]["available"] == true
    })
    .await;
    poll(&health, "the added model (health)", |v| {
        v["models"]["org/second"].is_object()
    })
    .await;

    // Damaged (the file is cut short): no longer available.
    let file = store
        .model_dir(&RepoId::parse("org/first").unwrap())
        .join("config.json");
    std::fs::write(&file, b"{}").unwrap();
    poll(&detailed, "the damaged model", |v| {
        v["models"]["org/first"]["status"] == "incomplete"
            && v["models"]["org/first"]["is_available"] == false
    })
    .await;

    // Same size, other bytes: only hashing tells; another process's full verification records it corrupted.
    let second = store
        .model_dir(&RepoId::parse("org/second").unwrap())
        .join("config.json");
    let len = std::fs::metadata(&second).unwrap().len() as usize;
    std::fs::write(&second, "x".repeat(len)).unwrap();
    verify_all(&cfg);
    poll(&detailed, "the corrupted model", |v| {
        v["models"]["org/second"]["status"] == "corrupted"
    })
    .await;
    poll(&legacy, "the corrupted model (legacy)", |v| {
        v["org/second"]["status"] == "corrupted" && v["org/second"]["available"] == false
    })
    .await;

    // Removed: gone from every answer.
    let second_id = RepoId::parse("org/second").unwrap();
    std::fs::remove_dir_all(store.model_dir(&second_id)).unwrap();
    std::fs::remove_file(store.metadata_path(&second_id)).unwrap();
    poll(&detailed, "the removed model", |v| {
        v["models"].get("org/second").is_none() && v["summary"]["total"] == 1
    })
    .await;
    poll(&legacy, "the removed model (legacy)", |v| {
        v.get("org/second").is_none()
    })
    .await;
    let (code, stderr) = srv.stop();
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_requests_walks_the_store_a_bounded_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    store.ensure().unwrap();
    for i in 0..20 {
        add_model(
            &store,
            &format!("org/m{i:02}"),
            br#"{"model_type": "gpt2"}"#,
        );
    }
    let cfg = write_config(dir.path(), json!({}));
    let srv = EmaServer::start(&cfg, &dead_hub(), &["--port", "0"], &[]);
    let base = srv.url(0);
    let metrics = || async {
        client()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = builds(&metrics().await);
    assert!(before >= 1, "the server builds its first snapshot at start");
    let t = Instant::now();
    let requests = 200;
    for i in 0..requests {
        let path = ["/api/v1/models/status/detailed", "/api/v1/models/status"][i % 2];
        let v = get(&format!("{base}{path}")).await;
        assert!(v.is_object());
    }
    let after = builds(&metrics().await);
    // The cache's rule (no engine change here): one background rebuild per 2 s of age at most, plus the scrape's.
    let allowed = 2 + t.elapsed().as_secs() / 2;
    assert!(
        after - before <= allowed,
        "{requests} requests walked the store {} times (at most {allowed} expected)",
        after - before
    );
    let (code, stderr) = srv.stop();
    assert_eq!(code, 0, "{stderr}");
}
