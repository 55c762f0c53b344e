//! The migration checklist and its state machine: the steps of the three phases (exactly the spec's "Migration
//! Checklist": pre-migration, migration, post-migration), what kind each is, and the persisted state of the wizard.
//!
//! Each step is `pending → running → done | failed`, or `skipped`; failed and skipped steps can be retried, manual
//! steps are confirmed by the operator. The state lives in `<store>/.ema/migration_state.json`, written atomically
//! after every transition, so a dropped SSH session and a restart resume where the wizard was. A step found
//! `running` on load was interrupted and is marked failed, ready to retry.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::context::StepOutcome;
use crate::engine::atomic::write_json_atomic;
use crate::engine::error::{EmaError, Result};
use crate::engine::store::{Store, now_rfc3339};

pub const STATE_FILE: &str = "migration_state.json";
pub const SCHEMA_VERSION: u32 = 1;
/// Log lines kept per step.
const MAX_LOG: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    PreMigration,
    Migration,
    PostMigration,
}

impl Phase {
    pub fn title(&self) -> &'static str {
        match self {
            Phase::PreMigration => "Pre-Migration Checklist",
            Phase::Migration => "Migration Checklist",
            Phase::PostMigration => "Post-Migration Checklist",
        }
    }
}

/// Whether the engine does the step's work or the operator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Automatic,
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

impl StepState {
    pub fn as_str(&self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }
}

/// A checklist item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StepDef {
    pub id: &'static str,
    pub phase: Phase,
    /// The checklist text, as in the spec.
    pub title: &'static str,
    pub kind: StepKind,
    /// What the step does (automatic) or what the operator must do (manual).
    pub description: &'static str,
    /// Set for steps that change or stop something: the console asks before running or confirming them.
    pub confirm: Option<&'static str>,
}

/// A checklist item without a confirmation question.
const fn step(
    kind: StepKind,
    id: &'static str,
    phase: Phase,
    title: &'static str,
    description: &'static str,
) -> StepDef {
    StepDef {
        id,
        phase,
        title,
        kind,
        description,
        confirm: None,
    }
}

const fn confirmed(mut s: StepDef, why: &'static str) -> StepDef {
    s.confirm = Some(why);
    s
}

use Phase::{Migration, PostMigration, PreMigration};
use StepKind::{Automatic, Manual};

/// Every step, in checklist order.
pub const STEPS: &[StepDef] = &[
    step(
        Automatic,
        "system_requirements",
        PreMigration,
        "System requirements verified",
        "Reads free disk space at the models directory (minimum 50 GB, recommended 200 GB) and memory from the OS \
         (minimum 8 GB, recommended 16 GB).",
    ),
    confirmed(
        step(
            Automatic,
            "backup",
            PreMigration,
            "Current system backed up",
            "Copies the configuration file and the whole models directory into a timestamped \
             pre-migration-YYYYmmdd_HHMMSS folder under <cache>/backups, with a system_info.txt snapshot.",
        ),
        "This copies every model in the store; it needs as much free space as the store uses.",
    ),
    step(
        Manual,
        "plan_reviewed",
        PreMigration,
        "Migration plan reviewed",
        "Manual: read the migration guide and choose in-place or side-by-side migration, then mark done.",
    ),
    step(
        Manual,
        "downtime_scheduled",
        PreMigration,
        "Downtime window scheduled",
        "Manual: agree a downtime window with the model's consumers, then mark done.",
    ),
    step(
        Manual,
        "rollback_tested",
        PreMigration,
        "Rollback procedures tested",
        "Manual: restore the backup onto a scratch machine or directory and check it works, then mark done.",
    ),
    step(
        Manual,
        "team_notified",
        PreMigration,
        "Team notified",
        "Manual: tell the team when the migration happens, then mark done.",
    ),
    confirmed(
        step(
            Manual,
            "services_stopped",
            Migration,
            "Services stopped",
            "Manual: stop the legacy service (e.g. `systemctl stop model-management-service`) and check no \
             process still serves models, then mark done. ema does not stop other programs.",
        ),
        "Stopping the legacy service interrupts everyone using it.",
    ),
    step(
        Automatic,
        "installed",
        Migration,
        "Enhanced system installed",
        "Reports the running ema binary's version and path.",
    ),
    step(
        Automatic,
        "config_migrated",
        Migration,
        "Configuration migrated",
        "Validates the configuration in force with the full validator (every problem with its position and fix); \
         a legacy config.json is converted with `ema migrate-config`.",
    ),
    confirmed(
        step(
            Automatic,
            "model_data_migrated",
            Migration,
            "Model data migrated",
            "Creates metadata for models that have none (from their bytes), then hashes every file of every model \
             against its metadata and records the health (as `migrate-models --create-metadata \
             --verify-integrity`).",
        ),
        "This writes metadata sidecars and reads every byte of every model.",
    ),
    step(
        Manual,
        "database_migrated",
        Migration,
        "Database migrated (if applicable)",
        "Manual: the analytics database has no migration tool in ema yet; skip when analytics is unused, else \
         mark done once migrated.",
    ),
    confirmed(
        step(
            Manual,
            "services_started",
            Migration,
            "Services started",
            "Manual: start the enhanced service (`ema serve`, or its systemd unit), then mark done.",
        ),
        "Starting the service exposes it to clients.",
    ),
    step(
        Automatic,
        "basic_functionality",
        Migration,
        "Basic functionality tested",
        "Writes and removes a probe file in the store's state directory and lists the store.",
    ),
    step(
        Automatic,
        "models_accessible",
        PostMigration,
        "All models accessible",
        "Quick check of every model: files present with the sizes their metadata records, no stray damage.",
    ),
    step(
        Automatic,
        "api_responding",
        PostMigration,
        "API endpoints responding",
        "Connects to the API port from the configuration (api.host:api.port).",
    ),
    step(
        Manual,
        "features_working",
        PostMigration,
        "Enhanced features working",
        "Manual: try a download, a verification and a fallback suggestion from the console, then mark done.",
    ),
    step(
        Manual,
        "performance_acceptable",
        PostMigration,
        "Performance acceptable",
        "Manual: compare download speed and latency with the legacy system, then mark done.",
    ),
    step(
        Manual,
        "monitoring_configured",
        PostMigration,
        "Monitoring configured",
        "Manual: point Prometheus at the server's /metrics endpoint and set alerts, then mark done.",
    ),
    step(
        Manual,
        "docs_updated",
        PostMigration,
        "Documentation updated",
        "Manual: update runbooks and client documentation, then mark done.",
    ),
    step(
        Manual,
        "team_trained",
        PostMigration,
        "Team trained on new features",
        "Manual: walk the team through the console, then mark done.",
    ),
    step(
        Automatic,
        "rollback_verified",
        PostMigration,
        "Rollback procedures verified",
        "Checks the backup made by \"Current system backed up\" still exists and holds the configuration, the \
         models and system_info.txt.",
    ),
];

