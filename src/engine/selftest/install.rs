//! The installation proofs, against a hub the caller serves (the CLI serves the sample hub on loopback): a download
//! interrupted mid-transfer and resumed (bytes fetched again bounded), every byte verified, one byte corrupted and
//! repaired from the hub (only that file fetched again), and every sample model downloaded and verified.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::proof::{Progress, Proof, attempt, round3};
use super::workspace::{Workspace, flip_byte};
use crate::engine::Engine;
use crate::engine::config::Config;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::download::DownloadOptions;
use crate::engine::download::disk::human_bytes;
use crate::engine::download::queue::QueueState;
use crate::engine::error::{EmaError, Result};
use crate::engine::events::{Event, HealthState};
use crate::engine::integrity::repair::{DownloadRepairer, repair_models};
use crate::engine::store::RepoId;

/// The model the download proofs use: two safetensors shards and an index, about 57 MiB.
pub const PROOF_MODEL: &str = "ema-demo/small-gpt";
/// The bandwidth cap of the interrupted download, so the interruption lands mid-transfer on any machine.
pub const INTERRUPT_RATE_MBPS: f64 = 200.0;
/// The interruption comes once this share of the model has arrived.
pub const INTERRUPT_AT: f64 = 0.3;
/// Resuming may fetch again what was in flight when the connections were dropped, never more than this.
pub const REFETCH_BOUND: u64 = 8 << 20;
/// No step of a proof waits longer than this.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(180);

