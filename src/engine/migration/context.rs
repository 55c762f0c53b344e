//! What a step runner gets ([`MigrationContext`]: the recorded plan, the configuration in force, the hub, the
//! face's sample hub starter, the backup made earlier) and what it gives back ([`StepOutcome`] with its
//! [`Verdict`], recorded by the checklist).

use std::path::PathBuf;

use serde::Serialize;

use super::plan::MigrationPlan;
use crate::engine::config::LoadedConfig;
use crate::engine::config::hub_env::HubEnv;
use crate::engine::error::Result;
use crate::engine::selftest::SampleHubStarter;

/// What the runners need.
#[derive(Debug, Clone)]
pub struct MigrationContext {
    /// The legacy setup `ema migrate plan` recorded.
    pub plan: MigrationPlan,
    /// The configuration in force in the face that runs the step (its downloads settings talk to the hub; its file,
    /// when there is one, is backed up with the install).
    pub loaded: LoadedConfig,
    /// The hub to check against (`HF_ENDPOINT`); None when offline.
    pub hub: Option<HubEnv>,
    /// Starts the built-in sample hub the enhanced-feature proofs download from — provided by the face: the engine
    /// cannot serve HTTP. None when the face did not provide one.
    pub sample_hub: Option<SampleHubStarter>,
    /// The backup made by "Current system backed up", if any.
    pub last_backup: Option<PathBuf>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Nothing to do here (e.g. no database to migrate).
    NotApplicable,
    /// Needs a part of ema that is not built yet (the details name it).
    Blocked,
}

/// The result of running a step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepOutcome {
    pub verdict: Verdict,
    pub details: String,
    pub log: Vec<String>,
    /// Set by the backup step.
    pub backup: Option<PathBuf>,
}

impl StepOutcome {
    pub fn ok(&self) -> bool {
        matches!(self.verdict, Verdict::Pass | Verdict::NotApplicable)
    }
    fn with(verdict: Verdict, details: impl Into<String>, log: Vec<String>) -> Self {
        StepOutcome {
            verdict,
            details: details.into(),
            log,
            backup: None,
        }
    }
    pub fn pass(details: impl Into<String>, log: Vec<String>) -> Self {
        Self::with(Verdict::Pass, details, log)
    }
    pub fn fail(details: impl Into<String>, log: Vec<String>) -> Self {
        Self::with(Verdict::Fail, details, log)
    }
    pub fn not_applicable(details: impl Into<String>, log: Vec<String>) -> Self {
        Self::with(Verdict::NotApplicable, details, log)
    }
    pub fn blocked(details: impl Into<String>, log: Vec<String>) -> Self {
        Self::with(Verdict::Blocked, details, log)
    }

    /// The outcome of a runner that can fail with an error: the error is the failure's details and its log.
    pub(super) fn from_result(r: Result<StepOutcome>) -> Self {
        match r {
            Ok(o) => o,
            Err(e) => StepOutcome::fail(e.to_string(), vec![e.to_string()]),
        }
    }
}