pub fn step_def(id: &str) -> Option<&'static StepDef> {
    STEPS.iter().find(|s| s.id == id)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: String,
    pub state: StepState,
    /// One-line result of the last run.
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub log: Vec<LogLine>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// The persisted wizard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationState {
    pub schema_version: u32,
    pub steps: Vec<StepRecord>,
    /// The folder the last successful backup went to.
    #[serde(default)]
    pub last_backup: Option<PathBuf>,
    pub updated_at: String,
}

impl Default for MigrationState {
    fn default() -> Self {
        MigrationState {
            schema_version: SCHEMA_VERSION,
            steps: STEPS
                .iter()
                .map(|d| StepRecord {
                    id: d.id.to_string(),
                    state: StepState::Pending,
                    details: None,
                    log: Vec::new(),
                    updated_at: None,
                })
                .collect(),
            last_backup: None,
            updated_at: now_rfc3339(),
        }
    }
}

pub fn state_path(store: &Store) -> PathBuf {
    store.state_dir().join(STATE_FILE)
}

impl MigrationState {
    /// Load the persisted state (fresh when absent). Steps left `running` were interrupted: they become failed.
    pub fn load(store: &Store) -> Result<Self> {
        let p = state_path(store);
        let mut st: MigrationState = match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                EmaError::Integrity(format!(
                    "migration state {} is damaged ({e}); move it aside to start the checklist again",
                    p.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(EmaError::io("cannot read", &p, e)),
        };
        // Keep records in checklist order; add new steps, drop unknown ones.
        let mut steps = Vec::with_capacity(STEPS.len());
        for d in STEPS {
            let rec = st
                .steps
                .iter()
                .find(|r| r.id == d.id)
                .cloned()
                .unwrap_or(StepRecord {
                    id: d.id.to_string(),
                    state: StepState::Pending,
                    details: None,
                    log: Vec::new(),
                    updated_at: None,
                });
            steps.push(rec);
        }
        st.steps = steps;
        for r in &mut st.steps {
            if r.state == StepState::Running {
                r.state = StepState::Failed;
                r.details = Some("interrupted: ema stopped while this step ran; retry it".into());
                push_log(&mut r.log, "interrupted by a restart; marked failed");
            }
        }
        Ok(st)
    }

    pub fn save(&mut self, store: &Store) -> Result<()> {
        store.ensure()?;
        self.updated_at = now_rfc3339();
        write_json_atomic(&state_path(store), self)
    }

    pub fn record(&self, id: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|r| r.id == id)
    }