/// An engine over the store at `store_dir`, talking to the hub at `endpoint`; no local repair sources (a repair
/// comes from the hub), `rate_mbps` caps downloads (0: none).
pub fn proof_engine(store_dir: &Path, endpoint: &str, rate_mbps: f64) -> Result<Engine> {
    let mut c = Config::default();
    c.storage.models_directory = store_dir.to_path_buf();
    c.storage.repair_sources = Vec::new();
    c.analytics.enabled = false;
    c.downloads.bandwidth_limit_mbps = rate_mbps;
    Engine::new(
        c,
        HubEnv {
            endpoint: endpoint.to_string(),
            token: None,
            token_source: None,
            offline: false,
        },
    )
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (bytes as f64 / 1e6 / secs * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// Download [`PROOF_MODEL`], interrupt it once [`INTERRUPT_AT`] of its bytes arrived (a pause through the download
/// manager: every connection is dropped, the partial files and their progress are kept), check that nothing moves
/// while paused, resume it and compare the bytes fetched with the model's size.
pub async fn download_resume(ws: &Workspace, endpoint: &str, progress: Progress<'_>) -> Proof {
    attempt(
        "download_resume",
        "a download interrupted mid-transfer resumes where it stopped",
        |p, started| download_resume_inner(ws, endpoint, progress, p, started),
    )
    .await
}

async fn download_resume_inner(
    ws: &Workspace,
    endpoint: &str,
    progress: Progress<'_>,
    p: Proof,
    started: Instant,
) -> Result<Proof> {
    let repo = RepoId::parse(PROOF_MODEL)?;
    let total = ws.hub_metadata(&repo)?.total_size;
    let engine = proof_engine(&ws.store_dir("store"), endpoint, INTERRUPT_RATE_MBPS)?;
    let threshold = (total as f64 * INTERRUPT_AT) as u64;
    progress(&format!(
        "downloading {repo} ({}) capped at {INTERRUPT_RATE_MBPS} Mbit/s; interrupting it after {}",
        human_bytes(total),
        human_bytes(threshold)
    ));
    let task = {
        let (engine, repo) = (engine.clone(), repo.clone());
        tokio::spawn(async move { engine.download(&repo, DownloadOptions::default()).await })
    };
    let snapshot = |engine: &Engine| {
        engine
            .downloads()
            .into_iter()
            .find(|d| d.model_id == repo.as_str())
    };
    // Wait for the threshold, then pause.
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if task.is_finished() {
            let r = task
                .await
                .map_err(|e| EmaError::Other(format!("download task failed: {e}")))?;
            return Err(EmaError::Other(match r {
                Ok(_) => "the download finished before it could be interrupted; nothing was proven about \
                          resuming"
                    .into(),
                Err(e) => format!("the download failed before the interruption: {e}"),
            }));
        }
        if snapshot(&engine).is_some_and(|s| s.bytes_done >= threshold) {
            engine.pause(&repo)?;
            break;
        }
        if Instant::now() > deadline {
            task.abort();
            return Err(EmaError::Other(format!(
                "fewer than {} arrived within {} s; the hub or the disk is too slow",
                human_bytes(threshold),
                STEP_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The pause holds: paused state reached, and no byte arrives for half a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let at_pause = loop {
        let a = snapshot(&engine).map(|s| (s.state, s.bytes_done));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let b = snapshot(&engine).map(|s| (s.state, s.bytes_done));
        if let (Some((QueueState::Paused, x)), Some((QueueState::Paused, y))) = (a, b)
            && x == y
        {
            break y;
        }
        if Instant::now() > deadline || task.is_finished() {
            return Err(EmaError::Other(
                "the download did not stop when it was paused".into(),
            ));
        }
    };
    if at_pause >= total {
        return Err(EmaError::Other(
            "every byte had arrived before the pause took hold; nothing was proven about resuming"
                .into(),
        ));
    }
    let partial_files = count_files(&engine.store().partial_dir(&repo));
    progress(&format!(
        "interrupted at {} of {} ({:.0}%); {partial_files} partial file(s) kept; resuming",
        human_bytes(at_pause),
        human_bytes(total),
        at_pause as f64 * 100.0 / total as f64,
    ));
    engine.resume(&repo)?;
    let report = tokio::time::timeout(STEP_TIMEOUT, task)
        .await
        .map_err(|_| EmaError::Other("the resumed download did not finish in time".into()))?
        .map_err(|e| EmaError::Other(format!("download task failed: {e}")))??;
    let refetched = report.bytes_fetched.saturating_sub(report.total_bytes);
    let p = p
        .fig("model", repo.as_str())
        .fig("files", report.files)
        .fig("total_bytes", report.total_bytes)
        .fig("bytes_at_interruption", at_pause)
        .fig("partial_files_kept", partial_files)
        .fig("bytes_fetched", report.bytes_fetched)
        .fig("bytes_fetched_again", refetched)
        .fig("bound_bytes", REFETCH_BOUND)
        .fig("download_seconds", round3(report.seconds));
    if !report.completed {
        return Ok(p.failed(started, "the resumed download did not complete".into()));
    }
    let restart_cost = at_pause;
    if refetched > REFETCH_BOUND || refetched >= restart_cost {
        return Ok(p.failed(
            started,
            format!(
                "the resumed download fetched {} again (bound {}; a restart from zero re-fetches {}): the partial \
                 data was not reused",
                human_bytes(refetched),
                human_bytes(REFETCH_BOUND),
                human_bytes(restart_cost)
            ),
        ));
    }
    Ok(p.passed(
        started,
        format!(
            "{repo} ({} files, {}) was interrupted at {} ({:.0}%) with every connection dropped (paused through \
             the download manager), resumed from its partial files and completed: {} fetched in all, {} of it again (bound {}; a restart from zero would \
             have fetched {} again)",
            report.files,
            human_bytes(report.total_bytes),
            human_bytes(at_pause),
            at_pause as f64 * 100.0 / total as f64,
            human_bytes(report.bytes_fetched),
            human_bytes(refetched),
            human_bytes(REFETCH_BOUND),
            human_bytes(restart_cost)
        ),
    ))
}

/// The regular files under `dir` (0 when it does not exist).
fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

/// Hash every byte of [`PROOF_MODEL`] in the store against the hub's records.
pub async fn verify(ws: &Workspace, endpoint: &str, progress: Progress<'_>) -> Proof {
    let started = Instant::now();
    let p = Proof::new(
        "verify",
        "every byte of the downloaded model matches the hub's hashes",
    );
    let run = async {
        let repo = RepoId::parse(PROOF_MODEL)?;
        let engine = proof_engine(&ws.store_dir("store"), endpoint, 0.0)?;
        progress(&format!("verifying every byte of {repo}"));
        let h = engine
            .verify_models(std::slice::from_ref(&repo))
            .await?
            .remove(0);
        let p = p
            .clone()
            .fig("model", repo.as_str())
            .fig("files", h.files_expected)
            .fig("bytes_hashed", h.bytes_hashed)
            .fig("hash_seconds", round3(h.seconds))
            .fig("mb_per_s", mb_per_s(h.bytes_hashed, h.seconds))
            .fig("state", h.state.as_str());
        Ok::<_, EmaError>(if h.state == HealthState::Healthy {
            p.passed(
                started,
                format!(
                    "{} of {repo} hashed in {:.2} s ({} MB/s): all {} files match the sha256 / git sha1 the hub \
                     published",
                    human_bytes(h.bytes_hashed),
                    h.seconds,
                    mb_per_s(h.bytes_hashed, h.seconds),
                    h.files_expected
                ),
            )
        } else {
            p.failed(
                started,
                format!("{repo} is {}: {}", h.state.as_str(), h.reason),
            )
        })
    };
    run.await
        .unwrap_or_else(|e| p.failed(started, e.to_string()))
}

/// The largest file of a model in the store: (path, size).
pub fn largest_file(engine: &Engine, repo: &RepoId) -> Result<(String, u64)> {
    let meta = engine
        .store()
        .read_metadata(repo)?
        .ok_or_else(|| EmaError::NotFound(format!("{repo} has no metadata in the store")))?;
    meta.files
        .iter()
        .max_by_key(|f| f.size)
        .map(|f| (f.path.clone(), f.size))
        .ok_or_else(|| EmaError::NotFound(format!("{repo} has no files")))
}

/// Bytes the download engine reports as fetched for `repo` in the events received so far.
pub fn fetched_in(rx: &mut broadcast::Receiver<Event>, repo: &RepoId) -> u64 {
    let mut bytes = 0;
    while let Ok(ev) = rx.try_recv() {
        if let Event::DownloadFinished {
            model_id, bytes: b, ..
        } = ev
            && model_id == repo.as_str()
        {
            bytes += b;
        }
    }
    bytes
}

/// Flip one byte in the middle of [`PROOF_MODEL`]'s largest file, prove verification catches it (naming the
/// file), repair the model from the hub (only that file fetched again) and verify it healthy again.
pub async fn corrupt_and_repair(ws: &Workspace, endpoint: &str, progress: Progress<'_>) -> Proof {
    let started = Instant::now();
    let p = Proof::new(
        "corrupt_and_repair",
        "a flipped byte is caught and repaired from the hub",
    );
    let run = async {
        let repo = RepoId::parse(PROOF_MODEL)?;
        let engine = proof_engine(&ws.store_dir("store"), endpoint, 0.0)?;
        let (file, size) = largest_file(&engine, &repo)?;
        let offset = size / 2;
        let path = engine.store().model_dir(&repo).join(&file);
        flip_byte(&path, offset)?;
        progress(&format!(
            "flipped the byte at offset {offset} of {repo}/{file}; verifying"
        ));
        let t = Instant::now();
        let before = engine.verify_models(std::slice::from_ref(&repo)).await?;
        let detect_s = t.elapsed().as_secs_f64();
        let h = &before[0];
        let issue = h.issues.iter().find(|i| i.path == file);
        let p = p
            .clone()
            .fig("model", repo.as_str())
            .fig("file", file.as_str())
            .fig("offset", offset)
            .fig("file_bytes", size)
            .fig("model_bytes", h.total_bytes)
            .fig("detected_as", h.state.as_str())
            .fig("detect_seconds", round3(detect_s));
        let Some(issue) = issue.filter(|_| h.state == HealthState::Corrupted) else {
            return Ok(p.failed(
                started,
                format!(
                    "verification did not catch the flipped byte in {file}: {repo} is {} ({})",
                    h.state.as_str(),
                    h.reason
                ),
            ));
        };
        progress(&format!(
            "{repo} is corrupted ({}); repairing from the hub",
            h.reason
        ));
        let mut rx = engine.bus().subscribe();
        let repairer = DownloadRepairer {
            manager: engine.download_manager().clone(),
            local_sources: Vec::new(),
        };
        let t = Instant::now();
        let outcomes = repair_models(engine.store(), &before, &repairer, false).await;
        if let Some(e) = outcomes.iter().find_map(|o| o.error.clone()) {
            return Ok(p.failed(started, format!("the repair failed: {e}")));
        }
        let after = engine
            .verify_models(std::slice::from_ref(&repo))
            .await?
            .remove(0);
        let repair_s = t.elapsed().as_secs_f64();
        let refetched = fetched_in(&mut rx, &repo);
        let p = p
            .fig("bytes_fetched", refetched)
            .fig("repair_seconds", round3(repair_s))
            .fig("state_after", after.state.as_str());
        if after.state != HealthState::Healthy {
            return Ok(p.failed(
                started,
                format!(
                    "after the repair {repo} is {}: {}",
                    after.state.as_str(),
                    after.reason
                ),
            ));
        }
        if refetched == 0 || refetched > size {
            return Ok(p.failed(
                started,
                format!(
                    "the repair fetched {} from the hub, expected the {} of {file} alone",
                    human_bytes(refetched),
                    human_bytes(size)
                ),
            ));
        }
        Ok::<_, EmaError>(p.passed(
            started,
            format!(
                "the flipped byte at offset {offset} of {file} was caught in {detect_s:.2} s ({}; {repo} \
                 corrupted); the repair fetched {} from the hub ({file} alone, of {} in the model) and \
                 {repo} verified healthy again, in {repair_s:.2} s",
                issue.detail,
                human_bytes(refetched),
                human_bytes(h.total_bytes)
            ),
        ))
    };
    run.await
        .unwrap_or_else(|e| p.failed(started, e.to_string()))
}

/// Download every other sample model and verify it.
pub async fn sample_models(ws: &Workspace, endpoint: &str, progress: Progress<'_>) -> Proof {
    let started = Instant::now();
    let p = Proof::new("sample_models", "every sample model downloads and verifies");
    let run = async {
        let engine = proof_engine(&ws.store_dir("samples"), endpoint, 0.0)?;
        let mut rows = Vec::new();
        let (mut bytes, mut bad) = (0u64, Vec::new());
        for repo in &ws.samples {
            progress(&format!("downloading and verifying {repo}"));
            let r = tokio::time::timeout(
                STEP_TIMEOUT,
                engine.download(repo, DownloadOptions::default()),
            )
            .await
            .map_err(|_| {
                EmaError::Other(format!("the download of {repo} did not finish in time"))
            })??;
            let h = engine
                .verify_models(std::slice::from_ref(repo))
                .await?
                .remove(0);
            bytes += r.total_bytes;
            if h.state != HealthState::Healthy {
                bad.push(format!("{repo} is {}: {}", h.state.as_str(), h.reason));
            }
            rows.push(serde_json::json!({
                "model": repo.as_str(),
                "files": r.files,
                "bytes": r.total_bytes,
                "download_seconds": round3(r.seconds),
                "state": h.state.as_str(),
            }));
        }
        let n = rows.len();
        let p = p
            .clone()
            .fig("models", serde_json::Value::Array(rows))
            .fig("bytes", bytes);
        Ok::<_, EmaError>(if bad.is_empty() {
            p.passed(
                started,
                format!(
                    "all {n} sample models ({}) downloaded and every byte verified healthy",
                    human_bytes(bytes)
                ),
            )
        } else {
            p.failed(started, bad.join("; "))
        })
    };
    run.await
        .unwrap_or_else(|e| p.failed(started, e.to_string()))
}
