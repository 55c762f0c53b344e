//! Downloads against the real Hub-compatible mirror with fault injection, on loopback (127.0.0.1 for the hub,
//! 127.0.0.2 for its "CDN"). Engine-level cases run the engine in-process; CLI, kill -9 and multi-process cases
//! run the real `ema` binary.

mod support;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ema::engine::Engine;
use ema::engine::config::Config;
use ema::engine::config::hub_env::HubEnv;
use ema::engine::download::{DownloadOptions, DownloadReport};
use ema::engine::error::{EmaError, Result};
use ema::engine::events::{Availability, Event};
use ema::engine::store::{RepoId, Store, VerificationState};
use ema::server::faults::{Fault, RetryAfter, VirtualRepo, fingerprint};
use ema::server::options::MirrorOptions;
use support::cli::{ema_cmd, first_json_line};
use support::data::{find_in, pseudo_random, sha256_hex, tree};
use support::hub::BlockingHub;
use support::wait::wait_for;

const TOKEN: &str = "hf_test_token_0123456789";

/// A source store with a few models (no metadata: the mirror hashes them and derives commits).
fn source_store(dir: &Path) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    let mut models: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let small = models.entry("org/small".into()).or_default();
    small.insert(
        "config.json".into(),
        b"{\"model_type\": \"demo\", \"hidden_size\": 64}\n".to_vec(),
    );
    small.insert("README.md".into(), b"# small\nA test model.\n".to_vec());
    small.insert("model.safetensors".into(), pseudo_random(1, 3 << 20));
    small.insert("tokenizer/vocab.txt".into(), pseudo_random(2, 70_000));
    small.insert("onnx/model.onnx".into(), pseudo_random(3, 200_000));
    let big = models.entry("org/big".into()).or_default();
    big.insert(
        "config.json".into(),
        b"{\"model_type\": \"big\"}\n".to_vec(),
    );
    big.insert("model.safetensors".into(), pseudo_random(4, 24 << 20));
    let many = models.entry("org/many".into()).or_default();
    for i in 0..130 {
        many.insert(
            format!("shards/part-{i:03}.txt"),
            format!("shard {i}\n").into_bytes(),
        );
    }
    for (id, files) in &models {
        let root = dir.join(id.replace('/', "--"));
        for (p, c) in files {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, c).unwrap();
        }
    }
    models
}

/// The test hub over a source store of a few models (see [`source_store`]), with its CDN host and `TOKEN`
/// accepted; `models` holds what it serves, to compare downloads with.
struct SourceHub {
    hub: BlockingHub,
    models: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    _src: tempfile::TempDir,
}

impl Deref for SourceHub {
    type Target = BlockingHub;
    fn deref(&self) -> &BlockingHub {
        &self.hub
    }
}

impl SourceHub {
    /// `e` downloads `id` (default options) to the end.
    fn download(&self, e: &Engine, id: &str) -> Result<DownloadReport> {
        self.download_with(e, id, DownloadOptions::default())
    }

    fn download_with(&self, e: &Engine, id: &str, opts: DownloadOptions) -> Result<DownloadReport> {
        self.rt.block_on(e.download(&repo(id), opts))
    }
}

fn start_hub(tune: impl FnOnce(&mut MirrorOptions)) -> SourceHub {
    let src = tempfile::tempdir().unwrap();
    let models = source_store(src.path());
    let hub = BlockingHub::start(src.path(), true, |opts| {
        opts.accepted_tokens = vec![TOKEN.to_string()];
        opts.tree_page_size = 50;
        tune(opts);
    });
    SourceHub {
        hub,
        models,
        _src: src,
    }
}

fn test_config(models_dir: &Path) -> Config {
    let mut c = Config::default();
    c.storage.models_directory = models_dir.to_path_buf();
    c.downloads.retry_delay_seconds = 0.05;
    c.downloads.max_retries = 3;
    c.downloads.stall_timeout_seconds = 1.0;
    c.downloads.connect_timeout_seconds = 2.0;
    c.downloads.parallel_threshold_mb = 1;
    c.downloads.connections_per_file = 4;
    c.downloads.max_retry_after_seconds = 5.0;
    c
}

fn engine(
    hub: &SourceHub,
    models_dir: &Path,
    token: Option<&str>,
    tune: impl FnOnce(&mut Config),
) -> Engine {
    let mut c = test_config(models_dir);
    tune(&mut c);
    let env = HubEnv {
        endpoint: hub.endpoint(),
        token: token.map(str::to_string),
        token_source: token.map(|_| "HF_TOKEN".to_string()),
        offline: false,
    };
    Engine::new(c, env).unwrap()
}

/// A fresh store (the root of a new temp dir) and an engine on it that downloads from `hub` without a token.
fn fresh_engine(hub: &SourceHub, tune: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Engine) {
    let d = tempfile::tempdir().unwrap();
    let e = engine(hub, d.path(), None, tune);
    (d, e)
}

/// Start `e` downloading `r` in the background (called inside the hub's runtime).
fn spawn_download(e: &Engine, r: &RepoId) -> tokio::task::JoinHandle<Result<DownloadReport>> {
    let (e, r) = (e.clone(), r.clone());
    tokio::spawn(async move { e.download(&r, DownloadOptions::default()).await })
}

