//! Integrity end to end: the real `ema` binary on temp stores built from the sample hub, repaired from the
//! Hub-compatible mirror on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ema::engine::demo::generate_sample_hub;
use ema::server::faults::FaultPlan;
use ema::server::mirror::{Mirror, MirrorHandle};
use ema::server::options::MirrorOptions;
use serde_json::Value;

/// The sample hub, generated once per build directory (idempotent).
fn hub_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("integrity_sample_hub");
        generate_sample_hub(&root).unwrap();
        root
    })
}

/// Copy every model folder and metadata sidecar of `src` into `dst` (not `.ema/`).
fn copy_store(src: &Path, dst: &Path) {
    fn rec(s: &Path, d: &Path) {
        std::fs::create_dir_all(d).unwrap();
        for e in std::fs::read_dir(s).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            if name == ".ema" {
                continue;
            }
            let t = e.file_type().unwrap();
            if t.is_dir() {
                rec(&e.path(), &d.join(&name));
            } else {
                std::fs::copy(e.path(), d.join(&name)).unwrap();
            }
        }
    }
    rec(src, dst);
}

struct TestHub {
    rt: tokio::runtime::Runtime,
    plan: std::sync::Arc<FaultPlan>,
    handle: Option<MirrorHandle>,
    _mirror: Mirror,
}

