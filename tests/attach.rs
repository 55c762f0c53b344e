//! The console attached to a running server (`ema --attach URL`): `RemoteBackend` against a live `ema start` on
//! loopback downloading from the test hub (models, a download started, its events, storage and alerts, the token,
//! what is not available, reconnection after the server restarts, a download that went on while no console was
//! attached), and end to end in tmux: the console killed mid-download and attached again.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use ema::engine::download::queue::QueueState;
use ema::engine::events::{Availability, Event};
use ema::tui::bridge::ConsoleBackend;
use ema::tui::remote::RemoteBackend;
use ema::tui::remote::client::Token;
use support::cli::{EMA, ema_cmd};
use support::http::client;
use support::hub::{BlockingHub, Hub};
use support::server::{EmaServer, write_config};
use support::store::sample_hub;
use support::tmux::{Tmux, tmux_test_dir};

const TINY: &str = "ema-demo/tiny-gpt";
const SMALL: &str = "ema-demo/small-gpt";
const TOKEN: &str = "s3cret-attach";

fn token(t: &str) -> Token {
    Token::load(None, Some(t.into())).unwrap()
}

/// The next event on `rx` matching `pred` (bounded).
async fn next_event(
    rx: &mut broadcast::Receiver<Event>,
    secs: u64,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(e)) if pred(&e) => return e,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("the event stream ended waiting for {what}: {e}"),
            Err(_) => panic!("no {what} within {secs} s"),
        }
    }
}

/// Poll `f` every 100 ms until it holds (bounded).
async fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_json(url: &str) -> Value {
    let r = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    r.json().await.unwrap()
}