fn repo(s: &str) -> RepoId {
    RepoId::parse(s).unwrap()
}

fn assert_model_matches(hub: &SourceHub, models_dir: &Path, id: &str) {
    let got = tree(&models_dir.join(id.replace('/', "--")));
    let want = &hub.models[id];
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "file set of {id}"
    );
    for (k, v) in want {
        assert!(got[k] == *v, "content of {id}/{k} differs");
    }
}

fn collect_events(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        v.push(e);
    }
    v
}

#[test]
fn downloads_byte_identical_with_metadata_and_token_only_to_endpoint_host() {
    let hub = start_hub(|_| {});
    let d = tempfile::tempdir().unwrap();
    let models = d.path().join("models");
    let e = engine(&hub, &models, Some(TOKEN), |_| {});
    let mut rx = e.bus().subscribe();
    let r = hub.download(&e, "org/small").unwrap();
    assert!(r.completed);
    assert_eq!(r.files, 5);
    assert_model_matches(&hub, &models, "org/small");
    // Sidecar metadata: pinned commit, every file verified, hashes recorded.
    let meta = Store::new(&models)
        .read_metadata(&repo("org/small"))
        .unwrap()
        .unwrap();
    assert_eq!(meta.verification, VerificationState::Verified);
    assert_eq!(meta.commit.as_deref(), Some(r.commit.as_str()));
    let st = meta
        .files
        .iter()
        .find(|f| f.path == "model.safetensors")
        .unwrap();
    assert!(st.lfs);
    assert_eq!(
        st.sha256.as_deref().unwrap(),
        sha256_hex(&hub.models["org/small"]["model.safetensors"])
    );
    assert!(meta.files.iter().all(|f| f.verified_at.is_some()));
    // No partial data left behind, nothing else in the store but the model, its sidecar and the state dir.
    assert!(!Store::new(&models).partial_dir(&repo("org/small")).exists());
    // The token went to the endpoint host and never to the CDN host.
    let reqs = hub.plan.requests();
    let fp = fingerprint(&format!("Bearer {TOKEN}"));
    let cdn: Vec<_> = reqs
        .iter()
        .filter(|q| q.path.starts_with("/cdn/"))
        .collect();
    assert!(!cdn.is_empty(), "LFS files came through the CDN redirect");
    assert!(
        cdn.iter().all(|q| !q.authorization),
        "token forwarded to the CDN host: {cdn:?}"
    );
    assert!(
        cdn.iter()
            .all(|q| q.host.as_deref().unwrap_or("").starts_with("127.0.0.2"))
    );
    let api: Vec<_> = reqs
        .iter()
        .filter(|q| !q.path.starts_with("/cdn/"))
        .collect();
    assert!(
        api.iter()
            .all(|q| q.authorization_fingerprint.as_deref() == Some(fp.as_str()))
    );
    // Events: queued, started, verified per file, finished, available.
    let evs = collect_events(&mut rx);
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::DownloadQueued { files: 5, .. }))
    );
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, Event::FileVerified { .. }))
            .count(),
        5
    );
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::AvailabilityChanged {
            new_status: Availability::Available,
            ..
        }
    )));
    // Status says available; a second run fetches nothing.
    let s = e.model_status(&repo("org/small"), true).unwrap();
    assert_eq!(s.availability, Availability::Available);
    hub.plan.clear_log();
    let r2 = hub.download(&e, "org/small").unwrap();
    assert_eq!(r2.files_already_present, 5);
    assert_eq!(
        hub.plan.body_bytes_sent("/resolve/") + hub.plan.body_bytes_sent("/cdn/"),
        0
    );
}