    fn record_mut(&mut self, id: &str) -> Result<&mut StepRecord> {
        self.steps
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| EmaError::NotFound(format!("no migration step {id:?}")))
    }

    /// Start running an automatic step (from pending, failed or skipped — the latter two are a retry).
    pub fn begin(&mut self, id: &str) -> Result<()> {
        let def = step_def(id).ok_or_else(|| EmaError::NotFound(format!("no step {id:?}")))?;
        if def.kind == StepKind::Manual {
            return Err(EmaError::Config(format!(
                "\"{}\" is a manual step: do it yourself, then mark it done (or skip it)",
                def.title
            )));
        }
        let r = self.record_mut(id)?;
        match r.state {
            StepState::Running => Err(EmaError::Config(format!(
                "\"{}\" is already running; wait for it to finish",
                def.title
            ))),
            StepState::Done => Err(EmaError::Config(format!(
                "\"{}\" is already done; retry it to run it again",
                def.title
            ))),
            _ => {
                r.state = StepState::Running;
                r.updated_at = Some(now_rfc3339());
                push_log(&mut r.log, "started");
                Ok(())
            }
        }
    }

    /// Record the outcome of a run.
    pub fn finish(&mut self, id: &str, outcome: StepOutcome) -> Result<()> {
        let r = self.record_mut(id)?;
        if r.state != StepState::Running {
            return Err(EmaError::Other(format!(
                "step {id} is not running (it is {})",
                r.state.as_str()
            )));
        }
        for l in outcome.log {
            push_log(&mut r.log, &l);
        }
        r.state = if outcome.ok {
            StepState::Done
        } else {
            StepState::Failed
        };
        push_log(&mut r.log, if outcome.ok { "done" } else { "failed" });
        r.details = Some(outcome.details);
        r.updated_at = Some(now_rfc3339());
        if let Some(b) = outcome.backup {
            self.last_backup = Some(b);
        }
        Ok(())
    }

    /// Skip a step that is not running or done.
    pub fn skip(&mut self, id: &str) -> Result<()> {
        let r = self.record_mut(id)?;
        match r.state {
            StepState::Running | StepState::Done => Err(EmaError::Config(format!(
                "step {id} is {}; only pending or failed steps can be skipped",
                r.state.as_str()
            ))),
            _ => {
                r.state = StepState::Skipped;
                r.updated_at = Some(now_rfc3339());
                push_log(&mut r.log, "skipped by the operator");
                Ok(())
            }
        }
    }

    /// The operator confirms a manual step is done.
    pub fn mark_done(&mut self, id: &str) -> Result<()> {
        let def = step_def(id).ok_or_else(|| EmaError::NotFound(format!("no step {id:?}")))?;
        if def.kind != StepKind::Manual {
            return Err(EmaError::Config(format!(
                "\"{}\" is automatic: run it instead of marking it done",
                def.title
            )));
        }
        let r = self.record_mut(id)?;
        if r.state == StepState::Done {
            return Err(EmaError::Config(format!(
                "\"{}\" is already done",
                def.title
            )));
        }
        r.state = StepState::Done;
        r.details = Some("confirmed by the operator".into());
        r.updated_at = Some(now_rfc3339());
        push_log(&mut r.log, "marked done by the operator");
        Ok(())
    }

    /// Put a finished, failed or skipped step back to pending.
    pub fn reset(&mut self, id: &str) -> Result<()> {
        let r = self.record_mut(id)?;
        if r.state == StepState::Running {
            return Err(EmaError::Config(format!(
                "step {id} is running; wait for it to finish"
            )));
        }
        r.state = StepState::Pending;
        r.updated_at = Some(now_rfc3339());
        push_log(&mut r.log, "reset to pending for a retry");
        Ok(())
    }

    /// (done or skipped, total) for a phase.
    pub fn progress(&self, phase: Phase) -> (usize, usize) {
        let mut done = 0;
        let mut total = 0;
        for d in STEPS.iter().filter(|d| d.phase == phase) {
            total += 1;
            if self
                .record(d.id)
                .is_some_and(|r| matches!(r.state, StepState::Done | StepState::Skipped))
            {
                done += 1;
            }
        }
        (done, total)
    }
}

fn push_log(log: &mut Vec<LogLine>, text: &str) {
    log.push(LogLine {
        at: now_rfc3339(),
        text: text.to_string(),
    });
    if log.len() > MAX_LOG {
        let extra = log.len() - MAX_LOG;
        log.drain(..extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checklists_match_the_spec() {
        let titles = |p: Phase| -> Vec<&str> {
            STEPS
                .iter()
                .filter(|s| s.phase == p)
                .map(|s| s.title)
                .collect()
        };
        assert_eq!(titles(Phase::PreMigration).len(), 6);
        assert_eq!(titles(Phase::Migration).len(), 7);
        assert_eq!(titles(Phase::PostMigration).len(), 8);
        assert_eq!(
            titles(Phase::Migration)[4],
            "Database migrated (if applicable)"
        );
        assert_eq!(
            titles(Phase::PostMigration)[6],
            "Team trained on new features"
        );
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let mut st = MigrationState::default();
        assert!(st.begin("team_notified").is_err()); // manual
        assert!(st.mark_done("backup").is_err()); // automatic
        st.begin("installed").unwrap();
        assert!(st.begin("installed").is_err());
        assert!(st.skip("installed").is_err());
        assert!(st.reset("installed").is_err());
        assert!(st.begin("nope").is_err());
    }
}