/// The server's job of `model` (GET /api/v1/downloads).
async fn job_of(base: &str, model: &str) -> Option<Value> {
    let list = get_json(&format!("{base}/api/v1/downloads")).await;
    list["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["model_id"] == model)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_backend_drives_a_download_in_the_server_and_follows_its_events() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        json!({"storage": {"wanted_models": [TINY], "cleanup_threshold_percent": 77},
               "analytics": {"enabled": true,
                             "db_url": format!("sqlite://{}", dir.path().join("analytics.db").display())}}),
    );
    let srv = EmaServer::start(
        &cfg,
        &hub.endpoint(),
        &["--port", "0"],
        &[("EMA_API_TOKEN", TOKEN)],
    );
    let base = srv.url(0);

    // A wrong or missing token is refused before anything else, naming the fix and never the token.
    for t in [token("wrong-token"), Token::none()] {
        let e = RemoteBackend::connect(&base, t).await.err().unwrap();
        assert_eq!(e.exit_code(), 4, "{e}");
        assert!(
            e.to_string().contains("refused the token") && e.to_string().contains("EMA_API_TOKEN"),
            "{e}"
        );
        assert!(!e.to_string().contains("wrong-token"));
    }

    let b = RemoteBackend::connect(&base, token(TOKEN)).await.unwrap();
    assert_eq!(b.info().store_root, dir.path().join("models"));
    until(10, "the event link", || b.link().unwrap().connected).await;
    assert_eq!(b.link().unwrap().server, base);
    let mut rx = b.subscribe();

    let models = b.models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].id.as_str(), TINY);
    assert!(models[0].wanted);
    assert_eq!(models[0].availability, Availability::Missing);
    assert!(b.downloads().is_empty());

    // Started in the server: the answer comes at once, progress and the end arrive over the WebSocket.
    let msg = b.download(TINY.into()).await.unwrap();
    assert!(msg.contains("started on") && msg.contains("job-"), "{msg}");
    next_event(
        &mut rx,
        60,
        "download progress",
        |e| matches!(e, Event::ModelProgress { model_id, .. } if model_id == TINY),
    )
    .await;
    next_event(
        &mut rx,
        60,
        "the download's end",
        |e| matches!(e, Event::DownloadFinished { model_id, .. } if model_id == TINY),
    )
    .await;
    let models = b.models().await.unwrap();
    assert_eq!(models[0].availability, Availability::Available);
    assert!(models[0].size() > 2_000_000, "{:?}", models[0].size());
    assert!(b.downloads().is_empty());

    // Storage and alerts from the health endpoint, with the server's own settings.
    let s = b.storage().await.unwrap();
    assert!(s.used_bytes >= models[0].size(), "{s:?}");
    assert_eq!(s.cleanup_threshold_percent, 77);
    assert!(s.disk_total_bytes.unwrap() > 0);
    b.alerts().await.unwrap();
    assert!(b.hub_reachable().await);

    // The fallback answer and the usage analytics come from the server's engine.
    let report = b.suggest("ema-demo/not-here".into()).await.unwrap();
    assert_eq!(report.requested, "ema-demo/not-here");
    assert_eq!(report.requested_status, Availability::Missing);
    assert!(report.threshold > 0.0, "{report:?}");
    let e = b.suggest("not a model id".into()).await.unwrap_err();
    assert!(e.to_string().contains("invalid repo id"), "{e}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let summary = loop {
        let a = b.analytics().await.unwrap().expect("recording is on");
        if a.downloads.completed >= 1 || Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(summary.downloads.completed, 1, "{summary:?}");
    assert!(summary.fallback.requests >= 1, "{summary:?}");

    // Pause with no job: the server's answer, as an error.
    let e = b.pause("ema-demo/mini-embed".into()).await.unwrap_err();
    assert!(e.to_string().contains("on http://127.0.0.1"), "{e}");
    // What the server has no endpoint for says so, and changes nothing.
    for e in [
        b.verify(TINY.into()).await.unwrap_err(),
        b.delete(TINY.into()).await.unwrap_err(),
        b.repair(TINY.into()).await.unwrap_err(),
        b.watch("a/b".into()).await.unwrap_err(),
        b.acknowledge("all".into()).await.unwrap_err(),
        b.migration_run("plan_reviewed".into()).await.unwrap_err(),
        b.recommendations().await.unwrap_err(),
        b.apply_recommendation("downloads.connections_per_file".into())
            .await
            .unwrap_err(),
    ] {
        assert!(
            e.to_string()
                .contains("not available when attached to http://127.0.0.1"),
            "{e}"
        );
    }
    assert!(b.migration_load().unwrap().plan.is_none());
    assert_eq!(
        b.models().await.unwrap()[0].availability,
        Availability::Available
    );
    b.close();
    let (code, stderr) = srv.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_goes_on_in_the_server_while_no_console_is_attached() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    // About 57 MiB at 2 connections of 4 MB/s: several seconds.
    hub.plan.set_connection_cap(Some(4_000_000));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        json!({"storage": {"wanted_models": [SMALL]},
               "downloads": {"connections_per_file": 1, "max_concurrent_downloads": 2},
               "analytics": {"enabled": false}}),
    );
    let srv = EmaServer::start(
        &cfg,
        &hub.endpoint(),
        &["--port", "0"],
        &[("EMA_API_TOKEN", TOKEN)],
    );
    let base = srv.url(0);

    let first = RemoteBackend::connect(&base, token(TOKEN)).await.unwrap();
    let mut rx = first.subscribe();
    first.download(SMALL.into()).await.unwrap();
    next_event(&mut rx, 60, "download progress", |e| {
        matches!(e, Event::ModelProgress { model_id, bytes_done, .. } if model_id == SMALL && *bytes_done > 0)
    })
    .await;
    // The console goes away.
    first.close();
    drop(rx);
    drop(first);
    let before = job_of(&base, SMALL).await.unwrap();

    // Attached again mid-download: the job is there, in progress.
    let second = RemoteBackend::connect(&base, token(TOKEN)).await.unwrap();
    // The server records no analytics: the console is told so (no summary), not an error.
    assert!(second.analytics().await.unwrap().is_none());
    let snaps = second.downloads();
    let running = snaps
        .iter()
        .find(|d| d.model_id == SMALL)
        .expect("the download is shown");
    assert!(
        matches!(running.state, QueueState::Downloading | QueueState::Queued),
        "{running:?}"
    );
    assert!(
        running.bytes_done >= before["bytes_done"].as_u64().unwrap(),
        "{running:?} {before}"
    );
    second.close();
    drop(second);

    // It finishes with no console attached.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = job_of(&base, SMALL).await.unwrap();
        if j["state"] == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the download did not finish: {j}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Attached once more: told how it ended, and the model is there.
    let third = RemoteBackend::connect(&base, token(TOKEN)).await.unwrap();
    let mut rx = third.subscribe();
    let ended = next_event(
        &mut rx,
        5,
        "the ending of the download",
        |e| matches!(e, Event::DownloadFinished { model_id, .. } if model_id == SMALL),
    )
    .await;
    let Event::DownloadFinished { bytes, seconds, .. } = ended else {
        unreachable!()
    };
    assert!(bytes > 50_000_000 && seconds > 1.0, "{bytes} {seconds}");
    let mut st = ema::tui::initial_state(&third).await.unwrap();
    st.apply(&ended);
    assert_eq!(
        st.download(SMALL).unwrap().state,
        ema::tui::state::DownloadState::Finished
    );
    assert_eq!(st.models[0].availability, Availability::Available);
    // Told once: the refresh and the WebSocket's snapshot do not repeat it.
    let until_quiet = Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(e)) = tokio::time::timeout_at(until_quiet.into(), rx.recv()).await {
        assert!(
            !matches!(&e, Event::DownloadFinished { model_id, .. } if model_id == SMALL),
            "told twice"
        );
    }
    third.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_shows_a_drop_and_reconnects_when_the_server_is_back() {
    let hub = Hub::start(sample_hub(), false, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), json!({"storage": {"wanted_models": [TINY]}}));
    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", "0"], &[]);
    let (base, port) = (srv.url(0), srv.port(0));
    let b = RemoteBackend::connect(&base, Token::none()).await.unwrap();
    until(10, "the event link", || b.link().unwrap().connected).await;
    let generation = b.link().unwrap().generation;

    let (code, _) = srv.stop();
    assert_eq!(code, 0);
    until(15, "the drop to show", || !b.link().unwrap().connected).await;
    assert!(b.link().unwrap().error.is_some());
    // Calls fail clearly meanwhile.
    let e = b.models().await.unwrap_err();
    assert!(e.to_string().contains("cannot reach the ema server"), "{e}");

    let srv = EmaServer::start(&cfg, &hub.endpoint(), &["--port", &port.to_string()], &[]);
    until(30, "the reconnection", || {
        let l = b.link().unwrap();
        l.connected && l.generation > generation
    })
    .await;
    assert_eq!(b.models().await.unwrap()[0].id.as_str(), TINY);
    b.close();
    srv.stop();
}