#[test]
fn large_files_use_parallel_range_parts_and_bandwidth_limit_holds() {
    let hub = start_hub(|_| {});
    let (d, e) = fresh_engine(&hub, |c| c.downloads.bandwidth_limit_mbps = 80.0);
    let t = Instant::now();
    hub.download(&e, "org/big").unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_model_matches(&hub, d.path(), "org/big");
    let sha = sha256_hex(&hub.models["org/big"]["model.safetensors"]);
    let ranges: Vec<String> = gets_of(&hub, &sha)
        .into_iter()
        .map(|q| q.range.unwrap_or_default())
        .collect();
    // 24 MiB in chunks of 8 MiB. The first connection asks for everything; once the ramp sees the hasher waiting
    // on the (rate-limited) network it adds connections, which take the other chunks with their own ranges, and
    // the first connection stops at the end of its chunk. (What the server had already pushed into that
    // connection's socket buffer is dropped with it: at most one socket buffer, once per ramp-up.)
    let part = 8u64 << 20;
    let starts: Vec<u64> = ranges
        .iter()
        .map(|r| {
            r.trim_start_matches("bytes=")
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(sorted, vec![0, part, 2 * part], "{ranges:?}");
    assert!(
        ranges.contains(&format!("bytes={}-{}", part, 2 * part - 1)),
        "{ranges:?}"
    );
    // 24 MiB at 80 Mbit/s (10 MB/s) cannot take less than ~2.2 s (a quarter-second burst allowed).
    assert!(
        secs >= 2.2,
        "the bandwidth limit was not applied: {secs:.2} s"
    );
}

#[test]
fn flipped_byte_is_detected_and_refetched_and_persistent_corruption_fails_integrity() {
    let hub = start_hub(|_| {});
    let d = tempfile::tempdir().unwrap();
    let models = d.path().join("models");
    let e = engine(&hub, &models, None, |_| {});
    let mut rx = e.bus().subscribe();
    let sha = sha256_hex(&hub.models["org/small"]["model.safetensors"]);
    hub.plan
        .add(format!("/cdn/{sha}"), Some(1), Fault::FlipByte(1000));
    hub.download(&e, "org/small").unwrap();
    assert_model_matches(&hub, &models, "org/small");
    let evs = collect_events(&mut rx);
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::Retry { reason, .. } if reason.contains("hash mismatch"))),
        "a retry for the hash mismatch"
    );
    // Every response corrupted: an integrity error, never available.
    let d2 = tempfile::tempdir().unwrap();
    let e2 = engine(&hub, d2.path(), None, |c| c.downloads.max_retries = 2);
    hub.plan.add("/cdn/", None, Fault::FlipByte(5));
    let err = hub.download(&e2, "org/small").unwrap_err();
    assert!(matches!(err, EmaError::Integrity(_)), "{err}");
    assert_eq!(err.exit_code(), 3);
    assert!(
        !d2.path().join("org--small/model.safetensors").exists(),
        "corrupt bytes never placed"
    );
    let s = e2.model_status(&repo("org/small"), false).unwrap();
    assert_ne!(s.availability, Availability::Available);
}

#[test]
fn retries_503_and_429_honouring_retry_after_and_ratelimit() {
    let hub = start_hub(|_| {});
    let (d, e) = fresh_engine(&hub, |_| {});
    let mut rx = e.bus().subscribe();
    hub.plan.add(
        "/api/models/org/small",
        Some(1),
        Fault::Status {
            status: 503,
            retry_after: Some(RetryAfter::Seconds(1)),
        },
    );
    hub.plan.add(
        "/cdn/",
        Some(2),
        Fault::Status {
            status: 429,
            retry_after: Some(RetryAfter::HttpDateIn(2)),
        },
    );
    hub.plan.add(
        "config.json",
        Some(1),
        Fault::Status {
            status: 500,
            retry_after: None,
        },
    );
    let t = Instant::now();
    hub.download(&e, "org/small").unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "Retry-After was obeyed"
    );
    assert_model_matches(&hub, d.path(), "org/small");
    let evs = collect_events(&mut rx);
    let retries: Vec<(u64, String)> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Retry {
                delay_ms, reason, ..
            } => Some((*delay_ms, reason.clone())),
            _ => None,
        })
        .collect();
    assert!(
        retries
            .iter()
            .any(|(ms, r)| *ms == 1000 && r.contains("503")),
        "{retries:?}"
    );
    assert!(
        retries
            .iter()
            .any(|(ms, r)| (900..=2000).contains(ms) && r.contains("429")),
        "{retries:?}"
    );
    assert!(
        retries.iter().any(|(_, r)| r.contains("500")),
        "{retries:?}"
    );
    // A 404 is not retried: one request, NotFound.
    hub.plan.clear_log();
    let err = hub.download(&e, "org/nope").unwrap_err();
    assert!(matches!(err, EmaError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("org/nope"), "{err}");
    assert_eq!(hub.plan.requests().len(), 1);
    // A CDN that keeps failing: a hub error after the retries, naming no signed URL and no token.
    let d2 = tempfile::tempdir().unwrap();
    let e2 = engine(&hub, d2.path(), Some(TOKEN), |c| {
        c.downloads.max_retries = 2
    });
    hub.plan.add(
        "/cdn/",
        None,
        Fault::Status {
            status: 502,
            retry_after: None,
        },
    );
    let err = hub.download(&e2, "org/small").unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 4, "{msg}");
    assert!(msg.contains("502") && msg.contains("ema download"), "{msg}");
    assert!(
        !msg.contains("Signature") && !msg.contains('?') && !msg.contains(TOKEN),
        "{msg}"
    );
}

#[test]
fn stalled_connection_is_dropped_and_retried() {
    let hub = start_hub(|_| {});
    let (d, e) = fresh_engine(&hub, |_| {});
    let mut rx = e.bus().subscribe();
    let sha = sha256_hex(&hub.models["org/small"]["model.safetensors"]);
    hub.plan.add(
        format!("/cdn/{sha}"),
        Some(1),
        Fault::Stall {
            after_bytes: 10_000,
        },
    );
    hub.download(&e, "org/small").unwrap();
    assert_model_matches(&hub, d.path(), "org/small");
    let evs = collect_events(&mut rx);
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::Retry { reason, .. } if reason.contains("stalled")))
    );
}

/// The GET requests the hub saw for the file whose hash is `sha` (its resolve and CDN URLs carry it).
fn gets_of(hub: &SourceHub, sha: &str) -> Vec<ema::server::faults::RequestRecord> {
    hub.plan
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET" && q.path.contains(sha))
        .collect()
}

