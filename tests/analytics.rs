//! Usage analytics as specifications: one contract suite run against SQLite and a real PostgreSQL
//! (`EMA_TEST_PG_URL`, started by scripts/test.sh; with CI=true its absence fails), the legacy usage log imported
//! twice, a burst of 100,000 events while a real download from the test hub completes, and a PostgreSQL that goes
//! away and comes back.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ema::engine::Engine;
use ema::engine::analytics::{self, AnalyticsDb, DbUrl, Record, Recorder, kind};
use ema::engine::config::Config;
use ema::engine::config::hub_env::HubEnv;
use ema::engine::download::DownloadOptions;
use ema::engine::events::{Event, EventBus, Severity};
use ema::engine::store::RepoId;
use serde_json::Value;
use support::cli::{ema_cmd, run};
use support::hub::{BlockingHub, Hub};
use support::store::sample_hub;

// ---------------------------------------------------------------------------------------------------------------
// Backends

/// A fresh PostgreSQL database for one test (dropped at the end), or None outside CI without `EMA_TEST_PG_URL`.
struct PgDb {
    base: String,
    name: String,
    url: String,
}

fn pg_base() -> Option<String> {
    match std::env::var("EMA_TEST_PG_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CI=true and EMA_TEST_PG_URL is not set: scripts/test.sh starts PostgreSQL and sets it"
                );
            }
            eprintln!(
                "skipping the PostgreSQL half: EMA_TEST_PG_URL is not set (scripts/test.sh starts a cluster)"
            );
            None
        }
    }
}

impl PgDb {
    async fn create(tag: &str) -> Option<PgDb> {
        let base = pg_base()?;
        let name = format!("ema_{tag}_{}_{}", std::process::id(), rand_suffix());
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!("EMA_TEST_PG_URL is set but PostgreSQL does not answer: {e}")
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = with_db(&base, &name);
        Some(PgDb { base, name, url })
    }

    async fn drop_db(self) {
        if let Ok(admin) = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.base)
            .await
        {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&admin)
            .await;
            admin.close().await;
        }
    }
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u32
}

