//! The measurements behind `ema benchmark`: downloading a model into a scratch store (as configured, and through one
//! connection), the latency of a running ema server's API, and reading every installed model in full.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Figure, Skipped};
use crate::engine::Engine;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::config::{Config, DownloadsConfig};
use crate::engine::download::DownloadOptions;
use crate::engine::download::disk::human_bytes;
use crate::engine::error::{EmaError, Result};
use crate::engine::store::{RepoId, Store};

/// Progress lines for stderr.
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// Download `repo` from `endpoint` into fresh scratch stores under `scratch`, `reps` times with `downloads` as
/// configured and `reps` times through one connection (one file at a time, no parallel parts). Nothing is cached
/// between runs: every byte crosses the network each time.
pub async fn downloads(
    endpoint: &str,
    repo: &RepoId,
    downloads: &DownloadsConfig,
    reps: usize,
    scratch: &Path,
    progress: Progress<'_>,
) -> Result<Vec<Figure>> {
    let one = DownloadsConfig {
        max_concurrent_downloads: 1,
        connections_per_file: 1,
        ..downloads.clone()
    };
    let mut out = Vec::new();
    for (name, cfg, what) in [
        (
            "download_parallel",
            downloads.clone(),
            format!(
                "{repo} as configured ({} files at once, {} connections per large file)",
                downloads.max_concurrent_downloads, downloads.connections_per_file
            ),
        ),
        (
            "download_one_connection",
            one,
            format!("{repo} through one connection, one file at a time"),
        ),
    ] {
        let mut samples = Vec::new();
        let mut bytes = 0;
        for i in 0..reps {
            let dir = scratch.join(format!("{name}-{i}"));
            let mut c = Config::default();
            c.storage.models_directory = dir.clone();
            c.storage.repair_sources = Vec::new();
            c.analytics.enabled = false;
            c.downloads = cfg.clone();
            let engine = Engine::new(
                c,
                HubEnv {
                    endpoint: endpoint.to_string(),
                    token: None,
                    token_source: None,
                    offline: false,
                },
            )?;
            let r = engine.download(repo, DownloadOptions::default()).await?;
            if !r.completed || r.bytes_fetched == 0 {
                return Err(EmaError::Other(format!(
                    "the benchmark download of {repo} from {endpoint} did not complete"
                )));
            }
            bytes = r.bytes_fetched;
            let rate = mb_per_s(r.bytes_fetched, r.seconds);
            progress(&format!(
                "{name} {}/{reps}: {} in {:.2} s, {rate:.1} MB/s",
                i + 1,
                human_bytes(r.bytes_fetched),
                r.seconds
            ));
            samples.push(rate);
            let _ = std::fs::remove_dir_all(&dir);
        }
        let mut fig = Figure::new(
            name,
            "MB/s",
            true,
            samples,
            format!("{what}, {} each run", human_bytes(bytes)),
        );
        fig.settings = [
            ("hub".to_string(), endpoint.into()),
            (
                "downloads.max_concurrent_downloads".to_string(),
                cfg.max_concurrent_downloads.into(),
            ),
            (
                "downloads.connections_per_file".to_string(),
                cfg.connections_per_file.into(),
            ),
            (
                "downloads.parallel_threshold_mb".to_string(),
                cfg.parallel_threshold_mb.into(),
            ),
        ]
        .into_iter()
        .collect();
        out.push(fig);
    }
    Ok(out)
}

/// p50 and p99 latency of `GET /api/v1/models/status/detailed` on the ema server at `base`, `requests` sequential
/// requests per repetition. A server that does not answer `/api/v1/admin/health` is skipped, with the reason.
pub async fn api_latency(
    base: &str,
    token: Option<&str>,
    requests: usize,
    reps: usize,
    progress: Progress<'_>,
) -> std::result::Result<Vec<Figure>, Skipped> {
    let skip = |reason: String| Skipped {
        part: "api".into(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| skip(format!("cannot build an HTTP client: {e}")))?;
    let base = base.trim_end_matches('/');
    let get = |path: &str| {
        let mut r = client.get(format!("{base}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    match get("/api/v1/admin/health").await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => {
            return Err(skip(format!(
                "the ema server at {base} answers /api/v1/admin/health with {}",
                r.status()
            )));
        }
        Err(_) => {
            return Err(skip(format!(
                "no ema server answers at {base} (start one with `ema start`, or pass --api-url)"
            )));
        }
    }
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for i in 0..reps {
        let mut ms = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            let r = get("/api/v1/models/status/detailed")
                .await
                .map_err(|e| skip(format!("a request to {base} failed: {e}")))?;
            if !r.status().is_success() {
                return Err(skip(format!(
                    "GET /api/v1/models/status/detailed answered {}",
                    r.status()
                )));
            }
            let _ = r.bytes().await;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
        progress(&format!(
            "api {}/{reps}: p50 {:.2} ms, p99 {:.2} ms over {requests} requests",
            i + 1,
            at(0.5),
            at(0.99)
        ));
        p50s.push(at(0.5));
        p99s.push(at(0.99));
    }
    let what =
        format!("GET {base}/api/v1/models/status/detailed, {requests} sequential requests per run");
    Ok(vec![
        Figure::new("api_p50", "ms", false, p50s, what.clone()),
        Figure::new("api_p99", "ms", false, p99s, what),
    ])
}

/// Read every installed model of `store` in full, `reps` times: its read throughput and, from it, how long loading
/// it takes. The first run may come from disk, later ones from the page cache; the median is reported.
pub fn model_reads(store: &Store, reps: usize, progress: Progress<'_>) -> Result<Vec<Figure>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4 << 20];
    for id in store.list_models()? {
        let Some(meta) = store.read_metadata(&id)? else {
            continue;
        };
        let dir = store.model_dir(&id);
        let mut samples = Vec::new();
        let mut bytes = 0u64;
        for _ in 0..reps {
            let t = Instant::now();
            bytes = 0;
            for f in &meta.files {
                let p = dir.join(&f.path);
                let mut file =
                    std::fs::File::open(&p).map_err(|e| EmaError::io("cannot read", &p, e))?;
                loop {
                    let n = file
                        .read(&mut buf)
                        .map_err(|e| EmaError::io("cannot read", &p, e))?;
                    if n == 0 {
                        break;
                    }
                    bytes += n as u64;
                }
            }
            samples.push(mb_per_s(bytes, t.elapsed().as_secs_f64()));
        }
        if bytes == 0 {
            continue;
        }
        let f = Figure::new(&format!("read:{id}"), "MB/s", true, samples, String::new());
        let load_s = bytes as f64 / 1e6 / f.median.max(1e-9);
        progress(&format!(
            "read {id}: {} at {:.0} MB/s (load ≈ {load_s:.2} s)",
            human_bytes(bytes),
            f.median
        ));
        out.push(Figure {
            detail: format!(
                "{} read in full; load-time estimate {load_s:.2} s at this rate",
                human_bytes(bytes)
            ),
            ..f
        });
    }
    Ok(out)
}