impl TestHub {
    fn start(root: &Path) -> TestHub {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let plan = FaultPlan::new();
        let (mirror, handle) = rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let opts = MirrorOptions {
                faults: Some(plan.clone()),
                ..MirrorOptions::default()
            };
            let m = Mirror::load(root, opts).await.unwrap();
            let h = m.serve(l).unwrap();
            (m, h)
        });
        TestHub {
            rt,
            plan,
            handle: Some(handle),
            _mirror: mirror,
        }
    }
    fn url(&self) -> String {
        self.handle.as_ref().unwrap().url()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A work dir with a config file pointing at `<work>/models`, and the hub environment isolated.
struct Env {
    work: tempfile::TempDir,
    endpoint: String,
}

impl Env {
    fn new(endpoint: &str) -> Env {
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(work.path().join("config")).unwrap();
        std::fs::write(
            work.path().join("config/enhanced_model_config.json"),
            r#"{"storage": {"models_directory": "models"}, "downloads": {"retry_delay_seconds": 0.2}}"#,
        )
        .unwrap();
        Env {
            work,
            endpoint: endpoint.to_string(),
        }
    }
    fn models(&self) -> PathBuf {
        self.work.path().join("models")
    }
    fn config(&self) -> PathBuf {
        self.work.path().join("config/enhanced_model_config.json")
    }
    fn ema(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ema"));
        c.current_dir(self.work.path())
            .args(args)
            .env("HF_ENDPOINT", &self.endpoint)
            .env("HF_HOME", self.work.path().join("hf-home"))
            .env_remove("HF_TOKEN")
            .env_remove("HUGGING_FACE_HUB_TOKEN")
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("EMA_CONFIG")
            .env_remove(ema::engine::integrity::maintenance::MOVE_STOP_ENV)
            .env("NO_COLOR", "1");
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn states(doc: &Value) -> std::collections::BTreeMap<String, String> {
    doc["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["model_id"].as_str().unwrap().to_string(),
                m["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn issues_of<'a>(doc: &'a Value, model: &str) -> Vec<&'a Value> {
    doc["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_id"] == model)
        .unwrap()["issues"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

fn flip_byte(p: &Path, at_from_end: usize) {
    let mut b = std::fs::read(p).unwrap();
    let i = b.len() - at_from_end;
    b[i] ^= 0x40;
    std::fs::write(p, b).unwrap();
}

const SHARD2: &str = "ema-demo--small-gpt/model-00002-of-00002.safetensors";
const SHARD1: &str = "ema-demo--small-gpt/model-00001-of-00002.safetensors";

#[test]
fn every_kind_of_damage_is_detected_and_repaired_from_the_test_hub() {
    let hub = TestHub::start(hub_root());
    let env = Env::new(&hub.url());
    copy_store(hub_root(), &env.models());
    let m = env.models();

    let r = env.ema(&["verify-all-models", "--json"], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(states(&r.json()).values().all(|s| s == "healthy"));

    // Round 1: a flipped byte in a shard, a truncated file, a deleted file, a damaged safetensors header.
    flip_byte(&m.join(SHARD2), 1000);
    let tiny = m.join("ema-demo--tiny-gpt/model.safetensors");
    let len = std::fs::metadata(&tiny).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tiny)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    std::fs::remove_file(m.join("ema-demo--tiny-sentiment/config.json")).unwrap();
    let embed = m.join("ema-demo--mini-embed/model.safetensors");
    let mut b = std::fs::read(&embed).unwrap();
    b[8] = b'['; // the JSON header no longer starts with `{`
    std::fs::write(&embed, b).unwrap();

    let r = env.ema(&["verify-all-models", "--json", "--generate-report"], &[]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let doc = r.json();
    let s = states(&doc);
    assert_eq!(s["ema-demo/small-gpt"], "corrupted");
    assert_eq!(s["ema-demo/tiny-gpt"], "corrupted");
    assert_eq!(s["ema-demo/tiny-sentiment"], "incomplete");
    assert_eq!(s["ema-demo/mini-embed"], "corrupted");
    assert!(
        issues_of(&doc, "ema-demo/small-gpt")
            .iter()
            .any(|i| i["problem"] == "hash_mismatch")
    );
    assert!(
        issues_of(&doc, "ema-demo/tiny-gpt")
            .iter()
            .any(|i| i["problem"] == "wrong_size")
    );
    assert!(
        issues_of(&doc, "ema-demo/mini-embed")
            .iter()
            .any(|i| i["problem"] == "bad_structure"
                && i["detail"].as_str().unwrap().contains("safetensors"))
    );
    // The report is where the docs say, and matches.
    let report: Value = serde_json::from_slice(
        &std::fs::read(env.work.path().join("reports/model_integrity_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(states(&report), s);
    // Human output names the problems.
    let h = env.ema(&["verify-all-models"], &[]);
    assert_eq!(h.code, 3);
    assert!(
        h.stdout.contains("corrupted") && h.stdout.contains("incomplete"),
        "{}",
        h.stdout
    );
    // The alert history has them.
    let health = env.ema(&["health", "--json"], &[]);
    let alerts = health.json()["alerts"].as_array().unwrap().clone();
    let alert = alerts
        .iter()
        .find(|a| a["model_id"] == "ema-demo/small-gpt" && a["severity"] == "critical")
        .expect("a critical alert for the corrupted model");
    let id = alert["id"].as_str().unwrap();
    let r = env.ema(&["health", "--acknowledge", id], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let again = env.ema(&["health", "--json"], &[]).json();
    assert!(
        again["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id && a["acknowledged"] == true)
    );

    // Repair: only the bad files are fetched, then everything verifies.
    let shard1_mtime = std::fs::metadata(m.join(SHARD1))
        .unwrap()
        .modified()
        .unwrap();
    hub.plan.clear_log();
    let r = env.ema(&["verify-all-models", "--repair-corrupted", "--json"], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let doc = r.json();
    assert!(states(&doc).values().all(|s| s == "healthy"), "{doc}");
    let repaired: Vec<&str> = doc["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["redownloaded"].as_array().unwrap())
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(repaired.len(), 4, "{repaired:?}");
    // The hub served exactly those files' bytes, nothing else.
    let mut fetched: Vec<String> = hub
        .plan
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/resolve/"))
        .map(|r| {
            let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
            format!("{}/{}:{}", parts[0], parts[1], parts[4..].join("/"))
        })
        .collect();
    fetched.sort();
    fetched.dedup();
    assert_eq!(
        fetched,
        vec![
            "ema-demo/mini-embed:model.safetensors",
            "ema-demo/small-gpt:model-00002-of-00002.safetensors",
            "ema-demo/tiny-gpt:model.safetensors",
            "ema-demo/tiny-sentiment:config.json",
        ],
        "only the bad files were downloaded"
    );
    assert_eq!(
        std::fs::metadata(m.join(SHARD1))
            .unwrap()
            .modified()
            .unwrap(),
        shard1_mtime,
        "the good shard was not re-downloaded"
    );
    assert_eq!(
        std::fs::read(m.join(SHARD2)).unwrap(),
        std::fs::read(hub_root().join(SHARD2)).unwrap()
    );

    // Round 2: a stray file, and an index naming a missing shard.
    std::fs::write(m.join("ema-demo--tiny-gpt/notes.txt"), "mine").unwrap();
    std::fs::remove_file(m.join(SHARD1)).unwrap();
    let q = env.ema(&["check-models", "--quick", "--json"], &[]);
    assert_eq!(q.code, 3);
    let qs = states(&q.json());
    assert_eq!(qs["ema-demo/small-gpt"], "incomplete");
    assert_eq!(qs["ema-demo/tiny-gpt"], "degraded");
    let r = env.ema(&["check-models", "--json"], &[]);
    assert_eq!(r.code, 3);
    let doc = r.json();
    assert_eq!(states(&doc)["ema-demo/small-gpt"], "incomplete");
    assert!(
        issues_of(&doc, "ema-demo/small-gpt")
            .iter()
            .any(|i| i["problem"] == "missing_shard")
    );
    assert_eq!(states(&doc)["ema-demo/tiny-gpt"], "degraded");
    let r = env.ema(
        &[
            "check-models",
            "--repair-if-needed",
            "--remove-stray-files",
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!m.join("ema-demo--tiny-gpt/notes.txt").exists());
    assert!(m.join(SHARD1).exists());
}

#[test]
fn generate_metadata_uses_the_hub_when_reachable_and_says_local_otherwise() {
    let hub = TestHub::start(hub_root());
    let env = Env::new(&hub.url());
    let m = env.models();
    std::fs::create_dir_all(&m).unwrap();
    // A plain folder of a repo the hub knows, without metadata.
    copy_store(
        &hub_root().join("ema-demo--tiny-sentiment"),
        &m.join("ema-demo--tiny-sentiment"),
    );
    // The operator took a subset: files the hub lists but that are not here are not expected.
    std::fs::remove_file(m.join("ema-demo--tiny-sentiment/README.md")).unwrap();
    // A local model the hub does not know.
    std::fs::create_dir_all(m.join("local--thing")).unwrap();
    std::fs::write(m.join("local--thing/config.json"), "{}").unwrap();

    let r = env.ema(
        &["generate-metadata", "--models-dir", "models", "--json"],
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let doc = r.json();
    let by: std::collections::BTreeMap<&str, &Value> = doc["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["model_id"].as_str().unwrap(), o))
        .collect();
    assert_eq!(by["ema-demo/tiny-sentiment"]["hashes_from"], "hub");
    assert_eq!(by["ema-demo/tiny-sentiment"]["verification"], "verified");
    assert_eq!(
        by["ema-demo/tiny-sentiment"]["hub_files_not_present"],
        serde_json::json!(["README.md"])
    );
    assert_eq!(by["local/thing"]["hashes_from"], "local");
    assert_eq!(by["local/thing"]["verification"], "local_only");
    let meta: Value = serde_json::from_slice(
        &std::fs::read(m.join("ema-demo--tiny-sentiment.metadata.json")).unwrap(),
    )
    .unwrap();
    assert!(meta["commit"].as_str().unwrap().len() == 40);

    // Existing metadata is kept without --force-regenerate; offline it says "local".
    let r = env.ema(&["generate-metadata", "--models-dir", "models"], &[]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("kept existing metadata"), "{}", r.stdout);
    let r = env.ema(
        &[
            "generate-metadata",
            "--models-dir",
            "models",
            "--force-regenerate",
        ],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("local, not checked against the hub"),
        "{}",
        r.stdout
    );

    // An unreachable hub: local hashes, and the output says so.
    let r = env.ema(
        &[
            "generate-metadata",
            "--models-dir",
            "models",
            "--force-regenerate",
        ],
        &[("HF_ENDPOINT", "http://127.0.0.1:9")],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("local, not checked against the hub"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("unreachable"), "{}", r.stderr);

    // An unusable folder fails the run (exit 1) unless --ignore-errors.
    std::fs::create_dir_all(m.join("empty--model")).unwrap();
    let r = env.ema(
        &[
            "generate-metadata",
            "--models-dir",
            "models",
            "--force-regenerate",
        ],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let r = env.ema(
        &[
            "generate-metadata",
            "--models-dir",
            "models",
            "--force-regenerate",
            "--json",
        ],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.json()["stopped_by_error"]["message"].is_string(),
        "one JSON document with the error"
    );
    let r = env.ema(
        &[
            "generate-metadata",
            "--models-dir",
            "models",
            "--force-regenerate",
            "--ignore-errors",
        ],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(r.code, 0, "--ignore-errors reports and carries on");
    assert!(r.stdout.contains("empty/model: FAILED"), "{}", r.stdout);
    assert!(m.join("local--thing.metadata.json").exists());
}

#[test]
fn an_interrupted_move_loses_nothing_and_a_rerun_completes() {
    let env = Env::new("http://127.0.0.1:9");
    copy_store(hub_root(), &env.models());
    let target = env.work.path().join("bigger/models");
    let before = ema::engine::integrity::verify::walk_model_dir(&env.models()).unwrap();
    let cfg = env.config();
    let cfg_s = cfg.to_str().unwrap();
    let tgt = target.to_str().unwrap();

    // Refusals first.
    let r = env.ema(
        &[
            "move-models",
            "--source",
            "models",
            "--target",
            "models/inner",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);

    let r = env.ema(
        &[
            "--config",
            cfg_s,
            "move-models",
            "--source",
            "models",
            "--target",
            tgt,
            "--update-config",
        ],
        &[("EMA_MOVE_STOP_AFTER_FILES", "5")],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("run the same"), "{}", r.stderr);
    let after = ema::engine::integrity::verify::walk_model_dir(&env.models()).unwrap();
    assert_eq!(before.len(), after.len(), "the source is intact");
    assert!(target.join(".ema/move-journal.json").exists());
    let c: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert_eq!(
        c["storage"]["models_directory"], "models",
        "config not switched yet"
    );

    let r = env.ema(
        &[
            "--config",
            cfg_s,
            "move-models",
            "--source",
            "models",
            "--target",
            tgt,
            "--update-config",
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let doc = r.json();
    assert_eq!(doc["resumed"], true);
    assert_eq!(doc["already_done"], 5);
    assert_eq!(doc["source_deleted"], true);
    assert!(!env.models().exists());
    let c: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert_eq!(
        Path::new(c["storage"]["models_directory"].as_str().unwrap()),
        target.canonicalize().unwrap()
    );
    // The moved store verifies, through the switched configuration; the quick check trusts kept mtimes.
    let r = env.ema(&["--config", cfg_s, "verify-all-models", "--json"], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(states(&r.json()).len(), 4);
    let r = env.ema(&["--config", cfg_s, "check-models", "--quick"], &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// The monitor inside the engine: a byte flipped on disk is noticed by the next tick, alerted on the bus, repaired
/// from the hub and healthy again — with no sleeping (ticks are driven with explicit instants).
#[test]
fn the_health_monitor_alerts_and_repairs_by_itself() {
    use ema::engine::config::{Config, HubEnv};
    use ema::engine::events::{Event, HealthState, Severity};
    use ema::engine::health::HealthMonitor;
    use std::time::{Duration, Instant};

    let hub = TestHub::start(hub_root());
    let work = tempfile::tempdir().unwrap();
    let models = work.path().join("models");
    copy_store(hub_root(), &models);
    let mut config = Config::default();
    config.storage.models_directory = models.clone();
    config.downloads.retry_delay_seconds = 0.2;
    let env = HubEnv {
        endpoint: hub.url(),
        token: None,
        token_source: None,
        offline: false,
    };
    hub.rt.block_on(async {
        let engine = ema::engine::Engine::new(config.clone(), env).unwrap();
        let mut rx = engine.bus().subscribe();
        let repairer = std::sync::Arc::new(engine.repairer());
        let mut mon = HealthMonitor::new(
            engine.store().clone(),
            config,
            engine.bus().clone(),
            Some(repairer),
        );
        let t0 = Instant::now();
        let r = mon.run_once(t0).await.unwrap();
        assert!(r.full_ran);
        assert!(r.models.iter().all(|m| m.state == HealthState::Healthy));

        flip_byte(&models.join(SHARD2), 12345);
        // Also make the change visible to the quick check the way bit rot would not: a truncation elsewhere.
        let cfgp = models.join("ema-demo--tiny-gpt/config.json");
        let c = std::fs::read(&cfgp).unwrap();
        std::fs::write(&cfgp, &c[..c.len() - 1]).unwrap();

        let r = mon.run_once(t0 + Duration::from_secs(3600)).await.unwrap();
        assert!(r.full_ran);
        let mut repaired = r.repaired.clone();
        repaired.sort();
        assert_eq!(repaired, vec!["ema-demo/small-gpt", "ema-demo/tiny-gpt"]);
        assert!(
            r.models.iter().all(|m| m.state == HealthState::Healthy),
            "{:?}",
            r.models
        );
        let mut alerted = false;
        while let Ok(e) = rx.try_recv() {
            if let Event::HealthAlert {
                model_id: Some(m),
                severity: Severity::Critical,
                ..
            } = e
                && m == "ema-demo/small-gpt"
            {
                alerted = true;
            }
        }
        assert!(alerted, "the alert was published while it happened");
        assert_eq!(
            std::fs::read(models.join(SHARD2)).unwrap(),
            std::fs::read(hub_root().join(SHARD2)).unwrap()
        );
        let history = engine.alerts().list().unwrap();
        assert!(
            history
                .iter()
                .any(|a| a.model_id.as_deref() == Some("ema-demo/small-gpt"))
        );
    });
}

/// The demo store is repaired with no hub at all: the demo's built-in hub store is a repair source, and a local copy
/// is used only when its hash matches (a damaged copy is refused and nothing is replaced by it).
#[test]
fn demo_store_is_repaired_from_a_verified_local_copy_without_a_hub() {
    let d = tempfile::tempdir().unwrap();
    let demo = d.path().join("demo");
    let ema = env!("CARGO_BIN_EXE_ema");
    let run = |args: &[&str]| {
        Command::new(ema)
            .args(args)
            .env_remove("EMA_CONFIG")
            .env_remove("HF_TOKEN")
            .env("HF_HOME", d.path().join("hf"))
            // Nothing listens on port 9: the hub is unreachable.
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .current_dir(d.path())
            .output()
            .unwrap()
    };
    let out = Command::new(ema)
        .args(["demo", "--headless", "--rate-mbps", "0", "--dir"])
        .arg(&demo)
        .env_remove("EMA_CONFIG")
        .env("HF_HOME", d.path().join("hf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let cfg = demo.join("config/enhanced_model_config.json");
    let cfg = cfg.to_str().unwrap();
    // The hub is down for good here: don't spend minutes backing off.
    let out = run(&[
        "--config",
        cfg,
        "configure",
        "--set",
        "downloads.retry_delay_seconds=0.05",
        "--set",
        "downloads.max_retries=1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let models = demo.join("models");
    let models_s = models.to_str().unwrap();
    let rel = "ema-demo--small-gpt/model-00001-of-00002.safetensors";
    let good = std::fs::read(demo.join("hub").join(rel)).unwrap();
    let mut bad = good.clone();
    bad[123_456] ^= 0x40;
    std::fs::write(models.join(rel), &bad).unwrap();

    // Reported: corrupted, exit 3.
    let out = run(&[
        "--config",
        cfg,
        "verify-all-models",
        "--models-dir",
        models_s,
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("corrupted"));

    // A damaged local copy is not trusted: the repair fails (no hub) and the file is left as it was.
    let hub_copy = demo.join("hub").join(rel);
    std::fs::write(&hub_copy, &bad[..]).unwrap();
    let out = run(&[
        "--config",
        cfg,
        "verify-all-models",
        "--models-dir",
        models_s,
        "--repair-corrupted",
    ]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read(models.join(rel)).unwrap(), bad);

    // With the good copy back, the repair needs no network and the bytes are the hub's.
    std::fs::write(&hub_copy, &good).unwrap();
    let out = run(&[
        "--config",
        cfg,
        "verify-all-models",
        "--models-dir",
        models_s,
        "--repair-corrupted",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read(models.join(rel)).unwrap(), good);
    let out = run(&[
        "--config",
        cfg,
        "verify-all-models",
        "--models-dir",
        models_s,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
