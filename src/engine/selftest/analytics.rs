//! The usage-analytics proof: an engine of its own with analytics recording into a fresh SQLite file in the
//! workspace; a real download from the sample hub and a fallback request; after a bounded flush the database must
//! hold the download (started, completed, its bytes) and the request — read back through `ema analytics`'s summary.

use std::time::{Duration, Instant};

use super::install::{STEP_TIMEOUT, proof_engine};
use super::proof::{Progress, Proof, attempt};
use super::workspace::Workspace;
use crate::engine::Engine;
use crate::engine::analytics::{self, AnalyticsDb};
use crate::engine::download::DownloadOptions;
use crate::engine::error::{EmaError, Result};
use crate::engine::fallback::{Face, Request, Requirements, UsageHints};
use crate::engine::store::RepoId;

/// The model downloaded while recording.
pub const ANALYTICS_MODEL: &str = "ema-demo/tiny-gpt";

pub async fn usage_analytics(ws: &Workspace, endpoint: &str, progress: Progress<'_>) -> Proof {
    attempt(
        "usage_analytics",
        "a usage record lands in the analytics database",
        |p, started| run(ws, endpoint, progress, p, started),
    )
    .await
}

async fn run(
    ws: &Workspace,
    endpoint: &str,
    progress: Progress<'_>,
    p: Proof,
    started: Instant,
) -> Result<Proof> {
    let db_path = ws.path().join("analytics.db");
    let db_url = format!("sqlite://{}", db_path.display());
    let base = proof_engine(&ws.store_dir("analytics"), endpoint, 0.0)?;
    let mut config = base.config().clone();
    config.analytics.enabled = true;
    config.features.usage_analytics = true;
    config.analytics.db_url = Some(db_url.clone());
    let engine = Engine::new(config, base.hub_env().clone())?;
    if engine.start_analytics().is_none() {
        return Ok(p.failed(
            started,
            "the analytics recorder did not start although analytics is enabled".into(),
        ));
    }
    let repo = RepoId::parse(ANALYTICS_MODEL)?;
    progress(&format!("downloading {repo} with analytics recording"));
    let report = tokio::time::timeout(
        STEP_TIMEOUT,
        engine.download(&repo, DownloadOptions::default()),
    )
    .await
    .map_err(|_| EmaError::Other(format!("the download of {repo} did not finish in time")))??;
    engine
        .suggest(&Request {
            model_id: RepoId::parse("ema-demo/small-gpt")?,
            requirements: Requirements::default(),
            face: Face::Cli,
            usage: UsageHints::default(),
        })
        .await?;
    let stats = engine.stop_analytics(Duration::from_secs(5)).await;
    let db = AnalyticsDb::open(&analytics::url::DbUrl::resolve(
        Some(&db_url),
        engine.config(),
    )?)
    .await?;
    let s = analytics::report::summary(&db, None).await?;
    let p = p
        .fig("database", db_path.display().to_string())
        .fig("events", s.events)
        .fig("downloads_completed", s.downloads.completed)
        .fig("bytes", s.downloads.bytes)
        .fig("requests", s.fallback.requests)
        .fig("dropped", s.dropped_total);
    let problem = if s.downloads.started < 1 || s.downloads.completed < 1 {
        Some(format!(
            "the download of {repo} is not recorded (started {}, completed {})",
            s.downloads.started, s.downloads.completed
        ))
    } else if s.downloads.bytes != report.bytes_fetched {
        Some(format!(
            "the recorded bytes ({}) differ from the bytes the download fetched ({})",
            s.downloads.bytes, report.bytes_fetched
        ))
    } else if s.fallback.requests < 1 {
        Some("the fallback request is not recorded".into())
    } else if s.dropped_total > 0 {
        Some(format!("{} event(s) were dropped", s.dropped_total))
    } else {
        None
    };
    Ok(match problem {
        Some(why) => p.failed(started, why),
        None => p.passed(
            started,
            format!(
                "{} events recorded in {} ({} written by the recorder): the download of {repo} (started, completed, \
                 {} bytes) and a fallback request",
                s.events,
                db_path.display(),
                stats.map(|st| st.written).unwrap_or(0),
                s.downloads.bytes
            ),
        ),
    })
}