/// Download org/small (one connection) into a fresh store while the server cuts its first transfer of the weights
/// after 2 MB; returns the GETs of the weights (two: the cut one and a 206 resume).
fn cut_then_resume(
    hub: &SourceHub,
    tune: impl FnOnce(&mut Config),
) -> Vec<ema::server::faults::RequestRecord> {
    let sha = sha256_hex(&hub.models["org/small"]["model.safetensors"]);
    hub.plan.clear();
    hub.plan.clear_log();
    hub.plan
        .add(format!("/cdn/{sha}"), Some(1), Fault::DropAfter(2_000_000));
    let d = tempfile::tempdir().unwrap();
    let e = engine(hub, d.path(), None, |c| {
        tune(c);
        c.downloads.parallel_threshold_mb = 1024;
    });
    hub.download(&e, "org/small").unwrap();
    assert_model_matches(hub, d.path(), "org/small");
    let gets = gets_of(hub, &sha);
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[1].status, 206);
    gets
}

#[test]
fn range_ignored_restarts_from_zero_and_drop_resumes_with_range() {
    let hub = start_hub(|_| {});
    // One connection per file so the resume is a plain `bytes=N-`.
    let (d, e) = fresh_engine(&hub, |c| c.downloads.parallel_threshold_mb = 1024);
    let sha = sha256_hex(&hub.models["org/small"]["model.safetensors"]);
    let cdn = format!("/cdn/{sha}");
    hub.plan.add(&cdn, Some(1), Fault::DropAfter(1_000_000));
    hub.plan.add(&cdn, Some(1), Fault::IgnoreRange);
    hub.download(&e, "org/small").unwrap();
    assert_model_matches(&hub, d.path(), "org/small");
    let gets = gets_of(&hub, &sha);
    // First GET cut, second asked for a range and got 200 (ignored), third restarted from zero without a range.
    assert!(gets.len() >= 3, "{gets:?}");
    assert_eq!(gets[1].range.as_deref(), Some("bytes=1000000-"));
    assert_eq!(gets[1].status, 200);
    assert_eq!(gets.last().unwrap().range, None);

    // Drop then a clean resume: the resume asks only for the rest.
    let gets = cut_then_resume(&hub, |_| {});
    let total: u64 = gets.iter().map(|q| q.body_bytes).sum();
    // What was in flight when the connection was cut is lost; everything received was kept.
    assert!(
        total <= (3 << 20) + (3 << 20) / 10,
        "re-fetched too much: {total}"
    );
}

#[test]
fn complete_partial_skips_the_request_and_is_verified() {
    // A partial that already holds every byte (the case where a naive client gets 416) is verified, not fetched.
    let hub = start_hub(|_| {});
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path());
    let r = repo("org/small");
    let content = &hub.models["org/small"]["model.safetensors"];
    let sha = sha256_hex(content);
    let pdir = store.partial_dir(&r);
    std::fs::create_dir_all(&pdir).unwrap();
    // Left by a process that is gone (a finished child's pid).
    let mut child = Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    let dead = child.id();
    std::fs::write(pdir.join(format!("{sha}.{dead}.part")), content).unwrap();
    let state = serde_json::json!({
        "version": 1, "path": "model.safetensors", "size": content.len(), "hash": sha, "etag": sha,
        "parts": [{"start": 0, "end": content.len(), "done": content.len()}]
    });
    std::fs::write(pdir.join(format!("{sha}.{dead}.json")), state.to_string()).unwrap();
    let e = engine(&hub, d.path(), None, |_| {});
    hub.rt
        .block_on(e.download(&r, DownloadOptions::default()))
        .unwrap();
    assert_model_matches(&hub, d.path(), "org/small");
    assert!(
        !hub.plan
            .requests()
            .iter()
            .any(|q| q.method == "GET" && q.path.contains(&sha)),
        "no GET for the complete partial"
    );
}

#[test]
fn upstream_change_between_attempts_restarts_the_file() {
    let hub = start_hub(|_| {});
    let (d, e) = fresh_engine(&hub, |c| {
        c.downloads.retry_delay_seconds = 1.0;
        c.downloads.parallel_threshold_mb = 1024;
    });
    let mut rx = e.bus().subscribe();
    let old_sha = sha256_hex(&hub.models["org/small"]["model.safetensors"]);
    hub.plan.add(
        format!("/cdn/{old_sha}"),
        Some(1),
        Fault::DropAfter(500_000),
    );
    let new_content = pseudo_random(99, (3 << 20) + 17);
    let r = repo("org/small");
    let got = hub.rt.block_on(async {
        let dl = spawn_download(&e, &r);
        // On the first retry, change the file upstream.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
                Ok(Ok(Event::Retry { .. })) => {
                    hub.plan
                        .change_upstream("org/small", "model.safetensors", new_content.clone());
                    break;
                }
                _ => continue,
            }
        }
        dl.await.unwrap()
    });
    got.unwrap();
    let on_disk = std::fs::read(d.path().join("org--small/model.safetensors")).unwrap();
    assert!(
        on_disk == new_content,
        "the new upstream content, fetched from zero"
    );
    let new_sha = sha256_hex(&new_content);
    let gets: Vec<_> = hub
        .plan
        .requests()
        .into_iter()
        .filter(|q| q.method == "GET" && q.path.contains(&new_sha))
        .collect();
    assert_eq!(gets.len(), 1);
    assert_eq!(
        gets[0].range, None,
        "restarted from zero, not resumed onto old bytes"
    );
}

