//! What a self-test reports: one [`Proof`] per claim — passed, failed, not built yet, or not run (a prerequisite
//! failed) — with what it proved in words and its figures (bytes, seconds), and the plan of which proofs to run.

use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

/// The outcome of one proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofStatus {
    Passed,
    Failed,
    /// The feature it would prove does not exist in this version (never counted as a pass).
    NotBuilt,
    /// Not attempted because something it needs failed first.
    NotRun,
}

impl ProofStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProofStatus::Passed => "passed",
            ProofStatus::Failed => "failed",
            ProofStatus::NotBuilt => "not built",
            ProofStatus::NotRun => "not run",
        }
    }
}

/// One claim and what backs it.
#[derive(Debug, Clone, Serialize)]
pub struct Proof {
    /// Stable id, e.g. `download_resume`.
    pub name: &'static str,
    /// What is being proven, in a few words.
    pub title: &'static str,
    pub status: ProofStatus,
    /// What it proved (passed), what went wrong (failed), or why it could not run.
    pub detail: String,
    /// Its figures: bytes, seconds, files, rates.
    pub figures: Map<String, Value>,
    pub seconds: f64,
    /// The operator asked for this proof by name (a feature flag), so "not built" means not everything asked for
    /// was proven.
    pub asked_explicitly: bool,
}

impl Proof {
    pub fn new(name: &'static str, title: &'static str) -> Proof {
        Proof {
            name,
            title,
            status: ProofStatus::NotRun,
            detail: String::new(),
            figures: Map::new(),
            seconds: 0.0,
            asked_explicitly: false,
        }
    }

    /// Add a figure.
    pub fn fig(mut self, key: &str, v: impl Into<Value>) -> Proof {
        self.figures.insert(key.to_string(), v.into());
        self
    }

    pub fn passed(mut self, started: Instant, detail: String) -> Proof {
        self.status = ProofStatus::Passed;
        self.detail = detail;
        self.seconds = round3(started.elapsed().as_secs_f64());
        self
    }

    pub fn failed(mut self, started: Instant, detail: String) -> Proof {
        self.status = ProofStatus::Failed;
        self.detail = detail;
        self.seconds = round3(started.elapsed().as_secs_f64());
        self
    }

    pub fn not_run(mut self, why: String) -> Proof {
        self.status = ProofStatus::NotRun;
        self.detail = why;
        self
    }

    pub fn not_built(mut self, why: String) -> Proof {
        self.status = ProofStatus::NotBuilt;
        self.detail = why;
        self
    }
}

/// Run one proof: `body` gets the fresh proof and its start time and returns it passed or failed; an error it returns
/// fails the proof with the error as the detail.
pub async fn attempt<F, Fut>(name: &'static str, title: &'static str, body: F) -> Proof
where
    F: FnOnce(Proof, Instant) -> Fut,
    Fut: std::future::Future<Output = crate::engine::error::Result<Proof>>,
{
    let started = Instant::now();
    let p = Proof::new(name, title);
    match body(p.clone(), started).await {
        Ok(p) => p,
        Err(e) => p.failed(started, e.to_string()),
    }
}

/// Seconds rounded to milliseconds, for figures.
pub fn round3(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// Whether a feature proof is part of the run, and whether the operator named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ask {
    #[default]
    No,
    /// Part of "everything" (no feature flag, or `--run-all-tests`).
    Implicitly,
    /// Named by its flag.
    Explicitly,
}

impl Ask {
    pub fn wanted(self) -> bool {
        self != Ask::No
    }
}

/// Which proofs a self-test runs.
#[derive(Debug, Clone, Default)]
pub struct SelfTestPlan {
    /// Download a sample model with a forced interruption, resume it, verify every byte, corrupt a byte and
    /// repair it from the hub.
    pub download_management: Ask,
    /// Every sample model downloaded and verified.
    pub sample_models: bool,
    /// The health monitor detects a corrupted file, raises an alert and repairs it.
    pub health_monitoring: Ask,
    pub intelligent_fallback: Ask,
    pub usage_analytics: Ask,
}

impl SelfTestPlan {
    /// Whether any proof needs the workspace and the sample hub (the not-built features do not).
    pub fn needs_hub(&self) -> bool {
        self.download_management.wanted()
            || self.sample_models
            || self.health_monitoring.wanted()
            || self.intelligent_fallback.wanted()
            || self.usage_analytics.wanted()
    }
}

/// The overall verdict of a self-test: exit 1 when anything that ran failed (or could not run), 5 when nothing
/// failed but a feature the operator asked for by name is not built yet, else 0.
pub fn verdict(proofs: &[Proof]) -> (bool, i32) {
    use crate::engine::error::exit;
    let failed = proofs
        .iter()
        .any(|p| matches!(p.status, ProofStatus::Failed | ProofStatus::NotRun));
    let asked_not_built = proofs
        .iter()
        .any(|p| p.status == ProofStatus::NotBuilt && p.asked_explicitly);
    if failed {
        (false, exit::FAILURE)
    } else if asked_not_built {
        (false, exit::NOT_FOUND)
    } else {
        (true, exit::OK)
    }
}

/// Progress lines for the operator (the CLI prints them on stderr).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);