#[test]
fn attach_errors_name_the_problem_and_exit_non_zero() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.json");
    std::fs::write(&cfg, "{}").unwrap();
    let run = |args: &[&str]| {
        let out = ema_cmd()
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--attach", "localhost:8000"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("http://HOST:PORT"), "{err}");
    // Free a port, so nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, err) = run(&["tui", "--attach", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("cannot reach the ema server") && err.contains("ema start"),
        "{err}"
    );
    let (code, err) = run(&["--attach", "http://127.0.0.1:1", "status"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ema tui --attach"), "{err}");
    let (code, err) = run(&[
        "--attach",
        "http://127.0.0.1:1",
        "--token-file",
        "/nonexistent/token",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/token"), "{err}");
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// The end-to-end test: a download started from an attached console in tmux, the console killed
/// mid-download, the download going on in the server, the console attached again showing it.
#[test]
fn console_attached_in_tmux_killed_mid_download_and_attached_again() {
    let Some(d) = tmux_test_dir() else { return };
    let hub = BlockingHub::start(sample_hub(), false, |_| {});
    hub.plan.set_connection_cap(Some(2_500_000));
    let cfg = write_config(
        d.path(),
        json!({"storage": {"wanted_models": [SMALL]},
               "downloads": {"connections_per_file": 1, "max_concurrent_downloads": 2}}),
    );
    let srv = EmaServer::start(
        &cfg,
        &hub.endpoint(),
        &["--port", "0"],
        &[("EMA_API_TOKEN", TOKEN)],
    );
    let base = srv.url(0);
    let token_file = d.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let local_cfg = d.path().join("local.json");
    std::fs::write(&local_cfg, "{}").unwrap();
    let cmd = format!(
        "env -u EMA_API_TOKEN NO_COLOR=1 {} --config {} --attach {base} --token-file {}; echo EMA_EXIT=$?; sleep 30",
        shell_quote(Path::new(EMA)),
        shell_quote(&local_cfg),
        shell_quote(&token_file),
    );
    let long = Duration::from_secs(30);

    let tmux = Tmux::start(&cmd, 120, 40);
    tmux.wait_for("the attached console", long, |s| {
        s.contains(SMALL) && s.contains(&format!("attached to {base}"))
    });
    tmux.keys(&["d"]);
    tmux.wait_for("the download under way", long, |s| {
        s.contains("started on") || s.contains("downloading")
    });
    tmux.wait_for("progress", long, |s| {
        s.lines().any(|l| {
            l.contains(SMALL) && l.contains("downloading") && !l.contains("downloading 0%")
        })
    });
    // The console goes away with its terminal (an SSH session dropping).
    drop(tmux);

    let job = |b: &str| hub.rt.block_on(job_of(b, SMALL)).expect("the job");
    let at_kill = job(&base);
    assert_ne!(at_kill["state"], "failed", "{at_kill}");
    // It goes on in the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = job(&base);
        if now["state"] == "completed"
            || now["bytes_done"].as_u64() > at_kill["bytes_done"].as_u64()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress after the console left: {now}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Attached again: the download is shown in progress or finished, and ends available.
    let tmux = Tmux::start(&cmd, 120, 40);
    tmux.wait_for("the download in progress or finished", long, |s| {
        s.contains(&format!("attached to {base}"))
            && s.lines().any(|l| {
                l.contains(SMALL) && (l.contains("downloading") || l.contains("available"))
            })
    });
    tmux.keys(&["2"]);
    let done = tmux.wait_for("the download finished", Duration::from_secs(120), |s| {
        s.contains("finished") && s.contains(SMALL)
    });
    assert!(done.contains("attached to"), "{done}");
    assert_eq!(job(&base)["state"], "completed");
    tmux.quit(long);
    let (code, stderr) = srv.stop();
    assert_eq!(code, 0, "{stderr}");
}
