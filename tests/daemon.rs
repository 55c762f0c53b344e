//! `ema start` as a systemd service expects it: `READY=1` and `STOPPING=1` on a notify socket the test creates,
//! SIGHUP reloading the configuration (a valid change applied live or named as needing a restart; an invalid file
//! refused with every problem logged and the old configuration kept), and SIGTERM during a download, then a restart
//! that resumes it — the bytes the hub serves twice bounded, from its request log.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use support::http::{client, poll};
use support::hub::Hub;
use support::server::{EmaServer, write_config};
use support::store::sample_hub;

const SMALL: &str = "ema-demo/small-gpt";

/// The next datagram on the notify socket (bounded wait).
fn notified(s: &UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    let n = s.recv(&mut buf).expect("a notification within 20 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn hup(srv: &EmaServer) {
    unsafe {
        libc::kill(srv.pid() as i32, libc::SIGHUP);
    }
}

async fn status_with_host(base: &str, host: &str) -> StatusCode {
    let port = base.rsplit(':').next().unwrap();
    client()
        .get(format!("{base}/api/v1/admin/health"))
        .header("host", format!("{host}:{port}"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reload_on_sighup_and_stopping_reach_systemd() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({}));
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let srv = EmaServer::start(
        &cfg,
        &hub.endpoint(),
        &["--port", "0"],
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    let base = srv.url(0);
    let ready = notified(&sock);
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        ready.contains(&format!("STATUS=listening on {base}")),
        "{ready}"
    );
    assert_eq!(status_with_host(&base, "models.example").await, 403);

    // A valid change: the allow-list applies live, the retries need a restart.
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    doc["api"] = json!({"allowed_hosts": ["models.example"]});
    doc["downloads"] = json!({"max_retries": 7});
    std::fs::write(&cfg, doc.to_string()).unwrap();
    hup(&srv);
    assert_eq!(notified(&sock), "RELOADING=1");
    assert!(notified(&sock).starts_with("READY=1"));
    assert_eq!(status_with_host(&base, "models.example").await, 200);
    let log = srv.stderr();
    assert!(log.contains("applied live: api.allowed_hosts"), "{log}");
    assert!(
        log.contains("needs a restart to take effect: downloads.max_retries"),
        "{log}"
    );

    // An invalid file: refused, every problem logged, the configuration in force kept.
    std::fs::write(
        &cfg,
        r#"{"api": {"allowed_hosts": [], "port": "eighty"}, "downloads": {"max_retries": -1}}"#,
    )
    .unwrap();
    hup(&srv);
    assert_eq!(notified(&sock), "RELOADING=1");
    assert!(notified(&sock).starts_with("READY=1"));
    let log = srv.stderr();
    assert!(log.contains("reload refused: 2 problem(s)"), "{log}");
    assert!(
        log.contains("api.port") && log.contains("downloads.max_retries"),
        "{log}"
    );
    assert_eq!(
        status_with_host(&base, "models.example").await,
        200,
        "the old allow-list is still in force"
    );

    let (code, log) = srv.stop_with(|| {
        let m = notified(&sock);
        assert_eq!(m, "STOPPING=1");
    });
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("info: stopping the server"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_download_then_a_restart_resumes_it_with_bounded_refetch() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    hub.plan.set_connection_cap(Some(3_000_000));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({}));
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let base = srv.url(0);
    let r = client()
        .post(format!("{base}/api/v1/models/download/manage"))
        .json(&json!({"model_id": SMALL, "action": "start"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let job: Value = r.json().await.unwrap();
    let job_url = format!(
        "{base}/api/v1/downloads/{}",
        job["job_id"].as_str().unwrap()
    );
    let v = poll(&job_url, 60, |v| {
        v["bytes_done"].as_u64().unwrap_or(0) > 10_000_000
    })
    .await;
    let total = v["bytes_total"].as_u64().unwrap();
    let (code, log) = srv.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("1 download(s) interrupted"), "{log}");

    // The next start resumes it without being asked.
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let base = srv.url(0);
    poll(&format!("{base}/api/v1/models/status"), 120, |v| {
        v[SMALL]["available"] == true
    })
    .await;
    let (code, log) = srv.stop();
    assert_eq!(code, 0);
    assert!(
        log.contains(&format!("resuming the interrupted download of {SMALL}")),
        "{log}"
    );
    let served: u64 = hub
        .plan
        .requests()
        .iter()
        .filter(|q| q.path.contains("/resolve/"))
        .map(|q| q.body_bytes)
        .sum();
    let bound = 8 << 20;
    eprintln!("served {served} bytes for a {total}-byte model (bound {bound})");
    assert!(served >= total, "{served} < {total}");
    assert!(
        served <= total + bound,
        "the resumed download fetched {} bytes again (bound {bound})",
        served - total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_killed_with_include_globs_is_resumed_by_the_next_start_with_the_same_globs() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    hub.plan.set_connection_cap(Some(3_000_000));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({}));
    let wanted = ["config.json", "model-00001-of-00002.safetensors"];
    let mut dl = support::cli::ema_cmd()
        .arg("--config")
        .arg(&cfg)
        .args([
            "download",
            SMALL,
            "--include",
            wanted[0],
            "--include",
            wanted[1],
        ])
        .env("HF_ENDPOINT", hub.endpoint())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let shard_bytes = || {
        hub.plan
            .requests()
            .iter()
            .filter(|q| q.path.ends_with(wanted[1]))
            .map(|q| q.body_bytes)
            .sum::<u64>()
    };
    assert!(
        support::wait::wait_for(60, || shard_bytes() > 4_000_000),
        "the shard did not start downloading within 60 s"
    );
    dl.kill().unwrap();
    dl.wait().unwrap();

    // `ema start` continues it with the globs it was asked with: the shard and config, nothing else.
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let base = srv.url(0);
    poll(&format!("{base}/api/v1/downloads"), 120, |v| {
        v["downloads"]
            .as_array()
            .and_then(|l| l.iter().find(|j| j["model_id"] == SMALL))
            .is_some_and(|j| j["state"] == "completed")
    })
    .await;
    let (code, log) = srv.stop();
    assert_eq!(code, 0, "{log}");
    let folder = dir.path().join("models").join("ema-demo--small-gpt");
    for f in wanted {
        assert!(folder.join(f).is_file(), "{f} missing after the resume");
    }
    for f in ["model-00002-of-00002.safetensors", "README.md"] {
        assert!(
            !folder.join(f).exists(),
            "{f} was downloaded: the globs were lost"
        );
        assert!(
            !hub.plan
                .requests()
                .iter()
                .any(|q| q.path.contains("/resolve/") && q.path.ends_with(f)),
            "the hub was asked for {f}"
        );
    }
}