#[test]
fn include_exclude_revision_by_sha_and_pagination() {
    let hub = start_hub(|_| {});
    let (d, e) = fresh_engine(&hub, |_| {});
    let opts = DownloadOptions {
        include: vec![
            "*.json".into(),
            "*.safetensors".into(),
            "tokenizer/*".into(),
        ],
        exclude: vec!["*.safetensors".into()],
        ..Default::default()
    };
    let r = hub.download_with(&e, "org/small", opts).unwrap();
    let got = tree(&d.path().join("org--small"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        vec!["config.json", "tokenizer/vocab.txt"]
    );
    // Revision by commit sha.
    let (d2, e2) = fresh_engine(&hub, |_| {});
    let opts = DownloadOptions {
        revision: Some(r.commit.clone()),
        ..Default::default()
    };
    let r2 = hub.download_with(&e2, "org/small", opts).unwrap();
    assert_eq!(r2.commit, r.commit);
    assert_model_matches(&hub, d2.path(), "org/small");
    // An unknown revision is NotFound naming the revision.
    let opts = DownloadOptions {
        revision: Some("no-such-branch".into()),
        ..Default::default()
    };
    let err = hub.download_with(&e2, "org/small", opts).unwrap_err();
    assert!(
        matches!(err, EmaError::NotFound(_)) && err.to_string().contains("no-such-branch"),
        "{err}"
    );
    // 130 files over pages of 50.
    hub.plan.clear_log();
    hub.download(&e2, "org/many").unwrap();
    assert_model_matches(&hub, d2.path(), "org/many");
    let pages = hub
        .plan
        .requests()
        .iter()
        .filter(|q| q.path.contains("/tree/"))
        .count();
    assert!(pages >= 3, "{pages} tree pages");
}

#[test]
fn hostile_names_refused_and_symlinks_never_followed() {
    let hub = start_hub(|_| {});
    hub.plan
        .add_virtual_repo(VirtualRepo::hostile_names("evil/repo"));
    let d = tempfile::tempdir().unwrap();
    let models = d.path().join("models");
    let e = engine(&hub, &models, None, |_| {});
    let err = hub.download(&e, "evil/repo").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("refusing repo file name"), "{msg}");
    assert!(
        ["../evil", "/etc/x", "a\\\\b", "sub/../../x"]
            .iter()
            .any(|n| msg.contains(n)),
        "{msg}"
    );
    assert!(!d.path().join("evil").exists() && !models.join("evil").exists());
    assert!(
        tree(&models.join("evil--repo")).is_empty(),
        "nothing written"
    );
    // Bad hashes and lying sizes are refused too.
    for lying in [
        VirtualRepo::non_hex_commit("evil/commit"),
        VirtualRepo::bad_sha256("evil/sha"),
        VirtualRepo::size_mismatch("evil/size"),
    ] {
        hub.plan.add_virtual_repo(lying);
    }
    for id in ["evil/commit", "evil/sha", "evil/size"] {
        let err = hub.download(&e, id).unwrap_err();
        assert!(matches!(err, EmaError::Integrity(_)), "{id}: {err}");
        assert!(
            !models
                .join(id.replace('/', "--"))
                .join("model.safetensors")
                .exists()
        );
    }
    // A destination that is a symlink is replaced, never written through; a symlinked folder is refused.
    let outside = d.path().join("outside.txt");
    std::fs::write(&outside, b"keep me").unwrap();
    let mdir = models.join("org--small");
    std::fs::create_dir_all(&mdir).unwrap();
    std::os::unix::fs::symlink(&outside, mdir.join("config.json")).unwrap();
    hub.download(&e, "org/small").unwrap();
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
    assert!(
        !std::fs::symlink_metadata(mdir.join("config.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_model_matches(&hub, &models, "org/small");
    let outdir = d.path().join("outdir");
    std::fs::create_dir(&outdir).unwrap();
    let m2 = d.path().join("m2");
    std::fs::create_dir_all(m2.join("org--small")).unwrap();
    std::os::unix::fs::symlink(&outdir, m2.join("org--small/tokenizer")).unwrap();
    let e2 = engine(&hub, &m2, None, |_| {});
    let err = hub.download(&e2, "org/small").unwrap_err();
    assert!(err.to_string().contains("tokenizer/vocab.txt"), "{err}");
    assert!(
        tree(&outdir).is_empty(),
        "nothing written through the symlink"
    );
}

// ---- the real binary ----

/// A temp dir holding a config file for the CLI (see [`write_config`]) that names the `models` folder in it:
/// (the dir, the models folder, the config file).
fn cli_store(tune: impl FnOnce(&mut Config)) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let models = d.path().join("models");
    let cfg = write_config(d.path(), &models, tune);
    (d, models, cfg)
}

/// A config file for the CLI.
fn write_config(dir: &Path, models: &Path, tune: impl FnOnce(&mut Config)) -> PathBuf {
    let mut c = test_config(models);
    tune(&mut c);
    let p = dir.join("ema.json");
    std::fs::write(&p, serde_json::to_string_pretty(&c).unwrap()).unwrap();
    p
}

/// `ema --config <config>` against the hub at `hub_url`, with `HF_HOME` at `home`.
fn ema(hub_url: &str, config: &Path, home: &Path) -> Command {
    let mut c = ema_cmd();
    c.arg("--config").arg(config);
    c.env("HF_ENDPOINT", hub_url)
        .env("HF_HOME", home)
        .env_remove("EMA_DISK_RESERVE_MB");
    c
}

/// Run `c` to the end: (exit code, stdout, stderr).
fn run(mut c: Command) -> (i32, String, String) {
    support::cli::run(&mut c).parts()
}

#[test]
fn cli_json_gated_offline_disk_and_status() {
    let hub = start_hub(|o| {
        o.gated_repos.insert("org/small".into());
    });
    let (d, models, cfg) = cli_store(|_| {});
    // Gated without a token: exit 4 and the fix.
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["download", "org/small"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("HF_TOKEN") && err.contains("terms"), "{err}");
    // Offline: exit 4, nothing touched.
    hub.plan.clear_log();
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["download", "org/big"]).env("HF_HUB_OFFLINE", "1");
    let (code, _, err) = run(c);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(hub.plan.requests().is_empty());
    // Disk pre-flight: the reserve makes the need larger than the free space.
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["download", "org/big"])
        .env("EMA_DISK_RESERVE_MB", "1000000000");
    let (code, _, err) = run(c);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("required")
            && err.contains("free")
            && err.contains(&models.display().to_string()),
        "{err}"
    );
    assert!(!models.join("org--big/model.safetensors").exists());
    // Not found: exit 5.
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["download", "org/absent"]);
    assert_eq!(run(c).0, 5);
    // Gated with the token, --json: NDJSON events then the result; the token never printed.
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["--json", "download", "org/small"])
        .env("HF_TOKEN", TOKEN);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(TOKEN) && !err.contains(TOKEN));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|v| v["type"] == "file_verified"));
    assert_eq!(lines.last().unwrap()["type"], "download_result");
    assert_model_matches(&hub, &models, "org/small");
    // Status, human and JSON.
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["--json", "status", "--detailed"]);
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = find_in(&v["models"], "model_id", "org/small");
    assert_eq!(m["availability"], "available");
    assert_eq!(m["verification"], "verified");
    assert_eq!(m["files"].as_array().unwrap().len(), 5);
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["status"]);
    let (code, out, _) = run(c);
    assert_eq!(code, 0);
    assert!(
        out.contains("org/small") && out.contains("available"),
        "{out}"
    );
    // Offline, a model complete in the store is a success without a request (as huggingface_hub returns its
    // local snapshot); another revision, or a damaged file, is refused with exit 4 and says what is wrong.
    hub.plan.clear_log();
    let offline = |args: &[&str]| {
        let mut c = ema(&hub.endpoint(), &cfg, d.path());
        c.args(args).env("HF_HUB_OFFLINE", "1");
        run(c)
    };
    let (code, out, err) = offline(&["--json", "download", "org/small"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["offline"], true);
    assert_eq!(v["bytes_fetched"], 0);
    let (code, _, err) = offline(&["download", "org/small", "--revision", "v2"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("not at revision \"v2\""), "{err}");
    let cfg_json = models.join("org--small/config.json");
    let mut bytes = std::fs::read(&cfg_json).unwrap();
    bytes[2] ^= 1;
    std::fs::write(&cfg_json, bytes).unwrap();
    let (code, _, err) = offline(&["download", "org/small"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("config.json of org/small is missing or damaged"),
        "{err}"
    );
    assert!(hub.plan.requests().is_empty());
}

#[test]
fn an_endpoint_where_nothing_listens_fails_within_seconds() {
    // A port nothing listens on (bound, then closed).
    let port = support::http::free_port();
    let d = tempfile::tempdir().unwrap();
    let models = d.path().join("models");
    let cfg = write_config(d.path(), &models, |c| {
        // The configured backoff is for a flaky server mid-transfer; nothing answering must not wait on it.
        c.downloads.retry_delay_seconds = 30.0;
        c.downloads.max_retries = 5;
    });
    let started = Instant::now();
    let mut c = ema(&format!("http://127.0.0.1:{port}"), &cfg, d.path());
    c.args(["download", "org/small"]);
    let (code, _, err) = run(c);
    let took = started.elapsed();
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("nothing answers") && err.contains("HF_ENDPOINT"),
        "{err}"
    );
    assert!(
        err.contains("retry 2 of the listing"),
        "quick retries first: {err}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

/// Bytes recorded as done in the persisted partial states of a model.
fn partial_done(models: &Path, id: &str) -> u64 {
    let pdir = Store::new(models).partial_dir(&repo(id));
    let mut n = 0;
    for e in std::fs::read_dir(pdir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "json")
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(
                &std::fs::read(e.path()).unwrap_or_default(),
            )
        {
            for p in v["parts"].as_array().into_iter().flatten() {
                n += p["done"].as_u64().unwrap_or(0);
            }
        }
    }
    n
}

#[test]
fn kill_9_midway_then_resume_fetches_only_the_rest() {
    let hub = start_hub(|_| {});
    let (d, models, cfg) = cli_store(|_| {});
    let size = hub.models["org/big"]["model.safetensors"].len() as u64;
    hub.plan.set_connection_cap(Some(1_500_000));
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["download", "org/big"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    assert!(
        wait_for(30, || partial_done(&models, "org/big") >= size / 3),
        "progress persisted"
    );
    // SAFETY: sending SIGKILL to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let first = hub.plan.body_bytes_sent("/cdn/");
    assert!(first < size, "killed before the end");
    hub.plan.set_connection_cap(None);
    hub.plan.clear_log();
    // The persisted queue lists it as not running; resume continues it.
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["--json", "downloads", "list"]);
    let (_, out, _) = run(c);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["downloads"][0]["model_id"], "org/big");
    assert!(v["downloads"][0]["pid"].is_null(), "{v}");
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["downloads", "resume"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert_model_matches(&hub, &models, "org/big");
    let again = hub.plan.body_bytes_sent("/cdn/");
    assert!(again < size * 3 / 4, "second run fetched {again} of {size}");
    assert!(
        first + again < size + size / 5,
        "total {} for {size}",
        first + again
    );
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["--json", "downloads", "list"]);
    let (_, out, _) = run(c);
    assert!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["downloads"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn two_processes_same_model_one_intact_copy_and_cross_process_pause_resume_cancel() {
    let hub = start_hub(|_| {});
    let (d, models, cfg) = cli_store(|_| {});
    hub.plan.set_connection_cap(Some(4_000_000));
    let size = hub.models["org/big"]["model.safetensors"].len() as u64;
    let spawn = || {
        let mut c = ema(&hub.endpoint(), &cfg, d.path());
        c.args(["download", "org/big"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let a = spawn();
    assert!(wait_for(20, || partial_done(&models, "org/big") > 0));
    let b = spawn();
    // Pause from a third process: progress stops.
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["downloads", "pause", "org/big"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(Duration::from_millis(1500));
    let p1 = hub.plan.body_bytes_sent("/cdn/");
    std::thread::sleep(Duration::from_millis(1000));
    let p2 = hub.plan.body_bytes_sent("/cdn/");
    assert_eq!(p1, p2, "paused: no bytes flow");
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["--json", "downloads", "list"]);
    let (_, out, _) = run(c);
    assert!(out.contains("\"paused\""), "{out}");
    // Another process's figures come from the persisted queue: file counts, and no rate while paused.
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let e = &v["downloads"][0];
    assert!(e["files_total"].as_u64().unwrap() >= 1, "{out}");
    assert!(
        e["files_done"].as_u64() <= e["files_total"].as_u64(),
        "{out}"
    );
    assert_eq!(e["rate_bytes_per_sec"], 0.0, "{out}");
    assert!(e["eta_seconds"].is_null(), "{out}");
    let mut c = ema(&hub.endpoint(), &cfg, d.path());
    c.args(["downloads", "resume", "org/big"]);
    assert_eq!(run(c).0, 0);
    hub.plan.set_connection_cap(None);
    let oa = a.wait_with_output().unwrap();
    let ob = b.wait_with_output().unwrap();
    assert_eq!(
        oa.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&oa.stderr)
    );
    assert_eq!(
        ob.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ob.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ob.stderr).contains("waiting"),
        "the second process said it waits"
    );
    assert_model_matches(&hub, &models, "org/big");
    let total = hub.plan.body_bytes_sent("/cdn/");
    assert!(total < size + size / 5, "fetched once: {total} for {size}");

    // Cancel from another process: the download stops and its partials go.
    let d2 = tempfile::tempdir().unwrap();
    let m2 = d2.path().join("models");
    let cfg2 = write_config(d2.path(), &m2, |_| {});
    hub.plan.set_connection_cap(Some(1_000_000));
    let mut c = ema(&hub.endpoint(), &cfg2, d2.path());
    c.args(["download", "org/big"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    assert!(wait_for(20, || partial_done(&m2, "org/big") > 0));
    let mut c = ema(&hub.endpoint(), &cfg2, d2.path());
    c.args(["downloads", "cancel", "org/big"]);
    assert_eq!(run(c).0, 0);
    let mut status = None;
    assert!(wait_for(10, || {
        status = child.try_wait().unwrap();
        status.is_some()
    }));
    assert_eq!(status.unwrap().code(), Some(130));
    assert!(!Store::new(&m2).partial_dir(&repo("org/big")).exists());
    assert!(!m2.join("org--big/model.safetensors").exists());
    hub.plan.set_connection_cap(None);
}

#[test]
fn download_from_ema_mirror_of_another_store_reproduces_it() {
    let hub = start_hub(|_| {});
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a");
    let e = engine(&hub, &a, None, |_| {});
    let ra = hub.download(&e, "org/small").unwrap();
    // Serve store A with `ema mirror` and download from it into B with `ema download`.
    let mut m = ema_cmd();
    m.args(["--json", "mirror", "--port", "0", "--models-dir"])
        .arg(&a)
        .env("HF_HOME", d.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut mirror = m.spawn().unwrap();
    let (info, _) = first_json_line(&mut mirror);
    let mirror_url = info["endpoint"].as_str().unwrap().to_string();
    assert!(mirror_url.starts_with("http://127.0.0.1:"), "{mirror_url}");
    let b = d.path().join("b");
    let cfg = write_config(d.path(), &b, |_| {});
    let mut c = ema(&mirror_url, &cfg, d.path());
    c.args(["--json", "download", "org/small"]);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{err}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["commit"], ra.commit.as_str(), "same pinned commit");
    assert_eq!(tree(&a.join("org--small")), tree(&b.join("org--small")));
    assert_model_matches(&hub, &b, "org/small");

    // Clients that hang up in the middle of a body (a download stopping a connection early, a cancelled
    // transfer) cost the mirror nothing: it keeps serving. (A server that let SIGPIPE kill it died here.)
    hub.download(&e, "org/big").unwrap();
    let addr = mirror_url.trim_start_matches("http://").to_string();
    for _ in 0..5 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(
            format!("GET /org/big/resolve/main/model.safetensors HTTP/1.1\r\nHost: {addr}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut buf = [0u8; 65536];
        let _ = s.read(&mut buf).unwrap();
        drop(s);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        mirror.try_wait().unwrap().is_none(),
        "the mirror died when clients hung up mid-body"
    );
    let mut c = ema(&mirror_url, &cfg, d.path());
    c.args(["download", "org/big"]);
    let (code, _, err) = run(c);
    assert_eq!(code, 0, "{err}");
    assert_model_matches(&hub, &b, "org/big");
    let _ = mirror.kill();
    let _ = mirror.wait();
}

#[test]
fn in_process_pause_resume_and_status_through_the_engine_api() {
    let hub = start_hub(|_| {});
    let (d, e) = fresh_engine(&hub, |_| {});
    let mut rx = e.bus().subscribe();
    let r = repo("org/big");
    hub.plan.set_connection_cap(Some(2_000_000));
    let report = hub.rt.block_on(async {
        let dl = spawn_download(&e, &r);
        // Wait for progress (with a rate and an ETA), then pause.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut rate_and_eta = false;
        while Instant::now() < deadline {
            if let Ok(Ok(Event::ModelProgress {
                bytes_done,
                eta_seconds,
                rate_bytes_per_sec,
                ..
            })) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
            {
                rate_and_eta |= eta_seconds.is_some() && rate_bytes_per_sec > 0.0;
                if bytes_done > 1_000_000 && rate_and_eta {
                    break;
                }
            }
        }
        assert!(rate_and_eta, "rate and ETA reported");
        e.pause(&r).unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        let s = e.model_status(&r, false).unwrap();
        assert_eq!(s.availability, Availability::Paused);
        let snap = e.downloads();
        assert_eq!(snap.len(), 1);
        assert!(snap[0].in_process && snap[0].bytes_total > 0);
        let a = hub.plan.body_bytes_sent("/cdn/");
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            a,
            hub.plan.body_bytes_sent("/cdn/"),
            "no bytes while paused"
        );
        hub.plan.set_connection_cap(None);
        e.resume(&r).unwrap();
        dl.await.unwrap()
    });
    let report = report.unwrap();
    assert!(report.completed);
    assert_model_matches(&hub, d.path(), "org/big");
    let evs = collect_events(&mut rx);
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::DownloadPaused { .. }))
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::DownloadResumed { .. }))
    );
    assert!(e.downloads().is_empty());
}

#[test]
fn general_http_client_and_buffered_writes_take_the_same_faults() {
    // Plain-http bodies normally go through ema's own HTTP/1.1 reader into O_DIRECT writes; with both turned off
    // (downloads.zero_copy_http / downloads.direct_io = false, and for https, which always uses the general client)
    // the same guarantees hold: token only to the endpoint, parallel parts, a flipped byte refetched, a cut
    // transfer resumed with a Range.
    let hub = start_hub(|_| {});
    let general = |c: &mut Config| {
        c.downloads.zero_copy_http = false;
        c.downloads.direct_io = false;
    };
    let d = tempfile::tempdir().unwrap();
    let e = engine(&hub, d.path(), Some(TOKEN), general);
    hub.download(&e, "org/big").unwrap();
    assert_model_matches(&hub, d.path(), "org/big");
    let reqs = hub.plan.requests();
    assert!(
        reqs.iter()
            .filter(|q| q.path.starts_with("/cdn/"))
            .all(|q| !q.authorization),
        "token forwarded to the CDN host"
    );

    let sha = sha256_hex(&hub.models["org/small"]["model.safetensors"]);
    let cdn = format!("/cdn/{sha}");
    hub.plan.clear_log();
    hub.plan.add(&cdn, Some(1), Fault::FlipByte(1000));
    let (d2, e2) = fresh_engine(&hub, |c| {
        general(c);
        c.downloads.parallel_threshold_mb = 1024;
    });
    hub.download(&e2, "org/small").unwrap();
    assert_model_matches(&hub, d2.path(), "org/small");

    let gets = cut_then_resume(&hub, general);
    assert!(
        gets[1].range.as_deref().is_some_and(|r| r != "bytes=0-"),
        "{gets:?}"
    );
}