/// `base` with its database name replaced.
fn with_db(base: &str, name: &str) -> String {
    let mut u = url::Url::parse(base).unwrap();
    u.set_path(&format!("/{name}"));
    u.to_string()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// The contract suite

fn req(model: &str) -> Record {
    Record::new(kind::MODEL_REQUESTED, Some(model)).face("cli")
}

async fn contract(url: &str, work: &Path) {
    let db_url = DbUrl::parse(url).unwrap();

    // Schema: created, then opening again (and init-analytics-db twice) changes nothing.
    let db = AnalyticsDb::open(&db_url).await.unwrap();
    assert_eq!(
        db.schema_version().await.unwrap(),
        analytics::SCHEMA_VERSION
    );
    db.close().await;
    let db = AnalyticsDb::open(&db_url).await.unwrap();
    assert_eq!(db.schema_version().await.unwrap(), 1);
    for _ in 0..2 {
        let r =
            run(ema_cmd()
                .current_dir(work)
                .args(["init-analytics-db", "--db-url", url, "--json"]));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let j = r.json();
        assert_eq!(j["schema_version"], 1);
        assert!(!r.stdout.contains("test-secret-pw"), "{}", r.stdout);
    }

    // Record through the recorder (direct records and bus events), then report.
    let bus = EventBus::new();
    let rec = Recorder::start(db_url.clone());
    rec.follow(bus.subscribe());
    for _ in 0..3 {
        rec.record(req("org/popular"));
    }
    rec.record(req("org/rare"));
    let mut offered = Record::new(kind::FALLBACK_OFFERED, Some("org/rare"));
    offered.substitute = Some("org/popular".into());
    offered.score = Some(0.8);
    rec.record(offered);
    let mut taken = Record::new(kind::FALLBACK_TAKEN, Some("org/rare")).face("server");
    taken.substitute = Some("org/popular".into());
    rec.record(taken);
    rec.record(Record::new(kind::MODEL_SERVED, Some("org/popular")));
    // Three downloads through the bus: two complete (1 s and 3 s), one fails after a retry.
    for (m, bytes, secs) in [("org/a", 1000u64, 1.0f64), ("org/b", 9000, 3.0)] {
        bus.emit(Event::DownloadStarted {
            model_id: m.into(),
            commit: "c".into(),
        });
        bus.emit(Event::DownloadFinished {
            model_id: m.into(),
            commit: "c".into(),
            bytes,
            seconds: secs,
        });
    }
    bus.emit(Event::DownloadStarted {
        model_id: "org/c".into(),
        commit: "c".into(),
    });
    bus.emit(Event::Retry {
        model_id: "org/c".into(),
        path: "w.bin".into(),
        attempt: 1,
        delay_ms: 1,
        reason: "reset".into(),
    });
    bus.emit(Event::DownloadFailed {
        model_id: "org/c".into(),
        error: "gone".into(),
        exit_code: 4,
    });
    bus.emit(Event::HealthAlert {
        id: "1".into(),
        severity: Severity::Critical,
        model_id: Some("org/a".into()),
        message: "corrupted".into(),
        suggested_action: None,
        at: "now".into(),
    });
    let wait = Instant::now();
    while rec.stats().accepted < 14 && wait.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        rec.flush(Duration::from_secs(10)).await,
        "{:?}",
        rec.stats()
    );
    let st = rec.shutdown(Duration::from_secs(5)).await;
    assert_eq!((st.accepted, st.written, st.dropped), (14, 14, 0), "{st:?}");

    let s = analytics::summary(&db, None).await.unwrap();
    assert_eq!(s.events, 14);
    assert_eq!(s.top_by_requests[0].model_id, "org/popular");
    assert_eq!(s.top_by_requests[0].count, 3);
    assert_eq!(s.top_by_requests[1].count, 1);
    assert_eq!(s.fallback.requests, 4);
    assert_eq!((s.fallback.offered, s.fallback.taken), (1, 1));
    assert_eq!(s.fallback.rate, Some(0.25));
    assert_eq!(s.fallback.substitutes[0].substitute, "org/popular");
    let d = &s.downloads;
    assert_eq!((d.started, d.completed, d.failed), (3, 2, 1));
    assert_eq!(d.success_rate, Some(2.0 / 3.0));
    assert_eq!(d.bytes, 10_000);
    assert_eq!(d.duration_p50_s, Some(1.0));
    assert_eq!(d.duration_p95_s, Some(3.0));
    assert_eq!(d.rate_p50_bytes_per_sec, Some(1000.0));
    assert_eq!(d.rate_p95_bytes_per_sec, Some(3000.0));
    assert_eq!(s.top_by_bytes[0].model_id, "org/b");
    assert_eq!(s.alerts_by_kind[0].kind, "critical");
    assert_eq!(s.dropped_total, 0);
    // Successful use for the fallback score: served once, and once more as a substitute.
    let ok = analytics::successes_since(&db, 0).await.unwrap();
    assert_eq!(ok.get("org/popular"), Some(&2));
    // --since in the future sees nothing.
    let later = analytics::summary(&db, Some(analytics::record::now_ms() + 60_000))
        .await
        .unwrap();
    assert_eq!((later.events, later.downloads.completed), (0, 0));

    // Dropped events are counted: a queue of 10 and 1,000 records before the writer may run.
    let small = Recorder::start_with(db_url.clone(), 10);
    for _ in 0..1000 {
        small.record(Record::new(kind::MOCK_SERVED, Some("org/mock")));
    }
    assert!(
        small.flush(Duration::from_secs(10)).await,
        "{:?}",
        small.stats()
    );
    let st = small.shutdown(Duration::from_secs(5)).await;
    assert_eq!(st.written + st.dropped, 1000, "{st:?}");
    assert!(st.dropped >= 900, "{st:?}");
    let s = analytics::summary(&db, None).await.unwrap();
    assert_eq!(s.fallback.mock_served, st.written);
    assert_eq!(s.dropped_total, st.dropped);
    assert_eq!(s.dropped_by_kind[0].kind, kind::MOCK_SERVED);
    // … and `ema analytics` reports them.
    let r = run(ema_cmd()
        .current_dir(work)
        .args(["analytics", "--db-url", url]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "dropped events: {} ({} mock_served)",
            st.dropped, st.dropped
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("fallback: 4 requests, 1 offered, 1 taken (rate 25.0 %)"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("test-secret-pw"), "{}", r.stdout);

    // Import: good and bad lines, numbered; a second run adds nothing.
    let log = work.join("usage.log");
    std::fs::write(
        &log,
        "2024-01-01T12:00:00Z INFO model=org/old event=request latency_ms=12\n\
         not a log line\n\
         {\"timestamp\": 1704110400, \"model_id\": \"org/old\", \"event\": \"request\"}\n\
         {\"timestamp\": \"yesterday\", \"model_id\": \"org/old\", \"event\": \"request\"}\n\
         {\"timestamp\": 1704110400.5, \"model_id\": \"org/old\", \"event\": \"download\", \"bytes\": 5}\n",
    )
    .unwrap();
    let mut counts = Vec::new();
    for _ in 0..2 {
        let r = run(ema_cmd().current_dir(work).args([
            "migrate-usage-data",
            "--source",
            log.to_str().unwrap(),
            "--target-db",
            url,
            "--json",
        ]));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let j = r.json();
        let lines: Vec<u64> = j["bad_lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, vec![2, 4]);
        counts.push((
            j["imported"].clone(),
            j["already_present"].clone(),
            j["bad"].clone(),
        ));
    }
    assert_eq!(counts[0], (Value::from(3), Value::from(0), Value::from(2)));
    assert_eq!(counts[1], (Value::from(0), Value::from(3), Value::from(2)));
    let s = analytics::summary(&db, None).await.unwrap();
    assert_eq!(s.fallback.requests, 6);
    db.close().await;
}

#[test]
fn contract_sqlite() {
    let d = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/analytics.db", d.path().display());
    rt().block_on(contract(&url, d.path()));
}

#[test]
fn contract_postgresql() {
    let d = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let Some(pg) = PgDb::create("contract").await else {
            return;
        };
        contract(&pg.url, d.path()).await;
        pg.drop_db().await;
    });
}

// ---------------------------------------------------------------------------------------------------------------
// The legacy usage log, the CLI's errors, enabled / disabled

#[test]
fn the_legacy_usage_log_imports_twice_with_the_same_counts() {
    let d = tempfile::tempdir().unwrap();
    ema::engine::legacy::sample::legacy_install(&d.path().join("legacy"), false);
    let log = d.path().join("legacy/logs/usage.log");
    let url = format!("sqlite://{}/a.db", d.path().display());
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = run(ema_cmd().current_dir(d.path()).args([
            "migrate-usage-data",
            "--source",
            log.to_str().unwrap(),
            "--target-db",
            &url,
            "--json",
        ]));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let j = r.json();
        seen.push(j.clone());
        assert_eq!((j["lines"].as_u64(), j["bad"].as_u64()), (Some(7), Some(2)));
        assert_eq!(j["bad_lines"][0]["line"], 4);
        assert_eq!(j["bad_lines"][1]["line"], 6);
    }
    assert_eq!(
        (
            seen[0]["imported"].as_u64(),
            seen[0]["already_present"].as_u64()
        ),
        (Some(5), Some(0))
    );
    assert_eq!(
        (
            seen[1]["imported"].as_u64(),
            seen[1]["already_present"].as_u64()
        ),
        (Some(0), Some(5))
    );
    // The human form lists the bad lines too.
    let r = run(ema_cmd().current_dir(d.path()).args([
        "migrate-usage-data",
        "--source",
        log.to_str().unwrap(),
        "--target-db",
        &url,
    ]));
    assert!(
        r.stdout
            .contains("7 lines: 0 imported, 5 already present, 2 bad"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("line 4:"), "{}", r.stdout);
    let r = run(ema_cmd().current_dir(d.path()).args([
        "analytics",
        "--db-url",
        &url,
        "--json",
        "--since",
        "2023-12-31",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["fallback"]["requests"], 4);
    assert_eq!(j["top_by_requests"][0]["model_id"], "acme/plain-bert");
    assert_eq!(j["top_by_requests"][0]["count"], 3);
    assert_eq!(j["downloads"]["bytes"], 60000);
}

#[test]
fn bad_input_is_a_usage_error_naming_the_fix_and_never_shows_a_password() {
    let d = tempfile::tempdir().unwrap();
    let cases: [&[&str]; 4] = [
        &["analytics", "--db-url", "mysql://u:hunter2@h/db"],
        &[
            "init-analytics-db",
            "--db-url",
            "sqlite:///nonexistent-dir-ema/x/a.db",
        ],
        &[
            "migrate-usage-data",
            "--source",
            "missing.log",
            "--target-db",
            "sqlite:///tmp/x.db",
        ],
        &[
            "analytics",
            "--since",
            "soon",
            "--db-url",
            "sqlite:///tmp/x.db",
        ],
    ];
    for args in cases {
        let r = run(ema_cmd().current_dir(d.path()).args(args));
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    }
    // An unreachable PostgreSQL fails within the connect timeout, password redacted.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Instant::now();
    let r = run(ema_cmd().current_dir(d.path()).args([
        "analytics",
        "--db-url",
        &format!("postgresql://ema:hunter2@127.0.0.1:{port}/db"),
    ]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("<redacted>") && !r.stderr.contains("hunter2"),
        "{}",
        r.stderr
    );
    assert!(t.elapsed() < Duration::from_secs(20));
}

fn write_config(dir: &Path, analytics_enabled: bool) -> std::path::PathBuf {
    let cfg = dir.join("config/enhanced_model_config.json");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(
        &cfg,
        serde_json::json!({
            "storage": {"models_directory": "models"},
            "analytics": {"enabled": analytics_enabled}
        })
        .to_string(),
    )
    .unwrap();
    cfg
}

#[test]
fn ema_download_is_recorded_and_nothing_when_analytics_is_off() {
    let hub = BlockingHub::start(sample_hub(), false, |_| {});
    for enabled in [true, false] {
        let d = tempfile::tempdir().unwrap();
        let cfg = write_config(d.path(), enabled);
        let r = run(ema_cmd()
            .current_dir(d.path())
            .env("HF_ENDPOINT", hub.endpoint())
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "download",
                "ema-demo/tiny-sentiment",
            ]));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let db = d.path().join("cache/analytics.db");
        if !enabled {
            assert!(!db.exists(), "analytics off must record nothing");
            continue;
        }
        assert!(db.is_file());
        let r = run(ema_cmd().current_dir(d.path()).args([
            "--config",
            cfg.to_str().unwrap(),
            "analytics",
            "--json",
        ]));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let j = r.json();
        assert_eq!(j["downloads"]["started"], 1);
        assert_eq!(j["downloads"]["completed"], 1);
        assert_eq!(j["downloads"]["success_rate"], 1.0);
        assert_eq!(j["top_by_bytes"][0]["model_id"], "ema-demo/tiny-sentiment");
        assert!(j["downloads"]["bytes"].as_u64().unwrap() > 100_000);
        assert!(j["downloads"]["duration_p50_s"].as_f64().is_some());
    }
}

// ---------------------------------------------------------------------------------------------------------------
// A burst while downloading

#[test]
fn a_burst_of_100000_events_during_a_download_is_recorded_or_counted() {
    let d = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let hub = Hub::start(sample_hub(), false, |_| {}).await;
        let mut c = Config::default();
        c.storage.models_directory = d.path().join("models");
        c.storage.cache_directory = Some(d.path().join("cache"));
        let env = HubEnv {
            endpoint: hub.endpoint(),
            token: None,
            token_source: None,
            offline: false,
        };
        let engine = Engine::new(c, env).unwrap();
        assert!(engine.start_analytics().is_some());
        let e2 = engine.clone();
        let dl = tokio::spawn(async move {
            e2.download(
                &RepoId::parse("ema-demo/small-gpt").unwrap(),
                DownloadOptions::default(),
            )
            .await
        });
        for i in 0..100_000u32 {
            engine.record(req("burst/model"));
            if i % 2_000 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let report = dl.await.unwrap().unwrap();
        assert!(report.completed, "{report:?}");
        let st = engine
            .stop_analytics(Duration::from_secs(10))
            .await
            .unwrap();
        let db = analytics::open(None, engine.config()).await.unwrap();
        let s = analytics::summary(&db, None).await.unwrap();
        let dropped: HashMap<String, u64> = s
            .dropped_by_kind
            .iter()
            .map(|k| (k.kind.clone(), k.count))
            .collect();
        let requests =
            s.fallback.requests + dropped.get(kind::MODEL_REQUESTED).copied().unwrap_or(0);
        assert_eq!(
            requests, 100_000,
            "recorded {} + dropped {:?}; {st:?}",
            s.fallback.requests, dropped
        );
        let done =
            s.downloads.completed + dropped.get(kind::DOWNLOAD_COMPLETED).copied().unwrap_or(0);
        assert_eq!(done, 1, "{s:?}");
        assert_eq!(st.dropped, s.dropped_total, "every drop persisted: {st:?}");
        db.close().await;
        hub.shutdown().await;
    });
}

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL going away

/// A TCP proxy to PostgreSQL that can go down (every connection cut, new ones closed at once) and come back.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (u, cs) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                if !u.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                cs.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                }));
            }
        });
        Proxy { port, up, conns }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn postgresql_going_away_counts_dropped_events_and_recording_recovers() {
    rt().block_on(async {
        let Some(pg) = PgDb::create("away").await else {
            return;
        };
        let target = {
            let u = url::Url::parse(&pg.url).unwrap();
            format!("{}:{}", u.host_str().unwrap(), u.port().unwrap_or(5432))
        };
        let proxy = Proxy::start(target).await;
        let mut via = url::Url::parse(&pg.url).unwrap();
        via.set_port(Some(proxy.port)).unwrap();
        let db_url = DbUrl::parse(via.as_str()).unwrap();
        let rec = Recorder::start(db_url.clone());
        let mut emitted = 0u64;
        for _ in 0..100 {
            rec.record(req("pg/model"));
            emitted += 1;
        }
        assert!(
            rec.flush(Duration::from_secs(15)).await,
            "{:?}",
            rec.stats()
        );
        assert_eq!(rec.stats().written, 100);

        proxy.down();
        let t = Instant::now();
        for _ in 0..50 {
            rec.record(req("pg/model"));
            emitted += 1;
        }
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "recording waited on the database"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while rec.stats().dropped < 50 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let st = rec.stats();
        assert!(st.dropped >= 50 && st.database_away, "{st:?}");

        proxy.up();
        // Recording recovers: records land again (bounded wait), and the dropped counts are persisted.
        let deadline = Instant::now() + Duration::from_secs(30);
        let before = rec.stats().written;
        while rec.stats().written == before && Instant::now() < deadline {
            rec.record(req("pg/model"));
            emitted += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(rec.stats().written > before, "{:?}", rec.stats());
        assert!(
            rec.flush(Duration::from_secs(15)).await,
            "{:?}",
            rec.stats()
        );
        let st = rec.shutdown(Duration::from_secs(5)).await;
        assert!(!st.database_away, "{st:?}");

        let db = AnalyticsDb::open(&DbUrl::parse(&pg.url).unwrap())
            .await
            .unwrap();
        let s = analytics::summary(&db, None).await.unwrap();
        assert_eq!(s.fallback.requests + s.dropped_total, emitted, "{s:?}");
        assert_eq!(s.dropped_total, st.dropped);
        assert!(s.dropped_total >= 50);
        db.close().await;
        pg.drop_db().await;
    });
}
